//! TOTP per RFC 6238 with the `totp-rs` crate: SHA-1, 6 digits, 30 s
//! steps, one step of drift either way. The clock is always passed in.
//! Also the `otpauth://` URI and its QR code for a terminal.

use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::IdentityError;

pub const DIGITS: u8 = 6;
pub const STEP_SECS: u64 = 30;
/// Steps accepted either side of the current one.
pub const SKEW: u16 = 1;
/// 160 bits, as RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;
pub const ISSUER: &str = "Gatehouse";

/// A TOTP secret in memory. `Debug` prints nothing of it.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl Drop for TotpSecret {
    fn drop(&mut self) {
        crate::vault::secret::wipe(std::mem::take(&mut self.0));
    }
}

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> Result<TotpSecret, IdentityError> {
        let mut bytes = vec![0u8; SECRET_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| IdentityError::Random)?;
        Ok(TotpSecret(bytes))
    }

    /// From its base32 form (RFC 4648, no padding), as stored sealed.
    pub fn from_base32(text: &str) -> Result<TotpSecret, IdentityError> {
        let secret = Secret::try_from_base32(text.trim())
            .map_err(|e| IdentityError::Totp(format!("stored secret: {e}")))?;
        Ok(TotpSecret(secret.as_ref().to_vec()))
    }

    /// The base32 form authenticator apps and `oathtool -b` take.
    pub fn to_base32(&self) -> String {
        Secret::from(self.0.as_slice()).to_base32()
    }

    fn totp(&self) -> Result<Totp, IdentityError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_skew(SKEW)
            .with_step_duration(STEP_SECS)
            .with_secret(self.0.as_slice())
            .build()
            .map_err(|e| IdentityError::Totp(e.to_string()))
    }

    /// The code for `now` (tests and the benchmark's client side).
    pub fn code_at(&self, now: OffsetDateTime) -> Result<String, IdentityError> {
        Ok(self.totp()?.generate(unix(now)?).to_string())
    }

    /// The time step `code` is valid for at `now` (the current one or one
    /// either side), or `None`. `code` is normalised first ([`normalise`]).
    pub fn check(&self, code: &str, now: OffsetDateTime) -> Result<Option<u64>, IdentityError> {
        let code = normalise(code);
        if !looks_like_totp(code) {
            return Ok(None);
        }
        Ok(self.totp()?.check(code, unix(now)?))
    }
}

/// The time step of `now`.
pub fn step_of(now: OffsetDateTime) -> Result<u64, IdentityError> {
    Ok(unix(now)? / STEP_SECS)
}

fn unix(now: OffsetDateTime) -> Result<u64, IdentityError> {
    u64::try_from(now.unix_timestamp()).map_err(|_| IdentityError::Clock)
}

/// A code as typed, without surrounding whitespace or a trailing CR.
pub fn normalise(code: &str) -> &str {
    code.trim()
}

/// Six ASCII digits.
pub fn looks_like_totp(code: &str) -> bool {
    code.len() == usize::from(DIGITS) && code.bytes().all(|b| b.is_ascii_digit())
}

/// `otpauth://totp/Gatehouse:LABEL?secret=...&issuer=Gatehouse&...`, the
/// label being `STAFF@BASTION`.
pub fn otpauth_uri(secret: &TotpSecret, label: &str) -> String {
    format!(
        "otpauth://totp/{issuer}:{label}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        issuer = ISSUER,
        label = encode(label),
        secret = secret.to_base32(),
    )
}

/// Percent-encodes all but RFC 3986's unreserved characters and `@`
/// (a `:` would end the issuer prefix).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `text` as a QR code drawn with Unicode half blocks, light on dark as a
/// terminal shows it (scanners need the quiet zone).
pub fn qr_for_terminal(text: &str) -> Result<String, IdentityError> {
    use qrcode::render::unicode::Dense1x2;
    let code =
        qrcode::QrCode::new(text.as_bytes()).map_err(|e| IdentityError::Qr(e.to_string()))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// RFC 6238 appendix B's SHA-1 key and vectors (8 digits there; the
    /// last six digits are the 6-digit code).
    const RFC_KEY: &[u8] = b"12345678901234567890";

    fn rfc() -> TotpSecret {
        TotpSecret(RFC_KEY.to_vec())
    }

    #[test]
    fn rfc_6238_vectors() {
        let s = rfc();
        for (unix, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            let t = OffsetDateTime::from_unix_timestamp(unix).unwrap();
            assert_eq!(s.code_at(t).unwrap(), code, "{unix}");
        }
    }

    #[test]
    fn one_step_of_drift_either_way_and_no_more() {
        let s = rfc();
        let now = datetime!(2026-12-06 12:00:15 UTC);
        let step = step_of(now).unwrap();
        let at = |steps: i64| now + time::Duration::seconds(steps * 30);
        for (offset, accepted) in [
            (-3, false),
            (-2, false),
            (-1, true),
            (0, true),
            (1, true),
            (2, false),
        ] {
            let code = s.code_at(at(offset)).unwrap();
            let got = s.check(&code, now).unwrap();
            if accepted {
                assert_eq!(
                    got,
                    Some(step.checked_add_signed(offset).unwrap()),
                    "{offset}"
                );
            } else {
                assert_eq!(got, None, "{offset}");
            }
        }
    }

    #[test]
    fn codes_are_trimmed_and_must_be_six_digits() {
        let s = rfc();
        let now = datetime!(2026-12-06 12:00:15 UTC);
        let code = s.code_at(now).unwrap();
        assert!(s.check(&format!("  {code}\r"), now).unwrap().is_some());
        assert!(s.check(&format!("{code}\r\n"), now).unwrap().is_some());
        assert!(s.check(&format!("{code}0"), now).unwrap().is_none());
        assert!(s.check(&code[1..], now).unwrap().is_none());
        assert!(s.check("", now).unwrap().is_none());
        assert!(s.check("12 345", now).unwrap().is_none());
        assert!(s.check("١٢٣٤٥٦", now).unwrap().is_none());
    }

    #[test]
    fn base32_round_trip_and_uri() {
        let s = TotpSecret::generate().unwrap();
        let b32 = s.to_base32();
        assert_eq!(b32.len(), 32);
        let again = TotpSecret::from_base32(&b32).unwrap();
        assert_eq!(again.0, s.0);
        let uri = otpauth_uri(&s, "alice@bastion.example.com");
        assert_eq!(
            uri,
            format!(
                "otpauth://totp/Gatehouse:alice@bastion.example.com?secret={b32}&issuer=Gatehouse&algorithm=SHA1&digits=6&period=30"
            )
        );
        assert!(otpauth_uri(&s, "a@::1").contains("Gatehouse:a@%3A%3A1?"));
        assert_eq!(format!("{s:?}"), "TotpSecret([redacted])");
    }

    #[test]
    fn qr_code_is_half_blocks() {
        let qr = qr_for_terminal("otpauth://totp/Gatehouse:a@b?secret=AAAA").unwrap();
        assert!(qr.lines().count() > 10);
        assert!(qr.chars().any(|c| matches!(c, '▀' | '▄' | '█')));
    }
}
