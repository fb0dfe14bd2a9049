//! The signed policy file: `FILE` (the rules, [`super::policy`]) and its detached
//! signature `FILE.sig`, one line `keycell-policy-signature-v1 ALG BASE64\n` holding a
//! signature over [`SIGNATURE_CONTEXT`] followed by the file's exact bytes. `ALG` is
//! `ed25519` (64 bytes), `ecdsa-p256` (ECDSA with SHA-256, `r || s`, 64 bytes) or
//! `ecdsa-p384` (SHA-384, 96 bytes) or `rsa-pss-sha256` (RSASSA-PSS with SHA-256, MGF1
//! and a 32-byte salt, as AWS KMS's `RSASSA_PSS_SHA_256`), and must be the algorithm of
//! the pinned policy public key ([`PolicyKey`]): a signature line never chooses how it is
//! checked. The
//! agent reads and checks both here, so no caller can hand it rules whose signature nobody
//! checked (`keycell policy sign` writes the line: `python/keycell/_agent_server.py`).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use super::policy::{Policy, PolicyError};
use crate::crypto::ec::{Curve, PublicPoint, SignatureEncoding};
use crate::crypto::ed25519;
use crate::crypto::rsa::{self, RsaPublicKey};
use crate::encoding::{base64_decode_into, base64_decoded_len, looks_base64};

/// Prefix of the message a policy signature covers (domain separation: a policy signature
/// is never a valid signature over anything else, nor the other way round).
pub const SIGNATURE_CONTEXT: &[u8] = b"keycell policy signature v1\x00";
/// The signature line's start, before the algorithm name.
pub const SIGNATURE_PREFIX: &str = "keycell-policy-signature-v1 ";

/// The public key a policy's signature must verify with (pinned by the agent's owner).
#[derive(Debug, Clone)]
pub enum PolicyKey {
    Ed25519(VerifyingKey),
    /// ECDSA on P-256 (SHA-256) or P-384 (SHA-384), raw `r || s` signatures.
    Ecdsa(PublicPoint),
    /// RSASSA-PSS with SHA-256 and a salt of the hash's length.
    RsaPss(RsaPublicKey),
}

impl PolicyKey {
    /// The algorithm name in the signature line.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PolicyKey::Ed25519(_) => "ed25519",
            PolicyKey::Ecdsa(p) => match p.curve() {
                Curve::P256 => "ecdsa-p256",
                Curve::P384 => "ecdsa-p384",
            },
            PolicyKey::RsaPss(_) => "rsa-pss-sha256",
        }
    }

    /// Whether `sig` is this key's signature over `msg`.
    fn verifies(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            PolicyKey::Ed25519(k) => sig.len() == 64 && ed25519::verify(k, msg, sig).is_ok(),
            PolicyKey::Ecdsa(p) => p.verify(msg, sig, SignatureEncoding::Raw).is_ok(),
            PolicyKey::RsaPss(k) => k
                .verify(
                    rsa::Padding::Pss,
                    rsa::Hash::Sha256,
                    rsa::Salt::HashLen,
                    msg,
                    sig,
                )
                .is_ok(),
        }
    }
}

/// Largest policy, signature or public key file read.
pub const MAX_FILE_LEN: u64 = 1 << 20;

/// Where the detached signature of a policy file lives: `FILE.sig`.
pub fn signature_path(policy: &Path) -> PathBuf {
    let mut name = policy.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// Why a policy file was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyFileError {
    /// The policy file cannot be read (`reason`: the OS error).
    Unreadable { path: PathBuf, reason: String },
    /// No signature file.
    Unsigned { path: PathBuf, signature: PathBuf },
    /// The signature file cannot be read, or is not ASCII.
    SignatureUnreadable { signature: PathBuf, reason: String },
    /// The signature file is not a keycell policy signature line.
    NotASignature { signature: PathBuf },
    /// The signature line names another algorithm than the policy public key's.
    WrongAlgorithm {
        signature: PathBuf,
        found: String,
        expected: &'static str,
    },
    /// The signature does not verify with the policy public key.
    BadSignature { path: PathBuf },
    /// The rules are invalid.
    Rules(PolicyError),
    /// A file that anyone but its owner (this user or root) could have replaced: a
    /// symlink, not a regular file, another owner, writable by group or others.
    Insecure { path: PathBuf, reason: &'static str },
}

impl std::fmt::Display for PolicyFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyFileError::Unreadable { path, reason } => {
                write!(f, "cannot read policy {}: {reason}", path.display())
            }
            PolicyFileError::Unsigned { path, signature } => write!(
                f,
                "policy {} has no signature ({} is missing): sign it with `keycell policy sign`",
                path.display(),
                signature.display()
            ),
            PolicyFileError::SignatureUnreadable { signature, reason } => write!(
                f,
                "cannot read policy signature {}: {reason}",
                signature.display()
            ),
            PolicyFileError::NotASignature { signature } => {
                write!(
                    f,
                    "{} is not a keycell policy signature",
                    signature.display()
                )
            }
            PolicyFileError::WrongAlgorithm {
                signature,
                found,
                expected,
            } => write!(
                f,
                "{} is signed with {found}, but the policy public key is an {expected} key",
                signature.display()
            ),
            PolicyFileError::BadSignature { path } => write!(
                f,
                "the signature of policy {} does not verify with the policy public key: the \
                 policy was modified or signed by another key",
                path.display()
            ),
            PolicyFileError::Rules(e) => write!(f, "policy: {e}"),
            PolicyFileError::Insecure { path, reason } => {
                write!(f, "refusing {}: {reason}", path.display())
            }
        }
    }
}

/// The OS's words for `e`, without Rust's " (os error N)".
fn os_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Why [`read_checked`] read nothing.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// Refused by a check (the reason).
    Insecure(&'static str),
}

impl ReadError {
    /// As a [`PolicyFileError`] about `path`: `io` words an OS error.
    fn about(
        self,
        path: &Path,
        io: impl FnOnce(&std::io::Error) -> PolicyFileError,
    ) -> PolicyFileError {
        match self {
            ReadError::Io(e) => io(&e),
            ReadError::Insecure(reason) => PolicyFileError::Insecure {
                path: path.to_owned(),
                reason,
            },
        }
    }
}

/// Read a file that decides what the agent allows (the policy, its signature, the policy
/// public key) with the checks of key files that matter for a public file: no symlink
/// (`O_NOFOLLOW`), a regular file, owned by this user or root, not writable by group or
/// others, at most [`MAX_FILE_LEN`] bytes; checked with `fstat` on the descriptor read.
pub fn read_checked(path: &Path) -> Result<Vec<u8>, ReadError> {
    let insecure = |reason| Err(ReadError::Insecure(reason));
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return insecure("it is a symlink"),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let meta = File::metadata(&f).map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return insecure("not a regular file");
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return insecure("owned by another user (only this user or root may own it)");
    }
    if meta.mode() & 0o022 != 0 {
        return insecure("writable by group or others");
    }
    if meta.len() > MAX_FILE_LEN {
        return insecure("larger than 1 MiB");
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    f.by_ref()
        .take(MAX_FILE_LEN + 1)
        .read_to_end(&mut data)
        .map_err(ReadError::Io)?;
    if data.len() as u64 > MAX_FILE_LEN {
        return insecure("larger than 1 MiB");
    }
    Ok(data)
}

/// The signature bytes of a signature file's text, whose algorithm must be `key`'s.
fn parse_signature(
    text: &[u8],
    signature: &Path,
    key: &PolicyKey,
) -> Result<Vec<u8>, PolicyFileError> {
    let not = || PolicyFileError::NotASignature {
        signature: signature.to_owned(),
    };
    let line = text
        .strip_prefix(SIGNATURE_PREFIX.as_bytes())
        .and_then(|t| t.strip_suffix(b"\n"))
        .ok_or_else(not)?;
    let space = line.iter().position(|&c| c == b' ').ok_or_else(not)?;
    let (alg, body) = (&line[..space], &line[space + 1..]);
    if !matches!(
        alg,
        b"ed25519" | b"ecdsa-p256" | b"ecdsa-p384" | b"rsa-pss-sha256"
    ) {
        return Err(not());
    }
    if alg != key.algorithm().as_bytes() {
        return Err(PolicyFileError::WrongAlgorithm {
            signature: signature.to_owned(),
            found: String::from_utf8_lossy(alg).into_owned(),
            expected: key.algorithm(),
        });
    }
    // Strict base64: the alphabet and padding only (no whitespace, as Python's
    // `b64decode(validate=True)`), whole quads.
    if !body.is_empty()
        && (body.len() % 4 != 0
            || !looks_base64(body)
            || body.iter().any(|c| c.is_ascii_whitespace()))
    {
        return Err(not());
    }
    let Ok(n) = base64_decoded_len(body) else {
        // An empty body decodes to nothing: a signature that cannot verify.
        return if body.is_empty() {
            Ok(Vec::new())
        } else {
            Err(not())
        };
    };
    let mut raw = vec![0u8; n];
    base64_decode_into(body, &mut raw).map_err(|_| not())?;
    Ok(raw)
}

/// Read the policy at `path` and its signature (`signature`, by default
/// [`signature_path`]), verify the signature with `public` and parse the rules. Returns
/// the exact bytes verified and the policy.
pub fn read_verified(
    path: &Path,
    public: &PolicyKey,
    signature: Option<&Path>,
) -> Result<(Vec<u8>, Policy), PolicyFileError> {
    let sig_path = signature.map_or_else(|| signature_path(path), Path::to_owned);
    let data = read_checked(path).map_err(|e| {
        e.about(path, |e| PolicyFileError::Unreadable {
            path: path.to_owned(),
            reason: os_reason(e),
        })
    })?;
    let text = match read_checked(&sig_path) {
        Ok(t) if t.is_ascii() => t,
        Ok(_) => {
            return Err(PolicyFileError::SignatureUnreadable {
                signature: sig_path,
                reason: "not ASCII text".to_owned(),
            })
        }
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PolicyFileError::Unsigned {
                path: path.to_owned(),
                signature: sig_path,
            })
        }
        Err(e) => {
            return Err(
                e.about(&sig_path, |e| PolicyFileError::SignatureUnreadable {
                    signature: sig_path.clone(),
                    reason: os_reason(e),
                }),
            )
        }
    };
    let sig = parse_signature(&text, &sig_path, public)?;
    let mut msg = SIGNATURE_CONTEXT.to_vec();
    msg.extend_from_slice(&data);
    if !public.verifies(&msg, &sig) {
        return Err(PolicyFileError::BadSignature {
            path: path.to_owned(),
        });
    }
    let policy = Policy::parse(&data).map_err(PolicyFileError::Rules)?;
    Ok((data, policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::base64_encode_into;

    use crate::crypto::ec;

    fn line(alg: &str, sig: &[u8]) -> Vec<u8> {
        let mut b64 = vec![0u8; sig.len().div_ceil(3) * 4];
        base64_encode_into(sig, &mut b64).expect("b64");
        [
            SIGNATURE_PREFIX.as_bytes(),
            alg.as_bytes(),
            b" ",
            &b64,
            b"\n",
        ]
        .concat()
    }

    fn signature_line(sk: &ed25519::PrivateKey, data: &[u8]) -> Vec<u8> {
        let sig = sk.sign(&[SIGNATURE_CONTEXT, data].concat()).expect("sign");
        line("ed25519", &sig)
    }

    fn ec_key(curve: Curve, byte: u8) -> ec::PrivateKey {
        ec::PrivateKey::new_with(curve, |d: &mut [u8]| -> Result<(), ec::EcError> {
            d.fill(byte);
            Ok(())
        })
        .expect("scalar")
    }

    fn ec_signature(sk: &ec::PrivateKey, data: &[u8], enc: SignatureEncoding) -> Vec<u8> {
        let msg = [SIGNATURE_CONTEXT, data].concat();
        sk.sign(&msg, enc).expect("sign").as_bytes().to_vec()
    }

    #[test]
    fn rsa_pss_signatures_verify_with_the_pinned_key_only() {
        let d = crate::test_dir::fresh("policy-file-rsa");
        let path = d.join("p.json");
        let data = br#"{"keycell_policy": 1, "keys": {"k": {"max_uses": 1}}}"#;
        std::fs::write(&path, data).expect("write");
        let sig_path = signature_path(&path);
        let sk = rsa::RsaPrivateKey::generate(2048).expect("generate");
        let pk = PolicyKey::RsaPss(sk.public().clone());
        assert_eq!(pk.algorithm(), "rsa-pss-sha256");
        let msg = [SIGNATURE_CONTEXT, data].concat();
        let pss = sk
            .sign(rsa::Padding::Pss, rsa::Hash::Sha256, &msg)
            .expect("sign");
        std::fs::write(&sig_path, line("rsa-pss-sha256", &pss)).expect("sig");
        let (bytes, _) = read_verified(&path, &pk, None).expect("verified");
        assert_eq!(bytes, data);
        // PKCS#1 v1.5 or PSS over SHA-384 under the same name: not this algorithm.
        for (padding, hash) in [
            (rsa::Padding::Pkcs1v15, rsa::Hash::Sha256),
            (rsa::Padding::Pss, rsa::Hash::Sha384),
        ] {
            let other = sk.sign(padding, hash, &msg).expect("sign");
            std::fs::write(&sig_path, line("rsa-pss-sha256", &other)).expect("sig");
            let err = read_verified(&path, &pk, None).expect_err("other scheme");
            assert!(matches!(err, PolicyFileError::BadSignature { .. }), "{err}");
        }
        // Tampered, and the line naming another algorithm.
        std::fs::write(&sig_path, line("rsa-pss-sha256", &pss)).expect("sig");
        std::fs::write(&path, [&data[..], b" "].concat()).expect("write");
        let err = read_verified(&path, &pk, None).expect_err("tampered");
        assert!(matches!(err, PolicyFileError::BadSignature { .. }), "{err}");
        std::fs::write(&path, data).expect("write");
        std::fs::write(&sig_path, line("ed25519", &pss[..64])).expect("sig");
        let err = read_verified(&path, &pk, None).expect_err("ed25519 line");
        assert!(
            matches!(err, PolicyFileError::WrongAlgorithm { .. }),
            "{err}"
        );
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn ecdsa_signatures_verify_with_the_pinned_key_only() {
        let d = crate::test_dir::fresh("policy-file-ec");
        let path = d.join("p.json");
        let data = br#"{"keycell_policy": 1, "keys": {"k": {"max_uses": 1}}}"#;
        std::fs::write(&path, data).expect("write");
        let sig_path = signature_path(&path);
        for (curve, alg) in [(Curve::P256, "ecdsa-p256"), (Curve::P384, "ecdsa-p384")] {
            let sk = ec_key(curve, 7);
            let pk = PolicyKey::Ecdsa(*sk.public());
            assert_eq!(pk.algorithm(), alg);
            let raw = ec_signature(&sk, data, SignatureEncoding::Raw);
            assert_eq!(raw.len(), curve.raw_signature_len());
            std::fs::write(&sig_path, line(alg, &raw)).expect("sig");
            let (bytes, _) = read_verified(&path, &pk, None).expect("verified");
            assert_eq!(bytes, data);
            // Another key of the same curve: a bad signature.
            let other = PolicyKey::Ecdsa(*ec_key(curve, 9).public());
            let err = read_verified(&path, &other, None).expect_err("other key");
            assert!(matches!(err, PolicyFileError::BadSignature { .. }), "{err}");
            // The policy changed after signing.
            std::fs::write(&path, [&data[..], b" "].concat()).expect("write");
            let err = read_verified(&path, &pk, None).expect_err("tampered");
            assert!(matches!(err, PolicyFileError::BadSignature { .. }), "{err}");
            std::fs::write(&path, data).expect("write");
            // DER is not the line's encoding.
            let der = ec_signature(&sk, data, SignatureEncoding::Der);
            std::fs::write(&sig_path, line(alg, &der)).expect("sig");
            let err = read_verified(&path, &pk, None).expect_err("der");
            assert!(matches!(err, PolicyFileError::BadSignature { .. }), "{err}");
            // The line cannot choose another algorithm than the pinned key's.
            let ed = ed25519::PrivateKey::from_seed(&[5u8; 32]).expect("key");
            std::fs::write(&sig_path, signature_line(&ed, data)).expect("sig");
            let err = read_verified(&path, &pk, None).expect_err("ed25519 line");
            assert_eq!(
                err.to_string(),
                format!(
                    "{} is signed with ed25519, but the policy public key is an {alg} key",
                    sig_path.display()
                )
            );
            std::fs::write(&sig_path, line(alg, &raw)).expect("sig");
            let err = read_verified(&path, &PolicyKey::Ed25519(*ed.public()), None)
                .expect_err("ecdsa line, ed25519 key");
            assert!(
                matches!(err, PolicyFileError::WrongAlgorithm { .. }),
                "{err}"
            );
        }
        // A P-256 signature against a pinned P-384 key: refused by name.
        let p256 = ec_key(Curve::P256, 7);
        let raw = ec_signature(&p256, data, SignatureEncoding::Raw);
        std::fs::write(&sig_path, line("ecdsa-p256", &raw)).expect("sig");
        let p384 = PolicyKey::Ecdsa(*ec_key(Curve::P384, 7).public());
        let err = read_verified(&path, &p384, None).expect_err("curve");
        assert!(
            matches!(err, PolicyFileError::WrongAlgorithm { .. }),
            "{err}"
        );
        // Unknown algorithm names are not signatures.
        std::fs::write(&sig_path, line("ecdsa-p521", &raw)).expect("sig");
        let pk = PolicyKey::Ecdsa(*p256.public());
        let err = read_verified(&path, &pk, None).expect_err("unknown");
        assert!(
            matches!(err, PolicyFileError::NotASignature { .. }),
            "{err}"
        );
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn verifies_and_refuses() {
        let d = crate::test_dir::fresh("policy-file");
        let sk = ed25519::PrivateKey::from_seed(&[5u8; 32]).expect("key");
        let other = ed25519::PrivateKey::from_seed(&[6u8; 32]).expect("key");
        let pk = PolicyKey::Ed25519(*sk.public());
        let other_pk = PolicyKey::Ed25519(*other.public());
        let path = d.join("p.json");
        let data = br#"{"keycell_policy": 1, "keys": {"k": {"max_uses": 1}}}"#;
        std::fs::write(&path, data).expect("write");
        let err = read_verified(&path, &pk, None).expect_err("unsigned");
        assert!(matches!(err, PolicyFileError::Unsigned { .. }), "{err}");
        assert!(err.to_string().contains("has no signature"));
        std::fs::write(signature_path(&path), signature_line(&sk, data)).expect("sig");
        let (bytes, policy) = read_verified(&path, &pk, None).expect("verified");
        assert_eq!(bytes, data);
        assert!(policy.rule("k").is_some());
        let err = read_verified(&path, &other_pk, None).expect_err("other key");
        assert!(err.to_string().contains("does not verify"), "{err}");
        // Tampered: one byte more.
        std::fs::write(&path, [&data[..], b" "].concat()).expect("write");
        let err = read_verified(&path, &pk, None).expect_err("tampered");
        assert!(matches!(err, PolicyFileError::BadSignature { .. }));
        for bad in [
            &b"nonsense\n"[..],
            b"keycell-policy-signature-v1 ed25519 AA AA\n",
        ] {
            std::fs::write(signature_path(&path), bad).expect("sig");
            let err = read_verified(&path, &pk, None).expect_err("malformed");
            assert!(
                matches!(err, PolicyFileError::NotASignature { .. }),
                "{err}"
            );
        }
        // Rules that do not parse, signed: refused as rules.
        std::fs::write(&path, b"{}").expect("write");
        std::fs::write(signature_path(&path), signature_line(&sk, b"{}")).expect("sig");
        let err = read_verified(&path, &pk, None).expect_err("rules");
        assert!(matches!(err, PolicyFileError::Rules(_)), "{err}");
        // A policy file others could have replaced is refused before its signature counts.
        std::fs::write(&path, data).expect("write");
        std::fs::write(signature_path(&path), signature_line(&sk, data)).expect("sig");
        assert!(read_verified(&path, &pk, None).is_ok());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let err = read_verified(&path, &pk, None).expect_err("writable");
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let link = d.join("link.json");
        std::os::unix::fs::symlink(&path, &link).expect("symlink");
        std::fs::write(signature_path(&link), signature_line(&sk, data)).expect("sig");
        let err = read_verified(&link, &pk, None).expect_err("symlink");
        assert!(matches!(err, PolicyFileError::Insecure { .. }), "{err}");
        let err = read_verified(&d.join("none"), &pk, None).expect_err("missing");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read policy {}: No such file or directory",
                d.join("none").display()
            )
        );
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
