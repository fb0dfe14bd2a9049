//! The writer's state file `<log>.state` (mode 0600, replaced atomically): the current
//! epoch key and a snapshot of the log at the moment it was written, so a writer restarted
//! later continues the chain without reading the whole log (it reads from the snapshot's
//! offset on).
//!
//! ```text
//! keycell-audit-state 1
//! origin <origin>
//! epoch-records <N>
//! epoch-seconds <T>
//! epoch <E>
//! epoch-count <records in epoch E so far>
//! epoch-start <microseconds since 1970 when epoch E began>
//! lines <lines in the log at the snapshot>
//! offset <bytes in the log at the snapshot>
//! seq <the next sequence number>
//! last <64 hex: leaf hash of the last line>
//! range[ <64 hex>]*   (the Merkle compact range of those lines, largest subtree first)
//! key <64 hex: the epoch key E_E>
//! ```
//!
//! The whole file is encoded in a guarded region and handed to `write(2)` from there, and
//! read back with `PrivateFile` (no symlinks, owner-only) straight into a guarded region; the
//! key's hex is decoded from that region into the key's own region. No copy of the key
//! passes through ordinary memory.

use std::path::Path;

use crate::fs::{write_atomic, FileError, PrivateFile};
use crate::memory::{MemoryError, SecretBuf};

use super::epoch::{EpochKey, EPOCH_KEY_LEN};
use super::merkle::{CompactRange, Hash};
use super::record::unhex32;

const MAGIC: &str = "keycell-audit-state 1";
/// The largest state file accepted.
pub const MAX_STATE_LEN: usize = 16 * 1024;

/// Everything in the state file except the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The log's origin.
    pub origin: String,
    /// Records per epoch.
    pub epoch_records: u64,
    /// Seconds per epoch.
    pub epoch_seconds: u64,
    /// The epoch of the key.
    pub epoch: u64,
    /// Records written in that epoch so far.
    pub epoch_count: u64,
    /// When that epoch began (microseconds since 1970).
    pub epoch_start_us: u64,
    /// Offset (bytes) of the end of the last complete line covered.
    pub offset: u64,
    /// The next sequence number.
    pub next_seq: u64,
    /// Leaf hash of the last line.
    pub last: Hash,
    /// The Merkle compact range of the lines covered (its size is the line count).
    pub range: CompactRange,
}

/// Why a state file was refused.
#[derive(Debug)]
pub enum StateError {
    /// It could not be opened or read, or it is not safe to read.
    File(FileError),
    /// Memory for the key failed.
    Memory(MemoryError),
    /// Not a state file.
    Malformed(&'static str),
}

impl From<MemoryError> for StateError {
    fn from(e: MemoryError) -> Self {
        StateError::Memory(e)
    }
}

impl From<FileError> for StateError {
    fn from(e: FileError) -> Self {
        StateError::File(e)
    }
}

fn public_text(s: &Snapshot) -> String {
    let mut range = String::from("range");
    for h in s.range.hashes() {
        range.push(' ');
        range.push_str(&super::record::hex(h));
    }
    format!(
        "{MAGIC}\norigin {}\nepoch-records {}\nepoch-seconds {}\nepoch {}\nepoch-count {}\n\
         epoch-start {}\nlines {}\noffset {}\nseq {}\nlast {}\n{range}\nkey ",
        s.origin,
        s.epoch_records,
        s.epoch_seconds,
        s.epoch,
        s.epoch_count,
        s.epoch_start_us,
        s.range.size(),
        s.offset,
        s.next_seq,
        super::record::hex(&s.last),
    )
}

/// Encode the state file into a guarded region.
pub fn encode(s: &Snapshot, key: &EpochKey) -> Result<SecretBuf, MemoryError> {
    let text = public_text(s);
    let key_bytes = key.bytes()?;
    let len = text.len() + 2 * key_bytes.len() + 1;
    SecretBuf::new_with(len, |d| {
        d[..text.len()].copy_from_slice(text.as_bytes());
        let mut hexbuf = HexWriter {
            dst: &mut d[text.len()..],
            pos: 0,
        };
        hexbuf.write(key_bytes);
        d[len - 1] = b'\n';
        Ok::<(), MemoryError>(())
    })
}

/// Writes lowercase hex into a slice in place (no temporary buffer).
struct HexWriter<'a> {
    dst: &'a mut [u8],
    pos: usize,
}

impl HexWriter<'_> {
    fn write(&mut self, src: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in src {
            self.dst[self.pos] = HEX[(b >> 4) as usize];
            self.dst[self.pos + 1] = HEX[(b & 15) as usize];
            self.pos += 2;
        }
    }
}

/// Write the state file atomically (mode 0600, `fsync`ed, directory `fsync`ed).
pub fn write(path: &Path, s: &Snapshot, key: &EpochKey) -> Result<(), StateError> {
    let buf = encode(s, key)?;
    write_atomic(path, buf.bytes()?, true)?;
    Ok(())
}

/// Read and parse the state file at `path`.
pub fn read(path: &Path) -> Result<(Snapshot, EpochKey), StateError> {
    let mut file = PrivateFile::open(path, MAX_STATE_LEN)?;
    let buf = SecretBuf::new_with(file.size().max(1), |d| {
        if file.size() == 0 {
            return Ok(());
        }
        file.read_into(d).map_err(StateError::File)
    })?;
    decode(buf.bytes()?)
}

fn field<'a>(
    lines: &mut impl Iterator<Item = &'a [u8]>,
    name: &str,
) -> Result<&'a str, StateError> {
    let line = lines.next().ok_or(StateError::Malformed("missing field"))?;
    let s = std::str::from_utf8(line).map_err(|_| StateError::Malformed("not UTF-8"))?;
    if s == name {
        return Ok("");
    }
    s.strip_prefix(name)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(StateError::Malformed("unexpected field"))
}

fn number(s: &str) -> Result<u64, StateError> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|c| c.is_ascii_digit())
    {
        return Err(StateError::Malformed("bad number"));
    }
    s.parse().map_err(|_| StateError::Malformed("bad number"))
}

/// Parse a state file held in (guarded) memory. The key is decoded straight into a new
/// guarded region.
pub fn decode(data: &[u8]) -> Result<(Snapshot, EpochKey), StateError> {
    use StateError::Malformed;
    if !data.ends_with(b"\n") {
        return Err(Malformed("does not end with a newline"));
    }
    let mut lines = data[..data.len() - 1].split(|&c| c == b'\n');
    if lines.next() != Some(MAGIC.as_bytes()) {
        return Err(Malformed("not a keycell audit state file"));
    }
    let origin = field(&mut lines, "origin")?.to_owned();
    if !super::checkpoint::valid_origin(&origin) {
        return Err(Malformed("bad origin"));
    }
    let epoch_records = number(field(&mut lines, "epoch-records")?)?;
    let epoch_seconds = number(field(&mut lines, "epoch-seconds")?)?;
    let epoch = number(field(&mut lines, "epoch")?)?;
    let epoch_count = number(field(&mut lines, "epoch-count")?)?;
    let epoch_start_us = number(field(&mut lines, "epoch-start")?)?;
    let size = number(field(&mut lines, "lines")?)?;
    let offset = number(field(&mut lines, "offset")?)?;
    let next_seq = number(field(&mut lines, "seq")?)?;
    let last = unhex32(field(&mut lines, "last")?.as_bytes()).ok_or(Malformed("bad hash"))?;
    let range_text = field(&mut lines, "range")?;
    let mut hashes = Vec::new();
    if !range_text.is_empty() {
        for h in range_text.split(' ') {
            hashes.push(unhex32(h.as_bytes()).ok_or(Malformed("bad hash"))?);
        }
    }
    let range = CompactRange::from_parts(size, hashes).ok_or(Malformed("bad range"))?;
    let key_line = lines.next().ok_or(Malformed("missing key"))?;
    if lines.next().is_some() {
        return Err(Malformed("data after the key"));
    }
    let key_hex = key_line
        .strip_prefix(b"key ")
        .filter(|k| k.len() == 2 * EPOCH_KEY_LEN)
        .ok_or(Malformed("bad key"))?;
    if epoch_records == 0 || epoch_seconds == 0 {
        return Err(Malformed("epoch lengths must be positive"));
    }
    let key = EpochKey::from_fill(epoch, |dst| {
        for (i, o) in dst.iter_mut().enumerate() {
            let hi = nibble(key_hex[2 * i]).ok_or(Malformed("bad key"))?;
            let lo = nibble(key_hex[2 * i + 1]).ok_or(Malformed("bad key"))?;
            *o = (hi << 4) | lo;
        }
        Ok::<(), StateError>(())
    })?;
    Ok((
        Snapshot {
            origin,
            epoch_records,
            epoch_seconds,
            epoch,
            epoch_count,
            epoch_start_us,
            offset,
            next_seq,
            last,
            range,
        },
        key,
    ))
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::merkle::leaf_hash;
    use super::*;

    #[test]
    fn round_trip() {
        let key = EpochKey::from_k0(&[1u8; 32], 3).expect("key");
        let mut range = CompactRange::new();
        for i in 0..5u8 {
            range.push(leaf_hash(&[i]));
        }
        let s = Snapshot {
            origin: "o".into(),
            epoch_records: 10,
            epoch_seconds: 60,
            epoch: 3,
            epoch_count: 2,
            epoch_start_us: 99,
            offset: 1234,
            next_seq: 5,
            last: [7; 32],
            range,
        };
        let buf = encode(&s, &key).expect("encode");
        let (s2, k2) = decode(buf.bytes().expect("bytes")).expect("decode");
        assert_eq!(s, s2);
        assert_eq!(k2.bytes().expect("k"), key.bytes().expect("k"));
        let text = buf.bytes().expect("bytes");
        for cut in [2, 10, text.len() / 2, text.len() - 2] {
            let mut t = text[..text.len() - cut].to_vec();
            t.push(b'\n');
            assert!(decode(&t).is_err());
        }
    }
}
