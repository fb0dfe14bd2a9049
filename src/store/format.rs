//! The key store file format, version 1 (documented in `docs/keystore-format.md`).
//!
//! Parsing is total: every length and count is bounds-checked with checked arithmetic, so
//! a damaged or hostile file yields [`StoreFormatError`], never a panic.

use sha2::{Digest, Sha256};

use crate::crypto::aead_suite::{TAG_LEN, XCHACHA_NONCE_LEN as NONCE_LEN};
use crate::crypto::argon2::Argon2Params;
use crate::crypto::key_kind::KeyKind;

/// First bytes of every store file. The non-ASCII first byte catches text-mode transfers.
pub const MAGIC: [u8; 8] = *b"\x89KCSTORE";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 100;
/// Length of the trailer (SHA-256 digest + HMAC-SHA256).
pub const TRAILER_LEN: usize = 64;
/// Largest store file accepted (64 MiB).
pub const MAX_FILE_LEN: usize = 64 * 1024 * 1024;
/// Largest number of entries.
pub const MAX_ENTRIES: u32 = 100_000;
/// Longest entry name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 255;
/// Length of the store id and of the salt.
pub const ID_LEN: usize = 16;
/// Length of the master check value.
pub const CHECK_LEN: usize = 32;

/// How the master secret is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MasterType {
    /// A passphrase, stretched with Argon2id.
    Passphrase = 1,
    /// A random key (a `SecretKey` of at least 16 bytes), used with HKDF directly.
    Key = 2,
    /// A key held in a PKCS#11 token (`keycell.pkcs11`): the root is HMAC-SHA256 of a
    /// fixed challenge under a token secret, computed in the token; then as [`Self::Key`].
    Token = 3,
}

impl MasterType {
    /// Human name.
    pub fn name(self) -> &'static str {
        match self {
            MasterType::Passphrase => "passphrase",
            MasterType::Key => "master key",
            MasterType::Token => "PKCS#11 token key",
        }
    }
}

/// The parts of the header that identify a store and its key derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub master_type: MasterType,
    pub store_id: [u8; ID_LEN],
    pub salt: [u8; ID_LEN],
    /// `None` for [`MasterType::Key`] (stored as zeros).
    pub kdf: Option<Argon2Params>,
}

/// One sealed entry, as stored. Nothing here is secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: KeyKind,
    pub exportable: bool,
    pub nonce: [u8; NONCE_LEN],
    /// The ciphertext (same length as the key).
    pub ciphertext: Vec<u8>,
    pub tag: [u8; TAG_LEN],
}

/// A parsed store file.
#[derive(Clone, Debug)]
pub struct StoreFile {
    pub identity: Identity,
    pub generation: u64,
    pub check: [u8; CHECK_LEN],
    /// Sorted by name (bytes), no duplicates.
    pub entries: Vec<Entry>,
    /// The MAC found in the file (verified by the caller, who has the key).
    pub mac: [u8; 32],
    /// Number of bytes the MAC covers (everything before it).
    pub mac_covered: usize,
}

/// The file is not a well-formed store. The message says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFormatError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, StoreFormatError> {
    Err(StoreFormatError(msg.into()))
}

/// The code of a key kind in the file.
pub fn kind_code(kind: KeyKind) -> u8 {
    match kind {
        KeyKind::Secret => 1,
        KeyKind::Ed25519 => 2,
        KeyKind::X25519 => 3,
        KeyKind::EcP256 => 4,
        KeyKind::EcP384 => 5,
        KeyKind::Rsa => 6,
    }
}

fn kind_from_code(code: u8) -> Option<KeyKind> {
    KeyKind::ALL.into_iter().find(|k| kind_code(*k) == code)
}

/// Whether `len` is a valid key length for `kind`.
pub fn valid_key_len(kind: KeyKind, len: usize) -> bool {
    kind.valid_len(len)
}

/// Check a new entry name: 1 to 255 bytes of UTF-8, and no character of the Unicode
/// general categories Cc (controls), Cf (format: bidirectional controls such as U+202E,
/// zero-width characters such as U+200B, the BOM U+FEFF), Zl or Zp (line and paragraph
/// separators): such names can look like another name, or like nothing, in a listing.
/// The message names the first such code point.
pub fn check_name(name: &str) -> Result<(), String> {
    check_name_len(name)?;
    use unicode_general_category::{get_general_category, GeneralCategory as G};
    for c in name.chars() {
        let what = match get_general_category(c) {
            G::Control => "a control character",
            G::Format => {
                "an invisible formatting character (bidirectional control, zero-width or BOM)"
            }
            G::LineSeparator => "a line separator",
            G::ParagraphSeparator => "a paragraph separator",
            _ => continue,
        };
        return Err(format!(
            "entry names must not contain U+{:04X}, {what} (Unicode category Cc, Cf, Zl and Zp \
             characters are refused so that a listing shows every name as it is)",
            u32::from(c)
        ));
    }
    Ok(())
}

fn check_name_len(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "entry names must be 1 to {MAX_NAME_LEN} bytes of UTF-8"
        ));
    }
    Ok(())
}

/// Check a name read from a store file: 1 to 255 bytes of UTF-8, no control characters.
/// Laxer than [`check_name`] so that stores written by earlier builds, which allowed the
/// other invisible characters, still open (their entries can be read and deleted).
pub fn check_stored_name(name: &str) -> Result<(), String> {
    check_name_len(name)?;
    if name.chars().any(char::is_control) {
        return Err("entry names must not contain control characters".to_owned());
    }
    Ok(())
}

/// The associated data of an entry: binds the ciphertext to its store, name, kind, export
/// flag and length.
pub fn entry_aad(
    store_id: &[u8; ID_LEN],
    name: &str,
    kind: KeyKind,
    exportable: bool,
    len: usize,
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + name.len());
    aad.extend_from_slice(b"keycell-store v1 entry\0");
    aad.extend_from_slice(store_id);
    aad.extend_from_slice(&(name.len() as u16).to_be_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad.push(kind_code(kind));
    aad.push(u8::from(exportable));
    aad.extend_from_slice(&(len as u32).to_be_bytes());
    aad
}

/// The HKDF `info` for the store keys.
pub fn kdf_info(id: &Identity) -> Vec<u8> {
    let mut info = Vec::with_capacity(48);
    info.extend_from_slice(b"keycell-store v1 keys\0");
    info.push(id.master_type as u8);
    info.extend_from_slice(&id.store_id);
    info
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreFormatError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| StoreFormatError("the file is truncated".to_owned()))?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreFormatError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, StoreFormatError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, StoreFormatError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, StoreFormatError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, StoreFormatError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

/// Argon2 parameters as stored for a master-key store (all zero: no KDF).
const NO_KDF_PARAMS: Argon2Params = Argon2Params {
    memory_kib: 0,
    iterations: 0,
    lanes: 0,
};

/// Parse and structurally validate a store file (everything that needs no key: magic,
/// version, the SHA-256 checksum, field ranges, entry layout and order).
pub fn parse(data: &[u8]) -> Result<StoreFile, StoreFormatError> {
    let body_len = check_envelope(data)?;
    let mut r = Reader {
        data: &data[..body_len],
        at: 8,
    };
    let header = read_header(&mut r)?;
    debug_assert_eq!(r.at, HEADER_LEN);
    let entries = read_entries(&mut r, header.count)?;
    if r.at != body_len {
        return err("the file has unexpected bytes after its entries");
    }
    let mut mac = [0u8; 32];
    mac.copy_from_slice(&data[body_len + 32..]);
    Ok(StoreFile {
        identity: header.identity,
        generation: header.generation,
        check: header.check,
        entries,
        mac,
        mac_covered: body_len + 32,
    })
}

/// Check the envelope of a store file: its size, the magic bytes, room for the header
/// and trailer, and the SHA-256 checksum (on a mismatch, an unsupported version is
/// reported first). Returns the length of the body (everything before the trailer).
fn check_envelope(data: &[u8]) -> Result<usize, StoreFormatError> {
    if data.len() > MAX_FILE_LEN {
        return err("the file is larger than the key store limit");
    }
    if data.len() < 8 || data[..8] != MAGIC {
        return err("it is not a keycell key store (bad magic bytes)");
    }
    if data.len() < HEADER_LEN + TRAILER_LEN {
        return err("the file is truncated");
    }
    let body_len = data.len() - TRAILER_LEN;
    let digest = Sha256::digest(&data[..body_len]);
    if digest.as_slice() != &data[body_len..body_len + 32] {
        // Version first: a future version may use another trailer.
        check_version(u16::from_be_bytes([data[8], data[9]]))?;
        return err("the file is damaged or was modified (checksum mismatch)");
    }
    Ok(body_len)
}

/// Refuse a format version other than [`VERSION`].
fn check_version(version: u16) -> Result<(), StoreFormatError> {
    if version != VERSION {
        return err(format!(
            "unsupported key store format version {version} (this keycell reads version {VERSION})"
        ));
    }
    Ok(())
}

/// The fixed header, as read by [`read_header`].
struct Header {
    identity: Identity,
    generation: u64,
    /// Number of entries that follow the header.
    count: u32,
    check: [u8; CHECK_LEN],
}

/// Read and check the fixed header, from the version field on.
fn read_header(r: &mut Reader<'_>) -> Result<Header, StoreFormatError> {
    check_version(r.u16()?)?;
    let master_type = match r.u8()? {
        1 => MasterType::Passphrase,
        2 => MasterType::Key,
        3 => MasterType::Token,
        _ => return err("unknown master type in the header"),
    };
    if r.u8()? != 0 {
        return err("reserved header byte is not zero");
    }
    let store_id = r.array::<ID_LEN>()?;
    let salt = r.array::<ID_LEN>()?;
    let kdf = read_kdf_params(r, master_type)?;
    let generation = r.u64()?;
    let count = r.u32()?;
    if count > MAX_ENTRIES {
        return err("the header's entry count is out of range");
    }
    let check = r.array::<CHECK_LEN>()?;
    let identity = Identity {
        master_type,
        store_id,
        salt,
        kdf,
    };
    Ok(Header {
        identity,
        generation,
        count,
        check,
    })
}

/// Read the header's Argon2 parameters: in range for a passphrase store, all zero (and
/// then `None`) for a master-key store.
fn read_kdf_params(
    r: &mut Reader<'_>,
    master_type: MasterType,
) -> Result<Option<Argon2Params>, StoreFormatError> {
    let params = Argon2Params {
        memory_kib: r.u32()?,
        iterations: r.u32()?,
        lanes: r.u32()?,
    };
    match master_type {
        MasterType::Passphrase => {
            params.check().map_err(|e| {
                StoreFormatError(format!(
                    "the header's Argon2 parameters are out of range: {e}"
                ))
            })?;
            Ok(Some(params))
        }
        MasterType::Key | MasterType::Token if params != NO_KDF_PARAMS => {
            err("the header has KDF parameters for a master-key store")
        }
        MasterType::Key | MasterType::Token => Ok(None),
    }
}

/// Read `count` entries, checking that their names are in strictly increasing order.
fn read_entries(r: &mut Reader<'_>, count: u32) -> Result<Vec<Entry>, StoreFormatError> {
    let mut entries: Vec<Entry> = Vec::new();
    for _ in 0..count {
        let entry = read_entry(r)?;
        if let Some(prev) = entries.last() {
            if prev.name.as_bytes() >= entry.name.as_bytes() {
                return err("entries are not in strictly increasing name order");
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Read one entry and check its name, key type, flags and key length.
fn read_entry(r: &mut Reader<'_>) -> Result<Entry, StoreFormatError> {
    let name = read_entry_name(r)?;
    let kind = kind_from_code(r.u8()?)
        .ok_or_else(|| StoreFormatError("an entry has an unknown key type".to_owned()))?;
    let flags = r.u8()?;
    if flags & !1 != 0 {
        return err("an entry has unknown flags");
    }
    let key_len = r.u32()? as usize;
    if !valid_key_len(kind, key_len) {
        return err("an entry has an invalid key length");
    }
    let nonce = r.array::<NONCE_LEN>()?;
    let ciphertext = r.take(key_len)?.to_vec();
    let tag = r.array::<TAG_LEN>()?;
    Ok(Entry {
        name,
        kind,
        exportable: flags & 1 == 1,
        nonce,
        ciphertext,
        tag,
    })
}

/// Read an entry's name (length-prefixed UTF-8) and check it with [`check_stored_name`].
fn read_entry_name(r: &mut Reader<'_>) -> Result<String, StoreFormatError> {
    let name_len = usize::from(r.u16()?);
    let name = std::str::from_utf8(r.take(name_len)?)
        .map_err(|_| StoreFormatError("an entry name is not UTF-8".to_owned()))?
        .to_owned();
    check_stored_name(&name).map_err(|e| StoreFormatError(format!("invalid entry name: {e}")))?;
    Ok(name)
}

/// Serialize a store file; `mac` computes the HMAC over the bytes it is given.
pub fn serialize(
    identity: &Identity,
    generation: u64,
    check: &[u8; CHECK_LEN],
    entries: &[Entry],
    mac: impl FnOnce(&[u8]) -> [u8; 32],
) -> Result<Vec<u8>, StoreFormatError> {
    if entries.len() > MAX_ENTRIES as usize {
        return err("too many entries for one key store");
    }
    let mut out = Vec::with_capacity(HEADER_LEN + TRAILER_LEN + entries.len() * 96);
    write_header(&mut out, identity, generation, entries.len() as u32, check);
    for e in entries {
        write_entry(&mut out, e);
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    let m = mac(&out);
    out.extend_from_slice(&m);
    if out.len() > MAX_FILE_LEN {
        return err("the key store would exceed its size limit");
    }
    Ok(out)
}

/// Append the fixed header (magic bytes included) to `out`.
fn write_header(
    out: &mut Vec<u8>,
    identity: &Identity,
    generation: u64,
    count: u32,
    check: &[u8; CHECK_LEN],
) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.push(identity.master_type as u8);
    out.push(0);
    out.extend_from_slice(&identity.store_id);
    out.extend_from_slice(&identity.salt);
    let p = identity.kdf.unwrap_or(NO_KDF_PARAMS);
    for v in [p.memory_kib, p.iterations, p.lanes] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&generation.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(check);
}

/// Append one entry to `out`.
fn write_entry(out: &mut Vec<u8>, e: &Entry) {
    out.extend_from_slice(&(e.name.len() as u16).to_be_bytes());
    out.extend_from_slice(e.name.as_bytes());
    out.push(kind_code(e.kind));
    out.push(u8::from(e.exportable));
    out.extend_from_slice(&(e.ciphertext.len() as u32).to_be_bytes());
    out.extend_from_slice(&e.nonce);
    out.extend_from_slice(&e.ciphertext);
    out.extend_from_slice(&e.tag);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Identity, Vec<Entry>) {
        let id = Identity {
            master_type: MasterType::Passphrase,
            store_id: [1; 16],
            salt: [2; 16],
            kdf: Some(Argon2Params {
                memory_kib: 1024,
                iterations: 1,
                lanes: 1,
            }),
        };
        let entries = vec![
            Entry {
                name: "a".to_owned(),
                kind: KeyKind::Secret,
                exportable: true,
                nonce: [3; 24],
                ciphertext: vec![4; 5],
                tag: [5; 16],
            },
            Entry {
                name: "b".to_owned(),
                kind: KeyKind::Ed25519,
                exportable: false,
                nonce: [6; 24],
                ciphertext: vec![7; 32],
                tag: [8; 16],
            },
        ];
        (id, entries)
    }

    #[test]
    fn round_trip_and_every_truncation_and_flip_fails_or_differs() {
        let (id, entries) = sample();
        let data = serialize(&id, 7, &[9; 32], &entries, |_| [10; 32]).expect("ser");
        let f = parse(&data).expect("parse");
        assert_eq!(f.identity, id);
        assert_eq!(f.entries, entries);
        assert_eq!(f.generation, 7);
        assert_eq!(f.mac, [10; 32]);
        assert_eq!(f.mac_covered, data.len() - 32);
        for n in 0..data.len() {
            assert!(parse(&data[..n]).is_err(), "truncated to {n}");
        }
        // Flips before the MAC break the checksum; flips in the MAC parse (the caller's
        // HMAC check catches them).
        for i in 0..data.len() - 32 {
            let mut d = data.clone();
            d[i] ^= 0x01;
            assert!(parse(&d).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn names_with_invisible_characters_are_refused() {
        for c in [
            '\u{202E}',
            '\u{202A}',
            '\u{2066}',
            '\u{2069}',
            '\u{200B}',
            '\u{200D}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{2028}',
            '\u{2029}',
            '\u{0085}',
            '\u{E0001}',
        ] {
            let name = format!("pay{c}roll");
            let e = check_name(&name).expect_err("refused");
            assert!(e.contains(&format!("U+{:04X}", u32::from(c))), "{e}");
            if !c.is_control() {
                assert!(check_stored_name(&name).is_ok());
            }
        }
        for ok in ["clé", "鍵", "ключ", "a b", "e\u{301}", "🔑", "ﬁle"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
    }
}
