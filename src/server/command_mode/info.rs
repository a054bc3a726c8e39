//! Command mode's read-only commands: `list` (what the staff member may
//! reach, and their live grants), `whoami`, and `web` (a one-time sign-in
//! link for the review console).
//!
//! Imports `reply` and the bottom of `server/` (`conn`, `shared`); never
//! its sibling `grants` or the dispatcher in `mod.rs`.

use std::sync::Arc;

use super::reply::Reply;
use crate::policy;
use crate::server::conn::ConnState;
use crate::server::shared::Shared;

/// `web`: a one-time sign-in link for the review console.
pub(super) async fn web_link(state: &Arc<ConnState>, json: bool) -> Reply {
    let base = match crate::web::base_url(&state.shared.config) {
        Ok(b) => b,
        Err(e) => return Reply::fail(1, format!("gatehouse: {e}\n")),
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
        Ok(url) if json => Reply::ok(format!(
            "{}\n",
            serde_json::json!({ "url": url, "valid_secs": crate::web::auth::LINK_TTL.as_secs() })
        )),
        Ok(url) => Reply::ok(format!(
            "{url}\n(valid once, for {} seconds)\n",
            crate::web::auth::LINK_TTL.as_secs()
        )),
        Err(crate::web::WebError::Refused(m)) => Reply::fail(1, format!("gatehouse: {m}\n")),
        Err(e) => {
            tracing::error!("web link: {e}");
            Reply::fail(1, "gatehouse: cannot issue a link now\n".into())
        }
    }
}

pub(super) fn whoami(state: &Arc<ConnState>, json: bool) -> Reply {
    let policy = state.shared.policy();
    let Some(user) = policy.user(&state.user) else {
        return Reply::fail(
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
        return Reply::ok(format!("{v}\n"));
    }
    Reply::ok(format!(
        "user: {}\ngroups: {}\nroles: {}\nfrom: {}\nsession: {}\n",
        user.name,
        user.groups.join(", "),
        roles.join(", "),
        state.source,
        state.id
    ))
}

pub(super) async fn list(state: &Arc<ConnState>, json: bool) -> Reply {
    let policy = state.shared.policy();
    let grants = match state.shared.store.grants_for(&state.user).await {
        Ok(g) => g,
        Err(_) => {
            return Reply::fail(
                1,
                "gatehouse: the bastion cannot reach its database\n".into(),
            );
        }
    };
    let now = Shared::now();
    let reach = policy::reachable(&policy, &state.user, &grants, now);
    if json {
        let v = serde_json::json!({ "servers": reach, "grants": grants });
        return Reply::ok(format!("{v}\n"));
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
            out.push_str(&format!("{}\n", crate::grants::grant_line(g, now)));
        }
    }
    Reply::ok(out)
}
