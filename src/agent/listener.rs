//! The accept thread: takes each connection, checks the peer (`SO_PEERCRED`,
//! [`super::peer`]) and the connection cap before anything is read, and starts one thread
//! per admitted connection ([`super::connection::serve`]), so a slow client stalls nobody
//! but itself. Refusals are recorded aggregated ([`super::refusals`]): a flood of refused
//! connections costs a record per uid per 10 s, and the accept thread goes on taking the
//! allowed peers' connections. [`Connections`] keeps the streams and threads for the stop.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::net::Shutdown;

use super::connection::{self, Session};
use super::event::{Event, Verdict};
use super::peer::Peer;
use super::refusals::Refusals;
use super::socket::BoundSocket;

/// Who may connect, and how many at once.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Uids allowed to connect.
    pub allowed_uids: Vec<u32>,
    /// Most connections served at once; more are closed at once (and recorded).
    pub max_connections: usize,
}

/// The open connections and their threads.
#[derive(Default)]
pub struct Connections {
    inner: Mutex<Conns>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Conns {
    streams: HashMap<u64, UnixStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, Conns> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shut every connection down and join every thread.
    pub fn close_all(&self) {
        let threads = {
            let mut conns = self.lock();
            for s in conns.streams.values() {
                let _ = rustix::net::shutdown(s, Shutdown::Both);
            }
            std::mem::take(&mut conns.threads)
        };
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Accept on `socket` until the agent stops.
pub fn accept_loop(
    socket: &BoundSocket,
    admission: &Admission,
    session: &Arc<Session>,
    conns: &Arc<Connections>,
) {
    let mut refusals = Refusals::default();
    loop {
        let accepted = socket.listener.accept();
        if session.stop.is_set() {
            break;
        }
        for e in refusals.flush(Some(Instant::now())) {
            session.journal.record(e);
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
        let id = conns.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        session.stats.connections.fetch_add(1, Ordering::Relaxed);
        if !admission.allowed_uids.contains(&peer.uid) {
            refuse(
                session,
                &mut refusals,
                &peer,
                id,
                "uid not allowed to connect",
            );
            continue;
        }
        let mut c = conns.lock();
        c.threads.retain(|t| !t.is_finished());
        if c.streams.len() >= admission.max_connections {
            drop(c);
            refuse(session, &mut refusals, &peer, id, "too many connections");
            continue;
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        c.streams.insert(id, clone);
        let (s, registry) = (session.clone(), conns.clone());
        match std::thread::Builder::new()
            .name("keycell-agent-conn".to_owned())
            .spawn(move || {
                connection::serve(&s, stream, &peer, id);
                registry.lock().streams.remove(&id);
            }) {
            Ok(t) => c.threads.push(t),
            Err(_) => {
                c.streams.remove(&id);
            }
        }
    }
    // What the windows still count is recorded before the agent's stop goes on.
    for e in refusals.flush(None) {
        session.journal.record(e);
    }
}

/// A refused connection (it is closed when its stream is dropped), to be recorded
/// aggregated.
fn refuse(session: &Session, refusals: &mut Refusals, peer: &Peer, id: u64, reason: &'static str) {
    session.stats.refused.fetch_add(1, Ordering::Relaxed);
    let e = Event::of(peer, id, "connect", Verdict::Refused).because(reason);
    for e in refusals.refused(e, reason, Instant::now()) {
        session.journal.record(e);
    }
}
