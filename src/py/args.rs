//! Argument parsing shared by the bindings: algorithm names, key lengths, handle arguments
//! and the type names that error messages show.

use pyo3::prelude::*;
use pyo3::PyClass;

use crate::crypto::hmac::{HashAlgorithm, MacAlgorithm};
use crate::crypto::symmetric::MAX_KEY_LEN;

use super::errors::{Error, Result};

/// The Python type name of `obj`, for messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_owned())
}

/// Parse a hash algorithm name, or fail with an "unsupported algorithm" `ValueError`.
pub fn parse_algorithm(name: &str) -> Result<HashAlgorithm> {
    HashAlgorithm::from_name(name).ok_or_else(|| {
        let shown: String = name.chars().take(40).collect();
        Error::Value(format!(
            "unsupported hash algorithm {shown:?}: keycell supports \"sha256\", \"sha384\" \
             and \"sha512\""
        ))
    })
}

/// Parse an HMAC algorithm name: a SHA-2 name, or "sha1" (legacy protocols), or fail
/// with an "unsupported algorithm" `ValueError`.
pub fn parse_mac_algorithm(name: &str) -> Result<MacAlgorithm> {
    MacAlgorithm::from_name(name).ok_or_else(|| {
        let shown: String = name.chars().take(40).collect();
        Error::Value(format!(
            "unsupported HMAC algorithm {shown:?}: keycell supports \"sha256\", \"sha384\", \
             \"sha512\" and, for legacy protocols, \"sha1\""
        ))
    })
}

/// The handle of class `T` behind `obj`, or a `TypeError` naming the argument `what` and
/// the expected class `class`. `hint` is appended to the message.
pub fn handle<'a, 'py, T: PyClass>(
    obj: &'a Bound<'py, PyAny>,
    what: &str,
    class: &str,
    hint: &str,
) -> Result<&'a Bound<'py, T>> {
    obj.cast::<T>().map_err(|_| {
        Error::Type(format!(
            "{what} must be a keycell.{class}, not {}{hint}",
            type_name(obj)
        ))
    })
}

/// A key length argument: an `int` (anything with `__index__`). A negative or huge value
/// is a `ValueError` naming the valid range, like every other out-of-range length, not
/// the `OverflowError` a plain `usize` argument would raise.
pub struct KeyLength(pub usize);

impl<'a, 'py> FromPyObject<'a, 'py> for KeyLength {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<usize>() {
            Ok(n) => Ok(KeyLength(n)),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) => {
                Err(Error::Value(format!(
                    "key length must be between 1 and {MAX_KEY_LEN} bytes"
                ))
                .into())
            }
            Err(e) => Err(e),
        }
    }
}

/// An integer argument whose valid range the callee checks (counters, windows): the value
/// as an `i128`, or `None` when it does not even fit one, so that the callee reports every
/// out-of-range value as the same `ValueError` instead of the conversion's `OverflowError`.
/// A non-integer is a `TypeError`.
#[derive(Clone, Copy)]
pub struct IntArg(pub Option<i128>);

impl<'a, 'py> FromPyObject<'a, 'py> for IntArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<i128>() {
            Ok(n) => Ok(IntArg(Some(n))),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) => {
                Ok(IntArg(None))
            }
            Err(e) => Err(e),
        }
    }
}
