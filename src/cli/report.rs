//! `gatehouse report daily`: writes the daily report (contract section 9).
//!
//! Written into the reports folder (no `--out`), it takes the lock the
//! nightly job of `serve` takes (`report::job::RunLock`: a PostgreSQL
//! advisory lock shared by every node, or a file lock in the reports folder
//! on SQLite), so that two nodes, or a node's job and an admin, never write
//! the shared folder at once. A run that finds the lock held writes nothing
//! and exits 1 saying so. `--out DIR` writes elsewhere and takes no lock.
use super::ReportCmd;
use crate::config::Config;
use crate::policy::Policy;
use crate::report::job::RunLock;
use crate::report::{Format, LiveSource, generate, parse_date, write_report, yesterday};
use crate::store::Store;

/// What a run that finds the report lock taken says (exit 1).
pub const LOCK_HELD: &str = "another writer holds the daily report lock (a node's nightly job or another \
     `gatehouse report daily`); nothing written, try again when it is done";

pub async fn run(config: Config, cmd: ReportCmd) -> anyhow::Result<i32> {
    match cmd {
        ReportCmd::Daily { date, format, out } => {
            let now = time::OffsetDateTime::now_utc();
            let date = match date.as_deref() {
                Some(d) => parse_date(d).ok_or_else(|| {
                    super::Exit::new(2, format!("invalid --date {d:?}: expected YYYY-MM-DD"))
                })?,
                None => yesterday(now),
            };
            let formats = Format::parse_list(&format).map_err(|m| super::Exit::new(2, m))?;
            let own_folder = out.is_none();
            let out = out.unwrap_or_else(|| config.reports.clone());
            let policy = Policy::load_dir_with(&config.policies, config.directory.is_some()).map_err(|diags| {
                let first = diags.first().map(|d| d.to_string()).unwrap_or_default();
                anyhow::anyhow!(
                    "{} problem(s) in the policy files (run `gatehouse policy check`); first: {first}",
                    diags.len()
                )
            })?;
            let store = Store::open(&config.database, &config.node).await?;
            let lock = if own_folder {
                match RunLock::try_take(&store, &config.reports).await? {
                    Some(lock) => Some(lock),
                    None => return Err(super::Exit::new(1, LOCK_HELD).into()),
                }
            } else {
                None
            };
            let source = LiveSource::new(&config, store);
            let recordings = config.recordings.clone();
            let written = async {
                let mut report = generate(&config, &source, &policy, date, now).await?;
                crate::report::sign_chain_heads(&config, &source, &mut report).await?;
                let written = tokio::task::spawn_blocking(move || {
                    if own_folder {
                        crate::report::secure_reports_folder(&out)?;
                    }
                    write_report(&report, &formats, &out, &recordings)
                })
                .await??;
                anyhow::Ok(written)
            }
            .await;
            if let Some(lock) = lock {
                lock.release().await;
            }
            for p in written? {
                println!("{}", p.display());
            }
            Ok(0)
        }
    }
}
