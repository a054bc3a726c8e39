//! What a user may reach now (`list`, `ssh-config`, the daily report's
//! entitlements), from the same rules as the decision.
//! May import: the parent (`policy::decide`), the policy types, grant types.

use super::*;

/// One server a user may reach, for `list`, `ssh-config` and the
/// entitlements section of the daily report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reach {
    pub server: String,
    pub mode: Mode,
    /// Accounts the user may become now; empty when a grant is needed and
    /// none is active.
    pub accounts: Vec<String>,
    /// Ports forwards may reach now (see also `any_port`).
    pub ports: Vec<u16>,
    /// Mode global with standing access: forwards may reach any port.
    pub any_port: bool,
    /// The standing policy rule that makes the user eligible, if any.
    pub policy: Option<String>,
    /// Active grants of the user for this server.
    pub grants: Vec<ReachGrant>,
    /// Sessions need a grant and none is active: the user may request one.
    pub needs_grant: bool,
    /// Mode global: below modern security standards.
    pub flagged: bool,
    /// Mode clone: the server to use instead.
    pub use_instead: Option<String>,
    /// Mode vpn: the server this one is reached through.
    pub via: Option<String>,
}

impl Reach {
    /// One row of the command-mode `list` table: SERVER (24), MODE (15),
    /// ACCOUNTS (28), PORTS (16), ACCESS.
    pub fn line(&self) -> String {
        let accounts = if self.accounts.is_empty() {
            "-".to_owned()
        } else {
            self.accounts.join(",")
        };
        let ports = if self.any_port {
            "any".to_owned()
        } else if self.ports.is_empty() {
            "-".to_owned()
        } else {
            let p: Vec<String> = self.ports.iter().map(u16::to_string).collect();
            p.join(",")
        };
        let mut access: Vec<String> = Vec::new();
        if let Some(clone) = &self.use_instead {
            access.push(format!("use {clone}"));
        } else if self.needs_grant {
            access.push("needs a grant: use `request`".to_owned());
        } else if self.policy.is_some() {
            access.push("policy".to_owned());
        }
        for g in &self.grants {
            let until = g
                .until
                .map(fmt_time)
                .unwrap_or_else(|| "permanent".to_owned());
            access.push(format!("grant #{} until {until}", g.id));
        }
        if let Some(via) = &self.via {
            access.push(format!("via {via}"));
        }
        if self.flagged {
            access.push("flagged: global mode".to_owned());
        }
        format!(
            "{:<24} {:<15} {:<28} {:<16} {}",
            self.server,
            self.mode.as_str(),
            accounts,
            ports,
            access.join("; ")
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReachGrant {
    pub id: i64,
    pub accounts: Vec<String>,
    pub ports: Vec<u16>,
    pub approved_by: Option<String>,
    /// `None`: permanent.
    #[serde(with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

/// Every server `user` is eligible for (standing policy or an active
/// grant), in name order, with what they may do there now. An unknown or
/// expired user reaches nothing. Source addresses are not considered.
pub fn reachable(policy: &Policy, user: &str, grants: &[Grant], now: OffsetDateTime) -> Vec<Reach> {
    let Some(u) = policy.user(user) else {
        return Vec::new();
    };
    if u.expires
        .is_some_and(|e| e <= now.to_offset(time::UtcOffset::UTC).date())
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    for server in policy.servers.values() {
        let rule = standing_rule(server, u);
        let active: Vec<&Grant> = active_grants(grants, &u.name, &server.name, now).collect();
        if rule.is_none() && active.is_empty() {
            continue;
        }
        let default = server.default_account().unwrap_or("");
        let need = needs_grant(server, rule.is_some());
        let (accounts, ports, any_port) = if server.mode == Mode::Clone {
            (Vec::new(), Vec::new(), false)
        } else if !need {
            let ports = match server.mode {
                Mode::Firewall | Mode::SshForwarding | Mode::Desktop => server.ports.clone(),
                _ => Vec::new(),
            };
            (server.accounts.clone(), ports, server.mode == Mode::Global)
        } else {
            let accounts = server
                .accounts
                .iter()
                .filter(|a| active.iter().any(|g| g.covers_account(a, default)))
                .cloned()
                .collect();
            let granted: BTreeSet<u16> = active
                .iter()
                .flat_map(|g| g.ports.iter().copied())
                .collect();
            let ports = match server.mode {
                Mode::Firewall | Mode::SshForwarding | Mode::Desktop => server
                    .ports
                    .iter()
                    .copied()
                    .filter(|p| granted.contains(p))
                    .collect(),
                Mode::OnRequest | Mode::Global => granted.into_iter().collect(),
                Mode::Vpn | Mode::Clone => Vec::new(),
            };
            (accounts, ports, false)
        };
        out.push(Reach {
            server: server.name.clone(),
            mode: server.mode,
            needs_grant: need && server.mode != Mode::Clone && active.is_empty(),
            accounts,
            ports,
            any_port,
            policy: rule,
            grants: active
                .iter()
                .map(|g| ReachGrant {
                    id: g.id,
                    accounts: if g.accounts.is_empty() {
                        vec![default.to_owned()]
                    } else {
                        g.accounts.clone()
                    },
                    ports: g.ports.clone(),
                    approved_by: g.approved_by.clone(),
                    until: g.expires_at,
                })
                .collect(),
            flagged: server.mode == Mode::Global,
            use_instead: server.clone.clone(),
            via: server.via.clone(),
        });
    }
    out
}
