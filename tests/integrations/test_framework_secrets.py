"""A handle given where a framework expects its secret string: the real Django signing
module and Starlette's ``SessionMiddleware`` call ``str()`` on it. Before handles refused
text (issue 21), both signed with the public label ``"<SecretKey 32 bytes>"``, so anyone
could forge their tokens and session cookies; now the first signing call (or the
middleware's construction) raises ``TypeError`` and no token or cookie is ever produced."""

from __future__ import annotations

from typing import Any

import pytest
from keycell import SecretKey

django = pytest.importorskip("django")
starlette = pytest.importorskip("starlette")


def handle() -> SecretKey:
    return SecretKey.from_buffer(bytearray(range(65, 65 + 32)))


def test_django_signing_refuses_a_handle_as_secret_key() -> None:
    from django.conf import settings
    from django.core import signing
    from django.utils.crypto import salted_hmac

    key = handle()
    # As a settings module would: SECRET_KEY = key (this process's only Django settings).
    assert not settings.configured
    settings.configure(SECRET_KEY=key, SECRET_KEY_FALLBACKS=[])
    produced: list[Any] = []
    for sign in (
        lambda: signing.dumps({"user": 1}),
        lambda: signing.Signer().sign("user=1"),
        lambda: signing.TimestampSigner().sign("user=1"),
        lambda: signing.get_cookie_signer(salt="sessionid").sign("user=1"),
        lambda: salted_hmac("salt", "value"),
    ):
        with pytest.raises(TypeError, match="SecretKey cannot be converted to text"):
            produced.append(sign())
    for sign in (
        lambda: signing.dumps({"user": 1}, key=key),
        lambda: signing.Signer(key=key).sign("user=1"),
        lambda: salted_hmac("salt", "value", secret=key),
    ):
        with pytest.raises(TypeError, match="SecretKey cannot be converted to text"):
            produced.append(sign())
    assert produced == []
    # The settings keep the handle for the life of the process: free its key now (tests
    # that fork count the locked pages the child inherits).
    key.destroy()


def test_starlette_session_middleware_refuses_a_handle_as_secret_key() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    served: list[str] = []

    async def login(request: Request) -> PlainTextResponse:
        request.session["user"] = "admin"
        served.append("login")
        return PlainTextResponse("ok")

    key = handle()
    app = Starlette(
        routes=[Route("/login", login)],
        middleware=[Middleware(SessionMiddleware, secret_key=key)],  # type: ignore[arg-type]
    )
    responses = []
    with pytest.raises(TypeError, match="SecretKey cannot be converted to text"):
        with TestClient(app) as client:
            responses.append(client.get("/login"))
    assert served == []
    assert responses == []
    # Constructed directly, the middleware refuses at once.
    with pytest.raises(TypeError, match="SecretKey cannot be converted to text"):
        SessionMiddleware(app, secret_key=key)  # type: ignore[arg-type]
    key.destroy()
