//! The review console: security staff review recordings, decide grants,
//! watch and end live sessions and read reports in a browser, served by
//! `serve` itself over HTTPS when `[web] listen` is set.
//!
//! One file per concern: [`tls`] (certificate, fingerprint, TLS listener),
//! [`auth`] (one-time links, session cookie, roles, CSRF), [`server`] (the
//! router and the security headers on every response), [`pages`] (the HTML
//! pages), [`actions`] (the POSTs: review, kill, approve, deny, sign-out),
//! [`live`] (cast bytes and server-sent events of a growing cast),
//! [`views`] (maud templates; every interpolated string is escaped) and
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
use crate::server::shared::Shared;

pub mod actions;
pub mod assets;
pub mod auth;
pub mod live;
pub mod pages;
pub mod server;
pub mod tls;
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
    /// A refusal the user should read (a grant rule, an unknown user).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Recording(#[from] crate::recording::RecordingError),
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

/// What every request handler shares.
pub struct WebState {
    pub shared: Arc<Shared>,
    /// Link redemptions per source address.
    pub login_limiter: DefaultKeyedRateLimiter<std::net::IpAddr>,
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
}

/// When `[web] listen` is set: loads or creates the certificate and binds.
pub async fn bind(config: &Config) -> Result<Option<Bound>, WebError> {
    let Some(listen) = config.web.listen else {
        return Ok(None);
    };
    let mut names = vec!["localhost".to_string(), config.node.clone()];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    let identity = tls::load_or_create(&config.web.cert, &config.web.key, &names)?;
    let tcp = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| WebError::Tls(format!("cannot listen on {listen}: {e}")))?;
    Ok(Some(Bound { identity, tcp }))
}

/// Serves the console bound by [`bind`] (nothing when it is off): prints
/// where it listens and the certificate's fingerprint, and serves until
/// the bastion shuts down.
pub async fn start(
    shared: Arc<Shared>,
    bound: Option<Bound>,
) -> Result<Option<SocketAddr>, WebError> {
    let Some(Bound { identity, tcp }) = bound else {
        return Ok(None);
    };
    let local = tcp.local_addr().map_err(|e| WebError::Tls(e.to_string()))?;
    let listener = tls::TlsListener::new(tcp, identity.config, shared.shutdown.clone());
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
    let state = Arc::new(WebState {
        login_limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        shared: shared.clone(),
    });
    let app = server::router(state);
    let stop = shared.shutdown.clone();
    tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<tls::Peer>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
        if let Err(e) = served {
            tracing::error!("web: the console stopped: {e}");
        }
    });
    Ok(Some(local))
}
