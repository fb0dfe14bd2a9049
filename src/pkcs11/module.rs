//! Loading a PKCS#11 module once per process, initialised with `CKF_OS_LOCKING_OK` (the
//! module may be called from several threads at once and locks with the OS primitives).
//!
//! A module stays loaded and initialised for the life of the process (no `C_Finalize`:
//! other handles of the process may still use it). A fork child never touches the
//! parent's context: the registry records the [`ProcessStamp`] each module was loaded
//! in, and a child loads and initialises the module again (PKCS#11 v2.40 §6.7.1: a child
//! must call `C_Initialize`), leaking the parent's context without calling into it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};

use super::error::{Pkcs11Error, Pkcs11ErrorKind, Result};
use crate::memory::fork::ProcessStamp;

/// A loaded, initialised module.
pub struct Module {
    ctx: Pkcs11,
    path: PathBuf,
    made_in: ProcessStamp,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Module({:?})", self.path)
    }
}

impl Module {
    /// The cryptoki context.
    pub fn ctx(&self) -> &Pkcs11 {
        &self.ctx
    }

    /// The module's canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is the process that loaded the module (not a fork child).
    pub fn is_current(&self) -> bool {
        self.made_in.is_current()
    }
}

static MODULES: Mutex<Vec<Arc<Module>>> = Mutex::new(Vec::new());

/// How long a registry lock is waited for. Only a fork child whose parent had another
/// thread inside the registry at the fork can wait this long: it gets an error, never a
/// hang.
const REGISTRY_WAIT: Duration = Duration::from_secs(5);

/// Lock a registry mutex, giving up after [`REGISTRY_WAIT`].
pub(crate) fn lock_registry<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    let start = Instant::now();
    loop {
        match m.try_lock() {
            Ok(g) => return Ok(g),
            Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) if start.elapsed() < REGISTRY_WAIT => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Pkcs11Error::new(
                    Pkcs11ErrorKind::Other,
                    "the PKCS#11 registry stayed locked (was this process forked while \
                     another thread was opening a token?)",
                ))
            }
        }
    }
}

/// The environment variable that lets [`load`] load a module whose path fails
/// [`check_module_path`] (value `1`), for a deliberate setup the check cannot judge.
pub const ALLOW_UNSAFE_MODULE_ENV: &str = "KEYCELL_PKCS11_ALLOW_UNSAFE_MODULE";

/// Refuse a module whoever else could have written: loading it runs its code (its
/// constructors, then every call) in this process, which holds keys, so the file and every
/// directory above it must be owned by root or by this process's effective user and not
/// writable by group or others, as OpenSSH's `safe_path` asks of what it runs. Checked:
/// the path as given (so a symlink in a directory others can write, which lets them choose
/// the library, is refused), its real path `canonical` (what is then loaded, so no
/// component can be swapped), and every directory of `LD_LIBRARY_PATH` (where the
/// module's own dependencies are looked for first).
///
/// Not checked: the `RUNPATH`/`RPATH` a module names for its dependencies (the ELF
/// dynamic section is not parsed); modules from a distribution's packages set none.
pub fn check_module_path(given: &Path, canonical: &Path) -> Result<()> {
    check_chain(canonical, canonical)?;
    let given = std::path::absolute(given).map_err(|e| {
        Pkcs11Error::new(
            Pkcs11ErrorKind::ModuleNotFound,
            format!("PKCS#11 module {:?}: {e}", given.display().to_string()),
        )
    })?;
    if let Some(dir) = given.parent() {
        check_chain(canonical, dir)?;
    }
    if let Some(paths) = std::env::var_os("LD_LIBRARY_PATH") {
        for dir in std::env::split_paths(&paths) {
            // An empty entry means the current directory.
            let dir = if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            };
            if let Ok(dir) = std::fs::canonicalize(&dir) {
                check_chain(canonical, &dir)?;
            }
        }
    }
    Ok(())
}

/// Check `start` and every directory above it for [`check_module_path`].
fn check_chain(module: &Path, start: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let euid = rustix::process::geteuid().as_raw();
    let mut current = Some(start);
    while let Some(p) = current {
        let meta = std::fs::metadata(p).map_err(|e| {
            Pkcs11Error::new(
                Pkcs11ErrorKind::ModuleNotFound,
                format!("PKCS#11 module path {:?}: {e}", p.display().to_string()),
            )
        })?;
        let what = if p == module { "module" } else { "directory" };
        let mut problems = Vec::new();
        if meta.uid() != 0 && meta.uid() != euid {
            problems.push(format!(
                "owned by uid {}, not root or this user",
                meta.uid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            problems.push(format!(
                "writable by {} (mode {:o})",
                if meta.mode() & 0o002 != 0 {
                    "others"
                } else {
                    "its group"
                },
                meta.mode() & 0o7777
            ));
        }
        if !problems.is_empty() {
            return Err(Pkcs11Error::new(
                Pkcs11ErrorKind::UnsafeModule,
                format!(
                    "refusing to load PKCS#11 module {:?}: the {what} {:?} is {}, so \
                     someone else could replace the code this process would run; fix \
                     the owner or mode, or set {ALLOW_UNSAFE_MODULE_ENV}=1 to load it anyway",
                    module.display().to_string(),
                    p.display().to_string(),
                    problems.join(" and ")
                ),
            ));
        }
        current = p.parent();
    }
    Ok(())
}

/// The module at `path`, loaded and initialised in this process. Its path must pass
/// [`check_module_path`] unless [`ALLOW_UNSAFE_MODULE_ENV`] is `1`.
pub fn load(path: &Path) -> Result<Arc<Module>> {
    let canonical = std::fs::canonicalize(path).map_err(|e| {
        Pkcs11Error::new(
            Pkcs11ErrorKind::ModuleNotFound,
            format!("PKCS#11 module {:?}: {e}", path.display().to_string()),
        )
    })?;
    if std::env::var_os(ALLOW_UNSAFE_MODULE_ENV).is_none_or(|v| v != "1") {
        check_module_path(path, &canonical)?;
    }
    let mut modules = lock_registry(&MODULES)?;
    // A fork child leaks the parent's contexts: dropping them could call into the module.
    let (current, stale): (Vec<_>, Vec<_>) = modules.drain(..).partition(|m| m.is_current());
    stale.into_iter().for_each(std::mem::forget);
    *modules = current;
    if let Some(m) = modules.iter().find(|m| m.path == canonical) {
        return Ok(Arc::clone(m));
    }
    let what = format!("PKCS#11 module {:?}", canonical.display().to_string());
    let ctx = Pkcs11::new(&canonical).map_err(|e| Pkcs11Error::from_cryptoki(&what, e))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        // Already initialised by other code in this process (or, in a fork child, by
        // the parent, for a module that does not notice forks): use it as it is.
        Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(Pkcs11Error::from_cryptoki(&what, e)),
    }
    let module = Arc::new(Module {
        ctx,
        path: canonical,
        made_in: ProcessStamp::current(),
    });
    modules.push(Arc::clone(&module));
    Ok(module)
}

/// Where [`find_by_name`] looks for a module named in a URI (`module-name=`), in order.
pub const MODULE_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/pkcs11",
    "/usr/lib64/pkcs11",
    "/usr/lib/pkcs11",
    "/usr/local/lib/pkcs11",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
];

/// The module an RFC 7512 `module-name` names (the library's name without directory and
/// suffix, with or without `lib`: `softhsm2` finds `libsofthsm2.so`), searched in
/// [`MODULE_DIRS`] and in a subdirectory of each named after it (Debian keeps SoftHSM2
/// in `/usr/lib/softhsm/`). A name with a `/` or starting with `.` is refused.
pub fn find_by_name(name: &str) -> Result<PathBuf> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') || name.contains('\0') {
        return Err(Pkcs11Error::invalid(
            "module-name must be a library name, without directory",
        ));
    }
    let stem = name.strip_prefix("lib").unwrap_or(name);
    let stem = stem.strip_suffix(".so").unwrap_or(stem);
    let files = [format!("lib{stem}.so"), format!("{stem}.so")];
    let short = stem.trim_end_matches(|c: char| c.is_ascii_digit());
    for dir in MODULE_DIRS {
        for sub in ["", short] {
            for file in &files {
                let p = Path::new(dir).join(sub).join(file);
                if p.is_file() {
                    return Ok(p);
                }
            }
        }
    }
    Err(Pkcs11Error::new(
        Pkcs11ErrorKind::ModuleNotFound,
        format!(
            "no PKCS#11 module named {:?} in {} (give module-path instead)",
            name.chars().take(64).collect::<String>(),
            MODULE_DIRS.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert!(find_by_name("../etc/x").is_err());
        assert!(find_by_name("a/b").is_err());
        assert_eq!(
            find_by_name("no-such-module-xyz")
                .expect_err("missing")
                .kind,
            Pkcs11ErrorKind::ModuleNotFound
        );
        if Path::new("/usr/lib/softhsm/libsofthsm2.so").exists() {
            let found = find_by_name("softhsm2").expect("softhsm2");
            assert_eq!(
                std::fs::canonicalize(found).expect("canonical"),
                std::fs::canonicalize("/usr/lib/softhsm/libsofthsm2.so").expect("canonical")
            );
            assert!(find_by_name("libsofthsm2.so").is_ok());
        }
    }

    #[test]
    fn a_missing_module_is_typed() {
        let e = load(Path::new("/nonexistent/libnothing.so")).expect_err("missing");
        assert_eq!(e.kind, Pkcs11ErrorKind::ModuleNotFound);
    }

    #[test]
    fn a_library_that_is_not_a_module_is_typed() {
        // libc is a shared library without C_GetFunctionList.
        let libc = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists());
        if let Some(p) = libc {
            let e = load(Path::new(p)).expect_err("not a module");
            assert_eq!(e.kind, Pkcs11ErrorKind::ModuleNotFound, "{}", e.message);
        }
    }
}
