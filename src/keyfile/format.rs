//! How a key file is encoded ([`Format`]) and the size limits of key files (what it holds
//! is a [`KeyKind`], from the crypto layer). Detection of the format is in
//! [`super::detect`].

use crate::crypto::key_kind::KeyKind;

/// The largest key file read for keys of `kind`: [`MAX_KEY_FILE_LEN`] for secret keys,
/// [`MAX_PRIVATE_KEY_FILE_LEN`] for private keys.
pub fn max_file_len(kind: KeyKind) -> usize {
    match kind {
        KeyKind::Secret => MAX_KEY_FILE_LEN,
        KeyKind::Ed25519 | KeyKind::X25519 | KeyKind::EcP256 | KeyKind::EcP384 | KeyKind::Rsa => {
            MAX_PRIVATE_KEY_FILE_LEN
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
    /// Unencrypted PKCS#8 in PEM armor (`BEGIN PRIVATE KEY`); private keys only. Read:
    /// versions 1 and 2 (and, for EC keys, the SEC1 `BEGIN EC PRIVATE KEY`); written:
    /// version 1, as OpenSSL writes it.
    Pem,
    /// Unencrypted PKCS#8 DER (or SEC1 for EC keys); private keys only. Versions as for [`Format::Pem`].
    Der,
    /// An OpenSSH private key file (`BEGIN OPENSSH PRIVATE KEY`, `openssh-key-v1`), for
    /// Ed25519, EC and RSA keys: read unencrypted or encrypted (bcrypt KDF, `aes256-ctr`
    /// or `aes256-gcm@openssh.com`), written unencrypted or encrypted (bcrypt KDF,
    /// `aes256-ctr`, as `ssh-keygen` writes) (`keyfile::openssh`).
    OpenSsh,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 6] = [
        Format::Raw,
        Format::Hex,
        Format::Base64,
        Format::Pem,
        Format::Der,
        Format::OpenSsh,
    ];

    /// The name used by `format=`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Hex => "hex",
            Format::Base64 => "base64",
            Format::Pem => "pem",
            Format::Der => "der",
            Format::OpenSsh => "openssh",
        }
    }

    /// Parse a name from [`Self::name`].
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether keys of `kind` can use this format (EC and RSA keys: PEM, DER and OpenSSH
    /// only, which say what the key is; OpenSSH: Ed25519, EC and RSA keys).
    pub fn allowed_for(self, kind: KeyKind) -> bool {
        match self {
            Format::Raw | Format::Hex | Format::Base64 => {
                kind.ec_curve().is_none() && kind != KeyKind::Rsa
            }
            Format::Pem | Format::Der => kind.is_private_key(),
            Format::OpenSsh => {
                matches!(kind, KeyKind::Ed25519 | KeyKind::Rsa) || kind.ec_curve().is_some()
            }
        }
    }
}

/// The largest secret key file read (512 KiB): hex of the largest secret key with
/// generous whitespace. The whole file is read into a guarded scratch region first.
pub const MAX_KEY_FILE_LEN: usize = 512 * 1024;

/// The largest private key file read (16 KiB). A PEM PKCS#8 key is 119 bytes;
/// the limit leaves room for attributes and a public key, and refuses anything absurd.
pub const MAX_PRIVATE_KEY_FILE_LEN: usize = 16 * 1024;
