//! The writer: appends records under the lock, evolves the epoch key, writes checkpoints,
//! repairs a torn tail, rotates.
//!
//! Every append: take the lock; if the log changed since this writer's last write (another
//! process appended, or rotated the file), read the new lines, check their chain and MACs
//! (where this writer still has the key) and continue after them; repair a torn tail a
//! crashed writer left; step the epoch when it is full or old; write the whole line with
//! one `write(2)` on an `O_APPEND` descriptor (looping only on a short write); release the
//! lock. The call returns after the line is in the file (and, with `sync`, on disk).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::keyfile::write_atomic;
use crate::memory::fork::ProcessStamp;
use crate::memory::MemoryError;

use super::checkpoint::{self, valid_origin};
use super::epoch::{EpochKey, MIN_K0_LEN};
use super::lock::{LockFile, DEFAULT_LOCK_TIMEOUT};
use super::merkle::{leaf_hash, CompactRange};
use super::reader::{Line, LineReader};
use super::record::{self, begin_line, check_body, finish_line, END_PREFIX};
use super::state::{self, Snapshot, StateError};
use super::{AuditError, FailureKind};

/// `<log>.state`.
pub fn state_path(log: &Path) -> PathBuf {
    suffixed(log, ".state")
}

/// `<log>.checkpoint`.
pub fn checkpoint_path(log: &Path) -> PathBuf {
    suffixed(log, ".checkpoint")
}

fn suffixed(log: &Path, suffix: &str) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn state_error(e: StateError) -> AuditError {
    match e {
        StateError::File(err) => AuditError::File {
            what: "state file",
            err,
        },
        StateError::Memory(m) => AuditError::Memory(m),
        StateError::Malformed(m) => AuditError::State(m.to_owned()),
    }
}

fn open_log(path: &Path, create: bool) -> Result<File, AuditError> {
    let mut o = OpenOptions::new();
    o.read(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o600);
    if create {
        o.create_new(true);
    }
    o.open(path).map_err(|e| {
        if create && e.kind() == std::io::ErrorKind::AlreadyExists {
            AuditError::Exists
        } else {
            AuditError::io("log", "cannot open it", &e)
        }
    })
}

/// A JSON string literal for a public, already validated value (origin, file name).
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Signs a checkpoint body: returns the 64-byte Ed25519 signature.
pub type Signer<'a> = dyn Fn(&[u8]) -> Result<[u8; 64], AuditError> + 'a;

/// What `open` found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repair {
    /// Bytes of a torn last line that were cut off (and recorded in a repair record).
    pub torn_bytes: u64,
}

/// An open log writer. Not thread-safe by itself: the bindings hold it in a mutex.
pub struct Writer {
    path: PathBuf,
    log: File,
    lock: Arc<LockFile>,
    key: EpochKey,
    snap: Snapshot,
    sync: bool,
    timeout: Duration,
    made_in: ProcessStamp,
    line: Vec<u8>,
    /// The last line read was another writer's "end" record (it rotated the log).
    ended: bool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Writer({:?}, {} lines)",
            self.path,
            self.snap.range.size()
        )
    }
}

impl Writer {
    /// Create a new log at `path` (never replacing a file) with its genesis record and state
    /// file. `k0` (at least 32 bytes) is the verification key; only `E_0`, derived from it,
    /// is kept.
    pub fn create(
        path: &Path,
        k0: &[u8],
        origin: &str,
        epoch_records: u64,
        epoch_seconds: u64,
        sync: bool,
    ) -> Result<Writer, AuditError> {
        if k0.len() < MIN_K0_LEN {
            return Err(AuditError::Invalid(format!(
                "the audit key must be at least {MIN_K0_LEN} bytes"
            )));
        }
        if !valid_origin(origin) {
            return Err(AuditError::Invalid(
                "origin must be 1 to 255 printable ASCII characters without spaces or '+' \
                 (it names the log and its checkpoint signer)"
                    .to_owned(),
            ));
        }
        if epoch_records == 0 || epoch_seconds == 0 {
            return Err(AuditError::Invalid(
                "epoch_records and epoch_seconds must be positive".to_owned(),
            ));
        }
        let lock = Arc::new(LockFile::open(path)?);
        let lk = Arc::clone(&lock);
        let _held = lk.lock(DEFAULT_LOCK_TIMEOUT)?;
        let log = open_log(path, true)?;
        let key = EpochKey::first(k0)?;
        let (_, now) = record::now();
        let snap = Snapshot {
            origin: origin.to_owned(),
            epoch_records,
            epoch_seconds,
            epoch: 0,
            epoch_count: 0,
            epoch_start_us: now,
            offset: 0,
            next_seq: 0,
            last: [0; 32],
            range: CompactRange::new(),
        };
        let mut w = Writer::new(path, log, lock, key, snap, sync);
        let body = format!(
            "{{\"type\":\"genesis\",\"origin\":{},\"version\":1,\"epoch_records\":{},\
             \"epoch_seconds\":{}}}",
            json_str(origin),
            epoch_records,
            epoch_seconds
        );
        w.write_record(true, body.as_bytes())?;
        // A state file left by an earlier log at this path is replaced.
        w.write_state()?;
        Ok(w)
    }

    /// A writer of this process over an open log, its lock, epoch key and snapshot.
    fn new(
        path: &Path,
        log: File,
        lock: Arc<LockFile>,
        key: EpochKey,
        snap: Snapshot,
        sync: bool,
    ) -> Writer {
        Writer {
            path: path.to_owned(),
            log,
            lock,
            key,
            snap,
            sync,
            timeout: DEFAULT_LOCK_TIMEOUT,
            made_in: ProcessStamp::current(),
            line: Vec::new(),
            ended: false,
        }
    }

    /// Open an existing log to continue it: read the state file (the current epoch key and
    /// a snapshot), read the lines written after the snapshot, and repair a torn tail.
    pub fn open(path: &Path, sync: bool) -> Result<(Writer, Option<Repair>), AuditError> {
        let lock = Arc::new(LockFile::open(path)?);
        let lk = Arc::clone(&lock);
        let _held = lk.lock(DEFAULT_LOCK_TIMEOUT)?;
        let (snap, key) = state::read(&state_path(path)).map_err(state_error)?;
        if snap.epoch != key.epoch() {
            return Err(AuditError::State("epoch mismatch".to_owned()));
        }
        let log = open_log(path, false)?;
        let mut w = Writer::new(path, log, lock, key, snap, sync);
        let repair = w.catch_up()?;
        Ok((w, repair))
    }

    /// Set how long an append waits for another writer.
    pub fn set_lock_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    fn check_process(&self) -> Result<(), AuditError> {
        if !self.made_in.is_current() {
            return Err(AuditError::Memory(MemoryError::Forked));
        }
        Ok(())
    }

    /// Append one event (`body`: one JSON value without line breaks). Returns its
    /// sequence number.
    pub fn append(&mut self, body: &[u8]) -> Result<u64, AuditError> {
        self.check_process()?;
        check_body(body).map_err(|e| AuditError::Invalid(e.0.to_owned()))?;
        self.locked(|w| {
            w.catch_up()?;
            w.maybe_step()?;
            w.write_record(false, body)
        })
    }

    /// Run `f` under the lock.
    fn locked<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, AuditError>,
    ) -> Result<T, AuditError> {
        let lock = Arc::clone(&self.lock);
        let _held = lock.lock(self.timeout)?;
        f(self)
    }

    /// Sign and write a checkpoint of the whole log (atomically, to `<log>.checkpoint`),
    /// then start a new epoch if the current one has records. `sign` signs the checkpoint
    /// body with the key whose 32-byte public key is `public`. Returns the signed note.
    pub fn checkpoint(
        &mut self,
        public: &[u8; 32],
        sign: impl Fn(&[u8]) -> Result<[u8; 64], AuditError>,
    ) -> Result<String, AuditError> {
        self.check_process()?;
        self.locked(|w| {
            w.catch_up()?;
            let note = w.signed_note(public, &sign)?;
            write_atomic(&checkpoint_path(&w.path), note.as_bytes(), true).map_err(|err| {
                AuditError::File {
                    what: "checkpoint",
                    err,
                }
            })?;
            if w.snap.epoch_count > 0 {
                w.step()?;
            }
            Ok(note)
        })
    }

    /// Start a new epoch now if the current one has records (and catch up with other
    /// writers first): for a writer that may stay idle, so the key of its last records
    /// does not wait for the next append to be destroyed. Returns the current epoch.
    pub fn advance(&mut self) -> Result<u64, AuditError> {
        self.check_process()?;
        self.locked(|w| {
            w.catch_up()?;
            if w.snap.epoch_count > 0 {
                w.step()?;
            }
            Ok(w.key.epoch())
        })
    }

    fn signed_note(&self, public: &[u8; 32], sign: &Signer<'_>) -> Result<String, AuditError> {
        let (origin, size, root) = (
            &self.snap.origin,
            self.snap.range.size(),
            self.snap.range.root(),
        );
        let sig = sign(checkpoint::body(origin, size, &root).as_bytes())?;
        Ok(checkpoint::note(origin, size, &root, public, &sig))
    }

    /// Rotate: checkpoint this file into `<archive>.checkpoint`, rename it to `archive`
    /// (never replacing a file), and start a new file at the log's path whose first record
    /// (`"type":"rotate"`) continues the sequence and the hash chain and commits to the
    /// archived file's size and Merkle root. A new epoch starts with it, and a checkpoint
    /// of the new file replaces `<log>.checkpoint` (which would otherwise still describe
    /// the archived file).
    pub fn rotate(
        &mut self,
        archive: &Path,
        public: &[u8; 32],
        sign: impl Fn(&[u8]) -> Result<[u8; 64], AuditError>,
    ) -> Result<String, AuditError> {
        self.check_process()?;
        let name = archive
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| AuditError::Invalid("the archive path must name a file".to_owned()))?
            .to_owned();
        if std::fs::symlink_metadata(archive).is_ok() {
            return Err(AuditError::File {
                what: "archive",
                err: crate::keyfile::FileError::Unusable {
                    reason: "it already exists".to_owned(),
                    errno: Some(libc::EEXIST),
                },
            });
        }
        self.locked(|w| {
            w.catch_up()?;
            // The last line of the old file: writers of other processes that find it
            // reopen the log's path (no per-append stat needed to notice a rotation).
            let end = format!(
                "{{\"type\":\"end\",\"next_file\":{}}}",
                json_str(&file_name(&w.path))
            );
            w.maybe_step()?;
            w.write_record(true, end.as_bytes())?;
            let note = w.signed_note(public, &sign)?;
            write_atomic(&checkpoint_path(archive), note.as_bytes(), false).map_err(|err| {
                AuditError::File {
                    what: "checkpoint",
                    err,
                }
            })?;
            std::fs::hard_link(&w.path, archive)
                .map_err(|e| AuditError::io("log", "cannot link the archive", &e))?;
            std::fs::remove_file(&w.path)
                .map_err(|e| AuditError::io("log", "cannot unlink the old file", &e))?;
            // The old file's checkpoint now describes the archive (a copy is beside it):
            // gone before the new file exists, so a crash here never pairs them.
            match std::fs::remove_file(checkpoint_path(&w.path)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(AuditError::io("checkpoint", "cannot remove it", &e))
                }
                _ => {}
            }
            let size = w.snap.range.size();
            let root = w.snap.range.root();
            w.log = open_log(&w.path, true)?;
            w.snap.offset = 0;
            w.snap.range = CompactRange::new();
            w.step()?;
            let body = format!(
                "{{\"type\":\"rotate\",\"origin\":{},\"previous_file\":{},\"previous_size\":{},\
                 \"previous_root\":\"{}\"}}",
                json_str(&w.snap.origin),
                json_str(&name),
                size,
                checkpoint::b64(&root)
            );
            w.write_record(true, body.as_bytes())?;
            w.save_state()?;
            let fresh = w.signed_note(public, &sign)?;
            write_atomic(&checkpoint_path(&w.path), fresh.as_bytes(), true).map_err(|err| {
                AuditError::File {
                    what: "checkpoint",
                    err,
                }
            })?;
            Ok(note)
        })
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.snap.origin
    }

    /// Lines in the current file (as far as this writer knows).
    pub fn size(&self) -> u64 {
        self.snap.range.size()
    }

    /// The next sequence number.
    pub fn next_seq(&self) -> u64 {
        self.snap.next_seq
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.key.epoch()
    }

    /// Whether this is the process that opened the writer (not a fork child).
    pub fn in_own_process(&self) -> bool {
        self.made_in.is_current()
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write the state file now (the current key and a snapshot), e.g. before closing, so
    /// that the next `open` has little to read. Never moves the file's epoch backwards.
    pub fn save_state(&mut self) -> Result<(), AuditError> {
        self.check_process()?;
        if let Ok((s, _)) = state::read(&state_path(&self.path)) {
            if s.epoch > self.key.epoch() {
                return Ok(());
            }
        }
        self.write_state()
    }

    fn write_state(&mut self) -> Result<(), AuditError> {
        self.snap.epoch = self.key.epoch();
        state::write(&state_path(&self.path), &self.snap, &self.key).map_err(state_error)
    }

    /// Step to the next epoch: derive its key, record it in the state file, destroy the
    /// old key.
    fn step(&mut self) -> Result<(), AuditError> {
        let next = self.key.next()?;
        let (_, now) = record::now();
        let mut snap = self.snap.clone();
        snap.epoch = next.epoch();
        snap.epoch_count = 0;
        snap.epoch_start_us = now;
        let newer_on_disk = matches!(
            state::read(&state_path(&self.path)),
            Ok((s, _)) if s.epoch >= next.epoch()
        );
        if !newer_on_disk {
            state::write(&state_path(&self.path), &snap, &next).map_err(state_error)?;
        }
        self.snap = snap;
        // The old key is dropped here: wiped, unlocked, unmapped.
        self.key = next;
        Ok(())
    }

    fn maybe_step(&mut self) -> Result<(), AuditError> {
        let (_, now) = record::now();
        let s = &self.snap;
        let old = now.saturating_sub(s.epoch_start_us) >= s.epoch_seconds.saturating_mul(1_000_000);
        if s.epoch_count >= s.epoch_records || (s.epoch_count > 0 && old) {
            self.step()?;
        }
        Ok(())
    }

    fn write_record(&mut self, internal: bool, body: &[u8]) -> Result<u64, AuditError> {
        let (ts, _) = record::now();
        let seq = self.snap.next_seq;
        let mut line = std::mem::take(&mut self.line);
        begin_line(
            &mut line,
            seq,
            &ts,
            self.key.epoch(),
            &self.snap.last,
            internal,
            body,
        );
        let mac = self.key.mac(&line)?;
        finish_line(&mut line, &mac);
        let leaf = leaf_hash(&line);
        line.push(b'\n');
        let written = self.log.write_all(&line);
        let n = line.len() as u64;
        self.line = line;
        if let Err(e) = written {
            // Cut a partial line back off, so the log stays well formed.
            let _ = self.log.set_len(self.snap.offset);
            return Err(AuditError::io("log", "write failed", &e));
        }
        if self.sync {
            self.log
                .sync_data()
                .map_err(|e| AuditError::io("log", "fdatasync failed", &e))?;
        }
        self.snap.offset += n;
        self.snap.next_seq += 1;
        self.snap.last = leaf;
        self.snap.range.push(leaf);
        self.snap.epoch_count += 1;
        Ok(seq)
    }

    /// Under the lock: follow a rotation by another writer, then read and check the lines
    /// other writers appended since this one's last write, and repair a torn tail.
    fn catch_up(&mut self) -> Result<Option<Repair>, AuditError> {
        loop {
            let meta = self
                .log
                .metadata()
                .map_err(|e| AuditError::io("log", "fstat failed", &e))?;
            let repair = self.read_new(meta.len())?;
            if !self.ended {
                return Ok(repair);
            }
            // Another writer rotated: this file ends with its "end" record and the log's
            // path names the new file, which continues the chain.
            let log = open_log(&self.path, false)?;
            let new = log
                .metadata()
                .map_err(|e| AuditError::io("log", "fstat failed", &e))?;
            if new.ino() == meta.ino() && new.dev() == meta.dev() {
                return Err(AuditError::State(
                    "the log ends with an \"end\" record but was not replaced: a rotation was \
                     interrupted; move the file away to start a new one"
                        .to_owned(),
                ));
            }
            self.log = log;
            self.snap.offset = 0;
            self.snap.range = CompactRange::new();
            self.ended = false;
        }
    }

    fn tampered(&self, kind: FailureKind, detail: &str) -> AuditError {
        AuditError::Tampered {
            line: self.snap.range.size() + 1,
            kind,
            detail: detail.to_owned(),
        }
    }

    fn read_new(&mut self, size: u64) -> Result<Option<Repair>, AuditError> {
        if size == self.snap.offset {
            return Ok(None);
        }
        if size < self.snap.offset {
            return Err(self.tampered(
                FailureKind::Truncated,
                "the log is shorter than this writer's last write",
            ));
        }
        let mut f = self
            .log
            .try_clone()
            .map_err(|e| AuditError::io("log", "dup failed", &e))?;
        f.seek(SeekFrom::Start(self.snap.offset))
            .map_err(|e| AuditError::io("log", "seek failed", &e))?;
        let mut reader = LineReader::new(
            std::io::Read::take(f, size - self.snap.offset),
            self.snap.offset,
        );
        let mut torn = None;
        loop {
            let next = reader
                .next_line()
                .map_err(|e| AuditError::io("log", "read failed", &e))?;
            match next {
                None => break,
                Some((_, Line::Complete(l))) => {
                    let l = l.to_vec();
                    self.absorb(&l)?;
                }
                Some((_, Line::Overlong(_))) => {
                    return Err(self.tampered(FailureKind::Modified, "an overlong line"))
                }
                Some((start, Line::Torn { bytes, len })) => {
                    torn = Some((start, len, leaf_hash(bytes)));
                }
            }
        }
        let Some((start, len, leaf)) = torn else {
            return Ok(None);
        };
        // A partial line under the lock: a writer crashed mid-write. Cut it off and say so.
        self.log
            .set_len(start)
            .map_err(|e| AuditError::io("log", "cannot truncate the torn tail", &e))?;
        let body = format!(
            "{{\"type\":\"repair\",\"torn_bytes\":{len},\"torn_leaf\":\"{}\"}}",
            record::hex(&leaf)
        );
        self.write_record(true, body.as_bytes())?;
        Ok(Some(Repair { torn_bytes: len }))
    }

    /// Continue the chain over a line another writer appended.
    fn absorb(&mut self, l: &[u8]) -> Result<(), AuditError> {
        let rec = record::parse(l)
            .map_err(|e| self.tampered(FailureKind::Modified, &format!("not a record: {e}")))?;
        if rec.seq != self.snap.next_seq {
            let kind = if rec.seq > self.snap.next_seq {
                FailureKind::Deleted
            } else {
                FailureKind::Duplicated
            };
            return Err(self.tampered(kind, "unexpected sequence number"));
        }
        if rec.prev != self.snap.last {
            return Err(self.tampered(FailureKind::Inserted, "the hash chain is broken"));
        }
        let e = self.key.epoch();
        if rec.epoch > e + 1 {
            return Err(self.tampered(FailureKind::WrongKey, "epoch out of sequence"));
        }
        if rec.epoch >= e {
            if rec.epoch == e + 1 {
                // Another writer started the next epoch (and recorded it in the state file).
                self.key.advance_to(rec.epoch)?;
                self.snap.epoch = rec.epoch;
                self.snap.epoch_count = 0;
                self.snap.epoch_start_us = record::now().1;
            }
            if !self.key.check(&l[..rec.signed_len], &rec.mac)? {
                return Err(self.tampered(FailureKind::Modified, "the MAC does not verify"));
            }
            self.snap.epoch_count += 1;
        }
        self.ended = rec.internal && rec.body.starts_with(END_PREFIX);
        // Lines of an earlier epoch (a writer that had not stepped yet) cannot be checked
        // here: that key is gone. The verifier, which holds K0, checks them.
        let leaf = leaf_hash(l);
        self.snap.offset += l.len() as u64 + 1;
        self.snap.next_seq = rec.seq + 1;
        self.snap.last = leaf;
        self.snap.range.push(leaf);
        Ok(())
    }
}
