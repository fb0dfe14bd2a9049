//! What the Ed25519 and X25519 bindings share: creating a private key (generate, bytes,
//! key file) into a [`KeyCell`], the Python methods of every private key class, and the
//! public key helpers. The life cycle (locking, fork check, destroy, seal) is the cell's.

use std::path::Path;
use std::sync::Arc;

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes};

use crate::crypto::curve::CurvePrivateKey;
use crate::crypto::curve::{Algorithm, KEY_LEN};
use crate::crypto::key_kind::KeyKind;
use crate::crypto::pkcs8;
use crate::fs::SecretPath;
use crate::keyfile::ssh_public::SshPublicKey;
use crate::keyfile::{DecodedKeyFile, Format};
use crate::memory::SecretBuf;

use super::bytes_like::{bytes_like, copy_secret_into, SecretSource};
use super::errors::{Error, Result};
use super::isolation_scope::detach;
use super::key_cell::{CellKey, KeyCell, KeyHandle};
use super::key_io;
use super::keyring::{load_private, KeyName};

/// A cell around a new private key; `repr` shows the class and the public key.
pub fn new_cell<K: CurvePrivateKey + CellKey>(
    py: Python<'_>,
    class: &'static str,
    key: K,
    exportable: bool,
) -> Result<Arc<KeyCell<K>>> {
    let label = format!("public={}", hex(key.public_bytes()));
    Ok(Arc::new(KeyCell::new(py, class, key, exportable, label)?))
}

/// A private key copied from a bytes-like object (wiped afterwards when writable and
/// `wipe`).
pub fn key_from_private_bytes<K: CurvePrivateKey>(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    wipe: bool,
) -> Result<K> {
    let src = SecretSource::new(data, "data")?;
    if src.len() != KEY_LEN {
        let what = match K::ALGORITHM {
            Algorithm::Ed25519 => "an Ed25519 private key (seed)",
            Algorithm::X25519 => "an X25519 private key",
        };
        return Err(Error::Value(format!("{what} must be exactly 32 bytes")));
    }
    let key = K::new_with(|dst| copy_secret_into(py, &src, dst))?;
    if wipe && src.writable() {
        src.wipe(py)?;
    }
    Ok(key)
}

/// A private key loaded from a key file (see [`key_io::load_private_key`]) with the GIL
/// released.
pub fn key_from_file<K: CurvePrivateKey>(
    py: Python<'_>,
    path: SecretPath<'_>,
    format: Option<&str>,
    passphrase: Option<&Bound<'_, PyAny>>,
) -> Result<K> {
    let format = key_io::parse_format(KeyKind::from_algorithm(K::ALGORITHM), format)?;
    let passphrase = super::passphrase::key_passphrase(py, passphrase)?;
    detach(py, || {
        key_io::load_private_key::<K>(path, format, passphrase.as_ref())
    })
}

/// Key file bytes the caller holds (`from_pem`, `from_openssh`, ...) copied into a
/// guarded scratch region; a writable source is wiped afterwards when `wipe`. `str` is
/// refused (it cannot be wiped), as is more than a key file may hold.
fn copy_key_data(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    format: Format,
    wipe: bool,
) -> Result<SecretBuf> {
    if data.is_instance_of::<pyo3::types::PyString>() {
        return Err(Error::Type(
            "data must be bytes-like (a bytearray can be wiped afterwards), not str".to_owned(),
        ));
    }
    let src = SecretSource::new(data, "data")?;
    if src.len() == 0 || src.len() > crate::keyfile::MAX_PRIVATE_KEY_FILE_LEN {
        let name = match format {
            Format::OpenSsh => "an OpenSSH private key file".to_owned(),
            f => f.name().to_uppercase(),
        };
        return Err(Error::Value(format!(
            "data must be 1 to {} bytes of {name}",
            crate::keyfile::MAX_PRIVATE_KEY_FILE_LEN,
        )));
    }
    let scratch = SecretBuf::new_with(src.len(), |dst| copy_secret_into(py, &src, dst))?;
    if wipe && src.writable() {
        src.wipe(py)?;
    }
    Ok(scratch)
}

/// The private key constructors from bytes the caller holds (`from_pem`, `from_der`,
/// `from_openssh` of every private key class): `data` copied into a guarded scratch
/// region ([`copy_key_data`]), the passphrase (a `Passphrase` or a writable buffer, if
/// given) into guarded memory, and `decode` run on both without the GIL.
pub fn decode_key_data<K: Send>(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    format: Format,
    passphrase: Option<&Bound<'_, PyAny>>,
    wipe: bool,
    decode: impl FnOnce(SecretBuf, Option<&[u8]>) -> Result<K> + Send,
) -> Result<K> {
    let passphrase = super::passphrase::key_passphrase(py, passphrase)?;
    let scratch = copy_key_data(py, data, format, wipe)?;
    detach(py, || {
        let pass = passphrase.as_ref().map(SecretBuf::bytes).transpose()?;
        decode(scratch, pass)
    })
}

/// `from_openssh` of the Ed25519 private key class: an OpenSSH private key file's bytes,
/// decrypted with `passphrase` in guarded memory ([`decode_key_data`]).
pub fn from_openssh<H: PrivateKeyHandle>(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    passphrase: Option<&Bound<'_, PyAny>>,
    wipe: bool,
    exportable: bool,
) -> Result<H> {
    let kind = KeyKind::from_algorithm(H::Key::ALGORITHM);
    let key = decode_key_data(
        py,
        data,
        Format::OpenSsh,
        passphrase,
        wipe,
        |scratch, pass| {
            let what = format!("{} private key", H::Key::ALGORITHM.name());
            let file =
                DecodedKeyFile::from_private_buffer(scratch, kind, Some(Format::OpenSsh), pass)
                    .map_err(|e| key_io::buffer_error_for(&what, e))?;
            key_io::curve_key_from_decoded::<H::Key>(&file, None)
        },
    )?;
    H::from_key(py, key, exportable)
}

/// An OpenSSH public key line argument (`str` or bytes-like), parsed; `ValueError` if
/// it is malformed or of another key type than `expected` says.
pub fn public_from_openssh(
    data: &Bound<'_, PyAny>,
    expected: &str,
    matches: impl Fn(&SshPublicKey) -> bool,
) -> Result<SshPublicKey> {
    let text = if let Ok(s) = data.cast::<pyo3::types::PyString>() {
        s.to_str()?.to_owned()
    } else {
        String::from_utf8(bytes_like(data, "data")?.as_slice().to_vec())
            .map_err(|_| Error::Value("an OpenSSH public key line is ASCII text".to_owned()))?
    };
    let (key, _comment) = SshPublicKey::from_line(&text)
        .map_err(|e| Error::Value(format!("invalid OpenSSH public key: {e}")))?;
    if !matches(&key) {
        return Err(Error::Value(format!(
            "the OpenSSH public key is an {} key, not {expected}",
            key.type_name()
        )));
    }
    Ok(key)
}

/// The OpenSSH public key line of `key` (`type base64 [comment]`, no newline); a comment
/// with a line break is refused.
pub fn openssh_line(key: &SshPublicKey, comment: Option<&str>) -> Result<String> {
    if comment.is_some_and(|c| c.contains(['\n', '\r'])) {
        return Err(Error::Value(
            "the comment of an OpenSSH public key must not contain a line break".to_owned(),
        ));
    }
    Ok(key.to_line(comment.filter(|c| !c.is_empty())))
}

/// `__richcmp__` of public keys: `==` / `!=` by `equal`, other comparisons unsupported.
pub fn compare(py: Python<'_>, op: CompareOp, equal: bool) -> Py<PyAny> {
    let result = match op {
        CompareOp::Eq => equal,
        CompareOp::Ne => !equal,
        _ => return py.NotImplemented(),
    };
    PyBool::new(py, result).to_owned().into_any().unbind()
}

/// Lowercase hex of public bytes (for `repr`).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A raw 32-byte public key from a bytes-like argument, or `ValueError`.
pub fn raw_public(data: &Bound<'_, PyAny>, alg: Algorithm) -> Result<[u8; 32]> {
    let data = bytes_like(data, "data")?;
    data.as_slice().try_into().map_err(|_| {
        Error::Value(format!(
            "an {} public key must be exactly 32 bytes",
            alg.name()
        ))
    })
}

/// A public key from DER SubjectPublicKeyInfo bytes, or `ValueError`.
pub fn public_from_der(data: &Bound<'_, PyAny>, alg: Algorithm) -> Result<[u8; 32]> {
    let data = bytes_like(data, "data")?;
    pkcs8::parse_spki_der(alg, data.as_slice())
        .map_err(|e| Error::Value(format!("invalid {} public key DER: {e}", alg.name())))
}

/// A public key from a PEM "PUBLIC KEY" block, or `ValueError`.
pub fn public_from_pem(data: &Bound<'_, PyAny>, alg: Algorithm) -> Result<[u8; 32]> {
    let data = zeroize::Zeroizing::new(if let Ok(s) = data.cast::<pyo3::types::PyString>() {
        s.to_str()?.as_bytes().to_vec()
    } else {
        bytes_like(data, "data")?.as_slice().to_vec()
    });
    pkcs8::parse_spki_pem(alg, &data)
        .map_err(|e| Error::Value(format!("invalid {} public key PEM: {e}", alg.name())))
}

/// `bytes` of the DER SubjectPublicKeyInfo.
pub fn der_bytes<'py>(py: Python<'py>, alg: Algorithm, raw: &[u8; 32]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &pkcs8::spki_der(alg, raw))
}

/// `bytes` of the PEM "PUBLIC KEY" block.
pub fn pem_bytes<'py>(py: Python<'py>, alg: Algorithm, raw: &[u8; 32]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &pkcs8::spki_pem(alg, raw))
}

/// A private key class: a [`KeyHandle`] over a curve key. Implementing it and invoking
/// [`private_key_methods!`] (beside [`key_handle_methods!`](super::key_cell::key_handle_methods))
/// gives the class creation from the CSPRNG, bytes, a key file or the kernel keyring, and
/// writing a key file.
pub trait PrivateKeyHandle: KeyHandle<Key: CurvePrivateKey> + Sized {
    /// Wrap a key, exportable or not (also used by the key store and `unwrap_key`).
    fn from_key(py: Python<'_>, key: Self::Key, exportable: bool) -> Result<Self>;
}

/// `generate`: a key from the OS CSPRNG, straight into a guarded region.
pub fn generate<H: PrivateKeyHandle>(py: Python<'_>, exportable: bool) -> Result<H> {
    H::from_key(py, H::Key::generate()?, exportable)
}

/// `from_private_bytes`: see [`key_from_private_bytes`].
pub fn from_private_bytes<H: PrivateKeyHandle>(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    wipe: bool,
    exportable: bool,
) -> Result<H> {
    let key = key_from_private_bytes::<H::Key>(py, data, wipe)?;
    H::from_key(py, key, exportable)
}

/// `from_file` and `from_credential`: see [`key_from_file`].
pub fn from_file<H: PrivateKeyHandle>(
    py: Python<'_>,
    path: SecretPath<'_>,
    format: Option<&str>,
    passphrase: Option<&Bound<'_, PyAny>>,
    exportable: bool,
) -> Result<H> {
    let key = key_from_file::<H::Key>(py, path, format, passphrase)?;
    H::from_key(py, key, exportable)
}

/// `from_keyring`: the 32 key bytes read from the kernel keyring into a guarded region.
pub fn from_keyring<H: PrivateKeyHandle>(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    keyring: Option<&Bound<'_, PyAny>>,
    consume: bool,
    exportable: bool,
) -> Result<H> {
    let name = KeyName::parse_default(key, keyring)?;
    let key = load_private::<H::Key>(py, &name, consume)?;
    H::from_key(py, key, exportable)
}

/// `to_file`: the key as a key file of its algorithm's kind; an OpenSSH one encrypted
/// under `passphrase` (a `Passphrase` or a writable buffer, copied into guarded memory
/// and wiped) if given.
pub fn to_file<H: PrivateKeyHandle>(
    handle: &H,
    py: Python<'_>,
    path: &Path,
    format: &str,
    passphrase: Option<&Bound<'_, PyAny>>,
    overwrite: bool,
) -> Result<()> {
    let kind = KeyKind::from_algorithm(H::Key::ALGORITHM);
    let passphrase = super::passphrase::key_passphrase(py, passphrase)?;
    handle
        .cell()
        .to_file(py, path, kind, format, passphrase.as_ref(), overwrite)
}

/// A second `#[pymethods]` block with the Python methods every private key class has
/// beyond those of every key handle, each a one-line delegation to a helper above. The
/// class implements [`PrivateKeyHandle`]; its own methods (signing, exchange, public key)
/// stay in its own `#[pymethods] impl`.
///
/// `$alg` is the `openssl genpkey -algorithm` name, `$what` what the 32 bytes are called
/// (both only for the docstrings).
macro_rules! private_key_methods {
    ($cls:ty, $alg:literal, $what:literal) => {
        #[::pyo3::pymethods]
        impl $cls {
            /// Generate a key from the OS CSPRNG, straight into a guarded region. With
            /// `exportable=False` the key can never be written to a key file.
            #[staticmethod]
            #[pyo3(signature = (*, exportable = true))]
            fn generate(
                py: ::pyo3::Python<'_>,
                exportable: bool,
            ) -> $crate::py::errors::Result<Self> {
                $crate::py::asymmetric::generate(py, exportable)
            }

            #[doc = concat!("Load a key from its 32-byte ", $what, ", any bytes-like object. \
                When the source is writable and `wipe` is true, it is overwritten with zeros \
                afterwards (a `bytes` object cannot be wiped: avoid holding private keys in \
                `bytes`).")]
            #[staticmethod]
            #[pyo3(signature = (data, *, wipe = true, exportable = true))]
            fn from_private_bytes(
                py: ::pyo3::Python<'_>,
                data: &::pyo3::Bound<'_, ::pyo3::PyAny>,
                wipe: bool,
                exportable: bool,
            ) -> $crate::py::errors::Result<Self> {
                $crate::py::asymmetric::from_private_bytes(py, data, wipe, exportable)
            }

            #[doc = concat!("Load a key from a file: the 32-byte ", $what, " raw, in hex or in \
                base64, or an unencrypted PKCS#8 key (version 1 or 2) in PEM, as `openssl \
                genpkey -algorithm ", $alg, "` writes it, or DER; for Ed25519 also an OpenSSH \
                private key file (`ssh-keygen -t ed25519`), encrypted or not. `format` is \
                \"raw\", \"hex\", \"base64\", \"pem\", \"der\" or \"openssh\", or `None` to \
                detect it (docs/key-formats.md). A public key stored in the file must belong \
                to the private key. `passphrase` decrypts an encrypted OpenSSH key: a \
                `Passphrase` or a writable buffer (copied into guarded memory and wiped); a \
                wrong one raises `KeyFileError`.")]
            #[doc = ""]
            #[doc = "The file is opened with `O_NOFOLLOW` and checked on the open descriptor \
                like `SecretKey.from_file` (regular file, owned by this user, no group or \
                other permissions; or, with `trust=\"mount\"`, where Kubernetes or Docker \
                put it, as `SecretKey.from_file` describes); it is read and decoded in \
                guarded memory only."]
            #[staticmethod]
            #[pyo3(signature = (
                path, *, format = None, passphrase = None, exportable = true, trust = "owner"
            ))]
            fn from_file(
                py: ::pyo3::Python<'_>,
                path: ::std::path::PathBuf,
                format: Option<&str>,
                passphrase: Option<&::pyo3::Bound<'_, ::pyo3::PyAny>>,
                exportable: bool,
                trust: &str,
            ) -> $crate::py::errors::Result<Self> {
                let file = $crate::py::key_io::file_path(&path, trust)?;
                $crate::py::asymmetric::from_file(py, file, format, passphrase, exportable)
            }

            #[doc = "Read the systemd credential `name` from `$CREDENTIALS_DIRECTORY` \
                straight into guarded memory, as `from_file` reads a key file, with the \
                checks of `SecretKey.from_credential` (`CredentialUnavailableError` outside \
                a unit with credentials)."]
            #[staticmethod]
            #[pyo3(signature = (name, *, format = None, passphrase = None, exportable = true))]
            fn from_credential(
                py: ::pyo3::Python<'_>,
                name: &str,
                format: Option<&str>,
                passphrase: Option<&::pyo3::Bound<'_, ::pyo3::PyAny>>,
                exportable: bool,
            ) -> $crate::py::errors::Result<Self> {
                let path = $crate::py::key_io::credential_path(name)?;
                let file = $crate::py::key_io::credential_file(&path);
                $crate::py::asymmetric::from_file(py, file, format, passphrase, exportable)
            }

            #[doc = concat!("Read the 32-byte ", $what, " from the Linux kernel keyring straight \
                into a guarded region, like `SecretKey.from_keyring`: `key` is a description \
                or a serial, the payload size is checked first, and `consume=True` \
                invalidates the kernel key after the read.")]
            #[staticmethod]
            #[pyo3(
                signature = (key, *, keyring = None, consume = false, exportable = true),
                text_signature = "(key, *, keyring='session', consume=False, exportable=True)"
            )]
            fn from_keyring(
                py: ::pyo3::Python<'_>,
                key: &::pyo3::Bound<'_, ::pyo3::PyAny>,
                keyring: Option<&::pyo3::Bound<'_, ::pyo3::PyAny>>,
                consume: bool,
                exportable: bool,
            ) -> $crate::py::errors::Result<Self> {
                $crate::py::asymmetric::from_keyring(py, key, keyring, consume, exportable)
            }

            #[doc = concat!("Write the key to `path` atomically, like `SecretKey.to_file` \
                (mode 0600, `O_EXCL | O_NOFOLLOW` temporary file, `fsync`, rename, directory \
                `fsync`), encoded in guarded memory only. `format` is \"pem\" (PKCS#8 \
                version 1, byte for byte as OpenSSL writes it), \"der\", or the ", $what,
                " as \"raw\", \"hex\" or \"base64\"; for Ed25519 also \"openssh\", an \
                OpenSSH private key file, encrypted as `ssh-keygen` does (bcrypt-pbkdf, 16 \
                rounds, aes256-ctr) when `passphrase` is given (a `Passphrase` or a writable \
                buffer, copied into guarded memory and wiped; other formats refuse one). \
                Raises `KeyNotExportableError` for a sealed key.")]
            #[pyo3(signature = (path, *, format = "pem", passphrase = None, overwrite = false))]
            fn to_file(
                &self,
                py: ::pyo3::Python<'_>,
                path: ::std::path::PathBuf,
                format: &str,
                passphrase: Option<&::pyo3::Bound<'_, ::pyo3::PyAny>>,
                overwrite: bool,
            ) -> $crate::py::errors::Result<()> {
                $crate::py::asymmetric::to_file(self, py, &path, format, passphrase, overwrite)
            }
        }
    };
}

pub(crate) use private_key_methods;
