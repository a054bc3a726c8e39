//! Grants: recent, time-boxed authorization that a second person approved
//! (contract section 6). This module owns the grant type and its pure rules
//! (who may approve, whether a grant is active); the store persists them.

pub mod flow;

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantState {
    Pending,
    Approved,
    Denied,
    Revoked,
    Expired,
}

impl GrantState {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Pending => "pending",
            GrantState::Approved => "approved",
            GrantState::Denied => "denied",
            GrantState::Revoked => "revoked",
            GrantState::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<GrantState> {
        Some(match s {
            "pending" => GrantState::Pending,
            "approved" => GrantState::Approved,
            "denied" => GrantState::Denied,
            "revoked" => GrantState::Revoked,
            "expired" => GrantState::Expired,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub id: i64,
    /// The staff member the grant is for (also the requester).
    pub user: String,
    pub server: String,
    /// Accounts the grant covers; empty means the server's default account only.
    pub accounts: Vec<String>,
    /// Ports forwards may reach under this grant.
    pub ports: Vec<u16>,
    /// Source CIDRs the grant may be used from; empty means anywhere the
    /// user's own `allow_from` permits.
    pub from: Vec<IpNet>,
    pub reason: String,
    pub state: GrantState,
    pub requested_by: String,
    pub approved_by: Option<String>,
    pub decided_by: Option<String>,
    pub decision_note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// Requested duration in seconds, `None` for permanent.
    pub duration_secs: Option<i64>,
    /// Set when approved: approval time + duration. `None` with state
    /// approved means permanent.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl Grant {
    /// Whether this grant authorizes anything at `now`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.state == GrantState::Approved && self.expires_at.is_none_or(|e| now < e)
    }

    pub fn covers_account(&self, account: &str, default_account: &str) -> bool {
        if self.accounts.is_empty() {
            account == default_account
        } else {
            self.accounts.iter().any(|a| a == account)
        }
    }

    pub fn covers_port(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }

    pub fn covers_source(&self, source: IpAddr) -> bool {
        self.from.is_empty() || self.from.iter().any(|n| n.contains(&source))
    }
}

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
