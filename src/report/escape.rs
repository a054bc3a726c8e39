//! Making strings from users and targets (user names, commands, reasons,
//! host key fingerprints, anything an event carries) safe for each output:
//! HTML, Markdown and CSV. Every renderer passes every such string through
//! one of these; numbers and our own labels need not.

use std::borrow::Cow;

/// Removes terminal escape sequences (CSI `ESC [ ... final`, OSC
/// `ESC ] ... BEL|ST`, DCS/SOS/PM/APC strings, two-byte `ESC x`, and their
/// 8-bit C1 forms), every other control character, and the Unicode
/// bidirectional overrides that can make text read differently than it is.
/// Tabs and line breaks become a space.
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_cleaning) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                // ESC followed by one more character (ESC 7, ESC c, ...).
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\t' | '\n' | '\r' => out.push(' '),
            c if needs_cleaning(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_cleaning(c: char) -> bool {
    c.is_control() || crate::audit::is_bidi_control(c)
}

/// Skips a CSI sequence's parameters and intermediates through its final
/// byte (`@`..`~`).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('@'..='~').contains(&c) {
            return;
        }
        if !(' '..='?').contains(&c) {
            // Not a well-formed sequence: stop at the odd character, which
            // is dropped with it rather than shown.
            return;
        }
    }
}

/// Skips a string sequence (OSC, DCS, ...) through BEL or ST (`ESC \` or
/// the 8-bit `\u{9c}`).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => return,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                return;
            }
            _ => {}
        }
    }
}

/// Text for HTML element content and quoted attribute values.
pub fn html(s: &str) -> String {
    let s = clean(s);
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text for a Markdown table cell or paragraph: every character with a
/// Markdown or inline-HTML meaning is backslash-escaped, so it shows
/// literally and can neither end a cell nor open a link, tag or heading.
pub fn md(s: &str) -> String {
    let s = clean(s);
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '|' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '&' | '~'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One CSV text cell: cleaned, neutralised against formula injection (a
/// cell starting with `=`, `+`, `-`, `@`, tab or CR gets a leading `'`, so
/// spreadsheets show it as text), and always quoted.
pub fn csv(s: &str) -> String {
    let starts_risky = s
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    let s = clean(s);
    let risky = starts_risky
        || s.chars()
            .next()
            .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@'));
    let mut out = String::with_capacity(s.len() + 4);
    out.push('"');
    if risky {
        out.push('\'');
    }
    for c in s.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A relative URL path: each segment percent-encoded except unreserved
/// characters, segments joined by `/`.
pub fn url_path(segments: &[String]) -> String {
    let mut out = String::new();
    for (n, seg) in segments.iter().enumerate() {
        if n > 0 {
            out.push('/');
        }
        for b in seg.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_and_controls_are_removed() {
        assert_eq!(clean("\x1b[31mred\x1b[0m"), "red");
        assert_eq!(clean("a\x1b]0;title\x07b"), "ab");
        assert_eq!(
            clean("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b"),
            "alinkb"
        );
        assert_eq!(clean("a\u{9b}2Jb"), "ab");
        assert_eq!(clean("a\x00b\x7fc\x08d"), "abcd");
        assert_eq!(clean("line1\nline2\tx\r"), "line1 line2 x ");
        assert_eq!(clean("abc\u{202e}fed"), "abcfed");
        // Every bidi control, and the escaped form the audit stores.
        assert_eq!(
            clean(
                "a\u{202a}\u{202b}\u{202c}\u{202d}\u{2066}\u{2067}\u{2068}\u{2069}\u{200e}\u{200f}\u{061c}b"
            ),
            "ab"
        );
        assert_eq!(html("x<U+202E>y"), "x&lt;U+202E&gt;y");
        assert_eq!(clean("plain ünïcode"), "plain ünïcode");
        assert!(matches!(clean("plain"), Cow::Borrowed(_)));
        // A lone ESC at the end, or a cut-off sequence, leaves nothing behind.
        assert_eq!(clean("x\x1b"), "x");
        assert_eq!(clean("x\x1b[31"), "x");
    }

    #[test]
    fn html_escapes_all_five() {
        assert_eq!(
            html("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(html("\x1b[31m<b>"), "&lt;b&gt;");
    }

    #[test]
    fn markdown_cells_cannot_break_out() {
        assert_eq!(md("a|b"), "a\\|b");
        assert_eq!(md("`x`"), "\\`x\\`");
        assert_eq!(md("*_[]<>#"), "\\*\\_\\[\\]\\<\\>\\#");
        assert_eq!(md("\x1b[31mred"), "red");
        assert_eq!(md("a\nb"), "a b");
    }

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv("=cmd|' /C calc'!A0"), "\"'=cmd|' /C calc'!A0\"");
        assert_eq!(csv("+1"), "\"'+1\"");
        assert_eq!(csv("-1"), "\"'-1\"");
        assert_eq!(csv("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(csv("\t=x"), "\"' =x\"");
        assert_eq!(csv("\rfoo"), "\"' foo\"");
        assert_eq!(csv("say \"hi\", ok"), "\"say \"\"hi\"\", ok\"");
        assert_eq!(csv("a\nb"), "\"a b\"");
        assert_eq!(csv("\x1b[31m=1"), "\"'=1\"");
        assert_eq!(csv("alice"), "\"alice\"");
    }

    #[test]
    fn url_segments_are_encoded() {
        assert_eq!(
            url_path(&["..".into(), "rec ords".into(), "a\"b<c>.cast".into()]),
            "../rec%20ords/a%22b%3Cc%3E.cast"
        );
    }
}
