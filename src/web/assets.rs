//! Static files, compiled into the binary: nothing is fetched from
//! elsewhere and nothing on disk can be swapped in.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::WebError;

/// (name, content type, bytes)
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/console.css"),
    ),
    (
        "asciinema-player.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/asciinema-player.min.js"),
    ),
    (
        "asciinema-player.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/asciinema-player.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("assets/favicon.svg"),
    ),
    (
        "asciinema-player.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("assets/asciinema-player.LICENSE"),
    ),
];

pub async fn get(Path(name): Path<String>) -> Result<Response, WebError> {
    let (_, ctype, bytes) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or(WebError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, *ctype),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        *bytes,
    )
        .into_response())
}

/// `/favicon.ico`, where browsers look unasked: the SVG icon.
pub async fn favicon() -> Result<Response, WebError> {
    get(Path("favicon.svg".to_string())).await
}
