//! The SSH agent wire protocol (draft-ietf-sshm-ssh-agent), the subset keycell speaks:
//! framing, parsing of requests, encoding of replies. No I/O and no keys here.
//!
//! A message is `uint32 length || byte type || contents`; `string` is `uint32 length ||
//! bytes`. Every parser here is total: any input yields a value or [`Malformed`], never a
//! panic (fuzzed in `tests/fuzz_parsers.rs`). Trailing bytes after a request's fields are
//! malformed (the draft allows no extension of fixed messages).

use crate::crypto::ec::Curve;
use crate::crypto::hmac::HashAlgorithm;
use crate::keyfile::ssh_public::{ecdsa_name, SshReader};

/// Largest message accepted (the length field), as OpenSSH's `AGENT_MAX_LEN`.
pub const MAX_MESSAGE_LEN: usize = 256 * 1024;

// Requests (client to agent).
pub const REQUEST_IDENTITIES: u8 = 11;
pub const SIGN_REQUEST: u8 = 13;
pub const ADD_IDENTITY: u8 = 17;
pub const REMOVE_IDENTITY: u8 = 18;
pub const REMOVE_ALL_IDENTITIES: u8 = 19;
pub const ADD_SMARTCARD_KEY: u8 = 20;
pub const REMOVE_SMARTCARD_KEY: u8 = 21;
pub const LOCK: u8 = 22;
pub const UNLOCK: u8 = 23;
pub const ADD_ID_CONSTRAINED: u8 = 25;
pub const ADD_SMARTCARD_KEY_CONSTRAINED: u8 = 26;
pub const EXTENSION: u8 = 27;

// Replies (agent to client).
pub const FAILURE: u8 = 5;
pub const SUCCESS: u8 = 6;
pub const IDENTITIES_ANSWER: u8 = 12;
pub const SIGN_RESPONSE: u8 = 14;
pub const EXTENSION_FAILURE: u8 = 28;
pub const EXTENSION_RESPONSE: u8 = 29;

/// The key type name of Ed25519 keys and signatures.
pub const ED25519: &str = "ssh-ed25519";

/// `SSH_AGENT_RSA_SHA2_256`: the flag of a sign request asking an RSA key for an
/// `rsa-sha2-256` signature (RFC 8332 §3.1).
pub const RSA_SHA2_256: u32 = 2;
/// `SSH_AGENT_RSA_SHA2_512`: asking for `rsa-sha2-512`.
pub const RSA_SHA2_512: u32 = 4;
/// The signature names of RFC 8332 (RSASSA-PKCS1-v1_5 with SHA-256 and SHA-512).
pub const RSA_SHA2_256_NAME: &str = "rsa-sha2-256";
/// See [`RSA_SHA2_256_NAME`].
pub const RSA_SHA2_512_NAME: &str = "rsa-sha2-512";

/// keycell's extensions (docs/agent.md has their wire formats).
pub const EXT_QUERY: &str = "query";
pub const EXT_LIST: &str = "list@keycell";
pub const EXT_HMAC: &str = "hmac@keycell";
pub const EXT_VERIFY_HMAC: &str = "verify-hmac@keycell";
/// Every extension name `query` reports.
pub const EXTENSIONS: [&str; 4] = [EXT_QUERY, EXT_LIST, EXT_HMAC, EXT_VERIFY_HMAC];

/// Why a message was refused as malformed (the connection is then closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A request that changes the agent's keys or lock state: always refused over the socket
/// (no keys or PKCS#11 modules are loaded through it, CVE-2023-38408; no lock password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    AddIdentity,
    RemoveIdentity,
    RemoveAllIdentities,
    AddSmartcardKey,
    RemoveSmartcardKey,
    Lock,
    Unlock,
    AddIdConstrained,
    AddSmartcardKeyConstrained,
}

impl Refused {
    /// The operation's name in logs and audit records.
    pub fn name(self) -> &'static str {
        match self {
            Refused::AddIdentity => "add-identity",
            Refused::RemoveIdentity => "remove-identity",
            Refused::RemoveAllIdentities => "remove-all-identities",
            Refused::AddSmartcardKey => "add-smartcard-key",
            Refused::RemoveSmartcardKey => "remove-smartcard-key",
            Refused::Lock => "lock",
            Refused::Unlock => "unlock",
            Refused::AddIdConstrained => "add-identity-constrained",
            Refused::AddSmartcardKeyConstrained => "add-smartcard-key-constrained",
        }
    }

    /// Whether the message may carry secret material (a private key or a PIN/password),
    /// so that the frame buffer must be wiped.
    pub fn carries_secret(self) -> bool {
        !matches!(self, Refused::RemoveAllIdentities | Refused::RemoveIdentity)
    }
}

/// A keycell extension request (`SSH_AGENTC_EXTENSION`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension<'a> {
    /// `query`: which extensions are supported.
    Query,
    /// `list@keycell`: the keys this peer may use.
    List,
    /// `hmac@keycell`: `string name, string algorithm, string data`.
    Hmac {
        name: &'a str,
        algorithm: HashAlgorithm,
        data: &'a [u8],
    },
    /// `verify-hmac@keycell`: `string name, string algorithm, string data, string tag`.
    VerifyHmac {
        name: &'a str,
        algorithm: HashAlgorithm,
        data: &'a [u8],
        tag: &'a [u8],
    },
    /// Any other extension name: not supported (`SSH_AGENT_FAILURE`, as the draft says).
    Unsupported(&'a str),
}

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// `SSH_AGENTC_REQUEST_IDENTITIES`.
    RequestIdentities,
    /// `SSH_AGENTC_SIGN_REQUEST`: `string key blob, string data, uint32 flags`.
    Sign {
        key_blob: &'a [u8],
        data: &'a [u8],
        flags: u32,
    },
    /// `SSH_AGENTC_EXTENSION`.
    Extension(Extension<'a>),
    /// A message type that is refused by design (its contents are not parsed).
    Refused(Refused),
    /// Any other message type (answered with `SSH_AGENT_FAILURE`).
    Unknown(u8),
}

/// A cursor over a message, reading SSH wire types: the key files' [`SshReader`] (one
/// implementation of the wire types), with the agent's reasons for what it refuses.
pub struct Reader<'a>(SshReader<'a>);

const TRUNCATED: Malformed = Malformed("truncated message");

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader(SshReader::new(data))
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.0.rest()
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Malformed> {
        self.0.u8().map_err(|_| TRUNCATED)
    }

    /// A big-endian `uint32`.
    pub fn u32(&mut self) -> Result<u32, Malformed> {
        self.0.u32().map_err(|_| TRUNCATED)
    }

    /// A `string` (bytes).
    pub fn string(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.u32()? as usize;
        self.0
            .bytes(n)
            .map_err(|_| Malformed("string length beyond the message"))
    }

    /// A `string` that must be UTF-8 text.
    pub fn text(&mut self) -> Result<&'a str, Malformed> {
        std::str::from_utf8(self.string()?).map_err(|_| Malformed("a name is not UTF-8"))
    }

    /// Fail unless everything was read.
    pub fn finish(&self) -> Result<(), Malformed> {
        self.0
            .finish("request")
            .map_err(|_| Malformed("trailing bytes after the request"))
    }
}

/// The length of a frame from its 4-byte header: `Err` for 0 or more than
/// [`MAX_MESSAGE_LEN`].
pub fn frame_len(header: [u8; 4]) -> Result<usize, Malformed> {
    let n = u32::from_be_bytes(header) as usize;
    if n == 0 {
        Err(Malformed("empty message"))
    } else if n > MAX_MESSAGE_LEN {
        Err(Malformed("message longer than the maximum message size"))
    } else {
        Ok(n)
    }
}

fn algorithm(name: &str) -> Result<HashAlgorithm, Malformed> {
    match name {
        "sha256" => Ok(HashAlgorithm::Sha256),
        "sha384" => Ok(HashAlgorithm::Sha384),
        "sha512" => Ok(HashAlgorithm::Sha512),
        _ => Err(Malformed("unknown HMAC algorithm")),
    }
}

fn parse_extension<'a>(r: &mut Reader<'a>) -> Result<Extension<'a>, Malformed> {
    let name = r.text()?;
    let ext = match name {
        EXT_QUERY => Extension::Query,
        EXT_LIST => Extension::List,
        EXT_HMAC => {
            let key = r.text()?;
            let alg = algorithm(r.text()?)?;
            let data = r.string()?;
            Extension::Hmac {
                name: key,
                algorithm: alg,
                data,
            }
        }
        EXT_VERIFY_HMAC => {
            let key = r.text()?;
            let alg = algorithm(r.text()?)?;
            let data = r.string()?;
            let tag = r.string()?;
            Extension::VerifyHmac {
                name: key,
                algorithm: alg,
                data,
                tag,
            }
        }
        // Contents of unknown extensions are opaque (OpenSSH appends them raw).
        other => return Ok(Extension::Unsupported(other)),
    };
    r.finish()?;
    Ok(ext)
}

/// Parse one message (the frame's contents, without the length header).
pub fn parse_request(msg: &[u8]) -> Result<Request<'_>, Malformed> {
    let mut r = Reader::new(msg);
    let kind = r.u8()?;
    let req = match kind {
        REQUEST_IDENTITIES => Request::RequestIdentities,
        SIGN_REQUEST => {
            let key_blob = r.string()?;
            let data = r.string()?;
            let flags = r.u32()?;
            Request::Sign {
                key_blob,
                data,
                flags,
            }
        }
        EXTENSION => return parse_extension(&mut r).map(Request::Extension),
        ADD_IDENTITY => return Ok(Request::Refused(Refused::AddIdentity)),
        REMOVE_IDENTITY => return Ok(Request::Refused(Refused::RemoveIdentity)),
        REMOVE_ALL_IDENTITIES => return Ok(Request::Refused(Refused::RemoveAllIdentities)),
        ADD_SMARTCARD_KEY => return Ok(Request::Refused(Refused::AddSmartcardKey)),
        REMOVE_SMARTCARD_KEY => return Ok(Request::Refused(Refused::RemoveSmartcardKey)),
        LOCK => return Ok(Request::Refused(Refused::Lock)),
        UNLOCK => return Ok(Request::Refused(Refused::Unlock)),
        ADD_ID_CONSTRAINED => return Ok(Request::Refused(Refused::AddIdConstrained)),
        ADD_SMARTCARD_KEY_CONSTRAINED => {
            return Ok(Request::Refused(Refused::AddSmartcardKeyConstrained))
        }
        other => return Ok(Request::Unknown(other)),
    };
    r.finish()?;
    Ok(req)
}

/// A reply under construction: `uint32 length` is filled in by [`Writer::finish`].
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A reply of message type `kind`.
    pub fn new(kind: u8) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&[0, 0, 0, 0, kind]);
        Writer { buf }
    }

    /// Append a `uint32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Append one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Append a `string`. Strings here are public values bounded by the message size.
    pub fn string(&mut self, s: &[u8]) -> &mut Self {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s);
        self
    }

    /// Append a non-negative `mpint` of the big-endian magnitude `v` (leading zeros
    /// dropped, a zero byte added when the top bit is set).
    pub fn mpint(&mut self, v: &[u8]) -> &mut Self {
        let first = v.iter().position(|&b| b != 0).unwrap_or(v.len());
        let v = &v[first..];
        let pad = v.first().is_some_and(|b| b & 0x80 != 0);
        self.u32((v.len() + usize::from(pad)) as u32);
        if pad {
            self.buf.push(0);
        }
        self.buf.extend_from_slice(v);
        self
    }

    /// The framed reply.
    pub fn finish(mut self) -> Vec<u8> {
        let n = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&n.to_be_bytes());
        self.buf
    }
}

/// A framed one-byte reply (`SSH_AGENT_FAILURE`, `SSH_AGENT_SUCCESS`, ...).
pub fn status(kind: u8) -> Vec<u8> {
    Writer::new(kind).finish()
}

/// The SSH public key blob of an Ed25519 key: `string "ssh-ed25519", string key`.
pub fn ed25519_blob(public: &[u8; 32]) -> Vec<u8> {
    let mut w = Writer::new(0);
    w.string(ED25519.as_bytes()).string(public);
    w.finish()[5..].to_vec()
}

/// The public key of an Ed25519 key blob, or `None` if the blob is not exactly one.
pub fn parse_ed25519_blob(blob: &[u8]) -> Option<[u8; 32]> {
    let mut r = Reader::new(blob);
    if r.string().ok()? != ED25519.as_bytes() {
        return None;
    }
    let key: [u8; 32] = r.string().ok()?.try_into().ok()?;
    r.finish().ok()?;
    Some(key)
}

/// `SSH_AGENT_IDENTITIES_ANSWER` for `(key blob, comment)` pairs.
pub fn identities_answer<'a>(ids: impl ExactSizeIterator<Item = (&'a [u8], &'a str)>) -> Vec<u8> {
    let mut w = Writer::new(IDENTITIES_ANSWER);
    w.u32(ids.len() as u32);
    for (blob, comment) in ids {
        w.string(blob).string(comment.as_bytes());
    }
    w.finish()
}

/// The SSH signature blob of an Ed25519 signature: `string "ssh-ed25519", string
/// signature` (RFC 8709 §6).
pub fn ed25519_signature_blob(signature: &[u8; 64]) -> Vec<u8> {
    let mut inner = Writer::new(0);
    inner.string(ED25519.as_bytes()).string(signature);
    inner.finish()[5..].to_vec()
}

/// The SSH signature blob of an ECDSA signature (`r`, `s` big-endian, fixed width):
/// `string "ecdsa-sha2-nistpNNN", string (mpint r, mpint s)` (RFC 5656 §3.1.2).
pub fn ecdsa_signature_blob(curve: Curve, r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut rs = Writer::new(0);
    rs.mpint(r).mpint(s);
    let rs = rs.finish();
    let mut inner = Writer::new(0);
    inner.string(ecdsa_name(curve).as_bytes()).string(&rs[5..]);
    inner.finish()[5..].to_vec()
}

/// The SSH signature blob of an RSA signature: `string "rsa-sha2-256" or "rsa-sha2-512",
/// string signature` (RFC 8332 §3; the signature is the modulus's length).
pub fn rsa_signature_blob(name: &str, signature: &[u8]) -> Vec<u8> {
    let mut inner = Writer::new(0);
    inner.string(name.as_bytes()).string(signature);
    inner.finish()[5..].to_vec()
}

/// `SSH_AGENT_SIGN_RESPONSE` carrying the signature blob `signature` (from
/// [`ed25519_signature_blob`], [`ecdsa_signature_blob`] or [`rsa_signature_blob`]).
pub fn sign_response(signature: &[u8]) -> Vec<u8> {
    let mut w = Writer::new(SIGN_RESPONSE);
    w.string(signature);
    w.finish()
}

/// `SSH_AGENT_EXTENSION_RESPONSE`: `string extension name` then the extension's own
/// contents, written by `body`.
pub fn extension_response(name: &str, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new(EXTENSION_RESPONSE);
    w.string(name.as_bytes());
    body(&mut w);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &[u8]) -> Vec<u8> {
        let mut v = (s.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(s);
        v
    }

    #[test]
    fn sign_request_round_trip() {
        let blob = ed25519_blob(&[7u8; 32]);
        assert_eq!(parse_ed25519_blob(&blob), Some([7u8; 32]));
        let mut msg = vec![SIGN_REQUEST];
        msg.extend(string(&blob));
        msg.extend(string(b"data"));
        msg.extend(4u32.to_be_bytes());
        assert_eq!(
            parse_request(&msg),
            Ok(Request::Sign {
                key_blob: &blob,
                data: b"data",
                flags: 4
            })
        );
        msg.push(0);
        assert!(parse_request(&msg).is_err());
        assert!(parse_request(&msg[..msg.len() - 3]).is_err());
    }

    #[test]
    fn framing_bounds() {
        assert!(frame_len([0, 0, 0, 0]).is_err());
        assert_eq!(frame_len([0, 0, 0, 1]), Ok(1));
        assert_eq!(
            frame_len((MAX_MESSAGE_LEN as u32).to_be_bytes()),
            Ok(MAX_MESSAGE_LEN)
        );
        assert!(frame_len((MAX_MESSAGE_LEN as u32 + 1).to_be_bytes()).is_err());
        assert!(frame_len([0xff; 4]).is_err());
    }

    #[test]
    fn refused_and_unknown_types() {
        for (t, r) in [
            (ADD_IDENTITY, Refused::AddIdentity),
            (ADD_ID_CONSTRAINED, Refused::AddIdConstrained),
            (ADD_SMARTCARD_KEY, Refused::AddSmartcardKey),
            (
                ADD_SMARTCARD_KEY_CONSTRAINED,
                Refused::AddSmartcardKeyConstrained,
            ),
            (REMOVE_IDENTITY, Refused::RemoveIdentity),
            (REMOVE_ALL_IDENTITIES, Refused::RemoveAllIdentities),
            (REMOVE_SMARTCARD_KEY, Refused::RemoveSmartcardKey),
            (LOCK, Refused::Lock),
            (UNLOCK, Refused::Unlock),
        ] {
            assert_eq!(parse_request(&[t, 1, 2, 3]), Ok(Request::Refused(r)));
        }
        assert_eq!(parse_request(&[1]), Ok(Request::Unknown(1)));
        assert_eq!(
            parse_request(&[REQUEST_IDENTITIES]),
            Ok(Request::RequestIdentities)
        );
        assert!(parse_request(&[REQUEST_IDENTITIES, 0]).is_err());
        assert!(parse_request(&[]).is_err());
    }

    #[test]
    fn extensions() {
        let mut msg = vec![EXTENSION];
        msg.extend(string(b"hmac@keycell"));
        msg.extend(string(b"k"));
        msg.extend(string(b"sha384"));
        msg.extend(string(b"m"));
        assert_eq!(
            parse_request(&msg),
            Ok(Request::Extension(Extension::Hmac {
                name: "k",
                algorithm: HashAlgorithm::Sha384,
                data: b"m"
            }))
        );
        let mut bad = vec![EXTENSION];
        bad.extend(string(b"hmac@keycell"));
        bad.extend(string(b"k"));
        bad.extend(string(b"md5"));
        bad.extend(string(b"m"));
        assert!(parse_request(&bad).is_err());
        let mut other = vec![EXTENSION];
        other.extend(string(b"session-bind@openssh.com"));
        other.extend(b"opaque");
        assert_eq!(
            parse_request(&other),
            Ok(Request::Extension(Extension::Unsupported(
                "session-bind@openssh.com"
            )))
        );
    }

    #[test]
    fn replies() {
        assert_eq!(status(FAILURE), [0, 0, 0, 1, FAILURE]);
        let sig = sign_response(&ed25519_signature_blob(&[1u8; 64]));
        assert_eq!(&sig[..5], &[0, 0, 0, 88, SIGN_RESPONSE]);
        let blob = ed25519_blob(&[2u8; 32]);
        let ids = identities_answer([(blob.as_slice(), "name")].into_iter());
        let mut r = Reader::new(&ids[5..]);
        assert_eq!(r.u32(), Ok(1));
        assert_eq!(r.string(), Ok(blob.as_slice()));
        assert_eq!(r.text(), Ok("name"));
        assert!(r.finish().is_ok());
        assert_eq!(parse_ed25519_blob(b"junk"), None);
    }
}
