//! The console's state-changing requests (POST): review, kill, approve,
//! deny, revoke, sign out. Each checks the CSRF token first, then the role, then
//! does what the CLI and command mode do, through the same code, with the
//! same audit events. Success redirects back (303) to the page it came from.

use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use time::OffsetDateTime;

use super::auth::{self, Refusal, Viewer};
use super::pages::{flow_error, visible_recording, visible_session};
use super::{WebError, WebState};
use crate::audit::{AuditEvent, EventKind};

/// Longest note or reason, in characters: a longer one is refused, never
/// cut (the ticket number often stands at its end), as the CLI does.
const MAX_TEXT: usize = crate::grants::flow::MAX_REASON;

/// Trimmed, control characters dropped (they would reach terminals and
/// reports); `None` when empty; refused over [`MAX_TEXT`] characters.
fn clean(what: &str, s: Option<&str>) -> Result<Option<String>, WebError> {
    let Some(s) = s else { return Ok(None) };
    let t: String = s.chars().filter(|c| !c.is_control()).collect();
    let t = t.trim();
    let n = t.chars().count();
    if n > MAX_TEXT {
        return Err(WebError::BadRequest(format!(
            "{what} is too long ({n} characters; at most {MAX_TEXT})"
        )));
    }
    Ok((!t.is_empty()).then(|| t.to_string()))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct CsrfForm {
    csrf: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ReviewForm {
    csrf: Option<String>,
    note: Option<String>,
    flag: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ReasonForm {
    csrf: Option<String>,
    reason: Option<String>,
}

pub async fn review(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ReviewForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    if !viewer.sees_all() {
        return Err(WebError::Forbidden("reviewing needs the auditor role"));
    }
    let info = visible_recording(&state, &viewer, &id).await?;
    let note = clean("the note", form.note.as_deref())?;
    let flag = form.flag.is_some_and(|f| !f.is_empty());
    crate::recording::review::review(
        &state.core.store,
        &state.core.config.recordings,
        &info.id,
        &viewer.user,
        note.as_deref(),
        flag,
        "web",
    )
    .await
    .map_err(|e| match e {
        crate::recording::review::ReviewError::Recording(r) => WebError::Recording(r),
        crate::recording::review::ReviewError::Store(s) => WebError::Store(s),
    })?;
    Ok(Redirect::to(&format!("/recordings/{}", info.id)).into_response())
}

/// Ends a live session on whichever node runs it (through the store's
/// kill request, as `sessions kill` does); the user sees the reason.
pub async fn kill(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    if !viewer.sees_all() {
        return Err(WebError::Forbidden(
            "ending sessions needs the auditor role",
        ));
    }
    let s = visible_session(&state, &viewer, &id).await?;
    let Some(reason) = clean("the reason", form.reason.as_deref())? else {
        return Err(WebError::BadRequest(
            "a reason is required: the user is shown it".into(),
        ));
    };
    if s.ended_at.is_some()
        || !state
            .core
            .store
            .request_kill_with_reason(&s.id, &reason)
            .await?
    {
        return Err(WebError::BadRequest("the session has already ended".into()));
    }
    let mut ev = AuditEvent::new(EventKind::SessionKilled)
        .user(s.user.clone())
        .session(s.id.clone())
        .source(s.source.clone())
        .detail("requested_via", "web")
        .detail("requested_by", viewer.user.clone())
        .detail("reason", reason)
        .detail("node", s.node.clone());
    ev.server = s.server.clone();
    ev.account = s.account.clone();
    state.core.store.audit(&ev).await?;
    Ok(Redirect::to(&format!("/sessions/{}", s.id)).into_response())
}

pub async fn approve(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    let policy = state.core.policy();
    crate::grants::flow::approve(
        &state.core.store,
        &policy,
        id,
        &viewer.user,
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(flow_error)?;
    Ok(Redirect::to("/grants").into_response())
}

pub async fn deny(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<ReasonForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    let policy = state.core.policy();
    crate::grants::flow::deny(
        &state.core.store,
        &policy,
        id,
        &viewer.user,
        clean("the note", form.reason.as_deref())?,
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(flow_error)?;
    Ok(Redirect::to("/grants").into_response())
}

/// Revokes a grant (approvers, and the grant's own user) through the
/// grant workflow, which audits `grant.revoked`; a session running under
/// it is ended by the server's sweeper on whichever node runs it.
pub async fn revoke(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    let policy = state.core.policy();
    crate::grants::flow::revoke(
        &state.core.store,
        &policy,
        id,
        &viewer.user,
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(flow_error)?;
    Ok(Redirect::to(&format!("/grants#grant-{id}")).into_response())
}

/// `POST /login/TOKEN`, from the button of [`super::pages::login`]:
/// redeems the link. A POST another site's page sent (the browser says so
/// in `Sec-Fetch-Site` or `Origin`) is refused: it could sign the browser
/// in as someone else (login CSRF).
pub async fn login(
    State(state): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<super::tls::Peer>,
    headers: HeaderMap,
    jar: CookieJar,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    if !same_origin(&headers) {
        return Err(WebError::Forbidden(
            "a sign-in must come from the console's own page: open the link itself",
        ));
    }
    match auth::redeem(&state, &token, peer.0.ip()).await? {
        Ok(session) => Ok((
            jar.add(session.cookie),
            super::views::signed_in(&session.user),
        )
            .into_response()),
        Err(Refusal::RateLimited) => Ok((
            StatusCode::TOO_MANY_REQUESTS,
            super::views::error_page(
                StatusCode::TOO_MANY_REQUESTS,
                "too many sign-in attempts from your address; wait a minute",
            ),
        )
            .into_response()),
        // One answer for unknown, used, expired and removed: the audit
        // event says which.
        Err(_) => Err(WebError::Refused(
            "this link is not valid (links work once, for 60 seconds): get a new one with \
             `ssh USER@BASTION web`"
                .into(),
        )),
    }
}

/// Whether a POST came from the console's own pages, as far as the browser
/// says: `Sec-Fetch-Site` is `same-origin` (or `none`, typed by the user);
/// without it, `Origin`, when sent, names the host the request went to
/// (`null`, which browsers send under `Referrer-Policy: no-referrer` or
/// from a sandboxed page, proves nothing and is refused). A client that
/// sends neither (curl) is not a browser another site can drive.
fn same_origin(headers: &HeaderMap) -> bool {
    let get = |h| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = get(header::HeaderName::from_static("sec-fetch-site")) {
        return site == "same-origin" || site == "none";
    }
    match (get(header::ORIGIN), get(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .strip_prefix("https://")
            .is_some_and(|o| o.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

pub async fn logout(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    state
        .core
        .store
        .web_session_end(&viewer.session_hash, OffsetDateTime::now_utc())
        .await?;
    state
        .core
        .store
        .audit(&AuditEvent::new(EventKind::WebLogout).user(viewer.user.clone()))
        .await?;
    Ok((
        jar.add(auth::removal_cookie()),
        super::views::error_page(axum::http::StatusCode::OK, "Signed out."),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_posts_sign_in() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, axum::http::HeaderValue::from_static(v));
            }
            same_origin(&m)
        };
        assert!(h(&[]), "curl");
        assert!(h(&[("sec-fetch-site", "same-origin"), ("origin", "null")]));
        assert!(h(&[
            ("origin", "https://b.example:8443"),
            ("host", "b.example:8443")
        ]));
        assert!(!h(&[("sec-fetch-site", "cross-site")]));
        assert!(!h(&[("sec-fetch-site", "same-site")]));
        assert!(!h(&[
            ("origin", "https://evil.example"),
            ("host", "b.example")
        ]));
        assert!(!h(&[("origin", "null"), ("host", "b.example")]));
    }

    #[test]
    fn texts_are_cleaned_and_long_ones_refused_not_cut() {
        let c = |s| clean("the note", s).unwrap();
        assert_eq!(c(Some("  ok \u{1b}[2J ")), Some("ok [2J".into()));
        assert_eq!(c(Some("   ")), None);
        assert_eq!(c(None), None);
        assert_eq!(
            c(Some(&"é".repeat(MAX_TEXT))).unwrap().chars().count(),
            MAX_TEXT
        );
        let e = clean("the note", Some(&"x".repeat(501))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the note is too long (501 characters; at most 500)"
        );
    }
}
