//! The review console: security staff review recordings, decide grants,
//! watch and end live sessions and read reports in a browser, served by
//! `serve` itself over HTTPS when `[web] listen` is set.
//!
//! One file per concern: [`conns`] (connection caps and timeouts, shared
//! with the admin listener), [`tls`] (certificate, fingerprint),
//! [`auth`] (one-time links, session cookie, roles, CSRF), [`server`] (the
//! router and the security headers on every response), [`pages`] (the HTML
//! pages), [`actions`] (the POSTs: review, kill, approve, deny, sign-out),
//! [`live`] (cast bytes and server-sent events of a growing cast),
//! [`review`] (the access review page and its POSTs),
//! [`today`] (what needs attention now), [`kind`] (what a session was,
//! for the list), [`views`] (maud templates; every interpolated string is escaped) and
//! [`assets`] (the stylesheet, script and asciinema player, served from the
//! binary).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Config;

pub mod actions;
pub mod assets;
pub mod auth;
pub mod conns;
pub mod kind;
pub mod live;
pub mod oidc;
pub mod pages;
pub mod refusals;
pub mod review;
pub mod server;
pub mod tls;
pub mod today;
pub mod views;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the system random generator failed")]
    Random,
    #[error("the review console is not enabled ([web] listen is not set)")]
    Disabled,
    /// Not signed in, or the session ended or timed out.
    #[error("not signed in (or the session has ended): get a new link with `ssh USER@BASTION web`")]
    NotSignedIn,
    #[error("missing or wrong CSRF token")]
    Csrf,
    #[error("not allowed: {0}")]
    Forbidden(&'static str),
    /// Also what a user gets for what exists but is not theirs to see.
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    /// Over a cap (live views).
    #[error("{0}")]
    TooMany(String),
    /// A refusal the user should read (a grant rule, an unknown user).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Recording(#[from] crate::recording::RecordingError),
    #[error(transparent)]
    Oidc(#[from] oidc::OidcError),
}

impl WebError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        WebError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            WebError::NotSignedIn => StatusCode::UNAUTHORIZED,
            WebError::Csrf | WebError::Forbidden(_) | WebError::Refused(_) => StatusCode::FORBIDDEN,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Recording(crate::recording::RecordingError::NotFound(_)) => {
                StatusCode::NOT_FOUND
            }
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Faults are logged in full and shown as one line: no paths or SQL
        // in the page.
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("web: {self}");
            "internal error (see the bastion's log)".to_string()
        } else {
            self.to_string()
        };
        (status, views::error_page(status, &message)).into_response()
    }
}

/// All the console is given by the bastion it runs in: it reads the
/// configuration, the store and the policy in force, and stops with the
/// bastion. It holds no vault, CA or identity key, and imports nothing of
/// the SSH server (`server` builds it: `Shared::console_core`).
pub struct Core {
    pub config: Config,
    pub store: crate::store::Store,
    pub policy: crate::policy::Live,
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl Core {
    /// The policy in force now.
    pub fn policy(&self) -> Arc<crate::policy::Policy> {
        self.policy.get()
    }
}

/// What every request handler shares.
pub struct WebState {
    pub core: Arc<Core>,
    /// Link redemptions per source address.
    pub login_limiter: DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// Refused sign-ins, counted and written as summaries.
    pub login_refusals: Arc<refusals::LoginRefusals>,
    /// Live views open, in total and per staff member.
    pub streams: live::Streams,
    /// Single sign-on (`[web.oidc]`), when configured.
    pub sso: Option<oidc::Sso>,
}

/// Link redemptions allowed per source address and minute.
const LOGINS_PER_MINUTE: u32 = 10;

/// The console's base URL for links: `[web] url`, else `https://` and the
/// listen address (the host name instead of an unspecified address).
pub fn base_url(config: &Config) -> Result<String, WebError> {
    if let Some(u) = &config.web.url {
        return Ok(u.clone());
    }
    let listen = config.web.listen.ok_or(WebError::Disabled)?;
    if let Some(name) = &config.public_name {
        return Ok(if name.contains(':') {
            format!("https://[{name}]:{}", listen.port())
        } else {
            format!("https://{name}:{}", listen.port())
        });
    }
    Ok(if listen.ip().is_unspecified() {
        format!("https://{}:{}", config.node, listen.port())
    } else {
        format!("https://{listen}")
    })
}

/// The console's certificate, loaded, and its port, bound: what `serve`
/// does before dropping to `[server] user`, which may read neither the
/// key (0600, root's) nor bind a low port.
pub struct Bound {
    identity: tls::Identity,
    tcp: tokio::net::TcpListener,
    /// `[web.oidc]`, its secret file read (0600, maybe root's).
    sso: Option<oidc::Sso>,
}

/// When `[web] listen` is set: loads or creates the certificate and binds.
pub async fn bind(config: &Config) -> Result<Option<Bound>, WebError> {
    let Some(listen) = config.web.listen else {
        return Ok(None);
    };
    let names = cert_names(config, listen);
    let identity = tls::load_or_create(&config.web.cert, &config.web.key, &names)?;
    let sso = oidc::Sso::new(config, &base_url(config)?)?;
    let tcp = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| WebError::Tls(format!("cannot listen on {listen}: {e}")))?;
    Ok(Some(Bound { identity, tcp, sso }))
}

/// Serves the console bound by [`bind`] (nothing when it is off): prints
/// where it listens and the certificate's fingerprint, and serves until
/// the bastion shuts down.
pub async fn start(core: Arc<Core>, bound: Option<Bound>) -> Result<Option<SocketAddr>, WebError> {
    let Some(Bound { identity, tcp, sso }) = bound else {
        return Ok(None);
    };
    let local = tcp.local_addr().map_err(|e| WebError::Tls(e.to_string()))?;
    let nofile = crate::rlimit::nofile();
    let limits = conns::Limits::web(&core.config.web, nofile);
    let streams_cap = conns::live_streams_cap(core.config.web.max_live_streams, nofile);
    tracing::info!(
        "review console: at most {} connections ({} per source), {} live views",
        limits.max_connections,
        limits.per_source,
        streams_cap
    );
    println!(
        "review console on https://{local} (certificate SHA-256 {}{})",
        identity.fingerprint,
        if identity.created {
            ", self-signed, created now"
        } else {
            ""
        }
    );
    let per_minute = NonZeroU32::new(LOGINS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
    let login_refusals = Arc::new(refusals::LoginRefusals::default());
    tokio::spawn(refusals::write_summaries(
        login_refusals.clone(),
        core.clone(),
    ));
    let state = Arc::new(WebState {
        login_limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        login_refusals,
        streams: live::Streams::new(
            streams_cap,
            core.config.web.max_live_streams_per_user.min(streams_cap),
        ),
        core: core.clone(),
        sso,
    });
    if state.sso.is_some() {
        let warm = state.clone();
        tokio::spawn(async move {
            if let Some(sso) = &warm.sso {
                sso.warm_up().await;
            }
        });
    }
    let app = server::router(state);
    let acceptor = tokio_rustls::TlsAcceptor::from(identity.config);
    tokio::spawn(conns::serve(
        tcp,
        Some(acceptor),
        app,
        limits,
        core.shutdown.clone(),
        "web",
    ));
    Ok(Some(local))
}

/// The names the self-signed certificate carries: the host staff reach
/// the console by (`[web] url`'s host, else the node's name, which
/// defaults to the hostname) as its common name, then `localhost` and a
/// specific listen address.
fn cert_names(config: &Config, listen: SocketAddr) -> Vec<String> {
    let from_url = config.web.url.as_deref().and_then(|u| {
        let rest = u.strip_prefix("https://")?;
        let authority = rest.split('/').next()?;
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next()?,
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        (!host.is_empty()).then(|| host.to_string())
    });
    let mut names = vec![
        from_url
            .or_else(|| config.public_name.clone())
            .unwrap_or_else(|| config.node.clone()),
    ];
    for n in ["localhost".to_string(), config.node.clone()] {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    if !listen.ip().is_unspecified() && !names.contains(&listen.ip().to_string()) {
        names.push(listen.ip().to_string());
    }
    names
}
