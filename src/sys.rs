//! Raw system calls that are not about memory, in one place: `unsafe` is allowed here (as in
//! `crate::memory` and the buffer-protocol glue of the bindings), every block with its
//! `SAFETY` argument, so the layers above (files, the agent) need none. Calls that `rustix`
//! already wraps safely (`geteuid`, `SO_PEERCRED`, `flock`, `fcntl` locks, `poll`) are
//! called through it where they are used; only what it lacks is written here:
//!
//! - [`peer_pidfd`]: `SO_PEERPIDFD`, a pidfd of a Unix socket's peer (the agent's
//!   `agent/peer.rs`). `rustix` 1.1 has no option for it, so it is a raw `getsockopt`.
//! - [`keyctl_describe`]: `KEYCTL_DESCRIBE`'s raw string, which `linux-keyutils` only
//!   hands out split on every `;` (so a description containing one came back cut).

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A pidfd of the process at the other end of a connected Unix socket (`SO_PEERPIDFD`,
/// Linux >= 6.5): it pins that process, so a pid reused after the peer exits is never
/// mistaken for it. `Err(errno)` where the kernel lacks it (`ENOPROTOOPT`) or the call
/// fails; the caller falls back to the pid of `SO_PEERCRED` and says so.
pub fn peer_pidfd(socket: BorrowedFd<'_>) -> Result<OwnedFd, i32> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` and `len` are valid, writable locals of the sizes passed; the socket
    // descriptor is borrowed and stays open for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    if fd < 0 || len as usize != std::mem::size_of::<libc::c_int>() {
        return Err(libc::EINVAL);
    }
    // SAFETY: on success the kernel installed a new descriptor `fd` in our table that
    // nothing else owns; the OwnedFd takes sole ownership and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The raw `KEYCTL_DESCRIBE` string of key `serial` (`type;uid;gid;perm;description`,
/// without its NUL), or the errno.
pub fn keyctl_describe(serial: i32) -> Result<Vec<u8>, i32> {
    const KEYCTL_DESCRIBE: libc::c_long = 6;
    let mut buf = vec![0u8; 512];
    loop {
        // SAFETY: `buf` is a live, writable allocation of `buf.len()` bytes for the whole
        // call; the kernel writes at most that many bytes into it and returns the full
        // length the description needs (NUL included).
        let n = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_DESCRIBE,
                libc::c_long::from(serial),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        let n = n as usize;
        if n <= buf.len() {
            buf.truncate(n.saturating_sub(1)); // the NUL
            return Ok(buf);
        }
        buf.resize(n, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn peer_pidfd_pins_this_process_or_says_why_not() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        match peer_pidfd(a.as_fd()) {
            Ok(fd) => {
                // The pidfd names this process: its fdinfo's `Pid:` line is our pid.
                let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
                    .expect("fdinfo");
                let pid = format!("Pid:\t{}", std::process::id());
                assert!(info.lines().any(|l| l == pid), "{info}");
            }
            Err(errno) => assert_eq!(errno, libc::ENOPROTOOPT),
        }
        // Not a socket: an error, never a descriptor.
        let f = std::fs::File::open("/dev/null").expect("open");
        assert_eq!(peer_pidfd(f.as_fd()).err(), Some(libc::ENOTSOCK));
    }
}
