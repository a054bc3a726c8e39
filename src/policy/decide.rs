//! The access decision: a pure function of (policy, request, grants, now).
//!
//! [`decide`] checks one request in a fixed order and the first failing
//! step decides (contract sections 4 to 6):
//!
//! 1. the user exists, has not expired, and connects from their `allow_from`;
//! 2. agent and X11 forwarding are refused outright;
//! 3. `-J` jumps are resolved to a server and allowed only in mode global;
//! 4. the server exists and the user is eligible for it (its `allow` list
//!    names them or one of their groups, or they hold an active grant for
//!    it); an unknown server and a server the user may not reach get the
//!    same reason, so the client cannot tell them apart;
//! 5. mode clone refuses and names the clone;
//! 6. the account is one of the server's `accounts`;
//! 7. the source is in the server's `allow_from`;
//! 8. a grant is needed (mode on-request, `require_grant`, or eligibility
//!    through a grant alone): an active one must cover account and source;
//! 9. the action is checked against the mode (the contract's table);
//! 10. ([`decide_reviewed`]) the access review: a suspended entitlement,
//!     or under `[review] enforce` an overdue one, is refused (`review`).
//!
//! A refusal is a [`Denial`] value with a stable code, never an `Err` fault.
//! What a user may reach, for listings and reports, is in `reach`.
//! May import: the policy types, grant types.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::check::command_glob;
use super::{
    Action, Allowed, Decision, Denial, DenyCode, Mode, Policy, Principal, RecordMode, Request,
    Route, Server, User,
};
use crate::grant_types::Grant;

mod reach;
mod review;

pub use reach::{Reach, ReachGrant, reachable};
pub use review::{OVERDUE, ReviewInput, SUSPENDED};

/// The one reason an unknown server and a forbidden one share.
const ACCESS_DENIED: &str = "no such server, or you may not reach it";

/// Characters that chain or redirect shell commands. A command holding one
/// matches an `allow_commands` pattern only if the pattern holds it too, so
/// that `systemctl status *` does not allow `systemctl status x; rm -rf /`.
const SHELL_CONTROL: &[char] = &[';', '&', '|', '`', '$', '<', '>', '(', ')', '\n', '\r'];

fn denial(code: DenyCode, reason: impl Into<String>, rule: impl Into<String>) -> Denial {
    Denial {
        code,
        reason: reason.into(),
        rule: rule.into(),
    }
}

/// A dual-stack listener reports IPv4 peers as `::ffff:a.b.c.d`; CIDRs in
/// the policy are written for the IPv4 form.
fn canonical(source: IpAddr) -> IpAddr {
    source.to_canonical()
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn fmt_nets(nets: &[ipnet::IpNet]) -> String {
    let list: Vec<String> = nets.iter().map(ToString::to_string).collect();
    list.join(", ")
}

/// Staff authentication by public key: the user exists, the key is one of
/// theirs, the account has not expired and the source address is allowed.
pub fn authenticate<'p>(
    policy: &'p Policy,
    user: &str,
    key: &russh::keys::PublicKey,
    source: IpAddr,
    now: OffsetDateTime,
) -> Result<&'p User, Denial> {
    let Some(u) = policy.user(user) else {
        return Err(unknown_user(user));
    };
    if !u.keys.iter().any(|k| k.key.key_data() == key.key_data()) {
        return Err(denial(
            DenyCode::KeyNotAllowed,
            "key not allowed",
            format!(
                "key {} is not listed for user {user}",
                key.fingerprint(russh::keys::HashAlg::Sha256)
            ),
        ));
    }
    check_standing(u, source, now)?;
    Ok(u)
}

/// [`authenticate`] for a staff member whose certificate was already
/// checked (`server::staff_cert`): the user exists and is in good standing;
/// no key needs to be listed.
pub fn authenticate_certified<'p>(
    policy: &'p Policy,
    user: &str,
    source: IpAddr,
    now: OffsetDateTime,
) -> Result<&'p User, Denial> {
    let Some(u) = policy.user(user) else {
        return Err(unknown_user(user));
    };
    check_standing(u, source, now)?;
    Ok(u)
}

fn unknown_user(user: &str) -> Denial {
    denial(
        DenyCode::UnknownUser,
        "unknown user",
        format!("no [[user]] entry named {user:?}"),
    )
}

/// Expiry and the user's own source restriction.
fn check_standing(u: &User, source: IpAddr, now: OffsetDateTime) -> Result<(), Denial> {
    if let Some(exp) = u.expires {
        let today = now.to_offset(time::UtcOffset::UTC).date();
        if exp <= today {
            return Err(denial(
                DenyCode::UserExpired,
                format!("account {} expired on {exp}", u.name),
                format!("user {} expires = {exp}", u.name),
            ));
        }
    }
    let source = canonical(source);
    if !u.allow_from.is_empty() && !u.allow_from.iter().any(|n| n.contains(&source)) {
        return Err(denial(
            DenyCode::SourceNotAllowed,
            format!("connections from {source} are not allowed for {}", u.name),
            format!("user {} allow_from = [{}]", u.name, fmt_nets(&u.allow_from)),
        ));
    }
    Ok(())
}

/// The standing rule that makes `user` eligible for `server`, for a person.
fn standing_rule(server: &Server, user: &User) -> Option<String> {
    server.allow.iter().find_map(|p| {
        let named = match p {
            Principal::User(n) if *n == user.name => format!("user:{n}"),
            Principal::Group(g) if user.groups.contains(g) => format!("group:{g}"),
            _ => return None,
        };
        Some(format!(
            "{} allows {named} ({})",
            server.name, server.origin
        ))
    })
}

fn active_grants<'g>(
    grants: &'g [Grant],
    user: &str,
    server: &str,
    now: OffsetDateTime,
) -> impl Iterator<Item = &'g Grant> {
    grants
        .iter()
        .filter(move |g| g.user == user && g.server == server && g.is_active(now))
}

/// The grant to use among several: the one lasting longest (permanent
/// first), then the oldest, so that the choice is stable.
fn best<'g>(candidates: impl Iterator<Item = &'g Grant>) -> Option<&'g Grant> {
    candidates.min_by(|a, b| {
        let ka = (
            a.expires_at.is_some(),
            std::cmp::Reverse(a.expires_at),
            a.id,
        );
        let kb = (
            b.expires_at.is_some(),
            std::cmp::Reverse(b.expires_at),
            b.id,
        );
        ka.cmp(&kb)
    })
}

/// A grant for a person: `grant #7 (approved by carol, until ...)`.
pub fn grant_rule(g: &Grant) -> String {
    let by = g.approved_by.as_deref().unwrap_or("?");
    match g.expires_at {
        Some(t) => format!("grant #{} (approved by {by}, until {})", g.id, fmt_time(t)),
        None => format!("grant #{} (approved by {by}, permanent)", g.id),
    }
}

/// The decision for one request, without access reviews (steps 1 to 9).
pub fn decide(
    policy: &Policy,
    req: &Request<'_>,
    grants: &[Grant],
    now: OffsetDateTime,
) -> Decision {
    decide_reviewed(policy, req, grants, &ReviewInput::OFF, now)
}

/// The decision for one request, the access review included (step 10):
/// what the server asks at a login.
pub fn decide_reviewed(
    policy: &Policy,
    req: &Request<'_>,
    grants: &[Grant],
    review: &ReviewInput<'_>,
    now: OffsetDateTime,
) -> Decision {
    let decided = decide_inner(policy, req, grants, now)
        .and_then(|a| review::check(req.user, &a, grants, review, now).map(|()| a));
    match decided {
        Ok(a) => Decision::Allow(a),
        Err(d) => Decision::Deny(d),
    }
}

fn decide_inner(
    policy: &Policy,
    req: &Request<'_>,
    grants: &[Grant],
    now: OffsetDateTime,
) -> Result<Allowed, Denial> {
    let source = canonical(req.source);
    let user = policy
        .user(req.user)
        .ok_or_else(|| unknown_user(req.user))?;
    check_standing(user, source, now)?;

    match &req.action {
        Action::AgentForward => {
            return Err(denial(
                DenyCode::AgentForwarding,
                "agent forwarding is not allowed",
                "agent forwarding is always refused",
            ));
        }
        Action::X11Forward => {
            return Err(denial(
                DenyCode::X11Forwarding,
                "X11 forwarding is not allowed",
                "X11 forwarding is always refused",
            ));
        }
        Action::Jump { host, port } => {
            return decide_jump(policy, user, host, *port, source, grants, now);
        }
        Action::Session | Action::LocalForward { .. } | Action::RemoteForward { .. } => {}
    }

    let (server, standing) = eligible_server(policy, req, user, grants, now)?;

    let account = check_account(server, req.account)?;
    let default = server.default_account().unwrap_or(account);

    check_server_source(server, source)?;

    let grant = if needs_grant(server, standing.is_some()) {
        let covering: Vec<&Grant> = active_grants(grants, &user.name, &server.name, now)
            .filter(|g| g.covers_account(account, default) && g.covers_source(source))
            .collect();
        let preferred = match &req.action {
            Action::LocalForward { port, .. } => {
                best(covering.iter().copied().filter(|g| g.covers_port(*port)))
            }
            _ => None,
        };
        match preferred.or_else(|| best(covering.iter().copied())) {
            Some(g) => Some(g),
            None => {
                return Err(grant_required(
                    server,
                    &user.name,
                    account,
                    source,
                    standing.is_some(),
                ));
            }
        }
    } else {
        None
    };

    let rule = match (grant, &standing) {
        (Some(g), Some(s)) => format!("{}; {s}", grant_rule(g)),
        (Some(g), None) => format!("{} for {} ({})", grant_rule(g), server.name, server.origin),
        (None, Some(s)) => s.clone(),
        // Unreachable: eligibility above needs a rule or a grant, and a
        // grant-only user always needs a grant.
        (None, None) => format!("{} ({})", server.name, server.origin),
    };
    let (path, dest, rule) = route(server, &req.action, grant, rule)?;
    Ok(Allowed {
        server: server.name.clone(),
        account: account.to_owned(),
        mode: server.mode,
        grant: grant.map(|g| g.id),
        grant_expires: grant.and_then(|g| g.expires_at),
        path,
        dest,
        rule,
        flagged: server.mode == Mode::Global,
    })
}

/// What [`route`] decides: how the login or forward reaches the target,
/// the destination a forward dials, and the rule that allowed it.
type Routed = (Route, Option<(String, u16)>, String);

/// Steps 4 and 5: the server exists, the user may reach it (a standing
/// rule, returned, or an active grant), and it is not reached through a
/// clone.
fn eligible_server<'p>(
    policy: &'p Policy,
    req: &Request<'_>,
    user: &User,
    grants: &[Grant],
    now: OffsetDateTime,
) -> Result<(&'p Server, Option<String>), Denial> {
    let server = policy.server(req.server).ok_or_else(|| {
        denial(
            DenyCode::AccessDenied,
            ACCESS_DENIED,
            format!("no server named {:?}", req.server),
        )
    })?;
    let standing = standing_rule(server, user);
    let has_grant = active_grants(grants, &user.name, &server.name, now)
        .next()
        .is_some();
    if standing.is_none() && !has_grant {
        return Err(denial(
            DenyCode::AccessDenied,
            ACCESS_DENIED,
            format!(
                "{}'s allow list ({}) names neither {} nor their groups, and {} holds no active grant for it",
                server.name, server.origin, user.name, user.name
            ),
        ));
    }

    if server.mode == Mode::Clone {
        let clone = server.clone.as_deref().unwrap_or("?");
        return Err(denial(
            DenyCode::UseClone,
            format!(
                "{} is reached only through its clone: use {clone}",
                server.name
            ),
            format!(
                "{} mode clone, clone = {clone} ({})",
                server.name, server.origin
            ),
        ));
    }
    Ok((server, standing))
}

/// Step 6: the account asked for (or the server's default) is one of the
/// server's accounts.
fn check_account<'a>(server: &'a Server, requested: Option<&'a str>) -> Result<&'a str, Denial> {
    let account = match requested.or(server.default_account()) {
        Some(a) => a,
        None => {
            return Err(denial(
                DenyCode::AccountNotAllowed,
                format!("{} has no accounts", server.name),
                format!("{} lists no accounts ({})", server.name, server.origin),
            ));
        }
    };
    if !server.accounts.iter().any(|a| a == account) {
        return Err(denial(
            DenyCode::AccountNotAllowed,
            format!("account {account} is not allowed on {}", server.name),
            format!(
                "{} accounts = [{}] ({})",
                server.name,
                server.accounts.join(", "),
                server.origin
            ),
        ));
    }
    Ok(account)
}

/// Step 9: the action against the server's mode.
fn route(
    server: &Server,
    action: &Action,
    grant: Option<&Grant>,
    rule: String,
) -> Result<Routed, Denial> {
    let mode_str = server.mode.as_str();
    match action {
        Action::Session => match server.mode {
            Mode::Desktop | Mode::Clone => Err(denial(
                DenyCode::ModeRefuses,
                format!("{} allows only port forwards (desktop mode)", server.name),
                format!("{} mode {mode_str} ({})", server.name, server.origin),
            )),
            _ => Ok((Route::Session, None, rule)),
        },
        Action::LocalForward { host, port } => local_forward(server, grant, host, *port, rule),
        Action::RemoteForward { .. } => match server.mode {
            Mode::Global => Ok((Route::ThroughSshd, None, rule)),
            _ => Err(denial(
                DenyCode::ModeRefuses,
                format!("remote forwarding is refused for this server's access mode ({mode_str})"),
                format!("{} mode {mode_str} ({})", server.name, server.origin),
            )),
        },
        // Handled before the server lookup.
        Action::Jump { .. } | Action::AgentForward | Action::X11Forward => Err(denial(
            DenyCode::ModeRefuses,
            ACCESS_DENIED,
            "unexpected action",
        )),
    }
}

/// Step 9 for `-L`: the destination is the server itself, and the mode,
/// its ports and the grant allow the port.
fn local_forward(
    server: &Server,
    grant: Option<&Grant>,
    host: &str,
    port: u16,
    rule: String,
) -> Result<Routed, Denial> {
    let mode_str = server.mode.as_str();
    if !is_server_itself(server, host) {
        return Err(denial(
            DenyCode::DestinationNotAllowed,
            format!(
                "forwards from {} may only reach {} itself, not {host}",
                server.name, server.name
            ),
            format!(
                "a forward's destination must be localhost, {} or {}",
                server.name, server.host
            ),
        ));
    }
    let port_denied = |why: String| {
        denial(
            DenyCode::PortNotAllowed,
            format!("port {port} is not open for forwarding on {}", server.name),
            why,
        )
    };
    let grant_covers = grant.is_none_or(|g| g.covers_port(port));
    let in_ports = server.ports.contains(&port);
    let ports_rule = format!(
        "{} mode {mode_str}, ports = [{}] ({})",
        server.name,
        server
            .ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        server.origin
    );
    let path = match server.mode {
        Mode::Vpn | Mode::Clone => {
            return Err(denial(
                DenyCode::ModeRefuses,
                format!("forwarding is not available in {mode_str} mode"),
                format!("{} mode {mode_str} ({})", server.name, server.origin),
            ));
        }
        Mode::Global => Route::Direct,
        Mode::Firewall | Mode::Desktop if in_ports => Route::Direct,
        Mode::SshForwarding if in_ports => Route::ThroughSshd,
        Mode::OnRequest => Route::Direct,
        Mode::Firewall | Mode::Desktop | Mode::SshForwarding => {
            return Err(port_denied(ports_rule));
        }
    };
    if !grant_covers {
        let g = grant.map(grant_rule).unwrap_or_default();
        return Err(port_denied(format!("{g} does not cover port {port}")));
    }
    let dest = match path {
        Route::ThroughSshd => ("127.0.0.1".to_owned(), port),
        _ => (server.host.clone(), port),
    };
    let rule = match server.mode {
        Mode::Global => format!("{rule}; mode global: any port"),
        Mode::OnRequest => format!("{rule}; the grant covers port {port}"),
        _ => format!("{rule}; port {port} in ports"),
    };
    Ok((path, Some(dest), rule))
}

fn needs_grant(server: &Server, standing: bool) -> bool {
    server.mode == Mode::OnRequest || server.require_grant || !standing
}

fn check_server_source(server: &Server, source: IpAddr) -> Result<(), Denial> {
    if !server.allow_from.is_empty() && !server.allow_from.iter().any(|n| n.contains(&source)) {
        return Err(denial(
            DenyCode::SourceNotAllowed,
            format!(
                "connections from {source} are not allowed to {}",
                server.name
            ),
            format!(
                "{} allow_from = [{}] ({})",
                server.name,
                fmt_nets(&server.allow_from),
                server.origin
            ),
        ));
    }
    Ok(())
}

fn grant_required(
    server: &Server,
    user: &str,
    account: &str,
    source: IpAddr,
    standing: bool,
) -> Denial {
    let why = if server.mode == Mode::OnRequest {
        format!("{} mode on-request ({})", server.name, server.origin)
    } else if server.require_grant {
        format!("{} require_grant = true ({})", server.name, server.origin)
    } else if standing {
        format!("{} ({})", server.name, server.origin)
    } else {
        format!(
            "{user} may reach {} ({}) only through a grant",
            server.name, server.origin
        )
    };
    denial(
        DenyCode::GrantRequired,
        format!(
            "{} needs an approved grant: request one with the request command (request {} --for DURATION --reason TEXT)",
            server.name, server.name
        ),
        format!("{why}: no active grant of {user} covers account {account} from {source}"),
    )
}

/// Whether a forward's destination names the server itself.
fn is_server_itself(server: &Server, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ["localhost", "127.0.0.1", "::1"]
        .iter()
        .any(|h| host.eq_ignore_ascii_case(h))
        || host.eq_ignore_ascii_case(&server.name)
        || host.eq_ignore_ascii_case(&server.host)
}

/// `ssh -J`: a direct-tcpip channel on a login without a target.
fn decide_jump(
    policy: &Policy,
    user: &User,
    host: &str,
    port: u16,
    source: IpAddr,
    grants: &[Grant],
    now: OffsetDateTime,
) -> Result<Allowed, Denial> {
    let eligible = |s: &Server| {
        standing_rule(s, user).is_some()
            || active_grants(grants, &user.name, &s.name, now)
                .next()
                .is_some()
    };
    let by_name = policy.server(host).filter(|s| eligible(s));
    let server = by_name.or_else(|| {
        policy.servers.values().find(|s| {
            s.host
                .eq_ignore_ascii_case(host.trim_start_matches('[').trim_end_matches(']'))
                && s.port == port
                && eligible(s)
        })
    });
    let Some(server) = server else {
        return Err(denial(
            DenyCode::AccessDenied,
            ACCESS_DENIED,
            format!(
                "no server {host}:{port} that {} may reach (by name, or by address and port)",
                user.name
            ),
        ));
    };
    let mode_str = server.mode.as_str();
    if server.mode != Mode::Global {
        return Err(denial(
            DenyCode::ModeRefuses,
            format!("ProxyJump is not allowed for this server's access mode ({mode_str})"),
            format!("{} mode {mode_str} ({})", server.name, server.origin),
        ));
    }
    check_server_source(server, source)?;
    let standing = standing_rule(server, user);
    let grant = if needs_grant(server, standing.is_some()) {
        match best(
            active_grants(grants, &user.name, &server.name, now)
                .filter(|g| g.covers_source(source)),
        ) {
            Some(g) => Some(g),
            None => {
                let account = server.default_account().unwrap_or("-");
                return Err(grant_required(
                    server,
                    &user.name,
                    account,
                    source,
                    standing.is_some(),
                ));
            }
        }
    } else {
        None
    };
    let rule = match (grant, standing) {
        (Some(g), _) => format!("{} for {} ({})", grant_rule(g), server.name, server.origin),
        (None, Some(s)) => s,
        (None, None) => format!("{} ({})", server.name, server.origin),
    };
    Ok(Allowed {
        server: server.name.clone(),
        // A jump does not log in to the server as any account: the client
        // authenticates to the target end to end.
        account: String::new(),
        mode: server.mode,
        grant: grant.map(|g| g.id),
        grant_expires: grant.and_then(|g| g.expires_at),
        path: Route::Direct,
        dest: Some((server.host.clone(), port)),
        rule: format!("{rule}; mode global allows ProxyJump"),
        flagged: true,
    })
}

/// Checks an exec command (or a reconstructed interactive line) against the
/// server's `deny_commands` and `allow_commands` globs.
///
/// Deny patterns are matched against the trimmed line and against the line
/// with runs of blanks collapsed (so `rm  -rf /` does not slip past
/// `rm -rf /*`). For exec (`interactive == false`) a non-empty
/// `allow_commands` must match the trimmed line, and a pattern only allows
/// a command holding shell control characters (`;`, `|`, `&`, `$`, ...)
/// when the pattern itself holds each of them.
pub fn check_command(server: &Server, command: &str, interactive: bool) -> Result<(), Denial> {
    let line = command.trim();
    let collapsed = line.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut hits: Vec<usize> = server.deny_globs.matches(line);
    hits.extend(server.deny_globs.matches(&collapsed));
    if let Some(glob) = hits.iter().min().and_then(|i| server.deny_commands.get(*i)) {
        return Err(denial(
            DenyCode::CommandBlocked,
            format!("command blocked by policy: {glob}"),
            format!("{} deny_commands {glob:?} ({})", server.name, server.origin),
        ));
    }
    if interactive || server.allow_commands.is_empty() {
        return Ok(());
    }
    let controls: Vec<char> = line.chars().filter(|c| SHELL_CONTROL.contains(c)).collect();
    let allowed = server
        .allow_globs
        .matches(line)
        .iter()
        .filter_map(|i| server.allow_commands.get(*i))
        .any(|pattern| controls.iter().all(|c| pattern.contains(*c)));
    if allowed {
        Ok(())
    } else {
        Err(denial(
            DenyCode::CommandBlocked,
            "command not in the server's allow list",
            format!(
                "no pattern of {} allow_commands ({}) matches the command",
                server.name, server.origin
            ),
        ))
    }
}

/// A shell or a subsystem (`what`: `"a shell"`, `"subsystem sftp"`) on a
/// server that sets `allow_commands`: refused. Such a server runs only the
/// commands its list names, and a shell or an SFTP session would run
/// anything, past the list (fail closed). Without the list: allowed.
pub fn check_open_session(server: &Server, what: &str) -> Result<(), Denial> {
    if server.allow_commands.is_empty() {
        return Ok(());
    }
    Err(denial(
        DenyCode::CommandBlocked,
        format!("{what} is not allowed: this server runs only the commands of its allow list"),
        format!(
            "{} allow_commands ({}) is set: exec commands only",
            server.name, server.origin
        ),
    ))
}

/// Whether a session as `account` on `server` must be recorded.
///
/// A glob that does not compile counts as matching: recording too much is
/// the safe side.
pub fn should_record(server: &Server, account: &str, privileged_globs: &[String]) -> bool {
    match server.record {
        RecordMode::Always => true,
        RecordMode::Never => false,
        RecordMode::Privileged => privileged_globs.iter().any(|g| match command_glob(g) {
            Ok(glob) => glob.compile_matcher().is_match(account),
            Err(_) => true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use time::macros::datetime;

    use super::*;
    use crate::grant_types::GrantState;
    use crate::policy::Policy;

    const ALICE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDzXhOm/CKaSOWAp/1cSJfYiJiaPNkrM2OFPyrc4A1yR alice@laptop";
    const BOB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHjOZyM6GB2D9P69i7SbNU2u6oAidpC5wDIB1O6Afy/E bob@laptop";
    const FP: &str = "SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM";
    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    fn policy() -> Policy {
        let users = format!(
            r#"
[[user]]
name = "alice"
keys = ["{ALICE}"]
groups = ["ops"]
roles = ["approver"]

[[user]]
name = "bob"
keys = ["{BOB}"]
groups = ["support"]

[[user]]
name = "carol"
keys = []
groups = ["support"]
expires = "2026-03-01"

[[user]]
name = "dave"
keys = []
groups = ["support"]
allow_from = ["192.0.2.0/24"]

[[user]]
name = "eve"
keys = []
"#
        );
        let server = |name: &str, n: u8, mode: &str, extra: &str| {
            format!(
                "[[server]]\nname = \"{name}\"\naddress = \"10.0.0.{n}:22\"\nhost_key = \"{FP}\"\nmode = \"{mode}\"\naccounts = [\"root\", \"admin\"]\nallow = [\"group:support\"]\n{extra}\n"
            )
        };
        let servers = [
            server("g", 1, "global", ""),
            server(
                "fw",
                2,
                "firewall",
                "ports = [5432]\nallow_from = [\"10.0.0.0/8\", \"192.0.2.0/24\"]",
            ),
            server("sf", 3, "ssh-forwarding", "ports = [1521, 80]"),
            server("vpn", 4, "vpn", "via = \"sf\"\nports = [1521]"),
            server("or", 5, "on-request", "")
                .replace("\"root\", \"admin\"", "\"oracle\", \"root\""),
            server("desk", 6, "desktop", "ports = [3389]"),
            server("cl", 7, "clone", "clone = \"sf\""),
            server("secret", 8, "ssh-forwarding", "").replace("group:support", "user:alice"),
            server(
                "rg",
                9,
                "ssh-forwarding",
                "require_grant = true\nports = [80]",
            ),
            server("lan", 10, "firewall", "allow_from = [\"192.0.2.0/24\"]"),
        ]
        .concat();
        Policy::from_sources(&[
            (PathBuf::from("users.toml"), users),
            (PathBuf::from("servers.toml"), servers),
        ])
        .unwrap()
    }

    fn grant(id: i64, user: &str, server: &str) -> Grant {
        Grant {
            id,
            user: user.into(),
            server: server.into(),
            accounts: vec![],
            ports: vec![1521],
            from: vec![],
            reason: "TICKET-1".into(),
            state: GrantState::Approved,
            requested_by: user.into(),
            approved_by: Some("alice".into()),
            decided_by: Some("alice".into()),
            decision_note: None,
            requested_at: datetime!(2026-03-01 10:00 UTC),
            decided_at: Some(datetime!(2026-03-01 10:05 UTC)),
            duration_secs: Some(7200),
            expires_at: Some(datetime!(2026-03-01 12:05 UTC)),
        }
    }

    fn src(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ask(
        user: &str,
        server: &str,
        account: Option<&str>,
        action: Action,
        grants: &[Grant],
    ) -> Decision {
        let req = Request {
            user,
            server,
            account,
            source: src("10.1.2.3"),
            action,
        };
        decide(&policy(), &req, grants, NOW)
    }

    fn fwd(host: &str, port: u16) -> Action {
        Action::LocalForward {
            host: host.into(),
            port,
        }
    }

    fn denied(d: &Decision) -> Option<DenyCode> {
        match d {
            Decision::Deny(d) => Some(d.code),
            Decision::Allow(_) => None,
        }
    }

    fn allowed(d: Decision) -> Allowed {
        match d {
            Decision::Allow(a) => a,
            Decision::Deny(d) => panic!("expected allow, got {d:?}"),
        }
    }

    fn reason(d: Decision) -> String {
        match d {
            Decision::Deny(d) => d.reason,
            Decision::Allow(a) => panic!("expected deny, got {a:?}"),
        }
    }

    /// Expected outcome of one cell of the contract's table.
    #[derive(Debug, PartialEq)]
    enum Want {
        Allow(Route),
        Deny(DenyCode),
    }
    use Want::{Allow, Deny};

    #[test]
    fn mode_action_table() {
        let grants = [grant(1, "bob", "or")];
        let session = Action::Session;
        let remote = Action::RemoteForward { port: 8080 };
        let rows: Vec<(&str, Action, Want)> = vec![
            ("g", session.clone(), Allow(Route::Session)),
            ("fw", session.clone(), Allow(Route::Session)),
            ("sf", session.clone(), Allow(Route::Session)),
            ("vpn", session.clone(), Allow(Route::Session)),
            ("or", session.clone(), Allow(Route::Session)),
            ("desk", session.clone(), Deny(DenyCode::ModeRefuses)),
            ("cl", session.clone(), Deny(DenyCode::UseClone)),
            ("g", fwd("localhost", 9999), Allow(Route::Direct)),
            ("fw", fwd("localhost", 5432), Allow(Route::Direct)),
            ("fw", fwd("localhost", 22), Deny(DenyCode::PortNotAllowed)),
            ("sf", fwd("localhost", 1521), Allow(Route::ThroughSshd)),
            ("sf", fwd("localhost", 22), Deny(DenyCode::PortNotAllowed)),
            ("vpn", fwd("localhost", 1521), Deny(DenyCode::ModeRefuses)),
            ("or", fwd("localhost", 1521), Allow(Route::Direct)),
            ("or", fwd("localhost", 22), Deny(DenyCode::PortNotAllowed)),
            ("desk", fwd("localhost", 3389), Allow(Route::Direct)),
            ("desk", fwd("localhost", 22), Deny(DenyCode::PortNotAllowed)),
            ("cl", fwd("localhost", 22), Deny(DenyCode::UseClone)),
            ("g", remote.clone(), Allow(Route::ThroughSshd)),
            ("fw", remote.clone(), Deny(DenyCode::ModeRefuses)),
            ("sf", remote.clone(), Deny(DenyCode::ModeRefuses)),
            ("vpn", remote.clone(), Deny(DenyCode::ModeRefuses)),
            ("or", remote.clone(), Deny(DenyCode::ModeRefuses)),
            ("desk", remote.clone(), Deny(DenyCode::ModeRefuses)),
            ("cl", remote.clone(), Deny(DenyCode::UseClone)),
            ("g", Action::AgentForward, Deny(DenyCode::AgentForwarding)),
            ("sf", Action::X11Forward, Deny(DenyCode::X11Forwarding)),
            (
                "nope",
                Action::AgentForward,
                Deny(DenyCode::AgentForwarding),
            ),
        ];
        for (server, action, want) in rows {
            let got = match ask("bob", server, None, action.clone(), &grants) {
                Decision::Allow(a) => Allow(a.path),
                Decision::Deny(d) => Deny(d.code),
            };
            assert_eq!(got, want, "{server} {action:?}");
        }
    }

    #[test]
    fn jump_table() {
        let jump = |host: &str, port: u16| Action::Jump {
            host: host.into(),
            port,
        };
        let a = allowed(ask("bob", "", None, jump("g", 22), &[]));
        assert_eq!(a.server, "g");
        assert_eq!(a.path, Route::Direct);
        assert_eq!(a.dest, Some(("10.0.0.1".into(), 22)));
        assert!(a.flagged);
        let a = allowed(ask("bob", "", None, jump("10.0.0.1", 22), &[]));
        assert_eq!(a.server, "g");
        for (host, port, code) in [
            ("sf", 22, DenyCode::ModeRefuses),
            ("10.0.0.3", 22, DenyCode::ModeRefuses),
            ("10.0.0.1", 2222, DenyCode::AccessDenied),
            ("10.9.9.9", 22, DenyCode::AccessDenied),
            ("secret", 22, DenyCode::AccessDenied),
        ] {
            assert_eq!(
                denied(&ask("bob", "", None, jump(host, port), &[])),
                Some(code),
                "{host}"
            );
        }
        assert_eq!(
            reason(ask("bob", "", None, jump("sf", 22), &[])),
            "ProxyJump is not allowed for this server's access mode (ssh-forwarding)"
        );
        assert_eq!(
            reason(ask("bob", "", None, jump("secret", 22), &[])),
            ACCESS_DENIED
        );
        assert_eq!(
            reason(ask("bob", "", None, jump("nowhere", 22), &[])),
            ACCESS_DENIED
        );
    }

    #[test]
    fn unknown_and_forbidden_servers_look_the_same() {
        let unknown = ask("bob", "nope", None, Action::Session, &[]);
        let forbidden = ask("bob", "secret", None, Action::Session, &[]);
        assert_eq!(denied(&unknown), Some(DenyCode::AccessDenied));
        assert_eq!(denied(&forbidden), Some(DenyCode::AccessDenied));
        assert_eq!(reason(unknown), ACCESS_DENIED);
        assert_eq!(reason(forbidden), ACCESS_DENIED);
        // Forwards and accounts do not leak it either.
        let unknown = ask("bob", "nope", Some("root"), fwd("localhost", 1521), &[]);
        let forbidden = ask("bob", "secret", Some("zzz"), fwd("localhost", 1521), &[]);
        assert_eq!(reason(unknown), reason(forbidden));
        allowed(ask("alice", "secret", None, Action::Session, &[]));
    }

    #[test]
    fn reasons_for_a_person() {
        assert_eq!(
            reason(ask("bob", "cl", None, Action::Session, &[])),
            "cl is reached only through its clone: use sf"
        );
        assert_eq!(
            reason(ask("bob", "desk", None, Action::Session, &[])),
            "desk allows only port forwards (desktop mode)"
        );
        assert_eq!(
            reason(ask("bob", "sf", Some("postgres"), Action::Session, &[])),
            "account postgres is not allowed on sf"
        );
        assert_eq!(
            reason(ask("bob", "sf", None, fwd("localhost", 22), &[])),
            "port 22 is not open for forwarding on sf"
        );
        assert_eq!(
            reason(ask("bob", "vpn", None, fwd("localhost", 1521), &[])),
            "forwarding is not available in vpn mode"
        );
        assert_eq!(
            reason(ask(
                "bob",
                "sf",
                None,
                Action::RemoteForward { port: 80 },
                &[]
            )),
            "remote forwarding is refused for this server's access mode (ssh-forwarding)"
        );
        let r = reason(ask("bob", "or", None, Action::Session, &[]));
        assert!(
            r.starts_with("or needs an approved grant: request one with the request command"),
            "{r}"
        );
        let a = allowed(ask("bob", "sf", None, Action::Session, &[]));
        assert_eq!(a.rule, "sf allows group:support (servers.toml:18)");
        assert_eq!(a.account, "root");
        assert!(!a.flagged);
        assert!(allowed(ask("bob", "g", None, Action::Session, &[])).flagged);
    }

    #[test]
    fn destination_must_be_the_server_itself() {
        for host in ["localhost", "127.0.0.1", "::1", "sf", "SF", "10.0.0.3"] {
            let a = allowed(ask("bob", "sf", None, fwd(host, 80), &[]));
            assert_eq!(a.dest, Some(("127.0.0.1".into(), 80)), "{host}");
        }
        let a = allowed(ask("bob", "fw", None, fwd("fw", 5432), &[]));
        assert_eq!(a.dest, Some(("10.0.0.2".into(), 5432)));
        for host in ["10.0.0.4", "db.example", "g"] {
            assert_eq!(
                denied(&ask("bob", "sf", None, fwd(host, 80), &[])),
                Some(DenyCode::DestinationNotAllowed),
                "{host}"
            );
        }
    }

    #[test]
    fn grants_in_other_states_authorize_nothing() {
        for state in [
            GrantState::Pending,
            GrantState::Denied,
            GrantState::Expired,
            GrantState::Revoked,
        ] {
            let mut g = grant(1, "bob", "or");
            g.state = state;
            assert_eq!(
                denied(&ask("bob", "or", None, Action::Session, &[g])),
                Some(DenyCode::GrantRequired),
                "{state:?}"
            );
        }
        let mut g = grant(1, "bob", "or");
        g.expires_at = Some(NOW);
        assert_eq!(
            denied(&ask("bob", "or", None, Action::Session, &[g])),
            Some(DenyCode::GrantRequired)
        );
        // Someone else's grant, or a grant for another server.
        let others = [grant(1, "alice", "or"), grant(2, "bob", "sf")];
        assert_eq!(
            denied(&ask("bob", "or", None, Action::Session, &others)),
            Some(DenyCode::GrantRequired)
        );
    }

    #[test]
    fn grant_scope() {
        let g = grant(7, "bob", "or");
        let a = allowed(ask(
            "bob",
            "or",
            None,
            Action::Session,
            std::slice::from_ref(&g),
        ));
        assert_eq!(a.grant, Some(7));
        assert_eq!(a.grant_expires, g.expires_at);
        assert_eq!(a.account, "oracle");
        assert!(
            a.rule
                .starts_with("grant #7 (approved by alice, until 2026-03-01T12:05:00Z)"),
            "{}",
            a.rule
        );
        // A grant for port 1521 does not open 22.
        assert_eq!(
            denied(&ask(
                "bob",
                "or",
                None,
                fwd("localhost", 22),
                std::slice::from_ref(&g)
            )),
            Some(DenyCode::PortNotAllowed)
        );
        // No accounts listed: only the default account.
        assert_eq!(
            denied(&ask(
                "bob",
                "or",
                Some("root"),
                Action::Session,
                std::slice::from_ref(&g)
            )),
            Some(DenyCode::GrantRequired)
        );
        let mut root = grant(8, "bob", "or");
        root.accounts = vec!["root".into()];
        let a = allowed(ask(
            "bob",
            "or",
            Some("root"),
            Action::Session,
            &[g.clone(), root.clone()],
        ));
        assert_eq!(a.grant, Some(8));
        assert_eq!(
            denied(&ask(
                "bob",
                "or",
                None,
                Action::Session,
                std::slice::from_ref(&root)
            )),
            Some(DenyCode::GrantRequired)
        );
        // The grant's source CIDRs apply.
        let mut lan = grant(9, "bob", "or");
        lan.from = vec!["192.0.2.0/24".parse().unwrap()];
        assert_eq!(
            denied(&ask(
                "bob",
                "or",
                None,
                Action::Session,
                std::slice::from_ref(&lan)
            )),
            Some(DenyCode::GrantRequired)
        );
        // The longest-lasting covering grant is the one used.
        let mut long = grant(10, "bob", "or");
        long.expires_at = Some(datetime!(2026-03-02 00:00 UTC));
        let a = allowed(ask("bob", "or", None, Action::Session, &[g.clone(), long]));
        assert_eq!(a.grant, Some(10));
        // A forward picks the grant that covers its port.
        let mut web = grant(11, "bob", "or");
        web.ports = vec![80];
        web.expires_at = None;
        let a = allowed(ask(
            "bob",
            "or",
            None,
            fwd("localhost", 1521),
            &[web.clone(), g.clone()],
        ));
        assert_eq!(a.grant, Some(7));
    }

    #[test]
    fn require_grant_and_grant_only_eligibility() {
        assert_eq!(
            denied(&ask("bob", "rg", None, Action::Session, &[])),
            Some(DenyCode::GrantRequired)
        );
        let mut g = grant(3, "bob", "rg");
        g.ports = vec![80];
        allowed(ask(
            "bob",
            "rg",
            None,
            Action::Session,
            std::slice::from_ref(&g),
        ));
        allowed(ask(
            "bob",
            "rg",
            None,
            fwd("localhost", 80),
            std::slice::from_ref(&g),
        ));
        // eve is in no allow list: an active grant makes her eligible, and
        // its scope then applies.
        assert_eq!(
            denied(&ask("eve", "sf", None, Action::Session, &[])),
            Some(DenyCode::AccessDenied)
        );
        let g = grant(4, "eve", "sf");
        let a = allowed(ask(
            "eve",
            "sf",
            None,
            Action::Session,
            std::slice::from_ref(&g),
        ));
        assert_eq!(a.grant, Some(4));
        assert_eq!(
            denied(&ask(
                "eve",
                "sf",
                Some("admin"),
                Action::Session,
                std::slice::from_ref(&g)
            )),
            Some(DenyCode::GrantRequired)
        );
        assert_eq!(
            denied(&ask(
                "eve",
                "sf",
                None,
                fwd("localhost", 80),
                std::slice::from_ref(&g)
            )),
            Some(DenyCode::PortNotAllowed)
        );
    }

    #[test]
    fn users_expire_and_sources_are_restricted() {
        assert_eq!(
            denied(&ask("carol", "sf", None, Action::Session, &[])),
            Some(DenyCode::UserExpired)
        );
        let req = Request {
            user: "carol",
            server: "sf",
            account: None,
            source: src("10.1.2.3"),
            action: Action::Session,
        };
        let p = policy();
        assert!(matches!(
            decide(&p, &req, &[], datetime!(2026-02-28 23:59 UTC)),
            Decision::Allow(_)
        ));
        assert_eq!(
            denied(&ask("nobody", "sf", None, Action::Session, &[])),
            Some(DenyCode::UnknownUser)
        );

        let from = |user: &'static str, server: &'static str, ip: &str| Request {
            user,
            server,
            account: None,
            source: src(ip),
            action: Action::Session,
        };
        assert_eq!(
            denied(&decide(&p, &from("dave", "sf", "10.1.2.3"), &[], NOW)),
            Some(DenyCode::SourceNotAllowed)
        );
        assert_eq!(
            denied(&decide(&p, &from("dave", "sf", "192.0.2.5"), &[], NOW)),
            None
        );
        assert_eq!(
            denied(&decide(
                &p,
                &from("dave", "sf", "::ffff:192.0.2.5"),
                &[],
                NOW
            )),
            None
        );
        // Firewall: only from the server's allow_from.
        assert_eq!(
            denied(&decide(&p, &from("bob", "lan", "10.1.2.3"), &[], NOW)),
            Some(DenyCode::SourceNotAllowed)
        );
        assert_eq!(
            denied(&decide(&p, &from("bob", "lan", "192.0.2.9"), &[], NOW)),
            None
        );
    }

    #[test]
    fn authentication() {
        let p = policy();
        let bob = russh::keys::PublicKey::from_openssh(BOB).unwrap();
        let bob_other_comment =
            russh::keys::PublicKey::from_openssh(&BOB.replace("bob@laptop", "elsewhere")).unwrap();
        let alice = russh::keys::PublicKey::from_openssh(ALICE).unwrap();
        let any = src("10.1.2.3");
        assert_eq!(authenticate(&p, "bob", &bob, any, NOW).unwrap().name, "bob");
        assert!(authenticate(&p, "bob", &bob_other_comment, any, NOW).is_ok());
        let code = |r: Result<&User, Denial>| r.err().map(|d| d.code);
        assert_eq!(
            code(authenticate(&p, "bob", &alice, any, NOW)),
            Some(DenyCode::KeyNotAllowed)
        );
        assert_eq!(
            code(authenticate(&p, "zed", &bob, any, NOW)),
            Some(DenyCode::UnknownUser)
        );

        let dir = format!(
            "[[user]]\nname = \"bob\"\nkeys = [\"{BOB}\"]\nexpires = \"2026-03-02\"\nallow_from = [\"192.0.2.0/24\"]\n"
        );
        let p = Policy::from_sources(&[(PathBuf::from("u.toml"), dir)]).unwrap();
        let lan = src("192.0.2.1");
        assert!(authenticate(&p, "bob", &bob, lan, NOW).is_ok());
        assert_eq!(
            code(authenticate(&p, "bob", &bob, any, NOW)),
            Some(DenyCode::SourceNotAllowed)
        );
        let later = datetime!(2026-03-02 00:00 UTC);
        assert_eq!(
            code(authenticate(&p, "bob", &bob, lan, later)),
            Some(DenyCode::UserExpired)
        );
    }

    fn command_server(deny: &str, allow: &str) -> Server {
        let text = format!(
            "[[server]]\nname = \"s\"\naddress = \"h\"\nhost_key = \"{FP}\"\nmode = \"global\"\naccounts = [\"root\"]\ndeny_commands = {deny}\nallow_commands = {allow}\n"
        );
        let p = Policy::from_sources(&[(PathBuf::from("s.toml"), text)]).unwrap();
        p.server("s").unwrap().clone()
    }

    #[test]
    fn commands() {
        let s = command_server(r#"["rm -rf /*", "shutdown*", "reboot*"]"#, "[]");
        let blocked =
            |c: &str, interactive| check_command(&s, c, interactive).err().map(|d| d.reason);
        assert_eq!(
            blocked("rm -rf /var/lib", false).as_deref(),
            Some("command blocked by policy: rm -rf /*")
        );
        assert_eq!(
            blocked("  rm -rf /  ", true).as_deref(),
            Some("command blocked by policy: rm -rf /*")
        );
        assert_eq!(
            blocked("rm   -rf  /x", true).as_deref(),
            Some("command blocked by policy: rm -rf /*")
        );
        assert_eq!(
            blocked("shutdown -h now", false).as_deref(),
            Some("command blocked by policy: shutdown*")
        );
        assert_eq!(blocked("echo shutdown", false), None);
        assert_eq!(blocked("ls /", false), None);

        let s = command_server(
            r#"["passwd*"]"#,
            r#"["ls*", "systemctl status *", "tail -f /var/log/*"]"#,
        );
        let blocked =
            |c: &str, interactive| check_command(&s, c, interactive).err().map(|d| d.reason);
        assert_eq!(blocked("ls -la /etc", false), None);
        assert_eq!(blocked("systemctl status nginx", false), None);
        let not_listed = Some("command not in the server's allow list".to_owned());
        assert_eq!(blocked("cat /etc/shadow", false), not_listed);
        assert_eq!(blocked("systemctl status x; rm -rf /", false), not_listed);
        assert_eq!(blocked("ls $(rm -rf /)", false), not_listed);
        assert_eq!(blocked("ls | sh", false), not_listed);
        // Interactive lines are held only against the deny list.
        assert_eq!(blocked("cat /etc/shadow", true), None);
        assert_eq!(
            blocked("passwd root", true).as_deref(),
            Some("command blocked by policy: passwd*")
        );
    }

    #[test]
    fn allow_commands_refuse_shells_and_subsystems() {
        let listed = command_server("[]", r#"["ls*"]"#);
        let d = check_open_session(&listed, "a shell").unwrap_err();
        assert_eq!(d.code, DenyCode::CommandBlocked);
        assert_eq!(
            d.reason,
            "a shell is not allowed: this server runs only the commands of its allow list"
        );
        assert!(check_open_session(&listed, "subsystem sftp").is_err());
        let open = command_server(r#"["rm*"]"#, "[]");
        assert!(check_open_session(&open, "a shell").is_ok());
        assert!(check_open_session(&open, "subsystem sftp").is_ok());
    }

    #[test]
    fn recording() {
        let text = format!(
            "[[server]]\nname = \"a\"\naddress = \"h\"\nhost_key = \"{FP}\"\nmode = \"global\"\naccounts = [\"root\"]\nrecord = \"always\"\n\
             [[server]]\nname = \"n\"\naddress = \"h\"\nhost_key = \"{FP}\"\nmode = \"global\"\naccounts = [\"root\"]\nrecord = \"never\"\n\
             [[server]]\nname = \"p\"\naddress = \"h\"\nhost_key = \"{FP}\"\nmode = \"global\"\naccounts = [\"root\"]\n"
        );
        let p = Policy::from_sources(&[(PathBuf::from("s.toml"), text)]).unwrap();
        let globs = vec!["root".to_owned(), "ora*".to_owned()];
        let rec = |s: &str, acct: &str| should_record(p.server(s).unwrap(), acct, &globs);
        assert!(rec("a", "www"));
        assert!(!rec("n", "root"));
        assert!(rec("p", "root"));
        assert!(rec("p", "oracle"));
        assert!(!rec("p", "www"));
        assert!(!rec("p", "xroot"));
        assert!(should_record(
            p.server("p").unwrap(),
            "www",
            &["[bad".to_owned()]
        ));
    }

    #[test]
    fn reachable_lists_entitlements() {
        let p = policy();
        let list = reachable(&p, "bob", &[], NOW);
        let names: Vec<&str> = list.iter().map(|r| r.server.as_str()).collect();
        assert_eq!(
            names,
            vec!["cl", "desk", "fw", "g", "lan", "or", "rg", "sf", "vpn"]
        );
        let get = |l: &[Reach], n: &str| l.iter().find(|r| r.server == n).cloned().unwrap();
        let sf = get(&list, "sf");
        assert_eq!(sf.accounts, vec!["root", "admin"]);
        assert_eq!(sf.ports, vec![1521, 80]);
        assert_eq!(
            sf.policy.as_deref(),
            Some("sf allows group:support (servers.toml:18)")
        );
        assert!(!sf.needs_grant && !sf.flagged);
        let g = get(&list, "g");
        assert!(g.any_port && g.flagged);
        let or = get(&list, "or");
        assert!(or.needs_grant && or.accounts.is_empty());
        assert_eq!(get(&list, "cl").use_instead.as_deref(), Some("sf"));
        assert_eq!(get(&list, "vpn").via.as_deref(), Some("sf"));
        assert!(get(&list, "vpn").ports.is_empty());

        let mut pending = grant(2, "bob", "or");
        pending.state = GrantState::Pending;
        let list = reachable(&p, "bob", &[grant(1, "bob", "or"), pending], NOW);
        let or = get(&list, "or");
        assert!(!or.needs_grant);
        assert_eq!(or.accounts, vec!["oracle"]);
        assert_eq!(or.ports, vec![1521]);
        assert_eq!(or.grants.len(), 1);
        assert_eq!(or.grants[0].until, Some(datetime!(2026-03-01 12:05 UTC)));

        let line = or.line();
        assert!(line.starts_with("or "), "{line}");
        assert!(line.contains(" on-request "), "{line}");
        assert!(line.contains(" oracle "), "{line}");
        assert!(
            line.ends_with("policy; grant #1 until 2026-03-01T12:05:00Z"),
            "{line}"
        );
        assert!(get(&list, "g").line().contains(" any "));

        assert!(reachable(&p, "eve", &[], NOW).is_empty());
        let eve = reachable(&p, "eve", &[grant(5, "eve", "sf")], NOW);
        assert_eq!(eve.len(), 1);
        assert_eq!(eve[0].accounts, vec!["root"]);
        assert_eq!(eve[0].ports, vec![1521]);
        assert!(eve[0].policy.is_none());
        assert!(reachable(&p, "carol", &[], NOW).is_empty());
        assert!(reachable(&p, "nobody", &[], NOW).is_empty());
    }
}
