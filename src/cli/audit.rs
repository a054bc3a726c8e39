//! `gatehouse audit export|verify`: the audit events as JSON lines, and the
//! hash-chain check (contract section 8).

use std::io::Write;

use anyhow::Context;
use futures::StreamExt;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, Time};

use super::{AuditCmd, Exit};
use crate::config::Config;
use crate::store::Store;

pub async fn run(config: Config, cmd: AuditCmd) -> anyhow::Result<i32> {
    match cmd {
        AuditCmd::Export {
            since,
            until,
            json: _,
        } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            let until = until.as_deref().map(parse_until).transpose()?;
            export(&config, since, until).await
        }
        AuditCmd::Verify { json } => verify(&config, json).await,
    }
}

/// `--since T`: RFC 3339, or a date meaning that day's first instant (UTC).
fn parse_since(s: &str) -> anyhow::Result<OffsetDateTime> {
    match parse_date(s) {
        Some(d) => Ok(d.with_time(Time::MIDNIGHT).assume_utc()),
        None => parse_rfc3339("--since", s),
    }
}

/// `--until T` is inclusive: RFC 3339 up to and including T, or a date up
/// to the end of that day (UTC). Returned as the exclusive bound the store
/// takes.
fn parse_until(s: &str) -> anyhow::Result<OffsetDateTime> {
    match parse_date(s) {
        Some(d) => {
            let next = d
                .next_day()
                .ok_or_else(|| Exit::new(2, format!("--until {s:?}: date out of range")))?;
            Ok(next.with_time(Time::MIDNIGHT).assume_utc())
        }
        // The store keeps microseconds: one more makes T itself included.
        None => Ok(parse_rfc3339("--until", s)? + Duration::microseconds(1)),
    }
}

fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, format_description!("[year]-[month]-[day]")).ok()
}

fn parse_rfc3339(flag: &str, s: &str) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        Exit::new(
            2,
            format!("{flag} {s:?}: expected RFC 3339 (2026-01-02T03:04:05Z) or YYYY-MM-DD: {e}"),
        )
        .into()
    })
}

async fn export(
    config: &Config,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> anyhow::Result<i32> {
    let store = Store::open(&config.database, &config.node).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut events = store.export_stream(since, until);
    while let Some(ev) = events.next().await {
        let ev = ev?;
        let line = serde_json::to_string(&ev).context("encode audit event")?;
        if let Err(e) = writeln!(out, "{line}") {
            // A reader that stopped early (`| head`) is not a failure.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(0);
            }
            return Err(e).context("write to stdout");
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("write to stdout"),
        _ => Ok(0),
    }
}

async fn verify(config: &Config, json: bool) -> anyhow::Result<i32> {
    let store = Store::open(&config.database, &config.node).await?;
    let report = store.verify_chain().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("encode report")?
        );
    }
    match report.first_bad {
        None => {
            if !json {
                println!("audit chain intact: {} events", report.events);
            }
            Ok(0)
        }
        Some(fault) => Err(Exit::new(1, format!("audit chain broken at {fault}")).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn bounds_accept_dates_and_rfc3339() {
        assert_eq!(
            parse_since("2026-03-01").unwrap(),
            datetime!(2026-03-01 00:00 UTC)
        );
        assert_eq!(
            parse_until("2026-03-01").unwrap(),
            datetime!(2026-03-02 00:00 UTC)
        );
        assert_eq!(
            parse_since("2026-03-01T10:00:00+01:00").unwrap(),
            datetime!(2026-03-01 09:00 UTC)
        );
        assert_eq!(
            parse_until("2026-03-01T10:00:00Z").unwrap(),
            datetime!(2026-03-01 10:00:00.000_001 UTC)
        );
        assert!(parse_since("yesterday").is_err());
        assert!(parse_until("2026-13-01").is_err());
    }
}
