"""Keys served by ``keycell agent``: an agent Ed25519 key signs EdDSA JWTs, an agent RSA
key RS256 and RS512 ones (the SSH agent protocol's two RSA requests) and an agent secret
key MACs HS256 ones, through keycell.jose and through PyJWT with the adapter; the
tokens check against the store's key material; the agent HMAC key never verifies an
EdDSA token."""

from __future__ import annotations

from pathlib import Path

import jwt as pyjwt
import pytest
from agent_support import Agent, make_store
from keycell import Ed25519PublicKey, RSAPrivateKey, SecretKey
from keycell.jose import JWK, InvalidAlgorithmError, jws, jwt
from keycell.jose import pyjwt as adapter

CLAIMS = {"sub": "alice"}


def test_agent_keys_sign_jwts(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=("mac",))
    local_mac = SecretKey.from_buffer(bytearray(st.secrets["mac"]))
    deploy_pub = Ed25519PublicKey.from_public_bytes(st.ed25519["deploy"])
    with RSAPrivateKey.generate(2048) as rsa_key, st.open() as store:
        store.put("rsa", rsa_key)
        rsa_pub = rsa_key.public_key()
    with Agent(st) as agent, agent.client() as c:
        ed, mac = c.ed25519("deploy"), c.secret("mac")
        token = jwt.encode(CLAIMS, ed, kid=True)
        assert jwt.decode(token, deploy_pub, algorithms=["EdDSA"]) == CLAIMS
        assert JWK(ed).key == deploy_pub
        token = jwt.encode(CLAIMS, mac, algorithm="HS256")
        assert jwt.decode(token, local_mac, algorithms=["HS256"]) == CLAIMS
        assert jwt.decode(token, mac, algorithms=["HS256"]) == CLAIMS  # checked in the agent
        with pytest.raises(InvalidAlgorithmError):
            jws.verify(jws.sign(b"x", ed), mac, algorithms=["HS256", "EdDSA"])
        agent_rsa = c.rsa("rsa")
        for alg in ("RS256", "RS512"):
            token = jwt.encode(CLAIMS, agent_rsa, algorithm=alg, kid=True)
            assert jwt.decode(token, rsa_pub, algorithms=[alg]) == CLAIMS
        with pytest.raises(ValueError, match="pkcs1v15"):
            jwt.encode(CLAIMS, agent_rsa, algorithm="PS256")
        adapter.install()
        try:
            assert (
                pyjwt.decode(
                    pyjwt.encode(CLAIMS, ed, algorithm="EdDSA"), deploy_pub, algorithms=["EdDSA"]
                )
                == CLAIMS
            )
            assert (
                pyjwt.decode(
                    pyjwt.encode(CLAIMS, mac, algorithm="HS256"), local_mac, algorithms=["HS256"]
                )
                == CLAIMS
            )
        finally:
            adapter.uninstall()
        assert agent.stop() == 0
