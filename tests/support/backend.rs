//! Runs a test body once per database backend. Include it with
//! `#[path = "support/backend.rs"] mod backend;` next to
//! `#[path = "support/pg.rs"] mod pg;` (it uses that module).

/// Runs `body` with a database URL of the given backend (`None`: SQLite,
/// the harness's default file; `Some(url)`: a fresh PostgreSQL database).
pub fn with_backend(postgres: bool, body: impl FnOnce(Option<String>)) {
    if postgres {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let db = rt.block_on(super::pg::fresh_db());
        body(Some(db.url.clone()));
        drop(db);
    } else {
        body(None);
    }
}
