//! Writing keys: encoding into a guarded scratch region, then an atomic write.

use std::path::Path;

use crate::crypto::pkcs8;
use crate::memory::SecretBuf;

use super::atomic_write::write_atomic;
use super::format::{Format, KeyKind};
use super::load::LoadError;
use super::open::unusable;

/// Encode `key` (of `kind`) as `format` into a guarded scratch region and hand the encoded
/// bytes to `sink`. Raw keys are handed over directly, without a scratch copy.
pub fn with_encoded<T>(
    kind: KeyKind,
    format: Format,
    key: &[u8],
    sink: impl FnOnce(&[u8]) -> Result<T, LoadError>,
) -> Result<T, LoadError> {
    use crate::encoding::{base64_encode_into, base64_encoded_len, hex_encode_into};
    if !format.allowed_for(kind) {
        return Err(unusable(format!(
            "format {:?} is not available for {} keys",
            format.name(),
            kind.name()
        ))
        .into());
    }
    let internal = |_| LoadError::File(unusable("internal error: encoding failed"));
    // Text formats end with a newline.
    let text = |n: usize, encode: &dyn Fn(&mut [u8]) -> Result<(), LoadError>| {
        SecretBuf::new_with(n + 1, |d| {
            encode(&mut d[..n])?;
            d[n] = b'\n';
            Ok::<(), LoadError>(())
        })
    };
    let scratch = match (format, kind.algorithm()) {
        (Format::Raw, _) => return sink(key),
        (Format::Hex, _) => text(2 * key.len(), &|d| {
            hex_encode_into(key, d).map_err(internal)
        })?,
        (Format::Base64, _) => text(base64_encoded_len(key.len()), &|d| {
            base64_encode_into(key, d).map_err(internal)
        })?,
        (Format::Der | Format::Pem, Some(alg)) => {
            let der = SecretBuf::new_with(pkcs8::PKCS8_V1_LEN, |d| {
                pkcs8::pkcs8_v1_der_into(alg, key, d).map_err(LoadError::from)
            })?;
            if format == Format::Der {
                der
            } else {
                let label = pkcs8::PRIVATE_KEY_LABEL;
                let der_bytes = der.bytes()?;
                SecretBuf::new_with(pkcs8::pem_encoded_len(label, der_bytes.len()), |d| {
                    pkcs8::pem_encode_into(label, der_bytes, d).map_err(LoadError::from)
                })?
            }
        }
        (Format::Der | Format::Pem, None) => {
            return Err(unusable("PKCS#8 is only for ed25519 and x25519 keys").into())
        }
    };
    sink(scratch.bytes()?)
}

/// Write `key` to `path` as `format`, atomically (see [`write_atomic`]).
pub fn write_key_file(
    path: &Path,
    kind: KeyKind,
    format: Format,
    key: &[u8],
    overwrite: bool,
) -> Result<(), LoadError> {
    with_encoded(kind, format, key, |data| {
        write_atomic(path, data, overwrite).map_err(LoadError::File)
    })
}
