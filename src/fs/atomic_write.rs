//! Atomic, durable file replacement (key files, the key store, the audit log's state).
//!
//! Why not the `tempfile` crate (`NamedTempFile::new_in` + `persist`/`persist_noclobber`):
//! it covers the create and rename steps below, but neither `fsync` (the file's, the
//! directory's) nor the `errno`-carrying [`FileError`]s; it would be a new dependency to
//! replace about 40 of these lines, and the steps would still be ours.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::{unusable, FileError};

/// Removes a temporary file when dropped, unless disarmed.
struct TempFile {
    path: Option<PathBuf>,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn random_suffix() -> Result<String, FileError> {
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(|_| unusable("the OS random number generator failed"))?;
    Ok(r.iter().map(|b| format!("{b:02x}")).collect())
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `fsync` a directory, so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    let d = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| FileError::io("cannot open its directory to fsync it", &e))?;
    d.sync_all()
        .map_err(|e| FileError::io("fsync of its directory failed", &e))
}

/// Write `data` to `path` so that a crash never leaves a partial file under `path`:
///
/// 1. create `.keycell-RANDOM.tmp` (16 random hex digits: a fixed length, so any valid
///    target name works, up to `NAME_MAX`) in the same directory with
///    `O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC`, mode 0600 (then `fchmod` 0600, so the
///    umask cannot matter);
/// 2. write, `fsync`;
/// 3. rename it to `path`: with `overwrite`, `rename(2)` (atomic replace; a symlink at
///    `path` is replaced, never followed); without, `renameat2(RENAME_NOREPLACE)`, or
///    `link(2)` + `unlink(2)` where the file system lacks it, so an existing file is never
///    replaced (`errno` `EEXIST`);
/// 4. `fsync` the directory.
///
/// On any error the temporary file is removed.
pub fn write_atomic(path: &Path, data: &[u8], overwrite: bool) -> Result<(), FileError> {
    if path.file_name().is_none() {
        return Err(unusable("the path does not name a file"));
    }
    let dir = parent_dir(path);
    if !overwrite && std::fs::symlink_metadata(path).is_ok() {
        return Err(already_exists());
    }
    let (mut file, tmp_path) = create_temp(dir)?;
    let mut tmp = TempFile {
        path: Some(tmp_path.clone()),
    };
    write_and_sync(&mut file, data)?;
    drop(file);
    if overwrite {
        std::fs::rename(&tmp_path, path).map_err(|e| FileError::io("rename failed", &e))?;
        tmp.path = None;
    } else {
        rename_no_replace(&mut tmp, &tmp_path, path)?;
    }
    drop(tmp);
    sync_dir(dir)
}

/// The error for a target that exists when `overwrite` is false (`errno` `EEXIST`).
fn already_exists() -> FileError {
    FileError::Unusable {
        reason: "it already exists (pass overwrite=True to replace it)".to_owned(),
        errno: Some(libc::EEXIST),
    }
}

/// Create `.keycell-RANDOM.tmp` in `dir` (`O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC`,
/// mode 0600). Returns the open file and its path.
fn create_temp(dir: &Path) -> Result<(File, PathBuf), FileError> {
    // Not derived from the target's name: `.NAME.RANDOM.tmp` would exceed NAME_MAX for
    // target names of 234 bytes and more.
    let tmp_path = dir.join(format!(".keycell-{}.tmp", random_suffix()?));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp_path)
        .map_err(|e| FileError::io("cannot create a temporary file beside it", &e))?;
    Ok((file, tmp_path))
}

/// `fchmod` the temporary file to 0600 (so the umask cannot matter), write `data` to it,
/// and `fsync` it.
fn write_and_sync(file: &mut File, data: &[u8]) -> Result<(), FileError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| FileError::io("fchmod failed", &e))?;
    file.write_all(data)
        .map_err(|e| FileError::io("write failed", &e))?;
    file.sync_all()
        .map_err(|e| FileError::io("fsync failed", &e))
}

/// Move the temporary file at `tmp_path` to `path` without ever replacing an existing
/// file: `renameat2(RENAME_NOREPLACE)` (which disarms `tmp`), or `link(2)` where the file
/// system lacks it (then `tmp` still unlinks the temporary name on drop).
fn rename_no_replace(tmp: &mut TempFile, tmp_path: &Path, path: &Path) -> Result<(), FileError> {
    match rustix::fs::renameat_with(
        rustix::fs::CWD,
        tmp_path,
        rustix::fs::CWD,
        path,
        rustix::fs::RenameFlags::NOREPLACE,
    ) {
        Ok(()) => {
            tmp.path = None;
            Ok(())
        }
        Err(rustix::io::Errno::EXIST) => Err(already_exists()),
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
            // No RENAME_NOREPLACE here: link() fails with EEXIST just as atomically.
            std::fs::hard_link(tmp_path, path).map_err(|e| {
                if e.raw_os_error() == Some(libc::EEXIST) {
                    already_exists()
                } else {
                    FileError::io("link failed", &e)
                }
            })
        }
        Err(e) => Err(FileError::io(
            "rename failed",
            &std::io::Error::from_raw_os_error(e.raw_os_error()),
        )),
    }
}
