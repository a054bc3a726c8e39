//! Search: when did a text appear on screen, or get typed?
//!
//! Output is replayed through the `avt` terminal emulator, so what is
//! searched is what the user saw: cursor movement, redraws and colours are
//! applied, and a word written in pieces or by a full-screen program is
//! found as it was displayed. After each event the screen's logical lines
//! (soft-wrapped rows joined) and the lines that scrolled off during the
//! event are checked. A match is reported at the time its number of
//! occurrences on screen grows, so a line that merely scrolls, stays or is
//! redrawn identically is reported once, when it first became visible.
//! Matching ignores case. Keystrokes ("i" events) and the exec command are
//! searched as typed text.

use std::io::BufRead;

use avt::Terminal;
use avt::observer::{DirtyRows, Transcript};
use serde::Serialize;

use super::cast::{Code, Reader};
use super::{RecordingError, RecordingInfo};

/// Caps on the emulated terminal, whatever a cast header claims.
const MAX_COLS: u32 = 1000;
const MAX_ROWS: u32 = 500;

/// How much of a matching line is shown.
const SHOWN_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HitSource {
    /// Appeared on screen.
    Screen,
    /// Typed by the user (recorded input).
    Input,
    /// The exec command or subsystem.
    Command,
}

impl HitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            HitSource::Screen => "screen",
            HitSource::Input => "input",
            HitSource::Command => "command",
        }
    }
}

/// One place a text was found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Seconds since the start of the recording.
    pub time: f64,
    pub source: HitSource,
    /// The line (or typed text) it was found in.
    pub text: String,
}

/// Searches one recording: its command, then its cast.
pub fn search_recording(info: &RecordingInfo, needle: &str) -> Result<Vec<Hit>, RecordingError> {
    let mut hits = Vec::new();
    let needle_l = needle.to_lowercase();
    if needle_l.is_empty() {
        return Ok(hits);
    }
    let command = info.meta.as_ref().and_then(|m| m.command.clone());
    if let Some(c) = &command
        && c.to_lowercase().contains(&needle_l)
    {
        hits.push(Hit {
            time: 0.0,
            source: HitSource::Command,
            text: shown(c),
        });
    }
    if !info.cast_exists {
        return Ok(hits);
    }
    let file = std::fs::File::open(&info.cast_path).map_err(|e| RecordingError::Io {
        path: info.cast_path.clone(),
        source: e,
    })?;
    let found = search_cast(std::io::BufReader::new(file), needle, command.is_none())?;
    hits.extend(found);
    Ok(hits)
}

/// Searches a cast. `header_command`: also search the header's `command`
/// (when there is no sidecar to take it from).
pub fn search_cast<R: BufRead>(
    input: R,
    needle: &str,
    header_command: bool,
) -> Result<Vec<Hit>, RecordingError> {
    let needle = needle.to_lowercase();
    let mut hits = Vec::new();
    if needle.is_empty() {
        return Ok(hits);
    }
    let (header, mut reader) = Reader::new(input)?;
    if header_command
        && let Some(c) = &header.command
        && c.to_lowercase().contains(&needle)
    {
        hits.push(Hit {
            time: 0.0,
            source: HitSource::Command,
            text: shown(c),
        });
    }
    let cols = header.width.clamp(1, MAX_COLS) as usize;
    let rows = header.height.clamp(1, MAX_ROWS) as usize;
    let mut term =
        Terminal::new(cols, rows).map_err(|e| RecordingError::Format(format!("terminal: {e}")))?;
    let mut transcript = Transcript::new();
    let mut dirty = DirtyRows::new();
    // Matching lines on screen after the previous event.
    let mut on_screen: Vec<String> = Vec::new();
    let mut typed = TypedSearch::new(&needle);

    while let Some(event) = reader.next_event() {
        let event = event?;
        let (evicted, changed) = match event.code {
            Code::Output => term.feed_with(event.data.as_str(), (&mut transcript, &mut dirty)),
            Code::Resize => {
                let Some((c, r)) = event.resize_size() else {
                    continue;
                };
                let c = c.clamp(1, MAX_COLS) as usize;
                let r = r.clamp(1, MAX_ROWS) as usize;
                term.resize_with(c, r, (&mut transcript, &mut dirty))
            }
            Code::Input => {
                if let Some(text) = typed.feed(&event.data) {
                    hits.push(Hit {
                        time: event.time,
                        source: HitSource::Input,
                        text,
                    });
                }
                continue;
            }
            Code::Marker | Code::Other => continue,
        };
        if evicted.is_empty() && changed.is_empty() {
            continue;
        }
        let visible: Vec<String> = term
            .screen()
            .text()
            .into_iter()
            .filter(|l| count(l, &needle) > 0)
            .collect();
        let seen: Vec<&String> = evicted
            .iter()
            .filter(|l| count(l, &needle) > 0)
            .chain(visible.iter())
            .collect();
        let now: usize = seen.iter().map(|l| count(l, &needle)).sum();
        let before: usize = on_screen.iter().map(|l| count(l, &needle)).sum();
        if now > before {
            // The lines not already on screen are the new sightings.
            let mut old = on_screen.clone();
            for line in seen {
                if let Some(i) = old.iter().position(|o| o == line) {
                    old.swap_remove(i);
                } else {
                    hits.push(Hit {
                        time: event.time,
                        source: HitSource::Screen,
                        text: shown(line),
                    });
                }
            }
        }
        on_screen = visible;
    }
    Ok(hits)
}

fn count(line: &str, needle_lower: &str) -> usize {
    line.to_lowercase().matches(needle_lower).count()
}

fn shown(s: &str) -> String {
    let s = s.trim();
    let mut out: String = s
        .chars()
        .take(SHOWN_CHARS)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if s.chars().count() > SHOWN_CHARS {
        out.push_str("...");
    }
    out
}

/// Finds the needle in the keystroke stream, across events.
struct TypedSearch<'a> {
    needle: &'a str,
    /// Lower-cased input after the last match, at most needle-1 chars: a
    /// match can start in an earlier event.
    tail: String,
    /// Recent input as typed, to show with a hit.
    context: String,
}

impl<'a> TypedSearch<'a> {
    fn new(needle: &'a str) -> Self {
        TypedSearch {
            needle,
            tail: String::new(),
            context: String::new(),
        }
    }

    fn feed(&mut self, data: &str) -> Option<String> {
        self.context.push_str(data);
        let excess = self.context.chars().count().saturating_sub(SHOWN_CHARS);
        if excess > 0 {
            self.context = self.context.chars().skip(excess).collect();
        }
        let mut combined = std::mem::take(&mut self.tail);
        combined.push_str(&data.to_lowercase());
        let last_end = combined
            .match_indices(self.needle)
            .last()
            .map(|(i, m)| i + m.len());
        let after = last_end
            .and_then(|e| combined.get(e..))
            .unwrap_or(&combined);
        let keep = self.needle.chars().count().saturating_sub(1);
        let skip = after.chars().count().saturating_sub(keep);
        self.tail = after.chars().skip(skip).collect();
        last_end.map(|_| shown(&self.context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::cast::{Header, event_line, header_line};

    fn cast(events: &[(f64, Code, &str)]) -> String {
        let mut s = header_line(&Header {
            version: 2,
            width: 20,
            height: 3,
            timestamp: None,
            command: None,
            title: None,
            env: None,
        })
        .unwrap();
        for (t, c, d) in events {
            s.push_str(&event_line(*t, *c, d));
        }
        s
    }

    fn times(hits: &[Hit]) -> Vec<(f64, HitSource)> {
        hits.iter().map(|h| (h.time, h.source)).collect()
    }

    #[test]
    fn text_drawn_in_pieces_is_found_when_complete() {
        let c = cast(&[
            (1.0, Code::Output, "$ se"),
            (2.0, Code::Output, "cr"),
            (3.0, Code::Output, "et\r\n"),
            (4.0, Code::Output, "more\r\n"),
        ]);
        let hits = search_cast(c.as_bytes(), "SECRET", false).unwrap();
        assert_eq!(times(&hits), [(3.0, HitSource::Screen)]);
        assert_eq!(hits[0].text, "$ secret");
    }

    #[test]
    fn scrolling_does_not_repeat_and_a_second_sighting_counts() {
        let c = cast(&[
            (1.0, Code::Output, "token\r\n"),
            (2.0, Code::Output, "a\r\nb\r\nc\r\nd\r\n"), // scrolls it away
            (3.0, Code::Output, "token again\r\n"),
        ]);
        let hits = search_cast(c.as_bytes(), "token", false).unwrap();
        assert_eq!(
            times(&hits),
            [(1.0, HitSource::Screen), (3.0, HitSource::Screen)]
        );
    }

    #[test]
    fn lines_that_scroll_past_within_one_event_are_found() {
        let c = cast(&[(1.0, Code::Output, "x\r\nneedle\r\n1\r\n2\r\n3\r\n4\r\n")]);
        let hits = search_cast(c.as_bytes(), "needle", false).unwrap();
        assert_eq!(times(&hits), [(1.0, HitSource::Screen)]);
    }

    #[test]
    fn overwritten_text_is_not_found_and_escape_sequences_do_not_hide_text() {
        let c = cast(&[
            (1.0, Code::Output, "\x1b[31mpass\x1b[0mword"),
            (2.0, Code::Output, "\r\x1b[2Kgone"),
        ]);
        let hits = search_cast(c.as_bytes(), "password", false).unwrap();
        assert_eq!(times(&hits), [(1.0, HitSource::Screen)]);
        // Text the terminal overwrote before it was ever shown whole.
        let c = cast(&[
            (1.0, Code::Output, "passXXXX\rpass"),
            (2.0, Code::Output, "wd"),
        ]);
        assert!(
            search_cast(c.as_bytes(), "password", false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn typed_input_is_found_across_keystrokes() {
        let c = cast(&[
            (1.0, Code::Input, "r"),
            (1.5, Code::Input, "m -"),
            (2.0, Code::Input, "rf /\r"),
            (3.0, Code::Input, "rm -rf /tmp\r"),
        ]);
        let hits = search_cast(c.as_bytes(), "rm -rf", false).unwrap();
        assert_eq!(
            times(&hits),
            [(2.0, HitSource::Input), (3.0, HitSource::Input)]
        );
        assert_eq!(hits[0].text, "rm -rf /");
        assert_eq!(hits[1].text, "rm -rf /\\rrm -rf /tmp");
    }
}
