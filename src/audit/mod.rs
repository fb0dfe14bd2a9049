//! The tamper-evident, forward-secure audit log (`keycell.audit`). No Python here.
//!
//! - [`record`]: the exact bytes of one line, written and parsed (and [`json`], what an event
//!   value may be, checked by [`crate::json::validate`]);
//! - [`epoch`]: the per-epoch MAC key and its one-way HKDF step, in guarded memory;
//! - [`merkle`]: the RFC 6962 tree as a compact range, inclusion proofs;
//! - [`checkpoint`]: C2SP `tlog-checkpoint` bodies in C2SP `signed-note`s (Ed25519);
//! - [`state`]: the writer's 0600 state file (the current epoch key and a snapshot);
//! - [`lock`]: the writer lock shared by threads and processes;
//! - [`writer`]: appending, checkpoints, epochs, torn-tail repair, rotation;
//! - [`verify`]: the streaming verifier and its classification of the first failure.
//!
//! The format and what verification proves: `docs/audit.md`.

pub mod checkpoint;
pub mod epoch;
pub mod json;
pub mod lock;
pub mod merkle;
pub mod reader;
pub mod record;
pub mod state;
pub mod verify;
pub mod writer;

use std::path::PathBuf;
use std::time::Duration;

use crate::fs::FileError;
use crate::memory::MemoryError;

/// How a log fails verification: the kind of the first failure found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A line's bytes were changed (its MAC fails, or it is no longer a record).
    Modified,
    /// Lines are missing from the middle (an authentic line's sequence number jumps).
    Deleted,
    /// Authentic lines are out of order.
    Reordered,
    /// An authentic line appears twice.
    Duplicated,
    /// A line that does not belong to this log sits between two that chain.
    Inserted,
    /// The log ends before the signed checkpoint's size.
    Truncated,
    /// The last line is cut short (a crash while writing; `open` repairs it).
    TornTail,
    /// Lines are MAC'd with another key (a different `K0`, or a newer epoch's key).
    WrongKey,
    /// The checkpoint's signature does not verify under the public key.
    BadCheckpointSignature,
    /// A validly signed checkpoint disagrees with the log (its origin, or the Merkle root of
    /// the lines it covers: lines rewritten with valid MACs).
    CheckpointMismatch,
}

impl FailureKind {
    /// The stable name (used by the Python API and `--json`).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Modified => "modified",
            FailureKind::Deleted => "deleted",
            FailureKind::Reordered => "reordered",
            FailureKind::Duplicated => "duplicated",
            FailureKind::Inserted => "inserted",
            FailureKind::Truncated => "truncated",
            FailureKind::TornTail => "torn_tail",
            FailureKind::WrongKey => "wrong_key",
            FailureKind::BadCheckpointSignature => "bad_checkpoint_signature",
            FailureKind::CheckpointMismatch => "checkpoint_mismatch",
        }
    }
}

/// Every failure of the audit layer.
#[derive(Debug, Clone)]
pub enum AuditError {
    /// A file (`what`: "log", "state file", "checkpoint", "lock file") could not be used.
    File { what: &'static str, err: FileError },
    /// The memory layer failed (including use in a fork child).
    Memory(MemoryError),
    /// Another writer held the lock past the deadline.
    Busy {
        lock_path: PathBuf,
        timeout: Duration,
    },
    /// The log is not what this writer expects: tampering found while appending or opening.
    Tampered {
        line: u64,
        kind: FailureKind,
        detail: String,
    },
    /// The state file is malformed or does not match the log.
    State(String),
    /// A bad argument.
    Invalid(String),
    /// `create` found an existing log.
    Exists,
    /// The writer was closed.
    Closed,
}

impl From<MemoryError> for AuditError {
    fn from(e: MemoryError) -> Self {
        AuditError::Memory(e)
    }
}

impl AuditError {
    pub(crate) fn io(what: &'static str, context: &str, e: &std::io::Error) -> Self {
        AuditError::File {
            what,
            err: FileError::io(context, e),
        }
    }
}

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditError::File { what, err } => match err {
                FileError::Insecure(r) => write!(f, "refusing the {what}: {r}"),
                FileError::Unusable { reason, .. } => write!(f, "the {what}: {reason}"),
            },
            AuditError::Memory(m) => write!(f, "{m}"),
            AuditError::Busy { lock_path, timeout } => write!(
                f,
                "the log's lock file {:?} is held by another writer and was not released \
                 within {:.3} s",
                lock_path.display().to_string(),
                timeout.as_secs_f64()
            ),
            AuditError::Tampered { line, kind, detail } => {
                write!(f, "line {line}: {} ({detail})", kind.name())
            }
            AuditError::State(m) => write!(f, "the state file: {m}"),
            AuditError::Invalid(m) => f.write_str(m),
            AuditError::Exists => f.write_str("a log already exists at this path"),
            AuditError::Closed => f.write_str("the audit log is closed"),
        }
    }
}
