//! Handles that stand for a secret have no text form. `str()`, `format()` (every spec, the
//! empty one included, so f-strings and `"%s"`) raise `TypeError`: a framework that calls
//! `str()` on its "secret" (Django's `SECRET_KEY`, Starlette's `SessionMiddleware`) must
//! fail, not sign with the handle's public label. `repr()` stays the redacted label.
//!
//! One mechanism for every such class: [`text_refusing!`] adds a second `#[pymethods]`
//! block with `__str__` and `__format__`, both built on [`refuse_text`].

use pyo3::prelude::*;

use super::errors::Error;

/// The `TypeError` for turning a handle of Python class `class` into text.
pub fn refuse_text(class: &str) -> Error {
    Error::Type(format!(
        "{class} cannot be converted to text: it stands for a secret, and str()/format() \
         would give only its public label, which code expecting a secret string would \
         sign with. Pass the handle itself to keycell (e.g. key.hmac(data), keycell's \
         integrations); repr() gives the redacted label"
    ))
}

/// `refuse_text` for the class of `slf` (its Python name).
pub fn refuse_text_for(slf: &Bound<'_, PyAny>) -> Error {
    match slf.get_type().name() {
        Ok(name) => refuse_text(&name.to_string()),
        Err(err) => Error::Py(err),
    }
}

/// A second `#[pymethods]` block for `$cls`: `__str__` and `__format__` raise
/// [`refuse_text`]'s `TypeError`.
macro_rules! text_refusing {
    ($cls:ty) => {
        #[::pyo3::pymethods]
        impl $cls {
            fn __str__(slf: &::pyo3::Bound<'_, Self>) -> $crate::py::errors::Result<String> {
                Err($crate::py::text_refusal::refuse_text_for(slf.as_any()))
            }

            #[pyo3(signature = (spec, /))]
            fn __format__(
                slf: &::pyo3::Bound<'_, Self>,
                spec: &::pyo3::Bound<'_, ::pyo3::PyAny>,
            ) -> $crate::py::errors::Result<String> {
                let _ = spec;
                Err($crate::py::text_refusal::refuse_text_for(slf.as_any()))
            }
        }
    };
}

pub(crate) use text_refusing;
