//! The console's routes and the headers every response carries.
//!
//! The Content-Security-Policy allows scripts and styles from the console
//! itself only: no inline script, no eval. `'wasm-unsafe-eval'` is the one
//! exception, because the asciinema player runs its terminal emulator as
//! WebAssembly; it allows compiling WebAssembly, not evaluating strings as
//! JavaScript. Report files, self-contained HTML with inline styles, get a
//! policy of their own (see [`super::pages::report_file`]).

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Redirect;
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use super::{WebState, actions, assets, auth, live, oidc, pages, review, today};

pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn router(state: Arc<WebState>) -> Router {
    let fixed = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    Router::new()
        .route("/login", get(auth::login_page))
        .route("/login/oidc", get(oidc::start))
        .route(oidc::CALLBACK_PATH, get(oidc::callback))
        // The reviewer's workbench (issue 21).
        .route("/", get(|| async { Redirect::to("/today") }))
        .route("/today", get(today::page))
        .route("/grants/{id}/revoke", post(actions::revoke))
        .route("/favicon.ico", get(assets::favicon))
        .route("/login/{token}", get(pages::login).post(actions::login))
        .route("/logout", post(actions::logout))
        .route("/sessions", get(pages::sessions))
        .route("/sessions/{id}", get(pages::session_detail))
        .route("/sessions/{id}/live", get(pages::live))
        .route("/sessions/{id}/events", get(live::events))
        .route("/sessions/{id}/kill", post(actions::kill))
        .route("/recordings/{id}", get(pages::recording))
        .route("/recordings/{id}/cast", get(live::cast))
        .route("/recordings/{id}/{file}", get(pages::report_recording))
        .route("/recordings/{id}/review", post(actions::review))
        .route("/grants", get(pages::grants))
        .route("/grants/{id}/approve", post(actions::approve))
        .route("/grants/{id}/deny", post(actions::deny))
        .route("/reports", get(pages::reports))
        .route("/review", get(review::page))
        .route("/review/certify", post(review::certify))
        .route("/review/suspend", post(review::suspend))
        .route("/reports/{name}", get(pages::report_file))
        .route("/assets/{name}", get(assets::get))
        .fallback(|| async { super::WebError::NotFound })
        .with_state(state)
        // A handler that sets its own policy or caching keeps it.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(fixed(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ))
        .layer(fixed(header::X_FRAME_OPTIONS, "DENY"))
        .layer(fixed(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(fixed(header::REFERRER_POLICY, "no-referrer"))
        .layer(fixed(
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ))
        .layer(fixed(
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ))
}
