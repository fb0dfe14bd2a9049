"""RSA keys in a PKCS#11 token behind the methods of ``RSAPrivateKey``: keys pkcs11-tool
makes sign through keycell (PSS and PKCS#1 v1.5, every hash, checked with pyca against the
modulus pkcs11-tool reports), keys keycell makes are sensitive, never extractable, sign
only, and sign in pkcs11-tool under the public key keycell reports."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import keycell
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from keycell import RSAPublicKey, RSASigner, pkcs11
from keycell.exceptions import InvalidSignature, KeyNotExportableError
from pkcs11_support import Hsm

HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


def open_token(hsm: Hsm) -> pkcs11.Token:
    return pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf())


def delete(hsm: Hsm, label: str) -> None:
    for kind in ("privkey", "pubkey"):
        hsm.tool("--delete-object", "--type", kind, "--label", label, check=False)


def test_a_key_made_by_pkcs11_tool_signs_through_keycell(hsm: Hsm, tmp_path: Path) -> None:
    label = "tool-rsa"
    hsm.tool("--keypairgen", "--key-type", "rsa:2048", "--label", label, "--id", "d1")
    der = tmp_path / "pub.der"
    hsm.tool("--read-object", "--type", "pubkey", "--id", "d1", "--output-file", str(der))
    reference = serialization.load_der_public_key(der.read_bytes())
    assert isinstance(reference, rsa.RSAPublicKey)
    try:
        with open_token(hsm) as token:
            key = token.rsa_private_key(label=label)
            assert token.rsa_private_key(id=b"\xd1").public_key() == key.public_key()
            assert key.key_size == 2048
            assert isinstance(key.public_key(), RSAPublicKey)
            assert key.public_key().n == reference.public_numbers().n
            msg = b"payload" * 100
            for name, h in HASHES.items():
                pss = key.sign(msg, padding="pss", hash=name)  # type: ignore[arg-type]
                reference.verify(
                    pss, msg, padding.PSS(padding.MGF1(h), h.digest_size), h
                )  # pyca: raises if wrong
                key.public_key().verify(pss, msg, padding="pss", hash=name)  # type: ignore[arg-type]
                v15 = key.sign(msg, padding="pkcs1v15", hash=name)  # type: ignore[arg-type]
                reference.verify(v15, msg, padding.PKCS1v15(), h)
                with pytest.raises(InvalidSignature):
                    key.public_key().verify(v15, msg + b"!", padding="pkcs1v15", hash=name)  # type: ignore[arg-type]
            with pytest.raises(ValueError):
                key.sign(msg, hash="md5")  # type: ignore[arg-type]
    finally:
        delete(hsm, label)


def test_a_key_keycell_generates_is_sensitive_and_signs_in_pkcs11_tool(
    hsm: Hsm, tmp_path: Path
) -> None:
    label = "kc-rsa"
    with open_token(hsm) as token:
        key = token.generate_rsa(label=label, bits=2048)
        try:
            assert isinstance(key, RSASigner)
            assert key.exportable is False
            assert key.protection.backend == "pkcs11"
            assert "bits=2048" in repr(key)
            with pytest.raises(KeyNotExportableError):
                key.to_file(tmp_path / "k.pem")
            with pytest.raises(TypeError):
                pickle.dumps(key)
            with pytest.raises(ValueError, match="already has"):
                token.generate_rsa(label=label, bits=2048)
            with pytest.raises(ValueError, match="bits must be"):
                token.generate_rsa(label="kc-rsa-small", bits=1024)
            text = hsm.tool("--list-objects", "--type", "privkey").stdout.decode()
            block = text[text.index(f'label:      {label}') :].split("Private Key Object")[0]
            assert "never extractable" in block, block
            assert "sensitive" in block, block
            message = b"signed by pkcs11-tool with a key keycell made"
            digest = tmp_path / "digest"
            digest.write_bytes(hashlib.sha256(message).digest())
            sig = tmp_path / "sig"
            hsm.tool("--sign", "--mechanism", "RSA-PKCS-PSS", "--hash-algorithm", "SHA256",
                     "--mgf", "MGF1-SHA256", "--salt-len", "32", "--id", key.id.hex(),
                     "--input-file", str(digest), "--output-file", str(sig))  # fmt: skip
            key.public_key().verify(sig.read_bytes(), message)
            uri = (
                f"pkcs11:token={hsm.label};object={label};type=private"
                f"?pin-source=file:{hsm.pin_file}"
            )
            by_uri = pkcs11.open_uri(uri, module=hsm.module)
            assert isinstance(by_uri, pkcs11.Pkcs11RSAPrivateKey)
            assert by_uri.public_key() == key.public_key()
        finally:
            key.delete_from_token()
            hsm.tool("--delete-object", "--type", "pubkey", "--label", label, check=False)
    assert key.destroyed
    with pytest.raises(keycell.KeyDestroyedError):
        key.sign(b"m")
