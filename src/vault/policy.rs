//! The password policy (`[vault]` in gatehouse.toml), as pure functions:
//! what a password must look like ([`check_password`]), how the bastion
//! makes one ([`generate_password`]), what a stored private key must be
//! ([`check_private_key`]) and whether a stored credential complies today
//! ([`compliance`]). The clock is a parameter; nothing here touches the
//! database.
//!
//! Rules (defaults in brackets):
//! - internal accounts: at least `internal_min_length` [12] characters, with
//!   at least three of four classes (upper case, lower case, digit,
//!   punctuation or other symbol);
//! - third-party accounts (`--third-party`, or an account matching one of
//!   `third_party_accounts`): at least `third_party_min_length` [8]
//!   characters; no class rule, since such systems often impose their own;
//! - never equal to the account name, nor containing it when the name has
//!   three characters or more (case-insensitive);
//! - no control characters (they cannot survive `chpasswd` or a terminal);
//! - changed at least every `internal_max_age_days` [180] /
//!   `third_party_max_age_days` [90];
//! - none of the last `history` [10] passwords reused (see `history.rs`).

use serde::Serialize;
use time::{Date, Duration, OffsetDateTime};

use super::secret::Secret;
use super::{CredentialKind, CredentialMeta, VaultError};
use crate::config::VaultConfig;

/// Length of generated passwords unless the policy asks for more.
pub const GENERATED_LENGTH: usize = 20;

/// Symbols used in generated passwords: printable, and free of quotes,
/// backslash, backtick, `$`, `&`, `;` and space, which some target systems
/// and shells mangle.
const SYMBOLS: &[u8] = b"!#%+,-./:=?@^_~";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const DIGITS: &[u8] = b"0123456789";

/// Account names shorter than this are only checked for equality: a
/// one- or two-letter name inside a long password says nothing about it.
const MIN_NAME_LEN_FOR_CONTAINS: usize = 3;

/// RSA keys shorter than this do not comply.
pub const MIN_RSA_BITS: u32 = 2048;

/// Whether `account` is a third-party account by the `third_party_accounts`
/// globs. Invalid globs match nothing (config validation reports them).
pub fn is_third_party_account(policy: &VaultConfig, account: &str) -> bool {
    policy.third_party_accounts.iter().any(|g| {
        globset::Glob::new(g)
            .map(|g| g.compile_matcher().is_match(account))
            .unwrap_or(false)
    })
}

/// Minimum length for this kind of account.
pub fn min_length(policy: &VaultConfig, third_party: bool) -> usize {
    if third_party {
        policy.third_party_min_length
    } else {
        policy.internal_min_length
    }
}

/// Maximum age in days before a credential must be rotated.
pub fn max_age_days(policy: &VaultConfig, third_party: bool) -> u32 {
    if third_party {
        policy.third_party_max_age_days
    } else {
        policy.internal_max_age_days
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Classes {
    upper: bool,
    lower: bool,
    digit: bool,
    symbol: bool,
}

impl Classes {
    fn of(s: &str) -> Classes {
        let mut c = Classes::default();
        for ch in s.chars() {
            if ch.is_uppercase() {
                c.upper = true;
            } else if ch.is_lowercase() {
                c.lower = true;
            } else if ch.is_numeric() {
                c.digit = true;
            } else if !ch.is_alphanumeric() && !ch.is_control() {
                c.symbol = true;
            }
        }
        c
    }
    fn count(self) -> usize {
        [self.upper, self.lower, self.digit, self.symbol]
            .iter()
            .filter(|b| **b)
            .count()
    }
}

/// Checks a password against the policy; `Err` lists every reason it fails,
/// each a sentence safe to show (none repeats the password).
pub fn check_password(
    policy: &VaultConfig,
    account: &str,
    third_party: bool,
    pw: &Secret,
) -> Result<(), Vec<String>> {
    let p = pw.expose();
    let mut reasons = Vec::new();
    let len = p.chars().count();
    let min = min_length(policy, third_party);
    if len < min {
        let who = if third_party {
            "third-party"
        } else {
            "internal"
        };
        reasons.push(format!(
            "too short: {len} characters, {who} accounts need at least {min}"
        ));
    }
    if !third_party {
        let n = Classes::of(p).count();
        if n < 3 {
            reasons.push(format!(
                "uses {n} of the 4 character classes (upper case, lower case, digit, symbol); at least 3 are required"
            ));
        }
    }
    if p.chars().any(char::is_control) {
        reasons.push("contains control characters".into());
    }
    let name = account.to_lowercase();
    let lower = p.to_lowercase();
    if !name.is_empty() {
        if lower == name {
            reasons.push("is the account name".into());
        } else if name.chars().count() >= MIN_NAME_LEN_FOR_CONTAINS && lower.contains(&name) {
            reasons.push("contains the account name".into());
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// A random password that passes [`check_password`] and uses all four
/// classes: `max(min_length, 20)` characters drawn uniformly from 77
/// symbols (about 6.3 bits each) by the operating system's random source,
/// redrawn whole until it passes, so every accepted password is equally
/// likely.
pub fn generate_password(
    policy: &VaultConfig,
    account: &str,
    third_party: bool,
) -> Result<Secret, VaultError> {
    use rand::Rng;
    use rand::rngs::OsRng;
    let alphabet: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS].concat();
    let len = min_length(policy, third_party).max(GENERATED_LENGTH);
    // A draw fails the class rule about 8% of the time at length 20;
    // a thousand failures in a row means something else is wrong.
    for _ in 0..1000 {
        let mut s = String::with_capacity(len);
        for _ in 0..len {
            let i = OsRng.gen_range(0..alphabet.len());
            s.push(char::from(alphabet.get(i).copied().unwrap_or(b'x')));
        }
        let candidate = Secret::new(s);
        if Classes::of(candidate.expose()).count() == 4
            && check_password(policy, account, third_party, &candidate).is_ok()
        {
            return Ok(candidate);
        }
    }
    Err(VaultError::Generate)
}

/// Checks a private key the vault is asked to store; `Err` lists reasons it
/// is weak (the key is still stored, and reported as non-compliant).
pub fn check_private_key(key: &russh::keys::PrivateKey) -> Result<(), Vec<String>> {
    use russh::keys::Algorithm;
    let mut reasons = Vec::new();
    match key.algorithm() {
        Algorithm::Dsa => reasons.push("DSA keys are obsolete".to_string()),
        Algorithm::Rsa { .. } => {
            if let Some(rsa) = key.public_key().key_data().rsa() {
                let bits = rsa.key_size();
                if bits < MIN_RSA_BITS {
                    reasons.push(format!(
                        "RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
                    ));
                }
            }
        }
        _ => {}
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// Whether a stored credential complies with the policy at `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compliance {
    pub complies: bool,
    /// Why not, one sentence each; empty when it complies.
    pub reasons: Vec<String>,
    /// Whole days since the secret last changed.
    pub age_days: i64,
    pub max_age_days: u32,
    /// The last day the current secret is within policy (`YYYY-MM-DD`).
    #[serde(serialize_with = "serialize_date")]
    pub rotation_due: Date,
}

/// `YYYY-MM-DD`: `time`'s own serde form of a date is a tuple unless its
/// human-readable feature is on.
fn serialize_date<S: serde::Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(d)
}

/// Judges `meta` against the policy at `now`: its age (since the secret
/// last changed), the strength recorded when it was set (the plaintext is
/// not re-read for reports), and an unfinished rotation. Password reuse is
/// refused when a password is set, so it never reaches a stored credential.
pub fn compliance(meta: &CredentialMeta, policy: &VaultConfig, now: OffsetDateTime) -> Compliance {
    let max_age = max_age_days(policy, meta.third_party);
    let changed = meta.rotated_at;
    let age_days = (now - changed).whole_days().max(0);
    let rotation_due = changed
        .date()
        .checked_add(Duration::days(i64::from(max_age)))
        .unwrap_or(Date::MAX);
    let mut reasons = Vec::new();
    if now.date() > rotation_due {
        reasons.push(format!(
            "rotation was due on {rotation_due}: {age_days} days old, the policy allows {max_age}"
        ));
    }
    if !meta.strength_ok {
        let what = match meta.kind {
            CredentialKind::Password => "password",
            CredentialKind::PrivateKey => "private key",
        };
        if meta.strength_reasons.is_empty() {
            reasons.push(format!("{what} does not meet the policy"));
        }
        for r in &meta.strength_reasons {
            reasons.push(format!("{what} {r}"));
        }
    }
    if let Some(since) = meta.rotation_pending_since {
        reasons.push(format!(
            "a rotation started {} was never committed or aborted",
            super::store::format_ts(since)
        ));
    }
    Compliance {
        complies: reasons.is_empty(),
        reasons,
        age_days,
        max_age_days: max_age,
        rotation_due,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn policy() -> VaultConfig {
        crate::config::Config::default().vault
    }

    fn check(account: &str, third_party: bool, pw: &str) -> Result<(), Vec<String>> {
        check_password(&policy(), account, third_party, &Secret::new(pw))
    }

    #[test]
    fn good_passwords_pass() {
        assert_eq!(check("oracle", false, "Blue-Horse-42x"), Ok(()));
        assert_eq!(check("oracle", false, "bluehorse42!xy"), Ok(()));
        assert_eq!(check("vendor", true, "abcdefgh"), Ok(()));
    }

    #[test]
    fn too_short_is_refused_with_the_numbers() {
        let r = check("oracle", false, "Ab1!Ab1!Ab1").unwrap_err();
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(r[0].contains("11 characters"), "{r:?}");
        assert!(r[0].contains("at least 12"), "{r:?}");
    }

    #[test]
    fn two_classes_are_not_enough_for_internal_accounts() {
        let r = check("oracle", false, "abcdefghijkl1234").unwrap_err();
        assert!(r[0].contains("2 of the 4"), "{r:?}");
        assert_eq!(check("oracle", false, "abcdefghijkl1234X"), Ok(()));
        assert_eq!(check("oracle", false, "abcdefghijkl-234"), Ok(()));
        assert!(check("oracle", false, "ABCDEFGHIJKLMNOP").is_err());
    }

    #[test]
    fn third_party_accounts_need_only_their_length() {
        assert_eq!(check("vendor", true, "abcdefgh"), Ok(()));
        let r = check("vendor", true, "abcdefg").unwrap_err();
        assert!(r[0].contains("third-party"), "{r:?}");
        assert!(r[0].contains("at least 8"), "{r:?}");
        // the internal rule still applies to internal accounts
        assert!(check("vendor", false, "abcdefgh").is_err());
    }

    #[test]
    fn the_account_name_is_refused_in_any_case() {
        let r = check("Administrator", false, "administrator").unwrap_err();
        assert!(r.iter().any(|m| m == "is the account name"), "{r:?}");
        let r = check("oracle", false, "My-ORACLE-pass-1").unwrap_err();
        assert_eq!(r, vec!["contains the account name".to_string()]);
        // short names are checked for equality only
        assert_eq!(check("db", false, "Xdb-long-pass-12"), Ok(()));
        assert!(check("db", true, "DB").is_err());
    }

    #[test]
    fn control_characters_are_refused() {
        let r = check("oracle", false, "Good-pass-12\nx").unwrap_err();
        assert!(r.iter().any(|m| m.contains("control")), "{r:?}");
    }

    #[test]
    fn every_reason_is_reported_at_once() {
        let r = check("root", false, "root").unwrap_err();
        assert_eq!(r.len(), 3, "{r:?}");
    }

    #[test]
    fn third_party_globs() {
        let mut p = policy();
        p.third_party_accounts = vec!["ext-*".into(), "vendor".into()];
        assert!(is_third_party_account(&p, "ext-acme"));
        assert!(is_third_party_account(&p, "vendor"));
        assert!(!is_third_party_account(&p, "root"));
    }

    #[test]
    fn thousands_of_generated_passwords_all_pass() {
        let mut p = policy();
        for (i, (account, third_party)) in [
            ("root", false),
            ("oracle", false),
            ("a", false),
            ("ext-vendor", true),
            ("Administrator", false),
        ]
        .iter()
        .cycle()
        .take(5000)
        .enumerate()
        {
            // vary the minimum too, above and below the generated length
            p.internal_min_length = [12, 20, 24, 32][i % 4];
            let pw = generate_password(&p, account, *third_party).unwrap();
            assert_eq!(check_password(&p, account, *third_party, &pw), Ok(()));
            assert_eq!(Classes::of(pw.expose()).count(), 4);
            let want = min_length(&p, *third_party).max(GENERATED_LENGTH);
            assert_eq!(pw.expose().chars().count(), want);
            assert!(pw.expose().bytes().all(|b| b.is_ascii_graphic()));
        }
    }

    #[test]
    fn generated_passwords_differ() {
        let p = policy();
        let a = generate_password(&p, "root", false).unwrap();
        let b = generate_password(&p, "root", false).unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    fn meta(third_party: bool, rotated_at: OffsetDateTime) -> CredentialMeta {
        CredentialMeta {
            server: "db1".into(),
            account: "oracle".into(),
            kind: CredentialKind::Password,
            third_party,
            strength_ok: true,
            strength_reasons: vec![],
            key_info: None,
            created_at: rotated_at,
            rotated_at,
            last_used_at: None,
            rotation_pending_since: None,
        }
    }

    #[test]
    fn compliance_follows_age_by_account_kind() {
        let p = policy();
        let set = datetime!(2026-01-01 10:00 UTC);
        let c = compliance(&meta(false, set), &p, datetime!(2026-06-30 09:00 UTC));
        assert!(c.complies, "{c:?}");
        assert_eq!(c.age_days, 179);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["rotation_due"], "2026-06-30");
        assert_eq!(c.rotation_due, time::macros::date!(2026 - 06 - 30));
        let c = compliance(&meta(false, set), &p, datetime!(2026-07-01 00:00 UTC));
        assert!(!c.complies);
        assert!(
            c.reasons[0].contains("due on 2026-06-30: 180 days old, the policy allows 180"),
            "{c:?}"
        );
        // third-party: 90 days
        let c = compliance(&meta(true, set), &p, datetime!(2026-04-02 00:00 UTC));
        assert!(!c.complies, "{c:?}");
        assert_eq!(c.rotation_due, time::macros::date!(2026 - 04 - 01));
    }

    #[test]
    fn compliance_reports_recorded_weakness_and_stale_rotations() {
        let p = policy();
        let set = datetime!(2026-01-01 10:00 UTC);
        let mut m = meta(false, set);
        m.strength_ok = false;
        m.strength_reasons = vec!["too short: 6 characters".into()];
        m.rotation_pending_since = Some(set);
        let c = compliance(&m, &p, datetime!(2026-01-02 00:00 UTC));
        assert!(!c.complies);
        assert_eq!(c.reasons.len(), 2, "{c:?}");
        assert!(c.reasons[0].starts_with("password too short"), "{c:?}");
        assert!(c.reasons[1].contains("rotation started"), "{c:?}");
    }
}
