//! Command mode's grant verbs: `request`, `grants`, `approve`, `deny`,
//! `revoke`, parsed here and carried out by [`crate::grants::flow`].

use std::sync::Arc;

use time::OffsetDateTime;

use super::command_mode::Outcome;
use super::conn::ConnState;
use super::shared::Shared;
use crate::grants::flow::{self, FlowError, NewRequest, parse_cidrs, parse_ports, rfc3339};
use crate::grants::{Grant, GrantState};

const REQUEST_USAGE: &str = "usage: request SERVER [--account A] [--ports P,..] [--from CIDR,..] (--for DURATION | --permanent) --reason TEXT";

/// One line per grant for people.
pub fn grant_line(g: &Grant, now: OffsetDateTime) -> String {
    let until = match (g.state, g.expires_at) {
        (GrantState::Approved, Some(e)) if e > now => {
            let left = (e - now).whole_seconds().max(0);
            format!("until {} ({}m left)", rfc3339(e), left / 60)
        }
        (GrantState::Approved, None) => "permanent".to_string(),
        (_, Some(e)) => format!("until {}", rfc3339(e)),
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

fn render(g: &Grant, json: bool, verb: &str) -> Outcome {
    if json {
        Outcome {
            stdout: format!("{}\n", serde_json::to_string(g).unwrap_or_default()),
            stderr: String::new(),
            status: 0,
        }
    } else {
        Outcome {
            stdout: format!("grant #{} {verb}\n{}\n", g.id, grant_line(g, Shared::now())),
            stderr: String::new(),
            status: 0,
        }
    }
}

fn failed(e: FlowError) -> Outcome {
    Outcome {
        stdout: String::new(),
        stderr: format!("gatehouse: {e}\n"),
        status: 1,
    }
}

fn usage(msg: &str, usage: &str) -> Outcome {
    Outcome {
        stdout: String::new(),
        stderr: format!("gatehouse: {msg}\n{usage}\n"),
        status: 2,
    }
}

/// `None`: not a grant verb.
pub async fn execute(
    state: &Arc<ConnState>,
    verb: &str,
    args: &[&str],
    json: bool,
) -> Option<Outcome> {
    let store = &state.shared.store;
    let policy = state.shared.policy();
    let now = Shared::now();
    let actor = state.user.as_str();
    Some(match verb {
        "request" => {
            let req = match parse_request(actor, args) {
                Ok(r) => r,
                Err(m) => return Some(usage(&m, REQUEST_USAGE)),
            };
            match flow::request(store, &policy, req, Some(&state.source.to_string()), now).await {
                Ok(g) => render(
                    &g,
                    json,
                    "requested: waiting for a second person's approval",
                ),
                Err(e) => failed(e),
            }
        }
        "grants" => match flow::visible(store, &policy, actor).await {
            Ok(gs) => {
                if json {
                    Outcome {
                        stdout: format!("{}\n", serde_json::to_string(&gs).unwrap_or_default()),
                        stderr: String::new(),
                        status: 0,
                    }
                } else {
                    let mut out = String::new();
                    for g in &gs {
                        out.push_str(&grant_line(g, now));
                        out.push('\n');
                    }
                    if gs.is_empty() {
                        out.push_str("(no grants)\n");
                    }
                    Outcome {
                        stdout: out,
                        stderr: String::new(),
                        status: 0,
                    }
                }
            }
            Err(e) => failed(e),
        },
        "approve" | "deny" | "revoke" => {
            let Some(id) = args
                .first()
                .and_then(|a| a.trim_start_matches('#').parse::<i64>().ok())
            else {
                return Some(usage(
                    "which grant? give its number",
                    &format!("usage: {verb} ID"),
                ));
            };
            let (r, done) = match verb {
                "approve" => (
                    flow::approve(store, &policy, id, actor, now).await,
                    "approved",
                ),
                "deny" => {
                    let note = option_value(args, "--reason");
                    (
                        flow::deny(store, &policy, id, actor, note, now).await,
                        "denied",
                    )
                }
                _ => (
                    flow::revoke(store, &policy, id, actor, now).await,
                    "revoked",
                ),
            };
            match r {
                Ok(g) => {
                    if verb == "revoke" {
                        state.shared.end_sessions(
                            "the grant that authorized this session was revoked",
                            |_, live| live.grant == Some(g.id),
                        );
                    }
                    render(&g, json, done)
                }
                Err(e) => failed(e),
            }
        }
        _ => return None,
    })
}

fn option_value(args: &[&str], name: &str) -> Option<String> {
    let pos = args.iter().position(|a| *a == name)?;
    args.get(pos + 1).map(|s| s.to_string())
}

fn parse_request(actor: &str, args: &[&str]) -> Result<NewRequest, String> {
    let mut req = NewRequest {
        user: actor.to_string(),
        ..Default::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .map(|s| s.to_string())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match *a {
            "--account" => req.accounts.push(value("--account")?),
            "--ports" => req.ports.extend(parse_ports(&value("--ports")?)?),
            "--from" => req.from.extend(parse_cidrs(&value("--from")?)?),
            "--for" => {
                let v = value("--for")?;
                req.duration = Some(crate::config::parse_duration(&v)?);
            }
            "--permanent" => req.permanent = true,
            "--reason" => req.reason = value("--reason")?,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s if req.server.is_empty() => req.server = s.to_string(),
            s => return Err(format!("unexpected argument {s:?}")),
        }
    }
    if req.server.is_empty() {
        return Err("which server?".into());
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_arguments() {
        let r = parse_request(
            "bob",
            &[
                "prod-db",
                "--account",
                "oracle",
                "--ports",
                "1521",
                "--for",
                "2h",
                "--reason",
                "TICKET-1 fix",
            ],
        )
        .unwrap();
        assert_eq!(r.server, "prod-db");
        assert_eq!(r.accounts, vec!["oracle"]);
        assert_eq!(r.ports, vec![1521]);
        assert_eq!(r.duration, Some(std::time::Duration::from_secs(7200)));
        assert_eq!(r.reason, "TICKET-1 fix");
        assert!(parse_request("bob", &["x", "--bogus"]).is_err());
        assert!(parse_request("bob", &["--for"]).is_err());
    }
}
