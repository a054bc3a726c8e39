//! `gatehouse report daily`: writes the daily report (contract section 9).
use super::ReportCmd;
use crate::config::Config;
use crate::policy::Policy;
use crate::report::{Format, LiveSource, generate, parse_date, write_report, yesterday};
use crate::store::Store;

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
            let policy = Policy::load_dir(&config.policies).map_err(|diags| {
                let first = diags.first().map(|d| d.to_string()).unwrap_or_default();
                anyhow::anyhow!(
                    "{} problem(s) in the policy files (run `gatehouse policy check`); first: {first}",
                    diags.len()
                )
            })?;
            let store = Store::open(&config.database, &config.node).await?;
            let source = LiveSource::new(&config, store);
            let mut report = generate(&config, &source, &policy, date, now).await?;
            crate::report::sign_chain_heads(&config, &source, &mut report).await?;
            let recordings = config.recordings.clone();
            let written = tokio::task::spawn_blocking(move || {
                if own_folder {
                    crate::report::secure_reports_folder(&out)?;
                }
                write_report(&report, &formats, &out, &recordings)
            })
            .await??;
            for p in written {
                println!("{}", p.display());
            }
            Ok(0)
        }
    }
}
