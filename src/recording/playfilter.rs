//! What `recordings play` lets through to the auditor's terminal.
//!
//! A cast holds whatever the target wrote, and the user under review chose
//! that. Replayed raw, it can attack the reviewer: OSC 52 writes the
//! clipboard (a `curl ...|sh` waiting to be pasted), OSC 8 plants links,
//! OSC 0/1/2 retitle the window, and device queries (DA `ESC[c`, DSR
//! `ESC[6n`, DECRQSS `ESC P $ q`, window reports `ESC[21t`, ENQ) make the
//! terminal *type* its answer into whatever reads it after playback. The
//! web player draws them inert; this filter does the same for a terminal.
//!
//! It keeps what draws the screen (text, the usual C0 controls, SGR
//! colours, cursor movement, erase, scroll regions, the alternate screen,
//! charset designation) and drops everything else: an allowlist, not a
//! denylist, so an escape a terminal grows tomorrow is dropped too. Every
//! string sequence (OSC, DCS, SOS, PM, APC) is dropped whole. An escape is
//! written only once it is complete and allowed, so the terminal never sees
//! a partial sequence that later bytes could complete into something else.
//! C1 controls encoded in UTF-8 (U+0080..U+009F, which some terminals obey)
//! are treated as their 7-bit forms.
//!
//! No I/O: [`PlayFilter::feed`] takes chunks cut anywhere (state carries
//! over, even inside a UTF-8 character or an escape) and appends what may
//! pass to a buffer; [`PlayFilter::finish`] drops an unfinished sequence.

/// Longest control sequence kept; a longer one is dropped whole (real
/// screen-drawing sequences are a few bytes; a long one is an attempt).
const MAX_SEQUENCE: usize = 64;

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;
const CAN: u8 = 0x18;
const SUB: u8 = 0x1a;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// A 0xC2 byte seen in the ground state: the next byte says whether
    /// this is a C1 control (0x80..=0x9F) or an ordinary character.
    Utf8C2,
    /// After ESC; `buf` holds ESC and any intermediates (0x20..=0x2F).
    Escape,
    /// Inside a CSI; `buf` holds `ESC [` and what followed.
    Csi,
    /// Inside a CSI that is too long or malformed: dropped up to its final byte.
    CsiIgnore,
    /// Inside OSC, DCS, SOS, PM or APC: dropped up to the string terminator.
    Str {
        bel_ends: bool,
    },
    /// An ESC inside a string: `\` ends the string, anything else starts a
    /// new escape (as terminals do).
    StrEsc {
        bel_ends: bool,
    },
    /// A 0xC2 inside a string: 0x9C (ST) would end it.
    StrC2 {
        bel_ends: bool,
    },
}

/// The filter; one per replayed stream.
#[derive(Debug)]
pub struct PlayFilter {
    state: State,
    buf: Vec<u8>,
}

impl Default for PlayFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl PlayFilter {
    pub fn new() -> PlayFilter {
        PlayFilter {
            state: State::Ground,
            buf: Vec::with_capacity(MAX_SEQUENCE),
        }
    }

    /// Filters `input`, appending what may reach the terminal to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            self.byte(b, out);
        }
    }

    /// End of the stream: an unfinished sequence is dropped.
    pub fn finish(&mut self, _out: &mut Vec<u8>) {
        self.buf.clear();
        self.state = State::Ground;
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.state {
            State::Ground => self.ground(b, out),
            State::Utf8C2 => {
                self.state = State::Ground;
                match b {
                    0x80..=0x9f => self.c1(b),
                    0xa0..=0xbf => out.extend_from_slice(&[0xc2, b]),
                    // Not UTF-8: the lone lead byte is dropped, so no
                    // later byte can pair with it into a C1 control.
                    _ => self.ground(b, out),
                }
            }
            State::Escape => self.escape(b, out),
            State::Csi => self.csi(b, out),
            State::CsiIgnore => match b {
                ESC => self.start_escape(),
                CAN | SUB => self.state = State::Ground,
                0x40..=0x7e => self.state = State::Ground,
                _ => {}
            },
            State::Str { bel_ends } => match b {
                ESC => self.state = State::StrEsc { bel_ends },
                CAN | SUB => self.state = State::Ground,
                BEL if bel_ends => self.state = State::Ground,
                0xc2 => self.state = State::StrC2 { bel_ends },
                _ => {}
            },
            State::StrEsc { bel_ends } => {
                if b == b'\\' {
                    self.state = State::Ground;
                } else {
                    // Not ST: the terminal ends the string here and reads
                    // ESC plus this byte as a new escape.
                    let _ = bel_ends;
                    self.start_escape();
                    self.escape(b, out);
                }
            }
            State::StrC2 { bel_ends } => {
                if b == 0x9c {
                    self.state = State::Ground;
                } else {
                    self.state = State::Str { bel_ends };
                    self.byte(b, out);
                }
            }
        }
    }

    fn ground(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            ESC => self.start_escape(),
            0xc2 => self.state = State::Utf8C2,
            // Backspace, tab, line feed, vertical tab, form feed, carriage
            // return, bell, shift out/in (charset switching).
            0x07..=0x0f => out.push(b),
            // NUL, ENQ (answerback), CAN, SUB and the other C0 controls.
            0x00..=0x06 | 0x10..=0x1f => {}
            _ => out.push(b),
        }
    }

    fn start_escape(&mut self) {
        self.buf.clear();
        self.buf.push(ESC);
        self.state = State::Escape;
    }

    /// A C1 control written as U+0080..U+009F: its 7-bit meaning.
    fn c1(&mut self, b: u8) {
        let seven = b - 0x40;
        match seven {
            b'[' => {
                self.buf.clear();
                self.buf.extend_from_slice(&[ESC, b'[']);
                self.state = State::Csi;
            }
            b']' => self.state = State::Str { bel_ends: true },
            b'P' | b'X' | b'^' | b'_' => self.state = State::Str { bel_ends: false },
            // IND, NEL, HTS, RI, SS2, SS3, ST, and the rest: dropped.
            _ => {}
        }
    }

    fn escape(&mut self, b: u8, out: &mut Vec<u8>) {
        let has_intermediate = self.buf.len() > 1;
        match b {
            CAN | SUB => self.state = State::Ground,
            ESC => self.start_escape(),
            // C0 controls inside an escape are executed by terminals.
            0x00..=0x1f => self.ground(b, out),
            0x20..=0x2f => {
                if self.buf.len() >= 3 {
                    // Nothing kept has more than one intermediate.
                    self.buf.clear();
                    self.state = State::CsiIgnore;
                } else {
                    self.buf.push(b);
                }
            }
            b'[' if !has_intermediate => {
                self.buf.push(b);
                self.state = State::Csi;
            }
            b']' if !has_intermediate => self.state = State::Str { bel_ends: true },
            b'P' | b'X' | b'^' | b'_' if !has_intermediate => {
                self.state = State::Str { bel_ends: false }
            }
            0x30..=0x7e => {
                self.buf.push(b);
                if escape_allowed(&self.buf) {
                    out.extend_from_slice(&self.buf);
                }
                self.buf.clear();
                self.state = State::Ground;
            }
            // DEL is ignored inside escapes; other bytes end it unheard.
            0x7f => {}
            _ => {
                self.buf.clear();
                self.state = State::Ground;
                self.ground(b, out);
            }
        }
    }

    fn csi(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            CAN | SUB => {
                self.buf.clear();
                self.state = State::Ground;
            }
            ESC => self.start_escape(),
            0x00..=0x1f => self.ground(b, out),
            0x7f => {}
            0x20..=0x3f => {
                if self.buf.len() >= MAX_SEQUENCE {
                    self.buf.clear();
                    self.state = State::CsiIgnore;
                } else {
                    self.buf.push(b);
                }
            }
            0x40..=0x7e => {
                self.buf.push(b);
                if let Some(kept) = csi_allowed(&self.buf) {
                    out.extend_from_slice(&kept);
                }
                self.buf.clear();
                self.state = State::Ground;
            }
            _ => {
                // A byte no CSI can hold: the sequence is malformed.
                self.buf.clear();
                self.state = State::Ground;
                self.ground(b, out);
            }
        }
    }
}

/// `ESC [intermediate] final`: what draws or resets the screen.
fn escape_allowed(seq: &[u8]) -> bool {
    match seq {
        // Save/restore cursor, keypad modes, index, next line, tab set,
        // reverse index, full reset.
        [ESC, f] => b"78=>DEHMc".contains(f),
        // Charset designation G0..G3.
        [ESC, b'(' | b')' | b'*' | b'+' | b'-' | b'.' | b'/', f] => (0x30..=0x7e).contains(f),
        // Double-height/width lines, screen alignment test.
        [ESC, b'#', f] => b"34568".contains(f),
        _ => false,
    }
}

/// DEC private modes that only change how the screen is drawn. Everything
/// else (mouse and focus reporting, bracketed paste, 8-bit controls...)
/// would make the terminal send input or change beyond the replay.
const DEC_MODES: &[&[u8]] = &[
    b"1", b"3", b"5", b"6", b"7", b"12", b"25", b"47", b"1047", b"1048", b"1049", b"2026",
];

/// A complete CSI (`ESC [ params intermediates final`): the bytes to write,
/// or `None` to drop it.
fn csi_allowed(seq: &[u8]) -> Option<Vec<u8>> {
    let body = seq.get(2..)?;
    let (&last, rest) = body.split_last()?;
    let params_end = rest
        .iter()
        .position(|b| (0x20..=0x2f).contains(b))
        .unwrap_or(rest.len());
    let (params, intermediates) = rest.split_at(params_end);
    // Parameters come before intermediates; a parameter byte after an
    // intermediate makes the sequence malformed.
    if intermediates.iter().any(|b| !(0x20..=0x2f).contains(b)) {
        return None;
    }
    let (prefix, numbers) = match params.first() {
        Some(p @ (b'<' | b'=' | b'>' | b'?')) => (Some(*p), params.get(1..).unwrap_or_default()),
        _ => (None, params),
    };
    // Only digits and separators after the prefix.
    if !numbers
        .iter()
        .all(|b| b.is_ascii_digit() || *b == b';' || *b == b':')
    {
        return None;
    }
    let keep = match (prefix, intermediates, last) {
        // Insert and line-feed modes; not send/receive (local echo) and
        // the rest.
        (None, [], b'h' | b'l') => numbers
            .split(|b| *b == b';')
            .all(|m| m == b"4" || m == b"20"),
        // Cursor movement, erase, insert/delete, scroll, tabs, repeat,
        // SGR, scroll region, save/restore cursor.
        (None, [], f) => b"@ABCDEFGHIJKLMPSTXZ`abdefgmrsu".contains(&f),
        // Selective erase.
        (Some(b'?'), [], b'J' | b'K') => true,
        // DEC private modes: only those that draw, the others are removed.
        (Some(b'?'), [], b'h' | b'l') => {
            let kept: Vec<&[u8]> = numbers
                .split(|b| *b == b';')
                .filter(|m| DEC_MODES.contains(m))
                .collect();
            if kept.is_empty() {
                return None;
            }
            let mut out = b"\x1b[?".to_vec();
            out.extend_from_slice(&kept.join(&b';'));
            out.push(last);
            return Some(out);
        }
        // Cursor style, soft reset.
        (None, [b' '], b'q') | (None, [b'!'], b'p') => true,
        _ => false,
    };
    keep.then(|| seq.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> Vec<u8> {
        let mut f = PlayFilter::new();
        let mut out = Vec::new();
        f.feed(input, &mut out);
        f.finish(&mut out);
        out
    }

    /// Input and the expected output, kept and dropped.
    const TABLE: &[(&[u8], &[u8])] = &[
        (b"plain text\r\n", b"plain text\r\n"),
        (
            "h\u{e9}llo \u{2603}".as_bytes(),
            "h\u{e9}llo \u{2603}".as_bytes(),
        ),
        // SGR colours, cursor movement, erase.
        (b"\x1b[1;31mred\x1b[0m", b"\x1b[1;31mred\x1b[0m"),
        (b"\x1b[38;2;1;2;3mx", b"\x1b[38;2;1;2;3mx"),
        (b"\x1b[38:5:100mx", b"\x1b[38:5:100mx"),
        (
            b"\x1b[H\x1b[2J\x1b[K\x1b[10;5H",
            b"\x1b[H\x1b[2J\x1b[K\x1b[10;5H",
        ),
        (b"\x1b[3A\x1b[2B\x1b[C\x1b[D", b"\x1b[3A\x1b[2B\x1b[C\x1b[D"),
        (b"\x1b[1;24r\x1b7\x1b8\x1bM", b"\x1b[1;24r\x1b7\x1b8\x1bM"),
        (b"\x1b[?1049h\x1b[?25l", b"\x1b[?1049h\x1b[?25l"),
        (b"\x1b(0qqq\x1b(B", b"\x1b(0qqq\x1b(B"),
        (b"\x1b[2 q", b"\x1b[2 q"),
        // OSC 52 clipboard, OSC 8 links, titles: dropped whole, BEL or ST.
        (b"a\x1b]52;c;Y3VybCB4fHNo\x07b", b"ab"),
        (b"a\x1b]52;c;Y3VybCB4fHNo\x1b\\b", b"ab"),
        (b"\x1b]8;;https://evil/\x1b\\link\x1b]8;;\x1b\\", b"link"),
        (b"\x1b]0;pwned\x07\x1b]2;x\x07\x1b]1;y\x07t", b"t"),
        // C1 OSC and ST in UTF-8.
        ("a\u{9d}52;c;eA==\u{9c}b".as_bytes(), b"ab"),
        ("a\u{9b}6nb".as_bytes(), b"ab"),
        ("a\u{9b}31mb".as_bytes(), b"a\x1b[31mb"),
        // Device queries: DA, DSR, DECRQSS, DECRQM, XTVERSION, window
        // reports, DECID, ENQ.
        (b"\x1b[c\x1b[>c\x1b[=c\x1b[0c", b""),
        (b"\x1b[6n\x1b[5n\x1b[?6n", b""),
        (b"\x1bP$qm\x1b\\", b""),
        (b"\x1b[?2004$p\x1b[>q\x1b[21t\x1b[14t\x1b[8;1;1t", b""),
        (b"\x1bZ\x05", b""),
        // Modes that make the terminal send input: removed, others kept.
        (b"\x1b[?1000h\x1b[?1006;1004h", b""),
        (b"\x1b[?25;1000;1049h", b"\x1b[?25;1049h"),
        (b"\x1b[?2004h", b""),
        (b"\x1b[4h\x1b[12l\x1b[4;20l", b"\x1b[4h\x1b[4;20l"),
        // Kitty keyboard protocol, XTMODKEYS, 8-bit controls, UTF-8 switch.
        (b"\x1b[>1u\x1b[?u\x1b[>4;2m\x1b G\x1b%@", b""),
        // APC, PM, SOS, DCS (sixel, tmux passthrough).
        (b"\x1b_Gf=100;AAAA\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\x", b"x"),
        (b"\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\y", b"y"),
        // CAN aborts a sequence; a new ESC starts another one.
        (b"\x1b]52;c;x\x18after", b"after"),
        (b"\x1b[31\x1b[32mx", b"\x1b[32mx"),
        // A string ended by ESC not followed by `\`: the escape after it
        // is read as such.
        (b"\x1b]0;t\x1b[1mz", b"\x1b[1mz"),
        // An overlong CSI is dropped whole.
        (
            b"\x1b[11111111111111111111111111111111111111111111111111111111111111111111111mz",
            b"z",
        ),
        // Unknown or private finals and garbage parameters.
        (b"\x1b[?5W\x1b[1;2;3$x\x1b[=5u\x1b[1x", b""),
        // Unterminated at the end: dropped.
        (b"ok\x1b]52;c;", b"ok"),
        (b"ok\x1b[3", b"ok"),
    ];

    #[test]
    fn table() {
        for (input, want) in TABLE {
            assert_eq!(
                run(input).escape_ascii().to_string(),
                want.escape_ascii().to_string(),
                "input {}",
                input.escape_ascii()
            );
        }
    }

    #[test]
    fn chunks_cut_anywhere_give_the_same_output() {
        for (input, want) in TABLE {
            for cut in 0..=input.len() {
                for cut2 in cut..=input.len() {
                    let mut f = PlayFilter::new();
                    let mut out = Vec::new();
                    f.feed(&input[..cut], &mut out);
                    f.feed(&input[cut..cut2], &mut out);
                    f.feed(&input[cut2..], &mut out);
                    f.finish(&mut out);
                    assert_eq!(
                        &out,
                        want,
                        "input {} cut at {cut}/{cut2}",
                        input.escape_ascii()
                    );
                }
            }
        }
        // Byte by byte.
        for (input, want) in TABLE {
            let mut f = PlayFilter::new();
            let mut out = Vec::new();
            for b in input.iter() {
                f.feed(std::slice::from_ref(b), &mut out);
            }
            f.finish(&mut out);
            assert_eq!(&out, want);
        }
    }

    /// A tiny deterministic generator (no extra dependency).
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_input_never_panics_and_output_is_inert() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        // Bytes that matter to the parser, plus anything at all.
        let alphabet: &[u8] = b"\x1b[]P\\\x07\x18;?>0123456789mhlcnqtu$ \xc2\x9b\x9d\x9c\x90ab";
        for round in 0..3000 {
            let len = (rng.next() % 200) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    let r = rng.next();
                    if r.is_multiple_of(4) {
                        (r >> 8) as u8
                    } else {
                        alphabet[((r >> 8) as usize) % alphabet.len()]
                    }
                })
                .collect();
            let mut f = PlayFilter::new();
            let mut out = Vec::new();
            let cut = if len == 0 { 0 } else { round % len };
            f.feed(&input[..cut], &mut out);
            f.feed(&input[cut..], &mut out);
            f.finish(&mut out);
            // What passed is a fixed point: filtering again changes
            // nothing, so every escape in it is complete and allowed.
            assert_eq!(run(&out), out, "input {}", input.escape_ascii());
            // Never a string sequence, never a device query.
            let s = out.escape_ascii().to_string();
            for bad in [
                "\\x1b]",
                "\\x1bP",
                "\\x1b_",
                "\\x1b^",
                "\\x1bX",
                "\\xc2\\x9d",
                "\\xc2\\x9b",
            ] {
                assert!(!s.contains(bad), "{bad} in {s}");
            }
        }
    }
}
