//! The line editor's keys: what each editing key does to the tracked
//! line (insert, delete, word moves, kills and yank, history recalls that
//! make the line uncertain).
//!
//! Layer: part of `lineedit`; imports `lineedit` only.

use super::*;

impl LineTracker {
    pub(super) fn key(&mut self, k: Key) {
        let was_kill = mem::take(&mut self.last_kill);
        if let Some(saved) = self.search.take() {
            match k {
                Key::Insert(_) | Key::Backspace | Key::Search | Key::Nothing => {
                    self.search = Some(saved);
                    return;
                }
                Key::Abort => {
                    self.line = saved.line;
                    self.cursor = saved.cursor;
                    self.prefix_ok = saved.prefix_ok;
                    self.suffix_ok = saved.suffix_ok;
                    self.overflow = saved.overflow;
                    return;
                }
                Key::Abandon => {}
                // Any other key leaves the search on the entry it found.
                _ => self.recalled(),
            }
        }
        let len = self.line.len();
        match k {
            Key::Insert(c) => {
                if len >= MAX_LINE {
                    self.overflow = true;
                } else {
                    let at = self.cursor.min(len);
                    self.line.insert(at, c);
                    self.cursor = at + 1;
                }
            }
            Key::Backspace => {
                if self.cursor > 0 && self.cursor <= len {
                    self.cursor -= 1;
                    self.line.remove(self.cursor);
                }
            }
            Key::DeleteChar => {
                if self.cursor < len {
                    self.line.remove(self.cursor);
                }
            }
            Key::Left | Key::WordLeft => {
                // Moving into unknown text: what follows is unknown too.
                if !self.prefix_ok {
                    self.suffix_ok = false;
                }
                self.cursor = if k == Key::Left {
                    self.cursor.saturating_sub(1)
                } else {
                    self.word_left(char::is_alphanumeric)
                };
            }
            Key::Right | Key::WordRight => {
                if !self.suffix_ok {
                    self.prefix_ok = false;
                }
                self.cursor = if k == Key::Right {
                    (self.cursor + 1).min(len)
                } else {
                    self.word_right()
                };
            }
            Key::Home => {
                self.suffix_ok = self.prefix_ok && self.suffix_ok;
                self.prefix_ok = true;
                self.cursor = 0;
            }
            Key::End => {
                self.prefix_ok = self.prefix_ok && self.suffix_ok;
                self.suffix_ok = true;
                self.cursor = len;
            }
            Key::KillToStart => {
                self.kill_range(0, self.cursor, true, was_kill);
                self.cursor = 0;
                self.prefix_ok = true;
            }
            Key::KillToEnd => {
                self.kill_range(self.cursor, len, false, was_kill);
                self.suffix_ok = true;
            }
            Key::KillWordBack | Key::KillWordBackAlnum => {
                let to = if k == Key::KillWordBack {
                    self.word_left(|c| !c.is_whitespace())
                } else {
                    self.word_left(char::is_alphanumeric)
                };
                self.kill_range(to, self.cursor, true, was_kill);
                self.cursor = to;
            }
            Key::KillWordFwd => {
                let to = self.word_right();
                self.kill_range(self.cursor, to, false, was_kill);
            }
            Key::Yank => {
                let at = self.cursor.min(len);
                let room = MAX_LINE.saturating_sub(len);
                if self.kill.len() > room {
                    self.overflow = true;
                }
                let text: Vec<char> = self.kill.iter().copied().take(room).collect();
                self.cursor = at + text.len();
                self.line.splice(at..at, text);
                if !self.kill_ok {
                    self.prefix_ok = false;
                }
            }
            Key::Transpose => {
                if !self.certain() {
                    self.prefix_ok = false;
                    self.suffix_ok = false;
                } else if self.cursor > 0 && len >= 2 {
                    let at = if self.cursor >= len {
                        len - 1
                    } else {
                        self.cursor
                    };
                    self.line.swap(at - 1, at);
                    self.cursor = (at + 1).min(len);
                }
            }
            Key::Complete => {
                // Completion inserts at the cursor, and may touch what
                // follows when the cursor is mid-line.
                if self.cursor < len || !self.suffix_ok {
                    self.suffix_ok = false;
                }
                self.prefix_ok = false;
            }
            Key::History => self.recalled(),
            Key::Search => {
                self.search = Some(Saved {
                    line: self.line.clone(),
                    cursor: self.cursor,
                    prefix_ok: self.prefix_ok,
                    suffix_ok: self.suffix_ok,
                    overflow: self.overflow,
                });
            }
            Key::Abandon => self.reset_line(),
            Key::Unknown => {
                self.prefix_ok = false;
                self.suffix_ok = false;
            }
            Key::Abort | Key::Nothing => {}
        }
    }

    /// The line is now a history entry we cannot see, cursor at its end.
    pub(super) fn recalled(&mut self) {
        self.line.clear();
        self.cursor = 0;
        self.prefix_ok = false;
        self.suffix_ok = true;
        self.overflow = false;
    }

    pub(super) fn kill_range(&mut self, from: usize, to: usize, backward: bool, append: bool) {
        let to = to.min(self.line.len());
        if from >= to {
            // Readline keeps the kill ring as it was for an empty kill.
            self.last_kill = append;
            return;
        }
        let text: Vec<char> = self.line.drain(from..to).collect();
        let ok = self.certain();
        if append {
            if backward {
                self.kill.splice(0..0, text);
            } else {
                self.kill.extend(text);
            }
            self.kill.truncate(MAX_LINE);
            self.kill_ok = self.kill_ok && ok;
        } else {
            self.kill = text;
            self.kill_ok = ok;
        }
        self.last_kill = true;
    }

    /// Start of the word before the cursor, words being runs of `word`.
    pub(super) fn word_left(&self, word: fn(char) -> bool) -> usize {
        let is = |i: usize| i.checked_sub(1).and_then(|j| self.line.get(j)).copied();
        let mut i = self.cursor.min(self.line.len());
        while is(i).is_some_and(|c| !word(c)) {
            i -= 1;
        }
        while is(i).is_some_and(word) {
            i -= 1;
        }
        i
    }

    /// End of the alphanumeric word at or after the cursor.
    pub(super) fn word_right(&self) -> usize {
        let mut i = self.cursor.min(self.line.len());
        while self.line.get(i).is_some_and(|c| !c.is_alphanumeric()) {
            i += 1;
        }
        while self.line.get(i).is_some_and(|c| c.is_alphanumeric()) {
            i += 1;
        }
        i
    }
}
