//! Command mode: `ssh STAFF@bastion [COMMAND]` without a target (contract
//! section 5): `list` (default), `whoami`, `web`, the grant workflow, and
//! `mfa enroll|status|reset` (section 11). A login that must enroll a
//! second factor first runs only `mfa enroll` and `mfa status`.
//!
//! As in mini-redis's `cmd/`, a command line is parsed once into a typed
//! `Command` (`parse`), then applied (`apply`) by the module that
//! owns it: [`info`] for the read-only commands, [`grants`] for the grant
//! verbs; both answer a `reply::Reply`. The children import `reply` and
//! the bottom of `server/` (`chan`, `conn`, `shared`), never each other
//! nor this file; only the channel dispatcher imports this module.

mod grants;
mod info;
mod mfa;
mod reply;

use std::sync::Arc;

use bytes::Bytes;

use super::chan::{ChanEvent, ClientWriter, Start};
use super::conn::ConnState;
use super::flow::InboxRx;
use grants::GrantCmd;
use reply::Reply;

const USAGE: &str =
    "usage: ssh STAFF@BASTION [list|whoami|web|grants|request|approve|deny|revoke|mfa] [--json]";

/// One command line, parsed.
enum Command {
    List,
    Whoami,
    Web,
    Help,
    Grant(GrantCmd),
    Mfa(mfa::MfaCmd),
}

/// Runs one command. `rx` and `early` are the channel's input (what came
/// before the command started, then the rest): only `mfa` reads it.
pub async fn run(
    state: &Arc<ConnState>,
    write: &ClientWriter,
    pty: bool,
    start: &Start,
    rx: &mut InboxRx,
    early: Vec<ChanEvent>,
) {
    let line = match start {
        Start::Shell => "list".to_string(),
        Start::Exec(cmd) => cmd.clone(),
        Start::Subsystem(name) => {
            super::chan::refuse(
                write,
                pty,
                &format!("gatehouse: access denied: subsystem {name} needs a target (STAFF+ACCOUNT@SERVER)"),
                1,
            )
            .await;
            return;
        }
    };
    let out = match parse(&line, &state.user) {
        Ok((Command::Mfa(cmd), json)) => {
            let mut io = mfa::Io::new(write, pty, rx, early);
            mfa::apply(state, cmd, json, &mut io).await
        }
        // A login that must enroll first: nothing else.
        Ok(_) if state.factors.enroll_only.is_some() => Reply::fail(
            1,
            format!(
                "gatehouse: access denied: {}\n",
                state.factors.enroll_only.as_deref().unwrap_or_default()
            ),
        ),
        Ok((cmd, json)) => apply(state, cmd, json).await,
        Err(reply) => reply,
    };
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
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, String> {
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

/// Parses a command line into the command and whether `--json` was given;
/// a line that does not parse is answered with the usage (status 2).
fn parse(line: &str, actor: &str) -> Result<(Command, bool), Reply> {
    let words = split_words(line).map_err(|e| Reply::usage(&e, USAGE))?;
    let json = words.iter().any(|w| w == "--json");
    let args: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| *w != "--json")
        .collect();
    let verb = args.first().copied().unwrap_or("list");
    let cmd = match verb {
        "list" => Command::List,
        "whoami" => Command::Whoami,
        "web" => Command::Web,
        "help" | "--help" => Command::Help,
        "mfa" => Command::Mfa(mfa::parse(args.get(1..).unwrap_or_default())?),
        other => match grants::parse(actor, other, args.get(1..).unwrap_or_default())? {
            Some(g) => Command::Grant(g),
            None => {
                return Err(Reply::usage(
                    &format!("unknown command {:?}", clip(other)),
                    USAGE,
                ));
            }
        },
    };
    Ok((cmd, json))
}

async fn apply(state: &Arc<ConnState>, cmd: Command, json: bool) -> Reply {
    match cmd {
        Command::List => info::list(state, json).await,
        Command::Whoami => info::whoami(state, json),
        Command::Web => info::web_link(state, json).await,
        Command::Help => Reply::ok(format!("{USAGE}\n")),
        Command::Grant(g) => grants::apply(state, g, json).await,
        // Answered by `run`, which gives it the channel's input.
        Command::Mfa(_) => Reply::fail(1, "gatehouse: mfa needs the channel\n".into()),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Result<(Command, bool), Reply> {
        parse(line, "bob")
    }

    #[test]
    fn a_line_parses_once_into_a_command() {
        assert!(matches!(parsed(""), Ok((Command::List, false))));
        assert!(matches!(
            parsed("whoami --json"),
            Ok((Command::Whoami, true))
        ));
        assert!(matches!(parsed("--json web"), Ok((Command::Web, true))));
        assert!(matches!(
            parsed("mfa enroll"),
            Ok((Command::Mfa(mfa::MfaCmd::Enroll), false))
        ));
        assert!(matches!(
            parsed("mfa --json"),
            Ok((Command::Mfa(mfa::MfaCmd::Status), true))
        ));
        assert!(matches!(
            parsed("mfa reset"),
            Ok((Command::Mfa(mfa::MfaCmd::Reset), false))
        ));
        assert!(parsed("mfa frob").is_err());
        assert!(matches!(parsed("--help"), Ok((Command::Help, false))));
        assert!(matches!(
            parsed("approve #12"),
            Ok((Command::Grant(GrantCmd::Approve(12)), false))
        ));
        assert!(matches!(
            parsed("deny 3 --reason 'not now'"),
            Ok((Command::Grant(GrantCmd::Deny { id: 3, note: Some(ref n) }), false)) if n == "not now"
        ));
        match parsed("request prod-db --for 2h --reason 'TICKET-1'") {
            Ok((Command::Grant(GrantCmd::Request(r)), false)) => {
                assert_eq!(r.user, "bob");
                assert_eq!(r.server, "prod-db");
            }
            _ => panic!("request did not parse"),
        }
    }

    #[test]
    fn a_line_that_does_not_parse_is_answered_with_usage() {
        for (line, first) in [
            ("frobnicate", "gatehouse: unknown command \"frobnicate\"\n"),
            ("revoke", "gatehouse: which grant? give its number\n"),
            ("request --bogus", "gatehouse: unknown option --bogus\n"),
            ("list 'open", "gatehouse: unterminated quote\n"),
        ] {
            let Err(reply) = parsed(line) else {
                panic!("{line:?} parsed");
            };
            assert_eq!(reply.status, 2, "{line:?}");
            assert!(
                reply.stderr.starts_with(first),
                "{line:?}: {}",
                reply.stderr
            );
            assert!(reply.stdout.is_empty());
        }
    }
}
