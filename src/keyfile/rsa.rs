//! RSA private key files: PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`, what
//! `openssl genrsa -traditional` writes), PEM or DER. Read through the same checks and
//! guarded scratch region as every key file ([`super::load`]), decoded by
//! [`crate::crypto::rsa`] into guarded memory; written encoded in guarded memory with
//! [`write_atomic`].

use std::path::Path;

use crate::crypto::pkcs8::looks_like_pem;
use crate::crypto::rsa::{PrivateEncoding, RsaError, RsaPrivateKey};
use crate::fs::{unusable, write_atomic};

use super::format::{Format, MAX_PRIVATE_KEY_FILE_LEN};
use super::load::{read_into_scratch, LoadError};

impl From<RsaError> for LoadError {
    fn from(e: RsaError) -> Self {
        match e {
            RsaError::Memory(m) => LoadError::Memory(m),
            other => LoadError::File(unusable(other.to_string())),
        }
    }
}

/// Refuse formats other than PEM and DER for RSA keys.
fn check_format(format: Format) -> Result<(), LoadError> {
    match format {
        Format::Pem | Format::Der => Ok(()),
        other => Err(LoadError::File(unusable(format!(
            "format {:?} is not available for RSA keys (\"pem\" or \"der\")",
            other.name()
        )))),
    }
}

/// Load an RSA private key from `path` (call without the GIL): PEM when `format` says so
/// or the file starts with a PEM boundary, else DER.
pub fn load_rsa_private_key(
    path: &Path,
    format: Option<Format>,
) -> Result<RsaPrivateKey, LoadError> {
    if let Some(f) = format {
        check_format(f)?;
    }
    let scratch = read_into_scratch(path, MAX_PRIVATE_KEY_FILE_LEN)?;
    let content = scratch.bytes()?;
    let pem = match format {
        Some(f) => f == Format::Pem,
        None => looks_like_pem(content),
    };
    let key = if pem {
        RsaPrivateKey::from_pem(content)?
    } else {
        RsaPrivateKey::from_der(content)?
    };
    Ok(key)
}

/// Write `key` to `path` as PKCS#8 or, with `traditional`, PKCS#1, in `format` (PEM or
/// DER), atomically; the encoding is made in guarded memory.
pub fn write_rsa_private_key(
    path: &Path,
    key: &RsaPrivateKey,
    format: Format,
    traditional: bool,
    overwrite: bool,
) -> Result<(), LoadError> {
    check_format(format)?;
    let encoding = PrivateEncoding {
        pkcs8: !traditional,
        pem: format == Format::Pem,
    };
    key.with_encoded(encoding, |data| {
        write_atomic(path, data, overwrite).map_err(LoadError::File)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_round_trips_through_a_file() {
        let d = crate::test_dir::fresh("rsa-keyfile");
        let key = RsaPrivateKey::generate(2048).expect("generate");
        for format in [Format::Pem, Format::Der] {
            for traditional in [false, true] {
                let p = d.join(format!("{}-{traditional}", format.name()));
                write_rsa_private_key(&p, &key, format, traditional, false).expect("write");
                for given in [None, Some(format)] {
                    let back = load_rsa_private_key(&p, given).expect("load");
                    assert_eq!(
                        back.pkcs1_der().expect("der"),
                        key.pkcs1_der().expect("der")
                    );
                }
                assert!(write_rsa_private_key(&p, &key, format, traditional, false).is_err());
            }
        }
        let p = d.join("hex");
        assert!(write_rsa_private_key(&p, &key, Format::Hex, false, false).is_err());
        crate::test_dir::write_file(
            &p,
            b"-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n",
            0o600,
        );
        assert!(matches!(
            load_rsa_private_key(&p, None),
            Err(LoadError::File(_))
        ));
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
