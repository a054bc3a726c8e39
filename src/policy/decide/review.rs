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
                humanize(every)
            ),
        ));
    }
    Ok(())
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s % 86400 == 0 {
        format!("{}d", s / 86400)
    } else {
        format!("{s}s")
    }
}
