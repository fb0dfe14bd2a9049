//! `expose()`: a scoped, read-only `memoryview` over a key's region.
//!
//! This file holds the only `unsafe` code outside `src/memory`: exporting a buffer to
//! Python means filling a raw `Py_buffer` through the C API, which cannot be written in
//! safe Rust. The memory layer stays free of Python, so the glue lives here, in one
//! method, with its safety argument.
//!
//! Lifetime argument: `__getbuffer__` takes the key's read lock, checks the key is live,
//! increments the key's view count and hands out the region's address. `destroy()` takes
//! the write lock and refuses while the count is non-zero, so the region outlives every
//! export. The exporter holds a strong reference to the key and every `memoryview` built on
//! it (including slices and copies of the view) holds a reference to the exporter, so
//! neither can be freed while an export exists. The region is `PROT_READ`; the export is
//! marked read-only.

#![allow(unsafe_code)]

use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyMemoryView;

use super::errors::Result;
use super::secret_key::SecretKey;

/// The buffer exporter behind an exposure's `memoryview`. Not public API.
///
/// It exports only while its `with` block is open and the key is exportable: Python can
/// reach the exporter through `memoryview.obj`, and a retained exporter must not hand out
/// fresh views after the block (or after `seal_export()`).
#[pyclass(frozen, module = "keycell._native", name = "_KeyView")]
pub struct KeyView {
    key: Py<SecretKey>,
    open: AtomicBool,
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
            return Err(PyBufferError::new_err(
                "this view's with-block has ended; use key.expose() again",
            ));
        }
        let key = this.key.get();
        key.export.check("SecretKey")?;
        let live = key.live()?;
        let bytes = live.key().bytes().map_err(super::errors::Error::from)?;
        key.views.fetch_add(1, Ordering::SeqCst);
        // SAFETY: `view` is the valid Py_buffer CPython passed in; `slf` is a live object
        // that FillInfo increfs into view->obj; the pointer and length describe the key's
        // region, which stays mapped while the view count is non-zero (see module docs).
        // readonly=1 makes FillInfo reject PyBUF_WRITABLE requests with BufferError.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                bytes.as_ptr() as *mut std::ffi::c_void,
                bytes.len() as ffi::Py_ssize_t,
                1,
                flags,
            )
        };
        drop(live);
        if rc != 0 {
            key.views.fetch_sub(1, Ordering::SeqCst);
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    /// # Safety
    /// Called by CPython once for every successful `__getbuffer__`.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.key.get().views.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The context manager returned by `SecretKey.expose()`.
#[pyclass(frozen, module = "keycell._native")]
pub struct Exposure {
    key: Py<SecretKey>,
    view: Mutex<Option<(Py<PyMemoryView>, Py<KeyView>)>>,
}

impl Exposure {
    pub fn new(key: Py<SecretKey>) -> Self {
        Exposure {
            key,
            view: Mutex::new(None),
        }
    }
}

#[pymethods]
impl Exposure {
    fn __enter__(&self, py: Python<'_>) -> Result<Py<PyMemoryView>> {
        let mut slot = self.view.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return Err(PyValueError::new_err("this exposure is already open").into());
        }
        self.key.get().export.check("SecretKey")?;
        let exporter = Bound::new(
            py,
            KeyView {
                key: self.key.clone_ref(py),
                open: AtomicBool::new(true),
            },
        )?;
        let mv = PyMemoryView::from(exporter.as_any())?;
        *slot = Some((mv.clone().unbind(), exporter.unbind()));
        Ok(mv.unbind())
    }

    /// Release the view: reading it afterwards raises `ValueError`.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        let taken = self.view.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((mv, exporter)) = taken {
            // No new exports from here on, whatever happens to the views already out.
            exporter.get().open.store(false, Ordering::SeqCst);
            if let Err(e) = mv.bind(py).call_method0("release") {
                // Still exported to some consumer (BufferError): keep the view so that a
                // later __exit__ can release it; dropping it here would leave it open for
                // good and the key pinned.
                *self.view.lock().unwrap_or_else(|e| e.into_inner()) = Some((mv, exporter));
                return Err(e);
            }
        }
        Ok(false)
    }
}
