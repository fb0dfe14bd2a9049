//! What happened, for the log and the audit log: one [`Event`] per request, refused
//! connection or closed connection, and the bounded queue ([`EventLog`]) from which the
//! embedding program takes them for its own log. The durable record is not this queue: it
//! is written by a [`super::record::Recorder`] before the reply leaves.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::peer::Peer;

/// Most events kept for the embedding program's log; more are counted as dropped (the
/// audit record does not depend on this queue).
pub const EVENT_QUEUE_CAP: usize = 100_000;

/// How a request or connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Refused,
    /// The connection was closed: a malformed, stalled or oversized frame.
    Closed,
}

impl Verdict {
    /// The name in logs and audit records.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Refused => "refused",
            Verdict::Closed => "closed",
        }
    }
}

/// What happened, for the log and the audit log. Carries no key bytes.
#[derive(Debug, Clone)]
pub struct Event {
    /// Position in the event stream (1, 2, ...); 0 until queued.
    pub seq: u64,
    pub time: SystemTime,
    pub connection: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    /// The peer is pinned by a pidfd.
    pub pid_pinned: bool,
    /// Whether the pinned peer had exited by the time of the event (`None`: no pidfd).
    pub pid_exited: Option<bool>,
    /// Why no pidfd (errno), when not pinned.
    pub pidfd_errno: Option<i32>,
    pub key: Option<String>,
    /// Where the key lives: "store" or "pkcs11" (`None` when no served key is named).
    pub key_source: Option<&'static str>,
    /// The key's kind: "ed25519", "ec-p256", "ec-p384" or "secret" (`None` when no served
    /// key is named).
    pub key_type: Option<&'static str>,
    pub operation: &'static str,
    pub result: Verdict,
    pub reason: Option<String>,
    /// How many refused connections this event stands for (1 but for an aggregated
    /// refusal: [`super::refusals`]).
    pub count: u64,
}

impl Event {
    /// An event of `peer` on `connection`, now: `key`, `operation` and `reason` are set by
    /// the caller (none by default).
    pub fn of(peer: &Peer, connection: u64, operation: &'static str, result: Verdict) -> Event {
        Event {
            seq: 0,
            time: SystemTime::now(),
            connection,
            uid: peer.uid,
            gid: peer.gid,
            pid: peer.pid,
            pid_pinned: peer.pinned(),
            pid_exited: peer.exited(),
            pidfd_errno: peer.pidfd_errno,
            key: None,
            key_source: None,
            key_type: None,
            operation,
            result,
            reason: None,
            count: 1,
        }
    }

    /// With `reason`.
    pub fn because(mut self, reason: impl Into<String>) -> Event {
        self.reason = Some(reason.into());
        self
    }
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Event>,
    dropped: u64,
    last_seq: u64,
}

/// The bounded queue of events for the embedding program's log.
#[derive(Default)]
pub struct EventLog {
    queue: Mutex<Queue>,
    cv: Condvar,
}

impl EventLog {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `e` (numbered), or count it as dropped when the queue is full.
    pub fn push(&self, mut e: Event) {
        let mut q = self.lock();
        if q.events.len() >= EVENT_QUEUE_CAP {
            q.dropped += 1;
            return;
        }
        q.last_seq += 1;
        e.seq = q.last_seq;
        q.events.push_back(e);
        drop(q);
        self.cv.notify_one();
    }

    /// Wake every [`EventLog::take`] (the agent is stopping).
    pub fn wake(&self) {
        self.cv.notify_all();
    }

    /// Wait up to `timeout` for events (not at all when `stopping` says so) and take up to
    /// `max`; also returns how many were dropped since the last call.
    pub fn take(
        &self,
        timeout: Duration,
        max: usize,
        stopping: impl Fn() -> bool,
    ) -> (Vec<Event>, u64) {
        let mut q = self.lock();
        if q.events.is_empty() && !stopping() {
            q = self
                .cv
                .wait_timeout(q, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let n = q.events.len().min(max);
        let events: Vec<Event> = q.events.drain(..n).collect();
        let dropped = std::mem::take(&mut q.dropped);
        (events, dropped)
    }
}
