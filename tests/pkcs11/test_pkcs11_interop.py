"""Token keys against the independent client: keys pkcs11-tool makes sign through keycell
(checked with pyca/cryptography), keys keycell makes are listed by pkcs11-tool as sensitive
and never extractable and sign there under the public key keycell reports, and HMAC in the
token equals pkcs11-tool's."""

from __future__ import annotations

import re
from pathlib import Path

import keycell
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey as PycaPublic
from keycell import pkcs11
from keycell.exceptions import InvalidSignature
from pkcs11_support import Hsm


def _objects(hsm: Hsm) -> list[dict[str, str]]:
    """pkcs11-tool's object listing, one dict per object (header line + fields)."""
    out = hsm.tool("--list-objects").stdout.decode()
    objects: list[dict[str, str]] = []
    for line in out.splitlines():
        if re.match(r"^\S.*Object;", line):
            objects.append({"header": line.strip()})
        elif objects and ":" in line:
            k, _, v = line.strip().partition(":")
            objects[-1][k.strip()] = v.strip()
    return objects


def _find(hsm: Hsm, kind: str, label: str) -> dict[str, str]:
    found = [o for o in _objects(hsm) if o["header"].startswith(kind) and o.get("label") == label]
    assert len(found) == 1, found
    return found[0]


def test_a_key_made_by_pkcs11_tool_signs_through_keycell(hsm: Hsm) -> None:
    hsm.tool("--keypairgen", "--key-type", "EC:edwards25519", "--label", "tool-ed", "--id", "a1")
    point = bytes.fromhex(_find(hsm, "Public Key Object", "tool-ed")["EC_POINT"])
    assert point[:2] == b"\x04\x20"
    reference = PycaPublic.from_public_bytes(point[2:])
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        key = token.ed25519_private_key(label="tool-ed")
        assert key.id == b"\xa1"
        by_id = token.ed25519_private_key(id=b"\xa1")
        for msg in (b"", b"payload", bytes(range(256)) * 40):
            sig = key.sign(msg)
            reference.verify(sig, msg)  # pyca: raises if wrong
            key.public_key().verify(sig, msg)
            assert by_id.sign(msg) == sig  # Ed25519 is deterministic
        assert key.public_key().public_bytes_raw() == point[2:]
        assert isinstance(key.public_key(), keycell.Ed25519PublicKey)


def test_a_key_keycell_generates_is_sensitive_and_signs_in_pkcs11_tool(
    hsm: Hsm, tmp_path: Path
) -> None:
    with pkcs11.Token.open(
        module=hsm.module, token_label=hsm.label, pin_file=hsm.pin_file
    ) as token:
        key = token.generate_ed25519(label="kc-ed")
        public = key.public_key()
        with pytest.raises(ValueError, match="already has"):
            token.generate_ed25519(label="kc-ed")
        listed = _find(hsm, "Private Key Object; EC_EDWARDS", "kc-ed")
        access = [a.strip() for a in listed["Access"].split(",")]
        assert "sensitive" in access, listed
        assert "never extractable" in access, listed
        assert "extractable" not in access
        assert listed["Usage"] == "sign", listed  # no decrypt, unwrap or derive
        mine = [o for o in token.objects() if o["label"] == "kc-ed" and o["class"] == "private"]
        assert mine
        assert mine[0]["sensitive"]
        assert mine[0]["never_extractable"]
        assert mine[0]["extractable"] is False
        msg = tmp_path / "msg"
        msg.write_bytes(b"signed by pkcs11-tool with a key keycell made")
        sig = tmp_path / "sig"
        # pkcs11-tool --sign picks its key by --id (with --label alone it takes the first).
        hsm.tool(
            "--sign",
            "--mechanism",
            "EDDSA",
            "--id",
            key.id.hex(),
            "--input-file",
            str(msg),
            "--output-file",
            str(sig),
        )
        public.verify(sig.read_bytes(), msg.read_bytes())
        PycaPublic.from_public_bytes(public.public_bytes_raw()).verify(
            sig.read_bytes(), msg.read_bytes()
        )
        assert key.sign(msg.read_bytes()) == sig.read_bytes()


def test_hmac_in_the_token_equals_pkcs11_tool(hsm: Hsm, tmp_path: Path) -> None:
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        key = token.generate_secret("kc-hmac", 64)
        data = tmp_path / "data"
        data.write_bytes(b"message authenticated in the token" * 3)
        for alg, mech in (
            ("sha256", "SHA256-HMAC"),
            ("sha384", "SHA384-HMAC"),
            ("sha512", "SHA512-HMAC"),
        ):
            out = tmp_path / f"tag-{alg}"
            hsm.tool(
                "--sign",
                "--mechanism",
                mech,
                "--id",
                key.id.hex(),
                "--input-file",
                str(data),
                "--output-file",
                str(out),
            )
            tag = key.hmac(data.read_bytes(), alg)
            assert tag == out.read_bytes()
            key.verify_hmac(data.read_bytes(), tag, alg)
            key.verify_hmac(data.read_bytes(), tag[:16], alg)
            with pytest.raises(InvalidSignature):
                key.verify_hmac(data.read_bytes() + b"x", tag, alg)
            with pytest.raises(InvalidSignature):
                key.verify_hmac(data.read_bytes(), tag[:15], alg)
        assert token.secret_key("kc-hmac").hmac(b"abc") == key.hmac(b"abc")
        listed = _find(hsm, "Secret Key Object", "kc-hmac")
        assert "never extractable" in listed["Access"]
        # pkcs11-tool does not print CKA_SIGN for secret keys; the others must be off.
        for usage in ("encrypt", "decrypt", "wrap", "unwrap"):
            assert usage not in listed["Usage"], listed


def test_code_written_for_a_local_key_takes_a_token_key(hsm: Hsm) -> None:
    def sign_release(signer: keycell.Ed25519PrivateKey, payload: bytes) -> bytes:
        sig = signer.sign(payload)
        signer.public_key().verify(sig, payload)
        return sig

    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        token_key = token.generate_ed25519(label="kc-duck")
        local = keycell.Ed25519PrivateKey.generate()
        for signer in (local, token_key):
            sign_release(signer, b"release 1.0")  # type: ignore[arg-type]
        p = token_key.protection
        assert p.backend == "pkcs11"
        assert p.isolation == "token"
        assert not token_key.exportable
        with pytest.raises(keycell.KeyNotExportableError):
            token_key.to_file("/tmp/never-written.pem")
        assert "kc-duck" in repr(token_key)
        assert hsm.pin not in repr(token_key)
        token_key.destroy()
        assert token_key.destroyed
        assert "destroyed" in repr(token_key)
        with pytest.raises(keycell.KeyDestroyedError):
            token_key.sign(b"x")
        # destroy() forgets the handle; the key is still in the token.
        again = token.ed25519_private_key(label="kc-duck")
        again.delete_from_token()
        with pytest.raises(keycell.exceptions.Pkcs11ObjectNotFoundError):
            token.ed25519_private_key(label="kc-duck")


def test_an_uri_opens_the_key(hsm: Hsm) -> None:
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        made = token.generate_ed25519(label="kc uri;key")
        sec = token.generate_secret("kc-uri-secret", 32)
        key = pkcs11.open_uri(
            f"pkcs11:token={hsm.label};object=kc%20uri%3Bkey;type=private"
            f"?module-path={hsm.module}&pin-source=file:{hsm.pin_file}"
        )
        assert isinstance(key, pkcs11.Pkcs11Ed25519PrivateKey)
        assert key.public_key() == made.public_key()
        key.public_key().verify(key.sign(b"m"), b"m")
        skey = pkcs11.open_uri(
            f"pkcs11:token={hsm.label};object=kc-uri-secret;type=secret-key",
            module=hsm.module,
            pin=hsm.pin_buf(),
        )
        assert isinstance(skey, pkcs11.Pkcs11SecretKey)
        assert skey.hmac(b"q") == sec.hmac(b"q")
        by_name = pkcs11.open_uri(
            f"pkcs11:token={hsm.label};object=kc%20uri%3Bkey?module-name=softhsm2",
            pin=hsm.pin_buf(),
        )
        assert by_name.public_key() == made.public_key()  # type: ignore[union-attr]
        with pytest.raises(keycell.exceptions.Pkcs11ModuleNotFoundError):
            pkcs11.open_uri("pkcs11:object=x?module-name=no-such-module", pin=hsm.pin_buf())
        with pytest.raises(ValueError, match="pin-value"):
            pkcs11.open_uri(f"pkcs11:object=x?module-path={hsm.module}&pin-value={hsm.pin}")
        with pytest.raises(ValueError) as info:
            pkcs11.open_uri(f"pkcs11:object=x?module-path={hsm.module}&pin-value={hsm.pin}")
        assert hsm.pin not in str(info.value)


def test_list_tokens(hsm: Hsm) -> None:
    labels = {t["label"] for t in pkcs11.list_tokens(hsm.module)}
    assert {hsm.label, hsm.other} <= labels
