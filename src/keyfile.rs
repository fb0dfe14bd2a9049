//! Opening key files safely: no symlinks, regular files only, owned by us, not readable or
//! writable by group or others, bounded size. The checks run with `fstat` on the open
//! descriptor, so the file that is checked is the file that is read (no check-then-open
//! race). Reads go straight into the caller's buffer (a guarded region): no intermediate
//! copy.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroize;

use crate::crypto::pkcs8::{self, Algorithm};
use crate::memory::sys::effective_uid;
use crate::memory::SecretBuf;

/// Why a key file was refused or could not be read. Messages never contain key bytes nor
/// the size of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFileError {
    /// Not safe to read: the message says why.
    Insecure(String),
    /// Cannot be used: the message says why; `errno` when an OS call failed.
    Unusable { reason: String, errno: Option<i32> },
}

impl KeyFileError {
    fn io(what: &str, e: &std::io::Error) -> Self {
        KeyFileError::Unusable {
            reason: format!("{what}: {e}"),
            errno: e.raw_os_error(),
        }
    }
}

/// An open, checked key file and its size.
pub struct KeyFile {
    file: File,
    size: usize,
}

impl KeyFile {
    /// Open `path` for reading and check it. `max_len` bounds the size.
    pub fn open(path: &Path, max_len: usize) -> Result<KeyFile, KeyFileError> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => KeyFileError::Insecure(
                    "it is a symbolic link (key files are opened with O_NOFOLLOW)".to_owned(),
                ),
                _ => KeyFileError::io("cannot open", &e),
            })?;
        let meta = file
            .metadata()
            .map_err(|e| KeyFileError::io("fstat failed", &e))?;
        if !meta.file_type().is_file() {
            let kind = if meta.is_dir() {
                "a directory"
            } else {
                "not a regular file"
            };
            return Err(KeyFileError::Insecure(format!("it is {kind}")));
        }
        let euid = effective_uid();
        if meta.uid() != euid {
            return Err(KeyFileError::Insecure(format!(
                "it is owned by uid {} but this process runs as uid {euid}",
                meta.uid()
            )));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Insecure(format!(
                "its permissions {mode:04o} let group or others access it (use chmod 600)"
            )));
        }
        let size = meta.len();
        if size == 0 {
            return Err(KeyFileError::Unusable {
                reason: "the file is empty".to_owned(),
                errno: None,
            });
        }
        if size > max_len as u64 {
            return Err(KeyFileError::Unusable {
                reason: format!("the file is larger than the {max_len}-byte limit for key files"),
                errno: None,
            });
        }
        Ok(KeyFile {
            file,
            size: size as usize,
        })
    }

    /// Size of the file in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Read the whole file into `dst` (exactly [`Self::size`] bytes) and check that it
    /// did not grow meanwhile.
    pub fn read_into(&mut self, dst: &mut [u8]) -> Result<(), KeyFileError> {
        if dst.len() != self.size {
            return Err(KeyFileError::Unusable {
                reason: "internal error: destination size differs from file size".to_owned(),
                errno: None,
            });
        }
        self.file.read_exact(dst).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                KeyFileError::Unusable {
                    reason: "the file shrank while being read".to_owned(),
                    errno: None,
                }
            } else {
                KeyFileError::io("read failed", &e)
            }
        })?;
        let mut probe = [0u8; 1];
        let extra = self.file.read(&mut probe);
        probe.zeroize();
        match extra {
            Ok(0) => Ok(()),
            Ok(_) => Err(KeyFileError::Unusable {
                reason: "the file grew while being read".to_owned(),
                errno: None,
            }),
            Err(e) => Err(KeyFileError::io("read failed", &e)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Key kinds and file formats
// ---------------------------------------------------------------------------------------

/// What a key file (or key store entry) holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// A symmetric secret key of 1 to [`crate::crypto::symmetric::MAX_KEY_LEN`] bytes.
    Secret,
    /// An Ed25519 private key (the 32-byte seed).
    Ed25519,
    /// An X25519 private key (the 32-byte scalar).
    X25519,
}

impl KeyKind {
    /// Every kind.
    pub const ALL: [KeyKind; 3] = [KeyKind::Secret, KeyKind::Ed25519, KeyKind::X25519];

    /// `"secret"`, `"ed25519"` or `"x25519"`.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Ed25519 => "ed25519",
            KeyKind::X25519 => "x25519",
        }
    }

    /// Parse a name from [`Self::name`].
    pub fn from_name(name: &str) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The fixed length of the key material, or `None` for secret keys (any length).
    pub fn fixed_len(self) -> Option<usize> {
        self.algorithm().map(|_| pkcs8::KEY_LEN)
    }

    /// The RFC 8410 algorithm of an asymmetric kind (`None` for secret keys).
    pub fn algorithm(self) -> Option<Algorithm> {
        match self {
            KeyKind::Secret => None,
            KeyKind::Ed25519 => Some(Algorithm::Ed25519),
            KeyKind::X25519 => Some(Algorithm::X25519),
        }
    }

    /// The kind of an asymmetric algorithm's private keys.
    pub fn from_algorithm(alg: Algorithm) -> KeyKind {
        match alg {
            Algorithm::Ed25519 => KeyKind::Ed25519,
            Algorithm::X25519 => KeyKind::X25519,
        }
    }

    /// The largest key file read for this kind: [`MAX_KEY_FILE_LEN`] for secret keys,
    /// [`MAX_PRIVATE_KEY_FILE_LEN`] for Ed25519/X25519.
    pub fn max_file_len(self) -> usize {
        match self {
            KeyKind::Secret => MAX_KEY_FILE_LEN,
            KeyKind::Ed25519 | KeyKind::X25519 => MAX_PRIVATE_KEY_FILE_LEN,
        }
    }
}

/// How a key is encoded in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The key bytes themselves.
    Raw,
    /// Hex text (either case; whitespace ignored). Written lowercase with a final newline.
    Hex,
    /// Standard padded base64 text (whitespace ignored). Written on one line + newline.
    Base64,
    /// Unencrypted PKCS#8 in PEM armor (`BEGIN PRIVATE KEY`); Ed25519/X25519 only. Read:
    /// versions 1 and 2; written: version 1, as OpenSSL writes it.
    Pem,
    /// Unencrypted PKCS#8 DER; Ed25519/X25519 only. Versions as for [`Format::Pem`].
    Der,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 5] = [
        Format::Raw,
        Format::Hex,
        Format::Base64,
        Format::Pem,
        Format::Der,
    ];

    /// The name used by `format=`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Hex => "hex",
            Format::Base64 => "base64",
            Format::Pem => "pem",
            Format::Der => "der",
        }
    }

    /// Parse a name from [`Self::name`].
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether keys of `kind` can use this format.
    pub fn allowed_for(self, kind: KeyKind) -> bool {
        match self {
            Format::Raw | Format::Hex | Format::Base64 => true,
            Format::Pem | Format::Der => kind.algorithm().is_some(),
        }
    }
}

/// The largest secret key file read (512 KiB): hex of the largest secret key with
/// generous whitespace. The whole file is read into a guarded scratch region first.
pub const MAX_KEY_FILE_LEN: usize = 512 * 1024;

/// The largest Ed25519/X25519 key file read (16 KiB). A PEM PKCS#8 key is 119 bytes;
/// the limit leaves room for attributes and a public key, and refuses anything absurd.
pub const MAX_PRIVATE_KEY_FILE_LEN: usize = 16 * 1024;

/// A failure reading, decoding or writing a key file.
#[derive(Debug)]
pub enum LoadError {
    /// The file was refused or could not be used.
    File(KeyFileError),
    /// The memory layer failed (scratch or final region).
    Memory(crate::memory::MemoryError),
}

impl From<KeyFileError> for LoadError {
    fn from(e: KeyFileError) -> Self {
        LoadError::File(e)
    }
}

impl From<crate::memory::MemoryError> for LoadError {
    fn from(e: crate::memory::MemoryError) -> Self {
        LoadError::Memory(e)
    }
}

impl From<pkcs8::FormatError> for LoadError {
    fn from(e: pkcs8::FormatError) -> Self {
        LoadError::File(unusable(e.0))
    }
}

fn unusable(reason: impl Into<String>) -> KeyFileError {
    KeyFileError::Unusable {
        reason: reason.into(),
        errno: None,
    }
}

/// A key file read into a guarded scratch region, its format found and its structure
/// checked, ready to be decoded straight into the key's final region with
/// [`DecodedKeyFile::decode_into`]. Dropping it wipes the scratch regions.
pub struct DecodedKeyFile {
    /// The file's contents.
    scratch: SecretBuf,
    /// PEM only: the DER decoded from the PEM body.
    der: Option<SecretBuf>,
    format: Format,
    /// Raw, hex, base64: the encoded key in `scratch`. DER: the key bytes in `scratch`;
    /// PEM: the key bytes in `der`.
    body: Range<usize>,
    key_len: usize,
    /// The public key a PKCS#8 version 2 file carries.
    public: Option<[u8; pkcs8::KEY_LEN]>,
}

impl DecodedKeyFile {
    /// Open and check `path`, read it into a scratch region, find its format and check
    /// its structure (PKCS#8 is parsed here; PEM is decoded into a second scratch region).
    ///
    /// `format = None` detects it (rules in `docs/key-formats.md`); `length` is the
    /// expected key length (always 32 for Ed25519/X25519).
    pub fn load(
        path: &Path,
        kind: KeyKind,
        format: Option<Format>,
        length: Option<usize>,
    ) -> Result<DecodedKeyFile, LoadError> {
        if let Some(f) = format {
            if !f.allowed_for(kind) {
                return Err(unusable(format!(
                    "format {:?} is not available for {} keys",
                    f.name(),
                    kind.name()
                ))
                .into());
            }
        }
        let length = length.or(kind.fixed_len());
        let mut file = KeyFile::open(path, kind.max_file_len())?;
        let mut scratch = crate::memory::allocate(file.size())?;
        scratch.write(|dst| file.read_into(dst).map_err(LoadError::File))?;
        let content = scratch.bytes()?;
        let format = match format {
            Some(f) => f,
            None => detect(content, kind, length)?,
        };
        let mut der = None;
        let (body, key_len, public) = match (format, kind.algorithm()) {
            (Format::Der, Some(alg)) => {
                let parsed = pkcs8::parse_pkcs8_der(alg, content)?;
                (
                    subrange(content, parsed.key),
                    parsed.key.len(),
                    parsed.public,
                )
            }
            (Format::Pem, Some(alg)) => {
                let body = pkcs8::pem_body(content, pkcs8::PRIVATE_KEY_LABEL)?;
                let decoded = SecretBuf::new_with(pkcs8::pem_der_len(body)?, |d| {
                    pkcs8::pem_der_into(body, d).map_err(LoadError::from)
                })?;
                let bytes = decoded.bytes()?;
                let parsed = pkcs8::parse_pkcs8_der(alg, bytes)?;
                let found = (subrange(bytes, parsed.key), parsed.key.len(), parsed.public);
                der = Some(decoded);
                found
            }
            (Format::Der | Format::Pem, None) => {
                return Err(unusable("PKCS#8 is only for ed25519 and x25519 keys").into())
            }
            (f, _) => {
                let (body, n) = layout(content, f)?;
                if length.is_some_and(|l| l != n) {
                    return Err(unusable(format!(
                        "its size does not match the expected length of {} bytes (as {})",
                        length.unwrap_or(0),
                        f.name()
                    ))
                    .into());
                }
                (body, n, None)
            }
        };
        let max = crate::crypto::symmetric::MAX_KEY_LEN;
        if key_len > max {
            return Err(unusable(format!(
                "the key it holds is larger than the {max}-byte limit for keys"
            ))
            .into());
        }
        Ok(DecodedKeyFile {
            scratch,
            der,
            format,
            body,
            key_len,
            public,
        })
    }

    /// The format the file was read as.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Length of the key it holds.
    pub fn key_len(&self) -> usize {
        self.key_len
    }

    /// The public key stored beside the private key (PKCS#8 version 2), if any. The
    /// caller checks that it belongs to the private key.
    pub fn public(&self) -> Option<&[u8; pkcs8::KEY_LEN]> {
        self.public.as_ref()
    }

    /// Decode the key into `dst` (exactly [`Self::key_len`] bytes, a guarded region).
    pub fn decode_into(&self, dst: &mut [u8]) -> Result<(), LoadError> {
        if dst.len() != self.key_len {
            return Err(unusable("internal error: destination size differs from key size").into());
        }
        let bad = |what: &str, e: crate::encoding::DecodeError| {
            LoadError::File(unusable(format!("cannot decode it as {what}: {e}")))
        };
        let src = match &self.der {
            Some(der) => &der.bytes()?[self.body.clone()],
            None => &self.scratch.bytes()?[self.body.clone()],
        };
        match self.format {
            Format::Raw | Format::Der | Format::Pem => dst.copy_from_slice(src),
            Format::Hex => crate::encoding::hex_decode_into(src, dst).map_err(|e| bad("hex", e))?,
            Format::Base64 => {
                crate::encoding::base64_decode_into(src, dst).map_err(|e| bad("base64", e))?
            }
        }
        Ok(())
    }
}

/// The position of `part`, a sub-slice of `whole`, within it.
fn subrange(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    start..start + part.len()
}

/// Whether `content` is text: printable ASCII and whitespace only.
fn is_text(content: &[u8]) -> bool {
    content
        .iter()
        .all(|&c| crate::encoding::is_space(c) || (0x21..=0x7e).contains(&c))
}

/// The body range and decoded key length of `content` as raw, hex or base64 (layout only;
/// the characters are checked while decoding).
fn layout(content: &[u8], format: Format) -> Result<(Range<usize>, usize), KeyFileError> {
    let all = 0..content.len();
    let bad = |what: &str, e: crate::encoding::DecodeError| {
        unusable(format!("cannot decode it as {what}: {e}"))
    };
    match format {
        Format::Hex => crate::encoding::hex_decoded_len(content)
            .map(|n| (all, n))
            .map_err(|e| bad("hex", e)),
        Format::Base64 => crate::encoding::base64_decoded_len(content)
            .map(|n| (all, n))
            .map_err(|e| bad("base64", e)),
        Format::Raw | Format::Pem | Format::Der => Ok((all, content.len())),
    }
}

/// The hex or base64 reading of text `content` that decodes to exactly `len` bytes.
fn text_of_len(content: &[u8], len: usize) -> Option<Format> {
    if !is_text(content) {
        return None;
    }
    [Format::Hex, Format::Base64].into_iter().find(|&f| {
        let looks = match f {
            Format::Hex => crate::encoding::looks_hex(content),
            _ => crate::encoding::looks_base64(content),
        };
        looks && layout(content, f).is_ok_and(|(_, n)| n == len)
    })
}

/// Find the format of `content` (see `docs/key-formats.md`).
fn detect(content: &[u8], kind: KeyKind, length: Option<usize>) -> Result<Format, KeyFileError> {
    if pkcs8::looks_like_pem(content) {
        if kind.algorithm().is_none() {
            return Err(unusable(
                "it is a PEM file; PEM is only read for ed25519 and x25519 keys",
            ));
        }
        return Ok(Format::Pem);
    }
    if let Some(alg) = kind.algorithm() {
        // 32 bytes are the raw key, unless they are the start of a PKCS#8 structure or
        // text: a truncated DER, hex or base64 file must not become a key (a random key
        // is all printable with probability below 2^-45). Other binary data starting
        // with a SEQUENCE tag is DER.
        if content.len() == pkcs8::KEY_LEN {
            if pkcs8::looks_like_pkcs8(content) {
                return Ok(Format::Der);
            }
            if is_text(content) {
                return Err(unusable(format!(
                    "it holds 32 characters of text, not a raw {} key, nor hex or base64 of \
                     one (a truncated file?); pass format=\"raw\" if these characters \
                     really are the key",
                    alg.name()
                )));
            }
            return Ok(Format::Raw);
        }
        if content.first() == Some(&0x30) && !is_text(content) {
            return Ok(Format::Der);
        }
        return text_of_len(content, pkcs8::KEY_LEN).ok_or_else(|| {
            unusable(format!(
                "it is not a raw 32-byte {0} key, nor hex or base64 of one, nor a PKCS#8 {0} \
                 key in PEM or DER (pass format= to name the encoding)",
                alg.name()
            ))
        });
    }
    if let Some(len) = length {
        // Known length: exactly one candidate can match it.
        if content.len() == len {
            return Ok(Format::Raw);
        }
        return text_of_len(content, len).ok_or_else(|| {
            unusable(format!(
                "its size does not match the expected length of {len} bytes (read as raw \
                 bytes, hex or base64; pass format= to name the encoding)"
            ))
        });
    }
    // Unknown length (secret keys without length=): see docs/key-formats.md.
    if !is_text(content) {
        return Ok(Format::Raw);
    }
    if crate::encoding::looks_hex(content) {
        return Ok(Format::Hex);
    }
    let encoded_look = content
        .iter()
        .any(|&c| c == b'=' || crate::encoding::is_space(c));
    if !encoded_look {
        // One token of printable characters, no padding, no line break: raw.
        return Ok(Format::Raw);
    }
    if crate::encoding::looks_base64(content) && layout(content, Format::Base64).is_ok() {
        return Ok(Format::Base64);
    }
    Err(unusable(
        "it is text with line breaks or padding but neither hex nor base64; pass \
         format=\"raw\" if the key really is these characters (or length=)",
    ))
}

/// The largest passphrase file read: the longest passphrase
/// ([`crate::crypto::symmetric::MAX_KEY_LEN`]) and a CRLF.
pub const MAX_PASSPHRASE_FILE_LEN: usize = crate::crypto::symmetric::MAX_KEY_LEN + 2;

/// Read a passphrase file into a guarded region, with the key file checks of
/// [`KeyFile::open`] (so a FIFO is refused without blocking, and a symlink, a file of
/// another user or one that group or others can access is refused as insecure). One
/// trailing newline (LF or CRLF) is dropped; an empty passphrase is refused. The file is
/// read into a guarded scratch region and the passphrase copied from it into its own.
pub fn read_passphrase_file(path: &Path) -> Result<SecretBuf, LoadError> {
    let mut file = KeyFile::open(path, MAX_PASSPHRASE_FILE_LEN)?;
    let scratch = SecretBuf::new_with(file.size(), |d| file.read_into(d).map_err(LoadError::File))?;
    let content = scratch.bytes()?;
    let mut n = content.len();
    if content[..n].ends_with(b"\n") {
        n -= 1;
        if content[..n].ends_with(b"\r") {
            n -= 1;
        }
    }
    if n == 0 {
        return Err(unusable("it holds an empty passphrase").into());
    }
    if n > crate::crypto::symmetric::MAX_KEY_LEN {
        return Err(unusable(format!(
            "a passphrase may be at most {} bytes",
            crate::crypto::symmetric::MAX_KEY_LEN
        ))
        .into());
    }
    SecretBuf::new_with(n, |d| {
        d.copy_from_slice(&content[..n]);
        Ok::<(), LoadError>(())
    })
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// Encode `key` (of `kind`) as `format` into a guarded scratch region and hand the encoded
/// bytes to `sink`. Raw keys are handed over directly, without a scratch copy.
pub fn with_encoded<T>(
    kind: KeyKind,
    format: Format,
    key: &[u8],
    sink: impl FnOnce(&[u8]) -> Result<T, LoadError>,
) -> Result<T, LoadError> {
    use crate::encoding::{base64_encode_into, base64_encoded_len, hex_encode_into};
    if !format.allowed_for(kind) {
        return Err(unusable(format!(
            "format {:?} is not available for {} keys",
            format.name(),
            kind.name()
        ))
        .into());
    }
    let internal = |_| LoadError::File(unusable("internal error: encoding failed"));
    // Text formats end with a newline.
    let text = |n: usize, encode: &dyn Fn(&mut [u8]) -> Result<(), LoadError>| {
        SecretBuf::new_with(n + 1, |d| {
            encode(&mut d[..n])?;
            d[n] = b'\n';
            Ok::<(), LoadError>(())
        })
    };
    let scratch = match (format, kind.algorithm()) {
        (Format::Raw, _) => return sink(key),
        (Format::Hex, _) => text(2 * key.len(), &|d| {
            hex_encode_into(key, d).map_err(internal)
        })?,
        (Format::Base64, _) => text(base64_encoded_len(key.len()), &|d| {
            base64_encode_into(key, d).map_err(internal)
        })?,
        (Format::Der | Format::Pem, Some(alg)) => {
            let der = SecretBuf::new_with(pkcs8::PKCS8_V1_LEN, |d| {
                pkcs8::pkcs8_v1_der_into(alg, key, d).map_err(LoadError::from)
            })?;
            if format == Format::Der {
                der
            } else {
                let label = pkcs8::PRIVATE_KEY_LABEL;
                let der_bytes = der.bytes()?;
                SecretBuf::new_with(pkcs8::pem_encoded_len(label, der_bytes.len()), |d| {
                    pkcs8::pem_encode_into(label, der_bytes, d).map_err(LoadError::from)
                })?
            }
        }
        (Format::Der | Format::Pem, None) => {
            return Err(unusable("PKCS#8 is only for ed25519 and x25519 keys").into())
        }
    };
    sink(scratch.bytes()?)
}

/// Write `key` to `path` as `format`, atomically (see [`write_atomic`]).
pub fn write_key_file(
    path: &Path,
    kind: KeyKind,
    format: Format,
    key: &[u8],
    overwrite: bool,
) -> Result<(), LoadError> {
    with_encoded(kind, format, key, |data| {
        write_atomic(path, data, overwrite).map_err(LoadError::File)
    })
}

/// Removes a temporary file when dropped, unless disarmed.
struct TempFile {
    path: Option<std::path::PathBuf>,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn random_suffix() -> Result<String, KeyFileError> {
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(|_| unusable("the OS random number generator failed"))?;
    Ok(r.iter().map(|b| format!("{b:02x}")).collect())
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `fsync` a directory, so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), KeyFileError> {
    let d = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| KeyFileError::io("cannot open its directory to fsync it", &e))?;
    d.sync_all()
        .map_err(|e| KeyFileError::io("fsync of its directory failed", &e))
}

/// Write `data` to `path` so that a crash never leaves a partial file under `path`:
///
/// 1. create `.keycell-RANDOM.tmp` (16 random hex digits: a fixed length, so any valid
///    target name works, up to `NAME_MAX`) in the same directory with
///    `O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC`, mode 0600 (then `fchmod` 0600, so the
///    umask cannot matter);
/// 2. write, `fsync`;
/// 3. rename it to `path`: with `overwrite`, `rename(2)` (atomic replace; a symlink at
///    `path` is replaced, never followed); without, `renameat2(RENAME_NOREPLACE)`, or
///    `link(2)` + `unlink(2)` where the file system lacks it, so an existing file is never
///    replaced (`errno` `EEXIST`);
/// 4. `fsync` the directory.
///
/// On any error the temporary file is removed.
pub fn write_atomic(path: &Path, data: &[u8], overwrite: bool) -> Result<(), KeyFileError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    if path.file_name().is_none() {
        return Err(unusable("the path does not name a file"));
    }
    let dir = parent_dir(path);
    if !overwrite && std::fs::symlink_metadata(path).is_ok() {
        return Err(KeyFileError::Unusable {
            reason: "it already exists (pass overwrite=True to replace it)".to_owned(),
            errno: Some(libc::EEXIST),
        });
    }
    // Not derived from the target's name: `.NAME.RANDOM.tmp` would exceed NAME_MAX for
    // target names of 234 bytes and more.
    let tmp_path = dir.join(format!(".keycell-{}.tmp", random_suffix()?));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp_path)
        .map_err(|e| KeyFileError::io("cannot create a temporary file beside it", &e))?;
    let mut tmp = TempFile {
        path: Some(tmp_path.clone()),
    };
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| KeyFileError::io("fchmod failed", &e))?;
    file.write_all(data)
        .map_err(|e| KeyFileError::io("write failed", &e))?;
    file.sync_all()
        .map_err(|e| KeyFileError::io("fsync failed", &e))?;
    drop(file);
    if overwrite {
        std::fs::rename(&tmp_path, path).map_err(|e| KeyFileError::io("rename failed", &e))?;
        tmp.path = None;
    } else {
        let exists = || KeyFileError::Unusable {
            reason: "it already exists (pass overwrite=True to replace it)".to_owned(),
            errno: Some(libc::EEXIST),
        };
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &tmp_path,
            rustix::fs::CWD,
            path,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => tmp.path = None,
            Err(rustix::io::Errno::EXIST) => return Err(exists()),
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
                // No RENAME_NOREPLACE here: link() fails with EEXIST just as atomically.
                std::fs::hard_link(&tmp_path, path).map_err(|e| {
                    if e.raw_os_error() == Some(libc::EEXIST) {
                        exists()
                    } else {
                        KeyFileError::io("link failed", &e)
                    }
                })?;
                // `tmp` unlinks the temporary name on drop.
            }
            Err(e) => {
                return Err(KeyFileError::io(
                    "rename failed",
                    &std::io::Error::from_raw_os_error(e.raw_os_error()),
                ))
            }
        }
    }
    drop(tmp);
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn tmpdir() -> std::path::PathBuf {
        let mut p = std::env::temp_dir();
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).expect("random");
        p.push(format!(
            "keycell-test-{}",
            r.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        std::fs::create_dir(&p).expect("mkdir");
        p
    }

    fn write(path: &Path, data: &[u8], mode: u32) {
        let mut f = File::create(path).expect("create");
        f.write_all(data).expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn load(
        path: &Path,
        kind: KeyKind,
        f: Option<Format>,
        l: Option<usize>,
    ) -> Result<Vec<u8>, String> {
        let d = DecodedKeyFile::load(path, kind, f, l).map_err(|e| format!("{e:?}"))?;
        let mut out = vec![0u8; d.key_len()];
        d.decode_into(&mut out).map_err(|e| format!("{e:?}"))?;
        Ok(out)
    }

    #[test]
    fn formats_detect_and_round_trip() {
        let d = tmpdir();
        let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x80).collect();
        for kind in KeyKind::ALL {
            for f in [
                Format::Raw,
                Format::Hex,
                Format::Base64,
                Format::Pem,
                Format::Der,
            ] {
                let p = d.join(format!("{}-{}", kind.name(), f.name()));
                let r = write_key_file(&p, kind, f, &key, false);
                if !f.allowed_for(kind) {
                    assert!(r.is_err());
                    continue;
                }
                r.expect("write");
                let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
                assert_eq!(mode, 0o600);
                // Given format, detected with the length, detected without (secret only).
                assert_eq!(load(&p, kind, Some(f), None).expect("given"), key);
                assert_eq!(load(&p, kind, None, Some(32)).expect("len"), key);
                assert_eq!(load(&p, kind, None, None).expect("auto"), key);
                // No overwrite; overwrite replaces.
                assert!(write_key_file(&p, kind, f, &key, false).is_err());
                write_key_file(&p, kind, f, &key, true).expect("overwrite");
            }
        }
        // No temporary files left behind.
        let left: Vec<_> = std::fs::read_dir(&d)
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn ambiguity_and_wrong_kinds_are_refused() {
        let d = tmpdir();
        let p = d.join("k");
        // One printable token (no padding, no line break) is raw.
        write(&p, b"0123456789abcdeg", 0o600);
        assert_eq!(
            load(&p, KeyKind::Secret, None, None).expect("raw"),
            b"0123456789abcdeg"
        );
        assert_eq!(
            load(&p, KeyKind::Secret, Some(Format::Raw), None).expect("raw"),
            b"0123456789abcdeg"
        );
        assert_eq!(
            load(&p, KeyKind::Secret, None, Some(16)).expect("len"),
            b"0123456789abcdeg"
        );
        // Text that is both hex and base64: hex unless told.
        write(&p, b"0123456789abcdef\n", 0o600);
        assert_eq!(load(&p, KeyKind::Secret, None, None).expect("hex").len(), 8);
        assert_eq!(
            load(&p, KeyKind::Secret, None, Some(8)).expect("hex").len(),
            8
        );
        assert_eq!(
            load(&p, KeyKind::Secret, None, Some(12))
                .expect("b64")
                .len(),
            12
        );
        assert_eq!(
            load(&p, KeyKind::Secret, Some(Format::Hex), None)
                .expect("hex")
                .len(),
            8
        );
        // Text with a line break that is neither hex nor base64 is refused.
        write(&p, b"correct horse battery staple\n", 0o600);
        assert!(load(&p, KeyKind::Secret, None, None).is_err());
        // Wrong expected length.
        assert!(load(&p, KeyKind::Secret, None, Some(9)).is_err());
        assert!(load(&p, KeyKind::Secret, Some(Format::Hex), Some(9)).is_err());
        // PEM for a secret key; an Ed25519 PEM read as X25519.
        let key = [7u8; 32];
        let pem = d.join("pem");
        write_key_file(&pem, KeyKind::Ed25519, Format::Pem, &key, false).expect("pem");
        assert!(load(&pem, KeyKind::Secret, None, None).is_err());
        let e = load(&pem, KeyKind::X25519, None, None).expect_err("kind");
        assert!(e.contains("Ed25519 key, not an X25519"), "{e}");
        // Non-canonical or broken encodings.
        write(&p, b"zz\n", 0o600);
        assert!(load(&p, KeyKind::Secret, Some(Format::Hex), None).is_err());
        write(
            &p,
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
            0o600,
        );
        let e = load(&p, KeyKind::Ed25519, None, None).expect_err("encrypted");
        assert!(e.contains("encrypted"), "{e}");
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn openssl_style_pkcs8_loads() {
        // `openssl genpkey -algorithm ed25519` (RFC 8410 §10.3 example key).
        let d = tmpdir();
        let p = d.join("ed.pem");
        write(
            &p,
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n",
            0o600,
        );
        let k = load(&p, KeyKind::Ed25519, None, None).expect("pem");
        assert_eq!(
            k,
            [
                0xd4, 0xee, 0x72, 0xdb, 0xf9, 0x13, 0x58, 0x4a, 0xd5, 0xb6, 0xd8, 0xf1, 0xf7, 0x69,
                0xf8, 0xad, 0x3a, 0xfe, 0x7c, 0x28, 0xcb, 0xf1, 0xd4, 0xfb, 0xe0, 0x97, 0xa8, 0x8f,
                0x44, 0x75, 0x58, 0x42
            ]
        );
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn pkcs8_v2_public_key_and_truncations() {
        let d = tmpdir();
        let p = d.join("k");
        let key = [0x5au8; 32];
        // Version 2 (RFC 5958) with a public key: the key loads, the public key is handed
        // to the caller for its check.
        let mut v2 = vec![0x30, 0x51, 0x02, 0x01, 0x01];
        v2.extend_from_slice(&[
            0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
        ]);
        v2.extend_from_slice(&key);
        v2.extend_from_slice(&[0x81, 0x21, 0x00]);
        v2.extend_from_slice(&[7u8; 32]);
        write(&p, &v2, 0o600);
        let f = DecodedKeyFile::load(&p, KeyKind::Ed25519, None, None).expect("v2");
        assert_eq!((f.format(), f.public()), (Format::Der, Some(&[7u8; 32])));
        assert_eq!(load(&p, KeyKind::Ed25519, None, None).expect("v2"), key);
        // Every truncation of a DER or PEM file is refused, never read as another key
        // (a PEM file only loses its optional final newline).
        for f in [Format::Der, Format::Pem] {
            let full = d.join(format!("full-{}", f.name()));
            write_key_file(&full, KeyKind::X25519, f, &key, false).expect("write");
            let data = std::fs::read(&full).expect("read");
            for n in 1..data.len() {
                write(&p, &data[..n], 0o600);
                let r = load(&p, KeyKind::X25519, None, None);
                if f == Format::Pem && n == data.len() - 1 {
                    assert_eq!(r.expect("no final newline"), key);
                } else {
                    assert!(r.is_err(), "{} truncated to {n} loaded", f.name());
                }
            }
        }
        // Hex and base64 of a 32-byte key are detected; other lengths are refused.
        for (f, text) in [
            (Format::Hex, b"5a".repeat(32)),
            (
                Format::Base64,
                b"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=".to_vec(),
            ),
        ] {
            write(&p, &[text.as_slice(), b"\n"].concat(), 0o600);
            let loaded = DecodedKeyFile::load(&p, KeyKind::Ed25519, None, None).expect("text");
            assert_eq!(loaded.format(), f);
            assert_eq!(load(&p, KeyKind::Ed25519, None, None).expect("text"), key);
        }
        write(&p, &b"5a".repeat(31), 0o600);
        let e = load(&p, KeyKind::Ed25519, None, None).expect_err("short hex");
        assert!(e.contains("not a raw 32-byte Ed25519 key"), "{e}");
        // A format that does not match the contents is refused.
        write_key_file(&p, KeyKind::Ed25519, Format::Pem, &key, true).expect("pem");
        for f in [Format::Der, Format::Raw, Format::Hex, Format::Base64] {
            assert!(
                load(&p, KeyKind::Ed25519, Some(f), None).is_err(),
                "{}",
                f.name()
            );
        }
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn reads_good_file_and_refuses_bad_ones() {
        let d = tmpdir();
        let good = d.join("good");
        write(&good, b"0123456789abcdef", 0o600);
        let mut kf = KeyFile::open(&good, 1024).expect("open");
        let mut out = vec![0u8; kf.size()];
        kf.read_into(&mut out).expect("read");
        assert_eq!(out, b"0123456789abcdef");

        let loose = d.join("loose");
        write(&loose, b"x", 0o644);
        assert!(matches!(
            KeyFile::open(&loose, 1024),
            Err(KeyFileError::Insecure(_))
        ));

        let link = d.join("link");
        std::os::unix::fs::symlink(&good, &link).expect("symlink");
        assert!(matches!(
            KeyFile::open(&link, 1024),
            Err(KeyFileError::Insecure(_))
        ));

        assert!(matches!(
            KeyFile::open(&d, 1024),
            Err(KeyFileError::Insecure(_))
        ));

        let empty = d.join("empty");
        write(&empty, b"", 0o600);
        assert!(matches!(
            KeyFile::open(&empty, 1024),
            Err(KeyFileError::Unusable { .. })
        ));
        assert!(matches!(
            KeyFile::open(&good, 4),
            Err(KeyFileError::Unusable { .. })
        ));
        assert!(matches!(
            KeyFile::open(&d.join("missing"), 4),
            Err(KeyFileError::Unusable {
                errno: Some(libc::ENOENT),
                ..
            })
        ));
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
