//! keycell's native core.
//!
//! - [`memory`]: guarded, locked, wiped regions (the only `unsafe` code, apart from the
//!   buffer-protocol glue in `py/view.rs` and `py/buffer_in_place.rs`).
//! - [`crypto`]: algorithms over secret bytes held in those regions.
//! - [`audit`]: the tamper-evident, forward-secure audit log.
//! - [`keyfile`]: opening key files safely.
//! - [`encoding`]: hex and base64 over slices (key file formats).
//! - [`json`]: strict JSON (RFC 8259): one scanner, a validator and a tree reader.
//! - [`store`]: the encrypted key store file.
//! - [`keyring`]: the Linux kernel keyring as a key source and sink.
//! - [`otp`]: one-time passwords (HOTP, TOTP) over secrets in guarded regions.
//! - [`agent`]: the key agent (SSH agent protocol over a Unix socket, peer checks, policy).
//! - [`pkcs11`]: keys in a PKCS#11 token (HSM), used through the token.
//! - `py`: the PyO3 bindings (feature `python`), compiled as `keycell._native`.

pub mod agent;
pub mod audit;
pub mod crypto;
pub mod encoding;
pub mod json;
pub mod keyfile;
pub mod keyring;
pub mod memory;
pub mod otp;
pub mod pkcs11;
#[cfg(feature = "python")]
mod py;
pub mod store;
#[cfg(test)]
mod test_dir;

/// The compiled module `keycell._native`.
#[cfg(feature = "python")]
#[pyo3::pymodule]
fn _native(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    py::register(m)
}
