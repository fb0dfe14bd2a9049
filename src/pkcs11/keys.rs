//! Key objects in a token: finding them, generating them (sensitive, never extractable),
//! and the operations keycell runs inside the token: Ed25519 signatures (`CKM_EDDSA`),
//! ECDSA P-256/P-384 signatures (`CKM_ECDSA` over a SHA-256/384 digest computed here),
//! RSA signatures (`CKM_RSA_PKCS_PSS` and `CKM_RSA_PKCS` over a digest computed here),
//! HMAC (`CKM_SHA256_HMAC` etc.), and the derivation of a key store master.

use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use zeroize::Zeroizing;

use super::error::{Pkcs11Error, Pkcs11ErrorKind, Result};
use super::token::Token;
use crate::crypto::ec::{self, Curve, PublicPoint, SignatureEncoding};
use crate::crypto::hmac::HashAlgorithm;
use crate::crypto::rsa::{self, RsaPublicKey};

/// The HMAC-SHA256 challenge a token key store master answers (docs/keystore-format.md):
/// the store's root key is the token's HMAC of it, so whoever may MAC this exact message
/// with the token key holds the store's root key.
pub const STORE_MASTER_CHALLENGE: &[u8] = b"keycell-store v1 pkcs11 master\0";

/// DER of the Ed25519 curve OID 1.3.101.112 (RFC 8410), `CKA_EC_PARAMS` for new keys.
pub const ED25519_OID_DER: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

/// DER of the P-256 curve OID 1.2.840.10045.3.1.7 (prime256v1), `CKA_EC_PARAMS`.
pub const P256_OID_DER: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the P-384 curve OID 1.3.132.0.34 (secp384r1), `CKA_EC_PARAMS`.
pub const P384_OID_DER: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// `CKA_EC_PARAMS` of `curve` (a named curve OID).
pub fn ec_params(curve: Curve) -> &'static [u8] {
    match curve {
        Curve::P256 => &P256_OID_DER,
        Curve::P384 => &P384_OID_DER,
    }
}

/// The curve named by `CKA_EC_PARAMS` (named curves only; explicit parameters are not
/// taken).
pub fn ec_curve(params: &[u8]) -> Option<Curve> {
    [Curve::P256, Curve::P384]
        .into_iter()
        .find(|c| ec_params(*c) == params)
}

/// The kinds of key object keycell uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// An Ed25519 private key (`CKO_PRIVATE_KEY`, `CKK_EC_EDWARDS`).
    Ed25519Private,
    /// An Ed25519 public key.
    Ed25519Public,
    /// An ECDSA private key (`CKO_PRIVATE_KEY`, `CKK_EC`), P-256 or P-384.
    EcPrivate,
    /// An ECDSA public key.
    EcPublic,
    /// An RSA private key (`CKO_PRIVATE_KEY`, `CKK_RSA`).
    RsaPrivate,
    /// An RSA public key.
    RsaPublic,
    /// A generic secret (`CKO_SECRET_KEY`, `CKK_GENERIC_SECRET`): HMAC keys and store masters.
    Secret,
}

impl ObjectKind {
    fn template(self) -> Vec<Attribute> {
        match self {
            ObjectKind::Ed25519Private => vec![
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::EC_EDWARDS),
            ],
            ObjectKind::Ed25519Public => vec![
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::EC_EDWARDS),
            ],
            ObjectKind::EcPrivate => vec![
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::EC),
            ],
            ObjectKind::EcPublic => vec![
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::EC),
            ],
            ObjectKind::RsaPrivate => vec![
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::RSA),
            ],
            ObjectKind::RsaPublic => vec![
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::RSA),
            ],
            ObjectKind::Secret => vec![
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
            ],
        }
    }

    /// Whether objects of this kind hold a secret (searched for with `CKA_PRIVATE=true`
    /// and checked by [`check_trust`] before use).
    fn is_secret(self) -> bool {
        !matches!(
            self,
            ObjectKind::Ed25519Public | ObjectKind::EcPublic | ObjectKind::RsaPublic
        )
    }

    fn name(self) -> &'static str {
        match self {
            ObjectKind::Ed25519Private => "Ed25519 private key",
            ObjectKind::Ed25519Public => "Ed25519 public key",
            ObjectKind::EcPrivate => "EC private key",
            ObjectKind::EcPublic => "EC public key",
            ObjectKind::RsaPrivate => "RSA private key",
            ObjectKind::RsaPublic => "RSA public key",
            ObjectKind::Secret => "secret key",
        }
    }

    /// [`Self::name`] with its article: "an Ed25519 private key", "a secret key".
    fn a_name(self) -> String {
        let article = if self == ObjectKind::Secret {
            "a"
        } else {
            "an"
        };
        format!("{article} {}", self.name())
    }
}

/// How a key object is named: by `CKA_LABEL`, `CKA_ID`, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSpec {
    /// `CKA_LABEL`.
    pub label: Option<String>,
    /// `CKA_ID`.
    pub id: Option<Vec<u8>>,
}

impl ObjectSpec {
    /// By label.
    pub fn label(label: &str) -> Self {
        ObjectSpec {
            label: Some(label.to_owned()),
            id: None,
        }
    }

    fn describe(&self) -> String {
        match (&self.label, &self.id) {
            (Some(l), Some(i)) => format!("label {l:?} and id {}", hex(i)),
            (Some(l), None) => format!("label {l:?}"),
            (None, Some(i)) => format!("id {}", hex(i)),
            (None, None) => "any name".to_owned(),
        }
    }

    fn attributes(&self) -> Vec<Attribute> {
        let mut a = Vec::new();
        if let Some(l) = &self.label {
            a.push(Attribute::Label(l.as_bytes().to_vec()));
        }
        if let Some(i) = &self.id {
            a.push(Attribute::Id(i.clone()));
        }
        a
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn ck(what: &'static str) -> impl Fn(cryptoki::error::Error) -> Pkcs11Error {
    move |e| Pkcs11Error::from_cryptoki(what, e)
}

/// The handles of every object of `kind` named by `spec`. Secret kinds are searched with
/// `CKA_PRIVATE=true`: a session without the PIN can create public objects with any
/// label, and a key keycell uses must never be one of those.
fn find_all(s: &Session, kind: ObjectKind, spec: &ObjectSpec) -> Result<Vec<ObjectHandle>> {
    let mut template = kind.template();
    if kind.is_secret() {
        template.push(Attribute::Private(true));
    }
    template.extend(spec.attributes());
    s.find_objects(&template).map_err(ck("searching the token"))
}

/// What a secret key object must be before keycell uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// A signing or HMAC key: private (made by someone who had the PIN), sensitive and
    /// not extractable (its value cannot be read out).
    Key,
    /// A key store master: also always sensitive and never extractable, and generated on
    /// the token (`CKA_LOCAL`, where the token reports it): a value nobody ever saw. A key
    /// imported with `C_CreateObject`, whose value its maker knows, is none of these.
    StoreMaster,
}

/// The reasons the object `h` falls short of `trust`, empty when it does not.
fn trust_failures(token: &Token, h: ObjectHandle, trust: Trust) -> Result<Vec<&'static str>> {
    use AttributeType as T;
    let wanted = [
        T::Private,
        T::Sensitive,
        T::Extractable,
        T::AlwaysSensitive,
        T::NeverExtractable,
        T::Local,
    ];
    let attrs = token.with_session(|s| {
        s.get_attributes(h, &wanted)
            .map_err(ck("reading key attributes"))
    })?;
    let (mut private, mut sensitive, mut extractable) = (false, false, true);
    let (mut always_sensitive, mut never_extractable, mut local) = (false, false, None);
    for a in attrs {
        match a {
            Attribute::Private(b) => private = b,
            Attribute::Sensitive(b) => sensitive = b,
            Attribute::Extractable(b) => extractable = b,
            Attribute::AlwaysSensitive(b) => always_sensitive = b,
            Attribute::NeverExtractable(b) => never_extractable = b,
            Attribute::Local(b) => local = Some(b),
            _ => {}
        }
    }
    let mut failures = Vec::new();
    if !private {
        failures.push("not private (CKA_PRIVATE false: made without the PIN?)");
    }
    if !sensitive {
        failures.push("not sensitive");
    }
    if extractable {
        failures.push("extractable");
    }
    if trust == Trust::StoreMaster {
        if !always_sensitive {
            failures.push("not always sensitive");
        }
        if !never_extractable {
            failures.push("not never-extractable");
        }
        if local == Some(false) {
            failures.push("not generated on the token (CKA_LOCAL false: imported)");
        }
    }
    Ok(failures)
}

/// Refuse the object `h` of `kind` named by `spec` unless it meets `trust`.
pub fn check_trust(
    token: &Token,
    h: ObjectHandle,
    kind: ObjectKind,
    spec: &ObjectSpec,
    trust: Trust,
) -> Result<()> {
    let failures = trust_failures(token, h, trust)?;
    if failures.is_empty() {
        return Ok(());
    }
    Err(Pkcs11Error::new(
        Pkcs11ErrorKind::Untrusted,
        format!(
            "the {} with {} on token {:?} is not safe to use: {}; its value may be known \
             to whoever made it. Generate keys in the token (generate_secret, \
             generate_ed25519, generate_ec, generate_rsa, wrapping_key(create=True))",
            kind.name(),
            spec.describe(),
            token.info().label,
            failures.join(", ")
        ),
    ))
}

/// The one object of `kind` named by `spec`; a secret kind must meet `trust`
/// ([`check_trust`]).
pub fn find(
    token: &Token,
    kind: ObjectKind,
    spec: &ObjectSpec,
    trust: Trust,
) -> Result<ObjectHandle> {
    let h = find_unchecked(token, kind, spec)?;
    if kind.is_secret() {
        check_trust(token, h, kind, spec, trust)?;
    }
    Ok(h)
}

/// The one object of `kind` named by `spec`, not checked.
fn find_unchecked(token: &Token, kind: ObjectKind, spec: &ObjectSpec) -> Result<ObjectHandle> {
    if spec.label.is_none() && spec.id.is_none() {
        return Err(Pkcs11Error::invalid("name the key by label or id"));
    }
    let found = token.with_session(|s| find_all(s, kind, spec))?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => {
            let hint = if token.logged_in() {
                ""
            } else {
                " (the token was opened without a PIN: private objects are not visible)"
            };
            Err(Pkcs11Error::new(
                Pkcs11ErrorKind::ObjectNotFound,
                format!(
                    "no {} with {} on token {:?}{hint}",
                    kind.name(),
                    spec.describe(),
                    token.info().label
                ),
            ))
        }
        many => Err(Pkcs11Error::new(
            Pkcs11ErrorKind::ObjectAmbiguous,
            format!(
                "{} objects ({}) with {} on token {:?}: name the key by id too",
                many.len(),
                kind.name(),
                spec.describe(),
                token.info().label
            ),
        )),
    }
}

/// Every object of `kind` on the token (the private ones only when logged in), with its
/// label and id. Secret kinds are only those that meet [`Trust::Key`]: an extractable or
/// non-sensitive key is left out, as an object made without the PIN is.
pub fn find_every(token: &Token, kind: ObjectKind) -> Result<Vec<(ObjectHandle, ObjectSpec)>> {
    let found = token.with_session(|s| find_all(s, kind, &ObjectSpec::default()))?;
    let mut out = Vec::new();
    for h in found {
        if kind.is_secret() && !trust_failures(token, h, Trust::Key)?.is_empty() {
            continue;
        }
        out.push((h, names(token, h)?));
    }
    Ok(out)
}

/// The label and id of an object.
pub fn names(token: &Token, h: ObjectHandle) -> Result<ObjectSpec> {
    token.with_session(|s| {
        let attrs = s
            .get_attributes(h, &[AttributeType::Label, AttributeType::Id])
            .map_err(ck("reading key attributes"))?;
        let mut spec = ObjectSpec::default();
        for a in attrs {
            match a {
                Attribute::Label(l) => spec.label = Some(String::from_utf8_lossy(&l).into_owned()),
                Attribute::Id(i) => spec.id = Some(i),
                _ => {}
            }
        }
        Ok(spec)
    })
}

/// The 32-byte key from a `CKA_EC_POINT`: the DER OCTET STRING PKCS#11 prescribes
/// (`04 20 || key`), or the raw 32 bytes some modules store.
pub fn ec_point_to_ed25519(point: &[u8]) -> Option<[u8; 32]> {
    match point {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest.try_into().ok(),
        raw if raw.len() == 32 => raw.try_into().ok(),
        _ => None,
    }
}

/// The public key of the Ed25519 private key `h`: read from the public key objects with
/// its `CKA_ID` (else its label), and proven to belong to it: the token signs a fresh
/// random challenge with `h`, and only a candidate under which that signature verifies is
/// returned. Public objects can be deleted and created by anyone who can open a session,
/// without the PIN: an object planted with the key's id must not make keycell (or the
/// agent) report an attacker's public key for the token's private key, and a second object
/// with the same id must not make the key unusable.
pub fn ed25519_public(token: &Token, h: ObjectHandle) -> Result<[u8; 32]> {
    let (by, candidates) = public_candidates(
        token,
        h,
        ObjectKind::Ed25519Public,
        ec_attr(ec_point_to_ed25519),
    )?;
    let mut challenge = [0u8; 32];
    crate::memory::fill_random(&mut challenge)?;
    let sig = sign_ed25519(token, h, &challenge)?;
    candidates
        .into_iter()
        .find(|point| {
            crate::crypto::ed25519::public_key_from_bytes(point)
                .is_ok_and(|vk| crate::crypto::ed25519::verify(&vk, &challenge, &sig).is_ok())
        })
        .ok_or_else(|| no_public_belongs(token, &by, "Ed25519"))
}

/// A reader of public key objects by their `CKA_EC_POINT`.
fn ec_attr<T>(
    parse: impl Fn(&[u8]) -> Option<T>,
) -> (
    &'static [AttributeType],
    impl Fn(Vec<Attribute>) -> Option<T>,
) {
    (&[AttributeType::EcPoint], move |attrs: Vec<Attribute>| {
        attrs.into_iter().find_map(|a| match a {
            Attribute::EcPoint(p) => parse(&p),
            _ => None,
        })
    })
}

/// The public key objects of `kind` named like the private key `h` (its `CKA_ID`, else
/// its label), each read by `reader` (the attributes it wants, and how to make a key of
/// them; objects it cannot read left out): the candidates a signature by `h` must choose
/// from, and how they were searched for.
fn public_candidates<T>(
    token: &Token,
    h: ObjectHandle,
    kind: ObjectKind,
    reader: (&[AttributeType], impl Fn(Vec<Attribute>) -> Option<T>),
) -> Result<(ObjectSpec, Vec<T>)> {
    let (wanted, parse) = reader;
    let spec = names(token, h)?;
    let by = match (&spec.id, &spec.label) {
        (Some(id), _) if !id.is_empty() => ObjectSpec {
            label: None,
            id: Some(id.clone()),
        },
        (_, Some(l)) => ObjectSpec::label(l),
        _ => {
            return Err(Pkcs11Error::new(
                Pkcs11ErrorKind::ObjectNotFound,
                "the private key has neither id nor label to find its public key by",
            ))
        }
    };
    let objects = token.with_session(|s| find_all(s, kind, &by))?;
    if objects.is_empty() {
        return Err(Pkcs11Error::new(
            Pkcs11ErrorKind::ObjectNotFound,
            format!(
                "the private key with {} has no {} object on the token (keycell reads the \
                 public key from it)",
                spec.describe(),
                kind.name()
            ),
        ));
    }
    let mut candidates = Vec::new();
    for object in objects {
        let attrs = token.with_session(|s| {
            s.get_attributes(object, wanted)
                .map_err(ck("reading the public key"))
        })?;
        candidates.extend(parse(attrs));
    }
    Ok((by, candidates))
}

/// The refusal when no public key object proves to belong to the private key.
fn no_public_belongs(token: &Token, by: &ObjectSpec, what: &str) -> Pkcs11Error {
    Pkcs11Error::new(
        Pkcs11ErrorKind::Untrusted,
        format!(
            "no public key object with {} on token {:?} belongs to the {what} private key \
             (a signature made by the key does not verify under any of them): a public \
             object may have been replaced",
            by.describe(),
            token.info().label
        ),
    )
}

/// The uncompressed SEC1 point of a `CKA_EC_POINT` on `curve`: the DER OCTET STRING
/// PKCS#11 prescribes (`04 len || point`), or the bare point some modules store; the
/// point is checked to be on the curve.
pub fn ec_point(curve: Curve, attr: &[u8]) -> Option<PublicPoint> {
    let wrapped = match attr {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && *len < 0x80 => Some(rest),
        [0x04, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() => Some(rest),
        _ => None,
    };
    // A bare uncompressed point also starts with 0x04: when the unwrapped bytes are no
    // point, the attribute itself is tried.
    wrapped
        .and_then(|p| PublicPoint::from_sec1(curve, p).ok())
        .or_else(|| PublicPoint::from_sec1(curve, attr).ok())
}

/// The curve of the EC private key `h` (its `CKA_EC_PARAMS`) when it is P-256 or P-384,
/// `None` for another curve or explicit parameters.
pub fn ec_key_curve_served(token: &Token, h: ObjectHandle) -> Result<Option<Curve>> {
    let attrs = token.with_session(|s| {
        s.get_attributes(h, &[AttributeType::EcParams])
            .map_err(ck("reading the key's curve"))
    })?;
    Ok(attrs.into_iter().find_map(|a| match a {
        Attribute::EcParams(p) => ec_curve(&p),
        _ => None,
    }))
}

/// The curve of the EC private key `h` (its `CKA_EC_PARAMS`): P-256 or P-384, else an
/// `Unsupported` error.
pub fn ec_key_curve(token: &Token, h: ObjectHandle) -> Result<Curve> {
    ec_key_curve_served(token, h)?.ok_or_else(|| {
        Pkcs11Error::new(
            Pkcs11ErrorKind::Other,
            "the EC key is not on P-256 or P-384 (CKA_EC_PARAMS names another curve or \
                 explicit parameters)",
        )
    })
}

/// The public key of the EC private key `h` on `curve`, proven to belong to it as
/// [`ed25519_public`] proves it: an ECDSA signature by `h` over a fresh random challenge
/// must verify under the one returned.
pub fn ec_public(token: &Token, h: ObjectHandle, curve: Curve) -> Result<PublicPoint> {
    let (by, candidates) = public_candidates(
        token,
        h,
        ObjectKind::EcPublic,
        ec_attr(|p| ec_point(curve, p)),
    )?;
    let mut challenge = [0u8; 32];
    crate::memory::fill_random(&mut challenge)?;
    let sig = sign_ec(token, h, curve, &challenge)?;
    candidates
        .into_iter()
        .find(|point| {
            point
                .verify(&challenge, &sig, SignatureEncoding::Raw)
                .is_ok()
        })
        .ok_or_else(|| no_public_belongs(token, &by, "EC"))
}

/// ECDSA-sign `data` with the EC key `h` on `curve` in the token: the SHA-256 (P-256) or
/// SHA-384 (P-384) digest is computed here and signed with `CKM_ECDSA`; returns `r || s`,
/// each the curve's width (as `ECPrivateKey.sign(..., encoding="raw")`).
pub fn sign_ec(token: &Token, h: ObjectHandle, curve: Curve, data: &[u8]) -> Result<Vec<u8>> {
    use sha2::Digest;
    let digest = match curve {
        Curve::P256 => sha2::Sha256::digest(data).to_vec(),
        Curve::P384 => sha2::Sha384::digest(data).to_vec(),
    };
    let sig = token.with_session(|s| {
        s.sign(&Mechanism::Ecdsa, h, &digest)
            .map_err(ck("signing (CKM_ECDSA)"))
    })?;
    if sig.len() != 2 * curve.scalar_len() {
        return Err(Pkcs11Error::new(
            Pkcs11ErrorKind::Other,
            format!(
                "the token returned a {}-byte ECDSA signature, not {} bytes",
                sig.len(),
                2 * curve.scalar_len()
            ),
        ));
    }
    Ok(sig)
}

/// [`sign_ec`] in `encoding`: `r || s`, or DER `Ecdsa-Sig-Value`.
pub fn sign_ec_encoded(
    token: &Token,
    h: ObjectHandle,
    curve: Curve,
    data: &[u8],
    encoding: SignatureEncoding,
) -> Result<Vec<u8>> {
    let raw = sign_ec(token, h, curve, data)?;
    Ok(match encoding {
        SignatureEncoding::Raw => raw,
        SignatureEncoding::Der => ec::raw_to_der(&raw).as_bytes().to_vec(),
    })
}

/// Sign `data` with the Ed25519 key `h` in the token (`CKM_EDDSA`, pure Ed25519).
pub fn sign_ed25519(token: &Token, h: ObjectHandle, data: &[u8]) -> Result<[u8; 64]> {
    let mech = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
    let sig = token.with_session(|s| s.sign(&mech, h, data).map_err(ck("signing (CKM_EDDSA)")))?;
    sig.as_slice().try_into().map_err(|_| {
        Pkcs11Error::new(
            Pkcs11ErrorKind::Other,
            "the token returned a signature that is not 64 bytes",
        )
    })
}

fn hmac_mechanism(alg: HashAlgorithm) -> Mechanism<'static> {
    match alg {
        HashAlgorithm::Sha256 => Mechanism::Sha256Hmac,
        HashAlgorithm::Sha384 => Mechanism::Sha384Hmac,
        HashAlgorithm::Sha512 => Mechanism::Sha512Hmac,
    }
}

/// HMAC of `data` under the secret key `h`, computed in the token. The tag is not secret.
pub fn hmac(token: &Token, h: ObjectHandle, alg: HashAlgorithm, data: &[u8]) -> Result<Vec<u8>> {
    let mech = hmac_mechanism(alg);
    token.with_session(|s| {
        s.sign(&mech, h, data)
            .map_err(ck("computing an HMAC in the token"))
    })
}

/// HMAC-SHA256 of `challenge` under the secret key `h`, written into `dst` (32 bytes of
/// a guarded region): the store master. The module returns it in a vector of the
/// `cryptoki` crate, which is zeroized as soon as it is copied.
pub fn derive_into(token: &Token, h: ObjectHandle, challenge: &[u8], dst: &mut [u8]) -> Result<()> {
    let out = Zeroizing::new(hmac(token, h, HashAlgorithm::Sha256, challenge)?);
    if out.len() != dst.len() {
        return Err(Pkcs11Error::new(
            Pkcs11ErrorKind::Other,
            "the token returned an HMAC-SHA256 of the wrong length",
        ));
    }
    dst.copy_from_slice(&out);
    Ok(())
}

fn random_id() -> Result<Vec<u8>> {
    let mut id = vec![0u8; 16];
    crate::memory::fill_random(&mut id)?;
    Ok(id)
}

/// Refuse to create a second key under a label (keys are looked up by label).
fn check_new_label(token: &Token, kind: ObjectKind, label: &str) -> Result<()> {
    check_label(label)?;
    let existing = token.with_session(|s| find_all(s, kind, &ObjectSpec::label(label)))?;
    if existing.is_empty() {
        Ok(())
    } else {
        Err(Pkcs11Error::invalid(format!(
            "the token already has {} labelled {label:?}",
            kind.a_name()
        )))
    }
}

/// A label must be 1 to 255 bytes of UTF-8 without NUL.
pub fn check_label(label: &str) -> Result<()> {
    if label.is_empty() || label.len() > 255 || label.contains('\0') {
        return Err(Pkcs11Error::invalid(
            "a key label must be 1 to 255 bytes of UTF-8 without NUL",
        ));
    }
    Ok(())
}

/// The templates of a signing key pair generated in the token: the public key a token
/// object that only verifies (with the algorithm's own attributes, `public_key`); the
/// private key a token object, private, sensitive and never extractable, usable only to
/// sign (decrypt, unwrap and derive switched off explicitly); both under `label` and `id`.
fn signing_pair_templates(
    label: &str,
    id: Vec<u8>,
    public_key: Vec<Attribute>,
) -> (Vec<Attribute>, Vec<Attribute>) {
    let mut public_t = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
    ];
    public_t.extend(public_key);
    public_t.push(Attribute::Label(label.as_bytes().to_vec()));
    public_t.push(Attribute::Id(id.clone()));
    let private_t = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Derive(false),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id),
    ];
    (public_t, private_t)
}

/// Generate an Ed25519 key pair in the token (`CKM_EC_EDWARDS_KEY_PAIR_GEN`): the private
/// key is a token object, private, sensitive and never extractable, usable only to sign
/// (decrypt, unwrap and derive are switched off explicitly).
/// Returns the private key's handle and the public key.
pub fn generate_ed25519(token: &Token, label: &str) -> Result<(ObjectHandle, [u8; 32])> {
    check_new_label(token, ObjectKind::Ed25519Private, label)?;
    let (public_t, private_t) = signing_pair_templates(
        label,
        random_id()?,
        vec![
            Attribute::Derive(false),
            Attribute::EcParams(ED25519_OID_DER.to_vec()),
        ],
    );
    let (public, private) = token.with_session(|s| {
        s.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public_t, &private_t)
            .map_err(ck(
                "generating an Ed25519 key pair (CKM_EC_EDWARDS_KEY_PAIR_GEN)",
            ))
    })?;
    let point = token.with_session(|s| {
        s.get_attributes(public, &[AttributeType::EcPoint])
            .map_err(ck("reading the public key"))
    })?;
    let pk = point
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => ec_point_to_ed25519(&p),
            _ => None,
        })
        .ok_or_else(|| {
            Pkcs11Error::new(Pkcs11ErrorKind::Other, "no Ed25519 point in the new key")
        })?;
    Ok((private, pk))
}

/// An RSA public key of its `CKA_MODULUS` and `CKA_PUBLIC_EXPONENT`.
fn rsa_of(attrs: Vec<Attribute>) -> Option<RsaPublicKey> {
    let (mut n, mut e) = (None, None);
    for a in attrs {
        match a {
            Attribute::Modulus(v) => n = Some(v),
            Attribute::PublicExponent(v) => e = Some(v),
            _ => {}
        }
    }
    RsaPublicKey::from_components(&n?, &e?).ok()
}

const RSA_PUBLIC_ATTRS: &[AttributeType] = &[AttributeType::Modulus, AttributeType::PublicExponent];

/// The modulus size in bits of the RSA private key `h` (its `CKA_MODULUS`, a public
/// attribute of the private key object), `None` when the token does not give it.
pub fn rsa_key_bits(token: &Token, h: ObjectHandle) -> Result<Option<usize>> {
    let attrs = token.with_session(|s| {
        s.get_attributes(h, &[AttributeType::Modulus])
            .map_err(ck("reading the key's modulus"))
    })?;
    Ok(attrs.into_iter().find_map(|a| match a {
        Attribute::Modulus(n) => {
            let n = &n[n.iter().take_while(|b| **b == 0).count()..];
            let top = n.first().map_or(0, |b| 8 - b.leading_zeros() as usize);
            Some(n.len().saturating_sub(1) * 8 + top)
        }
        _ => None,
    }))
}

/// The public key of the RSA private key `h`, proven to belong to it as
/// [`ed25519_public`] proves it: an RSA-PSS-SHA256 signature by `h` over a fresh random
/// challenge must verify under the one returned.
pub fn rsa_public(token: &Token, h: ObjectHandle) -> Result<RsaPublicKey> {
    let (by, candidates) =
        public_candidates(token, h, ObjectKind::RsaPublic, (RSA_PUBLIC_ATTRS, rsa_of))?;
    let mut challenge = [0u8; 32];
    crate::memory::fill_random(&mut challenge)?;
    let sig = sign_rsa(token, h, rsa::Padding::Pss, rsa::Hash::Sha256, &challenge)?;
    candidates
        .into_iter()
        .find(|k| {
            k.verify(
                rsa::Padding::Pss,
                rsa::Hash::Sha256,
                rsa::Salt::HashLen,
                &challenge,
                &sig,
            )
            .is_ok()
        })
        .ok_or_else(|| no_public_belongs(token, &by, "RSA"))
}

/// The DER `DigestInfo` prefix of `hash` (RFC 8017 §9.2, note 1): PKCS#1 v1.5 signs
/// prefix || digest.
fn digest_info_prefix(hash: rsa::Hash) -> &'static [u8] {
    match hash {
        rsa::Hash::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        rsa::Hash::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        rsa::Hash::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}

/// Sign `data` with the RSA key `h` in the token: the digest is computed here, then
/// signed with `CKM_RSA_PKCS_PSS` (MGF1 of the same hash, salt = the hash length, as
/// `RSAPrivateKey.sign`) or `CKM_RSA_PKCS` (over the `DigestInfo`).
pub fn sign_rsa(
    token: &Token,
    h: ObjectHandle,
    padding: rsa::Padding,
    hash: rsa::Hash,
    data: &[u8],
) -> Result<Vec<u8>> {
    use sha2::Digest;
    let digest = match hash {
        rsa::Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
        rsa::Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
        rsa::Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
    };
    let (hash_alg, mgf) = match hash {
        rsa::Hash::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
        rsa::Hash::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
        rsa::Hash::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
    };
    let (mech, input) = match padding {
        rsa::Padding::Pss => (
            Mechanism::RsaPkcsPss(PkcsPssParams {
                hash_alg,
                mgf,
                s_len: (digest.len() as u64).into(),
            }),
            digest,
        ),
        rsa::Padding::Pkcs1v15 => (
            Mechanism::RsaPkcs,
            [digest_info_prefix(hash), &digest].concat(),
        ),
    };
    token.with_session(|s| {
        s.sign(&mech, h, &input)
            .map_err(ck("signing (CKM_RSA_PKCS_PSS / CKM_RSA_PKCS)"))
    })
}

/// Generate an RSA key pair of `bits` (2048, 3072 or 4096; exponent 65537) in the token
/// (`CKM_RSA_PKCS_KEY_PAIR_GEN`): the private key a token object, private, sensitive and
/// never extractable, usable only to sign. Returns its handle and the public key.
pub fn generate_rsa(
    token: &Token,
    label: &str,
    bits: usize,
) -> Result<(ObjectHandle, RsaPublicKey)> {
    if !rsa::GENERATE_BITS.contains(&bits) {
        return Err(Pkcs11Error::invalid(format!(
            "bits must be 2048, 3072 or 4096, not {bits}"
        )));
    }
    check_new_label(token, ObjectKind::RsaPrivate, label)?;
    let (public_t, private_t) = signing_pair_templates(
        label,
        random_id()?,
        vec![
            Attribute::ModulusBits((bits as u64).into()),
            Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
        ],
    );
    let (public, private) = token.with_session(|s| {
        s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public_t, &private_t)
            .map_err(ck("generating an RSA key pair (CKM_RSA_PKCS_KEY_PAIR_GEN)"))
    })?;
    let attrs = token.with_session(|s| {
        s.get_attributes(public, RSA_PUBLIC_ATTRS)
            .map_err(ck("reading the public key"))
    })?;
    let pk = rsa_of(attrs)
        .ok_or_else(|| Pkcs11Error::new(Pkcs11ErrorKind::Other, "no RSA modulus in the new key"))?;
    Ok((private, pk))
}

/// Generate an ECDSA key pair on `curve` in the token (`CKM_EC_KEY_PAIR_GEN` with the
/// curve's OID): the private key a token object, private, sensitive and never
/// extractable, usable only to sign (derive, decrypt and unwrap switched off: no ECDH
/// with it in the token). Returns the private key's handle and the public point.
pub fn generate_ec(
    token: &Token,
    label: &str,
    curve: Curve,
) -> Result<(ObjectHandle, PublicPoint)> {
    check_new_label(token, ObjectKind::EcPrivate, label)?;
    let (public_t, private_t) = signing_pair_templates(
        label,
        random_id()?,
        vec![
            Attribute::Derive(false),
            Attribute::EcParams(ec_params(curve).to_vec()),
        ],
    );
    let (public, private) = token.with_session(|s| {
        s.generate_key_pair(&Mechanism::EccKeyPairGen, &public_t, &private_t)
            .map_err(ck("generating an EC key pair (CKM_EC_KEY_PAIR_GEN)"))
    })?;
    let point = token.with_session(|s| {
        s.get_attributes(public, &[AttributeType::EcPoint])
            .map_err(ck("reading the public key"))
    })?;
    let pk = point
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => ec_point(curve, &p),
            _ => None,
        })
        .ok_or_else(|| Pkcs11Error::new(Pkcs11ErrorKind::Other, "no EC point in the new key"))?;
    Ok((private, pk))
}

/// Generate a generic secret of `length` bytes in the token (`CKM_GENERIC_SECRET_KEY_GEN`):
/// a private, sensitive, never extractable token object usable for HMAC (sign/verify) only.
pub fn generate_secret(token: &Token, label: &str, length: usize) -> Result<ObjectHandle> {
    check_new_label(token, ObjectKind::Secret, label)?;
    if !(1..=1024).contains(&length) {
        return Err(Pkcs11Error::invalid("length must be 1 to 1024 bytes"));
    }
    let template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::ValueLen((length as u64).into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Verify(true),
        Attribute::Derive(false),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(random_id()?),
    ];
    token.with_session(|s| {
        s.generate_key(&Mechanism::GenericSecretKeyGen, &template)
            .map_err(ck("generating a secret key (CKM_GENERIC_SECRET_KEY_GEN)"))
    })
}

/// Delete object `h` from the token.
pub fn delete(token: &Token, h: ObjectHandle) -> Result<()> {
    token.with_session(|s| s.destroy_object(h).map_err(ck("deleting the key object")))
}

/// What `list` shows of an object: names and flags, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// "private", "public" or "secret".
    pub class: &'static str,
    /// "ec-edwards", "generic-secret", "aes", "rsa", "ec" or "other".
    pub key_type: &'static str,
    /// `CKA_LABEL`.
    pub label: String,
    /// `CKA_ID`, hex.
    pub id: String,
    /// `CKA_SENSITIVE` (None for a public key).
    pub sensitive: Option<bool>,
    /// `CKA_EXTRACTABLE`.
    pub extractable: Option<bool>,
    /// `CKA_NEVER_EXTRACTABLE`.
    pub never_extractable: Option<bool>,
    /// `CKA_ALWAYS_SENSITIVE`.
    pub always_sensitive: Option<bool>,
}

/// The key objects visible in the token (private ones only when logged in).
pub fn list_objects(token: &Token) -> Result<Vec<ObjectInfo>> {
    token.with_session(|s| {
        let mut out = Vec::new();
        for (class, name) in [
            (ObjectClass::PRIVATE_KEY, "private"),
            (ObjectClass::PUBLIC_KEY, "public"),
            (ObjectClass::SECRET_KEY, "secret"),
        ] {
            let handles = s
                .find_objects(&[Attribute::Class(class)])
                .map_err(ck("searching the token"))?;
            for h in handles {
                out.push(object_info(s, h, name)?);
            }
        }
        Ok(out)
    })
}

/// The protection flags of a key object: (sensitive, never extractable).
pub fn flags(token: &Token, h: ObjectHandle) -> Result<(bool, bool)> {
    token.with_session(|s| {
        let i = object_info(s, h, "private")?;
        Ok((
            i.sensitive.unwrap_or(false),
            i.never_extractable.unwrap_or(false) && !i.extractable.unwrap_or(true),
        ))
    })
}

fn object_info(s: &Session, h: ObjectHandle, class: &'static str) -> Result<ObjectInfo> {
    let mut wanted = vec![
        AttributeType::Label,
        AttributeType::Id,
        AttributeType::KeyType,
    ];
    if class != "public" {
        wanted.extend([
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::NeverExtractable,
            AttributeType::AlwaysSensitive,
        ]);
    }
    let attrs = s
        .get_attributes(h, &wanted)
        .map_err(ck("reading key attributes"))?;
    let mut info = ObjectInfo {
        class,
        key_type: "other",
        label: String::new(),
        id: String::new(),
        sensitive: None,
        extractable: None,
        never_extractable: None,
        always_sensitive: None,
    };
    for a in attrs {
        match a {
            Attribute::Label(l) => info.label = String::from_utf8_lossy(&l).into_owned(),
            Attribute::Id(i) => info.id = hex(&i),
            Attribute::KeyType(t) => {
                info.key_type = if t == KeyType::EC_EDWARDS {
                    "ec-edwards"
                } else if t == KeyType::GENERIC_SECRET {
                    "generic-secret"
                } else if t == KeyType::AES {
                    "aes"
                } else if t == KeyType::RSA {
                    "rsa"
                } else if t == KeyType::EC {
                    "ec"
                } else {
                    "other"
                }
            }
            Attribute::Sensitive(b) => info.sensitive = Some(b),
            Attribute::Extractable(b) => info.extractable = Some(b),
            Attribute::NeverExtractable(b) => info.never_extractable = Some(b),
            Attribute::AlwaysSensitive(b) => info.always_sensitive = Some(b),
            _ => {}
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_points() {
        let mut der = vec![0x04, 0x20];
        der.extend([7u8; 32]);
        assert_eq!(ec_point_to_ed25519(&der), Some([7u8; 32]));
        assert_eq!(ec_point_to_ed25519(&[9u8; 32]), Some([9u8; 32]));
        assert_eq!(ec_point_to_ed25519(&der[..33]), None);
        assert_eq!(ec_point_to_ed25519(&[]), None);
    }

    #[test]
    fn ec_params_and_points() {
        assert_eq!(ec_curve(&P256_OID_DER), Some(Curve::P256));
        assert_eq!(ec_curve(&P384_OID_DER), Some(Curve::P384));
        assert_eq!(ec_curve(&ED25519_OID_DER), None);
        assert_eq!(ec_curve(&[]), None);
        for curve in [Curve::P256, Curve::P384] {
            let key = ec::PrivateKey::new_with(
                curve,
                |d: &mut [u8]| -> std::result::Result<(), ec::EcError> {
                    d.fill(3);
                    Ok(())
                },
            )
            .expect("key");
            let point = key.public().uncompressed().to_vec();
            let n = point.len();
            assert!(n < 0x80);
            let mut der = vec![0x04, n as u8];
            der.extend(&point);
            assert_eq!(ec_point(curve, &der), Some(*key.public()));
            assert_eq!(ec_point(curve, &point), Some(*key.public()));
            // A wrong length byte, a truncated point, the other curve, a point off the
            // curve: none is taken.
            der[1] += 1;
            assert_eq!(ec_point(curve, &der), None);
            assert_eq!(ec_point(curve, &point[..n - 1]), None);
            let other = if curve == Curve::P256 {
                Curve::P384
            } else {
                Curve::P256
            };
            assert_eq!(ec_point(other, &point), None);
            let mut off = point.clone();
            off[n - 1] ^= 1;
            assert_eq!(ec_point(curve, &off), None);
        }
    }

    #[test]
    fn labels() {
        assert!(check_label("a").is_ok());
        assert!(check_label("").is_err());
        assert!(check_label("a\0b").is_err());
        assert!(check_label(&"x".repeat(256)).is_err());
    }
}
