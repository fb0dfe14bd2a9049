//! `otpauth://` provisioning URIs (the Google Authenticator key URI format): parsing one
//! in place (the secret parameter is handed to the base32 decoder as a slice of the
//! caller's buffer, never copied), and the percent-encoding for writing one.

use super::{OtpAlgorithm, OtpError};

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

    #[test]
    fn encodes() {
        assert_eq!(percent_encode("alice@example.com"), "alice@example.com");
        assert_eq!(percent_encode("ACME Co:x/ü"), "ACME%20Co%3Ax%2F%C3%BC");
    }
}
