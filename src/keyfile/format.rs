//! What a key file holds ([`KeyKind`]), how it is encoded ([`Format`]), and the size
//! limits of key files. Detection of the format is in [`super::detect`].

use crate::crypto::curve::{Algorithm, KEY_LEN};

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
        self.algorithm().map(|_| KEY_LEN)
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
