"""NIST CAVS RSA signature vectors (FIPS 186-2, from pyca's ``cryptography_vectors``;
``tests/vectors/nist_rsa/README.md``): the 2048, 3072 and 4096-bit keys with SHA-256/384/512.

- PKCS#1 v1.5 (``SigGen15_186-2.txt``): the private key (``n``, ``e``, ``d``; the primes
  recovered with pyca's ``rsa_recover_prime_factors``) loads into ``RSAPrivateKey`` from
  DER, and signing each message gives exactly the published signature (PKCS#1 v1.5 is
  deterministic); the signature verifies.
- RSASSA-PSS with a 20-byte salt (``SigGenPSS_186-2.txt``): each published signature
  verifies with ``salt_length=20`` and ``"auto"`` and not with the default (hash-length)
  salt; a signature the loaded key makes verifies (signing is randomized).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa as pyca_rsa
from keycell import InvalidSignature, RSAPrivateKey

DIR = Path(__file__).resolve().parent.parent / "vectors" / "nist_rsa"
SIZES = {2048, 3072, 4096}
HASHES = {"SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}


@dataclass(frozen=True)
class Case:
    bits: int
    n: int
    e: int
    d: int
    hash: str
    msg: bytes
    sig: bytes
    salt: bytes | None


def load(name: str) -> list[Case]:
    """The cases of one file: ``[mod = N]`` sections with ``n``, ``e``, ``d``, then blocks
    of ``SHAAlg``, ``Msg``, ``S`` (and ``SaltVal`` in the PSS file)."""
    pss = name.startswith("SigGenPSS")
    cases: list[Case] = []
    bits = 0
    key: dict[str, int] = {}
    fields: dict[str, str] = {}
    for raw in (DIR / name).read_text().splitlines():
        line = raw.strip()
        if line.startswith("[mod"):
            bits = int(line.split("=")[1].strip(" ]"))
        elif line and not line.startswith("#") and "=" in line:
            name_, value = (part.strip() for part in line.split("=", 1))
            if name_ in ("n", "e", "d"):
                key[name_] = int(value, 16)
                continue
            fields[name_] = value
            if "S" not in fields or (pss and "SaltVal" not in fields):
                continue
            if bits in SIZES and fields["SHAAlg"] in HASHES:
                salt = bytes.fromhex(fields["SaltVal"]) if pss else None
                msg, sig = bytes.fromhex(fields["Msg"]), bytes.fromhex(fields["S"])
                cases.append(
                    Case(
                        bits, key["n"], key["e"], key["d"], HASHES[fields["SHAAlg"]], msg, sig, salt
                    )
                )
            fields = {}
    return cases


def make_key(n: int, e: int, d: int) -> RSAPrivateKey:
    p, q = pyca_rsa.rsa_recover_prime_factors(n, e, d)
    numbers = pyca_rsa.RSAPrivateNumbers(
        p,
        q,
        d,
        pyca_rsa.rsa_crt_dmp1(d, p),
        pyca_rsa.rsa_crt_dmq1(d, q),
        pyca_rsa.rsa_crt_iqmp(p, q),
        pyca_rsa.RSAPublicNumbers(e, n),
    )
    der = numbers.private_key().private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return RSAPrivateKey.from_der(bytearray(der))


@pytest.fixture(scope="module")
def keys() -> Iterator[dict[int, RSAPrivateKey]]:
    """The loaded keys by modulus, made once per module and destroyed at its end (a live
    key would stay in the process for every later test)."""
    made: dict[int, RSAPrivateKey] = {}
    yield made
    for key in made.values():
        key.destroy()


def private_key(keys: dict[int, RSAPrivateKey], case: Case) -> RSAPrivateKey:
    if case.n not in keys:
        keys[case.n] = make_key(case.n, case.e, case.d)
    return keys[case.n]


PKCS1 = load("SigGen15_186-2.txt")
PSS = load("SigGenPSS_186-2.txt")


def test_inventory() -> None:
    # 3 sizes x 3 hashes x 10 messages in each file.
    assert len(PKCS1) == 90
    assert len(PSS) == 90
    assert all(c.salt is not None and len(c.salt) == 20 for c in PSS)
    assert {c.bits for c in PKCS1} == SIZES == {c.bits for c in PSS}


@pytest.mark.parametrize("case", PKCS1, ids=lambda c: f"{c.bits}-{c.hash}-{c.msg[:4].hex()}")
def test_pkcs1v15_signature_is_exact(case: Case, keys: dict[int, RSAPrivateKey]) -> None:
    key = private_key(keys, case)
    assert key.key_size == case.bits
    assert key.public_key().n == case.n
    assert key.sign(case.msg, padding="pkcs1v15", hash=case.hash) == case.sig  # type: ignore[arg-type]
    key.public_key().verify(case.sig, case.msg, padding="pkcs1v15", hash=case.hash)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", PSS, ids=lambda c: f"{c.bits}-{c.hash}-{c.msg[:4].hex()}")
def test_pss_signature_verifies(case: Case, keys: dict[int, RSAPrivateKey]) -> None:
    key = private_key(keys, case)
    public = key.public_key()
    h = case.hash
    public.verify(case.sig, case.msg, padding="pss", hash=h, salt_length=20)  # type: ignore[arg-type]
    public.verify(case.sig, case.msg, padding="pss", hash=h, salt_length="auto")  # type: ignore[arg-type]
    with pytest.raises(InvalidSignature):
        public.verify(case.sig, case.msg, padding="pss", hash=h)  # type: ignore[arg-type]
    with pytest.raises(InvalidSignature):
        public.verify(case.sig, case.msg + b"\x00", padding="pss", hash=h, salt_length=20)  # type: ignore[arg-type]
    public.verify(key.sign(case.msg, padding="pss", hash=h), case.msg, padding="pss", hash=h)  # type: ignore[arg-type]
