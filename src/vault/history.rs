//! Password history without the passwords: each password ever stored for a
//! row leaves a salted Argon2id hash, so the vault can refuse reuse of the
//! last N without keeping anything that decrypts. Hashes carry their own
//! parameters (PHC-like `argon2id$v=19$m=M,t=T,p=P$SALT$HASH`, unpadded
//! base64) so that the cost can change without invalidating old entries.
//!
//! The hashes are not peppered with the master key on purpose: `vault
//! rekey` could not re-hash them without the old plaintexts.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

use super::VaultError;
use super::secret::{Secret, ct_eq};

const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
/// Bounds on parameters read back from the database, so that a tampered
/// row cannot make the bastion allocate gigabytes.
const MAX_M_KIB: u32 = 1 << 20;
const MAX_T: u32 = 16;
const MAX_P: u32 = 16;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl HashCost {
    /// OWASP's recommended minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    pub const OWASP: HashCost = HashCost {
        m_kib: 19456,
        t: 2,
        p: 1,
    };

    fn argon2(self) -> Result<argon2::Argon2<'static>, VaultError> {
        let params = argon2::Params::new(self.m_kib, self.t, self.p, Some(HASH_LEN))
            .map_err(|e| VaultError::Hash(e.to_string()))?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }
}

impl Default for HashCost {
    fn default() -> Self {
        HashCost::OWASP
    }
}

/// Hashes `pw` with a fresh random salt.
pub fn hash(pw: &Secret, cost: HashCost) -> Result<String, VaultError> {
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| VaultError::Random)?;
    let mut out = [0u8; HASH_LEN];
    cost.argon2()?
        .hash_password_into(pw.expose().as_bytes(), &salt, &mut out)
        .map_err(|e| VaultError::Hash(e.to_string()))?;
    Ok(format!(
        "argon2id$v=19$m={},t={},p={}${}${}",
        cost.m_kib,
        cost.t,
        cost.p,
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// Whether `pw` is the password `stored` was made from.
pub fn verify(pw: &Secret, stored: &str) -> Result<bool, VaultError> {
    let bad = || VaultError::Corrupt("a password history entry".into());
    let mut parts = stored.split('$');
    if parts.next() != Some("argon2id") || parts.next() != Some("v=19") {
        return Err(bad());
    }
    let params = parts.next().ok_or_else(bad)?;
    let salt = parts.next().ok_or_else(bad)?;
    let want = parts.next().ok_or_else(bad)?;
    if parts.next().is_some() {
        return Err(bad());
    }
    let mut cost = HashCost {
        m_kib: 0,
        t: 0,
        p: 0,
    };
    for kv in params.split(',') {
        let (k, v) = kv.split_once('=').ok_or_else(bad)?;
        let v: u32 = v.parse().map_err(|_| bad())?;
        match k {
            "m" => cost.m_kib = v,
            "t" => cost.t = v,
            "p" => cost.p = v,
            _ => return Err(bad()),
        }
    }
    if cost.m_kib > MAX_M_KIB || cost.t > MAX_T || cost.p > MAX_P {
        return Err(bad());
    }
    let salt = STANDARD_NO_PAD.decode(salt).map_err(|_| bad())?;
    let want = STANDARD_NO_PAD.decode(want).map_err(|_| bad())?;
    if want.len() != HASH_LEN {
        return Err(bad());
    }
    let mut got = [0u8; HASH_LEN];
    cost.argon2()
        .map_err(|_| bad())?
        .hash_password_into(pw.expose().as_bytes(), &salt, &mut got)
        .map_err(|_| bad())?;
    Ok(ct_eq(&got, &want))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashCost = HashCost {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[test]
    fn verify_accepts_only_the_same_password() {
        let h = hash(&Secret::new("Blue-Horse-42x"), CHEAP).unwrap();
        assert!(!h.contains("Blue"));
        assert!(verify(&Secret::new("Blue-Horse-42x"), &h).unwrap());
        assert!(!verify(&Secret::new("Blue-Horse-42y"), &h).unwrap());
    }

    #[test]
    fn salts_differ() {
        let a = hash(&Secret::new("same"), CHEAP).unwrap();
        let b = hash(&Secret::new("same"), CHEAP).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn the_recommended_cost_works() {
        let h = hash(&Secret::new("pw"), HashCost::OWASP).unwrap();
        assert!(h.starts_with("argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify(&Secret::new("pw"), &h).unwrap());
    }

    #[test]
    fn malformed_or_hostile_entries_are_errors() {
        let pw = Secret::new("pw");
        for bad in [
            "",
            "bcrypt$x",
            "argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$",
            "argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0$AAAA",
            "argon2id$v=19$m=64,t=1,p=1,q=2$c2FsdHNhbHRzYWx0$AAAA",
        ] {
            assert!(verify(&pw, bad).is_err(), "{bad}");
        }
    }
}
