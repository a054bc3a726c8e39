//! The joining half of the report: [`DayBuilder::finish`] joins what the
//! streaming pass kept with the sessions, recordings, grants, policy and
//! vault facts, one function per section of the report; the compliance
//! sections are [`super::compliance`]'s.
//! May import: the report's model, input and detectors; grant types;
//! its sibling `compliance`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use time::{Date, Duration, OffsetDateTime, UtcOffset};

use super::compliance::{
    access, credentials, privileged_matcher, privileged_used, review_overdue, second_factors,
};
use super::{DORMANT_DAYS, DayBuilder, EXPIRY_WARN_DAYS, LIST_CAP, day, ts};
use crate::grant_types::{Grant, GrantState};
use crate::report::detect;
use crate::report::input::{RecordingFact, ReportInput, ReviewState};
use crate::report::model::*;

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

/// What the sessions section yields besides its entries.
struct SessionsSection {
    entries: Vec<SessionEntry>,
    out_of_hours: Vec<Suspicious>,
    global: Vec<Suspicious>,
    privileged: BTreeMap<(String, String), PrivilegedUse>,
}

/// Lists cut to [`LIST_CAP`], by name (`summary.omitted`).
#[derive(Default)]
struct Omitted(BTreeMap<String, u64>);

impl Omitted {
    fn note(&mut self, name: &str, n: u64) {
        if n > 0 {
            self.0.insert(name.to_string(), n);
        }
    }
}

impl DayBuilder {
    /// Joins the events with the other facts.
    pub fn finish(mut self, input: &ReportInput) -> Report {
        let mut omitted = Omitted::default();
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

        let drafts = self.drafts(input, &mut summary);
        let sessions = self.sessions(input, drafts, &mut summary);
        let bursts = self.bursts();
        summary.failed_login_bursts = bursts.len() as u64;
        let first_seen = self.first_seen(input);
        summary.first_seen_sources = first_seen.len() as u64;
        let mfa_bursts = self.mfa_bursts();
        let (second_factors, not_enrolled) = second_factors(input, self.end);
        let overdue = review_overdue(input, as_of, &mut summary);
        let suspicious = self.suspicious(
            [
                ("failed_login_burst", bursts),
                ("out_of_hours_session", sessions.out_of_hours),
                ("first_seen_source", first_seen),
                ("global_server_session", sessions.global),
                ("mfa_failure_burst", mfa_bursts),
                ("mfa_not_enrolled", not_enrolled),
                ("review_overdue", overdue),
            ],
            &mut summary,
            &mut omitted,
        );
        let review = self.review(input, &mut summary);
        let entitlements = self.entitlements(input, &mut summary);
        let credentials = credentials(input, as_of, &mut summary);
        let used = privileged_used(sessions.privileged, input.credentials.as_deref());
        let grants = self.grant_activity(input, &mut summary, &mut omitted);

        summary.policy_reloads = self.reloads;
        summary.policy_rejections = self.rejections;
        omitted.note("policy_changes", self.policy.omitted());
        omitted.note("directory_changes", self.directory.omitted());
        summary.omitted = omitted.0;

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
            sessions: sessions.entries,
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
            directory_changes: self.directory.items,
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
            second_factors,
        }
    }

    /// Sessions: the store's rows, completed by their events; sessions
    /// known only from events are kept too. In start order.
    fn drafts(&self, input: &ReportInput, summary: &mut Summary) -> Vec<Draft> {
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
        sessions
    }

    /// The session entries, counted into the summary, with the sessions
    /// that are suspicious and the privileged accounts they used.
    fn sessions(
        &self,
        input: &ReportInput,
        drafts: Vec<Draft>,
        summary: &mut Summary,
    ) -> SessionsSection {
        let server_modes: HashMap<&str, &str> = input
            .servers
            .iter()
            .map(|s| (s.name.as_str(), s.mode.as_str()))
            .collect();
        let recs_by_session: HashMap<&str, &RecordingFact> = input
            .recordings
            .iter()
            .filter_map(|r| r.session.as_deref().map(|s| (s, r)))
            .chain(input.recordings.iter().map(|r| (r.id.as_str(), r)))
            .collect();
        let globs = privileged_matcher(&input.privileged_globs);
        let mut out = SessionsSection {
            entries: Vec::with_capacity(drafts.len()),
            out_of_hours: Vec::new(),
            global: Vec::new(),
            privileged: BTreeMap::new(),
        };
        let mut users_active = BTreeSet::new();
        let mut servers_accessed = BTreeSet::new();
        for d in drafts {
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
            let ooh = today && !input.hours.contains(d.start);
            users_active.insert(d.user.clone());
            servers_accessed.insert(d.server.clone());
            count_session(summary, &d, recorded, flagged, today);
            if ooh {
                out.out_of_hours.push(out_of_hours_flag(&d));
            }
            if flagged && today {
                out.global.push(global_flag(&d));
            }
            if let (Some(account), Some(globs)) = (d.account.as_deref(), globs.as_ref())
                && globs.is_match(account)
            {
                note_privileged(&mut out.privileged, &d, account);
            }
            out.entries.push(SessionEntry {
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
        summary.sessions_out_of_hours = out.out_of_hours.len() as u64;
        summary.users_active = users_active.len() as u64;
        summary.servers_accessed = servers_accessed.len() as u64;
        out
    }

    /// Failed-login bursts, per user and per source address, in time order.
    fn bursts(&self) -> Vec<Suspicious> {
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
        bursts
    }

    /// Bursts of wrong second-factor codes (`mfa.failure`), per user, in
    /// time order: the same detector as failed logins.
    fn mfa_bursts(&self) -> Vec<Suspicious> {
        let mut by_user: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for &(t, u) in &self.mfa_failures {
            if let Some(u) = u {
                by_user.entry(self.names.name(u)).or_default().push(t);
            }
        }
        let at = |ms: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap_or(self.start)
        };
        let mut out = Vec::new();
        for (user, mut times) in by_user {
            times.sort_unstable();
            for (a, b) in detect::bursts(&times) {
                let (Some(&t0), Some(&t1)) = (times.get(a), times.get(b)) else {
                    continue;
                };
                let count = (b + 1 - a) as u64;
                out.push(Suspicious {
                    kind: "mfa_failure_burst".into(),
                    when: ts(at(t0)),
                    detail: format!(
                        "{count} wrong second-factor codes for user {user} between {} and {}",
                        ts(at(t0)),
                        ts(at(t1))
                    ),
                    user: Some(user.to_string()),
                    server: None,
                    source: None,
                    session: None,
                    count: Some(count),
                    until: Some(ts(at(t1))),
                });
            }
        }
        out.sort_by(|a, b| a.when.cmp(&b.when));
        out
    }

    /// First-seen source addresses, in time order.
    fn first_seen(&self, input: &ReportInput) -> Vec<Suspicious> {
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
        first_seen
    }

    /// Everything suspicious in one time-ordered list: the lists found
    /// here (each cut to [`LIST_CAP`]) and those the events kept.
    fn suspicious(
        &mut self,
        found: [(&str, Vec<Suspicious>); 7],
        summary: &mut Summary,
        omitted: &mut Omitted,
    ) -> Vec<Suspicious> {
        summary.lockouts = self.lockouts.total;
        summary.denials = self.denials.total;
        summary.blocked_commands = self.blocked.total;
        summary.hostkey_mismatches = self.hostkey.total;
        omitted.note("denials", self.denials.omitted());
        omitted.note("lockouts", self.lockouts.omitted());
        omitted.note("suspicious.lockout", self.lockout_flags.omitted());
        omitted.note("suspicious.blocked_command", self.blocked.omitted());
        omitted.note("suspicious.hostkey_mismatch", self.hostkey.omitted());
        summary.suspicious = found.iter().map(|(_, l)| l.len()).sum::<usize>() as u64
            + self.lockout_flags.total
            + self.blocked.total
            + self.hostkey.total;
        let mut suspicious = Vec::new();
        for (name, list) in found {
            let n = list.len();
            if n > LIST_CAP {
                omitted.note(&format!("suspicious.{name}"), (n - LIST_CAP) as u64);
            }
            suspicious.extend(list.into_iter().take(LIST_CAP));
        }
        suspicious.append(&mut self.lockout_flags.items);
        suspicious.append(&mut self.blocked.items);
        suspicious.append(&mut self.hostkey.items);
        suspicious.sort_by(|a, b| a.when.cmp(&b.when));
        suspicious
    }

    /// Recordings awaiting review, this day's and earlier.
    fn review(&self, input: &ReportInput, summary: &mut Summary) -> Vec<ReviewEntry> {
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
        review
    }

    /// Entitlements per user, with dormant, expired and expiring users
    /// named in the summary.
    fn entitlements(&self, input: &ReportInput, summary: &mut Summary) -> Vec<UserEntitlements> {
        let mut users: BTreeMap<&str, Option<Date>> = input
            .users
            .iter()
            .map(|u| (u.name.as_str(), u.expires))
            .collect();
        let from_directory: HashSet<&str> = input
            .users
            .iter()
            .filter(|u| u.from_directory)
            .map(|u| u.name.as_str())
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
                .map(|e| access(e, &input.access_reviews))
                .collect();
            access.sort_by(|a, b| {
                (&a.server, &a.through, a.grant).cmp(&(&b.server, &b.through, b.grant))
            });
            entitlements.push(UserEntitlements {
                user: name.to_string(),
                source: if from_directory.contains(name) {
                    "directory"
                } else {
                    "policy"
                }
                .to_string(),
                expires: expires.map(day),
                expired,
                expires_soon: soon,
                last_login: last.map(ts),
                dormant,
                access,
            });
        }
        entitlements
    }

    /// Grant activity: the events, plus what grant rows show happened
    /// this day without an event (e.g. events lost to a capped list).
    fn grant_activity(
        &mut self,
        input: &ReportInput,
        summary: &mut Summary,
        omitted: &mut Omitted,
    ) -> Vec<GrantActivity> {
        let mut grants = std::mem::take(&mut self.grants.items);
        let mut counts = std::mem::take(&mut self.grant_counts);
        let mut extra = 0u64;
        let rows: HashMap<i64, &Grant> = input.grants.iter().map(|g| (g.id, g)).collect();
        for g in &input.grants {
            for (action, at, by) in self.grant_steps(g) {
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
        omitted.note("grants", (self.grants.total + extra).saturating_sub(shown));
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
        grants
    }

    /// What a grant row shows happened this day: (action, when, by whom).
    fn grant_steps(&self, g: &Grant) -> Vec<(&'static str, OffsetDateTime, Option<String>)> {
        let in_day = |t: Option<OffsetDateTime>| t.is_some_and(|t| t >= self.start && t < self.end);
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
        found
    }
}

/// Counts one session into the summary.
fn count_session(summary: &mut Summary, d: &Draft, recorded: bool, flagged: bool, today: bool) {
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
}

/// A session of the day started outside working hours.
fn out_of_hours_flag(d: &Draft) -> Suspicious {
    Suspicious {
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
    }
}

/// A session of the day to a server in mode global.
fn global_flag(d: &Draft) -> Suspicious {
    Suspicious {
        kind: "global_server_session".into(),
        when: ts(d.start),
        user: Some(d.user.clone()),
        server: Some(d.server.clone()),
        source: Some(d.source.clone()),
        session: Some(d.id.clone()),
        detail: "session to a server in mode global (below modern security standards)".into(),
        count: None,
        until: None,
    }
}

/// Counts a session's use of a privileged account.
fn note_privileged(
    privileged: &mut BTreeMap<(String, String), PrivilegedUse>,
    d: &Draft,
    account: &str,
) {
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
