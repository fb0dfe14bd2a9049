//! The agent's keys: every Ed25519 and secret entry of a key store, decrypted straight into
//! guarded regions ([`crate::store::Store::open_entry`] into the key's own region).
//! X25519 entries are not loaded: the agent has no operation for them.

use crate::crypto::ed25519;
use crate::crypto::symmetric::{KeyError, SymmetricKey};
use crate::keyfile::KeyKind;
use crate::memory::Protection;
use crate::store::{Store, StoreError};

use super::wire;

/// One loaded key.
pub enum AgentKey {
    /// An Ed25519 private key and its SSH public key blob.
    Ed25519 {
        key: ed25519::PrivateKey,
        blob: Vec<u8>,
    },
    /// A secret key (HMAC).
    Secret(SymmetricKey),
}

/// A named key.
pub struct Entry {
    pub name: String,
    pub key: AgentKey,
}

impl Entry {
    /// "ed25519" or "secret".
    pub fn kind(&self) -> &'static str {
        match self.key {
            AgentKey::Ed25519 { .. } => "ed25519",
            AgentKey::Secret(_) => "secret",
        }
    }

    /// The raw public key of an Ed25519 key (empty for a secret).
    pub fn public(&self) -> &[u8] {
        match &self.key {
            AgentKey::Ed25519 { key, .. } => key.public().as_bytes(),
            AgentKey::Secret(_) => &[],
        }
    }

    /// The protection of the key's region.
    pub fn protection(&self) -> Protection {
        match &self.key {
            AgentKey::Ed25519 { key, .. } => crate::crypto::curve::CurvePrivateKey::protection(key),
            AgentKey::Secret(k) => k.protection(),
        }
    }
}

/// Every key the agent serves (replaced as a whole on reload).
#[derive(Default)]
pub struct KeySet {
    entries: Vec<Entry>,
}

impl KeySet {
    /// Load every Ed25519 and secret entry of `store` (names sorted, as the store keeps them).
    pub fn load(store: &mut Store) -> Result<KeySet, StoreError> {
        let mut entries = Vec::new();
        for name in store.names()? {
            let sealed = store.get(&name)?;
            let fill = |dst: &mut [u8]| store.open_entry(&sealed, dst);
            let key = match sealed.kind() {
                KeyKind::Ed25519 => {
                    let key = ed25519::PrivateKey::new_with(fill)?;
                    let blob = wire::ed25519_blob(key.public().as_bytes());
                    AgentKey::Ed25519 { key, blob }
                }
                KeyKind::Secret => AgentKey::Secret(
                    SymmetricKey::new_with(sealed.len(), fill).map_err(|e| match e {
                        KeyError::Fill(e) => e,
                        KeyError::Memory(m) => StoreError::Memory(m),
                        KeyError::Length(_) => {
                            StoreError::Corrupted(format!("entry {name:?} has an invalid length"))
                        }
                    })?,
                ),
                KeyKind::X25519 => continue,
            };
            entries.push(Entry { name, key });
        }
        Ok(KeySet { entries })
    }

    /// All entries.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The Ed25519 entry whose SSH key blob is `blob`.
    pub fn by_blob(&self, blob: &[u8]) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| matches!(&e.key, AgentKey::Ed25519 { blob: b, .. } if b == blob))
    }

    /// The entry named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }
}
