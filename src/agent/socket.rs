//! The agent's listening socket: created under a `umask` so that it never exists, even
//! for an instant, with more permissions than asked for; in a directory that is checked
//! to be a real directory owned by us (or root) and not writable by group or others; and
//! removed on shutdown only if the path still names the socket we made.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use rustix::fs::Mode;

/// Why the socket could not be created.
#[derive(Debug)]
pub struct SocketError(pub String);

impl std::fmt::Display for SocketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bound, listening socket and the identity of its file.
#[derive(Debug)]
pub struct BoundSocket {
    pub listener: UnixListener,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

fn check_dir(dir: &Path, euid: u32) -> Result<(), SocketError> {
    let md = std::fs::symlink_metadata(dir)
        .map_err(|e| SocketError(format!("socket directory {}: {e}", dir.display())))?;
    if !md.file_type().is_dir() {
        return Err(SocketError(format!(
            "socket directory {} is not a directory (symlinks are refused)",
            dir.display()
        )));
    }
    if md.uid() != euid && md.uid() != 0 {
        return Err(SocketError(format!(
            "socket directory {} is owned by uid {}, not by this user or root",
            dir.display(),
            md.uid()
        )));
    }
    if md.mode() & 0o022 != 0 {
        return Err(SocketError(format!(
            "socket directory {} is writable by group or others (mode {:o}): another user \
             could replace the socket; use a private directory (mode 0700)",
            dir.display(),
            md.mode() & 0o7777
        )));
    }
    Ok(())
}

impl BoundSocket {
    /// Bind and listen at `path` with permissions `mode` (e.g. `0o600`).
    pub fn bind(path: &Path, mode: u32) -> Result<BoundSocket, SocketError> {
        if mode & !0o777 != 0 {
            return Err(SocketError(format!("invalid socket mode {mode:o}")));
        }
        let euid = rustix::process::geteuid().as_raw();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        check_dir(&dir, euid)?;
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(SocketError(format!(
                "{} exists: another agent may be running there; remove it if it is stale",
                path.display()
            )));
        }
        // The umask is process-wide: bind before starting threads that create files.
        let old = rustix::process::umask(Mode::from_raw_mode(!mode & 0o777));
        let bound = UnixListener::bind(path);
        rustix::process::umask(old);
        let listener =
            bound.map_err(|e| SocketError(format!("cannot bind {}: {e}", path.display())))?;
        let md = std::fs::symlink_metadata(path)
            .map_err(|e| SocketError(format!("{}: {e}", path.display())))?;
        let mine = BoundSocket {
            listener,
            path: path.to_owned(),
            dev: md.dev(),
            ino: md.ino(),
        };
        if !md.file_type().is_socket() || md.uid() != euid || md.mode() & 0o777 != mode {
            mine.remove();
            return Err(SocketError(format!(
                "{} is not the socket just created with mode {mode:o}",
                path.display()
            )));
        }
        Ok(mine)
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the socket file, if the path still names it. Returns whether it did.
    pub fn remove(&self) -> bool {
        match std::fs::symlink_metadata(&self.path) {
            Ok(md) if md.dev() == self.dev && md.ino() == self.ino => {
                std::fs::remove_file(&self.path).is_ok()
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(mode: u32) -> PathBuf {
        let mut r = [0u8; 8];
        crate::memory::fill_random(&mut r).expect("random");
        let p = std::env::temp_dir().join(format!(
            "keycell-sock-{}",
            r.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        std::fs::create_dir(&p).expect("mkdir");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .expect("chmod");
        p
    }

    #[test]
    fn bind_checks_and_removes() {
        let d = tmpdir(0o700);
        let path = d.join("agent.sock");
        let s = BoundSocket::bind(&path, 0o600).expect("bind");
        let md = std::fs::symlink_metadata(&path).expect("md");
        assert_eq!(md.mode() & 0o777, 0o600);
        assert!(BoundSocket::bind(&path, 0o600).is_err());
        assert!(s.remove());
        assert!(!path.exists());
        let s = BoundSocket::bind(&path, 0o660).expect("bind 660");
        assert_eq!(
            std::fs::symlink_metadata(&path).expect("md").mode() & 0o777,
            0o660
        );
        s.remove();
        let open = tmpdir(0o777);
        assert!(BoundSocket::bind(&open.join("a.sock"), 0o600).is_err());
        std::fs::remove_dir_all(&d).expect("rm");
        std::fs::remove_dir_all(&open).expect("rm");
    }
}
