//! Grants: recent, time-boxed authorization that a second person approved
//! (contract section 6). Owns the four-eyes rules (who may approve, deny or
//! revoke) and, in [`flow`], the grant workflow over the store; in
//! [`review`], the access review workflow (contract section 14), the same
//! four-eyes rule for standing access.
//! May import: grant_types, audit, policy, store (a workflow above them).

pub(crate) mod flow;
pub mod review;

use time::OffsetDateTime;

pub use crate::grant_types::{Grant, GrantState};

/// Why a grant workflow step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantRefusal {
    #[error("grant {0} not found")]
    NotFound(i64),
    #[error("nobody approves their own request")]
    SelfApproval,
    #[error("approving needs the approver role")]
    NotApprover,
    #[error("grant {id} is {state}, not pending")]
    NotPending { id: i64, state: &'static str },
    #[error("grant {id} is {state}, not active")]
    NotActive { id: i64, state: &'static str },
    #[error("only the requester or an approver may revoke a grant")]
    NotAllowedToRevoke,
}

/// One line per grant for people.
pub fn grant_line(g: &Grant, now: OffsetDateTime) -> String {
    let until = match (g.state, g.expires_at) {
        (GrantState::Approved, Some(e)) if e > now => {
            let left = (e - now).whole_seconds().max(0);
            format!("until {} ({}m left)", flow::rfc3339(e), left / 60)
        }
        (GrantState::Approved, None) => "permanent".to_string(),
        (_, Some(e)) => format!("until {}", flow::rfc3339(e)),
        (_, None) => match g.duration_secs {
            Some(s) => format!(
                "for {}",
                humantime::format_duration(std::time::Duration::from_secs(
                    u64::try_from(s).unwrap_or(0)
                ))
            ),
            None => "permanent".to_string(),
        },
    };
    format!(
        "#{:<5} {:<9} {:<10} {:<20} accounts={} ports={} {} approver={} reason={:?}",
        g.id,
        g.state.as_str(),
        g.user,
        g.server,
        g.accounts.join(","),
        g.ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(","),
        until,
        g.approved_by.as_deref().unwrap_or("-"),
        g.reason
    )
}

/// Four-eyes rule: may `actor` (with `is_approver`) approve or deny `grant`?
pub fn check_decide(grant: &Grant, actor: &str, is_approver: bool) -> Result<(), GrantRefusal> {
    if grant.state != GrantState::Pending {
        return Err(GrantRefusal::NotPending {
            id: grant.id,
            state: grant.state.as_str(),
        });
    }
    if !is_approver {
        return Err(GrantRefusal::NotApprover);
    }
    if grant.requested_by == actor || grant.user == actor {
        return Err(GrantRefusal::SelfApproval);
    }
    Ok(())
}

/// May `actor` revoke `grant`? The grant's own user and approvers may.
pub fn check_revoke(
    grant: &Grant,
    actor: &str,
    is_approver: bool,
    now: OffsetDateTime,
) -> Result<(), GrantRefusal> {
    let live = grant.state == GrantState::Pending || grant.is_active(now);
    if !live {
        return Err(GrantRefusal::NotActive {
            id: grant.id,
            state: grant.state.as_str(),
        });
    }
    if !(is_approver || grant.user == actor || grant.requested_by == actor) {
        return Err(GrantRefusal::NotAllowedToRevoke);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn grant() -> Grant {
        Grant {
            id: 1,
            user: "bob".into(),
            server: "db".into(),
            accounts: vec!["oracle".into()],
            ports: vec![1521],
            from: vec![],
            reason: "TICKET-1".into(),
            state: GrantState::Pending,
            requested_by: "bob".into(),
            approved_by: None,
            decided_by: None,
            decision_note: None,
            requested_at: datetime!(2026-01-01 00:00 UTC),
            decided_at: None,
            duration_secs: Some(3600),
            expires_at: None,
        }
    }

    #[test]
    fn four_eyes() {
        let g = grant();
        assert_eq!(
            check_decide(&g, "bob", true),
            Err(GrantRefusal::SelfApproval)
        );
        assert_eq!(
            check_decide(&g, "carol", false),
            Err(GrantRefusal::NotApprover)
        );
        assert_eq!(check_decide(&g, "carol", true), Ok(()));
    }

    #[test]
    fn activity_follows_state_and_expiry() {
        let now = datetime!(2026-01-01 00:30 UTC);
        let mut g = grant();
        assert!(!g.is_active(now));
        g.state = GrantState::Approved;
        g.expires_at = Some(datetime!(2026-01-01 01:00 UTC));
        assert!(g.is_active(now));
        assert!(!g.is_active(datetime!(2026-01-01 01:00 UTC)));
        g.expires_at = None;
        assert!(g.is_active(now));
        g.state = GrantState::Revoked;
        assert!(!g.is_active(now));
    }
}
