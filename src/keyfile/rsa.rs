//! RSA private key files: PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`, what
//! `openssl genrsa -traditional` writes), PEM or DER. Read through the same checks and
//! guarded scratch region as every key file ([`super::load`]), decoded by
//! [`crate::crypto::rsa`] into guarded memory; written encoded in guarded memory with
//! [`write_atomic`].

use std::path::Path;

use crate::crypto::pkcs8::looks_like_pem;
use crate::crypto::rsa::{PrivateEncoding, RsaError, RsaPrivateKey};
use crate::fs::{unusable, write_atomic, SecretPath};

use super::format::{Format, MAX_PRIVATE_KEY_FILE_LEN};
use super::load::{read_into_scratch, LoadError};
use super::openssh::{self, looks_like_openssh};
use super::ssh_public::SshPublicKey;

impl From<RsaError> for LoadError {
    fn from(e: RsaError) -> Self {
        match e {
            RsaError::Memory(m) => LoadError::Memory(m),
            other => LoadError::File(unusable(other.to_string())),
        }
    }
}

/// Refuse formats other than PEM, DER and OpenSSH for RSA keys.
fn check_format(format: Format) -> Result<(), LoadError> {
    match format {
        Format::Pem | Format::Der | Format::OpenSsh => Ok(()),
        other => Err(LoadError::File(unusable(format!(
            "format {:?} is not available for RSA keys (\"pem\", \"der\" or \"openssh\")",
            other.name(),
        )))),
    }
}

/// The SSH key type (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ...) of the OpenSSH
/// private key file at `path` and whether it is encrypted, read with the key file checks
/// into a guarded scratch region; `None` when the file is not an OpenSSH private key
/// file. Its private section is not decrypted (see [`openssh::header`]).
pub fn openssh_key_type(path: &Path) -> Result<Option<(&'static str, bool)>, LoadError> {
    let scratch = read_into_scratch(path.into(), MAX_PRIVATE_KEY_FILE_LEN)?;
    let content = scratch.bytes()?;
    if !looks_like_openssh(content) {
        return Ok(None);
    }
    let (public, encrypted) = openssh::header(content)?;
    Ok(Some((public.type_name(), encrypted)))
}

/// Load an RSA private key from `path` (call without the GIL): an OpenSSH key file when
/// `format` says so or the file starts with its boundary (decrypted with `passphrase`),
/// PEM when `format` says so or the file starts with a PEM boundary, else DER.
pub fn load_rsa_private_key<'p>(
    path: impl Into<SecretPath<'p>>,
    format: Option<Format>,
    passphrase: Option<&[u8]>,
) -> Result<RsaPrivateKey, LoadError> {
    if let Some(f) = format {
        check_format(f)?;
    }
    let scratch = read_into_scratch(path.into(), MAX_PRIVATE_KEY_FILE_LEN)?;
    rsa_from_scratch(scratch.bytes()?, format, passphrase)
}

/// An RSA private key from the key file contents `content` (a guarded region), as
/// [`load_rsa_private_key`] reads them.
pub fn rsa_from_scratch(
    content: &[u8],
    format: Option<Format>,
    passphrase: Option<&[u8]>,
) -> Result<RsaPrivateKey, LoadError> {
    let format = match format {
        Some(f) => f,
        None if looks_like_openssh(content) => Format::OpenSsh,
        None if looks_like_pem(content) => Format::Pem,
        None => Format::Der,
    };
    if passphrase.is_some() && format != Format::OpenSsh {
        return Err(LoadError::File(unusable(
            "a passphrase was given, but only encrypted OpenSSH key files take one",
        )));
    }
    let key = match format {
        Format::OpenSsh => rsa_from_openssh(content, passphrase)?,
        Format::Pem => RsaPrivateKey::from_pem(content)?,
        _ => RsaPrivateKey::from_der(content)?,
    };
    Ok(key)
}

/// An RSA key from an OpenSSH private key file (decrypted in guarded memory by
/// [`openssh::read`]); its public key must be the file's.
fn rsa_from_openssh(content: &[u8], passphrase: Option<&[u8]>) -> Result<RsaPrivateKey, LoadError> {
    let file = openssh::read(content, passphrase)?;
    let (SshPublicKey::Rsa { e, n }, Some(parts)) = (&file.public, &file.rsa) else {
        return Err(LoadError::File(unusable(format!(
            "it holds an OpenSSH {} key, not an RSA key",
            file.public.type_name()
        ))));
    };
    let section = file.section.bytes()?;
    let part = |r: &std::ops::Range<usize>| &section[r.clone()];
    let key = RsaPrivateKey::from_components(
        n,
        e,
        part(&parts.d),
        part(&parts.iqmp),
        part(&parts.p),
        part(&parts.q),
    )?;
    Ok(key)
}

/// Write `key` to `path` as PKCS#8 or, with `traditional`, PKCS#1, in `format` (PEM or
/// DER), or as an OpenSSH private key file (encrypted under `passphrase` if given;
/// [`super::openssh::encode`]), atomically; the encoding is made in guarded memory.
pub fn write_rsa_private_key(
    path: &Path,
    key: &RsaPrivateKey,
    format: Format,
    traditional: bool,
    passphrase: Option<&[u8]>,
    overwrite: bool,
) -> Result<(), LoadError> {
    check_format(format)?;
    if format == Format::OpenSsh {
        if traditional {
            return Err(unusable("traditional is for PEM and DER files, not OpenSSH ones").into());
        }
        let der = key.pkcs1_der()?;
        return super::write_key_file_with(
            path,
            crate::crypto::key_kind::KeyKind::Rsa,
            format,
            der,
            passphrase,
            overwrite,
        );
    }
    if passphrase.is_some() {
        return Err(
            unusable("a passphrase encrypts only OpenSSH key files (format \"openssh\")").into(),
        );
    }
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
                write_rsa_private_key(&p, &key, format, traditional, None, false).expect("write");
                for given in [None, Some(format)] {
                    let back = load_rsa_private_key(&p, given, None).expect("load");
                    assert_eq!(
                        back.pkcs1_der().expect("der"),
                        key.pkcs1_der().expect("der")
                    );
                }
                assert!(write_rsa_private_key(&p, &key, format, traditional, None, false).is_err());
            }
        }
        let p = d.join("hex");
        assert!(write_rsa_private_key(&p, &key, Format::Hex, false, None, false).is_err());
        crate::test_dir::write_file(
            &p,
            b"-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n",
            0o600,
        );
        assert!(matches!(
            load_rsa_private_key(&p, None, None),
            Err(LoadError::File(_))
        ));
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
