"""Checked by ``mypy --strict`` (not run by pytest): the public API types as documented."""

from __future__ import annotations

import keycell
from keycell import Protection, SecretKey


def use() -> None:
    key: SecretKey = SecretKey.generate(32)
    prot: Protection = key.protection
    locked: bool = prot.locked
    with key.expose() as view:
        data: memoryview = view
        assert data.readonly
    same: bool = keycell.compare_digest(b"a", bytearray(b"a"))
    n: int = len(key)
    tag: bytes = key.hmac(b"message", "sha384")
    key.verify_hmac(memoryview(b"message"), tag, algorithm="sha384")
    ctx: keycell.HMAC = keycell.HMAC(key, "sha512")
    ctx.update(bytearray(b"part"))
    ctx2: keycell.HMAC = ctx.copy()
    size: int = ctx.digest_size + ctx.block_size
    name: str = ctx.algorithm
    ctx.verify(ctx2.finalize())
    derived: SecretKey = keycell.hkdf(key, length=32, salt=None, info=b"ctx")
    prk: SecretKey = keycell.hkdf_extract(key, salt=b"salt", algorithm="sha512")
    okm: SecretKey = keycell.hkdf_expand(prk, length=64, info=b"", algorithm="sha512")
    signer_key: SecretKey = key.derive_digest(b"salt" + b"signer", "sha1")
    hmac_key: SecretKey = key.hmac_key(bytearray(b"salt"), "sha256")
    whsec: SecretKey = SecretKey.from_base64(bytearray(b"whsec_QUJD"), prefix=b"whsec_")
    assert signer_key != hmac_key
    assert len(whsec) == 3
    totp: keycell.TOTP = keycell.otp.TOTP(key, digits=8, algorithm="sha256")
    step: int = totp.verify(totp.at(1_700_000_000), at=1_700_000_000, last_counter=None)
    verifier = keycell.otp.TotpVerifier(totp, last_counter=step)
    last: int | None = verifier.last_counter
    hotp: keycell.HOTP = keycell.HOTP.from_base32(bytearray(b"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"))
    uri: str = hotp.provisioning_uri("alice", issuer=None)
    totp.destroy()
    key.destroy()
    del locked, last, uri, same, n, size, name, derived, okm


def use_key_files_and_store(path: str) -> None:
    """Key files, the export seal and the key store."""
    key = SecretKey.generate(32, exportable=True)
    key.to_file(path + ".hex", format="hex", overwrite=False)
    loaded: SecretKey = SecretKey.from_file(path + ".hex", format="hex", exportable=False)
    sealed: bool = loaded.exportable
    key.seal_export()
    store: keycell.KeyStore = keycell.KeyStore.create(
        path, master=bytearray(b"passphrase"), kdf_params={"memory_kib": 1024, "iterations": 1}
    )
    store.put("k", key, overwrite=True)
    got = store.get("k")
    assert isinstance(got, SecretKey)
    names: list[str] = store.names()
    present: bool = "k" in store
    store.rotate_master(SecretKey.generate(32))
    with keycell.KeyStore.open(path, master=got) as again:
        again.delete("k")
    try:
        store.get("missing")
    except keycell.StoreEntryNotFoundError:
        pass
    except (keycell.StoreCorruptedError, keycell.StoreAuthenticationError, keycell.KeyStoreError):
        pass
    del sealed, names, present


def use_asymmetric() -> None:
    from keycell import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
        X25519PrivateKey,
        X25519PublicKey,
        ed25519_verify_batch,
    )

    with Ed25519PrivateKey.generate() as sk:
        sig: bytes = sk.sign(b"message")
        pk: Ed25519PublicKey = sk.public_key()
        pk.verify(sig, bytearray(b"message"))
        ed25519_verify_batch([(pk, sig, b"message")])
        raw: bytes = pk.public_bytes_raw()
        same: bool = Ed25519PublicKey.from_pem(pk.public_bytes_pem()) == pk
        del raw, same
    signer = Ed25519PrivateKey.generate(exportable=True)
    signer.to_file("ed.pem", format="pem", overwrite=True)
    loaded: Ed25519PrivateKey = Ed25519PrivateKey.from_file("ed.pem", format=None)
    loaded.seal_export()
    sealed: bool = loaded.exportable
    xk: X25519PrivateKey = X25519PrivateKey.from_file("x.der", format="der", exportable=False)
    xk.to_file("x.hex", format="hex")
    store = keycell.KeyStore.open("store", master=bytearray(b"passphrase"))
    store.put("signer", signer)
    got = store.get("signer")
    if isinstance(got, Ed25519PrivateKey):
        sig2: bytes = got.sign(b"m")
        del sig2
    del sealed
    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    peer: X25519PublicKey = b.public_key()
    shared: SecretKey = a.exchange(peer)
    shared.destroy()
    a.destroy()


def aead_use() -> None:
    key = keycell.AESGCM.generate_key(256)
    gcm = keycell.AESGCM(key)
    ct: bytes = gcm.encrypt(bytes(12), b"data", None)
    pt: bytes = gcm.decrypt(bytearray(12), memoryview(ct), b"")
    siv = keycell.AESGCMSIV(keycell.AESGCMSIV.generate_key())
    chacha = keycell.ChaCha20Poly1305(keycell.SecretKey.generate(32))
    xchacha = keycell.XChaCha20Poly1305(chacha.key)
    blob: bytes = key.encrypt(b"m", associated_data=b"ad")
    back: bytes = key.decrypt(blob)
    try:
        siv.decrypt(bytes(12), ct, None)
    except keycell.InvalidTag:
        pass
    del pt, back, xchacha


def agent_use(path: str) -> None:
    with keycell.agent.connect(path) as client:
        infos: list[keycell.agent.AgentKeyInfo] = client.keys()
        key = client.ed25519("deploy")
        sig: bytes = key.sign(b"m")
        key.public_key().verify(sig, b"m")
        mac = client.secret("mac")
        tag: bytes = mac.hmac(b"m", algorithm="sha384")
        mac.verify_hmac(b"m", tag, algorithm="sha384")
        backend: str = key.protection.backend
        try:
            client.secret("nope")
        except keycell.AgentRefusedError:
            pass
        del infos, backend


def pkcs11_use(module: str) -> None:
    from keycell import KeyStore, pkcs11

    with pkcs11.Token.open(module=module, token_label="t", pin=bytearray(b"1234")) as token:
        signer: pkcs11.Pkcs11Ed25519PrivateKey = token.ed25519_private_key(label="k", id=b"\x01")
        public: keycell.Ed25519PublicKey = signer.public_key()
        public.verify(signer.sign(b"m"), b"m")
        backend: str = signer.protection.backend
        mac: pkcs11.Pkcs11SecretKey = token.generate_secret("h", 32)
        mac.verify_hmac(b"m", mac.hmac(b"m", "sha512"), "sha512")
        store = KeyStore.create("s.kcs", master=token.wrapping_key("w", create=True))
        store.close()
        label: str = token.info["label"]
        slot: int = token.info["slot"]
    key = pkcs11.open_uri("pkcs11:object=k", module=module, pin=bytearray(b"1234"))
    key.destroy()
    tokens: list[dict[str, object]] = pkcs11.list_tokens(module)
    try:
        pkcs11.Token.open(module=module, pin_file="pin")
    except keycell.Pkcs11Error as e:
        code: int | None = e.code
        del code
    del backend, label, slot, tokens
def use_audit_log(path: str) -> None:
    import logging

    from keycell import Ed25519PrivateKey
    from keycell.audit import AuditHandler, AuditLog, InclusionProof, VerifyResult, prove, verify

    k0 = SecretKey.generate(32)
    signer = Ed25519PrivateKey.generate()
    with AuditLog.create(path, key=k0, signer=signer, origin="o", epoch_records=10) as log:
        seq: int | None = log.append({"op": "sign", "uid": 1000})
        note: str = log.checkpoint()
        logging.getLogger("x").addHandler(AuditHandler(log))
    reopened = AuditLog.open(path, signer=signer, on_error="warn")
    reopened.close()
    result: VerifyResult = verify(path, key=k0, public_key=signer.public_key(), checkpoint=False)
    kind: str | None = result.kind
    ok: bool = result.valid and not result.tampered
    proof: InclusionProof = prove(path, 1)
    good: bool = proof.verify()
    del seq, note, kind, ok, good


def use_key_protocols(token: keycell.pkcs11.Token, client: keycell.agent.AgentClient) -> None:
    """Local, token and agent keys all satisfy the protocols of keycell.key_protocols."""
    signers: list[keycell.Ed25519Signer] = [
        keycell.Ed25519PrivateKey.generate(),
        token.ed25519_private_key(label="deploy"),
        client.ed25519("deploy"),
    ]
    macs: list[keycell.HmacKey] = [
        SecretKey.generate(32),
        token.secret_key("webhook"),
        client.secret("webhook"),
    ]
    ec_signers: list[keycell.ECSigner] = [
        keycell.ECPrivateKey.generate("P-384"),
        token.ec_private_key(label="release"),
        token.generate_ec(label="new", curve="P-256"),
    ]
    ec_public: keycell.ECPublicKey = ec_signers[0].public_key()
    ec_public.verify(ec_signers[0].sign(b"m", encoding="raw"), b"m", encoding="raw")
    curve: str = ec_signers[0].curve
    rsa_signers: list[keycell.RSASigner] = [
        keycell.RSAPrivateKey.generate(2048),
        token.rsa_private_key(label="rsa"),
        token.generate_rsa(label="rsa-2", bits=3072),
    ]
    rsa_signer = rsa_signers[0]
    rsa_public: keycell.RSAPublicKey = rsa_signer.public_key()
    rsa_public.verify(rsa_signer.sign(b"m", padding="pkcs1v15", hash="sha384"), b"m",
                      padding="pkcs1v15", hash="sha384")  # fmt: skip
    bits: int = rsa_signer.key_size
    public: keycell.Ed25519PublicKey = signers[0].public_key()
    sig: bytes = signers[1].sign(b"m")
    tag: bytes = macs[2].hmac(b"m", "sha512")
    macs[0].verify_hmac(b"m", tag, algorithm="sha512")
    del public, sig, curve, bits


def hmac_in_with(k: SecretKey) -> bytes:
    """Context managers that never swallow exceptions are typed ``__exit__ -> None``, so
    mypy knows a ``with`` body that returns always returns (no "Missing return")."""
    with k:
        return k.hmac(b"x")


def sign_in_with(k: keycell.Ed25519PrivateKey) -> bytes:
    with k:
        return k.sign(b"x")


def use_rsa(path: str) -> None:
    from keycell import RSAPrivateKey, RSAPublicKey

    with RSAPrivateKey.generate(2048, exportable=True) as key:
        sig: bytes = key.sign(b"m", padding="pkcs1v15", hash="sha384")
        public: RSAPublicKey = key.public_key()
        public.verify(sig, b"m", padding="pkcs1v15", hash="sha384")
        public.verify(key.sign(b"m"), b"m", salt_length="auto")
        public.verify(key.sign(b"m"), b"m", salt_length=32)
        bits: int = key.key_size + public.key_size
        numbers: tuple[int, int] = (public.n, public.e)
        der: bytes = public.public_bytes("der", "pkcs1")
        same: bool = RSAPublicKey.from_public_bytes(der) == public
        key.to_file(path, format="der", traditional=True, overwrite=True)
    loaded: RSAPrivateKey = RSAPrivateKey.from_file(path, format="der")
    loaded.destroy()
    del bits, numbers, same


def use_lazy() -> None:
    lazy_key: keycell.LazyKey[SecretKey] = keycell.lazy(lambda: SecretKey.generate(32))
    handle: SecretKey = lazy_key.get()
    loaded: bool = lazy_key.loaded
    tag: bytes = lazy_key.get().hmac(b"m")
    del handle, loaded, tag


async def use_aio(path: str) -> None:
    from keycell import aio

    client: aio.AsyncAgentClient = await aio.connect(path, timeout=5.0)
    key: aio.AsyncAgentEd25519Key = await client.ed25519("deploy")
    sig: bytes = await key.sign(b"m")
    key.public_key().verify(sig, b"m")
    mac: aio.AsyncAgentSecretKey = await client.secret("mac")
    await mac.verify_hmac(b"m", await mac.hmac(b"m", "sha384"), "sha384")
    ec: aio.AsyncAgentECKey = await client.ec("p256")
    raw: bytes = await ec.sign(b"m", encoding="raw")
    client.close()
    with SecretKey.generate(32) as master:
        store: aio.KeyStore = await aio.KeyStore.open(path, master=master)
    names: list[str] = await store.names()
    await store.close()
    loaded: SecretKey = await aio.run(SecretKey.from_file, path)
    del raw, names, loaded
def use_pyca_adapters() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from keycell import ECPrivateKey, ECPublicKey, Ed25519PrivateKey, Ed25519PublicKey

    signer: ed25519.Ed25519PrivateKey = Ed25519PrivateKey.generate().to_cryptography()
    pub: ed25519.Ed25519PublicKey = signer.public_key()
    back: Ed25519PublicKey = Ed25519PublicKey.from_cryptography(pub)
    ecdsa: ec.EllipticCurvePrivateKey = ECPrivateKey.generate().to_cryptography(
        allow_export=False
    )
    sig: bytes = ecdsa.sign(b"m", ec.ECDSA(hashes.SHA256()))
    ours: ECPublicKey = ECPublicKey.from_cryptography(ecdsa.public_key())
    theirs: ec.EllipticCurvePublicKey = ours.to_cryptography()
    with ECPrivateKey.generate().expose(format="pem") as view:
        first: int = view[0]
        del view
    del back, sig, theirs, first


def use_jose() -> None:
    from typing import Any

    from keycell import ECPrivateKey, Ed25519PrivateKey
    from keycell.jose import JWK, JWKS, InvalidTokenError, jws, jwt, pyjwt, thumbprint

    key = ECPrivateKey.generate("P-256")
    token: str = jwt.encode({"sub": "a"}, key, kid=True, headers={"typ": "at+jwt"})
    claims: dict[str, Any] = jwt.decode(
        token, key.public_key(), algorithms=["ES256"], leeway=5, require=("sub",), now=1.0
    )
    members: dict[str, str] = key.public_key().to_jwk()
    entry: JWK = JWK.from_dict(members)
    kid: str = thumbprint(key) + entry.kid
    keys: JWKS = JWKS([entry, Ed25519PrivateKey.generate()])
    text: str = keys.to_json()
    found: JWK | None = keys.get(kid)
    try:
        payload: bytes = jws.verify(jws.sign(b"x", key), keys, algorithms=["ES256"])
    except InvalidTokenError:
        payload = b""
    pyjwt.install()
    del claims, text, found, payload
