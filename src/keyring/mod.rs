//! The Linux kernel keyring as a key source and sink (`keyrings(7)`), through the system
//! calls wrapped by the `linux-keyutils` crate: no `unsafe` code here.
//!
//! - [`store`] adds a `user` key whose payload is passed to `add_key(2)` straight from the
//!   caller's slice (a guarded region), with possessor-only permissions set before the key
//!   is linked into the target keyring (see [`store`] for exactly what the kernel allows).
//! - [`payload_len`] and [`read_into`] read a payload in two steps: its size first
//!   (`KEYCTL_READ` with an empty buffer), then straight into a region of that size.
//! - [`invalidate`], [`describe`], [`list`] and [`probe`] do what they say; none of them
//!   ever returns payload bytes.
//!
//! Errors carry the errno and never any payload byte.

mod error;
mod store;

pub use error::{KeyringError, KeyringErrorKind};
pub use store::store;

use linux_keyutils::{Key, KeyRing, KeyRingIdentifier, KeySerialId, KeyType, LinkNode};

/// Possessor: view, read, write, search, link, setattr; nobody else anything.
pub const POSSESSOR_ONLY: u32 = 0x3f00_0000;

/// Longest accepted description, in bytes (the `linux-keyutils` describe buffer is 512
/// bytes, which also holds the type, uid, gid and permissions).
pub const MAX_DESCRIPTION_LEN: usize = 256;

/// Deepest keyring nesting the kernel searches (`KEYRING_SEARCH_MAX_DEPTH`).
const MAX_DEPTH: usize = 6;

/// Most links read from one keyring.
const MAX_LINKS: usize = 4096;

/// A keyring named the way `keyctl(1)` names them, or by serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `@t`: this thread's keyring.
    Thread,
    /// `@p`: this process's keyring.
    Process,
    /// `@s`: the session keyring.
    Session,
    /// `@u`: the user keyring (possessed only through the session keyring).
    User,
    /// `@us`: the user's default session keyring.
    UserSession,
    /// A keyring by serial; it must be reachable from this process's keyrings.
    Serial(i32),
}

impl Target {
    /// Parse a keyring name: "thread", "process", "session", "user" or "user-session".
    pub fn from_name(name: &str) -> Option<Target> {
        Some(match name {
            "thread" => Target::Thread,
            "process" => Target::Process,
            "session" => Target::Session,
            "user" => Target::User,
            "user-session" => Target::UserSession,
            _ => return None,
        })
    }

    fn special(self) -> Option<KeyRingIdentifier> {
        Some(match self {
            Target::Thread => KeyRingIdentifier::Thread,
            Target::Process => KeyRingIdentifier::Process,
            Target::Session => KeyRingIdentifier::Session,
            Target::User => KeyRingIdentifier::User,
            Target::UserSession => KeyRingIdentifier::UserSession,
            Target::Serial(_) => return None,
        })
    }

    /// The keyring, created when it is a special keyring that does not exist yet (`create`).
    pub fn resolve(self, create: bool) -> Result<KeyRing, KeyringError> {
        match (self.special(), self) {
            (Some(id), _) => KeyRing::from_special_id(id, create).map_err(KeyringError::from),
            (None, Target::Serial(serial)) => find_keyring(serial),
            (None, _) => Err(KeyringError::of(KeyringErrorKind::NotFound)),
        }
    }
}

/// The keyring with `serial`, found by walking the links of this process's keyrings (the
/// crate builds a keyring handle only from a special id or a link).
fn find_keyring(serial: i32) -> Result<KeyRing, KeyringError> {
    let roots = [
        KeyRingIdentifier::Thread,
        KeyRingIdentifier::Process,
        KeyRingIdentifier::Session,
        KeyRingIdentifier::User,
        KeyRingIdentifier::UserSession,
    ];
    let mut level: Vec<KeyRing> = roots
        .iter()
        .filter_map(|id| KeyRing::from_special_id(*id, false).ok())
        .collect();
    for _ in 0..=MAX_DEPTH {
        let mut next = Vec::new();
        for ring in level {
            if ring.metadata().is_ok() && ring_serial(&ring) == Some(serial) {
                return Ok(ring);
            }
            if let Ok(links) = ring.get_links(MAX_LINKS) {
                next.extend(links.iter().filter_map(LinkNode::as_ring));
            }
        }
        level = next;
    }
    Err(KeyringError::of(KeyringErrorKind::NotFound))
}

/// The serial of a keyring handle (resolved with `KEYCTL_GET_KEYRING_ID` for the special
/// ones by the crate).
fn ring_serial(ring: &KeyRing) -> Option<i32> {
    // The crate does not expose a keyring's id; its Debug form is `KeyRing { id: KeySerialId(N) }`.
    let text = format!("{ring:?}");
    let start = text.find("KeySerialId(")? + "KeySerialId(".len();
    let end = start + text[start..].find(')')?;
    text[start..end].parse().ok()
}

/// A key to read: by serial, or by description searched for (`KEYCTL_SEARCH`, type
/// `user`) in a keyring and the keyrings it links to.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// A key by serial.
    Serial(i32),
    /// A `user` key by description, searched for from a keyring.
    Description(&'a str, Target),
}

/// Check a description: non-empty, no NUL, at most [`MAX_DESCRIPTION_LEN`] bytes.
pub fn check_description(description: &str) -> Result<(), &'static str> {
    if description.is_empty() {
        Err("the key description must not be empty")
    } else if description.len() > MAX_DESCRIPTION_LEN {
        Err("the key description must be at most 256 bytes")
    } else if description.contains('\0') {
        Err("the key description must not contain NUL characters")
    } else {
        Ok(())
    }
}

/// Check a description for a key keycell stores: [`check_description`], and no `;`. The
/// kernel describes a key as `type;uid;gid;perm;description` and `linux-keyutils` splits
/// that on every `;`, so a stored `prod;x` would describe and list as `prod`. Keys made by
/// other tools with a `;` can still be read by description or serial.
pub fn check_new_description(description: &str) -> Result<(), &'static str> {
    check_description(description)?;
    if description.contains(';') {
        Err(
            "the key description must not contain ';' (the kernel's key descriptions use it \
             as a separator, so the name would list cut at the ';')",
        )
    } else {
        Ok(())
    }
}

/// The key `lookup` names; a serial must name a `user` key.
pub fn find(lookup: Lookup<'_>) -> Result<Key, KeyringError> {
    match lookup {
        Lookup::Serial(serial) => {
            // A keyring's payload is its list of links: only a `user` key is a key.
            let key = Key::from_id(KeySerialId::new(serial));
            match key.metadata()?.get_type() {
                KeyType::User => Ok(key),
                _ => Err(KeyringError::of(KeyringErrorKind::NotUserKey)),
            }
        }
        Lookup::Description(description, target) => {
            let ring = target.resolve(false)?;
            ring.search(description).map_err(KeyringError::from)
        }
    }
}

/// The payload size of `key` (`KEYCTL_READ` with an empty buffer returns it, copying
/// nothing).
pub fn payload_len(key: &Key) -> Result<usize, KeyringError> {
    let mut empty: [u8; 0] = [];
    key.read(&mut empty).map_err(KeyringError::from)
}

/// Read the payload of `key` into `dst`, which must be exactly the payload size found by
/// [`payload_len`]; a payload whose size changed in between (`KEYCTL_UPDATE` by another
/// process) is [`KeyringErrorKind::Changed`], and the caller wipes `dst`.
pub fn read_into(key: &Key, dst: &mut [u8]) -> Result<(), KeyringError> {
    let mut dst = dst;
    let n = key.read(&mut dst).map_err(KeyringError::from)?;
    if n == dst.len() {
        Ok(())
    } else {
        Err(KeyringError::of(KeyringErrorKind::Changed))
    }
}

/// Invalidate `key` (`KEYCTL_INVALIDATE`): the kernel unlinks it from every keyring and
/// garbage-collects it; its payload is freed (and zeroed: `user` keys use `kfree_sensitive`).
pub fn invalidate(key: &Key) -> Result<(), KeyringError> {
    key.invalidate().map_err(KeyringError::from)
}

/// What `KEYCTL_DESCRIBE` says about a key: never its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// The serial.
    pub serial: i32,
    /// The key type ("user", "keyring", ...).
    pub key_type: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Permission mask (possessor, user, group, other bytes from high to low).
    pub perm: u32,
    /// The description.
    pub description: String,
}

/// Describe `key` (view permission needed). The kernel's string is split on its first four
/// `;` only: a description may contain more (keys made by other tools), and
/// `linux-keyutils` would cut it at the first, listing `prod;x` as `prod`.
pub fn describe(key: &Key) -> Result<Description, KeyringError> {
    let serial = key.get_id().as_raw_id();
    let raw = crate::sys::keyctl_describe(serial).map_err(KeyringError::from_errno)?;
    parse_description(serial, &raw).ok_or_else(|| KeyringError::of(KeyringErrorKind::Other))
}

/// `type;uid;gid;perm;description` (perm in hex), the description taken whole.
fn parse_description(serial: i32, raw: &[u8]) -> Option<Description> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut fields = text.splitn(5, ';');
    let key_type = fields.next()?.to_owned();
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    let perm = u32::from_str_radix(fields.next()?, 16).ok()?;
    let description = fields.next()?.to_owned();
    Some(Description {
        serial,
        key_type,
        uid,
        gid,
        perm,
        description,
    })
}

/// The `user` keys linked directly into `target`, described (keys this process may not
/// view are left out).
pub fn list(target: Target) -> Result<Vec<Description>, KeyringError> {
    let ring = target.resolve(false)?;
    let links = ring.get_links(MAX_LINKS).map_err(KeyringError::from)?;
    Ok(links
        .iter()
        .filter_map(LinkNode::as_key)
        .filter_map(|k| describe(&k).ok())
        .collect())
}

/// Whether this process's session keyring is the user-session keyring (`_uid_ses.UID`),
/// as in a shell that no login or service manager gave a session keyring (cron, CI, many
/// containers). A key stored into "the session keyring" from such a process lands in a new
/// anonymous session keyring of its own (the kernel joins one when asked to create, rather
/// than add to the user-session keyring), which dies with the process. Looks up without
/// creating (the kernel then installs the user-session keyring, as `keyctl show @s` does).
pub fn session_is_user_session() -> Result<bool, KeyringError> {
    let ring = KeyRing::from_special_id(KeyRingIdentifier::Session, false)?;
    let meta = ring.metadata()?;
    Ok(meta.get_description().starts_with("_uid_ses."))
}

/// Whether this process can use the keyring: `None` when the session keyring can be
/// found or created, else the error (e.g. `ENOSYS`/`EPERM` from a seccomp profile).
pub fn probe() -> Option<KeyringError> {
    KeyRing::from_special_id(KeyRingIdentifier::Session, true)
        .err()
        .map(KeyringError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_names() {
        assert_eq!(Target::from_name("session"), Some(Target::Session));
        assert_eq!(Target::from_name("user-session"), Some(Target::UserSession));
        assert_eq!(Target::from_name("@s"), None);
    }

    #[test]
    fn descriptions() {
        assert!(check_description("kc:a").is_ok());
        assert!(check_description("").is_err());
        assert!(check_description("a\0b").is_err());
        assert!(check_description(&"x".repeat(MAX_DESCRIPTION_LEN)).is_ok());
        assert!(check_description(&"x".repeat(MAX_DESCRIPTION_LEN + 1)).is_err());
        assert!(check_description("prod;x").is_ok());
        assert!(check_new_description("prod;x").is_err());
        assert!(check_new_description("kc:a").is_ok());
        assert!(check_new_description("").is_err());
        let d = parse_description(7, b"user;0;1;3f000000;prod;x;y").expect("parse");
        assert_eq!(
            (
                d.key_type.as_str(),
                d.uid,
                d.gid,
                d.perm,
                d.description.as_str()
            ),
            ("user", 0, 1, 0x3f00_0000, "prod;x;y")
        );
        assert!(parse_description(7, b"user;0;1;zz;a").is_none());
        assert!(parse_description(7, b"user;0;1").is_none());
    }

    #[test]
    fn a_keyring_handle_shows_its_serial() {
        // `ring_serial` reads the crate's Debug form; pin it.
        if let Ok(ring) = KeyRing::from_special_id(KeyRingIdentifier::Session, false) {
            assert!(ring_serial(&ring).is_some_and(|s| s > 0));
        }
    }
}
