//! `Pkcs11Token`, `Pkcs11Ed25519PrivateKey`, `Pkcs11ECPrivateKey`, `Pkcs11RSAPrivateKey`,
//! `Pkcs11SecretKey`: keys in a PKCS#11 token ([`crate::pkcs11`]), with the method names of the local handles
//! (`sign`, `public_key`, `hmac`, `verify_hmac`, `destroy`, `destroyed`, `protection`,
//! `exportable`) so that code written for an `Ed25519PrivateKey`, an `ECPrivateKey` or a
//! `SecretKey` works unchanged.
//!
//! These handles hold no secret bytes, so they are not built on `KeyCell` (whose life
//! cycle is that of a guarded region): each holds the shared token, the object handle
//! and a `destroyed` flag. `destroy()` forgets the handle; it never deletes the key from
//! the token (`delete_from_token()` does). Every token call runs with the GIL released;
//! the fork check runs before any lock (in `Token::with_session`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cryptoki::object::ObjectHandle;
use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::True;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use pyo3::PyClass;

use crate::crypto::ec::{Curve, PublicPoint};
use crate::crypto::hmac::MAX_DIGEST_LEN;
use crate::crypto::rsa::{Hash, Padding, RsaPublicKey};
use crate::memory::SecretBuf;
use crate::pkcs11::keys::{self, ObjectKind, ObjectSpec, STORE_MASTER_CHALLENGE};
use crate::pkcs11::uri::{self, ObjectType};
use crate::pkcs11::{token, Pkcs11Error, Pkcs11ErrorKind, Token, TokenSpec};

use super::args::parse_algorithm;
use super::bytes_like::{bytes_like, SecretSource};
use super::ec::{parse_curve, parse_encoding, ECPublicKey};
use super::ed25519::Ed25519PublicKey;
use super::errors::{Error, Result};
use super::isolation_scope::detach;
use super::protection::Protection;
use super::pyca::cryptography_private_methods;
use super::rsa::RSAPublicKey;
use super::secret_key::check_hmac_tag;

const PIN_TYPE_ERROR: &str = "pin must be a bytearray (or a writable memoryview): keycell \
    copies it into guarded memory and wipes it. A bytes or str PIN cannot be wiped and stays \
    in Python memory, so it is refused; or pass pin_file=";

/// Why the PIN file `path` could not be used: a PIN error (`Pkcs11PinFileError`, also a
/// `KeyFileError`), not a key file's.
fn pin_file_error(path: &std::path::Path, e: crate::keyfile::LoadError) -> Error {
    use crate::fs::FileError;
    let path = path.display().to_string();
    match e {
        crate::keyfile::LoadError::Memory(m) => Error::Memory(m),
        crate::keyfile::LoadError::File(FileError::Insecure(why)) => Error::PinFile {
            path,
            reason: format!("refusing it: {why}"),
            errno: None,
        },
        crate::keyfile::LoadError::File(FileError::Unusable { reason, errno }) => Error::PinFile {
            path,
            reason,
            errno,
        },
    }
}

/// The PIN from `pin` (a writable buffer, copied into a guarded region and wiped) or
/// `pin_file` (read straight into a guarded region).
fn read_pin(
    py: Python<'_>,
    pin: Option<&Bound<'_, PyAny>>,
    pin_file: Option<PathBuf>,
) -> Result<Option<SecretBuf>> {
    match (pin, pin_file) {
        (Some(_), Some(_)) => Err(Error::Value("give pin or pin_file, not both".to_owned())),
        (None, None) => Ok(None),
        (None, Some(path)) => detach(py, || crate::keyfile::read_passphrase_file(&path))
            .map(Some)
            .map_err(|e| pin_file_error(&path, e)),
        (Some(obj), None) => {
            if obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<PyString>() {
                return Err(Error::Type(PIN_TYPE_ERROR.to_owned()));
            }
            let src = SecretSource::new(obj, "pin")
                .map_err(|_| Error::Type(PIN_TYPE_ERROR.to_owned()))?;
            if !src.writable() {
                return Err(Error::Type(PIN_TYPE_ERROR.to_owned()));
            }
            if src.len() == 0 || src.len() > 256 {
                src.wipe(py)?;
                return Err(Error::Value("a PIN must be 1 to 256 bytes".to_owned()));
            }
            let copied = SecretBuf::new_with(src.len(), |dst| src.copy_into(py, dst));
            src.wipe(py)?;
            Ok(Some(copied?))
        }
    }
}

/// A token object's protection: no key byte is in this process, so every memory field
/// holds vacuously; `backend` is "pkcs11" and `isolation` "token".
fn token_protection() -> Protection {
    Protection {
        locked: true,
        dontdump: true,
        wipeonfork: true,
        guard_pages: true,
        read_only_idle: true,
        isolation: "token".to_owned(),
        backend: "pkcs11".to_owned(),
    }
}

/// What the token handles share: the token, the object, the names and the flag.
struct TokenObject {
    token: Arc<Token>,
    handle: ObjectHandle,
    names: ObjectSpec,
    destroyed: AtomicBool,
}

impl TokenObject {
    fn new(py: Python<'_>, token: Arc<Token>, handle: ObjectHandle) -> Result<Self> {
        let t = Arc::clone(&token);
        let names = detach(py, || keys::names(&t, handle))?;
        Ok(TokenObject {
            token,
            handle,
            names,
            destroyed: AtomicBool::new(false),
        })
    }

    fn check(&self, class: &'static str) -> Result<()> {
        if self.destroyed.load(Ordering::SeqCst) {
            Err(Error::Destroyed(class))
        } else {
            Ok(())
        }
    }

    fn label(&self) -> String {
        self.names.label.clone().unwrap_or_default()
    }

    fn repr(&self, class: &str, extra: &str) -> String {
        if self.destroyed.load(Ordering::SeqCst) {
            return format!("<{class} destroyed>");
        }
        format!(
            "<{class} label={:?} token={:?}{extra}>",
            self.label(),
            self.token.info().label
        )
    }

    fn delete(&self, py: Python<'_>, class: &'static str) -> Result<()> {
        self.check(class)?;
        let (t, h) = (Arc::clone(&self.token), self.handle);
        detach(py, || keys::delete(&t, h))?;
        self.forget();
        Ok(())
    }

    /// The key's `CKA_ID` (empty when it has none).
    fn id(&self) -> &[u8] {
        self.names.id.as_deref().unwrap_or_default()
    }

    /// Mark the handle destroyed (the key stays in the token). Idempotent.
    fn forget(&self) {
        self.destroyed.store(true, Ordering::SeqCst);
    }

    fn is_destroyed(&self) -> bool {
        self.destroyed.load(Ordering::SeqCst)
    }

    fn protection(&self, class: &'static str) -> Result<Protection> {
        self.check(class)?;
        Ok(token_protection())
    }
}

/// A token key class: a frozen pyclass over a [`TokenObject`]. Implementing it and
/// invoking [`token_handle_methods!`] gives the class the methods every token key has.
trait TokenHandle: PyClass<Frozen = True> + Sync {
    /// The Python class name, for messages.
    const CLASS: &'static str;
    /// The token object behind the handle.
    fn object(&self) -> &TokenObject;
}

/// A private key class in the token: the kind of object it opens, and the public key read
/// from the token (and proven where the key type allows) when it is opened.
trait TokenPrivateKey: TokenHandle + Sized {
    /// The kind of token object the class opens.
    const KIND: ObjectKind;
    /// The public key the handle keeps.
    type Public: Send;
    /// Read the public key of the private key `handle` (without the GIL).
    fn read_public(token: &Token, handle: ObjectHandle) -> Result<Self::Public>;
    /// The handle over `obj` with its public key.
    fn from_parts(obj: TokenObject, public: Self::Public) -> Self;

    /// Open the private key `handle` of `token`.
    fn open(py: Python<'_>, token: &Arc<Token>, handle: ObjectHandle) -> Result<Self> {
        let obj = TokenObject::new(py, Arc::clone(token), handle)?;
        let t = Arc::clone(token);
        let public = detach(py, || Self::read_public(&t, handle))?;
        Ok(Self::from_parts(obj, public))
    }
}

/// `__enter__` of a token key: the handle itself, or `KeyDestroyedError`.
fn enter<H: TokenHandle>(slf: &Bound<'_, H>) -> Result<Py<H>> {
    slf.get().object().check(H::CLASS)?;
    Ok(slf.clone().unbind())
}

/// The `TypeError` for pickling (`what = "pickled"`) or copying a token key.
fn refuse(class: &str, what: &str) -> Error {
    Error::Type(format!(
        "{class} cannot be {what}: it names a key inside a PKCS#11 token; open it again from \
         the token"
    ))
}

fn not_exportable(class: &'static str) -> Error {
    Error::NotExportable(class)
}

/// An Ed25519 private key inside a PKCS#11 token: signs there (`CKM_EDDSA`); the key
/// never enters this process. Same methods as `Ed25519PrivateKey`.
#[pyclass(frozen, module = "keycell._native")]
pub struct Pkcs11Ed25519PrivateKey {
    obj: TokenObject,
    public: [u8; 32],
}

impl TokenPrivateKey for Pkcs11Ed25519PrivateKey {
    const KIND: ObjectKind = ObjectKind::Ed25519Private;
    type Public = [u8; 32];
    fn read_public(token: &Token, handle: ObjectHandle) -> Result<[u8; 32]> {
        Ok(keys::ed25519_public(token, handle)?)
    }
    fn from_parts(obj: TokenObject, public: [u8; 32]) -> Self {
        Pkcs11Ed25519PrivateKey { obj, public }
    }
}

const ED_CLASS: &str = "Pkcs11Ed25519PrivateKey";

#[pymethods]
impl Pkcs11Ed25519PrivateKey {
    /// Sign `data` in the token (`CKM_EDDSA`, pure Ed25519); returns the 64-byte
    /// signature. The GIL is released for the call.
    fn sign<'py>(&self, py: Python<'py>, data: &Bound<'py, PyAny>) -> Result<Bound<'py, PyBytes>> {
        self.obj.check(ED_CLASS)?;
        let msg = bytes_like(data, "data")?;
        let msg = msg.as_slice();
        let (t, h) = (Arc::clone(&self.obj.token), self.obj.handle);
        let sig = detach(py, || keys::sign_ed25519(&t, h, msg))?;
        Ok(PyBytes::new(py, &sig))
    }

    /// The public key, an ordinary `Ed25519PublicKey` (read from the token's public key
    /// object when the handle was opened).
    fn public_key(&self) -> Result<Ed25519PublicKey> {
        self.obj.check(ED_CLASS)?;
        Ed25519PublicKey::from_raw(&self.public)
    }

    fn __repr__(&self) -> String {
        let public: String = self.public.iter().map(|b| format!("{b:02x}")).collect();
        self.obj.repr(ED_CLASS, &format!(" public={public}"))
    }
}

/// A P-256 or P-384 ECDSA private key inside a PKCS#11 token: signs there (`CKM_ECDSA`
/// over the SHA-256/384 digest computed in this process); the key never enters this
/// process. Same signing methods as `ECPrivateKey` (no ECDH: token keys are made with
/// `CKA_DERIVE` off).
#[pyclass(frozen, module = "keycell._native")]
pub struct Pkcs11ECPrivateKey {
    obj: TokenObject,
    public: PublicPoint,
}

impl TokenPrivateKey for Pkcs11ECPrivateKey {
    const KIND: ObjectKind = ObjectKind::EcPrivate;
    type Public = PublicPoint;
    fn read_public(token: &Token, handle: ObjectHandle) -> Result<PublicPoint> {
        let curve = keys::ec_key_curve(token, handle)?;
        Ok(keys::ec_public(token, handle, curve)?)
    }
    fn from_parts(obj: TokenObject, public: PublicPoint) -> Self {
        Pkcs11ECPrivateKey { obj, public }
    }
}

impl Pkcs11ECPrivateKey {
    fn curve_of(&self) -> Curve {
        self.public.curve()
    }
}

const EC_CLASS: &str = "Pkcs11ECPrivateKey";

#[pymethods]
impl Pkcs11ECPrivateKey {
    /// ECDSA-sign `data` in the token: SHA-256 (P-256) or SHA-384 (P-384) computed here,
    /// the digest signed with `CKM_ECDSA`. `encoding="der"` gives the DER
    /// `Ecdsa-Sig-Value`, `"raw"` gives `r || s`, as `ECPrivateKey.sign`. The GIL is
    /// released for the call.
    #[pyo3(signature = (data, *, encoding = "der"))]
    fn sign<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        encoding: &str,
    ) -> Result<Bound<'py, PyBytes>> {
        self.obj.check(EC_CLASS)?;
        let encoding = parse_encoding(encoding)?;
        let msg = bytes_like(data, "data")?;
        let msg = msg.as_slice();
        let (t, h, curve) = (
            Arc::clone(&self.obj.token),
            self.obj.handle,
            self.curve_of(),
        );
        let sig = detach(py, || keys::sign_ec_encoded(&t, h, curve, msg, encoding))?;
        Ok(PyBytes::new(py, &sig))
    }

    /// The public key, an ordinary `ECPublicKey` (read from the token's public key object
    /// when the handle was opened, and proven by a signature over a random challenge).
    fn public_key(&self) -> Result<ECPublicKey> {
        self.obj.check(EC_CLASS)?;
        Ok(ECPublicKey::from_point(self.public))
    }

    /// The curve: "P-256" or "P-384".
    #[getter]
    fn curve(&self) -> &'static str {
        self.curve_of().name()
    }

    /// The size of the curve's order in bits (256 or 384).
    #[getter]
    fn key_size(&self) -> usize {
        8 * self.curve_of().scalar_len()
    }

    fn __repr__(&self) -> String {
        let extra = format!(" curve={}", self.curve_of().name());
        self.obj.repr(EC_CLASS, &extra)
    }
}

/// An RSA private key inside a PKCS#11 token: signs there (`CKM_RSA_PKCS_PSS` or
/// `CKM_RSA_PKCS` over the digest computed in this process); the key never enters this
/// process. Same signing methods as `RSAPrivateKey`.
#[pyclass(frozen, module = "keycell._native")]
pub struct Pkcs11RSAPrivateKey {
    obj: TokenObject,
    public: RsaPublicKey,
}

impl TokenPrivateKey for Pkcs11RSAPrivateKey {
    const KIND: ObjectKind = ObjectKind::RsaPrivate;
    type Public = RsaPublicKey;
    fn read_public(token: &Token, handle: ObjectHandle) -> Result<RsaPublicKey> {
        Ok(keys::rsa_public(token, handle)?)
    }
    fn from_parts(obj: TokenObject, public: RsaPublicKey) -> Self {
        Pkcs11RSAPrivateKey { obj, public }
    }
}

const RSA_CLASS: &str = "Pkcs11RSAPrivateKey";

#[pymethods]
impl Pkcs11RSAPrivateKey {
    /// Sign `data` in the token: the digest ("sha256", "sha384" or "sha512") is computed
    /// here and signed with `CKM_RSA_PKCS_PSS` (`padding="pss"`: MGF1 of the same hash,
    /// salt = the hash length) or `CKM_RSA_PKCS` (`"pkcs1v15"`), as `RSAPrivateKey.sign`.
    /// The GIL is released for the call.
    #[pyo3(signature = (data, *, padding = "pss", hash = "sha256"))]
    fn sign<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        padding: &str,
        hash: &str,
    ) -> Result<Bound<'py, PyBytes>> {
        self.obj.check(RSA_CLASS)?;
        let padding = Padding::from_name(padding)?;
        let hash = Hash::from_name(hash)?;
        let msg = bytes_like(data, "data")?;
        let msg = msg.as_slice();
        let (t, h) = (Arc::clone(&self.obj.token), self.obj.handle);
        let sig = detach(py, || keys::sign_rsa(&t, h, padding, hash, msg))?;
        Ok(PyBytes::new(py, &sig))
    }

    /// The public key, an ordinary `RSAPublicKey` (read from the token's public key object
    /// when the handle was opened, and proven by a signature over a random challenge).
    fn public_key(&self) -> Result<RSAPublicKey> {
        self.obj.check(RSA_CLASS)?;
        Ok(RSAPublicKey::from_key(self.public.clone()))
    }

    /// The modulus size in bits.
    #[getter]
    fn key_size(&self) -> usize {
        self.public.bits()
    }

    fn __repr__(&self) -> String {
        let extra = format!(" bits={}", self.public.bits());
        self.obj.repr(RSA_CLASS, &extra)
    }
}

/// A generic secret inside a PKCS#11 token: HMAC is computed there (`CKM_SHA256_HMAC`,
/// `CKM_SHA384_HMAC`, `CKM_SHA512_HMAC`). Same HMAC methods as `SecretKey`; as a
/// `KeyStore` master (`token.wrapping_key(...)`) it derives the store's root key.
#[pyclass(frozen, module = "keycell._native")]
pub struct Pkcs11SecretKey {
    obj: TokenObject,
}

const SK_CLASS: &str = "Pkcs11SecretKey";

impl Pkcs11SecretKey {
    fn mac(&self, py: Python<'_>, algorithm: &str, data: &[u8]) -> Result<Vec<u8>> {
        self.obj.check(SK_CLASS)?;
        let alg = parse_algorithm(algorithm)?;
        let (t, h) = (Arc::clone(&self.obj.token), self.obj.handle);
        let tag = detach(py, || keys::hmac(&t, h, alg, data))?;
        if tag.len() > MAX_DIGEST_LEN {
            return Err(Error::Value(
                "the token returned an oversized HMAC".to_owned(),
            ));
        }
        Ok(tag)
    }

    /// The key store root: HMAC-SHA256 of [`STORE_MASTER_CHALLENGE`] under this key,
    /// computed in the token, into a guarded region. Call without the GIL.
    pub(crate) fn store_root(&self) -> Result<SecretBuf> {
        self.obj.check(SK_CLASS)?;
        let (t, h) = (&self.obj.token, self.obj.handle);
        SecretBuf::new_with(32, |dst| {
            keys::derive_into(t, h, STORE_MASTER_CHALLENGE, dst).map_err(Error::from)
        })
    }
}

#[pymethods]
impl Pkcs11SecretKey {
    /// HMAC of `data` computed in the token; `algorithm` is "sha256", "sha384" or
    /// "sha512". The tag is ordinary bytes.
    #[pyo3(signature = (data, algorithm = "sha256"))]
    fn hmac<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        algorithm: &str,
    ) -> Result<Bound<'py, PyBytes>> {
        let data = bytes_like(data, "data")?;
        let tag = self.mac(py, algorithm, data.as_slice())?;
        Ok(PyBytes::new(py, &tag))
    }

    /// Verify an HMAC `tag` over `data`: the token computes the HMAC, keycell compares in
    /// constant time (full length, or truncated to at least 16 bytes, like
    /// `SecretKey.verify_hmac`); raises `InvalidSignature` when it does not match.
    #[pyo3(signature = (data, tag, algorithm = "sha256"))]
    fn verify_hmac(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        tag: &Bound<'_, PyAny>,
        algorithm: &str,
    ) -> Result<()> {
        let data = bytes_like(data, "data")?;
        let tag = bytes_like(tag, "tag")?;
        let expected = self.mac(py, algorithm, data.as_slice())?;
        check_hmac_tag(&expected, tag.as_slice())
    }

    fn __repr__(&self) -> String {
        self.obj.repr(SK_CLASS, "")
    }
}

impl TokenHandle for Pkcs11Ed25519PrivateKey {
    const CLASS: &'static str = ED_CLASS;
    fn object(&self) -> &TokenObject {
        &self.obj
    }
}

impl TokenHandle for Pkcs11ECPrivateKey {
    const CLASS: &'static str = EC_CLASS;
    fn object(&self) -> &TokenObject {
        &self.obj
    }
}

impl TokenHandle for Pkcs11RSAPrivateKey {
    const CLASS: &'static str = RSA_CLASS;
    fn object(&self) -> &TokenObject {
        &self.obj
    }
}

impl TokenHandle for Pkcs11SecretKey {
    const CLASS: &'static str = SK_CLASS;
    fn object(&self) -> &TokenObject {
        &self.obj
    }
}

/// A second `#[pymethods]` block with the methods both token handle classes share (as
/// `key_handle_methods!` writes them for local keys), each a one-line delegation to the
/// class's [`TokenHandle::object`]: names, the export seal, destroy, protection, context
/// manager, and the refusal to pickle, copy or become text.
macro_rules! token_handle_methods {
    ($class:ty, $delete_doc:literal) => {
        $crate::py::text_refusal::text_refusing!($class);

        #[pymethods]
        impl $class {
            /// The key's `CKA_LABEL`.
            #[getter]
            fn label(&self) -> String {
                self.object().label()
            }

            /// The key's `CKA_ID`.
            #[getter]
            fn id<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
                PyBytes::new(py, self.object().id())
            }

            /// Always False: a token key is never exported by keycell.
            #[getter]
            fn exportable(&self) -> bool {
                false
            }

            /// Does nothing: a token key is sealed already.
            fn seal_export(&self) -> Result<()> {
                self.object().check(Self::CLASS)
            }

            /// Forget this handle (the key stays in the token). Idempotent.
            fn destroy(&self) {
                self.object().forget()
            }

            /// True once `destroy()` or `delete_from_token()` has run.
            #[getter]
            fn destroyed(&self) -> bool {
                self.object().is_destroyed()
            }

            #[doc = $delete_doc]
            fn delete_from_token(&self, py: Python<'_>) -> Result<()> {
                self.object().delete(py, Self::CLASS)
            }

            /// `backend="pkcs11"`, `isolation="token"`: no key byte is in this process.
            #[getter]
            fn protection(&self) -> Result<Protection> {
                self.object().protection(Self::CLASS)
            }

            fn __enter__(slf: &Bound<'_, Self>) -> Result<Py<Self>> {
                enter(slf)
            }

            #[pyo3(signature = (*_args))]
            fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
                self.object().forget();
                false
            }

            fn __reduce__(&self) -> Result<()> {
                Err(refuse(Self::CLASS, "pickled"))
            }

            fn __copy__(&self) -> Result<()> {
                Err(refuse(Self::CLASS, "copied"))
            }

            fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> Result<()> {
                Err(refuse(Self::CLASS, "copied"))
            }
        }
    };
}

/// [`token_handle_methods!`] for a private key class, and the `to_file` that refuses.
macro_rules! token_private_key_methods {
    ($class:ty) => {
        token_handle_methods!(
            $class,
            "Delete the key pair's private key from the token (`C_DestroyObject`), for good."
        );

        #[pymethods]
        impl $class {
            /// Refuses with `KeyNotExportableError`: the key stays in the token.
            #[pyo3(signature = (*_args, **_kwargs))]
            fn to_file(
                &self,
                _args: &Bound<'_, pyo3::types::PyTuple>,
                _kwargs: Option<&Bound<'_, PyDict>>,
            ) -> Result<()> {
                Err(not_exportable(Self::CLASS))
            }
        }
    };
}

token_private_key_methods!(Pkcs11Ed25519PrivateKey);
token_private_key_methods!(Pkcs11ECPrivateKey);
token_private_key_methods!(Pkcs11RSAPrivateKey);
cryptography_private_methods!(Pkcs11Ed25519PrivateKey);
cryptography_private_methods!(Pkcs11ECPrivateKey);
cryptography_private_methods!(Pkcs11RSAPrivateKey);
token_handle_methods!(
    Pkcs11SecretKey,
    "Delete the key from the token (`C_DestroyObject`), for good."
);

/// An open PKCS#11 token (see `keycell.pkcs11.Token`).
#[pyclass(frozen, module = "keycell._native")]
pub struct Pkcs11Token {
    token: Arc<Token>,
}

fn object_spec(label: Option<String>, id: Option<&Bound<'_, PyAny>>) -> Result<ObjectSpec> {
    let id = match id {
        None => None,
        Some(obj) => Some(bytes_like(obj, "id")?.as_slice().to_vec()),
    };
    if label.is_none() && id.is_none() {
        return Err(Error::Type("give label= or id=".to_owned()));
    }
    Ok(ObjectSpec { label, id })
}

fn open_token(
    py: Python<'_>,
    module: PathBuf,
    spec: TokenSpec,
    pin: Option<SecretBuf>,
) -> Result<Arc<Token>> {
    Ok(Arc::new(detach(py, || Token::open(&module, &spec, pin))?))
}

fn info_dict<'py>(py: Python<'py>, t: &token::TokenInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("slot", t.slot)?;
    d.set_item("label", &t.label)?;
    d.set_item("manufacturer", &t.manufacturer)?;
    d.set_item("model", &t.model)?;
    d.set_item("serial", &t.serial)?;
    d.set_item("login_required", t.login_required)?;
    d.set_item("user_pin_initialized", t.user_pin_initialized)?;
    Ok(d)
}

impl Pkcs11Token {
    /// The token itself, shared (the agent serves its keys).
    pub(crate) fn shared(&self) -> &Arc<Token> {
        &self.token
    }

    /// The private key of class `H` named by `label` and/or `id`.
    fn private_key<H: TokenPrivateKey>(
        &self,
        py: Python<'_>,
        label: Option<String>,
        id: Option<&Bound<'_, PyAny>>,
    ) -> Result<H> {
        let spec = object_spec(label, id)?;
        let h = self.find(py, H::KIND, &spec)?;
        H::open(py, &self.token, h)
    }

    fn find(&self, py: Python<'_>, kind: ObjectKind, spec: &ObjectSpec) -> Result<ObjectHandle> {
        let t = Arc::clone(&self.token);
        Ok(detach(py, || keys::find(&t, kind, spec, keys::Trust::Key))?)
    }
}

#[pymethods]
impl Pkcs11Token {
    /// Load the PKCS#11 `module` (a shared library path), find the token by
    /// `token_label` or `slot` (or the only token present), and log in with the PIN:
    /// `pin` is a `bytearray` (copied into guarded memory, then wiped), `pin_file` a
    /// 0600 file read straight into guarded memory. Without a PIN only public objects
    /// are visible.
    #[staticmethod]
    #[pyo3(signature = (*, module, token_label = None, slot = None, pin = None, pin_file = None))]
    fn open(
        py: Python<'_>,
        module: PathBuf,
        token_label: Option<String>,
        slot: Option<u64>,
        pin: Option<&Bound<'_, PyAny>>,
        pin_file: Option<PathBuf>,
    ) -> Result<Pkcs11Token> {
        let pin = read_pin(py, pin, pin_file)?;
        let spec = TokenSpec {
            label: token_label,
            slot,
            ..TokenSpec::default()
        };
        Ok(Pkcs11Token {
            token: open_token(py, module, spec, pin)?,
        })
    }

    /// The Ed25519 private key named by `label` and/or `id` (its public key object must
    /// be on the token too).
    #[pyo3(signature = (*, label = None, id = None))]
    fn ed25519_private_key(
        &self,
        py: Python<'_>,
        label: Option<String>,
        id: Option<&Bound<'_, PyAny>>,
    ) -> Result<Pkcs11Ed25519PrivateKey> {
        self.private_key(py, label, id)
    }

    /// Generate an Ed25519 key pair in the token (`CKM_EC_EDWARDS_KEY_PAIR_GEN`), the
    /// private key sensitive and never extractable, under `label` (which must be new).
    #[pyo3(signature = (*, label))]
    fn generate_ed25519(&self, py: Python<'_>, label: String) -> Result<Pkcs11Ed25519PrivateKey> {
        let t = Arc::clone(&self.token);
        let (h, _) = detach(py, || keys::generate_ed25519(&t, &label))?;
        Pkcs11Ed25519PrivateKey::open(py, &self.token, h)
    }

    /// The P-256 or P-384 ECDSA private key named by `label` and/or `id` (its public key
    /// object must be on the token too; the curve is the key's `CKA_EC_PARAMS`).
    #[pyo3(signature = (*, label = None, id = None))]
    fn ec_private_key(
        &self,
        py: Python<'_>,
        label: Option<String>,
        id: Option<&Bound<'_, PyAny>>,
    ) -> Result<Pkcs11ECPrivateKey> {
        self.private_key(py, label, id)
    }

    /// Generate an ECDSA key pair on `curve` ("P-256" or "P-384") in the token
    /// (`CKM_EC_KEY_PAIR_GEN`), the private key sensitive and never extractable, under
    /// `label` (which must be new).
    #[pyo3(signature = (*, label, curve = "P-256"))]
    fn generate_ec(
        &self,
        py: Python<'_>,
        label: String,
        curve: &str,
    ) -> Result<Pkcs11ECPrivateKey> {
        let curve = parse_curve(curve)?;
        let t = Arc::clone(&self.token);
        let (h, _) = detach(py, || keys::generate_ec(&t, &label, curve))?;
        Pkcs11ECPrivateKey::open(py, &self.token, h)
    }

    /// The RSA private key named by `label` and/or `id` (its public key object must be
    /// on the token too).
    #[pyo3(signature = (*, label = None, id = None))]
    fn rsa_private_key(
        &self,
        py: Python<'_>,
        label: Option<String>,
        id: Option<&Bound<'_, PyAny>>,
    ) -> Result<Pkcs11RSAPrivateKey> {
        self.private_key(py, label, id)
    }

    /// Generate an RSA key pair of `bits` (2048, 3072 or 4096; exponent 65537) in the
    /// token (`CKM_RSA_PKCS_KEY_PAIR_GEN`), the private key sensitive and never
    /// extractable, under `label` (which must be new).
    #[pyo3(signature = (*, label, bits = 3072))]
    fn generate_rsa(
        &self,
        py: Python<'_>,
        label: String,
        bits: usize,
    ) -> Result<Pkcs11RSAPrivateKey> {
        let t = Arc::clone(&self.token);
        let (h, _) = detach(py, || keys::generate_rsa(&t, &label, bits))?;
        Pkcs11RSAPrivateKey::open(py, &self.token, h)
    }

    /// The generic secret (HMAC key) labelled `label`.
    fn secret_key(&self, py: Python<'_>, label: String) -> Result<Pkcs11SecretKey> {
        let h = self.find(py, ObjectKind::Secret, &ObjectSpec::label(&label))?;
        Ok(Pkcs11SecretKey {
            obj: TokenObject::new(py, Arc::clone(&self.token), h)?,
        })
    }

    /// Generate a generic secret of `length` bytes in the token
    /// (`CKM_GENERIC_SECRET_KEY_GEN`), sensitive and never extractable, for HMAC.
    /// SoftHSM2 refuses HMAC-SHA256 with a key under 32 bytes.
    #[pyo3(signature = (label, length = 32))]
    fn generate_secret(
        &self,
        py: Python<'_>,
        label: String,
        length: usize,
    ) -> Result<Pkcs11SecretKey> {
        let t = Arc::clone(&self.token);
        let h = detach(py, || keys::generate_secret(&t, &label, length))?;
        Ok(Pkcs11SecretKey {
            obj: TokenObject::new(py, Arc::clone(&self.token), h)?,
        })
    }

    /// The key that protects a `KeyStore` master in this token: a 32-byte generic secret
    /// labelled `label`, generated first when `create` is true and it does not exist.
    /// Pass it as `KeyStore.create/open(path, master=...)`: the store's root key is
    /// HMAC-SHA256 of a fixed challenge under it, computed in the token
    /// (docs/pkcs11.md).
    /// The key must be private, sensitive, always sensitive, never extractable and
    /// generated on the token (`Pkcs11Error` otherwise): `create=True` never adopts an
    /// object whose value someone else may know (docs/pkcs11.md).
    #[pyo3(signature = (label, create = false))]
    fn wrapping_key(&self, py: Python<'_>, label: String, create: bool) -> Result<Pkcs11SecretKey> {
        let t = Arc::clone(&self.token);
        let spec = ObjectSpec::label(&label);
        let found = detach(py, || {
            keys::find(&t, ObjectKind::Secret, &spec, keys::Trust::StoreMaster)
        });
        match found {
            Ok(h) => Ok(Pkcs11SecretKey {
                obj: TokenObject::new(py, Arc::clone(&self.token), h)?,
            }),
            Err(e) if create && e.kind == Pkcs11ErrorKind::ObjectNotFound => {
                self.generate_secret(py, label, 32)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The key objects on the token (private ones only when logged in), as dicts of
    /// names and flags; never a key value.
    fn objects<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyList>> {
        let t = Arc::clone(&self.token);
        let objects = detach(py, || keys::list_objects(&t))?;
        let out = PyList::empty(py);
        for o in objects {
            let d = PyDict::new(py);
            d.set_item("class", o.class)?;
            d.set_item("key_type", o.key_type)?;
            d.set_item("label", &o.label)?;
            d.set_item("id", &o.id)?;
            d.set_item("sensitive", o.sensitive)?;
            d.set_item("extractable", o.extractable)?;
            d.set_item("never_extractable", o.never_extractable)?;
            d.set_item("always_sensitive", o.always_sensitive)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// What the token says about itself: slot, label, manufacturer, model, serial.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        info_dict(py, self.token.info())
    }

    /// The module's path.
    #[getter]
    fn module(&self) -> PathBuf {
        self.token.module_path().to_owned()
    }

    /// Whether the token was opened with a PIN and is still open.
    #[getter]
    fn logged_in(&self) -> bool {
        self.token.logged_in()
    }

    /// Close the sessions; the last open token of the process on this slot logs out.
    /// Key handles from it raise `Pkcs11ClosedError` afterwards. Idempotent; in a fork
    /// child it does nothing.
    fn close(&self, py: Python<'_>) {
        let t = Arc::clone(&self.token);
        detach(py, || t.close());
    }

    /// True once `close()` has run (always in a fork child).
    #[getter]
    fn closed(&self) -> bool {
        self.token.is_closed()
    }

    fn __enter__(slf: &Bound<'_, Self>) -> Result<Py<Self>> {
        if slf.get().token.is_closed() {
            return Err(Pkcs11Error::new(Pkcs11ErrorKind::Closed, "this token is closed").into());
        }
        Ok(slf.clone().unbind())
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.token.forked() {
            " forked"
        } else if self.token.is_closed() {
            " closed"
        } else {
            ""
        };
        format!(
            "<Pkcs11Token {:?} slot={}{state}>",
            self.token.info().label,
            self.token.info().slot
        )
    }

    fn __reduce__(&self) -> Result<()> {
        Err(Error::Type("Pkcs11Token cannot be pickled".to_owned()))
    }
}

/// The tokens present in `module`'s slots (no login): a list of dicts with slot, label,
/// manufacturer, model, serial, login_required, user_pin_initialized.
#[pyfunction]
pub fn pkcs11_list_tokens(py: Python<'_>, module: PathBuf) -> Result<Bound<'_, PyList>> {
    let tokens = detach(py, || {
        let m = crate::pkcs11::module::load(&module)?;
        token::list_tokens(&m)
    })?;
    let out = PyList::empty(py);
    for t in &tokens {
        out.append(info_dict(py, t)?)?;
    }
    Ok(out)
}

/// Open the key an RFC 7512 `pkcs11:` URI names: its token (by `token`, `serial`,
/// `manufacturer`, `model`, `slot-id`), logged in with the PIN from `pin-source` (a
/// file) or `pin` (a `bytearray`, wiped), and the object by `object` (label) and/or `id`.
/// `module-name` is looked for in the usual library directories. `type=private` (the default) gives a
/// `Pkcs11Ed25519PrivateKey`, `type=secret-key` a `Pkcs11SecretKey`. `module` overrides
/// `module-path`. Returns `(token, key)`.
#[pyfunction]
#[pyo3(signature = (uri, *, module = None, pin = None))]
pub fn pkcs11_open_uri<'py>(
    py: Python<'py>,
    uri: &str,
    module: Option<PathBuf>,
    pin: Option<&Bound<'py, PyAny>>,
) -> Result<(Pkcs11Token, Py<PyAny>)> {
    let u = uri::parse(uri).map_err(|e| Error::Value(format!("invalid PKCS#11 URI: {e}")))?;
    let module =
        match (module, &u.module_path, &u.module_name) {
            (Some(m), _, _) => m,
            (None, Some(p), _) => PathBuf::from(p),
            (None, None, Some(name)) => crate::pkcs11::module::find_by_name(name)?,
            (None, None, None) => return Err(Error::Value(
                "the URI names no module (module-path= or module-name=) and no module= was given"
                    .to_owned(),
            )),
        };
    if u.object.label.is_none() && u.object.id.is_none() {
        return Err(Error::Value(
            "the URI names no object (object= or id=)".to_owned(),
        ));
    }
    let pin = read_pin(py, pin, u.pin_source.as_ref().map(PathBuf::from))?;
    let token = Pkcs11Token {
        token: open_token(py, module, u.token.clone(), pin)?,
    };
    let key: Py<PyAny> = match u.object_type {
        Some(ObjectType::SecretKey) => {
            let h = token.find(py, ObjectKind::Secret, &u.object)?;
            Py::new(
                py,
                Pkcs11SecretKey {
                    obj: TokenObject::new(py, Arc::clone(&token.token), h)?,
                },
            )?
            .into_any()
        }
        None | Some(ObjectType::Private) => {
            // An Ed25519 key, else an EC key, else an RSA key: the URI names the object,
            // not its key type. The first "not found" is the error when none is found.
            let mut first_missing = None;
            let mut opened = None;
            for kind in [
                ObjectKind::Ed25519Private,
                ObjectKind::EcPrivate,
                ObjectKind::RsaPrivate,
            ] {
                match token.find(py, kind, &u.object) {
                    Ok(h) => {
                        opened = Some(match kind {
                            ObjectKind::Ed25519Private => {
                                Py::new(py, Pkcs11Ed25519PrivateKey::open(py, &token.token, h)?)?
                                    .into_any()
                            }
                            ObjectKind::EcPrivate => {
                                Py::new(py, Pkcs11ECPrivateKey::open(py, &token.token, h)?)?
                                    .into_any()
                            }
                            _ => Py::new(py, Pkcs11RSAPrivateKey::open(py, &token.token, h)?)?
                                .into_any(),
                        });
                        break;
                    }
                    Err(Error::Pkcs11(e)) if e.kind == Pkcs11ErrorKind::ObjectNotFound => {
                        first_missing.get_or_insert(e);
                    }
                    Err(other) => return Err(other),
                }
            }
            match (opened, first_missing) {
                (Some(key), _) => key,
                (None, Some(e)) => return Err(Error::Pkcs11(e)),
                (None, None) => unreachable!("every kind was searched"),
            }
        }
        Some(_) => {
            return Err(Error::Value(
                "keycell opens type=private (Ed25519, EC or RSA) and type=secret-key objects"
                    .to_owned(),
            ))
        }
    };
    Ok((token, key))
}
