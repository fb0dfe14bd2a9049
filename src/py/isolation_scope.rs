//! Scoped isolation overrides (`with keycell.policy(isolation=...)`), and the one helper
//! that releases the GIL.
//!
//! The override lives in a Python context variable, so every thread and every asyncio
//! task sees its own (a task inherits the scope it was created in, as contextvars do).
//! The memory layer asks [`current`] at each allocation, but only once a scope has ever
//! been entered; until then an allocation pays one atomic load and nothing else.
//!
//! [`current`] reads the variable with the GIL. Code that runs without the GIL cannot,
//! so [`detach`] (the only place in `src/py` that releases the GIL) reads the override
//! first and keeps it in a thread-local for the closure: allocations inside see the
//! override of the Python code that called them.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyString;

use crate::memory::{self, Isolation};

/// The bound `get` method of the context variable `keycell.policy()` sets (registered on
/// the first scope; kept bound so that each allocation makes one call, no lookup).
static SCOPE_GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Set with the first registration: from then on [`detach`] captures the override.
static SCOPES_USED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// While this thread runs inside [`detach`]: the override its caller had.
    static DETACHED: Cell<Option<Option<Isolation>>> = const { Cell::new(None) };
}

/// Register the context variable that holds scoped overrides and tell the memory layer
/// to ask for it. Called by the first `keycell.policy()` block; later calls do nothing.
pub fn use_scopes(py: Python<'_>, var: Bound<'_, PyAny>) -> PyResult<()> {
    let get = var.getattr(intern!(py, "get"))?;
    let _ = SCOPE_GET.set(py, get.unbind());
    memory::set_scope_source(current);
    SCOPES_USED.store(true, Ordering::Release);
    memory::scope_used();
    Ok(())
}

/// The override in force for the caller on this thread (the memory layer's scope source).
fn current() -> Option<Isolation> {
    if let Some(captured) = DETACHED.with(Cell::get) {
        return captured;
    }
    Python::attach(read)
}

/// The context variable's value in the running context: `None` outside any scope, or
/// when the value is not an isolation name (the Python side only ever sets valid ones).
fn read(py: Python<'_>) -> Option<Isolation> {
    let value = SCOPE_GET.get(py)?.bind(py).call0().ok()?;
    let name = value.cast::<PyString>().ok()?;
    Isolation::from_name(name.to_str().ok()?)
}

/// Restores the thread's previous captured override, also when the closure panics.
struct Restore(Option<Option<Isolation>>);

impl Drop for Restore {
    fn drop(&mut self) {
        DETACHED.with(|c| c.set(self.0));
    }
}

/// Run `f` with the GIL released, keeping the caller's scoped isolation for allocations
/// inside it. `f` must not touch Python objects (enforced by the `Send` bound).
pub fn detach<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    // Captured even before the first scope: a scope entered on another thread while `f`
    // runs must not make an allocation in `f` wait for the GIL.
    let captured = if SCOPES_USED.load(Ordering::Acquire) {
        read(py)
    } else {
        None
    };
    py.detach(move || {
        let _restore = Restore(DETACHED.with(|c| c.replace(Some(captured))));
        f()
    })
}
