//! `keycell agent`: keys held in one hardened process, used over a Unix socket by
//! authenticated peers, speaking the SSH agent protocol (docs/agent.md).
//!
//! The files form layers (each uses only those listed before it):
//!
//! - [`wire`]: the protocol subset (framing, requests, replies, keycell's extensions);
//! - [`json`] (the policy file's limits over [`crate::json::value`]) and [`policy`]: the
//!   policy's rules and use counts; [`policy_file`]: the signed policy file, verified;
//! - [`keys`]: the store's and token's keys, in guarded regions or in the token;
//! - [`peer`]: peer credentials (`SO_PEERCRED`, `SO_PEERPIDFD`);
//! - [`socket`]: the listening socket (private staging bind, directory checks, removal);
//! - [`harden`]: not dumpable, no core dumps, no new privileges;
//! - [`dispatch`]: the decision for one request (request, keys, policy, uid -> outcome);
//! - [`event`]: what happened, and the queue of events for the embedding program's log;
//! - [`stop`]: the stop flag and the failure that set it;
//! - [`record`]: the record written before each reply (the `Recorder` seam, the audit log);
//! - [`connection`]: one connection's frames, decisions, records and replies;
//! - [`refusals`]: refused connections aggregated (one record per uid per 10 s);
//! - [`listener`]: the accept thread, peer admission, one thread per connection;
//! - [`server`]: start and stop.
//!
//! No Python here: `src/py/agent.rs` binds it, `python/keycell/agent_server.py`
//! (`keycell.agent.serve`) runs it, `python/keycell/cli/agent.py` is the command.

pub mod connection;
pub mod dispatch;
pub mod event;
pub mod harden;
pub mod json;
pub mod keys;
pub mod listener;
pub mod peer;
pub mod policy;
pub mod policy_file;
pub mod record;
pub mod refusals;
pub mod server;
pub mod socket;
pub mod stop;
pub mod wire;
