//! Command mode: `ssh STAFF@bastion [COMMAND]` without a target (contract
//! section 5): `list` (default), `whoami`, and the grant workflow.

use std::sync::Arc;

use bytes::Bytes;

use super::channel::{ClientWriter, Start};
use super::conn::ConnState;
use super::shared::Shared;
use crate::policy;

const USAGE: &str =
    "usage: ssh STAFF@BASTION [list|whoami|web|grants|request|approve|deny|revoke] [--json]";

/// Output of one command: text for stdout, text for stderr, exit status.
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub status: u32,
}

impl Outcome {
    fn ok(stdout: String) -> Self {
        Outcome {
            stdout,
            stderr: String::new(),
            status: 0,
        }
    }
    fn fail(status: u32, stderr: String) -> Self {
        Outcome {
            stdout: String::new(),
            stderr,
            status,
        }
    }
}

pub async fn run(state: &Arc<ConnState>, write: &ClientWriter, pty: bool, start: &Start) {
    let line = match start {
        Start::Shell => "list".to_string(),
        Start::Exec(cmd) => cmd.clone(),
        Start::Subsystem(name) => {
            super::channel::refuse(
                write,
                pty,
                &format!("gatehouse: access denied: subsystem {name} needs a target (STAFF+ACCOUNT@SERVER)"),
                1,
            )
            .await;
            return;
        }
    };
    let out = execute(state, &line).await;
    let nl = |s: String| if pty { s.replace('\n', "\r\n") } else { s };
    if !out.stdout.is_empty() {
        let _ = write.data_bytes(Bytes::from(nl(out.stdout))).await;
    }
    if !out.stderr.is_empty() {
        let _ = write
            .extended_data_bytes(1, Bytes::from(nl(out.stderr)))
            .await;
    }
    let _ = write.exit_status(out.status).await;
    let _ = write.eof().await;
    let _ = write.close().await;
}

/// Splits a command line into words, honouring single and double quotes.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

async fn execute(state: &Arc<ConnState>, line: &str) -> Outcome {
    let words = match split_words(line) {
        Ok(w) => w,
        Err(e) => return Outcome::fail(2, format!("gatehouse: {e}\n{USAGE}\n")),
    };
    let json = words.iter().any(|w| w == "--json");
    let args: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| *w != "--json")
        .collect();
    match args.first().copied().unwrap_or("list") {
        "list" => list(state, json).await,
        "whoami" => whoami(state, json),
        "web" => web_link(state, json).await,
        "help" | "--help" => Outcome::ok(format!("{USAGE}\n")),
        other => super::grants_cmd::execute(state, other, args.get(1..).unwrap_or_default(), json)
            .await
            .unwrap_or_else(|| {
                Outcome::fail(
                    2,
                    format!("gatehouse: unknown command {:?}\n{USAGE}\n", clip(other)),
                )
            }),
    }
}

/// `web`: a one-time sign-in link for the review console.
async fn web_link(state: &Arc<ConnState>, json: bool) -> Outcome {
    let base = match crate::web::base_url(&state.shared.config) {
        Ok(b) => b,
        Err(e) => return Outcome::fail(1, format!("gatehouse: {e}\n")),
    };
    let policy = state.shared.policy();
    let source = state.source.to_string();
    match crate::web::auth::issue_link(
        &state.shared.store,
        &policy,
        &base,
        &state.user,
        "ssh",
        Some(&source),
    )
    .await
    {
        Ok(url) if json => Outcome::ok(format!(
            "{}\n",
            serde_json::json!({ "url": url, "valid_secs": crate::web::auth::LINK_TTL.as_secs() })
        )),
        Ok(url) => Outcome::ok(format!(
            "{url}\n(valid once, for {} seconds)\n",
            crate::web::auth::LINK_TTL.as_secs()
        )),
        Err(crate::web::WebError::Refused(m)) => Outcome::fail(1, format!("gatehouse: {m}\n")),
        Err(e) => {
            tracing::error!("web link: {e}");
            Outcome::fail(1, "gatehouse: cannot issue a link now\n".into())
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).filter(|c| !c.is_control()).collect()
}

fn whoami(state: &Arc<ConnState>, json: bool) -> Outcome {
    let policy = state.shared.policy();
    let Some(user) = policy.user(&state.user) else {
        return Outcome::fail(
            1,
            "gatehouse: your account is no longer in the policy\n".into(),
        );
    };
    let roles: Vec<String> = user
        .roles
        .iter()
        .map(|r| format!("{r:?}").to_lowercase())
        .collect();
    if json {
        let v = serde_json::json!({
            "user": user.name,
            "groups": user.groups,
            "roles": roles,
            "source": state.source.to_string(),
            "session": state.id,
        });
        return Outcome::ok(format!("{v}\n"));
    }
    Outcome::ok(format!(
        "user: {}\ngroups: {}\nroles: {}\nfrom: {}\nsession: {}\n",
        user.name,
        user.groups.join(", "),
        roles.join(", "),
        state.source,
        state.id
    ))
}

async fn list(state: &Arc<ConnState>, json: bool) -> Outcome {
    let policy = state.shared.policy();
    let grants = match state.shared.store.grants_for(&state.user).await {
        Ok(g) => g,
        Err(_) => {
            return Outcome::fail(
                1,
                "gatehouse: the bastion cannot reach its database\n".into(),
            );
        }
    };
    let now = Shared::now();
    let reach = policy::reachable(&policy, &state.user, &grants, now);
    if json {
        let v = serde_json::json!({ "servers": reach, "grants": grants });
        return Outcome::ok(format!("{v}\n"));
    }
    let mut out = String::new();
    out.push_str(&format!(
        "{:<24} {:<15} {:<28} {:<16} {}\n",
        "SERVER", "MODE", "ACCOUNTS", "PORTS", "ACCESS"
    ));
    for r in &reach {
        out.push_str(&format!("{}\n", r.line()));
    }
    if reach.is_empty() {
        out.push_str("(no servers)\n");
    }
    let live: Vec<_> = grants
        .iter()
        .filter(|g| g.state == crate::grants::GrantState::Pending || g.is_active(now))
        .collect();
    if !live.is_empty() {
        out.push_str("\nGRANTS\n");
        for g in live {
            out.push_str(&format!("{}\n", super::grants_cmd::grant_line(g, now)));
        }
    }
    Outcome::ok(out)
}
