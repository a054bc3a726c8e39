//! Renderers: the report as JSON, CSV (sessions), Markdown and one
//! self-contained HTML page (inline CSS and SVG, no script, no external
//! resource; a Content-Security-Policy forbids loading any). Every string
//! that came from a user or a target goes through [`super::escape`].

use std::fmt::Write as _;

use super::escape;
use super::model::*;

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

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}.meta{color:#57606a;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 10px}.card b{display:block;font-size:18px}
.card span{color:#57606a;font-size:12px}.warn{background:#fff8c5;border-color:#d4a72c}.bad{background:#ffebe9;border-color:#cf222e}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top;word-break:break-word}
th{background:#f6f8fa;white-space:nowrap}tr.flag td{background:#fff8c5}td.num{text-align:right;white-space:nowrap}
.empty{color:#57606a;font-style:italic}nav a{margin-right:10px}svg text{font-size:10px;fill:#57606a}
.note{border-left:4px solid #d4a72c;padding:4px 10px;background:#fff8c5}
";

struct Html {
    out: String,
    links: Links,
}

impl Html {
    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }
    fn text(&mut self, s: &str) {
        self.out.push_str(&escape::html(s));
    }
    fn empty(&mut self) {
        self.raw("<p class=\"empty\">None.</p>\n");
    }
    fn head_row(&mut self, cols: &[&str]) {
        self.raw("<table><thead><tr>");
        for c in cols {
            self.raw("<th>");
            self.text(c);
            self.raw("</th>");
        }
        self.raw("</tr></thead><tbody>\n");
    }
    fn row(&mut self, class: Option<&str>, cells: &[Cell]) {
        match class {
            Some(c) => {
                let _ = write!(self.out, "<tr class=\"{c}\">");
            }
            None => self.raw("<tr>"),
        }
        for cell in cells {
            match cell {
                Cell::T(s) => {
                    self.raw("<td>");
                    self.text(s);
                }
                Cell::N(s) => {
                    self.raw("<td class=\"num\">");
                    self.text(s);
                }
                Cell::Html(s) => {
                    self.raw("<td>");
                    self.raw(s);
                }
            }
            self.raw("</td>");
        }
        self.raw("</tr>\n");
    }
    fn end_table(&mut self) {
        self.raw("</tbody></table>\n");
    }
    fn section(&mut self, id: &str, title: &str) {
        let _ = write!(self.out, "<h2 id=\"{id}\">");
        self.text(title);
        self.raw("</h2>\n");
    }
}

/// A table cell: text (escaped), a number (escaped, right-aligned), or
/// HTML this module built from escaped parts.
enum Cell {
    T(String),
    N(String),
    Html(String),
}

fn t(s: &str) -> Cell {
    Cell::T(s.to_string())
}

fn o(s: &Option<String>) -> Cell {
    Cell::T(opt(s).to_string())
}

fn n(s: impl ToString) -> Cell {
    Cell::N(s.to_string())
}

/// Sessions per hour as 24 bars.
fn chart(per_hour: &[u64]) -> String {
    let max = per_hour.iter().copied().max().unwrap_or(0).max(1);
    let (bar_w, gap, height, top, bottom) = (26u32, 4u32, 120u32, 14u32, 16u32);
    let width = 24 * (bar_w + gap) + 30;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" role=\"img\" \
         aria-label=\"Sessions started per hour (UTC)\" viewBox=\"0 0 {width} {}\">",
        height + top + bottom,
        height + top + bottom
    );
    let _ = write!(
        s,
        "<line x1=\"28\" y1=\"{y}\" x2=\"{width}\" y2=\"{y}\" stroke=\"#d0d7de\"/>\
         <text x=\"0\" y=\"{}\">{max}</text><text x=\"0\" y=\"{y}\">0</text>",
        top + 4,
        y = top + height
    );
    for h in 0..24u32 {
        let v = per_hour.get(h as usize).copied().unwrap_or(0);
        let bh = ((v as f64 / max as f64) * f64::from(height)).round() as u32;
        let x = 30 + h * (bar_w + gap);
        let y = top + height - bh;
        let _ = write!(
            s,
            "<g><title>{h:02}:00-{:02}:00 UTC: {v} session(s)</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{bar_w}\" height=\"{bh}\" fill=\"#0969da\"/>",
            h + 1
        );
        if v > 0 {
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{v}</text>",
                x + bar_w / 2,
                y.saturating_sub(2).max(10)
            );
        }
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{h:02}</text></g>",
            x + bar_w / 2,
            top + height + 12
        );
    }
    s.push_str("</svg>");
    s
}

pub fn html(report: &Report, links: &Links) -> String {
    let mut h = Html {
        out: String::with_capacity(64 * 1024),
        links: links.clone(),
    };
    let title = format!("Gatehouse daily report {}", report.date);
    h.raw(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
    );
    h.text(&title);
    h.raw("</title>\n<style>");
    h.raw(CSS);
    h.raw("</style></head><body>\n<h1>");
    h.text(&title);
    h.raw("</h1>\n<p class=\"meta\">Generated ");
    h.text(&report.generated_at);
    h.raw(", entitlements as of ");
    h.text(&report.as_of);
    h.raw(". Working hours ");
    h.text(&hours_line(report));
    h.raw(".</p>\n<nav>");
    for (id, name) in [
        ("sessions", "Sessions"),
        ("review", "Recordings to review"),
        ("suspicious", "Suspicious"),
        ("denials", "Denials"),
        ("lockouts", "Lockouts"),
        ("entitlements", "Entitlements"),
        ("privileged", "Privileged accounts"),
        ("grants", "Grants"),
        ("policy", "Policy changes"),
        ("chain", "Audit chain"),
    ] {
        let _ = write!(h.out, "<a href=\"#{id}\">{name}</a>");
    }
    h.raw("</nav>\n");

    // Summary.
    let s = &report.summary;
    h.section("summary", "Summary");
    h.raw("<div class=\"cards\">\n");
    for (label, value) in key_figures(s) {
        let alert = match label {
            "Failed-login bursts" | "Lockouts" | "Host key mismatches" | "Blocked commands"
                if value != "0" =>
            {
                " bad"
            }
            "Global-mode sessions" | "Out of hours" | "First-seen sources" if value != "0" => {
                " warn"
            }
            "Non-compliant credentials" if !value.starts_with("0 ") => " bad",
            _ => "",
        };
        let _ = write!(h.out, "<div class=\"card{alert}\"><b>");
        h.text(&value);
        h.raw("</b><span>");
        h.text(label);
        h.raw("</span></div>\n");
    }
    h.raw("</div>\n");
    if !report.global_servers.is_empty() {
        h.raw(
            "<p class=\"note\">Servers in mode <b>global</b> (below modern security standards): ",
        );
        h.text(&report.global_servers.join(", "));
        h.raw("</p>\n");
    }
    for (label, names) in [
        ("No login for 90 days", &s.users_dormant),
        ("Account expires within 14 days", &s.users_expiring),
        ("Account expired", &s.users_expired),
    ] {
        if !names.is_empty() {
            h.raw("<p class=\"note\">");
            h.text(label);
            h.raw(": ");
            h.text(&names.join(", "));
            h.raw("</p>\n");
        }
    }
    if !s.omitted.is_empty() {
        h.raw("<p class=\"note\">Long lists show their first 1000 entries; left out: ");
        let parts: Vec<String> = s.omitted.iter().map(|(k, v)| format!("{k} {v}")).collect();
        h.text(&parts.join(", "));
        h.raw(". The counts above include them.</p>\n");
    }
    h.raw("<h3>Sessions started per hour (UTC)</h3>\n");
    h.raw(&chart(&s.sessions_per_hour));
    h.raw("\n");

    // Sessions.
    h.section("sessions", "Sessions");
    if report.sessions.is_empty() {
        h.empty();
    } else {
        h.head_row(&[
            "Start",
            "User",
            "Server",
            "Account",
            "From",
            "Duration",
            "Up",
            "Down",
            "Recording",
            "Grant",
            "Mode",
            "Notes",
        ]);
        for x in &report.sessions {
            let rec = match (&x.recording_path, &x.recording) {
                (Some(path), id) => Cell::Html(format!(
                    "<a href=\"{}\">{}</a>",
                    escape::html(&h.links.cast(path)),
                    escape::html(id.as_deref().unwrap_or(&x.id))
                )),
                (None, _) => t("not recorded"),
            };
            let mut notes = Vec::new();
            if x.flagged {
                notes.push("global mode".to_string());
            }
            if x.out_of_hours {
                notes.push("out of hours".to_string());
            }
            if x.started_before_day {
                notes.push("began the day before".to_string());
            }
            if let Some(r) = &x.end_reason {
                notes.push(r.clone());
            }
            let class = (x.flagged || x.out_of_hours).then_some("flag");
            h.row(
                class,
                &[
                    t(&x.start),
                    t(&x.user),
                    t(&x.server),
                    o(&x.account),
                    t(&x.source),
                    n(dur(x.duration_secs)),
                    n(bytes(x.bytes_up)),
                    n(bytes(x.bytes_down)),
                    rec,
                    n(x.grant.map(|g| format!("#{g}")).unwrap_or_default()),
                    o(&x.mode),
                    t(&notes.join("; ")),
                ],
            );
        }
        h.end_table();
    }

    h.section("review", "Recordings to review");
    if report.recordings_to_review.is_empty() {
        h.empty();
    } else {
        h.head_row(&[
            "Date",
            "Recording",
            "User",
            "Server",
            "Account",
            "Started",
            "Waiting",
        ]);
        for r in &report.recordings_to_review {
            let link = Cell::Html(format!(
                "<a href=\"{}\">{}</a>{}",
                escape::html(&h.links.cast(&r.path)),
                escape::html(&r.id),
                r.problem
                    .as_deref()
                    .map(|p| format!(" ({})", escape::html(p)))
                    .unwrap_or_default()
            ));
            h.row(
                r.carried_over.then_some("flag"),
                &[
                    t(&r.date),
                    link,
                    o(&r.user),
                    o(&r.server),
                    o(&r.account),
                    o(&r.started_at),
                    n(format!("{} d", r.days_waiting)),
                ],
            );
        }
        h.end_table();
    }

    h.section("suspicious", "Suspicious");
    if report.suspicious.is_empty() {
        h.empty();
    } else {
        h.head_row(&["When", "Kind", "User", "Server", "From", "Detail"]);
        for x in &report.suspicious {
            h.row(
                None,
                &[
                    t(&x.when),
                    t(&x.kind.replace('_', " ")),
                    o(&x.user),
                    o(&x.server),
                    o(&x.source),
                    t(&x.detail),
                ],
            );
        }
        h.end_table();
    }

    h.section("denials", "Denials");
    if report.denials.is_empty() {
        h.empty();
    } else {
        h.head_row(&[
            "When", "Kind", "User", "Server", "Account", "From", "Refused", "Reason", "Code",
        ]);
        for d in &report.denials {
            h.row(
                None,
                &[
                    t(&d.when),
                    t(&d.kind),
                    o(&d.user),
                    o(&d.server),
                    o(&d.account),
                    o(&d.source),
                    o(&d.target),
                    o(&d.reason),
                    o(&d.code),
                ],
            );
        }
        h.end_table();
    }

    h.section("lockouts", "Lockouts");
    if report.lockouts.is_empty() {
        h.empty();
    } else {
        h.head_row(&["When", "User", "From", "Failures", "Until"]);
        for l in &report.lockouts {
            h.row(
                None,
                &[
                    t(&l.when),
                    o(&l.user),
                    o(&l.source),
                    n(l.failures.map(|f| f.to_string()).unwrap_or_default()),
                    o(&l.until),
                ],
            );
        }
        h.end_table();
    }

    h.section("entitlements", "Entitlements");
    if report.entitlements.is_empty() {
        h.empty();
    } else {
        h.head_row(&[
            "User",
            "Account status",
            "Last login",
            "Server",
            "Mode",
            "Accounts",
            "Ports",
            "Through",
        ]);
        for u in &report.entitlements {
            let mut status = Vec::new();
            if u.expired {
                status.push(format!("expired {}", u.expires.as_deref().unwrap_or("")));
            } else if u.expires_soon {
                status.push(format!("expires {}", u.expires.as_deref().unwrap_or("")));
            } else if let Some(e) = &u.expires {
                status.push(format!("until {e}"));
            }
            if u.dormant {
                status.push("no login for 90 days".into());
            }
            let class = (u.expired || u.expires_soon || u.dormant).then_some("flag");
            let last = o(&u.last_login);
            if u.access.is_empty() {
                h.row(
                    class,
                    &[
                        t(&u.user),
                        t(&status.join("; ")),
                        last,
                        t("(nothing)"),
                        t(""),
                        t(""),
                        t(""),
                        t(""),
                    ],
                );
            }
            for a in &u.access {
                let through = match a.through.as_str() {
                    "grant" => format!(
                        "grant #{} until {}{}",
                        a.grant.unwrap_or_default(),
                        a.until.as_deref().unwrap_or("permanent"),
                        a.approved_by
                            .as_deref()
                            .map(|b| format!(", approved by {b}"))
                            .unwrap_or_default()
                    ),
                    "grant-required" => {
                        format!("needs a grant (eligible: {})", opt(&a.rule))
                    }
                    _ => format!("policy ({})", opt(&a.rule)),
                };
                h.row(
                    class.or(a.flagged.then_some("flag")),
                    &[
                        t(&u.user),
                        t(&status.join("; ")),
                        o(&u.last_login),
                        t(&a.server),
                        t(&a.mode),
                        t(&a.accounts.join(", ")),
                        t(&ports(&a.ports, a.any_port)),
                        t(&through),
                    ],
                );
            }
        }
        h.end_table();
    }

    h.section("privileged", "Privileged accounts");
    let p = &report.privileged_accounts;
    if let Some(note) = &p.vault_note {
        h.raw("<p class=\"note\">");
        h.text(note);
        h.raw("</p>\n");
    }
    h.raw("<h3>Vault credentials</h3>\n");
    if p.credentials.is_empty() {
        h.empty();
    } else {
        h.head_row(&[
            "Server",
            "Account",
            "Kind",
            "Created",
            "Rotated",
            "Age",
            "Rotation due",
            "Last used",
            "Complies",
        ]);
        for c in &p.credentials {
            let verdict = if c.complies {
                "yes".to_string()
            } else {
                format!("no: {}", c.reasons.join("; "))
            };
            h.row(
                (!c.complies).then_some("flag"),
                &[
                    t(&c.server),
                    t(&c.account),
                    t(&format!(
                        "{}{}",
                        c.kind,
                        if c.third_party { " (third party)" } else { "" }
                    )),
                    t(&c.created),
                    t(&c.rotated),
                    n(format!("{} d", c.age_days)),
                    t(&c.rotation_due),
                    o(&c.last_used),
                    t(&verdict),
                ],
            );
        }
        h.end_table();
    }
    h.raw("<h3>Privileged accounts used this day</h3>\n");
    if p.used.is_empty() {
        h.empty();
    } else {
        h.head_row(&[
            "Server", "Account", "Used by", "Sessions", "First", "Last", "In vault",
        ]);
        for u in &p.used {
            let in_vault = match u.in_vault {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            };
            h.row(
                None,
                &[
                    t(&u.server),
                    t(&u.account),
                    t(&u.users.join(", ")),
                    n(u.sessions),
                    t(&u.first),
                    t(&u.last),
                    t(in_vault),
                ],
            );
        }
        h.end_table();
    }

    h.section("grants", "Grants");
    if report.grants.is_empty() {
        h.empty();
    } else {
        h.head_row(&[
            "When", "Action", "Grant", "For", "By", "Server", "Accounts", "Ports", "Until",
            "State", "Reason",
        ]);
        for g in &report.grants {
            h.row(
                None,
                &[
                    t(&g.when),
                    t(&g.action),
                    n(format!("#{}", g.grant)),
                    o(&g.user),
                    o(&g.by),
                    o(&g.server),
                    t(&g.accounts.join(", ")),
                    t(&ports(&g.ports, false)),
                    o(&g.until),
                    o(&g.state),
                    o(&g.reason),
                ],
            );
        }
        h.end_table();
    }

    h.section("policy", "Policy changes");
    if report.policy_changes.is_empty() {
        h.empty();
    } else {
        h.head_row(&["When", "Outcome", "Detail"]);
        for c in &report.policy_changes {
            let detail = policy_detail(c);
            h.row(
                (c.kind == "rejected").then_some("flag"),
                &[t(&c.when), t(&c.kind), t(&detail)],
            );
        }
        h.end_table();
    }

    if let Some(chain) = &report.audit_chain {
        h.section("chain", "Audit chain");
        h.raw("<p class=\"meta\">");
        h.text(&chain_note(chain));
        h.raw("</p>\n");
        if chain.nodes.is_empty() {
            h.empty();
        } else {
            h.head_row(&["Node", "Seq", "Hash", "Last seal", "Signature"]);
            for c in &chain.nodes {
                h.row(
                    c.signature.is_empty().then_some("flag"),
                    &[
                        t(&c.node),
                        n(c.seq),
                        t(&c.hash),
                        t(&seal_cell(c)),
                        t(&c.signature),
                    ],
                );
            }
            h.end_table();
        }
    }
    h.raw("</body></html>\n");
    h.out
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

/// `[text](url)`: the text escaped, the URL percent-encoded by
/// [`Links::cast`], so neither can end the link or the table cell.
fn md_link(links: &Links, text: &str, rel: &str) -> String {
    format!("[{}]({})", escape::md(text), links.cast(rel))
}

struct Md(String);

impl Md {
    fn line(&mut self, s: &str) {
        self.0.push_str(s);
        self.0.push('\n');
    }
    fn table(&mut self, cols: &[&str], rows: Vec<Vec<String>>) {
        self.table_raw(cols, rows, None);
    }

    /// Like `table`, but column `raw` holds Markdown this module built from
    /// escaped parts (a link) and is not escaped again.
    fn table_raw(&mut self, cols: &[&str], rows: Vec<Vec<String>>, raw: Option<usize>) {
        if rows.is_empty() {
            self.line("_None._\n");
            return;
        }
        self.line(&format!("| {} |", cols.join(" | ")));
        self.line(&format!("|{}", "---|".repeat(cols.len())));
        for r in rows {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let e = if Some(i) == raw {
                        c.clone()
                    } else {
                        escape::md(c)
                    };
                    if e.is_empty() { " ".to_string() } else { e }
                })
                .collect();
            self.line(&format!("| {} |", cells.join(" | ")));
        }
        self.line("");
    }
}

pub fn markdown(report: &Report, links: &Links) -> String {
    let mut m = Md(String::with_capacity(32 * 1024));
    let s = &report.summary;
    m.line(&format!("# Gatehouse daily report {}\n", report.date));
    m.line(&format!(
        "Generated {}, entitlements as of {}. Working hours {}.\n",
        report.generated_at,
        report.as_of,
        hours_line(report)
    ));
    m.line("## Summary\n");
    m.table(
        &["Figure", "Value"],
        key_figures(s)
            .into_iter()
            .map(|(k, v)| vec![k.to_string(), v])
            .collect(),
    );
    let hours: Vec<String> = s
        .sessions_per_hour
        .iter()
        .enumerate()
        .map(|(h, v)| format!("{h:02}h {v}"))
        .collect();
    m.line(&format!(
        "Sessions started per hour (UTC): {}\n",
        hours.join(", ")
    ));
    if !report.global_servers.is_empty() {
        m.line(&format!(
            "**Servers in mode global** (below modern security standards): {}\n",
            escape::md(&report.global_servers.join(", "))
        ));
    }
    for (label, names) in [
        ("No login for 90 days", &s.users_dormant),
        ("Account expires within 14 days", &s.users_expiring),
        ("Account expired", &s.users_expired),
    ] {
        if !names.is_empty() {
            m.line(&format!("**{label}:** {}\n", escape::md(&names.join(", "))));
        }
    }
    if !s.omitted.is_empty() {
        let parts: Vec<String> = s.omitted.iter().map(|(k, v)| format!("{k} {v}")).collect();
        m.line(&format!(
            "Long lists show their first 1000 entries; left out: {}.\n",
            escape::md(&parts.join(", "))
        ));
    }

    m.line("## Sessions\n");
    m.table_raw(
        &[
            "Start",
            "User",
            "Server",
            "Account",
            "From",
            "Duration",
            "Up",
            "Down",
            "Recording",
            "Grant",
            "Mode",
            "Notes",
        ],
        report
            .sessions
            .iter()
            .map(|x| {
                let mut notes = Vec::new();
                if x.flagged {
                    notes.push("global mode");
                }
                if x.out_of_hours {
                    notes.push("out of hours");
                }
                if x.started_before_day {
                    notes.push("began the day before");
                }
                vec![
                    x.start.clone(),
                    x.user.clone(),
                    x.server.clone(),
                    opt(&x.account).to_string(),
                    x.source.clone(),
                    dur(x.duration_secs),
                    bytes(x.bytes_up),
                    bytes(x.bytes_down),
                    x.recording_path
                        .as_deref()
                        .map(|p| md_link(links, x.recording.as_deref().unwrap_or(&x.id), p))
                        .unwrap_or_else(|| "not recorded".into()),
                    x.grant.map(|g| format!("#{g}")).unwrap_or_default(),
                    opt(&x.mode).to_string(),
                    notes.join("; "),
                ]
            })
            .collect(),
        Some(8),
    );
    m.line("## Recordings to review\n");
    m.table_raw(
        &[
            "Date",
            "Recording",
            "User",
            "Server",
            "Account",
            "Started",
            "Waiting",
        ],
        report
            .recordings_to_review
            .iter()
            .map(|r| {
                vec![
                    r.date.clone(),
                    md_link(links, &r.id, &r.path),
                    opt(&r.user).to_string(),
                    opt(&r.server).to_string(),
                    opt(&r.account).to_string(),
                    opt(&r.started_at).to_string(),
                    format!("{} d", r.days_waiting),
                ]
            })
            .collect(),
        Some(1),
    );
    m.line("## Suspicious\n");
    m.table(
        &["When", "Kind", "User", "Server", "From", "Detail"],
        report
            .suspicious
            .iter()
            .map(|x| {
                vec![
                    x.when.clone(),
                    x.kind.replace('_', " "),
                    opt(&x.user).to_string(),
                    opt(&x.server).to_string(),
                    opt(&x.source).to_string(),
                    x.detail.clone(),
                ]
            })
            .collect(),
    );
    m.line("## Denials\n");
    m.table(
        &[
            "When", "Kind", "User", "Server", "Account", "From", "Refused", "Reason", "Code",
        ],
        report
            .denials
            .iter()
            .map(|d| {
                vec![
                    d.when.clone(),
                    d.kind.clone(),
                    opt(&d.user).to_string(),
                    opt(&d.server).to_string(),
                    opt(&d.account).to_string(),
                    opt(&d.source).to_string(),
                    opt(&d.target).to_string(),
                    opt(&d.reason).to_string(),
                    opt(&d.code).to_string(),
                ]
            })
            .collect(),
    );
    m.line("## Lockouts\n");
    m.table(
        &["When", "User", "From", "Failures", "Until"],
        report
            .lockouts
            .iter()
            .map(|l| {
                vec![
                    l.when.clone(),
                    opt(&l.user).to_string(),
                    opt(&l.source).to_string(),
                    l.failures.map(|f| f.to_string()).unwrap_or_default(),
                    opt(&l.until).to_string(),
                ]
            })
            .collect(),
    );
    m.line("## Entitlements\n");
    let mut rows = Vec::new();
    for u in &report.entitlements {
        let mut status = Vec::new();
        if u.expired {
            status.push(format!("expired {}", opt(&u.expires)));
        } else if u.expires_soon {
            status.push(format!("expires {}", opt(&u.expires)));
        }
        if u.dormant {
            status.push("no login for 90 days".into());
        }
        if u.access.is_empty() {
            rows.push(vec![
                u.user.clone(),
                status.join("; "),
                opt(&u.last_login).to_string(),
                "(nothing)".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        for a in &u.access {
            let through = match a.through.as_str() {
                "grant" => format!(
                    "grant #{} until {}",
                    a.grant.unwrap_or_default(),
                    a.until.as_deref().unwrap_or("permanent")
                ),
                "grant-required" => format!("needs a grant (eligible: {})", opt(&a.rule)),
                _ => format!("policy ({})", opt(&a.rule)),
            };
            rows.push(vec![
                u.user.clone(),
                status.join("; "),
                opt(&u.last_login).to_string(),
                a.server.clone(),
                a.mode.clone(),
                a.accounts.join(", "),
                ports(&a.ports, a.any_port),
                through,
            ]);
        }
    }
    m.table(
        &[
            "User",
            "Account status",
            "Last login",
            "Server",
            "Mode",
            "Accounts",
            "Ports",
            "Through",
        ],
        rows,
    );
    m.line("## Privileged accounts\n");
    let p = &report.privileged_accounts;
    if let Some(note) = &p.vault_note {
        m.line(&format!("{}\n", escape::md(note)));
    }
    m.line("### Vault credentials\n");
    m.table(
        &[
            "Server",
            "Account",
            "Kind",
            "Age",
            "Rotation due",
            "Last used",
            "Complies",
        ],
        p.credentials
            .iter()
            .map(|c| {
                vec![
                    c.server.clone(),
                    c.account.clone(),
                    c.kind.clone(),
                    format!("{} d", c.age_days),
                    c.rotation_due.clone(),
                    opt(&c.last_used).to_string(),
                    if c.complies {
                        "yes".into()
                    } else {
                        format!("no: {}", c.reasons.join("; "))
                    },
                ]
            })
            .collect(),
    );
    m.line("### Privileged accounts used this day\n");
    m.table(
        &["Server", "Account", "Used by", "Sessions", "First", "Last"],
        p.used
            .iter()
            .map(|u| {
                vec![
                    u.server.clone(),
                    u.account.clone(),
                    u.users.join(", "),
                    u.sessions.to_string(),
                    u.first.clone(),
                    u.last.clone(),
                ]
            })
            .collect(),
    );
    m.line("## Grants\n");
    m.table(
        &[
            "When", "Action", "Grant", "For", "By", "Server", "Until", "State", "Reason",
        ],
        report
            .grants
            .iter()
            .map(|g| {
                vec![
                    g.when.clone(),
                    g.action.clone(),
                    format!("#{}", g.grant),
                    opt(&g.user).to_string(),
                    opt(&g.by).to_string(),
                    opt(&g.server).to_string(),
                    opt(&g.until).to_string(),
                    opt(&g.state).to_string(),
                    opt(&g.reason).to_string(),
                ]
            })
            .collect(),
    );
    m.line("## Policy changes\n");
    m.table(
        &["When", "Outcome", "Detail"],
        report
            .policy_changes
            .iter()
            .map(|c| vec![c.when.clone(), c.kind.clone(), policy_detail(c)])
            .collect(),
    );
    if let Some(chain) = &report.audit_chain {
        m.line("## Audit chain\n");
        m.line(&format!("{}\n", chain_note(chain)));
        m.table(
            &["Node", "Seq", "Hash", "Last seal", "Signature"],
            chain
                .nodes
                .iter()
                .map(|c| {
                    vec![
                        c.node.clone(),
                        c.seq.to_string(),
                        c.hash.clone(),
                        seal_cell(c),
                        c.signature.clone(),
                    ]
                })
                .collect(),
        );
    }
    m.0
}
