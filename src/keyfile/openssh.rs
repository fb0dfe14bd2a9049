//! OpenSSH private key files (`-----BEGIN OPENSSH PRIVATE KEY-----`, the `openssh-key-v1`
//! format of OpenSSH's `PROTOCOL.key`), read in guarded memory only: the base64 body is
//! decoded into a guarded region, an encrypted private section is copied into a second
//! one and decrypted in place there, the bcrypt-pbkdf output (key and IV) and the KDF's
//! work memory are guarded regions too, and the stack the KDF and the ciphers used is
//! scrubbed ([`crate::crypto::scrub::scrubbed_deep`]). The caller gets the position of the
//! private key inside the decrypted section, never a copy.
//!
//! Why not the `ssh-key` crate: it decodes into heap types (`Vec`, `Mpint`, `Zeroizing`
//! buffers it allocates), so the seed or scalar would pass through the process heap; the
//! format is a few length-prefixed strings, read here on borrowed slices
//! ([`SshReader`]). The KDF is RustCrypto's `bcrypt-pbkdf` through
//! `bcrypt_pbkdf_with_memory` (no allocation), the ciphers `aes` + `ctr` and `aes-gcm`.
//!
//! Supported: ciphers `none`, `aes256-ctr` (the `ssh-keygen` default) and
//! `aes256-gcm@openssh.com`; KDF `bcrypt`; key types `ssh-ed25519`,
//! `ecdsa-sha2-nistp256`, `ecdsa-sha2-nistp384` and `ssh-rsa`.
//!
//! Writing ([`encode`]) is the reverse, in guarded memory too: the private section is
//! built in a guarded region (an RSA key's components are read in place from its PKCS#1
//! DER, itself in the key's region), encrypted there with `aes256-ctr` under a passphrase
//! (bcrypt-pbkdf, 16 rounds, as `ssh-keygen`), and armored in further guarded regions.

use std::ops::Range;

use aes::cipher::{KeyIvInit, StreamCipher};
use aes_gcm::aead::{AeadInPlace, KeyInit};

use crate::crypto::ec::Curve;
use crate::fs::{unusable, FileError};
use crate::memory::SecretBuf;

use super::ssh_public::{curve_id, SshFormatError, SshPublicKey, SshReader, ED25519, RSA};

/// The PEM label of OpenSSH private key files.
pub const LABEL: &str = "OPENSSH PRIVATE KEY";

const MAGIC: &[u8] = b"openssh-key-v1\0";

/// The most bcrypt rounds accepted (`ssh-keygen -a`; the default is 16). A file asking
/// for more is refused rather than keeping the caller busy for minutes.
pub const MAX_BCRYPT_ROUNDS: u32 = 1024;

/// True when `content` is an OpenSSH private key file (after leading whitespace).
pub fn looks_like_openssh(content: &[u8]) -> bool {
    content
        .trim_ascii_start()
        .starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----")
}

/// The private key found in an OpenSSH key file.
pub struct OpenSshKey {
    /// The private section (decrypted), a guarded region.
    pub section: SecretBuf,
    /// Where the private key is in `section`: the 32-byte Ed25519 seed, or the EC scalar
    /// (big-endian, without its mpint sign byte; possibly shorter than the curve's width).
    pub key: Range<usize>,
    /// The public key (checked against the private section's own copy).
    pub public: SshPublicKey,
    /// An RSA key's private components in `section` (then `key` is empty).
    pub rsa: Option<RsaParts>,
}

/// Where an RSA key's private components are in the private section (big-endian
/// magnitudes, without mpint sign bytes): `d`, `iqmp` (q^-1 mod p), `p`, `q`.
#[derive(Clone)]
pub struct RsaParts {
    pub d: Range<usize>,
    pub iqmp: Range<usize>,
    pub p: Range<usize>,
    pub q: Range<usize>,
}

impl OpenSshKey {
    /// The curve of an ECDSA key (`None` for Ed25519).
    pub fn curve(&self) -> Option<Curve> {
        match &self.public {
            SshPublicKey::Ecdsa(p) => Some(p.curve()),
            SshPublicKey::Ed25519(_) | SshPublicKey::Rsa { .. } => None,
        }
    }

    /// The public key's raw form: the 32-byte Ed25519 key or the uncompressed SEC1 point
    /// (empty for RSA).
    pub fn public_raw(&self) -> Vec<u8> {
        match &self.public {
            SshPublicKey::Ed25519(k) => k.to_vec(),
            SshPublicKey::Ecdsa(p) => p.uncompressed().to_vec(),
            SshPublicKey::Rsa { .. } => Vec::new(),
        }
    }
}

fn bad(e: SshFormatError) -> FileError {
    unusable(format!("invalid OpenSSH private key: {e}"))
}

/// The cipher of the private section.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cipher {
    None,
    Aes256Ctr,
    Aes256Gcm,
}

impl Cipher {
    fn from_name(name: &[u8]) -> Result<Cipher, FileError> {
        match name {
            b"none" => Ok(Cipher::None),
            b"aes256-ctr" => Ok(Cipher::Aes256Ctr),
            b"aes256-gcm@openssh.com" => Ok(Cipher::Aes256Gcm),
            _ => Err(unusable(format!(
                "its private key is encrypted with {}, which keycell does not read \
                 (aes256-ctr and aes256-gcm@openssh.com are supported; re-encrypt with \
                 ssh-keygen -p -Z aes256-ctr)",
                printable_name(name)
            ))),
        }
    }

    fn block_len(self) -> usize {
        match self {
            Cipher::None => 8,
            Cipher::Aes256Ctr | Cipher::Aes256Gcm => 16,
        }
    }

    fn iv_len(self) -> usize {
        match self {
            Cipher::None => 0,
            Cipher::Aes256Ctr => 16,
            Cipher::Aes256Gcm => 12,
        }
    }

    fn tag_len(self) -> usize {
        match self {
            Cipher::Aes256Gcm => 16,
            Cipher::None | Cipher::Aes256Ctr => 0,
        }
    }
}

/// A cipher or KDF name for an error message: itself if short and printable.
fn printable_name(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(s) if s.len() <= 40 && s.bytes().all(|b| b.is_ascii_graphic()) => format!("{s:?}"),
        _ => "an unknown cipher".to_owned(),
    }
}

/// Decode the OpenSSH private key file `content` (PEM armored) and find its private key,
/// decrypting the private section with `passphrase` if it is encrypted.
pub fn read(content: &[u8], passphrase: Option<&[u8]>) -> Result<OpenSshKey, FileError> {
    let decoded = decode_body(content)?;
    let mut r = binary_reader(&decoded)?;
    let cipher = Cipher::from_name(r.string().map_err(bad)?)?;
    let kdf = r.string().map_err(bad)?;
    let kdf_options = r.string().map_err(bad)?;
    if r.u32().map_err(bad)? != 1 {
        return Err(unusable(
            "invalid OpenSSH private key: it must hold exactly one key",
        ));
    }
    let public = SshPublicKey::from_blob(r.string().map_err(bad)?).map_err(bad)?;
    let encrypted = r.string().map_err(bad)?;
    let tag = r.bytes(cipher.tag_len()).map_err(bad)?;
    r.finish("private section").map_err(bad)?;
    if encrypted.is_empty() || encrypted.len() % cipher.block_len() != 0 {
        return Err(unusable(
            "invalid OpenSSH private key: the private section is not a whole number of \
             cipher blocks",
        ));
    }
    let section = match (cipher, kdf) {
        (Cipher::None, b"none") if kdf_options.is_empty() => {
            if passphrase.is_some() {
                return Err(unusable(
                    "the key is not encrypted, but a passphrase was given",
                ));
            }
            copy_section(encrypted)?
        }
        (Cipher::None, _) => {
            return Err(unusable(
                "invalid OpenSSH private key: an unencrypted key names a KDF",
            ))
        }
        (_, b"bcrypt") => {
            let Some(passphrase) = passphrase else {
                return Err(unusable(
                    "the key is encrypted: pass its passphrase (passphrase=)",
                ));
            };
            decrypt_section(cipher, kdf_options, passphrase, encrypted, tag)?
        }
        (_, other) => {
            return Err(unusable(format!(
                "its private key is protected with the KDF {}, which keycell does not read \
                 (bcrypt is supported)",
                printable_name(other)
            )))
        }
    };
    let encrypted_key = cipher != Cipher::None;
    let (key, rsa, inner_public) = parse_section(section.bytes().map_err(memory)?, encrypted_key)?;
    if inner_public != public {
        return Err(unusable(
            "invalid OpenSSH private key: the public key and the private section name \
             different keys",
        ));
    }
    Ok(OpenSshKey {
        section,
        key,
        public,
        rsa,
    })
}

/// The public key an OpenSSH private key file (`content`, PEM armored) names in its
/// unencrypted header, and whether its private section is encrypted, without decrypting
/// or parsing that section: what kind of key a file holds, before its passphrase is
/// asked for. The body is decoded in a guarded region (it holds the private section too).
pub fn header(content: &[u8]) -> Result<(SshPublicKey, bool), FileError> {
    let decoded = decode_body(content)?;
    let mut r = binary_reader(&decoded)?;
    let encrypted = r.string().map_err(bad)? != b"none";
    for _ in 0..2 {
        r.string().map_err(bad)?;
    }
    if r.u32().map_err(bad)? != 1 {
        return Err(unusable(
            "invalid OpenSSH private key: it must hold exactly one key",
        ));
    }
    let public = SshPublicKey::from_blob(r.string().map_err(bad)?).map_err(bad)?;
    Ok((public, encrypted))
}

/// The base64 body of the armored file `content`, decoded into a guarded region.
fn decode_body(content: &[u8]) -> Result<SecretBuf, FileError> {
    let body = crate::crypto::pkcs8::pem_body(content, LABEL).map_err(|e| unusable(e.0))?;
    SecretBuf::new_with(
        crate::crypto::pkcs8::pem_der_len(body).map_err(|e| unusable(e.0))?,
        |d| {
            crate::crypto::pkcs8::pem_der_into(body, d)
                .map_err(|e| LoadFailure::File(unusable(e.0)))
        },
    )
    .map_err(LoadFailure::into_file)
}

/// A reader over the decoded body, past its `openssh-key-v1` magic.
fn binary_reader(decoded: &SecretBuf) -> Result<SshReader<'_>, FileError> {
    let mut r = SshReader::new(decoded.bytes().map_err(memory)?);
    if r.bytes(MAGIC.len()).ok() != Some(MAGIC) {
        return Err(unusable(
            "invalid OpenSSH private key: it does not start with \"openssh-key-v1\"",
        ));
    }
    Ok(r)
}

/// What a fill closure can fail with (a memory error or a file error).
enum LoadFailure {
    File(FileError),
    Memory(crate::memory::MemoryError),
}

impl From<crate::memory::MemoryError> for LoadFailure {
    fn from(e: crate::memory::MemoryError) -> Self {
        LoadFailure::Memory(e)
    }
}

impl LoadFailure {
    fn into_file(self) -> FileError {
        match self {
            LoadFailure::File(f) => f,
            LoadFailure::Memory(m) => memory(m),
        }
    }
}

/// A memory failure while reading the key, as a file error (the region could not be
/// made); the message names the memory layer's reason.
fn memory(e: crate::memory::MemoryError) -> FileError {
    unusable(format!("guarded memory for the key could not be used: {e}"))
}

fn copy_section(src: &[u8]) -> Result<SecretBuf, FileError> {
    SecretBuf::new_with(src.len(), |d| {
        d.copy_from_slice(src);
        Ok::<(), crate::memory::MemoryError>(())
    })
    .map_err(memory)
}

/// Derive the key and IV from `passphrase` with bcrypt-pbkdf (into a guarded region, with
/// a guarded work area), copy `ciphertext` into a new guarded region and decrypt it there.
fn decrypt_section(
    cipher: Cipher,
    kdf_options: &[u8],
    passphrase: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Result<SecretBuf, FileError> {
    let mut r = SshReader::new(kdf_options);
    let salt = r.string().map_err(bad)?;
    let rounds = r.u32().map_err(bad)?;
    r.finish("bcrypt options").map_err(bad)?;
    if salt.is_empty() || rounds == 0 {
        return Err(unusable(
            "invalid OpenSSH private key: empty bcrypt salt or zero rounds",
        ));
    }
    if rounds > MAX_BCRYPT_ROUNDS {
        return Err(unusable(format!(
            "its bcrypt KDF asks for {rounds} rounds, more than the {MAX_BCRYPT_ROUNDS} \
             keycell accepts"
        )));
    }
    let key_iv = derive_key_iv(cipher, passphrase, salt, rounds)?;
    let key_iv = key_iv.bytes().map_err(memory)?;
    let (key, iv) = key_iv.split_at(32);
    let wrong =
        || unusable("cannot decrypt the private key: wrong passphrase (or a corrupted file)");
    let section = SecretBuf::new_with(ciphertext.len(), |d| {
        d.copy_from_slice(ciphertext);
        let ok = crate::crypto::scrub::scrubbed_deep(|| decrypt_in_place(cipher, key, iv, tag, d));
        if ok {
            Ok(())
        } else {
            Err(LoadFailure::File(wrong()))
        }
    })
    .map_err(LoadFailure::into_file)?;
    Ok(section)
}

/// The cipher's key and IV from `passphrase` with bcrypt-pbkdf, into a guarded region
/// (the KDF's work area a guarded region too, its stack scrubbed).
fn derive_key_iv(
    cipher: Cipher,
    passphrase: &[u8],
    salt: &[u8],
    rounds: u32,
) -> Result<SecretBuf, FileError> {
    let key_iv_len = 32 + cipher.iv_len();
    let work_len = key_iv_len.div_ceil(32) * 32;
    let mut work = crate::memory::allocate(work_len).map_err(memory)?;
    SecretBuf::new_with(key_iv_len, |out| {
        work.write(|mem| {
            crate::crypto::scrub::scrubbed_deep(|| {
                bcrypt_pbkdf::bcrypt_pbkdf_with_memory(passphrase, salt, rounds, out, mem)
            })
            .map_err(|_| LoadFailure::File(unusable("the passphrase cannot be used (empty)")))
        })
    })
    .map_err(LoadFailure::into_file)
}

/// Decrypt `data` in place; false if the GCM tag does not verify. Runs inside
/// [`crate::crypto::scrub::scrubbed_deep`]: the AES key schedules live on its stack.
#[inline(never)]
fn decrypt_in_place(cipher: Cipher, key: &[u8], iv: &[u8], tag: &[u8], data: &mut [u8]) -> bool {
    match cipher {
        Cipher::None => true,
        Cipher::Aes256Ctr => {
            let Ok(mut c) = ctr::Ctr128BE::<aes::Aes256>::new_from_slices(key, iv) else {
                return false;
            };
            c.apply_keystream(data);
            true
        }
        Cipher::Aes256Gcm => {
            let Ok(c) = aes_gcm::Aes256Gcm::new_from_slice(key) else {
                return false;
            };
            c.decrypt_in_place_detached(iv.into(), b"", data, tag.into())
                .is_ok()
        }
    }
}

/// Check the private section (check integers, key, comment, padding) and find the
/// private key in it; returns its range (or an RSA key's components) and the public key
/// the section holds.
fn parse_section(
    section: &[u8],
    encrypted: bool,
) -> Result<(Range<usize>, Option<RsaParts>, SshPublicKey), FileError> {
    let mut r = SshReader::new(section);
    let check1 = r.u32().map_err(bad)?;
    let check2 = r.u32().map_err(bad)?;
    if check1 != check2 {
        return Err(unusable(if encrypted {
            "cannot decrypt the private key: wrong passphrase (or a corrupted file)"
        } else {
            "invalid OpenSSH private key: its check integers differ (a corrupted file)"
        }));
    }
    let type_name = r.string().map_err(bad)?;
    let mut rsa = None;
    let (key, public) = if type_name == RSA.as_bytes() {
        // n, e, d, iqmp, p, q (OpenSSH's order; the public blob has e before n).
        let n = r.positive_mpint().map_err(bad)?.to_vec();
        let e = r.positive_mpint().map_err(bad)?.to_vec();
        let mut parts = [0..0, 0..0, 0..0, 0..0];
        for part in &mut parts {
            *part = subrange(section, r.positive_mpint().map_err(bad)?);
        }
        let [d, iqmp, p, q] = parts;
        rsa = Some(RsaParts { d, iqmp, p, q });
        (0..0, SshPublicKey::Rsa { e, n })
    } else if type_name == ED25519.as_bytes() {
        let public = SshPublicKey::read_after_type(type_name, &mut r).map_err(bad)?;
        let secret = r.string().map_err(bad)?;
        let SshPublicKey::Ed25519(pk) = &public else {
            return Err(bad(SshFormatError("not an Ed25519 key".to_owned())));
        };
        if secret.len() != 64 || secret[32..] != pk[..] {
            return Err(unusable(
                "invalid OpenSSH private key: the Ed25519 private key is not seed || public key",
            ));
        }
        (subrange(section, &secret[..32]), public)
    } else {
        let public = SshPublicKey::read_after_type(type_name, &mut r).map_err(bad)?;
        let SshPublicKey::Ecdsa(point) = &public else {
            return Err(bad(SshFormatError("not an ECDSA key".to_owned())));
        };
        let scalar = r.positive_mpint().map_err(bad)?;
        if scalar.len() > point.curve().scalar_len() {
            return Err(unusable(format!(
                "invalid OpenSSH private key: the {} private scalar is too long",
                curve_id(point.curve())
            )));
        }
        (subrange(section, scalar), public)
    };
    let _comment = r.string().map_err(bad)?;
    // Padding: 1, 2, 3, ... (mod 256), as OpenSSH checks it; any length (the section is
    // a whole number of blocks, checked before): pyca/cryptography pads an aligned
    // section with a whole block.
    let padding = r.rest();
    let expected = (1..=padding.len()).map(|i| i as u8);
    if !padding.iter().copied().eq(expected) {
        return Err(unusable(
            "invalid OpenSSH private key: bad padding after the private key (a corrupted \
             file)",
        ));
    }
    Ok((key, rsa, public))
}

/// The position of `part`, a sub-slice of `whole`, within it.
fn subrange(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    start..start + part.len()
}

/// The bcrypt rounds of files keycell writes (`ssh-keygen`'s default, `-a 16`).
pub const WRITE_BCRYPT_ROUNDS: u32 = 16;

/// Length of the salt of files keycell writes (as `ssh-keygen`).
const WRITE_SALT_LEN: usize = 16;

/// The private key as the private section holds it: the Ed25519 seed, the EC scalar, or
/// an RSA key's components borrowed from its PKCS#1 DER (in the key's guarded region).
enum PrivatePart<'a> {
    Ed25519 {
        seed: &'a [u8],
        public: &'a [u8; 32],
    },
    Ecdsa {
        scalar: &'a [u8],
    },
    Rsa(rsa::pkcs1::RsaPrivateKey<'a>),
}

impl<'a> PrivatePart<'a> {
    /// `key` for `public`: the 32-byte seed, the scalar, or the PKCS#1 `RSAPrivateKey`
    /// DER (decoded in place: the `pkcs1` crate's integers borrow from `key`).
    fn new(public: &'a SshPublicKey, key: &'a [u8]) -> Result<Self, FileError> {
        Ok(match public {
            SshPublicKey::Ed25519(pk) => PrivatePart::Ed25519 {
                seed: key,
                public: pk,
            },
            SshPublicKey::Ecdsa(_) => PrivatePart::Ecdsa { scalar: key },
            SshPublicKey::Rsa { .. } => {
                use rsa::pkcs1::der::Decode;
                let k = rsa::pkcs1::RsaPrivateKey::from_der(key)
                    .map_err(|_| unusable("cannot encode the key: malformed RSAPrivateKey DER"))?;
                if k.other_prime_infos.is_some() {
                    return Err(unusable(
                        "cannot encode the key: multi-prime RSA keys have no OpenSSH form",
                    ));
                }
                PrivatePart::Rsa(k)
            }
        })
    }

    /// The mpints after the type name: OpenSSH's `n, e, d, iqmp, p, q` for RSA (the
    /// public blob has `e` before `n`), the scalar for ECDSA.
    fn mpints(&self) -> Vec<&'a [u8]> {
        match self {
            PrivatePart::Ed25519 { .. } => Vec::new(),
            PrivatePart::Ecdsa { scalar } => vec![*scalar],
            PrivatePart::Rsa(k) => vec![
                k.modulus.as_bytes(),
                k.public_exponent.as_bytes(),
                k.private_exponent.as_bytes(),
                k.coefficient.as_bytes(),
                k.prime1.as_bytes(),
                k.prime2.as_bytes(),
            ],
        }
    }
}

/// Length of the private section [`private_section`] writes: check integers, the key,
/// `comment`, padding to `block` bytes.
fn section_len(
    public: &SshPublicKey,
    part: &PrivatePart<'_>,
    comment: &[u8],
    block: usize,
) -> usize {
    let key = match part {
        // The public blob (type, key), then `string seed || public`.
        PrivatePart::Ed25519 { .. } => public.blob().len() + 4 + 64,
        // The public blob (type, curve, point), then the scalar.
        PrivatePart::Ecdsa { .. } => public.blob().len(),
        // The type, then the six mpints.
        PrivatePart::Rsa(_) => 4 + RSA.len(),
    } + part
        .mpints()
        .iter()
        .map(|m| 4 + mpint_len(m))
        .sum::<usize>();
    let raw = 8 + key + 4 + comment.len();
    raw.div_ceil(block) * block
}

/// Bytes of `key` as an mpint's contents (leading zeros dropped, a zero byte added when
/// the top bit is set).
fn mpint_len(key: &[u8]) -> usize {
    let trimmed = trim_zeros(key);
    trimmed.len() + usize::from(trimmed.first().is_some_and(|b| b & 0x80 != 0))
}

fn trim_zeros(key: &[u8]) -> &[u8] {
    let first = key.iter().position(|&b| b != 0).unwrap_or(key.len());
    &key[first..]
}

/// Write the private section of `part` into a guarded region (plaintext): check integers
/// (random), the key, `comment`, padding 1, 2, 3, ... to a whole number of `block`s.
fn private_section(
    public: &SshPublicKey,
    part: &PrivatePart<'_>,
    comment: &[u8],
    block: usize,
) -> Result<SecretBuf, FileError> {
    let len = section_len(public, part, comment, block);
    let mut check = [0u8; 4];
    getrandom::fill(&mut check).map_err(|_| unusable("the OS random number generator failed"))?;
    SecretBuf::new_with(len, |d| {
        let mut w = SliceWriter { out: d, at: 0 };
        w.put(&check);
        w.put(&check);
        match part {
            PrivatePart::Ed25519 { seed, public: pk } => {
                w.put(&public.blob());
                w.put(&64u32.to_be_bytes());
                w.put(seed);
                w.put(&pk[..]);
            }
            PrivatePart::Ecdsa { .. } => w.put(&public.blob()),
            PrivatePart::Rsa(_) => w.string(RSA.as_bytes()),
        }
        for m in part.mpints() {
            w.mpint(m);
        }
        w.string(comment);
        let mut i = 1u8;
        while w.at < w.out.len() {
            w.put(&[i]);
            i += 1;
        }
        Ok::<(), crate::memory::MemoryError>(())
    })
    .map_err(memory)
}

/// Appending into a fixed slice (sized beforehand).
struct SliceWriter<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl SliceWriter<'_> {
    fn put(&mut self, b: &[u8]) {
        self.out[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }

    /// An SSH `string`: `uint32 length || bytes`.
    fn string(&mut self, b: &[u8]) {
        self.put(&(b.len() as u32).to_be_bytes());
        self.put(b);
    }

    /// An SSH `mpint` of the big-endian magnitude `v` ([`mpint_len`] bytes of contents).
    fn mpint(&mut self, v: &[u8]) {
        let trimmed = trim_zeros(v);
        self.put(&(mpint_len(v) as u32).to_be_bytes());
        if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            self.put(&[0]);
        }
        self.put(trimmed);
    }
}

/// Encode `key` (the Ed25519 seed, the EC scalar or the RSA key's PKCS#1 DER, with its
/// public key `public`) as an OpenSSH private key file, PEM armored with 70-character
/// lines, into a guarded region. Without `passphrase` the private section is in the clear
/// (cipher and KDF `none`, as `ssh-keygen -N ''` writes); with one it is encrypted as
/// `ssh-keygen` encrypts it: `aes256-ctr` under a key and IV from bcrypt-pbkdf of the
/// passphrase with a random 16-byte salt and [`WRITE_BCRYPT_ROUNDS`] rounds. The section
/// is built and encrypted in a guarded region; the KDF output and work area are guarded
/// regions and the stack the KDF and cipher used is scrubbed, as when reading.
pub fn encode(
    public: &SshPublicKey,
    key: &[u8],
    comment: &str,
    passphrase: Option<&[u8]>,
) -> Result<SecretBuf, FileError> {
    let part = PrivatePart::new(public, key)?;
    let cipher = if passphrase.is_some() {
        Cipher::Aes256Ctr
    } else {
        Cipher::None
    };
    let mut section = private_section(public, &part, comment.as_bytes(), cipher.block_len())?;
    drop(part);
    let mut kdf_options = Vec::new();
    if let Some(passphrase) = passphrase {
        let mut salt = [0u8; WRITE_SALT_LEN];
        getrandom::fill(&mut salt)
            .map_err(|_| unusable("the OS random number generator failed"))?;
        let key_iv = derive_key_iv(cipher, passphrase, &salt, WRITE_BCRYPT_ROUNDS)?;
        let key_iv = key_iv.bytes().map_err(memory)?;
        let (k, iv) = key_iv.split_at(32);
        section
            .write(|d| {
                // CTR: encrypting is applying the same keystream.
                crate::crypto::scrub::scrubbed_deep(|| decrypt_in_place(cipher, k, iv, &[], d));
                Ok::<(), crate::memory::MemoryError>(())
            })
            .map_err(memory)?;
        kdf_options.extend_from_slice(&(salt.len() as u32).to_be_bytes());
        kdf_options.extend_from_slice(&salt);
        kdf_options.extend_from_slice(&WRITE_BCRYPT_ROUNDS.to_be_bytes());
    }
    let section = section.bytes().map_err(memory)?;
    let (cipher_name, kdf_name): (&[u8], &[u8]) = match cipher {
        Cipher::None => (b"none", b"none"),
        _ => (b"aes256-ctr", b"bcrypt"),
    };
    let blob = public.blob();
    // Magic, cipher, KDF, options, the key count, the blob, the section.
    let header_len = MAGIC.len()
        + 4
        + cipher_name.len()
        + 4
        + kdf_name.len()
        + 4
        + kdf_options.len()
        + 4
        + 4
        + blob.len()
        + 4;
    let bin = SecretBuf::new_with(header_len + section.len(), |d| {
        let mut w = SliceWriter { out: d, at: 0 };
        w.put(MAGIC);
        w.string(cipher_name);
        w.string(kdf_name);
        w.string(&kdf_options);
        w.put(&1u32.to_be_bytes());
        w.string(&blob);
        w.string(section);
        Ok::<(), crate::memory::MemoryError>(())
    })
    .map_err(memory)?;
    let bin = bin.bytes().map_err(memory)?;
    let b64_len = crate::encoding::base64_encoded_len(bin.len());
    let b64 = SecretBuf::new_with(b64_len, |d| {
        crate::encoding::base64_encode_into(bin, d)
            .map_err(|_| LoadFailure::File(unusable("internal error: encoding failed")))
    })
    .map_err(LoadFailure::into_file)?;
    let b64 = b64.bytes().map_err(memory)?;
    let begin = b"-----BEGIN OPENSSH PRIVATE KEY-----\n";
    let end = b"-----END OPENSSH PRIVATE KEY-----\n";
    let lines = b64_len.div_ceil(70);
    SecretBuf::new_with(begin.len() + b64_len + lines + end.len(), |d| {
        let mut w = SliceWriter { out: d, at: 0 };
        w.put(begin);
        for chunk in b64.chunks(70) {
            w.put(chunk);
            w.put(b"\n");
        }
        w.put(end);
        Ok::<(), crate::memory::MemoryError>(())
    })
    .map_err(memory)
}

#[cfg(test)]
mod tests {
    use super::super::{DecodedKeyFile, Format};
    use crate::crypto::ec::Curve;
    use crate::crypto::key_kind::KeyKind;
    use crate::keyfile::ssh_public::SshPublicKey;
    use crate::test_dir::write_file as write;

    /// `ssh-keygen`'s files (tests/vectors/openssh/README.md): the key unencrypted, with
    /// aes256-ctr and with aes256-gcm@openssh.com, and its public key line.
    const FILES: [(&str, KeyKind, [&[u8]; 3], &str); 3] = [
        (
            "ed25519",
            KeyKind::Ed25519,
            [
                include_bytes!("../../tests/vectors/openssh/ed25519"),
                include_bytes!("../../tests/vectors/openssh/ed25519-ctr"),
                include_bytes!("../../tests/vectors/openssh/ed25519-gcm"),
            ],
            include_str!("../../tests/vectors/openssh/ed25519.pub"),
        ),
        (
            "p256",
            KeyKind::EcP256,
            [
                include_bytes!("../../tests/vectors/openssh/ecdsa-p256"),
                include_bytes!("../../tests/vectors/openssh/ecdsa-p256-ctr"),
                include_bytes!("../../tests/vectors/openssh/ecdsa-p256-gcm"),
            ],
            include_str!("../../tests/vectors/openssh/ecdsa-p256.pub"),
        ),
        (
            "p384",
            KeyKind::EcP384,
            [
                include_bytes!("../../tests/vectors/openssh/ecdsa-p384"),
                include_bytes!("../../tests/vectors/openssh/ecdsa-p384-ctr"),
                include_bytes!("../../tests/vectors/openssh/ecdsa-p384-gcm"),
            ],
            include_str!("../../tests/vectors/openssh/ecdsa-p384.pub"),
        ),
    ];

    const PASS: &[u8] = b"correct horse";

    fn load(
        p: &std::path::Path,
        kind: KeyKind,
        pass: Option<&[u8]>,
    ) -> Result<(Vec<u8>, Vec<u8>), String> {
        let f = match kind.ec_curve() {
            Some(_) => DecodedKeyFile::load_ec(p, None, None, pass),
            None => DecodedKeyFile::load_private(p, kind, None, pass),
        }
        .map_err(|e| format!("{e:?}"))?;
        assert_eq!(f.format(), Format::OpenSsh);
        assert_eq!(f.ec_curve(), kind.ec_curve());
        let mut out = vec![0u8; f.key_len()];
        f.decode_into(&mut out).map_err(|e| format!("{e:?}"))?;
        Ok((out, f.public().expect("public").to_vec()))
    }

    fn raw(key: &SshPublicKey) -> Vec<u8> {
        match key {
            SshPublicKey::Ed25519(k) => k.to_vec(),
            SshPublicKey::Ecdsa(p) => p.uncompressed().to_vec(),
            SshPublicKey::Rsa { .. } => Vec::new(),
        }
    }

    #[test]
    fn ssh_keygen_files_load_encrypted_or_not() {
        let d = crate::test_dir::fresh("openssh-test");
        for (name, kind, files, pub_line) in FILES {
            let (public, comment) = SshPublicKey::from_line(pub_line).expect("pub line");
            assert_eq!(
                comment.as_deref(),
                Some(&*format!(
                    "keycell-test-{}",
                    if kind == KeyKind::Ed25519 {
                        "ed25519".to_owned()
                    } else {
                        format!("ecdsa-{name}")
                    }
                ))
            );
            let mut keys = Vec::new();
            for (i, data) in files.iter().enumerate() {
                let p = d.join(format!("{name}-{i}"));
                write(&p, data, 0o600);
                let pass = (i > 0).then_some(PASS);
                let (key, stored) = load(&p, kind, pass).expect(name);
                assert_eq!(stored, raw(&public), "{name}");
                keys.push(key);
                if i > 0 {
                    let e = load(&p, kind, Some(b"wrong horse")).expect_err("wrong");
                    assert!(e.contains("wrong passphrase"), "{e}");
                    let e = load(&p, kind, None).expect_err("none");
                    assert!(e.contains("encrypted: pass its passphrase"), "{e}");
                } else {
                    let e = load(&p, kind, Some(PASS)).expect_err("not encrypted");
                    assert!(e.contains("not encrypted"), "{e}");
                }
            }
            assert!(keys.iter().all(|k| *k == keys[0]), "{name}");
            // The key derives the public key in the file.
            match kind.ec_curve() {
                Some(c) => assert_eq!(
                    crate::crypto::ec::public_of_scalar(c, &keys[0])
                        .expect("scalar")
                        .uncompressed(),
                    &raw(&public)[..]
                ),
                None => {
                    let seed: [u8; 32] = keys[0].clone().try_into().expect("seed");
                    let k = crate::crypto::ed25519::PrivateKey::from_seed(&seed).expect("key");
                    assert_eq!(k.public().to_bytes().to_vec(), raw(&public));
                }
            }
            // Written back unencrypted, it reads as the same key.
            let out = d.join(format!("{name}-written"));
            crate::keyfile::write_key_file(&out, kind, Format::OpenSsh, &keys[0], false)
                .expect("write");
            assert_eq!(load(&out, kind, None).expect("reread").0, keys[0]);
        }
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    /// Written encrypted (bcrypt-pbkdf, aes256-ctr) and unencrypted, every key type reads
    /// back as the same key with the passphrase and only with it; the file names the
    /// cipher and KDF `ssh-keygen` uses, with 16 rounds and a 16-byte salt.
    #[test]
    fn written_files_encrypted_or_not_read_back() {
        use crate::crypto::rsa::RsaPrivateKey;
        let d = crate::test_dir::fresh("openssh-write");
        let rsa = RsaPrivateKey::generate(2048).expect("rsa");
        let (_, _, ed_files, _) = FILES[0];
        let ed_seed = load_from(d.join("ed").as_path(), ed_files[0], KeyKind::Ed25519);
        let (_, _, ec_files, _) = FILES[1];
        let ec_scalar = load_from(d.join("ec").as_path(), ec_files[0], KeyKind::EcP256);
        let der = rsa.pkcs1_der().expect("der").to_vec();
        let cases: [(KeyKind, &[u8]); 3] = [
            (KeyKind::Ed25519, &ed_seed),
            (KeyKind::EcP256, &ec_scalar),
            (KeyKind::Rsa, &der),
        ];
        for (kind, key) in cases {
            for pass in [None, Some(PASS)] {
                let p = d.join(format!("{}-{}", kind.name(), pass.is_some()));
                crate::keyfile::write_key_file_with(&p, kind, Format::OpenSsh, key, pass, false)
                    .expect("write");
                let text = std::fs::read(&p).expect("read");
                let file = super::read(&text, pass).expect("reads back");
                let header = decoded(&text);
                let names: &[&[u8]] = if pass.is_some() {
                    &[b"aes256-ctr", b"bcrypt"]
                } else {
                    &[b"none", b"none"]
                };
                let mut r = super::SshReader::new(&header[15..]);
                assert_eq!(r.string().expect("cipher"), names[0]);
                assert_eq!(r.string().expect("kdf"), names[1]);
                let options = r.string().expect("options");
                if pass.is_some() {
                    let mut o = super::SshReader::new(options);
                    assert_eq!(o.string().expect("salt").len(), 16);
                    assert_eq!(o.u32().expect("rounds"), super::WRITE_BCRYPT_ROUNDS);
                    assert_eq!(super::WRITE_BCRYPT_ROUNDS, 16);
                    let e = super::read(&text, Some(b"wrong horse"))
                        .err()
                        .expect("wrong");
                    assert!(format!("{e:?}").contains("wrong passphrase"), "{e:?}");
                    assert!(super::read(&text, None).is_err());
                } else {
                    assert!(options.is_empty());
                }
                let section = file.section.bytes().expect("section");
                match kind {
                    KeyKind::Rsa => {
                        let parts = file.rsa.as_ref().expect("rsa parts");
                        let SshPublicKey::Rsa { e, n } = &file.public else {
                            panic!("not RSA")
                        };
                        let back = RsaPrivateKey::from_components(
                            n,
                            e,
                            &section[parts.d.clone()],
                            &section[parts.iqmp.clone()],
                            &section[parts.p.clone()],
                            &section[parts.q.clone()],
                        )
                        .expect("components");
                        assert_eq!(back.pkcs1_der().expect("der"), &der[..]);
                    }
                    _ => assert_eq!(&section[file.key.clone()], key),
                }
            }
        }
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    fn load_from(p: &std::path::Path, data: &[u8], kind: KeyKind) -> Vec<u8> {
        write(p, data, 0o600);
        load(p, kind, None).expect("load").0
    }

    /// The binary body of an armored OpenSSH file.
    fn decoded(text: &[u8]) -> Vec<u8> {
        let body: Vec<u8> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.starts_with(b"-----"))
            .flatten()
            .copied()
            .collect();
        let mut bin = vec![0u8; crate::encoding::base64_decoded_len(&body).expect("len")];
        crate::encoding::base64_decode_into(&body, &mut bin).expect("b64");
        bin
    }

    /// The header names the key type and whether the file is encrypted, without the
    /// passphrase; a file that is not OpenSSH is refused.
    #[test]
    fn the_header_tells_the_key_type_and_encryption() {
        for (name, _, files, pub_line) in FILES {
            let (public, _) = SshPublicKey::from_line(pub_line).expect("pub line");
            for (i, data) in files.iter().enumerate() {
                let (found, encrypted) = super::header(data).expect(name);
                assert_eq!((found, encrypted), (public.clone(), i > 0), "{name}");
            }
        }
        assert!(
            super::header(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
    }

    /// A passphrase with another format, and formats OpenSSH files do not take, are
    /// refused when writing.
    #[test]
    fn a_passphrase_only_encrypts_openssh_files() {
        let d = crate::test_dir::fresh("openssh-write");
        let p = d.join("k");
        let e = crate::keyfile::write_key_file_with(
            &p,
            KeyKind::Ed25519,
            Format::Pem,
            &[7u8; 32],
            Some(PASS),
            false,
        )
        .expect_err("pem with a passphrase");
        assert!(format!("{e:?}").contains("only OpenSSH"), "{e:?}");
        assert!(!p.exists());
        assert!(crate::keyfile::write_key_file_with(
            &p,
            KeyKind::X25519,
            Format::OpenSsh,
            &[7u8; 32],
            Some(PASS),
            false
        )
        .is_err());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn kdf_and_cipher_stacks_are_covered_and_scrubbed() {
        use crate::crypto::scrub::probe::{contains, stack_after};
        use crate::crypto::scrub::{scrubbed_deep, SCRUB_DEEP_BYTES};
        use sha2::Digest;
        let mut out = [0u8; 48];
        let mut mem = [0u8; 64];
        let kdf = |out: &mut [u8], mem: &mut [u8]| {
            bcrypt_pbkdf::bcrypt_pbkdf_with_memory(&b"passphrase"[..], b"salt", 2, out, mem)
                .expect("kdf")
        };
        let (depth, _) = stack_after(|| kdf(&mut out, &mut mem));
        println!("bcrypt-pbkdf uses {depth} bytes of stack");
        assert!(depth < SCRUB_DEEP_BYTES, "bcrypt-pbkdf used {depth} bytes");
        for cipher in [super::Cipher::Aes256Ctr, super::Cipher::Aes256Gcm] {
            let mut data = [0u8; 64];
            let (depth, _) = stack_after(|| {
                std::hint::black_box(super::decrypt_in_place(
                    cipher,
                    &out[..32],
                    &out[32..32 + cipher.iv_len()],
                    &[0u8; 16][..cipher.tag_len()],
                    &mut data,
                ));
            });
            assert!(depth < SCRUB_DEEP_BYTES, "the cipher used {depth} bytes");
        }
        // Scrubbed as `decrypt_section` runs it: neither the output nor SHA-512 of the
        // passphrase (bcrypt-pbkdf's HMAC-like key) is left on the stack.
        let (_, stack) = stack_after(|| scrubbed_deep(|| kdf(&mut out, &mut mem)));
        assert!(!contains(&stack, &out[..16]));
        assert!(!contains(&stack, &out[32..]));
        let hashed = sha2::Sha512::digest(b"passphrase");
        assert!(!contains(&stack, &hashed[..16]));
        // The control: unscrubbed, an unoptimized build leaves the hashed passphrase there
        // (the release build keeps it in registers, and bcrypt-pbkdf zeroizes its copy).
        let (_, stack) = stack_after(|| kdf(&mut out, &mut mem));
        if cfg!(debug_assertions) {
            assert!(contains(&stack, &hashed[..16]), "control: nothing to find");
        }
    }

    #[test]
    fn malformed_files_are_refused() {
        let d = crate::test_dir::fresh("openssh-test");
        let p = d.join("k");
        let (_, kind, files, _) = FILES[2];
        // Every truncation of the file, plain or encrypted.
        for (i, data) in files.iter().enumerate().take(2) {
            let pass = (i > 0).then_some(PASS);
            for n in (1..data.len() - 1).step_by(7) {
                write(&p, &data[..n], 0o600);
                assert!(load(&p, kind, pass).is_err(), "truncated to {n}");
            }
        }
        // Other kinds and curves.
        write(&p, files[0], 0o600);
        let e = DecodedKeyFile::load_ec(&p, Some(Curve::P256), None, None)
            .map(|_| ())
            .expect_err("curve");
        assert!(
            format!("{e:?}").contains("ecdsa-sha2-nistp384 key, not a P-256"),
            "{e:?}"
        );
        let e = load(&p, KeyKind::Ed25519, None).expect_err("kind");
        assert!(e.contains("not an Ed25519"), "{e}");
        assert!(DecodedKeyFile::load(&p, KeyKind::X25519, None, None).is_err());
        assert!(DecodedKeyFile::load(&p, KeyKind::Secret, None, None).is_err());
        // Decode, alter one thing, re-armor.
        let body: Vec<u8> = files[0]
            .split(|&b| b == b'\n')
            .filter(|l| !l.starts_with(b"-----"))
            .flatten()
            .copied()
            .collect();
        let mut bin = vec![0u8; crate::encoding::base64_decoded_len(&body).expect("len")];
        crate::encoding::base64_decode_into(&body, &mut bin).expect("b64");
        let rearmor = |bin: &[u8]| {
            let mut b64 = vec![0u8; crate::encoding::base64_encoded_len(bin.len())];
            crate::encoding::base64_encode_into(bin, &mut b64).expect("enc");
            [
                &b"-----BEGIN OPENSSH PRIVATE KEY-----\n"[..],
                &b64,
                b"\n-----END OPENSSH PRIVATE KEY-----\n",
            ]
            .concat()
        };
        let find = |needle: &[u8]| {
            bin.windows(needle.len())
                .position(|w| w == needle)
                .expect("needle")
        };
        let sec = bin.len() - {
            // Section length: the last string of the file.
            let mut r = super::SshReader::new(&bin[15..]);
            for _ in 0..3 {
                r.string().expect("s");
            }
            r.u32().expect("n");
            r.string().expect("pub");
            r.rest().len() - 4
        };
        let cases: Vec<(Vec<u8>, &str)> = {
            let mut out = Vec::new();
            // Where the private section starts: after magic, cipher, KDF, options, count,
            // public blob and the section's length.
            let mut bad_check = bin.clone();
            bad_check[sec] ^= 1;
            out.push((bad_check, "check integers differ"));
            // Padding is 1, 2, 3, ... up to the block size (this file has some).
            let last = bin.len() - 1;
            assert!((1..8).contains(&bin[last]), "no padding in the test file");
            let mut bad_pad = bin.clone();
            bad_pad[last] ^= 0x40;
            out.push((bad_pad, "bad padding"));
            let mut cipher = bin.clone();
            let at = find(b"none");
            cipher[at..at + 4].copy_from_slice(b"nope");
            out.push((cipher, "which keycell does not read"));
            let mut magic = bin.clone();
            magic[0] = b'O';
            out.push((magic, "openssh-key-v1"));
            out
        };
        // A whole extra block of valid padding (as pyca/cryptography writes an aligned
        // section) is accepted.
        {
            let mut longer = bin.clone();
            let pad = usize::from(*longer.last().expect("last"));
            longer.extend((pad + 1..=pad + 8).map(|i| i as u8));
            let at = sec - 4;
            let n = u32::from_be_bytes(longer[at..sec].try_into().expect("4")) + 8;
            longer[at..sec].copy_from_slice(&n.to_be_bytes());
            write(&p, &rearmor(&longer), 0o600);
            load(&p, kind, None).expect("a longer padding");
        }
        for (data, want) in cases {
            write(&p, &rearmor(&data), 0o600);
            let e = load(&p, kind, None).expect_err(want);
            assert!(e.contains(want), "{want}: {e}");
        }
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
