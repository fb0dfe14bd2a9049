"""keycell.jose's public surface: every public name and method documented, and the
error hierarchy as documented."""

from __future__ import annotations

import doctest
import inspect

import keycell
import pytest
from keycell import jose
from keycell.jose import errors, jwk, jws, jwt, pyjwt


@pytest.mark.parametrize("module", [jose, errors, jwk, jws, jwt, pyjwt])
def test_every_public_name_is_documented(module: object) -> None:
    assert module.__doc__
    for name in module.__all__:  # type: ignore[attr-defined]
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and callable(member):
                    assert member.__doc__, f"{name}.{attr} has no docstring"


def test_error_hierarchy() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, jose.InvalidTokenError)
        assert issubclass(cls, keycell.KeycellError)
        assert not issubclass(cls, ValueError)
        assert getattr(jose, name) is cls
    assert issubclass(jose.InvalidSignatureError, keycell.InvalidSignature)
    for name in (
        "ExpiredSignatureError",
        "ImmatureSignatureError",
        "InvalidAudienceError",
        "InvalidIssuerError",
        "MissingRequiredClaimError",
    ):
        assert issubclass(getattr(jose, name), jose.InvalidClaimError)


def test_public_keys_have_to_jwk() -> None:
    for cls in (
        keycell.Ed25519PublicKey,
        keycell.X25519PublicKey,
        keycell.ECPublicKey,
        keycell.RSAPublicKey,
    ):
        assert cls.to_jwk.__doc__


@pytest.mark.parametrize("module", [jose, jws, jwt, pyjwt])
def test_docstring_examples_run(module: object) -> None:
    try:
        result = doctest.testmod(module, raise_on_error=False)  # type: ignore[arg-type]
    finally:
        pyjwt.uninstall()
    assert result.attempted > 0
    assert result.failed == 0
