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

use crate::fs::{write_atomic, PrivateFile};
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

/// `<log>.rotating`: the archive path of a rotation in progress (see [`Writer::rotate`]).
fn intent_path(log: &Path) -> PathBuf {
    suffixed(log, ".rotating")
}

/// The archive named by an interrupted rotation's intent file, if there is one. The file
/// is read as key files are (`O_NOFOLLOW`, a regular file of this user, no group or other
/// permissions): whoever else can write the log's directory must not choose what a
/// writer links or removes.
fn read_intent(log: &Path) -> Result<Option<PathBuf>, AuditError> {
    use std::os::unix::ffi::OsStrExt;
    let path = intent_path(log);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AuditError::io("log", "cannot stat the rotation intent", &e)),
        Ok(_) => {}
    }
    let intent = |err| AuditError::File {
        what: "rotation intent",
        err,
    };
    let mut file = PrivateFile::open(&path, MAX_INTENT_LEN).map_err(intent)?;
    let mut bytes = vec![0u8; file.size()];
    file.read_into(&mut bytes).map_err(intent)?;
    if bytes.is_empty() || bytes.contains(&0) || bytes.first() != Some(&b'/') {
        return Err(AuditError::State(
            "the rotation intent file is malformed".to_owned(),
        ));
    }
    Ok(Some(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))))
}

/// The longest rotation intent (an absolute path).
const MAX_INTENT_LEN: usize = 4096;

/// The sequence number of the first line of the log at `path`, if it parses.
fn first_seq(path: &Path) -> Option<u64> {
    let f = File::open(path).ok()?;
    let mut reader = LineReader::new(f, 0);
    match reader.next_line().ok()?? {
        (_, Line::Complete(l)) => record::parse(l).ok().map(|r| r.seq),
        _ => None,
    }
}

/// Remove `path`; a missing file is fine.
fn remove_if_there(path: &Path, what: &'static str) -> Result<(), AuditError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(AuditError::io(what, "cannot remove it", &e))
        }
        _ => Ok(()),
    }
}

/// Whether `a` and `b` both exist and are different files.
fn other_files(a: &Path, b: &Path) -> bool {
    match (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) != (y.dev(), y.ino()),
        _ => false,
    }
}

/// Where a test stops a rotation, as a crash would (see the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
enum RotateStep {
    Intent,
    ArchiveCheckpoint,
    End,
    Link,
    OldCheckpoint,
    Rename,
    State,
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
    /// Tests: the rotation step after which to stop as a crash would.
    #[cfg(test)]
    crash_after: Option<RotateStep>,
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
    /// The protection of the regions the writer keeps: its current epoch key's (the
    /// weakest of the key and its HMAC pads; a new epoch's key is a new region).
    pub fn protection(&self) -> crate::memory::Protection {
        self.key.protection()
    }
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
            #[cfg(test)]
            crash_after: None,
        }
    }

    /// Tests: fail here, leaving the files as a crash after `step` would.
    #[cfg(test)]
    fn crash_point(&self, step: RotateStep) -> Result<(), AuditError> {
        if self.crash_after == Some(step) {
            return Err(AuditError::State(format!("simulated crash after {step:?}")));
        }
        Ok(())
    }

    #[cfg(not(test))]
    #[inline(always)]
    fn crash_point(&self, _step: RotateStep) -> Result<(), AuditError> {
        Ok(())
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
        // A rotation that replaced the file but crashed before saving the state: the state
        // describes the archive, so read on from there (catch_up follows to the new file).
        let log = match read_intent(path)? {
            Some(archive)
                if other_files(&archive, path)
                    && first_seq(path).is_some_and(|s| snap.next_seq <= s) =>
            {
                open_log(&archive, false)?
            }
            _ => open_log(path, false)?,
        };
        let mut w = Writer::new(path, log, lock, key, snap, sync);
        let repair = w.catch_up()?;
        if let Some(archive) = read_intent(path)? {
            w.settle_rotation(&archive)?;
        }
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
        self.signed_note_of(&self.snap.range, public, sign)
    }

    /// A signed checkpoint of the lines whose compact range is `range`.
    fn signed_note_of(
        &self,
        range: &CompactRange,
        public: &[u8; 32],
        sign: &Signer<'_>,
    ) -> Result<String, AuditError> {
        let (origin, size, root) = (&self.snap.origin, range.size(), range.root());
        let sig = sign(checkpoint::body(origin, size, &root).as_bytes())?;
        Ok(checkpoint::note(origin, size, &root, public, &sig))
    }

    /// Rotate: checkpoint this file into `<archive>.checkpoint`, give it the name `archive`
    /// (never replacing a file), and put a new file at the log's path whose first record
    /// (`"type":"rotate"`) continues the sequence and the hash chain and commits to the
    /// archived file's size and Merkle root. A new epoch starts with it, and a checkpoint
    /// of the new file replaces `<log>.checkpoint` (which would otherwise still describe
    /// the archived file).
    ///
    /// Crash-safe: the log's path names a complete log at every instant. The steps are
    /// 1. `<log>.rotating` names the archive (written atomically);
    /// 2. the archive's checkpoint, signed over the file with its `end` record to come;
    /// 3. the `end` record, synced;
    /// 4. [`Self::finish_rotation`]: the archive link, the old checkpoint removed, the new
    ///    file built aside and renamed over the log's path, the state, the intent removed.
    ///
    /// A crash before 3 leaves the log as it was (the next `open` removes the intent and
    /// the checkpoint of the archive that never came to be); after it, the next `open` or
    /// writer finishes the rotation (without the new file's checkpoint, which needs the
    /// signer: the next `checkpoint()` writes it). Tested at every step (unit tests).
    pub fn rotate(
        &mut self,
        archive: &Path,
        public: &[u8; 32],
        sign: impl Fn(&[u8]) -> Result<[u8; 64], AuditError>,
    ) -> Result<String, AuditError> {
        self.check_process()?;
        archive
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| AuditError::Invalid("the archive path must name a file".to_owned()))?;
        let archive = std::path::absolute(archive)
            .map_err(|e| AuditError::io("archive", "cannot resolve its path", &e))?;
        if std::fs::symlink_metadata(&archive).is_ok() {
            return Err(AuditError::File {
                what: "archive",
                err: crate::fs::FileError::Unusable {
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
            let (end_line, end_leaf) = w.format_record(&w.key, &w.snap, true, end.as_bytes())?;
            let mut with_end = w.snap.range.clone();
            with_end.push(end_leaf);
            let note = w.signed_note_of(&with_end, public, &sign)?;
            {
                use std::os::unix::ffi::OsStrExt;
                write_atomic(&intent_path(&w.path), archive.as_os_str().as_bytes(), true)
                    .map_err(|err| AuditError::File { what: "log", err })?;
            }
            w.crash_point(RotateStep::Intent)?;
            let written = write_atomic(&checkpoint_path(&archive), note.as_bytes(), false)
                .map_err(|err| AuditError::File {
                    what: "checkpoint",
                    err,
                })
                .and_then(|()| w.crash_point(RotateStep::ArchiveCheckpoint))
                .and_then(|()| w.commit_record(&end_line, end_leaf, true));
            if let Err(e) = written {
                #[cfg(test)]
                if w.crash_after.is_some() {
                    return Err(e);
                }
                // No `end` record was written: no rotation happened.
                let _ = w.abandon_rotation(&archive);
                return Err(e);
            }
            w.crash_point(RotateStep::End)?;
            w.finish_rotation(&archive)?;
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

    /// Under the lock, with this writer just past the `end` record of the file at the log's
    /// path: link it as `archive`, remove its old checkpoint, build the new file with its
    /// `rotate` record aside and rename it over the log's path (`write_atomic`), switch to
    /// it and the next epoch, save the state, remove the intent.
    fn finish_rotation(&mut self, archive: &Path) -> Result<(), AuditError> {
        let name = file_name(archive);
        let cur = self
            .log
            .metadata()
            .map_err(|e| AuditError::io("log", "fstat failed", &e))?;
        match std::fs::symlink_metadata(archive) {
            Ok(m) if (m.dev(), m.ino()) == (cur.dev(), cur.ino()) => {}
            Ok(_) => {
                return Err(AuditError::State(format!(
                    "an interrupted rotation names the archive {:?}, which is another file",
                    archive.display().to_string()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::hard_link(&self.path, archive)
                    .map_err(|e| AuditError::io("log", "cannot link the archive", &e))?;
            }
            Err(e) => return Err(AuditError::io("archive", "cannot stat it", &e)),
        }
        self.crash_point(RotateStep::Link)?;
        // The old file's checkpoint now describes the archive (a copy is beside it): gone
        // before the new file takes the path, so a crash never pairs them.
        remove_if_there(&checkpoint_path(&self.path), "checkpoint")?;
        self.crash_point(RotateStep::OldCheckpoint)?;
        let size = self.snap.range.size();
        let root = self.snap.range.root();
        let next = self.key.next()?;
        let (_, now) = record::now();
        let mut snap = self.snap.clone();
        snap.epoch = next.epoch();
        snap.epoch_count = 0;
        snap.epoch_start_us = now;
        snap.offset = 0;
        snap.range = CompactRange::new();
        let body = format!(
            "{{\"type\":\"rotate\",\"origin\":{},\"previous_file\":{},\"previous_size\":{},\
             \"previous_root\":\"{}\"}}",
            json_str(&snap.origin),
            json_str(&name),
            size,
            checkpoint::b64(&root)
        );
        let (line, leaf) = self.format_record(&next, &snap, true, body.as_bytes())?;
        // The new file is complete (and synced) before it takes the log's path.
        write_atomic(&self.path, &line, true)
            .map_err(|err| AuditError::File { what: "log", err })?;
        self.crash_point(RotateStep::Rename)?;
        self.log = open_log(&self.path, false)?;
        self.ended = false;
        // The old key is dropped here: wiped, unlocked, unmapped.
        self.key = next;
        self.snap = snap;
        self.advance_over(line.len() as u64, leaf);
        self.write_state()?;
        self.crash_point(RotateStep::State)?;
        remove_if_there(&intent_path(&self.path), "log")
    }

    /// After `open` caught up, with the intent of a rotation still there: either the new
    /// file took the path but the state was not saved (the archive exists: save it), or no
    /// `end` record was written (no archive: remove the intent and the archive's
    /// checkpoint, which describes a file that never came to be).
    fn settle_rotation(&mut self, archive: &Path) -> Result<(), AuditError> {
        if std::fs::symlink_metadata(archive).is_ok() {
            self.write_state()?;
            remove_if_there(&intent_path(&self.path), "log")
        } else {
            self.abandon_rotation(archive)
        }
    }

    /// Undo the first steps of a rotation that wrote no `end` record.
    fn abandon_rotation(&mut self, archive: &Path) -> Result<(), AuditError> {
        remove_if_there(&checkpoint_path(archive), "checkpoint")?;
        remove_if_there(&intent_path(&self.path), "log")
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
        // The line buffer is reused from append to append.
        let buf = std::mem::take(&mut self.line);
        let (line, leaf) = self.format_into(buf, &self.key, &self.snap, internal, body)?;
        let seq = self.snap.next_seq;
        let result = self.commit_record(&line, leaf, self.sync);
        self.line = line;
        result.map(|()| seq)
    }

    /// The next line (with its newline) under `key` after `snap`, and its leaf hash.
    fn format_record(
        &self,
        key: &EpochKey,
        snap: &Snapshot,
        internal: bool,
        body: &[u8],
    ) -> Result<(Vec<u8>, [u8; 32]), AuditError> {
        self.format_into(Vec::new(), key, snap, internal, body)
    }

    /// [`Self::format_record`] into `line` (cleared first).
    fn format_into(
        &self,
        mut line: Vec<u8>,
        key: &EpochKey,
        snap: &Snapshot,
        internal: bool,
        body: &[u8],
    ) -> Result<(Vec<u8>, [u8; 32]), AuditError> {
        let (ts, _) = record::now();
        begin_line(
            &mut line,
            snap.next_seq,
            &ts,
            key.epoch(),
            &snap.last,
            internal,
            body,
        );
        let mac = key.mac(&line)?;
        finish_line(&mut line, &mac);
        let leaf = leaf_hash(&line);
        line.push(b'\n');
        Ok((line, leaf))
    }

    /// Append `line` (from [`Self::format_record`]) to the log and advance over it.
    fn commit_record(&mut self, line: &[u8], leaf: [u8; 32], sync: bool) -> Result<(), AuditError> {
        if let Err(e) = self.log.write_all(line) {
            // Cut a partial line back off, so the log stays well formed.
            let _ = self.log.set_len(self.snap.offset);
            return Err(AuditError::io("log", "write failed", &e));
        }
        if sync {
            self.log
                .sync_data()
                .map_err(|e| AuditError::io("log", "fdatasync failed", &e))?;
        }
        self.advance_over(line.len() as u64, leaf);
        Ok(())
    }

    /// Advance the snapshot over a line of `len` bytes (newline included) with `leaf`.
    fn advance_over(&mut self, len: u64, leaf: [u8; 32]) {
        self.snap.offset += len;
        self.snap.next_seq += 1;
        self.snap.last = leaf;
        self.snap.range.push(leaf);
        self.snap.epoch_count += 1;
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
                // A writer crashed after the `end` record: finish its rotation.
                let Some(archive) = read_intent(&self.path)? else {
                    return Err(AuditError::State(
                        "the log ends with an \"end\" record but was not replaced, and no \
                         rotation intent names its archive: move the file away to start a \
                         new one"
                            .to_owned(),
                    ));
                };
                self.ended = false;
                self.finish_rotation(&archive)?;
                if repair.is_some() {
                    return Ok(repair);
                }
                continue;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify::verify_file;
    use crate::crypto::ed25519::PrivateKey;

    const STEPS: [RotateStep; 7] = [
        RotateStep::Intent,
        RotateStep::ArchiveCheckpoint,
        RotateStep::End,
        RotateStep::Link,
        RotateStep::OldCheckpoint,
        RotateStep::Rename,
        RotateStep::State,
    ];

    /// The bodies of the event records of the log file at `path`.
    fn events(path: &Path) -> Vec<String> {
        let mut reader = LineReader::new(File::open(path).expect("open"), 0);
        let mut out = Vec::new();
        while let Some((_, line)) = reader.next_line().expect("read") {
            let Line::Complete(l) = line else {
                panic!("a torn or overlong line in {path:?}")
            };
            let rec = record::parse(l).expect("record");
            if !rec.internal {
                out.push(String::from_utf8(rec.body.to_vec()).expect("utf-8"));
            }
        }
        out
    }

    fn numbered(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|i| format!("{{\"i\":{i}}}")).collect()
    }

    /// A crash after any step of a rotation (simulated: the step fails and the writer is
    /// dropped without cleaning up) loses no record and raises no false alarm: the next
    /// `open` finishes the rotation (from the `end` record on) or undoes it (before), the
    /// log takes new records, and both files verify under K0 and their checkpoints.
    #[test]
    fn a_crash_at_any_step_of_a_rotation_loses_nothing() {
        let k0 = [7u8; 32];
        let sk = PrivateKey::from_seed(&[3u8; 32]).expect("key");
        let public = *sk.public().as_bytes();
        for step in STEPS {
            let d = crate::test_dir::fresh("audit-rotate-crash");
            let (path, archive) = (d.join("a.log"), d.join("a.log.1"));
            let mut w = Writer::create(&path, &k0, "t/log", 4, 3600, false).expect("create");
            for e in numbered(0..10) {
                w.append(e.as_bytes()).expect("append");
            }
            w.checkpoint(&public, |b| Ok(sk.sign(b)?))
                .expect("checkpoint");
            w.crash_after = Some(step);
            match w.rotate(&archive, &public, |b| Ok(sk.sign(b)?)) {
                Err(AuditError::State(m)) if m.contains("simulated crash") => {}
                other => panic!("{step:?}: {other:?}"),
            }
            drop(w);
            let (mut w, repair) = Writer::open(&path, false)
                .unwrap_or_else(|e| panic!("open after a crash after {step:?}: {e:?}"));
            assert_eq!(repair, None, "{step:?}");
            for e in numbered(10..15) {
                w.append(e.as_bytes()).expect("append after the crash");
            }
            w.checkpoint(&public, |b| Ok(sk.sign(b)?))
                .expect("checkpoint");
            drop(w);
            assert!(!intent_path(&path).exists(), "{step:?}: the intent is left");
            let check = |file: &Path, rotated: bool| {
                let cp = std::fs::read(checkpoint_path(file)).expect("checkpoint file");
                let r = verify_file(file, &k0, Some((&cp, sk.public())), rotated).expect("verify");
                assert!(r.failure.is_none(), "{step:?} {file:?}: {:?}", r.failure);
                assert_eq!(r.unchecked_before.is_some(), rotated, "{step:?}");
            };
            let finished = !matches!(step, RotateStep::Intent | RotateStep::ArchiveCheckpoint);
            if finished {
                check(&archive, false);
                check(&path, true);
                let mut all = events(&archive);
                all.extend(events(&path));
                assert_eq!(all, numbered(0..15), "{step:?}");
            } else {
                assert!(!archive.exists(), "{step:?}");
                assert!(!checkpoint_path(&archive).exists(), "{step:?}");
                check(&path, false);
                assert_eq!(events(&path), numbered(0..15), "{step:?}");
            }
            // The log rotates normally afterwards.
            let next = d.join("a.log.2");
            let (mut w, _) = Writer::open(&path, false).expect("reopen");
            w.rotate(&next, &public, |b| Ok(sk.sign(b)?))
                .expect("rotate again");
            w.append(b"{\"after\":1}").expect("append");
            drop(w);
            check(&next, finished);
            assert!(!intent_path(&path).exists());
            std::fs::remove_dir_all(&d).expect("cleanup");
        }
    }

    /// An intent file that is not this user's private file (another user who can write
    /// the log's directory planted it) is refused, never followed.
    #[test]
    fn a_planted_intent_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let k0 = [9u8; 32];
        let d = crate::test_dir::fresh("audit-rotate-planted");
        let path = d.join("a.log");
        let victim = d.join("victim.checkpoint");
        std::fs::write(&victim, b"keep").expect("victim");
        drop(Writer::create(&path, &k0, "t/log", 4, 3600, false).expect("create"));
        let plant = |mode: u32| {
            let _ = std::fs::remove_file(intent_path(&path));
            std::fs::write(
                intent_path(&path),
                d.join("victim").as_os_str().as_encoded_bytes(),
            )
            .expect("plant");
            std::fs::set_permissions(intent_path(&path), std::fs::Permissions::from_mode(mode))
                .expect("chmod");
        };
        plant(0o644);
        assert!(matches!(
            Writer::open(&path, false),
            Err(AuditError::File {
                what: "rotation intent",
                ..
            })
        ));
        std::fs::remove_file(intent_path(&path)).expect("rm");
        std::os::unix::fs::symlink(d.join("elsewhere"), intent_path(&path)).expect("symlink");
        assert!(matches!(
            Writer::open(&path, false),
            Err(AuditError::File {
                what: "rotation intent",
                ..
            })
        ));
        assert_eq!(std::fs::read(&victim).expect("victim kept"), b"keep");
        // This user's private intent naming an archive that never came to be is undone.
        plant(0o600);
        drop(Writer::open(&path, false).expect("open"));
        assert!(
            !victim.exists(),
            "an owner's intent is trusted: its checkpoint is removed"
        );
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    /// A writer that had the log open when another crashed mid-rotation (after the `end`
    /// record) finishes the rotation on its next append.
    #[test]
    fn another_writer_finishes_an_interrupted_rotation() {
        let k0 = [8u8; 32];
        let sk = PrivateKey::from_seed(&[4u8; 32]).expect("key");
        let public = *sk.public().as_bytes();
        let d = crate::test_dir::fresh("audit-rotate-other");
        let (path, archive) = (d.join("a.log"), d.join("a.log.1"));
        let mut w = Writer::create(&path, &k0, "t/log", 4, 3600, false).expect("create");
        w.append(b"{\"i\":0}").expect("append");
        w.crash_after = Some(RotateStep::Link);
        assert!(w.rotate(&archive, &public, |b| Ok(sk.sign(b)?)).is_err());
        drop(w);
        // Without the intent, a log that ends with `end` in place is refused, as before.
        let intent = std::fs::read(intent_path(&path)).expect("intent");
        std::fs::remove_file(intent_path(&path)).expect("rm");
        assert!(matches!(
            Writer::open(&path, false),
            Err(AuditError::State(_))
        ));
        write_atomic(&intent_path(&path), &intent, false).expect("restore (mode 0600)");
        let (mut w, _) = Writer::open(&path, false).expect("open");
        w.append(b"{\"i\":1}").expect("append");
        drop(w);
        assert_eq!(events(&archive), numbered(0..1));
        assert_eq!(events(&path), numbered(1..2));
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
