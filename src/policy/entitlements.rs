//! Standing entitlements and their access review state (contract section
//! 14): pure functions of (policy, directory users, grants, review marks,
//! `[review] every`, now), shared by `gatehouse access review`, the daily
//! report, the console's review page and the login decision
//! (`decide::review`).
//!
//! An *entitlement* is a (user, server, account) that works without asking
//! anyone: the policy's (or the directory's) `allow` names the user or one
//! of their groups on a server that needs no grant, or an approved
//! permanent grant covers it. A temporary grant is not one: it was
//! approved by a second person for a while, and expires by itself.
//!
//! Review state, in this order: *suspended* (the latest suspension is not
//! older than the latest certification), then, when `every` is set,
//! *overdue* (never certified, or certified more than `every` ago),
//! *due* (overdue within the last tenth of `every`, at most 14 days), else
//! *ok*. A permanent grant's approval counts as its first certification
//! (a second person looked at it then). A never certified entitlement is
//! overdue: "certified this often" has not happened yet, so a site that
//! turns `enforce` on certifies first.
//! May import: the policy types, grant types.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::{Mode, Policy, Principal, Server, User};
use crate::grant_types::{Grant, GrantState};

/// Where an entitlement comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A `[[user]]` entry named by a server's `allow`.
    Policy,
    /// A directory user (contract section 12) named by a server's `allow`.
    Directory,
    /// An approved permanent grant.
    Grant,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Policy => "policy",
            Source::Directory => "directory",
            Source::Grant => "grant",
        }
    }
}

/// One standing entitlement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entitlement {
    pub user: String,
    pub server: String,
    pub account: String,
    pub source: Source,
    /// The permanent grant, for [`Source::Grant`].
    pub grant: Option<i64>,
    /// When and by whom the permanent grant was approved: its first
    /// certification.
    #[serde(skip)]
    pub granted: Option<(OffsetDateTime, String)>,
}

/// What the store remembers of one (user, server, account)'s reviews: its
/// latest certification and its latest suspension.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ReviewMark {
    pub user: String,
    pub server: String,
    pub account: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub certified_at: Option<OffsetDateTime>,
    pub certified_by: Option<String>,
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub suspended_at: Option<OffsetDateTime>,
    pub suspended_by: Option<String>,
    pub reason: Option<String>,
}

impl ReviewMark {
    /// A suspension not lifted by a later certification. A tie keeps the
    /// suspension (fail closed).
    pub fn is_suspended(&self) -> bool {
        match (self.suspended_at, self.certified_at) {
            (Some(s), Some(c)) => s >= c,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewState {
    Ok,
    Due,
    Overdue,
    Suspended,
}

impl ReviewState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewState::Ok => "ok",
            ReviewState::Due => "due",
            ReviewState::Overdue => "overdue",
            ReviewState::Suspended => "suspended",
        }
    }
}

/// An entitlement with its review state: one row of `access review`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reviewed {
    pub user: String,
    pub server: String,
    pub account: String,
    pub source: Source,
    pub grant: Option<i64>,
    /// The latest certification, else a permanent grant's approval.
    #[serde(with = "time::serde::rfc3339::option")]
    pub certified_at: Option<OffsetDateTime>,
    pub certified_by: Option<String>,
    pub note: Option<String>,
    /// When the next certification is due; `None` without `[review]
    /// every`, or when never certified (then it is overdue now).
    #[serde(with = "time::serde::rfc3339::option")]
    pub due: Option<OffsetDateTime>,
    pub state: ReviewState,
    /// The suspension in force, if any.
    pub suspended_by: Option<String>,
    pub reason: Option<String>,
}

/// The longest "due soon" window before a due date.
const DUE_SOON_MAX: Duration = Duration::from_secs(14 * 86400);

/// Every standing entitlement, sorted by user, server, account. `directory`
/// are users from the site's directory; a policy `[[user]]` of the same
/// name wins. Users past their `expires` have none.
pub fn entitlements(
    policy: &Policy,
    directory: &[User],
    grants: &[Grant],
    now: OffsetDateTime,
) -> Vec<Entitlement> {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    // A served policy holds the directory's users too (`directory_users`
    // names them); `directory` adds any it does not.
    let mut users: Vec<(&User, Source)> = policy
        .users
        .values()
        .map(|u| {
            let source = if policy.directory_users.contains(&u.name) {
                Source::Directory
            } else {
                Source::Policy
            };
            (u, source)
        })
        .collect();
    users.extend(
        directory
            .iter()
            .filter(|u| policy.user(&u.name).is_none())
            .map(|u| (u, Source::Directory)),
    );
    let mut out: BTreeMap<(String, String, String), Entitlement> = BTreeMap::new();
    for (user, source) in users {
        if user.expires.is_some_and(|e| e <= today) {
            continue;
        }
        for server in policy.servers.values() {
            if !standing(server, user) {
                continue;
            }
            for account in &server.accounts {
                out.entry((user.name.clone(), server.name.clone(), account.clone()))
                    .or_insert_with(|| Entitlement {
                        user: user.name.clone(),
                        server: server.name.clone(),
                        account: account.clone(),
                        source,
                        grant: None,
                        granted: None,
                    });
            }
        }
        for g in grants.iter().filter(|g| {
            g.user == user.name
                && g.state == GrantState::Approved
                && g.expires_at.is_none()
                && g.is_active(now)
        }) {
            let Some(server) = policy.server(&g.server) else {
                continue;
            };
            if server.mode == Mode::Clone {
                continue;
            }
            let default = server.default_account().unwrap_or("");
            for account in server
                .accounts
                .iter()
                .filter(|a| g.covers_account(a, default))
            {
                out.entry((user.name.clone(), server.name.clone(), account.clone()))
                    .or_insert_with(|| Entitlement {
                        user: user.name.clone(),
                        server: server.name.clone(),
                        account: account.clone(),
                        source: Source::Grant,
                        grant: Some(g.id),
                        granted: g
                            .decided_at
                            .map(|t| (t, g.approved_by.clone().unwrap_or_default())),
                    });
            }
        }
    }
    out.into_values().collect()
}

/// Whether the policy gives `user` standing access to `server`: its
/// `allow` names them or a group of theirs, and sessions need no grant.
fn standing(server: &Server, user: &User) -> bool {
    let named = server.allow.iter().any(|p| match p {
        Principal::User(n) => *n == user.name,
        Principal::Group(g) => user.groups.contains(g),
    });
    named && server.mode != Mode::OnRequest && server.mode != Mode::Clone && !server.require_grant
}

/// The review state of one entitlement, given its mark (if any).
pub fn review(
    ent: &Entitlement,
    mark: Option<&ReviewMark>,
    every: Option<Duration>,
    now: OffsetDateTime,
) -> Reviewed {
    let certified = latest_certification(mark, ent.granted.as_ref());
    let due = match (every, &certified) {
        (Some(every), Some((at, _))) => Some(add(*at, every)),
        _ => None,
    };
    let suspended = mark.filter(|m| m.is_suspended());
    let state = if suspended.is_some() {
        ReviewState::Suspended
    } else {
        overdue_state(every, due, now)
    };
    let note = mark
        .filter(|m| m.certified_at.is_some() && certified.as_ref().map(|c| c.0) == m.certified_at)
        .and_then(|m| m.note.clone());
    Reviewed {
        user: ent.user.clone(),
        server: ent.server.clone(),
        account: ent.account.clone(),
        source: ent.source,
        grant: ent.grant,
        certified_at: certified.as_ref().map(|c| c.0),
        certified_by: certified.map(|c| c.1),
        note,
        due,
        state,
        suspended_by: suspended.and_then(|m| m.suspended_by.clone()),
        reason: suspended.and_then(|m| m.reason.clone()),
    }
}

/// Every entitlement with its state, in [`entitlements`]' order.
pub fn review_all(
    entitlements: &[Entitlement],
    marks: &[ReviewMark],
    every: Option<Duration>,
    now: OffsetDateTime,
) -> Vec<Reviewed> {
    let by_key: BTreeMap<(&str, &str, &str), &ReviewMark> = marks
        .iter()
        .map(|m| ((m.user.as_str(), m.server.as_str(), m.account.as_str()), m))
        .collect();
    entitlements
        .iter()
        .map(|e| {
            let mark = by_key
                .get(&(e.user.as_str(), e.server.as_str(), e.account.as_str()))
                .copied();
            review(e, mark, every, now)
        })
        .collect()
}

/// The later of the mark's certification and a permanent grant's approval.
pub(super) fn latest_certification(
    mark: Option<&ReviewMark>,
    granted: Option<&(OffsetDateTime, String)>,
) -> Option<(OffsetDateTime, String)> {
    let certified = mark.and_then(|m| {
        m.certified_at
            .map(|t| (t, m.certified_by.clone().unwrap_or_default()))
    });
    match (certified, granted) {
        (Some(c), Some(g)) if g.0 > c.0 => Some(g.clone()),
        (Some(c), _) => Some(c),
        (None, g) => g.cloned(),
    }
}

/// `at + every`, saturating at the largest time `time` holds (a due date
/// that far away is never reached).
pub(super) fn add(at: OffsetDateTime, every: Duration) -> OffsetDateTime {
    time::Duration::try_from(every)
        .ok()
        .and_then(|d| at.checked_add(d))
        .unwrap_or_else(|| time::PrimitiveDateTime::MAX.assume_utc())
}

/// Overdue, due soon or ok, from the due date (`None`: never certified).
pub(super) fn overdue_state(
    every: Option<Duration>,
    due: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> ReviewState {
    let Some(every) = every else {
        return ReviewState::Ok;
    };
    let Some(due) = due else {
        return ReviewState::Overdue;
    };
    if now >= due {
        return ReviewState::Overdue;
    }
    let window =
        time::Duration::try_from((every / 10).min(DUE_SOON_MAX)).unwrap_or(time::Duration::ZERO);
    if now >= due.checked_sub(window).unwrap_or(due) {
        ReviewState::Due
    } else {
        ReviewState::Ok
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use time::macros::datetime;

    use super::*;

    const FP: &str = "SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM";
    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
    const DAY: Duration = Duration::from_secs(86400);

    pub(crate) fn policy() -> Policy {
        let users = r#"
[[user]]
name = "alice"
keys = []
groups = ["ops"]

[[user]]
name = "bob"
keys = []
groups = ["support"]

[[user]]
name = "carol"
keys = []
groups = ["support"]
expires = "2026-03-01"
"#;
        let server = |name: &str, n: u8, mode: &str, allow: &str, extra: &str| {
            format!(
                "[[server]]\nname = \"{name}\"\naddress = \"10.0.0.{n}:22\"\nhost_key = \"{FP}\"\nmode = \"{mode}\"\naccounts = [\"root\", \"admin\"]\nallow = [{allow}]\n{extra}\n"
            )
        };
        let servers = [
            server("web", 1, "ssh-forwarding", "\"group:support\"", ""),
            server("db", 2, "ssh-forwarding", "\"user:alice\"", ""),
            server("or", 3, "on-request", "\"group:support\"", ""),
            server(
                "rg",
                4,
                "ssh-forwarding",
                "\"group:support\"",
                "require_grant = true",
            ),
            server("cl", 5, "clone", "\"group:support\"", "clone = \"web\""),
            server("dir", 6, "ssh-forwarding", "\"group:ops\"", ""),
        ]
        .concat();
        Policy::from_sources(&[
            (PathBuf::from("users.toml"), users.to_string()),
            (PathBuf::from("servers.toml"), servers),
        ])
        .unwrap()
    }

    fn grant(id: i64, user: &str, server: &str, expires: Option<OffsetDateTime>) -> Grant {
        Grant {
            id,
            user: user.into(),
            server: server.into(),
            accounts: vec![],
            ports: vec![],
            from: vec![],
            reason: "T-1".into(),
            state: GrantState::Approved,
            requested_by: user.into(),
            approved_by: Some("carol".into()),
            decided_by: Some("carol".into()),
            decision_note: None,
            requested_at: datetime!(2026-01-01 10:00 UTC),
            decided_at: Some(datetime!(2026-01-01 10:05 UTC)),
            duration_secs: None,
            expires_at: expires,
        }
    }

    fn keys(list: &[Entitlement]) -> Vec<(String, String, String, Source)> {
        list.iter()
            .map(|e| {
                (
                    e.user.clone(),
                    e.server.clone(),
                    e.account.clone(),
                    e.source,
                )
            })
            .collect()
    }

    fn k(u: &str, s: &str, a: &str, src: Source) -> (String, String, String, Source) {
        (u.into(), s.into(), a.into(), src)
    }

    #[test]
    fn entitlement_table() {
        let p = policy();
        let dave = User {
            name: "dave".into(),
            keys: vec![],
            groups: vec!["ops".into()],
            roles: vec![],
            allow_from: vec![],
            expires: None,
            mfa_required: false,
        };
        // A directory user named like a policy user: the policy wins.
        let shadow = User {
            name: "alice".into(),
            groups: vec!["support".into()],
            ..dave.clone()
        };
        let grants = [
            // Permanent: counts (its default account only).
            grant(1, "bob", "or", None),
            // Temporary: does not.
            grant(2, "alice", "or", Some(datetime!(2026-03-02 00:00 UTC))),
            // Permanent but revoked: does not.
            {
                let mut g = grant(3, "alice", "rg", None);
                g.state = GrantState::Revoked;
                g
            },
            // Permanent for an account the server lacks: nothing.
            {
                let mut g = grant(4, "alice", "web", None);
                g.accounts = vec!["oracle".into()];
                g
            },
            // Permanent, covered by the policy already: listed once, as policy.
            grant(5, "bob", "web", None),
        ];
        let got = keys(&entitlements(&p, &[dave, shadow], &grants, NOW));
        use Source::*;
        assert_eq!(
            got,
            vec![
                k("alice", "db", "admin", Policy),
                k("alice", "db", "root", Policy),
                k("alice", "dir", "admin", Policy),
                k("alice", "dir", "root", Policy),
                k("bob", "or", "root", Grant),
                k("bob", "web", "admin", Policy),
                k("bob", "web", "root", Policy),
                k("dave", "dir", "admin", Directory),
                k("dave", "dir", "root", Directory),
            ]
        );
        // carol expired today: nothing. on-request, require_grant and
        // clone give nothing standing.
        let e = entitlements(&p, &[], &grants, NOW);
        let bob_or = e.iter().find(|e| e.server == "or").unwrap();
        // A served policy names its directory users: they are listed as
        // coming from the directory.
        let mut served = p.clone();
        served.directory_users.insert("bob".into());
        let from = |e: &[Entitlement], user: &str, server: &str| {
            e.iter()
                .find(|x| x.user == user && x.server == server)
                .map(|x| x.source)
        };
        let s = entitlements(&served, &[], &grants, NOW);
        assert_eq!(from(&s, "bob", "web"), Some(Directory));
        assert_eq!(from(&s, "alice", "db"), Some(Policy));
        assert_eq!(bob_or.grant, Some(1));
        assert_eq!(
            bob_or.granted,
            Some((datetime!(2026-01-01 10:05 UTC), "carol".to_string()))
        );
    }

    fn ent(source: Source) -> Entitlement {
        Entitlement {
            user: "bob".into(),
            server: "web".into(),
            account: "root".into(),
            source,
            grant: None,
            granted: None,
        }
    }

    fn mark(certified: Option<OffsetDateTime>, suspended: Option<OffsetDateTime>) -> ReviewMark {
        ReviewMark {
            user: "bob".into(),
            server: "web".into(),
            account: "root".into(),
            certified_at: certified,
            certified_by: certified.map(|_| "alice".into()),
            note: certified.map(|_| "ok per T-9".into()),
            suspended_at: suspended,
            suspended_by: suspended.map(|_| "alice".into()),
            reason: suspended.map(|_| "left the team".into()),
        }
    }

    #[test]
    fn review_state_table() {
        let every = Some(90 * DAY);
        let t = |days_ago: i64| Some(NOW - time::Duration::days(days_ago));
        let rows: Vec<(Option<ReviewMark>, Option<Duration>, ReviewState)> = vec![
            // No reviews configured: ok unless suspended.
            (None, None, ReviewState::Ok),
            (Some(mark(None, t(1))), None, ReviewState::Suspended),
            // Never certified: overdue.
            (None, every, ReviewState::Overdue),
            (Some(mark(t(10), None)), every, ReviewState::Ok),
            // Within the last tenth (9 days) before due: due.
            (Some(mark(t(85), None)), every, ReviewState::Due),
            (Some(mark(t(90), None)), every, ReviewState::Overdue),
            (Some(mark(t(400), None)), every, ReviewState::Overdue),
            // A later certification lifts a suspension; an earlier does not.
            (Some(mark(t(1), t(2))), every, ReviewState::Ok),
            (Some(mark(t(2), t(1))), every, ReviewState::Suspended),
            // A tie keeps the suspension.
            (Some(mark(t(1), t(1))), every, ReviewState::Suspended),
        ];
        for (i, (m, every, want)) in rows.into_iter().enumerate() {
            let r = review(&ent(Source::Policy), m.as_ref(), every, NOW);
            assert_eq!(r.state, want, "row {i}: {m:?}");
        }
        // The fields.
        let m = mark(t(10), None);
        let r = review(&ent(Source::Policy), Some(&m), every, NOW);
        assert_eq!(r.certified_at, t(10));
        assert_eq!(r.certified_by.as_deref(), Some("alice"));
        assert_eq!(r.note.as_deref(), Some("ok per T-9"));
        assert_eq!(r.due, Some(NOW + time::Duration::days(80)));
        let r = review(&ent(Source::Policy), None, every, NOW);
        assert_eq!((r.certified_at, r.due), (None, None));
        let m = mark(None, t(1));
        let r = review(&ent(Source::Policy), Some(&m), every, NOW);
        assert_eq!(r.reason.as_deref(), Some("left the team"));
    }

    #[test]
    fn a_permanent_grants_approval_is_its_first_certification() {
        let mut e = ent(Source::Grant);
        e.granted = Some((NOW - time::Duration::days(10), "carol".into()));
        let r = review(&e, None, Some(90 * DAY), NOW);
        assert_eq!(r.state, ReviewState::Ok);
        assert_eq!(r.certified_by.as_deref(), Some("carol"));
        // A later certification replaces it.
        let m = mark(Some(NOW - time::Duration::days(1)), None);
        let r = review(&e, Some(&m), Some(90 * DAY), NOW);
        assert_eq!(r.certified_by.as_deref(), Some("alice"));
        // Long ago: overdue.
        e.granted = Some((NOW - time::Duration::days(100), "carol".into()));
        assert_eq!(
            review(&e, None, Some(90 * DAY), NOW).state,
            ReviewState::Overdue
        );
    }

    #[test]
    fn due_dates_saturate() {
        let far = time::PrimitiveDateTime::MAX.assume_utc() - time::Duration::days(1);
        assert_eq!(
            add(far, 3650 * DAY),
            time::PrimitiveDateTime::MAX.assume_utc()
        );
    }

    #[test]
    fn review_all_matches_marks_by_entitlement() {
        let p = policy();
        let ents = entitlements(&p, &[], &[], NOW);
        let mut m = mark(Some(NOW - time::Duration::days(1)), None);
        m.account = "admin".into();
        let stale = ReviewMark {
            server: "gone".into(),
            ..m.clone()
        };
        let all = review_all(&ents, &[m, stale], Some(90 * DAY), NOW);
        let states: Vec<(&str, &str, ReviewState)> = all
            .iter()
            .filter(|r| r.user == "bob")
            .map(|r| (r.server.as_str(), r.account.as_str(), r.state))
            .collect();
        assert_eq!(
            states,
            vec![
                ("web", "admin", ReviewState::Ok),
                ("web", "root", ReviewState::Overdue),
            ]
        );
    }
}
