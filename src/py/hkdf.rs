//! HKDF bindings: `keycell.hkdf`, `keycell.hkdf_extract`, `keycell.hkdf_expand`.
//!
//! Inputs and outputs that are secret (the input keying material, the PRK, the output)
//! are `SecretKey` handles only; the salt and `info` are ordinary bytes-like values. A key
//! derived from a sealed key (`exportable=False`, `seal_export()`) is sealed too.

use pyo3::prelude::*;
use pyo3::types::PyInt;

// The functions are imported by name: `hkdf` here is also the name of the `#[pyfunction]`.
use crate::crypto::hkdf::{derive, expand, extract, max_output_len, HkdfError};
use crate::crypto::hmac::HashAlgorithm;
use crate::crypto::symmetric::SymmetricKey;

use super::args::{handle, parse_algorithm, type_name};
use super::bytes_like::{maybe_detach, optional_bytes, BytesLike};
use super::errors::{Error, Result};
use super::secret_key::SecretKey;

impl From<HkdfError> for Error {
    fn from(e: HkdfError) -> Self {
        match e {
            HkdfError::OutputLength { max } => Error::Value(format!(
                "length must be between 1 and {max} bytes (255 x the digest size)"
            )),
            HkdfError::Memory(m) => Error::Memory(m),
        }
    }
}

/// The `SecretKey` behind `obj`, or a `TypeError` naming the argument.
fn secret_key<'a, 'py>(
    obj: &'a Bound<'py, PyAny>,
    what: &str,
) -> Result<&'a Bound<'py, SecretKey>> {
    handle(
        obj,
        what,
        "SecretKey",
        "; load raw bytes with SecretKey.from_buffer()",
    )
}

/// The requested output length, checked against `1..=255 x HashLen`.
fn output_length(obj: &Bound<'_, PyAny>, alg: HashAlgorithm) -> Result<usize> {
    let max = max_output_len(alg);
    let Ok(int) = obj.cast::<PyInt>() else {
        return Err(Error::Type(format!(
            "length must be an int, not {}",
            type_name(obj)
        )));
    };
    match int.extract::<i64>() {
        Ok(n) if n >= 1 && (n as u64) <= max as u64 => Ok(n as usize),
        _ => Err(HkdfError::OutputLength { max }.into()),
    }
}

/// Derive a new key with HKDF (RFC 5869): extract with `salt`, then expand with `info`
/// to `length` bytes. Returns a `SecretKey`; the intermediate pseudorandom key lives in
/// its own guarded region and is wiped before the call returns.
///
/// `key` is the input keying material (a `SecretKey`, e.g. from
/// `X25519PrivateKey.exchange`). `salt` defaults to HashLen zero bytes; `info` to empty.
/// `algorithm` is "sha256" (default), "sha384" or "sha512". `length` must be between 1
/// and 255 times the digest size (8160 bytes for SHA-256), else `ValueError`.
#[pyfunction]
#[pyo3(
    signature = (key, *, length, salt = None, info = None, algorithm = "sha256"),
    text_signature = "(key, *, length, salt=None, info=b'', algorithm='sha256')"
)]
pub fn hkdf(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    length: &Bound<'_, PyAny>,
    salt: Option<&Bound<'_, PyAny>>,
    info: Option<&Bound<'_, PyAny>>,
    algorithm: &str,
) -> Result<SecretKey> {
    let key = secret_key(key, "key")?.get();
    let alg = parse_algorithm(algorithm)?;
    let length = output_length(length, alg)?;
    let salt = optional_bytes(salt, "salt")?;
    let info = optional_bytes(info, "info")?;
    let salt = salt.as_ref().map(BytesLike::as_slice);
    let info = info.as_ref().map_or(&[][..], BytesLike::as_slice);
    let work = length + info.len() + salt.map_or(0, <[u8]>::len);
    let okm = maybe_detach(py, work, || -> Result<SymmetricKey> {
        let live = key.live()?;
        Ok(derive(alg, live.key().bytes()?, salt, info, length)?)
    })?;
    SecretKey::wrap_with(py, okm, key.exportable_now())
}

/// HKDF-Extract (RFC 5869 section 2.2): the pseudorandom key `HMAC(salt, key)`, as a new
/// `SecretKey` of digest-size bytes (32 for SHA-256). Pass it to `hkdf_expand` to derive
/// several keys from one extraction. `salt` defaults to HashLen zero bytes.
#[pyfunction]
#[pyo3(signature = (key, *, salt = None, algorithm = "sha256"))]
pub fn hkdf_extract(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    salt: Option<&Bound<'_, PyAny>>,
    algorithm: &str,
) -> Result<SecretKey> {
    let key = secret_key(key, "key")?.get();
    let alg = parse_algorithm(algorithm)?;
    let salt = optional_bytes(salt, "salt")?;
    let salt = salt.as_ref().map(BytesLike::as_slice);
    let work = key.live()?.key().len() + salt.map_or(0, <[u8]>::len);
    let prk = maybe_detach(py, work, || -> Result<SymmetricKey> {
        let live = key.live()?;
        Ok(extract(alg, salt, live.key().bytes()?)?)
    })?;
    SecretKey::wrap_with(py, prk, key.exportable_now())
}

/// HKDF-Expand (RFC 5869 section 2.3): `length` bytes of output keying material from the
/// pseudorandom key `prk` (a `SecretKey`, normally from `hkdf_extract`) and `info`, as a
/// new `SecretKey`. `length` must be between 1 and 255 times the digest size, else
/// `ValueError`. The PRK's precomputed HMAC pads are used directly.
#[pyfunction]
#[pyo3(
    signature = (prk, *, length, info = None, algorithm = "sha256"),
    text_signature = "(prk, *, length, info=b'', algorithm='sha256')"
)]
pub fn hkdf_expand(
    py: Python<'_>,
    prk: &Bound<'_, PyAny>,
    length: &Bound<'_, PyAny>,
    info: Option<&Bound<'_, PyAny>>,
    algorithm: &str,
) -> Result<SecretKey> {
    let prk = secret_key(prk, "prk")?.get();
    let alg = parse_algorithm(algorithm)?;
    let length = output_length(length, alg)?;
    let info = optional_bytes(info, "info")?;
    let info = info.as_ref().map_or(&[][..], BytesLike::as_slice);
    let okm = maybe_detach(py, length + info.len(), || -> Result<SymmetricKey> {
        let live = prk.live()?;
        Ok(expand(alg, live.key(), info, length)?)
    })?;
    SecretKey::wrap_with(py, okm, prk.exportable_now())
}
