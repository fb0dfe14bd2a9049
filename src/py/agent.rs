//! `AgentServer`: the Python handle of the key agent's server ([`crate::agent::server`]).
//!
//! Binding the socket, loading the keys, stopping and waiting for events all run with the
//! GIL released (through `isolation_scope::detach`, the one place that releases it); the
//! server's own threads never touch Python. The command line
//! (`python/keycell/cli/agent.py`) owns signals, logging and the audit log.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::agent::event::Event;
use crate::agent::harden;
use crate::agent::keys::{KeySet, LoadError};
use crate::agent::listener::Admission;
use crate::agent::policy::Policy;
use crate::agent::policy_file;
use crate::agent::record::{AuditRecorder, Recorder};
use crate::agent::server::{Config, Server};
use crate::agent::socket::BoundSocket;
use crate::memory::fork::ProcessStamp;

use super::args::handle;
use super::audit::AuditWriter;
use super::ec::ECPublicKey;
use super::ed25519::Ed25519PublicKey;
use super::errors::{Error, Result};
use super::isolation_scope::detach;
use super::keystore::KeyStore;
use super::pkcs11::Pkcs11Token;
use super::rsa::RSAPublicKey;

fn agent_error(msg: impl Into<String>) -> Error {
    Error::Agent(msg.into())
}

fn parse_policy(data: Option<&[u8]>) -> Result<Option<Policy>> {
    data.map(|d| Policy::parse(d).map_err(|e| Error::AgentPolicy(e.to_string())))
        .transpose()
}

/// The keys of `store` and/or `token` (at least one), as one set: a name in both is an
/// `AgentError` naming it.
fn load_keys(
    py: Python<'_>,
    store: Option<&KeyStore>,
    token: Option<&Pkcs11Token>,
) -> Result<KeySet> {
    let from_store = match store {
        Some(store) => Some(store.with(py, |s| {
            KeySet::load(s).map_err(|err| Error::Store {
                path: s.path().display().to_string(),
                err,
            })
        })?),
        None => None,
    };
    let Some(token) = token else {
        let keys =
            from_store.ok_or_else(|| Error::Value("give a store, a token or both".to_owned()))?;
        keys.check_unique("the store").map_err(load_error)?;
        return Ok(keys);
    };
    let t = token.shared();
    let from_token = detach(py, || KeySet::load_token(t)).map_err(load_error)?;
    match from_store {
        None => Ok(from_token),
        Some(keys) => detach(py, || {
            keys.join(
                from_token,
                &format!("the store and token {:?}", t.info().label),
            )
        })
        .map_err(load_error),
    }
}

fn load_error(e: LoadError) -> Error {
    match e {
        LoadError::Token(e) => Error::Pkcs11(e),
        LoadError::Duplicate(msg) => agent_error(msg),
    }
}

/// The longest frame or idle timeout: a day.
const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

fn timeout(seconds: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero() && *d <= MAX_TIMEOUT)
        .ok_or_else(|| {
            Error::Value(format!(
                "{what} must be a number of seconds > 0 and at most 86400 (a day)"
            ))
        })
}

fn event_dict<'py>(py: Python<'py>, e: &Event) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let t = e
        .time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    d.set_item("seq", e.seq)?;
    d.set_item("time", t)?;
    d.set_item("connection", e.connection)?;
    d.set_item("uid", e.uid)?;
    d.set_item("gid", e.gid)?;
    d.set_item("pid", e.pid)?;
    d.set_item("pid_pinned", e.pid_pinned)?;
    d.set_item("pid_exited", e.pid_exited)?;
    d.set_item("pidfd_errno", e.pidfd_errno)?;
    d.set_item("key", e.key.as_deref())?;
    d.set_item("key_source", e.key_source)?;
    d.set_item("key_type", e.key_type)?;
    d.set_item("operation", e.operation)?;
    d.set_item("result", e.result.name())?;
    d.set_item("reason", e.reason.as_deref())?;
    d.set_item("count", e.count)?;
    Ok(d)
}

/// A key agent serving the Ed25519 and secret keys of a `KeyStore` and/or a PKCS#11
/// token over a Unix socket, in the SSH agent protocol (docs/agent.md).
///
/// The constructor binds `path` (mode `mode`, set before the socket is reachable; the directory must not
/// be writable by group or others), loads every Ed25519 and secret key of `store` into
/// guarded memory and every Ed25519 private key and generic secret of `token` (an open,
/// logged-in `keycell.pkcs11.Token`; by label, used in the token) and starts serving at
/// once, on threads of its own. A name in both is an `AgentError`. `allowed_uids` may
/// connect, at most `max_connections` at once; each uid other than this process's own at
/// most a quarter of them (at least 1), and together they leave that many (at least 1) free
/// for it (`max_connections=1`: only this process's uid is served). A connection that sends
/// nothing for `idle_timeout` seconds between requests is closed; both timeouts are at most
/// a day.
/// `policy` is the text of a policy file whose signature the caller has checked.
/// With `audit` (a native audit log writer, `keycell.audit.AuditLog`'s), every request,
/// refused connection and closed connection is recorded there on the connection's thread
/// before its reply is written; a record that fails refuses that reply and stops the agent
/// (`failure` says why). `stop()` closes every connection, wipes the keys and removes the
/// socket.
#[pyclass(frozen, module = "keycell._native")]
pub struct AgentServer {
    server: Server,
    made_in: ProcessStamp,
}

impl AgentServer {
    fn check_fork(&self) -> Result<()> {
        if self.made_in.is_current() {
            Ok(())
        } else {
            Err(Error::Forked(
                "this AgentServer belongs to the parent process".to_owned(),
            ))
        }
    }
}

#[pymethods]
impl AgentServer {
    #[new]
    #[pyo3(signature = (
        path, store = None, *, token = None, allowed_uids, mode = 0o600, policy = None,
        max_connections = 64, frame_timeout = 10.0, idle_timeout = 60.0, audit = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        store: Option<&KeyStore>,
        token: Option<&Pkcs11Token>,
        allowed_uids: Vec<u32>,
        mode: u32,
        policy: Option<&Bound<'_, PyBytes>>,
        max_connections: usize,
        frame_timeout: f64,
        idle_timeout: f64,
        audit: Option<&AuditWriter>,
    ) -> Result<AgentServer> {
        if allowed_uids.is_empty() {
            return Err(Error::Value("allowed_uids must not be empty".to_owned()));
        }
        if max_connections == 0 {
            return Err(Error::Value(
                "max_connections must be at least 1".to_owned(),
            ));
        }
        let policy = parse_policy(policy.map(|p| p.as_bytes()))?;
        let recorder = match audit {
            Some(a) => Some(Arc::new(AuditRecorder(a.shared()?)) as Arc<dyn Recorder>),
            None => None,
        };
        let config = Config {
            admission: Admission {
                allowed_uids,
                max_connections,
                owner_uid: rustix::process::geteuid().as_raw(),
            },
            frame_timeout: timeout(frame_timeout, "frame_timeout")?,
            idle_timeout: timeout(idle_timeout, "idle_timeout")?,
            recorder,
        };
        let keys = load_keys(py, store, token)?;
        let socket = detach(py, || BoundSocket::bind(&path, mode)).map_err(|e| agent_error(e.0))?;
        let server = Server::start(socket, config, keys, policy).map_err(|e| agent_error(e.0))?;
        if let Some(e) = server.failure() {
            // The policy's record at start could not be written.
            server.stop();
            return Err(Error::Audit(e));
        }
        Ok(AgentServer {
            server,
            made_in: ProcessStamp::current(),
        })
    }

    /// The socket's path.
    #[getter]
    fn path(&self) -> PathBuf {
        self.server.path().to_owned()
    }

    /// `(name, kind, source)` of every key served: kind "ed25519" or "secret", source
    /// "store" or "pkcs11".
    fn keys(&self) -> Vec<(String, &'static str, &'static str)> {
        self.server.key_names()
    }

    /// Replace every key with those of `store` and/or `token`, read again (a key made in
    /// the token since appears, a deleted one goes; the old store keys are wiped once no
    /// request in flight uses them). On failure the old keys stay.
    #[pyo3(signature = (store = None, *, token = None))]
    fn set_keys(
        &self,
        py: Python<'_>,
        store: Option<&KeyStore>,
        token: Option<&Pkcs11Token>,
    ) -> Result<()> {
        self.check_fork()?;
        let keys = load_keys(py, store, token)?;
        self.server.set_keys(keys);
        Ok(())
    }

    /// Replace the policy with the text of a (verified) policy file, or remove it
    /// (`None`). Raises `AgentPolicyError` and keeps the old policy if it does not parse,
    /// or if its `serial` goes back (not greater than the loaded one's, unless it is the
    /// same policy). Loaded or refused, the outcome is recorded (`agent.policy`).
    #[pyo3(signature = (policy, /))]
    fn set_policy(&self, policy: Option<&Bound<'_, PyBytes>>) -> Result<()> {
        self.check_fork()?;
        let p = parse_policy(policy.map(|p| p.as_bytes()))?;
        self.server
            .set_policy(p)
            .map_err(|why| Error::AgentPolicyRefused(format!("policy refused: {why}")))
    }

    /// The loaded policy's `serial` (0 when it has none), or `None` without a policy.
    #[getter]
    fn policy_serial(&self) -> Option<u64> {
        self.server.policy_serial()
    }

    /// Wait up to `timeout` seconds for request events (for a log: the audit record does
    /// not depend on them); returns `(events, dropped)`: up to `max` event dicts (time,
    /// connection, uid, gid, pid, pid_pinned, pid_exited, pidfd_errno, key, key_source, key_type,
    /// operation, result, reason, count, seq; count > 1 for refused connections recorded
    /// aggregated) and how many events were dropped because the queue was full.
    #[pyo3(signature = (timeout = 1.0, max = 1000))]
    fn next_events<'py>(
        &self,
        py: Python<'py>,
        timeout: f64,
        max: usize,
    ) -> Result<(Vec<Bound<'py, PyDict>>, u64)> {
        self.check_fork()?;
        let t = Duration::try_from_secs_f64(timeout)
            .map_err(|_| Error::Value("timeout must be a finite number >= 0".to_owned()))?;
        let (events, dropped) = detach(py, || self.server.next_events(t, max.max(1)));
        let dicts = events
            .iter()
            .map(|e| event_dict(py, e))
            .collect::<PyResult<Vec<_>>>()?;
        Ok((dicts, dropped))
    }

    /// Wait until the agent is stopping (`stop()` ran, or a record failed), at most
    /// `timeout` seconds (`None`: no limit); whether it is.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> Result<bool> {
        self.check_fork()?;
        let t = timeout
            .map(Duration::try_from_secs_f64)
            .transpose()
            .map_err(|_| Error::Value("timeout must be a finite number >= 0".to_owned()))?;
        Ok(detach(py, || self.server.wait(t)))
    }

    /// The exception of the record failure that stopped the agent (an `AuditError`), or
    /// `None`.
    #[getter]
    fn failure(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.server
            .failure()
            .map(|e| PyErr::from(Error::Audit(e)).into_value(py).into_any())
    }

    /// Counters: connections, requests, refused.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = self.server.stats();
        let d = PyDict::new(py);
        d.set_item("connections", s.connections.load(Relaxed))?;
        d.set_item("requests", s.requests.load(Relaxed))?;
        d.set_item("refused", s.refused.load(Relaxed))?;
        Ok(d)
    }

    /// True once the agent is stopping: `stop()` ran, or a record failed.
    #[getter]
    fn stopped(&self) -> bool {
        self.server.stopped()
    }

    /// Stop serving: close every connection, wait for every thread, wipe every key,
    /// remove the socket file. Idempotent; returns whether this call removed the socket.
    fn stop(&self, py: Python<'_>) -> Result<bool> {
        self.check_fork()?;
        Ok(detach(py, || self.server.stop()))
    }

    fn __repr__(&self) -> String {
        format!(
            "<AgentServer {:?}{}>",
            self.server.path().display().to_string(),
            if self.server.stopped() {
                " stopped"
            } else {
                ""
            }
        )
    }
}

/// Harden this process for serving keys: `PR_SET_DUMPABLE` 0, `RLIMIT_CORE` 0,
/// `PR_SET_NO_NEW_PRIVS`. Returns `{step: None | errno}` for "not_dumpable",
/// "no_core_dumps", "no_new_privs". Irreversible for the process.
#[pyfunction]
pub fn agent_harden(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let h = harden::harden();
    let d = PyDict::new(py);
    d.set_item("not_dumpable", h.not_dumpable.err())?;
    d.set_item("no_core_dumps", h.no_core_dumps.err())?;
    d.set_item("no_new_privs", h.no_new_privs.err())?;
    Ok(d)
}

/// Check the text of a policy file (the rules only; the signature is checked by the
/// caller). Raises `AgentPolicyError` naming the first problem.
#[pyfunction]
#[pyo3(signature = (policy, /))]
pub fn agent_check_policy(policy: &Bound<'_, PyBytes>) -> Result<()> {
    parse_policy(Some(policy.as_bytes())).map(|_| ())
}

/// The bytes of a policy public key file, read with the checks of `agent_read_policy`
/// (no symlink, a regular file owned by this user or root, not writable by group or
/// others). Raises `AgentPolicyError`.
#[pyfunction]
#[pyo3(signature = (path, /))]
pub fn agent_read_public_key_file<'py>(
    py: Python<'py>,
    path: PathBuf,
) -> Result<Bound<'py, PyBytes>> {
    let data = detach(py, || policy_file::read_checked(&path)).map_err(|e| {
        let msg = match e {
            policy_file::ReadError::Io(e) => format!("cannot read {}: {e}", path.display()),
            policy_file::ReadError::Insecure(r) => format!("refusing {}: {r}", path.display()),
        };
        Error::AgentPolicyRefused(msg)
    })?;
    Ok(PyBytes::new(py, &data))
}

/// Read the policy file `path` and its detached signature (`signature`, by default
/// `path + ".sig"`), verify the signature with `public_key` (an `Ed25519PublicKey`, an
/// `ECPublicKey` for ECDSA P-256/P-384 signatures or an `RSAPublicKey` for RSA-PSS-SHA256
/// ones) and
/// the rules; returns the exact bytes verified. Raises `AgentPolicyError` naming the
/// problem (unreadable, unsigned, not a signature, a signature that does not verify,
/// invalid rules).
#[pyfunction]
#[pyo3(signature = (path, public_key, signature = None))]
pub fn agent_read_policy<'py>(
    py: Python<'py>,
    path: PathBuf,
    public_key: &Bound<'py, PyAny>,
    signature: Option<PathBuf>,
) -> Result<Bound<'py, PyBytes>> {
    let vk = if let Ok(ec) = public_key.cast::<ECPublicKey>() {
        policy_file::PolicyKey::Ecdsa(*ec.get().point())
    } else if let Ok(rsa) = public_key.cast::<RSAPublicKey>() {
        policy_file::PolicyKey::RsaPss(rsa.get().key().clone())
    } else {
        let hint = ", keycell.ECPublicKey or keycell.RSAPublicKey";
        let pk = handle::<Ed25519PublicKey>(public_key, "public_key", "Ed25519PublicKey", hint)?;
        policy_file::PolicyKey::Ed25519(*pk.get().verifying_key())
    };
    let (data, _) = detach(py, || {
        policy_file::read_verified(&path, &vk, signature.as_deref())
    })
    .map_err(|e| Error::AgentPolicyRefused(e.to_string()))?;
    Ok(PyBytes::new(py, &data))
}
