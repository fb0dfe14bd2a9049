//! The bytes of one record (one line of the log), written and parsed exactly.
//!
//! ```text
//! {"seq":S,"ts":"YYYY-MM-DDTHH:MM:SS.ffffffZ","epoch":E,"prev":"<64 hex>","event":V,"mac":"<64 hex>"}\n
//! ```
//!
//! Internal records of the log itself (genesis, torn-tail repair, rotation) carry their
//! payload under `"audit"` instead of `"event"`, so no appended event can pose as one.
//! The fields come in exactly this order with no whitespace; `S` and `E` are decimal
//! without leading zeros; hex is lowercase. The MAC field is last, so "the line without its
//! MAC field" is a byte prefix: everything before `,"mac":"`, which is the line minus its
//! last [`MAC_SUFFIX_LEN`] bytes. `mac` = HMAC-SHA256 under the epoch key of `E` over that
//! prefix, exactly as written; `prev` = the RFC 6962 leaf hash `SHA-256(0x00 || line)` of
//! the previous line (without its `\n`), all zeros for the first line of a new log.
//! See `docs/audit.md`.

use super::json::is_json_value;

/// `,"mac":"` + 64 hex digits + `"}`.
pub const MAC_SUFFIX_LEN: usize = 8 + 64 + 2;
/// The longest line accepted (without its `\n`): 1 MiB.
pub const MAX_LINE_LEN: usize = 1 << 20;
/// The start of the `"audit"` body of the last record of a rotated file.
pub const END_PREFIX: &[u8] = b"{\"type\":\"end\",";
/// Length of a timestamp `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub const TS_LEN: usize = 27;

/// A parsed record, borrowing the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Sequence number.
    pub seq: u64,
    /// Timestamp text (27 bytes, UTC).
    pub ts: &'a [u8],
    /// Epoch whose key MACs the line.
    pub epoch: u64,
    /// Leaf hash of the previous line.
    pub prev: [u8; 32],
    /// True for the log's own records (`"audit"`), false for appended events (`"event"`).
    pub internal: bool,
    /// The JSON value of `"event"` / `"audit"`, exactly as written.
    pub body: &'a [u8],
    /// The MAC.
    pub mac: [u8; 32],
    /// Length of the MAC'd prefix (the line without its MAC field).
    pub signed_len: usize,
}

/// Why a line is not a record (for messages; the verifier classifies it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append the lowercase hex of `data` to `out`.
pub fn push_hex(out: &mut Vec<u8>, data: &[u8]) {
    for b in data {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

/// Lowercase hex of `data`.
pub fn hex(data: &[u8]) -> String {
    let mut v = Vec::with_capacity(2 * data.len());
    push_hex(&mut v, data);
    String::from_utf8(v).unwrap_or_default()
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Decode exactly 64 lowercase hex digits.
pub fn unhex32(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibble(s[2 * i])? << 4) | nibble(s[2 * i + 1])?;
    }
    Some(out)
}

/// Write the MAC'd prefix of a record into `out` (cleared first); the caller MACs it and
/// calls [`finish_line`]. `body` must be one JSON value without raw newlines (checked by
/// the writer with [`check_body`]).
pub fn begin_line(
    out: &mut Vec<u8>,
    seq: u64,
    ts: &[u8; TS_LEN],
    epoch: u64,
    prev: &[u8; 32],
    internal: bool,
    body: &[u8],
) {
    out.clear();
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"ts\":\"");
    out.extend_from_slice(ts);
    out.extend_from_slice(b"\",\"epoch\":");
    out.extend_from_slice(epoch.to_string().as_bytes());
    out.extend_from_slice(b",\"prev\":\"");
    push_hex(out, prev);
    out.extend_from_slice(if internal {
        b"\",\"audit\":"
    } else {
        b"\",\"event\":"
    });
    out.extend_from_slice(body);
}

/// Append the MAC field and the closing brace (no newline) to a prefix from [`begin_line`].
pub fn finish_line(out: &mut Vec<u8>, mac: &[u8; 32]) {
    out.extend_from_slice(b",\"mac\":\"");
    push_hex(out, mac);
    out.extend_from_slice(b"\"}");
}

/// Whether `body` may be the value of a record: one JSON value, UTF-8, no raw control
/// characters (so no newline), and short enough for [`MAX_LINE_LEN`].
pub fn check_body(body: &[u8]) -> Result<(), ParseError> {
    if body.len() > MAX_LINE_LEN - 300 {
        return Err(ParseError("the event is too long (at most 1 MiB per line)"));
    }
    if std::str::from_utf8(body).is_err() {
        return Err(ParseError("the event is not UTF-8"));
    }
    if !is_json_value(body) {
        return Err(ParseError("the event is not one JSON value"));
    }
    if body.iter().any(|&c| c == b'\n' || c == b'\r') {
        return Err(ParseError("the event contains a line break"));
    }
    Ok(())
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn lit(&mut self, word: &[u8]) -> Result<(), ParseError> {
        if self.s.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(ParseError("unexpected field layout"))
        }
    }

    fn u64(&mut self) -> Result<u64, ParseError> {
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        let d = &self.s[start..self.i];
        if d.is_empty() || d.len() > 20 || (d.len() > 1 && d[0] == b'0') {
            return Err(ParseError("bad number"));
        }
        std::str::from_utf8(d)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(ParseError("bad number"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let v = self
            .s
            .get(self.i..self.i + n)
            .ok_or(ParseError("line too short"))?;
        self.i += n;
        Ok(v)
    }
}

/// Whether `ts` is `YYYY-MM-DDTHH:MM:SS.ffffffZ` with plausible fields.
pub fn valid_timestamp(ts: &[u8]) -> bool {
    if ts.len() != TS_LEN {
        return false;
    }
    let shape = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
    let ok = ts.iter().zip(shape).all(|(c, s)| match s {
        b'd' => c.is_ascii_digit(),
        _ => c == s,
    });
    let num = |a: usize, b: usize| {
        ts[a..b]
            .iter()
            .fold(0u32, |n, c| n * 10 + u32::from(c - b'0'))
    };
    ok && (1..=12).contains(&num(5, 7))
        && (1..=31).contains(&num(8, 10))
        && num(11, 13) < 24
        && num(14, 16) < 60
        && num(17, 19) < 61
}

/// Parse a line (without its `\n`).
pub fn parse(line: &[u8]) -> Result<Record<'_>, ParseError> {
    if line.len() > MAX_LINE_LEN {
        return Err(ParseError("line too long"));
    }
    if line.len() < MAC_SUFFIX_LEN + 60 {
        return Err(ParseError("line too short"));
    }
    if std::str::from_utf8(line).is_err() {
        return Err(ParseError("line is not UTF-8"));
    }
    let signed_len = line.len() - MAC_SUFFIX_LEN;
    let mut c = Cursor { s: line, i: 0 };
    c.lit(b"{\"seq\":")?;
    let seq = c.u64()?;
    c.lit(b",\"ts\":\"")?;
    let ts = c.take(TS_LEN)?;
    if !valid_timestamp(ts) {
        return Err(ParseError("bad timestamp"));
    }
    c.lit(b"\",\"epoch\":")?;
    let epoch = c.u64()?;
    c.lit(b",\"prev\":\"")?;
    let prev = unhex32(c.take(64)?).ok_or(ParseError("bad prev hash"))?;
    let internal = if c.lit(b"\",\"event\":").is_ok() {
        false
    } else {
        c.lit(b"\",\"audit\":")?;
        true
    };
    if c.i > signed_len {
        return Err(ParseError("line too short"));
    }
    let body = &line[c.i..signed_len];
    if !is_json_value(body) || body.first().is_some_and(|b| b.is_ascii_whitespace()) {
        return Err(ParseError("the event is not one JSON value"));
    }
    let mut t = Cursor {
        s: line,
        i: signed_len,
    };
    t.lit(b",\"mac\":\"")?;
    let mac = unhex32(t.take(64)?).ok_or(ParseError("bad MAC field"))?;
    t.lit(b"\"}")?;
    Ok(Record {
        seq,
        ts,
        epoch,
        prev,
        internal,
        body,
        mac,
        signed_len,
    })
}

/// The current time as a record timestamp and as microseconds since the epoch.
pub fn now() -> ([u8; TS_LEN], u64) {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    (timestamp(us), us)
}

/// Format microseconds since 1970 as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn timestamp(us: u64) -> [u8; TS_LEN] {
    let secs = us / 1_000_000;
    let frac = us % 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        y.clamp(0, 9999),
        m,
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        frac
    );
    let mut out = [b'0'; TS_LEN];
    out.copy_from_slice(&s.as_bytes()[..TS_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut v = Vec::new();
        let ts = timestamp(1_764_637_323_123_456);
        assert_eq!(&ts, b"2025-12-02T01:02:03.123456Z");
        begin_line(&mut v, 7, &ts, 2, &[0xab; 32], false, b"{\"op\":\"sign\"}");
        let n = v.len();
        finish_line(&mut v, &[0x11; 32]);
        let r = parse(&v).expect("parse");
        assert_eq!((r.seq, r.epoch, r.internal, r.signed_len), (7, 2, false, n));
        assert_eq!(r.body, b"{\"op\":\"sign\"}");
        assert_eq!(r.prev, [0xab; 32]);
        assert_eq!(r.mac, [0x11; 32]);
        assert_eq!(timestamp(0), *b"1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn refuses_variants() {
        let mut v = Vec::new();
        begin_line(&mut v, 0, &timestamp(0), 0, &[0; 32], true, b"\"x\"");
        finish_line(&mut v, &[0; 32]);
        assert!(parse(&v).is_ok());
        let s = String::from_utf8(v).expect("utf8");
        for bad in [
            s.replace("\"seq\":0", "\"seq\":00"),
            s.replace("\"epoch\":0", "\"epoch\": 0"),
            s.replace("\"audit\"", "\"other\""),
            s.replace("\"x\"", "\"x"),
            s.replace("}", ""),
            s.replace("T00", "X00"),
            s.clone() + " ",
            s.to_uppercase(),
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(check_body(b"{\"a\":\"b\nc\"}").is_err());
        assert!(check_body(b"{\"a\":\"b\\nc\"}").is_ok());
    }
}
