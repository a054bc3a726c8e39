//! The bastion's user certificate authority: short-lived OpenSSH user
//! certificates it signs per session for targets that trust it
//! (`TrustedUserCAKeys`), so that such a target needs no authorized_keys
//! entry for the bastion and no standing credential exists to steal.
//!
//! Each certificate certifies a fresh Ed25519 key made for that login and
//! kept only in memory. Principal: the target account. Validity: from one
//! minute before the login (clock skew) to five minutes after it: long
//! enough to authenticate, useless afterwards (sshd checks validity at
//! authentication only; the session lives on). Key id:
//! `gatehouse staff=USER session=ID server=NAME`, which sshd writes to its
//! log on every login. Extensions: `permit-pty` always (shells), and
//! `permit-port-forwarding` only for modes whose forwards run through the
//! target's sshd; never agent or X11 forwarding, never `permit-user-rc`.
//!
//! The CA key is an OpenSSH Ed25519 key (`[ca] key`), created 0600 on first
//! start like the other keys.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::SecureRandom;
use russh::keys::PrivateKey;
use russh::keys::ssh_key::certificate::{Builder, CertType, Certificate};
use russh::keys::ssh_key::private::Ed25519Keypair;

/// How long before the login a certificate is already valid (clock skew).
pub const VALID_BEFORE_LOGIN: Duration = Duration::from_secs(60);
/// How long after the login a certificate stays valid.
pub const VALID_AFTER_LOGIN: Duration = Duration::from_secs(5 * 60);

/// Test-only knob: seconds to move the signing clock *back* (never
/// forward), so that an end-to-end test can have the real binary issue an
/// already expired certificate without touching the machine's clock. Only
/// backdating is honoured: at worst it yields certificates sshd refuses.
pub const BACKDATE_ENV: &str = "GATEHOUSE_TEST_CA_BACKDATE_SECS";

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("CA key: {0}")]
    Key(#[from] crate::keys::KeyError),
    #[error("CA key {0}: must be an Ed25519 key")]
    NotEd25519(String),
    #[error("no randomness available")]
    Random,
    #[error("cannot sign a certificate: {0}")]
    Sign(String),
}

/// What a certificate is for.
#[derive(Debug, Clone)]
pub struct CertRequest<'a> {
    /// The target account: the only principal.
    pub account: &'a str,
    pub staff: &'a str,
    pub session: &'a str,
    pub server: &'a str,
    /// The mode carries forwards through the target's sshd.
    pub port_forwarding: bool,
}

/// A certificate and the in-memory key it certifies.
pub struct Issued {
    pub key: Arc<PrivateKey>,
    pub certificate: Certificate,
}

pub struct UserCa {
    key: PrivateKey,
    /// Seconds the signing clock is moved back ([`BACKDATE_ENV`]).
    backdate: u64,
}

impl UserCa {
    /// Loads the CA key at `path`, creating it (0600, with `.pub`) when missing.
    pub fn load_or_create(path: &Path) -> Result<UserCa, CaError> {
        let key = crate::keys::load_or_create(path, "gatehouse user CA")?;
        if key.algorithm() != russh::keys::Algorithm::Ed25519 {
            return Err(CaError::NotEd25519(path.display().to_string()));
        }
        let backdate = std::env::var(BACKDATE_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok(UserCa { key, backdate })
    }

    /// The line for the target's `TrustedUserCAKeys` file.
    pub fn trusted_user_ca_keys_line(&self) -> String {
        crate::keys::public_line(&self.key)
    }

    /// `SHA256:...` of the CA key.
    pub fn fingerprint(&self) -> String {
        crate::keys::fingerprint(self.key.public_key())
    }

    /// Signs a certificate for one login happening at `now`.
    pub fn issue(&self, req: &CertRequest<'_>, now: SystemTime) -> Result<Issued, CaError> {
        let rng = ring::rand::SystemRandom::new();
        let mut seed = [0u8; 32];
        rng.fill(&mut seed).map_err(|_| CaError::Random)?;
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        seed.fill(0);
        let mut nonce = [0u8; 32];
        rng.fill(&mut nonce).map_err(|_| CaError::Random)?;
        let mut serial = [0u8; 8];
        rng.fill(&mut serial).map_err(|_| CaError::Random)?;

        let at = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| CaError::Sign("clock before 1970".into()))?
            .as_secs()
            .saturating_sub(self.backdate);
        let sign = |e: russh::keys::ssh_key::Error| CaError::Sign(e.to_string());
        let mut b = Builder::new(
            nonce.to_vec(),
            key.public_key().key_data().clone(),
            at.saturating_sub(VALID_BEFORE_LOGIN.as_secs()),
            at.saturating_add(VALID_AFTER_LOGIN.as_secs()),
        )
        .map_err(sign)?;
        b.serial(u64::from_be_bytes(serial)).map_err(sign)?;
        b.cert_type(CertType::User).map_err(sign)?;
        b.key_id(key_id(req)).map_err(sign)?;
        b.valid_principal(req.account).map_err(sign)?;
        b.extension("permit-pty", "").map_err(sign)?;
        if req.port_forwarding {
            b.extension("permit-port-forwarding", "").map_err(sign)?;
        }
        let certificate = b.sign(&self.key).map_err(sign)?;
        Ok(Issued {
            key: Arc::new(key),
            certificate,
        })
    }
}

/// `gatehouse staff=USER session=ID server=NAME`, with anything but
/// printable ASCII dropped (names are policy-checked already).
fn key_id(req: &CertRequest<'_>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect()
    };
    format!(
        "gatehouse staff={} session={} server={}",
        clean(req.staff),
        clean(req.session),
        clean(req.server)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(port_forwarding: bool) -> CertRequest<'static> {
        CertRequest {
            account: "root",
            staff: "alice",
            session: "s-1",
            server: "web1",
            port_forwarding,
        }
    }

    #[test]
    fn certificates_are_short_lived_and_narrow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca");
        let ca = UserCa::load_or_create(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(ca.trusted_user_ca_keys_line().starts_with("ssh-ed25519 "));

        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let issued = ca.issue(&req(false), now).unwrap();
        let c = &issued.certificate;
        assert_eq!(c.cert_type(), CertType::User);
        assert_eq!(c.valid_principals(), ["root".to_string()]);
        assert_eq!(c.valid_after(), 1_800_000_000 - 60);
        assert_eq!(c.valid_before(), 1_800_000_000 + 300);
        assert_eq!(c.key_id(), "gatehouse staff=alice session=s-1 server=web1");
        let ext: Vec<&String> = c.extensions().keys().collect();
        assert_eq!(ext, vec!["permit-pty"]);
        assert!(c.critical_options().is_empty());
        assert_eq!(c.public_key(), issued.key.public_key().key_data());
        let fp = ca
            .key
            .public_key()
            .fingerprint(russh::keys::HashAlg::Sha256);
        c.validate_at(1_800_000_000, [&fp]).unwrap();
        assert!(c.validate_at(1_800_000_000 + 301, [&fp]).is_err());

        let forwarding = ca.issue(&req(true), now).unwrap();
        let mut ext: Vec<&String> = forwarding.certificate.extensions().keys().collect();
        ext.sort();
        assert_eq!(ext, vec!["permit-port-forwarding", "permit-pty"]);
        // A fresh key per certificate.
        assert_ne!(
            forwarding.key.public_key().key_data(),
            issued.key.public_key().key_data()
        );
    }

    #[test]
    fn key_ids_hold_no_spaces_or_controls_from_names() {
        let r = CertRequest {
            account: "root",
            staff: "a l\nice",
            session: "s",
            server: "w\u{1b}[1m",
            port_forwarding: false,
        };
        assert_eq!(key_id(&r), "gatehouse staff=alice session=s server=w[1m");
    }
}
