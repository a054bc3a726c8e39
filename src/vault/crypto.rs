//! Sealing vault secrets: AES-256-GCM under the master key, a fresh random
//! 96-bit nonce per encryption, and associated data that binds each
//! ciphertext to its row (server, account, kind and slot). A ciphertext
//! copied to another row, or read under another master key, fails to open.
//!
//! Stored form (base64, standard alphabet, in a TEXT column):
//! `version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::VaultError;
use super::master::MasterKey;
use super::secret::Secret;

/// First byte of every sealed value; bump it if the layout or the
/// associated data ever change.
pub const FORMAT_V1: u8 = 1;
const DOMAIN: &[u8] = b"gatehouse-vault-v1";
const TAG_LEN: usize = 16;

/// Which row and column a ciphertext belongs to. Every part goes into the
/// associated data, length-prefixed so that no two bindings encode alike.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub server: &'a str,
    pub account: &'a str,
    /// `password` or `private-key`.
    pub kind: &'a str,
    /// `current`, or `pending` for a rotation's not yet committed password.
    pub slot: &'a str,
}

/// The binding of the user CA's key row (`ca`, table `user_ca`): no vault
/// credential has this kind, so neither ciphertext opens in the other's
/// place.
/// The binding of a staff member's sealed TOTP secret (`identity`, table
/// `mfa_factors`): the user's name is in it, so a ciphertext copied to
/// another user's row does not open.
pub fn totp_binding(user: &str) -> Binding<'_> {
    Binding {
        server: "",
        account: user,
        kind: "mfa-totp",
        slot: "current",
    }
}

pub const USER_CA_BINDING: Binding<'static> = Binding {
    server: "",
    account: "",
    kind: "user-ca",
    slot: "current",
};

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            DOMAIN.len() + 16 + self.server.len() + self.account.len() + self.kind.len() + 8,
        );
        out.extend_from_slice(DOMAIN);
        for part in [self.server, self.account, self.kind, self.slot] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }

    fn describe(&self) -> String {
        format!("{}@{}", self.account, self.server)
    }
}

fn aead_key(key: &MasterKey) -> Result<LessSafeKey, VaultError> {
    let unbound = UnboundKey::new(&AES_256_GCM, key.bytes()).map_err(|_| VaultError::Crypto)?;
    Ok(LessSafeKey::new(unbound))
}

/// Encrypts `plain` for the row `binding` names.
pub fn seal(key: &MasterKey, binding: Binding<'_>, plain: &Secret) -> Result<String, VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| VaultError::Random)?;
    let mut buf = plain.expose().as_bytes().to_vec();
    let sealed = aead_key(key)?.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(binding.aad()),
        &mut buf,
    );
    if sealed.is_err() {
        super::secret::wipe(buf);
        return Err(VaultError::Crypto);
    }
    let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    Ok(STANDARD.encode(out))
}

/// Decrypts a value made by [`seal`] for the same binding and key.
pub fn open(key: &MasterKey, binding: Binding<'_>, stored: &str) -> Result<Secret, VaultError> {
    let undecipherable = || VaultError::Undecipherable(binding.describe());
    let raw = STANDARD
        .decode(stored.trim())
        .map_err(|_| VaultError::Corrupt(binding.describe()))?;
    let (version, rest) = raw
        .split_first()
        .ok_or_else(|| VaultError::Corrupt(binding.describe()))?;
    if *version != FORMAT_V1 {
        return Err(VaultError::Corrupt(format!(
            "{}: unknown format version {version}",
            binding.describe()
        )));
    }
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(VaultError::Corrupt(binding.describe()));
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| undecipherable())?;
    let mut buf = ct.to_vec();
    let plain_len = match aead_key(key)?.open_in_place(nonce, Aad::from(binding.aad()), &mut buf) {
        Ok(p) => p.len(),
        Err(_) => {
            super::secret::wipe(buf);
            return Err(undecipherable());
        }
    };
    buf.truncate(plain_len);
    match String::from_utf8(buf) {
        Ok(s) => Ok(Secret::new(s)),
        Err(e) => {
            super::secret::wipe(e.into_bytes());
            Err(VaultError::Corrupt(binding.describe()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b<'a>(server: &'a str, account: &'a str) -> Binding<'a> {
        Binding {
            server,
            account,
            kind: "password",
            slot: "current",
        }
    }

    #[test]
    fn round_trip() {
        let key = MasterKey::generate().unwrap();
        let s = Secret::new("Tr0ub4dor&3-long-enough");
        let sealed = seal(&key, b("db1", "oracle"), &s).unwrap();
        assert!(!sealed.contains("Tr0ub4dor"));
        let back = open(&key, b("db1", "oracle"), &sealed).unwrap();
        assert_eq!(back.expose(), s.expose());
    }

    #[test]
    fn nonces_are_fresh() {
        let key = MasterKey::generate().unwrap();
        let s = Secret::new("same plaintext");
        let a = seal(&key, b("db1", "root"), &s).unwrap();
        let c = seal(&key, b("db1", "root"), &s).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_does_not_open() {
        let key = MasterKey::generate().unwrap();
        let sealed = seal(&key, b("db1", "oracle"), &Secret::new("x-secret")).unwrap();
        for other in [b("db2", "oracle"), b("db1", "root"), b("db1oracle", "")] {
            let err = open(&key, other, &sealed).unwrap_err();
            assert!(matches!(err, VaultError::Undecipherable(_)), "{err}");
        }
        let pending = Binding {
            slot: "pending",
            ..b("db1", "oracle")
        };
        assert!(open(&key, pending, &sealed).is_err());
        let as_key = Binding {
            kind: "private-key",
            ..b("db1", "oracle")
        };
        assert!(open(&key, as_key, &sealed).is_err());
    }

    #[test]
    fn the_wrong_master_key_does_not_open() {
        let key = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();
        let sealed = seal(&key, b("db1", "oracle"), &Secret::new("x-secret")).unwrap();
        let err = open(&other, b("db1", "oracle"), &sealed).unwrap_err();
        assert!(matches!(err, VaultError::Undecipherable(_)), "{err}");
        assert!(!err.to_string().contains("x-secret"));
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let key = MasterKey::generate().unwrap();
        let sealed = seal(&key, b("db1", "oracle"), &Secret::new("x-secret")).unwrap();
        let mut raw = STANDARD.decode(&sealed).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = STANDARD.encode(&raw);
        assert!(open(&key, b("db1", "oracle"), &tampered).is_err());
        raw[0] = 9;
        let err = open(&key, b("db1", "oracle"), &STANDARD.encode(&raw)).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
        assert!(open(&key, b("db1", "oracle"), "!!!").is_err());
        assert!(open(&key, b("db1", "oracle"), "").is_err());
        assert!(open(&key, b("db1", "oracle"), &STANDARD.encode([1u8; 20])).is_err());
    }
}
