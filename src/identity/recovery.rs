//! Recovery codes: ten per enrollment, shown once, stored as salted
//! SHA-256 hashes (`hex(salt):hex(sha256(salt || code))`), each accepted
//! once at the `Verification code: ` prompt instead of a TOTP code.
//!
//! A code is ten characters from an alphabet without look-alikes, shown
//! as `xxxxx-xxxxx` (about 49 bits); typed in any case, with or without
//! the dash and surrounding spaces.

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

use super::IdentityError;
use crate::vault::secret::ct_eq;

pub const COUNT: usize = 10;
const LEN: usize = 10;
const SALT_LEN: usize = 16;
/// No 0/o, 1/l/i.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Draws [`COUNT`] new codes, formatted `xxxxx-xxxxx`.
pub fn generate() -> Result<Vec<String>, IdentityError> {
    let rng = SystemRandom::new();
    let mut codes = Vec::with_capacity(COUNT);
    while codes.len() < COUNT {
        let mut code = String::with_capacity(LEN + 1);
        while code.len() < LEN + 1 {
            let mut b = [0u8; 1];
            rng.fill(&mut b).map_err(|_| IdentityError::Random)?;
            // Rejection sampling keeps every character equally likely.
            let limit = 256 - 256 % ALPHABET.len();
            if usize::from(b[0]) >= limit {
                continue;
            }
            if code.len() == LEN / 2 {
                code.push('-');
            }
            if let Some(c) = ALPHABET.get(usize::from(b[0]) % ALPHABET.len()) {
                code.push(char::from(*c));
            }
        }
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(codes)
}

/// A code as typed, in the form it is hashed in; `None` if it cannot be
/// a recovery code.
pub fn normalise(typed: &str) -> Option<String> {
    let code: String = typed
        .trim()
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// The stored form of `code` (as shown or as typed).
pub fn hash(code: &str) -> Result<String, IdentityError> {
    let code = normalise(code).ok_or_else(|| IdentityError::Totp("not a recovery code".into()))?;
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| IdentityError::Random)?;
    Ok(format!(
        "{}:{}",
        hex::encode(salt),
        hex::encode(digest_of(&salt, &code))
    ))
}

fn digest_of(salt: &[u8], code: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(salt.len() + code.len());
    input.extend_from_slice(salt);
    input.extend_from_slice(code.as_bytes());
    digest(&SHA256, &input).as_ref().to_vec()
}

/// Whether `typed` is the code `stored` was made from. A malformed
/// stored value matches nothing.
pub fn matches(stored: &str, typed: &str) -> bool {
    let Some(code) = normalise(typed) else {
        return false;
    };
    let Some((salt, want)) = stored.split_once(':') else {
        return false;
    };
    let (Ok(salt), Ok(want)) = (hex::decode(salt), hex::decode(want)) else {
        return false;
    };
    ct_eq(&digest_of(&salt, &code), &want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_codes_in_the_shown_form() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), 10);
        for c in &codes {
            assert_eq!(c.len(), 11, "{c}");
            assert_eq!(c.as_bytes()[5], b'-', "{c}");
            assert!(normalise(c).is_some(), "{c}");
        }
        let mut d = codes.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 10);
    }

    #[test]
    fn hashes_are_salted_and_match_what_is_typed() {
        let code = &generate().unwrap()[0];
        let h1 = hash(code).unwrap();
        let h2 = hash(code).unwrap();
        assert_ne!(h1, h2, "salted");
        assert!(!h1.contains(code.as_str()));
        assert!(matches(&h1, code));
        assert!(matches(&h2, &format!("  {}\r", code.to_uppercase())));
        assert!(matches(&h1, &code.replace('-', "")));
        assert!(!matches(&h1, &generate().unwrap()[0]));
        assert!(!matches(&h1, "123456"));
        assert!(!matches("garbage", code));
        assert!(!matches("zz:zz", code));
    }
}
