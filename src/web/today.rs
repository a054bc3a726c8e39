//! The Today page: what needs a reviewer's or an approver's attention
//! now, each number a link to the list behind it.
//!
//! Every figure is the daily report's own ([`crate::report::generate`] on
//! today so far, its detectors unchanged), fed by [`TodaySource`], which
//! reads no more than today: today's events of the kinds the suspicious
//! detectors read (one range of the `ts` index), today's logins as groups,
//! the sessions overlapping today, the grants active now, one probe per
//! (user, source) pair seen today for "first seen" instead of the 90 days'
//! logins, and the review marks. Pending requests, live sessions and
//! lockouts come from [`crate::store::Store::console_counts`], each one
//! index range. The recordings waiting for review are the recorded
//! sessions whose `review` column (migration 0022) says unreviewed, from
//! [`crate::store::Store::sessions_waiting_review`]: one COUNT and one
//! LIMIT on a partial index, whatever the number of sessions or of
//! recordings on disk. The column is the index of the review files beside
//! the casts (set when a recording begins and when a review is written,
//! reconciled from the files when `serve` starts); the daily report still
//! reads the files. A session with several recorded channels counts once.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use time::OffsetDateTime;

use super::auth::Viewer;
use super::views::{layout, ts};
use super::{WebError, WebState};
use crate::audit::AuditRecord;
use crate::config::Config;
use crate::grant_types::Grant;
use crate::report::input::{CredentialFact, RecordingFact};
use crate::report::model::Suspicious;
use crate::report::{LoginHistory, ReportError, ReportSource};
use crate::store::{ConsoleCounts, LoginGroup, SessionRow, Store};

/// Sessions waiting for review listed on the page (the count covers all
/// of them).
const REVIEW_LISTED: usize = 20;
/// Suspicious entries listed on the page, the latest (the count covers
/// all of them; the daily report lists them all).
const SUSPICIOUS_LISTED: usize = 100;

/// The event kinds the report's suspicious detectors read (of
/// [`crate::report::build::KINDS_READ`]): failed logins and second
/// factors (bursts), lockouts, blocked commands, host key mismatches, and
/// session starts and ends (out of hours, global servers). Denials, grant,
/// policy and directory steps make no suspicious entry.
const SUSPICIOUS_KINDS: [&str; 7] = [
    "auth.failure",
    "mfa.failure",
    "auth.lockout",
    "command.blocked",
    "hostkey.mismatch",
    "session.start",
    "session.end",
];

/// The report's facts for today so far, each read bounded by today (see
/// the module doc). A report built on it has today's `suspicious`,
/// `summary.suspicious` and `summary.reviews_overdue`
/// for today; its other parts are not filled (no vault, no event count,
/// no login history beyond the pairs seen today, no recordings: those
/// waiting for review come from the index, see the module doc) and are not
/// shown.
pub struct TodaySource {
    store: Store,
    /// Today's successful logins, grouped: read once, passed to the
    /// report and used for the first-seen probes.
    logins: Vec<LoginGroup>,
    /// The report's judging time: the grants read are those active then.
    now: OffsetDateTime,
}

impl TodaySource {
    /// Reads today's logins (`[start, now]`).
    pub async fn new(store: Store, now: OffsetDateTime) -> Result<Self, ReportError> {
        let (start, end) = crate::report::day_bounds(now.date());
        let logins = store.login_groups(start, end).await?;
        Ok(TodaySource { store, logins, now })
    }
}

impl ReportSource for TodaySource {
    async fn events(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        kinds: &[&str],
        sink: &mut (dyn FnMut(AuditRecord) + Send),
    ) -> Result<u64, ReportError> {
        use futures::StreamExt;
        let kinds: Vec<&str> = kinds
            .iter()
            .copied()
            .filter(|k| SUSPICIOUS_KINDS.contains(k))
            .collect();
        let mut events = self.store.report_events(from, to, &kinds);
        while let Some(ev) = events.next().await {
            sink(ev?);
        }
        // The day's event count is not shown: not counted.
        Ok(0)
    }

    async fn login_groups(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<LoginGroup>, ReportError> {
        let (start, end) = crate::report::day_bounds(from.date());
        if (from, to) == (start, end) {
            return Ok(self.logins.clone());
        }
        Ok(self.store.login_groups(from, to).await?)
    }

    async fn sessions(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<SessionRow>, ReportError> {
        Ok(self.store.sessions_between(from, to).await?)
    }

    async fn grants(&self) -> Result<Vec<Grant>, ReportError> {
        // Only active grants make entitlements (and so second-factor and
        // access-review findings); the others show in sections not shown.
        Ok(self.store.grants_active(self.now).await?)
    }

    async fn logins(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<LoginHistory, ReportError> {
        // "First seen" asks only whether today's pairs were seen before.
        let pairs: Vec<(String, String)> = self
            .logins
            .iter()
            .filter_map(|g| Some((g.user.clone()?, g.source.clone()?)))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        Ok(LoginHistory {
            last: Default::default(),
            seen: self.store.logins_seen(&pairs, since, until).await?,
        })
    }

    async fn credentials(
        &self,
        _as_of: OffsetDateTime,
    ) -> Result<Option<Vec<CredentialFact>>, ReportError> {
        Ok(None)
    }

    async fn recordings(&self) -> Result<Vec<RecordingFact>, ReportError> {
        // Not read: the page's recordings come from the index.
        Ok(Vec::new())
    }

    async fn enrolled_factors(&self) -> Result<Option<HashSet<String>>, ReportError> {
        crate::report::enrolled_in_store(&self.store).await
    }

    async fn review_marks(
        &self,
    ) -> Result<Vec<crate::policy::entitlements::ReviewMark>, ReportError> {
        Ok(self.store.review_marks(None).await?)
    }
}

/// Today's figures from the report's own detectors (see [`TodaySource`]).
pub struct TodayReport {
    /// The recorded sessions waiting longest for review, oldest first (at
    /// most [`REVIEW_LISTED`]).
    pub to_review: Vec<SessionRow>,
    /// All those waiting.
    pub to_review_total: u64,
    pub suspicious_total: u64,
    /// As the report lists them (capped per kind).
    pub suspicious: Vec<Suspicious>,
    /// Entitlements overdue for review (counted when `[review] every`).
    pub overdue: u64,
}

/// The daily report on today so far, through [`TodaySource`].
pub async fn today_report(
    config: &Config,
    store: &Store,
    policy: &crate::policy::Policy,
    now: OffsetDateTime,
) -> Result<TodayReport, ReportError> {
    let waiting = store.sessions_waiting_review(REVIEW_LISTED).await?;
    let source = TodaySource::new(store.clone(), now).await?;
    let report = crate::report::generate(config, &source, policy, now.date(), now).await?;
    Ok(TodayReport {
        to_review_total: waiting.total,
        to_review: waiting.oldest,
        suspicious_total: report.summary.suspicious,
        suspicious: report.suspicious,
        overdue: report.summary.reviews_overdue,
    })
}

/// Overdue access reviews, for the Today page (shown when `[review]
/// every` is set).
pub struct OverdueReviews {
    pub count: u64,
    pub link: String,
}

/// What the page shows.
pub struct Today {
    pub counts: ConsoleCounts,
    /// Oldest first.
    pub to_review: Vec<SessionRow>,
    pub to_review_total: u64,
    pub suspicious_total: u64,
    /// The latest [`SUSPICIOUS_LISTED`], latest first.
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
    let config = &state.core.config;
    let policy = state.core.policy();
    let report = today_report(config, &state.core.store, &policy, now)
        .await
        .map_err(|e| match e {
            ReportError::Store(s) => WebError::Store(s),
            other => WebError::BadRequest(format!("today's report: {other}")),
        })?;
    let overdue = config.review.every.map(|_| OverdueReviews {
        count: report.overdue,
        link: "/review".into(),
    });
    let today = if viewer.sees_all() {
        // Latest first.
        let mut suspicious = report.suspicious;
        suspicious.reverse();
        suspicious.truncate(SUSPICIOUS_LISTED);
        Today {
            counts,
            to_review: report.to_review,
            to_review_total: report.to_review_total,
            suspicious_total: report.suspicious_total,
            suspicious,
            overdue,
            now,
        }
    } else {
        Today {
            counts,
            to_review: Vec::new(),
            to_review_total: 0,
            suspicious_total: 0,
            suspicious: Vec::new(),
            overdue,
            now,
        }
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
                    thead { tr { th { "Started" } th { "User" } th { "Server" } th { "Account" } th { "Session" } } }
                    tbody {
                        @for r in &d.to_review {
                            tr {
                                td { (ts(r.started_at)) }
                                td { (clean(&r.user)) }
                                td { (r.server.as_deref().map(clean).unwrap_or("-".into())) }
                                td { (r.account.as_deref().map(clean).unwrap_or("-".into())) }
                                td { a href={ "/sessions/" (r.id) } { (r.id) } }
                            }
                        }
                    }
                } }
                @if d.to_review_total > d.to_review.len() as u64 {
                    p { a href="/sessions?review=unreviewed" { "All " (d.to_review_total) " →" } }
                }
            }
            h2 #suspicious { "Suspicious today, latest first" }
            @if (d.suspicious.len() as u64) < d.suspicious_total {
                p.hint { "The latest " (d.suspicious.len()) " of " (d.suspicious_total)
                    "; the daily report lists them all." }
            }
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::audit::{AuditEvent, EventKind};
    use crate::grant_types::GrantState;
    use crate::policy::Policy;
    use crate::recording::review::tests as review_tests;
    use crate::report::LiveSource;
    use time::Duration;

    const FP: &str = "SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM";

    fn policy() -> Policy {
        let users = "[[user]]\nname = \"alice\"\nkeys = []\ngroups = [\"ops\"]\n\n\
                     [[user]]\nname = \"bob\"\nkeys = []\ngroups = [\"ops\"]\n";
        let server = |name: &str, n: u8, mode: &str, extra: &str| {
            format!(
                "[[server]]\nname = \"{name}\"\naddress = \"10.0.0.{n}:22\"\nhost_key = \"{FP}\"\n\
                 mode = \"{mode}\"\naccounts = [\"root\"]\nallow = [\"group:ops\"]\n{extra}\n"
            )
        };
        let servers = [
            server("web1", 1, "ssh-forwarding", ""),
            server("old1", 2, "global", ""),
            server("db1", 3, "ssh-forwarding", "require_grant = true"),
        ]
        .concat();
        Policy::from_sources(&[
            (PathBuf::from("users.toml"), users.to_string()),
            (PathBuf::from("servers.toml"), servers),
        ])
        .unwrap()
    }

    /// A successful login `days` ago, written as a row of another node's
    /// chain (the store stamps its own appends with now).
    async fn old_login(s: &Store, seq: i64, user: &str, source: &str, days: i64) {
        let ts = crate::store::ts_text(OffsetDateTime::now_utc() - Duration::days(days)).unwrap();
        sqlx::query(
            "INSERT INTO audit_events (ts, kind, username, source, detail, node, seq, prev_hash, hash) \
             VALUES ($1, 'auth.success', $2, $3, '{}', 'old', $4, '', '')",
        )
        .bind(ts)
        .bind(user)
        .bind(source)
        .bind(seq)
        .execute(s.pool())
        .await
        .unwrap();
    }

    fn ev(kind: EventKind, user: &str, source: &str) -> AuditEvent {
        AuditEvent::new(kind).user(user).source(source)
    }

    /// The Today page's figures are `gatehouse report daily`'s for today
    /// (the report on the live sources), though read from today alone.
    #[tokio::test]
    async fn today_is_the_daily_report_of_today_so_far() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("recordings")).unwrap();
        let config = Config::from_str_at(
            "[review]\nevery = \"90d\"\n",
            &dir.path().join("gatehouse.toml"),
        )
        .unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let s = Store::open(&url, "n1").await.unwrap();
        let policy = policy();

        // Alice's usual address (seen 30 days ago), Bob's seen 120 days
        // ago (beyond the 90 days: first seen again).
        old_login(&s, 1, "alice", "10.0.0.1", 30).await;
        old_login(&s, 2, "bob", "10.0.0.2", 120).await;
        for (u, src) in [
            ("alice", "10.0.0.1"),
            ("alice", "10.0.0.9"),
            ("bob", "10.0.0.2"),
        ] {
            s.audit(&ev(EventKind::AuthSuccess, u, src).session(format!("{u}-{src}")))
                .await
                .unwrap();
        }
        for _ in 0..6 {
            s.audit(&ev(EventKind::AuthFailure, "mallory", "203.0.113.7"))
                .await
                .unwrap();
        }
        s.audit(
            &ev(EventKind::CommandBlocked, "alice", "10.0.0.1")
                .server("web1")
                .detail("command", "shutdown -h now"),
        )
        .await
        .unwrap();
        s.audit(&ev(EventKind::AuthLockout, "mallory", "203.0.113.7").detail("failures", 6))
            .await
            .unwrap();
        s.audit(&ev(EventKind::HostkeyMismatch, "alice", "10.0.0.1").server("web1"))
            .await
            .unwrap();
        s.audit(&ev(EventKind::AccessDenied, "bob", "10.0.0.2").server("db1"))
            .await
            .unwrap();
        // A session to a global server, started a minute ago.
        let now = crate::store::now_utc();
        s.session_start(&SessionRow {
            id: "g1".into(),
            user: "bob".into(),
            server: Some("old1".into()),
            account: Some("root".into()),
            source: "10.0.0.2".into(),
            node: "n1".into(),
            started_at: now - Duration::minutes(1),
            ended_at: None,
            mode: Some("global".into()),
            grant_id: None,
            recorded: false,
            bytes_up: 0,
            bytes_down: 0,
            exit_status: None,
            end_reason: None,
            flagged: Some(true),
            review: None,
        })
        .await
        .unwrap();
        // An active grant (an entitlement to review) and a denied one.
        for (state, user) in [(GrantState::Approved, "alice"), (GrantState::Denied, "bob")] {
            s.grant_insert(&Grant {
                id: 0,
                user: user.into(),
                server: "db1".into(),
                accounts: vec![],
                ports: vec![],
                from: vec![],
                reason: "T-1".into(),
                state,
                requested_by: user.into(),
                approved_by: Some("dave".into()),
                decided_by: Some("dave".into()),
                decision_note: None,
                requested_at: now - Duration::hours(1),
                decided_at: Some(now - Duration::hours(1)),
                duration_secs: Some(7200),
                expires_at: Some(now + Duration::hours(1)),
            })
            .await
            .unwrap();
        }

        // Recorded sessions: three with a recording each (one reviewed,
        // through the console's own review), one with two channels of
        // which one is reviewed; the index set from the files as `serve`
        // does at start, then by each review.
        let root = config.recordings.clone();
        for (id, ago) in [("rec-a", 4), ("rec-b", 3), ("rec-c", 2), ("rec-d", 1)] {
            let at = now - Duration::minutes(ago);
            s.session_start(&review_tests::row(id, "n1", at, false, None))
                .await
                .unwrap();
            review_tests::record(&root, id, id, at).await;
        }
        review_tests::record(&root, "rec-d-2", "rec-d", now - Duration::minutes(1)).await;
        crate::recording::review::reconcile(&s, &root, "n1")
            .await
            .unwrap();
        for id in ["rec-b", "rec-d-2"] {
            crate::recording::review::review(&s, &root, id, "carol", None, false, "test")
                .await
                .unwrap();
        }

        let now = OffsetDateTime::now_utc();
        let today = today_report(&config, &s, &policy, now).await.unwrap();
        let live = crate::report::generate(
            &config,
            &LiveSource::new(&config, s.clone()),
            &policy,
            now.date(),
            now,
        )
        .await
        .unwrap();
        assert_eq!(today.suspicious_total, live.summary.suspicious);
        assert_eq!(today.suspicious, live.suspicious);
        assert_eq!(today.overdue, live.summary.reviews_overdue);
        assert_eq!(
            today.to_review_total,
            live.recordings_to_review.len() as u64
        );
        let waiting: Vec<&str> = today.to_review.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(waiting, ["rec-a", "rec-c", "rec-d"], "oldest first");
        let listed: Vec<&str> = live
            .recordings_to_review
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(listed, waiting);
        // And they found what was made to be found.
        let kinds: Vec<(&str, Option<&str>, Option<&str>)> = today
            .suspicious
            .iter()
            .map(|x| (x.kind.as_str(), x.user.as_deref(), x.source.as_deref()))
            .collect();
        for want in [
            ("first_seen_source", Some("alice"), Some("10.0.0.9")),
            ("first_seen_source", Some("bob"), Some("10.0.0.2")),
            ("failed_login_burst", Some("mallory"), None),
            ("blocked_command", Some("alice"), Some("10.0.0.1")),
            ("lockout", Some("mallory"), Some("203.0.113.7")),
            ("hostkey_mismatch", Some("alice"), Some("10.0.0.1")),
            ("global_server_session", Some("bob"), Some("10.0.0.2")),
        ] {
            assert!(
                kinds
                    .iter()
                    .any(|k| k.0 == want.0 && k.1 == want.1 && (want.2.is_none() || k.2 == want.2)),
                "{want:?} in {kinds:?}"
            );
        }
        assert!(
            !kinds.contains(&("first_seen_source", Some("alice"), Some("10.0.0.1"))),
            "alice's usual address is not new: {kinds:?}"
        );
        assert!(
            today.overdue >= 1,
            "never-certified entitlements are overdue"
        );
        s.close().await;
    }
}
