//! Process hardening for the agent: not dumpable (another process of the same uid can
//! neither ptrace it nor read `/proc/PID/mem`), no core dumps (`RLIMIT_CORE` 0), and
//! `PR_SET_NO_NEW_PRIVS` (nothing it executes gains privileges). Each step reports its own
//! result; the caller refuses to serve if any failed.

use rustix::process::{setrlimit, DumpableBehavior, Resource, Rlimit};

/// The result of each hardening step: `Ok` or the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hardening {
    pub not_dumpable: Result<(), i32>,
    pub no_core_dumps: Result<(), i32>,
    pub no_new_privs: Result<(), i32>,
}

impl Hardening {
    /// Whether every step succeeded.
    pub fn complete(&self) -> bool {
        self.not_dumpable.is_ok() && self.no_core_dumps.is_ok() && self.no_new_privs.is_ok()
    }
}

fn errno(r: rustix::io::Result<()>) -> Result<(), i32> {
    r.map_err(|e| e.raw_os_error())
}

/// Harden the calling process (all of it: these are per-process settings, except
/// `PR_SET_NO_NEW_PRIVS`, which is per thread and inherited: call before starting threads).
pub fn harden() -> Hardening {
    Hardening {
        not_dumpable: errno(rustix::process::set_dumpable_behavior(
            DumpableBehavior::NotDumpable,
        )),
        no_core_dumps: errno(setrlimit(
            Resource::Core,
            Rlimit {
                current: Some(0),
                maximum: Some(0),
            },
        )),
        no_new_privs: errno(rustix::thread::set_no_new_privs(true)),
    }
}
