//! Step 10 of the decision: the access review (contract section 14). A
//! login the policy allows is refused when its (user, server, account) is
//! suspended by a review, or, with `[review] enforce`, overdue. A login
//! that a temporary grant authorized is not a standing entitlement and is
//! not reviewed; one that a permanent grant authorized is, its approval
//! counting as the first certification. A jump (`-J`) names no account and
//! is not reviewed here.
//! May import: the parent (`policy::decide`), `policy::entitlements`, the
//! policy types, grant types.

use std::time::Duration;

use time::OffsetDateTime;

use super::{denial, fmt_time};
use crate::grant_types::Grant;
use crate::policy::entitlements::{
    ReviewMark, ReviewState, add, latest_certification, overdue_state,
};
use crate::policy::{Allowed, Denial, DenyCode};

/// What the decision needs of the access reviews: `[review]` and the
/// user's review marks (any others are ignored).
#[derive(Debug, Clone, Copy)]
pub struct ReviewInput<'a> {
    pub every: Option<Duration>,
    pub enforce: bool,
    pub marks: &'a [ReviewMark],
}

impl ReviewInput<'_> {
    /// No reviews: nothing is suspended or due.
    pub const OFF: ReviewInput<'static> = ReviewInput {
        every: None,
        enforce: false,
        marks: &[],
    };
}

/// The reason a suspended entitlement's login gets (contract section 14).
pub const SUSPENDED: &str = "suspended by access review";
/// The reason an overdue entitlement's login gets under `enforce`.
pub const OVERDUE: &str = "access review overdue";

pub(super) fn check(
    user: &str,
    allowed: &Allowed,
    grants: &[Grant],
    review: &ReviewInput<'_>,
    now: OffsetDateTime,
) -> Result<(), Denial> {
    if allowed.account.is_empty() {
        return Ok(());
    }
    // A temporary grant: approved by a second person, ends by itself.
    if allowed.grant.is_some() && allowed.grant_expires.is_some() {
        return Ok(());
    }
    let mark = review
        .marks
        .iter()
        .find(|m| m.user == user && m.server == allowed.server && m.account == allowed.account);
    let what = format!("{user} on {} as {}", allowed.server, allowed.account);
    if let Some(m) = mark.filter(|m| m.is_suspended()) {
        return Err(denial(
            DenyCode::ReviewSuspended,
            SUSPENDED,
            format!(
                "access review: {what} suspended by {} at {}: {}",
                m.suspended_by.as_deref().unwrap_or("?"),
                m.suspended_at.map(fmt_time).unwrap_or_default(),
                m.reason.as_deref().unwrap_or("")
            ),
        ));
    }
    if !review.enforce {
        return Ok(());
    }
    let Some(every) = review.every else {
        return Ok(());
    };
    let granted = allowed
        .grant
        .and_then(|id| grants.iter().find(|g| g.id == id))
        .and_then(|g| {
            g.decided_at
                .map(|t| (t, g.approved_by.clone().unwrap_or_default()))
        });
    let certified = latest_certification(mark, granted.as_ref());
    let due = certified.as_ref().map(|(at, _)| add(*at, every));
    if overdue_state(Some(every), due, now) == ReviewState::Overdue {
        let last = match &certified {
            Some((at, by)) => format!("last certified {} by {by}", fmt_time(*at)),
            None => "never certified".to_owned(),
        };
        return Err(denial(
            DenyCode::ReviewOverdue,
            OVERDUE,
            format!(
                "access review: {what} is overdue ({last}; [review] every = {}, enforce = true)",
                humantime::format_duration(every)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::path::PathBuf;

    use time::macros::datetime;

    use crate::grant_types::GrantState;
    use crate::policy::{Action, Decision, Policy, Request, decide_reviewed};

    use super::*;

    const FP: &str = "SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM";
    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
    const DAY: Duration = Duration::from_secs(86400);

    fn policy() -> Policy {
        let users = "[[user]]\nname = \"bob\"\nkeys = []\ngroups = [\"support\"]\n";
        let server = |name: &str, n: u8, mode: &str| {
            format!(
                "[[server]]\nname = \"{name}\"\naddress = \"10.0.0.{n}:22\"\nhost_key = \"{FP}\"\nmode = \"{mode}\"\naccounts = [\"root\", \"admin\"]\nallow = [\"group:support\"]\n"
            )
        };
        let servers = [
            server("web", 1, "ssh-forwarding"),
            server("or", 2, "on-request"),
        ]
        .concat();
        Policy::from_sources(&[
            (PathBuf::from("users.toml"), users.to_string()),
            (PathBuf::from("servers.toml"), servers),
        ])
        .unwrap()
    }

    fn grant(id: i64, server: &str, expires: Option<OffsetDateTime>) -> Grant {
        Grant {
            id,
            user: "bob".into(),
            server: server.into(),
            accounts: vec![],
            ports: vec![],
            from: vec![],
            reason: "T-1".into(),
            state: GrantState::Approved,
            requested_by: "bob".into(),
            approved_by: Some("carol".into()),
            decided_by: Some("carol".into()),
            decision_note: None,
            requested_at: datetime!(2026-02-01 10:00 UTC),
            decided_at: Some(datetime!(2026-02-01 10:05 UTC)),
            duration_secs: None,
            expires_at: expires,
        }
    }

    fn mark(
        server: &str,
        account: &str,
        certified_days_ago: Option<i64>,
        suspended_days_ago: Option<i64>,
    ) -> ReviewMark {
        let t = |d: i64| NOW - time::Duration::days(d);
        ReviewMark {
            user: "bob".into(),
            server: server.into(),
            account: account.into(),
            certified_at: certified_days_ago.map(t),
            certified_by: certified_days_ago.map(|_| "alice".into()),
            note: None,
            suspended_at: suspended_days_ago.map(t),
            suspended_by: suspended_days_ago.map(|_| "alice".into()),
            reason: suspended_days_ago.map(|_| "left the team".into()),
        }
    }

    /// `None`: allowed; else the refusal's code.
    fn ask(
        server: &str,
        account: Option<&str>,
        grants: &[Grant],
        every: Option<Duration>,
        enforce: bool,
        marks: &[ReviewMark],
    ) -> Option<(DenyCode, String)> {
        let req = Request {
            user: "bob",
            server,
            account,
            source: IpAddr::from([10, 1, 2, 3]),
            action: Action::Session,
        };
        let review = ReviewInput {
            every,
            enforce,
            marks,
        };
        match decide_reviewed(&policy(), &req, grants, &review, NOW) {
            Decision::Allow(_) => None,
            Decision::Deny(d) => Some((d.code, d.reason)),
        }
    }

    /// server, account, grants, `every`, `enforce`, marks, the refusal.
    type Row<'a> = (
        &'a str,
        Option<&'a str>,
        Vec<Grant>,
        Option<Duration>,
        bool,
        Vec<ReviewMark>,
        Option<DenyCode>,
    );

    #[test]
    fn review_step_table() {
        use DenyCode::{ReviewOverdue as O, ReviewSuspended as S};
        let every = Some(90 * DAY);
        let temp = grant(1, "or", Some(NOW + time::Duration::hours(1)));
        let perm = grant(2, "or", None);
        #[rustfmt::skip]
        let rows: Vec<Row<'_>> = vec![
            // Nothing reviewed, reviews off or not enforced: allowed.
            ("web", None, vec![], None, false, vec![], None),
            ("web", None, vec![], every, false, vec![], None),
            // Suspended: refused whatever `every` and `enforce` say.
            ("web", None, vec![], None, false, vec![mark("web", "root", None, Some(1))], Some(S)),
            ("web", Some("root"), vec![], every, true, vec![mark("web", "root", Some(5), Some(1))], Some(S)),
            // ...for that account only (the default account is root).
            ("web", Some("admin"), vec![], None, false, vec![mark("web", "root", None, Some(1))], None),
            // Lifted by a later certification.
            ("web", None, vec![], None, false, vec![mark("web", "root", Some(1), Some(2))], None),
            // Enforced: never certified or certified too long ago.
            ("web", None, vec![], every, true, vec![], Some(O)),
            ("web", None, vec![], every, true, vec![mark("web", "root", Some(91), None)], Some(O)),
            ("web", None, vec![], every, true, vec![mark("web", "root", Some(89), None)], None),
            // Enforce without `every`: nothing is ever due.
            ("web", None, vec![], None, true, vec![], None),
            // Another user's or server's marks do not count.
            ("web", None, vec![], every, true, vec![mark("or", "root", Some(1), None)], Some(O)),
            // A temporary grant is not a standing entitlement.
            ("or", None, vec![temp.clone()], every, true, vec![mark("or", "root", None, Some(1))], None),
            // A permanent grant is; its approval (28 days ago) certified it.
            ("or", None, vec![perm.clone()], every, true, vec![], None),
            ("or", None, vec![perm.clone()], Some(10 * DAY), true, vec![], Some(O)),
            ("or", None, vec![perm.clone()], None, false, vec![mark("or", "root", None, Some(1))], Some(S)),
            // The policy's refusals come first.
            ("nope", None, vec![], every, true, vec![], Some(DenyCode::AccessDenied)),
        ];
        for (i, (server, account, grants, every, enforce, marks, want)) in
            rows.into_iter().enumerate()
        {
            let got = ask(server, account, &grants, every, enforce, &marks).map(|(c, _)| c);
            assert_eq!(got, want, "row {i}: {server} {account:?} {marks:?}");
        }
    }

    #[test]
    fn reasons_are_the_contracts() {
        let m = [mark("web", "root", None, Some(1))];
        assert_eq!(
            ask("web", None, &[], None, false, &m).map(|(_, r)| r),
            Some("suspended by access review".to_string())
        );
        assert_eq!(
            ask("web", None, &[], Some(DAY), true, &[]).map(|(_, r)| r),
            Some("access review overdue".to_string())
        );
        assert_eq!(DenyCode::ReviewSuspended.as_str(), "KO_REVIEW_SUSPENDED");
        assert_eq!(DenyCode::ReviewOverdue.as_str(), "KO_REVIEW_OVERDUE");
    }
}
