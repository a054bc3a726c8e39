//! The admin listener (`[metrics] listen`, off when absent): `GET /metrics`
//! in the Prometheus text format and `GET /healthz` (200 `ok`, or 503 with
//! the reasons, see [`crate::health`]). It serves operators and monitoring
//! only: nothing here changes state, and it carries no secrets, but bind
//! it to loopback or a management network all the same. Its connections
//! are capped and timed out as the console's are (`web::conns`, with
//! `[metrics] max_connections`), so a flood on it cannot starve SSH.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on {addr} (metrics.listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

struct AdminState {
    store: Store,
    recordings: PathBuf,
    config: Config,
}

/// The running admin listener; stops when dropped.
pub struct AdminServer {
    task: JoinHandle<()>,
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the admin listener when `[metrics] listen` is set (and, with it,
/// the metrics registry). A port that cannot be bound stops `serve`: an
/// operator who asked for monitoring must not get a bastion without it.
pub async fn start(config: &Config, store: Store) -> Result<Option<AdminServer>, AdminError> {
    let Some(addr) = config.metrics.listen else {
        return Ok(None);
    };
    crate::metrics::init(&config.node);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    let addr = listener.local_addr().unwrap_or(addr);
    let state = Arc::new(AdminState {
        store,
        recordings: config.recordings.clone(),
        config: config.clone(),
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(state);
    let limits = crate::web::conns::Limits::admin(&config.metrics, crate::rlimit::nofile());
    let task = tokio::spawn(crate::web::conns::serve(
        listener,
        None,
        app,
        limits,
        tokio_util::sync::CancellationToken::new(),
        "admin",
    ));
    tracing::info!("admin listener (/metrics, /healthz) on {addr}");
    Ok(Some(AdminServer { task }))
}

async fn metrics() -> Response {
    match crate::metrics::get().map(|m| m.encode()) {
        Some(Ok(text)) => {
            ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
        }
        Some(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding failed: {e}\n"),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not initialised\n",
        )
            .into_response(),
    }
}

async fn healthz(State(state): State<Arc<AdminState>>) -> Response {
    let mut problems = crate::health::check(&state.store, &state.recordings).await;
    problems.extend(
        crate::health::directory(&state.store, &state.config)
            .await
            .err(),
    );
    if problems.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let line = crate::health::summary(&problems);
        tracing::warn!("healthz: {line}");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {line}\n"),
        )
            .into_response()
    }
}
