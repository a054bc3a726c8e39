//! Connections to the console's and the admin listener's ports, bounded so
//! that nothing sent to them can starve the SSH listener.
//!
//! - Each connection is served by hyper on its own, with a TLS handshake
//!   deadline (console), a header-read deadline, and an idle deadline: a
//!   connection with no request in progress for [`Limits::idle_timeout`]
//!   is closed, whether it is before its handshake, between kept-alive
//!   requests or trickling a header.
//! - At most [`Limits::max_connections`] are open at once, and at most
//!   [`Limits::per_source`] from one address. At a cap the oldest idle
//!   connection (no request in progress; one still in its handshake
//!   counts as idle) gives way to the newcomer, from the same address
//!   when that address is at its cap; with none idle the newcomer is
//!   closed at once. So a flood of silent or slow sockets cannot keep a
//!   staff member's request out for longer than it takes to evict one.
//! - The caps are bounded by the open-file limit (see [`fd_budget`]): the
//!   web and admin ports together never take the descriptors kept for the
//!   SSH listener, whatever the configuration says.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::tls::Peer;

/// Descriptors the web and admin ports never take: kept for the SSH
/// listener, its sessions' target connections and recordings, the
/// database pool and the log. Half the limit, and at least this many.
pub const SSH_RESERVE: u64 = 128;

/// Descriptors the web and admin ports may use between them, out of an
/// open-file limit of `nofile`: what is left after [`SSH_RESERVE`] or half
/// the limit, whichever is more.
pub fn fd_budget(nofile: u64) -> u64 {
    nofile.saturating_sub(SSH_RESERVE.max(nofile / 2))
}

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub per_source: usize,
    /// TLS handshake deadline (the console; the admin port is plain TCP).
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

fn cap(configured: usize, share: u64) -> usize {
    configured
        .min(usize::try_from(share).unwrap_or(usize::MAX))
        .max(1)
}

impl Limits {
    /// The console's: half of the descriptor budget for connections (a
    /// live view holds its cast open too: see [`live_streams_cap`]).
    pub fn web(cfg: &crate::config::WebConfig, nofile: u64) -> Limits {
        let max = cap(cfg.max_connections, fd_budget(nofile) / 2);
        Limits {
            max_connections: max,
            per_source: cfg.max_connections_per_source.min(max),
            handshake_timeout: cfg.handshake_timeout,
            header_timeout: cfg.header_timeout,
            idle_timeout: cfg.idle_timeout,
        }
    }

    /// The admin listener's: an eighth of the budget; a quarter of its cap
    /// per source, so one scraper cannot hold all of it.
    pub fn admin(cfg: &crate::config::MetricsConfig, nofile: u64) -> Limits {
        let max = cap(cfg.max_connections, fd_budget(nofile) / 8);
        Limits {
            max_connections: max,
            per_source: (max / 4).max(1),
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Live views at once: an eighth of the budget (each holds its cast file
/// open besides its connection).
pub fn live_streams_cap(configured: usize, nofile: u64) -> usize {
    cap(configured, fd_budget(nofile) / 8)
}

/// One open connection, as the book keeps it.
struct Open {
    source: IpAddr,
    /// Requests in progress (a response body still being sent counts).
    busy: Arc<watch::Sender<usize>>,
    stop: CancellationToken,
}

/// Which connections are open, oldest first (ids grow).
#[derive(Default)]
struct Book {
    next: u64,
    open: BTreeMap<u64, Open>,
}

/// What [`Book::admit`] decided.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    /// Admitted under this id; `evicted` gave way for it.
    Yes { id: u64, evicted: bool },
    /// At a cap with no idle connection to evict.
    No,
}

impl Book {
    fn admit(
        &mut self,
        source: IpAddr,
        limits: &Limits,
        busy: Arc<watch::Sender<usize>>,
        stop: CancellationToken,
    ) -> Admit {
        let from_source = self.open.values().filter(|o| o.source == source).count();
        let idle = |o: &Open| *o.busy.borrow() == 0;
        let mut evicted = false;
        if from_source >= limits.per_source || self.open.len() >= limits.max_connections {
            let victim = if from_source >= limits.per_source {
                self.open
                    .iter()
                    .find(|(_, o)| o.source == source && idle(o))
                    .map(|(id, _)| *id)
            } else {
                self.open.iter().find(|(_, o)| idle(o)).map(|(id, _)| *id)
            };
            let Some(victim) = victim else {
                return Admit::No;
            };
            if let Some(o) = self.open.remove(&victim) {
                o.stop.cancel();
            }
            evicted = true;
        }
        let id = self.next;
        self.next += 1;
        self.open.insert(id, Open { source, busy, stop });
        Admit::Yes { id, evicted }
    }

    fn close(&mut self, id: u64) {
        self.open.remove(&id);
    }
}

/// Takes its connection out of the book when the connection's task ends.
struct Slot {
    book: Arc<Mutex<Book>>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.book).close(self.id);
    }
}

fn lock(book: &Mutex<Book>) -> std::sync::MutexGuard<'_, Book> {
    match book.lock() {
        Ok(b) => b,
        Err(p) => p.into_inner(),
    }
}

/// Counts a request in progress until dropped (with the response body).
struct Busy(Arc<watch::Sender<usize>>);

impl Busy {
    fn new(tx: Arc<watch::Sender<usize>>) -> Busy {
        tx.send_modify(|n| *n += 1);
        Busy(tx)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Serves `app` on `tcp` until `stop` fires: over TLS when `tls` is given,
/// within `limits`. `listener` names it in metrics and logs (`web`,
/// `admin`). Handlers get the client's address as `ConnectInfo<Peer>`.
pub async fn serve(
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
    listener: &'static str,
) {
    let book = Arc::new(Mutex::new(Book::default()));
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = tcp.accept() => a,
        };
        let (sock, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(10);
                a
            }
            Err(e) => {
                // Out of descriptors and the like: back off, never spin.
                tracing::warn!("{listener}: accept: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let busy = Arc::new(watch::Sender::new(0usize));
        let conn_stop = stop.child_token();
        let admitted = lock(&book).admit(peer.ip(), &limits, busy.clone(), conn_stop.clone());
        let id = match admitted {
            Admit::Yes { id, evicted } => {
                if evicted {
                    crate::metrics::web_connection(listener, "evicted");
                }
                crate::metrics::web_connection(listener, "accepted");
                id
            }
            Admit::No => {
                crate::metrics::web_connection(listener, "refused");
                tracing::debug!(%peer, "{listener}: connection cap reached, none idle");
                drop(sock);
                continue;
            }
        };
        let slot = Slot {
            book: book.clone(),
            id,
        };
        let _ = sock.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                _ = conn_stop.cancelled() => {}
                _ = idle_watch(busy.subscribe(), limits.idle_timeout) => {
                    crate::metrics::web_connection(listener, "idle_closed");
                }
                _ = connection(sock, peer, tls, app, busy, limits, listener) => {}
            }
        });
    }
}

/// Resolves once no request has been in progress for `idle`.
async fn idle_watch(mut rx: watch::Receiver<usize>, idle: Duration) {
    loop {
        if *rx.borrow_and_update() == 0 {
            tokio::select! {
                _ = tokio::time::sleep(idle) => return,
                changed = rx.changed() => if changed.is_err() {
                    return;
                },
            }
        } else if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn connection(
    sock: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    busy: Arc<watch::Sender<usize>>,
    limits: Limits,
    listener: &'static str,
) {
    match tls {
        Some(acceptor) => {
            match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(sock)).await {
                Ok(Ok(stream)) => http(stream, peer, app, busy, limits).await,
                Ok(Err(e)) => {
                    crate::metrics::web_connection(listener, "handshake_failed");
                    tracing::debug!(%peer, "{listener}: TLS handshake failed: {e}");
                }
                Err(_) => {
                    crate::metrics::web_connection(listener, "handshake_failed");
                    tracing::debug!(%peer, "{listener}: TLS handshake timed out");
                }
            }
        }
        None => http(sock, peer, app, busy, limits).await,
    }
}

async fn http<S>(
    io: S,
    peer: SocketAddr,
    app: Router,
    busy: Arc<watch::Sender<usize>>,
    limits: Limits,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let guard = Busy::new(busy.clone());
        let mut app = app.clone();
        req.extensions_mut().insert(ConnectInfo(Peer(peer)));
        async move {
            let resp = tower_service::Service::call(&mut app, req.map(Body::new)).await?;
            // The request counts as in progress until its body is sent (a
            // live view's stream is not idle).
            Ok::<_, Infallible>(resp.map(|b| {
                Body::new(b.map_frame(move |f| {
                    let _held = &guard;
                    f
                }))
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    if let Err(e) = builder.serve_connection(TokioIo::new(io), svc).await {
        tracing::debug!(%peer, "http: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_source: usize) -> Limits {
        Limits {
            max_connections: max,
            per_source,
            handshake_timeout: Duration::from_secs(1),
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
        }
    }

    fn ip(n: u8) -> IpAddr {
        [127, 0, 0, n].into()
    }

    struct Conn {
        busy: Arc<watch::Sender<usize>>,
        stop: CancellationToken,
    }

    fn admit(book: &mut Book, source: IpAddr, l: &Limits) -> (Admit, Conn) {
        let c = Conn {
            busy: Arc::new(watch::Sender::new(0)),
            stop: CancellationToken::new(),
        };
        (book.admit(source, l, c.busy.clone(), c.stop.clone()), c)
    }

    #[test]
    fn at_the_per_source_cap_the_oldest_idle_of_that_source_gives_way() {
        let l = limits(10, 2);
        let mut b = Book::default();
        let (_, other) = admit(&mut b, ip(9), &l);
        let (_, first) = admit(&mut b, ip(2), &l);
        let (_, second) = admit(&mut b, ip(2), &l);
        let (a, _third) = admit(&mut b, ip(2), &l);
        assert_eq!(
            a,
            Admit::Yes {
                id: 3,
                evicted: true
            }
        );
        assert!(first.stop.is_cancelled());
        assert!(!second.stop.is_cancelled() && !other.stop.is_cancelled());
        assert_eq!(b.open.len(), 3);
    }

    #[test]
    fn at_the_total_cap_the_oldest_idle_gives_way_and_busy_ones_never() {
        let l = limits(3, 3);
        let mut b = Book::default();
        let (_, c1) = admit(&mut b, ip(2), &l);
        let (_, c2) = admit(&mut b, ip(3), &l);
        let (_, c3) = admit(&mut b, ip(4), &l);
        c1.busy.send_replace(1);
        let (a, _c4) = admit(&mut b, ip(5), &l);
        assert_eq!(
            a,
            Admit::Yes {
                id: 3,
                evicted: true
            }
        );
        assert!(!c1.stop.is_cancelled(), "busy: kept");
        assert!(c2.stop.is_cancelled(), "oldest idle");
        assert!(!c3.stop.is_cancelled());
        // Everything busy: the newcomer is refused.
        for c in [&c3, &_c4] {
            c.busy.send_replace(1);
        }
        let (a, _) = admit(&mut b, ip(6), &l);
        assert_eq!(a, Admit::No);
        assert_eq!(b.open.len(), 3);
    }

    #[test]
    fn closing_frees_the_place() {
        let l = limits(1, 1);
        let mut b = Book::default();
        let (a, c) = admit(&mut b, ip(2), &l);
        c.busy.send_replace(1);
        let Admit::Yes { id, .. } = a else { panic!() };
        assert_eq!(admit(&mut b, ip(2), &l).0, Admit::No);
        b.close(id);
        assert!(matches!(admit(&mut b, ip(2), &l).0, Admit::Yes { .. }));
    }

    #[test]
    fn the_budget_keeps_the_ssh_reserve() {
        assert_eq!(fd_budget(256), 128);
        assert_eq!(fd_budget(100), 0);
        assert_eq!(fd_budget(1 << 20), 1 << 19);
        let web = crate::config::Config::from_str_at("", std::path::Path::new("gatehouse.toml"))
            .unwrap()
            .web;
        let l = Limits::web(&web, 256);
        assert_eq!(l.max_connections, 64);
        assert!(l.per_source <= l.max_connections);
        assert_eq!(Limits::web(&web, 1 << 20).max_connections, 512);
    }
}
