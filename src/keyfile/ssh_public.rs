//! SSH public keys: the wire types of RFC 4251 §5 read from borrowed slices ([`SshReader`],
//! also used for OpenSSH private key files), the public key blobs of RFC 4253 §6.6,
//! RFC 5656 §3.1 and RFC 8709 §4 ([`SshPublicKey`]), and the one-line
//! `authorized_keys` form (`ecdsa-sha2-nistp256 AAAA... comment`). Format notes:
//! `docs/key-formats.md`.

use crate::crypto::ec::{Curve, PublicPoint};

/// Why SSH data was refused (a fixed description; never contains key bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshFormatError(pub String);

impl std::fmt::Display for SshFormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(what: impl Into<String>) -> Result<T, SshFormatError> {
    Err(SshFormatError(what.into()))
}

/// A cursor over SSH wire data (`byte`, `uint32`, `string`), on a borrowed slice: reading
/// a string hands back a sub-slice, so a secret stays in the region it was decoded into.
pub struct SshReader<'a> {
    data: &'a [u8],
}

impl<'a> SshReader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        SshReader { data }
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    /// `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], SshFormatError> {
        if n > self.data.len() {
            return err("it is truncated");
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    /// One `byte`.
    pub fn u8(&mut self) -> Result<u8, SshFormatError> {
        let b = self.bytes(1)?;
        Ok(b[0])
    }

    /// A big-endian `uint32`.
    pub fn u32(&mut self) -> Result<u32, SshFormatError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `string` (bytes).
    pub fn string(&mut self) -> Result<&'a [u8], SshFormatError> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }

    /// A positive `mpint`: its magnitude without the leading zero byte that keeps the
    /// top bit clear. Negative and non-minimal encodings are refused.
    pub fn positive_mpint(&mut self) -> Result<&'a [u8], SshFormatError> {
        let s = self.string()?;
        match s {
            [] => err("an mpint is zero"),
            [b, ..] if b & 0x80 != 0 => err("an mpint is negative"),
            [0, rest @ ..] if rest.first().is_none_or(|b| b & 0x80 == 0) => {
                err("an mpint is not minimally encoded")
            }
            [0, rest @ ..] => Ok(rest),
            _ => Ok(s),
        }
    }

    /// Fail unless everything was read.
    pub fn finish(&self, what: &str) -> Result<(), SshFormatError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            err(format!("trailing bytes after the {what}"))
        }
    }
}

/// Writing SSH wire types (public data only: it grows a `Vec`).
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// Append a non-negative `mpint` of the big-endian magnitude `v` (leading zeros dropped,
/// a zero byte added when the top bit is set).
pub fn put_mpint(out: &mut Vec<u8>, v: &[u8]) {
    let first = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    let v = &v[first..];
    let pad = v.first().is_some_and(|b| b & 0x80 != 0);
    out.extend_from_slice(&((v.len() + usize::from(pad)) as u32).to_be_bytes());
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
}

/// The SSH name of RSA keys (`ssh-rsa`, RFC 4253 §6.6).
pub const RSA: &str = "ssh-rsa";

/// The SSH name of Ed25519 keys and signatures.
pub const ED25519: &str = "ssh-ed25519";

/// The SSH key type name of ECDSA keys on `curve` (`ecdsa-sha2-nistp256`, RFC 5656).
pub fn ecdsa_name(curve: Curve) -> &'static str {
    match curve {
        Curve::P256 => "ecdsa-sha2-nistp256",
        Curve::P384 => "ecdsa-sha2-nistp384",
    }
}

/// The curve identifier inside ECDSA blobs (`nistp256`).
pub fn curve_id(curve: Curve) -> &'static str {
    match curve {
        Curve::P256 => "nistp256",
        Curve::P384 => "nistp384",
    }
}

/// The curve of an ECDSA key type name.
pub fn curve_of_name(name: &[u8]) -> Option<Curve> {
    Curve::ALL
        .into_iter()
        .find(|&c| ecdsa_name(c).as_bytes() == name)
}

/// A public key in the SSH formats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SshPublicKey {
    /// `ssh-ed25519`: the 32-byte key.
    Ed25519([u8; 32]),
    /// `ecdsa-sha2-nistp256/384`: the uncompressed SEC1 point (validated on the curve).
    Ecdsa(PublicPoint),
    /// `ssh-rsa`: the public exponent and the modulus (big-endian magnitudes, no leading
    /// zero; checked as an RSA key by `crypto::rsa` where it is used).
    Rsa { e: Vec<u8>, n: Vec<u8> },
}

impl SshPublicKey {
    /// The key type name (`ssh-ed25519`, `ecdsa-sha2-nistp256`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            SshPublicKey::Ed25519(_) => ED25519,
            SshPublicKey::Ecdsa(p) => ecdsa_name(p.curve()),
            SshPublicKey::Rsa { .. } => RSA,
        }
    }

    /// The wire blob: `string type, string key` (Ed25519) or `string type, string
    /// curve id, string Q` (ECDSA).
    pub fn blob(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        put_string(&mut out, self.type_name().as_bytes());
        match self {
            SshPublicKey::Ed25519(k) => put_string(&mut out, k),
            SshPublicKey::Ecdsa(p) => {
                put_string(&mut out, curve_id(p.curve()).as_bytes());
                put_string(&mut out, p.uncompressed());
            }
            SshPublicKey::Rsa { e, n } => {
                put_mpint(&mut out, e);
                put_mpint(&mut out, n);
            }
        }
        out
    }

    /// Read the key that follows the type name `type_name` from `r` (the layout of a blob
    /// and of the public part of an OpenSSH private key).
    pub fn read_after_type(
        type_name: &[u8],
        r: &mut SshReader<'_>,
    ) -> Result<SshPublicKey, SshFormatError> {
        if type_name == ED25519.as_bytes() {
            let key: [u8; 32] = r
                .string()?
                .try_into()
                .or_else(|_| err("an ssh-ed25519 key is not 32 bytes"))?;
            return Ok(SshPublicKey::Ed25519(key));
        }
        if type_name == RSA.as_bytes() {
            let e = r.positive_mpint()?.to_vec();
            let n = r.positive_mpint()?.to_vec();
            return Ok(SshPublicKey::Rsa { e, n });
        }
        if let Some(curve) = curve_of_name(type_name) {
            if r.string()? != curve_id(curve).as_bytes() {
                return err("the curve named inside an ECDSA key does not match its type");
            }
            let point = PublicPoint::from_sec1(curve, r.string()?)
                .or_else(|_| err("the ECDSA public key is not a point of its curve"))?;
            return Ok(SshPublicKey::Ecdsa(point));
        }
        err(unsupported_type(type_name))
    }

    /// Parse a public key blob (exactly one key, nothing after it).
    pub fn from_blob(blob: &[u8]) -> Result<SshPublicKey, SshFormatError> {
        let mut r = SshReader::new(blob);
        let type_name = r.string()?;
        let key = Self::read_after_type(type_name, &mut r)?;
        r.finish("public key")?;
        Ok(key)
    }

    /// The `authorized_keys` line: `type base64(blob)` and ` comment` if given (no
    /// newline).
    pub fn to_line(&self, comment: Option<&str>) -> String {
        let blob = self.blob();
        let mut b64 = vec![0u8; crate::encoding::base64_encoded_len(blob.len())];
        // The output is sized by `base64_encoded_len`, so the encoder cannot refuse it.
        let _ = crate::encoding::base64_encode_into(&blob, &mut b64);
        let mut line = format!("{} {}", self.type_name(), String::from_utf8_lossy(&b64));
        if let Some(c) = comment {
            line.push(' ');
            line.push_str(c);
        }
        line
    }

    /// Parse an `authorized_keys`-style line: `type base64 [comment]` (surrounding
    /// whitespace ignored; options before the type are not accepted). The type must match
    /// the blob's. Returns the key and the comment (`None` if absent).
    pub fn from_line(line: &str) -> Result<(SshPublicKey, Option<String>), SshFormatError> {
        let line = line.trim();
        if line.contains('\n') {
            return err("an OpenSSH public key is one line");
        }
        let mut parts = line.splitn(3, [' ', '\t']);
        let type_name = parts.next().unwrap_or("");
        let Some(b64) = parts.next() else {
            return err("an OpenSSH public key line is \"type base64 [comment]\"");
        };
        let comment = parts
            .next()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        let n = crate::encoding::base64_decoded_len(b64.as_bytes())
            .or_else(|e| err(format!("malformed base64 in the key: {e}")))?;
        let mut blob = vec![0u8; n];
        crate::encoding::base64_decode_into(b64.as_bytes(), &mut blob)
            .or_else(|e| err(format!("malformed base64 in the key: {e}")))?;
        let key = Self::from_blob(&blob)?;
        if key.type_name() != type_name {
            return err("the key type before the key does not match the key itself");
        }
        Ok((key, comment))
    }
}

/// The message for a key type keycell does not read (named only if it is a plain name).
pub fn unsupported_type(type_name: &[u8]) -> String {
    let known = [
        "ssh-dss",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    match std::str::from_utf8(type_name)
        .ok()
        .filter(|n| known.contains(n) || n.ends_with("-cert-v01@openssh.com"))
    {
        Some(n) => format!(
            "{n} keys are not supported (ssh-ed25519, ecdsa-sha2-nistp256, \
             ecdsa-sha2-nistp384 and ssh-rsa are)"
        ),
        None => "an unknown key type (ssh-ed25519, ecdsa-sha2-nistp256, \
                 ecdsa-sha2-nistp384 and ssh-rsa are supported)"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_mismatches_are_refused() {
        // `ssh-keygen -t ed25519`'s public line for the RFC 8032 test 1 key.
        let ed = SshPublicKey::Ed25519([0x11; 32]);
        let line = ed.to_line(Some("me@host"));
        assert!(
            line.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"),
            "{line}"
        );
        assert_eq!(
            SshPublicKey::from_line(&line),
            Ok((ed.clone(), Some("me@host".to_owned())))
        );
        assert_eq!(
            SshPublicKey::from_line(&ed.to_line(None)),
            Ok((ed.clone(), None))
        );
        let relabelled = line.replacen("ssh-ed25519", "ecdsa-sha2-nistp256", 1);
        assert!(SshPublicKey::from_line(&relabelled).is_err());
        let mut blob = ed.blob();
        blob.push(0);
        assert!(SshPublicKey::from_blob(&blob).is_err());
        assert!(SshPublicKey::from_blob(&ed.blob()[..20]).is_err());
        let e = SshPublicKey::from_line("ssh-dss AAAAB3NzaC1kc3M=").expect_err("dss");
        assert!(e.0.contains("ssh-dss keys are not supported"), "{e}");
    }

    #[test]
    fn mpints() {
        let mp = |b: &[u8]| {
            let mut v = Vec::new();
            put_string(&mut v, b);
            SshReader::new(&v).positive_mpint().map(<[u8]>::to_vec)
        };
        assert_eq!(mp(&[0x00, 0x80, 1]), Ok(vec![0x80, 1]));
        assert_eq!(mp(&[0x7f]), Ok(vec![0x7f]));
        assert!(mp(&[]).is_err());
        assert!(mp(&[0x80]).is_err());
        assert!(mp(&[0x00, 0x01]).is_err());
    }
}
