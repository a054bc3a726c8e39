//! The grant workflow over the store: request, approve, deny, revoke,
//! list, each audited. Shared by SSH command mode and `gatehouse grant`.
//! The rules themselves (four eyes, activity) are the pure functions in
//! the parent module.

use std::time::Duration;

use ipnet::IpNet;
use time::OffsetDateTime;

use super::{Grant, GrantRefusal, GrantState, check_decide, check_revoke};
use crate::audit::{AuditEvent, EventKind};
use crate::policy::{Mode, Policy, Principal, Role};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// A refusal the actor should read (exit 1).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Rule(#[from] GrantRefusal),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// A request as typed: `request SERVER [--account A] [--ports P,..]
/// [--from CIDR,..] (--for DURATION | --permanent) --reason TEXT`.
#[derive(Debug, Clone, Default)]
pub struct NewRequest {
    pub user: String,
    pub server: String,
    pub accounts: Vec<String>,
    pub ports: Vec<u16>,
    pub from: Vec<IpNet>,
    pub duration: Option<Duration>,
    pub permanent: bool,
    pub reason: String,
}

/// Longest grant one may request (a year): longer is `--permanent`.
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Longest `--reason` (request) or deny note, in characters. A longer one
/// is refused, never cut: the ticket number often stands at its end.
pub const MAX_REASON: usize = 500;

/// The one answer for a server that does not exist and one the user may
/// not ask a grant for (contract section 5: never reveal which).
pub const NOT_REQUESTABLE: &str = "no such server, or no grant can be requested for it";

/// Who may ask a grant for what: a staff member may request one only for a
/// server whose `allow` list names them or one of their groups (and that
/// is not a `clone`, which nothing opens). Everything else, unknown
/// servers included, gets [`NOT_REQUESTABLE`].
pub fn requestable(policy: &Policy, user: &str, server: &str) -> bool {
    let (Some(u), Some(s)) = (policy.user(user), policy.server(server)) else {
        return false;
    };
    s.mode != Mode::Clone
        && s.allow.iter().any(|p| match p {
            Principal::User(n) => *n == u.name,
            Principal::Group(g) => u.groups.contains(g),
        })
}

/// Refuses an over-long reason or note, saying the limit.
fn check_length(what: &str, text: &str) -> Result<(), FlowError> {
    let n = text.chars().count();
    if n > MAX_REASON {
        return Err(FlowError::Refused(format!(
            "{what} is too long ({n} characters; at most {MAX_REASON})"
        )));
    }
    Ok(())
}

fn event(kind: EventKind, actor: &str, g: &Grant) -> AuditEvent {
    AuditEvent::new(kind)
        .user(actor)
        .server(&g.server)
        .detail("grant", g.id)
        .detail("for", g.user.clone())
        .detail("accounts", g.accounts.clone())
        .detail("ports", g.ports.clone())
        .detail(
            "from",
            g.from.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .detail("reason", g.reason.clone())
        .detail("state", g.state.as_str())
}

/// Validates a request against the policy (the user may ask for this
/// server, see [`requestable`]; the accounts are its own; the reason is
/// given and not over [`MAX_REASON`]) and stores it pending.
pub async fn request(
    store: &Store,
    policy: &Policy,
    req: NewRequest,
    source: Option<&str>,
    now: OffsetDateTime,
) -> Result<Grant, FlowError> {
    if policy.user(&req.user).is_none() {
        return Err(FlowError::Refused(format!("unknown user {}", req.user)));
    }
    // Decided first, before anything that depends on the server, so that
    // an unknown server and one the user may not ask for answer alike.
    let server = match policy.server(&req.server) {
        Some(s) if requestable(policy, &req.user, &s.name) => s,
        _ => return Err(FlowError::Refused(NOT_REQUESTABLE.into())),
    };
    if req.reason.trim().is_empty() {
        return Err(FlowError::Refused(
            "a reason (the ticket) is required: --reason TEXT".into(),
        ));
    }
    check_length("the reason", &req.reason)?;
    if req.permanent == req.duration.is_some() {
        return Err(FlowError::Refused(
            "give exactly one of --for DURATION or --permanent".into(),
        ));
    }
    if let Some(d) = req.duration
        && (d.is_zero() || d > MAX_DURATION)
    {
        return Err(FlowError::Refused(
            "--for must be between 1s and 366d".into(),
        ));
    }
    for a in &req.accounts {
        if !server.accounts.iter().any(|x| x == a) {
            return Err(FlowError::Refused(format!(
                "account {a} is not an account of {}",
                server.name
            )));
        }
    }
    let accounts = if req.accounts.is_empty() {
        server
            .default_account()
            .map(|a| vec![a.to_string()])
            .unwrap_or_default()
    } else {
        req.accounts
    };
    let mut g = Grant {
        id: 0,
        user: req.user.clone(),
        server: server.name.clone(),
        accounts,
        ports: req.ports,
        from: req.from,
        reason: req.reason,
        state: GrantState::Pending,
        requested_by: req.user,
        approved_by: None,
        decided_by: None,
        decision_note: None,
        requested_at: now,
        decided_at: None,
        duration_secs: req
            .duration
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        expires_at: None,
    };
    g.id = store.grant_insert(&g).await?;
    let mut ev = event(EventKind::GrantRequested, &g.requested_by, &g)
        .detail("duration_secs", g.duration_secs);
    if let Some(s) = source {
        ev = ev.source(s);
    }
    store.audit(&ev).await?;
    Ok(g)
}

fn is_approver(policy: &Policy, actor: &str) -> bool {
    policy
        .user(actor)
        .is_some_and(|u| u.has_role(Role::Approver))
}

async fn load(store: &Store, id: i64) -> Result<Grant, FlowError> {
    store
        .grant_get(id)
        .await?
        .ok_or(FlowError::Rule(GrantRefusal::NotFound(id)))
}

pub async fn approve(
    store: &Store,
    policy: &Policy,
    id: i64,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Grant, FlowError> {
    let mut g = load(store, id).await?;
    check_decide(&g, actor, is_approver(policy, actor))?;
    g.state = GrantState::Approved;
    g.approved_by = Some(actor.to_string());
    g.decided_by = Some(actor.to_string());
    g.decided_at = Some(now);
    g.expires_at = g.duration_secs.map(|s| now + time::Duration::seconds(s));
    store.grant_update(&g).await?;
    store
        .audit(
            &event(EventKind::GrantApproved, actor, &g)
                .detail("expires_at", g.expires_at.map(rfc3339)),
        )
        .await?;
    Ok(g)
}

pub async fn deny(
    store: &Store,
    policy: &Policy,
    id: i64,
    actor: &str,
    note: Option<String>,
    now: OffsetDateTime,
) -> Result<Grant, FlowError> {
    if let Some(n) = &note {
        check_length("the note (--reason)", n)?;
    }
    let mut g = load(store, id).await?;
    check_decide(&g, actor, is_approver(policy, actor))?;
    g.state = GrantState::Denied;
    g.decided_by = Some(actor.to_string());
    g.decided_at = Some(now);
    g.decision_note = note;
    store.grant_update(&g).await?;
    store
        .audit(&event(EventKind::GrantDenied, actor, &g).detail("note", g.decision_note.clone()))
        .await?;
    Ok(g)
}

pub async fn revoke(
    store: &Store,
    policy: &Policy,
    id: i64,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Grant, FlowError> {
    let mut g = load(store, id).await?;
    check_revoke(&g, actor, is_approver(policy, actor), now)?;
    g.state = GrantState::Revoked;
    g.decided_by = Some(actor.to_string());
    g.decided_at = Some(now);
    store.grant_update(&g).await?;
    store
        .audit(&event(EventKind::GrantRevoked, actor, &g))
        .await?;
    Ok(g)
}

/// Grants `actor` may see: their own; approvers and auditors see all.
pub async fn visible(store: &Store, policy: &Policy, actor: &str) -> Result<Vec<Grant>, FlowError> {
    let all = policy.user(actor).is_some_and(|u| {
        u.has_role(Role::Approver) || u.has_role(Role::Auditor) || u.has_role(Role::Admin)
    });
    Ok(if all {
        store.grants_list(None).await?
    } else {
        store.grants_list(Some(actor)).await?
    })
}

/// Marks approved grants past their expiry as expired and audits each.
pub async fn expire_due(store: &Store, now: OffsetDateTime) -> Result<Vec<Grant>, FlowError> {
    let expired = store.grants_expire_due(now).await?;
    for g in &expired {
        store
            .audit(&event(EventKind::GrantExpired, "gatehouse", g))
            .await?;
    }
    Ok(expired)
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Parses `--ports 1521,80`.
pub fn parse_ports(s: &str) -> Result<Vec<u16>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("invalid port {:?}", p.trim()))
        })
        .collect()
}

/// Parses `--from 198.51.100.0/24,203.0.113.7`.
pub fn parse_cidrs(s: &str) -> Result<Vec<IpNet>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let p = p.trim();
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("invalid CIDR {p:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM";

    fn policy() -> Policy {
        let server = |name: &str, mode: &str, allow: &str, extra: &str| {
            format!(
                "[[server]]\nname = \"{name}\"\naddress = \"10.0.0.1:22\"\nhost_key = \"{FP}\"\nmode = \"{mode}\"\naccounts = [\"root\"]\nallow = [{allow}]\n{extra}\n"
            )
        };
        let text = "[[user]]\nname = \"bob\"\nkeys = []\ngroups = [\"support\"]\n\n\
                    [[user]]\nname = \"eve\"\nkeys = []\n\n"
            .to_string()
            + &server("db", "on-request", "\"group:support\"", "")
            + &server("mine", "ssh-forwarding", "\"user:eve\"", "")
            + &server("other", "on-request", "\"user:eve\"", "")
            + &server("old", "clone", "\"group:support\"", "clone = \"db\"");
        Policy::from_sources(&[("p.toml".into(), text)]).unwrap()
    }

    #[test]
    fn grants_are_requested_only_where_allow_names_the_user() {
        let p = policy();
        assert!(requestable(&p, "bob", "db"));
        assert!(requestable(&p, "eve", "mine"));
        assert!(requestable(&p, "eve", "other"));
        // Exists but does not list bob, does not exist, or is a clone.
        assert!(!requestable(&p, "bob", "other"));
        assert!(!requestable(&p, "bob", "nosuch"));
        assert!(!requestable(&p, "bob", "old"));
        assert!(!requestable(&p, "nobody", "db"));
    }

    #[test]
    fn long_reasons_are_refused_with_the_limit() {
        assert!(check_length("the reason", &"x".repeat(MAX_REASON)).is_ok());
        // Characters, not bytes.
        assert!(check_length("the reason", &"é".repeat(MAX_REASON)).is_ok());
        let e = check_length("the reason", &"x".repeat(MAX_REASON + 1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the reason is too long (501 characters; at most 500)"
        );
    }

    #[test]
    fn ports_and_cidrs_parse_strictly() {
        assert_eq!(parse_ports("1521,80"), Ok(vec![1521, 80]));
        assert!(parse_ports("0").is_err());
        assert!(parse_ports("70000").is_err());
        assert!(parse_ports("22;rm").is_err());
        assert_eq!(parse_cidrs("10.0.0.0/8,192.0.2.1").unwrap().len(), 2);
        assert!(parse_cidrs("10.0.0.0/33").is_err());
    }
}
