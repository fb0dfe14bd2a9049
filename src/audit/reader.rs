//! Reading a log line by line in bounded memory: a line longer than
//! [`MAX_LINE_LEN`](super::record::MAX_LINE_LEN) is skipped to its end and reported as
//! [`Line::Overlong`], never buffered.

use std::io::{BufRead, BufReader, Read};

use super::record::MAX_LINE_LEN;

/// One line of the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line (without its `\n`).
    Complete(&'a [u8]),
    /// Bytes at the end of the file with no `\n` after them (at most `MAX_LINE_LEN + 1` of
    /// them are kept; the count is in `len`).
    Torn { bytes: &'a [u8], len: u64 },
    /// A complete line longer than the limit (its length).
    Overlong(u64),
}

/// A line reader over any byte source.
pub struct LineReader<R: Read> {
    r: BufReader<R>,
    buf: Vec<u8>,
    /// Offset (from where reading began) of the start of the next line.
    pub offset: u64,
}

impl<R: Read> LineReader<R> {
    /// A reader with a 256 KiB buffer; `offset` is the position `r` starts at.
    pub fn new(r: R, offset: u64) -> Self {
        LineReader {
            r: BufReader::with_capacity(256 * 1024, r),
            buf: Vec::new(),
            offset,
        }
    }

    /// The next line with its start offset, or `None` at the end.
    pub fn next_line(&mut self) -> std::io::Result<Option<(u64, Line<'_>)>> {
        self.buf.clear();
        let start = self.offset;
        let mut len: u64 = 0;
        loop {
            let avail = match self.r.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if len == 0 {
                    return Ok(None);
                }
                self.offset += len;
                return Ok(Some((
                    start,
                    Line::Torn {
                        bytes: &self.buf,
                        len,
                    },
                )));
            }
            let (take, done) = match memchr(avail) {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            let room = (MAX_LINE_LEN + 1).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&avail[..take.min(room)]);
            len += take as u64;
            self.r.consume(take + usize::from(done));
            if done {
                self.offset += len + 1;
                return Ok(Some((
                    start,
                    if len as usize > MAX_LINE_LEN {
                        Line::Overlong(len)
                    } else {
                        Line::Complete(&self.buf)
                    },
                )));
            }
        }
    }
}

/// The first `\n` in `s`: eight bytes at a time (a word has a zero byte after XOR with
/// `0x0a0a...` exactly when it holds a newline), then byte by byte in that word.
fn memchr(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let mut i = 0;
    while i + 8 <= s.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        let x = u64::from_le_bytes(w) ^ NL;
        if x.wrapping_sub(LO) & !x & HI != 0 {
            break;
        }
        i += 8;
    }
    s[i..].iter().position(|&c| c == b'\n').map(|p| p + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memchr_finds_the_first_newline() {
        for len in 0..40 {
            for at in 0..=len {
                let mut v = vec![b'x'; len];
                if at < len {
                    v[at] = b'\n';
                    if at + 3 < len {
                        v[at + 3] = b'\n';
                    }
                }
                let want = v.iter().position(|&c| c == b'\n');
                assert_eq!(memchr(&v), want, "{len} {at}");
            }
        }
        assert_eq!(memchr(&[0x8a, 0x0b, 0x09, 0xff, 0, 0, 0, 0, 0x0a]), Some(8));
    }

    #[test]
    fn lines_torn_and_overlong() {
        let mut data = b"a\nbb\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE_LEN + 5));
        data.extend_from_slice(b"\nend");
        let mut r = LineReader::new(&data[..], 0);
        assert_eq!(r.next_line().expect("io"), Some((0, Line::Complete(b"a"))));
        assert_eq!(r.next_line().expect("io"), Some((2, Line::Complete(b"bb"))));
        assert_eq!(
            r.next_line().expect("io"),
            Some((5, Line::Overlong(MAX_LINE_LEN as u64 + 5)))
        );
        let at = 5 + MAX_LINE_LEN as u64 + 6;
        assert_eq!(
            r.next_line().expect("io"),
            Some((
                at,
                Line::Torn {
                    bytes: b"end",
                    len: 3
                }
            ))
        );
        assert_eq!(r.next_line().expect("io"), None);
        assert_eq!(r.offset, data.len() as u64);
    }
}
