//! What a session was, in a word, for the sessions list: from its row
//! (a command-mode or refused login has no `mode`) and the first of its
//! audit events of each kind ([`crate::store::SessionFacts`]). Pure, so
//! that it is tested without a store.

use crate::store::{SessionFacts, SessionRow};

/// A session's kind, as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKind {
    Shell,
    /// With the (first) command.
    Exec(String),
    Sftp,
    /// With the scp command line.
    Scp(String),
    /// With the (first) destination.
    Forward(String),
    /// ProxyJump (`ssh -J`), with the destination.
    Jump(String),
    /// `ssh USER@BASTION COMMAND` (grants, info, web...).
    CommandMode,
    /// With the refusal's stable code.
    Refused(String),
    /// A session to a target that opened nothing (yet).
    Session,
}

impl SessionKind {
    /// The word the list shows and filters on (`data-kind`).
    pub fn word(&self) -> &'static str {
        match self {
            SessionKind::Shell => "shell",
            SessionKind::Exec(_) => "exec",
            SessionKind::Sftp => "sftp",
            SessionKind::Scp(_) => "scp",
            SessionKind::Forward(_) => "forward",
            SessionKind::Jump(_) => "ProxyJump",
            SessionKind::CommandMode => "command mode",
            SessionKind::Refused(_) => "refused",
            SessionKind::Session => "session",
        }
    }

    /// What follows the word: the command, destination or code.
    pub fn what(&self) -> Option<&str> {
        match self {
            SessionKind::Exec(s)
            | SessionKind::Scp(s)
            | SessionKind::Forward(s)
            | SessionKind::Jump(s)
            | SessionKind::Refused(s) => Some(s),
            _ => None,
        }
    }
}

fn text<'a>(v: Option<&'a serde_json::Value>, key: &str) -> Option<&'a str> {
    v?.get(key)?.as_str()
}

/// The kind of session `row`, given its facts (none: no events read).
pub fn of(row: &SessionRow, facts: Option<&SessionFacts>) -> SessionKind {
    let empty = SessionFacts::default();
    let f = facts.unwrap_or(&empty);
    if let Some(exec) = f.first("exec") {
        return match text(Some(exec), "kind") {
            Some("shell") => SessionKind::Shell,
            Some("subsystem") if text(Some(exec), "subsystem") == Some("sftp") => SessionKind::Sftp,
            Some("subsystem") => SessionKind::Exec(format!(
                "subsystem {}",
                text(Some(exec), "subsystem").unwrap_or("?")
            )),
            _ => {
                let cmd = text(Some(exec), "command").unwrap_or("").to_string();
                if cmd == "scp" || cmd.starts_with("scp ") {
                    SessionKind::Scp(cmd)
                } else {
                    SessionKind::Exec(cmd)
                }
            }
        };
    }
    if let Some(j) = f.first("jump.open") {
        return SessionKind::Jump(text(Some(j), "destination").unwrap_or("?").to_string());
    }
    if let Some(fw) = f.first("forward.open") {
        return SessionKind::Forward(text(Some(fw), "destination").unwrap_or("?").to_string());
    }
    if let Some(d) = f.first("access.denied") {
        return SessionKind::Refused(text(Some(d), "code").unwrap_or("KO_DENIED").to_string());
    }
    if let Some(b) = f.first("command.blocked") {
        // Blocked before anything ran: what was tried.
        return match text(Some(b), "command") {
            Some("(shell)") => SessionKind::Shell,
            Some(c) => SessionKind::Exec(c.to_string()),
            None => SessionKind::Session,
        };
    }
    match (&row.mode, &row.server) {
        (Some(_), _) => SessionKind::Session,
        (None, None) => SessionKind::CommandMode,
        // A login to a server whose mode refused it, before any channel.
        (None, Some(_)) => SessionKind::Refused("KO_DENIED".into()),
    }
}

/// The factors the login used (`auth.success`'s `detail.factors`), as
/// one line; `None` when the event names none.
pub fn factors(facts: Option<&SessionFacts>) -> Option<String> {
    let f = facts?.first("auth.success")?.get("factors")?;
    match f {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) => Some(
            a.iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" + "),
        ),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(server: Option<&str>, mode: Option<&str>) -> SessionRow {
        SessionRow {
            id: "s".into(),
            user: "alice".into(),
            server: server.map(str::to_string),
            account: None,
            source: "127.0.0.1".into(),
            node: "n1".into(),
            started_at: time::OffsetDateTime::UNIX_EPOCH,
            ended_at: None,
            mode: mode.map(str::to_string),
            grant_id: None,
            recorded: false,
            bytes_up: 0,
            bytes_down: 0,
            exit_status: None,
            end_reason: None,
            flagged: None,
            review: None,
        }
    }

    fn facts(list: &[(&str, serde_json::Value)]) -> SessionFacts {
        let mut f = SessionFacts::default();
        for (k, d) in list {
            f.kinds.insert((*k).to_string(), (1, d.clone()));
        }
        f
    }

    #[test]
    fn kinds_from_rows_and_events() {
        let target = row(Some("web1"), Some("proxy"));
        let cases = [
            (
                facts(&[("exec", json!({"kind": "shell"}))]),
                SessionKind::Shell,
            ),
            (
                facts(&[("exec", json!({"kind": "exec", "command": "uptime"}))]),
                SessionKind::Exec("uptime".into()),
            ),
            (
                facts(&[("exec", json!({"kind": "exec", "command": "scp -t /tmp"}))]),
                SessionKind::Scp("scp -t /tmp".into()),
            ),
            (
                facts(&[("exec", json!({"kind": "subsystem", "subsystem": "sftp"}))]),
                SessionKind::Sftp,
            ),
            (
                facts(&[("forward.open", json!({"destination": "db:5432"}))]),
                SessionKind::Forward("db:5432".into()),
            ),
            (
                facts(&[("access.denied", json!({"code": "KO_NO_RULE"}))]),
                SessionKind::Refused("KO_NO_RULE".into()),
            ),
            (
                facts(&[("command.blocked", json!({"command": "rm -rf /"}))]),
                SessionKind::Exec("rm -rf /".into()),
            ),
            (SessionFacts::default(), SessionKind::Session),
        ];
        for (f, want) in cases {
            assert_eq!(of(&target, Some(&f)), want, "{f:?}");
        }
        assert_eq!(of(&row(None, None), None), SessionKind::CommandMode);
        assert_eq!(
            of(
                &row(None, None),
                Some(&facts(&[(
                    "jump.open",
                    json!({"destination": "10.0.0.5:22"})
                )]))
            ),
            SessionKind::Jump("10.0.0.5:22".into())
        );
        assert_eq!(
            of(
                &row(None, None),
                Some(&facts(&[(
                    "access.denied",
                    json!({"code": "KO_BAD_LOGIN"})
                )]))
            ),
            SessionKind::Refused("KO_BAD_LOGIN".into())
        );
    }

    #[test]
    fn factors_read_as_one_line() {
        let f = facts(&[("auth.success", json!({"factors": ["publickey", "totp"]}))]);
        assert_eq!(factors(Some(&f)).as_deref(), Some("publickey + totp"));
        assert_eq!(factors(Some(&facts(&[("auth.success", json!({}))]))), None);
        assert_eq!(factors(None), None);
    }
}
