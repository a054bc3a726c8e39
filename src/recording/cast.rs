//! The asciicast v2 format: the header line, event lines, a streaming
//! reader, and the UTF-8 decoder that carries a sequence split across PTY
//! chunks over to the next chunk.
//!
//! asciicast is line-based: line 1 is a JSON header object, every other
//! line a JSON array `[time, code, data]` with `time` in seconds since the
//! start. Writers only ever emit whole lines, so a file cut short by a crash
//! is valid up to its last newline; the reader tolerates a torn last line.

use std::borrow::Cow;
use std::io::BufRead;

use serde::{Deserialize, Serialize};

use super::RecordingError;

/// The first line of a cast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub width: u32,
    pub height: u32,
    /// Unix time of the start, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Env>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Env {
    #[serde(rename = "TERM", default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    #[serde(rename = "SHELL", default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
}

/// An event code: output, input, resize, marker (others are kept as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Output,
    Input,
    Resize,
    Marker,
    Other,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Output => "o",
            Code::Input => "i",
            Code::Resize => "r",
            Code::Marker => "m",
            Code::Other => "?",
        }
    }

    fn parse(s: &str) -> Code {
        match s {
            "o" => Code::Output,
            "i" => Code::Input,
            "r" => Code::Resize,
            "m" => Code::Marker,
            _ => Code::Other,
        }
    }
}

/// One event line.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time: f64,
    pub code: Code,
    pub data: String,
}

impl Event {
    /// `COLSxROWS` of a resize event.
    pub fn resize_size(&self) -> Option<(u32, u32)> {
        let (c, r) = self.data.split_once('x')?;
        Some((c.trim().parse().ok()?, r.trim().parse().ok()?))
    }
}

/// The header as one line, newline included.
pub fn header_line(header: &Header) -> Result<String, RecordingError> {
    let mut s = serde_json::to_string(header)
        .map_err(|e| RecordingError::Format(format!("cannot encode the cast header: {e}")))?;
    s.push('\n');
    Ok(s)
}

/// One event as one line, newline included. Times are written with
/// microsecond precision, which players accept as a plain float.
#[cfg(test)]
pub(crate) fn event_line(time: f64, code: Code, data: &str) -> String {
    let mut line = Vec::with_capacity(data.len() + 32);
    write_event(&mut line, time, code, data);
    // Only `str` and ASCII went in.
    String::from_utf8(line).unwrap_or_default()
}

/// Appends one event line to `buf`, escaping `data` straight into it.
pub fn write_event(buf: &mut Vec<u8>, time: f64, code: Code, data: &str) {
    use std::io::Write as _;
    // Writes into a Vec cannot fail; serde_json escapes every control
    // character, so the line never breaks.
    let _ = write!(buf, "[{time:.6}, \"{}\", ", code.as_str());
    json_string(buf, data);
    buf.extend_from_slice(b"]\n");
}

/// Appends `s` as a JSON string, escaped exactly as serde_json does it
/// (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as
/// `\u00xx`), so the line never breaks.
pub fn json_string(buf: &mut Vec<u8>, s: &str) {
    buf.reserve(s.len() + 2);
    buf.push(b'"');
    // A `str` is valid UTF-8: nothing is replaced and nothing is left over.
    let _ = escape_lossy(buf, s.as_bytes(), s.len());
    buf.push(b'"');
}

/// Eight copies of a byte.
const fn splat(b: u8) -> u64 {
    u64::from_le_bytes([b; 8])
}

/// A mask with the high bit set in the lowest byte of `w` (little endian)
/// that is not plain printable ASCII needing no escape: a control
/// character, `"`, `\`, or a byte of a multi-byte sequence. Bytes above
/// the lowest flagged one may be flagged wrongly (a borrow travels up), so
/// only the lowest set bit is to be trusted, and whether any is set.
fn special(w: u64) -> u64 {
    const ONES: u64 = splat(0x01);
    const HIGHS: u64 = splat(0x80);
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let control = w.wrapping_sub(splat(0x20)) & !w & HIGHS;
    control | zero(w ^ splat(b'"')) | zero(w ^ splat(b'\\')) | (w & HIGHS)
}

/// What [`escape_lossy`] got through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scan {
    /// Where the next character starts (at or after `limit`), or where an
    /// incomplete sequence at the very end starts.
    next: usize,
    /// The input ended inside a sequence that may still be valid.
    incomplete: bool,
    /// Invalid bytes were replaced with U+FFFD.
    invalid: bool,
}

/// How a byte sequence starting with a non-ASCII byte reads as UTF-8,
/// exactly as `std::str::from_utf8` judges it.
enum Seq {
    /// A whole valid character of this many bytes.
    Char(usize),
    /// Invalid: this many bytes become one U+FFFD (`Utf8Error::error_len`).
    Invalid(usize),
    /// Valid so far, cut off by the end of the input.
    Incomplete,
}

fn utf8_seq(bytes: &[u8]) -> Seq {
    let lead = bytes.first().copied().unwrap_or_default();
    // The width, and the range the second byte must fall in (the first
    // continuation byte is where overlong forms, surrogates and values
    // above U+10FFFF are ruled out).
    let (width, lo, hi) = match lead {
        0xc2..=0xdf => (2, 0x80, 0xbf),
        0xe0 => (3, 0xa0, 0xbf),
        0xe1..=0xec | 0xee..=0xef => (3, 0x80, 0xbf),
        0xed => (3, 0x80, 0x9f),
        0xf0 => (4, 0x90, 0xbf),
        0xf1..=0xf3 => (4, 0x80, 0xbf),
        0xf4 => (4, 0x80, 0x8f),
        _ => return Seq::Invalid(1),
    };
    for k in 1..width {
        let Some(&b) = bytes.get(k) else {
            return Seq::Incomplete;
        };
        let (lo, hi) = if k == 1 { (lo, hi) } else { (0x80, 0xbf) };
        if !(lo..=hi).contains(&b) {
            return Seq::Invalid(k);
        }
    }
    Seq::Char(width)
}

/// The one pass over terminal output: validates UTF-8 and escapes for a
/// JSON string together, appending to `out`. Invalid bytes become U+FFFD
/// as `String::from_utf8_lossy` replaces them; runs of bytes needing
/// neither are found sixteen bytes at a time and copied whole. Characters
/// are read while they start before `limit`; one that is cut off by the
/// end of `input` is left for the caller to carry over.
fn escape_lossy(out: &mut Vec<u8>, input: &[u8], limit: usize) -> Scan {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let word = |at: usize| {
        input
            .get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    let mut scan = Scan {
        next: 0,
        incomplete: false,
        invalid: false,
    };
    let mut run = 0; // start of the bytes not yet copied
    let mut i = 0;
    while i < limit {
        // Skip plain text a word at a time, straight to the next byte
        // that needs a look.
        if i + 8 <= limit
            && let Some(w) = word(i)
        {
            let m = special(w);
            if m == 0 {
                i += 8;
                continue;
            }
            i += (m.trailing_zeros() / 8) as usize;
        }
        let b = input.get(i).copied().unwrap_or_default();
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            0x20..=0x7f => {
                i += 1;
                continue;
            }
            _ => match utf8_seq(input.get(i..).unwrap_or_default()) {
                Seq::Char(n) => {
                    i += n;
                    continue;
                }
                Seq::Invalid(n) => {
                    out.extend_from_slice(input.get(run..i).unwrap_or_default());
                    out.extend_from_slice("\u{FFFD}".as_bytes());
                    scan.invalid = true;
                    i += n;
                    run = i;
                    continue;
                }
                Seq::Incomplete => {
                    scan.incomplete = true;
                    break;
                }
            },
        };
        out.extend_from_slice(input.get(run..i).unwrap_or_default());
        out.extend_from_slice(esc);
        i += 1;
        run = i;
    }
    out.extend_from_slice(input.get(run..i).unwrap_or_default());
    scan.next = i;
    scan
}

/// Turns raw terminal bytes into asciicast event lines in one pass per
/// byte: UTF-8 validation and JSON escaping together, straight into the
/// caller's buffer (no copy of the chunk, no string in between). A
/// sequence split across chunks is carried over to the next one (at most
/// three bytes, held here); invalid bytes become U+FFFD. The lines are
/// exactly what [`write_event`] would write for the text that
/// [`Utf8Decoder`] makes of the same chunks.
#[derive(Debug, Default)]
pub struct TextEncoder {
    carry: [u8; 4],
    carry_len: usize,
}

impl TextEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the event line for `chunk` to `buf`: nothing when the chunk
    /// (with what was carried) holds no whole character. True when invalid
    /// bytes were replaced.
    pub fn event(&mut self, buf: &mut Vec<u8>, time: f64, code: Code, chunk: &[u8]) -> bool {
        use std::io::Write as _;
        let line_start = buf.len();
        buf.reserve(chunk.len() + 40);
        // Writes into a Vec cannot fail.
        let _ = write!(buf, "[{time:.6}, \"{}\", \"", code.as_str());
        let text_start = buf.len();
        let mut invalid = false;
        let mut rest = chunk;
        if self.carry_len > 0 {
            // The carried bytes and just enough of the chunk to finish
            // (or refute) the sequence they start.
            let c = self.carry_len;
            let take = chunk.len().min(4);
            let mut joined = [0u8; 8];
            joined[..c].copy_from_slice(&self.carry[..c]);
            joined[c..c + take].copy_from_slice(&chunk[..take]);
            let scan = escape_lossy(buf, &joined[..c + take], c);
            invalid |= scan.invalid;
            if scan.incomplete {
                // Still cut off: only possible when the whole chunk was
                // taken (a sequence is at most four bytes).
                let tail = &joined[scan.next..c + take];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len();
                rest = &[];
            } else {
                self.carry_len = 0;
                rest = chunk.get(scan.next - c..).unwrap_or_default();
            }
        }
        if !rest.is_empty() {
            let scan = escape_lossy(buf, rest, rest.len());
            invalid |= scan.invalid;
            if scan.incomplete {
                let tail = rest.get(scan.next..).unwrap_or_default();
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len();
            }
        }
        if buf.len() == text_start {
            buf.truncate(line_start);
        } else {
            buf.extend_from_slice(b"\"]\n");
        }
        invalid
    }

    /// Ends the stream: a still-incomplete sequence becomes one U+FFFD
    /// event. True when there was one.
    pub fn finish(&mut self, buf: &mut Vec<u8>, time: f64, code: Code) -> bool {
        if self.carry_len == 0 {
            return false;
        }
        self.carry_len = 0;
        write_event(buf, time, code, "\u{FFFD}");
        true
    }
}

/// Reads a cast one line at a time.
pub struct Reader<R> {
    input: R,
    line: String,
    line_no: usize,
    /// Set when the last line was torn (no newline and not JSON): the cast
    /// was cut short by a crash; everything before it is still good.
    pub torn_tail: bool,
}

impl<R: BufRead> Reader<R> {
    /// Reads and parses the header line.
    pub fn new(mut input: R) -> Result<(Header, Reader<R>), RecordingError> {
        let mut line = String::new();
        input
            .read_line(&mut line)
            .map_err(|e| RecordingError::Format(format!("cannot read the cast: {e}")))?;
        let header: Header = serde_json::from_str(line.trim_end())
            .map_err(|e| RecordingError::Format(format!("line 1: not an asciicast header: {e}")))?;
        if header.version != 2 {
            return Err(RecordingError::Format(format!(
                "line 1: asciicast version {} (only 2 is supported)",
                header.version
            )));
        }
        Ok((
            header,
            Reader {
                input,
                line,
                line_no: 1,
                torn_tail: false,
            },
        ))
    }

    /// The next event, `None` at the end.
    pub fn next_event(&mut self) -> Option<Result<Event, RecordingError>> {
        loop {
            self.line.clear();
            match self.input.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    return Some(Err(RecordingError::Format(format!(
                        "line {}: cannot read: {e}",
                        self.line_no + 1
                    ))));
                }
            }
            self.line_no += 1;
            let complete = self.line.ends_with('\n');
            let text = self.line.trim_end();
            if text.is_empty() {
                continue;
            }
            match parse_event(text) {
                Ok(ev) => return Some(Ok(ev)),
                Err(_) if !complete => {
                    self.torn_tail = true;
                    return None;
                }
                Err(msg) => {
                    return Some(Err(RecordingError::Format(format!(
                        "line {}: {msg}",
                        self.line_no
                    ))));
                }
            }
        }
    }
}

fn parse_event(text: &str) -> Result<Event, String> {
    let (time, code, data): (f64, String, String) =
        serde_json::from_str(text).map_err(|e| format!("not an asciicast event: {e}"))?;
    if !time.is_finite() || time < 0.0 {
        return Err(format!("bad event time {time}"));
    }
    Ok(Event {
        time,
        code: Code::parse(&code),
        data,
    })
}

/// Turns a byte stream into text, carrying an incomplete UTF-8 sequence at
/// the end of one chunk over to the next and replacing truly invalid bytes
/// with U+FFFD.
#[derive(Debug, Default)]
pub struct Utf8Decoder {
    carry: Vec<u8>,
}

impl Utf8Decoder {
    #[cfg(test)]
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `chunk`; the returned flag says whether invalid bytes were
    /// replaced.
    pub fn decode<'a>(&mut self, chunk: &'a [u8]) -> (Cow<'a, str>, bool) {
        if self.carry.is_empty()
            && let Ok(s) = std::str::from_utf8(chunk)
        {
            // The common case: a whole chunk of valid text, not copied.
            return (Cow::Borrowed(s), false);
        }
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(chunk);
        let mut out = String::with_capacity(bytes.len());
        let mut invalid = false;
        let mut rest: &[u8] = &bytes;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    // `good` is valid UTF-8 by construction.
                    out.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            invalid = true;
                            rest = bad.get(n..).unwrap_or_default();
                        }
                        None => {
                            // An incomplete sequence at the very end: wait
                            // for the rest of it.
                            self.carry = bad.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        (Cow::Owned(out), invalid)
    }

    /// Ends the stream: a still-incomplete sequence becomes U+FFFD.
    #[cfg(test)]
    pub fn finish(&mut self) -> Option<String> {
        if self.carry.is_empty() {
            None
        } else {
            self.carry.clear();
            Some("\u{FFFD}".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped_exactly_as_serde_json_does() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain text that is longer than eight bytes".into(),
            "a\"b\\c\n\r\t\u{8}\u{c}\u{0}\u{1b}[0m\u{7f}".into(),
            "héllo → 世界 🎉 \u{1f}".into(),
        ];
        // Every byte value below 0x80 at every position of a 17-byte string.
        for c in 0u8..0x80 {
            for pos in 0..17 {
                let mut s = "x".repeat(17);
                s.replace_range(pos..pos + 1, &char::from(c).to_string());
                cases.push(s);
            }
        }
        for s in cases {
            let mut ours = Vec::new();
            json_string(&mut ours, &s);
            let theirs = serde_json::to_string(&s).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), theirs, "{s:?}");
        }
    }

    /// The line serde_json would write for `text`, as `write_event` did
    /// before the one-pass encoder.
    fn reference_line(time: f64, code: Code, text: &str) -> String {
        format!(
            "[{time:.6}, \"{}\", {}]\n",
            code.as_str(),
            serde_json::to_string(text).unwrap()
        )
    }

    /// Random terminal-ish bytes: plain text, every control character,
    /// quotes and backslashes, valid multi-byte characters, and the ways
    /// UTF-8 goes wrong (stray continuation bytes, bad leads, overlong
    /// forms, surrogates, values above U+10FFFF, cut-off sequences).
    fn random_bytes(rng: &mut impl rand::Rng, len: usize) -> Vec<u8> {
        const PIECES: &[&[u8]] = &[
            b"plain text ",
            b"\x1b[0m",
            b"\r\n",
            b"\"",
            b"\\",
            b"\x7f",
            "é".as_bytes(),
            "→".as_bytes(),
            "世界".as_bytes(),
            "🎉".as_bytes(),
            "\u{10FFFF}".as_bytes(),
            b"\x80",
            b"\xbf",
            b"\xc0\xaf",
            b"\xc1\xbf",
            b"\xe0\x80\xaf",
            b"\xe0\x9f\xbf",
            b"\xed\xa0\x80",
            b"\xf0\x8f\xbf\xbf",
            b"\xf4\x90\x80\x80",
            b"\xf5\x80",
            b"\xff",
            b"\xe2\x82",
            b"\xf0\x9f\x8e",
            b"\xc3",
        ];
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            match rng.gen_range(0..4) {
                0 => out.push(rng.r#gen::<u8>()),
                1 => out.push(rng.gen_range(0..0x20)),
                _ => out.extend_from_slice(PIECES[rng.gen_range(0..PIECES.len())]),
            }
        }
        out
    }

    #[test]
    fn the_one_pass_encoder_writes_what_serde_json_would_for_chunks_cut_anywhere() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(22);
        for round in 0..3000 {
            let len = rng.gen_range(0..300);
            let bytes = random_bytes(&mut rng, len);
            let code = if round % 2 == 0 {
                Code::Output
            } else {
                Code::Input
            };
            let mut ours = Vec::new();
            let mut theirs = String::new();
            let mut enc = TextEncoder::new();
            let mut dec = Utf8Decoder::new();
            let mut at = 0;
            let mut t = 0.0;
            while at < bytes.len() {
                // Mostly short chunks, so that cuts fall inside sequences
                // and carries meet carries; sometimes a long one.
                let n = match rng.gen_range(0..10) {
                    0 => 0,
                    1..=4 => rng.gen_range(1..4),
                    5..=8 => rng.gen_range(1..24),
                    _ => rng.gen_range(1..200),
                };
                let chunk = &bytes[at..(at + n).min(bytes.len())];
                at += chunk.len();
                t += 0.25;
                let bad_ours = enc.event(&mut ours, t, code, chunk);
                let (text, bad_theirs) = dec.decode(chunk);
                assert_eq!(bad_ours, bad_theirs, "{bytes:?}");
                if !text.is_empty() {
                    theirs.push_str(&reference_line(t, code, &text));
                }
            }
            enc.finish(&mut ours, t, code);
            if let Some(tail) = dec.finish() {
                theirs.push_str(&reference_line(t, code, &tail));
            }
            let ours = String::from_utf8(ours).expect("the encoder wrote UTF-8");
            assert_eq!(ours, theirs, "{bytes:?}");
            // And the text is the whole stream's lossy decoding.
            let joined: String = ours
                .lines()
                .map(|l| serde_json::from_str::<(f64, String, String)>(l).unwrap().2)
                .collect();
            assert_eq!(joined, String::from_utf8_lossy(&bytes), "{bytes:?}");
        }
    }

    #[test]
    fn the_encoder_takes_a_chunk_whole_when_it_needs_no_carry() {
        // Long plain runs, escapes at every offset of the fast path's
        // words, non-ASCII between them.
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&"x".repeat(i));
            text.push_str(["\r\n", "\"", "é", "\u{1}", "🎉"][i % 5]);
        }
        let mut ours = Vec::new();
        assert!(!TextEncoder::new().event(&mut ours, 1.5, Code::Output, text.as_bytes()));
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            reference_line(1.5, Code::Output, &text)
        );
    }

    #[test]
    fn split_utf8_sequences_are_carried_to_the_next_chunk() {
        let text = "héllo → 世界 🎉";
        let bytes = text.as_bytes();
        // Every possible split point, including inside multi-byte sequences.
        for cut in 0..=bytes.len() {
            let mut d = Utf8Decoder::new();
            let (a, bad_a) = d.decode(&bytes[..cut]);
            let (b, bad_b) = d.decode(&bytes[cut..]);
            assert!(!bad_a && !bad_b, "cut {cut}");
            assert_eq!(format!("{a}{b}"), text, "cut {cut}");
            assert_eq!(d.finish(), None);
        }
        // One byte at a time.
        let mut d = Utf8Decoder::new();
        let joined: String = bytes
            .iter()
            .map(|b| d.decode(&[*b]).0.into_owned())
            .collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut d = Utf8Decoder::new();
        let (s, bad) = d.decode(b"a\xffb\xc3(");
        assert!(bad);
        assert_eq!(s, "a\u{FFFD}b\u{FFFD}(");
        let (s, _) = d.decode(b"x\xe2\x82");
        assert_eq!(s, "x");
        assert_eq!(d.finish().as_deref(), Some("\u{FFFD}"));
    }

    #[test]
    fn events_round_trip_through_the_reader() {
        let header = Header {
            version: 2,
            width: 80,
            height: 24,
            timestamp: Some(1),
            command: None,
            title: Some("t".into()),
            env: Some(Env {
                term: Some("xterm".into()),
                shell: None,
            }),
        };
        let mut cast = header_line(&header).unwrap();
        cast.push_str(&event_line(0.5, Code::Output, "a\"b\n\u{1b}[0m\u{0}"));
        cast.push_str(&event_line(1.25, Code::Resize, "100x40"));
        cast.push_str("[2.0, \"o\", \"tor"); // a crash mid-line
        let (h, mut r) = Reader::new(cast.as_bytes()).unwrap();
        assert_eq!(h, header);
        let e1 = r.next_event().unwrap().unwrap();
        assert_eq!(e1.data, "a\"b\n\u{1b}[0m\u{0}");
        assert_eq!(e1.code, Code::Output);
        let e2 = r.next_event().unwrap().unwrap();
        assert_eq!(e2.resize_size(), Some((100, 40)));
        assert!(r.next_event().is_none());
        assert!(r.torn_tail);
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error() {
        let cast = "{\"version\":2,\"width\":1,\"height\":1}\nnope\n[1.0, \"o\", \"x\"]\n";
        let (_, mut r) = Reader::new(cast.as_bytes()).unwrap();
        let err = r.next_event().unwrap().unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
