//! The PyO3 bindings: argument parsing, GIL release, error mapping. One file per Python
//! class family; no cryptography or memory management of their own. Each class's methods
//! are in a plain `#[pymethods] impl`; methods a family shares come from a macro that adds
//! a second block of one-line delegations (`key_handle_methods!`, `private_key_methods!`,
//! `aead_methods!`, the token handles', `text_refusing!`). `exceptions.rs` imports every
//! Python exception and only `errors.rs` builds them.

mod aead;
mod aead_calls;
mod agent;
mod args;
mod asymmetric;
mod audit;
mod buffer_in_place;
mod bytes_like;
mod ec;
mod ed25519;
mod errors;
mod exceptions;
mod export;
mod hkdf;
mod hmac;
mod isolation_scope;
mod jwk;
mod key_cell;
mod key_io;
mod key_wrap;
mod keyring;
mod keystore;
mod otp;
mod passphrase;
mod pkcs11;
mod protection;
mod pyca;
mod rsa;
mod secret_key;
mod text_refusal;
mod view;
mod x25519;

use pyo3::prelude::*;

use crate::memory::{self, LockFailurePolicy};
use errors::{Error, Result};

/// Compare two bytes-like objects in constant time, like `hmac.compare_digest` for
/// bytes-like arguments: the time depends only on the lengths. Unlike it, `str` arguments
/// are refused (`TypeError`): secrets and tags are bytes. Both arguments are read where
/// they are, never copied.
#[pyfunction]
#[pyo3(signature = (a, b, /))]
fn compare_digest(py: Python<'_>, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> Result<bool> {
    bytes_like::ct_eq_in_place(py, a, b)
}

/// Set the process-wide policies; a keyword not given keeps its value.
/// `on_lock_failure`: "warn" or "raise" (a failed `mlock`/`madvise`). `isolation`:
/// "page", "pool" or "auto" (how new keys are isolated). `backend`: "mmap" or
/// "memfd_secret" (what backs pool arenas; refused where the kernel lacks it).
#[pyfunction]
#[pyo3(signature = (*, on_lock_failure = None, isolation = None, backend = None))]
fn set_policy(
    on_lock_failure: Option<&str>,
    isolation: Option<&str>,
    backend: Option<&str>,
) -> Result<()> {
    let lock = on_lock_failure
        .map(|v| match v {
            "warn" => Ok(LockFailurePolicy::Warn),
            "raise" => Ok(LockFailurePolicy::Raise),
            _ => Err(Error::Value(
                "on_lock_failure must be \"warn\" or \"raise\"".to_owned(),
            )),
        })
        .transpose()?;
    let isolation = isolation.map(parse_isolation).transpose()?;
    let backend = backend
        .map(|v| {
            memory::Backend::from_name(v).ok_or_else(|| {
                Error::Value("backend must be \"mmap\" or \"memfd_secret\"".to_owned())
            })
        })
        .transpose()?;
    if backend == Some(memory::Backend::MemfdSecret) {
        if let Err(errno) = memory::sys::probe().memfd_secret {
            return Err(Error::Memory(memory::MemoryError::system_call(
                "memfd_secret",
                errno,
            )));
        }
    }
    if let Some(b) = backend {
        memory::set_backend_policy(b);
    }
    if let Some(p) = lock {
        memory::set_lock_failure_policy(p);
    }
    if let Some(i) = isolation {
        memory::set_isolation_policy(i);
    }
    Ok(())
}

fn parse_isolation(v: &str) -> Result<memory::Isolation> {
    memory::Isolation::from_name(v)
        .ok_or_else(|| Error::Value("isolation must be \"page\", \"pool\" or \"auto\"".to_owned()))
}

/// The current process-wide policies, as a dict `{"on_lock_failure": "warn" | "raise",
/// "isolation": "page" | "pool" | "auto", "backend": "mmap" | "memfd_secret"}`.
#[pyfunction]
fn get_policy(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    let d = pyo3::types::PyDict::new(py);
    let v = match memory::lock_failure_policy() {
        LockFailurePolicy::Warn => "warn",
        LockFailurePolicy::Raise => "raise",
    };
    d.set_item("on_lock_failure", v)?;
    d.set_item("isolation", memory::isolation_policy().name())?;
    d.set_item("backend", memory::backend_policy().name())?;
    Ok(d)
}

/// Start honouring scoped isolation overrides kept in `var` (the context variable that
/// `keycell.policy()` sets). Called once, by the first `keycell.policy()` block.
#[pyfunction]
#[pyo3(signature = (var, /))]
fn _use_isolation_scopes(py: Python<'_>, var: Bound<'_, PyAny>) -> PyResult<()> {
    isolation_scope::use_scopes(py, var)
}

/// The isolation a key created here now gets ("page", "pool" or "auto"): the scoped
/// override of the running context, else the process policy.
#[pyfunction]
fn _effective_isolation() -> &'static str {
    memory::effective_isolation().name()
}

/// Statistics of the key pool: arenas, live slots, locked and mapped bytes, and the
/// share of the lock budget that automatic isolation gives page-isolated keys.
#[pyfunction]
fn _pool_stats(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    let d = pyo3::types::PyDict::new(py);
    let s = memory::pool::stats();
    d.set_item("arenas", s.arenas)?;
    d.set_item("live_slots", s.live_slots)?;
    d.set_item("locked_bytes", s.locked_bytes)?;
    d.set_item("mapped_bytes", s.mapped_bytes)?;
    d.set_item("page_locked_bytes", memory::guarded::live_data_bytes())?;
    d.set_item("page_share", memory::page_share())?;
    Ok(d)
}

fn probe_result(r: memory::sys::Probe) -> Option<i32> {
    r.err()
}

/// Live probes of the protections (for `keycell doctor`): a dict mapping each protection
/// to `None` (works) or the errno it failed with, plus the page size and limits.
#[pyfunction]
fn _probe(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    let d = pyo3::types::PyDict::new(py);
    let r = memory::sys::probe();
    d.set_item("mlock", probe_result(r.mlock))?;
    d.set_item("dontdump", probe_result(r.dontdump))?;
    d.set_item("wipeonfork", probe_result(r.wipeonfork))?;
    d.set_item("memfd_secret", probe_result(r.memfd_secret))?;
    d.set_item("page_size", memory::sys::page_size())?;
    d.set_item("backend", memory::default_allocator().name())?;
    Ok(d)
}

/// Address of the first secret byte of a key handle (`SecretKey`, `Ed25519PrivateKey`,
/// `X25519PrivateKey`): diagnostics (`keycell doctor` matches it against
/// `/proc/self/smaps`) and tests. The address is not secret; the bytes are.
#[pyfunction]
fn _key_address(key: &Bound<'_, PyAny>) -> Result<usize> {
    use key_cell::KeyHandle;
    if let Ok(k) = key.cast::<secret_key::SecretKey>() {
        return k.get().cell().address();
    }
    if let Ok(k) = key.cast::<ed25519::Ed25519PrivateKey>() {
        return k.get().cell().address();
    }
    if let Ok(k) = key.cast::<x25519::X25519PrivateKey>() {
        return k.get().cell().address();
    }
    if let Ok(k) = key.cast::<ec::ECPrivateKey>() {
        return k.get().cell().address();
    }
    Err(Error::Type(format!(
        "expected a keycell key handle, not {}",
        args::type_name(key)
    )))
}

/// Store a key handle's bytes in the kernel keyring as a `user` key with possessor-only
/// permissions (0x3f000000) set before it is linked into `keyring`; returns the serial.
/// See `keycell.keyring.store` (the dispatch over the handle classes lives here, beside
/// `_key_address`, so that `keyring.rs` does not import the classes that import it).
#[pyfunction]
#[pyo3(
    signature = (key, description, *, keyring = None, timeout = None),
    text_signature = "(key, description, *, keyring='session', timeout=None)"
)]
fn keyring_store(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    description: &str,
    keyring: Option<&Bound<'_, PyAny>>,
    timeout: Option<u32>,
) -> Result<i32> {
    use key_cell::KeyHandle;
    let target = keyring::store_args(description, keyring, timeout)?;
    if let Ok(k) = key.cast::<secret_key::SecretKey>() {
        return keyring::store_cell(py, k.get().cell(), description, target, timeout);
    }
    if let Ok(k) = key.cast::<ed25519::Ed25519PrivateKey>() {
        return keyring::store_cell(py, k.get().cell(), description, target, timeout);
    }
    if let Ok(k) = key.cast::<x25519::X25519PrivateKey>() {
        return keyring::store_cell(py, k.get().cell(), description, target, timeout);
    }
    if let Ok(k) = key.cast::<ec::ECPrivateKey>() {
        return keyring::store_cell(py, k.get().cell(), description, target, timeout);
    }
    if let Ok(k) = key.cast::<rsa::RSAPrivateKey>() {
        return keyring::store_cell(py, k.get().cell(), description, target, timeout);
    }
    Err(Error::Type(format!(
        "expected a keycell key handle (SecretKey, Ed25519PrivateKey, X25519PrivateKey, \
         ECPrivateKey, RSAPrivateKey), not {}",
        args::type_name(key)
    )))
}

/// Register the module's classes and functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<secret_key::SecretKey>()?;
    m.add_class::<protection::Protection>()?;
    m.add_class::<view::Exposure>()?;
    m.add_class::<view::KeyView>()?;
    m.add_class::<keystore::KeyStore>()?;
    m.add_class::<passphrase::Passphrase>()?;
    m.add_function(wrap_pyfunction!(passphrase::passphrase_weakness, m)?)?;
    m.add_class::<hmac::Hmac>()?;
    m.add_function(wrap_pyfunction!(hkdf::hkdf, m)?)?;
    m.add_function(wrap_pyfunction!(hkdf::hkdf_extract, m)?)?;
    m.add_function(wrap_pyfunction!(hkdf::hkdf_expand, m)?)?;
    m.add_function(wrap_pyfunction!(compare_digest, m)?)?;
    m.add_class::<ed25519::Ed25519PrivateKey>()?;
    m.add_class::<ed25519::Ed25519PublicKey>()?;
    m.add_function(wrap_pyfunction!(ed25519::ed25519_verify_batch, m)?)?;
    m.add_class::<x25519::X25519PrivateKey>()?;
    m.add_class::<rsa::RSAPrivateKey>()?;
    m.add_class::<rsa::RSAPublicKey>()?;
    m.add_class::<x25519::X25519PublicKey>()?;
    m.add_class::<ec::ECPrivateKey>()?;
    m.add_class::<ec::ECPublicKey>()?;
    m.add_class::<otp::Hotp>()?;
    m.add_class::<otp::Totp>()?;
    m.add_class::<aead::AesGcm>()?;
    m.add_class::<aead::ChaCha20Poly1305>()?;
    m.add_class::<aead::XChaCha20Poly1305>()?;
    m.add_class::<aead::AesGcmSiv>()?;
    m.add_function(wrap_pyfunction!(key_wrap::wrap_key, m)?)?;
    m.add_function(wrap_pyfunction!(key_wrap::unwrap_key, m)?)?;
    m.add_function(wrap_pyfunction!(set_policy, m)?)?;
    m.add_function(wrap_pyfunction!(get_policy, m)?)?;
    m.add_function(wrap_pyfunction!(_probe, m)?)?;
    m.add_function(wrap_pyfunction!(_use_isolation_scopes, m)?)?;
    m.add_function(wrap_pyfunction!(_effective_isolation, m)?)?;
    m.add_function(wrap_pyfunction!(_pool_stats, m)?)?;
    m.add_function(wrap_pyfunction!(_key_address, m)?)?;
    m.add_function(wrap_pyfunction!(key_io::_openssh_key_type, m)?)?;
    m.add_function(wrap_pyfunction!(key_io::_write_atomic, m)?)?;
    m.add_function(wrap_pyfunction!(keyring_store, m)?)?;
    m.add_function(wrap_pyfunction!(keyring::keyring_invalidate, m)?)?;
    m.add_function(wrap_pyfunction!(keyring::keyring_describe, m)?)?;
    m.add_function(wrap_pyfunction!(keyring::keyring_list, m)?)?;
    m.add_function(wrap_pyfunction!(keyring::_keyring_probe, m)?)?;
    m.add_function(wrap_pyfunction!(
        keyring::_keyring_session_is_user_session,
        m
    )?)?;
    m.add_class::<agent::AgentServer>()?;
    m.add_function(wrap_pyfunction!(agent::agent_harden, m)?)?;
    m.add_function(wrap_pyfunction!(agent::agent_check_policy, m)?)?;
    m.add_function(wrap_pyfunction!(agent::agent_read_policy, m)?)?;
    m.add_function(wrap_pyfunction!(agent::agent_read_public_key_file, m)?)?;
    m.add_class::<pkcs11::Pkcs11Token>()?;
    m.add_class::<pkcs11::Pkcs11Ed25519PrivateKey>()?;
    m.add_class::<pkcs11::Pkcs11ECPrivateKey>()?;
    m.add_class::<pkcs11::Pkcs11RSAPrivateKey>()?;
    m.add_class::<pkcs11::Pkcs11SecretKey>()?;
    m.add_function(wrap_pyfunction!(pkcs11::pkcs11_list_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(pkcs11::pkcs11_open_uri, m)?)?;
    m.add_class::<audit::AuditWriter>()?;
    m.add_function(wrap_pyfunction!(audit::audit_verify, m)?)?;
    m.add_function(wrap_pyfunction!(audit::audit_prove, m)?)?;
    m.add_function(wrap_pyfunction!(audit::audit_verify_inclusion, m)?)?;
    m.add_function(wrap_pyfunction!(audit::_audit_encode, m)?)?;
    m.add("GIL_RELEASE_THRESHOLD", bytes_like::GIL_RELEASE_THRESHOLD)?;
    m.add("MAX_KEY_LEN", crate::crypto::symmetric::MAX_KEY_LEN)?;
    Ok(())
}
