//! Keys in a PKCS#11 token (an HSM, a smart card, SoftHSM2), used through the `cryptoki`
//! crate: the key never enters this process; keycell asks the token to sign or MAC.
//!
//! - [`module`]: loading a module once per process (`CKF_OS_LOCKING_OK`), fork-aware.
//! - [`token`]: finding a token by label, slot or URI attributes; the shared login (the
//!   PIN in a guarded region); a pool of sessions safe for threads; fork detection.
//! - [`keys`]: key objects: lookup, generation (sensitive, never extractable), Ed25519
//!   signatures (`CKM_EDDSA`), HMAC (`CKM_SHA*_HMAC`), the key store master derivation.
//! - [`uri`]: RFC 7512 `pkcs11:` URIs.
//!
//! The long story (API, the master-key choice, what SoftHSM2 lacks): `docs/pkcs11.md`.

pub mod error;
pub mod keys;
pub mod module;
pub mod token;
pub mod uri;

pub use error::{Pkcs11Error, Pkcs11ErrorKind};
pub use keys::{ObjectKind, ObjectSpec};
pub use token::{Token, TokenInfo, TokenSpec};
