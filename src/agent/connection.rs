//! One connection, on its own thread: read a frame (whole within the frame timeout of its
//! first byte), decide it ([`super::dispatch`]), record it ([`super::record::Journal`]),
//! and only then write the reply. A stalled, empty, oversized or malformed frame is
//! recorded and closes the connection. Waiting between frames is bounded by the idle
//! timeout: a connection that sends nothing for that long is closed (and recorded), so a
//! peer cannot keep slots taken by holding idle connections open.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use zeroize::Zeroize;

use super::dispatch::{dispatch, Context, Outcome};
use super::event::{Event, Verdict};
use super::keys::KeySet;
use super::peer::Peer;
use super::policy::{Policy, Usages};
use super::record::Journal;
use super::stop::StopSignal;
use super::wire;

/// Counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub refused: AtomicU64,
}

/// The keys and policy being served (each swapped as a whole: a request in flight finishes
/// with the set it started with) and the use counts, which live for the agent's life.
pub struct Served {
    keys: RwLock<Arc<KeySet>>,
    policy: RwLock<Option<Arc<Policy>>>,
    usages: Usages,
}

impl Served {
    /// `keys` and `policy`, use counted from now.
    pub fn new(keys: KeySet, policy: Option<Policy>) -> Self {
        Served {
            keys: RwLock::new(Arc::new(keys)),
            policy: RwLock::new(policy.map(Arc::new)),
            usages: Usages::new(Instant::now()),
        }
    }

    /// The current keys.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current policy.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replace every key (the old ones are wiped once no request uses them).
    pub fn set_keys(&self, keys: KeySet) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }

    /// Replace the policy, unless the new one may not follow the loaded one
    /// ([`Policy::may_follow`]: `Err` says why, and the loaded one stays).
    pub fn set_policy(&self, policy: Option<Policy>) -> Result<(), String> {
        let mut loaded = self.policy.write().unwrap_or_else(|e| e.into_inner());
        if let (Some(new), Some(old)) = (&policy, loaded.as_deref()) {
            new.may_follow(old)?;
        }
        *loaded = policy.map(Arc::new);
        Ok(())
    }

    /// Decide `msg` for `uid` with the current keys and policy.
    fn dispatch(&self, uid: u32, msg: &[u8]) -> Result<Outcome, wire::Malformed> {
        let keys = self.keys();
        let policy = self.policy();
        let cx = Context {
            keys: &keys,
            policy: policy.as_deref(),
            usages: &self.usages,
            uid,
        };
        dispatch(cx, msg)
    }
}

/// What a connection thread is handed.
pub struct Session {
    pub served: Arc<Served>,
    pub journal: Arc<Journal>,
    pub stop: Arc<StopSignal>,
    pub stats: Arc<Stats>,
    /// How long a frame may take to arrive once its first byte came (also the write
    /// timeout of a reply).
    pub frame_timeout: Duration,
    /// How long a connection may wait between frames (from its start or its last reply)
    /// before it is closed.
    pub idle_timeout: Duration,
}

/// The reason recorded when a connection is closed for idling.
pub const IDLE_CLOSED: &str = "idle for longer than the idle timeout";

/// How reading a frame ended.
enum ReadEnd {
    /// The buffer was filled.
    Full,
    /// The peer closed between frames.
    Eof,
    /// The peer closed, stalled or failed mid-frame.
    Broken(&'static str),
}

/// When reads give up: within a frame, its deadline (set when its first byte arrives);
/// between frames, the idle deadline.
struct Deadlines {
    /// The frame's (`None` until its first byte arrives).
    frame: Option<Instant>,
    /// When waiting for a frame's first byte ends the connection.
    idle: Instant,
}

/// The instant `d` from now; a `d` too large for an `Instant` gives a century (never a
/// panic: the bindings cap the timeouts at a day, this holds for every caller).
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

/// Fill `buf`. Every read inside a frame waits at most until the frame's deadline, so a
/// frame trickled a byte at a time is cut at the deadline; before a frame's first byte a
/// read waits at most until the idle deadline, at most `timeout` at a time (to look at the
/// stop flag).
fn read_full(
    stream: &mut UnixStream,
    buf: &mut [u8],
    deadlines: &mut Deadlines,
    timeout: Duration,
    stop: &StopSignal,
) -> ReadEnd {
    let mut n = 0;
    while n < buf.len() {
        let left = |d: Instant| {
            d.checked_duration_since(Instant::now())
                .filter(|l| !l.is_zero())
        };
        let wait = match deadlines.frame {
            None => match left(deadlines.idle) {
                Some(l) => l.min(timeout),
                None => return ReadEnd::Broken(IDLE_CLOSED),
            },
            Some(d) => match left(d) {
                Some(l) => l,
                None => return ReadEnd::Broken("frame not completed in time"),
            },
        };
        let _ = stream.set_read_timeout(Some(wait));
        match stream.read(&mut buf[n..]) {
            Ok(0) if n == 0 && deadlines.frame.is_none() => return ReadEnd::Eof,
            Ok(0) => return ReadEnd::Broken("connection closed mid-frame"),
            Ok(k) => {
                n += k;
                deadlines.frame.get_or_insert_with(|| after(timeout));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.is_set() {
                    return ReadEnd::Broken("agent stopping");
                }
            }
            Err(_) => return ReadEnd::Broken("read error"),
        }
    }
    ReadEnd::Full
}

/// A "closed" event (the connection ends) for `reason`.
fn closed(peer: &Peer, id: u64, reason: &str) -> Event {
    Event::of(peer, id, "frame", Verdict::Closed).because(reason)
}

/// Serve connection `id` of `peer` until it closes, breaks a rule or the agent stops.
pub fn serve(s: &Session, mut stream: UnixStream, peer: &Peer, id: u64) {
    let timeout = s.frame_timeout;
    let _ = stream.set_write_timeout(Some(timeout));
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let mut header = [0u8; 4];
        let mut deadlines = Deadlines {
            frame: None,
            idle: after(s.idle_timeout),
        };
        match read_full(&mut stream, &mut header, &mut deadlines, timeout, &s.stop) {
            ReadEnd::Full => {}
            ReadEnd::Eof => break,
            ReadEnd::Broken(r) => {
                if !s.stop.is_set() {
                    s.journal.record(closed(peer, id, r));
                }
                break;
            }
        }
        let len = match wire::frame_len(header) {
            Ok(n) => n,
            Err(m) => {
                s.journal.record(closed(peer, id, m.0));
                break;
            }
        };
        buf.resize(len, 0);
        let broken = match read_full(&mut stream, &mut buf, &mut deadlines, timeout, &s.stop) {
            ReadEnd::Full => None,
            // Inside a frame, end of file is a broken frame.
            ReadEnd::Eof => Some("connection closed mid-frame"),
            ReadEnd::Broken(r) => Some(r),
        };
        if let Some(r) = broken {
            buf.zeroize();
            s.journal.record(closed(peer, id, r));
            break;
        }
        s.stats.requests.fetch_add(1, Ordering::Relaxed);
        let outcome = s.served.dispatch(peer.uid, &buf);
        // A refused ADD_IDENTITY or LOCK may have carried a private key or a password.
        buf.zeroize();
        let outcome = match outcome {
            Ok(o) => o,
            Err(m) => {
                s.journal.record(closed(peer, id, m.0));
                break;
            }
        };
        if !reply(s, &mut stream, peer, id, outcome) {
            break;
        }
    }
    let _ = rustix::net::shutdown(&stream, rustix::net::Shutdown::Both);
}

/// Record `o` and write its reply (`SSH_AGENT_FAILURE` when the record was not written);
/// whether the connection goes on.
fn reply(s: &Session, stream: &mut UnixStream, peer: &Peer, id: u64, o: Outcome) -> bool {
    let verdict = if o.refused.is_some() {
        s.stats.refused.fetch_add(1, Ordering::Relaxed);
        Verdict::Refused
    } else {
        Verdict::Allowed
    };
    let mut event = Event::of(peer, id, o.operation, verdict);
    event.key = o.key;
    event.key_source = o.key_source;
    event.key_type = o.key_type;
    event.reason = o.refused;
    let mut reply = o.reply;
    // Counted before the record is written: a stop caused by it (a failing audit log)
    // finds the reply waiting and lets it go out.
    let waiting = s.journal.records().then(|| s.journal.waiting());
    if !s.journal.record(event) {
        s.stats.refused.fetch_add(1, Ordering::Relaxed);
        reply.zeroize();
        reply = wire::status(wire::FAILURE);
    }
    let written = stream.write_all(&reply);
    drop(waiting);
    written.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::event::Verdict;
    use crate::agent::stop::StopSignal;
    use std::os::unix::net::UnixStream;

    fn session(frame_timeout: Duration) -> Session {
        let stop = Arc::new(StopSignal::new(|| {}));
        Session {
            served: Arc::new(Served::new(KeySet::default(), None)),
            journal: Arc::new(Journal::new(None, stop.clone())),
            stop,
            stats: Arc::new(Stats::default()),
            frame_timeout,
            idle_timeout: Duration::from_secs(3600),
        }
    }

    /// The events recorded so far: (operation, result, reason).
    fn recorded(s: &Session) -> Vec<(&'static str, Verdict, Option<String>)> {
        let (events, _) = s.journal.log().take(Duration::ZERO, 100, || true);
        events
            .iter()
            .map(|e| (e.operation, e.result, e.reason.clone()))
            .collect()
    }

    #[test]
    fn an_idle_connection_is_closed_at_the_idle_timeout() {
        // Between frames a connection may wait the idle timeout, not for ever: a peer
        // holding connections open without a word cannot keep the agent's slots (before:
        // no limit between frames). A connection that keeps talking stays open.
        let mut s = session(Duration::from_secs(5));
        s.idle_timeout = Duration::from_millis(300);
        let (mut client, server_end) = UnixStream::pair().expect("pair");
        let peer = Peer::of(&server_end).expect("peer");
        std::thread::scope(|t| {
            let served = t.spawn(|| serve(&s, server_end, &peer, 1));
            // Requests keep it open past several idle timeouts (each reply starts a new
            // idle wait). The stimulus is time itself: a request every 100 ms.
            for _ in 0..9 {
                std::thread::sleep(Duration::from_millis(100));
                client
                    .write_all(&[0, 0, 0, 1, wire::REQUEST_IDENTITIES])
                    .expect("write");
                let mut reply = [0u8; 9];
                client.read_exact(&mut reply).expect("reply");
                assert_eq!(reply[4], wire::IDENTITIES_ANSWER);
            }
            // Then silence: the agent closes it (the read sees end of file; the test's
            // own bound is the join, which waits only as long as that takes).
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).expect("closed by the agent");
            assert!(rest.is_empty());
            served.join().expect("serve");
        });
        let got = recorded(&s);
        let closed: Vec<_> = got.iter().filter(|e| e.0 == "frame").collect();
        assert_eq!(
            closed,
            [&("frame", Verdict::Closed, Some(IDLE_CLOSED.to_owned()))]
        );
        assert_eq!(got.iter().filter(|e| e.0 == "identities").count(), 9);
    }

    #[test]
    fn a_trickled_frame_is_cut_at_its_deadline() {
        // A frame's bytes arrive one at a time, the last just before the deadline: the
        // connection is closed at the deadline, not a whole frame timeout after that byte
        // (before: a read armed with the full timeout after each byte, up to twice it).
        let timeout = Duration::from_secs(2);
        let s = session(timeout);
        let (mut client, server_end) = UnixStream::pair().expect("pair");
        let peer = Peer::of(&server_end).expect("peer");
        std::thread::scope(|t| {
            let served = t.spawn(|| {
                serve(&s, server_end, &peer, 1);
                Instant::now()
            });
            let first = Instant::now();
            client
                .write_all(&[0, 0, 0, 9, wire::REQUEST_IDENTITIES])
                .expect("write");
            // The stimulus is time itself: the next byte at 80% of the deadline.
            std::thread::sleep(timeout.mul_f64(0.8));
            client.write_all(&[0]).expect("write");
            let closed = served.join().expect("serve");
            let took = closed.duration_since(first);
            // Before the fix the close came >= 1.8x the timeout after the first byte.
            assert!(took < timeout.mul_f64(1.6), "closed after {took:?}");
            assert!(took >= timeout, "closed early, after {took:?}");
        });
        let (events, _) = s.journal.log().take(Duration::ZERO, 10, || true);
        let got: Vec<_> = events
            .iter()
            .map(|e| (e.operation, e.result, e.reason.as_deref()))
            .collect();
        assert_eq!(
            got,
            [(
                "frame",
                Verdict::Closed,
                Some("frame not completed in time")
            )]
        );
    }
}
