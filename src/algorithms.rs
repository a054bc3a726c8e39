//! The `[ssh]` section of gatehouse.toml: which key exchanges, ciphers, MACs
//! and host key algorithms the bastion offers, on its listener (to staff)
//! and as a client (to targets).
//!
//! The defaults are what ssh-audit grades without a failure and what the
//! stock OpenSSH 9.2 client and server negotiate with: the post-quantum
//! hybrid `mlkem768x25519-sha256` first, then `curve25519-sha256` (OpenSSH
//! before 9.9 has no ML-KEM; russh has no `sntrup761x25519-sha512`), no
//! finite-field Diffie-Hellman group, no NIST curve, AEAD ciphers first and
//! CTR only with encrypt-then-MAC, no SHA-1 anywhere. Towards a target the
//! bastion offers host key types without SHA-1 or NIST curves; a target
//! whose only host key is, say, ECDSA needs `target_host_key_algorithms`.
//!
//! Staff keys are another list: the signature algorithms the listener
//! accepts from staff ([`USER_KEY_ALGORITHMS`], fixed, not configurable)
//! are what it advertises in `server-sig-algs` (RFC 8308), which some
//! clients (Dropbear) require a key's algorithm to be in before they offer
//! it. SHA-1 signatures (`ssh-rsa`, `ssh-dss`) are refused
//! ([`weak_signature_algorithm`]).
//!
//! Names are checked against what russh implements; `none` is refused.
//! The protocol extensions (`ext-info-*`, strict key exchange against the
//! Terrapin attack) are always added: they are not algorithms to choose.

use std::borrow::Cow;
use std::str::FromStr;

use russh::keys::Algorithm;
use serde::Deserialize;

/// The section as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    kex: Option<Vec<String>>,
    ciphers: Option<Vec<String>>,
    macs: Option<Vec<String>>,
    host_key_algorithms: Option<Vec<String>>,
    target_kex: Option<Vec<String>>,
    target_ciphers: Option<Vec<String>>,
    target_macs: Option<Vec<String>>,
    target_host_key_algorithms: Option<Vec<String>>,
}

/// One side's lists, in order of preference, each name valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub kex: Vec<String>,
    pub ciphers: Vec<String>,
    pub macs: Vec<String>,
    pub host_key_algorithms: Vec<String>,
}

/// The resolved `[ssh]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAlgorithms {
    /// What the listener offers staff.
    pub listener: Side,
    /// What the bastion offers targets.
    pub target: Side,
}

const DEFAULT_KEX: &[&str] = &[
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
];
/// Staff side: chacha20 first (what OpenSSH clients prefer anyway).
const DEFAULT_CIPHERS: &[&str] = &[
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
];
/// Target side: AES-GCM first, hardware accelerated and cheapest per byte.
const DEFAULT_TARGET_CIPHERS: &[&str] = &[
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes128-ctr",
];
const DEFAULT_MACS: &[&str] = &[
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
];
/// The listener only offers those it holds a key for (Ed25519 by default).
const DEFAULT_HOST_KEY_ALGORITHMS: &[&str] = &["ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"];

/// The signature algorithms the listener accepts from staff keys, in the
/// order `server-sig-algs` lists them: everything russh verifies except
/// SHA-1 (`ssh-rsa`, `ssh-dss`) and certificates (their signatures use
/// these same algorithms).
pub const USER_KEY_ALGORITHMS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "rsa-sha2-512",
    "rsa-sha2-256",
];

/// A staff signature algorithm that is refused: SHA-1 based (`ssh-rsa`,
/// RSA with SHA-1, and `ssh-dss`), or one outside [`USER_KEY_ALGORITHMS`].
pub fn weak_signature_algorithm(algorithm: &Algorithm) -> bool {
    !USER_KEY_ALGORITHMS.contains(&algorithm.as_str())
        || matches!(algorithm, Algorithm::Rsa { hash: None } | Algorithm::Dsa)
}

/// What the bastion may always add to the kex list (russh keeps the ones
/// for its side).
const KEX_EXTENSIONS: &[russh::kex::Name] = &[
    russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
    russh::kex::EXTENSION_SUPPORT_AS_SERVER,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

impl Default for SshAlgorithms {
    fn default() -> Self {
        SshAlgorithms {
            listener: Side {
                kex: owned(DEFAULT_KEX),
                ciphers: owned(DEFAULT_CIPHERS),
                macs: owned(DEFAULT_MACS),
                host_key_algorithms: owned(DEFAULT_HOST_KEY_ALGORITHMS),
            },
            target: Side {
                kex: owned(DEFAULT_KEX),
                ciphers: owned(DEFAULT_TARGET_CIPHERS),
                macs: owned(DEFAULT_MACS),
                host_key_algorithms: owned(DEFAULT_HOST_KEY_ALGORITHMS),
            },
        }
    }
}

/// A bad list: the `ssh.KEY` it is under and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct AlgorithmError {
    pub key: &'static str,
    pub message: String,
}

impl SshAlgorithms {
    /// Checks every name of the raw section; absent lists take the defaults.
    pub fn resolve(raw: RawSsh) -> Result<SshAlgorithms, AlgorithmError> {
        let d = SshAlgorithms::default();
        let pick = |key: &'static str,
                    v: Option<Vec<String>>,
                    default: &Vec<String>,
                    check: fn(&str) -> bool|
         -> Result<Vec<String>, AlgorithmError> {
            let Some(list) = v else {
                return Ok(default.clone());
            };
            if list.is_empty() {
                return Err(AlgorithmError {
                    key,
                    message: "must list at least one algorithm".into(),
                });
            }
            for name in &list {
                if name == "none" || !check(name) {
                    return Err(AlgorithmError {
                        key,
                        message: format!("unsupported algorithm {name:?}"),
                    });
                }
            }
            Ok(list)
        };
        Ok(SshAlgorithms {
            listener: Side {
                kex: pick("ssh.kex", raw.kex, &d.listener.kex, is_kex)?,
                ciphers: pick("ssh.ciphers", raw.ciphers, &d.listener.ciphers, is_cipher)?,
                macs: pick("ssh.macs", raw.macs, &d.listener.macs, is_mac)?,
                host_key_algorithms: pick(
                    "ssh.host_key_algorithms",
                    raw.host_key_algorithms,
                    &d.listener.host_key_algorithms,
                    is_key_algorithm,
                )?,
            },
            target: Side {
                kex: pick("ssh.target_kex", raw.target_kex, &d.target.kex, is_kex)?,
                ciphers: pick(
                    "ssh.target_ciphers",
                    raw.target_ciphers,
                    &d.target.ciphers,
                    is_cipher,
                )?,
                macs: pick("ssh.target_macs", raw.target_macs, &d.target.macs, is_mac)?,
                host_key_algorithms: pick(
                    "ssh.target_host_key_algorithms",
                    raw.target_host_key_algorithms,
                    &d.target.host_key_algorithms,
                    is_key_algorithm,
                )?,
            },
        })
    }

    /// The section as gatehouse.toml would spell it (`config show`).
    pub fn to_toml(&self) -> toml::Table {
        let list = |v: &Vec<String>| {
            toml::Value::Array(v.iter().map(|s| toml::Value::String(s.clone())).collect())
        };
        let mut t = toml::Table::new();
        t.insert("kex".into(), list(&self.listener.kex));
        t.insert("ciphers".into(), list(&self.listener.ciphers));
        t.insert("macs".into(), list(&self.listener.macs));
        t.insert(
            "host_key_algorithms".into(),
            list(&self.listener.host_key_algorithms),
        );
        t.insert("target_kex".into(), list(&self.target.kex));
        t.insert("target_ciphers".into(), list(&self.target.ciphers));
        t.insert("target_macs".into(), list(&self.target.macs));
        t.insert(
            "target_host_key_algorithms".into(),
            list(&self.target.host_key_algorithms),
        );
        t
    }
}

impl Side {
    /// russh's preference lists for this side. Names were checked when
    /// the configuration was resolved; one that no longer parses is left
    /// out rather than offered.
    pub fn preferred(&self) -> russh::Preferred {
        let mut kex: Vec<russh::kex::Name> = self
            .kex
            .iter()
            .filter_map(|n| russh::kex::Name::try_from(n.as_str()).ok())
            .collect();
        kex.extend_from_slice(KEX_EXTENSIONS);
        russh::Preferred {
            kex: Cow::Owned(kex),
            key: Cow::Owned(
                self.host_key_algorithms
                    .iter()
                    .filter_map(|n| Algorithm::from_str(n).ok())
                    .collect(),
            ),
            cipher: Cow::Owned(
                self.ciphers
                    .iter()
                    .filter_map(|n| russh::cipher::Name::try_from(n.as_str()).ok())
                    .collect(),
            ),
            mac: Cow::Owned(
                self.macs
                    .iter()
                    .filter_map(|n| russh::mac::Name::try_from(n.as_str()).ok())
                    .collect(),
            ),
            ..russh::Preferred::default()
        }
    }
}

impl Side {
    /// The listener's preference lists. russh has one list, `key`, for
    /// both the host key algorithms it negotiates (limited to those of
    /// the host keys it holds) and the `server-sig-algs` it advertises, so
    /// the staff key algorithms are appended to the configured host key
    /// algorithms, except those a held host key could use: appending must
    /// not widen `host_key_algorithms`.
    pub fn listener_preferred(&self, host_keys: &[Algorithm]) -> russh::Preferred {
        let mut p = self.preferred();
        let mut key = p.key.into_owned();
        for name in USER_KEY_ALGORITHMS {
            let Ok(a) = Algorithm::from_str(name) else {
                continue;
            };
            let host_key_could_use = host_keys.iter().any(|h| {
                *h == a
                    || (matches!(h, Algorithm::Rsa { .. }) && matches!(a, Algorithm::Rsa { .. }))
            });
            if !key.contains(&a) && !host_key_could_use {
                key.push(a);
            }
        }
        p.key = Cow::Owned(key);
        p
    }
}

fn is_kex(name: &str) -> bool {
    russh::kex::Name::try_from(name).is_ok() && !KEX_EXTENSIONS.iter().any(|e| e.as_ref() == name)
}

fn is_cipher(name: &str) -> bool {
    russh::cipher::Name::try_from(name).is_ok() && name != "clear"
}

fn is_mac(name: &str) -> bool {
    russh::mac::Name::try_from(name).is_ok()
}

/// A plain (not certificate) key algorithm russh can use, spelled exactly.
fn is_key_algorithm(name: &str) -> bool {
    !name.contains("-cert-v01@")
        && Algorithm::from_str(name)
            .is_ok_and(|a| !matches!(a, Algorithm::Other(_)) && a.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawSsh {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_are_post_quantum_first_without_weak_algorithms() {
        let d = SshAlgorithms::resolve(RawSsh::default()).unwrap();
        assert_eq!(d, SshAlgorithms::default());
        for side in [&d.listener, &d.target] {
            assert_eq!(side.kex[0], "mlkem768x25519-sha256");
            assert!(side.kex.iter().all(|k| !k.starts_with("diffie-hellman")));
            assert!(side.kex.iter().all(|k| !k.contains("nistp")));
            assert!(side.macs.iter().all(|m| m.ends_with("-etm@openssh.com")));
            assert!(side.macs.iter().all(|m| !m.contains("sha1")));
            assert!(
                side.host_key_algorithms
                    .iter()
                    .all(|k| k != "ssh-rsa" && !k.contains("nistp"))
            );
            let p = side.preferred();
            assert_eq!(p.kex.len(), side.kex.len() + KEX_EXTENSIONS.len());
            assert_eq!(p.cipher.len(), side.ciphers.len());
            assert_eq!(p.mac.len(), side.macs.len());
            assert_eq!(p.key.len(), side.host_key_algorithms.len());
        }
    }

    #[test]
    fn configured_lists_are_checked() {
        let r = SshAlgorithms::resolve(raw("kex = [\"curve25519-sha256\"]\n")).unwrap();
        assert_eq!(r.listener.kex, vec!["curve25519-sha256".to_string()]);
        assert_eq!(r.target, SshAlgorithms::default().target);
        let r = SshAlgorithms::resolve(raw(
            "target_host_key_algorithms = [\"ecdsa-sha2-nistp256\", \"ssh-rsa\"]\n",
        ))
        .unwrap();
        assert_eq!(r.target.preferred().key.len(), 2);
        for (text, key) in [
            ("kex = [\"diffie-hellman-group1-sha2\"]", "kex"),
            ("ciphers = [\"none\"]", "ciphers"),
            ("macs = []", "macs"),
            ("target_macs = [\"hmac-md5\"]", "target_macs"),
            (
                "host_key_algorithms = [\"ssh-ed25519-cert-v01@openssh.com\"]",
                "host_key_algorithms",
            ),
            ("target_kex = [\"ext-info-c\"]", "target_kex"),
        ] {
            let e = SshAlgorithms::resolve(raw(text)).unwrap_err();
            assert_eq!(e.key, format!("ssh.{key}"), "{text}: {e}");
        }
        assert!(toml::from_str::<RawSsh>("kexes = []").is_err());
    }

    #[test]
    fn listener_advertises_every_staff_key_algorithm_without_widening_host_keys() {
        let d = SshAlgorithms::default();
        let p = d.listener.listener_preferred(&[Algorithm::Ed25519]);
        let names: Vec<&str> = p.key.iter().map(|a| a.as_str()).collect();
        // The configured host key algorithms first, in their order.
        assert_eq!(names[..3], ["ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"]);
        for name in USER_KEY_ALGORITHMS {
            assert!(names.contains(name), "{name} missing from {names:?}");
        }
        assert!(!names.contains(&"ssh-rsa"), "{names:?}");
        assert_eq!(names.len(), USER_KEY_ALGORITHMS.len());
        // An ECDSA host key left out of host_key_algorithms stays out.
        let p = d.listener.listener_preferred(&[Algorithm::Ecdsa {
            curve: russh::keys::EcdsaCurve::NistP256,
        }]);
        assert!(
            !p.key.iter().any(|a| a.as_str() == "ecdsa-sha2-nistp256"),
            "{:?}",
            p.key
        );
        assert!(p.key.iter().any(|a| a.as_str() == "ecdsa-sha2-nistp384"));
    }

    #[test]
    fn sha1_signatures_are_weak() {
        for name in ["ssh-rsa", "ssh-dss"] {
            let a = Algorithm::from_str(name).unwrap();
            assert!(weak_signature_algorithm(&a), "{name}");
        }
        for name in USER_KEY_ALGORITHMS {
            let a = Algorithm::from_str(name).unwrap();
            assert_eq!(a.as_str(), *name);
            assert!(!weak_signature_algorithm(&a), "{name}");
        }
    }

    #[test]
    fn to_toml_round_trips() {
        let d = SshAlgorithms::default();
        let text = toml::to_string(&d.to_toml()).unwrap();
        assert_eq!(SshAlgorithms::resolve(raw(&text)).unwrap(), d);
    }
}
