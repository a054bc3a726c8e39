//! The target's output as the line tracker reads it: bracketed paste and
//! the alternate screen switched on and off, and the tail kept to spot a
//! password prompt.
//!
//! Layer: part of `lineedit`; imports `lineedit` only.

use super::*;

impl LineTracker {
    pub(super) fn out_byte(&mut self, b: u8) {
        // As in `byte`: a byte is looked at again at most once.
        for _ in 0..2 {
            match mem::take(&mut self.output) {
                Out::Ground => match b {
                    0x1b => self.output = Out::Esc,
                    b'\r' | b'\n' => self.tail.clear(),
                    0x08 => {
                        self.tail.pop();
                    }
                    0x00..=0x1f | 0x7f => {}
                    _ => {
                        if self.tail.len() >= TAIL_MAX {
                            self.tail.drain(..TAIL_MAX / 2);
                        }
                        self.tail.push(b);
                    }
                },
                Out::Esc => match b {
                    b'[' => self.output = Out::Csi(Vec::new()),
                    b']' | b'P' | b'X' | b'^' | b'_' => self.output = Out::Str,
                    b'c' => {
                        // Full reset.
                        self.paste_mode = false;
                        self.set_alternate_screen(false);
                    }
                    // Intermediates (ESC ( B ..): the final byte follows.
                    0x1b | 0x20..=0x2f => self.output = Out::Esc,
                    _ => {}
                },
                Out::Csi(mut params) => match b {
                    0x20..=0x3f => {
                        if params.len() < MAX_SEQ {
                            params.push(b);
                        } else {
                            params.clear();
                            params.push(b'!');
                        }
                        self.output = Out::Csi(params);
                    }
                    0x40..=0x7e => self.out_csi(&params, b),
                    0x1b => self.output = Out::Esc,
                    // CAN and SUB cancel; other controls act inside.
                    0x18 | 0x1a => {}
                    _ => self.output = Out::Csi(params),
                },
                Out::Str => match b {
                    0x07 | 0x18 | 0x1a => {}
                    0x1b => self.output = Out::StrEsc,
                    _ => self.output = Out::Str,
                },
                Out::StrEsc => {
                    if b != b'\\' {
                        // ESC then anything but '\' ends the string and
                        // starts a new sequence.
                        self.output = Out::Esc;
                        continue;
                    }
                }
            }
            return;
        }
    }

    pub(super) fn out_csi(&mut self, params: &[u8], fin: u8) {
        let Some(modes) = params.strip_prefix(b"?") else {
            return;
        };
        let on = match fin {
            b'h' => true,
            b'l' => false,
            _ => return,
        };
        for mode in modes.split(|&c| c == b';') {
            match mode {
                b"1049" | b"1047" | b"47" => self.set_alternate_screen(on),
                b"2004" => self.paste_mode = on,
                _ => {}
            }
        }
    }
}
