//! The console's HTML, as maud templates. maud escapes every interpolated
//! value, so a hostile user name, command line or screen text is shown as
//! text; nothing here uses `PreEscaped`. Pages carry no inline script or
//! style: behaviour is in `/assets/console.js`, driven by `data-`
//! attributes.

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};
use time::OffsetDateTime;

use super::auth::Viewer;
use super::kind::SessionKind;
use crate::audit::AuditRecord;
use crate::grants::{Grant, GrantState};
use crate::recording::{Hit, RecordingInfo};
use crate::store::SessionRow;

/// Pauses longer than this play as this long in the player (asciinema's
/// `idleTimeLimit`; the page passes it to the script, and search hits are
/// placed on the squeezed timeline, see `pages::player_times`).
pub const IDLE_LIMIT: f64 = 2.0;

/// `2026-12-02 13:45:10Z`.
pub fn ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Text from users and targets (reasons, commands, notes, screen text,
/// event details) with terminal escapes, control characters and Unicode
/// bidirectional controls removed, as the report and the CLI show it:
/// maud escapes HTML, this keeps the text from reading differently than
/// it is.
fn t(s: &str) -> std::borrow::Cow<'_, str> {
    crate::report::escape::clean(s)
}

fn dash(v: &Option<String>) -> std::borrow::Cow<'_, str> {
    t(v.as_deref().unwrap_or("-"))
}

pub fn layout(viewer: Option<&Viewer>, title: &str, body: Markup) -> Markup {
    page(viewer, false, title, body)
}

/// The page around `body`. `anonymous_nav`: the navigation even without
/// a viewer (error pages, which do not know who asks; each link checks).
fn page(viewer: Option<&Viewer>, anonymous_nav: bool, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " - Gatehouse" }
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/console.css";
                link rel="stylesheet" href="/assets/asciinema-player.css";
                script src="/assets/asciinema-player.min.js" defer {}
                script src="/assets/console.js" defer {}
            }
            body {
                header {
                    span.brand { "Gatehouse review console" }
                    @if let Some(v) = viewer {
                        nav {
                            @if v.sees_all() || v.approver { a href="/today" { "Today" } }
                            a href="/sessions" { "Sessions" }
                            a href="/grants" { "Grants" }
                            @if v.sees_all() { a href="/reports" { "Reports" } }
                            @if v.sees_all() { a href="/review" { "Access review" } }
                        }
                        span.who {
                            (v.user)
                            @if v.auditor { " · auditor" }
                            @if v.approver { " · approver" }
                        }
                        form.inline method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(v.csrf);
                            button type="submit" { "Sign out" }
                        }
                    } @else if anonymous_nav {
                        nav {
                            a href="/today" { "Today" }
                            a href="/sessions" { "Sessions" }
                            a href="/grants" { "Grants" }
                            a href="/reports" { "Reports" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An error (or a bare message) with a way back into the console.
pub fn error_page(status: StatusCode, message: &str) -> Markup {
    page(
        None,
        true,
        status.canonical_reason().unwrap_or("Error"),
        html! {
            p.error { (message) }
            nav.back {
                a #home href="/sessions" { "Back to the console" }
                @if status == StatusCode::UNAUTHORIZED {
                    " · signed out? Get a new link with " code { "ssh USER@BASTION web" }
                }
            }
        },
    )
}

/// The page a sign-in link opens: one button, which POSTs the link back.
pub fn login_confirm(token: &str) -> Markup {
    let body = html! {
        p { "This link signs you in to the review console. It works once, for 60 seconds." }
        form method="post" action={ "/login/" (token) } {
            button type="submit" id="sign-in" { "Sign in" }
        }
    };
    layout(None, "Sign in", body)
}

pub fn signed_in(user: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                // A same-site navigation, so the SameSite=Strict cookie
                // set by this response is sent with it.
                meta http-equiv="refresh" content="0;url=/";
                title { "Signed in - Gatehouse" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body { main { p { "Signed in as " (user) ". " a href="/" { "Continue" } } } }
        }
    }
}

/// The sessions list's filter form values, as typed.
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct SessionQuery {
    pub user: String,
    pub server: String,
    pub account: String,
    pub from: String,
    pub to: String,
    pub recorded: String,
    pub review: String,
    pub grant: String,
    pub live: String,
    /// `yes`: command-mode calls and refused logins too.
    pub all: String,
    /// `duration` (longest first); otherwise by start, newest first.
    pub sort: String,
    /// The page cursor when sorted by duration: the last row's duration
    /// (milliseconds) and id.
    pub after_ms: String,
    pub after_id: String,
    pub before_ts: String,
    pub before_id: String,
}

impl SessionQuery {
    /// This query as a `/sessions?...` link, without its page cursor.
    fn link(&self, change: impl FnOnce(&mut SessionQuery)) -> String {
        let mut q = self.clone();
        q.before_ts.clear();
        q.before_id.clear();
        q.after_ms.clear();
        q.after_id.clear();
        change(&mut q);
        let pairs = serde_urlencoded::to_string(&q).unwrap_or_default();
        // Empty fields say nothing: leave them out of the link.
        let kept: Vec<&str> = pairs.split('&').filter(|p| !p.ends_with('=')).collect();
        if kept.is_empty() || kept == [""] {
            "/sessions".into()
        } else {
            format!("/sessions?{}", kept.join("&"))
        }
    }
}

fn select(name: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        select name=(name) id=(name) {
            @for (value, label) in options {
                option value=(value) selected[*value == current] { (label) }
            }
        }
    }
}

fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// An RFC 3339 time in the short format ([`ts`]); as it is when it does
/// not parse.
pub fn rfc3339_short(s: &str) -> String {
    parse_rfc3339(s).map(ts).unwrap_or_else(|| s.to_string())
}

/// `1h 02m`, `3m 05s`, `12s`: how long, the short way every page uses.
pub fn short_duration(d: time::Duration) -> String {
    let s = d.whole_seconds().max(0);
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h >= 48 {
        format!("{}d {:02}h", h / 24, h % 24)
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {sec:02}s")
    } else {
        format!("{sec}s")
    }
}

/// `1.2 MB`: bytes, short.
pub fn short_bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 1000.0 {
        format!("{n} B")
    } else if n < 1e6 {
        format!("{:.1} kB", n / 1e3)
    } else if n < 1e9 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.1} GB", n / 1e9)
    }
}

/// A session's duration: to its end, or to `now` while live.
pub fn session_duration(s: &SessionRow, now: OffsetDateTime) -> time::Duration {
    s.ended_at.unwrap_or(now) - s.started_at
}

fn kind_cell(k: &SessionKind) -> Markup {
    html! {
        span class={ "kind kind-" (k.word().replace(' ', "-").to_lowercase()) } { (k.word()) }
        @if let Some(w) = k.what() {
            " " code { (t(w)) }
        }
    }
}

/// One row of the list, with the review state of its first recording.
pub struct ListedSession {
    pub row: SessionRow,
    pub review: Option<&'static str>,
    pub kind: SessionKind,
    /// Blocked commands in the session.
    pub blocked: i64,
    /// The login's factors, when its `auth.success` names them.
    pub factors: Option<String>,
}

/// Rows with a blocked command or a refusal stand out.
fn row_class(s: &ListedSession) -> Option<&'static str> {
    match (&s.kind, s.blocked > 0) {
        (SessionKind::Refused(_), _) => Some("refused"),
        (_, true) => Some("has-blocked"),
        _ => None,
    }
}

/// The pick-lists of the filters: names from the policy in force.
pub struct PickLists {
    pub users: Vec<String>,
    pub servers: Vec<String>,
}

pub fn sessions(
    viewer: &Viewer,
    q: &SessionQuery,
    rows: &[ListedSession],
    picks: &PickLists,
    next: Option<String>,
    now: OffsetDateTime,
) -> Markup {
    let any_yes_no = [("", "any"), ("yes", "yes"), ("no", "no")];
    let by_duration = q.sort == "duration";
    let show_all = q.all == "yes";
    let body = html! {
        form.filters method="get" action="/sessions" {
            @if viewer.sees_all() {
                label { "User " input name="user" value=(q.user) size="10" list="pick-users" autocomplete="off"; }
            }
            label { "Server " input name="server" value=(q.server) size="10" list="pick-servers" autocomplete="off"; }
            label { "Account " input name="account" value=(q.account) size="8"; }
            label { "From " input type="date" name="from" value=(q.from); }
            label { "To " input type="date" name="to" value=(q.to); }
            label { "Recorded " (select("recorded", &q.recorded, &any_yes_no)) }
            @if viewer.sees_all() {
                label { "Review " (select("review", &q.review, &[("", "any"), ("unreviewed", "unreviewed"), ("reviewed", "reviewed"), ("flagged", "flagged")])) }
            }
            label { "Under a grant " (select("grant", &q.grant, &any_yes_no)) }
            label { "Live " (select("live", &q.live, &any_yes_no)) }
            label { input type="checkbox" name="all" value="yes" id="all" checked[show_all]; " command-mode calls and refusals" }
            @if by_duration { input type="hidden" name="sort" value="duration"; }
            button type="submit" id="apply" { "Filter" }
            a href="/sessions" { "Clear" }
            datalist #pick-users { @for u in &picks.users { option value=(u) {} } }
            datalist #pick-servers { @for s in &picks.servers { option value=(s) {} } }
        }
        p.toggles {
            @if show_all {
                a #toggle-all href=(q.link(|q| q.all.clear())) { "Hide command-mode calls and refusals" }
            } @else {
                a #toggle-all href=(q.link(|q| q.all = "yes".into())) { "Show command-mode calls and refusals" }
            }
            " · filters match the start of a name, in any case"
        }
        div.scroll {
        table.list id="sessions" {
            thead { tr {
                th { a #sort-start href=(q.link(|q| q.sort.clear())) { "Started (UTC)" @if !by_duration { " ↓" } } }
                th { "User" } th { "Server" } th { "Account" } th { "Kind" }
                th { a #sort-duration href=(q.link(|q| q.sort = "duration".into())) { "Duration" @if by_duration { " ↓" } } }
                th { "Bytes up / down" } th { "Blocked" } th { "Factors" }
                th { "From" } th { "State" } th { "Recording" } th { "Grant" }
            } }
            tbody {
                @for s in rows {
                    tr data-session=(s.row.id) data-kind=(s.kind.word()) class=[row_class(s)] {
                        td { a href={ "/sessions/" (s.row.id) } { (ts(s.row.started_at)) } }
                        td { (s.row.user) }
                        td { (dash(&s.row.server)) }
                        td { (dash(&s.row.account)) }
                        td.kind { (kind_cell(&s.kind)) }
                        td.duration { (short_duration(session_duration(&s.row, now))) }
                        td.bytes { (short_bytes(s.row.bytes_up)) " / " (short_bytes(s.row.bytes_down)) }
                        td.blocked { @if s.blocked > 0 { span.blocked { (s.blocked) } } @else { "0" } }
                        td { (s.factors.as_deref().map(t).unwrap_or("-".into())) }
                        td { (s.row.source) }
                        td {
                            @if s.row.ended_at.is_none() {
                                span.live { "live" } " "
                                a href={ "/sessions/" (s.row.id) "/live" } { "watch" }
                            } @else {
                                "ended"
                            }
                        }
                        td {
                            // Review states are the auditors' (item: a reviewed
                            // engineer does not read his reviewers' flags).
                            @if !s.row.recorded { "-" }
                            @else if viewer.sees_all() { (s.review.unwrap_or("recorded")) }
                            @else { "recorded" }
                        }
                        td { @if let Some(g) = s.row.grant_id { a href={ "/grants#grant-" (g) } { "#" (g) } } @else { "-" } }
                    }
                }
                @if rows.is_empty() { tr { td colspan="13" { "No sessions match." } } }
            }
        }
        }
        @if let Some(n) = next { p { a.next href=(n) { "More sessions →" } } }
    };
    layout(Some(viewer), "Sessions", body)
}

/// The grant a session ran under, as its page shows it.
pub struct SessionGrant {
    pub id: i64,
    pub reason: String,
    pub approved_by: Option<String>,
    pub state: String,
}

pub fn session_detail(
    viewer: &Viewer,
    s: &SessionRow,
    grant: Option<&SessionGrant>,
    recordings: &[RecordingInfo],
    events: &[AuditRecord],
    now: OffsetDateTime,
) -> Markup {
    let live = s.ended_at.is_none();
    let body = html! {
        dl.facts {
            dt { "Session" } dd { code { (s.id) } }
            dt { "User" } dd { (s.user) }
            dt { "Server" } dd { (dash(&s.server)) }
            dt { "Account" } dd { (dash(&s.account)) }
            dt { "From" } dd { (s.source) }
            dt { "Node" } dd { (s.node) }
            dt { "Mode" } dd { (dash(&s.mode)) }
            dt { "Started" } dd { (ts(s.started_at)) }
            dt { "Ended" } dd {
                @if let Some(e) = s.ended_at { (ts(e)) } @else { span.live { "live" } }
            }
            dt { "Duration" } dd #duration { (short_duration(session_duration(s, now))) @if live { " so far" } }
            dt { "Grant" } dd #grant {
                @if let Some(g) = grant {
                    a href={ "/grants#grant-" (g.id) } { "#" (g.id) } " · " (t(&g.reason))
                    " · approved by " (dash(&g.approved_by)) " · " (g.state)
                } @else if let Some(g) = s.grant_id { a href={ "/grants#grant-" (g) } { "#" (g) } }
                @else { "-" }
            }
            dt { "Bytes up / down" } dd { (short_bytes(s.bytes_up)) " / " (short_bytes(s.bytes_down)) }
            dt { "Exit status" } dd { @if let Some(x) = s.exit_status { (x) } @else { "-" } }
            dt { "End reason" } dd { (dash(&s.end_reason)) }
        }
        @if live {
            p { a.button href={ "/sessions/" (s.id) "/live" } { "Watch live" } }
            @if viewer.sees_all() { (kill_form(viewer, &s.id)) }
        }
        h2 { "Recordings" }
        @if recordings.is_empty() { p { "None." } }
        ul.recordings {
            @for r in recordings {
                li {
                    a href={ "/recordings/" (r.id) } { (r.id) }
                    @if viewer.sees_all() { " · " (r.state.as_str()) }
                    @if let Some(c) = r.meta.as_ref().and_then(|m| m.command.as_ref()) {
                        " · " code { (t(c)) }
                    }
                }
            }
        }
        h2 { "Audit events: timeline" }
        (timeline(s.started_at, events))
    };
    layout(Some(viewer), "Session", body)
}

/// Whether an event is a refusal or a block: highlighted.
fn is_refusal(kind: &str) -> bool {
    matches!(
        kind,
        "command.blocked" | "access.denied" | "forward.denied" | "channel.refused"
    )
}

fn d<'a>(e: &'a AuditRecord, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    match e.detail.get(key)? {
        serde_json::Value::String(s) => Some(t(s)),
        serde_json::Value::Null => None,
        other => Some(std::borrow::Cow::Owned(other.to_string())),
    }
}

/// One line saying what an event was.
pub fn summary(e: &AuditRecord) -> String {
    let get = |k: &str| d(e, k).map(|c| c.into_owned());
    let or = |k: &str| get(k).unwrap_or_else(|| "?".into());
    match e.kind.as_str() {
        "exec" => match get("kind").as_deref() {
            Some("shell") => "shell".into(),
            Some("subsystem") => format!("subsystem {}", or("subsystem")),
            _ => or("command"),
        },
        "command.blocked" => format!("blocked: {} ({})", or("command"), or("reason")),
        "access.denied" | "forward.denied" => format!(
            "refused {}: {}{}",
            or("code"),
            get("action").map(|a| format!("{a}: ")).unwrap_or_default(),
            or("reason")
        ),
        "channel.refused" => format!("channel refused: {}", or("reason")),
        "sftp.op" => {
            let mut line = format!("{} {}", or("op"), or("path"));
            if let Some(to) = get("to").or_else(|| get("target")) {
                line.push_str(&format!(" → {to}"));
            }
            line.push_str(&format!(" ({})", or("status")));
            line
        }
        "forward.open" | "jump.open" => format!("to {}", or("destination")),
        "forward.close" => format!("closed {}", get("destination").unwrap_or_default()),
        "session.start" => format!("{} mode, rule {}", or("mode"), or("rule")),
        "session.end" => format!(
            "ended: {} (exit {})",
            or("reason"),
            get("exit_status").unwrap_or_else(|| "-".into())
        ),
        "session.killed" => format!("ended by {}: {}", or("requested_by"), or("reason")),
        "auth.success" => match get("factors") {
            Some(f) => format!("signed in as {} ({f})", or("login")),
            None => format!("signed in as {}", or("login")),
        },
        "recording.start" => "recording".into(),
        "recording.reviewed" => format!("reviewed by {}", e.user.as_deref().unwrap_or("?")),
        _ => {
            // Whatever else: its first few fields.
            let mut parts = Vec::new();
            if let Some(obj) = e.detail.as_object() {
                for (k, v) in obj.iter().take(3) {
                    let v = match v {
                        serde_json::Value::String(s) => t(s).into_owned(),
                        other => other.to_string(),
                    };
                    parts.push(format!("{k}={v}"));
                }
            }
            parts.join(" ")
        }
    }
}

/// `+1m 05s`: how long after `start`.
fn relative(start: OffsetDateTime, ts_text: &str) -> String {
    match OffsetDateTime::parse(ts_text, &time::format_description::well_known::Rfc3339) {
        Ok(at) if at >= start => format!("+{}", short_duration(at - start)),
        Ok(at) => format!("-{}", short_duration(start - at)),
        Err(_) => ts_text.to_string(),
    }
}

fn timeline(start: OffsetDateTime, events: &[AuditRecord]) -> Markup {
    html! {
        div.scroll {
        table.list id="events" {
            thead { tr { th { "When" } th { "Kind" } th { "What" } } }
            tbody {
                @for e in events {
                    tr class=[is_refusal(&e.kind).then_some("refusal")] data-kind=(e.kind) {
                        td title=(e.ts) { (relative(start, &e.ts)) }
                        td { (e.kind) }
                        td {
                            span.summary { (summary(e)) }
                            details { summary { "raw" } pre { (t(&serde_json::to_string_pretty(&e.detail).unwrap_or_default())) } }
                        }
                    }
                }
                @if events.is_empty() { tr { td colspan="3" { "No events." } } }
            }
        }
        }
    }
}

fn kill_form(viewer: &Viewer, id: &str) -> Markup {
    html! {
        form.kill method="post" action={ "/sessions/" (id) "/kill" } {
            input type="hidden" name="csrf" value=(viewer.csrf);
            label { "Reason shown to the user " input name="reason" id="kill-reason" required size="40"; }
            button type="submit" id="kill" { "End session" }
        }
    }
}

/// `hits`: each with where it plays on the player's (squeezed) timeline.
pub fn recording(
    viewer: &Viewer,
    r: &RecordingInfo,
    query: &str,
    hits: Option<&[(Hit, f64)]>,
) -> Markup {
    let meta = r.meta.as_ref();
    let body = html! {
        dl.facts.compact {
            dt { "Recording" } dd { code { (r.id) } }
            @if let Some(m) = meta {
                dt { "User" } dd { (m.user) }
                dt { "Server" } dd { (m.server) }
                dt { "Account" } dd { (m.account) }
                dt { "From" } dd { (m.source) }
                dt { "Started" } dd { (rfc3339_short(&m.started_at)) }
                dt { "Duration" } dd #rec-duration {
                    @match m.ended_at.as_deref().and_then(|e| Some((parse_rfc3339(&m.started_at)?, parse_rfc3339(e)?))) {
                        Some((a, b)) => (short_duration(b - a)),
                        None => "-",
                    }
                }
                dt { "Command" } dd { @if let Some(c) = &m.command { code.command { (t(c)) } } @else { "(shell)" } }
                dt { "Session" } dd { a href={ "/sessions/" (m.session) } { (m.session) } }
            }
            @if viewer.sees_all() {
                dt { "Review state" } dd id="review-state" { (r.state.as_str()) }
            }
        }
        div #player data-cast={ "/recordings/" (r.id) "/cast" } data-idle-limit=(IDLE_LIMIT) {}
        p.hint { "Keys: space play/pause, ← → seek 5 s, [ ] previous/next marker, 0-9 jump to 0-90 %, . step a frame, f full screen. Speed: "
            @for s in ["0.5", "1", "2", "4"] { button.speed type="button" data-speed=(s) class=[(s == "1").then_some("active")] { (s) "×" } " " }
            " now " strong #speed { "1×" }
        }
        form.search method="get" action={ "/recordings/" (r.id) } {
            label { "Search the screen " input name="q" id="q" value=(query) size="30"; }
            button type="submit" id="search" { "Search" }
        }
        div #search-results {
        @if let Some(hits) = hits {
            @if hits.is_empty() { p #hits { "No match for " q { (query) } "." } }
            @else {
                ol #hits {
                    @for (h, at) in hits {
                        li {
                            button.seek type="button" data-time=(format!("{at:.3}"))
                                title=(format!("{:.1} s into the session; pauses over {IDLE_LIMIT} s play shorter", h.time)) {
                                (format!("{:.1} s", h.time))
                            }
                            " " (h.source.as_str()) ": " code { (t(&h.text)) }
                        }
                    }
                }
            }
        }
        }
        @if viewer.sees_all() {
            h2 { "Review" }
            form.review method="post" action={ "/recordings/" (r.id) "/review" } {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label { "Note " input name="note" id="note" size="40"; }
                label { input type="checkbox" name="flag" value="1" id="flag"; " flag" }
                button type="submit" id="review" { "Mark reviewed" }
            }
        }
        // Review notes and flags are for auditors only.
        @if viewer.sees_all() && !r.reviews.is_empty() {
            h2 { "Reviews" }
            ul #reviews {
                @for rv in &r.reviews {
                    li { (rv.at) " · " (rv.by) " · " (if rv.flagged { "flagged" } else { "reviewed" })
                        @if let Some(n) = &rv.note { " · " (t(n)) } }
                }
            }
        }
    };
    layout(Some(viewer), "Recording", body)
}

pub fn live(viewer: &Viewer, s: &SessionRow) -> Markup {
    let body = html! {
        p { "Session " a href={ "/sessions/" (s.id) } { code { (s.id) } } " of " (s.user)
            " on " (dash(&s.server)) " as " (dash(&s.account)) ", from " (s.source) "." }
        div #player data-live={ "/sessions/" (s.id) "/events" } data-idle-limit=(IDLE_LIMIT) {}
        p #live-state {}
        @if viewer.sees_all() && s.ended_at.is_none() { (kill_form(viewer, &s.id)) }
    };
    layout(Some(viewer), "Live session", body)
}

/// The grants page's filter.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default)]
pub struct GrantQuery {
    /// `pending`, `active`, `approved`, `denied`, `revoked`, `expired`,
    /// or empty for all.
    pub state: String,
}

/// What an approver checks before deciding a pending request: the
/// requester's recent sessions on that server and their other grants.
pub struct RequestContext {
    pub recent: Vec<SessionRow>,
    pub other_grants: Vec<Grant>,
}

/// A grant's state as shown and filtered: `active` for an approved grant
/// in force, else its stored state (an approved grant past its expiry
/// the sweeper has not reached yet reads `expired`).
pub fn grant_state(g: &Grant, now: OffsetDateTime) -> &'static str {
    if g.is_active(now) {
        "active"
    } else if g.state == GrantState::Approved && g.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        g.state.as_str()
    }
}

fn list_or(items: Vec<String>, empty: &'static str) -> String {
    if items.is_empty() {
        empty.to_string()
    } else {
        items.join(", ")
    }
}

fn expiry(g: &Grant, now: OffsetDateTime) -> Markup {
    html! {
        @match (g.expires_at, g.state) {
            (Some(e), _) => {
                (ts(e))
                @if e > now { br; span.left { "in " (short_duration(e - now)) } }
                @else { br; span.left { (short_duration(now - e)) " ago" } }
            }
            (None, GrantState::Approved) => "never (permanent)",
            (None, GrantState::Pending) => {
                @match g.duration_secs {
                    Some(d) => { (short_duration(time::Duration::seconds(d))) " after approval" }
                    None => "never (permanent)",
                }
            }
            (None, _) => "-",
        }
    }
}

pub fn grants(
    viewer: &Viewer,
    q: &GrantQuery,
    grants: &[Grant],
    contexts: &std::collections::HashMap<i64, RequestContext>,
    now: OffsetDateTime,
) -> Markup {
    let states = [
        ("", "all"),
        ("pending", "pending"),
        ("active", "active"),
        ("approved", "approved"),
        ("denied", "denied"),
        ("revoked", "revoked"),
        ("expired", "expired"),
    ];
    let body = html! {
        form.filters method="get" action="/grants" {
            label { "State " (select("state", &q.state, &states)) }
            button type="submit" id="apply" { "Filter" }
            span.counts { (grants.len()) " shown" }
        }
        div.scroll {
        table.list id="grants" {
            thead { tr {
                th { "#" } th { "For" } th { "Server" } th { "Accounts" } th { "Ports" }
                th { "From" } th { "Why" } th { "Requested" } th { "How long" } th { "Expires" }
                th { "State" } th { "Decided by" } th { "Note" } th {}
            } }
            tbody {
                @for g in grants {
                    @let state = grant_state(g, now);
                    tr id={ "grant-" (g.id) } data-state=(state) {
                        td { (g.id) }
                        td { (g.user) @if g.requested_by != g.user { br; span.hint { "asked by " (g.requested_by) } } }
                        td { (g.server) }
                        td { (list_or(g.accounts.clone(), "the default account")) }
                        td.ports { (list_or(g.ports.iter().map(u16::to_string).collect(), "none")) }
                        td.sources { (list_or(g.from.iter().map(|n| n.to_string()).collect(), "any")) }
                        td { (t(&g.reason)) }
                        td.requested { (ts(g.requested_at)) }
                        td { (match g.duration_secs {
                            Some(s) => short_duration(time::Duration::seconds(s)),
                            None => "permanent".into(),
                        }) }
                        td.expires { (expiry(g, now)) }
                        td.state { (state) }
                        td.decided {
                            @match g.state {
                                GrantState::Revoked => {
                                    "revoked by " (dash(&g.decided_by))
                                    @if let Some(a) = &g.approved_by { br; span.hint { "approved by " (a) } }
                                }
                                GrantState::Pending => "-",
                                _ => (dash(&g.decided_by)),
                            }
                            @if let Some(at) = g.decided_at { br; span.hint { (ts(at)) } }
                        }
                        td.note { (dash(&g.decision_note)) }
                        td {
                            @if g.state == GrantState::Pending && viewer.approver && g.requested_by != viewer.user {
                                form.inline method="post" action={ "/grants/" (g.id) "/approve" } {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    button type="submit" class="approve" { "Approve" }
                                }
                                form.inline method="post" action={ "/grants/" (g.id) "/deny" } {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    input name="reason" placeholder="why not" size="12";
                                    button type="submit" class="deny" { "Deny" }
                                }
                            }
                            @if (g.state == GrantState::Pending || g.is_active(now))
                                && (viewer.approver || g.user == viewer.user || g.requested_by == viewer.user) {
                                form.inline method="post" action={ "/grants/" (g.id) "/revoke" } {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    button type="submit" class="revoke" id={ "revoke-" (g.id) } { "Revoke" }
                                }
                            }
                        }
                    }
                    @if let Some(c) = contexts.get(&g.id) {
                        tr.context id={ "context-" (g.id) } {
                            td {}
                            td colspan="13" {
                                strong { "Before deciding: " }
                                (g.user) "'s last sessions on " (g.server) ": "
                                @if c.recent.is_empty() { "none" }
                                @for (i, s) in c.recent.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    a href={ "/sessions/" (s.id) } { (ts(s.started_at)) }
                                    " (" (dash(&s.account)) ", " (short_duration(session_duration(s, now))) ")"
                                }
                                ". Other grants: "
                                @if c.other_grants.is_empty() { "none" }
                                @for (i, o) in c.other_grants.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    a href={ "#grant-" (o.id) } { "#" (o.id) } " " (o.server) " " (grant_state(o, now))
                                }
                                "."
                            }
                        }
                    }
                }
                @if grants.is_empty() { tr { td colspan="14" { "No grants." } } }
            }
        }
        }
    };
    layout(Some(viewer), "Grants", body)
}

pub fn reports(viewer: &Viewer, names: &[String]) -> Markup {
    let body = html! {
        @if names.is_empty() { p { "No reports yet." } }
        ul #reports {
            @for n in names {
                li { a href={ "/reports/" (n) } { (n) } }
            }
        }
    };
    layout(Some(viewer), "Daily reports", body)
}
