//! Command mode: `ssh STAFF@bastion [COMMAND]` without a target (contract
//! section 5): `list` (default), `whoami`, `web`, and the grant workflow.
//!
//! As in mini-redis's `cmd/`, a command line is parsed once into a typed
//! `Command` (`parse`), then applied (`apply`) by the module that
//! owns it: [`info`] for the read-only commands, [`grants`] for the grant
//! verbs; both answer a `reply::Reply`. The children import `reply` and
//! the bottom of `server/` (`chan`, `conn`, `shared`), never each other
//! nor this file; only the channel dispatcher imports this module.

mod grants;
mod info;
mod reply;

use std::sync::Arc;

use bytes::Bytes;

use super::chan::{ClientWriter, Start};
use super::conn::ConnState;
use grants::GrantCmd;
use reply::Reply;

const USAGE: &str =
    "usage: ssh STAFF@BASTION [list|whoami|web|grants|request|approve|deny|revoke] [--json]";

/// One command line, parsed.
enum Command {
    List,
    Whoami,
    Web,
    Help,
    Grant(GrantCmd),
}

pub async fn run(state: &Arc<ConnState>, write: &ClientWriter, pty: bool, start: &Start) {
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
    }
}

async fn execute(state: &Arc<ConnState>, line: &str) -> Reply {
    match parse(line, &state.user) {
        Ok((cmd, json)) => apply(state, cmd, json).await,
        Err(reply) => reply,
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).filter(|c| !c.is_control()).collect()
}
