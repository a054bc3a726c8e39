//! Renderers: the report as JSON, CSV (sessions), Markdown and one
//! self-contained HTML page (inline CSS and SVG, no script, no external
//! resource; a Content-Security-Policy forbids loading any). Every string
//! that came from a user or a target goes through [`super::escape`]. This
//! file holds JSON, CSV and what the HTML (`html`) and Markdown
//! (`markdown`) renderers share. May import: the report's model and escaping.

use super::escape;
use super::model::*;

mod html;
mod markdown;

pub use html::html;
pub use markdown::markdown;

/// Where the HTML's recording links point: the recordings folder as a URL
/// path relative to the report's folder (e.g. `../recordings`).
#[derive(Debug, Clone)]
pub struct Links {
    pub recordings: String,
}

impl Links {
    /// The link to a cast, `rel` being its path under the recordings folder.
    fn cast(&self, rel: &str) -> String {
        let segs: Vec<String> = rel
            .split('/')
            .filter(|s| !s.is_empty() && *s != "." && *s != "..")
            .map(str::to_string)
            .collect();
        let tail = escape::url_path(&segs);
        if self.recordings.is_empty() {
            tail
        } else {
            format!("{}/{tail}", self.recordings.trim_end_matches('/'))
        }
    }
}

pub fn json(report: &Report) -> Result<Vec<u8>, serde_json::Error> {
    let mut v = serde_json::to_vec_pretty(report)?;
    v.push(b'\n');
    Ok(v)
}

/// The sessions, one row each, after a header row (RFC 4180, CRLF).
pub fn csv(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(
        "id,user,server,account,source,start,end,duration_secs,bytes_up,bytes_down,\
         recorded,recording,recording_path,grant,mode,flagged,out_of_hours,live,exit_status,end_reason\r\n",
    );
    for s in &report.sessions {
        let t = |v: &str| escape::csv(v);
        let o = |v: &Option<String>| escape::csv(v.as_deref().unwrap_or(""));
        let n = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
        let cells = [
            t(&s.id),
            t(&s.user),
            t(&s.server),
            o(&s.account),
            t(&s.source),
            t(&s.start),
            o(&s.end),
            n(s.duration_secs),
            s.bytes_up.to_string(),
            s.bytes_down.to_string(),
            s.recorded.to_string(),
            o(&s.recording),
            o(&s.recording_path),
            n(s.grant),
            o(&s.mode),
            s.flagged.to_string(),
            s.out_of_hours.to_string(),
            s.live.to_string(),
            n(s.exit_status),
            o(&s.end_reason),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn dur(secs: Option<i64>) -> String {
    match secs {
        None => "live".into(),
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        Some(s) => format!("{}h{:02}m{:02}s", s / 3600, (s % 3600) / 60, s % 60),
    }
}

fn bytes(n: i64) -> String {
    let f = n as f64;
    if n.abs() < 1024 {
        format!("{n} B")
    } else if f.abs() < 1024.0 * 1024.0 {
        format!("{:.1} KiB", f / 1024.0)
    } else if f.abs() < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", f / (1024.0 * 1024.0))
    } else {
        format!("{:.1} GiB", f / (1024.0 * 1024.0 * 1024.0))
    }
}

fn weekday_names(days: &[u8]) -> String {
    const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    days.iter()
        .filter_map(|d| NAMES.get(usize::from(d.saturating_sub(1))))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

fn hours_line(r: &Report) -> String {
    let w = &r.working_hours;
    format!(
        "{:02}:00-{:02}:00 {} on {}",
        w.start_hour,
        w.end_hour,
        w.timezone,
        weekday_names(&w.days)
    )
}

fn ports(p: &[u16], any: bool) -> String {
    if any {
        return "any".into();
    }
    p.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

/// An entitlement's access review for a person: `overdue: never
/// certified`, `ok: certified T by X, due T`; empty when not reviewed.
fn review_cell(a: &Access) -> String {
    let Some(state) = &a.review else {
        return String::new();
    };
    let mut parts = vec![state.clone()];
    match (&a.certified_at, &a.certified_by) {
        (Some(at), by) => parts.push(format!("certified {at} by {}", opt(by))),
        (None, _) => parts.push("never certified".into()),
    }
    if let Some(due) = &a.due {
        parts.push(format!("due {due}"));
    }
    parts.join(", ")
}

/// The figures shown at the top of HTML and Markdown.
fn key_figures(s: &Summary) -> Vec<(&'static str, String)> {
    vec![
        ("Sessions", s.sessions.to_string()),
        ("Recorded", s.sessions_recorded.to_string()),
        ("Unrecorded", s.sessions_unrecorded.to_string()),
        ("Global-mode sessions", s.sessions_flagged.to_string()),
        ("Out of hours", s.sessions_out_of_hours.to_string()),
        ("Active users", s.users_active.to_string()),
        ("Servers accessed", s.servers_accessed.to_string()),
        (
            "Bytes up / down",
            format!("{} / {}", bytes(s.bytes_up), bytes(s.bytes_down)),
        ),
        (
            "Logins ok / failed",
            format!("{} / {}", s.auth_success, s.auth_failure),
        ),
        ("Failed-login bursts", s.failed_login_bursts.to_string()),
        ("Lockouts", s.lockouts.to_string()),
        ("Denials", s.denials.to_string()),
        ("Blocked commands", s.blocked_commands.to_string()),
        ("Host key mismatches", s.hostkey_mismatches.to_string()),
        ("First-seen sources", s.first_seen_sources.to_string()),
        ("Suspicious", s.suspicious.to_string()),
        ("Access reviews overdue", s.reviews_overdue.to_string()),
        (
            "To review",
            format!(
                "{} ({} carried over)",
                s.recordings_to_review, s.recordings_carried_over
            ),
        ),
        (
            "Grants req/appr/den/rev/exp",
            format!(
                "{}/{}/{}/{}/{}",
                s.grants_requested,
                s.grants_approved,
                s.grants_denied,
                s.grants_revoked,
                s.grants_expired
            ),
        ),
        (
            "Policy reloads / rejections",
            format!("{} / {}", s.policy_reloads, s.policy_rejections),
        ),
        (
            "Non-compliant credentials",
            format!(
                "{} of {}",
                s.privileged_noncompliant, s.privileged_credentials
            ),
        ),
        ("Audit events", s.events.to_string()),
    ]
}

/// What the chain heads are and how to use them.
fn chain_note(chain: &AuditChain) -> String {
    let key = match &chain.public_key {
        Some(k) => format!("signed with the bastion's signing key {k}"),
        None => "UNSIGNED: no signing key was available".to_string(),
    };
    format!(
        "Each node's audit chain head when this report was written, {key}. Keep a copy \
         elsewhere: `gatehouse audit verify --pin` with its JSON proves the chain still \
         holds these heads."
    )
}

fn seal_cell(c: &ChainHead) -> String {
    match (c.seal_epoch, c.sealed_seq) {
        (Some(e), Some(s)) => format!("epoch {e} (seq {s})"),
        _ => "not sealed yet".to_string(),
    }
}

fn policy_detail(c: &PolicyChange) -> String {
    let mut parts = Vec::new();
    if let Some(r) = &c.reason {
        parts.push(r.clone());
    }
    if let (Some(u), Some(s)) = (c.users, c.servers) {
        parts.push(format!("{u} users, {s} servers"));
    }
    if let Some(n) = c.problem_count {
        parts.push(format!("{n} problem(s)"));
    }
    parts.extend(c.problems.iter().cloned());
    if let Some(d) = &c.digest {
        parts.push(format!("digest {d}"));
    }
    parts.join("; ")
}

/// How a directory change reads in a table: the groups joined and left
/// and the keys added and removed, or the event for a plain join/leave.
pub(super) fn directory_change_detail(c: &crate::report::model::DirectoryChange) -> String {
    let mut parts = Vec::new();
    if !c.groups_joined.is_empty() {
        parts.push(format!("joined {}", c.groups_joined.join(", ")));
    }
    if !c.groups_left.is_empty() {
        parts.push(format!("left {}", c.groups_left.join(", ")));
    }
    if c.keys_added > 0 {
        parts.push(format!("{} key(s) added", c.keys_added));
    }
    if c.keys_removed > 0 {
        parts.push(format!("{} key(s) removed", c.keys_removed));
    }
    if parts.is_empty() {
        parts.push(c.event.clone());
    }
    parts.join("; ")
}

/// The user cell of an entitlement row: the name, and where the user
/// comes from when it is the site's directory.
pub(super) fn user_cell(u: &crate::report::model::UserEntitlements) -> String {
    if u.source == "directory" {
        format!("{} (directory)", u.user)
    } else {
        u.user.clone()
    }
}
