//! Where the report's facts come from. [`ReportSource`] names exactly what
//! the report reads; [`gather`] and [`generate`] are written against it, so
//! they run the same on the live store and on a fake in tests.
//!
//! [`LiveSource`] (below the line marked `LIVE`) is the one piece bound to
//! the store, recordings, policy and vault APIs of the moment: keep it
//! small, it is the only part to adapt when those change.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;

use time::{Date, Duration, OffsetDateTime};

use super::ReportError;
use super::build::{DayBuilder, KINDS_GROUPED, KINDS_READ, day_bounds};
use super::input::*;
use super::model::Report;
use crate::audit::AuditRecord;
use crate::config::Config;
use crate::grant_types::Grant;
use crate::policy::Policy;
use crate::store::{LoginGroup, LoginSeen, SessionRow, Store};

/// Successful logins in a period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginHistory {
    /// Each user's last successful login.
    pub last: HashMap<String, OffsetDateTime>,
    /// Every `(user, source)` pair with a successful login.
    pub seen: HashSet<(String, String)>,
}

impl LoginHistory {
    /// Takes one store row into account: `user`'s logins from `source`,
    /// the last at `last`.
    pub fn note_seen(&mut self, seen: LoginSeen) {
        self.note_login(&seen.user, seen.last);
        if let Some(src) = seen.source {
            self.seen.insert((seen.user, src));
        }
    }

    fn note_login(&mut self, user: &str, t: OffsetDateTime) {
        match self.last.get_mut(user) {
            Some(last) => *last = (*last).max(t),
            None => {
                self.last.insert(user.to_string(), t);
            }
        }
    }
}

/// Everything the report reads.
pub trait ReportSource: Sync {
    /// Calls `sink` with each audit event with `from <= ts < to` whose kind
    /// is one of `kinds`, in time order, without holding them all. Returns
    /// how many events of the range it did not pass: those of other kinds,
    /// and the `session.start` and `session.end` events it may leave out
    /// because the session's row, from [`ReportSource::sessions`], says
    /// all that they would (see [`Store::report_events`]). A source may
    /// always pass them.
    fn events(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        kinds: &[&str],
        sink: &mut (dyn FnMut(AuditRecord) + Send),
    ) -> impl Future<Output = Result<u64, ReportError>> + Send;

    /// The successful logins with `from <= ts < to`, grouped by user and
    /// source address (see [`LoginGroup`]).
    fn login_groups(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<LoginGroup>, ReportError>> + Send;

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

    /// Each node's chain head (node, seq, hash) with its last seal (epoch,
    /// seq), by node; none for sources without a chain.
    fn chain_heads(&self) -> impl Future<Output = Result<Vec<HeadFact>, ReportError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Staff members with an enrolled second factor; `None` when this
    /// source cannot say.
    fn enrolled_factors(
        &self,
    ) -> impl Future<Output = Result<Option<HashSet<String>>, ReportError>> + Send {
        async { Ok(None) }
    }

    /// The key that signs the chain heads, when the caller holds it
    /// already (`serve`, which may no longer read the key file after
    /// dropping privileges); otherwise the configured key file is read.
    /// The access reviews' marks (latest certification and suspension of
    /// each entitlement); none by default.
    fn review_marks(
        &self,
    ) -> impl Future<Output = Result<Vec<crate::policy::entitlements::ReviewMark>, ReportError>> + Send
    {
        async { Ok(Vec::new()) }
    }

    fn head_signer(&self) -> Option<std::sync::Arc<crate::recording::Signer>> {
        None
    }
}

/// One node's chain head and last seal, as the store has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadFact {
    pub node: String,
    pub seq: i64,
    pub hash: String,
    pub seal: Option<(i64, i64)>,
}

/// Signs each head with the recording signing key (when it exists) into
/// the report's `audit_chain`.
fn sign_heads(
    config: &Config,
    date: &str,
    heads: Vec<HeadFact>,
    signer: Option<std::sync::Arc<crate::recording::Signer>>,
) -> super::model::AuditChain {
    let signer = if signer.is_some() {
        signer
    } else if config.signing_key.exists() {
        match crate::recording::Signer::load(&config.signing_key) {
            Ok(s) => Some(std::sync::Arc::new(s)),
            Err(e) => {
                tracing::error!("report: chain heads left unsigned: {e}");
                None
            }
        }
    } else {
        None
    };
    let nodes = heads
        .into_iter()
        .map(|h| {
            let epoch = h.seal.map(|(e, _)| e);
            let signature = signer
                .as_ref()
                .map(|s| {
                    hex::encode(s.sign(&crate::seal::head_message(
                        date, &h.node, h.seq, &h.hash, epoch,
                    )))
                })
                .unwrap_or_default();
            super::model::ChainHead {
                node: h.node,
                seq: h.seq,
                hash: h.hash,
                seal_epoch: epoch,
                sealed_seq: h.seal.map(|(_, s)| s),
                signature,
            }
        })
        .collect();
    super::model::AuditChain {
        date: date.to_string(),
        public_key: signer.as_ref().map(|s| s.public_key_hex()),
        nodes,
    }
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
            from_directory: policy.directory_users.contains(&u.name),
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
    let second_factors = source
        .enrolled_factors()
        .await?
        .map(|enrolled| second_factors(config, policy, &entitlements, &enrolled));
    // The policy served holds the directory's users (contract 12).
    let standing = crate::policy::entitlements::entitlements(policy, &[], &grants, as_of);
    let marks = source.review_marks().await?;
    let access_reviews =
        crate::policy::entitlements::review_all(&standing, &marks, config.review.every, as_of);
    Ok(ReportInput {
        generated_at: Some(now),
        events: Vec::new(),
        sessions,
        recordings,
        grants,
        users,
        servers,
        entitlements,
        access_reviews,
        credentials,
        vault_note,
        privileged_globs: config.recording.privileged_accounts.clone(),
        hours: WorkHours::from(&config.report),
        seen_before: history.seen,
        last_login: history.last,
        second_factors,
    })
}

/// Per policy user, whether a second factor is required (by `[auth]`, by
/// the user's entry, or by an `every-session` server they may reach) and
/// whether one is enrolled.
fn second_factors(
    config: &Config,
    policy: &Policy,
    entitlements: &[EntitlementFact],
    enrolled: &HashSet<String>,
) -> Vec<SecondFactorFact> {
    let step_up: HashSet<&str> = entitlements
        .iter()
        .filter(|e| {
            policy
                .server(&e.server)
                .is_some_and(|s| s.mfa_every_session)
        })
        .map(|e| e.user.as_str())
        .collect();
    let mut out: Vec<SecondFactorFact> = policy
        .users
        .values()
        .map(|u| SecondFactorFact {
            user: u.name.clone(),
            required: config.auth.mfa == crate::config::MfaMode::Required
                || u.mfa_required
                || step_up.contains(u.name.as_str()),
            enrolled: enrolled.contains(&u.name),
        })
        .collect();
    out.sort_by(|a, b| a.user.cmp(&b.user));
    out
}

/// The report for `date`: [`gather`], then the day's events streamed
/// through a [`DayBuilder`] in one pass; events of kinds it does not read
/// ([`KINDS_READ`]) are only counted, and successful logins
/// ([`KINDS_GROUPED`]) come as groups. The result is the one [`build`]
/// gives with every event of the day in `events`.
///
/// [`build`]: super::build()
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
    let kinds: Vec<&str> = KINDS_READ
        .iter()
        .filter(|k| !KINDS_GROUPED.contains(k))
        .map(|k| k.as_str())
        .collect();
    let unread = source
        .events(start, end, &kinds, &mut |ev| builder.push(&ev))
        .await?;
    builder.count_unread(unread);
    for group in source.login_groups(start, end).await? {
        builder.push_logins(&group);
    }
    Ok(builder.finish(&input))
}

/// Adds each node's signed chain head (`audit_chain`) to a report about
/// to be written: the heads as they are now, signed with the recording
/// signing key when there is one.
pub async fn sign_chain_heads<S: ReportSource>(
    config: &Config,
    source: &S,
    report: &mut Report,
) -> Result<(), ReportError> {
    let heads = source.chain_heads().await?;
    report.audit_chain = Some(sign_heads(
        config,
        &report.date,
        heads,
        source.head_signer(),
    ));
    Ok(())
}

// ---------------------------------------------------------------- LIVE --
// Bound to the current store / recording / policy / vault APIs.

/// The live sources: the database, the recordings folder and the vault.
#[derive(Clone)]
pub struct LiveSource {
    pub store: Store,
    pub recordings: PathBuf,
    pub vault: crate::config::VaultConfig,
    /// Signs the chain heads ([`ReportSource::head_signer`]).
    pub signer: Option<std::sync::Arc<crate::recording::Signer>>,
}

impl LiveSource {
    pub fn new(config: &Config, store: Store) -> Self {
        LiveSource {
            store,
            recordings: config.recordings.clone(),
            vault: config.vault.clone(),
            signer: None,
        }
    }

    /// Signs chain heads with `signer` instead of reading the key file.
    pub fn with_signer(mut self, signer: Option<std::sync::Arc<crate::recording::Signer>>) -> Self {
        self.signer = signer;
        self
    }
}

/// Who may reach what at `as_of`, from the policy's `reachable`: one row
/// per active grant, and one for the standing rule: access by policy, or,
/// where sessions need a grant and none is active, eligibility to ask.
pub fn entitlements(
    policy: &Policy,
    grants: &[Grant],
    as_of: OffsetDateTime,
) -> Vec<EntitlementFact> {
    let mut out = Vec::new();
    for user in policy.users.keys() {
        for r in crate::policy::reachable(policy, user, grants, as_of) {
            let mode = r.mode.as_str().to_string();
            let grant_only = policy
                .server(&r.server)
                .is_some_and(|s| s.mode == crate::policy::Mode::OnRequest || s.require_grant);
            if let Some(rule) = &r.policy {
                if !grant_only {
                    out.push(EntitlementFact {
                        user: user.clone(),
                        server: r.server.clone(),
                        mode: mode.clone(),
                        accounts: r.accounts.clone(),
                        ports: r.ports.clone(),
                        any_port: r.any_port,
                        through: Through::Policy { rule: rule.clone() },
                    });
                } else if r.grants.is_empty() {
                    out.push(EntitlementFact {
                        user: user.clone(),
                        server: r.server.clone(),
                        mode: mode.clone(),
                        accounts: Vec::new(),
                        ports: Vec::new(),
                        any_port: false,
                        through: Through::GrantRequired { rule: rule.clone() },
                    });
                }
            }
            for g in &r.grants {
                out.push(EntitlementFact {
                    user: user.clone(),
                    server: r.server.clone(),
                    mode: mode.clone(),
                    accounts: g.accounts.clone(),
                    ports: g.ports.clone(),
                    any_port: false,
                    through: Through::Grant {
                        id: g.id,
                        until: g.until,
                        approved_by: g.approved_by.clone(),
                    },
                });
            }
        }
    }
    out
}

/// Who has a second factor enrolled: what [`ReportSource::enrolled_factors`]
/// reads from a live store (the daily report's and the Today page's).
pub(crate) async fn enrolled_in_store(
    store: &Store,
) -> Result<Option<HashSet<String>>, ReportError> {
    Ok(Some(
        store
            .mfa_list()
            .await?
            .into_iter()
            .map(|r| r.user)
            .collect(),
    ))
}

impl ReportSource for LiveSource {
    async fn enrolled_factors(&self) -> Result<Option<HashSet<String>>, ReportError> {
        enrolled_in_store(&self.store).await
    }

    async fn events(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        kinds: &[&str],
        sink: &mut (dyn FnMut(AuditRecord) + Send),
    ) -> Result<u64, ReportError> {
        use futures::StreamExt;
        let mut passed: u64 = 0;
        {
            let mut events = self.store.report_events(from, to, kinds);
            while let Some(ev) = events.next().await {
                sink(ev?);
                passed += 1;
            }
        }
        // Counted after the stream: an event a live bastion appends
        // meanwhile counts as not passed, never as passed twice.
        let all = self.store.count_events_except(from, to, &[]).await?;
        Ok(all.saturating_sub(passed))
    }

    async fn login_groups(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<LoginGroup>, ReportError> {
        Ok(self.store.login_groups(from, to).await?)
    }

    async fn sessions(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<SessionRow>, ReportError> {
        Ok(self.store.sessions_between(from, to).await?)
    }

    async fn grants(&self) -> Result<Vec<Grant>, ReportError> {
        Ok(self.store.grants_list(None).await?)
    }

    async fn review_marks(
        &self,
    ) -> Result<Vec<crate::policy::entitlements::ReviewMark>, ReportError> {
        Ok(self.store.review_marks(None).await?)
    }

    async fn logins(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<LoginHistory, ReportError> {
        // One row per (user, source) from the logins index, not every
        // event of the period.
        let mut h = LoginHistory::default();
        for seen in self.store.logins_between(since, until).await? {
            h.note_seen(seen);
        }
        Ok(h)
    }

    async fn credentials(
        &self,
        as_of: OffsetDateTime,
    ) -> Result<Option<Vec<CredentialFact>>, ReportError> {
        let list = crate::vault::status(self.store.pool(), &self.vault, as_of)
            .await
            .map_err(|e| ReportError::Unavailable(e.to_string()))?;
        Ok(Some(
            list.into_iter()
                .map(|c| CredentialFact {
                    server: c.meta.server,
                    account: c.meta.account,
                    kind: c.meta.kind.as_str().to_string(),
                    third_party: c.meta.third_party,
                    created: c.meta.created_at,
                    rotated: c.meta.rotated_at,
                    last_used: c.meta.last_used_at,
                    rotation_due: c.compliance.rotation_due,
                    complies: c.compliance.complies,
                    reasons: c.compliance.reasons,
                })
                .collect(),
        ))
    }

    async fn recordings(&self) -> Result<Vec<RecordingFact>, ReportError> {
        let root = self.recordings.clone();
        let found = tokio::task::spawn_blocking(move || crate::recording::scan(&root))
            .await
            .map_err(|e| ReportError::Recordings(e.to_string()))?
            .map_err(|e| ReportError::Recordings(e.to_string()))?;
        Ok(found
            .into_iter()
            .filter_map(|r| recording_fact(&self.recordings, r))
            .collect())
    }

    fn head_signer(&self) -> Option<std::sync::Arc<crate::recording::Signer>> {
        self.signer.clone()
    }

    async fn chain_heads(&self) -> Result<Vec<HeadFact>, ReportError> {
        let seals = self.store.last_seals().await?;
        Ok(self
            .store
            .chain_heads()
            .await?
            .into_iter()
            .map(|(node, seq, hash)| {
                let seal = seals
                    .iter()
                    .find(|s| s.node == node)
                    .map(|s| (s.epoch, s.seq));
                HeadFact {
                    node,
                    seq,
                    hash,
                    seal,
                }
            })
            .collect())
    }
}

fn recording_fact(
    root: &std::path::Path,
    r: crate::recording::RecordingInfo,
) -> Option<RecordingFact> {
    use crate::recording::ReviewState as S;
    let date = super::parse_date(&r.date)?;
    let path = r
        .cast_path
        .strip_prefix(root)
        .ok()
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_else(|| format!("{}/{}.cast", r.date, r.id));
    let meta = r.meta.as_ref();
    Some(RecordingFact {
        date,
        session: meta.map(|m| m.session.clone()),
        user: meta.map(|m| m.user.clone()),
        server: meta.map(|m| m.server.clone()),
        account: meta.map(|m| m.account.clone()),
        started_at: meta.and_then(|m| {
            OffsetDateTime::parse(
                &m.started_at,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()
        }),
        path,
        state: match r.state {
            S::Unreviewed => ReviewState::Unreviewed,
            S::Reviewed => ReviewState::Reviewed,
            S::Flagged => ReviewState::Flagged,
        },
        problem: if r.cast_exists {
            r.meta_error.clone()
        } else {
            Some("the cast file is missing".into())
        },
        id: r.id,
    })
}
