//! keycell's native core, in layers (each only uses the ones below it; the table is in
//! `tests/test_source_layout.py`, the picture in README.md's layout section):
//!
//! - [`memory`]: guarded, locked, wiped regions.
//! - [`sys`]: raw system calls that are not about memory (`SO_PEERPIDFD`).
//! - [`fs`]: safe open of secret files, atomic durable writes, lock files and the one
//!   deadline-bounded lock wait, the file error.
//! - [`encoding`]: hex and base64 over slices (key file formats).
//! - [`json`]: strict JSON (RFC 8259): one scanner, a validator and a tree reader.
//! - [`kernels`]: accelerated arithmetic for one CPU feature set, chosen at run time
//!   (X25519 on BMI2); `crypto` falls back to its portable code elsewhere.
//! - [`crypto`]: algorithms over secret bytes held in those regions.
//! - [`keyfile`]: key file formats, read into guarded memory and written.
//! - [`store`]: the encrypted key store file.
//! - [`audit`]: the tamper-evident, forward-secure audit log.
//! - [`keyring`]: the Linux kernel keyring as a key source and sink.
//! - [`otp`]: one-time passwords (HOTP, TOTP) over secrets in guarded regions.
//! - [`pkcs11`]: keys in a PKCS#11 token (HSM), used through the token.
//! - [`agent`]: the key agent (SSH agent protocol over a Unix socket, peer checks, policy).
//! - `py`: the PyO3 bindings (feature `python`), compiled as `keycell._native`.
//!
//! `unsafe` code is allowed only in `memory`, `sys`, `kernels` (calls into functions
//! compiled for a CPU feature, after the run-time check) and the buffer-protocol glue of
//! the bindings (`py/view.rs`, `py/buffer_in_place.rs`), each block with its `SAFETY`
//! argument.

pub mod agent;
pub mod audit;
pub mod crypto;
pub mod encoding;
pub mod fs;
pub mod json;
pub mod kernels;
pub mod keyfile;
pub mod keyring;
pub mod memory;
pub mod otp;
pub mod pkcs11;
#[cfg(feature = "python")]
mod py;
pub mod store;
pub mod sys;
#[cfg(test)]
mod test_dir;

/// Rust allocations are the system allocator's, except those a thread makes inside
/// [`memory::secret_heap::scope`] (RSA limbs), which go to guarded memory.
#[global_allocator]
static ALLOCATOR: memory::secret_heap::ScopedHeap = memory::secret_heap::ScopedHeap;

/// The compiled module `keycell._native`.
#[cfg(feature = "python")]
#[pyo3::pymodule]
fn _native(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    py::register(m)
}
