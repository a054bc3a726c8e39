//! The console's pages (GET). Each checks the viewer's roles on the server
//! side: auditors see every session and recording, everyone else only
//! their own; what a user may not see is "not found", as if it did not
//! exist.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::Markup;
use time::OffsetDateTime;

use super::auth::Viewer;
use super::views::{self, ListedSession, SessionQuery};
use super::{WebError, WebState, kind};
use crate::recording::{self, RecordingInfo, ReviewState};
use crate::store::{DurationOrder, SessionFilter, SessionReview, SessionRow};

/// Sessions per page.
const PAGE: usize = 50;
/// Longest search text.
const MAX_QUERY: usize = 200;
/// Audit events shown on a session's page.
const MAX_EVENTS: i64 = 1000;

/// `GET /login/TOKEN`: a page with a button that signs in (a POST). The
/// GET itself spends nothing, so a link opened by a chat's preview or a
/// prefetch stays valid, and a page elsewhere cannot sign a browser in by
/// navigating it here.
pub async fn login(Path(token): Path<String>) -> Markup {
    views::login_confirm(&token)
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn yes_no(s: &str) -> Result<Option<bool>, WebError> {
    match s {
        "" => Ok(None),
        "yes" => Ok(Some(true)),
        "no" => Ok(Some(false)),
        _ => Err(WebError::BadRequest(format!("{s:?}: expected yes or no"))),
    }
}

fn day(s: &str, what: &str) -> Result<Option<OffsetDateTime>, WebError> {
    let Some(s) = opt(s) else { return Ok(None) };
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(&s, &fmt)
        .map_err(|_| WebError::BadRequest(format!("{what}: expected YYYY-MM-DD")))?;
    Ok(Some(d.midnight().assume_utc()))
}

/// A typed name: the exact name when it is one of `known` (the index on
/// that column serves it), else a case-insensitive prefix.
fn name_filter(typed: &str, known: &[String]) -> (Option<String>, Option<String>) {
    match opt(typed) {
        Some(v) if known.contains(&v) => (Some(v), None),
        Some(v) => (None, Some(v)),
        None => (None, None),
    }
}

/// The store filter a query asks for; a non-auditor's is pinned to
/// themselves whatever the query says.
fn filter_of(
    viewer: &Viewer,
    q: &SessionQuery,
    picks: &views::PickLists,
) -> Result<SessionFilter, WebError> {
    let before = match (opt(&q.before_ts), opt(&q.before_id)) {
        (Some(t), Some(id)) => Some((
            OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| WebError::BadRequest("bad page cursor".into()))?,
            id,
        )),
        _ => None,
    };
    let (user, user_prefix) = if viewer.sees_all() {
        name_filter(&q.user, &picks.users)
    } else {
        (Some(viewer.user.clone()), None)
    };
    let (server, server_prefix) = name_filter(&q.server, &picks.servers);
    Ok(SessionFilter {
        user,
        server,
        account: None,
        from: day(&q.from, "from")?,
        to: day(&q.to, "to")?.map(|t| t + time::Duration::DAY),
        recorded: yes_no(&q.recorded)?,
        under_grant: yes_no(&q.grant)?,
        live: yes_no(&q.live)?,
        before,
        user_prefix,
        server_prefix,
        account_prefix: opt(&q.account),
        targets_only: match q.all.as_str() {
            "" => true,
            "yes" => false,
            other => return Err(WebError::BadRequest(format!("all={other:?}: expected yes"))),
        },
        review: None,
    })
}

/// The filters' pick-lists: the users and servers of the policy in force.
fn pick_lists(policy: &crate::policy::Policy) -> views::PickLists {
    let mut users: Vec<String> = policy.users.values().map(|u| u.name.clone()).collect();
    let mut servers: Vec<String> = policy.servers.values().map(|s| s.name.clone()).collect();
    users.sort();
    servers.sort();
    views::PickLists { users, servers }
}

/// Where the next page of the sessions list starts.
enum Cursor {
    /// By start: the last row's start and id.
    Start(OffsetDateTime, String),
    /// By duration: the last row's duration (ms, live ones up to now) and id.
    Duration((i64, String)),
}

pub async fn sessions(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Query(q): Query<SessionQuery>,
) -> Result<Markup, WebError> {
    let picks = pick_lists(&state.core.policy());
    let mut filter = filter_of(&viewer, &q, &picks)?;
    filter.review = match opt(&q.review) {
        // Review states are the auditors': nobody else filters by them.
        Some(_) if !viewer.sees_all() => None,
        Some(r) => Some(
            r.parse::<ReviewState>()
                .map_err(WebError::BadRequest)?
                .into(),
        ),
        None => None,
    };
    let by_duration = match q.sort.as_str() {
        "" | "start" => false,
        "duration" => true,
        other => {
            return Err(WebError::BadRequest(format!(
                "sort={other:?}: expected start or duration"
            )));
        }
    };
    let after: Option<(i64, String)> = match (opt(&q.after_ms), opt(&q.after_id)) {
        (Some(ms), Some(id)) => Some((
            ms.parse()
                .map_err(|_| WebError::BadRequest("bad page cursor".into()))?,
            id,
        )),
        _ => None,
    };
    let now = OffsetDateTime::now_utc();
    let (rows, next) = if by_duration {
        let page = state
            .core
            .store
            .sessions_by_duration(&filter, DurationOrder::Longest, now, after.as_ref(), PAGE)
            .await?;
        let rows: Vec<SessionRow> = page.rows.into_iter().map(|(_, r)| r).collect();
        (rows, page.next.map(Cursor::Duration))
    } else {
        let page = state.core.store.sessions_page(&filter, PAGE).await?;
        (page.rows, page.next.map(|(t, id)| Cursor::Start(t, id)))
    };
    let mut listed: Vec<ListedSession> = rows
        .into_iter()
        .map(|row| ListedSession {
            review: row.review.map(SessionReview::as_str),
            row,
            kind: kind::SessionKind::Session,
            blocked: 0,
            factors: None,
        })
        .collect();
    let ids: Vec<String> = listed.iter().map(|l| l.row.id.clone()).collect();
    let facts = state.core.store.session_facts(&ids).await?;
    for l in &mut listed {
        let f = facts.get(&l.row.id);
        l.kind = kind::of(&l.row, f);
        l.blocked = f.map_or(0, |f| f.count("command.blocked"));
        l.factors = kind::factors(f);
    }
    let next_link = match next {
        Some(c) => {
            let mut nq = q.clone();
            match c {
                Cursor::Duration((ms, id)) => {
                    nq.after_ms = ms.to_string();
                    nq.after_id = id;
                }
                Cursor::Start(t, id) => {
                    nq.before_ts = t
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                    nq.before_id = id;
                }
            }
            let qs = serde_urlencoded::to_string(&nq)
                .map_err(|e| WebError::BadRequest(e.to_string()))?;
            Some(format!("/sessions?{qs}"))
        }
        None => None,
    };
    Ok(views::sessions(
        &viewer, &q, &listed, &picks, next_link, now,
    ))
}

/// A session the viewer may see.
pub async fn visible_session(
    state: &WebState,
    viewer: &Viewer,
    id: &str,
) -> Result<SessionRow, WebError> {
    match state.core.store.session_get(id).await? {
        Some(s) if viewer.may_see(&s.user) => Ok(s),
        _ => Err(WebError::NotFound),
    }
}

/// A recording the viewer may see: an auditor's, or the viewer's own. A
/// recording without a readable sidecar names no owner: auditors only.
pub async fn visible_recording(
    state: &WebState,
    viewer: &Viewer,
    id: &str,
) -> Result<RecordingInfo, WebError> {
    let root = state.core.config.recordings.clone();
    let id = id.to_string();
    let info = tokio::task::spawn_blocking(move || recording::find(&root, &id))
        .await
        .map_err(|_| WebError::NotFound)?
        .map_err(|e| match e {
            recording::RecordingError::NotFound(_) | recording::RecordingError::InvalidId(_) => {
                WebError::NotFound
            }
            other => WebError::Recording(other),
        })?;
    let owner = info.meta.as_ref().map(|m| m.user.as_str());
    match owner {
        Some(o) if viewer.may_see(o) => Ok(info),
        None if viewer.sees_all() => Ok(info),
        _ => Err(WebError::NotFound),
    }
}

/// The recordings of one session: `ID.cast`, then `ID-2.cast`, ...
async fn recordings_of(state: &WebState, id: &str) -> Vec<RecordingInfo> {
    let root = state.core.config.recordings.clone();
    let id = id.to_string();
    tokio::task::spawn_blocking(move || recording::catalog::of_session(&root, &id))
        .await
        .unwrap_or_default()
}

pub async fn session_detail(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Markup, WebError> {
    let s = visible_session(&state, &viewer, &id).await?;
    let recs = recordings_of(&state, &s.id).await;
    let mut events = state.core.store.session_events(&s.id, MAX_EVENTS).await?;
    if !viewer.sees_all() {
        // Reviewers' notes and flags are for auditors only.
        events.retain(|e| e.kind != "recording.reviewed");
    }
    let grant = match s.grant_id {
        Some(g) => state
            .core
            .store
            .grant_get(g)
            .await?
            .map(|g| views::SessionGrant {
                id: g.id,
                reason: g.reason,
                approved_by: g.approved_by,
                state: g.state.as_str().to_string(),
            }),
        None => None,
    };
    Ok(views::session_detail(
        &viewer,
        &s,
        grant.as_ref(),
        &recs,
        &events,
        OffsetDateTime::now_utc(),
    ))
}

pub async fn live(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Markup, WebError> {
    let s = visible_session(&state, &viewer, &id).await?;
    Ok(views::live(&viewer, &s))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct SearchQuery {
    q: String,
}

pub async fn recording(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(sq): Query<SearchQuery>,
) -> Result<Markup, WebError> {
    let info = visible_recording(&state, &viewer, &id).await?;
    let query: String = sq.q.trim().chars().take(MAX_QUERY).collect();
    let hits = if query.is_empty() {
        None
    } else {
        let (i, q) = (info.clone(), query.clone());
        let found = tokio::task::spawn_blocking(move || {
            let hits = recording::search_recording(&i, &q)?;
            let times: Vec<f64> = hits.iter().map(|h| h.time).collect();
            let at = player_times(&i.cast_path, &times, views::IDLE_LIMIT);
            Ok::<_, recording::RecordingError>(hits.into_iter().zip(at).collect::<Vec<_>>())
        })
        .await
        .map_err(|_| WebError::NotFound)??;
        Some(found)
    };
    Ok(views::recording(&viewer, &info, &query, hits.as_deref()))
}

/// Where each cast time in `times` falls on the player's timeline: the
/// player shortens every pause longer than `limit` seconds to `limit`
/// (asciinema's `idleTimeLimit`, applied to each gap between events), so a
/// hit 22.9 s into a recording with pauses may play at 8.9 s. A cast that
/// cannot be read leaves the times as they are.
fn player_times(cast: &std::path::Path, times: &[f64], limit: f64) -> Vec<f64> {
    let Ok(file) = std::fs::File::open(cast) else {
        return times.to_vec();
    };
    let Ok((_, mut reader)) = recording::cast::Reader::new(std::io::BufReader::new(file)) else {
        return times.to_vec();
    };
    // (cast time, player time) of each event, in order.
    let mut marks: Vec<(f64, f64)> = Vec::new();
    let (mut prev, mut squeezed) = (0.0f64, 0.0f64);
    while let Some(Ok(ev)) = reader.next_event() {
        let over = ev.time - prev - limit;
        prev = ev.time;
        if over > 0.0 {
            squeezed += over;
        }
        marks.push((ev.time, ev.time - squeezed));
    }
    squeeze(&marks, times, limit)
}

/// [`player_times`] on the events' (cast time, player time) pairs.
fn squeeze(marks: &[(f64, f64)], times: &[f64], limit: f64) -> Vec<f64> {
    times
        .iter()
        .map(|&t| {
            let i = marks.partition_point(|(c, _)| *c <= t);
            match i.checked_sub(1).and_then(|j| marks.get(j)) {
                Some((c, p)) => p + (t - c).min(limit),
                None => t.min(limit),
            }
        })
        .collect()
}

/// Recent sessions shown with a pending request.
const REQUEST_CONTEXT_SESSIONS: usize = 5;
/// Other grants shown with a pending request.
const REQUEST_CONTEXT_GRANTS: usize = 10;

pub async fn grants(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Query(q): Query<views::GrantQuery>,
) -> Result<Markup, WebError> {
    let known = [
        "", "pending", "active", "approved", "denied", "revoked", "expired",
    ];
    if !known.contains(&q.state.as_str()) {
        return Err(WebError::BadRequest(format!(
            "state={:?}: expected one of pending, active, approved, denied, revoked, expired",
            q.state
        )));
    }
    let now = OffsetDateTime::now_utc();
    let policy = state.core.policy();
    let all = crate::grants::flow::visible(&state.core.store, &policy, &viewer.user)
        .await
        .map_err(flow_error)?;
    let mut list: Vec<_> = all
        .iter()
        .filter(|g| {
            let s = views::grant_state(g, now);
            // "approved" also lists the ones in force.
            q.state.is_empty() || s == q.state || (q.state == "approved" && s == "active")
        })
        .cloned()
        .collect();
    // Pending first, then newest first.
    list.sort_by(|a, b| {
        let pa = a.state != crate::grants::GrantState::Pending;
        let pb = b.state != crate::grants::GrantState::Pending;
        pa.cmp(&pb).then(b.id.cmp(&a.id))
    });
    let mut contexts = std::collections::HashMap::new();
    if viewer.approver || viewer.sees_all() {
        for g in list
            .iter()
            .filter(|g| g.state == crate::grants::GrantState::Pending)
        {
            let f = SessionFilter {
                user: Some(g.user.clone()),
                server: Some(g.server.clone()),
                ..Default::default()
            };
            let recent = state
                .core
                .store
                .sessions_page(&f, REQUEST_CONTEXT_SESSIONS)
                .await?
                .rows;
            let mut other_grants: Vec<_> = all
                .iter()
                .filter(|o| o.user == g.user && o.id != g.id)
                .cloned()
                .collect();
            other_grants.sort_by_key(|g| std::cmp::Reverse(g.id));
            other_grants.truncate(REQUEST_CONTEXT_GRANTS);
            contexts.insert(
                g.id,
                views::RequestContext {
                    recent,
                    other_grants,
                },
            );
        }
    }
    Ok(views::grants(&viewer, &q, &list, &contexts, now))
}

pub fn flow_error(e: crate::grants::flow::FlowError) -> WebError {
    use crate::grants::flow::FlowError;
    match e {
        FlowError::Store(s) => WebError::Store(s),
        other => WebError::Refused(other.to_string()),
    }
}

/// `YYYY-MM-DD.html`, nothing else: the name is a path component.
fn is_report_name(name: &str) -> bool {
    name.len() == 15
        && name.ends_with(".html")
        && name.bytes().take(10).enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
}

pub async fn reports(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
) -> Result<Markup, WebError> {
    if !viewer.sees_all() {
        return Err(WebError::Forbidden("reports are for auditors"));
    }
    let dir = state.core.config.reports.clone();
    let mut names = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                if let Some(n) = e.file_name().to_str()
                    && is_report_name(n)
                {
                    names.push(n.to_string());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(WebError::io(&dir, e)),
    }
    names.sort_unstable_by(|a, b| b.cmp(a));
    Ok(views::reports(&viewer, &names))
}

/// A report's HTML as written by `report daily`. It is one self-contained
/// file with an inline stylesheet, so it gets its own policy: styles
/// inline, no script at all (`sandbox` without `allow-scripts`, and no
/// `script-src`). `allow-same-origin` keeps the console's origin, so that
/// its links (`../recordings/DATE/ID.cast`, see [`report_recording`])
/// are same-site navigations that carry the session cookie.
pub async fn report_file(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    if !viewer.sees_all() {
        return Err(WebError::Forbidden("reports are for auditors"));
    }
    if !is_report_name(&name) {
        return Err(WebError::NotFound);
    }
    let path = state.core.config.reports.join(&name);
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(WebError::NotFound),
        Err(e) => return Err(WebError::io(&path, e)),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                 sandbox allow-same-origin; frame-ancestors 'none'",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `/recordings/DATE/ID.cast`, where the daily report's links lead when
/// it is read in the console: redirects to the recording's page (which
/// checks who may see it).
pub async fn report_recording(
    Path((date, file)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let is_date = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    let id = file.strip_suffix(".cast").unwrap_or_default();
    if !is_date || recording::validate_id(id).is_err() {
        return Err(WebError::NotFound);
    }
    Ok(axum::response::Redirect::to(&format!("/recordings/{id}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_land_where_the_player_plays_them_after_squeezing_pauses() {
        // Events at 0.5, 10.5 (a 10 s pause) and 11, then 30 (19 s).
        let limit = 2.0;
        let events = [0.5, 10.5, 11.0, 30.0];
        let (mut prev, mut squeezed, mut marks) = (0.0f64, 0.0f64, Vec::new());
        for t in events {
            let over = t - prev - limit;
            prev = t;
            if over > 0.0 {
                squeezed += over;
            }
            marks.push((t, t - squeezed));
        }
        let got = squeeze(&marks, &[0.0, 0.5, 10.5, 11.0, 30.0, 12.0], limit);
        let want = [0.0, 0.5, 2.5, 3.0, 5.0, 4.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-9, "{got:?}");
        }
    }

    #[test]
    fn report_names_are_dates_only() {
        assert!(is_report_name("2026-03-10.html"));
        assert!(!is_report_name("../etc/passwd"));
        assert!(!is_report_name("2026-03-10.json"));
        assert!(!is_report_name("2026-03-1x.html"));
    }

    fn viewer(user: &str, auditor: bool) -> Viewer {
        Viewer {
            user: user.into(),
            csrf: "c".into(),
            auditor,
            approver: false,
            session_hash: "h".into(),
        }
    }

    fn picks() -> views::PickLists {
        views::PickLists {
            users: vec!["alice".into(), "bob".into()],
            servers: vec!["web1".into()],
        }
    }

    #[test]
    fn known_names_are_exact_others_prefixes_and_the_list_hides_command_mode() {
        let q = SessionQuery {
            user: "Al".into(),
            server: "web1".into(),
            account: "ro".into(),
            ..Default::default()
        };
        let f = filter_of(&viewer("eve", true), &q, &picks()).unwrap();
        assert_eq!((f.user, f.user_prefix.as_deref()), (None, Some("Al")));
        assert_eq!((f.server.as_deref(), f.server_prefix), (Some("web1"), None));
        assert_eq!(f.account_prefix.as_deref(), Some("ro"));
        assert!(f.targets_only);
        let all = SessionQuery {
            all: "yes".into(),
            ..Default::default()
        };
        assert!(
            !filter_of(&viewer("eve", true), &all, &picks())
                .unwrap()
                .targets_only
        );
    }

    #[test]
    fn a_non_auditor_is_pinned_to_their_own_sessions() {
        let q = SessionQuery {
            user: "alice".into(),
            ..Default::default()
        };
        assert_eq!(
            filter_of(&viewer("bob", false), &q, &picks())
                .unwrap()
                .user
                .as_deref(),
            Some("bob")
        );
        assert_eq!(
            filter_of(&viewer("eve", true), &q, &picks())
                .unwrap()
                .user
                .as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn filters_parse_strictly() {
        let bad = SessionQuery {
            live: "maybe".into(),
            ..Default::default()
        };
        assert!(filter_of(&viewer("bob", false), &bad, &picks()).is_err());
        let days = SessionQuery {
            from: "2026-03-10".into(),
            to: "2026-03-10".into(),
            ..Default::default()
        };
        let f = filter_of(&viewer("bob", false), &days, &picks()).unwrap();
        assert_eq!(f.to.unwrap() - f.from.unwrap(), time::Duration::DAY);
    }
}
