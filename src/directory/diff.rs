//! What changed between two copies of the directory: joiners, movers and
//! leavers. Pure; the sync turns the result into `user.*` events and the
//! daily report reads those events.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{DirUser, Snapshot};

/// A user present and enabled in both copies whose keys or groups moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub name: String,
    pub keys_added: Vec<String>,
    pub keys_removed: Vec<String>,
    pub groups_joined: Vec<String>,
    pub groups_left: Vec<String>,
}

/// The difference from an old copy to a new one. A user re-enabled counts
/// as added; a disabled user who then leaves the directory counts as
/// removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub added: Vec<String>,
    pub changed: Vec<Change>,
    pub disabled: Vec<String>,
    pub removed: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.disabled.is_empty()
            && self.removed.is_empty()
    }

    /// Users whose access may have shrunk: their live sessions and pending
    /// requests must be looked at again.
    pub fn shrunk(&self) -> BTreeSet<String> {
        self.disabled
            .iter()
            .chain(self.removed.iter())
            .cloned()
            .chain(
                self.changed
                    .iter()
                    .filter(|c| !c.keys_removed.is_empty() || !c.groups_left.is_empty())
                    .map(|c| c.name.clone()),
            )
            .collect()
    }
}

fn minus(a: &[String], b: &[String]) -> Vec<String> {
    let b: BTreeSet<&String> = b.iter().collect();
    a.iter().filter(|x| !b.contains(x)).cloned().collect()
}

fn change(old: &DirUser, new: &DirUser) -> Option<Change> {
    let c = Change {
        name: new.name.clone(),
        keys_added: minus(&new.keys, &old.keys),
        keys_removed: minus(&old.keys, &new.keys),
        groups_joined: minus(&new.groups, &old.groups),
        groups_left: minus(&old.groups, &new.groups),
    };
    let moved = !(c.keys_added.is_empty()
        && c.keys_removed.is_empty()
        && c.groups_joined.is_empty()
        && c.groups_left.is_empty());
    moved.then_some(c)
}

/// From `old` to `new`, each list in name order.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Diff {
    let mut d = Diff::default();
    for (name, n) in &new.users {
        match old.users.get(name) {
            None if !n.disabled => d.added.push(name.clone()),
            None => {}
            Some(o) => match (o.disabled, n.disabled) {
                (false, true) => d.disabled.push(name.clone()),
                (true, false) => d.added.push(name.clone()),
                (true, true) => {}
                (false, false) => d.changed.extend(change(o, n)),
            },
        }
    }
    for (name, o) in &old.users {
        if !new.users.contains_key(name) && !o.disabled {
            d.removed.push(name.clone());
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, keys: &[&str], groups: &[&str], disabled: bool) -> DirUser {
        DirUser {
            name: name.into(),
            dn: format!("uid={name},ou=people,dc=x"),
            keys: keys.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            disabled,
        }
    }

    fn snap(users: &[DirUser]) -> Snapshot {
        Snapshot {
            users: users.iter().map(|u| (u.name.clone(), u.clone())).collect(),
        }
    }

    #[test]
    fn table() {
        let a = user("ann", &["k1"], &["ops"], false);
        let cases: Vec<(&str, Snapshot, Snapshot, Diff)> = vec![
            (
                "nothing",
                snap(std::slice::from_ref(&a)),
                snap(std::slice::from_ref(&a)),
                Diff::default(),
            ),
            (
                "joiner",
                snap(&[]),
                snap(std::slice::from_ref(&a)),
                Diff {
                    added: vec!["ann".into()],
                    ..Diff::default()
                },
            ),
            (
                "joiner already disabled is no joiner",
                snap(&[]),
                snap(&[user("ann", &["k1"], &["ops"], true)]),
                Diff::default(),
            ),
            (
                "leaver",
                snap(std::slice::from_ref(&a)),
                snap(&[]),
                Diff {
                    removed: vec!["ann".into()],
                    ..Diff::default()
                },
            ),
            (
                "disabled",
                snap(std::slice::from_ref(&a)),
                snap(&[user("ann", &["k1"], &["ops"], true)]),
                Diff {
                    disabled: vec!["ann".into()],
                    ..Diff::default()
                },
            ),
            (
                "re-enabled is a joiner",
                snap(&[user("ann", &["k1"], &["ops"], true)]),
                snap(std::slice::from_ref(&a)),
                Diff {
                    added: vec!["ann".into()],
                    ..Diff::default()
                },
            ),
            (
                "disabled then gone is nothing more",
                snap(&[user("ann", &["k1"], &["ops"], true)]),
                snap(&[]),
                Diff::default(),
            ),
            (
                "mover: group and key",
                snap(std::slice::from_ref(&a)),
                snap(&[user("ann", &["k2"], &["dba"], false)]),
                Diff {
                    changed: vec![Change {
                        name: "ann".into(),
                        keys_added: vec!["k2".into()],
                        keys_removed: vec!["k1".into()],
                        groups_joined: vec!["dba".into()],
                        groups_left: vec!["ops".into()],
                    }],
                    ..Diff::default()
                },
            ),
            (
                "dn change alone is no change",
                snap(std::slice::from_ref(&a)),
                snap(&[DirUser {
                    dn: "uid=ann,ou=moved,dc=x".into(),
                    ..a.clone()
                }]),
                Diff::default(),
            ),
        ];
        for (what, old, new, want) in cases {
            assert_eq!(diff(&old, &new), want, "{what}");
        }
    }

    #[test]
    fn shrunk_names_leavers_and_losers_only() {
        let old = snap(&[
            user("ann", &["k1"], &["ops"], false),
            user("bob", &["k1b"], &["ops"], false),
            user("cy", &["k1c"], &["ops"], false),
            user("dee", &["k1d"], &["ops"], false),
        ]);
        let new = snap(&[
            user("ann", &["k1", "k2"], &["ops", "dba"], false),
            user("bob", &["k1b"], &[], false),
            user("cy", &["k1c"], &["ops"], true),
        ]);
        let d = diff(&old, &new);
        let want: BTreeSet<String> = ["bob", "cy", "dee"].iter().map(|s| s.to_string()).collect();
        assert_eq!(d.shrunk(), want);
    }
}
