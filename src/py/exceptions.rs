//! Every Python exception the bindings raise, imported from `keycell/exceptions.py` (where
//! they are defined and documented) in one place, as pyca's `exceptions.rs` does. Only
//! `errors.rs` builds them, from the bindings' one error type; `protection.rs` issues
//! [`ProtectionWarning`]. The agent client's `AgentUnavailableError`, `AgentRefusedError`
//! and `AgentProtocolError` are raised by Python code only.

// The base class and the key life cycle.
pyo3::import_exception!(keycell.exceptions, KeycellError);
pyo3::import_exception!(keycell.exceptions, KeyDestroyedError);
pyo3::import_exception!(keycell.exceptions, KeyInUseError);
pyo3::import_exception!(keycell.exceptions, ForkedKeyError);
pyo3::import_exception!(keycell.exceptions, KeyNotExportableError);
// Memory protection.
pyo3::import_exception!(keycell.exceptions, ProtectionError);
pyo3::import_exception!(keycell.exceptions, MemoryLockError);
pyo3::import_exception!(keycell.exceptions, ProtectionWarning);
// Key files.
pyo3::import_exception!(keycell.exceptions, KeyFileError);
pyo3::import_exception!(keycell.exceptions, InsecureKeyFileError);
pyo3::import_exception!(keycell.exceptions, CredentialUnavailableError);
// Verification.
pyo3::import_exception!(keycell.exceptions, InvalidSignature);
pyo3::import_exception!(keycell.exceptions, InvalidCode);
pyo3::import_exception!(keycell.exceptions, InvalidTag);
pyo3::import_exception!(keycell.exceptions, AlreadyFinalized);
// The key store.
pyo3::import_exception!(keycell.exceptions, KeyStoreError);
pyo3::import_exception!(keycell.exceptions, StoreCorruptedError);
pyo3::import_exception!(keycell.exceptions, StoreAuthenticationError);
pyo3::import_exception!(keycell.exceptions, StoreEntryNotFoundError);
pyo3::import_exception!(keycell.exceptions, StoreEntryExistsError);
pyo3::import_exception!(keycell.exceptions, StoreLockedError);
// The kernel keyring.
pyo3::import_exception!(keycell.exceptions, KeyringError);
pyo3::import_exception!(keycell.exceptions, KeyringKeyNotFoundError);
pyo3::import_exception!(keycell.exceptions, KeyringKeyExpiredError);
pyo3::import_exception!(keycell.exceptions, KeyringPermissionError);
pyo3::import_exception!(keycell.exceptions, KeyringQuotaError);
pyo3::import_exception!(keycell.exceptions, KeyringUnavailableError);
// The agent server.
pyo3::import_exception!(keycell.exceptions, AgentError);
pyo3::import_exception!(keycell.exceptions, AgentPolicyError);
// PKCS#11 tokens (`Pkcs11Error` is also the name of the Rust error type in
// `crate::pkcs11`; refer to this one through the module path).
pyo3::import_exception!(keycell.exceptions, Pkcs11Error);
pyo3::import_exception!(keycell.exceptions, Pkcs11ModuleNotFoundError);
pyo3::import_exception!(keycell.exceptions, Pkcs11TokenNotFoundError);
pyo3::import_exception!(keycell.exceptions, Pkcs11PinIncorrectError);
pyo3::import_exception!(keycell.exceptions, Pkcs11PinLockedError);
pyo3::import_exception!(keycell.exceptions, Pkcs11PinFileError);
pyo3::import_exception!(keycell.exceptions, Pkcs11ObjectNotFoundError);
pyo3::import_exception!(keycell.exceptions, Pkcs11MechanismNotSupportedError);
pyo3::import_exception!(keycell.exceptions, Pkcs11NotLoggedInError);
pyo3::import_exception!(keycell.exceptions, Pkcs11ForkedError);
pyo3::import_exception!(keycell.exceptions, Pkcs11ClosedError);
// The audit log.
pyo3::import_exception!(keycell.exceptions, AuditError);
pyo3::import_exception!(keycell.exceptions, AuditTamperedError);
