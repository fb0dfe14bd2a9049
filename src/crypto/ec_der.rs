//! DER encodings of P-256 and P-384 keys: PKCS#8 private keys (RFC 5208 / RFC 5958 with
//! `id-ecPublicKey` and a named curve, RFC 5480), the traditional SEC1 `ECPrivateKey`
//! (RFC 5915, PEM label `EC PRIVATE KEY`, what `openssl ecparam -genkey` writes) and
//! SubjectPublicKeyInfo public keys. PEM armor is [`super::pkcs8`]'s (constant-time
//! base64 into a guarded region).
//!
//! Parsing uses the RustCrypto `pkcs8`, `sec1` and `spki` crates: they decode borrowed
//! slices, so a private key parsed from a guarded region is handed on as a sub-slice of
//! that region and never copied. Only named curves are accepted; explicit curve parameters
//! (`openssl ... -param_enc explicit`) are refused with a message that says so. Messages
//! never include the crates' own error text (it can show tag bytes of the input).
//!
//! Writing a private key is by hand: the layout of the two curves' PKCS#8 is fixed (the
//! crates' encoders would need an intermediate buffer for the nested `ECPrivateKey`),
//! and the output is byte for byte what `openssl pkey` writes (SEC1 inside with the public
//! key, no parameters repeated), checked by the tests against OpenSSL's own output.

use ::pkcs8::der::asn1::{AnyRef, BitStringRef, ObjectIdentifier};
use ::pkcs8::der::{Decode, Encode, Tag, Tagged};
use ::pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

use super::ec::{Curve, PublicPoint};
use super::pkcs8::Pkcs8Error;

/// `id-ecPublicKey` (RFC 5480).
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `secp256r1` / `prime256v1`.
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// `secp384r1`.
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// The PEM label of the traditional SEC1 key.
pub const EC_PRIVATE_KEY_LABEL: &str = "EC PRIVATE KEY";
/// The PEM label of the block of curve parameters `openssl ecparam -genkey` writes before
/// the key (its curve must be the key's).
pub const EC_PARAMETERS_LABEL: &str = "EC PARAMETERS";

fn err<T>(msg: impl Into<String>) -> Result<T, Pkcs8Error> {
    Err(Pkcs8Error(msg.into()))
}

fn curve_oid(curve: Curve) -> ObjectIdentifier {
    match curve {
        Curve::P256 => OID_P256,
        Curve::P384 => OID_P384,
    }
}

/// The curve of a named-curve OID, or a message naming the unsupported curve.
fn curve_of_oid(oid: ObjectIdentifier) -> Result<Curve, Pkcs8Error> {
    if oid == OID_P256 {
        return Ok(Curve::P256);
    }
    if oid == OID_P384 {
        return Ok(Curve::P384);
    }
    let name = match oid.to_string().as_str() {
        "1.3.132.0.35" => "P-521",
        "1.3.132.0.10" => "secp256k1",
        "1.2.840.10045.3.1.1" => "P-192",
        "1.3.132.0.33" => "P-224",
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1",
        _ => "an unknown curve",
    };
    err(format!(
        "the key is on {name}; only P-256 and P-384 are supported"
    ))
}

/// The curve named by ECParameters in `any`: a named-curve OID, or an error saying that
/// explicit parameters (a SEQUENCE) are refused.
fn curve_of_parameters(any: AnyRef<'_>) -> Result<Curve, Pkcs8Error> {
    match any.tag() {
        Tag::ObjectIdentifier => {
            let oid: ObjectIdentifier = any
                .decode_as()
                .map_err(|_| Pkcs8Error("malformed curve OID".to_owned()))?;
            curve_of_oid(oid)
        }
        Tag::Sequence => err(
            "explicit curve parameters are not supported: use a named curve \
             (openssl ec -param_enc named_curve)",
        ),
        Tag::Null => err("implicitly-defined curve parameters (NULL) are not supported"),
        _ => err("malformed EC curve parameters"),
    }
}

/// Refuse a curve other than the one expected, if one is.
fn check_expected(found: Curve, want: Option<Curve>) -> Result<Curve, Pkcs8Error> {
    match want {
        Some(w) if w != found => err(format!(
            "this is a {} key, not a {} key",
            found.name(),
            w.name()
        )),
        _ => Ok(found),
    }
}

/// A parsed EC private key: the scalar (a sub-slice of the input, possibly shorter than
/// the curve's width if an encoder dropped leading zeros) and the public point the
/// structure carries, if any (not yet validated).
#[derive(Debug)]
pub struct EcPrivateDer<'a> {
    pub curve: Curve,
    pub scalar: &'a [u8],
    pub public: Option<&'a [u8]>,
}

/// Which structure a private key DER holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivateStructure {
    /// PKCS#8 `PrivateKeyInfo` / `OneAsymmetricKey`.
    Pkcs8,
    /// SEC1 `ECPrivateKey`.
    Sec1,
}

/// Tell PKCS#8 from SEC1 by the element after the version: an AlgorithmIdentifier
/// (`SEQUENCE`) or the private key (`OCTET STRING`). An encrypted PKCS#8 key (which starts
/// with a `SEQUENCE`) is refused here.
pub fn private_structure(der: &[u8]) -> Result<PrivateStructure, Pkcs8Error> {
    let outer = AnyRef::from_der(der).map_err(|_| Pkcs8Error("malformed DER".to_owned()))?;
    if outer.tag() != Tag::Sequence {
        return err("malformed DER: a private key SEQUENCE expected");
    }
    let mut reader = ::pkcs8::der::SliceReader::new(outer.value())
        .map_err(|_| Pkcs8Error("malformed DER".to_owned()))?;
    let first = AnyRef::decode(&mut reader).map_err(|_| Pkcs8Error("malformed DER".to_owned()))?;
    if first.tag() == Tag::Sequence {
        return err("encrypted PKCS#8 keys are not supported: decrypt it first (openssl pkey)");
    }
    let second = AnyRef::decode(&mut reader).map_err(|_| Pkcs8Error("truncated DER".to_owned()))?;
    match second.tag() {
        Tag::Sequence => Ok(PrivateStructure::Pkcs8),
        Tag::OctetString => Ok(PrivateStructure::Sec1),
        _ => err("malformed DER: neither a PKCS#8 nor a SEC1 EC private key"),
    }
}

/// Parse a private key in either structure ([`private_structure`]).
pub fn parse_private_der(der: &[u8], want: Option<Curve>) -> Result<EcPrivateDer<'_>, Pkcs8Error> {
    match private_structure(der)? {
        PrivateStructure::Pkcs8 => parse_pkcs8_der(der, want),
        PrivateStructure::Sec1 => parse_sec1_der(der, want, None),
    }
}

/// Parse an unencrypted PKCS#8 EC private key (versions 1 and 2).
pub fn parse_pkcs8_der(der: &[u8], want: Option<Curve>) -> Result<EcPrivateDer<'_>, Pkcs8Error> {
    let info = ::pkcs8::PrivateKeyInfo::from_der(der)
        .map_err(|_| Pkcs8Error("malformed PKCS#8 DER".to_owned()))?;
    if info.algorithm.oid != OID_EC_PUBLIC_KEY {
        return err("this is not an EC key (the PKCS#8 algorithm is not id-ecPublicKey)");
    }
    let Some(params) = info.algorithm.parameters else {
        return err("the PKCS#8 EC key names no curve");
    };
    let curve = check_expected(curve_of_parameters(params)?, want)?;
    let inner = parse_sec1_der(info.private_key, Some(curve), Some(curve))?;
    let public = match (inner.public, info.public_key) {
        (Some(a), Some(b)) if a != b => {
            return err("the PKCS#8 key carries two different public keys")
        }
        (a, b) => a.or(b),
    };
    Ok(EcPrivateDer { public, ..inner })
}

/// Parse a SEC1 `ECPrivateKey`. `outer` is the curve named around it (PKCS#8); without
/// one the structure must name its curve itself.
fn parse_sec1_der(
    der: &[u8],
    want: Option<Curve>,
    outer: Option<Curve>,
) -> Result<EcPrivateDer<'_>, Pkcs8Error> {
    if let Some(params) = sec1_parameters(der)? {
        let named = curve_of_parameters(params)?;
        if outer.is_some_and(|o| o != named) {
            return err("the key's curve parameters contradict each other");
        }
    }
    let key = ::sec1::EcPrivateKey::from_der(der)
        .map_err(|_| Pkcs8Error("malformed SEC1 EC private key DER".to_owned()))?;
    let named = match key.parameters {
        Some(p) => p.named_curve().map(curve_of_oid).transpose()?,
        None => None,
    };
    let Some(curve) = outer.or(named) else {
        return err("the SEC1 EC private key names no curve");
    };
    let curve = check_expected(curve, want)?;
    // RFC 5915: the octet string is exactly the order's length (what OpenSSL writes); a
    // shorter one is refused, as pyca/OpenSSL 3 do.
    if key.private_key.len() != curve.scalar_len() {
        return err(format!(
            "a {} private key must be exactly {} bytes",
            curve.name(),
            curve.scalar_len()
        ));
    }
    Ok(EcPrivateDer {
        curve,
        scalar: key.private_key,
        public: key.public_key,
    })
}

/// The `[0] parameters` of a SEC1 `ECPrivateKey`, read structurally (so explicit
/// parameters, which the `sec1` crate does not decode, get their own message).
fn sec1_parameters(der: &[u8]) -> Result<Option<AnyRef<'_>>, Pkcs8Error> {
    let malformed = |_| Pkcs8Error("malformed SEC1 EC private key DER".to_owned());
    let outer = AnyRef::from_der(der).map_err(malformed)?;
    let mut reader = ::pkcs8::der::SliceReader::new(outer.value()).map_err(malformed)?;
    let _version = AnyRef::decode(&mut reader).map_err(malformed)?;
    let _key = AnyRef::decode(&mut reader).map_err(malformed)?;
    let Ok(next) = AnyRef::decode(&mut reader) else {
        return Ok(None);
    };
    if next.tag()
        != (Tag::ContextSpecific {
            constructed: true,
            number: ::pkcs8::der::TagNumber::N0,
        })
    {
        return Ok(None);
    }
    AnyRef::from_der(next.value()).map(Some).map_err(malformed)
}

/// Length of [`pkcs8_der_into`]'s output.
pub fn pkcs8_der_len(curve: Curve) -> usize {
    match curve {
        Curve::P256 => 138,
        Curve::P384 => 185,
    }
}

/// The fixed bytes of a PKCS#8 key up to the scalar, and between scalar and point.
fn pkcs8_layout(curve: Curve) -> (&'static [u8], &'static [u8]) {
    match curve {
        Curve::P256 => (
            &[
                0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
                0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04,
                0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20,
            ],
            &[0xa1, 0x44, 0x03, 0x42, 0x00],
        ),
        Curve::P384 => (
            &[
                0x30, 0x81, 0xb6, 0x02, 0x01, 0x00, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
                0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x04, 0x81, 0x9e, 0x30,
                0x81, 0x9b, 0x02, 0x01, 0x01, 0x04, 0x30,
            ],
            &[0xa1, 0x64, 0x03, 0x62, 0x00],
        ),
    }
}

/// Write the PKCS#8 (version 1) DER of `scalar` (the curve's width) with its uncompressed
/// public point into `out` (exactly [`pkcs8_der_len`] bytes, a guarded region), as
/// `openssl pkey` writes it.
pub fn pkcs8_der_into(
    curve: Curve,
    scalar: &[u8],
    public: &PublicPoint,
    out: &mut [u8],
) -> Result<(), Pkcs8Error> {
    if scalar.len() != curve.scalar_len()
        || out.len() != pkcs8_der_len(curve)
        || public.curve() != curve
    {
        return err("internal error: wrong length for an EC PKCS#8 key");
    }
    let (head, mid) = pkcs8_layout(curve);
    let point = public.uncompressed();
    let mut at = 0;
    for part in [head, scalar, mid, point] {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    Ok(())
}

/// The DER SubjectPublicKeyInfo of `public` (uncompressed point), as `openssl pkey
/// -pubout -outform DER` writes it.
pub fn spki_der(public: &PublicPoint) -> Vec<u8> {
    let params = curve_oid(public.curve());
    let mut out = [0u8; 128];
    let encoded = BitStringRef::from_bytes(public.uncompressed()).and_then(|key| {
        SubjectPublicKeyInfoRef {
            algorithm: AlgorithmIdentifierRef {
                oid: OID_EC_PUBLIC_KEY,
                parameters: Some(AnyRef::from(&params)),
            },
            subject_public_key: key,
        }
        .encode_to_slice(&mut out)
        .map(<[u8]>::to_vec)
    });
    // A point of at most 97 bytes always fits 128 bytes of SPKI.
    encoded.unwrap_or_default()
}

/// The public key in a DER SubjectPublicKeyInfo (the point validated).
pub fn parse_spki_der(der: &[u8], want: Option<Curve>) -> Result<PublicPoint, Pkcs8Error> {
    let spki = SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|_| Pkcs8Error("malformed SubjectPublicKeyInfo DER".to_owned()))?;
    if spki.algorithm.oid != OID_EC_PUBLIC_KEY {
        return err("this is not an EC public key (the algorithm is not id-ecPublicKey)");
    }
    let Some(params) = spki.algorithm.parameters else {
        return err("the EC public key names no curve");
    };
    let curve = check_expected(curve_of_parameters(params)?, want)?;
    let Some(point) = spki.subject_public_key.as_bytes() else {
        return err("malformed BIT STRING in public key");
    };
    PublicPoint::from_sec1(curve, point).map_err(|_| {
        Pkcs8Error(format!(
            "the public key is not a valid {} point (off the curve, the identity, or malformed)",
            curve.name()
        ))
    })
}

/// The public key in a PEM "PUBLIC KEY" block.
pub fn parse_spki_pem(pem: &[u8], want: Option<Curve>) -> Result<PublicPoint, Pkcs8Error> {
    let body = super::pkcs8::pem_body(pem, super::pkcs8::PUBLIC_KEY_LABEL)?;
    let mut der = vec![0u8; super::pkcs8::pem_der_len(body)?];
    super::pkcs8::pem_der_into(body, &mut der)?;
    parse_spki_der(&der, want)
}

/// PEM "PUBLIC KEY" block of `public`.
pub fn spki_pem(public: &PublicPoint) -> Vec<u8> {
    let label = super::pkcs8::PUBLIC_KEY_LABEL;
    let der = spki_der(public);
    let mut out = vec![0u8; super::pkcs8::pem_encoded_len(label, der.len())];
    // The length is the one pem_encode_into expects, so it cannot fail.
    let _ = super::pkcs8::pem_encode_into(label, &der, &mut out);
    out
}

/// `content` without a leading `EC PARAMETERS` PEM block (and the whitespace after it),
/// as `openssl ecparam -genkey` writes before the key, and the curve the block names
/// (`None` without a block; other content unchanged). The caller refuses a key on another
/// curve ([`check_parameters`]). The block is public data, decoded on the heap.
pub fn split_ec_parameters(content: &[u8]) -> Result<(&[u8], Option<Curve>), Pkcs8Error> {
    let text = content.trim_ascii_start();
    let begin = b"-----BEGIN EC PARAMETERS-----";
    let end = b"-----END EC PARAMETERS-----";
    if !text.starts_with(begin) {
        return Ok((content, None));
    }
    let Some(at) = text.windows(end.len()).position(|w| w == end) else {
        return err("the EC PARAMETERS block has no END line");
    };
    let (block, rest) = text.split_at(at + end.len());
    let body = super::pkcs8::pem_body(block, EC_PARAMETERS_LABEL)?;
    let mut der = vec![0u8; super::pkcs8::pem_der_len(body)?];
    super::pkcs8::pem_der_into(body, &mut der)?;
    let params =
        AnyRef::from_der(&der).map_err(|_| Pkcs8Error("malformed EC PARAMETERS".to_owned()))?;
    Ok((rest.trim_ascii_start(), Some(curve_of_parameters(params)?)))
}

/// Refuse a key on another curve than its file's `EC PARAMETERS` block names.
pub fn check_parameters(key: Curve, parameters: Option<Curve>) -> Result<(), Pkcs8Error> {
    match parameters {
        Some(named) if named != key => err(format!(
            "the EC PARAMETERS block names {}, but the key is a {} key",
            named.name(),
            key.name()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ec::PrivateKey;

    #[test]
    fn pkcs8_round_trip_and_layout() {
        for curve in Curve::ALL {
            let k = PrivateKey::generate(curve).expect("key");
            let mut out = vec![0u8; pkcs8_der_len(curve)];
            pkcs8_der_into(curve, k.private_bytes().expect("d"), k.public(), &mut out)
                .expect("write");
            assert_eq!(
                private_structure(&out).expect("kind"),
                PrivateStructure::Pkcs8
            );
            let parsed = parse_private_der(&out, None).expect("parse");
            assert_eq!(parsed.curve, curve);
            assert_eq!(parsed.scalar, k.private_bytes().expect("d"));
            assert_eq!(parsed.public, Some(k.public().uncompressed()));
            let other = match curve {
                Curve::P256 => Curve::P384,
                Curve::P384 => Curve::P256,
            };
            let e = parse_private_der(&out, Some(other)).expect_err("curve");
            assert!(e.0.contains("not a"), "{e}");
            // Every truncation is refused.
            for n in 0..out.len() {
                assert!(parse_private_der(&out[..n], None).is_err(), "{n}");
            }
            // SPKI round trip.
            let spki = spki_der(k.public());
            assert_eq!(parse_spki_der(&spki, None).expect("spki"), *k.public());
            let pem = spki_pem(k.public());
            assert_eq!(parse_spki_pem(&pem, Some(curve)).expect("pem"), *k.public());
        }
    }

    #[test]
    fn sec1_from_openssl_and_explicit_parameters() {
        // `openssl ecparam -name prime256v1 -genkey -noout -outform DER` (test key).
        let sec1 = crate::crypto::unhex(
            "30770201010420 \
             c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721 \
             a00a06082a8648ce3d030107a14403420004 \
             60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6 \
             7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299",
        );
        assert_eq!(
            private_structure(&sec1).expect("kind"),
            PrivateStructure::Sec1
        );
        let parsed = parse_private_der(&sec1, None).expect("sec1");
        assert_eq!(parsed.curve, Curve::P256);
        assert_eq!(parsed.scalar.len(), 32);
        // Explicit parameters: [0] holds a SEQUENCE instead of an OID.
        let mut explicit = sec1.clone();
        let at = 2 + 3 + 34; // outer header, version, private key
        assert_eq!(explicit[at], 0xa0);
        explicit[at + 2] = 0x30;
        let e = parse_private_der(&explicit, None).expect_err("explicit");
        assert!(e.0.contains("explicit curve parameters"), "{e}");
    }

    #[test]
    fn ec_parameters_blocks() {
        let p256 =
            b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n\
                     -----BEGIN EC PRIVATE KEY-----\n";
        let (rest, named) = split_ec_parameters(p256).expect("p256");
        assert_eq!(named, Some(Curve::P256));
        assert!(rest.starts_with(b"-----BEGIN EC PRIVATE KEY-----"));
        let p384 =
            b"\n-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC PARAMETERS-----\nrest";
        assert_eq!(
            split_ec_parameters(p384).expect("p384"),
            (&b"rest"[..], Some(Curve::P384))
        );
        let plain = b"-----BEGIN EC PRIVATE KEY-----\n";
        assert_eq!(
            split_ec_parameters(plain).expect("none"),
            (&plain[..], None)
        );
        for bad in [
            &b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n"[..],
            b"-----BEGIN EC PARAMETERS-----\n!!!!\n-----END EC PARAMETERS-----\n",
            // secp256k1
            b"-----BEGIN EC PARAMETERS-----\nBgUrgQQACg==\n-----END EC PARAMETERS-----\n",
        ] {
            assert!(split_ec_parameters(bad).is_err());
        }
        assert!(check_parameters(Curve::P256, Some(Curve::P256)).is_ok());
        assert!(check_parameters(Curve::P256, None).is_ok());
        let e = check_parameters(Curve::P256, Some(Curve::P384)).expect_err("mismatch");
        assert_eq!(
            e.0,
            "the EC PARAMETERS block names P-384, but the key is a P-256 key"
        );
    }
}
