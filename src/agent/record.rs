//! The record of every event, written before the reply leaves: the [`Recorder`] seam, the
//! audit log's implementation of it ([`AuditRecorder`]), the record's exact bytes
//! ([`audit_body`]), and the [`Journal`] that a connection hands each event to.
//!
//! Fail closed: a recorder that fails turns that reply into `SSH_AGENT_FAILURE`, stops the
//! agent with the failure ([`super::stop::StopSignal::fail`]) and records nothing more. A
//! reply waits for its record on the connection's own thread (the audit writer serialises
//! the threads); [`Journal::waiting`] counts such replies so that a stop lets them go out
//! before it closes the connections.
//!
//! The trait lives here, on the agent's side of the seam: the audit layer is below the
//! agent and knows nothing of it, so its writer is adapted here rather than in
//! `src/audit/writer.rs` (which would make the two layers import each other).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::event::{Event, EventLog};
use super::stop::StopSignal;
use crate::audit::writer::Writer;
use crate::audit::AuditError;
use crate::json::write::write_str;

/// Writes an event's record durably before returning. Called on connection threads (and
/// the accept thread), concurrently.
pub trait Recorder: Send + Sync {
    /// Record `event`; `Err` stops the agent.
    fn record(&self, event: &Event) -> Result<(), AuditError>;
}

/// An audit log writer shared with the program that opened it (`keycell.audit.AuditLog`):
/// `None` once closed.
pub type SharedWriter = Arc<Mutex<Option<Writer>>>;

/// The audit log as a [`Recorder`]: one line per event ([`audit_body`]).
pub struct AuditRecorder(pub SharedWriter);

impl Recorder for AuditRecorder {
    fn record(&self, event: &Event) -> Result<(), AuditError> {
        let body = audit_body(event);
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let w = g.as_mut().ok_or(AuditError::Closed)?;
        w.append(&body).map(|_| ())
    }
}

/// The audit record of `e`, byte for byte what the agent's command wrote through
/// `json.dumps(..., ensure_ascii=False, separators=(",", ":"))` of
/// `{"type": "agent." + operation, "result", "uid", "gid", "pid", "pid_pinned", "key",
/// "key_source", "key_type", "reason", "connection"}` (so logs written before and after verify and
/// read alike; `docs/agent.md` lists the fields); an aggregated refusal adds `"count"`.
pub fn audit_body(e: &Event) -> Vec<u8> {
    fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            Some(s) => write_str(s, out),
            None => out.extend_from_slice(b"null"),
        }
    }
    let mut out = Vec::with_capacity(200);
    out.extend_from_slice(b"{\"type\":");
    write_str(&format!("agent.{}", e.operation), &mut out);
    out.extend_from_slice(b",\"result\":");
    write_str(e.result.name(), &mut out);
    out.extend_from_slice(
        format!(
            ",\"uid\":{},\"gid\":{},\"pid\":{},\"pid_pinned\":{},\"key\":",
            e.uid, e.gid, e.pid, e.pid_pinned
        )
        .as_bytes(),
    );
    opt_str(&mut out, e.key.as_deref());
    out.extend_from_slice(b",\"key_source\":");
    opt_str(&mut out, e.key_source);
    out.extend_from_slice(b",\"key_type\":");
    opt_str(&mut out, e.key_type);
    out.extend_from_slice(b",\"reason\":");
    opt_str(&mut out, e.reason.as_deref());
    out.extend_from_slice(format!(",\"connection\":{}", e.connection).as_bytes());
    if e.count != 1 {
        // An aggregated refusal (`super::refusals`): how many connections it stands for.
        out.extend_from_slice(format!(",\"count\":{}", e.count).as_bytes());
    }
    out.push(b'}');
    out
}

/// Where every event goes: the recorder (if any) first, then the log queue.
pub struct Journal {
    recorder: Option<Arc<dyn Recorder>>,
    log: EventLog,
    stop: Arc<StopSignal>,
    waiting: Mutex<usize>,
    waiting_cv: Condvar,
}

impl Journal {
    /// A journal writing to `recorder` (`None`: the log queue only), stopping through `stop`.
    pub fn new(recorder: Option<Arc<dyn Recorder>>, stop: Arc<StopSignal>) -> Self {
        Journal {
            recorder,
            log: EventLog::default(),
            stop,
            waiting: Mutex::new(0),
            waiting_cv: Condvar::new(),
        }
    }

    /// Record `event`; whether its record is written (always, without a recorder). After a
    /// failure nothing more is recorded (and every reply that needs a record is refused).
    pub fn record(&self, event: Event) -> bool {
        let written = match &self.recorder {
            None => true,
            Some(_) if self.stop.failed() => false,
            Some(r) => match r.record(&event) {
                Ok(()) => true,
                Err(e) => {
                    self.stop.fail(e);
                    self.log.wake();
                    false
                }
            },
        };
        self.log.push(event);
        written
    }

    /// Whether a reply must wait for its record.
    pub fn records(&self) -> bool {
        self.recorder.is_some()
    }

    /// The log queue.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    fn count(&self) -> MutexGuard<'_, usize> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count a reply as waiting for its record (until the guard is dropped, after the reply
    /// is written).
    pub fn waiting(&self) -> WaitingReply<'_> {
        *self.count() += 1;
        WaitingReply(self)
    }

    /// Wait (at most `grace`) until no reply waits for its record or is being written.
    pub fn let_waiting_replies_out(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let mut n = self.count();
        while *n > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            n = self
                .waiting_cv
                .wait_timeout(n, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

/// One reply counted by [`Journal::waiting`].
pub struct WaitingReply<'a>(&'a Journal);

impl Drop for WaitingReply<'_> {
    fn drop(&mut self) {
        *self.0.count() -= 1;
        self.0.waiting_cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::event::Verdict;
    use std::time::SystemTime;

    fn event(key: Option<&str>, reason: Option<&str>, result: Verdict) -> Event {
        Event {
            seq: 7,
            time: SystemTime::now(),
            connection: 12,
            uid: 1000,
            gid: 100,
            pid: 4242,
            pid_pinned: true,
            pid_exited: Some(false),
            pidfd_errno: None,
            key: key.map(str::to_owned),
            key_source: key.map(|_| "store"),
            key_type: key.map(|_| "ec-p256"),
            operation: "sign",
            result,
            reason: reason.map(str::to_owned),
            count: 1,
        }
    }

    #[test]
    fn the_record_is_what_the_command_wrote() {
        // The bytes `json.dumps(record, ensure_ascii=False, separators=(",", ":"))` gave
        // when the command's Python loop wrote the records (the same comparison against
        // Python's json runs in tests/agent/test_agent_serve.py).
        assert_eq!(
            String::from_utf8(audit_body(&event(Some("dé\"p\n"), None, Verdict::Allowed))),
            Ok(
                "{\"type\":\"agent.sign\",\"result\":\"allowed\",\"uid\":1000,\"gid\":100,\
                \"pid\":4242,\"pid_pinned\":true,\"key\":\"dé\\\"p\\n\",\"key_source\":\
                \"store\",\"key_type\":\"ec-p256\",\"reason\":null,\"connection\":12}"
                    .to_owned()
            )
        );
        let mut e = event(None, Some("uid not allowed to connect"), Verdict::Refused);
        e.operation = "connect";
        e.pid_pinned = false;
        e.pid = -1;
        assert_eq!(
            String::from_utf8(audit_body(&e)),
            Ok(
                "{\"type\":\"agent.connect\",\"result\":\"refused\",\"uid\":1000,\"gid\":100,\
                \"pid\":-1,\"pid_pinned\":false,\"key\":null,\"key_source\":null,\
                \"key_type\":null,\"reason\":\"uid not allowed to connect\",\"connection\":12}"
                    .to_owned()
            )
        );
    }
}
