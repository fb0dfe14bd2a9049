//! The agent's start and stop: [`Server::start`] wires the parts together (the served
//! keys and policy, the journal and its recorder, the accept thread) and [`Server::stop`]
//! takes them down in order. What each part does:
//!
//! - [`super::listener`]: peers checked when they connect, the connection caps (in all,
//!   per uid, room for the agent's own uid), refusal counts on record within a second of
//!   their window's end;
//! - [`super::connection`]: frames, their deadline, the idle timeout between them, the
//!   reply after its record;
//! - [`super::dispatch`]: the decision for one request;
//! - [`super::record`]: the record written before the reply (`Recorder`), and the queue
//!   of events for the embedding program's log ([`Server::next_events`]).
//!
//! Keys and policy are swapped as a whole ([`Server::set_keys`], [`Server::set_policy`]);
//! a request in flight finishes with the set it started with. Use counts live for the
//! server's life ([`super::policy::Usages`]).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::net::Shutdown;

use super::connection::{Served, Session, Stats};
use super::event::{Event, Verdict};
use super::keys::KeySet;
use super::listener::{accept_loop, Admission, Connections};
use super::policy::Policy;
use super::record::{Journal, Recorder};
use super::socket::BoundSocket;
use super::stop::StopSignal;
use crate::audit::AuditError;

/// How long [`Server::stop`] lets replies that wait for their records go out.
const STOP_REPLY_GRACE: Duration = Duration::from_secs(2);

/// Server settings.
#[derive(Clone)]
pub struct Config {
    /// Who may connect, how many at once.
    pub admission: Admission,
    /// How long a frame may take to arrive once its first byte came (also the write
    /// timeout of a reply).
    pub frame_timeout: Duration,
    /// How long a connection may wait between frames before it is closed.
    pub idle_timeout: Duration,
    /// Where every event is recorded before its reply is written (`None`: the event queue
    /// only). A failing recorder refuses that reply and stops the agent.
    pub recorder: Option<Arc<dyn Recorder>>,
}

/// A running agent server.
pub struct Server {
    socket: Arc<BoundSocket>,
    session: Arc<Session>,
    conns: Arc<Connections>,
    accept: Mutex<Option<JoinHandle<()>>>,
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
        let socket = Arc::new(socket);
        let listening = socket.clone();
        let stop = Arc::new(StopSignal::new(move || {
            let _ = rustix::net::shutdown(&listening.listener, Shutdown::Both);
        }));
        let session = Arc::new(Session {
            served: Arc::new(Served::new(keys, policy)),
            journal: Arc::new(Journal::new(config.recorder, stop.clone())),
            stop,
            stats: Arc::new(Stats::default()),
            frame_timeout: config.frame_timeout,
            idle_timeout: config.idle_timeout,
        });
        if let Some(p) = session.served.policy() {
            session.journal.record(policy_event(
                Verdict::Allowed,
                format!("loaded serial {}", p.serial),
            ));
        }
        let conns = Arc::new(Connections::default());
        let (so, se, co, admission) = (
            socket.clone(),
            session.clone(),
            conns.clone(),
            config.admission,
        );
        let accept = std::thread::Builder::new()
            .name("keycell-agent-accept".to_owned())
            .spawn(move || accept_loop(&so, &admission, &se, &co))
            .map_err(|e| StartError(format!("cannot start the accept thread: {e}")))?;
        Ok(Server {
            socket,
            session,
            conns,
            accept: Mutex::new(Some(accept)),
        })
    }

    /// Replace every key (the old ones are wiped once no request uses them).
    pub fn set_keys(&self, keys: KeySet) {
        self.session.served.set_keys(keys);
    }

    /// Replace the policy (`None`: no per-key rules). A policy whose serial goes back is
    /// refused (`Err` says why; [`Policy::may_follow`]) and the loaded one stays. Either
    /// way the outcome is recorded (an `agent.policy` event naming the serial).
    pub fn set_policy(&self, policy: Option<Policy>) -> Result<(), String> {
        let serial = policy.as_ref().map_or(0, |p| p.serial);
        let outcome = self.session.served.set_policy(policy);
        let event = match &outcome {
            Ok(()) => policy_event(Verdict::Allowed, format!("loaded serial {serial}")),
            Err(why) => policy_event(Verdict::Refused, why.clone()),
        };
        self.session.journal.record(event);
        outcome
    }

    /// The loaded policy's serial (`None` without a policy).
    pub fn policy_serial(&self) -> Option<u64> {
        self.session.served.policy().map(|p| p.serial)
    }

    /// Names, kinds and sources ("store" or "pkcs11") of the keys served.
    pub fn key_names(&self) -> Vec<(String, &'static str, &'static str)> {
        self.session
            .served
            .keys()
            .entries()
            .iter()
            .map(|e| (e.name.clone(), e.kind(), e.source()))
            .collect()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.session.stats
    }

    /// The socket's path.
    pub fn path(&self) -> &std::path::Path {
        self.socket.path()
    }

    /// Wait up to `timeout` for events and take up to `max` of them; also returns how many
    /// were dropped (queue full) since the last call. Returns at once when stopping.
    pub fn next_events(&self, timeout: Duration, max: usize) -> (Vec<Event>, u64) {
        let stop = &self.session.stop;
        self.session
            .journal
            .log()
            .take(timeout, max, || stop.is_set())
    }

    /// Whether the server is stopping or stopped: [`Server::stop`] ran, or a record failed.
    pub fn stopped(&self) -> bool {
        self.session.stop.is_set()
    }

    /// Wait until the server is stopping, at most `timeout` (`None`: no limit); whether it is.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.session.stop.wait(timeout)
    }

    /// The record failure that stopped the server, if one did.
    pub fn failure(&self) -> Option<AuditError> {
        self.session.stop.failure()
    }

    /// Stop: no new connections, let replies that wait for their records go out (as
    /// failures when not recorded), close every connection, join every thread, wipe the
    /// keys, remove the socket. Idempotent. Returns whether this call removed the socket
    /// file.
    pub fn stop(&self) -> bool {
        self.session.stop.request();
        self.session
            .journal
            .let_waiting_replies_out(STOP_REPLY_GRACE);
        let _ = rustix::net::shutdown(&self.socket.listener, Shutdown::Both);
        let accept = self.accept.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(t) = accept else {
            return false;
        };
        let _ = t.join();
        self.conns.close_all();
        self.set_keys(KeySet::default());
        self.session.journal.log().wake();
        self.socket.remove()
    }
}

/// The record of a policy loaded or refused: the agent's own process is the actor.
fn policy_event(result: Verdict, reason: String) -> Event {
    Event {
        seq: 0,
        time: std::time::SystemTime::now(),
        connection: 0,
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
        pid: rustix::process::getpid().as_raw_pid(),
        pid_pinned: false,
        pid_exited: None,
        pidfd_errno: None,
        key: None,
        key_source: None,
        key_type: None,
        operation: "policy",
        result,
        reason: Some(reason),
        count: 1,
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
    use crate::agent::event::Verdict;
    use crate::agent::wire;
    use crate::crypto::key_kind::KeyKind;
    use crate::store::{lock::DEFAULT_LOCK_TIMEOUT, Master, Store};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::sync::mpsc;
    use std::time::Instant;

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
    fn start(
        path: &Path,
        keys: KeySet,
        frame_timeout: Duration,
        recorder: Option<Arc<dyn Recorder>>,
    ) -> Server {
        let config = Config {
            admission: Admission {
                allowed_uids: vec![rustix::process::geteuid().as_raw()],
                max_connections: 4,
                owner_uid: rustix::process::geteuid().as_raw(),
            },
            frame_timeout,
            idle_timeout: Duration::from_secs(3600),
            recorder,
        };
        let socket = BoundSocket::bind(path, 0o600).expect("bind");
        Server::start(socket, config, keys, None).expect("start")
    }

    fn string(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    /// A key set with one Ed25519 key "k" (seed `seed`), and its public key.
    fn one_key(d: &Path, seed: u8) -> (KeySet, [u8; 32]) {
        let mut store = Store::create(
            &d.join(format!("s{seed}.kcs")),
            Master::Key(&[6u8; 32]),
            None,
            DEFAULT_LOCK_TIMEOUT,
        )
        .expect("store");
        store
            .put("k", KeyKind::Ed25519, false, &[seed; 32], false)
            .expect("put");
        let keys = KeySet::load(&mut store).expect("load");
        let public = *keys.entries()[0].public().first_chunk::<32>().expect("32");
        (keys, public)
    }

    fn sign_request(public: &[u8; 32], data: &[u8]) -> Vec<u8> {
        [
            &[wire::SIGN_REQUEST][..],
            &string(&wire::ed25519_blob(public)),
            &string(data),
            &[0, 0, 0, 0],
        ]
        .concat()
    }

    #[test]
    fn serves_signs_refuses_and_stops() {
        let d = crate::test_dir::fresh("agent-test");
        let (keys, public) = one_key(&d, 9);
        let path = d.join("a.sock");
        let server = start(&path, keys, Duration::from_secs(5), None);
        let mut s = UnixStream::connect(&path).expect("connect");
        let ids = request(&mut s, &[wire::REQUEST_IDENTITIES]).expect("ids");
        assert_eq!(ids[0], wire::IDENTITIES_ANSWER);
        let reply = request(&mut s, &sign_request(&public, b"hello")).expect("sign");
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
                ("identities", Verdict::Allowed),
                ("sign", Verdict::Allowed),
                ("add-identity", Verdict::Refused)
            ]
        );
        assert!(events
            .iter()
            .all(|e| e.uid == rustix::process::geteuid().as_raw()));
        assert!(server.stop());
        assert!(!path.exists());
        assert!(request(&mut s, &[wire::REQUEST_IDENTITIES]).is_none());
        assert!(server.key_names().is_empty());
        assert!(!server.stop(), "a second stop removes nothing");
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    /// Records events; checks that the client has no reply yet when its event is recorded.
    struct Before {
        client: UnixStream,
        seen: Mutex<Vec<(&'static str, Verdict)>>,
    }

    impl Recorder for Before {
        fn record(&self, e: &Event) -> Result<(), AuditError> {
            let mut b = [0u8; 1];
            let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
            let early = rustix::net::recv(&self.client, &mut b, flags);
            assert!(
                matches!(early, Err(rustix::io::Errno::AGAIN)),
                "the reply left before its record: {early:?}"
            );
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((e.operation, e.result));
            Ok(())
        }
    }

    #[test]
    fn every_reply_is_recorded_before_it_is_written() {
        let d = crate::test_dir::fresh("agent-test");
        let (keys, public) = one_key(&d, 3);
        let path = d.join("a.sock");
        // Bind first, then connect (the backlog holds the connection until accepted).
        let socket = BoundSocket::bind(&path, 0o600).expect("bind");
        let mut client = UnixStream::connect(&path).expect("connect");
        let peek = client.try_clone().expect("clone");
        let before = Arc::new(Before {
            client: peek,
            seen: Mutex::new(Vec::new()),
        });
        let config = Config {
            admission: Admission {
                allowed_uids: vec![rustix::process::geteuid().as_raw()],
                max_connections: 4,
                owner_uid: rustix::process::geteuid().as_raw(),
            },
            frame_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(3600),
            recorder: Some(before.clone()),
        };
        let server = Server::start(socket, config, keys, None).expect("start");
        assert_eq!(
            request(&mut client, &[wire::REQUEST_IDENTITIES]).expect("ids")[0],
            wire::IDENTITIES_ANSWER
        );
        assert_eq!(
            request(&mut client, &sign_request(&public, b"x")).expect("sign")[0],
            wire::SIGN_RESPONSE
        );
        assert_eq!(
            request(&mut client, &[wire::ADD_IDENTITY, 1]).expect("add"),
            [wire::FAILURE]
        );
        assert!(server.stop());
        assert!(server.failure().is_none());
        assert_eq!(
            *before.seen.lock().unwrap_or_else(|e| e.into_inner()),
            [
                ("identities", Verdict::Allowed),
                ("sign", Verdict::Allowed),
                ("add-identity", Verdict::Refused)
            ]
        );
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    /// Fails every record after the first `ok` ones; with `gate`, each call first waits
    /// for a go (true: succeed) and says it entered.
    struct Failing {
        ok: usize,
        calls: Mutex<usize>,
        gate: Option<Gate>,
    }

    /// Says a record call entered; takes whether it succeeds.
    type Gate = (Mutex<mpsc::Sender<()>>, Mutex<mpsc::Receiver<bool>>);

    impl Recorder for Failing {
        fn record(&self, _: &Event) -> Result<(), AuditError> {
            if let Some((entered, go)) = &self.gate {
                let _ = entered.lock().expect("lock").send(());
                if go.lock().expect("lock").recv().expect("go") {
                    return Ok(());
                }
                return Err(AuditError::Closed);
            }
            let mut n = self.calls.lock().expect("lock");
            *n += 1;
            if *n > self.ok {
                return Err(AuditError::Invalid("the disk is full".to_owned()));
            }
            Ok(())
        }
    }

    #[test]
    fn a_failing_recorder_refuses_the_reply_and_stops_the_agent() {
        let d = crate::test_dir::fresh("agent-test");
        let (keys, public) = one_key(&d, 4);
        let path = d.join("a.sock");
        let failing = Arc::new(Failing {
            ok: 1,
            calls: Mutex::new(0),
            gate: None,
        });
        let server = start(&path, keys, Duration::from_secs(30), Some(failing.clone()));
        let mut s = UnixStream::connect(&path).expect("connect");
        let first = request(&mut s, &sign_request(&public, b"one")).expect("sign");
        assert_eq!(first[0], wire::SIGN_RESPONSE);
        // The second record fails: no signature, and the agent stops with the failure.
        assert_eq!(
            request(&mut s, &sign_request(&public, b"two")),
            Some(vec![wire::FAILURE])
        );
        assert!(server.wait(Some(Duration::from_secs(30))));
        assert!(server.stopped());
        let failure = server.failure().expect("the failure is kept");
        assert_eq!(failure.to_string(), "the disk is full");
        // Nothing more is recorded: the recorder is not called again.
        let _ = request(&mut s, &sign_request(&public, b"three"));
        assert_eq!(*failing.calls.lock().expect("lock"), 2);
        assert!(server.stop(), "the owner's stop still cleans up");
        assert!(!path.exists());
        assert!(server.key_names().is_empty());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn a_reply_waiting_for_its_record_at_stop_is_written_not_cut_off() {
        // A stop while a record is being written lets that reply go out: SSH_AGENT_FAILURE
        // when the record failed, the answer when it was written, however the threads of
        // stop() and of the connection are scheduled.
        let d = crate::test_dir::fresh("agent-test");
        for round in 0..100 {
            let written = round % 2 == 0;
            let (entered_tx, entered) = mpsc::channel();
            let (go, go_rx) = mpsc::channel();
            let gate = Arc::new(Failing {
                ok: 0,
                calls: Mutex::new(0),
                gate: Some((Mutex::new(entered_tx), Mutex::new(go_rx))),
            });
            let path = d.join(format!("a{round}.sock"));
            let server = start(
                &path,
                KeySet::default(),
                Duration::from_secs(30),
                Some(gate),
            );
            let mut s = UnixStream::connect(&path).expect("connect");
            std::thread::scope(|t| {
                let client = t.spawn(move || request(&mut s, &[wire::REQUEST_IDENTITIES]));
                entered.recv().expect("the record is being written");
                let stopping = t.spawn(|| server.stop());
                assert!(server.wait(Some(Duration::from_secs(30))));
                go.send(written).expect("go");
                let reply = client
                    .join()
                    .expect("client")
                    .expect("a reply, not a close");
                if written {
                    assert_eq!(reply[0], wire::IDENTITIES_ANSWER, "round {round}");
                } else {
                    assert_eq!(reply, [wire::FAILURE], "round {round}");
                }
                assert!(stopping.join().expect("stop"));
            });
        }
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    /// Keeps every event it is given.
    #[derive(Default)]
    struct Collect(Mutex<Vec<(&'static str, Verdict, Option<String>)>>);

    impl Recorder for Collect {
        fn record(&self, e: &Event) -> Result<(), AuditError> {
            let mut v = self.0.lock().expect("lock");
            v.push((e.operation, e.result, e.reason.clone()));
            Ok(())
        }
    }

    #[test]
    fn refusal_counts_are_recorded_at_their_windows_end_without_a_new_connection() {
        // A burst of refused connections and then nothing: the count of those after the
        // first is on record within a second of the window's end, while the agent runs
        // (before: only at the next connection or at stop, and a SIGKILL lost it).
        let d = crate::test_dir::fresh("agent-test");
        let collect = Arc::new(Collect::default());
        let me = rustix::process::geteuid().as_raw();
        let config = Config {
            admission: Admission {
                allowed_uids: vec![me.wrapping_add(1)],
                max_connections: 4,
                owner_uid: me.wrapping_add(1),
            },
            frame_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(3600),
            recorder: Some(collect.clone()),
        };
        let path = d.join("a.sock");
        let socket = BoundSocket::bind(&path, 0o600).expect("bind");
        let server = Server::start(socket, config, KeySet::default(), None).expect("start");
        for _ in 0..5 {
            let mut s = UnixStream::connect(&path).expect("connect");
            // Refused: the agent closes it without a word.
            let mut b = Vec::new();
            let _ = s.read_to_end(&mut b);
        }
        // The first refusal at once, the other four in one record once the window is over:
        // waited for (on the event queue) up to a deadline that only bounds a failure.
        let deadline = Instant::now() + crate::agent::refusals::WINDOW * 6;
        let mut counts = Vec::new();
        while counts.len() < 2 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            let (events, _) = server.next_events(left, 100);
            counts.extend(
                events
                    .iter()
                    .filter(|e| e.operation == "connect")
                    .map(|e| e.count),
            );
        }
        assert_eq!(
            counts,
            [1, 4],
            "the window's count was not recorded while running"
        );
        assert!(!server.stopped());
        let recorded = collect.0.lock().expect("lock").len();
        assert_eq!(recorded, 2, "both in the recorder too");
        assert!(server.stop());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn policy_serials_only_go_forward_and_every_load_is_recorded() {
        let d = crate::test_dir::fresh("agent-test");
        let policy = |serial: u64, uses: u64| {
            Policy::parse(
                format!(
                    r#"{{"keycell_policy": 1, "serial": {serial},
                        "keys": {{"k": {{"max_uses": {uses}}}}}}}"#
                )
                .as_bytes(),
            )
            .expect("policy")
        };
        let collect = Arc::new(Collect::default());
        let config = Config {
            admission: Admission {
                allowed_uids: vec![rustix::process::geteuid().as_raw()],
                max_connections: 4,
                owner_uid: rustix::process::geteuid().as_raw(),
            },
            frame_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(3600),
            recorder: Some(collect.clone()),
        };
        let socket = BoundSocket::bind(&d.join("a.sock"), 0o600).expect("bind");
        let server =
            Server::start(socket, config, KeySet::default(), Some(policy(2, 1))).expect("start");
        assert_eq!(server.policy_serial(), Some(2));
        // An older policy, genuine or not, cannot roll the rules back.
        let err = server.set_policy(Some(policy(1, 100))).expect_err("older");
        assert_eq!(
            err,
            "serial 1 is not greater than the loaded policy's serial 2"
        );
        // The same serial: only the same rules (a reload of an unchanged file).
        assert!(server.set_policy(Some(policy(2, 1))).is_ok());
        assert!(server.set_policy(Some(policy(2, 100))).is_err());
        assert!(server.set_policy(Some(policy(3, 100))).is_ok());
        assert_eq!(server.policy_serial(), Some(3));
        assert!(server.stop());
        let seen = collect.0.lock().expect("lock").clone();
        let loaded = |n: u64| {
            (
                "policy",
                Verdict::Allowed,
                Some(format!("loaded serial {n}")),
            )
        };
        assert_eq!(seen[0], loaded(2), "recorded at start");
        assert_eq!(seen[1].1, Verdict::Refused);
        assert_eq!(seen[2], loaded(2));
        assert_eq!(seen[3].1, Verdict::Refused);
        assert_eq!(seen[4], loaded(3));
        assert_eq!(seen.len(), 5);
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
