"""Interop, both ways, for every algorithm: tokens keycell signs verify in PyJWT (without
the adapter, with pyca keys and byte secrets), jwcrypto and joserfc (with the JWKs keycell
writes), and their tokens verify in keycell."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import jwt as pyjwt
import pytest
from jose_support import ALGS, Pair, pair
from joserfc import jwk as rfc_jwk
from joserfc import jwt as rfc_jwt
from joserfc.errors import SecurityWarning
from jwcrypto import jwk as cjwk
from jwcrypto import jwt as cjwt
from keycell.jose import JWK, jwt
from keycell.jose import pyjwt as adapter

CLAIMS = {"sub": "alice", "scope": ["read", "write"], "n": 7}


@pytest.fixture(autouse=True)
def _pyjwt_unchanged() -> None:
    # These tests use PyJWT as its authors ship it.
    adapter.uninstall()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwcrypto_key(p: Pair, *, private: bool) -> Any:
    if isinstance(p.pyca, bytes):
        return cjwk.JWK(kty="oct", k=_b64(p.pyca))
    if private:
        return cjwk.JWK.from_pyca(p.pyca)
    return cjwk.JWK(**p.public.to_jwk())  # keycell's JWK, read by jwcrypto


def joserfc_key(p: Pair, *, private: bool) -> Any:
    if isinstance(p.pyca, bytes):
        return rfc_jwk.OctKey.import_key(p.pyca)
    if private:
        kty = {"RSA": "RSA", "EC": "EC", "OKP": "OKP"}[p.public.to_jwk()["kty"]]
        return rfc_jwk.import_key(p.pyca, kty)  # type: ignore[arg-type]
    return rfc_jwk.import_key(p.public.to_jwk())  # keycell's JWK, read by joserfc


@pytest.mark.parametrize("alg", ALGS)
def test_pyjwt(alg: str) -> None:
    p = pair(alg)
    ours = jwt.encode(CLAIMS, p.keycell, algorithm=alg)
    assert pyjwt.decode(ours, p.pyca_public, algorithms=[alg]) == CLAIMS
    theirs = pyjwt.encode(CLAIMS, p.pyca, algorithm=alg)
    assert jwt.decode(theirs, p.public, algorithms=[alg]) == CLAIMS
    if not alg.startswith("HS"):
        # PyJWT reads keycell's JWK.
        key = pyjwt.PyJWK(JWK(p.public, alg=alg).to_dict())
        assert pyjwt.decode(ours, key, algorithms=[alg]) == CLAIMS


@pytest.mark.parametrize("alg", ALGS)
def test_jwcrypto(alg: str) -> None:
    p = pair(alg)
    ours = jwt.encode(CLAIMS, p.keycell, algorithm=alg)
    checked = cjwt.JWT(jwt=ours, key=jwcrypto_key(p, private=False), algs=[alg])
    assert json.loads(checked.claims) == CLAIMS
    token = cjwt.JWT(header={"alg": alg}, claims=CLAIMS)
    token.make_signed_token(jwcrypto_key(p, private=True))
    assert jwt.decode(token.serialize(), p.public, algorithms=[alg]) == CLAIMS
    if not alg.startswith("HS"):
        assert cjwk.JWK(**p.public.to_jwk()).thumbprint() == JWK(p.public).kid


@pytest.mark.parametrize("alg", [*ALGS, "Ed25519"])
def test_joserfc(alg: str) -> None:
    p = pair(alg)
    ours = jwt.encode(CLAIMS, p.keycell, algorithm=alg)

    # joserfc warns that RFC 9864 deprecates the name EdDSA (in favour of Ed25519).
    def deprecated() -> contextlib.AbstractContextManager[object]:
        return pytest.warns(SecurityWarning) if alg == "EdDSA" else contextlib.nullcontext()

    with deprecated():
        got = rfc_jwt.decode(ours, joserfc_key(p, private=False), algorithms=[alg])
    assert got.claims == CLAIMS
    with deprecated():
        theirs = rfc_jwt.encode(
            {"alg": alg}, CLAIMS, joserfc_key(p, private=True), algorithms=[alg]
        )
    assert jwt.decode(theirs, p.public, algorithms=[alg]) == CLAIMS
    if not alg.startswith("HS"):
        assert rfc_jwk.import_key(p.public.to_jwk()).thumbprint() == JWK(p.public).kid
