//! [`Secret`]: the one wrapper every target password, private key text and
//! master key passes through. It prints as `[redacted]` under both `Debug`
//! and `Display`, is deliberately not `Serialize`, and overwrites its bytes
//! when dropped.
//!
//! Layer: the bottom of the crate, so that `upstream` holds a secret
//! without importing the vault (which re-exports it); imports no module of
//! it.

use std::fmt;

/// What every secret prints as.
pub const REDACTED: &str = "[redacted]";

/// A secret string. The only way to read it is [`Secret::expose`], so every
/// place that handles plaintext is greppable.
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The plaintext. Call it only where the secret is about to be used
    /// (sent to a target, encrypted, hashed), never to log or display it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Clone for Secret {
    fn clone(&self) -> Secret {
        Secret(self.0.clone())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(std::mem::take(&mut self.0).into_bytes());
    }
}

/// Overwrites a buffer with zeros before it is freed. `black_box` keeps the
/// compiler from eliding the stores as dead writes. Copies made earlier by
/// reallocation are out of reach: this is hygiene, not a guarantee.
pub(crate) fn wipe(mut bytes: Vec<u8>) {
    for b in bytes.iter_mut() {
        *b = 0;
    }
    std::hint::black_box(&bytes);
}

/// Equality whose time depends only on the lengths, not on where the
/// inputs differ (for comparing hashes and keys).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_print_nothing_of_the_secret() {
        let s = Secret::new("hunter2-Correct-Horse");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:#?}"), REDACTED);
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
        assert_eq!(s.expose(), "hunter2-Correct-Horse");
    }

    #[test]
    fn ct_eq_compares_whole_slices() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
