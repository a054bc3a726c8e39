//! From what the directory answered (plain entries) to a [`Snapshot`]:
//! names checked and lowercased, keys parsed, group membership resolved
//! (groupOfNames `member` DNs, posixGroup `memberUid`, AD's `memberOf` on
//! user entries, groups nested in groups). Pure, no I/O: hostile input is
//! fed here by the tests. Anything unusable is skipped with a reason,
//! never a panic; an entry whose identity is ambiguous (two entries with
//! one name) is skipped whole, so that nobody logs in as someone else.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{DirUser, Skipped, Snapshot};

/// Longest key line accepted (an RSA 16384-bit key is about 2.8 KB).
const MAX_KEY_LEN: usize = 16 * 1024;
/// Keys per user kept; more are skipped.
const MAX_KEYS: usize = 64;
/// Members of one group accepted; a bigger group is skipped whole (its
/// members do not get it), reported.
pub const MAX_GROUP_MEMBERS: usize = 250_000;
/// Groups nested deeper than this are not followed further.
const MAX_NESTING: usize = 32;

/// One entry as read: its DN and attributes, names lowercased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEntry {
    pub dn: String,
    pub attrs: HashMap<String, Vec<String>>,
}

impl RawEntry {
    fn values(&self, attr: &str) -> &[String] {
        self.attrs.get(attr).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Everything one sync read.
#[derive(Debug, Clone, Default)]
pub struct RawRead {
    pub users: Vec<RawEntry>,
    /// DNs (as read) of users matching `disabled_filter`.
    pub disabled: Vec<String>,
    pub groups: Vec<RawEntry>,
    /// Referrals the server answered with: never followed.
    pub referrals: Vec<String>,
}

/// A DN compared the way directories do for our purpose: case-insensitive,
/// spaces around `,` and `=` ignored.
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        let (a, v) = part.split_once('=').unwrap_or((part, ""));
        out.push_str(&a.trim().to_lowercase());
        out.push('=');
        out.push_str(&v.trim().to_lowercase());
    }
    out
}

/// The value of the first RDN when it is `cn=...` (a group named by DN
/// only, as `memberOf` does).
fn cn_of_dn(dn: &str) -> Option<String> {
    let first = dn.split(',').next()?;
    let (a, v) = first.split_once('=')?;
    a.trim()
        .eq_ignore_ascii_case("cn")
        .then(|| v.trim().to_string())
}

/// Parses the key values of one user: valid OpenSSH public keys, sorted,
/// deduplicated; each bad value reported.
fn keys_of(e: &RawEntry, key_attr: &str, skipped: &mut Vec<Skipped>) -> Vec<String> {
    let mut keys = BTreeSet::new();
    for (i, raw) in e.values(key_attr).iter().enumerate() {
        let line = raw.trim();
        if line.len() > MAX_KEY_LEN {
            skipped.push(Skipped {
                dn: e.dn.clone(),
                reason: format!("key {} is longer than {MAX_KEY_LEN} bytes", i + 1),
            });
            continue;
        }
        match russh::keys::PublicKey::from_openssh(line) {
            Ok(k) => match k.to_openssh() {
                Ok(canon) => {
                    if keys.len() >= MAX_KEYS {
                        skipped.push(Skipped {
                            dn: e.dn.clone(),
                            reason: format!("more than {MAX_KEYS} keys: the rest are ignored"),
                        });
                        break;
                    }
                    keys.insert(canon);
                }
                Err(_) => skipped.push(Skipped {
                    dn: e.dn.clone(),
                    reason: format!("malformed key {}", i + 1),
                }),
            },
            Err(_) => skipped.push(Skipped {
                dn: e.dn.clone(),
                reason: format!("malformed key {}", i + 1),
            }),
        }
    }
    keys.into_iter().collect()
}

/// The staff name of an entry, or why it has none.
fn name_of(e: &RawEntry, name_attr: &str) -> Result<String, String> {
    match e.values(name_attr) {
        [one] => {
            let name = one.trim().to_lowercase();
            crate::policy::check_staff_name(&name)?;
            Ok(name)
        }
        [] => Err(format!("no `{name_attr}`")),
        _ => Err(format!("several values of `{name_attr}`")),
    }
}

/// Builds the copy from what was read.
pub fn assemble(read: &RawRead, name_attr: &str, key_attr: &str) -> (Snapshot, Vec<Skipped>) {
    let name_attr = name_attr.to_lowercase();
    let key_attr = key_attr.to_lowercase();
    let mut skipped: Vec<Skipped> = read
        .referrals
        .iter()
        .map(|r| Skipped {
            dn: r.clone(),
            reason: "referral not followed".to_string(),
        })
        .collect();

    // Users by name; a name seen twice is ambiguous and dropped whole.
    let mut by_name: BTreeMap<String, &RawEntry> = BTreeMap::new();
    let mut twice: BTreeSet<String> = BTreeSet::new();
    for e in &read.users {
        match name_of(e, &name_attr) {
            Ok(name) => {
                if by_name.insert(name.clone(), e).is_some() {
                    twice.insert(name);
                }
            }
            Err(reason) => skipped.push(Skipped {
                dn: e.dn.clone(),
                reason,
            }),
        }
    }
    for name in &twice {
        by_name.remove(name);
        skipped.push(Skipped {
            dn: name.clone(),
            reason: "several directory entries have this name: all skipped".to_string(),
        });
    }

    let disabled: HashSet<String> = read.disabled.iter().map(|d| normalize_dn(d)).collect();
    let dn_to_name: HashMap<String, &str> = by_name
        .iter()
        .map(|(n, e)| (normalize_dn(&e.dn), n.as_str()))
        .collect();

    // Groups: cn and direct members (users by name, groups by DN).
    let mut group_cn: HashMap<String, String> = HashMap::new();
    let mut usable: Vec<(&RawEntry, String)> = Vec::new();
    for g in &read.groups {
        let Some(cn) = g.values("cn").first().map(|s| s.trim().to_string()) else {
            skipped.push(Skipped {
                dn: g.dn.clone(),
                reason: "group without `cn`".to_string(),
            });
            continue;
        };
        if let Err(reason) = crate::policy::check_group_name(&cn) {
            skipped.push(Skipped {
                dn: g.dn.clone(),
                reason,
            });
            continue;
        }
        let members =
            g.values("member").len() + g.values("uniquemember").len() + g.values("memberuid").len();
        if members > MAX_GROUP_MEMBERS {
            skipped.push(Skipped {
                dn: g.dn.clone(),
                reason: format!("{members} members, more than {MAX_GROUP_MEMBERS}: group ignored"),
            });
            continue;
        }
        group_cn.insert(normalize_dn(&g.dn), cn.clone());
        usable.push((g, cn));
    }
    // Direct groups of each user, and groups directly inside each group.
    let mut user_groups: HashMap<&str, BTreeSet<String>> = HashMap::new();
    let mut parents: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (g, cn) in &usable {
        for m in g.values("member").iter().chain(g.values("uniquemember")) {
            let m = normalize_dn(m);
            if let Some(user) = dn_to_name.get(&m) {
                user_groups.entry(user).or_default().insert(cn.clone());
            } else if let Some(inner) = group_cn.get(&m) {
                parents.entry(inner.clone()).or_default().insert(cn.clone());
            }
        }
        for uid in g.values("memberuid") {
            let uid = uid.trim().to_lowercase();
            if let Some((name, _)) = by_name.get_key_value(&uid) {
                user_groups
                    .entry(name.as_str())
                    .or_default()
                    .insert(cn.clone());
            }
        }
    }
    // AD: the user entry names its groups.
    for (name, e) in &by_name {
        for g in e.values("memberof") {
            let cn = group_cn
                .get(&normalize_dn(g))
                .cloned()
                .or_else(|| cn_of_dn(g).filter(|c| crate::policy::check_group_name(c).is_ok()));
            if let Some(cn) = cn {
                user_groups.entry(name.as_str()).or_default().insert(cn);
            }
        }
    }

    let mut snapshot = Snapshot::default();
    for (name, e) in &by_name {
        let direct = user_groups.remove(name.as_str()).unwrap_or_default();
        let groups = with_parents(direct, &parents);
        let keys = keys_of(e, &key_attr, &mut skipped);
        snapshot.users.insert(
            name.clone(),
            DirUser {
                name: name.clone(),
                dn: e.dn.clone(),
                keys,
                groups: groups.into_iter().collect(),
                disabled: disabled.contains(&normalize_dn(&e.dn)),
            },
        );
    }
    (snapshot, skipped)
}

/// The groups, and every group they are nested in (cycles and depth
/// bounded).
fn with_parents(
    direct: BTreeSet<String>,
    parents: &HashMap<String, BTreeSet<String>>,
) -> BTreeSet<String> {
    let mut all = direct.clone();
    let mut frontier: Vec<String> = direct.into_iter().collect();
    for _ in 0..MAX_NESTING {
        let mut next = Vec::new();
        for g in &frontier {
            for p in parents.get(g).into_iter().flatten() {
                if all.insert(p.clone()) {
                    next.push(p.clone());
                }
            }
        }
        if next.is_empty() {
            break;
        }
        frontier = next;
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb8GkSz2e8dPsMGOg0ZyoKkUfcmr0CNYRRSyW8d4ebs";
    const K2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMPq1YO+zrjJhP0qxqnUWD7EFdjoK7oivd1t7zKx6Vl3";

    fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> RawEntry {
        RawEntry {
            dn: dn.into(),
            attrs: attrs
                .iter()
                .map(|(a, v)| (a.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
        }
    }

    fn person(uid: &str, keys: &[&str]) -> RawEntry {
        entry(
            &format!("uid={uid},ou=people,dc=x"),
            &[("uid", &[uid]), ("sshpublickey", keys)],
        )
    }

    #[test]
    fn groups_of_names_posix_groups_member_of_and_nesting() {
        let mut ad = entry(
            "CN=Dan,OU=People,DC=x",
            &[("samaccountname", &["Dan"]), ("sshpublickey", &[K2])],
        );
        ad.attrs.insert(
            "memberof".into(),
            vec![
                "CN=Domain Admins,CN=Users,DC=x".into(),
                "cn=dbas,ou=groups,dc=x".into(),
            ],
        );
        let read = RawRead {
            users: vec![person("ann", &[K1]), person("bob", &[])],
            disabled: vec!["UID=bob, ou=people,dc=x".into()],
            groups: vec![
                entry(
                    "cn=support,ou=groups,dc=x",
                    &[
                        ("cn", &["support"]),
                        ("member", &["uid=ANN,ou=people,dc=x"]),
                    ],
                ),
                entry(
                    "cn=ops,ou=groups,dc=x",
                    &[("cn", &["ops"]), ("memberuid", &["bob"])],
                ),
                // Nested: support is inside staff, staff inside support (a loop).
                entry(
                    "cn=staff,ou=groups,dc=x",
                    &[
                        ("cn", &["staff"]),
                        ("member", &["cn=support,ou=groups,dc=x"]),
                    ],
                ),
                entry(
                    "cn=loop,ou=groups,dc=x",
                    &[
                        ("cn", &["support"]),
                        ("member", &["cn=staff,ou=groups,dc=x"]),
                    ],
                ),
            ],
            referrals: vec![],
        };
        let (s, skipped) = assemble(&read, "uid", "sshPublicKey");
        let ann = &s.users["ann"];
        assert_eq!(ann.groups, vec!["staff".to_string(), "support".to_string()]);
        assert_eq!(ann.keys.len(), 1);
        assert!(!ann.disabled);
        let bob = &s.users["bob"];
        assert!(bob.disabled, "DN compared without case or spaces");
        assert_eq!(bob.groups, vec!["ops".to_string()]);
        assert!(skipped.is_empty(), "{skipped:?}");

        // AD-shaped: the name attribute is lowercased, memberOf counts;
        // a memberOf cn that is not a valid group name is ignored.
        let read = RawRead {
            users: vec![ad],
            ..RawRead::default()
        };
        let (s, _) = assemble(&read, "sAMAccountName", "sshPublicKey");
        assert_eq!(s.users["dan"].groups, vec!["dbas".to_string()]);
    }

    #[test]
    fn hostile_entries_are_skipped_not_fatal() {
        let long = "a".repeat(100);
        let read = RawRead {
            users: vec![
                person("Root; rm -rf /", &[K1]),
                person(&long, &[K1]),
                person(
                    "ok",
                    &["ssh-ed25519 AAAAnot-base64", K1, &"x".repeat(20_000)],
                ),
                entry("uid=nameless,dc=x", &[("sshpublickey", &[K2])]),
                entry("uid=two,dc=x", &[("uid", &["a", "b"])]),
                person("twin", &[K1]),
                person("TWIN", &[K2]),
                person("\u{202e}evil", &[K2]),
            ],
            referrals: vec!["ldap://elsewhere/dc=x".into(), "ldap://loop/dc=x".into()],
            ..RawRead::default()
        };
        let (s, skipped) = assemble(&read, "uid", "sshpublickey");
        assert_eq!(s.users.keys().collect::<Vec<_>>(), vec!["ok"]);
        assert_eq!(s.users["ok"].keys.len(), 1, "the good key is kept");
        let reasons: Vec<&str> = skipped.iter().map(|s| s.reason.as_str()).collect();
        assert!(reasons.iter().filter(|r| r.contains("referral")).count() == 2);
        assert!(reasons.iter().any(|r| r.contains("malformed key 1")));
        assert!(reasons.iter().any(|r| r.contains("longer than")));
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("several directory entries"))
        );
        assert!(reasons.iter().any(|r| r.contains("no `uid`")));
        assert!(reasons.iter().any(|r| r.contains("several values")));
        assert!(
            reasons
                .iter()
                .filter(|r| r.contains("invalid user name"))
                .count()
                >= 2
        );
    }

    #[test]
    fn ten_thousand_members_in_a_group() {
        let users: Vec<RawEntry> = (0..10_000).map(|i| person(&format!("u{i}"), &[])).collect();
        let members: Vec<String> = (0..10_000)
            .map(|i| format!("uid=u{i},ou=people,dc=x"))
            .collect();
        let mut g = entry("cn=all,ou=groups,dc=x", &[("cn", &["all"])]);
        g.attrs.insert("member".into(), members);
        let read = RawRead {
            users,
            groups: vec![g],
            ..RawRead::default()
        };
        let (s, skipped) = assemble(&read, "uid", "sshpublickey");
        assert!(skipped.is_empty());
        assert_eq!(s.users.len(), 10_000);
        assert!(
            s.users
                .values()
                .all(|u| u.groups == vec!["all".to_string()])
        );
    }

    #[test]
    fn an_oversized_group_is_skipped_whole() {
        let mut g = entry("cn=huge,ou=groups,dc=x", &[("cn", &["huge"])]);
        g.attrs.insert(
            "memberuid".into(),
            (0..=MAX_GROUP_MEMBERS).map(|i| format!("u{i}")).collect(),
        );
        let read = RawRead {
            users: vec![person("u1", &[])],
            groups: vec![g],
            ..RawRead::default()
        };
        let (s, skipped) = assemble(&read, "uid", "sshpublickey");
        assert!(s.users["u1"].groups.is_empty());
        assert_eq!(skipped.len(), 1);
    }

    #[test]
    fn normalize() {
        assert_eq!(
            normalize_dn("UID=Ann , OU=People,dc=X"),
            "uid=ann,ou=people,dc=x"
        );
        assert_eq!(cn_of_dn("CN=dbas,OU=g"), Some("dbas".into()));
        assert_eq!(cn_of_dn("uid=x,OU=g"), None);
    }
}
