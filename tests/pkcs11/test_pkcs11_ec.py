"""EC (P-256, P-384) keys in a PKCS#11 token behind the methods of ``ECPrivateKey``: keys
pkcs11-tool makes sign through keycell (checked with pyca against the point pkcs11-tool
lists), keys keycell makes are sensitive, never extractable, sign only, and sign in
pkcs11-tool under the public key keycell reports; the trust checks of Ed25519 token keys
hold (a planted public key is never reported, an extractable or non-sensitive private key
is refused)."""

from __future__ import annotations

import hashlib
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import keycell
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from keycell import ECPublicKey, ECSigner, pkcs11
from keycell.exceptions import InvalidSignature, KeyNotExportableError, Pkcs11Error
from pkcs11_support import Hsm

TOOL_CURVES = {"P-256": "EC:prime256v1", "P-384": "EC:secp384r1"}
PYCA = {
    "P-256": (ec.SECP256R1(), hashes.SHA256(), 32),
    "P-384": (ec.SECP384R1(), hashes.SHA384(), 48),
}


def open_token(hsm: Hsm) -> pkcs11.Token:
    return pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf())


def tool_point(hsm: Hsm, label: str) -> bytes:
    """The uncompressed point pkcs11-tool lists for the EC public key ``label``."""
    out = hsm.tool("--list-objects").stdout.decode()
    objects: list[dict[str, str]] = []
    for line in out.splitlines():
        if re.match(r"^\S.*Object;", line):
            objects.append({"header": line.strip()})
        elif objects and ":" in line:
            k, _, v = line.strip().partition(":")
            objects[-1][k.strip()] = v.strip()
    found = [
        o
        for o in objects
        if o["header"].startswith("Public Key Object; EC") and o.get("label") == label
    ]
    assert len(found) == 1, found
    der = bytes.fromhex(found[0]["EC_POINT"])
    assert der[0] == 0x04
    assert der[1] == len(der) - 2  # DER OCTET STRING, short form for both curves
    return der[2:]


def delete(hsm: Hsm, label: str) -> None:
    for kind in ("privkey", "pubkey", "pubkey"):
        hsm.tool("--delete-object", "--type", kind, "--label", label, check=False)


@pytest.mark.parametrize("curve", ["P-256", "P-384"])
def test_a_key_made_by_pkcs11_tool_signs_through_keycell(hsm: Hsm, curve: str) -> None:
    label = f"tool-ec-{curve}"
    key_id = "e1" if curve == "P-256" else "e2"
    hsm.tool("--keypairgen", "--key-type", TOOL_CURVES[curve], "--label", label, "--id", key_id)
    point = tool_point(hsm, label)
    pyca_curve, digest, width = PYCA[curve]
    reference = ec.EllipticCurvePublicKey.from_encoded_point(pyca_curve, point)
    try:
        with open_token(hsm) as token:
            key = token.ec_private_key(label=label)
            by_id = token.ec_private_key(id=bytes.fromhex(key_id))
            assert (key.curve, key.key_size) == (curve, 8 * width)
            assert key.public_key() == by_id.public_key()
            assert key.public_key().public_bytes_x962() == point
            assert isinstance(key.public_key(), ECPublicKey)
            for msg in (b"", b"payload", bytes(range(256)) * 40):
                der = key.sign(msg)
                reference.verify(der, msg, ec.ECDSA(digest))  # pyca: raises if wrong
                key.public_key().verify(der, msg)
                raw = by_id.sign(msg, encoding="raw")
                assert len(raw) == 2 * width
                r, s = int.from_bytes(raw[:width]), int.from_bytes(raw[width:])
                reference.verify(encode_dss_signature(r, s), msg, ec.ECDSA(digest))
                key.public_key().verify(raw, msg, encoding="raw")
                with pytest.raises(InvalidSignature):
                    key.public_key().verify(raw, msg + b"!", encoding="raw")
            with pytest.raises(ValueError, match="encoding"):
                key.sign(b"m", encoding="pem")  # type: ignore[arg-type]
            # The wrong kind of key under the label: not found as Ed25519.
            with pytest.raises(keycell.exceptions.Pkcs11ObjectNotFoundError):
                token.ed25519_private_key(label=label)
    finally:
        delete(hsm, label)


@pytest.mark.parametrize("curve", ["P-256", "P-384"])
def test_a_key_keycell_generates_is_sensitive_and_signs_in_pkcs11_tool(
    hsm: Hsm, tmp_path: Path, curve: str
) -> None:
    label = f"kc-ec-{curve}"
    with open_token(hsm) as token:
        key = token.generate_ec(label=label, curve=curve)  # type: ignore[arg-type]
        try:
            public = key.public_key()
            assert public.curve == curve
            assert public.public_bytes_x962() == tool_point(hsm, label)
            with pytest.raises(ValueError, match="already has"):
                token.generate_ec(label=label)
            out = hsm.tool("--list-objects", "--type", "privkey", "--label", label)
            text = out.stdout.decode()
            access = next(x for x in text.splitlines() if "Access:" in x)
            assert "sensitive" in access
            assert "never extractable" in access
            usage = next(x for x in text.splitlines() if "Usage:" in x)
            assert usage.split(":", 1)[1].strip() == "sign", usage  # no derive or decrypt
            # SoftHSM2 has CKM_ECDSA (the digest signed as given), as keycell uses it:
            # pkcs11-tool signs the digest of the message, keycell's public key verifies
            # it over the message; keycell's signature verifies in pkcs11-tool.
            message = b"signed by pkcs11-tool with a key keycell made"
            hashed = tmp_path / "digest"
            algorithm = hashlib.sha256 if curve == "P-256" else hashlib.sha384
            hashed.write_bytes(algorithm(message).digest())
            sig = tmp_path / "sig"
            hsm.tool("--sign", "--mechanism", "ECDSA", "--id", key.id.hex(),
                     "--input-file", str(hashed), "--output-file", str(sig))  # fmt: skip
            public.verify(sig.read_bytes(), message, encoding="raw")
            with pytest.raises(InvalidSignature):
                public.verify(sig.read_bytes(), message + b".", encoding="raw")
            sig.write_bytes(key.sign(message, encoding="raw"))
            r = hsm.tool("--verify", "--mechanism", "ECDSA", "--id", key.id.hex(),
                         "--input-file", str(hashed), "--signature-file", str(sig))  # fmt: skip
            assert b"Signature is valid" in r.stdout, r
        finally:
            key.delete_from_token()
        assert key.destroyed
        with pytest.raises(keycell.exceptions.Pkcs11ObjectNotFoundError):
            token.ec_private_key(label=label)
        hsm.tool("--delete-object", "--type", "pubkey", "--label", label, check=False)


def test_the_handle_behaves_like_a_local_key(hsm: Hsm, tmp_path: Path) -> None:
    with open_token(hsm) as token:
        key = token.generate_ec(label="kc-ec-handle", curve="P-384")
        try:
            assert isinstance(key, ECSigner)
            assert not isinstance(key, keycell.HmacKey)
            assert key.exportable is False
            assert key.protection.backend == "pkcs11"
            assert "curve=P-384" in repr(key)
            with pytest.raises(KeyNotExportableError):
                key.to_file(tmp_path / "k.pem")
            with pytest.raises(TypeError):
                pickle.dumps(key)
            with pytest.raises(TypeError):
                str(key)
            with pytest.raises(ValueError, match="curve must be"):
                token.generate_ec(label="kc-ec-bad", curve="P-521")  # type: ignore[arg-type]
            uri = (
                f"pkcs11:token={hsm.label};object=kc-ec-handle;type=private"
                f"?pin-source=file:{hsm.pin_file}"
            )
            by_uri = pkcs11.open_uri(uri, module=hsm.module)
            assert isinstance(by_uri, pkcs11.Pkcs11ECPrivateKey)
            assert by_uri.public_key() == key.public_key()
            with pytest.raises(keycell.exceptions.Pkcs11ObjectNotFoundError):
                pkcs11.open_uri(uri.replace("kc-ec-handle", "kc-none"), module=hsm.module)
            key.destroy()
            with pytest.raises(keycell.KeyDestroyedError):
                key.sign(b"m")
        finally:
            token.ec_private_key(label="kc-ec-handle").delete_from_token()
            hsm.tool("--delete-object", "--type", "pubkey", "--label", "kc-ec-handle",
                     check=False)  # fmt: skip
    assert "kc-ec-bad" not in {o["label"] for o in open_token(hsm).objects()}


SWAP_PUBLIC = textwrap.dedent(
    """
    import sys
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    module, token, label, key_id, params, point, delete = sys.argv[1:8]
    lib = pkcs11.lib(module)
    tok = lib.get_token(token_label=token)
    with tok.open(rw=True) as s:  # no PIN: public objects only
        if delete == "1":
            for o in s.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                                    Attribute.ID: bytes.fromhex(key_id)}):
                o.destroy()
        point = bytes.fromhex(point)
        s.create_object({
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.KEY_TYPE: KeyType.EC,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.VERIFY: True,
            Attribute.LABEL: label,
            Attribute.ID: bytes.fromhex(key_id),
            Attribute.EC_PARAMS: bytes.fromhex(params),
            Attribute.EC_POINT: bytes([4, len(point)]) + point,
        })
    """
)


@pytest.mark.parametrize("delete_genuine", [True, False])
def test_a_planted_public_key_object_is_never_reported(hsm: Hsm, delete_genuine: bool) -> None:
    pytest.importorskip("pkcs11", reason="python-pkcs11 plants the objects (requirements-test)")
    attacker = keycell.ECPrivateKey.generate("P-256").public_key().public_bytes_x962()
    label = f"kc-ec-swap-{int(delete_genuine)}"
    with open_token(hsm) as t:
        key = t.generate_ec(label=label)
        genuine = key.public_key().public_bytes_x962()
        key_id = key.id
    subprocess.run(
        [sys.executable, "-c", SWAP_PUBLIC, hsm.module, hsm.label, label, key_id.hex(),
         "06082a8648ce3d030107", attacker.hex(), "1" if delete_genuine else "0"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    try:
        with open_token(hsm) as t:
            if delete_genuine:
                with pytest.raises(Pkcs11Error, match="belongs to the EC private key"):
                    t.ec_private_key(label=label)
            else:
                k = t.ec_private_key(label=label)
                assert k.public_key().public_bytes_x962() == genuine != attacker
                k.public_key().verify(k.sign(b"m"), b"m")
    finally:
        delete(hsm, label)


READABLE_KEY = textwrap.dedent(
    """
    import sys
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism
    from pkcs11.util.ec import encode_named_curve_parameters

    module, token, pin, label = sys.argv[1:5]
    lib = pkcs11.lib(module)
    tok = lib.get_token(token_label=token)
    with tok.open(rw=True, user_pin=pin) as s:
        params = s.create_domain_parameters(KeyType.EC, {
            Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        params.generate_keypair(store=True, label=label, id=b"\\xee", private_template={
            Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True,
            Attribute.PRIVATE: True, Attribute.SIGN: True})
    """
)


def test_an_extractable_or_non_sensitive_ec_key_is_refused(hsm: Hsm) -> None:
    pytest.importorskip("pkcs11", reason="python-pkcs11 makes the key (requirements-test)")
    label = "kc-ec-readable"
    subprocess.run(
        [sys.executable, "-c", READABLE_KEY, hsm.module, hsm.label, hsm.pin, label],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    try:
        with open_token(hsm) as t:
            with pytest.raises(Pkcs11Error, match="not safe to use: not sensitive, extractable"):
                t.ec_private_key(label=label)
    finally:
        delete(hsm, label)
