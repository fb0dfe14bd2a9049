//! The kinds of keys keycell holds ([`KeyKind`]), with their names and lengths.

use super::curve::{Algorithm, KEY_LEN};
use super::ec::Curve;

/// What a key is: a symmetric secret, an Ed25519, X25519, P-256, P-384 or RSA private key.
/// Key files, key store entries, the keyring and the agent all name keys by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// A symmetric secret key of 1 to [`crate::crypto::symmetric::MAX_KEY_LEN`] bytes.
    Secret,
    /// An Ed25519 private key (the 32-byte seed).
    Ed25519,
    /// An X25519 private key (the 32-byte scalar).
    X25519,
    /// A P-256 (ECDSA/ECDH) private key (the 32-byte big-endian scalar).
    EcP256,
    /// A P-384 (ECDSA/ECDH) private key (the 48-byte big-endian scalar).
    EcP384,
    /// An RSA private key (its PKCS#1 `RSAPrivateKey` DER, 1 to [`MAX_RSA_DER_LEN`]
    /// bytes).
    Rsa,
}

/// The longest PKCS#1 `RSAPrivateKey` DER taken as an RSA key's material (a 4096-bit
/// key's is about 2.4 KiB).
pub const MAX_RSA_DER_LEN: usize = 8192;

impl KeyKind {
    /// Every kind.
    pub const ALL: [KeyKind; 6] = [
        KeyKind::Secret,
        KeyKind::Ed25519,
        KeyKind::X25519,
        KeyKind::EcP256,
        KeyKind::EcP384,
        KeyKind::Rsa,
    ];

    /// `"secret"`, `"ed25519"`, `"x25519"`, `"ec-p256"`, `"ec-p384"` or `"rsa"`.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Ed25519 => "ed25519",
            KeyKind::X25519 => "x25519",
            KeyKind::EcP256 => "ec-p256",
            KeyKind::EcP384 => "ec-p384",
            KeyKind::Rsa => "rsa",
        }
    }

    /// Parse a name from [`Self::name`].
    pub fn from_name(name: &str) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The fixed length of the key material, or `None` for secret and RSA keys (any
    /// length within [`Self::valid_len`]).
    pub fn fixed_len(self) -> Option<usize> {
        match self.ec_curve() {
            Some(curve) => Some(curve.scalar_len()),
            None => self.algorithm().map(|_| KEY_LEN),
        }
    }

    /// Whether `len` bytes can be a key of this kind: its fixed length, 1 to
    /// [`crate::crypto::symmetric::MAX_KEY_LEN`] for a secret key, 1 to
    /// [`MAX_RSA_DER_LEN`] for an RSA key's DER.
    pub fn valid_len(self, len: usize) -> bool {
        match (self, self.fixed_len()) {
            (_, Some(n)) => len == n,
            (KeyKind::Rsa, None) => (1..=MAX_RSA_DER_LEN).contains(&len),
            (_, None) => (1..=crate::crypto::symmetric::MAX_KEY_LEN).contains(&len),
        }
    }

    /// Whether keys of this kind are private keys (anything but a secret key).
    pub fn is_private_key(self) -> bool {
        self != KeyKind::Secret
    }

    /// The curve of an EC kind.
    pub fn ec_curve(self) -> Option<Curve> {
        match self {
            KeyKind::EcP256 => Some(Curve::P256),
            KeyKind::EcP384 => Some(Curve::P384),
            _ => None,
        }
    }

    /// The kind of an EC curve's private keys.
    pub fn from_ec_curve(curve: Curve) -> KeyKind {
        match curve {
            Curve::P256 => KeyKind::EcP256,
            Curve::P384 => KeyKind::EcP384,
        }
    }

    /// The RFC 8410 algorithm of an Ed25519/X25519 kind (`None` for secret, EC and RSA
    /// keys).
    pub fn algorithm(self) -> Option<Algorithm> {
        match self {
            KeyKind::Secret | KeyKind::EcP256 | KeyKind::EcP384 | KeyKind::Rsa => None,
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
}
