//! Where the report's facts come from. [`ReportSource`] names exactly what
//! the report reads; [`gather`] and [`generate`] are written against it, so
//! they run the same on the live store and on a fake in tests.
//!
//! [`LiveSource`] (below the line marked `LIVE`) is the one piece bound to
//! the store, recordings, policy and vault APIs of the moment: keep it
//! small, it is the only part to adapt when those change. On this branch
//! it is written against main's placeholders (sessions and recordings
//! report themselves unavailable); the `report-live` branch holds the
//! version for the merged store, recording, policy and vault modules.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;

use time::{Date, Duration, OffsetDateTime};

use super::ReportError;
use super::build::{DayBuilder, day_bounds};
use super::input::*;
use super::model::Report;
use crate::audit::AuditRecord;
use crate::config::Config;
use crate::grants::Grant;
use crate::policy::Policy;
use crate::store::{SessionRow, Store};

/// Successful logins in a period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginHistory {
    /// Each user's last successful login.
    pub last: HashMap<String, OffsetDateTime>,
    /// Every `(user, source)` pair with a successful login.
    pub seen: HashSet<(String, String)>,
}

impl LoginHistory {
    /// Takes one audit event into account (only `auth.success` counts).
    pub fn note(&mut self, ev: &AuditRecord) {
        if ev.kind != "auth.success" {
            return;
        }
        let Some(user) = ev.user.as_deref() else {
            return;
        };
        if let Ok(t) = OffsetDateTime::parse(&ev.ts, &time::format_description::well_known::Rfc3339)
        {
            let last = self.last.entry(user.to_string()).or_insert(t);
            if t > *last {
                *last = t;
            }
        }
        if let Some(src) = ev.source.as_deref() {
            self.seen.insert((user.to_string(), src.to_string()));
        }
    }
}

/// Everything the report reads.
pub trait ReportSource: Sync {
    /// Calls `sink` with each audit event with `from <= ts < to`, in order,
    /// without holding them all.
    fn events(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        sink: &mut (dyn FnMut(AuditRecord) + Send),
    ) -> impl Future<Output = Result<(), ReportError>> + Send;

    /// Sessions overlapping `[from, to)`.
    fn sessions(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<SessionRow>, ReportError>> + Send;

    /// Every grant, in its current state.
    fn grants(&self) -> impl Future<Output = Result<Vec<Grant>, ReportError>> + Send;

    /// Successful logins with `since <= ts < until`.
    fn logins(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> impl Future<Output = Result<LoginHistory, ReportError>> + Send;

    /// Vault credentials with their compliance at `as_of`; `None` when
    /// this bastion has no vault to read.
    fn credentials(
        &self,
        as_of: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<Vec<CredentialFact>>, ReportError>> + Send;

    /// Every recording on disk.
    fn recordings(&self) -> impl Future<Output = Result<Vec<RecordingFact>, ReportError>> + Send;
}

/// Everything but the event stream, for the day `date`, judged at
/// `min(now, end of the day)`. `events` is left empty: [`generate`]
/// streams them.
pub async fn gather<S: ReportSource>(
    config: &Config,
    source: &S,
    policy: &Policy,
    date: Date,
    now: OffsetDateTime,
) -> Result<ReportInput, ReportError> {
    let (start, end) = day_bounds(date);
    let as_of = now.min(end);
    let sessions = source.sessions(start, end).await?;
    let grants = source.grants().await?;
    let history = source
        .logins(end - Duration::days(super::build::DORMANT_DAYS), start)
        .await?;
    let recordings = source.recordings().await?;
    let (credentials, vault_note) = match source.credentials(as_of).await {
        Ok(Some(list)) if list.is_empty() => (
            Some(list),
            Some(
                "The vault holds no credentials: the privileged accounts used this day are \
                 listed from the sessions instead."
                    .to_string(),
            ),
        ),
        Ok(Some(list)) => (Some(list), None),
        Ok(None) => (
            None,
            Some(
                "No vault is available: the privileged accounts used this day are listed from \
                 the sessions instead."
                    .to_string(),
            ),
        ),
        Err(e) => (None, Some(format!("The vault could not be read: {e}"))),
    };
    let users = policy
        .users
        .values()
        .map(|u| UserFact {
            name: u.name.clone(),
            expires: u.expires,
        })
        .collect();
    let servers = policy
        .servers
        .values()
        .map(|s| ServerFact {
            name: s.name.clone(),
            mode: s.mode.as_str().to_string(),
        })
        .collect();
    let entitlements = entitlements(policy, &grants, as_of);
    Ok(ReportInput {
        generated_at: Some(now),
        events: Vec::new(),
        sessions,
        recordings,
        grants,
        users,
        servers,
        entitlements,
        credentials,
        vault_note,
        privileged_globs: config.recording.privileged_accounts.clone(),
        hours: WorkHours::from(&config.report),
        seen_before: history.seen,
        last_login: history.last,
    })
}

/// The report for `date`: [`gather`], then the day's events streamed
/// through a [`DayBuilder`] in one pass.
pub async fn generate<S: ReportSource>(
    config: &Config,
    source: &S,
    policy: &Policy,
    date: Date,
    now: OffsetDateTime,
) -> Result<Report, ReportError> {
    let input = gather(config, source, policy, date, now).await?;
    let (start, end) = day_bounds(date);
    let mut builder = DayBuilder::new(date);
    source
        .events(start, end, &mut |ev| builder.push(&ev))
        .await?;
    Ok(builder.finish(&input))
}

// ---------------------------------------------------------------- LIVE --
// Bound to the current store / recording / policy / vault APIs.

/// The live sources: the database, the recordings folder and the vault.
#[derive(Clone)]
pub struct LiveSource {
    pub store: Store,
    pub recordings: PathBuf,
}

impl LiveSource {
    pub fn new(config: &Config, store: Store) -> Self {
        LiveSource {
            store,
            recordings: config.recordings.clone(),
        }
    }
}

/// Who may reach what at `as_of`, from the policy's `reachable`.
pub fn entitlements(
    policy: &Policy,
    grants: &[Grant],
    as_of: OffsetDateTime,
) -> Vec<EntitlementFact> {
    let by_id: HashMap<i64, &Grant> = grants.iter().map(|g| (g.id, g)).collect();
    let mut out = Vec::new();
    for user in policy.users.keys() {
        for r in crate::policy::reachable(policy, user, grants, as_of) {
            let through = match r.grant {
                Some(id) => Through::Grant {
                    id,
                    until: by_id.get(&id).and_then(|g| g.expires_at),
                    approved_by: by_id.get(&id).and_then(|g| g.approved_by.clone()),
                },
                None => Through::Policy {
                    rule: r.via.clone(),
                },
            };
            out.push(EntitlementFact {
                user: user.clone(),
                server: r.server.clone(),
                mode: r.mode.as_str().to_string(),
                accounts: r.accounts.clone(),
                ports: r.ports.clone(),
                any_port: false,
                through,
            });
        }
    }
    out
}

impl ReportSource for LiveSource {
    async fn events(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        sink: &mut (dyn FnMut(AuditRecord) + Send),
    ) -> Result<(), ReportError> {
        // Streams once the store offers `export_each`; until then the
        // store's `export` returns the day as one list.
        for ev in self.store.export(Some(from), Some(to)).await? {
            sink(ev);
        }
        Ok(())
    }

    async fn sessions(
        &self,
        _from: OffsetDateTime,
        _to: OffsetDateTime,
    ) -> Result<Vec<SessionRow>, ReportError> {
        Err(ReportError::Unavailable(
            "this build's store cannot list a day's sessions (Store::sessions_between)".into(),
        ))
    }

    async fn grants(&self) -> Result<Vec<Grant>, ReportError> {
        Ok(self.store.grants_list(None).await?)
    }

    async fn logins(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<LoginHistory, ReportError> {
        let mut h = LoginHistory::default();
        for ev in self.store.export(Some(since), Some(until)).await? {
            h.note(&ev);
        }
        Ok(h)
    }

    async fn credentials(
        &self,
        _as_of: OffsetDateTime,
    ) -> Result<Option<Vec<CredentialFact>>, ReportError> {
        Ok(None)
    }

    async fn recordings(&self) -> Result<Vec<RecordingFact>, ReportError> {
        let _ = &self.recordings;
        Err(ReportError::Unavailable(
            "this build cannot read the recordings catalog (recording::scan)".into(),
        ))
    }
}
