//! `to_cryptography()` and `from_cryptography()`: thin methods that hand the handle to the
//! Python adapter module `keycell.compat.cryptography`, where the pyca/cryptography
//! classes are built (pyca is optional: it is imported there, on call). No adapter logic
//! lives here.

use pyo3::prelude::*;
use pyo3::types::PyType;

/// The adapter module.
const ADAPTER: &str = "keycell.compat.cryptography";

/// `keycell.compat.cryptography.<function>(*args)`.
pub fn call_adapter<'py>(
    py: Python<'py>,
    function: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    py.import(ADAPTER)?.getattr(function)?.call1(args)
}

/// `Cls.from_cryptography(key)` of a public key class.
pub fn from_cryptography<'py>(
    cls: &Bound<'py, PyType>,
    key: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    call_adapter(cls.py(), "public_key_from_cryptography", (cls, key))
}

/// A `#[pymethods]` block with `to_cryptography()` for a private key class.
macro_rules! cryptography_private_methods {
    ($cls:ty) => {
        #[::pyo3::pymethods]
        impl $cls {
            /// This key as a pyca/cryptography private key object (of pyca's abstract
            /// private key class for the algorithm) whose signing and key exchange run
            /// here, in keycell; its `public_key()` is a real pyca public key. Its
            /// `private_bytes()` and `private_numbers()` raise `KeyNotExportableError`
            /// unless `allow_export=True` and the key is exportable: then they copy the
            /// key onto the Python heap. Needs the `cryptography` package (`ImportError`
            /// otherwise). See docs/integrations/cryptography.md.
            #[pyo3(signature = (*, allow_export = false))]
            fn to_cryptography<'py>(
                slf: &::pyo3::Bound<'py, Self>,
                allow_export: bool,
            ) -> ::pyo3::PyResult<::pyo3::Bound<'py, ::pyo3::PyAny>> {
                $crate::py::pyca::call_adapter(
                    slf.py(),
                    "private_key_to_cryptography",
                    (slf, allow_export),
                )
            }
        }
    };
}

/// A `#[pymethods]` block with `to_cryptography()` and `from_cryptography()` for a
/// public key class.
macro_rules! cryptography_public_methods {
    ($cls:ty) => {
        #[::pyo3::pymethods]
        impl $cls {
            /// This public key as the pyca/cryptography public key object of its
            /// algorithm (needs the `cryptography` package).
            fn to_cryptography<'py>(
                slf: &::pyo3::Bound<'py, Self>,
            ) -> ::pyo3::PyResult<::pyo3::Bound<'py, ::pyo3::PyAny>> {
                $crate::py::pyca::call_adapter(slf.py(), "public_key_to_cryptography", (slf,))
            }

            /// A public key from the pyca/cryptography public key object of the same
            /// algorithm; `TypeError` for any other object.
            #[classmethod]
            fn from_cryptography<'py>(
                cls: &::pyo3::Bound<'py, ::pyo3::types::PyType>,
                key: &::pyo3::Bound<'py, ::pyo3::PyAny>,
            ) -> ::pyo3::PyResult<::pyo3::Bound<'py, ::pyo3::PyAny>> {
                $crate::py::pyca::from_cryptography(cls, key)
            }
        }
    };
}

pub(crate) use cryptography_private_methods;
pub(crate) use cryptography_public_methods;
