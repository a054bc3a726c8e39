//! Interactive command lines, reconstructed from keystrokes.
//!
//! [`LineTracker`] watches the bytes a staff member types into a PTY shell
//! (client to target) and cuts them into [`Segment`]s: bytes to forward as
//! they are, and [`Submit`]s, the bytes up to and including an Enter
//! together with the line that Enter submits. The caller checks the line
//! against policy and forwards either the bytes or, for a refused line,
//! [`Submit::blocked_kill`] and then (after the notice) an Enter. Nothing is ever held back: bytes that
//! do not end a line are returned at once, so typing latency is unchanged.
//!
//! The model is GNU readline's emacs mode (bash's default; zsh's zle and a
//! plain cooked tty agree on everything common): printable text (UTF-8, even
//! split across chunks) inserts at the cursor; Backspace (0x7f, 0x08),
//! Delete (`ESC [ 3 ~`, Ctrl-D), Left/Right (`ESC [ D`/`C`, `ESC O D`/`C`,
//! Ctrl-B/Ctrl-F), word moves (Alt-b/f, Ctrl-Left/Right), Home/End (Ctrl-A,
//! Ctrl-E and their keys), Ctrl-U, Ctrl-K, Ctrl-W, Alt-d, Alt-Backspace,
//! Ctrl-Y (the last kill), Ctrl-T, Ctrl-V (quoted insert), Ctrl-C (abandons
//! the line), Ctrl-G (leaves a history search), CR and LF (Enter).
//!
//! Bracketed paste (`ESC [ 200 ~` .. `ESC [ 201 ~`) is honoured only while
//! the target has switched it on (`ESC [ ? 2004 h` seen by
//! [`LineTracker::scan_output`]). Inside a paste, text goes into the line
//! literally and newlines do NOT submit: readline and zle put the whole
//! paste into the edit buffer (CR becomes LF) and run it at the next Enter,
//! so that Submit's `line` holds several commands separated by `\n`: check
//! each ([`Submit::commands`]). Without bracketed paste every CR or LF
//! submits a line, as the shell will read them.
//!
//! # What cannot be known
//!
//! Some keys change the line in ways only the shell knows. The tracker then
//! sets `uncertain` on the line and keeps `line` as "the known text, edited
//! as if the unknown parts were empty":
//! - completion (Tab, Esc Esc): the shell inserts text we never see;
//! - history (Up/Down, Ctrl-P/N, Page keys, Ctrl-R/Ctrl-S searches, Ctrl-O,
//!   Alt-. and other Alt keys, numeric arguments, undo): the recalled text
//!   is the shell's;
//! - lines longer than [`MAX_LINE`] characters (the rest is not kept).
//!
//! The tracker knows which side of the cursor holds the unknown text, so a
//! later Ctrl-U (after Up), or Ctrl-E Ctrl-U, or Ctrl-A Ctrl-K makes the
//! line exact again; Ctrl-C and Enter always start an exact, empty line.
//!
//! Beyond that, and not detectable here:
//! - vi mode (`set -o vi`): command-mode keys are read as text;
//! - continuation lines (a trailing `\`, an open quote, a heredoc body) are
//!   submitted one by one, each alone;
//! - any other program reading the terminal (a REPL, `mysql`, `cat`) gets
//!   its lines checked as if they were shell commands;
//! - what the shell runs without an Enter from the user: Ctrl-X Ctrl-E
//!   (edit in `$EDITOR` and run), aliases, functions, scripts, `eval`;
//! - full-screen programs: every key in vim is noise. The tracker pauses
//!   while the target shows the alternate screen (`ESC [ ? 1049 h` / `1047`
//!   / `47`, seen by [`LineTracker::scan_output`]) and restarts with an
//!   empty line when it leaves. A user can print that sequence on purpose:
//!   this is a guard against mistakes and an audit aid, not a sandbox.
//!
//! Typed secrets: a line typed at a prompt that looks like a password
//! prompt (`password`, `passphrase`, `passcode`, `verification code`, ..
//! followed by `:` at the end of the target's output) is marked `secret`;
//! its text must never be written to logs or the audit.
//!
//! Both directions must be fed for the tracker to be right: [`feed`] with
//! every client byte of the channel, [`scan_output`] with every target byte
//! before it reaches the client.
//!
//! [`feed`]: LineTracker::feed
//! [`scan_output`]: LineTracker::scan_output
//!
//! Layer: the bottom of `server/` (pure); imports nothing of `server/`.

mod keys;
mod output;

use std::mem;

/// Longest line kept, in characters; beyond it the line is uncertain.
pub const MAX_LINE: usize = 16 * 1024;
/// Longest control sequence parameter string kept (longer ones are unknown
/// keys, or ignored in the output).
const MAX_SEQ: usize = 32;
/// Output kept after the last newline, to recognise a password prompt.
const TAIL_MAX: usize = 160;

const CTRL_E: u8 = 0x05;
const CTRL_U: u8 = 0x15;
const PASTE_END: &[u8] = b"\x1b[201~";
/// The Enter that ends a blocked line's replacement (an empty line).
pub const BLOCKED_ENTER: u8 = b'\r';
/// Words that make the prompt before a line a secret prompt.
const SECRET_PROMPTS: &[&str] = &[
    "password",
    "passphrase",
    "passcode",
    "verification code",
    "one-time",
    "otp",
];

/// A piece of one chunk of client input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Bytes to forward unchanged.
    Pass(Vec<u8>),
    /// Bytes ending with an Enter; forward them if the line is allowed.
    Submit(Submit),
}

/// A line the user submitted, and the bytes (of this chunk) that submit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// The reconstructed line. After a bracketed paste it may hold several
    /// commands separated by `\n` (see [`Submit::commands`]).
    pub line: String,
    /// The line may differ from what the shell runs (see the module doc).
    pub uncertain: bool,
    /// Typed at what looks like a password prompt: never log `line`.
    pub secret: bool,
    /// The bytes since the previous segment, ending with the Enter key.
    pub bytes: Vec<u8>,
    /// How many bytes at the end of `bytes` are the Enter key itself.
    enter_len: usize,
}

impl Submit {
    /// The commands in the line: one per `\n`-separated part, trimmed, empty
    /// ones left out. Policy should check each.
    pub fn commands(&self) -> Vec<&str> {
        self.line
            .split('\n')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }

    /// What to forward instead of `bytes` when the line is refused: the
    /// bytes without the Enter, then Ctrl-E Ctrl-U (end of line, kill the
    /// whole line: readline and zle; a cooked tty ignores the Ctrl-E and
    /// kills with Ctrl-U), then CR so the shell prints a fresh prompt.
    #[cfg(test)]
    pub fn blocked_replacement(&self) -> Vec<u8> {
        let mut out = self.blocked_kill();
        out.push(BLOCKED_ENTER);
        out
    }

    /// [`Submit::blocked_replacement`] without its final CR: the caller
    /// sends [`BLOCKED_ENTER`] once it has told the user (see
    /// `server::notice`), so the shell's fresh prompt comes below the
    /// notice instead of its redraw wiping it.
    pub fn blocked_kill(&self) -> Vec<u8> {
        let keep = self.bytes.len().saturating_sub(self.enter_len);
        let mut out = self.bytes.get(..keep).unwrap_or_default().to_vec();
        out.extend_from_slice(&[CTRL_E, CTRL_U]);
        out
    }
}

/// What one key does to the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Insert(char),
    Backspace,
    DeleteChar,
    Left,
    Right,
    WordLeft,
    WordRight,
    Home,
    End,
    KillToStart,
    KillToEnd,
    /// Ctrl-W: back to the previous whitespace.
    KillWordBack,
    /// Alt-Backspace: back to the previous start of an alphanumeric word.
    KillWordBackAlnum,
    KillWordFwd,
    Yank,
    Transpose,
    Complete,
    History,
    Search,
    Abandon,
    Abort,
    /// The line is no longer known on either side of the cursor.
    Unknown,
    Nothing,
}

/// An Enter: how many bytes it took, and whether the shell surely took it
/// as one (if not, the line's text is carried over, as uncertain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Enter {
    len: usize,
    sure: bool,
}

impl Enter {
    const PLAIN: Enter = Enter { len: 1, sure: true };
}

/// Where the input parser is within a key's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum In {
    #[default]
    Ground,
    Esc,
    Csi(Vec<u8>),
    Ss3,
    /// X10 mouse report: raw bytes left to skip.
    Mouse(u8),
    /// After Ctrl-V: the next byte is text.
    Quoted,
    /// After Ctrl-X: a two-key command.
    CtrlX,
}

/// Where the output scanner is within a control sequence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Out {
    #[default]
    Ground,
    Esc,
    Csi(Vec<u8>),
    /// OSC, DCS, SOS, PM, APC: skipped until BEL or ST.
    Str,
    StrEsc,
}

/// One UTF-8 character being assembled.
#[derive(Debug, Clone, Default)]
struct Utf8 {
    buf: [u8; 4],
    have: usize,
    need: usize,
}

enum U {
    Done(char),
    More,
    /// The pending sequence broke off; the byte was not consumed.
    Broken,
}

impl Utf8 {
    fn pending(&self) -> bool {
        self.need > 0
    }

    fn start(&mut self, b: u8) -> U {
        let need = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return U::Done(char::REPLACEMENT_CHARACTER),
        };
        self.buf = [b, 0, 0, 0];
        self.have = 1;
        self.need = need;
        U::More
    }

    fn cont(&mut self, b: u8) -> U {
        if b & 0xC0 != 0x80 {
            self.clear();
            return U::Broken;
        }
        if let Some(slot) = self.buf.get_mut(self.have) {
            *slot = b;
        }
        self.have += 1;
        if self.have < self.need {
            return U::More;
        }
        // from_utf8 rejects overlong forms and surrogates.
        let c = self
            .buf
            .get(..self.need)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.chars().next())
            .unwrap_or(char::REPLACEMENT_CHARACTER);
        self.clear();
        U::Done(c)
    }

    fn clear(&mut self) {
        self.have = 0;
        self.need = 0;
    }
}

/// The line as it was when a history search began (Ctrl-G restores it).
#[derive(Debug, Clone)]
struct Saved {
    line: Vec<char>,
    cursor: usize,
    prefix_ok: bool,
    suffix_ok: bool,
    overflow: bool,
}

/// Follows one PTY channel's command line. See the module doc.
#[derive(Debug, Clone)]
pub struct LineTracker {
    line: Vec<char>,
    cursor: usize,
    /// The text before the cursor is exactly `line[..cursor]`.
    prefix_ok: bool,
    /// The text from the cursor on is exactly `line[cursor..]`.
    suffix_ok: bool,
    /// Characters were dropped at the length cap.
    overflow: bool,
    /// Readline's last kill, for Ctrl-Y; shared by all lines like readline's.
    kill: Vec<char>,
    kill_ok: bool,
    /// The previous key was a kill: a new kill appends to `kill`.
    last_kill: bool,
    /// In a Ctrl-R/Ctrl-S search: typed text is the search string.
    search: Option<Saved>,
    input: In,
    utf8: Utf8,
    /// Inside a bracketed paste, with this many bytes of its end marker
    /// matched so far.
    paste: Option<usize>,
    /// Tracking suspended (target in the alternate screen).
    paused: bool,
    /// The target has bracketed paste on.
    paste_mode: bool,
    output: Out,
    /// Visible output since the last newline (bounded).
    tail: Vec<u8>,
}

impl Default for LineTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl LineTracker {
    pub fn new() -> Self {
        LineTracker {
            line: Vec::new(),
            cursor: 0,
            prefix_ok: true,
            suffix_ok: true,
            overflow: false,
            kill: Vec::new(),
            kill_ok: true,
            last_kill: false,
            search: None,
            input: In::Ground,
            utf8: Utf8::default(),
            paste: None,
            paused: false,
            paste_mode: false,
            output: Out::Ground,
            tail: Vec::new(),
        }
    }

    /// Cuts one chunk of client input into segments. The segments' bytes,
    /// concatenated, are always exactly `input`.
    pub fn feed(&mut self, input: &[u8]) -> Vec<Segment> {
        if input.is_empty() {
            return Vec::new();
        }
        if self.paused {
            return vec![Segment::Pass(input.to_vec())];
        }
        let mut segs = Vec::new();
        let mut start = 0;
        for (i, &b) in input.iter().enumerate() {
            let Some(enter) = self.byte(b) else {
                continue;
            };
            let end = i + 1;
            let bytes = input.get(start..end).unwrap_or_default().to_vec();
            let enter_len = enter.len.min(bytes.len());
            segs.push(Segment::Submit(self.submit(bytes, enter_len, enter.sure)));
            start = end;
        }
        if let Some(rest) = input.get(start..)
            && !rest.is_empty()
        {
            segs.push(Segment::Pass(rest.to_vec()));
        }
        segs
    }

    /// Watches target output: alternate screen enter/leave (pauses and
    /// resumes tracking), bracketed paste on/off, and the last output line
    /// (for password prompts). Sequences may be split across chunks.
    pub fn scan_output(&mut self, output: &[u8]) {
        for &b in output {
            self.out_byte(b);
        }
    }

    /// Suspends tracking (true) or resumes it with an empty line (false).
    /// [`scan_output`](Self::scan_output) drives this; callers with their
    /// own knowledge may too.
    pub fn set_alternate_screen(&mut self, on: bool) {
        if on {
            self.paused = true;
        } else if self.paused {
            self.paused = false;
            self.input = In::Ground;
            self.utf8.clear();
            self.paste = None;
            self.search = None;
            self.last_kill = false;
            self.reset_line();
        }
    }

    /// True while tracking is suspended.
    #[cfg(test)]
    pub fn paused(&self) -> bool {
        self.paused
    }

    fn certain(&self) -> bool {
        self.prefix_ok && self.suffix_ok && !self.overflow
    }

    fn reset_line(&mut self) {
        self.line.clear();
        self.cursor = 0;
        self.prefix_ok = true;
        self.suffix_ok = true;
        self.overflow = false;
    }

    fn submit(&mut self, bytes: Vec<u8>, enter_len: usize, sure: bool) -> Submit {
        if self.search.take().is_some() {
            // Enter in a history search runs the entry found.
            self.recalled();
        }
        let s = Submit {
            line: self.line.iter().collect(),
            uncertain: !self.certain(),
            secret: self.secret_prompt(),
            bytes,
            enter_len,
        };
        self.last_kill = false;
        if sure {
            self.reset_line();
        } else {
            // The shell may still hold this text: keep it, as uncertain.
            self.cursor = self.line.len();
            self.prefix_ok = false;
            self.suffix_ok = false;
        }
        s
    }

    fn secret_prompt(&self) -> bool {
        let tail = String::from_utf8_lossy(&self.tail).to_lowercase();
        let tail = tail.trim_end();
        tail.ends_with(':') && SECRET_PROMPTS.iter().any(|w| tail.contains(w))
    }

    /// One input byte; Some when it submits the line.
    fn byte(&mut self, b: u8) -> Option<Enter> {
        if let Some(matched) = self.paste {
            self.paste_byte(b, matched);
            return None;
        }
        // A byte is looked at again only after the state went back to
        // Ground or Esc, so this ends within a few rounds.
        for _ in 0..4 {
            match self.step(b) {
                Step::Done(r) => return r,
                Step::Again => {}
            }
        }
        None
    }

    fn step(&mut self, b: u8) -> Step {
        match mem::take(&mut self.input) {
            In::Ground => self.ground(b),
            In::Esc => self.esc(b),
            In::Csi(mut params) => match b {
                0x20..=0x3f => {
                    if params.len() < MAX_SEQ {
                        params.push(b);
                    } else {
                        // Too long to be a key we know.
                        params.clear();
                        params.push(b'!');
                    }
                    self.input = In::Csi(params);
                    Step::Done(None)
                }
                0x40..=0x7e => self.csi(&params, b),
                _ => self.broken_seq(b),
            },
            In::Ss3 => {
                let k = match b {
                    b'A' | b'B' => Key::History,
                    b'C' => Key::Right,
                    b'D' => Key::Left,
                    b'c' => Key::WordRight,
                    b'd' => Key::WordLeft,
                    b'H' => Key::Home,
                    b'F' => Key::End,
                    b'M' => {
                        // Keypad Enter in application mode.
                        return Step::Done(Some(Enter {
                            len: 3,
                            sure: false,
                        }));
                    }
                    0x20..=0x7e => Key::Unknown,
                    _ => return self.broken_seq(b),
                };
                self.key(k);
                Step::Done(None)
            }
            In::Mouse(left) => {
                if left > 1 {
                    self.input = In::Mouse(left - 1);
                }
                Step::Done(None)
            }
            In::Quoted => {
                if b >= 0x80 {
                    return Step::Again;
                }
                self.key(Key::Insert(char::from(b)));
                Step::Done(None)
            }
            In::CtrlX => {
                // Ctrl-X commands (undo, edit-and-execute, ..) are the
                // shell's business: the line is unknown after any of them.
                self.key(Key::Unknown);
                match b {
                    b'\r' | b'\n' => Step::Done(Some(Enter {
                        len: 1,
                        sure: false,
                    })),
                    0x1b => {
                        self.input = In::Esc;
                        Step::Done(None)
                    }
                    _ => Step::Done(None),
                }
            }
        }
    }

    /// A control sequence broke off at byte `b` (a control or non-ASCII).
    /// CR and LF still submit: no byte sequence may hide an Enter.
    fn broken_seq(&mut self, b: u8) -> Step {
        self.key(Key::Unknown);
        match b {
            b'\r' | b'\n' => Step::Done(Some(Enter {
                len: 1,
                sure: false,
            })),
            0x1b => {
                self.input = In::Esc;
                Step::Done(None)
            }
            _ => Step::Again,
        }
    }

    fn ground(&mut self, b: u8) -> Step {
        if self.utf8.pending() {
            return match self.utf8.cont(b) {
                U::Done(c) => {
                    self.key(Key::Insert(c));
                    Step::Done(None)
                }
                U::More => Step::Done(None),
                U::Broken => {
                    self.key(Key::Insert(char::REPLACEMENT_CHARACTER));
                    Step::Again
                }
            };
        }
        let k = match b {
            0x20..=0x7e => Key::Insert(char::from(b)),
            0x80..=0xff => match self.utf8.start(b) {
                U::Done(c) => Key::Insert(c),
                U::More | U::Broken => return Step::Done(None),
            },
            0x7f | 0x08 => Key::Backspace,
            b'\r' | b'\n' => return Step::Done(Some(Enter::PLAIN)),
            0x0f => {
                // Ctrl-O: operate-and-get-next runs the line and recalls
                // the next history entry.
                return Step::Done(Some(Enter {
                    len: 1,
                    sure: false,
                }));
            }
            // Prefixes: the key is known only with the next byte.
            0x1b => {
                self.input = In::Esc;
                return Step::Done(None);
            }
            0x16 => {
                self.input = In::Quoted;
                return Step::Done(None);
            }
            0x18 => {
                self.input = In::CtrlX;
                return Step::Done(None);
            }
            0x01 => Key::Home,
            0x02 => Key::Left,
            0x03 => Key::Abandon,
            0x04 => Key::DeleteChar,
            0x05 => Key::End,
            0x06 => Key::Right,
            0x07 => Key::Abort,
            0x09 => Key::Complete,
            0x0b => Key::KillToEnd,
            0x0e | 0x10 => Key::History,
            0x12 | 0x13 => Key::Search,
            0x14 => Key::Transpose,
            0x15 => Key::KillToStart,
            0x17 => Key::KillWordBack,
            0x19 => Key::Yank,
            // NUL (set-mark), Ctrl-L, Ctrl-Q, Ctrl-Z, Ctrl-\: no text change.
            0x00 | 0x0c | 0x11 | 0x1a | 0x1c => Key::Nothing,
            // Ctrl-] (character search), Ctrl-^, Ctrl-_ (undo).
            _ => Key::Unknown,
        };
        self.key(k);
        Step::Done(None)
    }

    fn esc(&mut self, b: u8) -> Step {
        let k = match b {
            b'[' => {
                self.input = In::Csi(Vec::new());
                return Step::Done(None);
            }
            b'O' => {
                self.input = In::Ss3;
                return Step::Done(None);
            }
            b'b' => Key::WordLeft,
            b'f' => Key::WordRight,
            b'd' => Key::KillWordFwd,
            0x7f | 0x08 => Key::KillWordBackAlnum,
            b'\r' | b'\n' => {
                self.key(Key::Unknown);
                return Step::Done(Some(Enter {
                    len: 2,
                    sure: false,
                }));
            }
            0x1b => {
                // Esc Esc completes in bash; it may also start Alt+sequence.
                self.key(Key::Complete);
                self.input = In::Esc;
                return Step::Done(None);
            }
            0x80..=0xff => {
                self.key(Key::Unknown);
                return Step::Again;
            }
            _ => Key::Unknown,
        };
        self.key(k);
        Step::Done(None)
    }

    fn csi(&mut self, params: &[u8], fin: u8) -> Step {
        let k = match (params, fin) {
            (b"" | b"1", b'A' | b'B') => Key::History,
            (b"" | b"1", b'C') => Key::Right,
            (b"" | b"1", b'D') => Key::Left,
            (b"1;5" | b"1;3" | b"5", b'C') => Key::WordRight,
            (b"1;5" | b"1;3" | b"5", b'D') => Key::WordLeft,
            (b"" | b"1", b'H') | (b"1" | b"7", b'~') => Key::Home,
            (b"" | b"1", b'F') | (b"4" | b"8", b'~') => Key::End,
            (b"3", b'~') => Key::DeleteChar,
            (b"5" | b"6", b'~') => Key::History,
            (b"200", b'~') if self.paste_mode => {
                self.paste = Some(0);
                Key::Nothing
            }
            (b"201", b'~') => Key::Nothing,
            // Focus in/out reports.
            (b"", b'I' | b'O') => Key::Nothing,
            (b"", b'M') => {
                self.input = In::Mouse(3);
                Key::Nothing
            }
            // SGR mouse reports.
            ([b'<', ..], b'M' | b'm') => Key::Nothing,
            _ => Key::Unknown,
        };
        self.key(k);
        Step::Done(None)
    }

    fn paste_byte(&mut self, b: u8, matched: usize) {
        if PASTE_END.get(matched) == Some(&b) {
            if matched + 1 == PASTE_END.len() {
                self.paste = None;
                if self.utf8.pending() {
                    self.utf8.clear();
                    self.key(Key::Insert(char::REPLACEMENT_CHARACTER));
                }
            } else {
                self.paste = Some(matched + 1);
            }
            return;
        }
        // Not the end marker after all: what was held is pasted text.
        self.paste = Some(0);
        for &h in PASTE_END.get(..matched).unwrap_or_default() {
            self.paste_text(h);
        }
        if b == 0x1b {
            self.paste = Some(1);
        } else {
            self.paste_text(b);
        }
    }

    fn paste_text(&mut self, b: u8) {
        if self.utf8.pending() {
            match self.utf8.cont(b) {
                U::Done(c) => self.key(Key::Insert(c)),
                U::More => {}
                U::Broken => {
                    self.key(Key::Insert(char::REPLACEMENT_CHARACTER));
                    self.paste_text(b);
                }
            }
            return;
        }
        match b {
            // Readline turns CR into LF in a paste.
            b'\r' | b'\n' => self.key(Key::Insert('\n')),
            0x00..=0x7f => self.key(Key::Insert(char::from(b))),
            _ => {
                if let U::Done(c) = self.utf8.start(b) {
                    self.key(Key::Insert(c));
                }
            }
        }
    }
}

enum Step {
    Done(Option<Enter>),
    /// Look at the same byte again in the new state.
    Again,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Submitted (line, uncertain) pairs after feeding `chunks`.
    fn lines(t: &mut LineTracker, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        chunks
            .iter()
            .flat_map(|c| t.feed(c))
            .filter_map(|s| match s {
                Segment::Submit(s) => Some((s.line, s.uncertain)),
                Segment::Pass(_) => None,
            })
            .collect()
    }

    fn one(chunks: &[&[u8]]) -> Vec<(String, bool)> {
        lines(&mut LineTracker::new(), chunks)
    }

    fn exact(s: &str) -> (String, bool) {
        (s.to_string(), false)
    }

    fn unsure(s: &str) -> (String, bool) {
        (s.to_string(), true)
    }

    #[test]
    fn editing_keys() {
        type Case = (&'static str, &'static [u8], Vec<(String, bool)>);
        let cases: &[Case] = &[
            ("plain", b"ls -l\r", vec![exact("ls -l")]),
            ("LF enters", b"ls\n", vec![exact("ls")]),
            ("CRLF: two lines", b"ls\r\n", vec![exact("ls"), exact("")]),
            ("backspace 7f", b"lx\x7fs\r", vec![exact("ls")]),
            ("backspace 08", b"lx\x08s\r", vec![exact("ls")]),
            ("backspace at start", b"\x7f\x7fls\r", vec![exact("ls")]),
            ("ctrl-u", b"rm -rf /\x15ls\r", vec![exact("ls")]),
            (
                "ctrl-u mid-line keeps the rest",
                b"xx ls\x1b[D\x1b[D\x15\r",
                vec![exact("ls")],
            ),
            (
                "arrows and insertion",
                b"echo world\x1b[D\x1b[D\x1b[D\x1b[D\x1b[Dhello \r",
                vec![exact("echo hello world")],
            ),
            ("SS3 arrows", b"ac\x1bODb\x1bOCd\r", vec![exact("abcd")]),
            ("ctrl-b ctrl-f", b"ac\x02b\x06d\r", vec![exact("abcd")]),
            ("right at end", b"ab\x1b[C\x1b[Cc\r", vec![exact("abc")]),
            ("left at start", b"\x1b[D\x1b[Dab\r", vec![exact("ab")]),
            ("ctrl-a", b"ls\x01sudo \r", vec![exact("sudo ls")]),
            ("home key", b"ls\x1b[Hsudo \r", vec![exact("sudo ls")]),
            ("home 1~", b"ls\x1b[1~x\r", vec![exact("xls")]),
            ("home SS3", b"ls\x1bOHx\r", vec![exact("xls")]),
            (
                "end keys",
                b"ab\x01\x1b[Fc\x01\x1b[4~d\x01\x05e\r",
                vec![exact("abcde")],
            ),
            (
                "ctrl-k",
                b"echo abc\x1b[D\x1b[D\x0b\r",
                vec![exact("echo a")],
            ),
            ("delete key", b"abc\x01\x1b[3~\r", vec![exact("bc")]),
            ("ctrl-d deletes", b"abc\x01\x04\r", vec![exact("bc")]),
            (
                "ctrl-w",
                b"echo foo bar\x17baz\r",
                vec![exact("echo foo baz")],
            ),
            (
                "ctrl-w skips trailing spaces",
                b"echo foo/bar  \x17x\r",
                vec![exact("echo x")],
            ),
            (
                "alt-backspace stops at punctuation",
                b"echo foo/bar\x1b\x7fx\r",
                vec![exact("echo foo/x")],
            ),
            (
                "alt-b alt-f",
                b"aa bb\x1bb\x1bbX\x1bfY\r",
                vec![exact("XaaY bb")],
            ),
            ("ctrl-left", b"aa bb\x1b[1;5DX\r", vec![exact("aa Xbb")]),
            ("alt-d", b"aa bb cc\x01\x1bf\x1bd\r", vec![exact("aa cc")]),
            (
                "ctrl-y yanks",
                b"foo bar\x17\x01\x19\r",
                vec![exact("barfoo ")],
            ),
            (
                "consecutive kills append",
                b"a b c\x17\x17\x19\x19\r",
                vec![exact("a b cb c")],
            ),
            ("ctrl-t at end", b"sl\x14\r", vec![exact("ls")]),
            ("ctrl-t mid", b"acb\x1b[D\x14\r", vec![exact("abc")]),
            ("ctrl-v tab", b"a\x16\tb\r", vec![exact("a\tb")]),
            ("ctrl-v enter is text", b"a\x16\rb\r", vec![exact("a\rb")]),
            ("ctrl-c abandons", b"rm -rf /\x03ls\r", vec![exact("ls")]),
            ("ctrl-l", b"l\x0cs\r", vec![exact("ls")]),
            ("utf8", "écho ünï\r".as_bytes(), vec![exact("écho ünï")]),
            ("utf8 backspace", "aé\x7f\r".as_bytes(), vec![exact("a")]),
            (
                "bad utf8",
                b"a\xffb\xc3x\r",
                vec![exact("a\u{fffd}b\u{fffd}x")],
            ),
            ("focus report", b"a\x1b[Ib\r", vec![exact("ab")]),
            ("x10 mouse", b"a\x1b[M !!b\r", vec![exact("ab")]),
            ("sgr mouse", b"a\x1b[<0;3;4Mb\r", vec![exact("ab")]),
            ("tab", b"cd /us\t\r", vec![unsure("cd /us")]),
            (
                "esc esc completes",
                b"cd /us\x1b\x1b\r",
                vec![unsure("cd /us")],
            ),
            ("up", b"\x1b[A\r", vec![unsure("")]),
            ("down", b"\x1b[B\r", vec![unsure("")]),
            ("ctrl-p", b"\x10\r", vec![unsure("")]),
            ("up then typing", b"\x1b[A ls\r", vec![unsure(" ls")]),
            ("up then ctrl-u", b"\x1b[A\x15ls\r", vec![exact("ls")]),
            ("up, home, ctrl-k", b"\x1b[A\x01\x0bls\r", vec![exact("ls")]),
            (
                "tab, end, ctrl-u",
                b"cd /u\t\x05\x15ls\r",
                vec![exact("ls")],
            ),
            ("up, left: unknown", b"\x1b[A\x1b[D\x15\r", vec![unsure("")]),
            ("tab mid-line", b"ab\x1b[D\t\x15\r", vec![unsure("b")]),
            (
                "next line is exact",
                b"\x1b[A\rls\r",
                vec![unsure(""), exact("ls")],
            ),
            ("ctrl-c after up", b"\x1b[A\x03ls\r", vec![exact("ls")]),
            ("search aborted", b"ls\x12foo\x07\r", vec![exact("ls")]),
            ("search accepted", b"ls\x12rm\r", vec![unsure("")]),
            (
                "search then edit",
                b"\x12rm\x05\x15pwd\r",
                vec![exact("pwd")],
            ),
            ("alt-other", b"ls\x1b.\r", vec![unsure("ls")]),
            ("unknown csi", b"ls\x1b[15~\r", vec![unsure("ls")]),
            ("insert key", b"ls\x1b[2~\r", vec![unsure("ls")]),
            ("ctrl-x ctrl-e", b"ls\x18\x05\r", vec![unsure("ls")]),
            ("undo", b"ls\x1f\r", vec![unsure("ls")]),
            (
                "ctrl-o submits, next uncertain",
                b"ls\x0fpwd\r",
                vec![exact("ls"), unsure("lspwd")],
            ),
            ("esc enter still submits", b"ls\x1b\r", vec![unsure("ls")]),
            (
                "enter inside a broken sequence submits",
                b"ls\x1b[1\r",
                vec![unsure("ls")],
            ),
            ("keypad enter", b"ls\x1bOM", vec![exact("ls")]),
            (
                "three lines in one chunk",
                b"ls\rpwd\rid\r",
                vec![exact("ls"), exact("pwd"), exact("id")],
            ),
            (
                "paste markers without bracketed paste mode",
                b"\x1b[200~ls\rpwd\x1b[201~\r",
                vec![unsure("ls"), exact("pwd")],
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(&one(&[input]), want, "{name}");
            // Byte by byte gives the same lines.
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(&one(&bytes), want, "{name}, byte by byte");
        }
    }

    #[test]
    fn segments_cover_input() {
        let mut t = LineTracker::new();
        let segs = t.feed(b"ls\rpwd\rid");
        assert_eq!(segs.len(), 3);
        let Some(Segment::Submit(s)) = segs.first() else {
            panic!("{segs:?}")
        };
        assert_eq!(s.bytes, b"ls\r");
        let Some(Segment::Submit(s)) = segs.get(1) else {
            panic!("{segs:?}")
        };
        assert_eq!(s.bytes, b"pwd\r");
        assert_eq!(segs.get(2), Some(&Segment::Pass(b"id".to_vec())));
        // The line goes on in the next chunk.
        let segs = t.feed(b" -u\r");
        let Some(Segment::Submit(s)) = segs.first() else {
            panic!("{segs:?}")
        };
        assert_eq!(
            (s.line.as_str(), s.bytes.as_slice()),
            ("id -u", &b" -u\r"[..])
        );
    }

    #[test]
    fn typing_passes_through() {
        let mut t = LineTracker::new();
        assert_eq!(t.feed(b"l"), vec![Segment::Pass(b"l".to_vec())]);
        assert_eq!(t.feed(b"\x1b["), vec![Segment::Pass(b"\x1b[".to_vec())]);
        assert_eq!(t.feed(b""), vec![]);
    }

    #[test]
    fn split_sequences() {
        assert_eq!(
            one(&[b"echo h\xc3", b"\xa9\r"]),
            vec![exact("echo h\u{e9}")]
        );
        assert_eq!(
            one(&[b"\xf0\x9f", b"\x98", b"\x80\r"]),
            vec![exact("\u{1f600}")]
        );
        assert_eq!(one(&[b"ab\x1b", b"[D", b"X\r"]), vec![exact("aXb")]);
        assert_eq!(one(&[b"ab\x1b[", b"1;5", b"DX\r"]), vec![exact("Xab")]);
        assert_eq!(one(&[b"ls", b"\x1b", b"[A", b"\r"]), vec![unsure("")]);
    }

    #[test]
    fn bracketed_paste() {
        let mut t = LineTracker::new();
        t.scan_output(b"\x1b[?2004hme@host:~$ ");
        let segs = t.feed(b"\x1b[200~ls -l\rpwd\r\x1b[201~");
        assert_eq!(
            segs,
            vec![Segment::Pass(b"\x1b[200~ls -l\rpwd\r\x1b[201~".to_vec())]
        );
        let segs = t.feed(b"\r");
        let Some(Segment::Submit(s)) = segs.first() else {
            panic!("{segs:?}")
        };
        assert_eq!(s.line, "ls -l\npwd\n");
        assert!(!s.uncertain);
        assert_eq!(s.commands(), vec!["ls -l", "pwd"]);

        // The markers split everywhere; control keys inside are text.
        let mut t = LineTracker::new();
        t.scan_output(b"\x1b[?20");
        t.scan_output(b"04h");
        let input: &[u8] = b"x\x1b[200~a\x7f\x15\x1b[20\xc3\xa9\x1b[201~y\r";
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            lines(&mut t, &bytes),
            vec![exact("xa\u{7f}\u{15}\u{1b}[20\u{e9}y")]
        );

        // Once the shell turns it off, the markers mean nothing.
        t.scan_output(b"\x1b[?2004l");
        assert_eq!(
            lines(&mut t, &[b"\x1b[200~a\rb\x1b[201~\r"]),
            vec![unsure("a"), exact("b")]
        );
    }

    #[test]
    fn blocked_replacement_kills_the_line() {
        let mut t = LineTracker::new();
        let segs = t.feed(b"rm -rf /\r");
        let Some(Segment::Submit(s)) = segs.first() else {
            panic!("{segs:?}")
        };
        assert_eq!(s.blocked_replacement(), b"rm -rf /\x05\x15\r");
        let segs = t.feed(b"ls\x1bOM");
        let Some(Segment::Submit(s)) = segs.first() else {
            panic!("{segs:?}")
        };
        assert_eq!(s.blocked_replacement(), b"ls\x05\x15\r");
        // The replacement, typed back in, submits an empty line.
        let mut t = LineTracker::new();
        assert_eq!(lines(&mut t, &[b"ab\x1b[D\x05\x15\r"]), vec![exact("")]);
    }

    #[test]
    fn alternate_screen_pauses() {
        let mut t = LineTracker::new();
        assert_eq!(lines(&mut t, &[b"vim x\r"]), vec![exact("vim x")]);
        t.scan_output(b"\x1b[?10");
        t.scan_output(b"49h\x1b[H\x1b[2J");
        assert!(t.paused());
        assert_eq!(
            t.feed(b"ihello\r\x1b:wq\r"),
            vec![Segment::Pass(b"ihello\r\x1b:wq\r".to_vec())]
        );
        t.scan_output(b"\x1b[?1049l");
        assert!(!t.paused());
        assert_eq!(lines(&mut t, &[b"ls\r"]), vec![exact("ls")]);
        // Several modes in one sequence; 1047 and 47 too.
        t.scan_output(b"\x1b[?1;1047h");
        assert!(t.paused());
        t.scan_output(b"\x1b[?47l");
        assert!(!t.paused());
        // Output sequences that only look alike.
        t.scan_output(b"\x1b[1049h\x1b]0;[?1049h\x07");
        assert!(!t.paused());
        t.scan_output(b"\x1b]0;title\x1b\\\x1b[?1049h");
        assert!(t.paused());
        t.scan_output(b"\x1bc");
        assert!(!t.paused());
        // Resuming forgets a line left half typed.
        t.feed(b"abc");
        t.set_alternate_screen(true);
        t.set_alternate_screen(false);
        assert_eq!(lines(&mut t, &[b"ls\r"]), vec![exact("ls")]);
    }

    #[test]
    fn secret_prompts() {
        let mut t = LineTracker::new();
        t.scan_output(b"me@host:~$ sudo -i\r\n\x1b[1m[sudo] password for me: \x1b[0m");
        let segs = t.feed(b"hunter2\r");
        let Some(Segment::Submit(s)) = segs.first() else {
            panic!("{segs:?}")
        };
        assert!(s.secret);
        t.scan_output(b"\r\nroot@host:~# ");
        let segs = t.feed(b"id\r");
        let Some(Segment::Submit(s)) = segs.first() else {
            panic!("{segs:?}")
        };
        assert!(!s.secret);
        t.scan_output(b"\r\nEnter passphrase for key '/root/.ssh/id_ed25519':");
        let segs = t.feed(b"x\r");
        assert!(matches!(segs.first(), Some(Segment::Submit(s)) if s.secret));
    }

    #[test]
    fn long_lines_are_capped() {
        let mut input = vec![b'a'; MAX_LINE + 100];
        input.push(b'\r');
        let got = one(&[&input]);
        assert_eq!(got.len(), 1);
        let (line, uncertain) = got.first().cloned().unwrap_or_default();
        assert_eq!(line.len(), MAX_LINE);
        assert!(uncertain);
        // Yanking past the cap is capped too.
        let mut input = vec![b'a'; MAX_LINE - 10];
        input.extend_from_slice(b"\x01\x0b\x19\x19\r");
        let got = one(&[&input]);
        assert_eq!(
            got.first().map(|(l, u)| (l.len(), *u)),
            Some((MAX_LINE, true))
        );
    }

    /// Deterministic pseudo-random bytes (xorshift).
    fn noise(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn check_invariants(t: &LineTracker, input: &[u8], segs: &[Segment]) {
        let mut back = Vec::new();
        for s in segs {
            match s {
                Segment::Pass(b) => back.extend_from_slice(b),
                Segment::Submit(s) => {
                    assert!(s.enter_len <= s.bytes.len());
                    back.extend_from_slice(&s.bytes);
                }
            }
        }
        assert_eq!(back, input);
        assert!(t.cursor <= t.line.len());
        assert!(t.line.len() <= MAX_LINE);
        assert!(t.kill.len() <= MAX_LINE);
    }

    #[test]
    fn never_panics() {
        let mut t = LineTracker::new();
        let all: Vec<u8> = (0..=255).collect();
        let segs = t.feed(&all);
        check_invariants(&t, &all, &segs);
        for seed in 1..200u64 {
            let data = noise(seed, 600);
            let mut t = LineTracker::new();
            if seed % 2 == 0 {
                t.scan_output(b"\x1b[?2004h");
            }
            for (i, chunk) in data.chunks((seed % 17 + 1) as usize).enumerate() {
                let segs = t.feed(chunk);
                check_invariants(&t, chunk, &segs);
                if i % 5 == 0 {
                    t.scan_output(chunk);
                }
            }
            // Escape-heavy input.
            let mut esc = data.clone();
            for (i, b) in esc.iter_mut().enumerate() {
                if i % 3 == 0 {
                    *b = 0x1b;
                } else if i % 7 == 0 {
                    *b = b'[';
                }
            }
            let segs = t.feed(&esc);
            check_invariants(&t, &esc, &segs);
            t.scan_output(&esc);
        }
    }
}
