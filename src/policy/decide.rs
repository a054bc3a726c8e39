//! The access decision: a pure function of (policy, request, grants, now).
use std::net::IpAddr;

use time::OffsetDateTime;

use super::{Decision, Denial, DenyCode, Policy, Request, Server, User};
use crate::grants::Grant;

/// Staff authentication by public key: the user exists, the key is one of
/// theirs, the account has not expired and the source address is allowed.
pub fn authenticate<'p>(
    policy: &'p Policy,
    user: &str,
    key: &russh::keys::PublicKey,
    source: IpAddr,
    now: OffsetDateTime,
) -> Result<&'p User, Denial> {
    let _ = (policy, user, key, source, now);
    Err(Denial {
        code: DenyCode::UnknownUser,
        reason: "not implemented".into(),
        rule: String::new(),
    })
}

/// The decision for one request.
pub fn decide(
    policy: &Policy,
    req: &Request<'_>,
    grants: &[Grant],
    now: OffsetDateTime,
) -> Decision {
    let _ = (policy, req, grants, now);
    Decision::Deny(Denial {
        code: DenyCode::AccessDenied,
        reason: "access denied".into(),
        rule: "not implemented".into(),
    })
}

/// Checks an exec command (or a reconstructed interactive line) against the
/// server's `deny_commands` and `allow_commands` globs.
pub fn check_command(server: &Server, command: &str, interactive: bool) -> Result<(), Denial> {
    let _ = (server, command, interactive);
    Ok(())
}

/// Whether a session as `account` on `server` must be recorded.
pub fn should_record(server: &Server, account: &str, privileged_globs: &[String]) -> bool {
    let _ = (server, account, privileged_globs);
    true
}

/// One server a user may reach, for `list`, `ssh-config` and entitlements.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reach {
    pub server: String,
    pub mode: super::Mode,
    pub accounts: Vec<String>,
    pub ports: Vec<u16>,
    pub via: String,
    pub grant: Option<i64>,
}

impl Reach {
    pub fn line(&self) -> String {
        format!(
            "{} {} {}",
            self.server,
            self.mode.as_str(),
            self.accounts.join(",")
        )
    }
}

pub fn reachable(policy: &Policy, user: &str, grants: &[Grant], now: OffsetDateTime) -> Vec<Reach> {
    let _ = (policy, user, grants, now);
    Vec::new()
}
