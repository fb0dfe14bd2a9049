//! `otpauth://` provisioning URIs (the Google Authenticator key URI format): parsing one
//! in place (the secret parameter is handed to the base32 decoder as a slice of the
//! caller's buffer, never copied) and loading its key, and writing one for a key.

use zeroize::Zeroizing;

use super::key::{Digits, OtpKey};
use super::{base32, OtpAlgorithm, OtpError};
use crate::memory::MemoryError;

/// `otpauth://totp/...` or `otpauth://hotp/...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtpKind {
    Totp,
    Hotp,
}

/// The parameters of a URI; the secret is a slice of the URI (base32 text).
#[derive(Debug)]
pub struct UriParams<'a> {
    pub kind: OtpKind,
    pub secret: &'a [u8],
    pub algorithm: Option<OtpAlgorithm>,
    pub digits: Option<u32>,
    pub period: Option<u64>,
    pub counter: Option<u64>,
}

fn number<T: std::str::FromStr>(value: &[u8], what: &'static str) -> Result<T, OtpError> {
    std::str::from_utf8(value)
        .ok()
        .filter(|v| !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .ok_or(OtpError::Uri(what))
}

fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), OtpError> {
    if slot.replace(value).is_some() {
        return Err(OtpError::Uri("a parameter is repeated"));
    }
    Ok(())
}

/// Parse an `otpauth://` URI. Surrounding ASCII whitespace is ignored; unknown parameters
/// (`issuer`, `image`, ...) are skipped. Error messages never quote the URI.
pub fn parse(uri: &[u8]) -> Result<UriParams<'_>, OtpError> {
    let uri = uri.trim_ascii();
    const SCHEME: &[u8] = b"otpauth://";
    if uri.len() < SCHEME.len() || !uri[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return Err(OtpError::Uri("it does not start with otpauth://"));
    }
    let rest = &uri[SCHEME.len()..];
    let slash = rest.iter().position(|&c| c == b'/');
    let kind = match slash.map(|i| &rest[..i]) {
        Some(k) if k.eq_ignore_ascii_case(b"totp") => OtpKind::Totp,
        Some(k) if k.eq_ignore_ascii_case(b"hotp") => OtpKind::Hotp,
        _ => return Err(OtpError::Uri("the type must be totp or hotp")),
    };
    let query = match rest.iter().position(|&c| c == b'?') {
        Some(q) => &rest[q + 1..],
        None => return Err(OtpError::Uri("it has no parameters")),
    };
    let query = match query.iter().position(|&c| c == b'#') {
        Some(h) => &query[..h],
        None => query,
    };
    let mut p = UriParams {
        kind,
        secret: &[],
        algorithm: None,
        digits: None,
        period: None,
        counter: None,
    };
    let mut secret = None;
    for pair in query.split(|&c| c == b'&') {
        let (key, value) = match pair.iter().position(|&c| c == b'=') {
            Some(e) => (&pair[..e], &pair[e + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        match key {
            b"secret" => set(&mut secret, value)?,
            b"algorithm" => {
                let name = std::str::from_utf8(value).ok();
                let alg = name.and_then(OtpAlgorithm::from_name);
                set(
                    &mut p.algorithm,
                    alg.ok_or(OtpError::Uri("unsupported algorithm"))?,
                )?
            }
            b"digits" => set(&mut p.digits, number(value, "digits is not a number")?)?,
            b"period" => set(&mut p.period, number(value, "period is not a number")?)?,
            b"counter" => set(&mut p.counter, number(value, "counter is not a number")?)?,
            _ => {}
        }
    }
    p.secret = secret.ok_or(OtpError::Uri("it has no secret"))?;
    Ok(p)
}

/// A key loaded from a URI, and the URI's parameters besides its secret and algorithm.
#[derive(Debug)]
pub struct Loaded {
    pub key: OtpKey,
    /// `digits`, 6 when absent.
    pub digits: Digits,
    pub period: Option<u64>,
    pub counter: Option<u64>,
}

/// Load the key of the `otpauth://` URI `text`, which must be of `kind`: its secret is
/// decoded straight into a guarded region, its algorithm is SHA-1 when absent.
pub fn load(text: &[u8], kind: OtpKind, allow_short: bool) -> Result<Loaded, OtpError> {
    let p = parse(text)?;
    if p.kind != kind {
        return Err(OtpError::Uri(match kind {
            OtpKind::Totp => "an otpauth://hotp URI (use HOTP.from_uri)",
            OtpKind::Hotp => "an otpauth://totp URI (use TOTP.from_uri)",
        }));
    }
    let digits = Digits::new(p.digits.unwrap_or(6))
        .ok_or(OtpError::Uri("digits must be between 6 and 10"))?;
    let alg = p.algorithm.unwrap_or(OtpAlgorithm::Sha1);
    let key = OtpKey::from_base32(alg, p.secret, allow_short)?;
    Ok(Loaded {
        key,
        digits,
        period: p.period,
        counter: p.counter,
    })
}

/// The type of a provisioning URI and its type's parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provisioned {
    /// `otpauth://hotp/...&counter=N`: the counter the app starts from (always written).
    Hotp { counter: u64 },
    /// `otpauth://totp/...`: the step length, written only when it is not 30 seconds.
    Totp { period: u64 },
}

/// The `otpauth://` URI that provisions `key` in an authenticator app for `account`
/// (and `issuer`): the secret as unpadded base32, `algorithm` and `digits` only when not
/// the defaults (SHA-1, 6). Everything but the secret is formatted first, so the one
/// string that holds the secret is allocated once at its final size (no reallocation
/// leaves a copy behind); it is wiped on drop.
pub fn write(
    key: &OtpKey,
    what: Provisioned,
    account: &str,
    issuer: Option<&str>,
    digits: Digits,
) -> Result<Zeroizing<String>, MemoryError> {
    let mut label = percent_encode(account);
    let mut params = String::new();
    if let Some(issuer) = issuer {
        label = format!("{}:{label}", percent_encode(issuer));
        params.push_str(&format!("&issuer={}", percent_encode(issuer)));
    }
    if key.algorithm() != OtpAlgorithm::Sha1 {
        params.push_str(&format!("&algorithm={}", key.algorithm().uri_name()));
    }
    if digits.get() != 6 {
        params.push_str(&format!("&digits={}", digits.get()));
    }
    let kind = match what {
        Provisioned::Hotp { counter } => {
            params.push_str(&format!("&counter={counter}"));
            "hotp"
        }
        Provisioned::Totp { period } => {
            if period != 30 {
                params.push_str(&format!("&period={period}"));
            }
            "totp"
        }
    };
    let secret = base32::encode(key.secret()?);
    let head = format!("otpauth://{kind}/{label}?secret=");
    let mut out = Zeroizing::new(String::with_capacity(
        head.len() + secret.len() + params.len(),
    ));
    out.push_str(&head);
    out.push_str(&secret);
    out.push_str(&params);
    Ok(out)
}

/// Percent-encode `s` for a URI label or query value: unreserved characters and `@` stay.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let uri = b" otpauth://totp/ACME:alice?secret=GEZDGNBV&issuer=ACME&algorithm=SHA256&digits=8&period=60\n";
        let p = parse(uri).expect("uri");
        assert_eq!(p.kind, OtpKind::Totp);
        assert_eq!(p.secret, b"GEZDGNBV");
        assert_eq!(p.algorithm, Some(OtpAlgorithm::Sha256));
        assert_eq!((p.digits, p.period, p.counter), (Some(8), Some(60), None));
        let p = parse(b"OTPAUTH://HOTP/x?counter=7&secret=AB").expect("hotp");
        assert_eq!(
            (p.kind, p.counter, p.secret),
            (OtpKind::Hotp, Some(7), &b"AB"[..])
        );
        for bad in [
            &b"https://totp/x?secret=AB"[..],
            b"otpauth://motp/x?secret=AB",
            b"otpauth://totp/x",
            b"otpauth://totp/x?issuer=a",
            b"otpauth://totp/x?secret=AB&secret=CD",
            b"otpauth://totp/x?secret=AB&digits=six",
            b"otpauth://totp/x?secret=AB&digits=-6",
            b"otpauth://totp/x?secret=AB&algorithm=MD5",
        ] {
            assert!(matches!(parse(bad), Err(OtpError::Uri(_))), "{bad:?}");
        }
    }

    fn key(alg: OtpAlgorithm) -> OtpKey {
        OtpKey::from_secret(alg, b"12345678901234567890", false).expect("key")
    }

    fn digits(n: u32) -> Digits {
        Digits::new(n).expect("digits")
    }

    #[test]
    fn writes() {
        let sha1 = key(OtpAlgorithm::Sha1);
        let uri = write(
            &sha1,
            Provisioned::Totp { period: 30 },
            "alice",
            None,
            digits(6),
        );
        assert_eq!(
            uri.expect("uri").as_str(),
            "otpauth://totp/alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let uri = write(
            &key(OtpAlgorithm::Sha256),
            Provisioned::Totp { period: 60 },
            "alice@example.com",
            Some("ACME Co"),
            digits(8),
        );
        assert_eq!(
            uri.expect("uri").as_str(),
            "otpauth://totp/ACME%20Co:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=ACME%20Co&algorithm=SHA256&digits=8&period=60"
        );
        let uri = write(
            &sha1,
            Provisioned::Hotp { counter: 0 },
            "a b",
            None,
            digits(6),
        );
        assert_eq!(
            uri.expect("uri").as_str(),
            "otpauth://hotp/a%20b?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=0"
        );
    }

    #[test]
    fn loads_what_it_writes() {
        let original = key(OtpAlgorithm::Sha512);
        let what = Provisioned::Hotp { counter: 7 };
        let uri = write(&original, what, "bob", Some("X"), digits(7)).expect("uri");
        let loaded = load(uri.as_bytes(), OtpKind::Hotp, false).expect("load");
        assert_eq!(loaded.key.algorithm(), OtpAlgorithm::Sha512);
        assert_eq!(
            loaded.key.secret().expect("secret"),
            original.secret().expect("secret")
        );
        assert_eq!(
            (loaded.digits, loaded.counter, loaded.period),
            (digits(7), Some(7), None)
        );
        assert!(matches!(
            load(uri.as_bytes(), OtpKind::Totp, false),
            Err(OtpError::Uri("an otpauth://hotp URI (use HOTP.from_uri)"))
        ));
        let defaults = load(
            b"otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            OtpKind::Totp,
            false,
        )
        .expect("load");
        assert_eq!(defaults.key.algorithm(), OtpAlgorithm::Sha1);
        assert_eq!(defaults.digits, digits(6));
        assert!(matches!(
            load(
                b"otpauth://totp/x?secret=GEZDGNBV&digits=11",
                OtpKind::Totp,
                true
            ),
            Err(OtpError::Uri("digits must be between 6 and 10"))
        ));
    }

    #[test]
    fn encodes() {
        assert_eq!(percent_encode("alice@example.com"), "alice@example.com");
        assert_eq!(percent_encode("ACME Co:x/ü"), "ACME%20Co%3Ax%2F%C3%BC");
    }
}
