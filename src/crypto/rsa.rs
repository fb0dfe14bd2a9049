//! RSA signing keys (RSASSA-PSS and RSASSA-PKCS1-v1_5 with SHA-256/384/512), their
//! private key encodings (PKCS#1 `RSAPrivateKey`, PKCS#8, DER and PEM) and public keys.
//!
//! # Where the secrets live
//!
//! - The PKCS#1 DER of the private key (`n, e, d, p, q, dP, dQ, qInv`) is kept in a
//!   guarded region ([`SecretBuf`]): key files, the key's identity and equality use it.
//! - ring's key pair (the primes, CRT exponents, `qInv` and their Montgomery forms in
//!   boxed limbs, and the key pair struct itself) is built, used and kept in the secret
//!   heap ([`secret_heap::scope`]): every allocation ring makes while parsing or signing
//!   is served from locked, dump-excluded, wipe-on-fork memory and wiped when freed.
//! - Generation runs the `rsa` crate's prime search inside the same scope, so its bignum
//!   temporaries (candidate primes, `d`, the CRT values) never touch the process heap.
//!
//! Every private-key operation also runs through [`scrubbed_deep`], which wipes the stack
//! it used.
//!
//! # Why these crates
//!
//! Signing is ring's `RsaKeyPair::sign`: CRT with constant-time modular exponentiation
//! (OpenSSL's/BoringSSL's `bn_mul_mont_gather5`/`bn_power5` assembly: fixed windows,
//! table reads through constant-time gathers), constant-time CRT recombination, and a
//! check of the result against the public key before it is released (a fault during the
//! exponentiation cannot leak a prime, Boneh-DeMillo-Lipton). ring does **not** blind
//! the base: it relies on constant-time code instead (SECURITY.md says so). We do not use
//! the `rsa` crate's private-key operations (RUSTSEC-2023-0071, Marvin: its decryption and
//! signing leak timing through non-constant-time bignum code).
//!
//! ring cannot generate RSA keys. Generation uses the `rsa` crate's prime generation
//! (`RsaPrivateKey::new`: random candidates, trial division, Miller-Rabin and a Lucas
//! test from `num-bigint-dig`) inside the secret heap: its timing depends on the random
//! candidates, not on a key that already exists, which is why the Marvin advisory does
//! not cover it. The key is then encoded as PKCS#1 DER (in the heap), copied into its
//! guarded region and handed to ring like a loaded key.
//!
//! Verification is public: ring for PSS with salt length = hash length and for PKCS#1
//! v1.5; other salt lengths (and "any salt") by EMSA-PSS-VERIFY here over the `rsa`
//! crate's public key (`s^e mod n`, public data only).

use ring::signature::{self as rs, RsaKeyPair};
use rsa::pkcs1::{DecodeRsaPublicKey, EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::BigUint;
use sha2::Digest;

use super::pkcs8 as pem;
use super::scrub::scrubbed_deep;
use crate::memory::{secret_heap, MemoryError, Protection, SecretBuf};

/// The key sizes `generate` makes.
pub const GENERATE_BITS: [usize; 3] = [2048, 3072, 4096];
/// The smallest and largest modulus accepted (ring's limits for private keys).
pub const MIN_BITS: usize = 2048;
/// See [`MIN_BITS`].
pub const MAX_BITS: usize = 4096;

/// PEM label of a PKCS#1 private key (`openssl genrsa -traditional`).
pub const PKCS1_PRIVATE_LABEL: &str = "RSA PRIVATE KEY";
/// PEM label of a PKCS#1 public key.
pub const PKCS1_PUBLIC_LABEL: &str = "RSA PUBLIC KEY";

/// DER of `AlgorithmIdentifier { rsaEncryption, NULL }` (RFC 8017 A.1).
const RSA_ALGORITHM_ID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// A failure of an RSA operation or encoding. Messages never carry key bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RsaError {
    /// A key size `generate` does not make.
    KeySize(usize),
    /// Malformed or unsupported input (an encoding, a name, a length); the message says
    /// which.
    Invalid(String),
    /// A private key whose components do not fit together: which one is wrong.
    Inconsistent(Component),
    /// The memory layer failed.
    Memory(MemoryError),
    /// Signing failed (the fault check or the RNG).
    Signing,
}

impl std::fmt::Display for RsaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RsaError::KeySize(bits) => write!(
                f,
                "RSA key size must be 2048, 3072 or 4096 bits, not {bits}"
            ),
            RsaError::Invalid(msg) => f.write_str(msg),
            RsaError::Inconsistent(c) => write!(f, "inconsistent RSA private key: {c}"),
            RsaError::Memory(e) => write!(f, "{e}"),
            RsaError::Signing => f.write_str("RSA signing failed"),
        }
    }
}

/// The component of a private key that does not fit the others (checked in this order:
/// a later one is only named when the earlier ones fit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// `p * q` is not the modulus `n` (or a prime is below 2).
    Primes,
    /// `d * e` is not 1 modulo `lcm(p-1, q-1)`.
    D,
    /// `dP` (exponent1) is not `d mod (p-1)`.
    DP,
    /// `dQ` (exponent2) is not `d mod (q-1)`.
    DQ,
    /// `qInv` (coefficient) is not `q^-1 mod p`.
    QInv,
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Component::Primes => "the primes p and q do not multiply to the modulus n",
            Component::D => "the private exponent d is not the inverse of e modulo lcm(p-1, q-1)",
            Component::DP => "dP (exponent1) is not d mod (p-1)",
            Component::DQ => "dQ (exponent2) is not d mod (q-1)",
            Component::QInv => "qInv (coefficient) is not the inverse of q modulo p",
        })
    }
}

impl From<MemoryError> for RsaError {
    fn from(e: MemoryError) -> Self {
        RsaError::Memory(e)
    }
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, RsaError> {
    Err(RsaError::Invalid(msg.into()))
}

/// The hash of a signature scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// `"sha256"`, `"sha384"` or `"sha512"`.
    pub fn from_name(name: &str) -> Result<Hash, RsaError> {
        match name {
            "sha256" => Ok(Hash::Sha256),
            "sha384" => Ok(Hash::Sha384),
            "sha512" => Ok(Hash::Sha512),
            _ => invalid(format!(
                "hash must be \"sha256\", \"sha384\" or \"sha512\", not {name:?}"
            )),
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Hash::Sha256 => run::<sha2::Sha256>(parts),
            Hash::Sha384 => run::<sha2::Sha384>(parts),
            Hash::Sha512 => run::<sha2::Sha512>(parts),
        }
    }
}

/// The signature padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// RSASSA-PSS, MGF1 with the same hash; signing uses salt length = hash length.
    Pss,
    /// RSASSA-PKCS1-v1_5.
    Pkcs1v15,
}

impl Padding {
    /// `"pss"` or `"pkcs1v15"`.
    pub fn from_name(name: &str) -> Result<Padding, RsaError> {
        match name {
            "pss" => Ok(Padding::Pss),
            "pkcs1v15" => Ok(Padding::Pkcs1v15),
            _ => invalid(format!(
                "padding must be \"pss\" or \"pkcs1v15\", not {name:?}"
            )),
        }
    }
}

/// The PSS salt length a verifier accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Salt {
    /// Exactly the hash length (RFC 8017's recommendation; AWS KMS, JOSE PS256).
    HashLen,
    /// Any length (pyca's `PSS.AUTO`): recovered from the encoded message.
    Auto,
    /// Exactly this many bytes.
    Len(usize),
}

fn signing_padding(padding: Padding, hash: Hash) -> &'static dyn rs::RsaEncoding {
    match (padding, hash) {
        (Padding::Pss, Hash::Sha256) => &rs::RSA_PSS_SHA256,
        (Padding::Pss, Hash::Sha384) => &rs::RSA_PSS_SHA384,
        (Padding::Pss, Hash::Sha512) => &rs::RSA_PSS_SHA512,
        (Padding::Pkcs1v15, Hash::Sha256) => &rs::RSA_PKCS1_SHA256,
        (Padding::Pkcs1v15, Hash::Sha384) => &rs::RSA_PKCS1_SHA384,
        (Padding::Pkcs1v15, Hash::Sha512) => &rs::RSA_PKCS1_SHA512,
    }
}

fn verification_params(padding: Padding, hash: Hash) -> &'static rs::RsaParameters {
    match (padding, hash) {
        (Padding::Pss, Hash::Sha256) => &rs::RSA_PSS_2048_8192_SHA256,
        (Padding::Pss, Hash::Sha384) => &rs::RSA_PSS_2048_8192_SHA384,
        (Padding::Pss, Hash::Sha512) => &rs::RSA_PSS_2048_8192_SHA512,
        (Padding::Pkcs1v15, Hash::Sha256) => &rs::RSA_PKCS1_2048_8192_SHA256,
        (Padding::Pkcs1v15, Hash::Sha384) => &rs::RSA_PKCS1_2048_8192_SHA384,
        (Padding::Pkcs1v15, Hash::Sha512) => &rs::RSA_PKCS1_2048_8192_SHA512,
    }
}

/// An RSA private key: its PKCS#1 DER in a guarded region and ring's key pair in the
/// secret heap (see the module docs).
pub struct RsaPrivateKey {
    der: SecretBuf,
    pair: Box<RsaKeyPair>,
    /// What the secret heap gave the key pair's blocks when it was built.
    heap: Protection,
    public: RsaPublicKey,
}

impl RsaPrivateKey {
    /// A new key of `bits` (2048, 3072 or 4096) with public exponent 65537.
    pub fn generate(bits: usize) -> Result<Self, RsaError> {
        if !GENERATE_BITS.contains(&bits) {
            return Err(RsaError::KeySize(bits));
        }
        let mut rng = OsRng { failed: None };
        let doc = secret_heap::scope(|| {
            scrubbed_deep(|| {
                let key = rsa::RsaPrivateKey::new(&mut rng, bits)
                    .map_err(|_| RsaError::Invalid("RSA key generation failed".to_owned()))?;
                key.to_pkcs1_der()
                    .map_err(|_| RsaError::Invalid("RSA key encoding failed".to_owned()))
            })
        })??;
        if let Some(e) = rng.failed {
            return Err(e.into());
        }
        // The document lives in the secret heap (wiped when dropped here); its bytes go
        // straight into the key's region.
        let der = SecretBuf::new_with(doc.as_bytes().len(), |d| {
            d.copy_from_slice(doc.as_bytes());
            Ok::<(), MemoryError>(())
        })?;
        drop(doc);
        Self::from_pkcs1_region(der)
    }

    /// A key from its components as OpenSSH key files hold them (big-endian magnitudes,
    /// each borrowed from a guarded region): the CRT exponents `d mod (p-1)`, `d mod (q-1)`
    /// are derived by the `rsa` crate inside the secret heap (its big integers' limbs are
    /// served from guarded memory and wiped when freed), `iqmp` must be its `q^-1 mod p`,
    /// and the key is encoded there as PKCS#1 DER and loaded as [`Self::from_der`] does.
    pub fn from_components(
        n: &[u8],
        e: &[u8],
        d: &[u8],
        iqmp: &[u8],
        p: &[u8],
        q: &[u8],
    ) -> Result<Self, RsaError> {
        let doc = secret_heap::scope(|| {
            scrubbed_deep(|| {
                let big = BigUint::from_bytes_be;
                let key = rsa::RsaPrivateKey::from_components(
                    big(n),
                    big(e),
                    big(d),
                    vec![big(p), big(q)],
                )
                .map_err(|_| RsaError::Invalid("inconsistent RSA key components".to_owned()))?;
                key.validate()
                    .map_err(|_| RsaError::Invalid("inconsistent RSA key components".to_owned()))?;
                if key.crt_coefficient() != Some(big(iqmp)) {
                    return invalid("inconsistent RSA key components (iqmp)");
                }
                key.to_pkcs1_der()
                    .map_err(|_| RsaError::Invalid("RSA key encoding failed".to_owned()))
            })
        })??;
        let der = SecretBuf::new_with(doc.as_bytes().len(), |d| {
            d.copy_from_slice(doc.as_bytes());
            Ok::<(), MemoryError>(())
        })?;
        drop(doc);
        Self::from_pkcs1_region(der)
    }

    /// A key from PKCS#1 `RSAPrivateKey` or PKCS#8 DER (told apart by their structure),
    /// copied into a guarded region. `der` should itself be guarded memory.
    pub fn from_der(der: &[u8]) -> Result<Self, RsaError> {
        Self::from_der_as(der, None)
    }

    /// [`Self::from_der`], the structure told by a PEM label when `expected` is given.
    fn from_der_as(der: &[u8], expected: Option<Structure>) -> Result<Self, RsaError> {
        let structure = Structure::of(der)?;
        if expected.is_some_and(|e| e != structure) {
            return invalid(format!(
                "not an RSA private key: the PEM label says {}, the DER inside is {}",
                expected.map_or("", Structure::name),
                structure.name()
            ));
        }
        let pkcs1 = match structure {
            Structure::Pkcs8 => pkcs8_inner(der)?,
            Structure::Pkcs1 => der,
        };
        let region = SecretBuf::new_with(pkcs1.len(), |d| {
            d.copy_from_slice(pkcs1);
            Ok::<(), MemoryError>(())
        })?;
        Self::from_pkcs1_region(region)
    }

    /// A key from a PEM block: `RSA PRIVATE KEY` (PKCS#1) or `PRIVATE KEY` (PKCS#8). The
    /// body is decoded into a guarded scratch region.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, RsaError> {
        let (label, structure) = if pem_text
            .trim_ascii_start()
            .starts_with(b"-----BEGIN RSA PRIVATE KEY-----")
        {
            (PKCS1_PRIVATE_LABEL, Structure::Pkcs1)
        } else {
            (pem::PRIVATE_KEY_LABEL, Structure::Pkcs8)
        };
        let bad =
            |e: pem::Pkcs8Error| RsaError::Invalid(format!("invalid RSA private key PEM: {e}"));
        let body = pem::pem_body(pem_text, label).map_err(bad)?;
        let der = SecretBuf::new_with(pem::pem_der_len(body).map_err(bad)?, |d| {
            pem::pem_der_into(body, d).map_err(bad)
        })?;
        Self::from_der_as(der.bytes()?, Some(structure))
    }

    /// Check the PKCS#1 DER in `der` ([`check_components`]) and hand it to ring, inside
    /// the secret heap.
    fn from_pkcs1_region(der: SecretBuf) -> Result<Self, RsaError> {
        let (pair, heap) = secret_heap::scope_with_protection(|| {
            scrubbed_deep(|| -> Result<Box<RsaKeyPair>, RsaError> {
                let bytes = der.bytes()?;
                check_components(bytes)?;
                RsaKeyPair::from_der(bytes)
                    .map(Box::new)
                    .map_err(|e| RsaError::Invalid(rejected(&e.to_string())))
            })
        })?;
        let pair = pair?;
        let public = RsaPublicKey::from_ring(pair.public())?;
        Ok(RsaPrivateKey {
            der,
            pair,
            heap,
            public,
        })
    }

    /// The PKCS#1 `RSAPrivateKey` DER, borrowed from the guarded region (fails in a fork
    /// child).
    pub fn pkcs1_der(&self) -> Result<&[u8], MemoryError> {
        self.der.bytes()
    }

    /// Encode the key as `encoding` into a guarded scratch region and hand it to `sink`.
    pub fn with_encoded<T, E: From<RsaError> + From<MemoryError>>(
        &self,
        encoding: PrivateEncoding,
        sink: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<T, E> {
        let pkcs1 = self.der.bytes()?;
        let pkcs8 = |d: &mut [u8]| write_pkcs8(pkcs1, d);
        let der8;
        let der = match encoding.pkcs8 {
            true => {
                der8 = SecretBuf::new_with(pkcs8_len(pkcs1.len()), |d| {
                    pkcs8(d);
                    Ok::<(), MemoryError>(())
                })?;
                der8.bytes()?
            }
            false => pkcs1,
        };
        if !encoding.pem {
            return sink(der);
        }
        let label = if encoding.pkcs8 {
            pem::PRIVATE_KEY_LABEL
        } else {
            PKCS1_PRIVATE_LABEL
        };
        let armored = SecretBuf::new_with(pem::pem_encoded_len(label, der.len()), |d| {
            pem::pem_encode_into(label, der, d)
                .map_err(|e| RsaError::Invalid(format!("internal error: {e}")))
        })?;
        sink(armored.bytes()?)
    }

    /// Sign `msg`: `padding` with `hash` (PSS with salt length = hash length).
    pub fn sign(&self, padding: Padding, hash: Hash, msg: &[u8]) -> Result<Vec<u8>, RsaError> {
        self.der.bytes()?;
        let mut sig = vec![0u8; self.pair.public().modulus_len()];
        let rng = ring::rand::SystemRandom::new();
        let encoding = signing_padding(padding, hash);
        let pair = &self.pair;
        secret_heap::scope(|| scrubbed_deep(|| pair.sign(encoding, &rng, msg, &mut sig)))?
            .map_err(|_| RsaError::Signing)?;
        Ok(sig)
    }

    /// The public key.
    pub fn public(&self) -> &RsaPublicKey {
        &self.public
    }

    /// The protection of the key's memory: the weaker of its region and the secret-heap
    /// blocks of its key pair.
    pub fn protection(&self) -> Protection {
        self.der.protection().weakest(self.heap)
    }
}

/// How a private key is written: PKCS#8 or PKCS#1 (`traditional`), PEM or DER.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivateEncoding {
    /// PKCS#8 `PrivateKeyInfo`; else PKCS#1 `RSAPrivateKey`.
    pub pkcs8: bool,
    /// PEM armor; else DER.
    pub pem: bool,
}

/// The message for a key ring refused (its reasons are fixed identifiers).
fn rejected(reason: &str) -> String {
    let why = match reason {
        // ring says TooSmall/TooLarge of the modulus and of the public exponent alike.
        "TooSmall" => {
            "the modulus or the public exponent is too small (2048 bits and e >= 65537 at least)"
        }
        "TooLarge" => {
            "the modulus or the public exponent is too large (4096 bits and e < 2^33 at most)"
        }
        "InvalidEncoding" => "malformed PKCS#1 RSAPrivateKey DER",
        "InconsistentComponents" => "its components are inconsistent",
        "InvalidComponent" => "a component is out of range (an even modulus or exponent?)",
        "PrivateModulusLenNotMultipleOf512Bits" => {
            "the modulus length is not a multiple of 512 bits (ring signs only with those)"
        }
        "VersionNotSupported" => "multi-prime keys are not supported",
        "UnexpectedError" => "an unexpected error",
        _ => "rejected by the RSA implementation",
    };
    format!("not a usable RSA private key: {why}")
}

/// The structure of a private key's DER.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Structure {
    /// PKCS#8 `PrivateKeyInfo`: an AlgorithmIdentifier `SEQUENCE` after the version.
    Pkcs8,
    /// PKCS#1 `RSAPrivateKey`: the modulus, an `INTEGER`, after the version.
    Pkcs1,
}

impl Structure {
    /// Tell the two apart by the element after the version (so that a malformed key of
    /// either kind is reported as what it is). Only the first headers are read: a
    /// truncated key is still told apart.
    fn of(der: &[u8]) -> Result<Structure, RsaError> {
        use pkcs8::der::{Decode, Header, Reader, SliceReader, Tag};
        let malformed = || {
            RsaError::Invalid(
                "not an RSA private key: malformed DER (neither PKCS#8 PrivateKeyInfo nor \
                 PKCS#1 RSAPrivateKey)"
                    .to_owned(),
            )
        };
        if der.is_empty() {
            return invalid("not an RSA private key: empty");
        }
        let mut reader = SliceReader::new(der).map_err(|_| malformed())?;
        let outer = Header::decode(&mut reader).map_err(|_| malformed())?;
        let version = Header::decode(&mut reader).map_err(|_| malformed())?;
        match (outer.tag, version.tag) {
            (Tag::Sequence, Tag::Sequence) => {
                return invalid(
                    "encrypted PKCS#8 keys are not supported: decrypt it first (openssl pkey)",
                )
            }
            (Tag::Sequence, Tag::Integer) => {}
            _ => return Err(malformed()),
        }
        reader.read_slice(version.length).map_err(|_| malformed())?;
        match reader.peek_tag().map_err(|_| malformed())? {
            Tag::Sequence => Ok(Structure::Pkcs8),
            Tag::Integer => Ok(Structure::Pkcs1),
            _ => Err(malformed()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Structure::Pkcs8 => "PKCS#8 PrivateKeyInfo",
            Structure::Pkcs1 => "PKCS#1 RSAPrivateKey",
        }
    }
}

/// The PKCS#1 key inside PKCS#8 DER (after checking the algorithm).
fn pkcs8_inner(der: &[u8]) -> Result<&[u8], RsaError> {
    let Ok(info) = pkcs8::PrivateKeyInfo::try_from(der) else {
        return invalid("not an RSA private key: malformed PKCS#8 PrivateKeyInfo DER");
    };
    if info.algorithm.oid != pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1") {
        return invalid("not an RSA private key: the PKCS#8 algorithm is not rsaEncryption");
    }
    if info.private_key.is_empty() {
        return invalid("not an RSA private key: the PKCS#8 key holds an empty RSAPrivateKey");
    }
    Ok(info.private_key)
}

/// Check that the components of the PKCS#1 `RSAPrivateKey` in `der` fit together, naming
/// the first one that does not ([`Component`]): `p * q = n`, `d * e = 1 mod (p-1)` and
/// `mod (q-1)` (that is, modulo their lcm), `dP = d mod (p-1)`, `dQ = d mod (q-1)`,
/// `qInv * q = 1 mod p`. ring checks `p * q`, `qInv` and the sizes itself but not `d`,
/// `dP` or `dQ` (a wrong CRT exponent fails every signature at its fault check; a wrong
/// `d` would be written to key files that other tools use).
///
/// Run it inside the secret heap and a scrubbed stack: the big integers are the `rsa`
/// crate's (`num-bigint-dig`), whose limbs are heap allocations. That arithmetic is not
/// constant time; it runs once per load, on no input an attacker chooses (SECURITY.md,
/// "RSA keys and the secret heap"). A DER that does not parse is left to ring's parser,
/// which names the problem.
fn check_components(der: &[u8]) -> Result<(), RsaError> {
    let Ok(key) = rsa::pkcs1::RsaPrivateKey::try_from(der) else {
        return Ok(());
    };
    if key.other_prime_infos.is_some() {
        // Multi-prime: ring refuses it by name.
        return Ok(());
    }
    let big = |u: rsa::pkcs1::UintRef<'_>| BigUint::from_bytes_be(u.as_bytes());
    let (n, e, d) = (
        big(key.modulus),
        big(key.public_exponent),
        big(key.private_exponent),
    );
    let (p, q) = (big(key.prime1), big(key.prime2));
    let one = BigUint::from(1u8);
    if p <= one || q <= one || &p * &q != n {
        return Err(RsaError::Inconsistent(Component::Primes));
    }
    let (p1, q1) = (&p - &one, &q - &one);
    let de = &d * &e;
    if &de % &p1 != &one % &p1 || &de % &q1 != &one % &q1 {
        return Err(RsaError::Inconsistent(Component::D));
    }
    if big(key.exponent1) != &d % &p1 {
        return Err(RsaError::Inconsistent(Component::DP));
    }
    if big(key.exponent2) != &d % &q1 {
        return Err(RsaError::Inconsistent(Component::DQ));
    }
    if (big(key.coefficient) * &q) % &p != one {
        return Err(RsaError::Inconsistent(Component::QInv));
    }
    Ok(())
}

/// DER length octets of `len`.
fn der_len(len: usize, out: &mut [u8]) -> usize {
    if len < 0x80 {
        out[0] = len as u8;
        return 1;
    }
    let bytes = (usize::BITS / 8 - len.leading_zeros() / 8) as usize;
    out[0] = 0x80 | bytes as u8;
    for i in 0..bytes {
        out[1 + i] = (len >> (8 * (bytes - 1 - i))) as u8;
    }
    1 + bytes
}

fn der_len_len(len: usize) -> usize {
    der_len(len, &mut [0u8; 9])
}

/// Length of the PKCS#8 `PrivateKeyInfo` around a PKCS#1 key of `pkcs1_len` bytes.
fn pkcs8_len(pkcs1_len: usize) -> usize {
    let body = 3 + RSA_ALGORITHM_ID.len() + 1 + der_len_len(pkcs1_len) + pkcs1_len;
    1 + der_len_len(body) + body
}

/// Write PKCS#8 `PrivateKeyInfo { 0, rsaEncryption NULL, OCTET STRING pkcs1 }` (as
/// OpenSSL writes it) into `out` ([`pkcs8_len`] bytes).
fn write_pkcs8(pkcs1: &[u8], out: &mut [u8]) {
    let body = 3 + RSA_ALGORITHM_ID.len() + 1 + der_len_len(pkcs1.len()) + pkcs1.len();
    let mut at = 0;
    out[at] = 0x30;
    at += 1;
    at += der_len(body, &mut out[at..]);
    out[at..at + 3].copy_from_slice(&[0x02, 0x01, 0x00]);
    at += 3;
    out[at..at + RSA_ALGORITHM_ID.len()].copy_from_slice(&RSA_ALGORITHM_ID);
    at += RSA_ALGORITHM_ID.len();
    out[at] = 0x04;
    at += 1;
    at += der_len(pkcs1.len(), &mut out[at..]);
    out[at..].copy_from_slice(pkcs1);
}

/// The OS CSPRNG as the `rand_core` generator the `rsa` crate's generation takes. A
/// failure is kept and reported after generation (the key is then discarded).
struct OsRng {
    failed: Option<MemoryError>,
}

impl rsa::rand_core::RngCore for OsRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if let Err(e) = crate::memory::fill_random(dest) {
            self.failed.get_or_insert(e);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for OsRng {}

/// A signature that does not verify (for any reason: length, padding, hash, key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadSignature;

/// An RSA public key (not secret), 2048 to 4096 bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaPublicKey {
    key: rsa::RsaPublicKey,
    /// PKCS#1 `RSAPublicKey` DER (ring's verification input).
    pkcs1: Vec<u8>,
}

impl RsaPublicKey {
    fn from_key(key: rsa::RsaPublicKey) -> Result<Self, RsaError> {
        let bits = key.n().bits();
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return invalid(format!(
                "RSA public keys must have a modulus of {MIN_BITS} to {MAX_BITS} bits, not {bits}"
            ));
        }
        let pkcs1 = key
            .to_pkcs1_der()
            .map_err(|_| RsaError::Invalid("cannot encode the RSA public key".to_owned()))?
            .into_vec();
        Ok(RsaPublicKey { key, pkcs1 })
    }

    fn from_ring(public: &ring::rsa::PublicKey) -> Result<Self, RsaError> {
        let c: rs::RsaPublicKeyComponents<Vec<u8>> = public.into();
        Self::from_components(&c.n, &c.e)
    }

    /// A key from its big-endian modulus and exponent.
    pub fn from_components(n: &[u8], e: &[u8]) -> Result<Self, RsaError> {
        let key = rsa::RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
            .map_err(|e| RsaError::Invalid(format!("not a valid RSA public key: {e}")))?;
        Self::from_key(key)
    }

    /// A key from DER: SubjectPublicKeyInfo or PKCS#1 `RSAPublicKey`.
    pub fn from_der(der: &[u8]) -> Result<Self, RsaError> {
        let key = rsa::RsaPublicKey::from_public_key_der(der)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(der))
            .map_err(|_| {
                RsaError::Invalid(
                    "not an RSA public key: expected SubjectPublicKeyInfo or PKCS#1 \
                     RSAPublicKey DER"
                        .to_owned(),
                )
            })?;
        Self::from_key(key)
    }

    /// A key from PEM: `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC KEY` (PKCS#1).
    pub fn from_pem(text: &str) -> Result<Self, RsaError> {
        let key = rsa::RsaPublicKey::from_public_key_pem(text.trim())
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(text.trim()))
            .map_err(|_| {
                RsaError::Invalid(
                    "not an RSA public key: expected a PEM \"PUBLIC KEY\" or \"RSA PUBLIC \
                     KEY\" block"
                        .to_owned(),
                )
            })?;
        Self::from_key(key)
    }

    /// SubjectPublicKeyInfo DER (`openssl pkey -pubout -outform DER`).
    pub fn spki_der(&self) -> Vec<u8> {
        self.key
            .to_public_key_der()
            .map(|d| d.into_vec())
            .unwrap_or_default()
    }

    /// SubjectPublicKeyInfo PEM (`PUBLIC KEY`).
    pub fn spki_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }

    /// PKCS#1 `RSAPublicKey` DER.
    pub fn pkcs1_der(&self) -> &[u8] {
        &self.pkcs1
    }

    /// PKCS#1 `RSAPublicKey` PEM (`RSA PUBLIC KEY`).
    pub fn pkcs1_pem(&self) -> String {
        self.key.to_pkcs1_pem(LineEnding::LF).unwrap_or_default()
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.key.n().bits()
    }

    /// The modulus, big-endian.
    pub fn n(&self) -> Vec<u8> {
        self.key.n().to_bytes_be()
    }

    /// The public exponent, big-endian.
    pub fn e(&self) -> Vec<u8> {
        self.key.e().to_bytes_be()
    }

    /// Verify `sig` over `msg`; [`BadSignature`] when it does not verify (any reason).
    pub fn verify(
        &self,
        padding: Padding,
        hash: Hash,
        salt: Salt,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), BadSignature> {
        let fixed_hash_len = match salt {
            Salt::HashLen => true,
            Salt::Len(n) => n == hash.digest_len(),
            Salt::Auto => false,
        };
        if padding == Padding::Pkcs1v15 || fixed_hash_len {
            let key = rs::UnparsedPublicKey::new(verification_params(padding, hash), &self.pkcs1);
            return key.verify(msg, sig).map_err(|_| BadSignature);
        }
        self.verify_pss(hash, salt, msg, sig)
    }

    /// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with MGF1 of `hash`, for salt lengths ring does
    /// not take: a fixed length other than the hash length, or any (`Salt::Auto`).
    fn verify_pss(
        &self,
        hash: Hash,
        salt: Salt,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), BadSignature> {
        let k = self.key.size();
        if sig.len() != k {
            return Err(BadSignature);
        }
        let s = BigUint::from_bytes_be(sig);
        if &s >= self.key.n() {
            return Err(BadSignature);
        }
        let m = s.modpow(self.key.e(), self.key.n()).to_bytes_be();
        let em_bits = self.bits() - 1;
        let em_len = em_bits.div_ceil(8);
        if m.len() > em_len {
            return Err(BadSignature);
        }
        let mut em = vec![0u8; em_len];
        em[em_len - m.len()..].copy_from_slice(&m);
        let h_len = hash.digest_len();
        if em_len < h_len + 2 || em[em_len - 1] != 0xbc {
            return Err(BadSignature);
        }
        let (masked_db, h) = em[..em_len - 1].split_at(em_len - h_len - 1);
        let top_bits = 8 * em_len - em_bits;
        let top_mask = (0xffu16 >> top_bits) as u8;
        if masked_db[0] & !top_mask != 0 {
            return Err(BadSignature);
        }
        let mut db = mgf1(hash, h, masked_db.len());
        for (d, m) in db.iter_mut().zip(masked_db) {
            *d ^= m;
        }
        db[0] &= top_mask;
        let one = db.iter().position(|&b| b != 0).ok_or(BadSignature)?;
        if db[one] != 0x01 {
            return Err(BadSignature);
        }
        let salt_bytes = &db[one + 1..];
        if let Salt::Len(n) = salt {
            if salt_bytes.len() != n {
                return Err(BadSignature);
            }
        }
        let m_hash = hash.digest(&[msg]);
        let h2 = hash.digest(&[&[0u8; 8], &m_hash, salt_bytes]);
        if crate::crypto::ct::ct_eq(&h2, h) {
            Ok(())
        } else {
            Err(BadSignature)
        }
    }
}

/// MGF1 (RFC 8017 §B.2.1) of `seed` with `hash`, `len` bytes.
fn mgf1(hash: Hash, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + hash.digest_len());
    let mut counter = 0u32;
    while out.len() < len {
        out.extend(hash.digest(&[seed, &counter.to_be_bytes()]));
        counter += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One generated key shared by the tests of this module (generation takes a while in
    /// unoptimised builds).
    fn key() -> &'static RsaPrivateKey {
        static KEY: std::sync::OnceLock<RsaPrivateKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| RsaPrivateKey::generate(2048).expect("generate"))
    }

    #[test]
    fn sizes_other_than_the_three_are_refused() {
        for bits in [0, 1024, 2047, 2049, 8192] {
            assert!(matches!(
                RsaPrivateKey::generate(bits),
                Err(RsaError::KeySize(b)) if b == bits
            ));
        }
    }

    #[test]
    fn sign_and_verify_every_padding_and_hash() {
        let k = key();
        assert_eq!(k.public().bits(), 2048);
        for padding in [Padding::Pss, Padding::Pkcs1v15] {
            for hash in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
                let sig = k.sign(padding, hash, b"message").expect("sign");
                assert_eq!(sig.len(), 256);
                let p = k.public();
                assert_eq!(
                    p.verify(padding, hash, Salt::HashLen, b"message", &sig),
                    Ok(())
                );
                assert!(p
                    .verify(padding, hash, Salt::HashLen, b"massage", &sig)
                    .is_err());
                if padding == Padding::Pss {
                    // The slow path agrees with ring for salt = hash length.
                    assert_eq!(p.verify_pss(hash, Salt::Auto, b"message", &sig), Ok(()));
                    let exact = Salt::Len(hash.digest_len());
                    assert_eq!(p.verify_pss(hash, exact, b"message", &sig), Ok(()));
                    assert!(p.verify_pss(hash, Salt::Len(0), b"message", &sig).is_err());
                    assert!(p.verify_pss(hash, Salt::Auto, b"massage", &sig).is_err());
                }
            }
        }
    }

    #[test]
    fn the_key_lives_in_guarded_memory() {
        let k = key();
        assert!(secret_heap::contains(std::ptr::from_ref(&*k.pair).cast()));
        let p = k.protection();
        assert!(p.dontdump && p.wipeonfork, "{p:?}");
    }

    #[test]
    fn encodings_round_trip() {
        let k = key();
        let der = k.pkcs1_der().expect("der").to_vec();
        for pkcs8 in [false, true] {
            for pem_armor in [false, true] {
                let enc = PrivateEncoding {
                    pkcs8,
                    pem: pem_armor,
                };
                let back = k
                    .with_encoded(enc, |bytes| {
                        if pem_armor {
                            RsaPrivateKey::from_pem(bytes)
                        } else {
                            RsaPrivateKey::from_der(bytes)
                        }
                    })
                    .expect("round trip");
                assert_eq!(back.pkcs1_der().expect("der"), der.as_slice());
            }
        }
        let p = k.public();
        assert_eq!(RsaPublicKey::from_der(&p.spki_der()).expect("spki"), *p);
        assert_eq!(RsaPublicKey::from_der(p.pkcs1_der()).expect("pkcs1"), *p);
        assert_eq!(RsaPublicKey::from_pem(&p.spki_pem()).expect("pem"), *p);
        assert_eq!(RsaPublicKey::from_pem(&p.pkcs1_pem()).expect("pem1"), *p);
        assert_eq!(
            RsaPublicKey::from_components(&p.n(), &p.e()).expect("ne"),
            *p
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(RsaPrivateKey::from_der(b"").is_err());
        assert!(RsaPrivateKey::from_der(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        assert!(RsaPrivateKey::from_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
        assert!(RsaPublicKey::from_der(b"\x30\x00").is_err());
        // An Ed25519 PKCS#8 key is refused by its algorithm.
        let ed = crate::crypto::unhex(
            "302e020100300506032b657004220420 d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842",
        );
        let e = RsaPrivateKey::from_der(&ed).err().expect("refused");
        assert!(e.to_string().contains("rsaEncryption"), "{e}");
    }

    /// The private-key operations (unscrubbed) reach less deep than the scrub after them
    /// ([`scrubbed_deep`]; measured on x86-64: signing ~11.9 KiB, generation ~6.4 KiB in
    /// release builds, ~24 and ~42 KiB unoptimised), and the scrubbed calls leave no
    /// window of the key on the stack.
    #[test]
    fn stack_depth_is_covered_by_the_scrub() {
        use crate::crypto::scrub::probe::{contains, stack_after};
        use crate::crypto::scrub::SCRUB_DEEP_BYTES;
        let k = key();
        let der = k.pkcs1_der().expect("der").to_vec();
        let rng = ring::rand::SystemRandom::new();
        let mut sig = vec![0u8; 256];
        let (depth, _) = stack_after(|| {
            std::hint::black_box(k.pair.sign(&rs::RSA_PSS_SHA256, &rng, b"m", &mut sig))
                .expect("sign");
        });
        assert!(
            depth < SCRUB_DEEP_BYTES,
            "signing used {depth} bytes of stack"
        );
        let (depth, _) = stack_after(|| {
            std::hint::black_box(RsaKeyPair::from_der(&der).expect("parse"));
        });
        assert!(
            depth < SCRUB_DEEP_BYTES,
            "parsing used {depth} bytes of stack"
        );
        let (depth, _) = stack_after(|| {
            std::hint::black_box(check_components(&der)).expect("consistent");
        });
        assert!(
            depth < SCRUB_DEEP_BYTES,
            "the component check used {depth} bytes of stack"
        );
        let (depth, _) = stack_after(|| {
            let mut rng = OsRng { failed: None };
            let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("generate");
            std::hint::black_box(key.to_pkcs1_der().expect("der"));
        });
        assert!(
            depth < SCRUB_DEEP_BYTES,
            "generation used {depth} bytes of stack"
        );
        // The scrubbed operations leave no 16-byte window of the key's DER (which holds
        // every component) on the stack.
        let (_, stack) = stack_after(|| {
            std::hint::black_box(k.sign(Padding::Pss, Hash::Sha256, b"m").expect("sign"));
            std::hint::black_box(RsaPrivateKey::from_der(&der).expect("parse"));
        });
        let windows: Vec<&[u8]> = der[16..].chunks_exact(16).collect();
        assert!(!windows.iter().any(|w| contains(&stack, w)));
    }

    #[test]
    fn the_component_check_names_the_wrong_one() {
        use rsa::pkcs1::der::Encode;
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::traits::PrivateKeyParts;
        let der = key().pkcs1_der().expect("der").to_vec();
        assert_eq!(check_components(&der), Ok(()));
        let k = rsa::RsaPrivateKey::from_pkcs1_der(&der).expect("parse");
        let one = BigUint::from(1u8);
        let (p, q) = (&k.primes()[0], &k.primes()[1]);
        let (n, e, d) = (k.n().clone(), k.e().clone(), k.d().clone());
        let dp = d.clone() % (p - &one);
        let dq = d.clone() % (q - &one);
        let qinv = k.crt_coefficient().expect("qinv");
        // PKCS#1 of the given components, whatever they are.
        let encode = |parts: [&BigUint; 8]| {
            let [n, e, d, p, q, dp, dq, qinv] = parts.map(|v| v.to_bytes_be());
            fn u(b: &[u8]) -> rsa::pkcs1::UintRef<'_> {
                rsa::pkcs1::UintRef::new(b).expect("uint")
            }
            rsa::pkcs1::RsaPrivateKey {
                modulus: u(&n),
                public_exponent: u(&e),
                private_exponent: u(&d),
                prime1: u(&p),
                prime2: u(&q),
                exponent1: u(&dp),
                exponent2: u(&dq),
                coefficient: u(&qinv),
                other_prime_infos: None,
            }
            .to_der()
            .expect("encode")
        };
        assert_eq!(
            encode([&n, &e, &d, p, q, &dp, &dq, &qinv]),
            der,
            "the encoder writes what generation wrote"
        );
        let two = BigUint::from(2u8);
        let cases = [
            (
                encode([&n, &e, &d, q, q, &dp, &dq, &qinv]),
                Component::Primes,
            ),
            (
                encode([&n, &e, &(&d + &two), p, q, &dp, &dq, &qinv]),
                Component::D,
            ),
            (
                encode([&n, &e, &d, p, q, &((&dp + &two) % (p - &one)), &dq, &qinv]),
                Component::DP,
            ),
            (
                encode([&n, &e, &d, p, q, &dp, &((&dq + &two) % (q - &one)), &qinv]),
                Component::DQ,
            ),
            (
                encode([&n, &e, &d, p, q, &dp, &dq, &((&qinv + &one) % p)]),
                Component::QInv,
            ),
        ];
        for (bad, which) in cases {
            assert_eq!(check_components(&bad), Err(RsaError::Inconsistent(which)));
            assert!(matches!(
                RsaPrivateKey::from_der(&bad),
                Err(RsaError::Inconsistent(w)) if w == which
            ));
        }
    }

    #[test]
    fn der_lengths() {
        let mut b = [0u8; 9];
        assert_eq!((der_len(5, &mut b), b[0]), (1, 5));
        assert_eq!((der_len(0x80, &mut b), &b[..2]), (2, &[0x81, 0x80][..]));
        assert_eq!(
            (der_len(0x1234, &mut b), &b[..3]),
            (3, &[0x82, 0x12, 0x34][..])
        );
    }
}
