//! Reading a key file into guarded memory: the file into a scratch region, its format
//! found and its structure checked, then decoded straight into the key's region; and
//! passphrase files.

use std::ops::Range;
use std::path::Path;

use crate::crypto::curve::Algorithm;
use crate::crypto::ec::Curve;
use crate::crypto::ec_der;
use crate::crypto::key_kind::KeyKind;
use crate::crypto::pkcs8;
use crate::fs::{unusable, FileError, PrivateFile, SecretPath};
use crate::memory::SecretBuf;

use super::detect::{detect, layout};
use super::format::{max_file_len, Format};
use super::openssh;
use super::ssh_public::SshPublicKey;

/// A failure reading, decoding or writing a key file.
#[derive(Debug)]
pub enum LoadError {
    /// The file was refused or could not be used.
    File(FileError),
    /// The memory layer failed (scratch or final region).
    Memory(crate::memory::MemoryError),
}

impl From<FileError> for LoadError {
    fn from(e: FileError) -> Self {
        LoadError::File(e)
    }
}

impl From<crate::memory::MemoryError> for LoadError {
    fn from(e: crate::memory::MemoryError) -> Self {
        LoadError::Memory(e)
    }
}

impl From<pkcs8::Pkcs8Error> for LoadError {
    fn from(e: pkcs8::Pkcs8Error) -> Self {
        LoadError::File(unusable(e.0))
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
    /// The public key a PKCS#8 version 2 file (or an EC key's SEC1 structure) carries.
    public: Option<Vec<u8>>,
    /// The curve of an EC key.
    ec_curve: Option<Curve>,
}

impl DecodedKeyFile {
    /// Open and check `path`, read it into a scratch region, find its format and check
    /// its structure (PKCS#8 is parsed here; PEM is decoded into a second scratch region).
    ///
    /// `format = None` detects it (rules in `docs/key-formats.md`); `length` is the
    /// expected key length (always 32 for Ed25519/X25519).
    pub fn load<'p>(
        path: impl Into<SecretPath<'p>>,
        kind: KeyKind,
        format: Option<Format>,
        length: Option<usize>,
    ) -> Result<DecodedKeyFile, LoadError> {
        Self::load_as(path.into(), kind, kind.ec_curve(), format, length, None)
    }

    /// [`Self::load`] for an Ed25519 or X25519 private key, with the passphrase of an
    /// encrypted OpenSSH key file (`None`: the file must not be encrypted).
    pub fn load_private<'p>(
        path: impl Into<SecretPath<'p>>,
        kind: KeyKind,
        format: Option<Format>,
        passphrase: Option<&[u8]>,
    ) -> Result<DecodedKeyFile, LoadError> {
        Self::load_as(path.into(), kind, kind.ec_curve(), format, None, passphrase)
    }

    /// Like [`Self::load`] for an EC private key of either curve (`curve = None`: the file
    /// names it; [`Self::ec_curve`] tells which) or of the given one.
    /// `passphrase` is that of an encrypted OpenSSH key file, as for [`Self::load_private`].
    pub fn load_ec<'p>(
        path: impl Into<SecretPath<'p>>,
        curve: Option<Curve>,
        format: Option<Format>,
        passphrase: Option<&[u8]>,
    ) -> Result<DecodedKeyFile, LoadError> {
        let kind = KeyKind::from_ec_curve(curve.unwrap_or(Curve::P256));
        Self::load_as(path.into(), kind, curve, format, None, passphrase)
    }

    fn load_as(
        path: SecretPath<'_>,
        kind: KeyKind,
        curve: Option<Curve>,
        format: Option<Format>,
        length: Option<usize>,
        passphrase: Option<&[u8]>,
    ) -> Result<DecodedKeyFile, LoadError> {
        if let Some(f) = format {
            check_format_allowed(f, kind)?;
        }
        let scratch = read_into_scratch(path, max_file_len(kind))?;
        Self::decode_scratch(scratch, kind, curve, format, length, passphrase)
    }

    /// An EC private key in PEM, DER or OpenSSH form that the caller copied into the
    /// guarded region `scratch` (not from a file): [`Self::load_ec`] on it.
    pub fn from_ec_buffer(
        scratch: SecretBuf,
        curve: Option<Curve>,
        format: Format,
        passphrase: Option<&[u8]>,
    ) -> Result<DecodedKeyFile, LoadError> {
        let kind = KeyKind::from_ec_curve(curve.unwrap_or(Curve::P256));
        check_format_allowed(format, kind)?;
        Self::decode_scratch(scratch, kind, curve, Some(format), None, passphrase)
    }

    /// An Ed25519 private key in any of its file formats that the caller copied into the
    /// guarded region `scratch` (not from a file), as [`Self::load_private`] reads it.
    pub fn from_private_buffer(
        scratch: SecretBuf,
        kind: KeyKind,
        format: Option<Format>,
        passphrase: Option<&[u8]>,
    ) -> Result<DecodedKeyFile, LoadError> {
        if let Some(f) = format {
            check_format_allowed(f, kind)?;
        }
        Self::decode_scratch(scratch, kind, kind.ec_curve(), format, None, passphrase)
    }

    /// Find the format of the contents in `scratch`, check their structure and locate the
    /// key in them.
    fn decode_scratch(
        scratch: SecretBuf,
        kind: KeyKind,
        curve: Option<Curve>,
        format: Option<Format>,
        length: Option<usize>,
        passphrase: Option<&[u8]>,
    ) -> Result<DecodedKeyFile, LoadError> {
        if kind == KeyKind::Rsa {
            // An RSA key has no single byte string to locate: `super::rsa` reads its files.
            return Err(unusable("internal error: RSA key files are read by keyfile::rsa").into());
        }
        let length = length.or(kind.fixed_len());
        let content = scratch.bytes()?;
        let format = match format {
            Some(f) => f,
            None => detect(content, kind, length)?,
        };
        if kind == KeyKind::Secret && format == Format::Raw && is_private_key_armor(content) {
            // Even when named raw: a private key file taken as a secret's bytes would make
            // the armored private key an HMAC key (outside review).
            return Err(unusable(
                "it is a PEM or OpenSSH private key file, not the bytes of a secret key: \
                 load it with the private key class (or `--type` in the CLI)",
            )
            .into());
        }
        if passphrase.is_some() && format != Format::OpenSsh {
            return Err(unusable(
                "a passphrase was given, but only encrypted OpenSSH key files take one",
            )
            .into());
        }
        let body = match (format, kind.ec_curve()) {
            (Format::OpenSsh, _) => locate_openssh_key(content, kind, curve, passphrase)?,
            (_, Some(_)) => locate_ec_key(content, format, curve)?,
            (_, None) => locate_key(content, format, kind, length)?,
        };
        check_key_len(body.key_len)?;
        Ok(DecodedKeyFile {
            scratch,
            der: body.der,
            format,
            body: body.range,
            key_len: body.key_len,
            public: body.public,
            ec_curve: body.ec_curve,
        })
    }

    /// The curve of an EC key.
    pub fn ec_curve(&self) -> Option<Curve> {
        self.ec_curve
    }

    /// The format the file was read as.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Length of the key it holds.
    pub fn key_len(&self) -> usize {
        self.key_len
    }

    /// The public key stored beside the private key (PKCS#8 version 2, SEC1), if any. The
    /// caller checks that it belongs to the private key.
    pub fn public(&self) -> Option<&[u8]> {
        self.public.as_deref()
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
            // An EC scalar an encoder wrote without its leading zeros is shorter than the
            // curve's width: zero-filled in front.
            Format::Der | Format::Pem | Format::OpenSsh if src.len() < dst.len() => {
                let (zeros, rest) = dst.split_at_mut(dst.len() - src.len());
                zeros.fill(0);
                rest.copy_from_slice(src);
            }
            Format::Raw | Format::Der | Format::Pem | Format::OpenSsh => dst.copy_from_slice(src),
            Format::Hex => crate::encoding::hex_decode_into(src, dst).map_err(|e| bad("hex", e))?,
            Format::Base64 => {
                crate::encoding::base64_decode_into(src, dst).map_err(|e| bad("base64", e))?
            }
        }
        Ok(())
    }
}

/// Refuse `format` for keys of `kind` unless [`Format::allowed_for`] allows it.
pub(super) fn check_format_allowed(format: Format, kind: KeyKind) -> Result<(), FileError> {
    if !format.allowed_for(kind) {
        return Err(unusable(format!(
            "format {:?} is not available for {} keys",
            format.name(),
            kind.name()
        )));
    }
    Ok(())
}

/// Open and check `path` under its trust (at most `max_len` bytes) and read it into a new
/// guarded scratch region.
pub(super) fn read_into_scratch(
    path: SecretPath<'_>,
    max_len: usize,
) -> Result<SecretBuf, LoadError> {
    let mut file = PrivateFile::open_trusted(path, max_len)?;
    let mut scratch = crate::memory::allocate(file.size())?;
    scratch.write(|dst| file.read_into(dst).map_err(LoadError::File))?;
    Ok(scratch)
}

/// Where the key is in a file's contents, as found by [`locate_key`].
struct KeyBody {
    /// The encoded key (raw, hex, base64) or the key bytes (PKCS#8), in the file's
    /// contents or, for PEM, in `der`.
    range: Range<usize>,
    key_len: usize,
    /// The public key a PKCS#8 version 2 file (or SEC1 structure) carries.
    public: Option<Vec<u8>>,
    /// PEM only: the DER decoded from the PEM body (a guarded scratch region).
    der: Option<SecretBuf>,
    /// The curve of an EC key.
    ec_curve: Option<Curve>,
}

/// Find the key in `content` read as `format` and check the structure around it: PKCS#8
/// is parsed (PEM decoded into a guarded scratch region first); for raw, hex and base64
/// the layout gives the key length, which must match `length` if given.
fn locate_key(
    content: &[u8],
    format: Format,
    kind: KeyKind,
    length: Option<usize>,
) -> Result<KeyBody, LoadError> {
    match (format, kind.algorithm()) {
        (Format::Der, Some(alg)) => {
            let parsed = pkcs8::parse_pkcs8_der(alg, content)?;
            Ok(KeyBody {
                range: subrange(content, parsed.key),
                key_len: parsed.key.len(),
                public: parsed.public.map(|p| p.to_vec()),
                der: None,
                ec_curve: None,
            })
        }
        (Format::Pem, Some(alg)) => locate_pem_key(content, alg),
        (Format::Der | Format::Pem, None) => {
            Err(unusable("PKCS#8 is only for private keys").into())
        }
        (f, _) => locate_encoded_key(content, f, length),
    }
}

/// Decode the PEM body of `content` into a guarded scratch region and parse the PKCS#8
/// structure in it.
fn locate_pem_key(content: &[u8], alg: Algorithm) -> Result<KeyBody, LoadError> {
    let body = pkcs8::pem_body(content, pkcs8::PRIVATE_KEY_LABEL)?;
    let decoded = SecretBuf::new_with(pkcs8::pem_der_len(body)?, |d| {
        pkcs8::pem_der_into(body, d).map_err(LoadError::from)
    })?;
    let bytes = decoded.bytes()?;
    let parsed = pkcs8::parse_pkcs8_der(alg, bytes)?;
    let (range, key_len, public) = (subrange(bytes, parsed.key), parsed.key.len(), parsed.public);
    Ok(KeyBody {
        range,
        key_len,
        public: public.map(|p| p.to_vec()),
        der: Some(decoded),
        ec_curve: None,
    })
}

/// Find the scalar of an EC private key in `content` (PKCS#8 or SEC1, DER or PEM; a
/// leading `EC PARAMETERS` block must name the key's curve), of `curve` if given. The
/// PEM body is decoded into a guarded scratch region and parsed there.
fn locate_ec_key(
    content: &[u8],
    format: Format,
    curve: Option<Curve>,
) -> Result<KeyBody, LoadError> {
    let (der, structure, parameters) = match format {
        Format::Der => (None, None, None),
        Format::Pem => {
            let (pem, parameters) = ec_der::split_ec_parameters(content)?;
            let (label, structure) = if pem
                .trim_ascii_start()
                .starts_with(b"-----BEGIN EC PRIVATE KEY-----")
            {
                (ec_der::EC_PRIVATE_KEY_LABEL, ec_der::PrivateStructure::Sec1)
            } else {
                (pkcs8::PRIVATE_KEY_LABEL, ec_der::PrivateStructure::Pkcs8)
            };
            let body = pkcs8::pem_body(pem, label)?;
            let decoded = SecretBuf::new_with(pkcs8::pem_der_len(body)?, |d| {
                pkcs8::pem_der_into(body, d).map_err(LoadError::from)
            })?;
            (Some(decoded), Some(structure), parameters)
        }
        _ => return Err(unusable("EC keys are read from PEM or DER only").into()),
    };
    let bytes = match &der {
        Some(d) => d.bytes()?,
        None => content,
    };
    if structure.is_some_and(|s| ec_der::private_structure(bytes).ok() != Some(s)) {
        return Err(unusable("the PEM label does not match the key structure inside").into());
    }
    let parsed = ec_der::parse_private_der(bytes, curve)?;
    ec_der::check_parameters(parsed.curve, parameters)?;
    let (range, found, public) = (
        subrange(bytes, parsed.scalar),
        parsed.curve,
        parsed.public.map(<[u8]>::to_vec),
    );
    Ok(KeyBody {
        range,
        key_len: found.scalar_len(),
        public,
        der,
        ec_curve: Some(found),
    })
}

/// Find the private key of the OpenSSH key file `content` (decrypting it with
/// `passphrase`, into a guarded region); it must be a key of `kind` (for EC kinds: of
/// `curve` if given, else of either curve).
fn locate_openssh_key(
    content: &[u8],
    kind: KeyKind,
    curve: Option<Curve>,
    passphrase: Option<&[u8]>,
) -> Result<KeyBody, LoadError> {
    let key = openssh::read(content, passphrase)?;
    let found = key.curve();
    let matches = match (&key.public, found) {
        (SshPublicKey::Ecdsa(_), Some(f)) => {
            kind.ec_curve().is_some() && curve.is_none_or(|c| c == f)
        }
        (SshPublicKey::Ed25519(_), _) => kind == KeyKind::Ed25519,
        _ => false,
    };
    if !matches {
        let wanted = match (kind.ec_curve(), curve) {
            (Some(_), Some(c)) => format!("a {} key", c.name()),
            (Some(_), None) => "an EC key".to_owned(),
            (None, _) => format!("an {} key", kind_title(kind)),
        };
        return Err(unusable(format!(
            "it holds an OpenSSH {} key, not {wanted}",
            key.public.type_name()
        ))
        .into());
    }
    let public = key.public_raw();
    Ok(KeyBody {
        range: key.key.clone(),
        key_len: kind_len(found),
        public: Some(public),
        der: Some(key.section),
        ec_curve: found,
    })
}

fn kind_title(kind: KeyKind) -> &'static str {
    match kind.algorithm() {
        Some(alg) => alg.name(),
        None => kind.name(),
    }
}

/// The length of the key an OpenSSH file holds: the curve's scalar width, or 32.
fn kind_len(curve: Option<Curve>) -> usize {
    curve.map_or(crate::crypto::curve::KEY_LEN, Curve::scalar_len)
}

/// The layout of raw, hex or base64 `content`; its key length must match `length` if
/// given.
fn locate_encoded_key(
    content: &[u8],
    format: Format,
    length: Option<usize>,
) -> Result<KeyBody, LoadError> {
    let (range, key_len) = layout(content, format)?;
    if length.is_some_and(|l| l != key_len) {
        return Err(unusable(format!(
            "its size does not match the expected length of {} bytes (as {})",
            length.unwrap_or(0),
            format.name()
        ))
        .into());
    }
    Ok(KeyBody {
        range,
        key_len,
        public: None,
        der: None,
        ec_curve: None,
    })
}

/// Refuse a key larger than [`crate::crypto::symmetric::MAX_KEY_LEN`].
fn check_key_len(key_len: usize) -> Result<(), LoadError> {
    let max = crate::crypto::symmetric::MAX_KEY_LEN;
    if key_len > max {
        return Err(unusable(format!(
            "the key it holds is larger than the {max}-byte limit for keys"
        ))
        .into());
    }
    Ok(())
}

/// The position of `part`, a sub-slice of `whole`, within it.
fn subrange(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    start..start + part.len()
}

/// The largest passphrase file read: the longest passphrase
/// ([`crate::crypto::symmetric::MAX_KEY_LEN`]) and a CRLF.
pub const MAX_PASSPHRASE_FILE_LEN: usize = crate::crypto::symmetric::MAX_KEY_LEN + 2;

/// Read a passphrase file into a guarded region, with the key file checks of
/// [`PrivateFile::open`] (so a FIFO is refused without blocking, and a symlink, a file of
/// another user or one that group or others can access is refused as insecure). One
/// trailing newline (LF or CRLF) is dropped; an empty passphrase is refused. The file is
/// read into a guarded scratch region and the passphrase copied from it into its own.
pub fn read_passphrase_file(path: &Path) -> Result<SecretBuf, LoadError> {
    let mut file = PrivateFile::open(path, MAX_PASSPHRASE_FILE_LEN)?;
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

/// True when `content` starts (after whitespace) with the BEGIN line of a PEM private key
/// block (PKCS#8, encrypted PKCS#8, SEC1, PKCS#1, OpenSSH).
fn is_private_key_armor(content: &[u8]) -> bool {
    let Some(rest) = content.trim_ascii_start().strip_prefix(b"-----BEGIN ") else {
        return false;
    };
    let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
    line.trim_ascii_end().ends_with(b"PRIVATE KEY-----")
}
