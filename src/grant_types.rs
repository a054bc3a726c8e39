//! Grant types: a grant, its state, and what it covers (contract section
//! 6). Owns plain values only, at the bottom of the layers.
//! May import: nothing of this crate.

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
