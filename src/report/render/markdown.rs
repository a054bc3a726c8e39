//! The report as Markdown, one function per section. Every string from a
//! user or a target goes through `escape::md`.
//! May import: the report's model and escaping, its parent `render`.

use super::{
    Links, bytes, chain_note, dur, hours_line, key_figures, opt, policy_detail, ports, review_cell,
    seal_cell,
};
use crate::report::escape;
use crate::report::model::*;

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

/// The report as Markdown (`REPORT.md`).
pub fn markdown(report: &Report, links: &Links) -> String {
    let mut m = Md(String::with_capacity(32 * 1024));
    head(&mut m, report);
    summary(&mut m, report);
    sessions(&mut m, report, links);
    recordings_to_review(&mut m, report, links);
    suspicious(&mut m, report);
    denials(&mut m, report);
    lockouts(&mut m, report);
    entitlements(&mut m, report);
    directory_changes(&mut m, report);
    privileged_accounts(&mut m, report);
    grants(&mut m, report);
    policy_changes(&mut m, report);
    audit_chain(&mut m, report);
    m.0
}

/// The title and the lines under it.
fn head(m: &mut Md, report: &Report) {
    m.line(&format!("# Gatehouse daily report {}\n", report.date));
    m.line(&format!(
        "Generated {}, entitlements as of {}. Working hours {}.\n",
        report.generated_at,
        report.as_of,
        hours_line(report)
    ));
}

/// The summary section.
fn summary(m: &mut Md, report: &Report) {
    let s = &report.summary;
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
}

/// The sessions section.
fn sessions(m: &mut Md, report: &Report, links: &Links) {
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
}

/// The recordings to review section.
fn recordings_to_review(m: &mut Md, report: &Report, links: &Links) {
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
}

/// The suspicious section.
fn suspicious(m: &mut Md, report: &Report) {
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
}

/// The denials section.
fn denials(m: &mut Md, report: &Report) {
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
}

/// The lockouts section.
fn lockouts(m: &mut Md, report: &Report) {
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
}

/// The entitlements section.
fn entitlements(m: &mut Md, report: &Report) {
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
                super::user_cell(u),
                status.join("; "),
                opt(&u.last_login).to_string(),
                "(nothing)".into(),
                String::new(),
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
                super::user_cell(u),
                status.join("; "),
                opt(&u.last_login).to_string(),
                a.server.clone(),
                a.mode.clone(),
                a.accounts.join(", "),
                ports(&a.ports, a.any_port),
                through,
                review_cell(a),
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
            "Review",
        ],
        rows,
    );
}

/// The day's joiners, movers and leavers from the site's directory.
fn directory_changes(m: &mut Md, report: &Report) {
    m.line("## Directory changes\n");
    let rows = report
        .directory_changes
        .iter()
        .map(|c| {
            vec![
                c.when.clone(),
                opt(&c.user).to_string(),
                c.kind.clone(),
                super::directory_change_detail(c),
            ]
        })
        .collect();
    m.table(&["When", "User", "Change", "Detail"], rows);
}

/// The privileged accounts section.
fn privileged_accounts(m: &mut Md, report: &Report) {
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
}

/// The grants section.
fn grants(m: &mut Md, report: &Report) {
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
}

/// The policy changes section.
fn policy_changes(m: &mut Md, report: &Report) {
    m.line("## Policy changes\n");
    m.table(
        &["When", "Outcome", "Detail"],
        report
            .policy_changes
            .iter()
            .map(|c| vec![c.when.clone(), c.kind.clone(), policy_detail(c)])
            .collect(),
    );
}

/// The audit chain section.
fn audit_chain(m: &mut Md, report: &Report) {
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
}
