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
/// `\u00xx`), so the line never breaks. Terminal output is mostly plain
/// text: eight bytes at a time are checked for anything to escape, and
/// runs that need none are copied whole.
pub fn json_string(buf: &mut Vec<u8>, s: &str) {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    /// Any byte of `v` zero (exact as a yes/no answer).
    fn has_zero(v: u64) -> bool {
        v.wrapping_sub(ONES) & !v & HIGHS != 0
    }
    /// Any byte below 0x20, or a quote, or a backslash.
    fn needs_escape(w: u64) -> bool {
        w.wrapping_sub(ONES * 0x20) & !w & HIGHS != 0
            || has_zero(w ^ (ONES * u64::from(b'"')))
            || has_zero(w ^ (ONES * u64::from(b'\\')))
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    buf.reserve(bytes.len() + 2);
    buf.push(b'"');
    let mut run = 0; // start of the bytes not yet copied
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes
            .get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            && !needs_escape(u64::from_ne_bytes(word))
        {
            i += 8;
            continue;
        }
        let b = bytes.get(i).copied().unwrap_or_default();
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
            _ => {
                i += 1;
                continue;
            }
        };
        buf.extend_from_slice(bytes.get(run..i).unwrap_or_default());
        buf.extend_from_slice(esc);
        i += 1;
        run = i;
    }
    buf.extend_from_slice(bytes.get(run..).unwrap_or_default());
    buf.push(b'"');
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
