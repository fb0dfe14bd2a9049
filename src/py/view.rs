//! `expose()`: a scoped, read-only `memoryview` over a key's secret bytes.
//!
//! This file holds the only `unsafe` code outside `src/memory`: exporting a buffer to
//! Python means filling a raw `Py_buffer` through the C API, which cannot be written in
//! safe Rust. The memory layer stays free of Python, so the glue lives here, in one
//! method, with its safety argument.
//!
//! Lifetime argument: `__getbuffer__` asks the key's cell for a view
//! ([`ViewSource::open_view`]: live, exportable, counted) and hands out the region's
//! address. `destroy()` refuses while the cell's view count is non-zero, so the region
//! outlives every export; the exporter holds the cell (`Arc`), and every `memoryview`
//! built on it — slices and casts included — holds the exporter. The region is
//! `PROT_READ`; the export is marked read-only.
//!
//! Scope argument: a view is valid only inside its `with` block. At the end of the block
//! the exporter stops exporting, the block's `memoryview` is released, and if any buffer
//! of this exporter is still exported (a slice or cast of the view that is still alive,
//! which CPython keeps on the same underlying export) `__exit__` raises `BufferError`
//! instead of ending quietly.

#![allow(unsafe_code)]

use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyMemoryView;

use super::errors::{Error, Result};
use super::key_cell::ViewSource;

/// The buffer exporter behind an exposure's `memoryview`. Not public API.
///
/// It exports only while its `with` block is open and the key is exportable: Python can
/// reach the exporter through `memoryview.obj`, and a retained exporter must not hand out
/// fresh views after the block (or after `seal_export()`).
#[pyclass(frozen, module = "keycell._native", name = "_KeyView")]
pub struct KeyView {
    source: Arc<dyn ViewSource>,
    open: AtomicBool,
    /// Buffers of this exporter not yet released.
    exports: AtomicUsize,
}

#[pymethods]
impl KeyView {
    /// # Safety
    /// Called by CPython with a valid `Py_buffer` to fill (the buffer protocol).
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        if !this.open.load(Ordering::SeqCst) {
            return Err(
                Error::Buffer("this view's with-block has ended; use key.expose() again").into(),
            );
        }
        let (ptr, len) = this.source.open_view()?;
        // SAFETY: `view` is the valid Py_buffer CPython passed in; `slf` is a live object
        // that FillInfo increfs into view->obj; the pointer and length describe the key's
        // region, which stays mapped while the view count is non-zero (see module docs).
        // readonly=1 makes FillInfo reject PyBUF_WRITABLE requests with BufferError.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                ptr as *mut std::ffi::c_void,
                len as ffi::Py_ssize_t,
                1,
                flags,
            )
        };
        if rc != 0 {
            this.source.close_view();
            return Err(PyErr::fetch(slf.py()));
        }
        this.exports.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// # Safety
    /// Called by CPython once for every successful `__getbuffer__`.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.fetch_sub(1, Ordering::SeqCst);
        self.source.close_view();
    }
}

/// The context manager returned by `SecretKey.expose()`.
#[pyclass(frozen, module = "keycell._native")]
pub struct Exposure {
    source: Arc<dyn ViewSource>,
    view: Mutex<Option<(Py<PyMemoryView>, Py<KeyView>)>>,
}

impl Exposure {
    /// An exposure of the secret bytes of `source` (opened by `__enter__`).
    pub fn new(source: Arc<dyn ViewSource>) -> Self {
        Exposure {
            source,
            view: Mutex::new(None),
        }
    }
}

#[pymethods]
impl Exposure {
    fn __enter__(&self, py: Python<'_>) -> Result<Py<PyMemoryView>> {
        let mut slot = self.view.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return Err(Error::Value("this exposure is already open".to_owned()));
        }
        self.source.check_exportable()?;
        let exporter = Bound::new(
            py,
            KeyView {
                source: self.source.clone(),
                open: AtomicBool::new(true),
                exports: AtomicUsize::new(0),
            },
        )?;
        let mv = PyMemoryView::from(exporter.as_any())?;
        *slot = Some((mv.clone().unbind(), exporter.unbind()));
        Ok(mv.unbind())
    }

    /// Release the view: reading it afterwards raises `ValueError`. Raises `BufferError`
    /// when the view, or a slice or cast of it, is still referenced: it would stay
    /// readable after the block (the key cannot be destroyed until it is gone).
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        let taken = self.view.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some((mv, exporter)) = taken else {
            return Ok(false);
        };
        // No new exports from here on, whatever happens to the views already out.
        exporter.get().open.store(false, Ordering::SeqCst);
        if let Err(e) = mv.bind(py).call_method0("release") {
            // Still exported to some consumer (BufferError): keep the view so that a later
            // __exit__ can release it; dropping it here would leave it open for good and
            // the key pinned.
            *self.view.lock().unwrap_or_else(|e| e.into_inner()) = Some((mv, exporter));
            return Err(e);
        }
        if exporter.get().exports.load(Ordering::SeqCst) != 0 {
            return Err(Error::Buffer(
                "a slice or cast of the view from expose() is still alive after its with-block: \
                 it would keep the key bytes readable; delete it inside the block (the key \
                 cannot be destroyed while it exists)",
            )
            .into());
        }
        Ok(false)
    }
}

crate::py::text_refusal::text_refusing!(KeyView);
crate::py::text_refusal::text_refusing!(Exposure);
