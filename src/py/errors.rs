//! The one error type of the bindings and its mapping to the exceptions defined in
//! `keycell/exceptions.py` (imported in `exceptions.rs`): every layer's error converts
//! into [`Error`] with `From`, and [`Error`] into `PyErr`. No other file builds a Python
//! exception. No message carries secret bytes or the length of secret input.

use pyo3::exceptions::{PyBufferError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::PyErr;

use crate::crypto::symmetric::KeyError;
use crate::memory::MemoryError;

use super::exceptions::{
    AgentError, AgentPolicyError, AlreadyFinalized, AuditError, AuditTamperedError,
    CredentialUnavailableError, ForkedKeyError, InsecureKeyFileError, InvalidCode,
    InvalidSignature, InvalidTag, KeyDestroyedError, KeyFileError, KeyInUseError,
    KeyNotExportableError, KeyStoreError, KeycellError, KeyringError, KeyringKeyExpiredError,
    KeyringKeyNotFoundError, KeyringPermissionError, KeyringQuotaError, KeyringUnavailableError,
    MemoryLockError, Pkcs11ClosedError, Pkcs11ForkedError, Pkcs11MechanismNotSupportedError,
    Pkcs11ModuleNotFoundError, Pkcs11NotLoggedInError, Pkcs11ObjectNotFoundError,
    Pkcs11PinFileError, Pkcs11PinIncorrectError, Pkcs11PinLockedError, Pkcs11TokenNotFoundError,
    ProtectionError, StoreAuthenticationError, StoreCorruptedError, StoreEntryExistsError,
    StoreEntryNotFoundError, StoreLockedError,
};

/// Every failure the bindings report.
#[derive(Debug)]
pub enum Error {
    /// The handle was destroyed.
    Destroyed(&'static str),
    /// A view of the key is still open.
    InUse(&'static str),
    /// A failure of the memory layer.
    Memory(MemoryError),
    /// A bad argument value.
    Value(String),
    /// A private-key operation failed inside (a fault check, the random generator).
    Signing(&'static str),
    /// A bad argument type.
    Type(String),
    /// A key file cannot be used (I/O error, wrong size, ...).
    KeyFile {
        path: String,
        reason: String,
        errno: Option<i32>,
    },
    /// A key file is not safe to read (symlink, not regular, foreign owner, loose mode).
    InsecureKeyFile { path: String, reason: String },
    /// A PIN file could not be read or was refused (the token was not asked).
    PinFile {
        path: String,
        reason: String,
        errno: Option<i32>,
    },
    /// `from_credential` outside a systemd unit with credentials.
    CredentialUnavailable(String),
    /// An exception already raised by Python code (e.g. the buffer protocol).
    Py(PyErr),
    /// The key's export is sealed (`seal_export()` or `exportable=False`).
    NotExportable(&'static str),
    /// A key store failed; `path` is the store's path.
    Store {
        path: String,
        err: crate::store::StoreError,
    },
    /// The object was closed.
    Closed(&'static str),
    /// A signature or MAC tag did not verify.
    InvalidSignature(String),
    /// A context (e.g. `HMAC`) was used after `finalize()`/`verify()`.
    AlreadyFinalized(&'static str),
    /// A kernel keyring operation failed.
    Keyring(crate::keyring::KeyringError),
    /// A one-time code is wrong, expired or already used.
    InvalidCode(&'static str),
    /// An AEAD tag did not verify (forged, truncated, wrong key, nonce or associated data).
    InvalidTag,
    /// The audit log failed.
    Audit(crate::audit::AuditError),
    /// A change to a key store failed, or its writer lock stayed busy; `path` is the
    /// store's path.
    StoreChange {
        path: String,
        err: crate::store::ChangeError,
    },
    /// A PKCS#11 call failed (its `CK_RV` becomes the exception's `code`).
    Pkcs11(crate::pkcs11::Pkcs11Error),
    /// The agent server failed (binding, starting, a key name used twice).
    Agent(String),
    /// The agent's policy is invalid; the reason names the problem.
    AgentPolicy(String),
    /// A policy or its files refused (unreadable, insecure, unsigned, a serial that goes
    /// back): `AgentPolicyError` with the message as it is.
    AgentPolicyRefused(String),
    /// A handle that is not a key cell (a key store, an agent server) was used in a fork
    /// child of the process that made it.
    Forked(String),
    /// A buffer export cannot be made or released (`BufferError`).
    Buffer(&'static str),
    /// A result would be larger than Python allows (`OverflowError`).
    Overflow(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<MemoryError> for Error {
    fn from(e: MemoryError) -> Self {
        Error::Memory(e)
    }
}

impl From<crate::audit::AuditError> for Error {
    fn from(e: crate::audit::AuditError) -> Self {
        Error::Audit(e)
    }
}

impl From<crate::pkcs11::Pkcs11Error> for Error {
    fn from(e: crate::pkcs11::Pkcs11Error) -> Self {
        Error::Pkcs11(e)
    }
}

impl From<crate::crypto::ec::EcError> for Error {
    fn from(e: crate::crypto::ec::EcError) -> Self {
        use crate::crypto::ec::EcError;
        match e {
            EcError::InvalidSignature => Error::InvalidSignature(e.to_string()),
            EcError::Memory(m) => Error::Memory(m),
            EcError::Random => Error::Memory(MemoryError::Random { code: 0 }),
            EcError::InvalidScalar | EcError::InvalidPoint | EcError::CurveMismatch { .. } => {
                Error::Value(e.to_string())
            }
        }
    }
}

impl From<crate::crypto::rsa::RsaError> for Error {
    fn from(e: crate::crypto::rsa::RsaError) -> Self {
        use crate::crypto::rsa::RsaError as R;
        match e {
            R::Memory(m) => Error::Memory(m),
            R::Signing => Error::Signing("RSA signing failed (fault check or random generator)"),
            other => Error::Value(other.to_string()),
        }
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Py(e)
    }
}

impl<E: Into<Error>> From<KeyError<E>> for Error {
    fn from(e: KeyError<E>) -> Self {
        match e {
            KeyError::Length(_) => Error::Value(format!(
                "key length must be between 1 and {} bytes",
                crate::crypto::symmetric::MAX_KEY_LEN
            )),
            KeyError::Memory(m) => Error::Memory(m),
            KeyError::Fill(f) => f.into(),
        }
    }
}

impl From<crate::otp::OtpError> for Error {
    fn from(e: crate::otp::OtpError) -> Self {
        use crate::otp::OtpError as O;
        match e {
            O::ShortSecret => Error::Value(
                "the OTP secret is shorter than 128 bits; pass allow_short_secret=True only \
                 to interoperate with old (80-bit) secrets"
                    .to_owned(),
            ),
            O::SecretLength => Error::Value(format!(
                "the OTP secret must be between 1 and {} bytes",
                crate::otp::MAX_SECRET_LEN
            )),
            O::Base32 => Error::Value("the OTP secret is not valid base32".to_owned()),
            O::Uri(what) => Error::Value(format!("invalid otpauth URI: {what}")),
            O::Period => Error::Value("period must be a positive number of seconds".to_owned()),
            O::BeforeT0 => Error::Value("timestamp is before t0".to_owned()),
            O::ClockBeforeEpoch => Error::Value("the system clock is before 1970".to_owned()),
            O::TimeOutOfRange => Error::Value("timestamp out of range".to_owned()),
            O::Memory(m) => Error::Memory(m),
        }
    }
}

impl From<crate::fs::CredentialError> for Error {
    fn from(e: crate::fs::CredentialError) -> Self {
        match e {
            crate::fs::CredentialError::NotInUnit | crate::fs::CredentialError::NotAbsolute => {
                Error::CredentialUnavailable(e.to_string())
            }
            crate::fs::CredentialError::BadName(_) => Error::Value(e.to_string()),
        }
    }
}

impl From<std::convert::Infallible> for Error {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Destroyed(what) => {
                KeyDestroyedError::new_err(format!("this {what} has been destroyed"))
            }
            Error::InUse(msg) => KeyInUseError::new_err(msg),
            Error::Memory(m) => memory_error(m),
            Error::Value(msg) => PyValueError::new_err(msg),
            Error::Signing(msg) => KeycellError::new_err(msg),
            Error::Type(msg) => PyTypeError::new_err(msg),
            Error::KeyFile {
                path,
                reason,
                errno,
            } => with_errno(
                KeyFileError::new_err(format!("key file {path:?}: {reason}")),
                errno,
            ),
            Error::InsecureKeyFile { path, reason } => {
                InsecureKeyFileError::new_err(format!("refusing key file {path:?}: {reason}"))
            }
            Error::CredentialUnavailable(msg) => CredentialUnavailableError::new_err(msg),
            Error::PinFile {
                path,
                reason,
                errno,
            } => with_errno(
                Pkcs11PinFileError::new_err(format!("PIN file {path:?}: {reason}")),
                errno,
            ),
            Error::InvalidSignature(msg) => InvalidSignature::new_err(msg),
            Error::Py(err) => err,
            Error::NotExportable(what) => KeyNotExportableError::new_err(format!(
                "this {what} is not exportable (exportable=False or seal_export()): its bytes \
                 cannot be exposed or written to a key file"
            )),
            Error::Closed(what) => KeyDestroyedError::new_err(format!("this {what} is closed")),
            Error::Store { path, err } => store_error(&path, err),
            Error::AlreadyFinalized(what) => {
                AlreadyFinalized::new_err(format!("{what} has already been finalized"))
            }
            Error::Keyring(e) => keyring_error(e),
            Error::InvalidCode(msg) => InvalidCode::new_err(msg),
            Error::Audit(e) => audit_error(e),
            Error::InvalidTag => InvalidTag::new_err(
                "the authentication tag does not verify (wrong key, nonce or associated data, \
                 or the data was modified or truncated)",
            ),
            Error::StoreChange { path, err } => store_change_error(&path, err),
            Error::Pkcs11(e) => pkcs11_error(e),
            Error::Agent(msg) => AgentError::new_err(msg),
            Error::AgentPolicy(reason) => AgentPolicyError::new_err(format!("policy: {reason}")),
            Error::AgentPolicyRefused(message) => AgentPolicyError::new_err(message),
            Error::Forked(msg) => ForkedKeyError::new_err(msg),
            Error::Buffer(msg) => PyBufferError::new_err(msg),
            Error::Overflow(msg) => PyOverflowError::new_err(msg),
        }
    }
}

/// The exception for a failure of the memory layer.
fn memory_error(m: MemoryError) -> PyErr {
    match m {
        MemoryError::Forked => ForkedKeyError::new_err(m.to_string()),
        MemoryError::LockFailed { errno, .. } => {
            let err = MemoryLockError::new_err(m.to_string());
            set_errno(&err, errno);
            err
        }
        MemoryError::SecretHeap(shortfall) => {
            let err = MemoryLockError::new_err(m.to_string());
            if let Some(errno) = shortfall.errno() {
                set_errno(&err, errno);
            }
            err
        }
        MemoryError::InvalidLength { .. } => PyValueError::new_err(m.to_string()),
        MemoryError::AdviseFailed { errno, .. } | MemoryError::SystemCall { errno, .. } => {
            let err = ProtectionError::new_err(m.to_string());
            set_errno(&err, errno);
            err
        }
        MemoryError::Random { .. } => ProtectionError::new_err(m.to_string()),
    }
}

/// The exception for a key store failure (`path` is the store's path).
fn store_error(path: &str, err: crate::store::StoreError) -> PyErr {
    use crate::store::StoreError as S;
    match err {
        S::File(crate::fs::FileError::Insecure(reason)) => {
            InsecureKeyFileError::new_err(format!("refusing key store {path:?}: {reason}"))
        }
        S::File(crate::fs::FileError::Unusable { reason, errno }) => with_errno(
            KeyFileError::new_err(format!("key store {path:?}: {reason}")),
            errno,
        ),
        S::Memory(m) => Error::Memory(m).into(),
        S::Corrupted(reason) => {
            StoreCorruptedError::new_err(format!("key store {path:?} is corrupted: {reason}"))
        }
        S::Authentication(reason) => {
            StoreAuthenticationError::new_err(format!("key store {path:?}: {reason}"))
        }
        S::Exists => {
            let err = KeyStoreError::new_err(format!(
                "cannot create key store {path:?}: a file already exists there"
            ));
            set_errno(&err, libc::EEXIST);
            err
        }
        S::EntryExists(name) => StoreEntryExistsError::new_err(format!(
            "key store {path:?} already has an entry {name:?} (pass overwrite=True to replace it)"
        )),
        S::NotFound(name) => {
            StoreEntryNotFoundError::new_err(format!("key store {path:?} has no entry {name:?}"))
        }
        S::Invalid(msg) => PyValueError::new_err(msg),
    }
}

/// The exception for a failed key store change (`path` is the store's path): a busy
/// writer lock is `StoreLockedError`, naming the lock file and the timeout.
fn store_change_error(path: &str, err: crate::store::ChangeError) -> PyErr {
    use crate::store::ChangeError as C;
    match err {
        C::Store(e) => store_error(path, e),
        C::Busy(b) => StoreLockedError::new_err(format!("key store {path:?}: {b}")),
    }
}

/// The exception for a PKCS#11 failure, with its `CK_RV` as `code` (a bad signature and
/// an invalid argument are `InvalidSignature` and `ValueError`, without one).
fn pkcs11_error(e: crate::pkcs11::Pkcs11Error) -> PyErr {
    use crate::pkcs11::Pkcs11ErrorKind as K;
    let msg = e.message;
    let err = match e.kind {
        K::ModuleNotFound => Pkcs11ModuleNotFoundError::new_err(msg),
        K::TokenNotFound => Pkcs11TokenNotFoundError::new_err(msg),
        K::PinIncorrect => Pkcs11PinIncorrectError::new_err(msg),
        K::PinLocked => Pkcs11PinLockedError::new_err(msg),
        K::ObjectNotFound => Pkcs11ObjectNotFoundError::new_err(msg),
        K::MechanismNotSupported => Pkcs11MechanismNotSupportedError::new_err(msg),
        K::Forked => Pkcs11ForkedError::new_err(msg),
        K::Closed => Pkcs11ClosedError::new_err(msg),
        K::NotLoggedIn => Pkcs11NotLoggedInError::new_err(msg),
        K::SignatureInvalid => return InvalidSignature::new_err(msg),
        K::Invalid => return PyValueError::new_err(msg),
        K::ObjectAmbiguous | K::Untrusted | K::UnsafeModule | K::Other => {
            super::exceptions::Pkcs11Error::new_err(msg)
        }
    };
    pyo3::Python::attach(|py| {
        use pyo3::types::PyAnyMethods;
        let _ = err.value(py).as_any().setattr("code", e.code);
    });
    err
}

/// The exception for an audit log failure.
fn audit_error(e: crate::audit::AuditError) -> PyErr {
    use crate::audit::AuditError as A;
    let msg = format!("audit log: {e}");
    match e {
        A::Memory(m) => memory_error(m),
        A::Invalid(m) => PyValueError::new_err(m),
        A::Tampered { line, kind, .. } => {
            let err = AuditTamperedError::new_err(msg);
            pyo3::Python::attach(|py| {
                use pyo3::types::PyAnyMethods;
                let v = err.value(py).as_any();
                let _ = v.setattr("kind", kind.name());
                let _ = v.setattr("line", line);
            });
            err
        }
        A::File {
            err: crate::fs::FileError::Unusable { errno, .. },
            ..
        } => with_errno(AuditError::new_err(msg), errno),
        A::Exists => with_errno(AuditError::new_err(msg), Some(libc::EEXIST)),
        _ => AuditError::new_err(msg),
    }
}

/// The exception for a keyring failure, by its cause, with its errno.
fn keyring_error(e: crate::keyring::KeyringError) -> PyErr {
    use crate::keyring::KeyringErrorKind as K;
    let msg = format!("kernel keyring: {e}");
    let err = match e.kind {
        K::NotFound => KeyringKeyNotFoundError::new_err(msg),
        K::Expired => KeyringKeyExpiredError::new_err(msg),
        K::PermissionDenied => KeyringPermissionError::new_err(msg),
        K::QuotaExceeded => KeyringQuotaError::new_err(msg),
        K::Unavailable => KeyringUnavailableError::new_err(msg),
        K::Changed | K::NotUserKey | K::Other => KeyringError::new_err(msg),
    };
    with_errno(err, e.errno)
}

/// `err` with `errno`, if any, attached (see [`set_errno`]).
fn with_errno(err: PyErr, errno: Option<i32>) -> PyErr {
    if let Some(errno) = errno {
        set_errno(&err, errno);
    }
    err
}

/// Attach `errno` to an exception as its `errno` attribute (best effort).
fn set_errno(err: &PyErr, errno: i32) {
    pyo3::Python::attach(|py| {
        use pyo3::types::PyAnyMethods;
        let _ = err.value(py).as_any().setattr("errno", errno);
    });
}
