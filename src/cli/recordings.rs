//! `gatehouse recordings list|play|search|verify|review`: the recordings
//! folder seen by an auditor. Everything here reads the files on disk
//! (casts, sidecars, review files) through [`crate::recording`].

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Exit, RecordingsCmd};
use crate::config::Config;
use crate::recording::cast::{Code, Reader};
use crate::recording::playfilter::PlayFilter;
use crate::recording::signing::configured_public_key;
use crate::recording::{
    self, Problem, RecordingInfo, ReviewState, find, scan, search_recording, verify,
};

pub async fn run(config: Config, cmd: RecordingsCmd) -> anyhow::Result<i32> {
    let root = config.recordings.as_path();
    match cmd {
        RecordingsCmd::List {
            user,
            server,
            account,
            date,
            state,
            json,
        } => {
            let filter = Filter {
                user,
                server,
                account,
                date: date.map(|d| check_date(&d)).transpose()?,
                state: state
                    .map(|s| s.parse::<ReviewState>())
                    .transpose()
                    .map_err(|e| Exit::new(2, format!("--state {e}")))?,
            };
            list(root, &filter, json)
        }
        RecordingsCmd::Play {
            id,
            speed,
            idle_limit,
        } => play(root, &id, speed, idle_limit).await,
        RecordingsCmd::Search { text, json } => search(root, &text, json),
        RecordingsCmd::Verify { id, json } => verify_cmd(&config, id.as_deref(), json).await,
        RecordingsCmd::Review { id, by, note, flag } => {
            review(&config, &id, &by, note.as_deref(), flag).await
        }
    }
}

struct Filter {
    user: Option<String>,
    server: Option<String>,
    account: Option<String>,
    date: Option<String>,
    state: Option<ReviewState>,
}

impl Filter {
    fn keeps(&self, info: &RecordingInfo) -> bool {
        let meta = info.meta.as_ref();
        let field = |want: &Option<String>, get: fn(&recording::Sidecar) -> &str| match want {
            None => true,
            Some(w) => meta.is_some_and(|m| get(m) == w),
        };
        field(&self.user, |m| &m.user)
            && field(&self.server, |m| &m.server)
            && field(&self.account, |m| &m.account)
            && self.date.as_ref().is_none_or(|d| *d == info.date)
            && self.state.is_none_or(|s| s == info.state)
    }
}

fn check_date(d: &str) -> anyhow::Result<String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(d, &fmt)
        .map_err(|_| Exit::new(2, format!("--date {d:?}: expected YYYY-MM-DD")))?;
    Ok(d.to_owned())
}

fn list(root: &Path, filter: &Filter, as_json: bool) -> anyhow::Result<i32> {
    let all: Vec<RecordingInfo> = scan(root)?
        .into_iter()
        .filter(|i| filter.keeps(i))
        .collect();
    let mut out = std::io::stdout().lock();
    if as_json {
        let items: Vec<Value> = all.iter().map(info_json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?;
        return Ok(0);
    }
    if all.is_empty() {
        writeln!(out, "no recordings")?;
        return Ok(0);
    }
    let mut rows = vec![
        [
            "ID", "STARTED", "USER", "SERVER", "ACCOUNT", "KIND", "DURATION", "STATE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for i in &all {
        let m = i.meta.as_ref();
        let text = |f: fn(&recording::Sidecar) -> String| m.map(f).unwrap_or_else(|| "-".into());
        let mut state = i.state.to_string();
        match (m, &i.meta_error) {
            (_, Some(_)) => state.push_str(" (bad sidecar)"),
            (None, None) => state.push_str(" (no sidecar)"),
            (Some(m), _) if !m.complete => state.push_str(" (incomplete)"),
            (Some(m), _) if m.interrupted => state.push_str(" (interrupted)"),
            _ => {}
        }
        rows.push(vec![
            i.id.clone(),
            text(|m| m.started_at.clone()),
            text(|m| m.user.clone()),
            text(|m| m.server.clone()),
            text(|m| m.account.clone()),
            text(|m| m.kind.as_str().to_owned()),
            m.and_then(duration).unwrap_or_else(|| "-".into()),
            state,
        ]);
    }
    print_table(&mut out, &rows)?;
    Ok(0)
}

/// One recording as a flat JSON object: the sidecar's fields plus where
/// the files are and the review state.
fn info_json(i: &RecordingInfo) -> Value {
    let mut v = i
        .meta
        .as_ref()
        .and_then(|m| serde_json::to_value(m).ok())
        .unwrap_or_else(|| json!({}));
    if let Value::Object(map) = &mut v {
        map.remove("format");
        map.insert("id".into(), json!(i.id));
        map.insert("date".into(), json!(i.date));
        map.insert("cast_path".into(), json!(i.cast_path));
        map.insert("sidecar_path".into(), json!(i.sidecar_path));
        map.insert("cast_exists".into(), json!(i.cast_exists));
        map.insert("sidecar_exists".into(), json!(i.meta.is_some()));
        if let Some(e) = &i.meta_error {
            map.insert("sidecar_error".into(), json!(e));
        }
        map.insert("state".into(), json!(i.state));
        map.insert("reviews".into(), json!(i.reviews));
    }
    v
}

fn duration(m: &recording::Sidecar) -> Option<String> {
    let start = OffsetDateTime::parse(&m.started_at, &Rfc3339).ok()?;
    let end = OffsetDateTime::parse(m.ended_at.as_deref()?, &Rfc3339).ok()?;
    let secs = (end - start).whole_seconds().max(0);
    Some(humantime::format_duration(Duration::from_secs(secs as u64)).to_string())
}

fn print_table(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(x) => *x = (*x).max(w),
                None => widths.push(w),
            }
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

async fn play(root: &Path, id: &str, speed: f64, idle_limit: Option<f64>) -> anyhow::Result<i32> {
    if !(speed.is_finite() && speed > 0.0) {
        return Err(Exit::new(2, format!("--speed {speed}: must be a positive number")).into());
    }
    if let Some(l) = idle_limit
        && !(l.is_finite() && l >= 0.0)
    {
        return Err(Exit::new(2, format!("--idle-limit {l}: must be zero or more seconds")).into());
    }
    let info = find(root, id)?;
    if !info.cast_exists {
        return Err(Exit::new(1, format!("{id}: the cast file is missing")).into());
    }
    let file = std::fs::File::open(&info.cast_path)
        .with_context(|| format!("{}", info.cast_path.display()))?;
    let (_, mut reader) = Reader::new(std::io::BufReader::new(file))?;
    let mut prev = 0.0f64;
    let mut out = std::io::stdout();
    // The target's escapes must not reach the auditor's terminal raw.
    let mut filter = PlayFilter::new();
    let mut buf = Vec::new();
    while let Some(event) = reader.next_event() {
        let event = event?;
        if event.code != Code::Output {
            continue;
        }
        let delay = pause(event.time - prev, speed, idle_limit);
        prev = event.time;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        buf.clear();
        filter.feed(event.data.as_bytes(), &mut buf);
        out.write_all(&buf)?;
        out.flush()?;
    }
    buf.clear();
    filter.finish(&mut buf);
    out.write_all(&buf)?;
    out.flush()?;
    if reader.torn_tail {
        eprintln!("gatehouse: the recording ends with a torn line (the bastion stopped mid-write)");
    }
    Ok(0)
}

/// The pause before an event: capped at the idle limit, then scaled.
fn pause(gap: f64, speed: f64, idle_limit: Option<f64>) -> Duration {
    let gap = gap.max(0.0);
    let gap = idle_limit.map_or(gap, |l| gap.min(l));
    Duration::try_from_secs_f64(gap / speed).unwrap_or(Duration::ZERO)
}

fn search(root: &Path, text: &str, as_json: bool) -> anyhow::Result<i32> {
    if text.trim().is_empty() {
        return Err(Exit::new(2, "search: TEXT must not be empty").into());
    }
    let mut results = Vec::new();
    for info in scan(root)? {
        let hits = match search_recording(&info, text) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("warning: {}: {e}", info.id);
                continue;
            }
        };
        for hit in hits {
            results.push((info.clone(), hit));
        }
    }
    let mut out = std::io::stdout().lock();
    if as_json {
        let items: Vec<Value> = results
            .iter()
            .map(|(info, hit)| {
                let m = info.meta.as_ref();
                json!({
                    "id": info.id,
                    "date": info.date,
                    "user": m.map(|m| &m.user),
                    "server": m.map(|m| &m.server),
                    "account": m.map(|m| &m.account),
                    "time": (hit.time * 1000.0).round() / 1000.0,
                    "at": m.and_then(|m| absolute(&m.started_at, hit.time)),
                    "source": hit.source,
                    "text": hit.text,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?;
        return Ok(0);
    }
    if results.is_empty() {
        writeln!(out, "no matches")?;
        return Ok(0);
    }
    let mut rows = vec![
        ["ID", "WHO", "AT", "OFFSET", "WHERE", "TEXT"]
            .map(String::from)
            .to_vec(),
    ];
    for (info, hit) in &results {
        let m = info.meta.as_ref();
        rows.push(vec![
            info.id.clone(),
            m.map(|m| format!("{} as {}@{}", m.user, m.account, m.server))
                .unwrap_or_else(|| "-".into()),
            m.and_then(|m| absolute(&m.started_at, hit.time))
                .unwrap_or_else(|| "-".into()),
            format!("{:.1}s", hit.time),
            hit.source.as_str().to_owned(),
            hit.text.clone(),
        ]);
    }
    print_table(&mut out, &rows)?;
    Ok(0)
}

/// `started_at` plus an offset, RFC 3339.
fn absolute(started_at: &str, offset: f64) -> Option<String> {
    let start = OffsetDateTime::parse(started_at, &Rfc3339).ok()?;
    let at = start + time::Duration::seconds_f64(offset);
    let at = at
        .replace_nanosecond(at.millisecond() as u32 * 1_000_000)
        .ok()?;
    at.format(&Rfc3339).ok()
}

async fn verify_cmd(config: &Config, id: Option<&str>, as_json: bool) -> anyhow::Result<i32> {
    let root = config.recordings.as_path();
    let key = configured_public_key(&config.signing_key)?;
    // What the database says was recorded: a recording deleted with its
    // sidecar leaves nothing on disk to fail, only this.
    // The files are still checked when the database cannot be read, and
    // the command then fails: what is missing could not be known.
    let (started, db_error) = match recordings_started(config).await {
        Ok(s) => (s, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    let on_disk = match id {
        Some(id) => match find(root, id) {
            Ok(info) => vec![info],
            Err(crate::recording::RecordingError::NotFound(_))
                if started.iter().any(|s| s.id == id) =>
            {
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        },
        None => scan(root)?,
    };
    let present: std::collections::HashSet<&str> = on_disk.iter().map(|i| i.id.as_str()).collect();
    let mut gone: Vec<(String, String, Problem)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for s in &started {
        if id.is_some_and(|id| id != s.id) || present.contains(s.id.as_str()) {
            continue;
        }
        if !seen.insert(s.id.clone()) {
            continue;
        }
        let date = s
            .cast
            .as_deref()
            .and_then(|c| c.split('/').next())
            .unwrap_or("-")
            .to_string();
        gone.push((
            s.id.clone(),
            date,
            Problem::Gone {
                session: s.session.clone(),
                started: s.ts.clone(),
            },
        ));
    }
    let total = on_disk.len() + gone.len();
    let mut failed = 0;
    let mut items = Vec::new();
    let mut out = std::io::stdout().lock();
    let checked = on_disk
        .iter()
        .map(|info| {
            (
                info.id.clone(),
                info.date.clone(),
                verify(info, key.as_deref()),
            )
        })
        .chain(gone.into_iter().map(|(id, date, p)| (id, date, vec![p])));
    for (rec_id, date, problems) in checked {
        if !problems.is_empty() {
            failed += 1;
        }
        if as_json {
            items.push(json!({
                "id": rec_id,
                "date": date,
                "ok": problems.is_empty(),
                "problems": problems,
                "messages": problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }));
        } else if problems.is_empty() {
            writeln!(out, "OK {rec_id}")?;
        } else {
            let why: Vec<String> = problems.iter().map(ToString::to_string).collect();
            writeln!(out, "FAILED {rec_id}: {}", why.join("; "))?;
        }
    }
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?;
    } else if total == 0 {
        writeln!(out, "no recordings")?;
    }
    out.flush()?;
    if failed > 0 {
        return Err(Exit::new(
            1,
            format!("{failed} of {total} recordings failed verification"),
        )
        .into());
    }
    if let Some(e) = db_error {
        return Err(Exit::new(
            1,
            format!("cannot check for recordings missing from disk: {e}"),
        )
        .into());
    }
    Ok(0)
}

/// The recordings the audit log says were made.
async fn recordings_started(
    config: &Config,
) -> anyhow::Result<Vec<crate::store::RecordingStarted>> {
    let store = crate::store::Store::open(&config.database, &config.node).await?;
    let started = store.recordings_started().await;
    store.close().await;
    Ok(started?)
}

/// Reviews are an auditor's act: the reviewer must hold the `auditor` (or
/// `admin`) role in the policy, and each review is an audit event.
async fn review(
    config: &Config,
    id: &str,
    by: &str,
    note: Option<&str>,
    flag: bool,
) -> anyhow::Result<i32> {
    if by.trim().is_empty() {
        return Err(Exit::new(2, "review: --by must name the reviewer").into());
    }
    let policy = crate::policy::Policy::load_dir_with(&config.policies, config.directory.is_some())
        .map_err(|d| {
            anyhow::anyhow!(
                "{} problem(s) in the policy files (run `gatehouse policy check`)",
                d.len()
            )
        })?;
    let allowed = policy.user(by).is_some_and(|u| {
        u.has_role(crate::policy::Role::Auditor) || u.has_role(crate::policy::Role::Admin)
    });
    if !allowed {
        return Err(Exit::new(
            1,
            format!("{by} may not review recordings (needs role auditor)"),
        )
        .into());
    }
    let store = crate::store::Store::open(&config.database, &config.node).await?;
    let root = config.recordings.as_path();
    let info = crate::recording::review::review(&store, root, id, by, note, flag, "cli").await?;
    println!("{}: {} by {by}", info.id, info.state);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_capped_then_scaled() {
        assert_eq!(pause(2.0, 2.0, None), Duration::from_secs(1));
        assert_eq!(pause(10.0, 1.0, Some(1.5)), Duration::from_millis(1500));
        assert_eq!(pause(-1.0, 1.0, None), Duration::ZERO);
        assert_eq!(pause(4.0, 4.0, Some(0.0)), Duration::ZERO);
    }

    #[test]
    fn absolute_times_add_the_offset() {
        assert_eq!(
            absolute("2026-01-02T03:04:05Z", 1.25).as_deref(),
            Some("2026-01-02T03:04:06.25Z")
        );
    }
}
