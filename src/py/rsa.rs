//! `RSAPrivateKey` and `RSAPublicKey`.
//!
//! The private key is a thin class over a [`KeyCell`] (life cycle, locking and fork rules
//! in `key_cell.rs`); where its secrets live is `crypto/rsa.rs`'s business.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyString};

use crate::crypto::rsa::{Hash, Padding, RsaPrivateKey, RsaPublicKey, Salt, GENERATE_BITS};
use crate::fs::SecretPath;
use crate::keyfile::Format;

use super::asymmetric::{self as common};
use super::bytes_like::{bytes_like, maybe_detach};
use super::errors::{Error, Result};
use super::export::private_export_methods;
use super::isolation_scope::detach;
use super::jwk;
use super::key_cell::{key_handle_methods, KeyCell, KeyHandle};
use super::key_io;
use super::pyca::{cryptography_private_methods, cryptography_public_methods};

/// An RSA private key (2048 to 4096 bits) held outside the Python heap, for signing only.
///
/// The key's PKCS#1 DER lives in a guarded region; the key pair ring signs with (primes,
/// CRT exponents, their Montgomery forms) lives in keycell's secret heap: locked,
/// dump-excluded, wiped on fork and on free (SECURITY.md, "RSA keys"). No decryption.
#[pyclass(frozen, module = "keycell._native")]
pub struct RSAPrivateKey {
    cell: Arc<KeyCell<RsaPrivateKey>>,
    public: RsaPublicKey,
}

impl KeyHandle for RSAPrivateKey {
    type Key = RsaPrivateKey;
    fn cell(&self) -> &KeyCell<RsaPrivateKey> {
        &self.cell
    }
}

impl RSAPrivateKey {
    /// `from_file` and `from_credential`: the key in `file`.
    fn load(
        py: Python<'_>,
        file: SecretPath<'_>,
        format: Option<&str>,
        passphrase: Option<&Bound<'_, PyAny>>,
        exportable: bool,
    ) -> Result<Self> {
        let format = key_io::parse_rsa_format(format)?;
        let passphrase = super::passphrase::key_passphrase(py, passphrase)?;
        let key = detach(py, || key_io::load_rsa(file, format, passphrase.as_ref()))?;
        Self::wrap(py, key, exportable)
    }

    pub(crate) fn wrap(py: Python<'_>, key: RsaPrivateKey, exportable: bool) -> Result<Self> {
        let public = key.public().clone();
        let label = format!("{} bits", public.bits());
        let cell = KeyCell::new(py, "RSAPrivateKey", key, exportable, label)?;
        Ok(RSAPrivateKey {
            cell: Arc::new(cell),
            public,
        })
    }
}

key_handle_methods!(RSAPrivateKey);
private_export_methods!(RSAPrivateKey, false);
cryptography_private_methods!(RSAPrivateKey);
cryptography_public_methods!(RSAPublicKey);

#[pymethods]
impl RSAPrivateKey {
    /// Generate a key of `bits` (2048, 3072 or 4096; public exponent 65537). The prime
    /// search runs in keycell's secret heap, with the GIL released. With
    /// `exportable=False` the key can never be written to a key file.
    #[staticmethod]
    #[pyo3(signature = (bits = 3072, *, exportable = true))]
    fn generate(py: Python<'_>, bits: usize, exportable: bool) -> Result<Self> {
        if !GENERATE_BITS.contains(&bits) {
            return Err(Error::Value(format!(
                "bits must be 2048, 3072 or 4096, not {bits}"
            )));
        }
        let key = detach(py, || RsaPrivateKey::generate(bits))?;
        Self::wrap(py, key, exportable)
    }

    /// Read the key's PKCS#1 `RSAPrivateKey` DER (as `keycell.keyring.store` stores it)
    /// from the Linux kernel keyring straight into a guarded region, like
    /// `SecretKey.from_keyring`: `key` is a description or a serial, the payload size is
    /// checked first, and `consume=True` invalidates the kernel key after the read.
    #[staticmethod]
    #[pyo3(
        signature = (key, *, keyring = None, consume = false, exportable = true),
        text_signature = "(key, *, keyring='session', consume=False, exportable=True)"
    )]
    fn from_keyring(
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        keyring: Option<&Bound<'_, PyAny>>,
        consume: bool,
        exportable: bool,
    ) -> Result<Self> {
        let name = super::keyring::KeyName::parse_default(key, keyring)?;
        let key = super::keyring::load_rsa(py, &name, consume)?;
        Self::wrap(py, key, exportable)
    }

    /// Load a key from DER, PKCS#8 `PrivateKeyInfo` or PKCS#1 `RSAPrivateKey` (any
    /// bytes-like object). The bytes are copied into guarded memory; a writable source is
    /// overwritten with zeros afterwards when `wipe` is true.
    #[staticmethod]
    #[pyo3(signature = (data, *, wipe = true, exportable = true))]
    fn from_der(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        wipe: bool,
        exportable: bool,
    ) -> Result<Self> {
        let key = common::decode_key_data(py, data, Format::Der, None, wipe, |der, _| {
            Ok(RsaPrivateKey::from_der(der.bytes()?)?)
        })?;
        Self::wrap(py, key, exportable)
    }

    /// Load a key from PEM: `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1, as
    /// `openssl genrsa -traditional` writes), any bytes-like object (not a `str`, which
    /// cannot be wiped). The bytes are copied into guarded memory (a writable source wiped
    /// afterwards when `wipe`); the body is decoded into guarded memory.
    #[staticmethod]
    #[pyo3(signature = (data, *, wipe = true, exportable = true))]
    fn from_pem(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        wipe: bool,
        exportable: bool,
    ) -> Result<Self> {
        let key = common::decode_key_data(py, data, Format::Pem, None, wipe, |pem, _| {
            Ok(RsaPrivateKey::from_pem(pem.bytes()?)?)
        })?;
        Self::wrap(py, key, exportable)
    }

    /// Load a key from a file: PKCS#8 or PKCS#1, PEM or DER, or an OpenSSH private key
    /// file (`ssh-keygen -t rsa`, as `from_openssh`; `passphrase` decrypts an encrypted
    /// one, a wrong one raises `KeyFileError`); `format` "pem", "der", "openssh" or `None`
    /// to detect. The file is opened with `O_NOFOLLOW` and checked on the open descriptor
    /// like `SecretKey.from_file` (regular file, owned by this user, no group or other
    /// permissions; or, with `trust="mount"`, where Kubernetes or Docker put it, as
    /// `SecretKey.from_file` describes); it is read and decoded in guarded memory only.
    #[staticmethod]
    #[pyo3(signature = (
        path, *, format = None, passphrase = None, exportable = true, trust = "owner"
    ))]
    fn from_file(
        py: Python<'_>,
        path: PathBuf,
        format: Option<&str>,
        passphrase: Option<&Bound<'_, PyAny>>,
        exportable: bool,
        trust: &str,
    ) -> Result<Self> {
        let file = key_io::file_path(&path, trust)?;
        Self::load(py, file, format, passphrase, exportable)
    }

    /// Read the systemd credential `name` from `$CREDENTIALS_DIRECTORY` straight into
    /// guarded memory, as `from_file` reads a key file, with the checks of
    /// `SecretKey.from_credential` (`CredentialUnavailableError` outside a unit with
    /// credentials).
    #[staticmethod]
    #[pyo3(signature = (name, *, format = None, passphrase = None, exportable = true))]
    fn from_credential(
        py: Python<'_>,
        name: &str,
        format: Option<&str>,
        passphrase: Option<&Bound<'_, PyAny>>,
        exportable: bool,
    ) -> Result<Self> {
        let path = key_io::credential_path(name)?;
        Self::load(
            py,
            key_io::credential_file(&path),
            format,
            passphrase,
            exportable,
        )
    }

    /// Load a key from the bytes of an OpenSSH private key file (`BEGIN OPENSSH PRIVATE
    /// KEY`, as `ssh-keygen -t rsa` writes), unencrypted or encrypted (bcrypt KDF with
    /// aes256-ctr or aes256-gcm@openssh.com): `passphrase` is a `Passphrase` or a writable
    /// buffer (copied into guarded memory and wiped). The file is decoded and decrypted in
    /// guarded memory, the CRT exponents derived in the secret heap; a writable `data` is
    /// wiped afterwards when `wipe` is true. Raises `ValueError` for malformed or
    /// unsupported keys and a wrong passphrase.
    #[staticmethod]
    #[pyo3(signature = (data, *, passphrase = None, wipe = true, exportable = true))]
    fn from_openssh(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        passphrase: Option<&Bound<'_, PyAny>>,
        wipe: bool,
        exportable: bool,
    ) -> Result<Self> {
        let key = common::decode_key_data(
            py,
            data,
            Format::OpenSsh,
            passphrase,
            wipe,
            |content, pass| {
                crate::keyfile::rsa_from_scratch(content.bytes()?, Some(Format::OpenSsh), pass)
                    .map_err(|e| key_io::buffer_error_for("RSA private key", e))
            },
        )?;
        Self::wrap(py, key, exportable)
    }

    /// Write the key to `path` atomically, like `SecretKey.to_file` (mode 0600,
    /// `O_EXCL | O_NOFOLLOW` temporary file, `fsync`, rename, directory `fsync`), encoded
    /// in guarded memory only. `format` is "pem" or "der", PKCS#8 unless `traditional`
    /// (PKCS#1 `RSA PRIVATE KEY`), or "openssh", an OpenSSH private key file (`ssh-keygen
    /// -y -f` reads it), encrypted as `ssh-keygen` does (bcrypt-pbkdf, 16 rounds,
    /// aes256-ctr) when `passphrase` is given (a `Passphrase` or a writable buffer, copied
    /// into guarded memory and wiped; other formats refuse one). Raises
    /// `KeyNotExportableError` for a sealed key.
    #[pyo3(signature = (path, *, format = "pem", traditional = false, passphrase = None, overwrite = false))]
    fn to_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        format: &str,
        traditional: bool,
        passphrase: Option<&Bound<'_, PyAny>>,
        overwrite: bool,
    ) -> Result<()> {
        let format = key_io::parse_rsa_format(Some(format))?.unwrap_or(crate::keyfile::Format::Pem);
        let passphrase = super::passphrase::key_passphrase(py, passphrase)?;
        self.cell.check_exportable()?;
        let cell = &self.cell;
        detach(py, || {
            let live = cell.live()?;
            key_io::write_rsa(
                &path,
                live.key(),
                format,
                traditional,
                passphrase.as_ref(),
                overwrite,
            )
        })
    }

    /// Sign `data` (any bytes-like object). `padding` is "pss" (RSASSA-PSS, MGF1 with the
    /// same hash, salt length = hash length, as AWS KMS's `RSASSA_PSS_SHA_256` and JOSE
    /// `PS256`) or "pkcs1v15"; `hash` is "sha256", "sha384" or "sha512". Returns the
    /// signature (the modulus length). The GIL is released while signing.
    #[pyo3(signature = (data, *, padding = "pss", hash = "sha256"))]
    fn sign<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        padding: &str,
        hash: &str,
    ) -> Result<Bound<'py, PyBytes>> {
        let padding = Padding::from_name(padding)?;
        let hash = Hash::from_name(hash)?;
        let msg = bytes_like(data, "data")?;
        let msg = msg.as_slice();
        let sig = self
            .cell
            .with_key(py, usize::MAX, |key| Ok(key.sign(padding, hash, msg)?))?;
        Ok(PyBytes::new(py, &sig))
    }

    /// The public key.
    fn public_key(&self) -> Result<RSAPublicKey> {
        self.cell.check_live()?;
        Ok(RSAPublicKey {
            key: self.public.clone(),
        })
    }

    /// The modulus size in bits.
    #[getter]
    fn key_size(&self) -> usize {
        self.public.bits()
    }
}

/// An RSA public key, 2048 to 4096 bits (not secret: ordinary memory, comparable,
/// hashable, picklable).
#[pyclass(frozen, module = "keycell._native")]
pub struct RSAPublicKey {
    key: RsaPublicKey,
}

impl RSAPublicKey {
    /// The key (for the agent's policy key).
    pub(crate) fn key(&self) -> &RsaPublicKey {
        &self.key
    }

    /// The public key of a checked key (a token key's).
    pub(crate) fn from_key(key: RsaPublicKey) -> Self {
        RSAPublicKey { key }
    }
}

/// `salt_length=`: `None` (the hash length), `"auto"` (any) or a non-negative int.
fn parse_salt(salt: Option<&Bound<'_, PyAny>>) -> Result<Salt> {
    let Some(salt) = salt else {
        return Ok(Salt::HashLen);
    };
    if let Ok(s) = salt.cast::<PyString>() {
        return match s.to_str()? {
            "auto" => Ok(Salt::Auto),
            other => Err(Error::Value(format!(
                "salt_length must be None, \"auto\" or a number of bytes, not {other:?}"
            ))),
        };
    }
    if salt.cast::<PyInt>().is_ok() && !salt.is_instance_of::<pyo3::types::PyBool>() {
        if salt.lt(0)? {
            return Err(Error::Value("salt_length must not be negative".to_owned()));
        }
        // A salt is shorter than the modulus (at most 512 bytes here): a number that does
        // not even fit a machine word is a mistake, not a salt length to try.
        return salt.extract::<usize>().map(Salt::Len).map_err(|_| {
            Error::Value(
                "salt_length is too large: a PSS salt is shorter than the modulus".to_owned(),
            )
        });
    }
    Err(Error::Type(
        "salt_length must be None, \"auto\" or an int".to_owned(),
    ))
}

/// A big-endian byte string as a Python int.
fn to_int<'py>(py: Python<'py>, be: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    py.get_type::<PyInt>()
        .call_method1("from_bytes", (PyBytes::new(py, be), "big"))
}

#[pymethods]
impl RSAPublicKey {
    /// Load a public key from PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`; `str` or bytes) or
    /// DER (SubjectPublicKeyInfo or PKCS#1 `RSAPublicKey`), told apart by their form.
    #[staticmethod]
    fn from_public_bytes(data: &Bound<'_, PyAny>) -> Result<Self> {
        if data.cast::<PyString>().is_ok() {
            return Self::from_pem(data);
        }
        let bytes = bytes_like(data, "data")?;
        if crate::crypto::pkcs8::looks_like_pem(bytes.as_slice()) {
            return Self::from_pem(data);
        }
        Self::from_der(data)
    }

    /// Load a public key from an OpenSSH public key line (`ssh-rsa AAAA... [comment]`, as
    /// in `id_rsa.pub` and `authorized_keys`; `str` or bytes-like). Raises `ValueError`
    /// for a malformed line, another key type or a key keycell does not accept.
    #[staticmethod]
    fn from_openssh(data: &Bound<'_, PyAny>) -> Result<Self> {
        use crate::keyfile::ssh_public::SshPublicKey;
        match common::public_from_openssh(data, "an RSA key", |k| {
            matches!(k, SshPublicKey::Rsa { .. })
        })? {
            SshPublicKey::Rsa { e, n } => Ok(RSAPublicKey {
                key: RsaPublicKey::from_components(&n, &e)?,
            }),
            _ => Err(Error::Value("not an RSA key".to_owned())),
        }
    }

    /// The OpenSSH public key line (`ssh-rsa AAAA...`, then ` comment` if given), as
    /// `ssh-keygen -y` prints it (without the newline).
    #[pyo3(signature = (comment = None))]
    fn to_openssh(&self, comment: Option<&str>) -> Result<String> {
        let key = crate::keyfile::ssh_public::SshPublicKey::Rsa {
            e: self.key.e(),
            n: self.key.n(),
        };
        common::openssh_line(&key, comment)
    }

    /// Load a public key from DER: SubjectPublicKeyInfo or PKCS#1 `RSAPublicKey`.
    #[staticmethod]
    fn from_der(data: &Bound<'_, PyAny>) -> Result<Self> {
        let der = bytes_like(data, "data")?;
        Ok(RSAPublicKey {
            key: RsaPublicKey::from_der(der.as_slice())?,
        })
    }

    /// Load a public key from PEM (`str` or bytes-like): `PUBLIC KEY` or `RSA PUBLIC KEY`.
    #[staticmethod]
    fn from_pem(data: &Bound<'_, PyAny>) -> Result<Self> {
        let text = if let Ok(s) = data.cast::<PyString>() {
            s.to_str()?.to_owned()
        } else {
            String::from_utf8(bytes_like(data, "data")?.as_slice().to_vec())
                .map_err(|_| Error::Value("an RSA public key PEM must be ASCII text".to_owned()))?
        };
        Ok(RSAPublicKey {
            key: RsaPublicKey::from_pem(&text)?,
        })
    }

    /// The encoded key: `encoding` "pem" or "der", `format` "spki" (SubjectPublicKeyInfo,
    /// `openssl pkey -pubout`) or "pkcs1" (`RSAPublicKey`, `openssl rsa -RSAPublicKey_out`).
    #[pyo3(signature = (encoding = "pem", format = "spki"))]
    fn public_bytes<'py>(
        &self,
        py: Python<'py>,
        encoding: &str,
        format: &str,
    ) -> Result<Bound<'py, PyBytes>> {
        let out = match (encoding, format) {
            ("der", "spki") => self.key.spki_der(),
            ("pem", "spki") => self.key.spki_pem().into_bytes(),
            ("der", "pkcs1") => self.key.pkcs1_der().to_vec(),
            ("pem", "pkcs1") => self.key.pkcs1_pem().into_bytes(),
            ("der" | "pem", other) => {
                return Err(Error::Value(format!(
                    "format must be \"spki\" or \"pkcs1\", not {other:?}"
                )))
            }
            (other, _) => {
                return Err(Error::Value(format!(
                    "encoding must be \"pem\" or \"der\", not {other:?}"
                )))
            }
        };
        Ok(PyBytes::new(py, &out))
    }

    /// Verify `signature` over `data`; raises `InvalidSignature` if it does not verify
    /// (a signature of the wrong length included). `padding` and `hash` as for
    /// `RSAPrivateKey.sign`. `salt_length` (PSS only): `None` for the hash length,
    /// `"auto"` to accept any salt length (pyca's `PSS.AUTO`), or a number of bytes. The
    /// GIL is released for messages of 2 KiB and more.
    #[pyo3(signature = (signature, data, *, padding = "pss", hash = "sha256", salt_length = None))]
    fn verify(
        &self,
        py: Python<'_>,
        signature: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        padding: &str,
        hash: &str,
        salt_length: Option<&Bound<'_, PyAny>>,
    ) -> Result<()> {
        let padding = Padding::from_name(padding)?;
        let hash = Hash::from_name(hash)?;
        let salt = parse_salt(salt_length)?;
        if padding == Padding::Pkcs1v15 && salt != Salt::HashLen {
            return Err(Error::Value(
                "salt_length is only for padding=\"pss\"".to_owned(),
            ));
        }
        let sig = bytes_like(signature, "signature")?;
        let msg = bytes_like(data, "data")?;
        let (sig, msg) = (sig.as_slice(), msg.as_slice());
        let key = &self.key;
        maybe_detach(py, msg.len(), || key.verify(padding, hash, salt, msg, sig))
            .map_err(|_| Error::InvalidSignature("the signature does not verify".to_owned()))
    }

    /// The modulus size in bits.
    #[getter]
    fn key_size(&self) -> usize {
        self.key.bits()
    }

    /// The public JSON Web Key as a dict of its required members (RFC 7638 order):
    /// `{"e": ..., "kty": "RSA", "n": ...}` (RFC 7518 §6.3).
    fn to_jwk<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyDict>> {
        jwk::rsa(py, &self.key.n(), &self.key.e())
    }

    /// The modulus `n`.
    #[getter]
    fn n<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_int(py, &self.key.n())
    }

    /// The public exponent `e`.
    #[getter]
    fn e<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_int(py, &self.key.e())
    }

    fn __richcmp__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let py = slf.py();
        let Ok(other) = other.cast::<RSAPublicKey>() else {
            return py.NotImplemented();
        };
        common::compare(py, op, slf.get().key == other.get().key)
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        PyBytes::new(py, self.key.pkcs1_der()).hash()
    }

    fn __repr__(&self) -> String {
        format!("<RSAPublicKey {} bits>", self.key.bits())
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let ctor = py.get_type::<RSAPublicKey>().getattr("from_der")?;
        Ok((ctor, (PyBytes::new(py, &slf.get().key.spki_der()),)))
    }

    fn __copy__(slf: &Bound<'_, Self>) -> Py<Self> {
        slf.clone().unbind()
    }

    fn __deepcopy__(slf: &Bound<'_, Self>, _memo: &Bound<'_, PyAny>) -> Py<Self> {
        slf.clone().unbind()
    }
}
