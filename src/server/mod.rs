//! The SSH front end: the accept loop with its limits, the background jobs
//! (policy reload, grant expiry, kill requests), and clean shutdown. The
//! pieces, top down: [`handler`] (russh adapter); [`channel`] (the
//! session-channel dispatcher); [`bridge`] (a session to its target),
//! [`forwards`] (`-L`/`-R`) and [`command_mode`], which never import each
//! other; [`pump`] (moving bytes); [`conn`] (one authenticated
//! connection); [`flow`], [`shared`] and [`chan`] (the shared channel
//! types) at the bottom. Logging in to targets is [`crate::upstream`].
//!
//! Layer: the top of `server/` (the accept loop and start-up); may import
//! any module of `server/` and anything below `server` in the crate.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditEvent, EventKind};
use crate::config::Config;
use crate::policy::Policy;
use crate::store::Store;

pub(crate) mod bridge;
pub(crate) mod chan;
pub(crate) mod channel;
pub(crate) mod command_mode;
pub(crate) mod conn;
mod dbwatch;
mod directory;
pub(crate) mod flow;
pub(crate) mod forwards;
pub(crate) mod handler;
pub(crate) mod heartbeat;
pub mod kill_listen;
pub(crate) mod lineedit;
pub(crate) mod login;
pub(crate) mod notice;
pub(crate) mod pump;
pub(crate) mod quiet;
pub(crate) mod refusals;
pub(crate) mod sftp;
pub(crate) mod shared;
pub(crate) mod slots;
pub(crate) mod staff_cert;
mod watch;

use refusals::Reason;
use shared::Shared;

/// Runs the bastion until SIGTERM/SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Registered first: a SIGTERM that arrives while start-up is still
    // running (the listener is bound before the console and the sealer
    // start) is kept and handled as a clean stop, never the default kill.
    let signals = ShutdownSignals::register();
    // Whatever serve creates without an explicit mode (folders, report
    // files, SQLite's side files) is the owner's alone.
    crate::privileges::owner_only_umask();
    let drop_to = match &config.user {
        Some(name) => Some(crate::privileges::prepare(name)?),
        None => {
            if crate::privileges::running_as_root() {
                tracing::warn!("{}", crate::privileges::ROOT_WARNING);
            }
            None
        }
    };
    let host_key = crate::keys::load_or_create(&config.host_key, "gatehouse host key")?;
    let identity = crate::keys::load_or_create(&config.identity_key, "gatehouse identity")?;
    // A bind password anyone else may read is refused before serving.
    if let Some(d) = &config.directory {
        crate::directory::ldap::read_bind_password(d)?;
    }
    let policy =
        Policy::load_dir_with(&config.policies, config.directory.is_some()).map_err(|diags| {
            let first = diags.first().map(|d| d.to_string()).unwrap_or_default();
            anyhow::anyhow!(
                "{} problem(s) in the policy files (run `gatehouse policy check`); first: {first}",
                diags.len()
            )
        })?;
    let store = open_store(&config).await?;
    store
        .with_spool(&config.audit_spool)
        .with_context(|| "cannot open the audit spool")?;
    crate::seal::ensure_key(&config.audit.seal_key, &config.node)
        .await
        .with_context(|| "cannot create the audit seal key ([audit] seal_key)")?;
    let master = crate::vault::MasterKey::resolve(&config.master_key)?;
    let vault = crate::vault::Vault::new(store.pool().clone(), master, config.vault.clone());
    let signer = crate::recording::Signer::load_or_create(&config.signing_key)?;
    // Started during an outage: serve anyway, refusing logins with the
    // banner, and finish start-up when the database is back (`recover`).
    let deferred = !store.is_ready();
    let ca = if deferred {
        None
    } else {
        Some(
            start_from_database(&store, &vault, &config, &signer)
                .await
                .map_err(StartFault::into_inner)?,
        )
    };
    let _admin = crate::admin::start(&config, store.clone()).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr()?;
    // Before the drop: the console's key may be root's and its port low.
    let web = crate::web::bind(&config)
        .await
        .with_context(|| "cannot start the review console ([web])")?;
    if let Some(account) = &drop_to {
        crate::privileges::hand_over_and_drop(account, &config)?;
        let problems = crate::health::writable_places(&store, &config).await;
        if !problems.is_empty() {
            return Err(crate::privileges::PrivilegeError::CannotWrite {
                user: account.name.clone(),
                problem: crate::health::summary(&problems),
            }
            .into());
        }
        tracing::info!(user = %account.name, uid = account.uid, "dropped root privileges");
    }
    let identity_line = crate::keys::public_line(&identity);
    let users = policy.users.len();
    let servers = policy.servers.len();
    let digest = policy.digest.clone();
    let shared = Shared::new(config, policy, store, identity, vault, signer, ca);
    shared
        .audit(
            AuditEvent::new(EventKind::PolicyReloaded)
                .detail("digest", digest)
                .detail("users", users)
                .detail("servers", servers)
                .detail("reason", "start"),
        )
        .await;
    println!("gatehouse listening on {local}");
    println!("identity key (add to targets' authorized_keys): {identity_line}");
    println!("policy: {users} users, {servers} servers");
    crate::web::start(Arc::new(shared.console_core()), web)
        .await
        .with_context(|| "cannot start the review console ([web])")?;
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tracing::info!("listening on {local}");

    let ssh_config = Arc::new(ssh_config(&shared.config, host_key));
    let mut background = tokio::spawn(run_when_ready(shared.clone(), deferred));
    let db_watch = dbwatch::spawn(shared.clone());
    let summaries = tokio::spawn(refusal_summaries(shared.clone()));
    let sealer = tokio::spawn(crate::sealer::run_sealer(
        shared.store.clone(),
        shared.config.audit.seal_key.clone(),
        shared.config.audit.seal_interval,
    ));
    let accept = accept_loop(shared.clone(), listener, ssh_config);
    tokio::select! {
        r = accept => r?,
        r = &mut background => {
            // Only a start-up that cannot complete ends it (a wrong master
            // key found once the database is back, a failed migration).
            shared.shutdown.cancel();
            db_watch.abort();
            summaries.abort();
            return match r {
                Ok(Err(e)) => Err(e),
                Ok(Ok(())) => Err(anyhow::anyhow!("background jobs ended")),
                Err(e) => Err(anyhow::anyhow!("background jobs: {e}")),
            };
        }
        _ = signals.wait() => {
            tracing::info!("shutting down: closing sessions");
        }
    }
    shared.end_sessions("the bastion is shutting down", |_, _| true);
    shared.shutdown.cancel();
    // Let sessions tell their clients and flush recordings and audit.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let live = shared.sessions.lock().map(|s| s.len()).unwrap_or(0);
        if live == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    background.abort();
    db_watch.abort();
    summaries.abort();
    sealer.abort();
    write_refusals(&shared).await;
    // The last epoch ends with the process.
    if let Err(e) = crate::sealer::seal_now(&shared.store, &shared.config.audit.seal_key).await {
        tracing::error!("cannot seal the audit chain at shutdown: {e}");
    }
    // The store's own pool closes on drop; give in-flight writes a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// Opens the database. A PostgreSQL server that is away does not stop
/// `serve`: the store is opened without a connection and start-up finishes
/// when it is back (`recover`). Anything else (a bad URL, a wrong
/// password, a failed migration, an unusable SQLite file) does.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    match Store::open(&config.database, &config.node).await {
        Ok(store) => Ok(store),
        Err(e) if e.is_unavailable() && !config.database.starts_with("sqlite") => {
            tracing::error!(
                "the database is unreachable ({e}): serving anyway, refusing logins until it is back"
            );
            Store::open_lazy(&config.database, &config.node)
                .with_context(|| "cannot open the database")
        }
        Err(e) => Err(e).with_context(|| "cannot open the database"),
    }
}

/// A start-up step that failed: because the database is away (try again
/// later) or for good.
enum StartFault {
    Unavailable(anyhow::Error),
    Fatal(anyhow::Error),
}

impl StartFault {
    fn into_inner(self) -> anyhow::Error {
        match self {
            StartFault::Unavailable(e) | StartFault::Fatal(e) => e,
        }
    }

    fn of_store(e: crate::store::StoreError, what: &'static str) -> StartFault {
        if e.is_unavailable() {
            StartFault::Unavailable(anyhow::Error::new(e).context(what))
        } else {
            StartFault::Fatal(anyhow::Error::new(e).context(what))
        }
    }
}

/// What start-up reads from the database, once it answers: the vault's
/// key check, the user CA every node shares (sealed under the master key),
/// this node's heartbeat row (and when its previous run was last seen), the
/// sessions that run left open, and the recordings to seal.
async fn start_from_database(
    store: &Store,
    vault: &crate::vault::Vault,
    config: &Config,
    signer: &crate::recording::Signer,
) -> Result<crate::ca::UserCa, StartFault> {
    if let Err(e) = vault.check_key().await {
        let e2 = anyhow::Error::new(e);
        let unavailable = matches!(
            e2.downcast_ref::<crate::vault::VaultError>(),
            Some(crate::vault::VaultError::Db(_))
        );
        let e2 = e2.context("the vault's master key does not open this database's vault");
        return Err(if unavailable {
            StartFault::Unavailable(e2)
        } else {
            StartFault::Fatal(e2)
        });
    }
    let ca = load_user_ca(store, vault, config).await?;
    let previous = store
        .node_started(&config.node)
        .await
        .map_err(|e| StartFault::of_store(e, "cannot record this node's start"))?;
    close_stale_sessions(store, &config.node, previous.map(|p| p.last_seen)).await;
    // Other nodes may be recording into the same folder right now: seal
    // only recordings whose session is no longer live anywhere.
    let live: std::collections::HashSet<String> = store
        .sessions_live()
        .await
        .map_err(|e| StartFault::of_store(e, "cannot list live sessions"))?
        .into_iter()
        .map(|s| s.id)
        .collect();
    match crate::recording::seal_interrupted_except(&config.recordings, signer, |id| {
        live.contains(id)
    }) {
        Ok(sealed) if !sealed.is_empty() => {
            tracing::warn!(
                "sealed {} recording(s) interrupted by a previous run",
                sealed.len()
            )
        }
        Ok(_) => {}
        Err(e) => tracing::error!("cannot seal interrupted recordings: {e}"),
    }
    // The review index from the review files, in the background: serving
    // does not wait for the recordings folder to be read.
    let (store, root, node) = (
        store.clone(),
        config.recordings.clone(),
        config.node.clone(),
    );
    tokio::spawn(async move {
        match crate::recording::review::reconcile(&store, &root, &node).await {
            Ok(r) => tracing::info!(
                sessions = r.sessions,
                updated = r.updated,
                cleared = r.cleared,
                "review states reconciled with the recordings folder: {} of {} session(s) updated, {} cleared",
                r.updated,
                r.sessions,
                r.cleared
            ),
            Err(e) => {
                tracing::error!("cannot reconcile review states with the recordings folder: {e}")
            }
        }
    });
    Ok(ca)
}

/// The user CA every node shares (`crate::ca`): the one in the database, or
/// the `[ca] key` file imported, or a new one. A database that is away is
/// `Unavailable` (start-up waits for it); anything else is fatal.
async fn load_user_ca(
    store: &Store,
    vault: &crate::vault::Vault,
    config: &Config,
) -> Result<crate::ca::UserCa, StartFault> {
    let (ca, origin) =
        match crate::ca::UserCa::load_shared(store.pool(), &vault.key(), &config.ca_key).await {
            Ok(loaded) => loaded,
            Err(e @ crate::ca::CaError::Stored(_)) if !database_answers(store).await => {
                return Err(StartFault::Unavailable(
                    anyhow::Error::new(e).context("cannot read the user CA"),
                ));
            }
            Err(e) => {
                return Err(StartFault::Fatal(
                    anyhow::Error::new(e).context("cannot load the user CA"),
                ));
            }
        };
    match origin {
        crate::ca::Origin::Database => {}
        crate::ca::Origin::Generated => tracing::info!("user CA created in the database"),
        crate::ca::Origin::Imported(p) => {
            tracing::info!("user CA imported into the database from {}", p.display())
        }
    }
    Ok(ca)
}

/// A `SELECT 1` within a few seconds, whatever start-up's state (the
/// store's own probe says "down" until start-up completes).
async fn database_answers(store: &Store) -> bool {
    tokio::time::timeout(
        Duration::from_secs(3),
        sqlx::query("SELECT 1").fetch_one(store.pool()),
    )
    .await
    .is_ok_and(|r| r.is_ok())
}

/// How often a node started during an outage tries the database again.
const RECOVER_EVERY: Duration = Duration::from_secs(2);

/// Finishes a start-up deferred by an outage: waits for the database,
/// applies the migrations, reads what start-up reads, then lets logins
/// in. `Err` only when start-up cannot complete at all.
async fn recover(shared: &Arc<Shared>) -> anyhow::Result<()> {
    loop {
        tokio::time::sleep(RECOVER_EVERY).await;
        match shared.store.connect_and_migrate().await {
            Ok(()) => {}
            Err(e) if e.is_unavailable() => {
                tracing::debug!("database still unreachable: {e}");
                continue;
            }
            Err(e) => return Err(e).with_context(|| "cannot open the database"),
        }
        match start_from_database(&shared.store, &shared.vault, &shared.config, &shared.signer)
            .await
        {
            Ok(ca) => {
                if shared.ca.set(ca).is_err() {
                    tracing::warn!("the user CA was already loaded");
                }
                shared.store.set_ready();
                tracing::warn!("the database is back: start-up completed, logins are served");
                return Ok(());
            }
            Err(StartFault::Unavailable(e)) => tracing::debug!("start-up: {e:#}"),
            Err(StartFault::Fatal(e)) => return Err(e),
        }
    }
}

/// The background jobs (policy reload, grants, kills, reports, rotation,
/// heartbeat), once start-up has completed; they end when this future is
/// dropped.
async fn run_when_ready(shared: Arc<Shared>, deferred: bool) -> anyhow::Result<()> {
    if deferred {
        recover(&shared).await?;
    }
    let _jobs = AbortOnDrop(Some(watch::spawn_jobs(shared.clone())));
    let mut beat = tokio::task::JoinSet::new();
    beat.spawn(heartbeat::run(shared.clone()));
    std::future::pending::<()>().await;
    Ok(())
}

/// Stops the jobs when `run_when_ready` is dropped (shutdown).
struct AbortOnDrop(Option<watch::Jobs>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(jobs) = self.0.take() {
            jobs.abort();
        }
    }
}

/// Sessions this node left open when it stopped without closing them (a
/// crash, `kill -9`, power loss) are ended now, each with its `session.end`
/// event, so neither `sessions list` nor the report shows a ghost. They
/// end when the previous run was last seen (its last heartbeat), with the
/// bytes it last wrote: the downtime is not theirs.
async fn close_stale_sessions(store: &Store, node: &str, last_seen: Option<time::OffsetDateTime>) {
    const REASON: &str = "bastion restarted";
    let seen = last_seen.unwrap_or_else(Shared::now);
    let stale = match store.close_lost_sessions(node, seen, REASON, None).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot close the sessions left open by a previous run: {e}");
            return;
        }
    };
    for row in stale {
        tracing::warn!(session = %row.id, "session left open by a previous run marked ended");
        // Like a live session's end: only target sessions have a start event.
        let Some(ev) = crate::store::lost_session_end(&row, REASON) else {
            continue;
        };
        if let Err(e) = store.audit(&ev).await {
            tracing::error!(session = %row.id, "cannot write session.end: {e}");
        }
    }
}

pub use shared::SERVER_ID;

fn ssh_config(config: &Config, host_key: russh::keys::PrivateKey) -> russh::server::Config {
    // server-sig-algs lists every staff key algorithm accepted (Dropbear
    // offers only keys whose algorithm it finds there).
    let preferred = config
        .ssh
        .listener
        .listener_preferred(&[host_key.algorithm()]);
    russh::server::Config {
        server_id: russh::SshId::Standard(Cow::Borrowed(SERVER_ID)),
        methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        window_size: flow::WINDOW,
        maximum_packet_size: 32 * 1024,
        channel_buffer_size: 64,
        max_auth_attempts: 6,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(60)),
        keepalive_max: 3,
        nodelay: true,
        preferred,
        ..Default::default()
    }
}

/// Descriptors kept free of SSH connections: the database, recordings
/// being written (a cast is open only while its writer writes), the audit
/// spool, logs, the console. A quarter of a small limit.
const FD_RESERVE: u64 = 1024;

/// Connections held at once: each holds its socket and, once at a target,
/// the target's. Past this a newcomer is refused at once, so the sessions
/// already up keep the descriptors their recordings and audit need
/// (issue 22: at the open-file limit, casts that could not be reopened
/// ended their sessions, fail closed, and SQLite could not open files).
pub fn max_connections(nofile: u64) -> usize {
    let n = nofile.saturating_sub(FD_RESERVE.min(nofile / 4)) / 2;
    usize::try_from(n)
        .unwrap_or(usize::MAX)
        .clamp(16, tokio::sync::Semaphore::MAX_PERMITS)
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    ssh_config: Arc<russh::server::Config>,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(10);
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections(
        crate::rlimit::nofile(),
    )));
    loop {
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => { backoff = Duration::from_millis(10); x }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            _ = shared.shutdown.cancelled() => return Ok(()),
        };
        let Ok(held) = connections.clone().try_acquire_owned() else {
            drop(socket);
            shared
                .refusals
                .note(peer.ip(), Reason::TooManyConnections, None);
            continue;
        };
        let permits = shared.startups.permits.clone();
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // max_startups reached: a connection may give way (a flood
                // must not lock staff out; see `slots` for which), else the
                // newcomer is refused.
                let acquired = match shared.startups.evict_for(peer.ip()) {
                    Some(victim) => {
                        shared.refusals.note(victim, Reason::Evicted, None);
                        tokio::time::timeout(Duration::from_millis(200), permits.acquire_owned())
                            .await
                            .ok()
                            .and_then(Result::ok)
                    }
                    None => None,
                };
                match acquired {
                    Some(p) => p,
                    None => {
                        drop(socket);
                        shared.refusals.note(peer.ip(), Reason::MaxStartups, None);
                        continue;
                    }
                }
            }
        };
        let _ = socket.set_nodelay(true);
        let shared = shared.clone();
        let cfg = ssh_config.clone();
        tokio::spawn(async move {
            serve_connection(shared, cfg, socket, peer, permit, held).await;
        });
    }
}

/// Writes the counted refusals as soon as there are some, then waits
/// `refusals::INTERVAL` before the next batch, so a flood costs the
/// database a few events per interval.
async fn refusal_summaries(shared: Arc<Shared>) {
    loop {
        shared.refusals.counted().await;
        write_refusals(&shared).await;
        tokio::time::sleep(refusals::INTERVAL).await;
    }
}

async fn write_refusals(shared: &Shared) {
    for ev in shared.refusals.take() {
        shared.audit(ev).await;
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    cfg: Arc<russh::server::Config>,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
    held: tokio::sync::OwnedSemaphorePermit,
) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let authed = Arc::new(AtomicBool::new(false));
    let slot = shared.startups.add(peer.ip());
    let (seq, evicted) = (slot.seq, slot.evicted);
    let cut = CancellationToken::new();
    let socket = Cuttable::new(socket, cut.clone(), slot.established, held);
    let run = serve_ssh(
        shared.clone(),
        cfg,
        socket,
        peer,
        permit,
        id,
        authed,
        seq,
        cut.clone(),
    );
    tokio::select! {
        refused = run => {
            if let Some((reason, error)) = refused {
                shared.refusals.note(peer.ip(), reason, error);
            }
        }
        _ = evicted.cancelled() => {
            // Dropping `run` alone would leave russh's session task (and
            // the startup permit its handler holds) running.
            cut.cancel();
            tracing::debug!(%peer, "unauthenticated connection evicted (max_startups)");
        }
    }
    shared.unauth_done(seq);
}

/// The client's socket, which the bastion can cut. russh's
/// `RunningSession` cannot be aborted, and its session loop does not read
/// its handle while the first key exchange is pending, so a peer that sends
/// a banner and then stalls would otherwise keep its connection, and its
/// `max_startups` permit, for ever. Once `cut` is cancelled, reads see EOF
/// and writes fail, which ends the session task.
///
/// It also watches the client's first bytes for a valid banner and the end
/// of the first key exchange ([`slots::KexWatch`]), which protects the
/// connection from eviction by other sources' floods.
struct Cuttable {
    inner: tokio::net::TcpStream,
    token: CancellationToken,
    cut: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    kex: slots::KexWatch,
    /// The connection's place under `max_connections`, given back when
    /// russh drops the stream (the connection's end, not its login's).
    _held: tokio::sync::OwnedSemaphorePermit,
}

impl Cuttable {
    fn new(
        inner: tokio::net::TcpStream,
        token: CancellationToken,
        established: Arc<AtomicBool>,
        held: tokio::sync::OwnedSemaphorePermit,
    ) -> Cuttable {
        let cut = Box::pin(token.clone().cancelled_owned());
        Cuttable {
            inner,
            token,
            cut,
            kex: slots::KexWatch::new(established),
            _held: held,
        }
    }
}

impl AsyncRead for Cuttable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        // Polled first so that a cut wakes a pending read.
        if this.cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if r.is_ready() && this.kex.watching() {
            this.kex
                .feed(buf.filled().get(before..).unwrap_or_default());
        }
        r
    }
}

impl AsyncWrite for Cuttable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.token.is_cancelled() {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The client's TCP socket, whose low-water mark the read buffer's holds
/// raise.
impl std::os::fd::AsRawFd for Cuttable {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.as_raw_fd()
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_ssh(
    shared: Arc<Shared>,
    cfg: Arc<russh::server::Config>,
    socket: Cuttable,
    peer: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
    id: String,
    authed: Arc<AtomicBool>,
    seq: u64,
    cut: CancellationToken,
) -> Option<(Reason, Option<refusals::Example>)> {
    let deadline = tokio::time::Instant::now() + shared.config.limits.login_grace_time;
    let handler = handler::ConnHandler::new(
        shared.clone(),
        peer,
        id.clone(),
        permit,
        authed.clone(),
        seq,
        cut.clone(),
    );
    let running = match tokio::time::timeout_at(
        deadline,
        russh::server::run_stream(
            cfg,
            crate::readbuf::ReadBuffer::with_socket(socket),
            handler,
        ),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "handshake: {e}");
            return refusal_of(&e);
        }
        Err(_) => {
            tracing::debug!(%peer, "login grace time expired before the handshake");
            return Some((Reason::GraceExpired, None));
        }
    };
    let handle = running.handle();
    let grace_expired = AtomicBool::new(false);
    let grace_timer = async {
        tokio::time::sleep_until(deadline).await;
        if !authed.load(Ordering::SeqCst) {
            grace_expired.store(true, Ordering::SeqCst);
            // Says why when the key exchange is over; a peer stalling it
            // never lets the session read this, so the socket is cut after.
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                handle.disconnect(
                    russh::Disconnect::ByApplication,
                    "gatehouse: login grace time expired".into(),
                    "en".into(),
                ),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            if !authed.load(Ordering::SeqCst) {
                cut.cancel();
            }
            tracing::debug!(%peer, "login grace time expired");
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        r = running => {
            if grace_expired.load(Ordering::SeqCst) {
                return Some((Reason::GraceExpired, None));
            }
            if let Err(e) = r {
                tracing::debug!(%peer, session = %id, "connection ended: {e}");
                if !authed.load(Ordering::SeqCst) {
                    return refusal_of(&e);
                }
            }
            None
        }
        _ = grace_timer => Some((Reason::GraceExpired, None)),
    }
}

/// How an unauthenticated connection's error is audited: `None` when the
/// connection simply went away.
fn refusal_of(e: &russh::Error) -> Option<(Reason, Option<refusals::Example>)> {
    if let russh::Error::NoCommonAlgo { kind, ours, theirs } = e {
        let kind = match kind {
            russh::AlgorithmKind::Kex => "kex",
            russh::AlgorithmKind::Key => "key",
            russh::AlgorithmKind::Cipher => "cipher",
            russh::AlgorithmKind::Compression => "compression",
            russh::AlgorithmKind::Mac => "mac",
        };
        return Some((
            Reason::NoCommonAlgorithm,
            Some(refusals::Example::NoCommon {
                kind: kind.to_string(),
                offered: theirs.clone(),
                ours: ours.clone(),
            }),
        ));
    }
    malformed(e).then(|| {
        (
            Reason::Malformed,
            Some(refusals::Example::Error(e.to_string())),
        )
    })
}

/// Whether a connection's error is the peer's doing (not SSH, a protocol
/// error) rather than the connection simply going away.
fn malformed(e: &russh::Error) -> bool {
    !matches!(
        e,
        russh::Error::Disconnect
            | russh::Error::HUP
            | russh::Error::IO(_)
            | russh::Error::ConnectionTimeout
            | russh::Error::KeepaliveTimeout
            | russh::Error::InactivityTimeout
            | russh::Error::SendError
            | russh::Error::Elapsed(_)
            | russh::Error::Join(_)
    )
}

/// SIGTERM and SIGINT, registered once at the start of `serve`.
struct ShutdownSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn register() -> ShutdownSignals {
        use tokio::signal::unix::{SignalKind, signal};
        ShutdownSignals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn wait(mut self) {
        match (self.term.as_mut(), self.int.as_mut()) {
            (Some(t), Some(i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            (Some(t), None) => {
                t.recv().await;
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

#[cfg(test)]
mod connection_cap_tests {
    #[test]
    fn connections_leave_descriptors_for_recordings_and_the_database() {
        // Two per connection after the reserve: 20,000 (this VM's hard
        // limit) holds 9,488; systemd's LimitNOFILE=65536 32,256.
        assert_eq!(super::max_connections(20_000), 9_488);
        assert_eq!(super::max_connections(65_536), 32_256);
        // A small limit keeps a quarter; "unlimited" is capped.
        assert_eq!(super::max_connections(1_024), 384);
        assert_eq!(super::max_connections(256), 96);
        assert_eq!(super::max_connections(8), 16);
        assert_eq!(
            super::max_connections(u64::MAX),
            tokio::sync::Semaphore::MAX_PERMITS
        );
    }
}
