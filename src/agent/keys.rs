//! The agent's keys, from two sources (docs/agent.md, "Keys"):
//!
//! - a key store: every Ed25519, ECDSA (P-256, P-384), RSA and secret entry, decrypted
//!   straight into guarded regions ([`crate::store::Store::open_entry`] into the key's own
//!   region; an RSA entry's PKCS#1 DER into a guarded scratch region, decoded from there
//!   as [`crate::crypto::rsa`] describes). X25519 entries are not loaded: the agent has no
//!   operation for them.
//! - a PKCS#11 token: every Ed25519, ECDSA (P-256, P-384) and RSA private key and every
//!   generic secret, named by its `CKA_LABEL`; the agent keeps the object handle, proves
//!   which public key belongs to it (a signature over a fresh challenge) and asks the token
//!   to sign or MAC ([`crate::pkcs11::keys`], the code behind `keycell.pkcs11`'s handles);
//!   no key byte enters the process. An EC key on another curve, or an RSA key outside
//!   2048 to 4096 bits, is skipped, as X25519 store entries are: the agent has no
//!   operation for it.
//!
//! Names are unique in a [`KeySet`]: a name found twice (in the store and the token, or
//! twice in the token) refuses the whole set, so one key never silently shadows another.

use std::sync::Arc;

use cryptoki::object::ObjectHandle;

use crate::crypto::ec::{self, EcError, SignatureEncoding};
use crate::crypto::ed25519;
use crate::crypto::hmac::HashAlgorithm;
use crate::crypto::key_kind::KeyKind;
use crate::crypto::rsa::{self, RsaPrivateKey, RsaPublicKey};
use crate::crypto::symmetric::{KeyError, SymmetricKey};
use crate::keyfile::ssh_public::SshPublicKey;
use crate::memory::{MemoryError, SecretBuf};
use crate::pkcs11::keys::{self as token_keys, ObjectKind, STORE_MASTER_CHALLENGE};
use crate::pkcs11::{Pkcs11Error, Token};
use crate::store::{Store, StoreError};

use super::wire;

/// One loaded key.
pub enum AgentKey {
    /// An Ed25519 private key (guarded memory) and its SSH public key blob.
    Ed25519 {
        key: ed25519::PrivateKey,
        blob: Vec<u8>,
    },
    /// An ECDSA P-256 or P-384 private key (guarded memory) and its SSH public key blob.
    Ec { key: ec::PrivateKey, blob: Vec<u8> },
    /// An RSA private key (guarded memory and the secret heap) and its `ssh-rsa` blob.
    Rsa { key: RsaPrivateKey, blob: Vec<u8> },
    /// A secret key (HMAC), in guarded memory.
    Secret(SymmetricKey),
    /// An Ed25519 private key object in a token, its public key and SSH blob.
    TokenEd25519 {
        token: Arc<Token>,
        handle: ObjectHandle,
        public: [u8; 32],
        blob: Vec<u8>,
    },
    /// An ECDSA P-256 or P-384 private key object in a token, its proven public point and
    /// SSH blob.
    TokenEc {
        token: Arc<Token>,
        handle: ObjectHandle,
        public: ec::PublicPoint,
        blob: Vec<u8>,
    },
    /// An RSA private key object in a token, its proven public key and `ssh-rsa` blob.
    TokenRsa {
        token: Arc<Token>,
        handle: ObjectHandle,
        public: RsaPublicKey,
        blob: Vec<u8>,
    },
    /// A generic secret object in a token (HMAC in the token).
    TokenSecret {
        token: Arc<Token>,
        handle: ObjectHandle,
    },
}

/// What `list@keycell` reports of a key's protection: the protection bits (1 locked,
/// 2 dontdump, 4 wipeonfork, 8 guard pages, 16 read-only idle), the isolation and the
/// backend. A token key reports every bit (no byte of it is in this process), isolation
/// "token" and backend "pkcs11", as `keycell.pkcs11` handles do.
pub struct Report {
    pub bits: u32,
    pub isolation: &'static str,
    pub backend: &'static str,
}

/// A named key.
pub struct Entry {
    pub name: String,
    pub key: AgentKey,
}

impl Entry {
    /// "ed25519", "ec-p256", "ec-p384", "rsa" or "secret" (the [`KeyKind`] names).
    pub fn kind(&self) -> &'static str {
        match &self.key {
            AgentKey::Ed25519 { .. } | AgentKey::TokenEd25519 { .. } => "ed25519",
            AgentKey::Ec { key, .. } => KeyKind::from_ec_curve(key.curve()).name(),
            AgentKey::TokenEc { public, .. } => KeyKind::from_ec_curve(public.curve()).name(),
            AgentKey::Rsa { .. } | AgentKey::TokenRsa { .. } => KeyKind::Rsa.name(),
            AgentKey::Secret(_) | AgentKey::TokenSecret { .. } => "secret",
        }
    }

    /// Where the key lives: "store" or "pkcs11" (the `key_source` of events).
    pub fn source(&self) -> &'static str {
        match self.key {
            AgentKey::Ed25519 { .. }
            | AgentKey::Ec { .. }
            | AgentKey::Rsa { .. }
            | AgentKey::Secret(_) => "store",
            AgentKey::TokenEd25519 { .. }
            | AgentKey::TokenEc { .. }
            | AgentKey::TokenRsa { .. }
            | AgentKey::TokenSecret { .. } => "pkcs11",
        }
    }

    /// The raw public key of an Ed25519 key, the uncompressed point of an EC key, the
    /// PKCS#1 `RSAPublicKey` DER of an RSA key (empty for a secret).
    pub fn public(&self) -> &[u8] {
        match &self.key {
            AgentKey::Ed25519 { key, .. } => key.public().as_bytes(),
            AgentKey::Ec { key, .. } => key.public().uncompressed(),
            AgentKey::Rsa { key, .. } => key.public().pkcs1_der(),
            AgentKey::TokenEd25519 { public, .. } => public,
            AgentKey::TokenEc { public, .. } => public.uncompressed(),
            AgentKey::TokenRsa { public, .. } => public.pkcs1_der(),
            AgentKey::Secret(_) | AgentKey::TokenSecret { .. } => &[],
        }
    }

    /// The SSH public key blob of a signing key.
    pub fn blob(&self) -> Option<&[u8]> {
        match &self.key {
            AgentKey::Ed25519 { blob, .. }
            | AgentKey::Ec { blob, .. }
            | AgentKey::Rsa { blob, .. }
            | AgentKey::TokenEd25519 { blob, .. }
            | AgentKey::TokenEc { blob, .. }
            | AgentKey::TokenRsa { blob, .. } => Some(blob),
            AgentKey::Secret(_) | AgentKey::TokenSecret { .. } => None,
        }
    }

    /// Whether a sign request's `flags` can be served by this key: an RSA key signs only
    /// `rsa-sha2-256` ([`wire::RSA_SHA2_256`]) or `rsa-sha2-512` ([`wire::RSA_SHA2_512`])
    /// and refuses a request with neither, which asks for a SHA-1 `ssh-rsa` signature
    /// (RFC 8332; OpenSSH stopped accepting them in 8.8). Other keys ignore the flags.
    pub fn check_sign_flags(&self, flags: u32) -> Result<(), &'static str> {
        match self.key {
            AgentKey::Rsa { .. } | AgentKey::TokenRsa { .. } if rsa_signature(flags).is_none() => {
                Err(SHA1_REFUSED)
            }
            _ => Ok(()),
        }
    }

    /// The protection report of the key.
    pub fn report(&self) -> Report {
        let p = match &self.key {
            AgentKey::Ed25519 { key, .. } => crate::crypto::curve::CurvePrivateKey::protection(key),
            AgentKey::Ec { key, .. } => key.protection(),
            AgentKey::Rsa { key, .. } => key.protection(),
            AgentKey::Secret(k) => k.protection(),
            AgentKey::TokenEd25519 { .. }
            | AgentKey::TokenEc { .. }
            | AgentKey::TokenRsa { .. }
            | AgentKey::TokenSecret { .. } => {
                return Report {
                    bits: 0b11111,
                    isolation: "token",
                    backend: "pkcs11",
                }
            }
        };
        Report {
            bits: u32::from(p.locked)
                | u32::from(p.dontdump) << 1
                | u32::from(p.wipeonfork) << 2
                | u32::from(p.guard_pages) << 3
                | u32::from(p.read_only_idle) << 4,
            isolation: p.isolation.name(),
            backend: p.backend,
        }
    }

    /// Sign `data` with an Ed25519, ECDSA or RSA key (in guarded memory or in the
    /// token); returns the SSH signature blob (`string algorithm, string signature`: RFC
    /// 8709 for Ed25519, RFC 5656 §3.1.2's `mpint r, mpint s` for ECDSA, hashed with
    /// SHA-256 or SHA-384 by curve; RFC 8332 for RSA, RSASSA-PKCS1-v1_5 with the hash
    /// `flags` select, see [`Self::check_sign_flags`]). A token key signs in the token:
    /// `CKM_ECDSA` over the digest, `CKM_RSA_PKCS` over the `DigestInfo`
    /// ([`token_keys::sign_ec`], [`token_keys::sign_rsa`]). The error names the failure,
    /// never a key byte.
    pub fn sign(&self, data: &[u8], flags: u32) -> Result<Vec<u8>, String> {
        match &self.key {
            AgentKey::Rsa { key, .. } => {
                let (name, hash) = rsa_signature(flags).ok_or(SHA1_REFUSED)?;
                key.sign(rsa::Padding::Pkcs1v15, hash, data)
                    .map(|s| wire::rsa_signature_blob(name, &s))
                    .map_err(|e| e.to_string())
            }
            AgentKey::Ed25519 { key, .. } => key
                .sign(data)
                .map(|s| wire::ed25519_signature_blob(&s))
                .map_err(|e| e.to_string()),
            AgentKey::Ec { key, .. } => {
                let sig = key
                    .sign(data, SignatureEncoding::Raw)
                    .map_err(|e| e.to_string())?;
                Ok(ecdsa_blob(key.curve(), sig.as_bytes()))
            }
            AgentKey::TokenEc {
                token,
                handle,
                public,
                ..
            } => token_keys::sign_ec(token, *handle, public.curve(), data)
                .map(|raw| ecdsa_blob(public.curve(), &raw))
                .map_err(token_error),
            AgentKey::TokenRsa { token, handle, .. } => {
                let (name, hash) = rsa_signature(flags).ok_or(SHA1_REFUSED)?;
                token_keys::sign_rsa(token, *handle, rsa::Padding::Pkcs1v15, hash, data)
                    .map(|s| wire::rsa_signature_blob(name, &s))
                    .map_err(token_error)
            }
            AgentKey::TokenEd25519 { token, handle, .. } => {
                token_keys::sign_ed25519(token, *handle, data)
                    .map(|s| wire::ed25519_signature_blob(&s))
                    .map_err(token_error)
            }
            AgentKey::Secret(_) | AgentKey::TokenSecret { .. } => {
                Err("not a signing key".to_owned())
            }
        }
    }

    /// The HMAC of `data` with a secret key, into `out` (the digest's length). A token
    /// key refuses the key store master challenge ([`STORE_MASTER_CHALLENGE`]): its MAC
    /// is the root key of any key store whose master is that token key.
    pub fn hmac(&self, alg: HashAlgorithm, data: &[u8], out: &mut [u8]) -> Result<(), String> {
        match &self.key {
            AgentKey::Secret(k) => k.hmac(alg, data, out).map_err(|e| e.to_string()),
            AgentKey::TokenSecret { .. } if data == STORE_MASTER_CHALLENGE => {
                Err("the data is the key store master challenge".to_owned())
            }
            AgentKey::TokenSecret { token, handle } => {
                let tag = token_keys::hmac(token, *handle, alg, data).map_err(token_error)?;
                if tag.len() != out.len() {
                    return Err("the token returned an HMAC of the wrong length".to_owned());
                }
                out.copy_from_slice(&tag);
                Ok(())
            }
            AgentKey::Ed25519 { .. }
            | AgentKey::Ec { .. }
            | AgentKey::Rsa { .. }
            | AgentKey::TokenEd25519 { .. }
            | AgentKey::TokenEc { .. }
            | AgentKey::TokenRsa { .. } => Err("not a secret key".to_owned()),
        }
    }
}

/// The RFC 5656 §3.1.2 signature blob of a raw `r || s` ECDSA signature on `curve`
/// (each half the curve's width), local or from a token.
fn ecdsa_blob(curve: ec::Curve, raw: &[u8]) -> Vec<u8> {
    let (r, s) = raw.split_at(curve.scalar_len());
    wire::ecdsa_signature_blob(curve, r, s)
}

/// Why an RSA key refuses a sign request with neither RFC 8332 flag.
const SHA1_REFUSED: &str = "SHA-1 ssh-rsa signatures are refused: the request asks for \
    neither rsa-sha2-256 nor rsa-sha2-512 (flags 2 or 4)";

/// The RFC 8332 signature name and hash a sign request's `flags` select for an RSA key
/// (SHA-256 when both flags are set, as OpenSSH's agent does); `None` for neither.
fn rsa_signature(flags: u32) -> Option<(&'static str, rsa::Hash)> {
    if flags & wire::RSA_SHA2_256 != 0 {
        Some((wire::RSA_SHA2_256_NAME, rsa::Hash::Sha256))
    } else if flags & wire::RSA_SHA2_512 != 0 {
        Some((wire::RSA_SHA2_512_NAME, rsa::Hash::Sha512))
    } else {
        None
    }
}

fn token_error(e: Pkcs11Error) -> String {
    format!("token error: {}", e.message)
}

/// Why a token's keys could not be served.
#[derive(Debug)]
pub enum LoadError {
    /// The token failed.
    Token(Pkcs11Error),
    /// A name is used twice; the message names it and where.
    Duplicate(String),
}

impl From<Pkcs11Error> for LoadError {
    fn from(e: Pkcs11Error) -> Self {
        LoadError::Token(e)
    }
}

/// Why an EC store entry could not be loaded: the store (or memory), or the scalar.
enum EcLoad {
    Store(StoreError),
    Ec(EcError),
}

impl From<MemoryError> for EcLoad {
    fn from(m: MemoryError) -> Self {
        EcLoad::Store(StoreError::Memory(m))
    }
}

impl From<EcError> for EcLoad {
    fn from(e: EcError) -> Self {
        EcLoad::Ec(e)
    }
}

/// Every key the agent serves (replaced as a whole on reload).
#[derive(Default)]
pub struct KeySet {
    entries: Vec<Entry>,
}

impl KeySet {
    /// Load every Ed25519, EC, RSA and secret entry of `store` (names sorted, as the store keeps
    /// them).
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
                KeyKind::EcP256 | KeyKind::EcP384 => {
                    let curve = sealed.kind().ec_curve().unwrap_or(ec::Curve::P256);
                    let key = ec::PrivateKey::new_with(curve, |d| fill(d).map_err(EcLoad::Store))
                        .map_err(|e| match e {
                        EcLoad::Store(e) => e,
                        EcLoad::Ec(e) => StoreError::Corrupted(format!(
                            "entry {name:?} is not a valid {} key: {e}",
                            curve.name()
                        )),
                    })?;
                    let blob = SshPublicKey::Ecdsa(*key.public()).blob();
                    AgentKey::Ec { key, blob }
                }
                KeyKind::Rsa => {
                    let der = SecretBuf::new_with(sealed.len(), fill)?;
                    let key = RsaPrivateKey::from_der(der.bytes()?).map_err(|e| match e {
                        rsa::RsaError::Memory(m) => StoreError::Memory(m),
                        e => StoreError::Corrupted(format!(
                            "entry {name:?} is not a usable RSA key: {e}"
                        )),
                    })?;
                    drop(der);
                    let public = key.public();
                    let blob = SshPublicKey::Rsa {
                        e: public.e(),
                        n: public.n(),
                    }
                    .blob();
                    AgentKey::Rsa { key, blob }
                }
                // X25519 keys cannot sign: the agent has no operation for them.
                KeyKind::X25519 => continue,
            };
            entries.push(Entry { name, key });
        }
        Ok(KeySet { entries })
    }

    /// Every Ed25519, ECDSA (P-256, P-384) and RSA private key and generic secret of
    /// `token`, named by `CKA_LABEL` (sorted by name). An object without a label is
    /// skipped (it has no name to ask for), as is an EC key on another curve or an RSA key
    /// outside 2048 to 4096 bits (the agent has no operation for it); a private key whose public key object is missing or
    /// does not belong to it (proven by a signature over a fresh challenge, as
    /// `keycell.pkcs11` handles are), or a label used twice, fails.
    pub fn load_token(token: &Arc<Token>) -> Result<KeySet, LoadError> {
        let mut entries = Vec::new();
        for (handle, names) in token_keys::find_every(token, ObjectKind::EcPrivate)? {
            let Some(name) = names.label.filter(|l| !l.is_empty()) else {
                continue;
            };
            let Some(curve) = token_keys::ec_key_curve_served(token, handle)? else {
                continue;
            };
            let public = token_keys::ec_public(token, handle, curve)?;
            let key = AgentKey::TokenEc {
                token: Arc::clone(token),
                handle,
                public,
                blob: SshPublicKey::Ecdsa(public).blob(),
            };
            entries.push(Entry { name, key });
        }
        for (handle, names) in token_keys::find_every(token, ObjectKind::RsaPrivate)? {
            let Some(name) = names.label.filter(|l| !l.is_empty()) else {
                continue;
            };
            let bits = token_keys::rsa_key_bits(token, handle)?;
            if bits.is_some_and(|b| !(rsa::MIN_BITS..=rsa::MAX_BITS).contains(&b)) {
                continue;
            }
            let public = token_keys::rsa_public(token, handle)?;
            let blob = SshPublicKey::Rsa {
                e: public.e(),
                n: public.n(),
            }
            .blob();
            let key = AgentKey::TokenRsa {
                token: Arc::clone(token),
                handle,
                public,
                blob,
            };
            entries.push(Entry { name, key });
        }
        for (handle, names) in token_keys::find_every(token, ObjectKind::Ed25519Private)? {
            let Some(name) = names.label.filter(|l| !l.is_empty()) else {
                continue;
            };
            let public = token_keys::ed25519_public(token, handle)?;
            let key = AgentKey::TokenEd25519 {
                token: Arc::clone(token),
                handle,
                public,
                blob: wire::ed25519_blob(&public),
            };
            entries.push(Entry { name, key });
        }
        for (handle, names) in token_keys::find_every(token, ObjectKind::Secret)? {
            let Some(name) = names.label.filter(|l| !l.is_empty()) else {
                continue;
            };
            let key = AgentKey::TokenSecret {
                token: Arc::clone(token),
                handle,
            };
            entries.push(Entry { name, key });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let set = KeySet { entries };
        set.check_unique(&format!("token {:?}", token.info().label))?;
        Ok(set)
    }

    /// The keys of `self` and `other` together; a name in both is [`LoadError::Duplicate`].
    pub fn join(mut self, other: KeySet, what: &str) -> Result<KeySet, LoadError> {
        self.entries.extend(other.entries);
        self.check_unique(what)?;
        Ok(self)
    }

    /// Refuse a name used twice, and one signing key held under two names (`what` says
    /// where the keys came from).
    pub fn check_unique(&self, what: &str) -> Result<(), LoadError> {
        let mut names: Vec<(&str, &str)> = self
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.source()))
            .collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(LoadError::Duplicate(format!(
                "the key name {:?} is used twice ({} and {}; {what}): rename one of them, \
                 the agent never lets one key shadow another",
                w[0].0, w[0].1, w[1].1
            )));
        }
        // A sign request names its key by public key blob, so one key under two names
        // would be signed with under whichever name came first, whatever the policy says
        // of the other: refuse the pair, as for a name used twice.
        let mut blobs: Vec<(&[u8], &str)> = self
            .entries
            .iter()
            .filter_map(|e| Some((e.blob()?, e.name.as_str())))
            .collect();
        blobs.sort_unstable();
        match blobs.windows(2).find(|w| w[0].0 == w[1].0) {
            None => Ok(()),
            Some(w) => Err(LoadError::Duplicate(format!(
                "the same signing key is held under two names ({:?} and {:?}; {what}): a sign \
                 request names a key by its public key, so remove one of them",
                w[0].1, w[1].1
            ))),
        }
    }

    /// All entries.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The signing entry whose SSH key blob is `blob`.
    pub fn by_blob(&self, blob: &[u8]) -> Option<&Entry> {
        self.entries.iter().find(|e| e.blob() == Some(blob))
    }

    /// The entry named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::lock::DEFAULT_LOCK_TIMEOUT;
    use crate::store::Master;

    fn key_type(p: &ec::PublicPoint) -> &'static [u8] {
        crate::keyfile::ssh_public::ecdsa_name(p.curve()).as_bytes()
    }

    #[test]
    fn ec_entries_are_served_x25519_skipped() {
        let d = crate::test_dir::fresh("agent-keys");
        let mut store = Store::create(
            &d.join("s.kcs"),
            Master::Key(&[6u8; 32]),
            None,
            DEFAULT_LOCK_TIMEOUT,
        )
        .expect("store");
        store
            .put("ed", KeyKind::Ed25519, false, &[3u8; 32], false)
            .expect("put");
        store
            .put("p256", KeyKind::EcP256, false, &[1u8; 32], false)
            .expect("put");
        store
            .put("p384", KeyKind::EcP384, false, &[1u8; 48], false)
            .expect("put");
        store
            .put("x", KeyKind::X25519, false, &[2u8; 32], false)
            .expect("put");
        let keys = KeySet::load(&mut store).expect("load");
        let names: Vec<(&str, &str)> = keys
            .entries()
            .iter()
            .map(|e| (e.name.as_str(), e.kind()))
            .collect();
        assert_eq!(
            names,
            [("ed", "ed25519"), ("p256", "ec-p256"), ("p384", "ec-p384")]
        );
        // An ECDSA signature blob verifies as (r, s) under the entry's public key.
        for e in &keys.entries()[1..] {
            let blob = e.sign(b"msg", 0).expect("sign");
            let key = SshPublicKey::from_blob(e.blob().expect("blob")).expect("blob");
            let SshPublicKey::Ecdsa(point) = key else {
                panic!("not ECDSA")
            };
            let mut r = crate::keyfile::ssh_public::SshReader::new(&blob);
            assert_eq!(r.string().expect("alg"), key_type(&point));
            let inner = r.string().expect("sig");
            r.finish("signature").expect("end");
            let mut r = crate::keyfile::ssh_public::SshReader::new(inner);
            let n = point.curve().scalar_len();
            let mut raw = vec![0u8; 2 * n];
            for half in raw.chunks_mut(n) {
                let v = r.positive_mpint().expect("mpint");
                half[n - v.len()..].copy_from_slice(v);
            }
            r.finish("signature").expect("end");
            point
                .verify(b"msg", &raw, SignatureEncoding::Raw)
                .expect("verifies");
        }
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    /// An RSA entry is served as `ssh-rsa`: flags 2 and 4 give `rsa-sha2-256` and
    /// `rsa-sha2-512` PKCS#1 v1.5 signatures under its public key; no flag (SHA-1) is
    /// refused.
    #[test]
    fn rsa_entries_sign_sha2_and_refuse_sha1() {
        use crate::crypto::rsa::{Hash, Padding, Salt};
        let d = crate::test_dir::fresh("agent-keys");
        let mut store = Store::create(
            &d.join("s.kcs"),
            Master::Key(&[6u8; 32]),
            None,
            DEFAULT_LOCK_TIMEOUT,
        )
        .expect("store");
        let rsa = RsaPrivateKey::generate(2048).expect("rsa");
        store
            .put(
                "r",
                KeyKind::Rsa,
                false,
                rsa.pkcs1_der().expect("der"),
                false,
            )
            .expect("put");
        let keys = KeySet::load(&mut store).expect("load");
        let e = &keys.entries()[0];
        assert_eq!(
            (e.name.as_str(), e.kind(), e.source()),
            ("r", "rsa", "store")
        );
        assert_eq!(e.public(), rsa.public().pkcs1_der());
        let key = SshPublicKey::from_blob(e.blob().expect("blob")).expect("blob");
        assert_eq!(
            key,
            SshPublicKey::Rsa {
                e: rsa.public().e(),
                n: rsa.public().n()
            }
        );
        for (flags, name, hash) in [
            (wire::RSA_SHA2_256, "rsa-sha2-256", Hash::Sha256),
            (wire::RSA_SHA2_512, "rsa-sha2-512", Hash::Sha512),
            (
                wire::RSA_SHA2_256 | wire::RSA_SHA2_512,
                "rsa-sha2-256",
                Hash::Sha256,
            ),
        ] {
            e.check_sign_flags(flags).expect("flags");
            let blob = e.sign(b"msg", flags).expect("sign");
            let mut r = crate::keyfile::ssh_public::SshReader::new(&blob);
            assert_eq!(r.string().expect("alg"), name.as_bytes());
            let sig = r.string().expect("sig");
            r.finish("signature").expect("end");
            assert_eq!(sig.len(), 256);
            rsa.public()
                .verify(Padding::Pkcs1v15, hash, Salt::HashLen, b"msg", sig)
                .expect("verifies");
        }
        for flags in [0, 1, 8] {
            let why = e.check_sign_flags(flags).expect_err("sha1");
            assert!(why.contains("SHA-1"), "{why}");
            assert!(e.sign(b"msg", flags).is_err());
        }
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
