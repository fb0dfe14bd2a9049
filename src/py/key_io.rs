//! Shared glue for key files, used by every key handle class (`SecretKey`, `ECPrivateKey`,
//! `Ed25519PrivateKey`, `X25519PrivateKey`): parsing `format=`, loading a file straight
//! into the key's region, and writing one from it.

use std::path::{Path, PathBuf};

use crate::crypto::curve::CurvePrivateKey;
use crate::crypto::ec::{self, Curve, EcError, PublicPoint};
use crate::crypto::key_kind::KeyKind;
use crate::crypto::rsa::RsaPrivateKey;
use crate::fs::{SecretPath, Trust};
use crate::keyfile::{self, DecodedKeyFile, Format, LoadError};
use crate::memory::{MemoryError, SecretBuf};

use pyo3::prelude::*;

use super::errors::{Error, Result};
use super::isolation_scope::detach;

/// Parse `format=` for `kind`; `None` means "detect".
pub fn parse_format(kind: KeyKind, format: Option<&str>) -> Result<Option<Format>> {
    let Some(name) = format else {
        return Ok(None);
    };
    let f = Format::from_name(name).ok_or_else(|| {
        Error::Value(format!(
            "format must be one of \"raw\", \"hex\", \"base64\", \"pem\", \"der\", \
             \"openssh\", not {name:?}"
        ))
    })?;
    if !f.allowed_for(kind) {
        let only = if Format::OpenSsh.allowed_for(kind) {
            "\"pem\", \"der\" and \"openssh\""
        } else if kind.is_private_key() {
            "\"pem\" and \"der\""
        } else {
            "\"raw\", \"hex\" and \"base64\""
        };
        return Err(Error::Value(format!(
            "format {name:?} is not available for {} keys (only {only})",
            kind.name()
        )));
    }
    Ok(Some(f))
}

/// Parse `trust=` of every `from_file`: "owner" (the rule every key file has: owned by
/// this user, no group or other access, no symlink) or "mount" (a file where Kubernetes or
/// Docker put it; see `crate::fs::Trust`).
pub fn parse_trust(name: &str) -> Result<Trust> {
    Trust::from_name(name).ok_or_else(|| {
        Error::Value(format!(
            "trust must be \"owner\" or \"mount\", not {name:?}"
        ))
    })
}

/// `from_file`'s `path` and `trust`.
pub fn file_path<'a>(path: &'a Path, trust: &str) -> Result<SecretPath<'a>> {
    Ok(SecretPath::new(path, parse_trust(trust)?))
}

/// `from_credential`'s `name`: the path of the systemd credential, read under
/// [`Trust::Credential`] with [`credential_file`].
pub fn credential_path(name: &str) -> Result<PathBuf> {
    Ok(crate::fs::credential_path(name)?)
}

/// The credential at `path` (from [`credential_path`]) as a file to read.
pub fn credential_file(path: &Path) -> SecretPath<'_> {
    SecretPath::new(path, Trust::Credential)
}

/// Map a key file failure to the bindings' error, naming `path`.
pub fn load_error(path: &Path, e: LoadError) -> Error {
    let shown = path.display().to_string();
    match e {
        LoadError::Memory(m) => Error::Memory(m),
        LoadError::File(crate::fs::FileError::Insecure(reason)) => Error::InsecureKeyFile {
            path: shown,
            reason,
        },
        LoadError::File(crate::fs::FileError::Unusable { reason, errno }) => Error::KeyFile {
            path: shown,
            reason,
            errno,
        },
    }
}

/// Open, check and read `path` into a guarded scratch region and find its format (call
/// without the GIL). Decode with [`DecodedKeyFile::decode_into`] into the key's region.
pub fn load(
    file: SecretPath<'_>,
    kind: KeyKind,
    format: Option<Format>,
    length: Option<usize>,
) -> Result<DecodedKeyFile> {
    DecodedKeyFile::load(file, kind, format, length).map_err(|e| load_error(file.path, e))
}

/// Load an Ed25519 or X25519 private key from `path` (call without the GIL): the file is
/// read and decoded through [`load`] like a secret key file, the key bytes are decoded
/// straight into the new key's region, and a public key stored in the file (PKCS#8
/// version 2) must be the one the private key derives.
pub fn load_private_key<K: CurvePrivateKey>(
    path: SecretPath<'_>,
    format: Option<Format>,
    passphrase: Option<&SecretBuf>,
) -> Result<K> {
    let passphrase = passphrase.map(SecretBuf::bytes).transpose()?;
    let file = DecodedKeyFile::load_private(
        path,
        KeyKind::from_algorithm(K::ALGORITHM),
        format,
        passphrase,
    )
    .map_err(|e| load_error(path.path, e))?;
    curve_key_from_decoded(&file, Some(path.path))
}

/// Decode the Ed25519/X25519 key in `file` straight into a new key's region; `path`
/// names the file in errors (`None`: the key came from a buffer, and its errors are
/// `ValueError`s). A public key stored beside it must be the one it derives.
pub fn curve_key_from_decoded<K: CurvePrivateKey>(
    file: &DecodedKeyFile,
    path: Option<&Path>,
) -> Result<K> {
    let what = format!("{} private key", K::ALGORITHM.name());
    let fail = |e: LoadError| match path {
        Some(p) => load_error(p, e),
        None => buffer_error_for(&what, e),
    };
    let key = K::new_with(|dst| file.decode_into(dst).map_err(fail))?;
    if file
        .public()
        .is_some_and(|stored| stored != key.public_bytes())
    {
        return Err(fail(LoadError::File(crate::fs::unusable(format!(
            "the public key stored in the file does not belong to its {what}"
        )))));
    }
    Ok(key)
}

/// Why an EC key could not be made from a decoded file: the file (or memory), or the
/// scalar in it.
enum EcLoad {
    Failed(Error),
    Ec(EcError),
}

impl From<MemoryError> for EcLoad {
    fn from(e: MemoryError) -> Self {
        EcLoad::Failed(Error::Memory(e))
    }
}

impl From<EcError> for EcLoad {
    fn from(e: EcError) -> Self {
        EcLoad::Ec(e)
    }
}

/// Decode the EC key in `file` straight into a new key's region; `path` names the file
/// in errors (`None`: the key came from a buffer, and its errors are `ValueError`s). A
/// public key stored beside the scalar must be the one the scalar derives.
pub fn ec_key_from_decoded(file: &DecodedKeyFile, path: Option<&Path>) -> Result<ec::PrivateKey> {
    let refuse = |reason: String| match path {
        Some(p) => Error::KeyFile {
            path: p.display().to_string(),
            reason,
            errno: None,
        },
        None => Error::Value(format!("invalid EC private key: {reason}")),
    };
    let Some(curve) = file.ec_curve() else {
        return Err(refuse("it does not hold an EC key".to_owned()));
    };
    let made = ec::PrivateKey::new_with(curve, |dst| {
        file.decode_into(dst).map_err(|e| {
            EcLoad::Failed(match path {
                Some(p) => load_error(p, e),
                None => buffer_error(e),
            })
        })
    });
    let key = match made {
        Ok(key) => key,
        Err(EcLoad::Failed(e)) => return Err(e),
        Err(EcLoad::Ec(EcError::Memory(m))) => return Err(Error::Memory(m)),
        Err(EcLoad::Ec(e)) => return Err(refuse(e.to_string())),
    };
    if let Some(stored) = file.public() {
        if PublicPoint::from_sec1(curve, stored).ok().as_ref() != Some(key.public()) {
            return Err(refuse(format!(
                "the public key stored with it does not belong to its {} private key",
                curve.name()
            )));
        }
    }
    Ok(key)
}

/// The error of decoding a key from a caller's buffer (no file involved).
pub fn buffer_error(e: LoadError) -> Error {
    buffer_error_for("EC private key", e)
}

/// [`buffer_error`] for a key called `what`.
pub fn buffer_error_for(what: &str, e: LoadError) -> Error {
    match e {
        LoadError::Memory(m) => Error::Memory(m),
        LoadError::File(
            crate::fs::FileError::Insecure(reason) | crate::fs::FileError::Unusable { reason, .. },
        ) => Error::Value(format!("invalid {what}: {reason}")),
    }
}

/// Load an EC private key (of `curve`, or of the curve the file names) from `path` (call
/// without the GIL).
pub fn load_ec_private_key(
    path: SecretPath<'_>,
    curve: Option<Curve>,
    format: Option<Format>,
    passphrase: Option<&SecretBuf>,
) -> Result<ec::PrivateKey> {
    let passphrase = passphrase.map(SecretBuf::bytes).transpose()?;
    let file = DecodedKeyFile::load_ec(path, curve, format, passphrase)
        .map_err(|e| load_error(path.path, e))?;
    ec_key_from_decoded(&file, Some(path.path))
}

/// `(key type, encrypted)` of an OpenSSH private key file: the SSH key type
/// (`"ssh-ed25519"`, `"ecdsa-sha2-nistp256"`, `"ecdsa-sha2-nistp384"`, `"ssh-rsa"`) its
/// unencrypted header names and whether its private section is encrypted; `None` for
/// another file. Tells the command line which class loads it and whether to ask for its
/// passphrase. The file is read with the key file checks (a missing file raises
/// `KeyFileError`) into guarded memory; its private section is not decrypted.
#[pyfunction]
pub fn _openssh_key_type(py: Python<'_>, path: PathBuf) -> Result<Option<(&'static str, bool)>> {
    detach(py, || {
        keyfile::openssh_key_type(&path).map_err(|e| load_error(&path, e))
    })
}

/// Write `data` to `path` atomically, with the steps of every keycell writer (a temporary
/// file in the same directory created `O_EXCL | O_NOFOLLOW`, mode 0600, written and
/// `fsync`ed, renamed over `path`, the directory `fsync`ed): a link planted at `path` is
/// replaced, never followed. Without `overwrite` an existing `path` is never replaced.
/// Failures raise `KeyFileError` naming `path`. For the CLI's own files (signatures,
/// state), which hold no key.
#[pyfunction]
#[pyo3(signature = (path, data, *, overwrite))]
pub fn _write_atomic(py: Python<'_>, path: PathBuf, data: Vec<u8>, overwrite: bool) -> Result<()> {
    detach(py, || {
        crate::fs::write_atomic(&path, &data, overwrite)
            .map_err(|e| load_error(&path, LoadError::File(e)))
    })
}

/// Parse `format=` for an RSA key: "pem", "der" or "openssh", `None` to detect.
pub fn parse_rsa_format(format: Option<&str>) -> Result<Option<Format>> {
    match format {
        None => Ok(None),
        Some("pem") => Ok(Some(Format::Pem)),
        Some("der") => Ok(Some(Format::Der)),
        Some("openssh") => Ok(Some(Format::OpenSsh)),
        Some(other) => Err(Error::Value(format!(
            "format must be \"pem\", \"der\" or \"openssh\" for RSA keys, not {other:?}"
        ))),
    }
}

/// A `passphrase=` given to `to_file` with a format other than "openssh": refused (only
/// OpenSSH key files are written encrypted).
pub fn check_write_passphrase(format: Format, passphrase: Option<&SecretBuf>) -> Result<()> {
    if passphrase.is_some() && format != Format::OpenSsh {
        return Err(Error::Value(format!(
            "passphrase is only for format=\"openssh\" (keycell writes {} files unencrypted)",
            format.name()
        )));
    }
    Ok(())
}

/// Load an RSA private key from `path` (call without the GIL; see
/// [`keyfile::load_rsa_private_key`]), `passphrase` for an encrypted OpenSSH key file.
pub fn load_rsa(
    path: SecretPath<'_>,
    format: Option<Format>,
    passphrase: Option<&SecretBuf>,
) -> Result<RsaPrivateKey> {
    let passphrase = passphrase.map(SecretBuf::bytes).transpose()?;
    keyfile::load_rsa_private_key(path, format, passphrase).map_err(|e| load_error(path.path, e))
}

/// Write an RSA private key to `path` (call without the GIL; see
/// [`keyfile::write_rsa_private_key`]), an OpenSSH file encrypted under `passphrase`.
pub fn write_rsa(
    path: &Path,
    key: &RsaPrivateKey,
    format: Format,
    traditional: bool,
    passphrase: Option<&SecretBuf>,
    overwrite: bool,
) -> Result<()> {
    if traditional && format == Format::OpenSsh {
        return Err(Error::Value(
            "traditional is for \"pem\" and \"der\" files, not \"openssh\"".to_owned(),
        ));
    }
    check_write_passphrase(format, passphrase)?;
    let passphrase = passphrase.map(SecretBuf::bytes).transpose()?;
    keyfile::write_rsa_private_key(path, key, format, traditional, passphrase, overwrite)
        .map_err(|e| load_error(path, e))
}

/// Write `key` (of `kind`) to `path` as the format named `format` (call without the GIL),
/// an OpenSSH file encrypted under `passphrase` if given.
pub fn write(
    path: &Path,
    kind: KeyKind,
    format: &str,
    key: &[u8],
    passphrase: Option<&SecretBuf>,
    overwrite: bool,
) -> Result<()> {
    let format = parse_format(kind, Some(format))?.unwrap_or(Format::Raw);
    check_write_passphrase(format, passphrase)?;
    let passphrase = passphrase.map(SecretBuf::bytes).transpose()?;
    keyfile::write_key_file_with(path, kind, format, key, passphrase, overwrite)
        .map_err(|e| load_error(path, e))
}
