//! Keyring failures, by the cause the kernel reported.

use linux_keyutils::KeyError;

/// What went wrong, by cause (the errno is in [`KeyringError::errno`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyringErrorKind {
    /// `ENOKEY` (or `ENOENT`): no such key or keyring.
    NotFound,
    /// `EKEYEXPIRED` / `EKEYREVOKED`: the key expired or was revoked.
    Expired,
    /// `EACCES`: the key or keyring does not grant this process the permission.
    PermissionDenied,
    /// `EDQUOT`: the user's key quota (`/proc/sys/kernel/keys/maxkeys`, `maxbytes`).
    QuotaExceeded,
    /// `ENOSYS` / `EPERM`: the keyring system calls are blocked (seccomp) or missing.
    Unavailable,
    /// The payload changed size between the size query and the read.
    Changed,
    /// The serial names a keyring or a key of another type, not a `user` key.
    NotUserKey,
    /// Any other failure (`EINVAL`, `ENOMEM`, ...).
    Other,
}

/// A keyring failure: its cause and the errno (`None` for [`KeyringErrorKind::Changed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyringError {
    /// The cause.
    pub kind: KeyringErrorKind,
    /// The errno the kernel returned.
    pub errno: Option<i32>,
}

impl KeyringError {
    /// An error of `kind` with its usual errno.
    pub fn of(kind: KeyringErrorKind) -> KeyringError {
        let errno = match kind {
            KeyringErrorKind::NotFound => Some(libc::ENOKEY),
            KeyringErrorKind::Expired => Some(libc::EKEYEXPIRED),
            KeyringErrorKind::PermissionDenied => Some(libc::EACCES),
            KeyringErrorKind::QuotaExceeded => Some(libc::EDQUOT),
            KeyringErrorKind::Unavailable => Some(libc::ENOSYS),
            KeyringErrorKind::Changed | KeyringErrorKind::NotUserKey | KeyringErrorKind::Other => {
                None
            }
        };
        KeyringError { kind, errno }
    }

    /// The error for an errno.
    pub fn from_errno(errno: i32) -> KeyringError {
        let kind = match errno {
            libc::ENOKEY | libc::ENOENT => KeyringErrorKind::NotFound,
            libc::EKEYEXPIRED | libc::EKEYREVOKED => KeyringErrorKind::Expired,
            libc::EACCES => KeyringErrorKind::PermissionDenied,
            libc::EDQUOT => KeyringErrorKind::QuotaExceeded,
            libc::ENOSYS | libc::EPERM => KeyringErrorKind::Unavailable,
            _ => KeyringErrorKind::Other,
        };
        KeyringError {
            kind,
            errno: Some(errno),
        }
    }
}

impl From<KeyError> for KeyringError {
    fn from(e: KeyError) -> KeyringError {
        // The crate folds the errno into an enum; unfold it.
        let errno = match e {
            KeyError::AccessDenied => libc::EACCES,
            KeyError::QuotaExceeded => libc::EDQUOT,
            KeyError::BadAddress => libc::EFAULT,
            KeyError::InvalidArguments => libc::EINVAL,
            KeyError::KeyExpired => libc::EKEYEXPIRED,
            KeyError::KeyRevoked => libc::EKEYREVOKED,
            KeyError::KeyRejected => libc::EKEYREJECTED,
            KeyError::KeyringDoesNotExist | KeyError::KeyDoesNotExist => libc::ENOKEY,
            KeyError::OutOfMemory => libc::ENOMEM,
            KeyError::InvalidDescription | KeyError::InvalidIdentifier => libc::EINVAL,
            KeyError::OperationNotSupported => libc::EOPNOTSUPP,
            KeyError::WriteError => libc::EIO,
            KeyError::PermissionDenied => libc::EPERM,
            KeyError::MissingFileOrDirectory => libc::ENOENT,
            KeyError::Unknown(errno) => errno,
        };
        KeyringError::from_errno(errno)
    }
}

impl std::fmt::Display for KeyringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            KeyringErrorKind::NotFound => "no such key or keyring",
            KeyringErrorKind::Expired => "the key has expired or was revoked",
            KeyringErrorKind::PermissionDenied => {
                "permission denied: the key does not grant this process the permission. Keys \
                 stored by keycell are possessor-only (0x3f000000): only processes that \
                 possess the key, i.e. reach it through their own thread, process or session \
                 keyring, can read it; a key in the user keyring is possessed only through a \
                 session keyring that links the user keyring"
            }
            KeyringErrorKind::QuotaExceeded => {
                "the user's key quota is exceeded (by default 200 keys and 20,000 bytes per \
                 user: /proc/sys/kernel/keys/maxkeys and maxbytes; root_maxkeys and \
                 root_maxbytes for root)"
            }
            KeyringErrorKind::Unavailable => {
                "the kernel keyring system calls are blocked (a container's seccomp profile \
                 returns EPERM or ENOSYS for add_key/keyctl) or not built into the kernel"
            }
            KeyringErrorKind::Changed => {
                "the key's payload changed size while it was being read; try again"
            }
            KeyringErrorKind::NotUserKey => {
                "the serial names a keyring or a key of another type, not a user key"
            }
            KeyringErrorKind::Other => "the keyring operation failed",
        };
        match self.errno {
            Some(errno) => write!(f, "{what} ({})", std::io::Error::from_raw_os_error(errno)),
            None => f.write_str(what),
        }
    }
}

impl std::error::Error for KeyringError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_the_cause() {
        let kind = |e| KeyringError::from_errno(e).kind;
        assert_eq!(kind(libc::ENOKEY), KeyringErrorKind::NotFound);
        assert_eq!(kind(libc::EKEYEXPIRED), KeyringErrorKind::Expired);
        assert_eq!(kind(libc::EKEYREVOKED), KeyringErrorKind::Expired);
        assert_eq!(kind(libc::EACCES), KeyringErrorKind::PermissionDenied);
        assert_eq!(kind(libc::EDQUOT), KeyringErrorKind::QuotaExceeded);
        assert_eq!(kind(libc::ENOSYS), KeyringErrorKind::Unavailable);
        assert_eq!(kind(libc::EPERM), KeyringErrorKind::Unavailable);
        assert_eq!(kind(libc::EINVAL), KeyringErrorKind::Other);
    }

    #[test]
    fn the_crate_errors_keep_their_errno() {
        assert_eq!(
            KeyringError::from(KeyError::Unknown(libc::ENOSYS)).errno,
            Some(libc::ENOSYS)
        );
        assert_eq!(
            KeyringError::from(KeyError::KeyRevoked).errno,
            Some(libc::EKEYREVOKED)
        );
        assert_eq!(
            KeyringError::from(KeyError::PermissionDenied).kind,
            KeyringErrorKind::Unavailable
        );
    }

    #[test]
    fn messages_explain_possession_and_quota() {
        let msg = KeyringError::of(KeyringErrorKind::PermissionDenied).to_string();
        assert!(msg.contains("possessed only through"), "{msg}");
        let msg = KeyringError::of(KeyringErrorKind::QuotaExceeded).to_string();
        assert!(msg.contains("200 keys and 20,000 bytes"), "{msg}");
    }
}
