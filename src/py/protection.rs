//! The protection report of a key, and the once-per-process warning when a protection is
//! missing.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::Result;
use super::exceptions::ProtectionWarning;
use crate::memory;

/// What protection a key's memory actually has (measured when it was allocated).
#[pyclass(frozen, module = "keycell._native", get_all)]
#[derive(Clone)]
pub struct Protection {
    /// The pages are `mlock`ed (kept out of swap).
    pub locked: bool,
    /// `MADV_DONTDUMP`: the pages are left out of core dumps.
    pub dontdump: bool,
    /// `MADV_WIPEONFORK`: a forked child sees zeros.
    pub wipeonfork: bool,
    /// `PROT_NONE` guard pages before and after the data (page isolation), or around the
    /// shared arena (pool isolation).
    pub guard_pages: bool,
    /// The memory is read-only while idle (page isolation); pool arenas stay read-write.
    pub read_only_idle: bool,
    /// "page" (a guarded mapping of its own) or "pool" (a slot with canaries on both
    /// sides in a shared guarded arena).
    pub isolation: String,
    /// The allocator backend.
    pub backend: String,
}

impl From<memory::Protection> for Protection {
    fn from(p: memory::Protection) -> Self {
        Protection {
            locked: p.locked,
            dontdump: p.dontdump,
            wipeonfork: p.wipeonfork,
            guard_pages: p.guard_pages,
            read_only_idle: p.read_only_idle,
            isolation: p.isolation.name().to_owned(),
            backend: p.backend.to_owned(),
        }
    }
}

#[pymethods]
impl Protection {
    /// True when every protection holds.
    #[getter]
    fn complete(&self) -> bool {
        self.locked && self.dontdump && self.wipeonfork && self.guard_pages
    }

    /// The report as a dict.
    fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("locked", self.locked)?;
        d.set_item("dontdump", self.dontdump)?;
        d.set_item("wipeonfork", self.wipeonfork)?;
        d.set_item("guard_pages", self.guard_pages)?;
        d.set_item("read_only_idle", self.read_only_idle)?;
        d.set_item("isolation", &self.isolation)?;
        d.set_item("backend", &self.backend)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let b = |v: bool| if v { "True" } else { "False" };
        format!(
            "Protection(locked={}, dontdump={}, wipeonfork={}, guard_pages={}, \
             read_only_idle={}, isolation={:?}, backend={:?})",
            b(self.locked),
            b(self.dontdump),
            b(self.wipeonfork),
            b(self.guard_pages),
            b(self.read_only_idle),
            self.isolation,
            self.backend
        )
    }
}

/// One `ProtectionWarning` per process for each kind of shortfall: the first caller that
/// flips `flag` warns with `msg`.
fn warn_once(py: Python<'_>, flag: &AtomicBool, msg: &str) -> Result<()> {
    if flag.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    let category = py.get_type::<ProtectionWarning>();
    PyErr::warn(
        py,
        &category,
        &std::ffi::CString::new(msg).unwrap_or_default(),
        1,
    )?;
    Ok(())
}

static WARNED: AtomicBool = AtomicBool::new(false);
static WARNED_MEMFD_FALLBACK: AtomicBool = AtomicBool::new(false);
static WARNED_DERIVED: AtomicBool = AtomicBool::new(false);
static WARNED_MEMFD: AtomicBool = AtomicBool::new(false);

/// Called for every new region: warns once per process when a protection is missing (the
/// "warn" policy; under "raise" the allocation has already failed), and once when the
/// `memfd_secret` backend was asked for and the region is not in it (page isolation, asked
/// for or needed by a key too large for a pool slot, uses guarded mmap, which
/// `/proc/PID/mem` and ptrace can read).
pub fn report_new_region(py: Python<'_>, p: &memory::Protection) -> Result<()> {
    let memfd = memory::Backend::MemfdSecret;
    if memory::backend_policy() == memfd && p.backend != memfd.name() {
        warn_once(
            py,
            &WARNED_MEMFD_FALLBACK,
            "keycell: backend=\"memfd_secret\" backs pool arenas only: this key is \
             page-isolated (isolation=\"page\", or too large for a pool slot) in guarded \
             mmap memory, which /proc/PID/mem and ptrace can read; key.protection.backend \
             says so. This warning is shown once per process.",
        )?;
    }
    if p.complete() || WARNED.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !p.locked {
        missing.push("mlock failed: key memory may be swapped to disk (RLIMIT_MEMLOCK too low?)");
    }
    if !p.dontdump {
        missing.push("MADV_DONTDUMP failed: keys may appear in core dumps");
    }
    if !p.wipeonfork {
        missing.push("MADV_WIPEONFORK failed: forked children keep a copy of keys");
    }
    if !p.guard_pages {
        missing.push("guard pages missing");
    }
    let msg = format!(
        "keycell: degraded key protection ({}); this warning is shown once per process. \
         Run `keycell doctor`, or set_policy(on_lock_failure=\"raise\") to fail instead.",
        missing.join("; ")
    );
    warn_once(py, &WARNED, &msg)
}

/// Called with the GIL after a key was used: when state derived from a key on first use
/// (HMAC pads, AEAD cipher state) got less protection than the key (under the "warn"
/// policy; under "raise" that use failed), or left `memfd_secret` memory because it did
/// not fit a pool slot, warn, once per process for each. `key.protection` reports the
/// weakest region behind the key.
pub fn report_derived_shortfall(py: Python<'_>) -> Result<()> {
    let kinds = memory::take_derived_shortfall();
    if kinds & memory::SHORTFALL_PROTECTION != 0 {
        warn_once(
            py,
            &WARNED_DERIVED,
            "keycell: state derived from a key on first use (HMAC pads, AEAD cipher state, \
             RSA limbs in the secret heap) got less protection than the key (mlock failed: \
             RLIMIT_MEMLOCK spent?, or the secret heap could not hold RSA limbs); \
             key.protection reports the weakest region behind the key. This warning is shown \
             once per process; set_policy(on_lock_failure=\"raise\") fails instead.",
        )?;
    }
    if kinds & memory::SHORTFALL_MEMFD != 0 {
        warn_once(
            py,
            &WARNED_MEMFD,
            "keycell: state derived from a key in memfd_secret memory (HMAC pads or AEAD \
             cipher state) was too large for a pool slot and went to a guarded mmap region, \
             which /proc/PID/mem and ptrace can read; key.protection reports it. This warning \
             is shown once per process.",
        )?;
    }
    Ok(())
}
