//! The access review workflow over the store (contract section 14):
//! list standing entitlements with their review state, certify them,
//! suspend them, each audited. Shared by `gatehouse access` and the
//! console's "Access review" page, so both refuse the same things with
//! the same codes and write the same events.
//!
//! The rule of four eyes holds here as for grants: nobody certifies (or
//! suspends) their own access. Certifying loosens access (it lifts a
//! suspension), so its events are written before the rows, as `unlock`
//! does: a certification that cannot be audited does not happen.
//! Suspending tightens it, so its rows come first.
//! May import: audit, policy (the pure entitlements), store, config.

use time::OffsetDateTime;

use super::flow::MAX_REASON;
use crate::audit::{AuditEvent, EventKind};
use crate::config::ReviewConfig;
use crate::policy::Policy;
use crate::policy::entitlements::{Reviewed, entitlements, review_all};
use crate::store::{ReviewKey, Store, StoreError};

/// Why a review step was refused: a value with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("nobody certifies or suspends their own access")]
    OwnAccess,
    /// Nothing standing matches the user (and server, account) given.
    #[error("{0}")]
    NoEntitlement(String),
    /// A note or reason that is empty where required, or too long.
    #[error("{0}")]
    BadText(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl ReviewError {
    /// The stable code of a refusal (`None` for a fault).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            ReviewError::OwnAccess => Some("KO_OWN_ACCESS"),
            ReviewError::NoEntitlement(_) => Some("KO_NO_ENTITLEMENT"),
            ReviewError::BadText(_) => Some("KO_BAD_TEXT"),
            ReviewError::Store(_) => None,
        }
    }
}

/// Who acts, and through what (`cli` or `web`), for the events.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub name: &'a str,
    pub via: &'a str,
}

/// Which entitlements a step names: one user's, on one server, as one
/// account, narrowing in that order.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub user: &'a str,
    pub server: Option<&'a str>,
    pub account: Option<&'a str>,
}

impl Scope<'_> {
    fn matches(&self, r: &Reviewed) -> bool {
        r.user == self.user
            && self.server.is_none_or(|s| r.server == s)
            && self.account.is_none_or(|a| r.account == a)
    }

    fn describe(&self) -> String {
        match (self.server, self.account) {
            (Some(s), Some(a)) => format!("{} has no standing access to {s} as {a}", self.user),
            (Some(s), None) => format!("{} has no standing access to {s}", self.user),
            _ => format!("{} has no standing access", self.user),
        }
    }
}

/// Every standing entitlement with its review state now; `policy` is the
/// policy served, so the directory's users are in it (marked by
/// `directory_users`).
pub async fn current(
    store: &Store,
    policy: &Policy,
    config: &ReviewConfig,
    now: OffsetDateTime,
) -> Result<Vec<Reviewed>, StoreError> {
    let grants = store.grants_list(None).await?;
    let marks = store.review_marks(None).await?;
    let standing = entitlements(policy, &[], &grants, now);
    Ok(review_all(&standing, &marks, config.every, now))
}

/// Refuses an actor reviewing their own access. Checked first, before
/// anything is read.
pub fn check_actor(actor: &str, user: &str) -> Result<(), ReviewError> {
    if actor == user {
        return Err(ReviewError::OwnAccess);
    }
    Ok(())
}

fn check_text(what: &str, text: &str, required: bool) -> Result<(), ReviewError> {
    if required && text.trim().is_empty() {
        return Err(ReviewError::BadText(format!("{what} must not be empty")));
    }
    let n = text.chars().count();
    if n > MAX_REASON {
        return Err(ReviewError::BadText(format!(
            "{what} is too long ({n} characters; at most {MAX_REASON})"
        )));
    }
    Ok(())
}

/// The entitlements `scope` names, or a refusal when there are none.
async fn scoped(
    store: &Store,
    policy: &Policy,
    config: &ReviewConfig,
    scope: &Scope<'_>,
    now: OffsetDateTime,
) -> Result<Vec<Reviewed>, ReviewError> {
    let all = current(store, policy, config, now).await?;
    let mine: Vec<Reviewed> = all.into_iter().filter(|r| scope.matches(r)).collect();
    if mine.is_empty() {
        return Err(ReviewError::NoEntitlement(scope.describe()));
    }
    Ok(mine)
}

fn keys(list: &[Reviewed]) -> Vec<ReviewKey> {
    list.iter()
        .map(|r| ReviewKey {
            user: r.user.clone(),
            server: r.server.clone(),
            account: r.account.clone(),
        })
        .collect()
}

fn event(kind: EventKind, r: &Reviewed, actor: Actor<'_>) -> AuditEvent {
    AuditEvent::new(kind)
        .user(r.user.clone())
        .server(r.server.clone())
        .account(r.account.clone())
        .detail("by", actor.name)
        .detail("via", actor.via)
        .detail("source", r.source.as_str())
}

/// Certifies every entitlement `scope` names, by `actor`; returns them as
/// they were before.
pub async fn certify(
    store: &Store,
    policy: &Policy,
    config: &ReviewConfig,
    actor: Actor<'_>,
    scope: Scope<'_>,
    note: Option<&str>,
    now: OffsetDateTime,
) -> Result<Vec<Reviewed>, ReviewError> {
    check_actor(actor.name, scope.user)?;
    if let Some(n) = note {
        check_text("the note", n, false)?;
    }
    let list = scoped(store, policy, config, &scope, now).await?;
    for r in &list {
        store
            .audit(
                &event(EventKind::AccessCertified, r, actor)
                    .detail("note", note)
                    .detail("was", r.state.as_str()),
            )
            .await?;
    }
    store
        .review_certify(&keys(&list), actor.name, note, now)
        .await?;
    Ok(list)
}

/// Suspends every entitlement `scope` names, by `actor`, for `reason`.
pub async fn suspend(
    store: &Store,
    policy: &Policy,
    config: &ReviewConfig,
    actor: Actor<'_>,
    scope: Scope<'_>,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Vec<Reviewed>, ReviewError> {
    check_actor(actor.name, scope.user)?;
    check_text("the reason", reason, true)?;
    let list = scoped(store, policy, config, &scope, now).await?;
    store
        .review_suspend(&keys(&list), actor.name, reason, now)
        .await?;
    for r in &list {
        store
            .audit(&event(EventKind::AccessSuspended, r, actor).detail("reason", reason))
            .await?;
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_reviews_their_own_access() {
        assert!(matches!(
            check_actor("alice", "alice"),
            Err(ReviewError::OwnAccess)
        ));
        assert!(check_actor("carol", "alice").is_ok());
        assert_eq!(ReviewError::OwnAccess.code(), Some("KO_OWN_ACCESS"));
    }

    #[test]
    fn reasons_are_required_and_bounded() {
        assert!(check_text("the reason", "  ", true).is_err());
        assert!(check_text("the note", "", false).is_ok());
        assert!(check_text("the note", &"x".repeat(MAX_REASON + 1), false).is_err());
    }
}
