//! The accept thread: takes each connection, checks the peer (`SO_PEERCRED`,
//! [`super::peer`]) and the connection caps ([`Admission::admits`]: in all, per uid, and
//! room kept for the agent's own uid) before anything is read, and starts one thread per
//! admitted connection ([`super::connection::serve`]), so a slow client stalls nobody but
//! itself. Refusals are recorded aggregated ([`super::refusals`]): a flood of refused
//! connections costs a record per uid per 10 s, and the accept thread goes on taking the
//! allowed peers' connections. It waits for connections at most [`FLUSH_EVERY`] at a time,
//! so the counts of refusals are on record within that of their window's end even when no
//! connection comes (a SIGKILL then loses at most the counts of the last window).
//! [`Connections`] keeps the streams and threads for the stop.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::net::Shutdown;

use super::connection::{self, Session};
use super::event::{Event, Verdict};
use super::peer::Peer;
use super::refusals::Refusals;
use super::socket::BoundSocket;

/// How long the accept thread waits for a connection before it looks at the refusal
/// windows (and the stop flag) again.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Who may connect, and how many at once.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Uids allowed to connect.
    pub allowed_uids: Vec<u32>,
    /// Most connections served at once; more are closed at once (and recorded).
    pub max_connections: usize,
    /// The agent's own uid, which always has room: connections of other uids leave
    /// [`Admission::per_uid`] slots free for it.
    pub owner_uid: u32,
}

/// Why a connection of an allowed uid is not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every slot is taken (or every slot that other uids may take).
    Agent,
    /// This uid holds its quota.
    Uid,
}

impl Full {
    /// The reason recorded.
    pub fn reason(self) -> &'static str {
        match self {
            Full::Agent => "too many connections",
            Full::Uid => "too many connections from this uid",
        }
    }
}

impl Admission {
    /// The most connections one uid other than the agent's own may hold at once: a quarter
    /// of `max_connections`, at least 1.
    pub fn per_uid(&self) -> usize {
        (self.max_connections / 4).max(1)
    }

    /// Whether a new connection of `uid` is admitted while `open` connections are served,
    /// `of_uid` of them this uid's and `of_owner` the agent's own uid's. The agent's own
    /// uid may take every slot; another uid holds at most [`Self::per_uid`], and other uids
    /// together leave that many slots (at least one; with `max_connections = 1` the only one)
    /// for the agent's own,
    /// so one peer holding every connection it can get never locks the owner out.
    pub fn admits(
        &self,
        uid: u32,
        open: usize,
        of_uid: usize,
        of_owner: usize,
    ) -> Result<(), Full> {
        if open >= self.max_connections {
            return Err(Full::Agent);
        }
        if uid == self.owner_uid {
            return Ok(());
        }
        if of_uid >= self.per_uid() {
            return Err(Full::Uid);
        }
        // At least one slot, even when that is every slot (max_connections = 1: only the
        // agent's own uid is served).
        let reserve = self.per_uid();
        if open.saturating_sub(of_owner) >= self.max_connections - reserve {
            return Err(Full::Agent);
        }
        Ok(())
    }
}

/// The open connections and their threads.
#[derive(Default)]
pub struct Connections {
    inner: Mutex<Conns>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Conns {
    /// Each open connection's stream and peer uid.
    streams: HashMap<u64, (UnixStream, u32)>,
    threads: Vec<JoinHandle<()>>,
}

impl Conns {
    /// How many open connections are `uid`'s.
    fn of_uid(&self, uid: u32) -> usize {
        self.streams.values().filter(|(_, u)| *u == uid).count()
    }
}

/// A served connection's slot: released when its thread ends, however it ends (a panic
/// in the connection's code unwinds through this drop and frees the slot too).
struct Slot {
    registry: Arc<Connections>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.lock().streams.remove(&self.id);
    }
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, Conns> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shut every connection down and join every thread.
    pub fn close_all(&self) {
        let threads = {
            let mut conns = self.lock();
            for (s, _) in conns.streams.values() {
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
        let ready = wait_readable(socket, FLUSH_EVERY);
        if session.stop.is_set() {
            break;
        }
        for e in refusals.flush(Some(Instant::now())) {
            session.journal.record(e);
        }
        if !ready {
            continue;
        }
        let stream = match socket.listener.accept() {
            Ok((s, _)) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) =>
            {
                continue
            }
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
        let (of_uid, of_owner) = (c.of_uid(peer.uid), c.of_uid(admission.owner_uid));
        if let Err(full) = admission.admits(peer.uid, c.streams.len(), of_uid, of_owner) {
            drop(c);
            refuse(session, &mut refusals, &peer, id, full.reason());
            continue;
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        c.streams.insert(id, (clone, peer.uid));
        let (s, registry) = (session.clone(), conns.clone());
        match std::thread::Builder::new()
            .name("keycell-agent-conn".to_owned())
            .spawn(move || {
                let _slot = Slot { registry, id };
                connection::serve(&s, stream, &peer, id);
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

/// Wait up to `timeout` for a connection to accept (or the listening socket shut down by
/// the stop); whether one may be there.
fn wait_readable(socket: &BoundSocket, timeout: Duration) -> bool {
    let t = Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    let mut fds = [PollFd::new(&socket.listener, PollFlags::IN)];
    match poll(&mut fds, Some(&t)) {
        Ok(n) => n > 0,
        // Interrupted: look at the stop flag and the windows, then wait again.
        Err(_) => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_uid_cannot_take_the_owners_room() {
        let a = Admission {
            allowed_uids: vec![1000, 65534],
            max_connections: 8,
            owner_uid: 1000,
        };
        assert_eq!(a.per_uid(), 2);
        // A peer uid holds at most its quota.
        assert_eq!(a.admits(65534, 0, 0, 0), Ok(()));
        assert_eq!(a.admits(65534, 2, 2, 0), Err(Full::Uid));
        // Other uids together leave the owner's share free: 6 of 8 taken by others.
        assert_eq!(a.admits(7, 5, 0, 0), Ok(()));
        assert_eq!(a.admits(7, 6, 0, 0), Err(Full::Agent));
        // The owner gets in then, up to every slot.
        assert_eq!(a.admits(1000, 6, 0, 0), Ok(()));
        assert_eq!(a.admits(1000, 7, 1, 1), Ok(()));
        assert_eq!(a.admits(1000, 8, 2, 2), Err(Full::Agent));
        // With the owner's connections open, others count only their own.
        assert_eq!(a.admits(7, 7, 0, 2), Ok(()));
        assert_eq!(a.admits(7, 7, 0, 1), Err(Full::Agent));
        // One slot in all: the agent's own uid's; no other uid can take it.
        let one = Admission {
            max_connections: 1,
            ..a.clone()
        };
        assert_eq!(one.admits(65534, 0, 0, 0), Err(Full::Agent));
        assert_eq!(one.admits(1000, 0, 0, 0), Ok(()));
        assert_eq!(one.admits(1000, 1, 1, 1), Err(Full::Agent));
    }
}
