//! The Today page: what needs a reviewer's or an approver's attention
//! now, each number a link to the list behind it. Recordings waiting
//! for review (oldest first) and today's suspicious events come from the
//! daily report itself ([`crate::report::generate`] on today so far, its
//! detectors unchanged); pending requests, live sessions and lockouts
//! from the store ([`crate::store::Store::console_counts`], each one
//! index range).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use time::OffsetDateTime;

use super::auth::Viewer;
use super::views::{layout, ts};
use super::{WebError, WebState};
use crate::report::model::{ReviewEntry, Suspicious};
use crate::store::ConsoleCounts;

/// Recordings listed on the page (the count covers all of them).
const REVIEW_LISTED: usize = 20;

/// Overdue access reviews, for the Today page (shown when `[review]
/// every` is set).
pub struct OverdueReviews {
    pub count: u64,
    pub link: String,
}

/// Overdue access reviews, when `[review] every` is set: the count of
/// entitlements [`crate::grants::review::current`] says are overdue,
/// linked to the Access review page. A store fault hides the line rather
/// than the page.
async fn overdue_reviews(state: &WebState, now: OffsetDateTime) -> Option<OverdueReviews> {
    let config = &state.core.config.review;
    config.every?;
    let policy = state.core.policy();
    match crate::grants::review::current(&state.core.store, &policy, config, now).await {
        Ok(list) => Some(OverdueReviews {
            count: list
                .iter()
                .filter(|r| r.state == crate::policy::entitlements::ReviewState::Overdue)
                .count() as u64,
            link: "/review".into(),
        }),
        Err(e) => {
            tracing::warn!("today: access reviews: {e}");
            None
        }
    }
}

/// What the page shows.
pub struct Today {
    pub counts: ConsoleCounts,
    /// Oldest first.
    pub to_review: Vec<ReviewEntry>,
    pub to_review_total: usize,
    pub suspicious_total: u64,
    /// As the report lists them (capped per kind).
    pub suspicious: Vec<Suspicious>,
    pub overdue: Option<OverdueReviews>,
    pub now: OffsetDateTime,
}

/// `GET /today`: auditors and approvers; anyone else goes to their
/// sessions.
pub async fn page(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
) -> Result<Response, WebError> {
    if !viewer.sees_all() && !viewer.approver {
        return Ok(Redirect::to("/sessions").into_response());
    }
    let now = OffsetDateTime::now_utc();
    let counts = state.core.store.console_counts(now).await?;
    let (mut to_review, suspicious, suspicious_total) = if viewer.sees_all() {
        let policy = state.core.policy();
        let source = crate::report::LiveSource::new(&state.core.config, state.core.store.clone());
        let report = crate::report::generate(&state.core.config, &source, &policy, now.date(), now)
            .await
            .map_err(|e| match e {
                crate::report::ReportError::Store(s) => WebError::Store(s),
                other => WebError::BadRequest(format!("today's report: {other}")),
            })?;
        let total = report.summary.suspicious;
        (report.recordings_to_review, report.suspicious, total)
    } else {
        (Vec::new(), Vec::new(), 0)
    };
    // Oldest first: the longest waiting comes first.
    to_review.sort_by(|a, b| {
        (a.started_at.as_deref(), &a.date, &a.id).cmp(&(b.started_at.as_deref(), &b.date, &b.id))
    });
    let to_review_total = to_review.len();
    to_review.truncate(REVIEW_LISTED);
    let today = Today {
        counts,
        to_review,
        to_review_total,
        suspicious_total,
        suspicious,
        overdue: overdue_reviews(&state, now).await,
        now,
    };
    Ok(view(&viewer, &today).into_response())
}

fn count(id: &str, n: impl std::fmt::Display, label: &str, href: &str) -> Markup {
    html! {
        li { a.count id=(id) href=(href) { span.n { (n) } " " (label) } }
    }
}

pub fn view(viewer: &Viewer, d: &Today) -> Markup {
    let clean = |s: &str| crate::report::escape::clean(s).into_owned();
    let body = html! {
        p.hint { "As of " (ts(d.now)) "." }
        ul.today {
            @if viewer.sees_all() {
                (count("count-review", d.to_review_total, "recordings waiting for review", "#to-review"))
            }
            @if viewer.approver || viewer.sees_all() {
                (count("count-pending", d.counts.pending_grants, "pending grant requests", "/grants?state=pending"))
            }
            @if viewer.sees_all() {
                (count("count-live", d.counts.live_sessions, "live sessions", "/sessions?live=yes&all=yes"))
                (count("count-suspicious", d.suspicious_total, "suspicious events today", "#suspicious"))
                (count("count-lockouts", d.counts.lockouts.len(), "users locked out", "#lockouts"))
            }
            @if let Some(o) = &d.overdue {
                (count("count-overdue", o.count, "overdue access reviews", &o.link))
            }
        }
        @if viewer.sees_all() {
            h2 #to-review { "Waiting for review, oldest first" }
            @if d.to_review.is_empty() { p { "None." } }
            @else {
                div.scroll { table.list {
                    thead { tr { th { "Started" } th { "User" } th { "Server" } th { "Account" } th { "Recording" } } }
                    tbody {
                        @for r in &d.to_review {
                            tr {
                                td { (r.started_at.as_deref().map(short_rfc3339).unwrap_or_else(|| r.date.clone())) }
                                td { (r.user.as_deref().map(clean).unwrap_or("-".into())) }
                                td { (r.server.as_deref().map(clean).unwrap_or("-".into())) }
                                td { (r.account.as_deref().map(clean).unwrap_or("-".into())) }
                                td { a href={ "/recordings/" (r.id) } { (r.id) } }
                            }
                        }
                    }
                } }
                @if d.to_review_total > d.to_review.len() {
                    p { a href="/sessions?review=unreviewed" { "All " (d.to_review_total) " →" } }
                }
            }
            h2 #suspicious { "Suspicious today" }
            @if d.suspicious.is_empty() { p { "None." } }
            @else {
                div.scroll { table.list {
                    thead { tr { th { "When" } th { "What" } th { "User" } th { "Server" } th { "Detail" } } }
                    tbody {
                        @for s in &d.suspicious {
                            tr data-kind=(s.kind) {
                                td { (short_rfc3339(&s.when)) }
                                td { (s.kind.replace('_', " ")) }
                                td { (s.user.as_deref().map(clean).unwrap_or("-".into())) }
                                td { (s.server.as_deref().map(clean).unwrap_or("-".into())) }
                                td {
                                    (clean(&s.detail))
                                    @if let Some(id) = &s.session { " · " a href={ "/sessions/" (id) } { "session" } }
                                }
                            }
                        }
                    }
                } }
            }
            h2 #lockouts { "Locked out" }
            @if d.counts.lockouts.is_empty() { p { "Nobody." } }
            @else {
                ul {
                    @for l in &d.counts.lockouts {
                        li { (l.user) " until " (ts(l.until)) " (" code { "gatehouse unlock " (l.user) } ")" }
                    }
                }
            }
        }
    };
    layout(Some(viewer), "Today", body)
}

/// An RFC 3339 time in the console's short format; as it is when it does
/// not parse.
fn short_rfc3339(s: &str) -> String {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(ts)
        .unwrap_or_else(|_| s.to_string())
}
