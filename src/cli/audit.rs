//! `gatehouse audit export|verify|seal-key|seal`: the audit events as JSON
//! lines, the hash-chain check (contract section 8) with the seals proven
//! and signed report heads pinned, and the seal key ([`crate::seal`]).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use futures::StreamExt;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, Time};

use super::{AuditCmd, Exit};
use crate::config::Config;
use crate::store::{ChainCheck, NodeSeals, Pin, Store};

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
        AuditCmd::Verify {
            seal_keys,
            pins,
            json,
        } => verify(&config, &seal_keys, &pins, json).await,
        AuditCmd::SealKey => seal_key(&config).await,
        AuditCmd::Seal { json } => seal(&config, json).await,
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

async fn verify(
    config: &Config,
    seal_keys: &[PathBuf],
    pins: &[PathBuf],
    json: bool,
) -> anyhow::Result<i32> {
    let mut check = ChainCheck::default();
    for path in seal_keys {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--seal-key {}", path.display()))?;
        crate::seal::parse_key_lines(path, &text, &mut check.keys)
            .map_err(|e| Exit::new(2, format!("--seal-key: {e}")))?;
    }
    for path in pins {
        check.pins.extend(read_pins(config, path)?);
    }
    // This node's key file says how many seals it wrote: a removed last
    // seal shows. Only the epoch is read, never the key.
    match crate::seal::current_epoch(&config.audit.seal_key, &config.node) {
        Ok(Some(epoch)) => {
            check.key_epochs.insert(config.node.clone(), epoch);
        }
        Ok(None) => {}
        Err(e) => eprintln!("warning: {e}"),
    }
    let store = Store::open(&config.database, &config.node).await?;
    let report = store.verify_chain_with(&check).await?;
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
                // Per node, once there is anything to say about seals.
                let sealing = !check.keys.is_empty()
                    || !check.pins.is_empty()
                    || report.nodes.iter().any(|n| n.sealed_epoch.is_some());
                if sealing {
                    for n in &report.nodes {
                        println!("  {}", describe(n));
                    }
                }
            }
            Ok(0)
        }
        Some(fault) => Err(Exit::new(1, format!("audit chain broken at {fault}")).into()),
    }
}

/// One node's line: how far sealed, and whether proven.
fn describe(n: &NodeSeals) -> String {
    let mut line = format!("node {}: {} events", n.node, n.last_seq);
    match n.sealed_epoch {
        None => line.push_str(", not sealed yet"),
        Some(epoch) => {
            line.push_str(&format!(
                ", sealed to seq {} (epochs 0..{epoch})",
                n.sealed_seq
            ));
            if n.proven {
                line.push_str(", proven with the seal key");
            } else {
                line.push_str(", not proven (give --seal-key)");
            }
            let after = n.last_seq - n.sealed_seq;
            if after > 0 {
                line.push_str(&format!(", {after} event(s) after the last seal"));
            }
        }
    }
    if n.pins > 0 {
        line.push_str(&format!(", {} pinned head(s) found", n.pins));
    }
    line
}

/// The signed chain heads of a daily report's JSON (`audit_chain`), each
/// checked against the bastion's signing public key.
fn read_pins(config: &Config, path: &std::path::Path) -> anyhow::Result<Vec<Pin>> {
    let bad = |why: String| Exit::new(1, format!("--pin {}: {why}", path.display()));
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--pin {}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let chain = doc
        .get("audit_chain")
        .ok_or_else(|| bad("no audit_chain (a report older than sealing?)".into()))?;
    let heads: Vec<crate::report::model::ChainHead> =
        serde_json::from_value(chain.get("nodes").cloned().unwrap_or_default())
            .map_err(|e| bad(format!("audit_chain.nodes: {e}")))?;
    let date = chain
        .get("date")
        .and_then(|d| d.as_str())
        .ok_or_else(|| bad("audit_chain.date is missing".into()))?;
    let key = crate::recording::signing::configured_public_key(&config.signing_key)?
        .ok_or_else(|| bad("no signing public key to check the report's signature".into()))?;
    let mut pins = Vec::new();
    for h in heads {
        let msg = crate::seal::head_message(date, &h.node, h.seq, &h.hash, h.seal_epoch);
        let sig = hex::decode(&h.signature).unwrap_or_default();
        if !crate::recording::signing::verify(&key, &msg, &sig) {
            return Err(bad(format!(
                "the signature over node {}'s head (seq {}) does not verify with the \
                 bastion's signing key",
                h.node, h.seq
            ))
            .into());
        }
        pins.push(Pin {
            node: h.node,
            seq: h.seq,
            hash: h.hash,
            what: format!("the report of {date}"),
        });
    }
    Ok(pins)
}

/// Prints `NODE KEY` once; afterwards says when it was printed.
async fn seal_key(config: &Config) -> anyhow::Result<i32> {
    let now = time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .context("format the time")?;
    match crate::seal::take_initial(&config.audit.seal_key, &config.node, now).await? {
        crate::seal::Initial::Key(k0) => {
            println!("{} {}", config.node, k0.to_hex());
            eprintln!(
                "This is node {}'s initial audit seal key, shown once and now erased from \
                 {}. Keep it offline; `gatehouse audit verify --seal-key FILE` proves the \
                 seals with it (one `NODE KEY` line per node).",
                config.node,
                config.audit.seal_key.display()
            );
            Ok(0)
        }
        crate::seal::Initial::AlreadyPrinted(when) => Err(Exit::new(
            1,
            format!(
                "the initial seal key of node {} was already printed{}; the bastion no \
                 longer has it",
                config.node,
                when.map(|w| format!(" ({w})")).unwrap_or_default()
            ),
        )
        .into()),
    }
}

async fn seal(config: &Config, json: bool) -> anyhow::Result<i32> {
    let store = Store::open(&config.database, &config.node).await?;
    let row = crate::sealer::seal_now(&store, &config.audit.seal_key).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&row).context("encode seal")?
        );
        return Ok(0);
    }
    match row {
        Some(r) => println!(
            "sealed node {} up to seq {} (epoch {})",
            r.node, r.seq, r.epoch
        ),
        None => println!("nothing new to seal"),
    }
    Ok(0)
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
