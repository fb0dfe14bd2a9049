//! The kernel keyring bindings (`keycell.keyring`, `*.from_keyring`): argument parsing and
//! the hand-over between a key handle's region and `crate::keyring`. The payload goes
//! from a guarded region to `add_key(2)` and from `KEYCTL_READ` into a new region; it is
//! never copied anywhere else.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString};

use crate::crypto::curve::{Algorithm, CurvePrivateKey, KEY_LEN};
use crate::crypto::ec::{self, Curve};
use crate::crypto::rsa::RsaPrivateKey;
use crate::crypto::symmetric::SymmetricKey;
use crate::keyring::{self, KeyringError, KeyringErrorKind, Lookup, Target};
use crate::memory::SecretBuf;

use super::args::type_name;
use super::errors::{Error, Result};
use super::isolation_scope::detach;
use super::key_cell::{CellKey, KeyCell};

/// How often a read is retried when the payload changes size under it.
const READ_ATTEMPTS: usize = 3;

impl From<KeyringError> for Error {
    fn from(e: KeyringError) -> Self {
        Error::Keyring(e)
    }
}

/// The keyring argument: a name ("session", "process", "thread", "user",
/// "user-session") or a keyring serial (`int`).
pub fn parse_target(obj: &Bound<'_, PyAny>) -> Result<Target> {
    if let Ok(s) = obj.cast::<PyString>() {
        let name = s.to_str()?;
        return Target::from_name(name).ok_or_else(|| {
            Error::Value(format!(
                "unknown keyring {name:?}: use \"session\", \"process\", \"thread\", \"user\", \
                 \"user-session\" or a keyring serial"
            ))
        });
    }
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
        return Ok(Target::Serial(parse_serial(obj)?));
    }
    Err(Error::Type(format!(
        "keyring must be a keyring name (str) or serial (int), not {}",
        type_name(obj)
    )))
}

fn parse_serial(obj: &Bound<'_, PyAny>) -> Result<i32> {
    match obj.extract::<i32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::Value(
            "a key serial must be a positive 32-bit integer".to_owned(),
        )),
    }
}

/// A key named by description (`str`, looked up in `keyring`) or serial (`int`).
pub enum KeyName {
    /// By serial.
    Serial(i32),
    /// By description, searched for from a keyring.
    Description(String, Target),
}

impl KeyName {
    /// Parse `key` (description or serial) and `keyring`.
    pub fn parse(key: &Bound<'_, PyAny>, keyring: &Bound<'_, PyAny>) -> Result<KeyName> {
        let target = parse_target(keyring)?;
        if let Ok(s) = key.cast::<PyString>() {
            let description = s.to_str()?;
            keyring::check_description(description).map_err(|m| Error::Value(m.to_owned()))?;
            return Ok(KeyName::Description(description.to_owned(), target));
        }
        if key.is_instance_of::<PyInt>() && !key.is_instance_of::<PyBool>() {
            return Ok(KeyName::Serial(parse_serial(key)?));
        }
        Err(Error::Type(format!(
            "the key must be named by its description (str) or serial (int), not {}",
            type_name(key)
        )))
    }

    /// [`KeyName::parse`] with the session keyring when `keyring` is `None`.
    pub fn parse_default(
        key: &Bound<'_, PyAny>,
        keyring: Option<&Bound<'_, PyAny>>,
    ) -> Result<KeyName> {
        let session = PyString::new(key.py(), "session");
        KeyName::parse(key, keyring.unwrap_or(session.as_any()))
    }

    fn lookup(&self) -> Lookup<'_> {
        match self {
            KeyName::Serial(s) => Lookup::Serial(*s),
            KeyName::Description(d, t) => Lookup::Description(d, *t),
        }
    }

    /// The kernel key.
    pub fn find(&self) -> Result<linux_keyutils::Key> {
        Ok(keyring::find(self.lookup())?)
    }
}

/// Read the key `name` into a new key made by `make(len, fill)`, retrying when the
/// payload changes size between the size query and the read; with `consume`, invalidate
/// the kernel key afterwards. `check_len` refuses a wrong size before any region exists.
fn load<K>(
    name: &KeyName,
    consume: bool,
    check_len: impl Fn(usize) -> Result<()>,
    make: impl Fn(&linux_keyutils::Key, usize) -> Result<K>,
) -> Result<K> {
    for _ in 0..READ_ATTEMPTS {
        let key = name.find()?;
        let len = keyring::payload_len(&key)?;
        check_len(len)?;
        match make(&key, len) {
            Ok(k) => {
                if consume {
                    keyring::invalidate(&key)?;
                }
                return Ok(k);
            }
            Err(Error::Keyring(e)) if e.kind == KeyringErrorKind::Changed => continue,
            Err(e) => return Err(e),
        }
    }
    Err(KeyringError::of(KeyringErrorKind::Changed).into())
}

/// `SecretKey.from_keyring`: a symmetric key read from the keyring into a new region.
pub fn load_symmetric(
    py: Python<'_>,
    name: &KeyName,
    consume: bool,
    length: Option<usize>,
) -> Result<SymmetricKey> {
    detach(py, || {
        load(
            name,
            consume,
            |len| match length {
                Some(want) if want != len => Err(Error::Value(format!(
                    "the key in the keyring is not {want} bytes long"
                ))),
                _ => Ok(()),
            },
            |key, len| {
                Ok(SymmetricKey::new_with(len, |dst| {
                    keyring::read_into(key, dst).map_err(Error::from)
                })?)
            },
        )
    })
}

/// `Ed25519PrivateKey.from_keyring` / `X25519PrivateKey.from_keyring`: a 32-byte seed or
/// scalar read from the keyring into a new region.
pub fn load_private<K: CurvePrivateKey>(
    py: Python<'_>,
    name: &KeyName,
    consume: bool,
) -> Result<K> {
    detach(py, || {
        load(
            name,
            consume,
            |len| {
                if len == KEY_LEN {
                    Ok(())
                } else {
                    let what = match K::ALGORITHM {
                        Algorithm::Ed25519 => "an Ed25519 private key (seed)",
                        Algorithm::X25519 => "an X25519 private key",
                    };
                    Err(Error::Value(format!(
                        "the key in the keyring is not {what}: it must be exactly 32 bytes"
                    )))
                }
            },
            |key, _| K::new_with(|dst| keyring::read_into(key, dst).map_err(Error::from)),
        )
    })
}

/// `ECPrivateKey.from_keyring`: a scalar (big-endian, 32 bytes for P-256, 48 for P-384)
/// read from the keyring into a new region. Without `curve` the payload's length names
/// it; with it, a payload of another length is refused before any region exists.
pub fn load_ec(
    py: Python<'_>,
    name: &KeyName,
    consume: bool,
    curve: Option<Curve>,
) -> Result<ec::PrivateKey> {
    let curve_of = |len: usize| -> Result<Curve> {
        let found = [Curve::P256, Curve::P384]
            .into_iter()
            .find(|c| c.scalar_len() == len && curve.is_none_or(|want| want == *c));
        found.ok_or_else(|| {
            let what = match curve {
                Some(c) => format!("exactly {} bytes (a {} scalar)", c.scalar_len(), c.name()),
                None => "32 bytes (a P-256 scalar) or 48 bytes (a P-384 scalar)".to_owned(),
            };
            Error::Value(format!(
                "the key in the keyring is not an EC private key: it must be {what}"
            ))
        })
    };
    detach(py, || {
        load(
            name,
            consume,
            |len| curve_of(len).map(|_| ()),
            |key, len| {
                ec::PrivateKey::new_with(curve_of(len)?, |dst| {
                    keyring::read_into(key, dst).map_err(Error::from)
                })
            },
        )
    })
}

/// The largest PKCS#1 DER of an RSA key taken from the keyring or a wrapped blob (the
/// key store's limit too).
pub use crate::crypto::key_kind::MAX_RSA_DER_LEN;

/// `RSAPrivateKey.from_keyring`: PKCS#1 `RSAPrivateKey` DER read from the keyring into a
/// guarded region and decoded there.
pub fn load_rsa(py: Python<'_>, name: &KeyName, consume: bool) -> Result<RsaPrivateKey> {
    detach(py, || {
        load(
            name,
            consume,
            |len| {
                if (1..=MAX_RSA_DER_LEN).contains(&len) {
                    Ok(())
                } else {
                    Err(Error::Value(format!(
                        "the key in the keyring is not an RSA private key: it must be 1 to \
                         {MAX_RSA_DER_LEN} bytes of PKCS#1 DER"
                    )))
                }
            },
            |key, len| {
                let der = SecretBuf::new_with(len, |dst| {
                    keyring::read_into(key, dst).map_err(Error::from)
                })?;
                Ok(RsaPrivateKey::from_der(der.bytes()?)?)
            },
        )
    })
}

/// The checked `description`, target and `timeout` of `keycell.keyring.store`.
pub fn store_args(
    description: &str,
    keyring: Option<&Bound<'_, PyAny>>,
    timeout: Option<u32>,
) -> Result<Target> {
    keyring::check_new_description(description).map_err(|m| Error::Value(m.to_owned()))?;
    if timeout == Some(0) {
        return Err(Error::Value(
            "timeout must be at least 1 second (None: no expiry)".to_owned(),
        ));
    }
    match keyring {
        Some(k) => parse_target(k),
        None => Ok(Target::Session),
    }
}

/// Store the secret bytes of a cell; refuses a sealed key.
pub fn store_cell<K: CellKey>(
    py: Python<'_>,
    cell: &KeyCell<K>,
    description: &str,
    target: Target,
    timeout: Option<u32>,
) -> Result<i32> {
    cell.check_exportable()?;
    detach(py, || {
        let live = cell.live()?;
        Ok(keyring::store(
            target,
            description,
            live.key().secret()?,
            timeout,
        )?)
    })
}

/// Invalidate a key (`KEYCTL_INVALIDATE`). See `keycell.keyring.invalidate`.
#[pyfunction]
#[pyo3(
    signature = (key, *, keyring = None),
    text_signature = "(key, *, keyring='session')"
)]
pub fn keyring_invalidate(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    keyring: Option<&Bound<'_, PyAny>>,
) -> Result<()> {
    let name = KeyName::parse_default(key, keyring)?;
    detach(py, || Ok(keyring::invalidate(&name.find()?)?))
}

fn description_dict<'py>(
    py: Python<'py>,
    d: &keyring::Description,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("serial", d.serial)?;
    out.set_item("type", &d.key_type)?;
    out.set_item("uid", d.uid)?;
    out.set_item("gid", d.gid)?;
    out.set_item("perm", d.perm)?;
    out.set_item("description", &d.description)?;
    Ok(out)
}

/// Describe a key (`KEYCTL_DESCRIBE`): never its payload. See `keycell.keyring.describe`.
#[pyfunction]
#[pyo3(
    signature = (key, *, keyring = None),
    text_signature = "(key, *, keyring='session')"
)]
pub fn keyring_describe<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    keyring: Option<&Bound<'py, PyAny>>,
) -> Result<Bound<'py, PyDict>> {
    let name = KeyName::parse_default(key, keyring)?;
    let d = detach(py, || Ok::<_, Error>(keyring::describe(&name.find()?)?))?;
    Ok(description_dict(py, &d)?)
}

/// The `user` keys linked directly into a keyring, described. See `keycell.keyring.list_keys`.
#[pyfunction]
#[pyo3(signature = (keyring = None), text_signature = "(keyring='session')")]
pub fn keyring_list<'py>(
    py: Python<'py>,
    keyring: Option<&Bound<'py, PyAny>>,
) -> Result<Bound<'py, PyList>> {
    let target = match keyring {
        Some(k) => parse_target(k)?,
        None => Target::Session,
    };
    let keys = detach(py, || keyring::list(target))?;
    let out = PyList::empty(py);
    for d in &keys {
        out.append(description_dict(py, d)?)?;
    }
    Ok(out)
}

/// Probe the keyring for `keycell doctor`: `None` when it works, else a dict with the
/// errno and the message.
#[pyfunction]
pub fn _keyring_probe(py: Python<'_>) -> PyResult<Option<Bound<'_, PyDict>>> {
    match detach(py, keyring::probe) {
        None => Ok(None),
        Some(e) => {
            let d = PyDict::new(py);
            d.set_item("errno", e.errno)?;
            d.set_item("message", e.to_string())?;
            Ok(Some(d))
        }
    }
}

/// Whether this process's session keyring is the user-session keyring, so that a key
/// stored in "the session keyring" would go to a new one that dies with the process (see
/// `keycell keyring put`).
#[pyfunction]
pub fn _keyring_session_is_user_session(py: Python<'_>) -> Result<bool> {
    Ok(detach(py, keyring::session_is_user_session)?)
}
