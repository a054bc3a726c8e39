//! "Why may alice reach prod-db?": a decision printed for a person, with
//! the rule that made it and the grants that were considered. Pure: the
//! caller loads the policy and the grants.

use std::net::IpAddr;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Action, Decision, Policy, Request, Route, decide};
use crate::grant_types::Grant;

/// A decision with its context, printable as text or JSON (the request
/// under `request`, then the decision's own fields, then `grants`).
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub request: Asked,
    #[serde(flatten)]
    pub decision: Decision,
    /// The user's grants for this server, whatever their state, one line each.
    pub grants: Vec<String>,
}

/// The request as asked, for display.
#[derive(Debug, Clone, Serialize)]
pub struct Asked {
    pub user: String,
    pub server: String,
    pub account: Option<String>,
    pub source: IpAddr,
    /// `session`, `forward to HOST:PORT`, `jump to HOST:PORT`, ...
    pub action: String,
}

impl Explanation {
    pub fn allowed(&self) -> bool {
        matches!(self.decision, Decision::Allow(_))
    }

    /// `ALLOW ...` or `DENY CODE: reason`, then `rule: ...` and the grants.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        match &self.decision {
            Decision::Allow(a) => {
                let what = match (&a.path, &a.dest) {
                    (Route::Session, _) => self.request.action.clone(),
                    (path, Some((h, p))) => {
                        let how = match path {
                            Route::ThroughSshd => "through sshd",
                            _ => "direct",
                        };
                        format!(
                            "{}, dialing {} {how}",
                            self.request.action,
                            host_port(h, *p)
                        )
                    }
                    (_, None) => self.request.action.clone(),
                };
                let as_account = if a.account.is_empty() {
                    String::new()
                } else {
                    format!(" as {}", a.account)
                };
                out.push_str(&format!(
                    "ALLOW {} -> {}{as_account}: {what} (mode {})\n",
                    self.request.user,
                    a.server,
                    a.mode.as_str()
                ));
                out.push_str(&format!("rule: {}\n", a.rule));
                if let Some(id) = a.grant {
                    let until = a
                        .grant_expires
                        .map(fmt_time)
                        .unwrap_or_else(|| "permanent".into());
                    out.push_str(&format!("grant: #{id} until {until}\n"));
                }
                if a.flagged {
                    out.push_str(
                        "flagged: mode global is below modern security standards and is flagged in every report\n",
                    );
                }
            }
            Decision::Deny(d) => {
                out.push_str(&format!("DENY {}: {}\n", d.code.as_str(), d.reason));
                out.push_str(&format!("rule: {}\n", d.rule));
            }
        }
        for g in &self.grants {
            out.push_str(&format!("grant considered: {g}\n"));
        }
        out
    }
}

fn host_port(h: &str, p: u16) -> String {
    if h.contains(':') {
        format!("[{h}]:{p}")
    } else {
        format!("{h}:{p}")
    }
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn describe_action(a: &Action) -> String {
    match a {
        Action::Session => "session".into(),
        Action::LocalForward { host, port } => format!("forward to {}", host_port(host, *port)),
        Action::RemoteForward { port } => format!("remote forward of port {port}"),
        Action::Jump { host, port } => format!("jump to {}", host_port(host, *port)),
        Action::AgentForward => "agent forwarding".into(),
        Action::X11Forward => "X11 forwarding".into(),
    }
}

fn describe_grant(g: &Grant, now: OffsetDateTime) -> String {
    let state = if g.is_active(now) {
        "active".to_owned()
    } else if g.state == crate::grant_types::GrantState::Approved {
        "expired".to_owned()
    } else {
        g.state.as_str().to_owned()
    };
    let until = g
        .expires_at
        .map(fmt_time)
        .unwrap_or_else(|| "no end".into());
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(",")
        }
    };
    format!(
        "#{} {state}, until {until}, accounts {}, ports {}, from {}",
        g.id,
        list(g.accounts.clone()),
        list(g.ports.iter().map(u16::to_string).collect()),
        list(g.from.iter().map(ToString::to_string).collect()),
    )
}

/// Decides `req` and explains the result.
pub fn explain(
    policy: &Policy,
    req: &Request<'_>,
    grants: &[Grant],
    now: OffsetDateTime,
) -> Explanation {
    let decision = decide(policy, req, grants, now);
    let server_name = match &decision {
        Decision::Allow(a) => a.server.clone(),
        Decision::Deny(_) => req.server.to_owned(),
    };
    Explanation {
        request: Asked {
            user: req.user.to_owned(),
            server: req.server.to_owned(),
            account: req.account.map(str::to_owned),
            source: req.source,
            action: describe_action(&req.action),
        },
        grants: grants
            .iter()
            .filter(|g| g.user == req.user && g.server == server_name)
            .map(|g| describe_grant(g, now))
            .collect(),
        decision,
    }
}
