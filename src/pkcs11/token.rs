//! An open token: its slot, the login, and a pool of sessions safe for threads.
//!
//! - **Login** is per application and token in PKCS#11: every session of the process
//!   shares it. So logins live in a process-wide table keyed by module and slot, with a
//!   count of the [`Token`]s that use it. The first `open` with a PIN logs in (on an
//!   "anchor" session kept open while the login is used); a later `open` of the same token
//!   compares its PIN with the one kept (in a guarded region, in constant time) instead of
//!   calling `C_Login` again, which would return `CKR_USER_ALREADY_LOGGED_IN` without
//!   checking it. The last `close` logs out.
//! - **Sessions**: a PKCS#11 session must not be used by two threads at once. Each
//!   operation takes an idle session from the token's pool (or opens one), uses it with no
//!   lock held, and gives it back; a session the module reports broken is dropped.
//! - **Fork**: a token records the process that opened it ([`ProcessStamp`]) and checks it
//!   before taking any lock: in a fork child every operation fails with
//!   [`Pkcs11ErrorKind::Forked`] and nothing calls into the module; dropping the handle
//!   there leaks its sessions instead of closing them. The child opens the token again.
//!
//! The PIN goes to `C_Login` through the `cryptoki` crate, which takes it as a
//! `SecretBox<Vec<u8>>`: a copy made from the guarded region for the duration of the call
//! and zeroized when it is dropped (the crate offers no way to pass a borrowed slice).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::RawAuthPin;

use super::error::{Pkcs11Error, Pkcs11ErrorKind, Result};
use super::module::{self, lock_registry, Module};
use crate::crypto::ct::ct_eq;
use crate::memory::fork::ProcessStamp;
use crate::memory::SecretBuf;

/// Which token to open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSpec {
    /// `CK_TOKEN_INFO.label` (trailing blanks ignored).
    pub label: Option<String>,
    /// The slot id.
    pub slot: Option<u64>,
    /// `CK_TOKEN_INFO.serialNumber`.
    pub serial: Option<String>,
    /// `CK_TOKEN_INFO.manufacturerID`.
    pub manufacturer: Option<String>,
    /// `CK_TOKEN_INFO.model`.
    pub model: Option<String>,
}

impl TokenSpec {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(l) = &self.label {
            parts.push(format!("label {l:?}"));
        }
        if let Some(s) = self.slot {
            parts.push(format!("slot {s}"));
        }
        if let Some(s) = &self.serial {
            parts.push(format!("serial {s:?}"));
        }
        if let Some(s) = &self.manufacturer {
            parts.push(format!("manufacturer {s:?}"));
        }
        if let Some(s) = &self.model {
            parts.push(format!("model {s:?}"));
        }
        if parts.is_empty() {
            "any token".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// What `C_GetTokenInfo` says about a token (nothing secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Slot id.
    pub slot: u64,
    /// Label.
    pub label: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Whether the token needs a login for private objects.
    pub login_required: bool,
    /// Whether the user PIN is initialised.
    pub user_pin_initialized: bool,
}

/// The initialised tokens present in the module's slots (an empty slot, such as the one
/// SoftHSM2 keeps free for `--init-token`, is left out).
pub fn list_tokens(module: &Module) -> Result<Vec<TokenInfo>> {
    let ctx = module.ctx();
    let slots = ctx
        .get_slots_with_initialized_token()
        .map_err(|e| Pkcs11Error::from_cryptoki("listing slots", e))?;
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        let info = match ctx.get_token_info(slot) {
            Ok(i) => i,
            // A token removed between the two calls.
            Err(CkError::Pkcs11(RvError::TokenNotPresent, _)) => continue,
            Err(e) => return Err(Pkcs11Error::from_cryptoki("reading token info", e)),
        };
        out.push(TokenInfo {
            slot: slot.id(),
            label: info.label().trim_end().to_owned(),
            manufacturer: info.manufacturer_id().trim_end().to_owned(),
            model: info.model().trim_end().to_owned(),
            serial: info.serial_number().trim_end().to_owned(),
            login_required: info.login_required(),
            user_pin_initialized: info.user_pin_initialized(),
        });
    }
    Ok(out)
}

fn matches(spec: &TokenSpec, t: &TokenInfo) -> bool {
    spec.label.as_ref().is_none_or(|l| l.trim_end() == t.label)
        && spec.slot.is_none_or(|s| s == t.slot)
        && spec
            .serial
            .as_ref()
            .is_none_or(|s| s.trim_end() == t.serial)
        && spec
            .manufacturer
            .as_ref()
            .is_none_or(|s| s.trim_end() == t.manufacturer)
        && spec.model.as_ref().is_none_or(|s| s.trim_end() == t.model)
}

/// A login shared by the tokens of this process that opened one slot with a PIN.
struct Login {
    made_in: ProcessStamp,
    module: PathBuf,
    slot: u64,
    pin: SecretBuf,
    users: usize,
    anchor: Option<Session>,
}

static LOGINS: Mutex<Vec<Login>> = Mutex::new(Vec::new());

/// A read-write session on `slot`, or a read-only one on a write-protected token (which
/// can still sign; generating or deleting keys there fails with the module's error).
fn open_session(module: &Module, slot: Slot) -> Result<Session> {
    match module.ctx().open_rw_session(slot) {
        Err(CkError::Pkcs11(RvError::TokenWriteProtected, _)) => module.ctx().open_ro_session(slot),
        other => other,
    }
    .map_err(|e| Pkcs11Error::from_cryptoki("opening a session", e))
}

/// Log in to `slot` with `pin`, or join this process's login there (after checking the
/// PIN against it).
fn join_login(module: &Module, slot: Slot, pin: SecretBuf) -> Result<()> {
    let mut logins = lock_registry(&LOGINS)?;
    // A fork child forgets (leaks) the parent's logins: their sessions are the parent's.
    let (current, stale): (Vec<_>, Vec<_>) = logins.drain(..).partition(|l| l.made_in.is_current());
    stale
        .into_iter()
        .for_each(|mut l| std::mem::forget(l.anchor.take()));
    *logins = current;
    if let Some(l) = logins
        .iter_mut()
        .find(|l| l.module == module.path() && l.slot == slot.id())
    {
        if !ct_eq(l.pin.bytes()?, pin.bytes()?) {
            return Err(Pkcs11Error::new(
                Pkcs11ErrorKind::PinIncorrect,
                "the PIN is not the one this process is logged in to the token with \
                 (checked by keycell; the token's retry counter is not touched)",
            ));
        }
        l.users += 1;
        return Ok(());
    }
    let anchor = open_session(module, slot)?;
    let raw: RawAuthPin = RawAuthPin::new(Box::new(pin.bytes()?.to_vec()));
    let login = match anchor.login_with_raw(UserType::User, &raw) {
        // Other code in this process (another PKCS#11 library, or the state a fork child
        // inherited) is logged in already: join that login. Logging it out to have the
        // token check this PIN would invalidate that code's private object handles, and
        // the process can use the keys anyway (docs/pkcs11.md).
        Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        other => other,
    };
    drop(raw);
    login.map_err(|e| Pkcs11Error::from_cryptoki("logging in to the token", e))?;
    logins.push(Login {
        made_in: ProcessStamp::current(),
        module: module.path().to_owned(),
        slot: slot.id(),
        pin,
        users: 1,
        anchor: Some(anchor),
    });
    Ok(())
}

/// Leave this process's login on `slot`; the last user logs out.
fn leave_login(module: &Path, slot: u64) {
    let Ok(mut logins) = lock_registry(&LOGINS) else {
        return;
    };
    let Some(i) = logins
        .iter()
        .position(|l| l.made_in.is_current() && l.module == module && l.slot == slot)
    else {
        return;
    };
    logins[i].users -= 1;
    if logins[i].users == 0 {
        let mut l = logins.swap_remove(i);
        if let Some(anchor) = l.anchor.take() {
            // Errors are of no use here: closing the last session ends the login anyway.
            let _ = anchor.logout();
            drop(anchor);
        }
    }
}

/// Sessions kept idle per token at most.
const MAX_IDLE: usize = 16;

struct Open {
    sessions: Vec<Session>,
    logged_in: bool,
}

/// An open token. Cheap to share (`Arc`); see the module docs for threads and fork.
pub struct Token {
    module: Arc<Module>,
    slot: Slot,
    info: TokenInfo,
    state: Mutex<Option<Open>>,
    made_in: ProcessStamp,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({:?}, slot {})", self.info.label, self.info.slot)
    }
}

impl Token {
    /// Load the module at `module_path`, find the one token `spec` names, and log in with
    /// `pin` (a guarded region) when given.
    pub fn open(module_path: &Path, spec: &TokenSpec, pin: Option<SecretBuf>) -> Result<Token> {
        let module = module::load(module_path)?;
        let found: Vec<TokenInfo> = list_tokens(&module)?
            .into_iter()
            .filter(|t| matches(spec, t))
            .collect();
        let info = match found.len() {
            1 => found
                .into_iter()
                .next()
                .ok_or_else(|| Pkcs11Error::invalid("no token"))?,
            0 => {
                return Err(Pkcs11Error::new(
                    Pkcs11ErrorKind::TokenNotFound,
                    format!(
                        "no token with {} in PKCS#11 module {:?}",
                        spec.describe(),
                        module.path().display().to_string()
                    ),
                ))
            }
            n => {
                return Err(Pkcs11Error::invalid(format!(
                    "{n} tokens match {} in PKCS#11 module {:?}: name one by label or slot",
                    spec.describe(),
                    module.path().display().to_string()
                )))
            }
        };
        let slot =
            Slot::try_from(info.slot).map_err(|e| Pkcs11Error::from_cryptoki("slot id", e))?;
        let logged_in = pin.is_some();
        if let Some(pin) = pin {
            join_login(&module, slot, pin)?;
        }
        Ok(Token {
            module,
            slot,
            info,
            state: Mutex::new(Some(Open {
                sessions: Vec::new(),
                logged_in,
            })),
            made_in: ProcessStamp::current(),
        })
    }

    /// What the token says about itself.
    pub fn info(&self) -> &TokenInfo {
        &self.info
    }

    /// The module's path.
    pub fn module_path(&self) -> &Path {
        self.module.path()
    }

    /// Whether this is a fork child of the process that opened the token.
    pub fn forked(&self) -> bool {
        !self.made_in.is_current()
    }

    fn check_process(&self) -> Result<()> {
        if self.forked() {
            Err(Pkcs11Error::new(
                Pkcs11ErrorKind::Forked,
                format!(
                    "this token ({:?}) was opened by the parent process before fork(): \
                     PKCS#11 sessions are not inherited; open the token again in this process",
                    self.info.label
                ),
            ))
        } else {
            Ok(())
        }
    }

    fn closed_error(&self) -> Pkcs11Error {
        Pkcs11Error::new(
            Pkcs11ErrorKind::Closed,
            format!("this token ({:?}) is closed", self.info.label),
        )
    }

    /// Whether the token was opened with a PIN (and is not closed).
    pub fn logged_in(&self) -> bool {
        !self.forked()
            && self
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_some_and(|o| o.logged_in)
    }

    /// Whether `close()` has run (always true in a fork child).
    pub fn is_closed(&self) -> bool {
        self.forked()
            || self
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
    }

    /// Run `f` on a session of this token, taken from the pool (or opened) and given back.
    pub fn with_session<T>(&self, f: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        self.check_process()?;
        let idle = {
            let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let open = g.as_mut().ok_or_else(|| self.closed_error())?;
            open.sessions.pop()
        };
        let session = match idle {
            Some(s) => s,
            None => open_session(&self.module, self.slot)?,
        };
        let result = f(&session);
        if !matches!(&result, Err(e) if e.session_broken()) {
            let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(open) = g.as_mut() {
                if open.sessions.len() < MAX_IDLE {
                    open.sessions.push(session);
                }
            }
        }
        result
    }

    /// Close the sessions and leave the login (the last token of the process logs out).
    /// Idempotent. In a fork child it does nothing (the sessions are the parent's).
    pub fn close(&self) {
        if self.forked() {
            return;
        }
        let open = self.state.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(open) = open {
            drop(open.sessions);
            if open.logged_in {
                leave_login(self.module.path(), self.info.slot);
            }
        }
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        if self.forked() {
            // Never call into the module for the parent's sessions.
            let open = self
                .state
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(open) = open {
                open.sessions.into_iter().for_each(std::mem::forget);
            }
        } else {
            self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_match_on_every_given_field() {
        let t = TokenInfo {
            slot: 7,
            label: "alpha".to_owned(),
            manufacturer: "m".to_owned(),
            model: "x".to_owned(),
            serial: "123".to_owned(),
            login_required: true,
            user_pin_initialized: true,
        };
        assert!(matches(&TokenSpec::default(), &t));
        let by_label = TokenSpec {
            label: Some("alpha  ".to_owned()),
            ..TokenSpec::default()
        };
        assert!(matches(&by_label, &t));
        let wrong_slot = TokenSpec {
            slot: Some(8),
            ..by_label.clone()
        };
        assert!(!matches(&wrong_slot, &t));
        assert_eq!(by_label.describe(), "label \"alpha  \"");
    }
}
