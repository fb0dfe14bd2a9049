"""JWK and JWKS: ``to_jwk()`` of every public key class against pyca/cryptography's
numbers, parsing of public JWKs (and refusal of private or secret ones), RFC 7638
thumbprints, JWK Sets; and ``keycell pubkey --jwk`` printing the same JWK."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jose_support import pair
from keycell import ECPrivateKey, ECPublicKey, Ed25519PrivateKey, SecretKey, X25519PrivateKey
from keycell.jose import JWK, JWKS, thumbprint
from support import run_cli


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_okp_jwks() -> None:
    ed = pair("EdDSA")
    assert ed.public.to_jwk() == {
        "crv": "Ed25519",
        "kty": "OKP",
        "x": base64.urlsafe_b64encode(ed.pyca_public.public_bytes_raw()).rstrip(b"=").decode(),
    }
    pk = x25519.X25519PrivateKey.generate()
    xk = X25519PrivateKey.from_private_bytes(bytearray(pk.private_bytes_raw()))
    jwk = xk.public_key().to_jwk()
    assert (jwk["kty"], jwk["crv"]) == ("OKP", "X25519")
    assert unb64(jwk["x"]) == pk.public_key().public_bytes_raw()
    assert JWK.from_dict(jwk).key == xk.public_key()
    assert JWK(xk).key == xk.public_key()  # a private key's public key


@pytest.mark.parametrize("alg", ["ES256", "ES384"])
def test_ec_jwks_have_full_width_coordinates(alg: str) -> None:
    p = pair(alg)
    jwk = p.public.to_jwk()
    nums = p.pyca_public.public_numbers()
    width = 32 if alg == "ES256" else 48
    assert sorted(jwk) == ["crv", "kty", "x", "y"]
    assert jwk["crv"] == ("P-256" if alg == "ES256" else "P-384")
    assert len(unb64(jwk["x"])) == len(unb64(jwk["y"])) == width
    assert int.from_bytes(unb64(jwk["x"]), "big") == nums.x
    assert int.from_bytes(unb64(jwk["y"]), "big") == nums.y
    assert JWK.from_dict(jwk).key == p.public


def test_ec_leading_zero_coordinates_keep_their_width() -> None:
    # The first scalar from 1 up whose public x starts with a zero byte (deterministic).
    scalar = next(
        d
        for d in range(1, 100_000)
        if ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers().x < 1 << 248
    )
    pk = ec.derive_private_key(scalar, ec.SECP256R1()).public_key()
    der = pk.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    jwk = ECPublicKey.from_der(der).to_jwk()
    assert len(unb64(jwk["x"])) == 32
    assert unb64(jwk["x"])[0] == 0
    assert JWK.from_dict(jwk).key == ECPublicKey.from_der(der)


def test_rsa_jwk() -> None:
    p = pair("RS256")
    jwk = p.public.to_jwk()
    nums = p.pyca_public.public_numbers()
    assert sorted(jwk) == ["e", "kty", "n"]
    assert jwk["e"] == "AQAB"
    assert int.from_bytes(unb64(jwk["n"]), "big") == nums.n
    assert unb64(jwk["n"])[0] != 0  # minimal: no leading zero byte
    assert JWK.from_dict(jwk).key == p.public
    # A modulus written with a leading zero octet is refused (RFC 7518 §6.3.1.1: MUST NOT).
    padded = dict(jwk, n=base64.urlsafe_b64encode(b"\x00" + unb64(jwk["n"])).rstrip(b"=").decode())
    with pytest.raises(ValueError, match="leading zero"):
        JWK.from_dict(padded)


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_private_members_are_refused(member: str) -> None:
    jwk = dict(pair("RS256").public.to_jwk(), **{member: "AQAB"})
    with pytest.raises(ValueError, match="never loads secret keys from JSON"):
        JWK.from_dict(jwk)
    with pytest.raises(ValueError, match="never loads secret keys from JSON"):
        JWKS.from_dict({"keys": [pair("EdDSA").public.to_jwk(), jwk]})


def test_secret_keys_have_no_jwk() -> None:
    with pytest.raises(ValueError, match="never loads"):
        JWK.from_dict({"kty": "oct", "k": "AAAA"})
    with pytest.raises(TypeError, match="HMAC key has no public JWK"):
        JWK(SecretKey.generate(32))
    with pytest.raises(TypeError, match="HMAC key"):
        thumbprint(SecretKey.generate(32))
    with pytest.raises(TypeError):
        JWK(b"\x00" * 32)


@pytest.mark.parametrize(
    ("jwk", "message"),
    [
        ({"kty": "OKP", "crv": "Ed448", "x": "AAAA"}, "unsupported OKP"),
        ({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}, "unsupported EC"),
        ({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}, "32 bytes"),
        ({"kty": "OKP", "crv": "Ed25519"}, "'x'"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "AA=="}, "base64url"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "AB"}, "canonical"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}, "Ed25519"),
        ({"kty": "XYZ"}, "unsupported JWK key type"),
        ({"kty": "OKP", "crv": "Ed25519", "x": 5}, "'x'"),
    ],
)
def test_malformed_jwks_are_refused(jwk: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JWK.from_dict(jwk)


def test_jwk_members_and_binding() -> None:
    pub = pair("EdDSA").public
    jwk = JWK(pub, kid="k1", alg="EdDSA", use="sig")
    assert jwk.to_dict() == {**pub.to_jwk(), "kid": "k1", "alg": "EdDSA", "use": "sig"}
    assert JWK.from_json(jwk.to_json()) == jwk
    assert JWK(pub).kid == thumbprint(pub) == JWK(pub).thumbprint()
    assert JWK(pub).thumbprint("sha512") != JWK(pub).thumbprint()
    with pytest.raises(ValueError, match="does not fit"):
        JWK(pub, alg="ES256")
    assert JWK(pub, alg="EdDSA").fits("EdDSA")
    assert not JWK(pub, use="enc").fits("EdDSA")
    assert not JWK(pair("ES256").public).fits("ES384")
    assert repr(jwk) == "<JWK OKP kid='k1'>"


def test_jwks_round_trip_and_lookup() -> None:
    keys = [pair(a).public for a in ("EdDSA", "ES256", "ES384", "RS256")]
    jwks = JWKS([*keys[:3], JWK(keys[3], kid="rsa-1", alg="RS256")])
    text = jwks.to_json()
    again = JWKS.from_json(text)
    assert again.to_dict() == jwks.to_dict() == json.loads(text)
    assert len(again) == 4
    assert [k.kid for k in again] == [thumbprint(k) for k in keys[:3]] + ["rsa-1"]
    assert again["rsa-1"].key == keys[3]
    assert again.get("nope") is None
    assert "rsa-1" in again
    with pytest.raises(KeyError):
        again["nope"]
    with pytest.raises(ValueError, match="kid"):
        JWKS([keys[0], keys[0]])
    with pytest.raises(ValueError, match="'keys' array"):
        JWKS.from_dict({"keys": {}})
    with pytest.raises(ValueError, match="repeats"):
        JWKS.from_json('{"keys": [], "keys": []}')
    with pytest.raises(TypeError):
        JWKS.from_json(5)  # type: ignore[arg-type]


def test_jwks_from_private_keys_holds_public_keys_only() -> None:
    ed = Ed25519PrivateKey.generate()
    ecp = ECPrivateKey.generate("P-256")
    jwks = JWKS([ed, ecp])
    text = jwks.to_json()
    assert '"d"' not in text
    assert [k.key for k in jwks] == [ed.public_key(), ecp.public_key()]


@pytest.mark.parametrize("kind", ["ed25519", "x25519", "ec", "rsa"])
def test_cli_pubkey_jwk_is_to_jwk(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "key.pem"
    key = {
        "ed25519": Ed25519PrivateKey.generate,
        "x25519": X25519PrivateKey.generate,
        "ec": ECPrivateKey.generate,
        "rsa": lambda: pair("RS256").keycell,
    }[kind]()
    key.to_file(path)
    r = run_cli("pubkey", str(path), "--jwk")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == key.public_key().to_jwk()
    assert (
        r.stdout
        == json.dumps(key.public_key().to_jwk(), separators=(",", ":"), sort_keys=True) + "\n"
    )


def test_a_third_partys_set_with_keys_keycell_does_not_take() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    n = small.public_numbers().n
    entries = [
        {"kty": "OKP", "crv": "Ed448", "x": "AAAA", "kid": "ed448"},
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"},
        {
            "kty": "RSA",
            "n": base64.urlsafe_b64encode(n.to_bytes(128, "big")).rstrip(b"=").decode(),
            "e": "AQAB",
            "kid": "rsa1024",
        },
        {**pair("ES256").public.to_jwk(), "kid": "enc", "use": "enc", "alg": "ECDH-ES"},
        {**pair("EdDSA").public.to_jwk(), "kid": "sig"},
    ]
    for entry in entries[:3]:
        with pytest.raises(ValueError):
            JWKS.from_dict({"keys": [entry]})
    jwks = JWKS.from_json(json.dumps({"keys": entries}), skip_unsupported=True)
    assert [k.kid for k in jwks] == ["enc", "sig"]
    # The JWE key is kept with its alg and never verifies a signature.
    assert jwks["enc"].alg == "ECDH-ES"
    assert not jwks["enc"].fits("ES256")
    # Private material is refused even when skipping.
    with pytest.raises(ValueError, match="never loads"):
        JWKS.from_dict({"keys": [{**entries[0], "d": "AAAA"}]}, skip_unsupported=True)
    # A known algorithm that does not fit the key is a malformed entry, not skipped.
    with pytest.raises(ValueError, match="does not fit"):
        JWKS.from_dict({"keys": [{**entries[4], "alg": "HS256"}]}, skip_unsupported=True)
    # In code, an unknown algorithm is a mistake.
    with pytest.raises(ValueError, match="unsupported"):
        JWK(pair("EdDSA").public, alg="ECDH-ES")
