//! `to_jwk()` of the public key classes: the one JSON Web Key encoder (RFC 7517), used by
//! `keycell.jose` (JWKS, thumbprints) and `keycell pubkey --jwk`. RFC 8037 `OKP` (Ed25519,
//! X25519), RFC 7518 §6.2 `EC` (P-256, P-384: `x` and `y` of the curve's full width) and
//! §6.3 `RSA` (`n` and `e` as minimal big-endian integers). Members are the required ones
//! only (no `alg`, `use` or `kid`: the caller adds those), values unpadded base64url.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::encoding::base64url_encode;

use super::errors::Result;

fn dict<'py>(py: Python<'py>, members: &[(&str, String)]) -> Result<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, value) in members {
        d.set_item(*name, value)?;
    }
    Ok(d)
}

/// An `OKP` key: `crv` ("Ed25519" or "X25519") and the raw public key `x`.
pub(crate) fn okp<'py>(py: Python<'py>, crv: &str, x: &[u8]) -> Result<Bound<'py, PyDict>> {
    dict(
        py,
        &[
            ("crv", crv.to_owned()),
            ("kty", "OKP".to_owned()),
            ("x", base64url_encode(x)),
        ],
    )
}

/// An `EC` key from the uncompressed X9.62 point `04 || x || y`.
pub(crate) fn ec<'py>(py: Python<'py>, crv: &str, point: &[u8]) -> Result<Bound<'py, PyDict>> {
    let width = point.len().saturating_sub(1) / 2;
    let (x, y) = point.get(1..).unwrap_or_default().split_at(width);
    dict(
        py,
        &[
            ("crv", crv.to_owned()),
            ("kty", "EC".to_owned()),
            ("x", base64url_encode(x)),
            ("y", base64url_encode(y)),
        ],
    )
}

/// An `RSA` key from the big-endian modulus and exponent (leading zero bytes dropped).
pub(crate) fn rsa<'py>(py: Python<'py>, n: &[u8], e: &[u8]) -> Result<Bound<'py, PyDict>> {
    let minimal = |v: &[u8]| -> Vec<u8> {
        let start = v
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(v.len().saturating_sub(1));
        v[start..].to_vec()
    };
    dict(
        py,
        &[
            ("e", base64url_encode(&minimal(e))),
            ("kty", "RSA".to_owned()),
            ("n", base64url_encode(&minimal(n))),
        ],
    )
}
