"""keycell benchmarks against the incumbents, in one run.

Run with ``make bench`` (installs the peers from benches/requirements.txt). Every case
times keycell and its reference in interleaved rounds (A B A B ...), so machine drift hits
both alike, and reports the medians and the *paired* ratio: the median over rounds of
keycell's time divided by the reference's time in the same round. Results go to stdout and
to ``benches/results/latest.md`` (with date, CPU model and versions).

This is a measurement, not a test: nothing here fails on timing. The target ratio of
each case is written next to it below and printed beside the measured ratio.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hmac as std_hmac
import os
import platform
import ssl
import statistics
import subprocess
import sys
import threading
import time
import timeit
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keycell
from keycell import SecretKey

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))  # the benches beside this one (pool.py, audit.py, agent.py, aio.py)

import pool as pool_bench  # noqa: E402


@dataclass
class Contender:
    """One way of doing the case: a statement timed with ``timeit`` in ``env``."""

    name: str
    stmt: str
    env: dict[str, Any]


@dataclass
class Case:
    """A benchmark case: keycell versus one or more references."""

    name: str
    keycell: Contender
    references: list[tuple[Contender, float | None]] = field(default_factory=list)
    note: str = ""
    #: keycell's isolation for the whole case ("page" or "pool"; None: the default policy).
    isolation: str | None = None


@dataclass
class Result:
    case: Case
    medians: dict[str, float]
    ratios: dict[str, float]


def _calibrate(timer: timeit.Timer, budget_s: float) -> int:
    n = 1
    while True:
        t = timer.timeit(n)
        if t >= budget_s / 5 or n >= 1 << 22:
            return max(1, int(n * budget_s / max(t, 1e-9)))
        n *= 4


def run_case(case: Case, rounds: int, budget_s: float) -> Result:
    """Time every contender of ``case`` in ``rounds`` interleaved rounds."""
    if case.isolation is None:
        return _run_case(case, rounds, budget_s)
    with keycell.policy(isolation=case.isolation):  # type: ignore[arg-type]
        return _run_case(case, rounds, budget_s)


def _run_case(case: Case, rounds: int, budget_s: float) -> Result:
    contenders = [case.keycell] + [c for c, _ in case.references]
    timers = [timeit.Timer(c.stmt, globals=c.env) for c in contenders]
    loops = [_calibrate(t, budget_s) for t in timers]
    per_round: dict[str, list[float]] = {c.name: [] for c in contenders}
    for r in range(rounds):
        order = list(range(len(contenders)))
        if r % 2:
            order.reverse()  # A B, then B A: neither always runs first
        for i in order:
            t = timers[i].timeit(loops[i]) / loops[i]
            per_round[contenders[i].name].append(t)
    medians = {name: statistics.median(v) for name, v in per_round.items()}
    ratios = {}
    kc = per_round[case.keycell.name]
    for ref, _ in case.references:
        paired = [a / b for a, b in zip(kc, per_round[ref.name], strict=True)]
        ratios[ref.name] = statistics.median(paired)
    return Result(case, medians, ratios)


# The cases of the benches beside this one: each module's build_cases(Case, Contender).
BENCH_MODULES = (
    "pkcs11.py",  # PKCS#11 token keys (nothing without SoftHSM2)
    "signers.py",  # itsdangerous, Django signing and webhooks against the originals
    "jose.py",  # JWTs with keycell.jose against PyJWT (nothing without PyJWT)
)


def add_module_cases(add: Any, filename: str) -> None:
    """Add the cases of ``benches/<filename>`` (its ``build_cases(Case, Contender)``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{filename[:-3]}", HERE / filename)
    if spec is None or spec.loader is None:
        return
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for case in mod.build_cases(Case, Contender):
        add(case)


def run_module_alone(build: Any, label: str = "keycell") -> int:
    """``python benches/<module>.py``: run that module's cases (``build(Case, Contender)``)
    alone and print each one's median and paired ratios."""
    for case in build(Case, Contender):
        r = run_case(case, rounds=21, budget_s=0.02)
        print(f"{case.name}: {label} {_fmt_time(r.medians[case.keycell.name])}")
        for ref, _ in case.references:
            print(
                f"    vs {ref.name}: {_fmt_time(r.medians[ref.name])}, "
                f"paired ratio (keycell / it) {r.ratios[ref.name]:.2f}"
            )
    return 0


def add_pyca_adapter_cases(add: Any) -> None:
    """``key.to_cryptography()``: the adapter's overhead over the handle (a Python method
    call and the argument checks), and pyca's x509 CSR builder signing with a keycell key
    versus with pyca's own key of the same algorithm."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec as pyca_ec
    from cryptography.hazmat.primitives.asymmetric import ed25519 as pyca_ed
    from cryptography.x509.oid import NameOID

    ed = keycell.Ed25519PrivateKey.generate()
    p256 = keycell.ECPrivateKey.generate("P-256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    env: dict[str, Any] = {
        "ed": ed,
        "eda": ed.to_cryptography(),
        "ped": pyca_ed.Ed25519PrivateKey.generate(),
        "p256": p256,
        "p256a": p256.to_cryptography(),
        "pp256": pyca_ec.generate_private_key(pyca_ec.SECP256R1()),
        "ecdsa": pyca_ec.ECDSA(hashes.SHA256()),
        "sha256": hashes.SHA256(),
        "m": os.urandom(32),
        "csr": x509.CertificateSigningRequestBuilder().subject_name(name),
    }
    add(
        Case(
            "pyca adapter: Ed25519 sign, 32 B",
            Contender("keycell adapter", "eda.sign(m)", env),
            [
                (Contender("keycell handle", "ed.sign(m)", env), None),
                (Contender("pyca/cryptography", "ped.sign(m)", env), None),
            ],
        )
    )
    add(
        Case(
            "pyca adapter: ECDSA P-256 sign, 32 B",
            Contender("keycell adapter", "p256a.sign(m, ecdsa)", env),
            [
                (Contender("keycell handle", "p256.sign(m)", env), None),
                (Contender("pyca/cryptography", "pp256.sign(m, ecdsa)", env), None),
            ],
        )
    )
    for label, ours, theirs, alg in (
        ("Ed25519", "eda", "ped", "None"),
        ("ECDSA P-256", "p256a", "pp256", "sha256"),
    ):
        add(
            Case(
                f"pyca x509 CSR sign, {label}",
                Contender("keycell adapter", f"csr.sign({ours}, {alg})", env),
                [(Contender("pyca key", f"csr.sign({theirs}, {alg})", env), None)],
            )
        )


def _fmt_time(s: float) -> str:
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.2f} µs"
    return f"{s * 1e9:.0f} ns"


def build_cases(only: str | None) -> list[Case]:
    """All cases whose APIs exist in this build."""
    cases: list[Case] = []
    raw = os.urandom(32)
    key = SecretKey.from_buffer(bytearray(raw))

    def add(case: Case) -> None:
        if only is None or only in case.name:
            cases.append(case)

    have_hmac = hasattr(SecretKey, "hmac")
    if have_hmac:
        for alg, sizes, targets in (
            ("sha256", (32, 1024, 1 << 20), (0.25, 0.45, 1.05)),
            ("sha512", (32, 1 << 20), (0.30, 1.10)),
            # Legacy protocols' HMAC-SHA1 (key.hmac(m, "sha1")): the `sha1` crate's
            # compression against OpenSSL's.
            ("sha1", (32, 1 << 20), (0.30, 1.10)),
        ):
            for size, target in zip(sizes, targets, strict=True):
                msg = os.urandom(size)
                env = {"key": key, "raw": raw, "m": msg, "alg": alg, "digest": std_hmac.digest}
                label = f"{size} B" if size < 1024 else f"{size // 1024} KiB"
                if size >= 1 << 20:
                    label = f"{size >> 20} MiB"
                add(
                    Case(
                        f"HMAC-{alg.upper()} one-shot, {label}",
                        Contender("keycell", "key.hmac(m, alg)", env),
                        [(Contender("stdlib hmac.digest", "digest(raw, m, alg)", env), target)],
                    )
                )
        msg = os.urandom(32)
        tag = std_hmac.digest(raw, msg, "sha256")
        env = {
            "key": key,
            "raw": raw,
            "m": msg,
            "tag": tag,
            "digest": std_hmac.digest,
            "cd": std_hmac.compare_digest,
        }
        add(
            Case(
                "verify_hmac, 32 B message",
                Contender("keycell", "key.verify_hmac(m, tag)", env),
                [
                    (
                        Contender(
                            "stdlib compare_digest(hmac.digest)",
                            "cd(digest(raw, m, 'sha256'), tag)",
                            env,
                        ),
                        0.30,
                    )
                ],
            )
        )

    if hasattr(keycell, "Ed25519PrivateKey"):
        from cryptography.hazmat.primitives.asymmetric import ed25519 as pyca_ed
        from nacl.signing import SigningKey, VerifyKey

        seed = os.urandom(32)
        sk = keycell.Ed25519PrivateKey.from_private_bytes(bytearray(seed))
        pk = sk.public_key()
        psk = pyca_ed.Ed25519PrivateKey.from_private_bytes(seed)
        ppk = psk.public_key()
        nsk = SigningKey(seed)
        nvk = VerifyKey(bytes(nsk.verify_key))
        msg = os.urandom(32)
        sig = psk.sign(msg)
        env = {"sk": sk, "pk": pk, "psk": psk, "ppk": ppk, "nsk": nsk, "nvk": nvk}
        env.update({"m": msg, "sig": sig})
        add(
            Case(
                "Ed25519 sign, 32 B",
                Contender("keycell", "sk.sign(m)", env),
                [
                    (Contender("pyca/cryptography", "psk.sign(m)", env), 0.60),
                    (Contender("PyNaCl", "nsk.sign(m)", env), 1.0),
                ],
            )
        )
        add(
            Case(
                "Ed25519 verify, 32 B",
                Contender("keycell", "pk.verify(sig, m)", env),
                [
                    (Contender("pyca/cryptography", "ppk.verify(sig, m)", env), 0.50),
                    (Contender("PyNaCl", "nvk.verify(m, sig)", env), 1.0),
                ],
            )
        )
        if hasattr(keycell, "ed25519_verify_batch"):
            items = []
            singles = []
            for _ in range(64):
                k = keycell.Ed25519PrivateKey.generate()
                m = os.urandom(32)
                s = k.sign(m)
                items.append((k.public_key(), s, m))
                singles.append((k.public_key(), s, m))
            env = {"items": items, "batch": keycell.ed25519_verify_batch}
            env["singles"] = singles
            add(
                Case(
                    "Ed25519 batch verify, 64 signatures",
                    Contender("keycell batch", "batch(items)", env),
                    [
                        (
                            Contender(
                                "64 single keycell verifies",
                                "for p, s, m in singles: p.verify(s, m)",
                                env,
                            ),
                            0.55,
                        )
                    ],
                )
            )

    if hasattr(keycell, "RSAPrivateKey"):
        from cryptography.hazmat.primitives import hashes as pyca_hashes
        from cryptography.hazmat.primitives import serialization as pyca_ser
        from cryptography.hazmat.primitives.asymmetric import padding as pyca_pad
        from cryptography.hazmat.primitives.asymmetric import rsa as pyca_rsa

        prsa = pyca_rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = prsa.private_bytes(
            pyca_ser.Encoding.DER, pyca_ser.PrivateFormat.PKCS8, pyca_ser.NoEncryption()
        )
        krsa = keycell.RSAPrivateKey.from_der(bytearray(der))
        msg = os.urandom(32)
        pss = pyca_pad.PSS(pyca_pad.MGF1(pyca_hashes.SHA256()), pyca_pad.PSS.DIGEST_LENGTH)
        env = {"k": krsa, "kp": krsa.public_key(), "p": prsa, "pp": prsa.public_key()}
        env.update({"m": msg, "pss": pss, "sha": pyca_hashes.SHA256()})
        env["sig"] = prsa.sign(msg, pss, pyca_hashes.SHA256())
        env.update({"gen": keycell.RSAPrivateKey.generate, "pgen": pyca_rsa.generate_private_key})
        add(
            Case(
                "RSA-2048 PSS-SHA256 sign, 32 B",
                Contender("keycell", "k.sign(m)", env),
                [(Contender("pyca/cryptography", "p.sign(m, pss, sha)", env), 1.25)],
            )
        )
        add(
            Case(
                "RSA-2048 PSS-SHA256 verify, 32 B",
                Contender("keycell", "kp.verify(sig, m)", env),
                [(Contender("pyca/cryptography", "pp.verify(sig, m, pss, sha)", env), 1.25)],
            )
        )
        env.update({"der": der, "load": keycell.RSAPrivateKey.from_der})
        env["pload"] = pyca_ser.load_der_private_key
        add(
            Case(
                "RSA-2048 load, PKCS#8 DER",
                Contender("keycell", "load(der).destroy()", env),
                [(Contender("pyca/cryptography", "pload(der, None)", env), None)],
                note="report only: keycell checks every component (d, dP, dQ, qInv) in the "
                "secret heap before ring parses the key; pyca runs OpenSSL's key check",
            )
        )
        add(
            Case(
                "RSA-3072 generate",
                Contender("keycell", "gen(3072).destroy()", env),
                [(Contender("pyca/cryptography", "pgen(65537, 3072)", env), None)],
                note="report only: prime search time varies from key to key",
            )
        )

    if hasattr(keycell, "X25519PrivateKey"):
        from cryptography.hazmat.primitives.asymmetric import x25519 as pyca_x

        a = keycell.X25519PrivateKey.generate()
        peer = pyca_x.X25519PrivateKey.generate()
        peer_pub = keycell.X25519PublicKey.from_public_bytes(peer.public_key().public_bytes_raw())
        pa = pyca_x.X25519PrivateKey.generate()
        env = {"a": a, "peer_pub": peer_pub, "pa": pa, "ppub": peer.public_key()}
        # The default policy pools derived keys (issue 21): its target is the pool's.
        for iso, target in ((None, 1.25), ("page", None), ("pool", 1.25)):
            add(
                Case(
                    f"X25519 exchange -> SecretKey ({iso or 'default'}) vs bytes (pyca)",
                    Contender("keycell", "a.exchange(peer_pub).destroy()", env),
                    [(Contender("pyca/cryptography", "pa.exchange(ppub)", env), target)],
                    note="keycell's time includes allocating and destroying the guarded result",
                    isolation=iso,
                )
            )

    if hasattr(keycell, "ECPrivateKey"):
        from cryptography.hazmat.primitives import hashes as pyca_hashes
        from cryptography.hazmat.primitives import serialization as pyca_ser
        from cryptography.hazmat.primitives.asymmetric import ec as pyca_ec

        msg = os.urandom(32)
        for curve, pcurve, phash, targets in (
            ("P-256", pyca_ec.SECP256R1(), pyca_hashes.SHA256(), (1.0, 1.0)),
            ("P-384", pyca_ec.SECP384R1(), pyca_hashes.SHA384(), (1.0, None)),
        ):
            psk = pyca_ec.generate_private_key(pcurve)
            pem = psk.private_bytes(
                pyca_ser.Encoding.PEM, pyca_ser.PrivateFormat.PKCS8, pyca_ser.NoEncryption()
            )
            sk = keycell.ECPrivateKey.from_pem(bytearray(pem))
            env = {"sk": sk, "pk": sk.public_key(), "psk": psk, "ppk": psk.public_key()}
            alg = pyca_ec.ECDSA(phash)
            env.update({"m": msg, "alg": alg, "sig": psk.sign(msg, alg)})
            add(
                Case(
                    f"ECDSA {curve} sign, 32 B",
                    Contender("keycell", "sk.sign(m)", env),
                    [(Contender("pyca/cryptography", "psk.sign(m, alg)", env), targets[0])],
                )
            )
            add(
                Case(
                    f"ECDSA {curve} verify, 32 B",
                    Contender("keycell", "pk.verify(sig, m)", env),
                    [(Contender("pyca/cryptography", "ppk.verify(sig, m, alg)", env), targets[1])],
                )
            )
        a = keycell.ECPrivateKey.generate("P-256")
        pa = pyca_ec.generate_private_key(pyca_ec.SECP256R1())
        peer = pyca_ec.generate_private_key(pyca_ec.SECP256R1()).public_key()
        point = peer.public_bytes(
            pyca_ser.Encoding.X962, pyca_ser.PublicFormat.UncompressedPoint
        )
        peer_pub = keycell.ECPublicKey.from_public_bytes("P-256", point)
        env = {"a": a, "peer_pub": peer_pub, "pa": pa, "ppub": peer, "ECDH": pyca_ec.ECDH()}
        for iso, target in ((None, 1.5), ("page", None), ("pool", 1.5)):
            add(
                Case(
                    f"ECDH P-256 -> SecretKey ({iso or 'default'}) vs bytes (pyca)",
                    Contender("keycell", "a.exchange(peer_pub).destroy()", env),
                    [(Contender("pyca/cryptography", "pa.exchange(ECDH, ppub)", env), target)],
                    note="keycell's time includes allocating and destroying the guarded "
                    "result; ring's share of it: `cargo bench --bench ec_ecdh`",
                    isolation=iso,
                )
            )

    if hasattr(keycell.ECPublicKey, "to_openssh"):
        from cryptography.hazmat.primitives import serialization as pyca_ser
        from cryptography.hazmat.primitives.asymmetric import ec as pyca_ec
        from cryptography.hazmat.primitives.asymmetric import ed25519 as pyca_ed

        for label, pkey, cls in (
            ("Ed25519", pyca_ed.Ed25519PrivateKey.generate(), keycell.Ed25519PrivateKey),
            ("P-256", pyca_ec.generate_private_key(pyca_ec.SECP256R1()), keycell.ECPrivateKey),
        ):
            data = pkey.private_bytes(
                pyca_ser.Encoding.PEM, pyca_ser.PrivateFormat.OpenSSH, pyca_ser.NoEncryption()
            )
            env = {"data": data, "cls": cls, "load": pyca_ser.load_ssh_private_key}
            add(
                Case(
                    f"OpenSSH {label} private key load (unencrypted) + destroy",
                    Contender("keycell", "cls.from_openssh(data, wipe=False).destroy()", env),
                    [(Contender("pyca/cryptography", "load(data, None)", env), None)],
                    note="keycell decodes in guarded scratch regions and derives the key state",
                )
            )

    if hasattr(keycell, "hkdf"):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        salt, info = os.urandom(16), b"bench"
        env = {"key": key, "raw": raw, "salt": salt, "info": info, "hkdf": keycell.hkdf}
        env.update({"HKDF": HKDF, "SHA256": hashes.SHA256})
        for iso, target in ((None, 0.75), ("page", None), ("pool", 0.75)):
            add(
                Case(
                    f"HKDF-SHA256 -> 32-byte SecretKey ({iso or 'default'}) + destroy",
                    Contender(
                        "keycell", "hkdf(key, length=32, salt=salt, info=info).destroy()", env
                    ),
                    [
                        (
                            Contender(
                                "pyca/cryptography HKDF.derive",
                                "HKDF(SHA256(), 32, salt, info).derive(raw)",
                                env,
                            ),
                            target,
                        )
                    ],
                    isolation=iso,
                )
            )

    try:
        import pyotp
    except ImportError:  # pragma: no cover - pyotp comes with benches/requirements.txt
        pyotp = None
    if pyotp is not None and hasattr(keycell, "TOTP"):
        import base64

        secret = os.urandom(20)
        now = 1_700_000_000
        ours = keycell.TOTP(SecretKey.from_buffer(bytearray(secret)))
        ref = pyotp.TOTP(base64.b32encode(secret).decode())
        # A code from the previous step: both check the whole +-1 window (keycell always
        # does; pyotp stops at the first match, which here is the first candidate).
        code = ref.at(now - 30)
        env = {"ours": ours, "ref": ref, "code": code, "now": now}
        add(
            Case(
                "TOTP.verify, +-1 window",
                Contender("keycell", "ours.verify(code, at=now)", env),
                [
                    (
                        Contender(
                            "pyotp verify(valid_window=1)",
                            "ref.verify(code, for_time=now, valid_window=1)",
                            env,
                        ),
                        0.25,
                    )
                ],
            )
        )

    if hasattr(keycell, "AESGCM"):
        from cryptography.hazmat.primitives.ciphers import aead as pyca_aead

        for kc_cls, ref_cls, title, sizes in (
            (keycell.AESGCM, pyca_aead.AESGCM, "AES-256-GCM", ((64, 0.6), (1 << 20, 1.25))),
            (keycell.ChaCha20Poly1305, pyca_aead.ChaCha20Poly1305, "ChaCha20-Poly1305",
             ((64, None), (1 << 20, 1.5))),
        ):  # fmt: skip
            for size, target in sizes:
                env = {
                    "ours": kc_cls(key),
                    "ref": ref_cls(raw),
                    "n": os.urandom(12),
                    "m": os.urandom(size),
                }
                label = f"{size} B" if size < 1024 else f"{size >> 20} MiB"
                add(
                    Case(
                        f"{title} encrypt, {label}",
                        Contender("keycell", "ours.encrypt(n, m, None)", env),
                        [(Contender("pyca", "ref.encrypt(n, m, None)", env), target)],
                    )
                )
        env = {
            "key": key,
            "ref": pyca_aead.AESGCM(raw),
            "m": os.urandom(64),
            "urandom": os.urandom,
        }
        refs = [
            (
                Contender("pyca AESGCM + os.urandom(12)", "ref.encrypt(urandom(12), m, None)", env),
                None,
            )
        ]
        if hasattr(pyca_aead, "XChaCha20Poly1305"):  # pragma: no cover - newer pyca only
            env["xref"] = pyca_aead.XChaCha20Poly1305(raw)
            refs.insert(
                0,
                (
                    Contender("pyca XChaCha20Poly1305", "xref.encrypt(urandom(24), m, None)", env),
                    None,
                ),
            )
        add(Case("easy key.encrypt, 64 B", Contender("keycell", "key.encrypt(m)", env), refs))

    if hasattr(keycell.Ed25519PrivateKey, "to_cryptography"):
        add_pyca_adapter_cases(add)

    env = {"SecretKey": SecretKey, "urandom": os.urandom, "zero": bytes(32)}
    for iso, target in (("page", None), ("pool", 1.5)):
        add(
            Case(
                f"SecretKey.generate(32) + destroy() ({iso})",
                Contender("keycell", "SecretKey.generate(32).destroy()", env),
                [
                    (
                        Contender(
                            "bytearray(os.urandom(32)) + wipe",
                            "b = bytearray(urandom(32)); b[:] = zero",
                            env,
                        ),
                        target,
                    )
                ],
                isolation=iso,
            )
        )
    for filename in BENCH_MODULES:
        add_module_cases(add, filename)
    return cases


def thread_scaling(seconds: float = 2.0) -> dict[str, float] | None:
    """Throughput of 2 threads each HMAC-ing 1 MiB messages, relative to 1 thread."""
    if not hasattr(SecretKey, "hmac"):
        return None
    key = SecretKey.generate(32)
    msg = os.urandom(1 << 20)

    def worker(stop: float, counts: list[int], i: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            key.hmac(msg)
            n += 1
        counts[i] = n

    def run(nthreads: int) -> float:
        counts = [0] * nthreads
        stop = time.perf_counter() + seconds
        ts = [threading.Thread(target=worker, args=(stop, counts, i)) for i in range(nthreads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return sum(counts) / seconds

    one, two = [], []
    for _ in range(3):  # interleaved
        one.append(run(1))
        two.append(run(2))
    key.destroy()
    r1, r2 = statistics.median(one), statistics.median(two)
    return {"one_thread_per_s": r1, "two_threads_per_s": r2, "scaling": r2 / r1}


def scale_targets() -> list[tuple[str, dict[str, Any], int, int]]:
    """Live-key populations of issue 9, each in a forked child (benches/pool.py).

    Returns (case, result, keys wanted, mapping ceiling) rows: 100,000 default-policy keys
    as an unprivileged user under an 8 MiB RLIMIT_MEMLOCK, and (as root only, since only
    root has the lock budget) 1,000,000 pooled keys.
    """
    rows = []
    print("running: 100,000 keys as nobody, 8 MiB lock limit", file=sys.stderr, flush=True)
    rows.append(
        (
            "100,000 live 32-byte keys, unprivileged, 8 MiB limit, default policy",
            pool_bench.population(100_000, unprivileged=True),
            100_000,
            3_000,
        )
    )
    if os.geteuid() == 0:
        print("running: 1,000,000 pooled keys as root", file=sys.stderr, flush=True)
        rows.append(
            (
                "1,000,000 live 32-byte keys, root, pool",
                pool_bench.population(1_000_000, isolation="pool"),
                1_000_000,
                5_000,
            )
        )
    return rows


def cargo_bench(name: str) -> str | None:
    """Run one of the Rust micro-benchmarks in benches/*.rs and return what it printed."""
    try:
        out = subprocess.run(
            [
                "cargo",
                "bench",
                "--quiet",
                "--no-default-features",
                "--bench",
                name,
            ],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"(cargo bench --bench {name} unavailable: {exc})"
    return out.stdout.strip()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict[str, str]:
    v = {"python": platform.python_version(), "keycell": keycell.__version__}
    try:
        import cryptography

        v["cryptography"] = cryptography.__version__
    except ImportError:
        pass
    try:
        import nacl

        v["pynacl"] = nacl.__version__
    except ImportError:
        pass
    try:
        import jwt

        v["pyjwt"] = jwt.__version__
    except ImportError:
        pass
    v["openssl (stdlib)"] = ssl.OPENSSL_VERSION
    return v


def render(
    results: list[Result],
    threads: dict[str, float] | None,
    raw: str | None,
    pool_threads: dict[int, float] | None = None,
    scale: list[tuple[str, dict[str, Any], int, int]] | None = None,
    rust_pool: str | None = None,
) -> str:
    """Markdown report."""
    lines = [
        f"# keycell benchmarks — {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"CPU: {_cpu_model()} ({os.cpu_count()} cores); kernel {platform.release()}",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in _versions().items()),
        "",
        "Paired ratio = median over interleaved rounds of (keycell time / reference time);"
        " below 1 means keycell is faster.",
        "",
        "| case | keycell | reference | reference time | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        kc = _fmt_time(r.medians[r.case.keycell.name])
        if not r.case.references:
            lines.append(f"| {r.case.name} | {kc} | — | — | — | report | — |")
        for ref, target in r.case.references:
            ratio = r.ratios[ref.name]
            t = "report" if target is None else f"<= {target:.2f}"
            met = "—" if target is None else ("yes" if ratio <= target else "**no**")
            lines.append(
                f"| {r.case.name} | {kc} | {ref.name} | {_fmt_time(r.medians[ref.name])}"
                f" | {ratio:.3f} | {t} | {met} |"
            )
    if threads is not None:
        s = threads["scaling"]
        lines.append(
            f"| 2 threads x HMAC-SHA256 1 MiB | {threads['two_threads_per_s']:.0f}/s | 1 thread"
            f" | {threads['one_thread_per_s']:.0f}/s | {s:.2f}x throughput | >= 1.70x |"
            f" {'yes' if s >= 1.7 else '**no**'} |"
        )
    if pool_threads is not None:
        one = pool_threads[1]
        for n, rate in pool_threads.items():
            lines.append(
                f"| {n} thread(s) x pooled generate(32) + destroy() | {rate:,.0f}/s | 1 thread"
                f" | {one:,.0f}/s | {rate / one:.2f}x throughput | report | — |"
            )
    if scale:
        lines += [
            "",
            "Live keys (each population in a forked child; `benches/pool.py`):",
            "",
            "| case | keys made | locked | first unlocked | mappings | locked bytes | isolation"
            " | target | met |",
            "|---|---:|---:|---:|---:|---:|---|---|---|",
        ]
        for name, row, want, max_maps in scale:
            if "error" in row:
                lines.append(f"| {name} | {row['error']} | | | | | | | **no** |")
                continue
            met = row["locked"] == want and row["maps"] < max_maps
            first = "—" if row["first_unlocked"] is None else f"{row['first_unlocked']:,}"
            lines.append(
                f"| {name} | {row['keys']:,} | {row['locked']:,} | {first} | {row['maps']:,}"
                f" | {row['vmlck'] / (1 << 20):.1f} MiB | {', '.join(row['isolations'])}"
                f" | {want:,} locked, < {max_maps:,} mappings | {'yes' if met else '**no**'} |"
            )
    notes = [f"- {r.case.name}: {r.case.note}" for r in results if r.case.note]
    if notes:
        lines += ["", "Notes:", *notes]
    if raw:
        lines += ["", "Raw cost of guarded memory (Rust, `cargo bench --bench guarded_region`):"]
        lines += ["", "```", raw, "```"]
    if rust_pool:
        lines += ["", "The pool without Python (`cargo bench --bench pool_threads`):"]
        lines += ["", "```", rust_pool, "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write the report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=21, help="interleaved rounds per case")
    p.add_argument("--budget", type=float, default=0.02, help="seconds per timing batch")
    p.add_argument("--only", help="run only cases whose name contains this")
    p.add_argument("--no-write", action="store_true", help="don't write results/latest.md")
    p.add_argument("--audit-mb", type=int, default=1024, help="size of the audit verify log")
    args = p.parse_args(argv)

    results = []
    for case in build_cases(args.only):
        print(f"running: {case.name}", file=sys.stderr, flush=True)
        results.append(run_case(case, args.rounds, args.budget))
    everything = args.only is None
    threads = thread_scaling() if everything or "thread" in args.only else None
    pool_threads = pool_bench.churn_rates() if everything or "thread" in args.only else None
    scale = scale_targets() if everything or "keys" in args.only else None
    raw = cargo_bench("guarded_region") if everything else None
    rust_pool = cargo_bench("pool_threads") if everything else None
    report = render(results, threads, raw, pool_threads, scale, rust_pool)
    if args.only is None or "agent" in args.only:
        from agent import bench as agent_bench  # benches/agent.py: keycell agent vs ssh-agent

        report += agent_bench()
    if args.only is None or "aio" in args.only:
        # The event loop's stalls under keycell.aio (benches/aio.py).
        import aio as aio_bench

        print("running: asyncio stalls", file=sys.stderr, flush=True)
        report += aio_bench.report()
    if args.only is None or "audit" in args.only:
        # The audit log's own benchmarks (benches/audit.py).
        import audit as audit_bench

        print("running: audit log", file=sys.stderr, flush=True)
        report += audit_bench.report(size_mb=args.audit_mb)
    print(report)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "latest.md").write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
