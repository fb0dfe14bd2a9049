//! `keycell.wrap_key` / `keycell.unwrap_key`: a key handle encrypted under a 32-byte
//! `SecretKey` (XChaCha20-Poly1305), and decrypted back straight into a guarded region as
//! the same handle type. The blob (docs/aead.md, "Key wrapping"):
//!
//! ```text
//! "KCW1" | kind (1: SecretKey, 2: Ed25519, 3: X25519, 4: EC P-256, 5: EC P-384, 6: RSA)
//!        | flags (bit 0: exportable)
//!        | key length (4, big-endian) | nonce (24) | ciphertext | tag (16)
//! ```
//!
//! The first 10 bytes are the associated data, so the type, the export flag and the length
//! are authenticated with the key. An EC key's secret is its scalar (big-endian, the
//! curve's width: 32 or 48 bytes), the kind names the curve; the public point is derived
//! again when it is unwrapped. An RSA key's secret is its PKCS#1 `RSAPrivateKey` DER,
//! decoded from a guarded region on unwrap.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::crypto::aead_suite::{self, AeadAlgorithm, AeadFailure, TAG_LEN};
use crate::crypto::curve::CurvePrivateKey;
use crate::crypto::ec::{self, Curve};
use crate::crypto::rsa::RsaPrivateKey;
use crate::crypto::symmetric::{SymmetricKey, MAX_KEY_LEN};
use crate::crypto::{ed25519, x25519};
use crate::memory::SecretBuf;

use super::args::{handle, type_name};
use super::asymmetric::PrivateKeyHandle;
use super::bytes_like::bytes_like;
use super::ec::ECPrivateKey;
use super::ed25519::Ed25519PrivateKey;
use super::errors::{Error, Result};
use super::key_cell::KeyHandle;
use super::keyring::MAX_RSA_DER_LEN;
use super::rsa::RSAPrivateKey;
use super::secret_key::SecretKey;
use super::x25519::X25519PrivateKey;

const MAGIC: &[u8; 4] = b"KCW1";
const HEADER_LEN: usize = 10;
const NONCE_LEN: usize = 24;
const ALG: AeadAlgorithm = AeadAlgorithm::XChaCha20Poly1305;

/// The blob's kind byte of an EC key on `curve`.
fn ec_kind(curve: Curve) -> u8 {
    match curve {
        Curve::P256 => 4,
        Curve::P384 => 5,
    }
}

fn header(kind: u8, exportable: bool, len: usize) -> Result<[u8; HEADER_LEN]> {
    let len = u32::try_from(len).map_err(|_| Error::Value("key too long to wrap".to_owned()))?;
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4] = kind;
    h[5] = u8::from(exportable);
    h[6..].copy_from_slice(&len.to_be_bytes());
    Ok(h)
}

fn wrapping_cell(obj: &Bound<'_, PyAny>) -> Result<Py<SecretKey>> {
    let k = handle::<SecretKey>(obj, "wrapping_key", "SecretKey", "")?;
    if k.get().cell().live()?.key().len() != 32 {
        return Err(Error::Value("wrapping_key must be 256 bits".to_owned()));
    }
    Ok(k.clone().unbind())
}

fn aead_err(e: AeadFailure) -> Error {
    match e {
        AeadFailure::InvalidTag => Error::InvalidTag,
        _ => Error::Value("the key cannot be wrapped".to_owned()),
    }
}

/// `key.wrap_key(other)` / `key.unwrap_key(blob)`: the same operations as methods of the
/// wrapping key. A second `#[pymethods]` block (PyO3's `multiple-pymethods`) keeps them
/// here, next to the format, so `secret_key.rs` need not know the other handle types.
#[pymethods]
impl SecretKey {
    /// Encrypt the secret of `key` (a `SecretKey`, `Ed25519PrivateKey`,
    /// `X25519PrivateKey`, `ECPrivateKey` or `RSAPrivateKey`) under this 32-byte key; the same as
    /// `keycell.wrap_key(self, key)`. `SecretKey.unwrap_key` returns the same handle type.
    #[pyo3(signature = (key, /))]
    fn wrap_key<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
    ) -> Result<Bound<'py, PyBytes>> {
        wrap_key(slf.py(), slf.as_any(), key)
    }

    /// Decrypt a blob made by `wrap_key` under this key, straight into a new guarded
    /// region, as the handle type that was wrapped; the same as
    /// `keycell.unwrap_key(self, blob)`.
    #[pyo3(signature = (blob, /))]
    fn unwrap_key(slf: &Bound<'_, Self>, blob: &Bound<'_, PyAny>) -> Result<Py<PyAny>> {
        unwrap_key(slf.py(), slf.as_any(), blob)
    }
}

/// Encrypt the secret of `key` (a `SecretKey`, `Ed25519PrivateKey`, `X25519PrivateKey`,
/// `ECPrivateKey`: its scalar, or `RSAPrivateKey`: its PKCS#1 DER) under `wrapping_key` (a 32-byte `SecretKey`) with XChaCha20-Poly1305 and a random
/// nonce. The blob records and authenticates the key's type, length and export seal;
/// `unwrap_key` returns the same handle type. A sealed key (`exportable=False`) can be
/// wrapped and stays sealed when unwrapped.
#[pyfunction]
#[pyo3(signature = (wrapping_key, key, /))]
pub fn wrap_key<'py>(
    py: Python<'py>,
    wrapping_key: &Bound<'py, PyAny>,
    key: &Bound<'py, PyAny>,
) -> Result<Bound<'py, PyBytes>> {
    let wk = wrapping_cell(wrapping_key)?;
    if key.is(wrapping_key) {
        // Also keeps one cell's lock from being read-locked twice by this thread.
        return Err(Error::Value("a key cannot wrap itself".to_owned()));
    }
    let wk = wk.bind(py).get();
    let mut nonce = [0u8; NONCE_LEN];
    crate::memory::fill_random(&mut nonce).map_err(Error::Memory)?;
    let seal = |kind: u8, exportable: bool, secret: &[u8]| -> Result<Bound<'py, PyBytes>> {
        let h = header(kind, exportable, secret.len())?;
        let n = secret.len();
        // Encrypted in place in a guarded scratch region, so the plaintext never touches
        // the output `bytes` (not even on an error path, where it would be freed unwiped).
        let mut tag = [0u8; TAG_LEN];
        let sealed = SecretBuf::new_with(n, |body| -> Result<()> {
            body.copy_from_slice(secret);
            let live = wk.cell().live()?;
            let wkey = live.key().bytes()?;
            tag = aead_suite::seal(ALG, wkey, &nonce, &h, body).map_err(aead_err)?;
            Ok(())
        })?;
        let ciphertext = sealed.bytes()?;
        let out = PyBytes::new_with(py, HEADER_LEN + NONCE_LEN + n + TAG_LEN, |out| {
            let (head, rest) = out.split_at_mut(HEADER_LEN);
            head.copy_from_slice(&h);
            let (nonce_out, rest) = rest.split_at_mut(NONCE_LEN);
            nonce_out.copy_from_slice(&nonce);
            let (body, tag_out) = rest.split_at_mut(n);
            body.copy_from_slice(ciphertext);
            tag_out.copy_from_slice(&tag);
            Ok(())
        })?;
        Ok(out)
    };
    if let Ok(k) = key.cast::<SecretKey>() {
        let cell = k.get().cell();
        let live = cell.live()?;
        return seal(1, cell.exportable(), live.key().bytes()?);
    }
    if let Ok(k) = key.cast::<Ed25519PrivateKey>() {
        let cell = k.get().cell();
        let live = cell.live()?;
        return seal(2, cell.exportable(), live.key().private_bytes()?);
    }
    if let Ok(k) = key.cast::<X25519PrivateKey>() {
        let cell = k.get().cell();
        let live = cell.live()?;
        return seal(3, cell.exportable(), live.key().private_bytes()?);
    }
    if let Ok(k) = key.cast::<ECPrivateKey>() {
        let cell = k.get().cell();
        let live = cell.live()?;
        let kind = ec_kind(live.key().curve());
        return seal(kind, cell.exportable(), live.key().private_bytes()?);
    }
    if let Ok(k) = key.cast::<RSAPrivateKey>() {
        let cell = k.get().cell();
        let live = cell.live()?;
        return seal(6, cell.exportable(), live.key().pkcs1_der()?);
    }
    Err(Error::Type(format!(
        "key must be a SecretKey, Ed25519PrivateKey, X25519PrivateKey, ECPrivateKey or \
         RSAPrivateKey, not {}",
        type_name(key)
    )))
}

/// Decrypt a blob made by `wrap_key` under the same `wrapping_key`, straight into a new
/// guarded region, as the handle type that was wrapped. Raises `keycell.InvalidTag` for a
/// wrong wrapping key or a modified blob, and `ValueError` for something that is not a
/// wrapped key at all.
#[pyfunction]
#[pyo3(signature = (wrapping_key, blob, /))]
pub fn unwrap_key(
    py: Python<'_>,
    wrapping_key: &Bound<'_, PyAny>,
    blob: &Bound<'_, PyAny>,
) -> Result<Py<PyAny>> {
    let wk = wrapping_cell(wrapping_key)?;
    let wk = wk.bind(py).get();
    let blob = bytes_like(blob, "blob")?;
    let blob = blob.as_slice();
    let bad = || Error::Value("not a wrapped key (made by keycell.wrap_key)".to_owned());
    if blob.len() < HEADER_LEN + NONCE_LEN + TAG_LEN || &blob[..4] != MAGIC {
        return Err(bad());
    }
    let (h, rest) = blob.split_at(HEADER_LEN);
    let (kind, flags) = (h[4], h[5]);
    let len = u32::from_be_bytes([h[6], h[7], h[8], h[9]]) as usize;
    if flags > 1 || rest.len() != NONCE_LEN + len + TAG_LEN {
        return Err(bad());
    }
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(len);
    let mut tag_arr = [0u8; TAG_LEN];
    tag_arr.copy_from_slice(tag);
    let live = wk.cell().live()?;
    let wkey = live.key().bytes()?;
    let fill = |dst: &mut [u8]| -> Result<()> {
        dst.copy_from_slice(ct);
        aead_suite::open(ALG, wkey, nonce, h, dst, &tag_arr).map_err(aead_err)
    };
    let exportable = flags == 1;
    match kind {
        1 if (1..=MAX_KEY_LEN).contains(&len) => {
            let k = SymmetricKey::new_with(len, fill)?;
            drop(live);
            Ok(Py::new(py, SecretKey::wrap_with(py, k, exportable)?)?.into_any())
        }
        2 if len == 32 => {
            let k = ed25519::PrivateKey::new_with(fill)?;
            drop(live);
            Ok(Py::new(py, Ed25519PrivateKey::from_key(py, k, exportable)?)?.into_any())
        }
        3 if len == 32 => {
            let k = x25519::PrivateKey::new_with(fill)?;
            drop(live);
            Ok(Py::new(py, X25519PrivateKey::from_key(py, k, exportable)?)?.into_any())
        }
        4 | 5 => {
            let curve = if kind == 4 { Curve::P256 } else { Curve::P384 };
            if len != curve.scalar_len() {
                return Err(bad());
            }
            let k = ec::PrivateKey::new_with(curve, fill)?;
            drop(live);
            Ok(Py::new(py, ECPrivateKey::from_key(py, k, exportable)?)?.into_any())
        }
        6 if (1..=MAX_RSA_DER_LEN).contains(&len) => {
            let der = SecretBuf::new_with(len, fill)?;
            drop(live);
            let k = RsaPrivateKey::from_der(der.bytes()?)?;
            Ok(Py::new(py, RSAPrivateKey::wrap(py, k, exportable)?)?.into_any())
        }
        _ => Err(bad()),
    }
}
