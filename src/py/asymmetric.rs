//! Helpers shared by the Ed25519 and X25519 bindings.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::crypto::pkcs8::{self, Algorithm, LoadError};
use crate::keyfile::KeyFileError;

use super::bytes_like::bytes_like;
use super::errors::{Error, Result};

/// Map a private-key-file failure to the Python error, naming the path.
pub fn load_error(path: &str, e: LoadError) -> Error {
    match e {
        LoadError::File(KeyFileError::Insecure(reason)) => Error::InsecureKeyFile {
            path: path.to_owned(),
            reason,
        },
        LoadError::File(KeyFileError::Unusable { reason, errno }) => Error::KeyFile {
            path: path.to_owned(),
            reason,
            errno,
        },
        LoadError::Format(f) => Error::KeyFile {
            path: path.to_owned(),
            reason: f.0,
            errno: None,
        },
        LoadError::Memory(m) => Error::Memory(m),
    }
}

/// The error when the public key stored in a PKCS#8 file is not the private key's.
pub fn public_mismatch(path: &str, alg: Algorithm) -> Error {
    Error::KeyFile {
        path: path.to_owned(),
        reason: format!(
            "the public key stored in the file does not belong to its {} private key",
            alg.name()
        ),
        errno: None,
    }
}

/// The TypeError raised by pickling or copying a private key handle.
pub fn no_copy(class: &str, what: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{class} cannot be {what}: its secret is kept out of Python memory on purpose. \
         Keep using the handle (or load it again from its key file)"
    ))
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
    let data = if let Ok(s) = data.cast::<pyo3::types::PyString>() {
        s.to_str()?.as_bytes().to_vec()
    } else {
        bytes_like(data, "data")?.as_slice().to_vec()
    };
    pkcs8::parse_spki_pem(alg, &data)
        .map_err(|e| Error::Value(format!("invalid {} public key PEM: {e}", alg.name())))
}

/// `bytes` of the DER SubjectPublicKeyInfo.
pub fn der_bytes<'py>(py: Python<'py>, alg: Algorithm, raw: &[u8; 32]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &pkcs8::spki_der(alg, raw))
}

/// `bytes` of the PEM "PUBLIC KEY" block.
pub fn pem_bytes<'py>(py: Python<'py>, alg: Algorithm, raw: &[u8; 32]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, pkcs8::spki_pem(alg, raw).as_bytes())
}
