//! The report as one self-contained HTML page: inline CSS and SVG, no
//! script, no external resource; one function per section. Every string
//! from a user or a target goes through `escape::html`.
//! May import: the report's model and escaping, its parent `render`.

use std::fmt::Write as _;

use super::{
    Links, bytes, chain_note, dur, hours_line, key_figures, opt, policy_detail, ports, review_cell,
    seal_cell,
};
use crate::report::escape;
use crate::report::model::*;

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

/// The report as one HTML page.
pub fn html(report: &Report, links: &Links) -> String {
    let mut h = Html {
        out: String::with_capacity(64 * 1024),
        links: links.clone(),
    };
    head(&mut h, report);
    summary(&mut h, report);
    sessions(&mut h, report);
    recordings_to_review(&mut h, report);
    suspicious(&mut h, report);
    denials(&mut h, report);
    lockouts(&mut h, report);
    entitlements(&mut h, report);
    directory_changes(&mut h, report);
    privileged_accounts(&mut h, report);
    grants(&mut h, report);
    policy_changes(&mut h, report);
    audit_chain(&mut h, report);
    h.raw("</body></html>\n");
    h.out
}

/// The page up to the first section: title, meta line, navigation.
fn head(h: &mut Html, report: &Report) {
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
        ("directory", "Directory changes"),
        ("privileged", "Privileged accounts"),
        ("grants", "Grants"),
        ("policy", "Policy changes"),
        ("chain", "Audit chain"),
    ] {
        let _ = write!(h.out, "<a href=\"#{id}\">{name}</a>");
    }
    h.raw("</nav>\n");
}

/// The summary: key figures as cards, notes, sessions per hour.
fn summary(h: &mut Html, report: &Report) {
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
}

/// Sessions.
fn sessions(h: &mut Html, report: &Report) {
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
}

/// The recordings to review section.
fn recordings_to_review(h: &mut Html, report: &Report) {
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
}

/// The suspicious section.
fn suspicious(h: &mut Html, report: &Report) {
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
}

/// The denials section.
fn denials(h: &mut Html, report: &Report) {
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
}

/// The lockouts section.
fn lockouts(h: &mut Html, report: &Report) {
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
}

/// The entitlements section.
fn entitlements(h: &mut Html, report: &Report) {
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
            "Review",
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
                        t(&super::user_cell(u)),
                        t(&status.join("; ")),
                        last,
                        t("(nothing)"),
                        t(""),
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
                let overdue = matches!(a.review.as_deref(), Some("overdue" | "suspended"));
                h.row(
                    class.or((a.flagged || overdue).then_some("flag")),
                    &[
                        t(&super::user_cell(u)),
                        t(&status.join("; ")),
                        o(&u.last_login),
                        t(&a.server),
                        t(&a.mode),
                        t(&a.accounts.join(", ")),
                        t(&ports(&a.ports, a.any_port)),
                        t(&through),
                        t(&review_cell(a)),
                    ],
                );
            }
        }
        h.end_table();
    }
}

/// The privileged accounts section.
fn privileged_accounts(h: &mut Html, report: &Report) {
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
}

/// The grants section.
fn grants(h: &mut Html, report: &Report) {
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
}

/// The policy changes section.
fn policy_changes(h: &mut Html, report: &Report) {
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
}

/// The audit chain section.
fn audit_chain(h: &mut Html, report: &Report) {
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
}

/// The day's joiners, movers and leavers from the site's directory.
fn directory_changes(h: &mut Html, report: &Report) {
    h.section("directory", "Directory changes");
    if report.directory_changes.is_empty() {
        h.empty();
        return;
    }
    h.head_row(&["When", "User", "Change", "Detail"]);
    for c in &report.directory_changes {
        let class = (c.kind == "leaver").then_some("flag");
        h.row(
            class,
            &[
                t(&c.when),
                t(c.user.as_deref().unwrap_or("")),
                t(&c.kind),
                t(&super::directory_change_detail(c)),
            ],
        );
    }
    h.end_table();
}
