//! The agent's listening socket: bound in a private staging directory and linked into
//! place, so that it is never reachable, even for an instant, with more permissions than
//! asked for (and without touching the process-wide umask); in a directory that is checked
//! to be a real directory owned by us (or root) and not writable by group or others; and
//! removed on shutdown only if the path still names the socket we made.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

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

/// Longest path a Unix socket can be bound or connected at (`sun_path` less its NUL).
const SUN_PATH_MAX: usize = 107;

/// A directory of mode 0700 next to the socket's final path, where the socket is bound and
/// given its mode before anyone else can reach it; removed (with anything left in it) on drop.
struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// Name of the socket inside the staging directory.
    const SOCKET: &'static str = "s";

    fn create(parent: &Path) -> Result<Staging, SocketError> {
        let mut last = None;
        for _ in 0..8 {
            let mut r = [0u8; 3];
            crate::memory::fill_random(&mut r)
                .map_err(|e| SocketError(format!("random staging name: {e}")))?;
            let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
            let dir = parent.join(format!(".kc{name}"));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Staging { dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    return Err(SocketError(format!(
                        "cannot create a staging directory in {}: {e}",
                        parent.display()
                    )))
                }
            }
        }
        Err(SocketError(format!(
            "cannot create a staging directory in {}: {}",
            parent.display(),
            last.map_or_else(String::new, |e| e.to_string())
        )))
    }

    fn socket(&self) -> PathBuf {
        self.dir.join(Self::SOCKET)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn too_long(path: &Path, extra: usize) -> SocketError {
    SocketError(format!(
        "{}: too long for a Unix socket (at most {} bytes{})",
        path.display(),
        SUN_PATH_MAX - extra,
        if extra == 0 {
            String::new()
        } else {
            format!(" in this directory, with keycell's {extra}-byte staging name")
        }
    ))
}

impl BoundSocket {
    /// Bind and listen at `path` with permissions `mode` (e.g. `0o600`).
    ///
    /// The socket is bound inside a fresh mode-0700 staging directory next to `path`,
    /// `chmod`ed to `mode` there, and hard-linked into place (`link(2)` never replaces an
    /// existing file), so it is never reachable with more permissions than `mode`. Nothing
    /// process-wide (such as the umask) changes, so threads binding or creating files at the
    /// same time are unaffected.
    pub fn bind(path: &Path, mode: u32) -> Result<BoundSocket, SocketError> {
        if mode & !0o777 != 0 {
            return Err(SocketError(format!("invalid socket mode {mode:o}")));
        }
        let euid = rustix::process::geteuid().as_raw();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        if path.as_os_str().len() > SUN_PATH_MAX {
            return Err(too_long(path, 0));
        }
        check_dir(&dir, euid)?;
        let exists = || {
            SocketError(format!(
                "{} exists: another agent may be running there; remove it if it is stale",
                path.display()
            ))
        };
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(exists());
        }
        let staging = Staging::create(&dir)?;
        let staged = staging.socket();
        if staged.as_os_str().len() > SUN_PATH_MAX {
            let extra = staged.as_os_str().len() - dir.as_os_str().len();
            return Err(too_long(&staged, extra));
        }
        let listener = UnixListener::bind(&staged)
            .map_err(|e| SocketError(format!("cannot bind {}: {e}", path.display())))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
            .map_err(|e| SocketError(format!("cannot chmod {}: {e}", path.display())))?;
        let md = std::fs::symlink_metadata(&staged)
            .map_err(|e| SocketError(format!("{}: {e}", path.display())))?;
        if !md.file_type().is_socket() || md.uid() != euid || md.mode() & 0o777 != mode {
            return Err(SocketError(format!(
                "{} is not the socket just created with mode {mode:o}",
                staged.display()
            )));
        }
        std::fs::hard_link(&staged, path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                exists()
            } else {
                SocketError(format!("cannot bind {}: {e}", path.display()))
            }
        })?;
        drop(staging);
        Ok(BoundSocket {
            listener,
            path: path.to_owned(),
            dev: md.dev(),
            ino: md.ino(),
        })
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
        let p = crate::test_dir::fresh("sock");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
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

    fn entries(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn concurrent_binds_get_their_own_modes_and_leave_the_umask_alone() {
        let d = tmpdir(0o700);
        let files = d.join("files");
        std::fs::create_dir(&files).expect("mkdir");
        let mode_of_new_file = |name: &str| {
            let p = files.join(name);
            std::fs::File::create(&p).expect("create");
            std::fs::symlink_metadata(&p).expect("md").mode() & 0o777
        };
        let baseline = mode_of_new_file("baseline");
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let creator = scope.spawn(|| {
                let mut n = 0u32;
                let mut odd = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let m = mode_of_new_file(&format!("f{n}"));
                    if m != baseline {
                        odd.push(m);
                    }
                    n += 1;
                }
                (n, odd)
            });
            let binders: Vec<_> = [0o600, 0o660, 0o666, 0o640]
                .into_iter()
                .enumerate()
                .map(|(t, mode)| {
                    let d = &d;
                    scope.spawn(move || {
                        for i in 0..40 {
                            let path = d.join(format!("t{t}-{i}.sock"));
                            let s = BoundSocket::bind(&path, mode)
                                .unwrap_or_else(|e| panic!("bind {mode:o}: {e}"));
                            let got = std::fs::symlink_metadata(&path).expect("md").mode();
                            assert_eq!(got & 0o777, mode, "{}", path.display());
                            assert!(s.remove());
                        }
                    })
                })
                .collect();
            let failed = binders.into_iter().filter_map(|b| b.join().err()).count();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let (n, odd) = creator.join().expect("creator");
            assert_eq!(failed, 0, "binder threads failed");
            assert!(n > 0);
            assert!(odd.is_empty(), "files made during binds got modes {odd:?}");
        });
        assert_eq!(
            entries(&d),
            ["files"],
            "sockets or staging directories left behind"
        );
        std::fs::remove_dir_all(&d).expect("rm");
    }

    #[test]
    fn refusals_leave_nothing_behind() {
        let d = tmpdir(0o700);
        let path = d.join("a.sock");
        let s = BoundSocket::bind(&path, 0o600).expect("bind");
        let e = BoundSocket::bind(&path, 0o600).expect_err("second bind");
        assert!(e.0.contains("exists"), "{e}");
        s.remove();
        std::os::unix::fs::symlink(d.join("nowhere"), &path).expect("symlink");
        let e = BoundSocket::bind(&path, 0o600).expect_err("dangling symlink");
        assert!(e.0.contains("exists"), "{e}");
        std::fs::remove_file(&path).expect("rm link");
        let long = d.join("x".repeat(SUN_PATH_MAX));
        let e = BoundSocket::bind(&long, 0o600).expect_err("too long");
        assert!(e.0.contains("too long"), "{e}");
        // Fits as a final path but not with the staging directory's name in it.
        let deep = d.join("n".repeat(100 - d.as_os_str().len() - 1));
        std::fs::create_dir(&deep).expect("mkdir deep");
        let e = BoundSocket::bind(&deep.join("a"), 0o600).expect_err("staging too long");
        assert!(e.0.contains("staging name"), "{e}");
        assert!(
            entries(&deep).is_empty(),
            "left behind: {:?}",
            entries(&deep)
        );
        std::fs::remove_dir(&deep).expect("rmdir deep");
        assert!(BoundSocket::bind(&d.join("z.sock"), 0o1600).is_err());
        assert!(entries(&d).is_empty(), "left behind: {:?}", entries(&d));
        std::fs::remove_dir_all(&d).expect("rm");
    }
}
