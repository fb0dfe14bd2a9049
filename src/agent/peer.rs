//! Who is at the other end of a connection: the kernel's credentials of the peer process
//! (`SO_PEERCRED`: uid, gid and pid as of `connect()`), and a pidfd of that process
//! (`SO_PEERPIDFD`, Linux >= 6.5) that pins it, so an audit record's pid can be checked
//! against pid reuse. Where the kernel has no `SO_PEERPIDFD` the pid is the bare number
//! from `SO_PEERCRED`, and [`Peer::pidfd_errno`] says why.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// The credentials of a connected peer.
#[derive(Debug)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    pidfd: Option<OwnedFd>,
    /// Why no pidfd was taken (`None` when the process is pinned).
    pub pidfd_errno: Option<i32>,
}

impl Peer {
    /// The peer of `stream`.
    pub fn of(stream: &UnixStream) -> std::io::Result<Peer> {
        let cred = rustix::net::sockopt::socket_peercred(stream)?;
        let (pidfd, pidfd_errno) = match crate::sys::peer_pidfd(stream.as_fd()) {
            Ok(fd) => (Some(fd), None),
            Err(e) => (None, Some(e)),
        };
        Ok(Peer {
            uid: cred.uid.as_raw(),
            gid: cred.gid.as_raw(),
            pid: cred.pid.as_raw_pid(),
            pidfd,
            pidfd_errno,
        })
    }

    /// Whether the process is pinned by a pidfd.
    pub fn pinned(&self) -> bool {
        self.pidfd.is_some()
    }

    /// Whether the pinned process has exited (its pid may then belong to another process
    /// already); `None` without a pidfd (unknown).
    pub fn exited(&self) -> Option<bool> {
        let fd = self.pidfd.as_ref()?;
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match poll(&mut fds, Some(&zero)) {
            Ok(n) => Some(n > 0),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_of_a_socket_pair() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let p = Peer::of(&a).expect("peer");
        assert_eq!(p.uid, rustix::process::geteuid().as_raw());
        assert_eq!(p.pid, std::process::id() as i32);
        if p.pinned() {
            assert_eq!(p.exited(), Some(false));
        } else {
            assert!(p.pidfd_errno.is_some());
        }
    }
}
