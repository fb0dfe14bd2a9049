//! The agent's server: one accept thread, one thread per connection (so a slow client
//! stalls nobody but itself), a cap on connections, and a deadline for each frame.
//!
//! - Peers are checked when they connect (`SO_PEERCRED`, [`super::peer`]): a uid not in
//!   [`Config::allowed_uids`] is recorded and disconnected before anything is read.
//! - A frame must arrive whole within [`Config::frame_timeout`] of its first byte; a stalled,
//!   empty, oversized or malformed frame is recorded and closes the connection. Waiting
//!   between frames has no deadline (an `ssh` session keeps its agent connection open).
//! - Every request, allowed or refused, becomes one [`Event`] in a bounded queue that the
//!   embedding program drains ([`Server::next_events`]) to its log and audit log. The event
//!   is queued before the reply is sent. With [`Config::audit_required`] the reply waits
//!   until the drainer acknowledges that the event's record is written
//!   ([`Server::ack`]); a record not acknowledged within the frame timeout, or a full
//!   queue, turns the reply into `SSH_AGENT_FAILURE`: no signature or MAC leaves the agent
//!   without its record.
//! - Keys and policy are swapped as a whole ([`Server::set_keys`], [`Server::set_policy`]);
//!   a request in flight finishes with the set it started with. Use counts live for the
//!   server's life ([`super::policy::Usage`]).
//! - [`Server::stop`] wakes the accept thread (`shutdown` of the listening socket), lets
//!   replies that wait for their records go out (as failures), shuts down every connection, joins every thread, drops (wipes) the keys and removes the
//!   socket file.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rustix::net::Shutdown;
use zeroize::Zeroize;

use super::keys::{Entry, KeySet};
use super::peer::Peer;
use super::policy::{self, Operation, Policy, Usage};
use super::socket::BoundSocket;
use super::wire::{self, Extension, Malformed, Request};
use crate::crypto::hmac::HashAlgorithm;
use crate::crypto::tag::tag_matches;

/// Most events kept for the drainer before requests are refused (audit required) or
/// records dropped (not required).
pub const EVENT_QUEUE_CAP: usize = 100_000;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Uids allowed to connect.
    pub allowed_uids: Vec<u32>,
    /// Most connections served at once; more are closed at once (and recorded).
    pub max_connections: usize,
    /// How long a frame may take to arrive once its first byte came (also the write
    /// timeout of a reply).
    pub frame_timeout: Duration,
    /// Release a reply only once its event is acknowledged as recorded ([`Server::ack`]).
    pub audit_required: bool,
}

/// What happened, for the log and the audit log. Carries no key bytes.
#[derive(Debug, Clone)]
pub struct Event {
    /// Position in the event stream (1, 2, ...), for [`Server::ack`].
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
    pub operation: &'static str,
    /// "allowed", "refused" or "closed" (the connection was closed: malformed, stalled).
    pub result: &'static str,
    pub reason: Option<String>,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Event>,
    dropped: u64,
    last_seq: u64,
}

/// The highest event sequence number the drainer acknowledged.
#[derive(Default)]
struct Acked {
    seq: u64,
    /// Replies that wait for their record's acknowledgement or are being written after it:
    /// [`Server::stop`] lets them go out (as `SSH_AGENT_FAILURE` when not acknowledged)
    /// before it closes the connections.
    replies_waiting: usize,
}

/// One reply counted in [`Acked::replies_waiting`] until dropped.
struct WaitingReply<'a>(&'a Shared);

impl<'a> WaitingReply<'a> {
    fn new(shared: &'a Shared) -> Self {
        lock(&shared.acked).replies_waiting += 1;
        WaitingReply(shared)
    }
}

impl Drop for WaitingReply<'_> {
    fn drop(&mut self) {
        lock(&self.0.acked).replies_waiting -= 1;
        self.0.acked_cv.notify_all();
    }
}

/// How long [`Server::stop`] lets replies that waited for their records go out.
const STOP_REPLY_GRACE: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Conns {
    streams: HashMap<u64, UnixStream>,
    threads: Vec<JoinHandle<()>>,
}

/// Counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub refused: AtomicU64,
}

struct Shared {
    config: Config,
    socket: BoundSocket,
    keys: RwLock<Arc<KeySet>>,
    policy: RwLock<Option<Arc<Policy>>>,
    usage: Mutex<HashMap<String, Usage>>,
    started: Instant,
    stopping: AtomicBool,
    conns: Mutex<Conns>,
    queue: Mutex<Queue>,
    queue_cv: Condvar,
    acked: Mutex<Acked>,
    acked_cv: Condvar,
    next_id: AtomicU64,
    stats: Stats,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running agent server.
pub struct Server {
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

/// A reply, and the event of the request.
struct Outcome {
    reply: Vec<u8>,
    key: Option<String>,
    key_source: Option<&'static str>,
    operation: &'static str,
    refused: Option<String>,
}

impl Outcome {
    fn allowed(reply: Vec<u8>, key: Option<&str>, operation: &'static str) -> Self {
        Outcome {
            reply,
            key: key.map(str::to_owned),
            key_source: None,
            operation,
            refused: None,
        }
    }

    fn refused(key: Option<&str>, operation: &'static str, reason: impl Into<String>) -> Self {
        Outcome {
            reply: wire::status(wire::FAILURE),
            key: key.map(str::to_owned),
            key_source: None,
            operation,
            refused: Some(reason.into()),
        }
    }

    /// The outcome of a request for the served key `e`.
    fn of(mut self, e: &Entry) -> Self {
        self.key_source = Some(e.source());
        self
    }
}

impl Shared {
    fn event(&self, peer: &Peer, connection: u64, o: &Outcome, closed: bool) -> Event {
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
            key: o.key.clone(),
            key_source: o.key_source,
            operation: o.operation,
            result: if closed {
                "closed"
            } else if o.refused.is_some() {
                "refused"
            } else {
                "allowed"
            },
            reason: o.refused.clone(),
        }
    }

    /// Queue an event; its sequence number, or `None` when the queue is full (the event
    /// is dropped).
    fn record(&self, mut e: Event) -> Option<u64> {
        let mut q = lock(&self.queue);
        if q.events.len() >= EVENT_QUEUE_CAP {
            q.dropped += 1;
            return None;
        }
        q.last_seq += 1;
        e.seq = q.last_seq;
        let seq = e.seq;
        q.events.push_back(e);
        drop(q);
        self.queue_cv.notify_one();
        Some(seq)
    }

    /// Wait until event `seq` is acknowledged, at most `timeout` (or until stopping).
    fn wait_acked(&self, seq: u64, timeout: Duration) -> bool {
        self.wait_for_acked(timeout, |a| {
            if a.seq >= seq {
                Some(true)
            } else if self.stopping.load(Ordering::SeqCst) {
                Some(false)
            } else {
                None
            }
        })
    }

    /// Wait on [`Shared::acked`] until `done` answers, or `timeout` passes (`false`).
    fn wait_for_acked(&self, timeout: Duration, done: impl Fn(&Acked) -> Option<bool>) -> bool {
        let deadline = Instant::now() + timeout;
        let mut a = lock(&self.acked);
        loop {
            if let Some(answer) = done(&a) {
                return answer;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            a = self
                .acked_cv
                .wait_timeout(a, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Check `op` on `entry` for `uid` against the policy, counting the use.
    fn decide(&self, entry: &Entry, op: Operation, uid: u32) -> Result<(), String> {
        let policy = self
            .policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(policy) = policy else {
            return Ok(());
        };
        let Some(rule) = policy.rule(&entry.name) else {
            return Err("no policy rule for this key".to_owned());
        };
        let now = Instant::now();
        let mut usage = lock(&self.usage);
        let u = usage
            .entry(entry.name.clone())
            .or_insert_with(|| Usage::new(self.started));
        policy::decide(rule, op, uid, u, now).map_err(str::to_owned)
    }

    /// Whether `uid` may use `entry` for `op` now (no use counted).
    fn permitted(&self, policy: Option<&Policy>, entry: &Entry, op: Operation, uid: u32) -> bool {
        let Some(policy) = policy else {
            return true;
        };
        let Some(rule) = policy.rule(&entry.name) else {
            return false;
        };
        let usage = lock(&self.usage);
        let fresh;
        let u = match usage.get(&entry.name) {
            Some(u) => u,
            None => {
                fresh = Usage::new(self.started);
                &fresh
            }
        };
        policy::permitted(rule, op, uid, u, Instant::now()).is_ok()
    }

    fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn current_policy(&self) -> Option<Arc<Policy>> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn handle(&self, peer: &Peer, msg: &[u8]) -> Result<Outcome, Malformed> {
        let uid = peer.uid;
        Ok(match wire::parse_request(msg)? {
            Request::RequestIdentities => {
                let keys = self.keys();
                let policy = self.current_policy();
                let ids: Vec<(&[u8], &str)> = keys
                    .entries()
                    .iter()
                    .filter(|e| self.permitted(policy.as_deref(), e, Operation::Sign, uid))
                    .filter_map(|e| Some((e.blob()?, e.name.as_str())))
                    .collect();
                Outcome::allowed(wire::identities_answer(ids.into_iter()), None, "identities")
            }
            Request::Sign { key_blob, data, .. } => {
                // Flags select RSA hashes; they do not apply to Ed25519 and are ignored.
                let keys = self.keys();
                let Some(entry) = keys.by_blob(key_blob) else {
                    return Ok(Outcome::refused(None, "sign", "no such key"));
                };
                if let Err(r) = self.decide(entry, Operation::Sign, uid) {
                    return Ok(Outcome::refused(Some(&entry.name), "sign", r).of(entry));
                }
                match entry.sign(data) {
                    Ok(sig) => {
                        Outcome::allowed(wire::sign_response(&sig), Some(&entry.name), "sign")
                    }
                    Err(e) => Outcome::refused(Some(&entry.name), "sign", e),
                }
                .of(entry)
            }
            Request::Extension(ext) => self.extension(peer, ext),
            Request::Refused(r) => Outcome::refused(None, r.name(), "not allowed over the socket"),
            Request::Unknown(t) => {
                Outcome::refused(None, "unknown", format!("unsupported message type {t}"))
            }
        })
    }

    fn extension(&self, peer: &Peer, ext: Extension<'_>) -> Outcome {
        let uid = peer.uid;
        match ext {
            Extension::Query => Outcome::allowed(
                wire::extension_response(wire::EXT_QUERY, |w| {
                    for name in wire::EXTENSIONS {
                        w.string(name.as_bytes());
                    }
                }),
                None,
                "query",
            ),
            Extension::List => {
                let keys = self.keys();
                let policy = self.current_policy();
                let visible: Vec<&Entry> = keys
                    .entries()
                    .iter()
                    .filter(|e| {
                        [Operation::Sign, Operation::Hmac, Operation::VerifyHmac]
                            .iter()
                            .any(|&op| self.permitted(policy.as_deref(), e, op, uid))
                    })
                    .collect();
                let reply = wire::extension_response(wire::EXT_LIST, |w| {
                    w.u32(visible.len() as u32);
                    for e in &visible {
                        let r = e.report();
                        w.string(e.name.as_bytes())
                            .string(e.kind().as_bytes())
                            .string(e.public())
                            .u32(r.bits)
                            .string(r.isolation.as_bytes())
                            .string(r.backend.as_bytes());
                    }
                });
                Outcome::allowed(reply, None, "list")
            }
            Extension::Hmac {
                name,
                algorithm,
                data,
            } => self.mac(uid, name, algorithm, data, None),
            Extension::VerifyHmac {
                name,
                algorithm,
                data,
                tag,
            } => self.mac(uid, name, algorithm, data, Some(tag)),
            Extension::Unsupported(_) => {
                Outcome::refused(None, "extension", "unsupported extension")
            }
        }
    }

    fn mac(
        &self,
        uid: u32,
        name: &str,
        alg: HashAlgorithm,
        data: &[u8],
        tag: Option<&[u8]>,
    ) -> Outcome {
        let (op, opname, ext) = match tag {
            None => (Operation::Hmac, "hmac", wire::EXT_HMAC),
            Some(_) => (Operation::VerifyHmac, "verify-hmac", wire::EXT_VERIFY_HMAC),
        };
        let keys = self.keys();
        let Some(entry) = keys.by_name(name) else {
            return Outcome::refused(Some(name), opname, "no such key");
        };
        if entry.kind() != "secret" {
            return Outcome::refused(Some(name), opname, "not a secret key").of(entry);
        }
        if let Err(r) = self.decide(entry, op, uid) {
            return Outcome::refused(Some(name), opname, r).of(entry);
        }
        let mut mac = [0u8; 64];
        let n = alg.digest_len();
        if let Err(e) = entry.hmac(alg, data, &mut mac[..n]) {
            return Outcome::refused(Some(name), opname, e).of(entry);
        }
        let reply = wire::extension_response(ext, |w| match tag {
            None => {
                w.string(&mac[..n]);
            }
            Some(t) => {
                w.u8(u8::from(tag_matches(&mac[..n], t)));
            }
        });
        Outcome::allowed(reply, Some(name), opname).of(entry)
    }
}

/// How reading a frame ended.
enum ReadEnd {
    /// The buffer was filled.
    Full,
    /// The peer closed between frames.
    Eof,
    /// The peer closed, stalled or failed mid-frame.
    Broken(&'static str),
}

/// Fill `buf`; `in_frame` says whether part of this frame has arrived already.
fn read_full(
    stream: &mut UnixStream,
    buf: &mut [u8],
    mut deadline: Option<Instant>,
    timeout: Duration,
    stopping: &AtomicBool,
) -> (ReadEnd, Option<Instant>) {
    let mut n = 0;
    while n < buf.len() {
        match stream.read(&mut buf[n..]) {
            Ok(0) if n == 0 && deadline.is_none() => return (ReadEnd::Eof, deadline),
            Ok(0) => return (ReadEnd::Broken("connection closed mid-frame"), deadline),
            Ok(k) => {
                n += k;
                deadline.get_or_insert_with(|| Instant::now() + timeout);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stopping.load(Ordering::Relaxed) {
                    return (ReadEnd::Broken("agent stopping"), deadline);
                }
            }
            Err(_) => return (ReadEnd::Broken("read error"), deadline),
        }
        if let Some(d) = deadline {
            if n < buf.len() && Instant::now() >= d {
                return (ReadEnd::Broken("frame not completed in time"), deadline);
            }
        }
    }
    (ReadEnd::Full, deadline)
}

fn serve_connection(shared: Arc<Shared>, mut stream: UnixStream, peer: Peer, id: u64) {
    let timeout = shared.config.frame_timeout;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let mut header = [0u8; 4];
        let (end, deadline) = read_full(&mut stream, &mut header, None, timeout, &shared.stopping);
        let closed = |reason: &str| Outcome {
            reply: Vec::new(),
            key: None,
            key_source: None,
            operation: "frame",
            refused: Some(reason.to_owned()),
        };
        match end {
            ReadEnd::Full => {}
            ReadEnd::Eof => break,
            ReadEnd::Broken(r) => {
                if !shared.stopping.load(Ordering::Relaxed) {
                    shared.record(shared.event(&peer, id, &closed(r), true));
                }
                break;
            }
        }
        let len = match wire::frame_len(header) {
            Ok(n) => n,
            Err(m) => {
                shared.record(shared.event(&peer, id, &closed(m.0), true));
                break;
            }
        };
        buf.resize(len, 0);
        let (end, _) = read_full(&mut stream, &mut buf, deadline, timeout, &shared.stopping);
        if let ReadEnd::Broken(r) = end.map_eof() {
            buf.zeroize();
            shared.record(shared.event(&peer, id, &closed(r), true));
            break;
        }
        shared.stats.requests.fetch_add(1, Ordering::Relaxed);
        let outcome = shared.handle(&peer, &buf);
        // A refused ADD_IDENTITY or LOCK may have carried a private key or a password.
        buf.zeroize();
        let outcome = match outcome {
            Ok(o) => o,
            Err(m) => {
                shared.record(shared.event(&peer, id, &closed(m.0), true));
                break;
            }
        };
        let event = shared.event(&peer, id, &outcome, false);
        let mut reply = outcome.reply;
        if outcome.refused.is_some() {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
        }
        // Counted before the event is queued: a stop caused by its record (a failing audit
        // log) finds it waiting.
        let waiting = shared
            .config
            .audit_required
            .then(|| WaitingReply::new(&shared));
        let recorded = shared.record(event);
        if waiting.is_some() && !recorded.is_some_and(|seq| shared.wait_acked(seq, timeout)) {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            reply = wire::status(wire::FAILURE);
        }
        let written = stream.write_all(&reply);
        drop(waiting);
        if written.is_err() {
            break;
        }
    }
    let _ = rustix::net::shutdown(&stream, Shutdown::Both);
    lock(&shared.conns).streams.remove(&id);
}

impl ReadEnd {
    /// Inside a frame, end of file is a broken frame.
    fn map_eof(self) -> ReadEnd {
        match self {
            ReadEnd::Eof => ReadEnd::Broken("connection closed mid-frame"),
            other => other,
        }
    }
}

fn accept_loop(shared: Arc<Shared>) {
    loop {
        let accepted = shared.socket.listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // Out of descriptors or memory: back off, keep serving the others.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let Ok(peer) = Peer::of(&stream) else {
            continue;
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        if !shared.config.allowed_uids.contains(&peer.uid) {
            let o = Outcome::refused(None, "connect", "uid not allowed to connect");
            shared.record(shared.event(&peer, id, &o, false));
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut conns = lock(&shared.conns);
        conns.threads.retain(|t| !t.is_finished());
        if conns.streams.len() >= shared.config.max_connections {
            drop(conns);
            let o = Outcome::refused(None, "connect", "too many connections");
            shared.record(shared.event(&peer, id, &o, false));
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        conns.streams.insert(id, clone);
        let s = shared.clone();
        match std::thread::Builder::new()
            .name("keycell-agent-conn".to_owned())
            .spawn(move || serve_connection(s, stream, peer, id))
        {
            Ok(t) => conns.threads.push(t),
            Err(_) => {
                conns.streams.remove(&id);
            }
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl Server {
    /// Start serving on `socket` with `keys` and `policy`.
    pub fn start(
        socket: BoundSocket,
        config: Config,
        keys: KeySet,
        policy: Option<Policy>,
    ) -> Result<Server, StartError> {
        let shared = Arc::new(Shared {
            config,
            socket,
            keys: RwLock::new(Arc::new(keys)),
            policy: RwLock::new(policy.map(Arc::new)),
            usage: Mutex::new(HashMap::new()),
            started: Instant::now(),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Conns::default()),
            queue: Mutex::new(Queue::default()),
            queue_cv: Condvar::new(),
            acked: Mutex::new(Acked::default()),
            acked_cv: Condvar::new(),
            next_id: AtomicU64::new(1),
            stats: Stats::default(),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("keycell-agent-accept".to_owned())
            .spawn(move || accept_loop(s))
            .map_err(|e| StartError(format!("cannot start the accept thread: {e}")))?;
        Ok(Server {
            shared,
            accept: Mutex::new(Some(accept)),
        })
    }

    /// Replace every key (the old ones are wiped once no request uses them).
    pub fn set_keys(&self, keys: KeySet) {
        *self.shared.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }

    /// Replace the policy (`None`: no per-key rules).
    pub fn set_policy(&self, policy: Option<Policy>) {
        *self
            .shared
            .policy
            .write()
            .unwrap_or_else(|e| e.into_inner()) = policy.map(Arc::new);
    }

    /// Names, kinds and sources ("store" or "pkcs11") of the keys served.
    pub fn key_names(&self) -> Vec<(String, &'static str, &'static str)> {
        self.shared
            .keys()
            .entries()
            .iter()
            .map(|e| (e.name.clone(), e.kind(), e.source()))
            .collect()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The socket's path.
    pub fn path(&self) -> &std::path::Path {
        self.shared.socket.path()
    }

    /// Wait up to `timeout` for events and take up to `max` of them; also returns how many
    /// were dropped (queue full) since the last call.
    pub fn next_events(&self, timeout: Duration, max: usize) -> (Vec<Event>, u64) {
        let mut q = lock(&self.shared.queue);
        if q.events.is_empty() && !self.shared.stopping.load(Ordering::SeqCst) {
            q = self
                .shared
                .queue_cv
                .wait_timeout(q, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let n = q.events.len().min(max);
        let events: Vec<Event> = q.events.drain(..n).collect();
        let dropped = std::mem::take(&mut q.dropped);
        (events, dropped)
    }

    /// Acknowledge that every event up to `seq` is recorded (releases the replies that
    /// wait for it under [`Config::audit_required`]).
    pub fn ack(&self, seq: u64) {
        let mut a = lock(&self.shared.acked);
        if seq > a.seq {
            a.seq = seq;
        }
        drop(a);
        self.shared.acked_cv.notify_all();
    }

    /// Whether [`Server::stop`] ran.
    pub fn stopped(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    /// Wait (at most [`STOP_REPLY_GRACE`]) until the replies that waited for their records
    /// are written: woken by `stopping`, those not acknowledged go out as failures.
    fn let_waiting_replies_out(&self) {
        self.shared.wait_for_acked(STOP_REPLY_GRACE, |a| {
            (a.replies_waiting == 0).then_some(true)
        });
    }

    /// Stop: no new connections, let replies that waited for their records go out (as
    /// failures when not acknowledged), close every connection, join every thread, wipe the
    /// keys, remove the socket. Idempotent. Returns whether the socket file was removed.
    pub fn stop(&self) -> bool {
        let first = !self.shared.stopping.swap(true, Ordering::SeqCst);
        self.shared.acked_cv.notify_all();
        self.let_waiting_replies_out();
        let _ = rustix::net::shutdown(&self.shared.socket.listener, Shutdown::Both);
        if let Some(t) = lock(&self.accept).take() {
            let _ = t.join();
        }
        let threads = {
            let mut conns = lock(&self.shared.conns);
            for s in conns.streams.values() {
                let _ = rustix::net::shutdown(s, Shutdown::Both);
            }
            std::mem::take(&mut conns.threads)
        };
        for t in threads {
            let _ = t.join();
        }
        self.set_keys(KeySet::default());
        self.shared.queue_cv.notify_all();
        first && self.shared.socket.remove()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::key_kind::KeyKind;
    use crate::store::{lock::DEFAULT_LOCK_TIMEOUT, Master, Store};
    use std::path::Path;

    fn request(s: &mut UnixStream, msg: &[u8]) -> Option<Vec<u8>> {
        let mut f = (msg.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(msg);
        s.write_all(&f).ok()?;
        let mut h = [0u8; 4];
        s.read_exact(&mut h).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(h) as usize];
        s.read_exact(&mut body).ok()?;
        Some(body)
    }

    /// A server on `path` for this process's uid, with no policy.
    fn start(path: &Path, keys: KeySet, frame_timeout: Duration, audit_required: bool) -> Server {
        let config = Config {
            allowed_uids: vec![rustix::process::geteuid().as_raw()],
            max_connections: 4,
            frame_timeout,
            audit_required,
        };
        let socket = BoundSocket::bind(path, 0o600).expect("bind");
        Server::start(socket, config, keys, None).expect("start")
    }

    fn string(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn serves_signs_refuses_and_stops() {
        let d = crate::test_dir::fresh("agent-test");
        let master = [6u8; 32];
        let mut store = Store::create(
            &d.join("s.kcs"),
            Master::Key(&master),
            None,
            DEFAULT_LOCK_TIMEOUT,
        )
        .expect("store");
        store
            .put("k", KeyKind::Ed25519, false, &[9u8; 32], false)
            .expect("put");
        let keys = KeySet::load(&mut store).expect("load");
        let public = *keys.entries()[0].public().first_chunk::<32>().expect("32");
        let path = d.join("a.sock");
        let server = start(&path, keys, Duration::from_secs(5), false);
        let mut s = UnixStream::connect(&path).expect("connect");
        let ids = request(&mut s, &[wire::REQUEST_IDENTITIES]).expect("ids");
        assert_eq!(ids[0], wire::IDENTITIES_ANSWER);
        let blob = wire::ed25519_blob(&public);
        let msg = [
            &[wire::SIGN_REQUEST][..],
            &string(&blob),
            &string(b"hello"),
            &[0, 0, 0, 0],
        ]
        .concat();
        let reply = request(&mut s, &msg).expect("sign");
        assert_eq!(reply[0], wire::SIGN_RESPONSE);
        let sig = &reply[reply.len() - 64..];
        let vk = crate::crypto::ed25519::public_key_from_bytes(&public).expect("pk");
        assert!(crate::crypto::ed25519::verify(&vk, b"hello", sig).is_ok());
        assert_eq!(
            request(&mut s, &[wire::ADD_IDENTITY, 1, 2]).expect("add"),
            [wire::FAILURE]
        );
        let (events, dropped) = server.next_events(Duration::from_millis(10), 100);
        assert_eq!(dropped, 0);
        let ops: Vec<_> = events.iter().map(|e| (e.operation, e.result)).collect();
        assert_eq!(
            ops,
            [
                ("identities", "allowed"),
                ("sign", "allowed"),
                ("add-identity", "refused")
            ]
        );
        assert!(events
            .iter()
            .all(|e| e.uid == rustix::process::geteuid().as_raw()));
        assert!(server.stop());
        assert!(!path.exists());
        assert!(request(&mut s, &[wire::REQUEST_IDENTITIES]).is_none());
        assert!(server.key_names().is_empty());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn audit_required_releases_replies_only_when_acknowledged() {
        let d = crate::test_dir::fresh("agent-test");
        let mut store = Store::create(
            &d.join("s.kcs"),
            Master::Key(&[7u8; 32]),
            None,
            DEFAULT_LOCK_TIMEOUT,
        )
        .expect("store");
        store
            .put("k", KeyKind::Ed25519, false, &[3u8; 32], false)
            .expect("put");
        let keys = KeySet::load(&mut store).expect("load");
        let path = d.join("a.sock");
        let server = start(&path, keys, Duration::from_millis(300), true);
        let mut s = UnixStream::connect(&path).expect("connect");
        // Nobody acknowledges: the reply becomes FAILURE once the wait times out.
        assert_eq!(
            request(&mut s, &[wire::REQUEST_IDENTITIES]).expect("reply"),
            [wire::FAILURE]
        );
        let (events, _) = server.next_events(Duration::from_millis(10), 100);
        assert_eq!(events.len(), 1);
        // A drainer that acknowledges: the answer goes out.
        std::thread::scope(|t| {
            t.spawn(|| {
                let (ev, _) = server.next_events(Duration::from_secs(30), 100);
                server.ack(ev.last().expect("event").seq);
            });
            let reply = request(&mut s, &[wire::REQUEST_IDENTITIES]).expect("reply");
            assert_eq!(reply[0], wire::IDENTITIES_ANSWER);
        });
        assert!(server.stop());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn a_reply_waiting_for_its_record_at_stop_is_a_failure_not_a_closed_connection() {
        // The CLI stops the agent when its audit log fails: a request whose record was
        // never acknowledged must still get its SSH_AGENT_FAILURE, however the threads of
        // stop() and of the connection are scheduled.
        let d = crate::test_dir::fresh("agent-test");
        for round in 0..100 {
            let path = d.join(format!("a{round}.sock"));
            let server = start(&path, KeySet::default(), Duration::from_secs(30), true);
            let mut s = UnixStream::connect(&path).expect("connect");
            std::thread::scope(|t| {
                let client = t.spawn(move || request(&mut s, &[wire::REQUEST_IDENTITIES]));
                // The request is queued (and its reply waits for an ack nobody gives).
                let (events, _) = server.next_events(Duration::from_secs(30), 100);
                assert_eq!(events.len(), 1);
                assert!(server.stop());
                assert_eq!(
                    client.join().expect("client"),
                    Some(vec![wire::FAILURE]),
                    "round {round}"
                );
            });
        }
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
