//! The streaming verifier: one pass over the log in constant memory (one line at a time,
//! the Merkle compact range, the current epoch key), checking every MAC under its epoch's
//! key derived from `K0`, the hash chain, the sequence, the epoch order, and the Merkle
//! root against a signed checkpoint. It reports the first failure with its line number and
//! a classification (see [`FailureKind`] and `docs/audit.md`). Classifying may read the
//! file again (the next line, the rest of the file, or the lines before), still in constant
//! memory.

use std::fs::File;
use std::path::Path;

use ed25519_dalek::VerifyingKey;

use super::checkpoint::{self, Checkpoint, CheckpointError};
use super::epoch::{EpochKey, MIN_K0_LEN};
use super::merkle::{leaf_hash, CompactRange, Hash};
use super::reader::{Line, LineReader};
use super::record::{self, Record};
use super::{AuditError, FailureKind};

/// The largest epoch the verifier derives a key for on a file's first line (stepping from
/// `K0` costs a few microseconds per epoch; a forged epoch number must not make it spin
/// for hours). 2^20 epochs of the default 10,000 records are 10^10 records.
pub const MAX_EPOCH_DERIVE: u64 = 1 << 20;
/// Past the first line, how far beyond the current epoch a line's claimed epoch may be and
/// still get its key derived (only to tell a reseal from a modification).
pub const MAX_EPOCH_JUMP: u64 = 1 << 10;

/// The first failure found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The line (1-based); 0 for the checkpoint itself.
    pub line: u64,
    /// A sentence for people.
    pub detail: String,
}

/// What verification found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Lines that verified (before the first failure).
    pub lines: u64,
    /// Bytes of those lines.
    pub bytes: u64,
    /// Epochs those lines span.
    pub epochs: u64,
    /// Sequence number of the first and last verified line.
    pub first_seq: Option<u64>,
    /// Sequence number of the last verified line.
    pub last_seq: Option<u64>,
    /// The origin named by the first record.
    pub origin: Option<String>,
    /// The checkpoint checked against, if any.
    pub checkpoint: Option<Checkpoint>,
    /// The Merkle root of the verified lines.
    pub root: Hash,
    /// For a file after a rotation, declared so (`rotated_ok`): the sequence number of its
    /// first record, before which nothing was checked.
    pub unchecked_before: Option<u64>,
    /// The first failure; `None` when the log verified.
    pub failure: Option<Failure>,
}

/// `origin` from the body of a genesis or rotate record, by its fixed prefix.
fn origin_of(rec: &Record<'_>) -> Option<(bool, String)> {
    for (genesis, prefix) in [
        (true, &b"{\"type\":\"genesis\",\"origin\":\""[..]),
        (false, &b"{\"type\":\"rotate\",\"origin\":\""[..]),
    ] {
        if let Some(rest) = rec.body.strip_prefix(prefix) {
            let end = rest.iter().position(|&c| c == b'"')?;
            let o = std::str::from_utf8(&rest[..end]).ok()?;
            return checkpoint::valid_origin(o).then(|| (genesis, o.to_owned()));
        }
    }
    None
}

struct State<'k> {
    k0: &'k [u8],
    key: Option<EpochKey>,
    first_epoch: u64,
    expected: u64,
    last: Hash,
    range: CompactRange,
}

impl State<'_> {
    /// Whether `rec`'s MAC verifies under the key of its epoch; `Some(key)` when that key is
    /// the next one (to keep if the line is accepted).
    fn mac_ok(
        &self,
        rec: &Record<'_>,
        line: &[u8],
    ) -> Result<(bool, Option<EpochKey>), AuditError> {
        let signed = &line[..rec.signed_len];
        match &self.key {
            Some(k) if k.epoch() == rec.epoch => Ok((k.check(signed, &rec.mac)?, None)),
            Some(k) if k.epoch() + 1 == rec.epoch => {
                let n = k.next()?;
                Ok((n.check(signed, &rec.mac)?, Some(n)))
            }
            _ if rec.epoch > MAX_EPOCH_DERIVE => Ok((false, None)),
            Some(k) if rec.epoch > k.epoch().saturating_add(MAX_EPOCH_JUMP) => Ok((false, None)),
            _ => {
                let k = EpochKey::from_k0(self.k0, rec.epoch)?;
                Ok((k.check(signed, &rec.mac)?, None))
            }
        }
    }
}

fn fail(kind: FailureKind, line: u64, detail: impl Into<String>) -> Failure {
    Failure {
        kind,
        line,
        detail: detail.into(),
    }
}

fn io(e: std::io::Error) -> AuditError {
    AuditError::io("log", "read failed", &e)
}

fn open(path: &Path) -> Result<File, AuditError> {
    File::open(path).map_err(|e| AuditError::io("log", "cannot open it", &e))
}

/// Verify the log at `path` under `K0` = `k0` and, when `checkpoint` is given, that signed
/// checkpoint under its signer's public key. I/O errors are `Err`; findings are in the
/// report.
///
/// A log must begin with its genesis record: a first line that is a `rotate` record is
/// [`FailureKind::Deleted`] unless `rotated_ok` declares the file one that follows a
/// rotation, and then [`Report::unchecked_before`] says from which sequence number it was
/// checked. Whoever holds a later epoch key (the state file on the host) can write a
/// `rotate` line and records after it that verify under `K0`, so a file that starts there
/// proves nothing about the history before it unless its archive is verified with it.
pub fn verify_file(
    path: &Path,
    k0: &[u8],
    checkpoint: Option<(&[u8], &VerifyingKey)>,
    rotated_ok: bool,
) -> Result<Report, AuditError> {
    if k0.len() < MIN_K0_LEN {
        return Err(AuditError::Invalid(format!(
            "the audit key must be at least {MIN_K0_LEN} bytes"
        )));
    }
    let mut report = Report::default();
    let cp = match checkpoint
        .map(|(c, public)| checkpoint::verify(c, public))
        .transpose()
    {
        Ok(cp) => cp,
        Err(CheckpointError::BadSignature(m)) => {
            report.failure = Some(fail(FailureKind::BadCheckpointSignature, 0, m));
            return Ok(report);
        }
        Err(e @ CheckpointError::Malformed(_)) => {
            report.failure = Some(fail(FailureKind::BadCheckpointSignature, 0, e.to_string()));
            return Ok(report);
        }
    };
    report.checkpoint = cp.clone();
    let mut reader = LineReader::new(open(path)?, 0);
    let mut st = State {
        k0,
        key: None,
        first_epoch: 0,
        expected: 0,
        last: [0; 32],
        range: CompactRange::new(),
    };
    let mut n: u64 = 0;
    let mut ended = false;
    let mut cur: Vec<u8> = Vec::new();
    let failure = loop {
        let Some((_, line)) = reader.next_line().map_err(io)? else {
            break None;
        };
        n += 1;
        let l = match line {
            Line::Torn { len, .. } => {
                let covered = cp.as_ref().is_some_and(|c| n <= c.size);
                break Some(if covered {
                    fail(
                        FailureKind::Truncated,
                        n,
                        format!("line {n} is cut short ({len} bytes, no newline) but the checkpoint covers it"),
                    )
                } else {
                    fail(
                        FailureKind::TornTail,
                        n,
                        format!("the last line is cut short ({len} bytes, no newline): a crash while writing; opening the log repairs it"),
                    )
                });
            }
            Line::Overlong(_) => {
                let f = unauthentic(&mut reader, &st, n, None, b"")?;
                break Some(f);
            }
            Line::Complete(l) => {
                cur.clear();
                cur.extend_from_slice(l);
                std::mem::take(&mut cur)
            }
        };
        let rec = match record::parse(&l) {
            Ok(r) => r,
            Err(e) => {
                let mut f = unauthentic(&mut reader, &st, n, None, &l)?;
                f.detail = format!("{} (not a record: {e})", f.detail);
                break Some(f);
            }
        };
        if n == 1 {
            let (ok, _) = st.mac_ok(&rec, &l)?;
            if !ok {
                break Some(unauthentic(&mut reader, &st, n, Some(&rec), &l)?);
            }
            let Some((genesis, origin)) = rec.internal.then(|| origin_of(&rec)).flatten() else {
                break Some(fail(
                    FailureKind::Deleted,
                    1,
                    "the log does not begin with its genesis (or rotation) record",
                ));
            };
            if genesis && (rec.seq != 0 || rec.epoch != 0 || rec.prev != [0; 32]) {
                break Some(fail(FailureKind::Modified, 1, "a malformed genesis record"));
            }
            if !genesis {
                if !rotated_ok {
                    break Some(fail(
                        FailureKind::Deleted,
                        1,
                        "the log begins with a rotate record, not its genesis: alone, a file \
                         after a rotation proves nothing about the history before it; verify \
                         it with its archive (verify_rotated, --previous) or declare it \
                         rotated (rotated_ok=True, --rotated)",
                    ));
                }
                report.unchecked_before = Some(rec.seq);
            }
            if let Some(c) = &cp {
                if c.origin != origin {
                    break Some(fail(
                        FailureKind::CheckpointMismatch,
                        0,
                        "the checkpoint is for another log (its origin differs)",
                    ));
                }
            }
            report.origin = Some(origin);
            report.first_seq = Some(rec.seq);
            st.key = Some(EpochKey::from_k0(k0, rec.epoch)?);
            st.first_epoch = rec.epoch;
        } else {
            let (ok, stepped) = st.mac_ok(&rec, &l)?;
            if !ok {
                break Some(unauthentic(&mut reader, &st, n, Some(&rec), &l)?);
            }
            if ended {
                break Some(fail(
                    FailureKind::Inserted,
                    n,
                    format!("line {n} follows the record that ended this file (it was rotated)"),
                ));
            }
            if let Some(f) = authentic_out_of_place(path, &mut reader, &st, n, &rec, &l)? {
                break Some(f);
            }
            if let Some(k) = stepped {
                st.key = Some(k);
            }
        }
        ended = rec.internal && rec.body.starts_with(record::END_PREFIX);
        let leaf = leaf_hash(&l);
        st.range.push(leaf);
        st.last = leaf;
        st.expected = rec.seq.wrapping_add(1);
        report.last_seq = Some(rec.seq);
        report.lines = n;
        report.bytes += l.len() as u64 + 1;
        cur = l;
        if let Some(c) = &cp {
            if c.size == n && st.range.root() != c.root {
                break Some(fail(
                    FailureKind::CheckpointMismatch,
                    n,
                    "the Merkle root of the lines up to here differs from the signed checkpoint \
                     (lines were rewritten with valid MACs, or the checkpoint is of another log)",
                ));
            }
        }
    };
    let failure = failure.or_else(|| {
        if n == 0 {
            return Some(fail(FailureKind::Truncated, 1, "the log is empty"));
        }
        match &cp {
            Some(c) if c.size == 0 && c.root != CompactRange::new().root() => Some(fail(
                FailureKind::CheckpointMismatch,
                0,
                "a checkpoint of size 0 must carry the empty tree's root",
            )),
            Some(c) if report.lines < c.size => Some(fail(
                FailureKind::Truncated,
                report.lines + 1,
                format!(
                    "the log ends after {} lines but the signed checkpoint covers {}",
                    report.lines, c.size
                ),
            )),
            _ => None,
        }
    });
    report.epochs = match &st.key {
        Some(k) => k.epoch() - st.first_epoch + 1,
        None => 0,
    };
    report.root = st.range.root();
    report.failure = failure;
    Ok(report)
}

/// Classify line `n` whose MAC does not verify (or that is not a record at all), using the
/// line after it: if that one continues the chain from the line before `n`, line `n` was
/// inserted; if it chains onto line `n`, the lines were MAC'd with another key (the chain
/// was rebuilt, or `K0` is wrong); otherwise line `n` was modified.
fn unauthentic<R: std::io::Read>(
    reader: &mut LineReader<R>,
    st: &State<'_>,
    n: u64,
    rec: Option<&Record<'_>>,
    l: &[u8],
) -> Result<Failure, AuditError> {
    let next = reader.next_line().map_err(io)?;
    let next_rec = match &next {
        Some((_, Line::Complete(nl))) => record::parse(nl).ok().map(|r| (r.prev, r.seq)),
        _ => None,
    };
    Ok(match next_rec {
        Some((prev, seq)) if n > 1 && prev == st.last && seq == st.expected => fail(
            FailureKind::Inserted,
            n,
            format!("line {n} does not belong here: the next line continues the chain without it"),
        ),
        Some((prev, _)) if rec.is_some() && prev == leaf_hash(l) => fail(
            FailureKind::WrongKey,
            n,
            format!("line {n} and the lines chained onto it are MAC'd with another key (a different K0, or a rebuilt chain)"),
        ),
        None if n == 1 && rec.is_some() => fail(
            FailureKind::WrongKey,
            1,
            "the first line's MAC does not verify under this key",
        ),
        _ => fail(
            FailureKind::Modified,
            n,
            format!("line {n} was modified: its MAC does not verify"),
        ),
    })
}

/// Classify an authentic line (valid MAC) that may be out of place; `None` if it belongs.
fn authentic_out_of_place<R: std::io::Read>(
    path: &Path,
    reader: &mut LineReader<R>,
    st: &State<'_>,
    n: u64,
    rec: &Record<'_>,
    l: &[u8],
) -> Result<Option<Failure>, AuditError> {
    let cur = st.key.as_ref().map_or(0, EpochKey::epoch);
    if rec.seq == st.expected && rec.prev == st.last {
        if rec.epoch == cur || rec.epoch == cur + 1 {
            return Ok(None);
        }
        return Ok(Some(fail(
            FailureKind::WrongKey,
            n,
            format!(
                "line {n} is MAC'd with the key of epoch {} after epoch {cur}: resealed with \
                 another epoch's key",
                rec.epoch
            ),
        )));
    }
    if rec.seq > st.expected {
        // Does the missing record come later (reordered) or never (deleted)?
        let want = st.expected;
        while let Some((_, line)) = reader.next_line().map_err(io)? {
            if let Line::Complete(x) = line {
                if record::parse(x).is_ok_and(|r| r.seq == want) {
                    return Ok(Some(fail(
                        FailureKind::Reordered,
                        n,
                        format!("line {n} has sequence number {} where {want} belongs; {want} comes later", rec.seq),
                    )));
                }
            }
        }
        return Ok(Some(fail(
            FailureKind::Deleted,
            n,
            format!(
                "records {want} to {} are missing before line {n}",
                rec.seq - 1
            ),
        )));
    }
    let leaf = leaf_hash(l);
    if rec.seq < st.expected && (leaf == st.last || appears_before(path, n, &leaf)?) {
        return Ok(Some(fail(
            FailureKind::Duplicated,
            n,
            format!(
                "line {n} repeats the record with sequence number {}",
                rec.seq
            ),
        )));
    }
    Ok(Some(fail(
        FailureKind::Inserted,
        n,
        format!("line {n} is an authentic record of another chain (another log under the same key spliced in)"),
    )))
}

/// Whether a line with leaf hash `leaf` occurs among the first `n - 1` lines.
fn appears_before(path: &Path, n: u64, leaf: &Hash) -> Result<bool, AuditError> {
    let mut r = LineReader::new(open(path)?, 0);
    let mut i = 1;
    while i < n {
        match r.next_line().map_err(io)? {
            Some((_, Line::Complete(x))) if leaf_hash(x) == *leaf => return Ok(true),
            Some(_) => i += 1,
            None => break,
        }
    }
    Ok(false)
}

/// An inclusion proof of line `line` (1-based) in the first `size` lines of the log at
/// `path`: the line's bytes, its leaf hash, the proof hashes and the root. One pass, memory
/// `O(log size)`.
pub fn prove(
    path: &Path,
    line: u64,
    size: u64,
) -> Result<(Vec<u8>, Hash, Vec<Hash>, Hash), AuditError> {
    if line == 0 || line > size {
        return Err(AuditError::Invalid(
            "the line must be between 1 and the tree size".to_owned(),
        ));
    }
    let ranges = super::merkle::proof_ranges(line - 1, size);
    let mut partial: Vec<CompactRange> = ranges.iter().map(|_| CompactRange::new()).collect();
    let mut all = CompactRange::new();
    let mut target = Vec::new();
    let mut r = LineReader::new(open(path)?, 0);
    let mut i: u64 = 0;
    while i < size {
        let Some((_, Line::Complete(x))) = r.next_line().map_err(io)? else {
            return Err(AuditError::Invalid(
                "the log has fewer complete lines than the tree size".to_owned(),
            ));
        };
        let leaf = leaf_hash(x);
        if i == line - 1 {
            target = x.to_vec();
        }
        for (k, &(a, b)) in ranges.iter().enumerate() {
            if (a..b).contains(&i) {
                partial[k].push(leaf);
            }
        }
        all.push(leaf);
        i += 1;
    }
    let proof = partial.iter().map(CompactRange::root).collect();
    Ok((target.clone(), leaf_hash(&target), proof, all.root()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::writer::{checkpoint_path, Writer};
    use crate::crypto::ed25519::PrivateKey;

    #[test]
    fn writer_and_verifier_agree_and_mutations_are_classified() {
        let d = crate::test_dir::fresh("audit-verify");
        let path = d.join("a.log");
        let k0 = [5u8; 32];
        let sk = PrivateKey::from_seed(&[1u8; 32]).expect("key");
        let public = *sk.public().as_bytes();
        let mut w = Writer::create(&path, &k0, "t/log", 4, 3600, false).expect("create");
        for i in 0..20 {
            w.append(format!("{{\"i\":{i}}}").as_bytes())
                .expect("append");
        }
        w.checkpoint(&public, |b| Ok(sk.sign(b)?))
            .expect("checkpoint");
        assert!(w.append(b"{\"a\":\n1}").is_err());
        drop(w);
        let cp = std::fs::read(checkpoint_path(&path)).expect("cp");
        let good = std::fs::read(&path).expect("log");
        let run = |data: &[u8], key: &[u8]| {
            std::fs::write(&path, data).expect("write");
            verify_file(&path, key, Some((&cp, sk.public())), false).expect("verify")
        };
        let r = run(&good, &k0);
        assert!(r.failure.is_none(), "{:?}", r.failure);
        assert_eq!(
            (r.lines, r.epochs, r.checkpoint.map(|c| c.size)),
            (21, 6, Some(21))
        );
        let kind = |r: Report| r.failure.map(|f| (f.kind, f.line));
        let mut flipped = good.clone();
        let at = good.len() / 2;
        flipped[at] ^= 1;
        assert!(matches!(
            kind(run(&flipped, &k0)),
            Some((FailureKind::Modified, _))
        ));
        let cut = &good[..good.len() - 5];
        assert_eq!(kind(run(cut, &k0)), Some((FailureKind::Truncated, 21)));
        assert_eq!(
            kind(run(&good, &[6u8; 32])),
            Some((FailureKind::WrongKey, 1))
        );
        assert!(verify_file(&path, &[1u8; 16], None, false).is_err());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
