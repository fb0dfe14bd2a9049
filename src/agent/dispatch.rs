//! The agent's decision: one request, the keys and policy it was read under, the use
//! counts and the peer's uid in; the reply and what to record out. A function of its
//! inputs: no socket, no thread, no record here (the connection does those,
//! [`super::connection`]). One function per message type, as OpenSSH's `ssh-agent.c`
//! and ssh-agent-lib do.

use super::keys::{Entry, KeySet};
use super::policy::{Operation, Policy, Usages};
use super::wire::{self, Extension, Malformed, Request};
use crate::crypto::hmac::HashAlgorithm;
use crate::crypto::tag::tag_matches;

/// What the agent decided for one request: the reply, and what its record names.
#[derive(Debug)]
pub struct Outcome {
    pub reply: Vec<u8>,
    pub key: Option<String>,
    /// Where the key lives ("store" or "pkcs11"), when a served key is named.
    pub key_source: Option<&'static str>,
    /// The key's kind ([`Entry::kind`]), when a served key is named.
    pub key_type: Option<&'static str>,
    pub operation: &'static str,
    /// Why it was refused (`None`: allowed).
    pub refused: Option<String>,
}

impl Outcome {
    fn allowed(reply: Vec<u8>, key: Option<&str>, operation: &'static str) -> Self {
        Outcome {
            reply,
            key: key.map(str::to_owned),
            key_source: None,
            key_type: None,
            operation,
            refused: None,
        }
    }

    fn refused(key: Option<&str>, operation: &'static str, reason: impl Into<String>) -> Self {
        Outcome {
            reply: wire::status(wire::FAILURE),
            key: key.map(str::to_owned),
            key_source: None,
            key_type: None,
            operation,
            refused: Some(reason.into()),
        }
    }

    /// The outcome of a request for the served key `e`.
    fn of(mut self, e: &Entry) -> Self {
        self.key_source = Some(e.source());
        self.key_type = Some(e.kind());
        self
    }
}

/// What a request is decided with: the key set and policy it started with (a reload
/// swaps them for later requests only), the use counts, the peer's uid.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub keys: &'a KeySet,
    pub policy: Option<&'a Policy>,
    pub usages: &'a Usages,
    pub uid: u32,
}

impl Context<'_> {
    /// Check `op` on `entry` against the policy, counting the use.
    fn decide(&self, entry: &Entry, op: Operation) -> Result<(), &'static str> {
        let Some(policy) = self.policy else {
            return Ok(());
        };
        let Some(rule) = policy.rule(&entry.name) else {
            return Err("no policy rule for this key");
        };
        self.usages.decide(&entry.name, rule, op, self.uid)
    }

    /// Whether `entry` may be used for `op` now (no use counted).
    fn permitted(&self, entry: &Entry, op: Operation) -> bool {
        let Some(policy) = self.policy else {
            return true;
        };
        let Some(rule) = policy.rule(&entry.name) else {
            return false;
        };
        self.usages.permitted(&entry.name, rule, op, self.uid)
    }
}

/// Decide the request `msg` (one frame's body). `Err` for a message that breaks the
/// protocol: the connection is closed.
pub fn dispatch(cx: Context<'_>, msg: &[u8]) -> Result<Outcome, Malformed> {
    Ok(match wire::parse_request(msg)? {
        Request::RequestIdentities => identities(cx),
        Request::Sign {
            key_blob,
            data,
            flags,
        } => sign(cx, key_blob, data, flags),
        Request::Extension(ext) => extension(cx, ext),
        Request::Refused(r) => Outcome::refused(None, r.name(), "not allowed over the socket"),
        Request::Unknown(t) => {
            Outcome::refused(None, "unknown", format!("unsupported message type {t}"))
        }
    })
}

/// `REQUEST_IDENTITIES`: the signing keys (Ed25519, ECDSA, RSA) this peer may sign with.
fn identities(cx: Context<'_>) -> Outcome {
    let ids: Vec<(&[u8], &str)> = cx
        .keys
        .entries()
        .iter()
        .filter(|e| cx.permitted(e, Operation::Sign))
        .filter_map(|e| Some((e.blob()?, e.name.as_str())))
        .collect();
    Outcome::allowed(wire::identities_answer(ids.into_iter()), None, "identities")
}

/// `SIGN_REQUEST`. Flags select an RSA key's hash (RFC 8332: `rsa-sha2-256` or
/// `rsa-sha2-512`; neither, a SHA-1 `ssh-rsa` signature, is refused before the policy
/// counts a use); they do not apply to Ed25519 and ECDSA keys and are ignored there.
fn sign(cx: Context<'_>, key_blob: &[u8], data: &[u8], flags: u32) -> Outcome {
    let Some(entry) = cx.keys.by_blob(key_blob) else {
        return Outcome::refused(None, "sign", "no such key");
    };
    if let Err(r) = entry.check_sign_flags(flags) {
        return Outcome::refused(Some(&entry.name), "sign", r).of(entry);
    }
    if let Err(r) = cx.decide(entry, Operation::Sign) {
        return Outcome::refused(Some(&entry.name), "sign", r).of(entry);
    }
    match entry.sign(data, flags) {
        Ok(sig) => Outcome::allowed(wire::sign_response(&sig), Some(&entry.name), "sign"),
        Err(e) => Outcome::refused(Some(&entry.name), "sign", e),
    }
    .of(entry)
}

fn extension(cx: Context<'_>, ext: Extension<'_>) -> Outcome {
    match ext {
        Extension::Query => Outcome::allowed(
            wire::extension_response(wire::EXT_QUERY, |w| {
                for name in wire::EXTENSIONS {
                    w.string(name.as_bytes());
                }
            }),
            None,
            "query",
        ),
        Extension::List => list(cx),
        Extension::Hmac {
            name,
            algorithm,
            data,
        } => mac(cx, name, algorithm, data, None),
        Extension::VerifyHmac {
            name,
            algorithm,
            data,
            tag,
        } => mac(cx, name, algorithm, data, Some(tag)),
        Extension::Unsupported(_) => Outcome::refused(None, "extension", "unsupported extension"),
    }
}

/// `list@keycell`: the keys this peer may use for anything.
fn list(cx: Context<'_>) -> Outcome {
    let visible: Vec<&Entry> = cx
        .keys
        .entries()
        .iter()
        .filter(|e| {
            [Operation::Sign, Operation::Hmac, Operation::VerifyHmac]
                .iter()
                .any(|&op| cx.permitted(e, op))
        })
        .collect();
    let reply = wire::extension_response(wire::EXT_LIST, |w| {
        w.u32(visible.len() as u32);
        for e in &visible {
            let r = e.report();
            w.string(e.name.as_bytes())
                .string(e.kind().as_bytes())
                .string(e.public())
                .u32(r.bits)
                .string(r.isolation.as_bytes())
                .string(r.backend.as_bytes());
        }
    });
    Outcome::allowed(reply, None, "list")
}

/// `hmac@keycell` (no `tag`) and `verify-hmac@keycell`.
fn mac(
    cx: Context<'_>,
    name: &str,
    alg: HashAlgorithm,
    data: &[u8],
    tag: Option<&[u8]>,
) -> Outcome {
    let (op, opname, ext) = match tag {
        None => (Operation::Hmac, "hmac", wire::EXT_HMAC),
        Some(_) => (Operation::VerifyHmac, "verify-hmac", wire::EXT_VERIFY_HMAC),
    };
    let Some(entry) = cx.keys.by_name(name) else {
        return Outcome::refused(Some(name), opname, "no such key");
    };
    if entry.kind() != "secret" {
        return Outcome::refused(Some(name), opname, "not a secret key").of(entry);
    }
    if let Err(r) = cx.decide(entry, op) {
        return Outcome::refused(Some(name), opname, r).of(entry);
    }
    let mut mac = [0u8; 64];
    let n = alg.digest_len();
    if let Err(e) = entry.hmac(alg, data, &mut mac[..n]) {
        return Outcome::refused(Some(name), opname, e).of(entry);
    }
    let reply = wire::extension_response(ext, |w| match tag {
        None => {
            w.string(&mac[..n]);
        }
        Some(t) => {
            w.u8(u8::from(tag_matches(&mac[..n], t)));
        }
    });
    Outcome::allowed(reply, Some(name), opname).of(entry)
}
