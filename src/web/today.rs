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
//! index range. The one read that is not indexed is the recordings
//! waiting for review: their review state lives in files beside the casts,
//! so the folder is scanned, by each node, again only when it changed (a
//! recording begun or sealed and a review written each add or replace a
//! file, which changes its day folder's modification time: about a hundred
//! `stat`s per load instead of a scan) and at least every [`SCAN_TTL`];
//! the page says how old that scan is.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use time::{Duration, OffsetDateTime};

use super::auth::Viewer;
use super::views::{layout, ts};
use super::{WebError, WebState};
use crate::audit::AuditRecord;
use crate::config::Config;
use crate::grant_types::Grant;
use crate::report::input::{CredentialFact, RecordingFact};
use crate::report::model::{ReviewEntry, Suspicious};
use crate::report::{LiveSource, LoginHistory, ReportError, ReportSource};
use crate::store::{ConsoleCounts, LoginGroup, SessionRow, Store};

/// Recordings listed on the page (the count covers all of them).
const REVIEW_LISTED: usize = 20;
/// Suspicious entries listed on the page, the latest (the count covers
/// all of them; the daily report lists them all).
const SUSPICIOUS_LISTED: usize = 100;

/// How long one scan of the recordings folder serves the page at most,
/// even when no folder's modification time changed.
pub const SCAN_TTL: Duration = Duration::seconds(60);

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
/// `summary.suspicious`, `summary.reviews_overdue` and
/// `recordings_to_review` as `gatehouse report daily` would give them
/// for today; its other parts are not filled (no vault, no event count,
/// no login history beyond the pairs seen today) and are not shown.
pub struct TodaySource {
    store: Store,
    /// Today's successful logins, grouped: read once, passed to the
    /// report and used for the first-seen probes.
    logins: Vec<LoginGroup>,
    recordings: Arc<Vec<RecordingFact>>,
    /// The report's judging time: the grants read are those active then.
    now: OffsetDateTime,
}

impl TodaySource {
    /// Reads today's logins (`[start, now]`); `recordings` is the scan the
    /// page uses.
    pub async fn new(
        store: Store,
        now: OffsetDateTime,
        recordings: Arc<Vec<RecordingFact>>,
    ) -> Result<Self, ReportError> {
        let (start, end) = crate::report::day_bounds(now.date());
        let logins = store.login_groups(start, end).await?;
        Ok(TodaySource {
            store,
            logins,
            recordings,
            now,
        })
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
        Ok(self.recordings.as_ref().clone())
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

/// One scan of the recordings folder.
struct Scan {
    root: PathBuf,
    at: OffsetDateTime,
    folders: Folders,
    found: Arc<Vec<RecordingFact>>,
}

/// The recordings folder seen from above: its own modification time and
/// each day folder's, by name. A file added, replaced (the atomic writes of
/// sidecars and review histories) or removed in a day folder changes that
/// folder's time; a day folder added or removed changes the root's.
type Folders = Vec<(String, Option<std::time::SystemTime>)>;

fn folders(root: &Path) -> Folders {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut out = vec![(String::new(), modified(root))];
    if let Ok(dir) = std::fs::read_dir(root) {
        for e in dir.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push((
                    e.file_name().to_string_lossy().into_owned(),
                    modified(&e.path()),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The last scan, per node (this process). Held across a scan, so loads
/// that find it stale wait for one scan rather than each making their own.
static SCAN: tokio::sync::Mutex<Option<Scan>> = tokio::sync::Mutex::const_new(None);

/// The recordings on disk: the last scan while no folder changed and it is
/// younger than [`SCAN_TTL`], else a new one; and when they were read.
async fn recordings(
    config: &Config,
    store: &Store,
    now: OffsetDateTime,
) -> Result<(Arc<Vec<RecordingFact>>, OffsetDateTime), ReportError> {
    let mut last = SCAN.lock().await;
    let root = config.recordings.clone();
    let seen = tokio::task::spawn_blocking(move || folders(&root))
        .await
        .map_err(|e| ReportError::Recordings(e.to_string()))?;
    if let Some(s) = last.as_ref()
        && s.root == config.recordings
        && s.folders == seen
        && now - s.at < SCAN_TTL
        && s.at <= now
    {
        return Ok((s.found.clone(), s.at));
    }
    let found = Arc::new(LiveSource::new(config, store.clone()).recordings().await?);
    *last = Some(Scan {
        root: config.recordings.clone(),
        at: now,
        folders: seen,
        found: found.clone(),
    });
    Ok((found, now))
}

/// Today's figures from the report's own detectors (see [`TodaySource`]).
pub struct TodayReport {
    /// Oldest first.
    pub to_review: Vec<ReviewEntry>,
    pub to_review_total: usize,
    /// When the recordings folder was read.
    pub recordings_at: OffsetDateTime,
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
    let (found, recordings_at) = recordings(config, store, now).await?;
    let source = TodaySource::new(store.clone(), now, found).await?;
    let report = crate::report::generate(config, &source, policy, now.date(), now).await?;
    let mut to_review = report.recordings_to_review;
    // Oldest first: the longest waiting comes first.
    to_review.sort_by(|a, b| {
        (a.started_at.as_deref(), &a.date, &a.id).cmp(&(b.started_at.as_deref(), &b.date, &b.id))
    });
    Ok(TodayReport {
        to_review_total: to_review.len(),
        to_review,
        recordings_at,
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
    pub to_review: Vec<ReviewEntry>,
    pub to_review_total: usize,
    /// When the recordings folder was read (auditors only).
    pub recordings_at: Option<OffsetDateTime>,
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
        let mut to_review = report.to_review;
        to_review.truncate(REVIEW_LISTED);
        // Latest first.
        let mut suspicious = report.suspicious;
        suspicious.reverse();
        suspicious.truncate(SUSPICIOUS_LISTED);
        Today {
            counts,
            to_review,
            to_review_total: report.to_review_total,
            recordings_at: Some(report.recordings_at),
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
            recordings_at: None,
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
            @if let Some(at) = d.recordings_at {
                p.hint #recordings-at {
                    "Recordings as of " (ts(at)) " ("
                    ((d.now - at).whole_seconds().max(0)) " s ago; the folder is read again when it changes, and at least every "
                    (SCAN_TTL.whole_seconds()) " s)."
                }
            }
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

    /// What `recordings` keys its cache on: a recording begun, a sidecar
    /// or review history written by rename, a day folder added: each is a
    /// different `folders`, so the next load scans again.
    #[test]
    fn folders_change_with_every_write_a_scan_would_see() {
        let dir = std::env::temp_dir().join(format!("gh-today-folders-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("2026-12-07")).unwrap();
        let mut seen = vec![folders(&dir)];
        let wait = || std::thread::sleep(std::time::Duration::from_millis(20));
        wait();
        std::fs::write(dir.join("2026-12-07/a.cast"), b"{}\n").unwrap();
        seen.push(folders(&dir));
        wait();
        std::fs::write(dir.join("2026-12-07/.a.review.tmp"), b"[]").unwrap();
        std::fs::rename(
            dir.join("2026-12-07/.a.review.tmp"),
            dir.join("2026-12-07/a.review.json"),
        )
        .unwrap();
        seen.push(folders(&dir));
        wait();
        std::fs::create_dir(dir.join("2026-12-08")).unwrap();
        seen.push(folders(&dir));
        for w in seen.windows(2) {
            assert_ne!(w[0], w[1]);
        }
        // Unchanged folders read the same.
        assert_eq!(folders(&dir), folders(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
        assert_eq!(today.to_review_total, live.recordings_to_review.len());
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
