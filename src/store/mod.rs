//! The database: the audit hash chain, sessions, grants, lockouts and seen
//! sources, on SQLite (embedded default) or PostgreSQL (several bastion
//! nodes sharing one state). Everything the bastion remembers lives here.
//!
//! One [`Store`] runs the same SQL on both backends through sqlx's `Any`
//! driver: `$1`-style placeholders (SQLite accepts `$N`), only 64-bit
//! integers and text in columns, timestamps as TEXT in one fixed RFC 3339
//! form ([`ts_text`]) so they compare and sort lexically on both. Schema
//! changes are numbered migrations under `migrations/{sqlite,postgres}/`,
//! applied by [`Store::open`].
//!
//! Each concern has its own file, each a further `impl Store` block:
//! [`audit`](self::audit) (the chain), `sessions`, `lockout` (failures,
//! lockouts, first-seen sources), `grants` and `mfa` (second factors).
//!
//! May import: audit values, grant types, seal maths, metrics (counters),
//! policy's review marks (`reviews`); never a workflow above it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

mod audit;
mod console;
mod directory;
mod grants;
mod lockout;
mod mfa;
mod nodes;
mod oidc;
mod reviews;
mod seal;
mod sessions;
mod spool;
mod web;

pub use audit::{ChainCheck, Pin, RecordingStarted};
pub use console::{ConsoleCounts, Lockout, MAX_FACT_SESSIONS, SessionFacts};
pub use directory::{DirectoryHead, DirectoryRow, DirectoryTx};
pub use mfa::{MfaFactorRow, MfaListRow};
pub use nodes::{NodeStatus, lost_session_end};
pub use oidc::{NewSignIn, SignInTake};
pub use reviews::ReviewKey;
pub use seal::SealRow;
pub use sessions::{REVIEW_LISTED_MAX, SessionReview, WaitingReview};
pub use web::{
    DurationOrder, DurationPage, LinkRedemption, SessionFilter, SessionPage, WebSessionRow,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or reached (URL without password).
    #[error("database {url}: {message}")]
    Open { url: String, message: String },
    /// A connection could not be made (URL without password).
    #[error("database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("database {url}: migrations: {source}")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed; `context` says what the store was doing.
    #[error("database: {context}: {source}")]
    Query {
        context: &'static str,
        source: sqlx::Error,
    },
    /// Free-form database fault with its context.
    #[error("database: {0}")]
    Db(String),
    /// A stored value does not parse (a damaged or tampered row).
    #[error("database holds a bad value: {0}")]
    Corrupt(String),
    #[error("{0} not found")]
    NotFound(String),
    /// A value the caller passed cannot be stored (e.g. a timestamp out of range).
    #[error("{0}")]
    Invalid(String),
    /// Not written to the database, but kept in the audit spool: it will
    /// be, in order, once the database is back.
    #[error("database unavailable, kept in the audit spool: {0}")]
    Spooled(String),
}

impl StoreError {
    /// Whether this is the database being away (down, restarting,
    /// unreachable, out of connections) rather than refusing us for good
    /// (wrong password, unknown database, a failed migration, bad data).
    pub fn is_unavailable(&self) -> bool {
        use sqlx::migrate::MigrateError;
        match self {
            StoreError::Query { source, .. } | StoreError::Connect { source, .. } => {
                unavailable(source)
            }
            StoreError::Migrate {
                source: MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _),
                ..
            } => unavailable(e),
            StoreError::Spooled(_) => true,
            _ => false,
        }
    }
}

/// See [`StoreError::is_unavailable`]. PostgreSQL's SQLSTATE classes 08
/// (connection exception), 53 (insufficient resources) and 57 (operator
/// intervention: shutting down, starting up) are outages.
fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("53") || c.starts_with("57")),
        _ => false,
    }
}

/// Attaches what the store was doing to a sqlx error.
pub(crate) trait Ctx<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for Result<T, sqlx::Error> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| {
            crate::metrics::database_error(context);
            StoreError::Query { context, source }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One row per SSH session (a login to a target, or a command-mode login).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionRow {
    pub id: String,
    pub user: String,
    pub server: Option<String>,
    pub account: Option<String>,
    pub source: String,
    pub node: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub mode: Option<String>,
    pub grant_id: Option<i64>,
    pub recorded: bool,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub exit_status: Option<i64>,
    pub end_reason: Option<String>,
    /// Whether the policy flagged the session, as its `session.start`
    /// event says; `None` for rows written before the column existed
    /// (migration 0007) and for sessions without a server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged: Option<bool>,
    /// The review state of the session's recordings (migration 0022):
    /// `None` while nothing was recorded. The index of the review files
    /// beside the casts, which remain the evidence.
    #[serde(skip)]
    pub review: Option<SessionReview>,
}

/// Successful logins of one user from one address in a period (see
/// [`Store::logins_between`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSeen {
    pub user: String,
    /// `None` for logins whose event names no source address.
    pub source: Option<String>,
    /// The last of these logins.
    pub last: OffsetDateTime,
}

/// One user's successful logins from one source address in a period (see
/// [`Store::login_groups`]); either may be `None` when the events name none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginGroup {
    pub user: Option<String>,
    pub source: Option<String>,
    pub count: u64,
    /// The first of these logins (ties by id), and its session (`None`
    /// when the group has no user or no source).
    pub first: OffsetDateTime,
    pub first_session: Option<String>,
    /// The last of these logins.
    pub last: OffsetDateTime,
}

/// Result of checking the audit chain.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChainReport {
    pub events: u64,
    /// `None` when intact; else the first event that was changed, inserted
    /// or removed, and what is wrong.
    pub first_bad: Option<ChainFault>,
    /// Per node, how far its chain is sealed and whether the seals were
    /// proven with the node's initial seal key.
    pub nodes: Vec<NodeSeals>,
}

/// How far one node's chain is sealed (see [`crate::seal`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeSeals {
    pub node: String,
    /// The last `seq` of the node's chain that was walked intact.
    pub last_seq: i64,
    /// Seals found (epochs 0..seals-1 when intact).
    pub seals: i64,
    /// The last seal's epoch and seq, when there is one.
    pub sealed_epoch: Option<i64>,
    pub sealed_seq: i64,
    /// Whether every seal's MAC was checked with a key derived from the
    /// node's initial key (`--seal-key`).
    pub proven: bool,
    /// Pinned heads (from signed daily reports) found in the chain.
    pub pins: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChainFault {
    pub node: String,
    pub seq: i64,
    /// The offending row; `None` when the event was removed.
    pub id: Option<i64>,
    pub problem: String,
}

impl std::fmt::Display for ChainFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.id {
            Some(id) => write!(
                f,
                "event id {id} (node {}, seq {}): {}",
                self.node, self.seq, self.problem
            ),
            None => write!(
                f,
                "event node {} seq {}: {}",
                self.node, self.seq, self.problem
            ),
        }
    }
}

/// The database handle. Cheap to clone: every clone shares one pool and one
/// append lock.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    /// This process's node name: its audit chain segment.
    node: String,
    /// Serializes this process's audit appends, so they queue here rather
    /// than contend for the database's write lock. Across processes the
    /// chain-head row lock (PostgreSQL) or the write lock (SQLite) decides.
    append_lock: tokio::sync::Mutex<()>,
    /// Set by `with_spool` (serve only).
    spool: std::sync::OnceLock<spool::Spool>,
    /// When the database was last found away (a failed probe or write),
    /// until a probe or a spool drain succeeds: the outage is then known,
    /// and logins and audit writes do not wait for the database again.
    outage: std::sync::Mutex<Option<std::time::Instant>>,
    /// False while a `serve` started during an outage has not yet applied
    /// the migrations and read what start-up reads ([`Store::open_lazy`],
    /// [`Store::set_ready`]): logins are refused meanwhile.
    ready: std::sync::atomic::AtomicBool,
    /// The migrations this backend needs.
    migrator: &'static sqlx::migrate::Migrator,
    /// The URL without its password, for messages.
    shown_url: String,
}

/// What one probe of the database found ([`Store::probe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The database answered.
    pub up: bool,
    /// The probe asked the database (and so may have waited up to the
    /// acquire timeout); false when a known outage answered at once.
    pub asked: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How long a PostgreSQL connection may take to get (connect included).
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `reachable` trusts its last failure.
const HEALTH_TTL: Duration = Duration::from_secs(1);

/// How long a statement waits for SQLite's write lock (another process
/// appending, a report reading) before failing.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending
    /// migrations. `sqlite://PATH` creates the file and its folder and uses
    /// WAL; `postgres://` connects. `node` names this bastion's audit chain.
    pub async fn open(url: &str, node: &str) -> Result<Store, StoreError> {
        let store = Store::open_lazy(url, node)?;
        if let Err(e) = store.connect_and_migrate().await {
            store.pool.close().await;
            return Err(e);
        }
        store.set_ready();
        Ok(store)
    }

    /// The store for `url` without touching the database: no connection
    /// is made and no migration applied until [`Store::connect_and_migrate`]
    /// (for `serve` started while PostgreSQL is down). Until
    /// [`Store::set_ready`], the database counts as unreachable: logins are
    /// refused at once and events go to the spool. A bad URL is still an
    /// error at once.
    pub fn open_lazy(url: &str, node: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let shown = redact_url(url);
        let open_err = |message: String| StoreError::Open {
            url: shown.clone(),
            message,
        };
        if node.is_empty() {
            return Err(open_err("empty node name".into()));
        }
        let (backend, connect_url) = if let Some(rest) = strip_sqlite_scheme(url) {
            (Backend::Sqlite, prepare_sqlite(rest).map_err(open_err)?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(open_err(
                "unsupported database URL (expected sqlite://PATH or postgres://...)".into(),
            ));
        };
        // A PostgreSQL server that is down or unreachable must cost a login
        // seconds, not the default half minute: logins are refused fast
        // (and the event spooled) instead. SQLite's file is always there;
        // its waits are the busy timeout's.
        let acquire = match backend {
            Backend::Sqlite => Duration::from_secs(10),
            Backend::Postgres => PG_ACQUIRE_TIMEOUT,
        };
        let options = AnyPoolOptions::new().acquire_timeout(acquire);
        let options = match backend {
            Backend::Sqlite => options.max_connections(8).after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers (reports, exports) run beside the
                    // writer; FULL sync keeps every committed audit event
                    // on disk even if the host loses power.
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                         PRAGMA journal_mode = WAL; \
                         PRAGMA synchronous = FULL; \
                         PRAGMA foreign_keys = ON;"
                    )))
                    .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options.max_connections(10),
        };
        let pool = options
            .connect_lazy(&connect_url)
            .map_err(|e| open_err(redact_message(&e.to_string(), url)))?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        Ok(Store {
            pool,
            inner: Arc::new(Inner {
                backend,
                node: node.to_string(),
                append_lock: tokio::sync::Mutex::new(()),
                spool: std::sync::OnceLock::new(),
                outage: std::sync::Mutex::new(None),
                ready: std::sync::atomic::AtomicBool::new(false),
                migrator,
                shown_url: shown,
            }),
        })
    }

    /// Connects and applies pending migrations. On failure, the error
    /// says whether the database was merely away
    /// ([`StoreError::is_unavailable`]) or refused us for good (a wrong
    /// password, a failed migration).
    pub async fn connect_and_migrate(&self) -> Result<(), StoreError> {
        let shown = self.inner.shown_url.clone();
        let conn = self
            .pool
            .acquire()
            .await
            .map_err(|source| StoreError::Connect {
                url: shown.clone(),
                source,
            })?;
        drop(conn);
        self.inner
            .migrator
            .run(&self.pool)
            .await
            .map_err(|source| StoreError::Migrate { url: shown, source })
    }

    /// Start-up is complete: the migrations are applied and what start-up
    /// reads has been read. Until then the database counts as unreachable.
    pub fn set_ready(&self) {
        self.inner
            .ready
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Keeps what cannot be written to the database in the spool file at
    /// `path` (see `spool`), and drains it in the background: every
    /// second while it holds anything. For `serve`; call once.
    pub fn with_spool(&self, path: &std::path::Path) -> Result<(), StoreError> {
        let spool = spool::Spool::open(path)?;
        if self.inner.spool.set(spool).is_err() {
            return Err(StoreError::Invalid("the audit spool is set already".into()));
        }
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Nothing is written before start-up has applied the
                // migrations and closed what the previous run left open.
                if store.spooled() == 0 || !store.is_ready() {
                    continue;
                }
                // Asked first without the append lock: a drain waiting on
                // a database that is away would hold up every refusal's
                // event (spooled at once) behind it.
                if !store.answers().await {
                    continue;
                }
                match store.drain_spool().await {
                    Ok(n) => {
                        store.note_up();
                        tracing::info!("audit spool: {n} entries written to the database")
                    }
                    Err(e) => tracing::debug!("audit spool not drained yet: {e}"),
                }
            }
        });
        Ok(())
    }

    pub(crate) fn spool(&self) -> Option<&spool::Spool> {
        self.inner.spool.get()
    }

    /// The audit spool's file, when this store spools (`with_spool`).
    pub fn spool_path(&self) -> Option<&std::path::Path> {
        self.spool().map(spool::Spool::path)
    }

    /// Entries waiting in the spool: while there are any, the database was
    /// found unreachable and has not taken them back yet.
    pub fn spooled(&self) -> usize {
        self.spool().map_or(0, spool::Spool::pending)
    }

    /// Whether the database answers now (see [`Store::probe`]).
    pub async fn reachable(&self) -> bool {
        self.probe().await.up
    }

    /// Asks the database whether it answers: false at once while the
    /// spool holds anything, while start-up is incomplete, or within a
    /// second of the last failure; else a `SELECT 1` within the acquire
    /// timeout. So a burst of logins during an outage waits once; a success
    /// is not remembered (it would hide an outage that just began).
    pub async fn probe(&self) -> Probe {
        let known = Probe {
            up: false,
            asked: false,
        };
        if self.spooled() > 0 || !self.is_ready() {
            return known;
        }
        if let Ok(h) = self.inner.outage.lock()
            && h.is_some_and(|at| at.elapsed() < HEALTH_TTL)
        {
            return known;
        }
        let up = self.answers().await;
        if up {
            self.note_up();
        } else {
            self.note_down();
        }
        Probe { up, asked: true }
    }

    /// A `SELECT 1` within the acquire timeout; remembers nothing.
    async fn answers(&self) -> bool {
        tokio::time::timeout(
            PG_ACQUIRE_TIMEOUT,
            sqlx::query("SELECT 1").fetch_one(&self.pool),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// Whether the database is known to be away now, without asking it:
    /// start-up incomplete, the spool holding anything, or the last probe
    /// or write having failed with no success since. Logins are then
    /// refused and events spooled at once, so that one login waits at most
    /// once for the database during an outage (the banner's probe).
    pub fn outage_known(&self) -> bool {
        !self.is_ready()
            || self.spooled() > 0
            || self
                .inner
                .outage
                .lock()
                .map(|h| h.is_some())
                .unwrap_or(true)
    }

    /// The database failed to answer (a probe, or a write that had to be
    /// spooled).
    pub fn note_down(&self) {
        if let Ok(mut h) = self.inner.outage.lock() {
            *h = Some(std::time::Instant::now());
        }
    }

    /// The database answered: the outage, if any, is over.
    pub(crate) fn note_up(&self) {
        if let Ok(mut h) = self.inner.outage.lock() {
            *h = None;
        }
    }

    /// This process's node name (its audit chain segment).
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The pool, for further `impl Store` blocks in this module.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection (waits for checked-out ones to return).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction that holds the write lock from its first statement:
    /// `BEGIN IMMEDIATE` on SQLite (a deferred transaction that reads then
    /// writes can fail with SQLITE_BUSY instead of waiting); a plain `BEGIN`
    /// on PostgreSQL, where callers lock rows with `FOR UPDATE`.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        match self.backend() {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .ctx("begin transaction")
    }
}

fn strip_sqlite_scheme(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
}

/// Creates the database's folder and makes sure sqlx creates the file
/// (`mode=rwc`); returns the URL to connect with.
fn prepare_sqlite(rest: &str) -> Result<String, String> {
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err("no file name in sqlite URL".into());
    }
    let mode = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("mode="));
    let in_memory = path == ":memory:" || mode == Some("memory");
    // `mode=ro` / `mode=rw` ask for an existing file: create nothing then.
    let create = !in_memory && matches!(mode, None | Some("rwc"));
    if create {
        let parent = std::path::Path::new(path).parent();
        if let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create folder {}: {e}", dir.display()))?;
        }
        // Created here, owner-only, before SQLite would create it with the
        // umask's mode: it holds the audit log and the vault. SQLite gives
        // its -wal and -shm files the same mode.
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {path}: {e}")),
        }
    }
    let mut url = format!("sqlite://{path}");
    match (query, mode) {
        (Some(q), Some(_)) => {
            url.push('?');
            url.push_str(q);
        }
        (Some(q), None) => {
            url.push('?');
            url.push_str(q);
            url.push_str("&mode=rwc");
        }
        (None, _) if !in_memory => url.push_str("?mode=rwc"),
        (None, _) => {}
    }
    Ok(url)
}

/// The URL with any password replaced by `***` (user info and `password=`
/// query parameters), for error messages and logs.
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{user}:***@{host}"),
                    None => format!("{userinfo}@{host}"),
                },
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => head.to_string(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Removes the password of `url` from a driver error message, in case the
/// driver quoted it.
fn redact_message(message: &str, url: &str) -> String {
    match password_of(url) {
        Some(p) if !p.is_empty() => message.replace(p, "***"),
        _ => message.to_string(),
    }
}

fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    Some(userinfo.split_once(':')?.1)
}

/// Timestamps are stored as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds).
const TS_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// The stored form of a timestamp: RFC 3339 UTC, exactly six fractional
/// digits, so that text order is time order. Years outside 0000..=9999
/// would break that and are refused.
pub(crate) fn ts_text(t: OffsetDateTime) -> Result<String, StoreError> {
    let utc = t.to_offset(time::UtcOffset::UTC);
    if !(0..=9999).contains(&utc.year()) {
        return Err(StoreError::Invalid(format!(
            "timestamp {t} is outside the years 0000-9999"
        )));
    }
    utc.format(TS_FORMAT)
        .map_err(|e| StoreError::Invalid(format!("timestamp {t}: {e}")))
}

/// Parses a stored timestamp (also any RFC 3339 text, for rows written by
/// hand).
pub(crate) fn parse_ts(s: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(s, TS_FORMAT)
        .or_else(|_| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {s:?}: {e}")))
}

/// `now`, truncated to what the database keeps (microseconds).
pub(crate) fn now_utc() -> OffsetDateTime {
    truncate_micros(OffsetDateTime::now_utc())
}

pub(crate) fn truncate_micros(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1000).unwrap_or(t)
}

/// Reads column `col`, naming the column in the error.
pub(crate) fn get<'r, T>(row: &'r AnyRow, col: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get::<T, _>(col)
        .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

pub(crate) fn get_ts(row: &AnyRow, col: &'static str) -> Result<OffsetDateTime, StoreError> {
    let s: String = get(row, col)?;
    parse_ts(&s)
}

pub(crate) fn get_opt_ts(
    row: &AnyRow,
    col: &'static str,
) -> Result<Option<OffsetDateTime>, StoreError> {
    let s: Option<String> = get(row, col)?;
    s.as_deref().map(parse_ts).transpose()
}

fn opt_ts_text(t: Option<OffsetDateTime>) -> Result<Option<String>, StoreError> {
    t.map(ts_text).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_have_one_sortable_form() {
        let a = datetime!(2026-01-02 03:04:05.000_006_789 UTC);
        assert_eq!(ts_text(a).unwrap(), "2026-01-02T03:04:05.000006Z");
        let b = datetime!(2026-01-02 05:04:05 +02:00);
        assert_eq!(ts_text(b).unwrap(), "2026-01-02T03:04:05.000000Z");
        assert!(ts_text(b).unwrap() < ts_text(a).unwrap());
        assert_eq!(
            parse_ts("2026-01-02T03:04:05.000006Z").unwrap(),
            datetime!(2026-01-02 03:04:05.000_006 UTC)
        );
        assert_eq!(
            parse_ts("2026-01-02T05:04:05+02:00").unwrap(),
            datetime!(2026-01-02 03:04:05 UTC)
        );
        assert!(parse_ts("yesterday").is_err());
        assert!(ts_text(datetime!(-0001-01-01 0:00 UTC)).is_err());
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://gh:s3cret@db.internal:5432/gh?sslmode=require"),
            "postgres://gh:***@db.internal:5432/gh?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/gh?user=gh&password=s3cret"),
            "postgres://db/gh?user=gh&password=***"
        );
        assert_eq!(redact_url("sqlite://data/g.db"), "sqlite://data/g.db");
        assert_eq!(
            redact_message("auth failed for s3cret", "postgres://gh:s3cret@db/gh"),
            "auth failed for ***"
        );
    }

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/g.db");
        let url = prepare_sqlite(path.to_str().unwrap()).unwrap();
        assert_eq!(url, format!("sqlite://{}?mode=rwc", path.display()));
        assert!(dir.path().join("a/b").is_dir());
        let ro = dir.path().join("ro/g.db");
        assert_eq!(
            prepare_sqlite(&format!("{}?mode=ro", ro.display())).unwrap(),
            format!("sqlite://{}?mode=ro", ro.display())
        );
        assert!(!dir.path().join("ro").exists(), "read-only creates nothing");
        assert_eq!(prepare_sqlite(":memory:").unwrap(), "sqlite://:memory:");
    }

    #[tokio::test]
    async fn open_creates_the_file_and_reports_bad_urls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/g.db");
        let store = Store::open(&format!("sqlite://{}", path.display()), "n1")
            .await
            .unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        assert!(path.exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        store.close().await;

        let err = Store::open("mysql://u:pw@h/db", "n1").await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("u:***@h"), "{msg}");
        assert!(!msg.contains("pw"), "{msg}");
    }
}
