//! Files, shared by every layer that reads or writes them (key files, the key store, the
//! audit log): safe open of secret files ([`PrivateFile`]: `O_NOFOLLOW`, regular, owned by
//! us, no group/other access, bounded size; or, by explicit [`Trust`], where a platform
//! put them), systemd credentials' paths ([`credential_path`]), atomic durable
//! replacement ([`write_atomic`]), the file error ([`FileError`]), lock files
//! ([`open_lock_file`]) and the one deadline-bounded lock wait ([`wait_until`]). No key
//! formats here (`crate::keyfile`), no Python.

mod atomic_write;
mod credential;
mod error;
mod lock_file;
mod lock_wait;
mod open;
mod trust;

pub use atomic_write::{parent_dir, sync_dir, write_atomic};
pub use credential::{credential_path, CredentialError};
pub use error::{unusable, FileError};
pub use lock_file::{open_lock_file, LockFileError};
pub use lock_wait::{wait_until, WaitError};
pub use open::PrivateFile;
pub use trust::{SecretPath, Trust, MAX_LINKS};
