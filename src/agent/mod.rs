//! `keycell agent`: keys held in one hardened process, used over a Unix socket by
//! authenticated peers, speaking the SSH agent protocol (docs/agent.md).
//!
//! - [`wire`]: the protocol subset (framing, requests, replies, keycell's extensions);
//! - [`json`] (the policy file's limits over [`crate::json::value`]) and [`policy`]: the
//!   signed policy's rules (the signature is checked by the caller before the text reaches
//!   [`policy::Policy::parse`]);
//! - [`keys`]: the store's keys, decrypted into guarded regions;
//! - [`peer`]: peer credentials (`SO_PEERCRED`, `SO_PEERPIDFD`);
//! - [`socket`]: the listening socket (private staging bind, directory checks, removal);
//! - [`harden`]: not dumpable, no core dumps, no new privileges;
//! - [`server`]: the accept loop and one thread per connection.
//!
//! No Python here: `src/py/agent.rs` binds it, `python/keycell/cli/agent.py` runs it.

pub mod harden;
pub mod json;
pub mod keys;
pub mod peer;
pub mod policy;
pub mod server;
pub mod socket;
pub mod wire;
