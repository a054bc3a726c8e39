//! Staff logging in with an OpenSSH user certificate from a CA the site
//! trusts (`[ca] cert_authorities` in gatehouse.toml), so that staff whose
//! laptops get short-lived certificates need no key listed in the policy.
//!
//! The pure check of one certificate against the login: a user
//! certificate, signed by a trusted CA, valid now, with the staff name
//! among its principals (a certificate without principals is refused,
//! where OpenSSH would take it for "anyone"), and only critical options
//! the bastion can honour: `source-address` is enforced against the
//! client's address; `force-command` is refused (the bastion cannot hold
//! a staff member to one command on a target they choose), as is
//! `verify-required` (no FIDO user verification here) and any option it
//! does not know, as PROTOCOL.certkeys requires. The policy's own checks
//! (the `[[user]]` exists, has not expired, `allow_from`, lockout) still
//! apply in the handler.
//!
//! Layer: the bottom of `server/` (pure); imports nothing of `server/`.

use std::net::IpAddr;

use russh::keys::ssh_key::certificate::{CertType, Certificate};
use russh::keys::{HashAlg, PublicKey};

/// Why a certificate was refused: a stable code and a reason for the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRefusal {
    pub code: &'static str,
    pub reason: String,
}

fn refuse(code: &'static str, reason: impl Into<String>) -> CertRefusal {
    CertRefusal {
        code,
        reason: reason.into(),
    }
}

/// Checks `cert`, presented for staff member `staff` from `source` at
/// `now` (Unix seconds), against the trusted `authorities`.
pub fn check(
    cert: &Certificate,
    authorities: &[PublicKey],
    staff: &str,
    source: IpAddr,
    now: u64,
) -> Result<(), CertRefusal> {
    if cert.cert_type() != CertType::User {
        return Err(refuse("CERT_NOT_USER", "not a user certificate"));
    }
    let signer = cert.signature_key();
    if !authorities.iter().any(|ca| ca.key_data() == signer) {
        return Err(refuse(
            "CERT_UNKNOWN_CA",
            format!(
                "certificate signed by an untrusted CA {}",
                signer.fingerprint(HashAlg::Sha256)
            ),
        ));
    }
    if cert.verify_signature().is_err() {
        return Err(refuse(
            "CERT_BAD_SIGNATURE",
            "certificate signature invalid",
        ));
    }
    if !(cert.valid_after() <= now && now < cert.valid_before()) {
        return Err(refuse(
            "CERT_EXPIRED",
            "certificate expired or not yet valid",
        ));
    }
    if !cert.valid_principals().iter().any(|p| p == staff) {
        return Err(refuse(
            "CERT_PRINCIPAL",
            format!(
                "certificate principals {:?} do not name {staff:?}",
                cert.valid_principals()
                    .iter()
                    .take(8)
                    .map(|p| p.chars().take(64).collect::<String>())
                    .collect::<Vec<_>>()
            ),
        ));
    }
    for (name, value) in cert.critical_options().iter() {
        match name.as_str() {
            "source-address" => {
                if !source_allowed(value, source) {
                    return Err(refuse(
                        "CERT_SOURCE",
                        format!("source {source} is not in the certificate's source-address"),
                    ));
                }
            }
            "force-command" => {
                return Err(refuse(
                    "CERT_FORCE_COMMAND",
                    "certificates with force-command are refused",
                ));
            }
            other => {
                return Err(refuse(
                    "CERT_CRITICAL_OPTION",
                    format!(
                        "unsupported critical option {:?}",
                        other.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `source-address`: comma-separated addresses and CIDRs; a malformed
/// entry allows nothing (fail closed).
fn source_allowed(list: &str, source: IpAddr) -> bool {
    let source = match source {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let mut nets = Vec::new();
    for part in list.split(',') {
        match crate::policy::parse_cidr(part) {
            Ok(n) => nets.push(n),
            Err(_) => return false,
        }
    }
    nets.iter().any(|n| n.contains(&source))
}

/// What the audit records about an accepted certificate.
pub fn describe(cert: &Certificate) -> (String, String, u64) {
    (
        cert.key_id().chars().take(200).collect(),
        cert.signature_key()
            .fingerprint(HashAlg::Sha256)
            .to_string(),
        cert.serial(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    const NOW: u64 = 1_800_000_000;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn cert(
        ca: &PrivateKey,
        principals: &[&str],
        options: &[(&str, &str)],
        kind: CertType,
    ) -> Certificate {
        let subject = key(9);
        let mut b = Builder::new(
            vec![0u8; 32],
            subject.public_key().key_data().clone(),
            NOW - 60,
            NOW + 600,
        )
        .unwrap();
        b.cert_type(kind).unwrap();
        b.key_id("laptop-alice").unwrap();
        for p in principals {
            b.valid_principal(*p).unwrap();
        }
        if principals.is_empty() {
            b.all_principals_valid().unwrap();
        }
        for (k, v) in options {
            b.critical_option(*k, *v).unwrap();
        }
        b.sign(ca).unwrap()
    }

    fn code(r: Result<(), CertRefusal>) -> &'static str {
        r.err().map(|e| e.code).unwrap_or("OK")
    }

    #[test]
    fn every_condition_is_enforced() {
        let ca = key(1);
        let trusted = vec![ca.public_key().clone()];
        let here: IpAddr = "192.0.2.7".parse().unwrap();
        let good = cert(&ca, &["alice"], &[], CertType::User);
        assert_eq!(code(check(&good, &trusted, "alice", here, NOW)), "OK");
        assert_eq!(
            code(check(&good, &trusted, "bob", here, NOW)),
            "CERT_PRINCIPAL"
        );
        assert_eq!(
            code(check(&good, &trusted, "alice", here, NOW + 600)),
            "CERT_EXPIRED"
        );
        assert_eq!(
            code(check(&good, &trusted, "alice", here, NOW - 61)),
            "CERT_EXPIRED"
        );
        let other_ca = key(2);
        let foreign = cert(&other_ca, &["alice"], &[], CertType::User);
        assert_eq!(
            code(check(&foreign, &trusted, "alice", here, NOW)),
            "CERT_UNKNOWN_CA"
        );
        let host = cert(&ca, &["alice"], &[], CertType::Host);
        assert_eq!(
            code(check(&host, &trusted, "alice", here, NOW)),
            "CERT_NOT_USER"
        );
        let nobody = cert(&ca, &[], &[], CertType::User);
        assert_eq!(
            code(check(&nobody, &trusted, "alice", here, NOW)),
            "CERT_PRINCIPAL"
        );
        let from = |list: &str| cert(&ca, &["alice"], &[("source-address", list)], CertType::User);
        assert_eq!(
            code(check(
                &from("192.0.2.0/24,10.0.0.1"),
                &trusted,
                "alice",
                here,
                NOW
            )),
            "OK"
        );
        assert_eq!(
            code(check(
                &from("198.51.100.0/24"),
                &trusted,
                "alice",
                here,
                NOW
            )),
            "CERT_SOURCE"
        );
        assert_eq!(
            code(check(
                &from("192.0.2.0/24,junk"),
                &trusted,
                "alice",
                here,
                NOW
            )),
            "CERT_SOURCE"
        );
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            code(check(&from("192.0.2.7"), &trusted, "alice", mapped, NOW)),
            "OK"
        );
        let forced = cert(&ca, &["alice"], &[("force-command", "ls")], CertType::User);
        assert_eq!(
            code(check(&forced, &trusted, "alice", here, NOW)),
            "CERT_FORCE_COMMAND"
        );
        let fido = cert(&ca, &["alice"], &[("verify-required", "")], CertType::User);
        assert_eq!(
            code(check(&fido, &trusted, "alice", here, NOW)),
            "CERT_CRITICAL_OPTION"
        );
        assert_eq!(describe(&good).0, "laptop-alice");
    }
}
