//! Command mode's second-factor commands (contract section 11): `mfa
//! enroll` (the `otpauth://` URI first, a QR code on a terminal, then a
//! code read from the channel, then the recovery codes once), `mfa status`
//! (one's own state) and `mfa reset` (removes one's own factor after a
//! good code). The store-backed steps are `identity`'s; this file only
//! talks to the client.
//!
//! Unlike the other commands these read the channel's input, so they get
//! an [`Io`] over the channel's inbox.
//!
//! Imports `reply` and the bottom of `server/` (`chan`, `conn`, `flow`,
//! `shared`); never its siblings or the dispatcher in `mod.rs`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::reply::Reply;
use crate::config::MfaMode;
use crate::identity::{self, Enrollment, LoginContext};
use crate::server::chan::{ChanEvent, ClientWriter};
use crate::server::conn::ConnState;
use crate::server::flow::InboxRx;
use crate::server::shared::Shared;

/// How long a prompt waits for its answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(300);
/// The longest answer kept; the rest of a longer line is dropped.
const MAX_ANSWER: usize = 256;
/// Tries at a terminal; without one, one code is read.
const TRIES_ON_A_TERMINAL: usize = 3;

/// One `mfa` subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MfaCmd {
    Enroll,
    Status,
    Reset,
}

pub(super) const USAGE: &str = "usage: ssh -t STAFF@BASTION mfa [enroll|status|reset] [--json]";

pub(super) fn parse(args: &[&str]) -> Result<MfaCmd, Reply> {
    match args {
        [] | ["status"] => Ok(MfaCmd::Status),
        ["enroll"] => Ok(MfaCmd::Enroll),
        ["reset"] => Ok(MfaCmd::Reset),
        _ => Err(Reply::usage("mfa: expected enroll, status or reset", USAGE)),
    }
}

/// The channel as a terminal or a pipe: what the client sends, read a
/// line at a time, and what goes back.
pub(super) struct Io<'a> {
    write: &'a ClientWriter,
    pty: bool,
    rx: &'a mut InboxRx,
    pending: VecDeque<u8>,
    eof: bool,
}

impl<'a> Io<'a> {
    /// `early`: what the client sent before the command started.
    pub(super) fn new(
        write: &'a ClientWriter,
        pty: bool,
        rx: &'a mut InboxRx,
        early: Vec<ChanEvent>,
    ) -> Io<'a> {
        let mut io = Io {
            write,
            pty,
            rx,
            pending: VecDeque::new(),
            eof: false,
        };
        for ev in early {
            io.take(ev);
        }
        io
    }

    fn take(&mut self, ev: ChanEvent) {
        match ev {
            ChanEvent::Data(b) => self.pending.extend(b.iter().copied()),
            ChanEvent::Eof | ChanEvent::Close => self.eof = true,
            _ => {}
        }
    }

    fn nl(&self, text: &str) -> String {
        if self.pty {
            text.replace('\n', "\r\n")
        } else {
            text.to_string()
        }
    }

    pub(super) async fn out(&self, text: &str) {
        let _ = self.write.data_bytes(Bytes::from(self.nl(text))).await;
    }

    /// Prompts and notes: on a terminal with the rest, else on stderr so
    /// that stdout stays what a script reads (the URI first).
    async fn note(&self, text: &str) {
        if self.pty {
            self.out(text).await;
        } else {
            let _ = self
                .write
                .extended_data_bytes(1, Bytes::from(text.to_string()))
                .await;
        }
    }

    /// One line of input: on a terminal, typed with echo (backspace
    /// works, Ctrl-C or Ctrl-D gives up); else up to a newline or EOF.
    /// `None`: nothing came (EOF, the session ending, or no answer within
    /// [`ANSWER_WITHIN`]).
    async fn read_line(&mut self, state: &ConnState) -> Option<String> {
        let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
        let mut line = String::new();
        loop {
            while let Some(b) = self.pending.pop_front() {
                if self.pty {
                    match b {
                        b'\r' | b'\n' => {
                            self.out("\n").await;
                            return Some(line);
                        }
                        0x7f | 0x08 if line.pop().is_some() => {
                            let _ = self
                                .write
                                .data_bytes(Bytes::from_static(b"\x08 \x08"))
                                .await;
                        }
                        0x7f | 0x08 => {}
                        0x03 | 0x04 => {
                            self.out("\n").await;
                            return None;
                        }
                        0x20..=0x7e if line.len() < MAX_ANSWER => {
                            line.push(char::from(b));
                            let _ = self.write.data_bytes(Bytes::from(vec![b])).await;
                        }
                        _ => {}
                    }
                } else {
                    match b {
                        b'\n' => return Some(line),
                        0x20..=0x7e | b'\t' | b'\r' if line.len() < MAX_ANSWER => {
                            line.push(char::from(b))
                        }
                        _ => {}
                    }
                }
            }
            if self.eof {
                return (!self.pty && !line.is_empty()).then_some(line);
            }
            let ev = tokio::select! {
                ev = self.rx.recv() => ev,
                _ = state.cancel.cancelled() => return None,
                _ = tokio::time::sleep_until(deadline) => return None,
            };
            match ev {
                Some(ev) => self.take(ev),
                None => self.eof = true,
            }
        }
    }
}

/// The name in the URI's label `STAFF@BASTION`: the listen address, or
/// the node's name when the bastion listens on every address.
fn bastion_name(shared: &Shared) -> String {
    let ip = shared.config.listen.ip();
    if ip.is_unspecified() {
        shared.config.node.clone()
    } else {
        ip.to_string()
    }
}

/// Whether `user` must give a factor wherever they log in.
fn required(state: &ConnState) -> bool {
    let policy = state.shared.policy();
    state.shared.config.auth.mfa == MfaMode::Required
        || policy.user(&state.user).is_some_and(|u| u.mfa_required)
}

pub(super) async fn apply(
    state: &Arc<ConnState>,
    cmd: MfaCmd,
    json: bool,
    io: &mut Io<'_>,
) -> Reply {
    match cmd {
        MfaCmd::Status => status(state, json).await,
        MfaCmd::Enroll => enroll(state, io).await,
        MfaCmd::Reset => match &state.factors.enroll_only {
            Some(m) => Reply::fail(1, format!("gatehouse: access denied: {m}\n")),
            None => reset(state, io).await,
        },
    }
}

fn fault(e: impl std::fmt::Display) -> Reply {
    tracing::error!("mfa command: {e}");
    Reply::fail(
        1,
        "gatehouse: the bastion cannot reach its database\n".into(),
    )
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `mfa status`: one's own factor, whether one is required, what this
/// login used.
async fn status(state: &ConnState, json: bool) -> Reply {
    let store = &state.shared.store;
    let rows = match store.mfa_list().await {
        Ok(r) => r,
        Err(e) => return fault(e),
    };
    let mine = rows.into_iter().find(|r| r.user == state.user);
    let required = required(state);
    let may_enroll = match identity::enroll_allowed(
        store,
        &state.shared.config.auth,
        &state.user,
        Shared::now(),
    )
    .await
    {
        Ok(b) => b,
        Err(e) => return fault(e),
    };
    if json {
        let v = serde_json::json!({
            "user": state.user,
            "enrolled": mine.is_some(),
            "factor": mine.as_ref().map(|m| m.factor.clone()),
            "enrolled_at": mine.as_ref().map(|m| rfc3339(m.enrolled)),
            "last_used": mine.as_ref().and_then(|m| m.last_used).map(rfc3339),
            "recovery_codes_left": mine.as_ref().map(|m| m.recovery_codes_left),
            "required": required,
            "may_enroll": may_enroll,
            "login_factors": state.factors.used,
        });
        return Reply::ok(format!("{v}\n"));
    }
    let mut out = String::new();
    match &mine {
        Some(m) => {
            out.push_str(&format!(
                "second factor: {} (enrolled {}, last used {}, {} recovery codes left)\n",
                m.factor,
                rfc3339(m.enrolled),
                m.last_used.map(rfc3339).unwrap_or_else(|| "never".into()),
                m.recovery_codes_left
            ));
        }
        None => out.push_str("second factor: none\n"),
    }
    out.push_str(&format!(
        "required for you: {}\n",
        if required { "yes" } else { "no" }
    ));
    if mine.is_none() {
        out.push_str(if may_enroll {
            "enroll with: ssh -t STAFF@BASTION mfa enroll\n"
        } else {
            "enrolling needs an administrator's `gatehouse mfa allow-enroll` first\n"
        });
    }
    out.push_str(&format!("this login: {}\n", state.factors.used.join(", ")));
    Reply::ok(out)
}

/// `mfa enroll`.
async fn enroll(state: &ConnState, io: &mut Io<'_>) -> Reply {
    let store = &state.shared.store;
    let auth = &state.shared.config.auth;
    let now = Shared::now();
    match identity::factors::enrolled(store, &state.user).await {
        Ok(false) => {}
        Ok(true) => {
            return Reply::fail(
                1,
                "gatehouse: you already have a second factor: `mfa reset` it first\n".into(),
            );
        }
        Err(e) => return fault(e),
    }
    match identity::enroll_allowed(store, auth, &state.user, now).await {
        Ok(true) => {}
        Ok(false) => {
            return Reply::fail(
                1,
                format!(
                    "gatehouse: {}\n",
                    identity::Refusal::EnrollNotAllowed.message()
                ),
            );
        }
        Err(e) => return fault(e),
    }
    let enrollment = match Enrollment::begin(&state.user, &bastion_name(&state.shared)) {
        Ok(e) => e,
        Err(e) => return fault(e),
    };
    io.out(&format!("{}\n", enrollment.uri)).await;
    if io.pty {
        match enrollment.qr() {
            Ok(qr) => io.out(&format!("{qr}\n")).await,
            Err(e) => tracing::warn!("enrollment QR code: {e}"),
        }
        io.out("Scan the code (or add the URI above) in an authenticator app.\n")
            .await;
    }
    let tries = if io.pty { TRIES_ON_A_TERMINAL } else { 1 };
    let master = state.shared.vault.key();
    for _ in 0..tries {
        io.note("Verification code: ").await;
        let Some(typed) = io.read_line(state).await else {
            return Reply::fail(1, "gatehouse: no code given: not enrolled\n".into());
        };
        let done = identity::finish_enrollment(
            store,
            &master,
            auth,
            &enrollment,
            &typed,
            Some(state.source),
            Shared::now(),
        )
        .await;
        match done {
            Ok(Ok(codes)) => {
                let mut out =
                    String::from("Second factor enrolled.\nRecovery codes (each works once):\n");
                for c in &codes.0 {
                    out.push_str(c);
                    out.push('\n');
                }
                return Reply::ok(out);
            }
            Ok(Err(refusal)) => {
                io.note(&format!("gatehouse: {}\n", refusal.message()))
                    .await;
                if refusal == identity::Refusal::EnrollNotAllowed {
                    break;
                }
            }
            Err(e) => return fault(e),
        }
    }
    Reply::fail(1, "gatehouse: not enrolled\n".into())
}

/// `mfa reset`: after a good code (or recovery code), removes one's own
/// factor. A wrong code counts toward the lockout as at login.
async fn reset(state: &ConnState, io: &mut Io<'_>) -> Reply {
    let store = &state.shared.store;
    match identity::factors::enrolled(store, &state.user).await {
        Ok(true) => {}
        Ok(false) => return Reply::fail(1, "gatehouse: no second factor to reset\n".into()),
        Err(e) => return fault(e),
    }
    io.note("Verification code: ").await;
    let Some(typed) = io.read_line(state).await else {
        return Reply::fail(1, "gatehouse: no code given: nothing reset\n".into());
    };
    let ctx = LoginContext {
        user: state.user.clone(),
        // Not a login: the approval `verify_login` caches under this name
        // matches no key, and the reset clears it at once.
        fingerprint: "mfa-reset".into(),
        source: state.source,
        session: Some(state.id.clone()),
        server: None,
    };
    let master = state.shared.vault.key();
    let checked = identity::verify_login(
        store,
        &master,
        &state.shared.config.auth,
        &ctx,
        &typed,
        Shared::now(),
    )
    .await;
    match checked {
        Ok(Ok(_)) => {}
        Ok(Err(refusal)) => {
            state
                .shared
                .counted_failure(&state.user, state.source)
                .await;
            return Reply::fail(
                1,
                format!("gatehouse: {}: nothing reset\n", refusal.message()),
            );
        }
        Err(e) => return fault(e),
    }
    if let Err(e) = store.auth_success(&state.user).await {
        return fault(e);
    }
    match identity::reset(store, &state.user, &state.user).await {
        Ok(_) if required(state) => Reply::ok(
            "Second factor removed. You must enroll a new one before reaching a server: mfa enroll\n"
                .into(),
        ),
        Ok(_) => Reply::ok("Second factor removed.\n".into()),
        Err(e) => fault(e),
    }
}
