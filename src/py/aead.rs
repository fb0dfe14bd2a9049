//! `AESGCM`, `ChaCha20Poly1305`, `XChaCha20Poly1305` and `AESGCMSIV`: pyca-shaped AEAD
//! objects over a `SecretKey`. The calls are `aead_calls.rs`; the cipher itself is
//! `crate::crypto::aead_suite` (where the key schedule lives is explained there).
//!
//! An AEAD object holds a reference to its `SecretKey`, not a copy of the key: every call
//! borrows the key under its cell's lock, so destroying the key makes the object raise
//! `KeyDestroyedError`, and a fork child gets `ForkedKeyError`.

use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::True;
use pyo3::types::PyBytes;
use pyo3::PyClass;

use crate::crypto::aead_suite::AeadAlgorithm;
use crate::crypto::symmetric::SymmetricKey;

use super::aead_calls::{check_key, key_len_message, AeadArgs, Sealer};
use super::args::handle;
use super::errors::{Error, Result};
use super::key_cell::KeyHandle;
use super::secret_key::SecretKey;

/// A pyca-shaped AEAD class over a `SecretKey`: its algorithm and the key it holds (its
/// Python name, for messages and `repr`, is `PyClass::NAME`). Implementing it and invoking
/// [`aead_methods!`] gives the class its methods, which are the same for every algorithm.
pub trait AeadClass: PyClass<Frozen = True> + Sync + Sized {
    /// The algorithm.
    const ALG: AeadAlgorithm;
    /// An object over `key` (already checked).
    fn with_key(key: Py<SecretKey>) -> Self;
    /// The key.
    fn key(&self) -> &Py<SecretKey>;
}

fn sealer<'a, C: AeadClass>(aead: &'a C, py: Python<'a>) -> Sealer<'a> {
    Sealer {
        cell: aead.key().bind(py).get().cell(),
        alg: C::ALG,
        class: C::NAME,
    }
}

/// The constructor: `key` must be a `SecretKey` of a size the algorithm takes.
pub fn new<C: AeadClass>(key: &Bound<'_, PyAny>) -> Result<C> {
    let key = handle::<SecretKey>(key, "key", "SecretKey", "")?;
    check_key(key.get().cell(), C::ALG, C::NAME)?;
    Ok(C::with_key(key.clone().unbind()))
}

/// `generate_key`: a new `SecretKey` of `bit_length` bits, if the algorithm takes it.
pub fn generate_key<C: AeadClass>(py: Python<'_>, bit_length: i64) -> Result<SecretKey> {
    let bytes = usize::try_from(bit_length / 8).unwrap_or(0);
    if bit_length % 8 != 0 || !C::ALG.key_len_ok(bytes) {
        return Err(Error::Value(key_len_message(C::ALG, C::NAME)));
    }
    let key = SymmetricKey::generate(bytes)?;
    SecretKey::wrap_with(py, key, true)
}

/// `encrypt`: `ciphertext || tag`.
pub fn encrypt<'py, C: AeadClass>(
    aead: &C,
    py: Python<'py>,
    nonce: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    associated_data: Option<&Bound<'py, PyAny>>,
) -> Result<Bound<'py, PyBytes>> {
    let args = AeadArgs::parse(nonce, data, associated_data)?;
    let (nonce, data, aad) = args.slices();
    sealer(aead, py).encrypt(py, nonce, data, aad, &[])
}

/// `decrypt`: the plaintext of `ciphertext || tag`, or `InvalidTag`.
pub fn decrypt<'py, C: AeadClass>(
    aead: &C,
    py: Python<'py>,
    nonce: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    associated_data: Option<&Bound<'py, PyAny>>,
) -> Result<Bound<'py, PyBytes>> {
    let args = AeadArgs::parse(nonce, data, associated_data)?;
    let (nonce, data, aad) = args.slices();
    sealer(aead, py).decrypt(py, nonce, data, aad)
}

/// `encrypt_into`: `ciphertext || tag` written to `buf`; the bytes written.
pub fn encrypt_into<C: AeadClass>(
    aead: &C,
    py: Python<'_>,
    nonce: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    associated_data: Option<&Bound<'_, PyAny>>,
    buf: &Bound<'_, PyAny>,
) -> Result<usize> {
    let args = AeadArgs::parse(nonce, data, associated_data)?;
    let (nonce, data, aad) = args.slices();
    sealer(aead, py).encrypt_into(py, nonce, data, aad, buf)
}

/// `decrypt_into`: the plaintext written to `buf`; the bytes written.
pub fn decrypt_into<C: AeadClass>(
    aead: &C,
    py: Python<'_>,
    nonce: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    associated_data: Option<&Bound<'_, PyAny>>,
    buf: &Bound<'_, PyAny>,
) -> Result<usize> {
    let args = AeadArgs::parse(nonce, data, associated_data)?;
    let (nonce, data, aad) = args.slices();
    sealer(aead, py).decrypt_into(py, nonce, data, aad, buf)
}

/// The `TypeError` of pickling an AEAD object.
pub fn refuse_pickle<C: AeadClass>() -> Error {
    Error::Type(format!(
        "{} cannot be pickled: its key is kept out of Python memory on purpose",
        C::NAME
    ))
}

/// [`AeadClass`] for `$cls` (a struct with a field `key: Py<SecretKey>`) with algorithm
/// `$alg`, and its `#[pymethods]` block (every method is the same for every algorithm),
/// each a one-line delegation to a helper above, and the refusal to become text
/// (`text_refusing!`).
macro_rules! aead_methods {
    ($cls:ident, $alg:expr) => {
        impl AeadClass for $cls {
            const ALG: AeadAlgorithm = $alg;
            fn with_key(key: Py<SecretKey>) -> Self {
                $cls { key }
            }
            fn key(&self) -> &Py<SecretKey> {
                &self.key
            }
        }

        $crate::py::text_refusal::text_refusing!($cls);

        #[pymethods]
        impl $cls {
            #[new]
            #[pyo3(signature = (key, /))]
            fn new(key: &Bound<'_, PyAny>) -> Result<Self> {
                new(key)
            }

            /// Generate a new key of `bit_length` bits from the OS CSPRNG, straight into a
            /// guarded region, as a `SecretKey`.
            #[staticmethod]
            #[pyo3(signature = (bit_length = 256), text_signature = "(bit_length=256)")]
            fn generate_key(py: Python<'_>, bit_length: i64) -> Result<SecretKey> {
                generate_key::<Self>(py, bit_length)
            }

            /// Encrypt and authenticate `data`, authenticating `associated_data` too;
            /// returns `ciphertext || tag` (16-byte tag), as pyca/cryptography does. Never
            /// reuse a nonce with the same key. Inputs of 2 KiB or more run with the GIL
            /// released.
            #[pyo3(signature = (nonce, data, associated_data))]
            fn encrypt<'py>(
                &self,
                py: Python<'py>,
                nonce: &Bound<'py, PyAny>,
                data: &Bound<'py, PyAny>,
                associated_data: Option<&Bound<'py, PyAny>>,
            ) -> Result<Bound<'py, PyBytes>> {
                encrypt(self, py, nonce, data, associated_data)
            }

            /// Authenticate and decrypt `data` (`ciphertext || tag`); raises
            /// `keycell.InvalidTag` when the tag does not verify (wrong key, nonce or
            /// associated data, forged or truncated data). No plaintext is returned or
            /// left behind on failure.
            #[pyo3(signature = (nonce, data, associated_data))]
            fn decrypt<'py>(
                &self,
                py: Python<'py>,
                nonce: &Bound<'py, PyAny>,
                data: &Bound<'py, PyAny>,
                associated_data: Option<&Bound<'py, PyAny>>,
            ) -> Result<Bound<'py, PyBytes>> {
                decrypt(self, py, nonce, data, associated_data)
            }

            /// Like `encrypt`, but writes `ciphertext || tag` to the start of the writable
            /// buffer `buf` (a `bytearray` or writable `memoryview` of at least
            /// `len(data) + 16` bytes) and returns the number of bytes written.
            /// `ValueError` when `buf` is too small, `TypeError` when it is read-only.
            /// Runs with the GIL held.
            #[pyo3(signature = (nonce, data, associated_data, buf))]
            fn encrypt_into(
                &self,
                py: Python<'_>,
                nonce: &Bound<'_, PyAny>,
                data: &Bound<'_, PyAny>,
                associated_data: Option<&Bound<'_, PyAny>>,
                buf: &Bound<'_, PyAny>,
            ) -> Result<usize> {
                encrypt_into(self, py, nonce, data, associated_data, buf)
            }

            /// Like `decrypt`, but writes the plaintext to the start of the writable
            /// buffer `buf` (at least `len(data) - 16` bytes) and returns the number of
            /// bytes written. On `InvalidTag` (or any other failure) the plaintext area
            /// of `buf` is zeroed: it never holds partial or unauthenticated plaintext
            /// once the call returns. Runs with the GIL held.
            #[pyo3(signature = (nonce, data, associated_data, buf))]
            fn decrypt_into(
                &self,
                py: Python<'_>,
                nonce: &Bound<'_, PyAny>,
                data: &Bound<'_, PyAny>,
                associated_data: Option<&Bound<'_, PyAny>>,
                buf: &Bound<'_, PyAny>,
            ) -> Result<usize> {
                decrypt_into(self, py, nonce, data, associated_data, buf)
            }

            /// The `SecretKey` this object encrypts with.
            #[getter]
            fn key(&self, py: Python<'_>) -> Py<SecretKey> {
                AeadClass::key(self).clone_ref(py)
            }

            fn __repr__(&self) -> String {
                format!("<{}>", Self::NAME)
            }

            fn __reduce__(&self) -> Result<()> {
                Err(refuse_pickle::<Self>())
            }
        }
    };
}

/// AES-GCM (128, 192 or 256-bit key, 8 to 128-byte nonce, 12 recommended; 16-byte tag)
/// with a `SecretKey`, shaped like pyca/cryptography's `AESGCM`. The key stays in its
/// guarded region; the key schedule is kept in a guarded region beside it and wiped
/// with the key.
#[pyclass(frozen, name = "AESGCM", module = "keycell._native")]
pub struct AesGcm {
    key: Py<SecretKey>,
}

aead_methods!(AesGcm, AeadAlgorithm::AesGcm);

/// ChaCha20-Poly1305 (RFC 8439: 256-bit key, 12-byte nonce, 16-byte tag) with a
/// `SecretKey`, shaped like pyca/cryptography's `ChaCha20Poly1305`.
#[pyclass(frozen, name = "ChaCha20Poly1305", module = "keycell._native")]
pub struct ChaCha20Poly1305 {
    key: Py<SecretKey>,
}

aead_methods!(ChaCha20Poly1305, AeadAlgorithm::ChaCha20Poly1305);

/// XChaCha20-Poly1305 (256-bit key, 24-byte nonce, safe to pick at random; 16-byte tag)
/// with a `SecretKey`. Same methods as `ChaCha20Poly1305`.
#[pyclass(frozen, name = "XChaCha20Poly1305", module = "keycell._native")]
pub struct XChaCha20Poly1305 {
    key: Py<SecretKey>,
}

aead_methods!(XChaCha20Poly1305, AeadAlgorithm::XChaCha20Poly1305);

/// AES-GCM-SIV (RFC 8452: 128 or 256-bit key, 12-byte nonce, 16-byte tag) with a
/// `SecretKey`, shaped like pyca/cryptography's `AESGCMSIV`. A repeated nonce reveals
/// only whether two messages (with their associated data) are equal.
#[pyclass(frozen, name = "AESGCMSIV", module = "keycell._native")]
pub struct AesGcmSiv {
    key: Py<SecretKey>,
}

aead_methods!(AesGcmSiv, AeadAlgorithm::AesGcmSiv);
