//! systemd credentials (`LoadCredential=`, `LoadCredentialEncrypted=`, `SetCredential=`):
//! where the credential named `name` is. systemd hands a service the directory in
//! `$CREDENTIALS_DIRECTORY`; the file is read like any key file, under
//! [`super::Trust::Credential`] (the directory read-only and owned by root or the service's
//! user, no link followed).

use std::path::{Path, PathBuf};

/// Why a credential's path could not be formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialError {
    /// `$CREDENTIALS_DIRECTORY` is unset or empty: not running in a unit with credentials.
    NotInUnit,
    /// `$CREDENTIALS_DIRECTORY` is a relative path: systemd always sets an absolute one, so
    /// this value was not set by systemd (and would be resolved against the working
    /// directory).
    NotAbsolute,
    /// The name is not a credential name: the message says why.
    BadName(&'static str),
}

impl std::fmt::Display for CredentialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialError::NotInUnit => f.write_str(
                "$CREDENTIALS_DIRECTORY is not set: systemd credentials are read inside a \
                 unit that has them (LoadCredential=, LoadCredentialEncrypted=, \
                 SetCredential=); outside one, load the key with from_file",
            ),
            CredentialError::NotAbsolute => f.write_str(
                "$CREDENTIALS_DIRECTORY is not an absolute path: systemd always sets an \
                 absolute one, so this value was not set by systemd (a relative one would \
                 be resolved against the working directory)",
            ),
            CredentialError::BadName(why) => write!(f, "a credential name {why}"),
        }
    }
}

/// Check a credential name: not empty, no `/`, not `.` or `..`, no NUL, at most 255 bytes
/// (systemd's own rule, `credential_name_valid`: a file name).
pub fn check_name(name: &str) -> Result<(), CredentialError> {
    let why = if name.is_empty() {
        "must not be empty"
    } else if name.contains('/') {
        "must not contain \"/\" (it names a file in $CREDENTIALS_DIRECTORY)"
    } else if name == "." || name == ".." {
        "must not be \".\" or \"..\""
    } else if name.contains('\0') {
        "must not contain a NUL character"
    } else if name.len() > 255 {
        "must be at most 255 bytes"
    } else {
        return Ok(());
    };
    Err(CredentialError::BadName(why))
}

/// The path of the credential `name`: `$CREDENTIALS_DIRECTORY/name`, which must be set
/// and absolute.
pub fn credential_path(name: &str) -> Result<PathBuf, CredentialError> {
    check_name(name)?;
    match std::env::var_os("CREDENTIALS_DIRECTORY") {
        Some(dir) if dir.is_empty() => Err(CredentialError::NotInUnit),
        Some(dir) if !Path::new(&dir).is_absolute() => Err(CredentialError::NotAbsolute),
        Some(dir) => Ok(PathBuf::from(dir).join(name)),
        None => Err(CredentialError::NotInUnit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("api-key.v2").is_ok());
        assert!(check_name("..data").is_ok());
        for bad in ["", "a/b", "/abs", ".", "..", "a\0b"] {
            assert!(
                matches!(check_name(bad), Err(CredentialError::BadName(_))),
                "{bad:?}"
            );
        }
        assert!(check_name(&"x".repeat(256)).is_err());
        assert!(check_name(&"x".repeat(255)).is_ok());
    }
}
