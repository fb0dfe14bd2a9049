//! How far a secret file's location is trusted ([`Trust`]), and the opening of a file
//! where a platform put it (`trust="mount"`: Kubernetes secret volumes, Docker secrets;
//! systemd credentials).
//!
//! [`Trust::Owner`] is the rule every key file has always had ([`super::PrivateFile`]): no
//! symlink, owned by this user, no group or other access. Platforms write secrets that
//! break it on purpose: Docker's are mode 0444 and owned by root, Kubernetes' are 0644 and
//! reached through its atomic writer's links (`dir/name -> ..data/name`, `dir/..data ->
//! ..<timestamp>`, in a directory `drwxrwxrwt root`). [`Trust::Mount`] accepts such a file
//! only where nobody but root or this user can change what is read, judged by ownership
//! and modes alone:
//!
//! - the named directory, every directory reached below it, every symbolic link followed
//!   and the file itself are owned by root or by this process's effective uid (never by
//!   the overflow uid, `/proc/sys/kernel/overflowuid`, 65534 by default: in a user
//!   namespace every unmapped owner shows as it, so it stands for "someone else" even when
//!   this process runs as it);
//! - a directory writable by group or others is accepted only with the sticky bit: then
//!   nobody else can rename or replace the entries in it, which are all owned by root or
//!   this user;
//! - links are followed only inside that directory: a link's target must be relative and
//!   must not contain `..` (so it cannot climb out), and at most [`MAX_LINKS`] are followed;
//! - the file is regular and its mode at most 0644 (no write or execute bit for group or
//!   others, no set-id or sticky bit).
//!
//! A read-only mount is neither checked nor relied on: any user can make one with contents
//! of their choosing in a user namespace, and a read-only bind mount says nothing about
//! who can write the directory underneath.
//!
//! Every step opens one component with `openat(dirfd, name, O_NOFOLLOW)` from the
//! descriptor of the directory checked before it, and every check is an `fstat` of an
//! open descriptor (an `fstatat(AT_SYMLINK_NOFOLLOW)` of a link in a directory already
//! checked, before its target is read): what is checked is what is read, and nothing is
//! resolved twice.
//!
//! [`Trust::Credential`] is systemd's layout (`$CREDENTIALS_DIRECTORY`): the directory is
//! owned by root or this user (not the overflow uid) and read-only (a read-only mount, or
//! no write bit in its mode), the file sits directly in it (no link is followed), with the
//! file rules above (owner and mode).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, StatVfsMountFlags};
use rustix::io::Errno;

use super::error::FileError;

/// How far a secret file's location is trusted (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Trust {
    /// No symlink, owned by this user, no group or other access (every key file's rule).
    #[default]
    Owner,
    /// A file on a platform's secret mount (Kubernetes, Docker): see the module docs.
    Mount,
    /// A systemd credential: see the module docs.
    Credential,
}

impl Trust {
    /// The trust named `name` as the Python API spells it ("owner", "mount").
    pub fn from_name(name: &str) -> Option<Trust> {
        match name {
            "owner" => Some(Trust::Owner),
            "mount" => Some(Trust::Mount),
            _ => None,
        }
    }
}

/// A secret file's path and how far its location is trusted. A bare path is
/// [`Trust::Owner`].
#[derive(Debug, Clone, Copy)]
pub struct SecretPath<'a> {
    /// The path the caller gave.
    pub path: &'a Path,
    /// How far its location is trusted.
    pub trust: Trust,
}

impl<'a> SecretPath<'a> {
    /// `path` with the given trust.
    pub fn new(path: &'a Path, trust: Trust) -> Self {
        SecretPath { path, trust }
    }
}

impl<'a> From<&'a Path> for SecretPath<'a> {
    fn from(path: &'a Path) -> Self {
        SecretPath::new(path, Trust::Owner)
    }
}

impl<'a> From<&'a std::path::PathBuf> for SecretPath<'a> {
    fn from(path: &'a std::path::PathBuf) -> Self {
        SecretPath::new(path, Trust::Owner)
    }
}

/// The most symbolic links followed (Kubernetes' atomic writer needs two).
pub const MAX_LINKS: usize = 8;

/// Open `path` for reading under [`Trust::Mount`] or [`Trust::Credential`]: the
/// directories and links on the way are checked here; the caller checks the file with
/// [`check_platform_file`].
pub(super) fn open_platform_file(path: &Path, trust: Trust) -> Result<File, FileError> {
    let (dir_path, name) = split(path)?;
    let mut dir = open_dir(dir_path)?;
    check_dir(&dir, dir_path, trust)?;
    let mut pending = VecDeque::from([name]);
    let mut links = 0usize;
    while let Some(component) = pending.pop_front() {
        let last = pending.is_empty();
        let flags = OFlags::RDONLY
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NOCTTY
            | OFlags::NONBLOCK
            | if last {
                OFlags::empty()
            } else {
                OFlags::DIRECTORY
            };
        match rustix::fs::openat(&dir, component.as_os_str(), flags, Mode::empty()) {
            Ok(fd) if last => return Ok(File::from(fd)),
            Ok(fd) => {
                check_dir(&fd, Path::new(&component), trust)?;
                dir = fd;
            }
            Err(Errno::LOOP | Errno::NOTDIR) => {
                let target = read_link(&dir, &component, last)?;
                if trust == Trust::Credential {
                    return Err(FileError::Insecure(
                        "it is a symbolic link (credentials are opened with O_NOFOLLOW)".to_owned(),
                    ));
                }
                check_link_owner(&dir, &component)?;
                links += 1;
                if links > MAX_LINKS {
                    return Err(FileError::Insecure(format!(
                        "it is reached through more than {MAX_LINKS} symbolic links"
                    )));
                }
                for (i, part) in link_components(&component, &target)?
                    .into_iter()
                    .enumerate()
                {
                    pending.insert(i, part);
                }
            }
            Err(e) => {
                return Err(FileError::io(
                    "cannot open",
                    &std::io::Error::from_raw_os_error(e.raw_os_error()),
                ))
            }
        }
    }
    Err(FileError::Insecure(
        "its symbolic links lead to no file".to_owned(),
    ))
}

/// The directory part of `path` (`.` when there is none) and its last component, which
/// must be a name (not `..`, `.` or `/`).
fn split(path: &Path) -> Result<(&Path, OsString), FileError> {
    match path.components().next_back() {
        Some(Component::Normal(name)) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
            Ok((dir.unwrap_or(Path::new(".")), name.to_owned()))
        }
        _ => Err(FileError::Insecure(
            "it does not end in a file name".to_owned(),
        )),
    }
}

/// Open the directory `dir` (the caller's choice of directory: links in it are followed
/// as by any open; what is below it is checked component by component).
fn open_dir(dir: &Path) -> Result<OwnedFd, FileError> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        FileError::io(
            "cannot open its directory",
            &std::io::Error::from_raw_os_error(e.raw_os_error()),
        )
    })
}

/// The target of the link `name` in `dir`; a component that is not a link where a
/// directory was needed is reported as such.
fn read_link(dir: &OwnedFd, name: &OsString, last: bool) -> Result<Vec<u8>, FileError> {
    match rustix::fs::readlinkat(dir, name.as_os_str(), Vec::new()) {
        Ok(target) => Ok(target.into_bytes()),
        Err(Errno::INVAL) if !last => Err(FileError::Unusable {
            reason: format!("{:?} on its path is not a directory", name),
            errno: Some(libc::ENOTDIR),
        }),
        Err(e) => Err(FileError::io(
            "cannot read a symbolic link on its path",
            &std::io::Error::from_raw_os_error(e.raw_os_error()),
        )),
    }
}

/// The components of the link `name`'s `target`, which must stay inside the directory
/// that holds the link: relative, without `..`.
fn link_components(name: &OsString, target: &[u8]) -> Result<Vec<OsString>, FileError> {
    let target = Path::new(std::ffi::OsStr::from_bytes(target));
    let mut parts = Vec::new();
    for c in target.components() {
        match c {
            Component::Normal(part) => parts.push(part.to_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(FileError::Insecure(format!(
                    "the symbolic link {name:?} leaves its directory through \"..\" \
                     (trust=\"mount\" follows links inside the directory only)"
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(FileError::Insecure(format!(
                    "the symbolic link {name:?} points to an absolute path \
                     (trust=\"mount\" follows links inside the directory only)"
                )))
            }
        }
    }
    if parts.is_empty() {
        return Err(FileError::Insecure(format!(
            "the symbolic link {name:?} points to its own directory"
        )));
    }
    Ok(parts)
}

/// Is the open file or directory `fd` on a read-only mount?
fn on_read_only_mount(fd: impl AsFd) -> Result<bool, FileError> {
    let st = rustix::fs::fstatvfs(fd).map_err(|e| {
        FileError::io(
            "fstatvfs failed",
            &std::io::Error::from_raw_os_error(e.raw_os_error()),
        )
    })?;
    Ok(st.f_flag.contains(StatVfsMountFlags::RDONLY))
}

/// `fstat` of an open descriptor: (owner, mode).
fn owner_and_mode(fd: impl AsFd) -> Result<(u32, u32), FileError> {
    let st = rustix::fs::fstat(fd).map_err(|e| {
        FileError::io(
            "fstat failed",
            &std::io::Error::from_raw_os_error(e.raw_os_error()),
        )
    })?;
    Ok((st.st_uid, st.st_mode))
}

/// The overflow uid: the owner every unmapped uid shows as in a user namespace
/// (`/proc/sys/kernel/overflowuid`, 65534 when it cannot be read).
fn overflow_uid() -> u32 {
    static UID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/overflowuid")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65534)
    })
}

/// Root or this process's effective user, and never the overflow uid (which stands for
/// any owner not mapped into this user namespace, even when this process runs as it).
fn trusted_owner(uid: u32) -> bool {
    uid != overflow_uid() && (uid == 0 || uid == rustix::process::geteuid().as_raw())
}

/// Why `uid` is not a trusted owner, for messages.
fn untrusted_owner(uid: u32) -> String {
    let euid = rustix::process::geteuid().as_raw();
    if uid == overflow_uid() {
        format!(
            "uid {uid}, the overflow uid, which is never trusted (in a user namespace every \
             owner not mapped into it shows as this uid)"
        )
    } else {
        format!("uid {uid}, not by root or this process's uid {euid}")
    }
}

/// Refuse the symbolic link `name` in `dir` unless it is owned by root or this user.
fn check_link_owner(dir: &OwnedFd, name: &OsString) -> Result<(), FileError> {
    let st = rustix::fs::statat(dir, name.as_os_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| {
            FileError::io(
                "cannot stat a symbolic link on its path",
                &std::io::Error::from_raw_os_error(e.raw_os_error()),
            )
        })?;
    if !trusted_owner(st.st_uid) {
        return Err(FileError::Insecure(format!(
            "the symbolic link {name:?} on its path is owned by {}",
            untrusted_owner(st.st_uid)
        )));
    }
    Ok(())
}

/// Refuse a directory on the way that someone but root or this user could change: one
/// owned by another user, or writable by group or others without the sticky bit; under
/// [`Trust::Credential`], one owned by another user or not read-only (mount or mode).
fn check_dir(fd: &OwnedFd, shown: &Path, trust: Trust) -> Result<(), FileError> {
    let (uid, mode) = owner_and_mode(fd)?;
    if trust == Trust::Credential {
        if !trusted_owner(uid) {
            return Err(FileError::Insecure(format!(
                "the credentials directory is owned by {}",
                untrusted_owner(uid)
            )));
        }
        if mode & 0o222 != 0 && !on_read_only_mount(fd)? {
            return Err(FileError::Insecure(format!(
                "the credentials directory is writable (mode {:04o}, not on a read-only \
                 mount), which systemd never makes it",
                mode & 0o7777
            )));
        }
        return Ok(());
    }
    if !trusted_owner(uid) {
        return Err(FileError::Insecure(format!(
            "the directory {shown:?} on its path is owned by {}",
            untrusted_owner(uid)
        )));
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(FileError::Insecure(format!(
            "the directory {shown:?} on its path is writable by group or others without \
             the sticky bit (mode {:04o}): its entries could be renamed or replaced",
            mode & 0o7777
        )));
    }
    Ok(())
}

/// The file rules of [`Trust::Mount`] and [`Trust::Credential`] on the open file: mode
/// at most 0644 and owned by root or this user (not the overflow uid). (The caller has
/// checked that it is a regular file.)
pub(super) fn check_platform_file(file: &File) -> Result<(), FileError> {
    let (uid, mode) = owner_and_mode(file)?;
    let mode = mode & 0o7777;
    if mode & !0o644 != 0 {
        return Err(FileError::Insecure(format!(
            "its permissions {mode:04o} go beyond 0644 (a platform's secret file may be \
             written by its owner only and executed by nobody)"
        )));
    }
    if !trusted_owner(uid) {
        return Err(FileError::Insecure(format!(
            "it is owned by {}",
            untrusted_owner(uid)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::PrivateFile;
    use crate::test_dir::write_file as write;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn read(path: &Path, trust: Trust) -> Result<Vec<u8>, FileError> {
        let mut f = PrivateFile::open_trusted(SecretPath::new(path, trust), 1024)?;
        let mut out = vec![0u8; f.size()];
        f.read_into(&mut out)?;
        Ok(out)
    }

    fn insecure(r: Result<Vec<u8>, FileError>) -> String {
        match r {
            Err(FileError::Insecure(m)) => m,
            other => panic!("expected Insecure, got {other:?}"),
        }
    }

    /// Kubernetes' atomic writer: `dir/name -> ..data/name`, `dir/..data -> ..<ts>`, the
    /// file 0644 in `..<ts>`.
    fn kubernetes_layout(d: &Path) -> std::path::PathBuf {
        let vol = d.join("vol");
        std::fs::create_dir(&vol).expect("mkdir");
        std::fs::create_dir(vol.join("..2026_12_08_01_00_00.123")).expect("mkdir");
        write(
            &vol.join("..2026_12_08_01_00_00.123/api-key"),
            b"0123456789abcdef",
            0o644,
        );
        symlink("..2026_12_08_01_00_00.123", vol.join("..data")).expect("symlink");
        symlink("..data/api-key", vol.join("api-key")).expect("symlink");
        vol
    }

    #[test]
    fn kubernetes_layout_is_read_under_mount_trust_only() {
        let d = crate::test_dir::fresh("trust-k8s");
        let vol = kubernetes_layout(&d);
        assert_eq!(
            read(&vol.join("api-key"), Trust::Mount).expect("mount"),
            b"0123456789abcdef"
        );
        assert!(insecure(read(&vol.join("api-key"), Trust::Owner)).contains("symbolic link"));
        // The file itself, 0644, is refused by the owner rule and read under mount trust.
        let direct = vol.join("..data/api-key");
        assert!(read(&direct, Trust::Mount).is_ok());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn links_out_of_the_directory_are_refused() {
        let d = crate::test_dir::fresh("trust-escape");
        let vol = kubernetes_layout(&d);
        write(&d.join("outside"), b"0123456789abcdef", 0o600);
        symlink("../outside", vol.join("dotdot")).expect("symlink");
        assert!(insecure(read(&vol.join("dotdot"), Trust::Mount)).contains("\"..\""));
        symlink(d.join("outside"), vol.join("absolute")).expect("symlink");
        assert!(insecure(read(&vol.join("absolute"), Trust::Mount)).contains("absolute"));
        // `..` hidden behind a link inside the directory is refused the same way.
        symlink("..", vol.join("up")).expect("symlink");
        symlink("up/outside", vol.join("via-up")).expect("symlink");
        assert!(insecure(read(&vol.join("via-up"), Trust::Mount)).contains("\"..\""));
        // A loop of links stops at the limit.
        symlink("loop-b", vol.join("loop-a")).expect("symlink");
        symlink("loop-a", vol.join("loop-b")).expect("symlink");
        assert!(insecure(read(&vol.join("loop-a"), Trust::Mount)).contains("more than"));
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn writable_directories_and_loose_files_are_refused() {
        let d = crate::test_dir::fresh("trust-dirs");
        let vol = kubernetes_layout(&d);
        let set = |p: &Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        // The volume directory writable by others: its links could be swapped.
        set(&vol, 0o777);
        assert!(insecure(read(&vol.join("api-key"), Trust::Mount)).contains("writable"));
        set(&vol, 0o755);
        // A directory reached through a link, group-writable.
        let ts = vol.join("..2026_12_08_01_00_00.123");
        set(&ts, 0o775);
        assert!(insecure(read(&vol.join("api-key"), Trust::Mount)).contains("writable"));
        set(&ts, 0o755);
        assert!(read(&vol.join("api-key"), Trust::Mount).is_ok());
        // Modes beyond 0644: group-writable, executable, set-uid.
        for mode in [0o664, 0o646, 0o744, 0o4644, 0o755] {
            set(&ts.join("api-key"), mode);
            assert!(
                insecure(read(&vol.join("api-key"), Trust::Mount)).contains("0644"),
                "{mode:o}"
            );
        }
        for mode in [0o644, 0o444, 0o440, 0o400, 0o600] {
            set(&ts.join("api-key"), mode);
            assert!(read(&vol.join("api-key"), Trust::Mount).is_ok(), "{mode:o}");
        }
        // Not a regular file, a missing file, a non-directory on the way.
        assert!(insecure(read(&ts, Trust::Mount)).contains("directory"));
        assert!(matches!(
            read(&vol.join("missing"), Trust::Mount),
            Err(FileError::Unusable {
                errno: Some(libc::ENOENT),
                ..
            })
        ));
        symlink("..data/api-key/x", vol.join("through-file")).expect("symlink");
        assert!(matches!(
            read(&vol.join("through-file"), Trust::Mount),
            Err(FileError::Unusable {
                errno: Some(libc::ENOTDIR),
                ..
            })
        ));
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn sticky_directories_are_accepted_and_other_owners_refused() {
        let d = crate::test_dir::fresh("trust-owners");
        let vol = kubernetes_layout(&d);
        // Kubernetes' volume directory is drwxrwxrwt: writable by all, with the sticky bit.
        std::fs::set_permissions(&vol, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        assert!(read(&vol.join("api-key"), Trust::Mount).is_ok());
        if rustix::process::geteuid().is_root() {
            let ts = vol.join("..2026_12_08_01_00_00.123");
            // Another user, and the overflow uid, as owner of the file, of a directory on
            // the way, of a link followed: each refused, whatever the mount.
            for uid in [4242, overflow_uid()] {
                for (path, what) in [
                    (ts.join("api-key"), "it is owned by uid"),
                    (ts.clone(), "directory"),
                    (vol.clone(), "directory"),
                    (vol.join("..data"), "symbolic link"),
                    (vol.join("api-key"), "symbolic link"),
                ] {
                    std::os::unix::fs::lchown(&path, Some(uid), None).expect("chown");
                    let m = insecure(read(&vol.join("api-key"), Trust::Mount));
                    assert!(
                        m.contains(what) && m.contains(&format!("uid {uid}")),
                        "{path:?} {uid}: {m}"
                    );
                    std::os::unix::fs::lchown(&path, Some(0), None).expect("chown");
                }
            }
            assert!(read(&vol.join("api-key"), Trust::Mount).is_ok());
        }
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn credentials_follow_no_link_and_need_a_read_only_directory() {
        let d = crate::test_dir::fresh("trust-cred");
        let creds = d.join("creds");
        std::fs::create_dir(&creds).expect("mkdir");
        write(&creds.join("api"), b"0123456789abcdef", 0o400);
        symlink("api", creds.join("link")).expect("symlink");
        let set = |mode: u32| {
            std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        set(0o700);
        assert!(insecure(read(&creds.join("api"), Trust::Credential)).contains("writable"));
        set(0o500);
        assert_eq!(
            read(&creds.join("api"), Trust::Credential).expect("credential"),
            b"0123456789abcdef"
        );
        assert!(insecure(read(&creds.join("link"), Trust::Credential)).contains("symbolic"));
        set(0o700);
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
