//! Strict JSON (RFC 8259), hand-written: small, fuzzed and readable, with no dependency.
//!
//! - [`scan`]: the lexical grammar, in one place: whitespace, the literals, strings (escapes,
//!   `\uXXXX` and surrogate pairs, no raw control characters) and the number grammar;
//! - [`validate`]: whether bytes are exactly one JSON value, checked without allocating
//!   (any RFC 8259 number; the caller bounds the depth);
//! - [`value`]: a [`value::Value`] tree of a whole document, for configuration: integers
//!   only (`i64`), no repeated member names, UTF-8, the caller's size and depth limits, and
//!   a byte offset in every error;
//! - [`write`]: strings written as Python's `json.dumps(..., ensure_ascii=False)` does.
//!
//! Callers choose the limits (and the validator's callers check UTF-8 if they need it);
//! nothing here knows who they are.
//!
//! Why not `serde_json` (weighed for issue 22): it takes the last of repeated member names
//! silently (a signed policy with `"uids"` twice must be refused, not read one way here and
//! another by a reviewer's tool), needs a custom visitor for that and for the depth and
//! size limits, reads integers beyond `i64` as floats, and always builds values, where the
//! audit log checks each event on the append path without allocating; and its writer does
//! not produce Python's `json.dumps(ensure_ascii=False)` bytes, which the records must match
//! so existing logs keep verifying. The four files here are ~800 lines, fuzzed
//! (`tests/fuzz_parsers.rs`) and dependency-free, so they stay.

pub mod scan;
pub mod validate;
pub mod value;
pub mod write;

/// Why a document was refused, with the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub offset: usize,
    pub reason: &'static str,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

/// A refusal of `reason` at `offset`.
#[inline]
pub(crate) fn err<T>(offset: usize, reason: &'static str) -> Result<T, Error> {
    Err(Error { offset, reason })
}
