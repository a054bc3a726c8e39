//! The nightly report inside `serve`: shortly after midnight UTC, write the
//! previous day's report unless it is already there.
//!
//! Several nodes share one database and one reports folder, and each runs
//! this job: the report must be written once, not once per node. A node
//! writes only while it holds [`RunLock`] (a PostgreSQL advisory lock, or
//! a file lock in the reports folder on SQLite) and checks under the lock
//! whether the report exists; a node that finds the lock taken retries
//! later, and then finds the report written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::{Date, Duration, OffsetDateTime, Time};

use super::source::{LiveSource, ReportSource, generate};
use super::write::{Format, report_path, secure_reports_folder, write_report};
use super::{ReportError, yesterday};
use crate::config::Config;
use crate::policy::Policy;
use crate::store::{Backend, Ctx, Store};

/// The advisory lock key of the daily report job ("GATEREPT").
pub const LOCK_KEY: i64 = 0x4741_5445_5245_5054;

/// The right to write the daily report, held by one node at a time.
pub enum RunLock {
    /// A transaction holding `pg_try_advisory_xact_lock(LOCK_KEY)`: the
    /// lock goes with the transaction, so a node that dies or drops this
    /// mid-write cannot leave it held by a pooled connection.
    Postgres(sqlx::Transaction<'static, sqlx::Any>),
    /// An exclusive lock on `REPORTS/.daily.lock` (nodes on one host).
    File(std::fs::File),
}

impl RunLock {
    /// Takes the lock if no other node holds it; `Ok(None)` when one does.
    pub async fn try_take(store: &Store, reports: &Path) -> Result<Option<RunLock>, ReportError> {
        if store.backend() == Backend::Postgres {
            let mut tx = store.pool().begin().await.ctx("begin report lock")?;
            let got: i64 = sqlx::query_scalar(
                "SELECT CASE WHEN pg_try_advisory_xact_lock($1) THEN 1 ELSE 0 END",
            )
            .bind(LOCK_KEY)
            .fetch_one(&mut *tx)
            .await
            .ctx("take report lock")?;
            return Ok((got == 1).then_some(RunLock::Postgres(tx)));
        }
        let reports = reports.to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&reports).map_err(|e| ReportError::io(&reports, e))?;
            let path = reports.join(".daily.lock");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| ReportError::io(&path, e))?;
            match file.try_lock() {
                Ok(()) => Ok(Some(RunLock::File(file))),
                Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                Err(std::fs::TryLockError::Error(e)) => Err(ReportError::io(&path, e)),
            }
        })
        .await
        .map_err(|e| ReportError::Render(format!("report lock task: {e}")))?
    }

    /// Lets the next node in.
    pub async fn release(self) {
        match self {
            // Rolling back ends the transaction and its lock; if that
            // fails the connection is closed, which ends them too.
            RunLock::Postgres(tx) => {
                if let Err(e) = tx.rollback().await {
                    tracing::warn!("releasing the report lock: {e}");
                }
            }
            RunLock::File(file) => drop(file),
        }
    }
}

/// The run time each day, UTC: late enough that the day's last events
/// are in (session ends, grant expiry sweeps).
pub const RUN_AT: Time = time::macros::time!(00:05);
/// After a failed run, try again this often until the next day's run.
const RETRY: Duration = Duration::minutes(10);
/// Sleep at most this long at a time, so a wall-clock jump (suspend, NTP
/// step) delays the run by no more than this.
const MAX_NAP: Duration = Duration::minutes(5);

/// The next run strictly after `now`.
pub fn next_run(now: OffsetDateTime) -> OffsetDateTime {
    let now = now.to_offset(time::UtcOffset::UTC);
    let today = now.date().with_time(RUN_AT).assume_utc();
    if now < today {
        today
    } else {
        today + Duration::days(1)
    }
}

/// Writes the report for `date` in every format unless all its files
/// exist already. `Ok(None)`: nothing to do.
pub async fn write_if_missing<S: ReportSource>(
    config: &Config,
    source: &S,
    policy: &Policy,
    date: Date,
    now: OffsetDateTime,
) -> Result<Option<Vec<PathBuf>>, ReportError> {
    let name = super::build::day(date);
    let complete = Format::ALL
        .iter()
        .all(|&f| report_path(&config.reports, &name, f).exists());
    if complete {
        return Ok(None);
    }
    let mut report = generate(config, source, policy, date, now).await?;
    super::source::sign_chain_heads(config, source, &mut report).await?;
    let out = config.reports.clone();
    let recordings = config.recordings.clone();
    // Blocking file work off the runtime; it also finishes even if the job
    // is aborted at shutdown, so no temporary file is left behind.
    let written = tokio::task::spawn_blocking(move || {
        secure_reports_folder(&out)?;
        write_report(&report, &Format::ALL, &out, &recordings)
    })
    .await
    .map_err(|e| ReportError::Render(e.to_string()))??;
    Ok(Some(written))
}

async fn sleep_until(t: OffsetDateTime) {
    loop {
        let left = t - OffsetDateTime::now_utc();
        if left <= Duration::ZERO {
            return;
        }
        let nap = left.min(MAX_NAP);
        tokio::time::sleep(std::time::Duration::try_from(nap).unwrap_or_default()).await;
    }
}

/// Runs forever: at [`RUN_AT`] UTC each day writes yesterday's report
/// (catching up at start when it is missing), retrying every ten minutes
/// after a failure. `policy` returns the policy in force; `signer` signs
/// the chain heads (`serve`'s, loaded before it dropped privileges).
/// Spawn it from `serve`; aborting it is safe.
pub async fn daily_job<F>(
    config: Config,
    store: Store,
    signer: Option<Arc<crate::recording::Signer>>,
    policy: F,
) where
    F: Fn() -> Arc<Policy> + Send + Sync + 'static,
{
    let source = LiveSource::new(&config, store.clone()).with_signer(signer);
    let now = OffsetDateTime::now_utc();
    let started_after_run = now >= now.date().with_time(RUN_AT).assume_utc();
    let mut pending: Option<Date> = started_after_run.then(|| yesterday(now));
    loop {
        if let Some(date) = pending {
            let policy = policy();
            match RunLock::try_take(&store, &config.reports).await {
                Ok(Some(lock)) => {
                    let now = OffsetDateTime::now_utc();
                    match write_if_missing(&config, &source, &policy, date, now).await {
                        Ok(Some(paths)) => {
                            pending = None;
                            for p in paths {
                                tracing::info!("daily report written: {}", p.display());
                            }
                        }
                        Ok(None) => pending = None,
                        Err(e) => tracing::error!("daily report for {date}: {e}"),
                    }
                    lock.release().await;
                }
                // Stays pending: the retry finds the other node's report.
                Ok(None) => tracing::info!("daily report for {date}: another node is writing it"),
                Err(e) => tracing::error!("daily report for {date}: {e}"),
            }
        }
        let now = OffsetDateTime::now_utc();
        let next = next_run(now);
        let wake = if pending.is_some() {
            (now + RETRY).min(next)
        } else {
            next
        };
        sleep_until(wake).await;
        if OffsetDateTime::now_utc() >= next {
            pending = Some(yesterday(next));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// `serve` spawns the job: its future must be `Send + 'static`.
    #[allow(dead_code)]
    fn the_job_can_be_spawned(config: Config, store: Store) {
        fn spawnable<T: std::future::Future + Send + 'static>(_: T) {}
        spawnable(daily_job(config, store, None, || {
            Arc::new(Policy::default())
        }));
    }

    #[test]
    fn runs_at_five_past_midnight() {
        assert_eq!(
            next_run(datetime!(2026-03-10 00:04:59 UTC)),
            datetime!(2026-03-10 00:05 UTC)
        );
        assert_eq!(
            next_run(datetime!(2026-03-10 00:05 UTC)),
            datetime!(2026-03-11 00:05 UTC)
        );
        assert_eq!(
            next_run(datetime!(2026-03-10 23:59 UTC)),
            datetime!(2026-03-11 00:05 UTC)
        );
        assert_eq!(
            next_run(datetime!(2026-03-10 01:00 +02:00)),
            datetime!(2026-03-10 00:05 UTC)
        );
        assert_eq!(
            yesterday(datetime!(2026-03-01 00:05 UTC)),
            time::macros::date!(2026 - 02 - 28)
        );
    }
}
