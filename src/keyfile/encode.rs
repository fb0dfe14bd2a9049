//! Writing keys: encoding into a guarded scratch region, then an atomic write.

use std::path::Path;

use crate::crypto::curve::Algorithm;
use crate::crypto::ec::{self, Curve};
use crate::crypto::ec_der;
use crate::crypto::key_kind::KeyKind;
use crate::crypto::pkcs8;
use crate::encoding::DecodeError;
use crate::fs::{unusable, write_atomic};
use crate::memory::SecretBuf;

use super::format::Format;
use super::load::{check_format_allowed, LoadError};
use super::openssh;
use super::ssh_public::SshPublicKey;

/// Encode `key` (of `kind`) as `format` into a guarded scratch region and hand the encoded
/// bytes to `sink`. Raw keys are handed over directly, without a scratch copy.
/// `passphrase` encrypts an OpenSSH key file (the only format that takes one). An RSA
/// key's `key` is its PKCS#1 DER; its PEM and DER files are `super::rsa`'s.
pub fn with_encoded<T>(
    kind: KeyKind,
    format: Format,
    key: &[u8],
    passphrase: Option<&[u8]>,
    sink: impl FnOnce(&[u8]) -> Result<T, LoadError>,
) -> Result<T, LoadError> {
    use crate::encoding::{base64_encode_into, base64_encoded_len, hex_encode_into};
    check_format_allowed(format, kind)?;
    if passphrase.is_some() && format != Format::OpenSsh {
        return Err(
            unusable("a passphrase encrypts only OpenSSH key files (format \"openssh\")").into(),
        );
    }
    let scratch = match (format, kind.algorithm()) {
        (Format::Raw, _) => return sink(key),
        (Format::OpenSsh, _) => encode_openssh(kind, key, passphrase)?,
        (Format::Der | Format::Pem, None) if kind == KeyKind::Rsa => {
            return Err(
                unusable("internal error: RSA key files are written by keyfile::rsa").into(),
            )
        }
        (Format::Hex, _) => encode_text(2 * key.len(), |d| {
            hex_encode_into(key, d).map_err(encoding_failed)
        })?,
        (Format::Base64, _) => encode_text(base64_encoded_len(key.len()), |d| {
            base64_encode_into(key, d).map_err(encoding_failed)
        })?,
        (Format::Der | Format::Pem, Some(alg)) => encode_pkcs8(alg, format, key)?,
        (Format::Der | Format::Pem, None) => match kind.ec_curve() {
            Some(curve) => encode_ec_pkcs8(curve, format, key)?,
            None => return Err(unusable("PKCS#8 is only for private keys").into()),
        },
    };
    sink(scratch.bytes()?)
}

/// The error for an encoder that refused its input (a bug: the sizes are computed here).
fn encoding_failed(_: DecodeError) -> LoadError {
    LoadError::File(unusable("internal error: encoding failed"))
}

/// Encode `n` bytes of text with `encode` into a guarded scratch region of `n + 1` bytes,
/// followed by a newline (text formats end with one).
fn encode_text(
    n: usize,
    encode: impl FnOnce(&mut [u8]) -> Result<(), LoadError>,
) -> Result<SecretBuf, LoadError> {
    SecretBuf::new_with(n + 1, |d| {
        encode(&mut d[..n])?;
        d[n] = b'\n';
        Ok::<(), LoadError>(())
    })
}

/// Encode `key` as PKCS#8 version 1 DER into a guarded scratch region; for
/// [`Format::Pem`], armor that into a second one (the DER region is wiped on drop).
fn encode_pkcs8(alg: Algorithm, format: Format, key: &[u8]) -> Result<SecretBuf, LoadError> {
    let der = SecretBuf::new_with(pkcs8::PKCS8_V1_LEN, |d| {
        pkcs8::pkcs8_v1_der_into(alg, key, d).map_err(LoadError::from)
    })?;
    armor(der, format)
}

/// Encode the EC scalar `key` as PKCS#8 DER with its public key (derived here, as the
/// key itself does), as `openssl pkey` writes it; PEM as for [`encode_pkcs8`].
fn encode_ec_pkcs8(curve: Curve, format: Format, key: &[u8]) -> Result<SecretBuf, LoadError> {
    let public = ec::public_of_scalar(curve, key)
        .map_err(|e| LoadError::File(unusable(format!("cannot encode the key: {e}"))))?;
    let der = SecretBuf::new_with(ec_der::pkcs8_der_len(curve), |d| {
        ec_der::pkcs8_der_into(curve, key, &public, d).map_err(LoadError::from)
    })?;
    armor(der, format)
}

/// Encode `key` (an Ed25519 seed, an EC scalar or an RSA key's PKCS#1 DER) as an OpenSSH
/// private key file, encrypted under `passphrase` if given, its public key derived here
/// (`ssh-keygen -y -f` reads it back).
fn encode_openssh(
    kind: KeyKind,
    key: &[u8],
    passphrase: Option<&[u8]>,
) -> Result<SecretBuf, LoadError> {
    let public = match kind.ec_curve() {
        Some(curve) => SshPublicKey::Ecdsa(
            ec::public_of_scalar(curve, key)
                .map_err(|e| LoadError::File(unusable(format!("cannot encode the key: {e}"))))?,
        ),
        None if kind == KeyKind::Rsa => rsa_public(key)?,
        None => {
            let seed: &[u8; 32] = key
                .try_into()
                .map_err(|_| LoadError::File(unusable("an Ed25519 seed is 32 bytes")))?;
            let k = crate::crypto::ed25519::PrivateKey::from_seed(seed)?;
            SshPublicKey::Ed25519(k.public().to_bytes())
        }
    };
    Ok(openssh::encode(&public, key, "", passphrase)?)
}

/// The `ssh-rsa` public key of the PKCS#1 `RSAPrivateKey` DER `der` (read in place).
fn rsa_public(der: &[u8]) -> Result<SshPublicKey, LoadError> {
    use rsa::pkcs1::der::Decode;
    let k = rsa::pkcs1::RsaPrivateKey::from_der(der)
        .map_err(|_| unusable("cannot encode the key: malformed RSAPrivateKey DER"))?;
    Ok(SshPublicKey::Rsa {
        e: k.public_exponent.as_bytes().to_vec(),
        n: k.modulus.as_bytes().to_vec(),
    })
}

/// `der` itself for [`Format::Der`], or armored as a PEM "PRIVATE KEY" block in a second
/// guarded region (`der` is wiped on drop).
fn armor(der: SecretBuf, format: Format) -> Result<SecretBuf, LoadError> {
    if format == Format::Der {
        return Ok(der);
    }
    let label = pkcs8::PRIVATE_KEY_LABEL;
    let der_bytes = der.bytes()?;
    SecretBuf::new_with(pkcs8::pem_encoded_len(label, der_bytes.len()), |d| {
        pkcs8::pem_encode_into(label, der_bytes, d).map_err(LoadError::from)
    })
}

/// Write `key` to `path` as `format`, atomically (see [`write_atomic`]).
pub fn write_key_file(
    path: &Path,
    kind: KeyKind,
    format: Format,
    key: &[u8],
    overwrite: bool,
) -> Result<(), LoadError> {
    write_key_file_with(path, kind, format, key, None, overwrite)
}

/// [`write_key_file`] with the `passphrase` of an encrypted OpenSSH key file.
pub fn write_key_file_with(
    path: &Path,
    kind: KeyKind,
    format: Format,
    key: &[u8],
    passphrase: Option<&[u8]>,
    overwrite: bool,
) -> Result<(), LoadError> {
    with_encoded(kind, format, key, passphrase, |data| {
        write_atomic(path, data, overwrite).map_err(LoadError::File)
    })
}
