"""Keys that sign where they live: PKCS#11 token keys (SoftHSM2) sign and MAC JWTs through
keycell.jose and through PyJWT with the adapter, checked with their public keys (and the
token secret itself), and are bound to their algorithms like local keys."""

from __future__ import annotations

from collections.abc import Iterator

import jwt as pyjwt
import pytest
from keycell import pkcs11
from keycell.jose import JWKS, InvalidAlgorithmError, jws, jwt
from keycell.jose import pyjwt as adapter
from pkcs11_support import Hsm

CLAIMS = {"sub": "alice"}


@pytest.fixture(scope="module")
def token(hsm: Hsm) -> Iterator[pkcs11.Token]:
    t = pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf())
    yield t
    t.close()


@pytest.mark.parametrize(
    ("kind", "algs"),
    [
        ("ed25519", ["EdDSA", "Ed25519"]),
        ("ec", ["ES256"]),
        ("rsa", ["RS256", "PS384"]),
        ("secret", ["HS256", "HS512"]),
    ],
)
def test_token_keys_sign_jwts(token: pkcs11.Token, kind: str, algs: list[str]) -> None:
    label = f"kc-jose-{kind}"
    key = {
        "ed25519": lambda: token.generate_ed25519(label=label),
        "ec": lambda: token.generate_ec(label=label),
        "rsa": lambda: token.generate_rsa(label=label, bits=2048),
        "secret": lambda: token.generate_secret(label, 64),  # SoftHSM2: HS512 needs 64
    }[kind]()
    try:
        verifier = key if kind == "secret" else key.public_key()  # type: ignore[union-attr]
        for alg in algs:
            t = jwt.encode(CLAIMS, key, algorithm=alg, kid=None if kind == "secret" else True)
            assert jwt.decode(t, verifier, algorithms=[alg]) == CLAIMS
            if kind != "secret":
                assert jwt.decode(t, JWKS([key]), algorithms=[alg]) == CLAIMS
            if alg == "Ed25519":
                continue  # PyJWT names the algorithm EdDSA only
            adapter.install()
            try:
                t = pyjwt.encode(CLAIMS, key, algorithm=alg)
                assert pyjwt.decode(t, verifier, algorithms=[alg]) == CLAIMS
            finally:
                adapter.uninstall()
        if kind == "secret":
            ed_key = token.generate_ed25519(label="kc-jose-ed-2")
            try:
                ed = jws.sign(b"x", ed_key)
            finally:
                ed_key.delete_from_token()
            with pytest.raises(InvalidAlgorithmError):
                jws.verify(ed, key, algorithms=["HS256", "EdDSA"])
    finally:
        key.delete_from_token()
