//! Command mode's grant verbs: `request`, `grants`, `approve`, `deny`,
//! `revoke`. [`parse`] turns the words into a [`GrantCmd`] once; [`apply`]
//! carries it out through [`crate::grants::flow`].
//!
//! Imports `reply` and the bottom of `server/` (`conn`, `shared`); never
//! its sibling `info` or the dispatcher in `mod.rs`.

use std::sync::Arc;

use super::reply::Reply;
use crate::grants::flow::{self, FlowError, NewRequest, parse_cidrs, parse_ports};
use crate::grants::{Grant, grant_line};
use crate::server::conn::ConnState;
use crate::server::shared::Shared;

const REQUEST_USAGE: &str = "usage: request SERVER [--account A] [--ports P,..] [--from CIDR,..] (--for DURATION | --permanent) --reason TEXT";

/// A grant verb, parsed.
pub(super) enum GrantCmd {
    Request(NewRequest),
    List,
    Approve(i64),
    Deny { id: i64, note: Option<String> },
    Revoke(i64),
}

/// `Ok(None)`: not a grant verb. `Err`: a grant verb whose arguments do
/// not parse, answered with its usage.
pub(super) fn parse(actor: &str, verb: &str, args: &[&str]) -> Result<Option<GrantCmd>, Reply> {
    let id = || {
        args.first()
            .and_then(|a| a.trim_start_matches('#').parse::<i64>().ok())
            .ok_or_else(|| {
                Reply::usage("which grant? give its number", &format!("usage: {verb} ID"))
            })
    };
    Ok(Some(match verb {
        "request" => GrantCmd::Request(
            parse_request(actor, args).map_err(|m| Reply::usage(&m, REQUEST_USAGE))?,
        ),
        "grants" => GrantCmd::List,
        "approve" => GrantCmd::Approve(id()?),
        "deny" => GrantCmd::Deny {
            id: id()?,
            note: option_value(args, "--reason"),
        },
        "revoke" => GrantCmd::Revoke(id()?),
        _ => return Ok(None),
    }))
}

pub(super) async fn apply(state: &Arc<ConnState>, cmd: GrantCmd, json: bool) -> Reply {
    let store = &state.shared.store;
    let policy = state.shared.policy();
    let now = Shared::now();
    let actor = state.user.as_str();
    let source = state.source.to_string();
    let (r, done) = match cmd {
        GrantCmd::Request(req) => (
            flow::request(store, &policy, req, Some(&source), now).await,
            "requested: waiting for a second person's approval",
        ),
        GrantCmd::List => {
            return match flow::visible(store, &policy, actor).await {
                Ok(gs) => list(&gs, json, now),
                Err(e) => failed(e),
            };
        }
        GrantCmd::Approve(id) => (
            flow::approve(store, &policy, id, actor, now).await,
            "approved",
        ),
        GrantCmd::Deny { id, note } => (
            flow::deny(store, &policy, id, actor, note, now).await,
            "denied",
        ),
        GrantCmd::Revoke(id) => {
            let r = flow::revoke(store, &policy, id, actor, now).await;
            if let Ok(g) = &r {
                state.shared.end_sessions(
                    "the grant that authorized this session was revoked",
                    |_, live| live.grant == Some(g.id),
                );
            }
            (r, "revoked")
        }
    };
    match r {
        Ok(g) => render(&g, json, done),
        Err(e) => failed(e),
    }
}

fn list(gs: &[Grant], json: bool, now: time::OffsetDateTime) -> Reply {
    if json {
        return Reply::ok(format!(
            "{}\n",
            serde_json::to_string(gs).unwrap_or_default()
        ));
    }
    let mut out = String::new();
    for g in gs {
        out.push_str(&grant_line(g, now));
        out.push('\n');
    }
    if gs.is_empty() {
        out.push_str("(no grants)\n");
    }
    Reply::ok(out)
}

fn render(g: &Grant, json: bool, verb: &str) -> Reply {
    if json {
        Reply::ok(format!(
            "{}\n",
            serde_json::to_string(g).unwrap_or_default()
        ))
    } else {
        Reply::ok(format!(
            "grant #{} {verb}\n{}\n",
            g.id,
            grant_line(g, Shared::now())
        ))
    }
}

fn failed(e: FlowError) -> Reply {
    Reply::fail(1, format!("gatehouse: {e}\n"))
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
