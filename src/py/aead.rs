//! `AESGCM`, `ChaCha20Poly1305`, `XChaCha20Poly1305` and `AESGCMSIV`: pyca-shaped AEAD
//! objects over a `SecretKey`. The calls are `aead_calls.rs`; the cipher itself is
//! `crate::crypto::aead_suite` (where the key schedule lives is explained there).
//!
//! An AEAD object holds a reference to its `SecretKey`, not a copy of the key: every call
//! borrows the key under its cell's lock, so destroying the key makes the object raise
//! `KeyDestroyedError`, and a fork child gets `ForkedKeyError`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::crypto::aead_suite::AeadAlgorithm;
use crate::crypto::symmetric::SymmetricKey;

use super::aead_calls::{check_key, key_len_message, AeadArgs, Sealer};
use super::args::handle;
use super::errors::{Error, Result};
use super::key_cell::KeyHandle;
use super::secret_key::SecretKey;

/// One pyca-shaped AEAD class over a `SecretKey`.
macro_rules! aead_class {
    ($cls:ident, $name:literal, $alg:expr, $gen_sig:literal, $default_bits:literal, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(frozen, name = $name, module = "keycell._native")]
        pub struct $cls {
            key: Py<SecretKey>,
        }

        $crate::py::text_refusal::text_refusing!($cls);

        impl $cls {
            fn sealer<'a>(&'a self, py: Python<'a>) -> Sealer<'a> {
                Sealer {
                    cell: self.key.bind(py).get().cell(),
                    alg: $alg,
                    class: $name,
                }
            }
        }

        #[pymethods]
        impl $cls {
            #[new]
            #[pyo3(signature = (key, /))]
            fn new(key: &Bound<'_, PyAny>) -> Result<Self> {
                let key = handle::<SecretKey>(key, "key", "SecretKey", "")?;
                check_key(key.get().cell(), $alg, $name)?;
                Ok($cls {
                    key: key.clone().unbind(),
                })
            }

            /// Generate a new key of `bit_length` bits from the OS CSPRNG, straight into a
            /// guarded region, as a `SecretKey`.
            #[staticmethod]
            #[pyo3(signature = (bit_length = $default_bits), text_signature = $gen_sig)]
            fn generate_key(py: Python<'_>, bit_length: i64) -> Result<SecretKey> {
                let bytes = usize::try_from(bit_length / 8).unwrap_or(0);
                if bit_length % 8 != 0 || !$alg.key_len_ok(bytes) {
                    return Err(Error::Value(key_len_message($alg, $name)));
                }
                let key = SymmetricKey::generate(bytes)?;
                SecretKey::wrap_with(py, key, true)
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
                let args = AeadArgs::parse(nonce, data, associated_data)?;
                let (nonce, data, aad) = args.slices();
                self.sealer(py).encrypt(py, nonce, data, aad, &[])
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
                let args = AeadArgs::parse(nonce, data, associated_data)?;
                let (nonce, data, aad) = args.slices();
                self.sealer(py).decrypt(py, nonce, data, aad)
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
                let args = AeadArgs::parse(nonce, data, associated_data)?;
                let (nonce, data, aad) = args.slices();
                self.sealer(py).encrypt_into(py, nonce, data, aad, buf)
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
                let args = AeadArgs::parse(nonce, data, associated_data)?;
                let (nonce, data, aad) = args.slices();
                self.sealer(py).decrypt_into(py, nonce, data, aad, buf)
            }

            /// The `SecretKey` this object encrypts with.
            #[getter]
            fn key(&self, py: Python<'_>) -> Py<SecretKey> {
                self.key.clone_ref(py)
            }

            fn __repr__(&self) -> String {
                format!("<{}>", $name)
            }

            fn __reduce__(&self) -> Result<()> {
                Err(Error::Type(
                    concat!(
                        $name,
                        " cannot be pickled: its key is kept out of Python memory on purpose"
                    )
                    .to_owned(),
                ))
            }
        }
    };
}

aead_class!(
    AesGcm,
    "AESGCM",
    AeadAlgorithm::AesGcm,
    "(bit_length=256)",
    256,
    "AES-GCM (128, 192 or 256-bit key, 8 to 128-byte nonce, 12 recommended; 16-byte tag)\n\
     with a `SecretKey`, shaped like pyca/cryptography's `AESGCM`. The key stays in its\n\
     guarded region; the key schedule is kept in a guarded region beside it and wiped\n\
     with the key."
);
aead_class!(
    ChaCha20Poly1305,
    "ChaCha20Poly1305",
    AeadAlgorithm::ChaCha20Poly1305,
    "(bit_length=256)",
    256,
    "ChaCha20-Poly1305 (RFC 8439: 256-bit key, 12-byte nonce, 16-byte tag) with a\n\
     `SecretKey`, shaped like pyca/cryptography's `ChaCha20Poly1305`."
);
aead_class!(
    XChaCha20Poly1305,
    "XChaCha20Poly1305",
    AeadAlgorithm::XChaCha20Poly1305,
    "(bit_length=256)",
    256,
    "XChaCha20-Poly1305 (256-bit key, 24-byte nonce, safe to pick at random; 16-byte tag)\n\
     with a `SecretKey`. Same methods as `ChaCha20Poly1305`."
);
aead_class!(
    AesGcmSiv,
    "AESGCMSIV",
    AeadAlgorithm::AesGcmSiv,
    "(bit_length=256)",
    256,
    "AES-GCM-SIV (RFC 8452: 128 or 256-bit key, 12-byte nonce, 16-byte tag) with a\n\
     `SecretKey`, shaped like pyca/cryptography's `AESGCMSIV`. A repeated nonce reveals\n\
     only whether two messages (with their associated data) are equal."
);
