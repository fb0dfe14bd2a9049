//! The AEAD calls shared by the classes of `aead.rs` and the easy
//! `SecretKey.encrypt`/`decrypt`: argument checks, the output `bytes` built in place, the
//! key borrowed from its cell (GIL released for inputs of 2 KiB and more), error mapping.
//! The cipher itself is `crate::crypto::aead_suite`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::crypto::aead_suite::{AeadAlgorithm, AeadFailure, TAG_LEN};
use crate::crypto::symmetric::SymmetricKey;

use super::bytes_like::{bytes_like, optional_bytes};
use super::errors::{Error, Result};
use super::key_cell::KeyCell;

/// Length of the random nonce the easy API prepends (XChaCha20-Poly1305).
pub const EASY_NONCE_LEN: usize = 24;

pub(crate) fn failure(alg: AeadAlgorithm, class: &str, e: AeadFailure) -> Error {
    match e {
        AeadFailure::InvalidTag => Error::InvalidTag,
        AeadFailure::KeyLength => Error::Value(key_len_message(alg, class)),
        AeadFailure::NonceLength => {
            Error::Value(format!("{class} nonce must be {} bytes", alg.nonce_len()))
        }
        AeadFailure::TooLong => Error::Value(format!("data is too long for {class}")),
        AeadFailure::Memory(e) => Error::Memory(e),
    }
}

pub(crate) fn key_len_message(alg: AeadAlgorithm, class: &str) -> String {
    let sizes = match alg {
        AeadAlgorithm::AesGcm => "128, 192, or 256 bits",
        AeadAlgorithm::AesGcmSiv => "128 or 256 bits",
        _ => "256 bits",
    };
    format!("{class} key must be {sizes}")
}

/// One AEAD algorithm over the key in a cell; `class` names it in messages.
pub(crate) struct Sealer<'a> {
    pub cell: &'a KeyCell<SymmetricKey>,
    pub alg: AeadAlgorithm,
    pub class: &'static str,
}

impl Sealer<'_> {
    /// `prefix || ciphertext || tag` of `data`.
    pub fn encrypt<'py>(
        &self,
        py: Python<'py>,
        nonce: &[u8],
        data: &[u8],
        aad: &[u8],
        prefix: &[u8],
    ) -> Result<Bound<'py, PyBytes>> {
        let (alg, class) = (self.alg, self.class);
        if nonce.len() != alg.nonce_len() {
            return Err(failure(alg, class, AeadFailure::NonceLength));
        }
        let n = data.len();
        let p = prefix.len();
        let total = p
            .checked_add(n)
            .and_then(|v| v.checked_add(TAG_LEN))
            .ok_or_else(|| Error::Value(format!("data is too long for {class}")))?;
        let out = PyBytes::new_with(py, total, |out| {
            self.cell
                .with_key(py, n, |key| {
                    let (head, rest) = out.split_at_mut(p);
                    head.copy_from_slice(prefix);
                    let (body, tag_out) = rest.split_at_mut(n);
                    body.copy_from_slice(data);
                    let tag = key
                        .aead_seal(alg, nonce, aad, body)
                        .map_err(|e| failure(alg, class, e))?;
                    tag_out.copy_from_slice(&tag);
                    Ok(())
                })
                .map_err(PyErr::from)
        })?;
        Ok(out)
    }

    /// The plaintext of `data` (`ciphertext || tag`), or `InvalidTag`. A failed check
    /// returns no bytes object at all, and the buffer it would have been is wiped.
    pub fn decrypt<'py>(
        &self,
        py: Python<'py>,
        nonce: &[u8],
        data: &[u8],
        aad: &[u8],
    ) -> Result<Bound<'py, PyBytes>> {
        let (alg, class) = (self.alg, self.class);
        if nonce.len() != alg.nonce_len() {
            return Err(failure(alg, class, AeadFailure::NonceLength));
        }
        let Some(n) = data.len().checked_sub(TAG_LEN) else {
            self.cell.check_live()?;
            return Err(Error::InvalidTag);
        };
        let (ct, tag) = data.split_at(n);
        let mut tag_arr = [0u8; TAG_LEN];
        tag_arr.copy_from_slice(tag);
        let out = PyBytes::new_with(py, n, |out| {
            self.cell
                .with_key(py, n, |key| {
                    out.copy_from_slice(ct);
                    key.aead_open(alg, nonce, aad, out, &tag_arr)
                        .map_err(|e| failure(alg, class, e))
                })
                .map_err(PyErr::from)
        })?;
        Ok(out)
    }
}

/// `SecretKey.encrypt`: XChaCha20-Poly1305 under a fresh random 24-byte nonce; returns
/// `nonce || ciphertext || tag` (docs/aead.md).
pub(crate) fn easy_encrypt<'py>(
    py: Python<'py>,
    cell: &KeyCell<SymmetricKey>,
    plaintext: &Bound<'py, PyAny>,
    associated_data: Option<&Bound<'py, PyAny>>,
) -> Result<Bound<'py, PyBytes>> {
    let alg = AeadAlgorithm::XChaCha20Poly1305;
    let data = bytes_like(plaintext, "plaintext")?;
    let aad = optional_bytes(associated_data, "associated_data")?;
    check_key(cell, alg, "SecretKey.encrypt")?;
    let mut nonce = [0u8; EASY_NONCE_LEN];
    crate::memory::fill_random(&mut nonce).map_err(Error::Memory)?;
    let aad = aad.as_ref().map_or(&[][..], |a| a.as_slice());
    let sealer = Sealer {
        cell,
        alg,
        class: "SecretKey.encrypt",
    };
    sealer.encrypt(py, &nonce, data.as_slice(), aad, &nonce)
}

/// `SecretKey.decrypt`: the inverse of [`easy_encrypt`]; `InvalidTag` for anything that
/// is not a blob made by it under this key and associated data.
pub(crate) fn easy_decrypt<'py>(
    py: Python<'py>,
    cell: &KeyCell<SymmetricKey>,
    blob: &Bound<'py, PyAny>,
    associated_data: Option<&Bound<'py, PyAny>>,
) -> Result<Bound<'py, PyBytes>> {
    let alg = AeadAlgorithm::XChaCha20Poly1305;
    let blob = bytes_like(blob, "blob")?;
    let aad = optional_bytes(associated_data, "associated_data")?;
    check_key(cell, alg, "SecretKey.decrypt")?;
    let blob = blob.as_slice();
    if blob.len() < EASY_NONCE_LEN + TAG_LEN {
        return Err(Error::InvalidTag);
    }
    let (nonce, rest) = blob.split_at(EASY_NONCE_LEN);
    let aad = aad.as_ref().map_or(&[][..], |a| a.as_slice());
    let sealer = Sealer {
        cell,
        alg,
        class: "SecretKey.decrypt",
    };
    sealer.decrypt(py, nonce, rest, aad)
}

/// `ValueError` unless the key in `cell` has a length `alg` accepts (and the key is live).
pub(crate) fn check_key(
    cell: &KeyCell<SymmetricKey>,
    alg: AeadAlgorithm,
    class: &str,
) -> Result<()> {
    let len = cell.live()?.key().len();
    if alg.key_len_ok(len) {
        Ok(())
    } else {
        Err(Error::Value(key_len_message(alg, class)))
    }
}
