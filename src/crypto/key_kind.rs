//! The kinds of keys keycell holds ([`KeyKind`]), with their names and lengths.

use super::curve::{Algorithm, KEY_LEN};

/// What a key is: a symmetric secret, an Ed25519 or an X25519 private key. Key files, key
/// store entries, the keyring and the agent all name keys by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// A symmetric secret key of 1 to [`crate::crypto::symmetric::MAX_KEY_LEN`] bytes.
    Secret,
    /// An Ed25519 private key (the 32-byte seed).
    Ed25519,
    /// An X25519 private key (the 32-byte scalar).
    X25519,
}

impl KeyKind {
    /// Every kind.
    pub const ALL: [KeyKind; 3] = [KeyKind::Secret, KeyKind::Ed25519, KeyKind::X25519];

    /// `"secret"`, `"ed25519"` or `"x25519"`.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Ed25519 => "ed25519",
            KeyKind::X25519 => "x25519",
        }
    }

    /// Parse a name from [`Self::name`].
    pub fn from_name(name: &str) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The fixed length of the key material, or `None` for secret keys (any length).
    pub fn fixed_len(self) -> Option<usize> {
        self.algorithm().map(|_| KEY_LEN)
    }

    /// The RFC 8410 algorithm of an asymmetric kind (`None` for secret keys).
    pub fn algorithm(self) -> Option<Algorithm> {
        match self {
            KeyKind::Secret => None,
            KeyKind::Ed25519 => Some(Algorithm::Ed25519),
            KeyKind::X25519 => Some(Algorithm::X25519),
        }
    }

    /// The kind of an asymmetric algorithm's private keys.
    pub fn from_algorithm(alg: Algorithm) -> KeyKind {
        match alg {
            Algorithm::Ed25519 => KeyKind::Ed25519,
            Algorithm::X25519 => KeyKind::X25519,
        }
    }
}
