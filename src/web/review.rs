//! The "Access review" page (contract section 14): each user's standing
//! entitlements with when they were last certified, by whom and when the
//! next certification is due; certify or suspend one entitlement, or all
//! of a user's, with a note or reason. For auditors only (others get a
//! 403, as for reports); never one's own (the workflow refuses it, and
//! the page offers no button for it). Every POST carries the session's
//! CSRF token and goes through `grants::review`, the code `gatehouse
//! access` runs, with the same events.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use time::OffsetDateTime;

use super::auth::Viewer;
use super::views::{layout, ts};
use super::{WebError, WebState};
use crate::grants::review::{self, Actor, ReviewError, Scope};
use crate::policy::entitlements::Reviewed;

fn clean(s: &str) -> String {
    crate::report::escape::clean(s).into_owned()
}

fn refused(e: ReviewError) -> WebError {
    match e {
        ReviewError::Store(s) => WebError::Store(s),
        other => WebError::Refused(other.to_string()),
    }
}

fn auditor(viewer: &Viewer) -> Result<(), WebError> {
    if viewer.sees_all() {
        Ok(())
    } else {
        Err(WebError::Forbidden("access reviews are for auditors"))
    }
}

pub async fn page(State(state): State<Arc<WebState>>, viewer: Viewer) -> Result<Markup, WebError> {
    auditor(&viewer)?;
    let policy = state.core.policy();
    let list = review::current(
        &state.core.store,
        &policy,
        &state.core.config.review,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(view(&viewer, &list, state.core.config.review.every))
}

/// What a certify or suspend form sends: the user, and optionally the
/// server and account (absent: all of the user's).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ReviewForm {
    csrf: Option<String>,
    user: String,
    server: Option<String>,
    account: Option<String>,
    note: Option<String>,
    reason: Option<String>,
}

impl ReviewForm {
    fn scope(&self) -> Result<Scope<'_>, WebError> {
        if self.user.is_empty() {
            return Err(WebError::BadRequest("no user named".into()));
        }
        Ok(Scope {
            user: &self.user,
            server: non_empty(&self.server),
            account: non_empty(&self.account),
        })
    }
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Control characters dropped and trimmed; `None` when empty.
fn text(s: Option<&str>) -> Option<String> {
    let t: String = s?.chars().filter(|c| !c.is_control()).collect();
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

pub async fn certify(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Form(form): Form<ReviewForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    auditor(&viewer)?;
    let note = text(form.note.as_deref());
    let policy = state.core.policy();
    review::certify(
        &state.core.store,
        &policy,
        &state.core.config.review,
        Actor {
            name: &viewer.user,
            via: "web",
        },
        form.scope()?,
        note.as_deref(),
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(refused)?;
    Ok(Redirect::to("/review").into_response())
}

pub async fn suspend(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Form(form): Form<ReviewForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    auditor(&viewer)?;
    let Some(reason) = text(form.reason.as_deref()) else {
        return Err(WebError::BadRequest(
            "a reason is required to suspend access".into(),
        ));
    };
    let policy = state.core.policy();
    review::suspend(
        &state.core.store,
        &policy,
        &state.core.config.review,
        Actor {
            name: &viewer.user,
            via: "web",
        },
        form.scope()?,
        &reason,
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(refused)?;
    Ok(Redirect::to("/review").into_response())
}

/// The forms of one row: certify with a note, suspend with a reason.
fn actions(viewer: &Viewer, user: &str, server: Option<&str>, account: Option<&str>) -> Markup {
    html! {
        form.inline method="post" action="/review/certify" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="user" value=(user);
            @if let Some(s) = server { input type="hidden" name="server" value=(s); }
            @if let Some(a) = account { input type="hidden" name="account" value=(a); }
            input name="note" placeholder="note" size="10";
            button type="submit" class="certify" { "Certify" }
        }
        form.inline method="post" action="/review/suspend" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="user" value=(user);
            @if let Some(s) = server { input type="hidden" name="server" value=(s); }
            @if let Some(a) = account { input type="hidden" name="account" value=(a); }
            input name="reason" placeholder="reason" size="10" required;
            button type="submit" class="suspend" { "Suspend" }
        }
    }
}

fn opt_ts(t: Option<OffsetDateTime>) -> String {
    t.map(ts).unwrap_or_else(|| "-".into())
}

fn view(viewer: &Viewer, list: &[Reviewed], every: Option<std::time::Duration>) -> Markup {
    let mut users: Vec<&str> = list.iter().map(|r| r.user.as_str()).collect();
    users.dedup();
    let body = html! {
        p {
            @match every {
                Some(e) => { "Each standing entitlement is certified every "
                    (humantime::format_duration(e)) "." }
                None => { "No periodic reviews are configured ([review] every); suspensions still apply." }
            }
        }
        @if list.is_empty() { p { "No standing entitlements." } }
        @for user in &users {
            @let own = *user == viewer.user;
            section.review-user id={ "review-" (user) } {
                h2 { (clean(user)) }
                @if own {
                    p.note { "Your own access: another auditor reviews it." }
                } @else {
                    div.bulk { "All of " (clean(user)) "'s access: " (actions(viewer, user, None, None)) }
                }
                div.scroll { table.list {
                    thead { tr {
                        th { "Server" } th { "Account" } th { "Source" } th { "Last certified" }
                        th { "By" } th { "Due" } th { "State" } th {}
                    } }
                    tbody {
                        @for r in list.iter().filter(|r| r.user == *user) {
                            tr id={ "review-" (r.user) "-" (r.server) "-" (r.account) }
                               class={ "state-" (r.state.as_str()) } {
                                td { (clean(&r.server)) }
                                td { (clean(&r.account)) }
                                td { (r.source.as_str())
                                     @if let Some(g) = r.grant { " #" (g) } }
                                td { (opt_ts(r.certified_at)) }
                                td { (clean(r.certified_by.as_deref().unwrap_or("-"))) }
                                td { (opt_ts(r.due)) }
                                td.state { (r.state.as_str())
                                    @if let Some(reason) = &r.reason { ": " (clean(reason)) } }
                                td { @if !own {
                                    (actions(viewer, &r.user, Some(&r.server), Some(&r.account)))
                                } }
                            }
                        }
                    }
                } }
            }
        }
    };
    layout(Some(viewer), "Access review", body)
}
