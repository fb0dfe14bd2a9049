//! `SecretKey`: the Python handle for a symmetric key in a guarded region, a thin class
//! over a [`KeyCell`] (life cycle, locking and fork rules in `key_cell.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use zeroize::Zeroize;

use crate::crypto::hmac::MAX_DIGEST_LEN;
use crate::crypto::key_kind::KeyKind;
use crate::crypto::signer_keys;
use crate::crypto::symmetric::{SymmetricKey, MAX_KEY_LEN};
use crate::crypto::tag::tag_matches;
use crate::encoding::{self, DecodeError, Padding};
use crate::fs::SecretPath;

use super::args::{parse_mac_algorithm, KeyLength};
use super::bytes_like::{bytes_like, copy_secret_into, read_secret_in_place, SecretSource};
use super::errors::{Error, Result};
use super::isolation_scope::detach;
use super::key_cell::{key_handle_methods, KeyCell, KeyHandle, Label, Revoke};
use super::key_io;
use super::view::Exposure;

/// A symmetric secret key (HMAC key, session key) held outside the Python heap.
///
/// The bytes live in a guarded region: guard pages on both sides, a canary, `mlock`,
/// `MADV_DONTDUMP` and `MADV_WIPEONFORK`, read-only while idle, wiped on destroy. Python
/// code only ever holds this opaque handle.
#[pyclass(frozen, module = "keycell._native")]
pub struct SecretKey {
    cell: Arc<KeyCell<SymmetricKey>>,
}

impl SecretKey {
    /// Wrap `key`, exportable or not.
    pub(crate) fn wrap_with(
        py: Python<'_>,
        key: SymmetricKey,
        exportable: bool,
    ) -> Result<SecretKey> {
        let label = Label::Length(key.len());
        Ok(SecretKey {
            cell: Arc::new(KeyCell::new(py, "SecretKey", key, exportable, label)?),
        })
    }

    /// `from_file` and `from_credential`: `file` read straight into a new key's region.
    fn load(
        py: Python<'_>,
        file: SecretPath<'_>,
        length: Option<KeyLength>,
        format: Option<&str>,
        exportable: bool,
    ) -> Result<SecretKey> {
        let length = length.map(|l| l.0);
        if let Some(l) = length {
            if l == 0 || l > MAX_KEY_LEN {
                return Err(Error::Value(format!(
                    "length must be between 1 and {MAX_KEY_LEN} bytes"
                )));
            }
        }
        let format = key_io::parse_format(KeyKind::Secret, format)?;
        let key = detach(py, || -> Result<SymmetricKey> {
            let decoded = key_io::load(file, KeyKind::Secret, format, length)?;
            Ok(SymmetricKey::new_with(decoded.key_len(), |dst| {
                decoded
                    .decode_into(dst)
                    .map_err(|e| key_io::load_error(file.path, e))
            })?)
        })?;
        SecretKey::wrap_with(py, key, exportable)
    }

    /// Read access to the live key, or `KeyDestroyedError` / `ForkedKeyError`.
    pub fn live(&self) -> Result<super::key_cell::LiveKey<'_, SymmetricKey>> {
        self.cell.live()
    }

    /// Whether the key may still be exported (keys derived from it inherit this).
    pub fn exportable_now(&self) -> bool {
        self.cell.exportable()
    }

    /// The full HMAC of `msg` into `out` (GIL released for long messages).
    fn mac(
        &self,
        py: Python<'_>,
        algorithm: &str,
        msg: &[u8],
        out: &mut [u8; MAX_DIGEST_LEN],
    ) -> Result<usize> {
        let alg = parse_mac_algorithm(algorithm)?;
        self.cell.with_key(py, msg.len(), |key| {
            key.hmac(alg, msg, out)?;
            Ok(())
        })?;
        Ok(alg.digest_len())
    }
}

impl SecretKey {
    /// A key derived from this one by `derive` (run under this key's lock), bound to it:
    /// it inherits the export seal and is destroyed (and sealed) with this key, like every
    /// object made from a key (DESIGN.md invariant 11). It is registered while the lock
    /// is held, so a concurrent `destroy()` either ran before (`KeyDestroyedError`) or
    /// sees it.
    fn derive_bound(
        &self,
        py: Python<'_>,
        derive: impl FnOnce(&SymmetricKey) -> Result<SymmetricKey>,
    ) -> Result<SecretKey> {
        let live = self.cell.live()?;
        let derived = SecretKey::wrap_with(py, derive(live.key())?, self.cell.exportable())?;
        let dependent: Arc<dyn Revoke> = derived.cell.clone();
        self.cell.add_dependent(Arc::downgrade(&dependent));
        drop(live);
        Ok(derived)
    }
}

/// The `ValueError` of base64 key text that cannot be decoded (no key bytes, no length).
fn base64_error(e: DecodeError) -> Error {
    Error::Value(format!("the base64 key is not valid: {e}"))
}

/// `InvalidSignature` unless `tag` matches the full HMAC `expected` under the tag rule of
/// `crate::crypto::tag` (full length, or truncated to at least 16 bytes).
pub(crate) fn check_hmac_tag(expected: &[u8], tag: &[u8]) -> Result<()> {
    if tag_matches(expected, tag) {
        Ok(())
    } else {
        Err(Error::InvalidSignature(
            "the HMAC tag does not match".to_owned(),
        ))
    }
}

impl KeyHandle for SecretKey {
    type Key = SymmetricKey;
    fn cell(&self) -> &KeyCell<SymmetricKey> {
        &self.cell
    }
}

key_handle_methods!(SecretKey);

#[pymethods]
impl SecretKey {
    /// Generate a key of `length` bytes from the OS CSPRNG, straight into a guarded region.
    /// With `exportable=False` the key can never be exposed or written to a key file.
    #[staticmethod]
    #[pyo3(
        signature = (length = KeyLength(32), *, exportable = true),
        text_signature = "(length=32, *, exportable=True)"
    )]
    fn generate(py: Python<'_>, length: KeyLength, exportable: bool) -> Result<SecretKey> {
        let key = SymmetricKey::generate(length.0)?;
        SecretKey::wrap_with(py, key, exportable)
    }

    /// Copy a key from any bytes-like object. When the source is writable and `wipe` is
    /// true, the source is overwritten with zeros afterwards.
    #[staticmethod]
    #[pyo3(signature = (data, *, wipe = true, exportable = true))]
    fn from_buffer(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        wipe: bool,
        exportable: bool,
    ) -> Result<SecretKey> {
        let src = SecretSource::new(data, "data")?;
        let key = SymmetricKey::new_with(src.len(), |dst| copy_secret_into(py, &src, dst))?;
        if wipe && src.writable() {
            src.wipe(py)?;
        }
        SecretKey::wrap_with(py, key, exportable)
    }

    /// Decode a key from standard base64 text (RFC 4648 section 4, padded or not; ASCII
    /// whitespace ignored; URL-safe base64 refused) straight into a guarded region.
    ///
    /// `buf` is a bytes-like object (a `bytearray` read from a file or an environment
    /// variable); `str` is refused because it cannot be wiped. It is read where it is,
    /// never copied (whatever its item format: `array('b')`, `array('I')`), and a writable
    /// `buf` is zeroed afterwards when `wipe` is true, whether or not it decoded; one refused
    /// for its layout (a non-contiguous view: `ValueError`) is zeroed before the refusal. `prefix` (e.g. `b"whsec_"`, the Standard Webhooks
    /// secret prefix) is skipped when the text starts with it. Malformed text raises
    /// `ValueError` without showing it.
    #[staticmethod]
    #[pyo3(signature = (buf, *, prefix = None, wipe = true, exportable = true))]
    fn from_base64(
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        prefix: Option<&Bound<'_, PyAny>>,
        wipe: bool,
        exportable: bool,
    ) -> Result<SecretKey> {
        let prefix = super::bytes_like::optional_bytes(prefix, "prefix")?;
        let prefix = prefix.as_ref().map_or(&[][..], |p| p.as_slice());
        let key = read_secret_in_place(py, buf, wipe, |text| -> Result<SymmetricKey> {
            let body = text.strip_prefix(prefix).unwrap_or(text);
            let len =
                encoding::base64_decoded_len_with(body, Padding::Optional).map_err(base64_error)?;
            if len > MAX_KEY_LEN {
                return Err(Error::Value(format!(
                    "key length must be between 1 and {MAX_KEY_LEN} bytes"
                )));
            }
            Ok(SymmetricKey::new_with(len, |dst| {
                encoding::base64_decode_into_with(body, dst, Padding::Optional)
                    .map_err(base64_error)
            })?)
        })?;
        SecretKey::wrap_with(py, key, exportable)
    }

    /// Read a key from a file, straight into a guarded region.
    ///
    /// The file is opened with `O_NOFOLLOW | O_CLOEXEC` and checked on the open
    /// descriptor: it must be a regular file owned by this user with no group or other
    /// permissions, and not empty. It is read into a guarded scratch region and decoded
    /// from there straight into the key's region.
    ///
    /// `trust="mount"` accepts, instead, a secret where Kubernetes or Docker put it: a
    /// regular file of mode at most 0644 owned by root (or this user), reached through
    /// links owned by root or this user only inside its directory (Kubernetes' `name ->
    /// ..data/name`, `..data -> ..<timestamp>`), every directory on the way owned by root
    /// or this user and not writable by group or others unless it has the sticky bit. The
    /// overflow uid (65534) is never trusted as an owner, and whether the mount is
    /// read-only is not looked at. Each component is opened with `openat(O_NOFOLLOW)` and
    /// checked on its descriptor.
    ///
    /// `format` is `"raw"`, `"hex"` or `"base64"`, or `None` to detect it: with `length`
    /// given, the one encoding that yields exactly `length` bytes (raw when the file has
    /// exactly `length` bytes); without it, binary content is raw and hex text is hex, and
    /// any other text must be named with `format` (see docs/key-formats.md).
    #[staticmethod]
    #[pyo3(signature = (path, *, length = None, format = None, exportable = true, trust = "owner"))]
    fn from_file(
        py: Python<'_>,
        path: PathBuf,
        length: Option<KeyLength>,
        format: Option<&str>,
        exportable: bool,
        trust: &str,
    ) -> Result<SecretKey> {
        let file = key_io::file_path(&path, trust)?;
        SecretKey::load(py, file, length, format, exportable)
    }

    /// Read the systemd credential `name` (`LoadCredential=`, `LoadCredentialEncrypted=`,
    /// `SetCredential=`) from `$CREDENTIALS_DIRECTORY` straight into a guarded region, as
    /// `from_file` reads a key file (`length` and `format` the same). The directory must be
    /// owned by root or this user and read-only, as systemd makes it; the file is opened
    /// with `O_NOFOLLOW`, its mode at most 0644. `name` is a file name: no `/`, not `.` or
    /// `..` (`ValueError`). Raises `CredentialUnavailableError` when
    /// `$CREDENTIALS_DIRECTORY` is not set (not inside a unit with credentials).
    #[staticmethod]
    #[pyo3(signature = (name, *, length = None, format = None, exportable = true))]
    fn from_credential(
        py: Python<'_>,
        name: &str,
        length: Option<KeyLength>,
        format: Option<&str>,
        exportable: bool,
    ) -> Result<SecretKey> {
        let path = key_io::credential_path(name)?;
        SecretKey::load(
            py,
            key_io::credential_file(&path),
            length,
            format,
            exportable,
        )
    }

    /// Read a key from the Linux kernel keyring straight into a guarded region.
    ///
    /// `key` is a description (a `user` key searched for from `keyring` and the keyrings
    /// it links to) or a key serial (`int`). The payload size is asked first
    /// (`KEYCTL_READ` with an empty buffer) and checked against `length` when given;
    /// then the payload is read into a new region of exactly that size (a payload that
    /// changes size in between is read again). With `consume=True` the kernel key is
    /// invalidated after the read: a one-shot hand-off between processes. Raises the
    /// `KeyringError` subclasses (not found, expired, permission, quota, unavailable).
    #[staticmethod]
    #[pyo3(
        signature = (key, *, keyring = None, consume = false, length = None, exportable = true),
        text_signature = "(key, *, keyring='session', consume=False, length=None, exportable=True)"
    )]
    fn from_keyring(
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        keyring: Option<&Bound<'_, PyAny>>,
        consume: bool,
        length: Option<KeyLength>,
        exportable: bool,
    ) -> Result<SecretKey> {
        let name = super::keyring::KeyName::parse_default(key, keyring)?;
        let key = super::keyring::load_symmetric(py, &name, consume, length.map(|l| l.0))?;
        SecretKey::wrap_with(py, key, exportable)
    }

    /// Write the key to `path` atomically: a temporary file in the same directory created
    /// with `O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600, written from the key's region (hex
    /// and base64 are encoded in a guarded scratch region), `fsync`ed, renamed into place,
    /// and the directory `fsync`ed. A crash never leaves a partial file under `path`.
    /// Without `overwrite`, an existing `path` is never replaced (`KeyFileError`, errno
    /// `EEXIST`). Raises `KeyNotExportableError` for a sealed key.
    #[pyo3(signature = (path, *, format = "raw", overwrite = false))]
    fn to_file(&self, py: Python<'_>, path: PathBuf, format: &str, overwrite: bool) -> Result<()> {
        self.cell
            .to_file(py, &path, KeyKind::Secret, format, None, overwrite)
    }

    /// The key length in bytes. Raises `KeyDestroyedError` after `destroy()`, like every
    /// other use.
    fn __len__(&self) -> Result<usize> {
        Ok(self.cell.live()?.key().len())
    }

    /// A context manager yielding a read-only `memoryview` of the key bytes, valid only
    /// inside the `with` block. Leaving the block while the view, or a slice or cast of
    /// it, is still referenced raises `BufferError`. Raises `KeyNotExportableError` for a
    /// sealed key.
    fn expose(&self) -> Result<Exposure> {
        self.cell.check_live()?;
        self.cell.check_exportable()?;
        Ok(Exposure::new(self.cell.clone()))
    }

    /// HMAC of `data` (any bytes-like object) with this key; returns the tag as `bytes`.
    ///
    /// `algorithm` is "sha256" (default), "sha384" or "sha512", or "sha1" for legacy
    /// protocols that require HMAC-SHA1 (GitHub's `X-Hub-Signature`, Twilio, the default
    /// signers of itsdangerous and Django; new protocols should use SHA-2). The key-derived
    /// inner and outer hash states are precomputed in the key's guarded region, so a short
    /// message costs two hash compressions. Inputs of 2 KiB or more are hashed with the GIL
    /// released.
    #[pyo3(signature = (data, algorithm = "sha256"))]
    fn hmac<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        algorithm: &str,
    ) -> Result<Bound<'py, PyBytes>> {
        let data = bytes_like(data, "data")?;
        let mut out = [0u8; MAX_DIGEST_LEN];
        let n = self.mac(py, algorithm, data.as_slice(), &mut out)?;
        Ok(PyBytes::new(py, &out[..n]))
    }

    /// Verify an HMAC `tag` over `data` in constant time; raises `InvalidSignature` when it
    /// does not match.
    ///
    /// A tag of the full digest length is compared in full. A shorter (truncated) tag is
    /// compared with the same number of leading bytes of the HMAC, but only when it is at
    /// least 16 bytes long; a tag shorter than 16 bytes or longer than the digest never
    /// verifies. `algorithm` as for `hmac` ("sha1" for legacy protocols only).
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
        let mut expected = [0u8; MAX_DIGEST_LEN];
        let result = self
            .mac(py, algorithm, data.as_slice(), &mut expected)
            .and_then(|n| check_hmac_tag(&expected[..n], tag.as_slice()));
        expected[..].zeroize();
        result
    }

    /// A new key that is the hash of `prefix || key`, computed inside keycell: the
    /// derivation of itsdangerous's `concat` and `django-concat` signers and of Django's
    /// `salted_hmac` (`sha1(key_salt + secret)`). `algorithm` is "sha1" (those formats'
    /// default), "sha256", "sha384" or "sha512"; the new key has the digest's length.
    ///
    /// The running hash state is wiped before the call returns and the digest is written
    /// straight into the new key's guarded region. The new key is bound to this one: it
    /// is sealed when this key is, and destroyed with it. Not a modern KDF: use `hkdf`
    /// for new designs.
    #[pyo3(signature = (prefix, algorithm = "sha256"))]
    fn derive_digest(
        &self,
        py: Python<'_>,
        prefix: &Bound<'_, PyAny>,
        algorithm: &str,
    ) -> Result<SecretKey> {
        let alg = parse_mac_algorithm(algorithm)?;
        let prefix = bytes_like(prefix, "prefix")?;
        self.derive_bound(py, |key| {
            Ok(signer_keys::digest_key(alg, prefix.as_slice(), key)?)
        })
    }

    /// A new key that is the HMAC of `data` under this key, computed inside keycell: the
    /// `hmac` derivation of itsdangerous's signers. Returns a `SecretKey` of the digest's
    /// length, never `bytes` (use `hmac()` for a tag). `algorithm` as for `hmac`.
    ///
    /// The new key is bound to this one: it is sealed when this key is, and destroyed with
    /// it.
    #[pyo3(signature = (data, algorithm = "sha256"))]
    fn hmac_key(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        algorithm: &str,
    ) -> Result<SecretKey> {
        let alg = parse_mac_algorithm(algorithm)?;
        let data = bytes_like(data, "data")?;
        self.derive_bound(py, |key| {
            Ok(signer_keys::hmac_key(alg, key, data.as_slice())?)
        })
    }

    /// Encrypt `plaintext` with XChaCha20-Poly1305 under a fresh random 24-byte nonce
    /// (this key must be 32 bytes), authenticating `associated_data` too. Returns
    /// `nonce (24) || ciphertext || tag (16)`, the layout of libsodium's
    /// `crypto_aead_xchacha20poly1305_ietf` (docs/aead.md). A random 192-bit nonce never
    /// repeats in practice, so this cannot reuse a nonce.
    #[pyo3(signature = (plaintext, *, associated_data = None))]
    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        plaintext: &Bound<'py, PyAny>,
        associated_data: Option<&Bound<'py, PyAny>>,
    ) -> Result<Bound<'py, PyBytes>> {
        super::aead_calls::easy_encrypt(py, &self.cell, plaintext, associated_data)
    }

    /// Decrypt a blob made by `encrypt()` with this key and the same `associated_data`;
    /// raises `keycell.InvalidTag` for anything else (no partial plaintext).
    #[pyo3(signature = (blob, *, associated_data = None))]
    fn decrypt<'py>(
        &self,
        py: Python<'py>,
        blob: &Bound<'py, PyAny>,
        associated_data: Option<&Bound<'py, PyAny>>,
    ) -> Result<Bound<'py, PyBytes>> {
        super::aead_calls::easy_decrypt(py, &self.cell, blob, associated_data)
    }
}
