//! `ECPrivateKey` and `ECPublicKey` (ECDSA and ECDH over P-256 and P-384).
//!
//! The private key is a thin class over a [`KeyCell`] (life cycle, locking, fork rules,
//! export seal and text refusal in `key_cell.rs`, its Python methods from
//! [`key_handle_methods!`]); the crypto is `crypto/ec.rs`, the formats `crypto/ec_der.rs`
//! and the key files `keyfile/` through [`key_io`].

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::crypto::ec::{Curve, PrivateKey, PublicPoint, SignatureEncoding};
use crate::crypto::ec_der;
use crate::crypto::key_kind::KeyKind;
use crate::fs::SecretPath;
use crate::keyfile::ssh_public::SshPublicKey;
use crate::keyfile::{DecodedKeyFile, Format};

use super::args::type_name;
use super::asymmetric::{compare, decode_key_data, hex, openssh_line, public_from_openssh};
use super::bytes_like::{bytes_like, maybe_detach};
use super::errors::{Error, Result};
use super::export::private_export_methods;
use super::isolation_scope::detach;
use super::jwk;
use super::key_cell::{key_handle_methods, KeyCell, KeyHandle};
use super::key_io;
use super::pyca::{cryptography_private_methods, cryptography_public_methods};
use super::secret_key::SecretKey;

/// The `len` argument of [`KeyCell::with_key`] for EC operations: they take 30 µs to
/// 1 ms whatever the message length, so the GIL is always released around them.
const ALWAYS_RELEASE_GIL: usize = usize::MAX;

/// A curve name argument.
pub(crate) fn parse_curve(name: &str) -> Result<Curve> {
    Curve::from_name(name).ok_or_else(|| {
        Error::Value(format!(
            "curve must be \"P-256\" or \"P-384\", not {name:?}"
        ))
    })
}

/// An `encoding=` argument of `sign`/`verify`.
pub(crate) fn parse_encoding(name: &str) -> Result<SignatureEncoding> {
    SignatureEncoding::from_name(name)
        .ok_or_else(|| Error::Value(format!("encoding must be \"der\" or \"raw\", not {name:?}")))
}

/// A P-256 or P-384 private key held outside the Python heap.
///
/// The scalar lives in a guarded region (guard pages or a pooled arena, canaries, `mlock`,
/// `MADV_DONTDUMP`, `MADV_WIPEONFORK` or `memfd_secret`, wiped on `destroy()`), and
/// ring's signing key pair built from it (the scalar in Montgomery form and the nonce
/// key) in a second guarded region beside it. Signing uses hedged nonces (key, message
/// digest and fresh randomness); ECDH writes the shared secret straight into a new
/// `SecretKey`.
#[pyclass(frozen, module = "keycell._native")]
pub struct ECPrivateKey {
    cell: Arc<KeyCell<PrivateKey>>,
    public: PublicPoint,
}

impl KeyHandle for ECPrivateKey {
    type Key = PrivateKey;
    fn cell(&self) -> &KeyCell<PrivateKey> {
        &self.cell
    }
}

impl ECPrivateKey {
    /// Wrap a key, exportable or not (also used by the key store).
    pub(crate) fn from_key(py: Python<'_>, key: PrivateKey, exportable: bool) -> Result<Self> {
        let public = *key.public();
        let label = format!(
            "curve={} public={}",
            public.curve().name(),
            hex(public.uncompressed())
        );
        let cell = Arc::new(KeyCell::new(py, "ECPrivateKey", key, exportable, label)?);
        Ok(ECPrivateKey { cell, public })
    }

    /// A key from PEM, DER or OpenSSH bytes the caller holds: copied into a guarded
    /// scratch region (the source wiped afterwards when writable and `wipe`), decoded
    /// (and, for an encrypted OpenSSH key, decrypted with `passphrase`) there.
    fn from_buffer(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        format: Format,
        passphrase: Option<&Bound<'_, PyAny>>,
        wipe: bool,
        exportable: bool,
    ) -> Result<Self> {
        let key = decode_key_data(py, data, format, passphrase, wipe, |scratch, pass| {
            let file = DecodedKeyFile::from_ec_buffer(scratch, None, format, pass)
                .map_err(key_io::buffer_error)?;
            key_io::ec_key_from_decoded(&file, None)
        })?;
        Self::from_key(py, key, exportable)
    }

    /// `from_file` and `from_credential`: the key in `file`, of `curve` if given.
    fn load(
        py: Python<'_>,
        file: SecretPath<'_>,
        curve: Option<&str>,
        format: Option<&str>,
        passphrase: Option<&Bound<'_, PyAny>>,
        exportable: bool,
    ) -> Result<Self> {
        let curve = curve.map(parse_curve).transpose()?;
        let kind = KeyKind::from_ec_curve(curve.unwrap_or(Curve::P256));
        let format = key_io::parse_format(kind, format)?;
        let passphrase = super::passphrase::key_passphrase(py, passphrase)?;
        let key = detach(py, || {
            key_io::load_ec_private_key(file, curve, format, passphrase.as_ref())
        })?;
        Self::from_key(py, key, exportable)
    }
}

key_handle_methods!(ECPrivateKey);
private_export_methods!(ECPrivateKey, false);
cryptography_private_methods!(ECPrivateKey);
cryptography_public_methods!(ECPublicKey);

#[pymethods]
impl ECPrivateKey {
    /// Generate a key on `curve` ("P-256" or "P-384") from the OS CSPRNG, straight into a
    /// guarded region. With `exportable=False` the key can never be written to a key file.
    #[staticmethod]
    #[pyo3(signature = (curve = "P-256", *, exportable = true))]
    fn generate(py: Python<'_>, curve: &str, exportable: bool) -> Result<Self> {
        let curve = parse_curve(curve)?;
        let key = detach(py, || PrivateKey::generate(curve).map_err(Error::from))?;
        Self::from_key(py, key, exportable)
    }

    /// Load a key from PEM bytes: PKCS#8 ("BEGIN PRIVATE KEY", as `openssl genpkey`
    /// writes) or SEC1 ("BEGIN EC PRIVATE KEY", as `openssl ecparam -genkey` writes, an
    /// "EC PARAMETERS" block before it allowed if it names the key's curve). Named curves
    /// only. The data is copied into guarded memory and decoded there; once copied, a
    /// writable source is wiped when `wipe` is true, even if decoding then fails (a
    /// `bytes` object cannot be wiped). A source refused before the copy (empty, or over
    /// 16 KiB) is left as it was, as `SecretKey.from_buffer` leaves one. Raises
    /// `ValueError` for malformed or unsupported keys.
    #[staticmethod]
    #[pyo3(signature = (data, *, wipe = true, exportable = true))]
    fn from_pem(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        wipe: bool,
        exportable: bool,
    ) -> Result<Self> {
        Self::from_buffer(py, data, Format::Pem, None, wipe, exportable)
    }

    /// Load a key from DER bytes (PKCS#8 or SEC1), like `from_pem`.
    #[staticmethod]
    #[pyo3(signature = (data, *, wipe = true, exportable = true))]
    fn from_der(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        wipe: bool,
        exportable: bool,
    ) -> Result<Self> {
        Self::from_buffer(py, data, Format::Der, None, wipe, exportable)
    }

    /// Load a key from the bytes of an OpenSSH private key file (`BEGIN OPENSSH PRIVATE
    /// KEY`, as `ssh-keygen -t ecdsa` writes), unencrypted or encrypted (bcrypt KDF with
    /// aes256-ctr or aes256-gcm@openssh.com): `passphrase` is a `Passphrase` or a writable
    /// buffer (copied into guarded memory and wiped). The file is decoded and decrypted in
    /// guarded memory only; a writable `data` is wiped afterwards when `wipe` is true.
    /// Raises `ValueError` for malformed or unsupported keys and a wrong passphrase.
    #[staticmethod]
    #[pyo3(signature = (data, *, passphrase = None, wipe = true, exportable = true))]
    fn from_openssh(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        passphrase: Option<&Bound<'_, PyAny>>,
        wipe: bool,
        exportable: bool,
    ) -> Result<Self> {
        Self::from_buffer(py, data, Format::OpenSsh, passphrase, wipe, exportable)
    }

    /// Load a key from a file in PEM or DER (PKCS#8 or SEC1, as `from_pem`) or an OpenSSH
    /// private key file (as `from_openssh`; `passphrase` decrypts an encrypted one, a wrong
    /// one raises `KeyFileError`); `format` is "pem", "der", "openssh" or `None` to detect
    /// it, `curve` the curve the key must be on (`None`: the file names it). A public key
    /// stored in the file must belong to the private key.
    ///
    /// The file is opened with `O_NOFOLLOW` and checked on the open descriptor like
    /// `SecretKey.from_file` (regular file, owned by this user, no group or other
    /// permissions; or, with `trust="mount"`, where Kubernetes or Docker put it, as
    /// `SecretKey.from_file` describes); it is read and decoded in guarded memory only.
    #[staticmethod]
    #[pyo3(signature = (
        path, *, curve = None, format = None, passphrase = None, exportable = true,
        trust = "owner"
    ))]
    fn from_file(
        py: Python<'_>,
        path: PathBuf,
        curve: Option<&str>,
        format: Option<&str>,
        passphrase: Option<&Bound<'_, PyAny>>,
        exportable: bool,
        trust: &str,
    ) -> Result<Self> {
        let file = key_io::file_path(&path, trust)?;
        Self::load(py, file, curve, format, passphrase, exportable)
    }

    /// Read the systemd credential `name` from `$CREDENTIALS_DIRECTORY` straight into
    /// guarded memory, as `from_file` reads a key file, with the checks of
    /// `SecretKey.from_credential` (`CredentialUnavailableError` outside a unit with
    /// credentials).
    #[staticmethod]
    #[pyo3(signature = (name, *, curve = None, format = None, passphrase = None, exportable = true))]
    fn from_credential(
        py: Python<'_>,
        name: &str,
        curve: Option<&str>,
        format: Option<&str>,
        passphrase: Option<&Bound<'_, PyAny>>,
        exportable: bool,
    ) -> Result<Self> {
        let path = key_io::credential_path(name)?;
        let file = key_io::credential_file(&path);
        Self::load(py, file, curve, format, passphrase, exportable)
    }

    /// Read the scalar (big-endian: 32 bytes for P-256, 48 for P-384, as
    /// `keycell.keyring.store` stores it) from the Linux kernel keyring straight into a
    /// guarded region, like `SecretKey.from_keyring`: `key` is a description or a serial,
    /// the payload size is checked first (it names the curve when `curve` is `None`), and
    /// `consume=True` invalidates the kernel key after the read. A scalar that is zero or
    /// not below the group order raises `ValueError`.
    #[staticmethod]
    #[pyo3(
        signature = (key, *, curve = None, keyring = None, consume = false, exportable = true),
        text_signature = "(key, *, curve=None, keyring='session', consume=False, exportable=True)"
    )]
    fn from_keyring(
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        curve: Option<&str>,
        keyring: Option<&Bound<'_, PyAny>>,
        consume: bool,
        exportable: bool,
    ) -> Result<Self> {
        let curve = curve.map(parse_curve).transpose()?;
        let name = super::keyring::KeyName::parse_default(key, keyring)?;
        let key = super::keyring::load_ec(py, &name, consume, curve)?;
        Self::from_key(py, key, exportable)
    }

    /// Write the key to `path` atomically, like `SecretKey.to_file` (mode 0600,
    /// `O_EXCL | O_NOFOLLOW` temporary file, `fsync`, rename, directory `fsync`), encoded
    /// in guarded memory only: `format` "pem" or "der", PKCS#8 with the public key, byte
    /// for byte as `openssl pkey` writes it, or "openssh", an OpenSSH private key file
    /// (`ssh-keygen -y -f` reads it), encrypted as `ssh-keygen` does (bcrypt-pbkdf, 16
    /// rounds, aes256-ctr) when `passphrase` is given (a `Passphrase` or a writable buffer,
    /// copied into guarded memory and wiped; other formats refuse one). Raises
    /// `KeyNotExportableError` for a sealed key.
    #[pyo3(signature = (path, *, format = "pem", passphrase = None, overwrite = false))]
    fn to_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        format: &str,
        passphrase: Option<&Bound<'_, PyAny>>,
        overwrite: bool,
    ) -> Result<()> {
        let kind = KeyKind::from_ec_curve(self.public.curve());
        let passphrase = super::passphrase::key_passphrase(py, passphrase)?;
        self.cell
            .to_file(py, &path, kind, format, passphrase.as_ref(), overwrite)
    }

    /// The curve: "P-256" or "P-384".
    #[getter]
    fn curve(&self) -> &'static str {
        self.public.curve().name()
    }

    /// The size of the curve's order in bits (256 or 384).
    #[getter]
    fn key_size(&self) -> usize {
        8 * self.public.curve().scalar_len()
    }

    /// ECDSA-sign `data` (any bytes-like object) with SHA-256 (P-256) or SHA-384 (P-384).
    /// `encoding="der"` gives the DER `Ecdsa-Sig-Value` (X.509, TLS, pyca/cryptography);
    /// `"raw"` gives `r || s`, each the curve's width (JOSE ES256/ES384, WebAuthn). The
    /// nonce is hedged: derived from the key, the message digest and fresh randomness.
    /// The GIL is released while it signs.
    #[pyo3(signature = (data, *, encoding = "der"))]
    fn sign<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        encoding: &str,
    ) -> Result<Bound<'py, PyBytes>> {
        let encoding = parse_encoding(encoding)?;
        let msg = bytes_like(data, "data")?;
        let msg = msg.as_slice();
        let sig = self
            .cell
            .with_key(py, ALWAYS_RELEASE_GIL, |key| Ok(key.sign(msg, encoding)?))?;
        Ok(PyBytes::new(py, sig.as_bytes()))
    }

    /// ECDH with `peer_public_key` (an `ECPublicKey` on the same curve): the x-coordinate
    /// of the shared point (32 or 48 bytes) as a `SecretKey`, never as bytes. Derive
    /// session keys from it with HKDF. A sealed private key gives a sealed shared secret.
    /// The GIL is released while it computes.
    fn exchange(&self, py: Python<'_>, peer_public_key: &Bound<'_, PyAny>) -> Result<SecretKey> {
        let peer = peer_public_key.cast::<ECPublicKey>().map_err(|_| {
            Error::Type(format!(
                "peer_public_key must be an ECPublicKey, not {}",
                type_name(peer_public_key)
            ))
        })?;
        let peer = peer.get().point;
        let shared = self
            .cell
            .with_key(py, ALWAYS_RELEASE_GIL, |key| Ok(key.exchange(&peer)?))?;
        SecretKey::wrap_with(py, shared, self.cell.exportable())
    }

    /// The public key.
    fn public_key(&self) -> Result<ECPublicKey> {
        self.cell.check_live()?;
        Ok(ECPublicKey { point: self.public })
    }
}

/// A P-256 or P-384 public key (not secret: ordinary memory, comparable, hashable,
/// picklable). Every way of making one checks that the point is on the curve and is not
/// the identity.
#[pyclass(frozen, module = "keycell._native")]
pub struct ECPublicKey {
    point: PublicPoint,
}

impl ECPublicKey {
    /// The point (for the agent's policy key).
    pub(crate) fn point(&self) -> &PublicPoint {
        &self.point
    }

    /// The public key of a point checked already (a token key's).
    pub(crate) fn from_point(point: PublicPoint) -> Self {
        ECPublicKey { point }
    }
}

/// What `__reduce__` returns: `from_public_bytes` and its `(curve, point)` arguments.
type Reduced<'py> = (Bound<'py, PyAny>, (&'static str, Bound<'py, PyBytes>));

fn invalid_point(curve: Curve) -> Error {
    Error::Value(format!(
        "not a valid {} public key: the bytes do not encode a point of the curve \
         (compressed or uncompressed X9.62), or encode the identity",
        curve.name()
    ))
}

#[pymethods]
impl ECPublicKey {
    /// Load a public key on `curve` from its X9.62 / SEC1 point encoding: uncompressed
    /// (`04 || x || y`) or compressed (`02`/`03 || x`). Raises `ValueError` for a point
    /// that is not on the curve, the identity, or a wrong length.
    #[staticmethod]
    fn from_public_bytes(curve: &str, data: &Bound<'_, PyAny>) -> Result<Self> {
        let curve = parse_curve(curve)?;
        let data = bytes_like(data, "data")?;
        PublicPoint::from_sec1(curve, data.as_slice())
            .map(|point| ECPublicKey { point })
            .map_err(|_| invalid_point(curve))
    }

    /// Load a public key from DER SubjectPublicKeyInfo (RFC 5480, named curves).
    #[staticmethod]
    fn from_der(data: &Bound<'_, PyAny>) -> Result<Self> {
        let data = bytes_like(data, "data")?;
        ec_der::parse_spki_der(data.as_slice(), None)
            .map(|point| ECPublicKey { point })
            .map_err(|e| Error::Value(format!("invalid EC public key DER: {e}")))
    }

    /// Load a public key from a PEM "PUBLIC KEY" block (`str` or bytes-like).
    #[staticmethod]
    fn from_pem(data: &Bound<'_, PyAny>) -> Result<Self> {
        let data = if let Ok(s) = data.cast::<PyString>() {
            s.to_str()?.as_bytes().to_vec()
        } else {
            bytes_like(data, "data")?.as_slice().to_vec()
        };
        ec_der::parse_spki_pem(&data, None)
            .map(|point| ECPublicKey { point })
            .map_err(|e| Error::Value(format!("invalid EC public key PEM: {e}")))
    }

    /// Load a public key from an OpenSSH public key line (`ecdsa-sha2-nistp256 AAAA...
    /// [comment]`, as in `id_ecdsa.pub` and `authorized_keys`; `str` or bytes-like). Raises
    /// `ValueError` for a malformed line or another key type.
    #[staticmethod]
    fn from_openssh(data: &Bound<'_, PyAny>) -> Result<Self> {
        match public_from_openssh(data, "an ECDSA key", |k| {
            matches!(k, SshPublicKey::Ecdsa(_))
        })? {
            SshPublicKey::Ecdsa(point) => Ok(ECPublicKey { point }),
            _ => Err(Error::Value("not an ECDSA key".to_owned())),
        }
    }

    /// The OpenSSH public key line (`ecdsa-sha2-nistp256 AAAA...`, then ` comment` if
    /// given), as `ssh-keygen -y` prints it (without the newline).
    #[pyo3(signature = (comment = None))]
    fn to_openssh(&self, comment: Option<&str>) -> Result<String> {
        openssh_line(&SshPublicKey::Ecdsa(self.point), comment)
    }

    /// The curve: "P-256" or "P-384".
    #[getter]
    fn curve(&self) -> &'static str {
        self.point.curve().name()
    }

    /// The size of the curve's order in bits (256 or 384).
    #[getter]
    fn key_size(&self) -> usize {
        8 * self.point.curve().scalar_len()
    }

    /// The public JSON Web Key as a dict of its required members (RFC 7638 order):
    /// `{"crv": "P-256", "kty": "EC", "x": ..., "y": ...}` (RFC 7518 §6.2).
    fn to_jwk<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyDict>> {
        jwk::ec(py, self.point.curve().name(), self.point.uncompressed())
    }

    /// The X9.62 point: uncompressed (`04 || x || y`, 65 or 97 bytes) or, with
    /// `compressed=True`, compressed (`02`/`03 || x`, 33 or 49 bytes).
    #[pyo3(signature = (*, compressed = false))]
    fn public_bytes_x962<'py>(&self, py: Python<'py>, compressed: bool) -> Bound<'py, PyBytes> {
        if compressed {
            PyBytes::new(py, &self.point.compressed())
        } else {
            PyBytes::new(py, self.point.uncompressed())
        }
    }

    /// DER SubjectPublicKeyInfo (uncompressed point, named curve), as `openssl pkey
    /// -pubout -outform DER` writes.
    fn public_bytes_der<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &ec_der::spki_der(&self.point))
    }

    /// PEM "PUBLIC KEY" block (SubjectPublicKeyInfo), as bytes.
    fn public_bytes_pem<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &ec_der::spki_pem(&self.point))
    }

    /// Verify the ECDSA `signature` over `data` (SHA-256 for P-256, SHA-384 for P-384);
    /// raises `InvalidSignature` if it does not verify. `encoding="der"` expects strict
    /// DER; `"raw"` expects `r || s` of exactly twice the curve's width. A malformed
    /// signature (wrong length, bad DER) raises `InvalidSignature` too. The GIL is released
    /// while it verifies.
    #[pyo3(signature = (signature, data, *, encoding = "der"))]
    fn verify(
        &self,
        py: Python<'_>,
        signature: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        encoding: &str,
    ) -> Result<()> {
        let encoding = parse_encoding(encoding)?;
        let sig = bytes_like(signature, "signature")?;
        let msg = bytes_like(data, "data")?;
        let (sig, msg) = (sig.as_slice(), msg.as_slice());
        let point = &self.point;
        maybe_detach(py, ALWAYS_RELEASE_GIL, || point.verify(msg, sig, encoding))
            .map_err(Error::from)
    }

    fn __richcmp__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let py = slf.py();
        let Ok(other) = other.cast::<ECPublicKey>() else {
            return py.NotImplemented();
        };
        compare(py, op, slf.get().point == other.get().point)
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        PyBytes::new(py, self.point.uncompressed()).hash()
    }

    fn __repr__(&self) -> String {
        format!(
            "<ECPublicKey {} {}>",
            self.point.curve().name(),
            hex(self.point.uncompressed())
        )
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Reduced<'py>> {
        let py = slf.py();
        let ctor = py.get_type::<ECPublicKey>().getattr("from_public_bytes")?;
        let point = slf.get().point;
        Ok((
            ctor,
            (point.curve().name(), PyBytes::new(py, point.uncompressed())),
        ))
    }

    fn __copy__(slf: &Bound<'_, Self>) -> Py<Self> {
        slf.clone().unbind()
    }

    fn __deepcopy__(slf: &Bound<'_, Self>, _memo: &Bound<'_, PyAny>) -> Py<Self> {
        slf.clone().unbind()
    }
}
