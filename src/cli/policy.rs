//! `gatehouse policy check|explain`: validate the policy folder, and print
//! the decision for one user and server with the rule that made it.
//!
//! The output is built by pure functions ([`check_output`],
//! [`explain_output`]) so that it is tested without a database.

use std::net::IpAddr;

use anyhow::Context;
use time::OffsetDateTime;

use super::{Exit, PolicyCmd};
use crate::config::Config;
use crate::grants::Grant;
use crate::policy::{Action, Diagnostic, Policy, Request, explain};

pub async fn run(config: Config, cmd: PolicyCmd) -> anyhow::Result<i32> {
    match cmd {
        PolicyCmd::Check { json } => {
            let loaded = Policy::load_dir_with(&config.policies, config.directory.is_some());
            let (out, problems) = check_output(&loaded, json)?;
            print!("{out}");
            match problems {
                0 => Ok(0),
                n => anyhow::bail!("{n} problem(s) in the policy files"),
            }
        }
        PolicyCmd::Explain {
            user,
            server,
            account,
            from,
            port,
            json,
        } => {
            let policy = Policy::load_dir_with(&config.policies, config.directory.is_some())
                .map_err(|d| {
                    anyhow::anyhow!(
                        "{} problem(s) in the policy files: run `gatehouse policy check`",
                        d.len()
                    )
                })?;
            let source: IpAddr = match from.as_deref() {
                None => IpAddr::from([127, 0, 0, 1]),
                Some(s) => s
                    .parse()
                    .map_err(|_| Exit::new(2, format!("--from: {s:?} is not an IP address")))?,
            };
            let store = crate::store::Store::open(&config.database, &config.node)
                .await
                .context("cannot open the database to read grants")?;
            let grants = store
                .grants_for(&user)
                .await
                .context("cannot read grants")?;
            let query = Query {
                user: &user,
                server: &server,
                account: account.as_deref(),
                source,
                port,
            };
            // With a directory, the policy served holds its users too
            // (the copy stored by the last sync, while fresh).
            let (policy, source) = match &config.directory {
                Some(d) => {
                    let (served, copy, fresh) = crate::directory::served(&store, d, &policy)
                        .await
                        .context("cannot read the directory copy")?;
                    let source =
                        crate::directory::describe_source(&user, &served, copy.as_ref(), fresh);
                    (served, source)
                }
                None => {
                    let source = crate::directory::describe_source(&user, &policy, None, false);
                    (policy, source)
                }
            };
            let (out, allowed) =
                explain_output(&policy, &query, &grants, OffsetDateTime::now_utc(), json)?;
            let out = with_source(out, &source, json)?;
            print!("{out}");
            if allowed {
                Ok(0)
            } else {
                Err(Exit::new(1, "").into())
            }
        }
    }
}

/// What `policy check` prints on stdout, and how many problems it found.
pub fn check_output(
    loaded: &Result<Policy, Vec<Diagnostic>>,
    json: bool,
) -> anyhow::Result<(String, usize)> {
    Ok(match loaded {
        Ok(p) => {
            let text = if json {
                let v = serde_json::json!({
                    "ok": true,
                    "users": p.users.len(),
                    "servers": p.servers.len(),
                    "files": p.files,
                    "digest": p.digest,
                });
                format!("{}\n", serde_json::to_string_pretty(&v)?)
            } else {
                format!(
                    "policy ok: {} users, {} servers in {} files\n",
                    p.users.len(),
                    p.servers.len(),
                    p.files.len()
                )
            };
            (text, 0)
        }
        Err(diags) => {
            let text = if json {
                format!("{}\n", serde_json::to_string_pretty(diags)?)
            } else {
                diags.iter().map(|d| format!("{d}\n")).collect()
            };
            // An empty list cannot happen, but must not read as success.
            (text, diags.len().max(1))
        }
    })
}

/// `policy explain`'s output with where the user comes from: a
/// `source:` line, or a `source` key in the JSON.
fn with_source(out: String, source: &str, json: bool) -> anyhow::Result<String> {
    if !json {
        return Ok(format!("{out}source: {source}\n"));
    }
    let mut v: serde_json::Value = serde_json::from_str(&out)?;
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "source".into(),
            serde_json::Value::String(source.to_string()),
        );
    }
    Ok(format!("{}\n", serde_json::to_string_pretty(&v)?))
}

/// The `policy explain` question.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub user: &'a str,
    pub server: &'a str,
    pub account: Option<&'a str>,
    pub source: IpAddr,
    /// A forward to `localhost:PORT` instead of a session.
    pub port: Option<u16>,
}

/// What `policy explain` prints, and whether the request is allowed.
pub fn explain_output(
    policy: &Policy,
    q: &Query<'_>,
    grants: &[Grant],
    now: OffsetDateTime,
    json: bool,
) -> anyhow::Result<(String, bool)> {
    let action = match q.port {
        Some(port) => Action::LocalForward {
            host: "localhost".into(),
            port,
        },
        None => Action::Session,
    };
    let req = Request {
        user: q.user,
        server: q.server,
        account: q.account,
        source: q.source,
        action,
    };
    let e = explain::explain(policy, &req, grants, now);
    let text = if json {
        format!("{}\n", serde_json::to_string_pretty(&e)?)
    } else {
        e.to_text()
    };
    Ok((text, e.allowed()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use time::macros::datetime;

    use super::*;
    use crate::grants::GrantState;

    const BOB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHjOZyM6GB2D9P69i7SbNU2u6oAidpC5wDIB1O6Afy/E bob@laptop";
    const FP: &str = "SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM";

    fn policy() -> Policy {
        let text = format!(
            "[[user]]\nname = \"bob\"\nkeys = [\"{BOB}\"]\ngroups = [\"support\"]\n\n\
             [[server]]\nname = \"db\"\naddress = \"10.0.0.5\"\nhost_key = \"{FP}\"\nmode = \"on-request\"\naccounts = [\"oracle\"]\nallow = [\"group:support\"]\n\n\
             [[server]]\nname = \"web\"\naddress = \"10.0.0.6\"\nhost_key = \"{FP}\"\nmode = \"ssh-forwarding\"\naccounts = [\"www\"]\nallow = [\"user:bob\"]\nports = [80]\n"
        );
        Policy::from_sources(&[(PathBuf::from("p.toml"), text)]).unwrap()
    }

    fn grant(state: GrantState) -> Grant {
        Grant {
            id: 7,
            user: "bob".into(),
            server: "db".into(),
            accounts: vec![],
            ports: vec![1521],
            from: vec![],
            reason: "CHG-1".into(),
            state,
            requested_by: "bob".into(),
            approved_by: Some("carol".into()),
            decided_by: Some("carol".into()),
            decision_note: None,
            requested_at: datetime!(2026-03-01 09:00 UTC),
            decided_at: Some(datetime!(2026-03-01 09:10 UTC)),
            duration_secs: Some(7200),
            expires_at: Some(datetime!(2026-03-01 11:10 UTC)),
        }
    }

    fn q<'a>(server: &'a str, port: Option<u16>) -> Query<'a> {
        Query {
            user: "bob",
            server,
            account: None,
            source: IpAddr::from([127, 0, 0, 1]),
            port,
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-03-01 10:00 UTC);

    #[test]
    fn explain_allow_with_grant() {
        let (out, ok) = explain_output(
            &policy(),
            &q("db", None),
            &[grant(GrantState::Approved)],
            NOW,
            false,
        )
        .unwrap();
        assert!(ok);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "ALLOW bob -> db as oracle: session (mode on-request)"
        );
        assert_eq!(
            lines[1],
            "rule: grant #7 (approved by carol, until 2026-03-01T11:10:00Z); db allows group:support (p.toml:6)"
        );
        assert_eq!(lines[2], "grant: #7 until 2026-03-01T11:10:00Z");
        assert!(lines[3].starts_with("grant considered: #7 active"), "{out}");
    }

    #[test]
    fn explain_deny_and_forward() {
        let (out, ok) = explain_output(
            &policy(),
            &q("db", None),
            &[grant(GrantState::Pending)],
            NOW,
            false,
        )
        .unwrap();
        assert!(!ok);
        assert!(
            out.starts_with("DENY KO_GRANT_REQUIRED: db needs an approved grant"),
            "{out}"
        );
        assert!(
            out.contains("\nrule: db mode on-request (p.toml:6)"),
            "{out}"
        );
        assert!(out.contains("grant considered: #7 pending"), "{out}");

        let (out, ok) = explain_output(&policy(), &q("web", Some(80)), &[], NOW, false).unwrap();
        assert!(ok);
        assert!(
            out.starts_with(
                "ALLOW bob -> web as www: forward to localhost:80, dialing 127.0.0.1:80 through sshd"
            ),
            "{out}"
        );
        let (out, ok) = explain_output(&policy(), &q("web", Some(22)), &[], NOW, false).unwrap();
        assert!(!ok);
        assert!(
            out.starts_with("DENY KO_PORT_NOT_ALLOWED: port 22 is not open for forwarding on web")
        );
    }

    #[test]
    fn explain_json() {
        let (out, ok) = explain_output(&policy(), &q("nope", None), &[], NOW, true).unwrap();
        assert!(!ok);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["code"], "KO_ACCESS_DENIED");
        assert_eq!(v["reason"], "no such server, or you may not reach it");
        assert_eq!(v["request"]["user"], "bob");
        assert_eq!(v["request"]["server"], "nope");
        let (out, _) = explain_output(&policy(), &q("web", None), &[], NOW, true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["decision"], "allow");
        assert_eq!(v["account"], "www");
        assert_eq!(v["mode"], "ssh-forwarding");
    }

    #[test]
    fn check_reports() {
        let (out, n) = check_output(&Ok(policy()), false).unwrap();
        assert_eq!(
            (out.as_str(), n),
            ("policy ok: 1 users, 2 servers in 1 files\n", 0)
        );
        let (out, _) = check_output(&Ok(policy()), true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["servers"], 2);
        let bad = Policy::from_sources(&[(
            PathBuf::from("p.toml"),
            "[[user]]\nname = \"Bob\"\nkeys = []\n\n[[server]]\nname = 1\n".into(),
        )]);
        let (out, n) = check_output(&bad, false).unwrap();
        // Every problem: the bad name, the server's two missing keys and
        // its name of the wrong type.
        assert_eq!(n, 4, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("p.toml:2:8: invalid user name"),
            "{out}"
        );
        assert_eq!(lines[1], "p.toml:5:1: missing field `address`", "{out}");
        assert_eq!(lines[2], "p.toml:5:1: missing field `mode`", "{out}");
        assert!(lines[3].starts_with("p.toml:6:8: invalid type"), "{out}");
        let (out, n) = check_output(&bad, true).unwrap();
        assert_eq!(n, 4);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[3]["line"], 6);
        assert_eq!(v[3]["col"], 8);
        assert_eq!(v[3]["file"], "p.toml");
    }

    #[test]
    fn example_policy_passes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let p = Policy::load_dir(&dir).unwrap_or_else(|d| {
            panic!(
                "{}",
                d.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert_eq!(p.users.len(), 2);
        assert!(p.user("alice").is_some() && p.user("bob").is_some());
    }
}
