//! The AEAD calls shared by the classes of `aead.rs` and the easy
//! `SecretKey.encrypt`/`decrypt`: argument checks, the output `bytes` built in place, the
//! key borrowed from its cell (GIL released for inputs of 2 KiB and more), error mapping.
//! The cipher itself is `crate::crypto::aead_suite`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::crypto::aead_suite::{
    AeadAlgorithm, AeadFailure, GCM_NONCE_MAX, GCM_NONCE_MIN, TAG_LEN,
};
use crate::crypto::symmetric::SymmetricKey;

use zeroize::{Zeroize, Zeroizing};

use super::buffer_in_place::{new_bytes_from, with_writable_in_place};
use super::bytes_like::{bytes_like, maybe_detach, optional_bytes, writable_buffer, BytesLike};
use super::errors::{Error, Result};
use super::key_cell::KeyCell;

/// Length of the random nonce the easy API prepends (XChaCha20-Poly1305).
pub const EASY_NONCE_LEN: usize = 24;

pub(crate) fn failure(alg: AeadAlgorithm, class: &str, e: AeadFailure) -> Error {
    match e {
        AeadFailure::InvalidTag => Error::InvalidTag,
        AeadFailure::KeyLength => Error::Value(key_len_message(alg, class)),
        AeadFailure::NonceLength => match alg {
            AeadAlgorithm::AesGcm => Error::Value(format!(
                "{class} nonce must be between {GCM_NONCE_MIN} and {GCM_NONCE_MAX} bytes"
            )),
            _ => Error::Value(format!("{class} nonce must be {} bytes", alg.nonce_len())),
        },
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

/// The byte arguments of a pyca-shaped AEAD call (`nonce`, `data`, `associated_data`),
/// each any bytes-like object; a missing `associated_data` is empty.
pub(crate) struct AeadArgs<'py> {
    nonce: BytesLike<'py>,
    data: BytesLike<'py>,
    aad: Option<BytesLike<'py>>,
}

impl<'py> AeadArgs<'py> {
    /// Check and borrow the arguments (`TypeError` naming the one that is not bytes-like).
    pub fn parse(
        nonce: &Bound<'py, PyAny>,
        data: &Bound<'py, PyAny>,
        associated_data: Option<&Bound<'py, PyAny>>,
    ) -> Result<Self> {
        Ok(AeadArgs {
            nonce: bytes_like(nonce, "nonce")?,
            data: bytes_like(data, "data")?,
            aad: optional_bytes(associated_data, "associated_data")?,
        })
    }

    /// `(nonce, data, associated_data)` as slices.
    pub fn slices(&self) -> (&[u8], &[u8], &[u8]) {
        let aad = self.aad.as_ref().map_or(&[][..], |a| a.as_slice());
        (self.nonce.as_slice(), self.data.as_slice(), aad)
    }
}

/// `data` (`ciphertext || tag`) split into the ciphertext and the tag, or `None` when it
/// is shorter than a tag.
fn split_tag(data: &[u8]) -> Option<(&[u8], [u8; TAG_LEN])> {
    let n = data.len().checked_sub(TAG_LEN)?;
    let (ct, tag) = data.split_at(n);
    let mut tag_arr = [0u8; TAG_LEN];
    tag_arr.copy_from_slice(tag);
    Some((ct, tag_arr))
}

/// One AEAD algorithm over the key in a cell; `class` names it in messages.
pub(crate) struct Sealer<'a> {
    pub cell: &'a KeyCell<SymmetricKey>,
    pub alg: AeadAlgorithm,
    pub class: &'static str,
}

impl Sealer<'_> {
    fn check_nonce(&self, nonce: &[u8]) -> Result<()> {
        if self.alg.nonce_len_ok(nonce.len()) {
            Ok(())
        } else {
            Err(failure(self.alg, self.class, AeadFailure::NonceLength))
        }
    }

    /// Encrypt `sealed[..n]` in place and write the tag to `sealed[n..n + TAG_LEN]`; on
    /// failure the body is zeroed (it may hold plaintext).
    fn seal_in_place(
        &self,
        key: &SymmetricKey,
        nonce: &[u8],
        aad: &[u8],
        sealed: &mut [u8],
        n: usize,
    ) -> Result<()> {
        let (body, tag_out) = sealed[..n + TAG_LEN].split_at_mut(n);
        match key.aead_seal(self.alg, nonce, aad, body) {
            Ok(tag) => {
                tag_out.copy_from_slice(&tag);
                Ok(())
            }
            Err(e) => {
                body.zeroize();
                Err(failure(self.alg, self.class, e))
            }
        }
    }

    /// Authenticate and decrypt `out` (the ciphertext, copied there) in place; on failure
    /// `out` is zeroed: it never holds partial or unauthenticated plaintext.
    fn open_in_place(
        &self,
        key: &SymmetricKey,
        nonce: &[u8],
        aad: &[u8],
        out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<()> {
        key.aead_open(self.alg, nonce, aad, out, tag).map_err(|e| {
            out.zeroize();
            failure(self.alg, self.class, e)
        })
    }

    /// `n + TAG_LEN`, or `ValueError` when it overflows.
    fn sealed_len(&self, n: usize) -> Result<usize> {
        n.checked_add(TAG_LEN)
            .filter(|&v| isize::try_from(v).is_ok())
            .ok_or_else(|| Error::Value(format!("data is too long for {}", self.class)))
    }

    /// `prefix || ciphertext || tag` of `data`.
    pub fn encrypt<'py>(
        &self,
        py: Python<'py>,
        nonce: &[u8],
        data: &[u8],
        aad: &[u8],
        prefix: &[u8],
    ) -> Result<Bound<'py, PyBytes>> {
        self.check_nonce(nonce)?;
        let n = data.len();
        let p = prefix.len();
        self.sealed_len(n)?
            .checked_add(p)
            .ok_or_else(|| Error::Value(format!("data is too long for {}", self.class)))?;
        // The output is `prefix || data || zeros(16)` first (no zero-fill before the copy),
        // then `data` is encrypted in place and the tag written after it.
        let copy = |job: &mut (dyn FnMut() + Send)| maybe_detach(py, n, job);
        let out = new_bytes_from(py, prefix, data, TAG_LEN, copy, |out| {
            self.cell.with_key(py, n, |key| {
                self.seal_in_place(key, nonce, aad, &mut out[p..], n)
            })
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
        self.check_nonce(nonce)?;
        let Some((ct, tag)) = split_tag(data) else {
            self.cell.check_live()?;
            return Err(Error::InvalidTag);
        };
        let n = ct.len();
        let copy = |job: &mut (dyn FnMut() + Send)| maybe_detach(py, n, job);
        let out = new_bytes_from(py, &[], ct, 0, copy, |out| {
            self.cell
                .with_key(py, n, |key| self.open_in_place(key, nonce, aad, out, &tag))
        })?;
        Ok(out)
    }

    /// Write `ciphertext || tag` of `data` to the start of the writable buffer `buf` (at
    /// least `len(data) + 16` bytes); returns the bytes written. The message is encrypted
    /// in a private scratch buffer (zeroized when dropped; large ones with the GIL
    /// released) and only the ciphertext is copied into `buf`: `buf` may be memory another
    /// process reads (a `MAP_SHARED` mapping), and the plaintext never appears there.
    pub fn encrypt_into(
        &self,
        py: Python<'_>,
        nonce: &[u8],
        data: &[u8],
        aad: &[u8],
        buf: &Bound<'_, PyAny>,
    ) -> Result<usize> {
        self.check_nonce(nonce)?;
        let n = data.len();
        let need = self.sealed_len(n)?;
        let target = writable_buffer(buf, "buf")?;
        if target.item_count() < need {
            return Err(Error::Value(format!("buf must be at least {need} bytes")));
        }
        let mut scratch = Zeroizing::new(vec![0u8; need]);
        scratch[..n].copy_from_slice(data);
        self.cell.with_key(py, n, |key| {
            self.seal_in_place(key, nonce, aad, &mut scratch, n)
        })?;
        with_writable_in_place(py, &target, |dst| {
            dst[..need].copy_from_slice(&scratch);
            Ok(need)
        })
    }

    /// Authenticate `data` (`ciphertext || tag`) and write its plaintext to the start of
    /// the writable buffer `buf` (at least `len(data) - 16` bytes); returns the bytes
    /// written. The message is decrypted in a private scratch buffer (zeroized when
    /// dropped; large ones with the GIL released) and copied into `buf` only once its tag
    /// checked: `buf` may be memory another thread or process reads (a `MAP_SHARED`
    /// mapping), and no unauthenticated plaintext ever appears there, not even during the
    /// call. When the message does not authenticate the plaintext area of `buf` is zeroed.
    pub fn decrypt_into(
        &self,
        py: Python<'_>,
        nonce: &[u8],
        data: &[u8],
        aad: &[u8],
        buf: &Bound<'_, PyAny>,
    ) -> Result<usize> {
        self.check_nonce(nonce)?;
        let target = writable_buffer(buf, "buf")?;
        let Some((ct, tag)) = split_tag(data) else {
            self.cell.check_live()?;
            return Err(Error::InvalidTag);
        };
        let n = ct.len();
        if target.item_count() < n {
            return Err(Error::Value(format!("buf must be at least {n} bytes")));
        }
        let mut scratch = Zeroizing::new(ct.to_vec());
        // A key that cannot be used (destroyed, forked) fails here and leaves `buf` alone.
        let opened = self.cell.with_key(py, n, |key| {
            Ok(self.open_in_place(key, nonce, aad, &mut scratch, &tag))
        })?;
        with_writable_in_place(py, &target, |dst| {
            let out = &mut dst[..n];
            match opened {
                Ok(()) => {
                    out.copy_from_slice(&scratch);
                    Ok(n)
                }
                Err(e) => {
                    out.zeroize();
                    Err(e)
                }
            }
        })
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
