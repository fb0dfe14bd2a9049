//! `pkcs11:` URIs (RFC 7512): which module, token and object a key is.
//!
//! ```text
//! pkcs11:token=prod;object=signer;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin
//! ```
//!
//! Path attributes (`;`-separated): `token`, `manufacturer`, `serial`, `model`,
//! `slot-id`, `object`, `id`, `type`, and the library/slot description attributes (parsed
//! and checked, not used for matching). Query attributes (`&`-separated): `module-path`,
//! `module-name`, `pin-source`. Values are percent-decoded; `id` is raw bytes, the others
//! UTF-8. `pin-value` is refused: a PIN written into a URI string is a Python `str` that
//! cannot be wiped. Unknown attributes are refused unless vendor-specific (`x-`), so a
//! typo never widens a match. Parsing is total: any input gives a value or an error,
//! never a panic (`tests/fuzz_parsers.rs`).

use super::keys::ObjectSpec;
use super::token::TokenSpec;

/// The object class a URI names (`type=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// `private`
    Private,
    /// `public`
    Public,
    /// `secret-key`
    SecretKey,
    /// `cert`
    Cert,
    /// `data`
    Data,
}

/// A parsed `pkcs11:` URI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// The token attributes.
    pub token: TokenSpec,
    /// The object attributes (`object` = label, `id`).
    pub object: ObjectSpec,
    /// `type`.
    pub object_type: Option<ObjectType>,
    /// `module-path`.
    pub module_path: Option<String>,
    /// `module-name`.
    pub module_name: Option<String>,
    /// `pin-source` (a path; a `file:` prefix is removed).
    pub pin_source: Option<String>,
}

/// Why a URI was refused. The message never quotes a `pin-value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriError(pub String);

impl std::fmt::Display for UriError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, UriError> {
    Err(UriError(msg.into()))
}

/// Longest URI accepted.
pub const MAX_URI_LEN: usize = 4096;

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode `s`.
pub fn percent_decode(s: &str) -> Result<Vec<u8>, UriError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).copied().and_then(hex_digit);
            let lo = b.get(i + 2).copied().and_then(hex_digit);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return err("a '%' in the URI is not followed by two hex digits"),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn text(name: &str, value: &str) -> Result<String, UriError> {
    String::from_utf8(percent_decode(value)?)
        .map_err(|_| UriError(format!("the URI attribute {name} is not UTF-8")))
}

fn set<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), UriError> {
    if slot.is_some() {
        return err(format!("the URI attribute {name} appears twice"));
    }
    *slot = Some(value);
    Ok(())
}

/// Parse a `pkcs11:` URI.
pub fn parse(uri: &str) -> Result<Pkcs11Uri, UriError> {
    if uri.len() > MAX_URI_LEN {
        return err(format!("a PKCS#11 URI may be at most {MAX_URI_LEN} bytes"));
    }
    let Some(rest) = uri
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("pkcs11:"))
        .map(|_| &uri[7..])
    else {
        return err("a PKCS#11 URI starts with \"pkcs11:\"");
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.contains('#') || query.is_some_and(|q| q.contains('#')) {
        return err("a PKCS#11 URI has no fragment ('#')");
    }
    let mut u = Pkcs11Uri::default();
    let mut seen_desc: Vec<String> = Vec::new();
    for attr in path.split(';').filter(|a| !a.is_empty()) {
        let Some((name, value)) = attr.split_once('=') else {
            return err("every URI path attribute is name=value");
        };
        match name {
            "token" => set(&mut u.token.label, name, text(name, value)?)?,
            "manufacturer" => set(&mut u.token.manufacturer, name, text(name, value)?)?,
            "serial" => set(&mut u.token.serial, name, text(name, value)?)?,
            "model" => set(&mut u.token.model, name, text(name, value)?)?,
            "slot-id" => {
                let v = text(name, value)?;
                let id = v
                    .parse::<u64>()
                    .map_err(|_| UriError("slot-id must be a decimal number".to_owned()))?;
                set(&mut u.token.slot, name, id)?;
            }
            "object" => set(&mut u.object.label, name, text(name, value)?)?,
            "id" => set(&mut u.object.id, name, percent_decode(value)?)?,
            "type" => {
                let t = match text(name, value)?.as_str() {
                    "private" => ObjectType::Private,
                    "public" => ObjectType::Public,
                    "secret-key" => ObjectType::SecretKey,
                    "cert" => ObjectType::Cert,
                    "data" => ObjectType::Data,
                    _ => return err("type must be private, public, secret-key, cert or data"),
                };
                set(&mut u.object_type, name, t)?;
            }
            "library-manufacturer"
            | "library-description"
            | "library-version"
            | "slot-description"
            | "slot-manufacturer" => {
                text(name, value)?;
                if seen_desc.iter().any(|s| s == name) {
                    return err(format!("the URI attribute {name} appears twice"));
                }
                seen_desc.push(name.to_owned());
            }
            n if n.starts_with("x-") => {
                percent_decode(value)?;
            }
            _ => return err(format!("unknown PKCS#11 URI path attribute {}", clip(name))),
        }
    }
    for attr in query.unwrap_or("").split('&').filter(|a| !a.is_empty()) {
        let Some((name, value)) = attr.split_once('=') else {
            return err("every URI query attribute is name=value");
        };
        match name {
            "module-path" => set(&mut u.module_path, name, text(name, value)?)?,
            "module-name" => set(&mut u.module_name, name, text(name, value)?)?,
            "pin-source" => {
                let v = text(name, value)?;
                let path = v
                    .strip_prefix("file://")
                    .or_else(|| v.strip_prefix("file:"))
                    .unwrap_or(&v);
                if path.is_empty() {
                    return err("pin-source names no file");
                }
                set(&mut u.pin_source, name, path.to_owned())?;
            }
            "pin-value" => {
                return err(
                    "pin-value is refused: a PIN written into a URI cannot be wiped; use \
                     pin-source=file:/path/to/pin (a 0600 file) instead",
                )
            }
            n if n.starts_with("x-") => {
                percent_decode(value)?;
            }
            _ => {
                return err(format!(
                    "unknown PKCS#11 URI query attribute {}",
                    clip(name)
                ))
            }
        }
    }
    Ok(u)
}

/// An unknown attribute name as a message shows it: quoted only when it looks like a name
/// (at most 40 of `a-z` and `-`), so that a mangled URI never echoes a PIN or other value.
fn clip(s: &str) -> String {
    if s.len() <= 40 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
        format!("{s:?}")
    } else {
        "(not shown)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7512_examples() {
        let u = parse(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
        )
        .expect("parse");
        assert_eq!(
            u.token.label.as_deref(),
            Some("The Software PKCS#11 Softtoken")
        );
        assert_eq!(u.token.manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(u.token.serial.as_deref(), Some(""));
        assert_eq!(u.object.label.as_deref(), Some("my-certificate"));
        assert_eq!(
            u.object.id.as_deref(),
            Some(&[0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91][..])
        );
        assert_eq!(u.object_type, Some(ObjectType::Cert));
        assert_eq!(u.pin_source.as_deref(), Some("/etc/token_pin"));
        assert_eq!(parse("pkcs11:").expect("empty"), Pkcs11Uri::default());
        let u = parse("pkcs11:slot-id=5?module-path=/usr/lib/x.so").expect("slot");
        assert_eq!(u.token.slot, Some(5));
        assert_eq!(u.module_path.as_deref(), Some("/usr/lib/x.so"));
        assert!(parse("pkcs11:x-vendor=1;object=a").is_ok());
    }

    #[test]
    fn refusals() {
        for bad in [
            "pkcs12:token=a",
            "pkcs11:token=a;token=b",
            "pkcs11:tokne=a",
            "pkcs11:token=%zz",
            "pkcs11:token=%4",
            "pkcs11:token=%ff",
            "pkcs11:type=key",
            "pkcs11:slot-id=x",
            "pkcs11:token",
            "pkcs11:token=a#frag",
            "pkcs11:?pin-source=",
            "pkcs11:?foo=1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let e = parse("pkcs11:token=a?pin-value=123456").expect_err("pin-value");
        assert!(!e.0.contains("123456"), "{}", e.0);
        let e = parse("pkcs11:object=a?pin-vahue\u{d5}1234&pin-value=1234").expect_err("mangled");
        assert!(!e.0.contains("1234"), "{}", e.0);
        let e = parse("pkcs11:tokne=a").expect_err("typo");
        assert!(e.0.contains("\"tokne\""), "{}", e.0);
        assert!(parse(&format!("pkcs11:object={}", "a".repeat(MAX_URI_LEN))).is_err());
    }
}
