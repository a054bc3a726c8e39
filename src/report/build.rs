//! Correlation: one pass over the day's audit events
//! ([`DayBuilder::push`]), then [`DayBuilder::finish`] joins what it kept
//! with the sessions, recordings, grants, policy and vault facts.
//!
//! Memory is bounded by what the report shows, not by the number of
//! events: per event only counters change, except for small per-item
//! records (one per session, per failed login as 16 bytes, per distinct
//! user and source address) and capped lists ([`LIST_CAP`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::Value;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

use super::detect;
use super::input::{ReportInput, ReviewState, Through};
use super::model::*;
use crate::audit::{AuditRecord, EventKind};
use crate::grants::GrantState;

/// Capped lists keep at most this many entries (the first, in time order);
/// `summary.omitted` counts the rest.
pub const LIST_CAP: usize = 1000;
/// No login for this many days makes an account dormant.
pub const DORMANT_DAYS: i64 = 90;
/// Accounts expiring within this many days are named.
pub const EXPIRY_WARN_DAYS: i64 = 14;

/// The kinds of event [`DayBuilder::push`] reads. Of every other kind (the
/// bulk of a busy day: commands, SFTP operations, forwards) it only counts
/// the events, so a source may count those in the database instead of
/// passing each one ([`DayBuilder::count_unread`]). A kind the builder
/// starts to read must be added here (a test checks the others are only
/// counted).
pub const KINDS_READ: [EventKind; 16] = [
    EventKind::AuthSuccess,
    EventKind::AuthFailure,
    EventKind::AuthLockout,
    EventKind::AccessDenied,
    EventKind::ForwardDenied,
    EventKind::CommandBlocked,
    EventKind::HostkeyMismatch,
    EventKind::SessionStart,
    EventKind::SessionEnd,
    EventKind::GrantRequested,
    EventKind::GrantApproved,
    EventKind::GrantDenied,
    EventKind::GrantRevoked,
    EventKind::GrantExpired,
    EventKind::PolicyReloaded,
    EventKind::PolicyRejected,
];

/// The kinds of [`KINDS_READ`] that [`super::generate`] takes as groups
/// ([`DayBuilder::push_logins`]) instead of one event at a time: the
/// builder only counts successful logins and keeps each user's last and
/// each (user, source) pair's first, so a day's hundred thousand logins
/// cross from the database as a few thousand groups.
pub const KINDS_GROUPED: [EventKind; 1] = [EventKind::AuthSuccess];

const TS_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// `2026-03-10T08:00:00Z`.
pub fn ts(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(TS_FORMAT)
        .unwrap_or_else(|_| t.to_string())
}

/// `2026-03-10`.
pub fn day(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The day as `[start, end)` in UTC.
pub fn day_bounds(date: Date) -> (OffsetDateTime, OffsetDateTime) {
    let start = date.midnight().assume_utc();
    (start, start + Duration::days(1))
}

fn parse_ts(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// A stored timestamp in the report's form; unparsable text is kept as is.
fn norm_ts(s: &str) -> String {
    parse_ts(s).map(ts).unwrap_or_else(|| s.to_string())
}

/// Builds the report from in-memory input (see [`ReportInput::events`]).
pub fn build(input: &ReportInput, date: Date) -> Report {
    let mut b = DayBuilder::new(date);
    for ev in &input.events {
        b.push(ev);
    }
    b.finish(input)
}

/// A list that keeps its first [`LIST_CAP`] entries and counts them all.
#[derive(Debug)]
struct Capped<T> {
    items: Vec<T>,
    total: u64,
}

impl<T> Default for Capped<T> {
    fn default() -> Self {
        Capped {
            items: Vec::new(),
            total: 0,
        }
    }
}

impl<T> Capped<T> {
    /// Counts one entry; builds it only if it will be kept.
    fn push_with(&mut self, f: impl FnOnce() -> T) {
        self.total += 1;
        if self.items.len() < LIST_CAP {
            self.items.push(f());
        }
    }
    fn omitted(&self) -> u64 {
        self.total.saturating_sub(self.items.len() as u64)
    }
}

/// Users and source addresses seen in authentication events, as small ids.
#[derive(Debug, Default)]
struct Names {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }
    fn name(&self, id: u32) -> &str {
        self.names
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// A session as its start and end events tell it.
#[derive(Debug, Default, Clone)]
struct EvSession {
    user: Option<String>,
    server: Option<String>,
    account: Option<String>,
    source: Option<String>,
    start: Option<OffsetDateTime>,
    mode: Option<String>,
    grant: Option<i64>,
    /// From `session.start`; `None` when the day holds only the end.
    flagged: Option<bool>,
    end: Option<OffsetDateTime>,
    bytes_up: Option<i64>,
    bytes_down: Option<i64>,
    exit_status: Option<i64>,
    reason: Option<String>,
}

/// The streaming half of the report: feed it the day's events in order.
#[derive(Debug)]
pub struct DayBuilder {
    date: Date,
    start: OffsetDateTime,
    end: OffsetDateTime,
    events: u64,
    auth_success: u64,
    auth_failure: u64,
    names: Names,
    /// Failed logins: (unix ms, user, source).
    failures: Vec<(i64, Option<u32>, Option<u32>)>,
    /// First successful login of the day per (user, source), and its session.
    logins: HashMap<(u32, u32), (OffsetDateTime, Option<String>)>,
    last_login: HashMap<u32, OffsetDateTime>,
    denials: Capped<DenialEntry>,
    lockouts: Capped<LockoutEntry>,
    lockout_flags: Capped<Suspicious>,
    blocked: Capped<Suspicious>,
    hostkey: Capped<Suspicious>,
    sessions: HashMap<String, EvSession>,
    grants: Capped<GrantActivity>,
    grant_seen: HashSet<(i64, &'static str)>,
    grant_counts: BTreeMap<&'static str, u64>,
    policy: Capped<PolicyChange>,
    reloads: u64,
    rejections: u64,
}

fn s(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn i(v: &Value, key: &str) -> Option<i64> {
    let x = v.get(key)?;
    x.as_i64().or_else(|| x.as_f64().map(|f| f as i64))
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn ports(v: &Value, key: &str) -> Vec<u16> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64().and_then(|p| u16::try_from(p).ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn grant_action(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "grant.requested" => "requested",
        "grant.approved" => "approved",
        "grant.denied" => "denied",
        "grant.revoked" => "revoked",
        "grant.expired" => "expired",
        _ => return None,
    })
}

impl DayBuilder {
    pub fn new(date: Date) -> Self {
        let (start, end) = day_bounds(date);
        DayBuilder {
            date,
            start,
            end,
            events: 0,
            auth_success: 0,
            auth_failure: 0,
            names: Names::default(),
            failures: Vec::new(),
            logins: HashMap::new(),
            last_login: HashMap::new(),
            denials: Capped::default(),
            lockouts: Capped::default(),
            lockout_flags: Capped::default(),
            blocked: Capped::default(),
            hostkey: Capped::default(),
            sessions: HashMap::new(),
            grants: Capped::default(),
            grant_seen: HashSet::new(),
            grant_counts: BTreeMap::new(),
            policy: Capped::default(),
            reloads: 0,
            rejections: 0,
        }
    }

    /// Counts `n` events of the day that were not passed to [`push`]
    /// because their kind is not in [`KINDS_READ`].
    ///
    /// [`push`]: DayBuilder::push
    pub fn count_unread(&mut self, n: u64) {
        self.events = self.events.saturating_add(n);
    }

    /// Takes one group of the day's successful logins, as
    /// [`crate::store::Store::login_groups`] gives them: the same as
    /// pushing each of its `auth.success` events, except that the events
    /// are not counted in `summary.events` (the source counts them with
    /// the kinds it does not pass, [`DayBuilder::count_unread`]). The
    /// caller passes only the day's logins.
    pub fn push_logins(&mut self, g: &crate::store::LoginGroup) {
        self.auth_success = self.auth_success.saturating_add(g.count);
        let Some(user) = g.user.as_deref() else {
            return;
        };
        let u = self.names.id(user);
        let last = self.last_login.entry(u).or_insert(g.last);
        if g.last > *last {
            *last = g.last;
        }
        if let Some(src) = g.source.as_deref() {
            let sid = self.names.id(src);
            // Groups of one (user, source) arrive once; a login pushed as
            // an event as well keeps the earlier of the two.
            let entry = self
                .logins
                .entry((u, sid))
                .or_insert_with(|| (g.first, g.first_session.clone()));
            if g.first < entry.0 {
                *entry = (g.first, g.first_session.clone());
            }
        }
    }

    /// Takes one audit event of the day. Events outside the day are
    /// ignored, so a caller may pass a wider range.
    pub fn push(&mut self, ev: &AuditRecord) {
        // Stored timestamps are UTC; only an odd one needs parsing here.
        let when = match parse_ts(&ev.ts) {
            Some(t) => t,
            None => return,
        };
        if when < self.start || when >= self.end {
            return;
        }
        self.events += 1;
        let d = &ev.detail;
        match ev.kind.as_str() {
            "auth.success" => {
                self.auth_success += 1;
                if let Some(user) = ev.user.as_deref() {
                    let u = self.names.id(user);
                    let last = self.last_login.entry(u).or_insert(when);
                    if when > *last {
                        *last = when;
                    }
                    if let Some(src) = ev.source.as_deref() {
                        let sid = self.names.id(src);
                        self.logins
                            .entry((u, sid))
                            .or_insert_with(|| (when, ev.session.clone()));
                    }
                }
            }
            "auth.failure" => {
                self.auth_failure += 1;
                let u = ev.user.as_deref().map(|u| self.names.id(u));
                let src = ev.source.as_deref().map(|x| self.names.id(x));
                let ms = i64::try_from(when.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                self.failures.push((ms, u, src));
            }
            "auth.lockout" => {
                let until = s(d, "until").map(|u| norm_ts(&u));
                let failures = i(d, "failures");
                self.lockouts.push_with(|| LockoutEntry {
                    when: ts(when),
                    user: ev.user.clone(),
                    source: ev.source.clone(),
                    failures,
                    until: until.clone(),
                });
                self.lockout_flags.push_with(|| Suspicious {
                    kind: "lockout".into(),
                    when: ts(when),
                    user: ev.user.clone(),
                    server: None,
                    source: ev.source.clone(),
                    session: None,
                    detail: format!(
                        "account locked after {} failed logins{}",
                        failures.map_or_else(|| "repeated".to_string(), |n| n.to_string()),
                        until.map(|u| format!(", until {u}")).unwrap_or_default()
                    ),
                    count: failures.and_then(|n| u64::try_from(n).ok()),
                    until: None,
                });
            }
            "access.denied" | "forward.denied" | "command.blocked" => {
                self.denials.push_with(|| DenialEntry {
                    when: ts(when),
                    kind: ev.kind.clone(),
                    user: ev.user.clone(),
                    server: ev.server.clone(),
                    account: ev.account.clone(),
                    source: ev.source.clone(),
                    session: ev.session.clone(),
                    code: s(d, "code"),
                    reason: s(d, "reason"),
                    target: s(d, "command").or_else(|| s(d, "destination")),
                });
                if ev.kind == "command.blocked" {
                    self.blocked.push_with(|| Suspicious {
                        kind: "blocked_command".into(),
                        when: ts(when),
                        user: ev.user.clone(),
                        server: ev.server.clone(),
                        source: ev.source.clone(),
                        session: ev.session.clone(),
                        detail: format!(
                            "blocked command {:?}{}",
                            s(d, "command").unwrap_or_default(),
                            s(d, "rule")
                                .map(|r| format!(" (rule {r})"))
                                .unwrap_or_default()
                        ),
                        count: None,
                        until: None,
                    });
                }
            }
            "hostkey.mismatch" => {
                self.hostkey.push_with(|| Suspicious {
                    kind: "hostkey_mismatch".into(),
                    when: ts(when),
                    user: ev.user.clone(),
                    server: ev.server.clone(),
                    source: ev.source.clone(),
                    session: ev.session.clone(),
                    detail: format!(
                        "host key mismatch: expected {}, presented {}",
                        s(d, "expected").unwrap_or_else(|| "?".into()),
                        s(d, "presented").unwrap_or_else(|| "?".into())
                    ),
                    count: None,
                    until: None,
                });
            }
            "session.start" | "session.end" => {
                let Some(id) = ev.session.as_deref() else {
                    return;
                };
                let e = self.sessions.entry(id.to_string()).or_default();
                if e.user.is_none() {
                    e.user.clone_from(&ev.user);
                }
                if e.server.is_none() {
                    e.server.clone_from(&ev.server);
                }
                if e.account.is_none() {
                    e.account.clone_from(&ev.account);
                }
                if e.source.is_none() {
                    e.source.clone_from(&ev.source);
                }
                if ev.kind == "session.start" {
                    e.start = Some(when);
                    e.mode = s(d, "mode");
                    e.grant = i(d, "grant");
                    e.flagged = Some(d.get("flagged").and_then(Value::as_bool).unwrap_or(false));
                } else {
                    e.end = Some(when);
                    e.bytes_up = i(d, "bytes_up");
                    e.bytes_down = i(d, "bytes_down");
                    e.exit_status = i(d, "exit_status");
                    e.reason = s(d, "reason");
                    if e.start.is_none() {
                        // A session that began before the day: its start
                        // follows from its duration.
                        e.start = d
                            .get("duration_secs")
                            .and_then(Value::as_f64)
                            .filter(|x| x.is_finite() && *x >= 0.0)
                            .map(|x| when - Duration::seconds_f64(x));
                    }
                }
            }
            kind if kind.starts_with("grant.") => {
                let Some(action) = grant_action(kind) else {
                    return;
                };
                let Some(id) = i(d, "grant") else { return };
                *self.grant_counts.entry(action).or_default() += 1;
                self.grant_seen.insert((id, action));
                self.grants.push_with(|| GrantActivity {
                    when: ts(when),
                    action: action.into(),
                    grant: id,
                    user: s(d, "for"),
                    by: ev.user.clone(),
                    server: ev.server.clone(),
                    accounts: strings(d, "accounts"),
                    ports: ports(d, "ports"),
                    reason: s(d, "reason"),
                    state: s(d, "state"),
                    until: s(d, "expires_at").map(|u| norm_ts(&u)),
                });
            }
            "policy.reloaded" | "policy.rejected" => {
                let reloaded = ev.kind == "policy.reloaded";
                if reloaded {
                    self.reloads += 1;
                } else {
                    self.rejections += 1;
                }
                self.policy.push_with(|| PolicyChange {
                    when: ts(when),
                    kind: if reloaded { "reloaded" } else { "rejected" }.into(),
                    reason: s(d, "reason"),
                    digest: s(d, "digest").or_else(|| s(d, "serving")),
                    users: i(d, "users"),
                    servers: i(d, "servers"),
                    problem_count: i(d, "count"),
                    problems: strings(d, "problems").into_iter().take(10).collect(),
                });
            }
            _ => {}
        }
    }

    /// Joins the events with the other facts.
    pub fn finish(self, input: &ReportInput) -> Report {
        let mut omitted: BTreeMap<String, u64> = BTreeMap::new();
        let mut note = |name: &str, n: u64| {
            if n > 0 {
                omitted.insert(name.to_string(), n);
            }
        };
        let generated = input.generated_at.unwrap_or(self.end);
        let as_of = generated.min(self.end);
        let hours = &input.hours;
        let mut summary = Summary {
            events: self.events,
            auth_success: self.auth_success,
            auth_failure: self.auth_failure,
            sessions_per_hour: vec![0; 24],
            ..Summary::default()
        };
        let server_modes: HashMap<&str, &str> = input
            .servers
            .iter()
            .map(|s| (s.name.as_str(), s.mode.as_str()))
            .collect();

        // Sessions: the store's rows, completed by their events; sessions
        // known only from events are kept too.
        let recs_by_session: HashMap<&str, &super::input::RecordingFact> = input
            .recordings
            .iter()
            .filter_map(|r| r.session.as_deref().map(|s| (s, r)))
            .chain(input.recordings.iter().map(|r| (r.id.as_str(), r)))
            .collect();
        let mut sessions = Vec::new();
        let mut seen_ids = HashSet::new();
        for row in &input.sessions {
            seen_ids.insert(row.id.as_str());
            let overlaps =
                row.started_at < self.end && row.ended_at.is_none_or(|e| e >= self.start);
            if !overlaps {
                continue;
            }
            let Some(server) = row.server.clone() else {
                if row.started_at >= self.start && row.started_at < self.end {
                    summary.command_mode_logins += 1;
                }
                continue;
            };
            let ev = self.sessions.get(&row.id);
            let ended = row.ended_at.or(ev.and_then(|e| e.end));
            let (up, down) = if row.ended_at.is_some() {
                (row.bytes_up, row.bytes_down)
            } else {
                (
                    ev.and_then(|e| e.bytes_up).unwrap_or(row.bytes_up),
                    ev.and_then(|e| e.bytes_down).unwrap_or(row.bytes_down),
                )
            };
            sessions.push(Draft {
                id: row.id.clone(),
                user: row.user.clone(),
                server,
                account: row.account.clone(),
                source: row.source.clone(),
                start: row.started_at,
                end: ended,
                bytes_up: up,
                bytes_down: down,
                grant: row.grant_id.or(ev.and_then(|e| e.grant)),
                mode: row.mode.clone().or(ev.and_then(|e| e.mode.clone())),
                flagged: ev.and_then(|e| e.flagged).or(row.flagged).unwrap_or(false),
                exit_status: row.exit_status.or(ev.and_then(|e| e.exit_status)),
                end_reason: row.end_reason.clone().or(ev.and_then(|e| e.reason.clone())),
            });
        }
        for (id, e) in &self.sessions {
            if seen_ids.contains(id.as_str()) {
                continue;
            }
            let (Some(server), Some(start)) = (e.server.clone(), e.start) else {
                continue;
            };
            sessions.push(Draft {
                id: id.clone(),
                user: e.user.clone().unwrap_or_default(),
                server,
                account: e.account.clone(),
                source: e.source.clone().unwrap_or_default(),
                start,
                end: e.end,
                bytes_up: e.bytes_up.unwrap_or(0),
                bytes_down: e.bytes_down.unwrap_or(0),
                grant: e.grant,
                mode: e.mode.clone(),
                flagged: e.flagged.unwrap_or(false),
                exit_status: e.exit_status,
                end_reason: e.reason.clone(),
            });
        }
        sessions.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));

        let globs = privileged_matcher(&input.privileged_globs);
        let mut privileged: BTreeMap<(String, String), PrivilegedUse> = BTreeMap::new();
        let mut out_of_hours = Vec::new();
        let mut global = Vec::new();
        let mut users_active = BTreeSet::new();
        let mut servers_accessed = BTreeSet::new();
        let mut entries = Vec::with_capacity(sessions.len());
        for d in sessions {
            let mode = d
                .mode
                .clone()
                .or_else(|| server_modes.get(d.server.as_str()).map(|m| m.to_string()));
            let flagged = d.flagged || mode.as_deref() == Some("global");
            // Recorded means a recording exists on disk. The session row's
            // flag only says one was due: a session refused before any
            // channel ran (or one that never opened a shell) has none, and
            // must not be shown with a link to a cast that does not exist.
            let rec = recs_by_session.get(d.id.as_str());
            let recorded = rec.is_some();
            let recording_path = rec.map(|r| r.path.clone());
            let before = d.start < self.start;
            let today = !before && d.start < self.end;
            let ooh = today && !hours.contains(d.start);
            users_active.insert(d.user.clone());
            servers_accessed.insert(d.server.clone());
            summary.sessions += 1;
            if recorded {
                summary.sessions_recorded += 1;
            } else {
                summary.sessions_unrecorded += 1;
            }
            if flagged {
                summary.sessions_flagged += 1;
            }
            summary.bytes_up = summary.bytes_up.saturating_add(d.bytes_up);
            summary.bytes_down = summary.bytes_down.saturating_add(d.bytes_down);
            if today {
                let h = usize::from(d.start.to_offset(UtcOffset::UTC).hour());
                if let Some(slot) = summary.sessions_per_hour.get_mut(h) {
                    *slot += 1;
                }
            }
            if ooh {
                out_of_hours.push(Suspicious {
                    kind: "out_of_hours_session".into(),
                    when: ts(d.start),
                    user: Some(d.user.clone()),
                    server: Some(d.server.clone()),
                    source: Some(d.source.clone()),
                    session: Some(d.id.clone()),
                    detail: format!(
                        "session{} started {} UTC on a {}, outside working hours",
                        d.account
                            .as_deref()
                            .map(|a| format!(" as {a}"))
                            .unwrap_or_default(),
                        ts(d.start).get(11..16).unwrap_or(""),
                        d.start.to_offset(UtcOffset::UTC).weekday()
                    ),
                    count: None,
                    until: None,
                });
            }
            if flagged && today {
                global.push(Suspicious {
                    kind: "global_server_session".into(),
                    when: ts(d.start),
                    user: Some(d.user.clone()),
                    server: Some(d.server.clone()),
                    source: Some(d.source.clone()),
                    session: Some(d.id.clone()),
                    detail: "session to a server in mode global (below modern security standards)"
                        .into(),
                    count: None,
                    until: None,
                });
            }
            if let (Some(account), Some(globs)) = (d.account.as_deref(), globs.as_ref())
                && globs.is_match(account)
            {
                let u = privileged
                    .entry((d.server.clone(), account.to_string()))
                    .or_insert_with(|| PrivilegedUse {
                        server: d.server.clone(),
                        account: account.to_string(),
                        users: Vec::new(),
                        sessions: 0,
                        first: ts(d.start),
                        last: ts(d.start),
                        in_vault: None,
                    });
                u.sessions += 1;
                if !u.users.contains(&d.user) {
                    u.users.push(d.user.clone());
                }
                u.last = ts(d.start);
            }
            entries.push(SessionEntry {
                duration_secs: d.end.map(|e| (e - d.start).whole_seconds().max(0)),
                live: d.end.is_none(),
                started_before_day: before,
                recording: rec.map(|r| r.id.clone()),
                recording_path,
                recorded,
                mode,
                flagged,
                out_of_hours: ooh,
                id: d.id,
                user: d.user,
                server: d.server,
                account: d.account,
                source: d.source,
                start: ts(d.start),
                end: d.end.map(ts),
                bytes_up: d.bytes_up,
                bytes_down: d.bytes_down,
                grant: d.grant,
                exit_status: d.exit_status,
                end_reason: d.end_reason,
            });
        }
        summary.sessions_out_of_hours = out_of_hours.len() as u64;
        summary.users_active = users_active.len() as u64;
        summary.servers_accessed = servers_accessed.len() as u64;

        // Failed-login bursts, per user and per source address.
        // Keyed by name, not by id: ids follow the order names were first
        // met, which depends on whether logins came as events or groups.
        let mut by_key: BTreeMap<(bool, &str), (u32, Vec<i64>)> = BTreeMap::new();
        for &(t, u, src) in &self.failures {
            if let Some(u) = u {
                by_key
                    .entry((true, self.names.name(u)))
                    .or_insert_with(|| (u, Vec::new()))
                    .1
                    .push(t);
            }
            if let Some(src) = src {
                by_key
                    .entry((false, self.names.name(src)))
                    .or_insert_with(|| (src, Vec::new()))
                    .1
                    .push(t);
            }
        }
        let mut bursts = Vec::new();
        for ((is_user, _), (id, mut times)) in by_key {
            times.sort_unstable();
            for (a, b) in detect::bursts(&times) {
                let (Some(&t0), Some(&t1)) = (times.get(a), times.get(b)) else {
                    continue;
                };
                let name = self.names.name(id).to_string();
                let t0 = OffsetDateTime::from_unix_timestamp_nanos(i128::from(t0) * 1_000_000)
                    .unwrap_or(self.start);
                let t1 = OffsetDateTime::from_unix_timestamp_nanos(i128::from(t1) * 1_000_000)
                    .unwrap_or(self.start);
                let count = (b + 1 - a) as u64;
                bursts.push(Suspicious {
                    kind: "failed_login_burst".into(),
                    when: ts(t0),
                    detail: format!(
                        "{count} failed logins {} {name} between {} and {}",
                        if is_user { "for user" } else { "from" },
                        ts(t0),
                        ts(t1)
                    ),
                    user: is_user.then(|| name.clone()),
                    server: None,
                    source: (!is_user).then_some(name),
                    session: None,
                    count: Some(count),
                    until: Some(ts(t1)),
                });
            }
        }
        bursts.sort_by(|a, b| a.when.cmp(&b.when));
        summary.failed_login_bursts = bursts.len() as u64;

        // First-seen source addresses.
        let mut first_seen = Vec::new();
        for (&(u, src), (when, session)) in &self.logins {
            let key = (
                self.names.name(u).to_string(),
                self.names.name(src).to_string(),
            );
            if input.seen_before.contains(&key) {
                continue;
            }
            first_seen.push(Suspicious {
                kind: "first_seen_source".into(),
                when: ts(*when),
                detail: format!("first login by {} from {}", key.0, key.1),
                user: Some(key.0),
                server: None,
                source: Some(key.1),
                session: session.clone(),
                count: None,
                until: None,
            });
        }
        first_seen
            .sort_by(|a, b| (&a.when, &a.user, &a.source).cmp(&(&b.when, &b.user, &b.source)));
        summary.first_seen_sources = first_seen.len() as u64;

        summary.lockouts = self.lockouts.total;
        summary.denials = self.denials.total;
        summary.blocked_commands = self.blocked.total;
        summary.hostkey_mismatches = self.hostkey.total;
        note("denials", self.denials.omitted());
        note("lockouts", self.lockouts.omitted());
        note("suspicious.lockout", self.lockout_flags.omitted());
        note("suspicious.blocked_command", self.blocked.omitted());
        note("suspicious.hostkey_mismatch", self.hostkey.omitted());
        summary.suspicious = (bursts.len() + out_of_hours.len() + first_seen.len() + global.len())
            as u64
            + self.lockout_flags.total
            + self.blocked.total
            + self.hostkey.total;
        let mut suspicious = Vec::new();
        for (name, list) in [
            ("failed_login_burst", bursts),
            ("out_of_hours_session", out_of_hours),
            ("first_seen_source", first_seen),
            ("global_server_session", global),
        ] {
            let n = list.len();
            if n > LIST_CAP {
                note(&format!("suspicious.{name}"), (n - LIST_CAP) as u64);
            }
            suspicious.extend(list.into_iter().take(LIST_CAP));
        }
        suspicious.extend(self.lockout_flags.items);
        suspicious.extend(self.blocked.items);
        suspicious.extend(self.hostkey.items);
        suspicious.sort_by(|a, b| a.when.cmp(&b.when));

        // Recordings awaiting review, this day's and earlier.
        let mut review: Vec<ReviewEntry> = input
            .recordings
            .iter()
            .filter(|r| r.state == ReviewState::Unreviewed && r.date <= self.date)
            .map(|r| ReviewEntry {
                id: r.id.clone(),
                date: day(r.date),
                session: r.session.clone(),
                user: r.user.clone(),
                server: r.server.clone(),
                account: r.account.clone(),
                started_at: r.started_at.map(ts),
                path: r.path.clone(),
                carried_over: r.date < self.date,
                days_waiting: (self.date - r.date).whole_days(),
                problem: r.problem.clone(),
            })
            .collect();
        review
            .sort_by(|a, b| (&a.date, &a.started_at, &a.id).cmp(&(&b.date, &b.started_at, &b.id)));
        summary.recordings_to_review = review.len() as u64;
        summary.recordings_carried_over = review.iter().filter(|r| r.carried_over).count() as u64;

        // Entitlements per user.
        let mut users: BTreeMap<&str, Option<Date>> = input
            .users
            .iter()
            .map(|u| (u.name.as_str(), u.expires))
            .collect();
        for e in &input.entitlements {
            users.entry(e.user.as_str()).or_insert(None);
        }
        let today_logins: HashMap<&str, OffsetDateTime> = self
            .last_login
            .iter()
            .map(|(&u, &t)| (self.names.name(u), t))
            .collect();
        let dormant_before = self.end - Duration::days(DORMANT_DAYS);
        let mut entitlements = Vec::new();
        for (name, expires) in users {
            let last = match (input.last_login.get(name), today_logins.get(name)) {
                (Some(&a), Some(&b)) => Some(a.max(b)),
                (a, b) => a.or(b).copied(),
            };
            let dormant = last.is_none_or(|t| t < dormant_before);
            let expired = expires.is_some_and(|e| e <= self.date);
            let soon = expires
                .is_some_and(|e| e > self.date && (e - self.date).whole_days() <= EXPIRY_WARN_DAYS);
            if dormant {
                summary.users_dormant.push(name.to_string());
            }
            if expired {
                summary.users_expired.push(name.to_string());
            }
            if soon {
                summary.users_expiring.push(name.to_string());
            }
            let mut access: Vec<Access> = input
                .entitlements
                .iter()
                .filter(|e| e.user == name)
                .map(|e| {
                    let (through, rule, grant, until, approved_by) = match &e.through {
                        Through::Policy { rule } => {
                            ("policy", Some(rule.clone()), None, None, None)
                        }
                        Through::Grant {
                            id,
                            until,
                            approved_by,
                        } => ("grant", None, Some(*id), until.map(ts), approved_by.clone()),
                        Through::GrantRequired { rule } => {
                            ("grant-required", Some(rule.clone()), None, None, None)
                        }
                    };
                    Access {
                        server: e.server.clone(),
                        mode: e.mode.clone(),
                        accounts: e.accounts.clone(),
                        ports: e.ports.clone(),
                        any_port: e.any_port,
                        through: through.into(),
                        rule,
                        grant,
                        until,
                        approved_by,
                        flagged: e.mode == "global",
                    }
                })
                .collect();
            access.sort_by(|a, b| {
                (&a.server, &a.through, a.grant).cmp(&(&b.server, &b.through, b.grant))
            });
            entitlements.push(UserEntitlements {
                user: name.to_string(),
                expires: expires.map(day),
                expired,
                expires_soon: soon,
                last_login: last.map(ts),
                dormant,
                access,
            });
        }

        // Privileged accounts.
        let credentials: Vec<CredentialEntry> = input
            .credentials
            .iter()
            .flatten()
            .map(|c| CredentialEntry {
                server: c.server.clone(),
                account: c.account.clone(),
                kind: c.kind.clone(),
                third_party: c.third_party,
                created: ts(c.created),
                rotated: ts(c.rotated),
                last_used: c.last_used.map(ts),
                age_days: (as_of - c.rotated).whole_days().max(0),
                rotation_due: day(c.rotation_due),
                complies: c.complies,
                reasons: c.reasons.clone(),
            })
            .collect();
        summary.privileged_credentials = credentials.len() as u64;
        summary.privileged_noncompliant = credentials.iter().filter(|c| !c.complies).count() as u64;
        let vault_keys: Option<HashSet<(&str, &str)>> = input.credentials.as_ref().map(|cs| {
            cs.iter()
                .map(|c| (c.server.as_str(), c.account.as_str()))
                .collect()
        });
        let used: Vec<PrivilegedUse> = privileged
            .into_values()
            .map(|mut u| {
                u.users.sort();
                u.in_vault = vault_keys
                    .as_ref()
                    .map(|k| k.contains(&(u.server.as_str(), u.account.as_str())));
                u
            })
            .collect();

        // Grant activity: the events, plus what grant rows show happened
        // this day without an event (e.g. events lost to a capped list).
        let mut grants = self.grants.items;
        let mut counts = self.grant_counts;
        let mut extra = 0u64;
        let rows: HashMap<i64, &crate::grants::Grant> =
            input.grants.iter().map(|g| (g.id, g)).collect();
        for g in &input.grants {
            let in_day =
                |t: Option<OffsetDateTime>| t.is_some_and(|t| t >= self.start && t < self.end);
            let mut found: Vec<(&'static str, OffsetDateTime, Option<String>)> = Vec::new();
            if in_day(Some(g.requested_at)) {
                found.push(("requested", g.requested_at, Some(g.requested_by.clone())));
            }
            if let Some(at) = g.decided_at.filter(|&t| in_day(Some(t))) {
                let action = match g.state {
                    GrantState::Approved | GrantState::Expired => Some("approved"),
                    GrantState::Denied => Some("denied"),
                    GrantState::Revoked => Some("revoked"),
                    GrantState::Pending => None,
                };
                if let Some(a) = action {
                    found.push((a, at, g.decided_by.clone()));
                }
            }
            if g.state == GrantState::Expired
                && let Some(at) = g.expires_at.filter(|&t| in_day(Some(t)))
            {
                found.push(("expired", at, Some("gatehouse".into())));
            }
            for (action, at, by) in found {
                if self.grant_seen.contains(&(g.id, action)) {
                    continue;
                }
                *counts.entry(action).or_default() += 1;
                extra += 1;
                if grants.len() < LIST_CAP {
                    grants.push(GrantActivity {
                        when: ts(at),
                        action: action.into(),
                        grant: g.id,
                        user: Some(g.user.clone()),
                        by,
                        server: Some(g.server.clone()),
                        accounts: g.accounts.clone(),
                        ports: g.ports.clone(),
                        reason: Some(g.reason.clone()),
                        state: None,
                        until: None,
                    });
                }
            }
        }
        let shown = grants.len() as u64;
        note("grants", (self.grants.total + extra).saturating_sub(shown));
        for a in &mut grants {
            if let Some(g) = rows.get(&a.grant) {
                a.state = Some(g.state.as_str().to_string());
                if a.until.is_none() {
                    a.until = g.expires_at.map(ts);
                }
            }
        }
        grants.sort_by(|a, b| (&a.when, a.grant).cmp(&(&b.when, b.grant)));
        let count = |k: &str| counts.get(k).copied().unwrap_or(0);
        summary.grants_requested = count("requested");
        summary.grants_approved = count("approved");
        summary.grants_denied = count("denied");
        summary.grants_revoked = count("revoked");
        summary.grants_expired = count("expired");

        summary.policy_reloads = self.reloads;
        summary.policy_rejections = self.rejections;
        note("policy_changes", self.policy.omitted());
        summary.omitted = omitted;

        let mut global_servers: Vec<String> = input
            .servers
            .iter()
            .filter(|s| s.mode == "global")
            .map(|s| s.name.clone())
            .collect();
        global_servers.sort();

        Report {
            date: day(self.date),
            summary,
            sessions: entries,
            recordings_to_review: review,
            denials: self.denials.items,
            lockouts: self.lockouts.items,
            suspicious,
            entitlements,
            privileged_accounts: PrivilegedAccounts {
                vault: input.credentials.is_some(),
                vault_note: input.vault_note.clone(),
                credentials,
                used,
            },
            grants,
            policy_changes: self.policy.items,
            global_servers,
            generated_at: ts(generated),
            as_of: ts(as_of),
            working_hours: WorkingHours {
                start_hour: hours.start_hour,
                end_hour: hours.end_hour,
                days: hours.days.clone(),
                timezone: "UTC".into(),
            },
            audit_chain: None,
        }
    }
}

/// A session while being assembled.
struct Draft {
    id: String,
    user: String,
    server: String,
    account: Option<String>,
    source: String,
    start: OffsetDateTime,
    end: Option<OffsetDateTime>,
    bytes_up: i64,
    bytes_down: i64,
    grant: Option<i64>,
    mode: Option<String>,
    flagged: bool,
    exit_status: Option<i64>,
    end_reason: Option<String>,
}

/// The privileged-account globs; a glob that does not compile is taken
/// literally (config loading already refuses bad globs).
fn privileged_matcher(globs: &[String]) -> Option<globset::GlobSet> {
    if globs.is_empty() {
        return None;
    }
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        let glob = globset::Glob::new(g)
            .or_else(|_| globset::Glob::new(&globset::escape(g)))
            .ok()?;
        b.add(glob);
    }
    b.build().ok()
}
