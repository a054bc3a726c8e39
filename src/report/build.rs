//! Correlation: one pass over the day's audit events
//! ([`DayBuilder::push`]), then [`DayBuilder::finish`] (in `finish`) joins
//! what it kept with the sessions, recordings, grants, policy and vault
//! facts. May import: the report's model and input, audit kinds.
//!
//! Memory is bounded by what the report shows, not by the number of
//! events: per event only counters change, except for small per-item
//! records (one per session, per failed login as 16 bytes, per distinct
//! user and source address) and capped lists ([`LIST_CAP`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

mod compliance;
mod finish;

use super::input::ReportInput;
use super::model::*;
use crate::audit::{AuditRecord, EventKind};

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
pub const KINDS_READ: [EventKind; 21] = [
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
    EventKind::MfaFailure,
    EventKind::UserAdded,
    EventKind::UserChanged,
    EventKind::UserDisabled,
    EventKind::UserRemoved,
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
    /// `mfa.failure` events: (unix ms, user id), for their bursts.
    mfa_failures: Vec<(i64, Option<u32>)>,
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
    directory: Capped<DirectoryChange>,
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
            mfa_failures: Vec::new(),
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
            directory: Capped::default(),
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
            "mfa.failure" => {
                let u = ev.user.as_deref().map(|u| self.names.id(u));
                let ms = i64::try_from(when.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                self.mfa_failures.push((ms, u));
            }
            "auth.lockout" => self.lockout(ev, when),
            "access.denied" | "forward.denied" | "command.blocked" => self.denial(ev, when),
            "hostkey.mismatch" => self.hostkey_mismatch(ev, when),
            "session.start" | "session.end" => self.session_event(ev, when),
            kind if kind.starts_with("grant.") => self.grant_event(ev, when, kind),
            "policy.reloaded" | "policy.rejected" => self.policy_event(ev, when),
            "user.added" | "user.changed" | "user.disabled" | "user.removed" => {
                self.directory_event(ev, when)
            }
            _ => {}
        }
    }

    /// A `user.*` event: a joiner, mover or leaver from the directory.
    fn directory_event(&mut self, ev: &AuditRecord, when: OffsetDateTime) {
        let d = &ev.detail;
        let list = |key: &str| -> Vec<String> {
            d.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let kind = match ev.kind.as_str() {
            "user.added" => "joiner",
            "user.changed" => "mover",
            _ => "leaver",
        };
        self.directory.push_with(|| DirectoryChange {
            when: ts(when),
            user: ev.user.clone(),
            kind: kind.to_string(),
            event: ev.kind.clone(),
            groups_joined: list("groups_joined"),
            groups_left: list("groups_left"),
            keys_added: i(d, "keys_added").unwrap_or(0),
            keys_removed: i(d, "keys_removed").unwrap_or(0),
        });
    }

    /// An `auth.lockout`: the lockouts list and a suspicious entry.
    fn lockout(&mut self, ev: &AuditRecord, when: OffsetDateTime) {
        let d = &ev.detail;
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

    /// A refusal: the denials list; a blocked command is suspicious too.
    fn denial(&mut self, ev: &AuditRecord, when: OffsetDateTime) {
        let d = &ev.detail;
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

    /// A target host key that did not match: suspicious.
    fn hostkey_mismatch(&mut self, ev: &AuditRecord, when: OffsetDateTime) {
        let d = &ev.detail;
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

    /// A session's start or end: what it tells of the session.
    fn session_event(&mut self, ev: &AuditRecord, when: OffsetDateTime) {
        let d = &ev.detail;
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

    /// A grant step: counted, and kept in the grant activity.
    fn grant_event(&mut self, ev: &AuditRecord, when: OffsetDateTime, kind: &str) {
        let d = &ev.detail;
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

    /// A policy reload or rejection.
    fn policy_event(&mut self, ev: &AuditRecord, when: OffsetDateTime) {
        let d = &ev.detail;
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
}
