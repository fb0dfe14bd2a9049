//! A deterministic mutation fuzzer for the pure-Rust parsers (cargo-fuzz needs nightly):
//! the hex/base64 decoders of `encoding`, the PKCS#8/SPKI/PEM code of `crypto::pkcs8`,
//! key file loading with format detection (`keyfile::DecodedKeyFile`), and the key store
//! file parser (`store::format`), `pkcs11:` URIs (`pkcs11::uri`, RFC 7512), the audit
//! log's record, checkpoint and state file parsers and its whole-file verifier (`audit`),
//! and the key agent's request parser and policy file (`agent::wire`, `agent::json`,
//! `agent::policy`); both JSON users run on the shared `json` module.
//! Every call runs under `catch_unwind`: a panic is a
//! finding, and so is a broken invariant (a decoder accepting what re-encodes differently,
//! a parser returning a key for input that is not the canonical encoding of that key).
//!
//! `#[ignore]`d in a plain `cargo test`; `make test` runs it for 2 seconds per target group
//! (`FUZZ_SECS=2`). A real campaign:
//!
//! ```text
//! FUZZ_SECS=600 cargo test --no-default-features --release --test fuzz_parsers -- --ignored --nocapture
//! ```
//!
//! `FUZZ_SECS` (default 20) bounds the time per target group, `FUZZ_SEED` fixes the seed
//! (printed at the start, so a finding can be replayed).

// A test harness: a failed expectation is a finding, reported by panicking.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use _native::agent::json as agent_json;
use _native::agent::policy as agent_policy;
use _native::agent::wire as agent_wire;
use _native::audit::{checkpoint as audit_cp, json as audit_json, record as audit_record};
use _native::audit::{state as audit_state, verify as audit_verify, writer::Writer};
use _native::crypto::argon2::Argon2Params;
use _native::crypto::curve::Algorithm;
use _native::crypto::ed25519::PrivateKey;
use _native::crypto::key_kind::KeyKind;
use _native::crypto::pkcs8;
use _native::encoding;
use _native::keyfile::{DecodedKeyFile, Format};
use _native::pkcs11::uri as pkcs11_uri;
use _native::store::format::{self as store, Entry, Identity, MasterType};

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const WHITESPACE: &[&[u8]] = &[b" ", b"\t", b"\n", b"\r\n", b"\x0b", b"\x0c", b"  \n\n"];
const LENGTHS: &[&[u8]] = &[
    b"\x80",
    b"\x81\x05",
    b"\x81\x80",
    b"\x82\x00\x2e",
    b"\x82\x01\x00",
    b"\x82\xff\xff",
    b"\x83\x01\x00\x00",
    b"\x84\xff\xff\xff\xff",
    b"\x88\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\xff",
    b"\x7f",
    b"\x00",
];
const LABELS: &[&[u8]] = &[
    b"PRIVATE KEY",
    b"PUBLIC KEY",
    b"ENCRYPTED PRIVATE KEY",
    b"OPENSSH PRIVATE KEY",
    b"RSA PRIVATE KEY",
    b"CERTIFICATE",
    b"",
    b"PRIVATE KEY-----\n-----BEGIN PRIVATE KEY",
    b"\xff\xfe",
];

fn replace_once(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    match hay.windows(needle.len()).position(|w| w == needle) {
        Some(i) => [&hay[..i], with, &hay[i + needle.len()..]].concat(),
        None => hay.to_vec(),
    }
}

fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        vec![n as u8]
    } else if n < 0x100 {
        vec![0x81, n as u8]
    } else {
        vec![0x82, (n >> 8) as u8, n as u8]
    }
}

/// Apply 1 to 4 random mutations to `input` (`corpus` for splicing).
fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut d = input.to_vec();
    for _ in 0..=rng.below(4) {
        let n = d.len();
        let pos = rng.below(n.max(1));
        match rng.below(14) {
            0 | 1 if n > 0 => d[pos] ^= 1 << rng.below(8),
            2 if n > 0 => d[pos] = rng.next() as u8,
            3 => d.truncate(rng.below(n + 1)),
            4 => {
                let k = 1 + rng.below(8);
                let extra = rng.bytes(k);
                d.splice(pos.min(n)..pos.min(n), extra);
            }
            5 if n > 0 => {
                let end = (pos + 1 + rng.below(8)).min(n);
                d.drain(pos..end);
            }
            6 => {
                let ws = rng.pick(WHITESPACE).to_vec();
                d.splice(pos.min(n)..pos.min(n), ws);
            }
            7 => {
                let other = rng.pick(corpus);
                let cut = rng.below(other.len() + 1);
                d.truncate(pos.min(n));
                d.extend_from_slice(&other[cut..]);
            }
            8 if n > 1 => {
                // Rewrite a DER length: long, non-minimal, indefinite, oversized forms.
                let at = 1 + rng.below(n - 1);
                let with = rng.pick(LENGTHS).to_vec();
                d.splice(at..at + 1, with);
            }
            9 => {
                // Nest in a SEQUENCE or OCTET STRING.
                let tag = if rng.below(2) == 0 { 0x30 } else { 0x04 };
                let mut w = vec![tag];
                w.extend(der_len(d.len()));
                w.extend_from_slice(&d);
                d = w;
            }
            10 => {
                let label = rng.pick(LABELS);
                let which = rng.below(3);
                if which != 1 {
                    d = replace_once(&d, b"BEGIN PRIVATE KEY", &[b"BEGIN ", *label].concat());
                    d = replace_once(&d, b"BEGIN PUBLIC KEY", &[b"BEGIN ", *label].concat());
                }
                if which != 0 {
                    d = replace_once(&d, b"END PRIVATE KEY", &[b"END ", *label].concat());
                    d = replace_once(&d, b"END PUBLIC KEY", &[b"END ", *label].concat());
                }
            }
            11 => d.make_ascii_uppercase(),
            12 => {
                let copy = d.clone();
                d.extend_from_slice(&copy);
            }
            _ => {
                if n > 0 {
                    // Rewrite a big-endian u32 (store counts and lengths).
                    let at = pos.min(n.saturating_sub(4));
                    let v = *rng.pick(&[0u32, 1, 31, 32, 33, 255, 256, 65536, u32::MAX]);
                    for (i, b) in v.to_be_bytes().iter().enumerate() {
                        if let Some(x) = d.get_mut(at + i) {
                            *x = *b;
                        }
                    }
                }
            }
        }
    }
    d
}

/// An input: random bytes (a third of the time) or a mutated corpus item.
fn input(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(3) == 0 {
        let n = rng.below(200);
        rng.bytes(n)
    } else {
        let base = rng.pick(corpus).clone();
        mutate(rng, &base, corpus)
    }
}

// ---------------------------------------------------------------------------------------
// References and encoders
// ---------------------------------------------------------------------------------------

fn strip_ws(d: &[u8]) -> Vec<u8> {
    d.iter()
        .copied()
        .filter(|c| !encoding::is_space(*c))
        .collect()
}

fn hex(d: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; encoding::hex_encoded_len(d.len())];
    encoding::hex_encode_into(d, &mut v).expect("hex");
    v
}

fn b64(d: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; encoding::base64_encoded_len(d.len())];
    encoding::base64_encode_into(d, &mut v).expect("b64");
    v
}

fn unhex(d: &[u8]) -> Result<Vec<u8>, encoding::DecodeError> {
    let mut v = vec![0u8; encoding::hex_decoded_len(d)?];
    encoding::hex_decode_into(d, &mut v)?;
    Ok(v)
}

fn unb64(d: &[u8]) -> Result<Vec<u8>, encoding::DecodeError> {
    let mut v = vec![0u8; encoding::base64_decoded_len(d)?];
    encoding::base64_decode_into(d, &mut v)?;
    Ok(v)
}

fn pkcs8_der(alg: Algorithm, key: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; pkcs8::PKCS8_V1_LEN];
    pkcs8::pkcs8_v1_der_into(alg, key, &mut v).expect("pkcs8");
    v
}

fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; pkcs8::pem_encoded_len(label, der.len())];
    pkcs8::pem_encode_into(label, der, &mut v).expect("pem");
    v
}

/// The PKCS#8 DER of `key`: `version`, the algorithm, the key, then the raw `attrs`
/// element and the public key when given.
fn pkcs8_build(
    alg: Algorithm,
    version: u8,
    key: &[u8],
    attrs: Option<&[u8]>,
    public: Option<&[u8]>,
) -> Vec<u8> {
    let oid: &[u8] = match alg {
        Algorithm::Ed25519 => &[0x2b, 0x65, 0x70],
        Algorithm::X25519 => &[0x2b, 0x65, 0x6e],
    };
    let mut body = vec![0x02, 0x01, version, 0x30, 0x05, 0x06, 0x03];
    body.extend_from_slice(oid);
    body.extend_from_slice(&[0x04, 0x22, 0x04, 0x20]);
    body.extend_from_slice(key);
    if let Some(a) = attrs {
        body.extend_from_slice(a);
    }
    if let Some(p) = public {
        body.extend_from_slice(&[0x81, 0x21, 0x00]);
        body.extend_from_slice(p);
    }
    let mut out = vec![0x30];
    out.extend(der_len(body.len()));
    out.extend(body);
    out
}

fn pkcs8_v2(alg: Algorithm, key: &[u8], public: &[u8], attrs: bool) -> Vec<u8> {
    let a: &[u8] = &[0xa0, 0x02, 0x05, 0x00];
    pkcs8_build(alg, 1, key, attrs.then_some(a), Some(public))
}

/// The `[0]` attributes element (tag, length, content) at the start of `d`, if any.
fn attributes_tlv(d: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = d.split_first()?;
    if tag != 0xa0 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (hdr, len) = match first {
        0..=0x7f => (2, first as usize),
        0x81 => (3, *rest.first()? as usize),
        0x82 => (4, (*rest.first()? as usize) << 8 | *rest.get(1)? as usize),
        _ => return None,
    };
    d.get(..hdr + len)
}

/// Whether PKCS#8 `input` that the code under test parsed to `key` (a sub-slice of it)
/// and `public` is exactly the DER encoding of those (attributes, which may hold anything,
/// copied from the input).
fn pkcs8_reencodes(alg: Algorithm, input: &[u8], key: &[u8], public: Option<&[u8; 32]>) -> bool {
    if key.len() != 32 {
        return false;
    }
    let key_end = (key.as_ptr() as usize).wrapping_sub(input.as_ptr() as usize) + key.len();
    let attrs = input.get(key_end..).and_then(attributes_tlv);
    let public = public.map(|p| p.as_slice());
    [0u8, 1]
        .iter()
        .any(|&v| pkcs8_build(alg, v, key, attrs, public) == input)
}

/// Whether a key loaded from PKCS#8 `der` is the one the parser finds in it, in a
/// canonical structure.
fn pkcs8_explains(alg: Algorithm, der: &[u8], key: &[u8]) -> bool {
    match pkcs8::parse_pkcs8_der(alg, der) {
        Ok(p) => p.key == key && pkcs8_reencodes(alg, der, p.key, p.public.as_ref()),
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------------------
// Corpus
// ---------------------------------------------------------------------------------------

fn store_file(rng: &mut Rng, master: MasterType, n: usize) -> Vec<u8> {
    let identity = Identity {
        master_type: master,
        store_id: [7; 16],
        salt: [9; 16],
        kdf: (master == MasterType::Passphrase).then_some(Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            lanes: 1,
        }),
    };
    let mut entries: Vec<Entry> = (0..n)
        .map(|i| {
            let kind = KeyKind::ALL[i % 3];
            let len = if kind == KeyKind::Secret {
                1 + rng.below(40)
            } else {
                32
            };
            Entry {
                name: format!("entry-{i:03}-é"),
                kind,
                exportable: i % 2 == 0,
                nonce: [i as u8; 24],
                ciphertext: rng.bytes(len),
                tag: [0xee; 16],
            }
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    store::serialize(&identity, 5, &[3; 32], &entries, |_| [0x44; 32]).expect("serialize")
}

fn fix_store_checksum(d: &mut [u8]) {
    use sha2::Digest;
    if d.len() >= store::HEADER_LEN + store::TRAILER_LEN {
        let body = d.len() - store::TRAILER_LEN;
        let digest = sha2::Sha256::digest(&d[..body]);
        d[body..body + 32].copy_from_slice(&digest);
    }
}

fn key_corpus(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut c = Vec::new();
    for alg in [Algorithm::Ed25519, Algorithm::X25519] {
        let key = rng.bytes(32);
        let public = rng.bytes(32);
        let der = pkcs8_der(alg, &key);
        c.push(pem(pkcs8::PRIVATE_KEY_LABEL, &der));
        c.push(der);
        let v2 = pkcs8_v2(alg, &key, &public, rng.below(2) == 0);
        c.push(pem(pkcs8::PRIVATE_KEY_LABEL, &v2));
        c.push(v2);
        let pk: [u8; 32] = public.clone().try_into().expect("32");
        let spki = pkcs8::spki_der(alg, &pk);
        c.push(pkcs8::spki_pem(alg, &pk));
        c.push(spki.to_vec());
    }
    for n in [1usize, 16, 31, 32, 33, 64] {
        let k = rng.bytes(n);
        c.push([hex(&k), b"\n".to_vec()].concat());
        c.push([b64(&k), b"\n".to_vec()].concat());
        c.push(k);
    }
    c
}

// ---------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------

fn target_encoding(d: &[u8]) -> usize {
    let mut accepted = 0;
    if let Ok(out) = unhex(d) {
        accepted += 1;
        // Accepted hex is the lowercase encoding of its output, up to case and whitespace.
        assert_eq!(hex(&out), strip_ws(d).to_ascii_lowercase(), "hex {d:?}");
        assert!(encoding::looks_hex(d));
    }
    if let Ok(out) = unb64(d) {
        accepted += 1;
        // Accepted base64 is exactly the canonical encoding, up to whitespace.
        assert_eq!(b64(&out), strip_ws(d), "base64 {d:?}");
        assert!(encoding::looks_base64(d));
    }
    // Encoders round-trip any input.
    if !d.is_empty() {
        assert_eq!(unhex(&hex(d)).expect("hex rt"), d);
        assert_eq!(unb64(&b64(d)).expect("b64 rt"), d);
    }
    // The length pass and the decode pass agree.
    if let Ok(n) = encoding::base64_decoded_len(d) {
        let mut wrong = vec![0u8; n + 1];
        assert!(encoding::base64_decode_into(d, &mut wrong).is_err());
    }
    accepted
}

fn target_pkcs8(d: &[u8]) -> usize {
    let mut accepted = 0;
    for alg in [Algorithm::Ed25519, Algorithm::X25519] {
        if let Ok(p) = pkcs8::parse_pkcs8_der(alg, d) {
            accepted += 1;
            assert!(
                pkcs8_reencodes(alg, d, p.key, p.public.as_ref()),
                "PKCS#8 {alg:?} accepted a non-canonical structure {d:?}"
            );
        }
        if let Ok(k) = pkcs8::parse_spki_der(alg, d) {
            accepted += 1;
            assert_eq!(pkcs8::spki_der(alg, &k).as_slice(), d, "SPKI {alg:?}");
        }
        if let Ok(k) = pkcs8::parse_spki_pem(alg, d) {
            accepted += 1;
            let der = pkcs8::spki_der(alg, &k);
            let body = pkcs8::pem_body(d, pkcs8::PUBLIC_KEY_LABEL).expect("body of parsed PEM");
            assert_eq!(unb64(body).expect("b64 of parsed PEM"), der);
        }
        if let Ok(body) = pkcs8::pem_body(d, pkcs8::PRIVATE_KEY_LABEL) {
            if let Ok(n) = pkcs8::pem_der_len(body) {
                let mut der = vec![0u8; n];
                if pkcs8::pem_der_into(body, &mut der).is_ok() {
                    assert_eq!(b64(&der), strip_ws(body));
                    accepted += usize::from(pkcs8::parse_pkcs8_der(alg, &der).is_ok());
                }
            }
        }
    }
    let _ = pkcs8::looks_like_pkcs8(d);
    let _ = pkcs8::looks_like_pem(d);
    accepted
}

/// Load `d` from a key file as every kind and format; a key that loads must be explained
/// by the format it was read as.
fn target_keyfile(dir: &Path, d: &[u8]) -> usize {
    let mut accepted = 0;
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("k");
    std::fs::write(&path, d).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    for kind in KeyKind::ALL {
        for format in [
            None,
            Some(Format::Raw),
            Some(Format::Hex),
            Some(Format::Base64),
            Some(Format::Pem),
            Some(Format::Der),
        ] {
            for length in [None, Some(32)] {
                let Ok(f) = DecodedKeyFile::load(&path, kind, format, length) else {
                    continue;
                };
                let mut key = vec![0u8; f.key_len()];
                if f.decode_into(&mut key).is_err() {
                    continue;
                }
                accepted += 1;
                if let Some(l) = length.or(kind.fixed_len()) {
                    assert_eq!(key.len(), l, "{kind:?} {format:?} {d:?}");
                }
                if let Some(given) = format {
                    assert_eq!(given, f.format());
                }
                let explained = match f.format() {
                    Format::Raw => key == d,
                    Format::Hex => unhex(d).is_ok_and(|k| k == key),
                    Format::Base64 => unb64(d).is_ok_and(|k| k == key),
                    Format::Der => kind
                        .algorithm()
                        .is_some_and(|alg| pkcs8_explains(alg, d, &key)),
                    Format::Pem => kind.algorithm().is_some_and(|alg| {
                        pkcs8::pem_body(d, pkcs8::PRIVATE_KEY_LABEL)
                            .ok()
                            .and_then(|b| unb64(b).ok())
                            .is_some_and(|der| pkcs8_explains(alg, &der, &key))
                    }),
                    // Random bytes are never a whole OpenSSH file with matching keys.
                    Format::OpenSsh => false,
                };
                assert!(
                    explained,
                    "{kind:?} format={format:?} read as {:?}: key not explained by {d:?}",
                    f.format()
                );
                if format.is_none() && kind != KeyKind::Secret && f.format() == Format::Raw {
                    // Detection only reads 32 binary bytes that are not PKCS#8 as raw.
                    assert!(
                        !pkcs8::looks_like_pkcs8(d),
                        "truncated DER read as raw {d:?}"
                    );
                    assert!(
                        d.iter()
                            .any(|&c| !(0x21..=0x7e).contains(&c) && !encoding::is_space(c)),
                        "text read as a raw key {d:?}"
                    );
                }
            }
        }
    }
    accepted
}

fn target_store(d: &[u8]) -> usize {
    let mut accepted = 0;
    let mut variants = vec![d.to_vec()];
    let mut fixed = d.to_vec();
    fix_store_checksum(&mut fixed);
    variants.push(fixed);
    for v in variants {
        if let Ok(f) = store::parse(&v) {
            accepted += 1;
            // A parsed file re-serializes to exactly the same bytes (canonical format).
            let again =
                store::serialize(&f.identity, f.generation, &f.check, &f.entries, |_| f.mac)
                    .expect("serialize parsed");
            assert_eq!(again, v, "store file did not round-trip");
            assert_eq!(f.mac_covered, v.len() - 32);
            for e in &f.entries {
                assert!(store::valid_key_len(e.kind, e.ciphertext.len()));
                assert!(store::check_stored_name(&e.name).is_ok());
            }
        }
    }
    accepted
}

// ---------------------------------------------------------------------------------------
// The key agent: SSH agent requests (agent::wire) and the policy file (agent::json, policy)
// ---------------------------------------------------------------------------------------

fn ssh_string(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

fn agent_corpus(rng: &mut Rng) -> Vec<Vec<u8>> {
    let blob = agent_wire::ed25519_blob(&rng.bytes(32).try_into().expect("32"));
    let sign = [
        &[agent_wire::SIGN_REQUEST][..],
        &ssh_string(&blob),
        &ssh_string(b"data to sign"),
        &4u32.to_be_bytes(),
    ]
    .concat();
    let ext = |name: &[u8], body: &[&[u8]]| {
        let mut v = vec![agent_wire::EXTENSION];
        v.extend(ssh_string(name));
        for b in body {
            v.extend(ssh_string(b));
        }
        v
    };
    vec![
        vec![agent_wire::REQUEST_IDENTITIES],
        sign,
        ext(b"query", &[]),
        ext(b"list@keycell", &[]),
        ext(b"hmac@keycell", &[b"mac", b"sha256", b"payload"]),
        ext(b"verify-hmac@keycell", &[b"mac", b"sha512", b"payload", &[7u8; 32]]),
        ext(b"session-bind@openssh.com", &[b"opaque"]),
        [&[agent_wire::ADD_IDENTITY][..], &ssh_string(b"ssh-ed25519"), &rng.bytes(64)].concat(),
        vec![agent_wire::LOCK, 0, 0, 0, 1, b'x'],
        br#"{"keycell_policy": 1, "keys": {"deploy": {"uids": [0, 1000], "operations": ["sign"], "lifetime_seconds": 60, "max_uses": 5, "rate": {"count": 2, "per_seconds": 10}}}, "default": {"operations": ["hmac", "verify-hmac"]}}"#.to_vec(),
        br#"{"keycell_policy": 1, "keys": {"\u00e9\ud83d\ude00": {}}, "default": null}"#.to_vec(),
        br#"[1, -2, true, false, null, "a\"b\\c\n", {"x": []}]"#.to_vec(),
    ]
}

fn target_agent(d: &[u8]) -> usize {
    let mut accepted = 0;
    if d.len() >= 4 {
        let header: [u8; 4] = d[..4].try_into().expect("4");
        if let Ok(n) = agent_wire::frame_len(header) {
            assert!((1..=agent_wire::MAX_MESSAGE_LEN).contains(&n));
        }
    }
    if let Ok(req) = agent_wire::parse_request(d) {
        accepted += 1;
        match req {
            // Fixed-layout requests are canonical: re-encoding gives the input back.
            agent_wire::Request::Sign {
                key_blob,
                data,
                flags,
            } => {
                let again = [
                    &[agent_wire::SIGN_REQUEST][..],
                    &ssh_string(key_blob),
                    &ssh_string(data),
                    &flags.to_be_bytes(),
                ]
                .concat();
                assert_eq!(again, d, "sign request did not round-trip");
                if let Some(k) = agent_wire::parse_ed25519_blob(key_blob) {
                    assert_eq!(agent_wire::ed25519_blob(&k), key_blob);
                }
            }
            agent_wire::Request::RequestIdentities => {
                assert_eq!(d, [agent_wire::REQUEST_IDENTITIES])
            }
            agent_wire::Request::Extension(agent_wire::Extension::Hmac { name, data, .. }) => {
                assert!(d.len() > name.len() + data.len())
            }
            _ => {}
        }
    }
    if let Ok(v) = agent_json::parse(d) {
        accepted += 1;
        let _ = v.type_name();
    }
    if agent_policy::Policy::parse(d).is_ok() {
        accepted += 1;
        assert!(agent_json::parse(d).is_ok(), "a policy that is not JSON");
    }
    accepted
}

// ---------------------------------------------------------------------------------------
// PKCS#11 URIs (RFC 7512)
// ---------------------------------------------------------------------------------------

/// Percent-encode everything but RFC 3986 unreserved characters.
fn pct(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A URI that names exactly what `u` holds.
fn uri_of(u: &pkcs11_uri::Pkcs11Uri) -> String {
    let mut path = Vec::new();
    let mut text = |name: &str, v: &Option<String>| {
        if let Some(v) = v {
            path.push(format!("{name}={}", pct(v.as_bytes())));
        }
    };
    text("token", &u.token.label);
    text("manufacturer", &u.token.manufacturer);
    text("serial", &u.token.serial);
    text("model", &u.token.model);
    text("object", &u.object.label);
    if let Some(s) = u.token.slot {
        path.push(format!("slot-id={s}"));
    }
    if let Some(id) = &u.object.id {
        path.push(format!("id={}", pct(id)));
    }
    if let Some(t) = u.object_type {
        let name = match t {
            pkcs11_uri::ObjectType::Private => "private",
            pkcs11_uri::ObjectType::Public => "public",
            pkcs11_uri::ObjectType::SecretKey => "secret-key",
            pkcs11_uri::ObjectType::Cert => "cert",
            pkcs11_uri::ObjectType::Data => "data",
        };
        path.push(format!("type={name}"));
    }
    let mut query = Vec::new();
    if let Some(m) = &u.module_path {
        query.push(format!("module-path={}", pct(m.as_bytes())));
    }
    if let Some(m) = &u.module_name {
        query.push(format!("module-name={}", pct(m.as_bytes())));
    }
    if let Some(p) = &u.pin_source {
        let scheme = if p.starts_with('/') {
            "file://"
        } else {
            "file:"
        };
        query.push(format!(
            "pin-source={}",
            pct(format!("{scheme}{p}").as_bytes())
        ));
    }
    let mut out = format!("pkcs11:{}", path.join(";"));
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query.join("&"));
    }
    out
}

fn uri_corpus() -> Vec<Vec<u8>> {
    [
        "pkcs11:token=kc-test;object=signer;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
        "pkcs11:slot-id=5;object=k;type=secret-key?module-name=softhsm2",
        "pkcs11:x-vendor=%00;library-version=1.0;slot-description=a",
        "pkcs11:object=a?pin-value=1234",
        "pkcs11:",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// A URI either parses or is refused, never panics; what parses re-encodes to a URI that
/// parses to the same value; and no refusal quotes a `pin-value` (checked with a marker
/// put in as the value, in the input as mutated around it).
fn target_pkcs11_uri(data: &[u8]) -> usize {
    let text = String::from_utf8_lossy(data);
    let accepted = match pkcs11_uri::parse(&text) {
        Ok(u) => {
            let again = pkcs11_uri::parse(&uri_of(&u)).expect("a re-encoded URI parses");
            assert_eq!(again, u, "re-encoding changed the URI's meaning");
            1
        }
        Err(_) => 0,
    };
    const MARKER: &str = "QZXJ7319";
    if text.contains("pin-value=") {
        let marked = text.replacen("pin-value=", &format!("pin-value={MARKER}"), 1);
        if let Err(e) = pkcs11_uri::parse(&marked) {
            assert!(
                !e.0.contains(MARKER),
                "an error quotes the pin-value: {}",
                e.0
            );
        }
    }
    accepted
}

// ---------------------------------------------------------------------------------------
// The audit log
// ---------------------------------------------------------------------------------------

const AUDIT_K0: [u8; 32] = [0x42; 32];

/// A real log (lines, checkpoint note, state file) as the audit corpus.
fn audit_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let path = dir.join("corpus.log");
    let sk = PrivateKey::from_seed(&[7u8; 32]).expect("key");
    let public = *sk.public().as_bytes();
    let mut w =
        Writer::create(&path, &AUDIT_K0, "fuzz.example/log", 3, 3600, false).expect("create");
    for i in 0..8 {
        let body = format!("{{\"i\":{i},\"s\":\"a\\nb \u{e9}\",\"l\":[1,2.5,null,true]}}");
        w.append(body.as_bytes()).expect("append");
        if i == 4 {
            w.checkpoint(&public, |b| Ok(sk.sign(b)?))
                .expect("checkpoint");
        }
    }
    w.save_state().expect("state");
    let log = std::fs::read(&path).expect("log");
    let mut corpus: Vec<Vec<u8>> = log.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
    corpus.push(log);
    corpus.push(std::fs::read(dir.join("corpus.log.checkpoint")).expect("checkpoint"));
    corpus.push(std::fs::read(dir.join("corpus.log.state")).expect("state"));
    corpus
}

fn target_audit_parsers(d: &[u8]) -> usize {
    let mut accepted = 0;
    let _ = audit_json::is_json_value(d);
    if let Ok(r) = audit_record::parse(d) {
        accepted += 1;
        // A parsed record re-encodes to exactly the same bytes (one canonical layout).
        let mut again = Vec::new();
        let ts: [u8; audit_record::TS_LEN] = r.ts.try_into().expect("ts length");
        audit_record::begin_line(&mut again, r.seq, &ts, r.epoch, &r.prev, r.internal, r.body);
        assert_eq!(again.len(), r.signed_len);
        audit_record::finish_line(&mut again, &r.mac);
        assert_eq!(again, d, "record did not round-trip");
        assert!(audit_json::is_json_value(r.body));
    }
    if let Ok((cp, body, _)) = audit_cp::parse(d) {
        accepted += 1;
        assert!(audit_cp::valid_origin(&cp.origin));
        let canonical = audit_cp::body(&cp.origin, cp.size, &cp.root);
        assert!(body.starts_with(canonical.as_bytes()), "checkpoint body");
        let sk = PrivateKey::from_seed(&[7u8; 32]).expect("key");
        if audit_cp::verify(d, sk.public()).is_ok() {
            // Only the corpus note (or one differing in unsigned lines) verifies.
            assert!(body.ends_with(b"\n"));
        }
    }
    if let Ok((snap, key)) = audit_state::decode(d) {
        accepted += 1;
        let again = audit_state::encode(&snap, &key).expect("encode");
        assert_eq!(
            again.bytes().expect("bytes"),
            d,
            "state file did not round-trip"
        );
    }
    accepted
}

fn target_audit_verify(dir: &Path, d: &[u8]) -> usize {
    // A first line claiming a huge epoch makes the verifier step K0 that far (bounded by
    // `MAX_EPOCH_DERIVE`, seconds in a debug build): keep the iterations quick.
    let first = d.split(|&c| c == b'\n').next().unwrap_or_default();
    if audit_record::parse(first).is_ok_and(|r| r.epoch > 64) {
        return 0;
    }
    let path = dir.join("mutated.log");
    std::fs::write(&path, d).expect("write");
    let sk = PrivateKey::from_seed(&[7u8; 32]).expect("key");
    let cp = std::fs::read(dir.join("corpus.log.checkpoint")).expect("checkpoint");
    let mut accepted = 0;
    for note in [None, Some(&cp[..])] {
        let checkpoint = note.map(|n| (n, sk.public()));
        let r = audit_verify::verify_file(&path, &AUDIT_K0, checkpoint, false).expect("verify");
        if r.failure.is_none() {
            accepted += 1;
            // A log that verifies has no partial line and starts with its genesis record.
            assert!(d.ends_with(b"\n"));
            assert!(audit_record::parse(d.split(|&c| c == b'\n').next().expect("line")).is_ok());
        } else if let Some(f) = &r.failure {
            assert!(
                f.line <= r.lines + 1,
                "failure line beyond the verified prefix"
            );
        }
    }
    accepted
}

// ---------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------

fn seed() -> u64 {
    if let Some(s) = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()) {
        return s;
    }
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("random");
    u64::from_le_bytes(b) | 1
}

fn budget() -> Duration {
    Duration::from_secs(
        std::env::var("FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    )
}

fn run(
    name: &str,
    corpus: &[Vec<u8>],
    rng: &mut Rng,
    mut target: impl FnMut(&[u8]) -> usize,
) -> u64 {
    let start = Instant::now();
    let mut iterations = 0u64;
    let mut accepted = 0usize;
    // The corpus itself first, then mutations until the time budget is spent.
    for item in corpus {
        iterations += 1;
        match catch_unwind(AssertUnwindSafe(|| target(item))) {
            Ok(n) => accepted += n,
            Err(_) => panic!("{name}: finding on corpus input {item:?}"),
        }
    }
    while start.elapsed() < budget() {
        for _ in 0..256 {
            let d = input(rng, corpus);
            iterations += 1;
            match catch_unwind(AssertUnwindSafe(|| target(&d))) {
                Ok(n) => accepted += n,
                Err(_) => panic!("{name}: finding after {iterations} iterations on input {d:?}"),
            }
        }
    }
    // Accepted inputs show that mutations reach past the first checks.
    println!(
        "fuzz {name}: {iterations} iterations in {:.0?}, {accepted} successful parses",
        start.elapsed()
    );
    iterations
}

#[test]
#[ignore = "long fuzzing campaign: cargo test --no-default-features --release --test fuzz_parsers -- --ignored"]
fn fuzz_parsers() {
    let seed = seed();
    println!(
        "fuzz seed {seed} (FUZZ_SEED={seed} to replay), {:?} per target",
        budget()
    );
    let mut rng = Rng(seed);
    let keys = key_corpus(&mut rng);
    let mut stores = vec![
        store_file(&mut rng, MasterType::Passphrase, 0),
        store_file(&mut rng, MasterType::Passphrase, 3),
        store_file(&mut rng, MasterType::Key, 5),
        store_file(&mut rng, MasterType::Token, 2),
    ];
    stores.push(stores[1][..stores[1].len() / 2].to_vec());

    let dir = std::env::temp_dir().join(format!("keycell-fuzz-{seed:x}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut total = 0;
    total += run("encoding", &keys, &mut rng, target_encoding);
    total += run("pkcs8", &keys, &mut rng, target_pkcs8);
    total += run("keyfile", &keys, &mut rng, |d| target_keyfile(&dir, d));
    total += run("store", &stores, &mut rng, target_store);
    let agent = agent_corpus(&mut rng);
    total += run("agent", &agent, &mut rng, target_agent);
    total += run("pkcs11-uri", &uri_corpus(), &mut rng, target_pkcs11_uri);
    let audit = audit_corpus(&dir);
    total += run("audit parsers", &audit, &mut rng, target_audit_parsers);
    let logs: Vec<Vec<u8>> = audit
        .iter()
        .filter(|c| c.starts_with(b"{\"seq\":0,"))
        .cloned()
        .collect();
    total += run("audit verify", &logs, &mut rng, |d| {
        target_audit_verify(&dir, d)
    });
    std::fs::remove_dir_all(&dir).expect("cleanup");
    println!("fuzz total: {total} iterations, no findings");
}
