//! PKCS#11 failures, by cause. The `CKR_*` code the module returned is kept (for
//! `Pkcs11Error.code` in Python); no message ever carries a PIN or key byte.

use cryptoki::error::{Error as CkError, Rv, RvError};

use crate::memory::MemoryError;

/// What went wrong, by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkcs11ErrorKind {
    /// The module (shared library) could not be loaded, or is not a PKCS#11 module.
    ModuleNotFound,
    /// No token with that label, slot id or URI attributes is present.
    TokenNotFound,
    /// `CKR_PIN_INCORRECT`, `CKR_PIN_INVALID`, `CKR_PIN_LEN_RANGE`: the PIN is wrong.
    PinIncorrect,
    /// `CKR_PIN_LOCKED`, `CKR_PIN_EXPIRED`: the PIN is locked (too many wrong tries).
    PinLocked,
    /// No object (key) matches the label or id, or its public half is missing.
    ObjectNotFound,
    /// More than one object matches: name it by id as well.
    ObjectAmbiguous,
    /// `CKR_MECHANISM_INVALID` and relatives: the token does not offer this operation.
    MechanismNotSupported,
    /// The token, or the key, was made by the parent before `fork()`.
    Forked,
    /// The token handle was closed.
    Closed,
    /// `CKR_USER_NOT_LOGGED_IN` and relatives: the session lost its login.
    NotLoggedIn,
    /// A token-side signature / MAC check failed.
    SignatureInvalid,
    /// A bad argument (label, length, URI).
    Invalid,
    /// A key object keycell will not use: made without the PIN, readable out of the
    /// token, or (for a store master) not generated there.
    Untrusted,
    /// The module file or a directory above it could be written by someone else.
    UnsafeModule,
    /// Any other failure the module reported.
    Other,
}

/// A PKCS#11 failure: its cause, the `CKR_*` value when the module returned one, and a
/// message without secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Error {
    /// The cause.
    pub kind: Pkcs11ErrorKind,
    /// The `CK_RV` the module returned, if any.
    pub code: Option<u64>,
    /// What happened (never a PIN or key byte).
    pub message: String,
}

impl Pkcs11Error {
    /// An error of `kind` with `message` and no `CK_RV`.
    pub fn new(kind: Pkcs11ErrorKind, message: impl Into<String>) -> Self {
        Pkcs11Error {
            kind,
            code: None,
            message: message.into(),
        }
    }

    /// An invalid argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Pkcs11ErrorKind::Invalid, message)
    }

    /// The error for a failed call to the module, `what` naming the operation.
    pub fn from_cryptoki(what: &str, e: CkError) -> Self {
        match e {
            CkError::Pkcs11(rv, function) => {
                let code = rv_code(rv);
                let shown = code.map(|c| format!(" (0x{c:x})")).unwrap_or_default();
                Pkcs11Error {
                    kind: kind_of(rv),
                    code,
                    message: format!("{what}: C_{function:?} returned {}{shown}", ckr_name(rv)),
                }
            }
            CkError::LibraryLoading(le) => Pkcs11Error::new(
                Pkcs11ErrorKind::ModuleNotFound,
                format!("{what}: cannot load the PKCS#11 module ({le})"),
            ),
            CkError::MissingSymbol(sym) => Pkcs11Error::new(
                Pkcs11ErrorKind::ModuleNotFound,
                format!("{what}: the library is not a PKCS#11 module (no {sym})"),
            ),
            other => Pkcs11Error::new(Pkcs11ErrorKind::Other, format!("{what}: {other}")),
        }
    }

    /// Whether the session the error came from should be thrown away rather than
    /// returned to the pool.
    pub fn session_broken(&self) -> bool {
        const BROKEN: [RvError; 5] = [
            RvError::SessionHandleInvalid,
            RvError::SessionClosed,
            RvError::DeviceRemoved,
            RvError::TokenNotPresent,
            RvError::OperationActive,
        ];
        BROKEN
            .iter()
            .any(|rv| self.code.is_some() && self.code == rv_code(*rv))
    }
}

/// The numeric `CK_RV` of an [`RvError`] (the crate maps codes to errors only one way; the
/// standard codes are all below 0x200).
fn rv_code(rv: RvError) -> Option<u64> {
    (0..0x200u64).find(|c| Rv::from(*c as std::os::raw::c_ulong) == Rv::Error(rv))
}

/// The `CKR_*` name of an [`RvError`]: `PinIncorrect` -> `CKR_PIN_INCORRECT`.
fn ckr_name(rv: RvError) -> String {
    let mut name = String::from("CKR");
    for c in format!("{rv:?}").chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

fn kind_of(rv: RvError) -> Pkcs11ErrorKind {
    use Pkcs11ErrorKind as K;
    match rv {
        RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange => K::PinIncorrect,
        RvError::PinLocked | RvError::PinExpired => K::PinLocked,
        RvError::MechanismInvalid
        | RvError::MechanismParamInvalid
        | RvError::CurveNotSupported
        | RvError::FunctionNotSupported
        | RvError::KeyTypeInconsistent
        | RvError::KeyFunctionNotPermitted
        | RvError::KeySizeRange
        | RvError::DomainParamsInvalid => K::MechanismNotSupported,
        RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid => K::ObjectNotFound,
        RvError::TokenNotPresent
        | RvError::TokenNotRecognized
        | RvError::SlotIdInvalid
        | RvError::DeviceRemoved => K::TokenNotFound,
        RvError::UserNotLoggedIn | RvError::UserPinNotInitialized => K::NotLoggedIn,
        RvError::SignatureInvalid | RvError::SignatureLenRange => K::SignatureInvalid,
        _ => K::Other,
    }
}

impl From<MemoryError> for Pkcs11Error {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Forked => Pkcs11Error::new(Pkcs11ErrorKind::Forked, e.to_string()),
            other => Pkcs11Error::new(Pkcs11ErrorKind::Other, other.to_string()),
        }
    }
}

impl std::fmt::Display for Pkcs11Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Pkcs11Error {}

/// `Result` of this module.
pub type Result<T> = std::result::Result<T, Pkcs11Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;

    #[test]
    fn codes_map_to_causes() {
        let e = Pkcs11Error::from_cryptoki(
            "login",
            CkError::Pkcs11(RvError::PinIncorrect, Function::Login),
        );
        assert_eq!(e.kind, Pkcs11ErrorKind::PinIncorrect);
        assert_eq!(e.code, Some(0xa0)); // CKR_PIN_INCORRECT
        let e = Pkcs11Error::from_cryptoki(
            "sign",
            CkError::Pkcs11(RvError::MechanismInvalid, Function::SignInit),
        );
        assert_eq!(e.kind, Pkcs11ErrorKind::MechanismNotSupported);
        assert!(e.message.contains("sign"), "{}", e.message);
        assert!(
            e.message
                .ends_with("C_SignInit returned CKR_MECHANISM_INVALID (0x70)"),
            "{}",
            e.message
        );
    }
}
