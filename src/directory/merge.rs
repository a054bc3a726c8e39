//! The policy a node serves: the policy files' users and servers, plus the
//! directory's enabled users (when the copy is fresh enough to serve). A
//! `[[user]]` of the same name wins and the clash is reported. Pure.

use std::collections::HashSet;

use super::Snapshot;
use crate::policy::{Policy, Role, StaffKey, User};

/// The merged policy and the names both sources define.
#[derive(Debug, Clone)]
pub struct Merged {
    pub policy: Policy,
    /// Directory users shadowed by a policy `[[user]]` (in name order).
    pub conflicts: Vec<String>,
}

fn role(name: &str) -> Option<Role> {
    match name {
        "approver" => Some(Role::Approver),
        "auditor" => Some(Role::Auditor),
        "admin" => Some(Role::Admin),
        _ => None,
    }
}

/// `file` with the directory's users added. `dir` is `None` when there is
/// no copy or it is older than `max_stale` (fail closed: directory users
/// are then unknown). `roles`: `[directory.roles]`.
pub fn merge(file: &Policy, dir: Option<&Snapshot>, roles: &[(String, Vec<String>)]) -> Merged {
    let mut policy = file.clone();
    policy.directory_users.clear();
    let mut conflicts = Vec::new();
    let Some(dir) = dir else {
        return Merged { policy, conflicts };
    };
    // Staff keys are personal: a directory key that is a policy user's key
    // is not given to anyone else.
    let policy_keys: HashSet<&str> = file
        .users
        .values()
        .flat_map(|u| u.keys.iter().map(|k| k.fingerprint.as_str()))
        .collect();
    for (name, d) in &dir.users {
        if d.disabled {
            continue;
        }
        if file.users.contains_key(name) {
            conflicts.push(name.clone());
            continue;
        }
        let keys: Vec<StaffKey> = d
            .keys
            .iter()
            .filter_map(|line| russh::keys::PublicKey::from_openssh(line).ok())
            .map(|key| {
                let fingerprint = key.fingerprint(russh::keys::HashAlg::Sha256).to_string();
                StaffKey { key, fingerprint }
            })
            .filter(|k| !policy_keys.contains(k.fingerprint.as_str()))
            .collect();
        let mut user_roles: Vec<Role> = roles
            .iter()
            .filter(|(_, groups)| groups.iter().any(|g| d.groups.contains(g)))
            .filter_map(|(r, _)| role(r))
            .collect();
        user_roles.dedup();
        policy.users.insert(
            name.clone(),
            User {
                name: name.clone(),
                keys,
                groups: d.groups.clone(),
                roles: user_roles,
                allow_from: Vec::new(),
                expires: None,
                mfa_required: false,
            },
        );
        policy.directory_users.insert(name.clone());
    }
    Merged { policy, conflicts }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::path::PathBuf;

    use time::OffsetDateTime;

    use super::*;
    use crate::directory::DirUser;
    use crate::policy::{Action, Decision, Request, decide};

    const ALICE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDzXhOm/CKaSOWAp/1cSJfYiJiaPNkrM2OFPyrc4A1yR";
    const DAN: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb8GkSz2e8dPsMGOg0ZyoKkUfcmr0CNYRRSyW8d4ebs";
    const FP: &str = "SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM";

    fn file_policy() -> Policy {
        let text = format!(
            "[[user]]\nname = \"alice\"\nkeys = [\"{ALICE}\"]\ngroups = [\"ops\", \"support\"]\n\n\
             [[server]]\nname = \"db\"\naddress = \"127.0.0.1:22\"\nhost_key = \"{FP}\"\n\
             mode = \"ssh-forwarding\"\naccounts = [\"root\"]\nallow = [\"group:support\", \"group:ops\"]\n"
        );
        Policy::from_sources(&[(PathBuf::from("p.toml"), text)]).unwrap()
    }

    fn dir_user(name: &str, key: &str, groups: &[&str], disabled: bool) -> DirUser {
        DirUser {
            name: name.into(),
            dn: format!("uid={name},dc=x"),
            keys: vec![key.into()],
            groups: groups.iter().map(|s| s.to_string()).collect(),
            disabled,
        }
    }

    fn snap(users: Vec<DirUser>) -> Snapshot {
        Snapshot {
            users: users.into_iter().map(|u| (u.name.clone(), u)).collect(),
        }
    }

    fn allowed(p: &Policy, user: &str) -> bool {
        let req = Request {
            user,
            server: "db",
            account: None,
            source: IpAddr::from([127, 0, 0, 1]),
            action: Action::Session,
        };
        matches!(
            decide(p, &req, &[], OffsetDateTime::now_utc()),
            Decision::Allow(_)
        )
    }

    #[test]
    fn table() {
        let roles = vec![("approver".to_string(), vec!["leads".to_string()])];
        let file = file_policy();
        struct Case {
            what: &'static str,
            dir: Option<Snapshot>,
            user: &'static str,
            allowed: bool,
            source: &'static str,
            conflicts: Vec<&'static str>,
        }
        let cases = vec![
            Case {
                what: "directory user in an allowed group",
                dir: Some(snap(vec![dir_user("dan", DAN, &["support"], false)])),
                user: "dan",
                allowed: true,
                source: "directory",
                conflicts: vec![],
            },
            Case {
                what: "stale or absent copy: unknown",
                dir: None,
                user: "dan",
                allowed: false,
                source: "policy",
                conflicts: vec![],
            },
            Case {
                what: "disabled",
                dir: Some(snap(vec![dir_user("dan", DAN, &["support"], true)])),
                user: "dan",
                allowed: false,
                source: "policy",
                conflicts: vec![],
            },
            Case {
                what: "left the group",
                dir: Some(snap(vec![dir_user("dan", DAN, &["other"], false)])),
                user: "dan",
                allowed: false,
                source: "directory",
                conflicts: vec![],
            },
            Case {
                what: "policy user of the same name wins",
                dir: Some(snap(vec![dir_user("alice", DAN, &[], false)])),
                user: "alice",
                allowed: true,
                source: "policy",
                conflicts: vec!["alice"],
            },
        ];
        for c in cases {
            let m = merge(&file, c.dir.as_ref(), &roles);
            assert_eq!(allowed(&m.policy, c.user), c.allowed, "{}", c.what);
            assert_eq!(m.policy.user_source(c.user), c.source, "{}", c.what);
            assert_eq!(m.conflicts, c.conflicts, "{}", c.what);
        }
        // The winner keeps its own keys and groups.
        let m = merge(
            &file,
            Some(&snap(vec![dir_user("alice", DAN, &[], false)])),
            &roles,
        );
        let alice = m.policy.user("alice").unwrap();
        assert_eq!(alice.groups, vec!["ops".to_string(), "support".to_string()]);
        assert!(
            alice
                .keys
                .iter()
                .all(|k| k.key.to_openssh().unwrap() != DAN)
        );
    }

    #[test]
    fn roles_from_groups_and_personal_keys() {
        let roles = vec![
            ("approver".to_string(), vec!["leads".to_string()]),
            ("auditor".to_string(), vec!["security".to_string()]),
        ];
        let m = merge(
            &file_policy(),
            Some(&snap(vec![
                dir_user("dan", DAN, &["leads"], false),
                // Alice's key under another name is not given out.
                dir_user("eve", ALICE, &["support"], false),
            ])),
            &roles,
        );
        assert_eq!(m.policy.user("dan").unwrap().roles, vec![Role::Approver]);
        assert!(m.policy.user("eve").unwrap().keys.is_empty());
    }
}
