//! `Ed25519PrivateKey`, `Ed25519PublicKey` and `ed25519_verify_batch`.
//!
//! The private key is a thin class over a [`KeyCell`] (life cycle, locking and fork rules
//! in `key_cell.rs`).

use ed25519_dalek::VerifyingKey;
use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::crypto::curve::Algorithm;
use crate::crypto::ed25519::{self, PrivateKey, VerifyError};
use crate::keyfile::ssh_public::SshPublicKey;

use std::sync::Arc;

use super::asymmetric::{self as common, hex, private_key_methods, PrivateKeyHandle};
use super::bytes_like::{bytes_like, maybe_detach, BytesLike};
use super::errors::{Error, Result};
use super::export::private_export_methods;
use super::jwk;
use super::key_cell::{key_handle_methods, KeyCell, KeyHandle};
use super::pyca::{cryptography_private_methods, cryptography_public_methods};

/// An Ed25519 private key held outside the Python heap.
///
/// The 32-byte seed and the expanded secret key derived from it (clamped scalar and nonce
/// prefix, RFC 8032 §5.1.5) live together in one guarded region: guard pages, canary,
/// `mlock`, `MADV_DONTDUMP`, `MADV_WIPEONFORK`, read-only while idle, wiped on
/// `destroy()`. Signing runs in Rust on that region; stack temporaries are wiped.
#[pyclass(frozen, module = "keycell._native")]
pub struct Ed25519PrivateKey {
    cell: Arc<KeyCell<PrivateKey>>,
    public: VerifyingKey,
}

impl Ed25519PrivateKey {
    /// The public key (not secret; used by the audit log to name its checkpoint signer).
    pub(crate) fn public_raw(&self) -> [u8; 32] {
        self.public.to_bytes()
    }
}

impl KeyHandle for Ed25519PrivateKey {
    type Key = PrivateKey;
    fn cell(&self) -> &KeyCell<PrivateKey> {
        &self.cell
    }
}

impl PrivateKeyHandle for Ed25519PrivateKey {
    fn from_key(py: Python<'_>, key: PrivateKey, exportable: bool) -> Result<Self> {
        let public = *key.public();
        let cell = common::new_cell(py, "Ed25519PrivateKey", key, exportable)?;
        Ok(Ed25519PrivateKey { cell, public })
    }
}

key_handle_methods!(Ed25519PrivateKey);
private_key_methods!(Ed25519PrivateKey, "ed25519", "seed");
private_export_methods!(Ed25519PrivateKey, true);
cryptography_private_methods!(Ed25519PrivateKey);
cryptography_public_methods!(Ed25519PublicKey);

#[pymethods]
impl Ed25519PrivateKey {
    /// Load a key from the bytes of an OpenSSH private key file (`BEGIN OPENSSH PRIVATE
    /// KEY`, as `ssh-keygen -t ed25519` writes), unencrypted or encrypted (bcrypt KDF with
    /// aes256-ctr or aes256-gcm@openssh.com): `passphrase` is a `Passphrase` or a writable
    /// buffer (copied into guarded memory and wiped). The file is decoded and decrypted in
    /// guarded memory only; a writable `data` is wiped afterwards when `wipe` is true.
    /// Raises `ValueError` for malformed or unsupported keys and a wrong passphrase.
    #[staticmethod]
    #[pyo3(signature = (data, *, passphrase = None, wipe = true, exportable = true))]
    fn from_openssh(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        passphrase: Option<&Bound<'_, PyAny>>,
        wipe: bool,
        exportable: bool,
    ) -> Result<Self> {
        common::from_openssh(py, data, passphrase, wipe, exportable)
    }

    /// Sign `data` (any bytes-like object); returns the 64-byte signature. The GIL is
    /// released for messages of 2 KiB and more.
    fn sign<'py>(&self, py: Python<'py>, data: &Bound<'py, PyAny>) -> Result<Bound<'py, PyBytes>> {
        let msg = bytes_like(data, "data")?;
        let msg = msg.as_slice();
        let sig = self
            .cell
            .with_key(py, msg.len(), |key| Ok(key.sign(msg)?))?;
        Ok(PyBytes::new(py, &sig))
    }

    /// The public key.
    fn public_key(&self) -> Result<Ed25519PublicKey> {
        self.cell.check_live()?;
        Ok(Ed25519PublicKey { key: self.public })
    }
}

/// An Ed25519 public key (not secret: ordinary memory, comparable, hashable, picklable).
#[pyclass(frozen, module = "keycell._native")]
pub struct Ed25519PublicKey {
    key: VerifyingKey,
}

impl Ed25519PublicKey {
    /// The verifying key (used by the audit log's verifier).
    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    pub(crate) fn from_raw(raw: &[u8; 32]) -> Result<Self> {
        ed25519::public_key_from_bytes(raw)
            .map(|key| Ed25519PublicKey { key })
            .map_err(|_| {
                Error::Value(
                    "not a valid Ed25519 public key: the bytes do not encode a curve point"
                        .to_owned(),
                )
            })
    }
}

fn invalid_signature() -> Error {
    Error::InvalidSignature("the signature does not verify".to_owned())
}

#[pymethods]
impl Ed25519PublicKey {
    /// Load a public key from its 32-byte encoding. Raises `ValueError` when the bytes do
    /// not encode a curve point (pyca/cryptography defers that to `verify`). Small-order
    /// points load, but no signature verifies under them.
    #[staticmethod]
    fn from_public_bytes(data: &Bound<'_, PyAny>) -> Result<Self> {
        Self::from_raw(&common::raw_public(data, Algorithm::Ed25519)?)
    }

    /// Load a public key from DER SubjectPublicKeyInfo (RFC 8410).
    #[staticmethod]
    fn from_der(data: &Bound<'_, PyAny>) -> Result<Self> {
        Self::from_raw(&common::public_from_der(data, Algorithm::Ed25519)?)
    }

    /// Load a public key from a PEM "PUBLIC KEY" block (`str` or bytes-like).
    #[staticmethod]
    fn from_pem(data: &Bound<'_, PyAny>) -> Result<Self> {
        Self::from_raw(&common::public_from_pem(data, Algorithm::Ed25519)?)
    }

    /// Load a public key from an OpenSSH public key line (`ssh-ed25519 AAAA... [comment]`,
    /// as in `id_ed25519.pub` and `authorized_keys`; `str` or bytes-like). Raises
    /// `ValueError` for a malformed line or another key type.
    #[staticmethod]
    fn from_openssh(data: &Bound<'_, PyAny>) -> Result<Self> {
        match common::public_from_openssh(data, "an Ed25519 key", |k| {
            matches!(k, SshPublicKey::Ed25519(_))
        })? {
            SshPublicKey::Ed25519(raw) => Self::from_raw(&raw),
            _ => Err(Error::Value("not an Ed25519 key".to_owned())),
        }
    }

    /// The OpenSSH public key line (`ssh-ed25519 AAAA...`, then ` comment` if given), as
    /// `ssh-keygen -y` prints it (without the newline).
    #[pyo3(signature = (comment = None))]
    fn to_openssh(&self, comment: Option<&str>) -> Result<String> {
        common::openssh_line(&SshPublicKey::Ed25519(self.key.to_bytes()), comment)
    }

    /// The public JSON Web Key as a dict of its required members (RFC 7638 order):
    /// `{"crv": "Ed25519", "kty": "OKP", "x": ...}` (RFC 8037).
    fn to_jwk<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyDict>> {
        jwk::okp(py, "Ed25519", self.key.as_bytes())
    }

    /// The 32-byte encoding.
    fn public_bytes_raw<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.key.as_bytes())
    }

    /// DER SubjectPublicKeyInfo (RFC 8410), as `openssl pkey -pubout -outform DER` writes.
    fn public_bytes_der<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        common::der_bytes(py, Algorithm::Ed25519, self.key.as_bytes())
    }

    /// PEM "PUBLIC KEY" block (SubjectPublicKeyInfo), as bytes.
    fn public_bytes_pem<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        common::pem_bytes(py, Algorithm::Ed25519, self.key.as_bytes())
    }

    /// Verify `signature` over `data`; raises `InvalidSignature` if it does not verify.
    ///
    /// Strict RFC 8032 verification (ed25519-dalek `verify_strict`): the signature must be
    /// exactly 64 bytes with `S < L`, `R` must be canonically encoded, and neither `R` nor
    /// the public key may be of small order. The GIL is released for messages of 2 KiB
    /// and more.
    fn verify(
        &self,
        py: Python<'_>,
        signature: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
    ) -> Result<()> {
        let sig = bytes_like(signature, "signature")?;
        let msg = bytes_like(data, "data")?;
        let (sig, msg) = (sig.as_slice(), msg.as_slice());
        let key = &self.key;
        maybe_detach(py, msg.len(), || ed25519::verify(key, msg, sig)).map_err(|e| match e {
            VerifyError::InvalidSignature | VerifyError::InvalidPublicKey => invalid_signature(),
        })
    }

    fn __richcmp__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let py = slf.py();
        let Ok(other) = other.cast::<Ed25519PublicKey>() else {
            return py.NotImplemented();
        };
        common::compare(
            py,
            op,
            slf.get().key.as_bytes() == other.get().key.as_bytes(),
        )
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        PyBytes::new(py, self.key.as_bytes()).hash()
    }

    fn __repr__(&self) -> String {
        format!("<Ed25519PublicKey {}>", hex(self.key.as_bytes()))
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let ctor = py
            .get_type::<Ed25519PublicKey>()
            .getattr("from_public_bytes")?;
        Ok((ctor, (PyBytes::new(py, slf.get().key.as_bytes()),)))
    }

    fn __copy__(slf: &Bound<'_, Self>) -> Py<Self> {
        slf.clone().unbind()
    }

    fn __deepcopy__(slf: &Bound<'_, Self>, _memo: &Bound<'_, PyAny>) -> Py<Self> {
        slf.clone().unbind()
    }
}

/// Verify many `(public_key, signature, message)` triples at once with Ed25519 batch
/// verification; raises `InvalidSignature` (naming the first bad item) if any fails. An
/// empty iterable verifies.
///
/// Each item gets the same checks as `Ed25519PublicKey.verify` before the batch equation
/// (length, `S < L`, canonical `R`, no small-order `R` or key), so every signature that
/// `verify` rejects for its encoding is rejected here too. The batch equation itself is a
/// random linear combination of the items' equations: a signature whose `R` carries a
/// small torsion component, which only the private key's holder can produce, may pass the
/// batch although `verify` rejects it. The GIL is released for large batches.
#[pyfunction]
pub fn ed25519_verify_batch(py: Python<'_>, items: &Bound<'_, PyAny>) -> Result<()> {
    let iter = items.try_iter().map_err(|_| {
        Error::Type(
            "items must be an iterable of (public_key, signature, message) triples".to_owned(),
        )
    })?;
    let mut publics: Vec<VerifyingKey> = Vec::new();
    let mut sigs: Vec<BytesLike<'_>> = Vec::new();
    let mut msgs: Vec<BytesLike<'_>> = Vec::new();
    for (i, item) in iter.enumerate() {
        let item = item?;
        let triple = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 3)
            .map(|t| (t.get_item(0), t.get_item(1), t.get_item(2)));
        let Some((Ok(pk), Ok(sig), Ok(msg))) = triple else {
            return Err(Error::Type(format!(
                "item {i} must be a (public_key, signature, message) tuple"
            )));
        };
        let pk = pk.cast::<Ed25519PublicKey>().map_err(|_| {
            Error::Type(format!(
                "item {i}: the public key must be an Ed25519PublicKey"
            ))
        })?;
        publics.push(pk.get().key);
        sigs.push(bytes_like(&sig, "signature")?);
        msgs.push(bytes_like(&msg, "message")?);
    }
    let sig_slices: Vec<&[u8]> = sigs.iter().map(|s| s.as_slice()).collect();
    let msg_slices: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
    // Inputs: the messages, 64-byte signatures and 32-byte keys.
    let input_len = msg_slices.iter().map(|m| m.len()).sum::<usize>() + 96 * publics.len();
    maybe_detach(py, input_len, || {
        ed25519::verify_batch(&publics, &sig_slices, &msg_slices)
    })
    .map_err(|e| {
        Error::InvalidSignature(format!(
            "the batch does not verify: item {} is invalid",
            e.index
        ))
    })
}
