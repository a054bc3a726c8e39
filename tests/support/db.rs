//! One empty database on one backend, for the store tests, and the macro
//! that runs a test body once on each. Include it with
//! `#[macro_use] #[path = "support/db.rs"] mod db;` next to
//! `#[path = "support/pg.rs"] mod pg;` (it uses that module).

#![allow(dead_code, unused_macros)]

use gatehouse::store::{Backend, Store};

/// An empty database: a temp file for SQLite, a fresh database on the test
/// cluster for PostgreSQL; removed when dropped.
pub struct Db {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<super::pg::TestDb>,
}

impl Db {
    pub async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("data/g.db").display());
        Db {
            url,
            backend: Backend::Sqlite,
            _dir: Some(dir),
            _pg: None,
        }
    }

    pub async fn postgres() -> Db {
        let db = super::pg::fresh_db().await;
        Db {
            url: db.url.clone(),
            backend: Backend::Postgres,
            _dir: None,
            _pg: Some(db),
        }
    }

    /// The store as node `node`, checked to be on this backend.
    pub async fn open(&self, node: &str) -> Store {
        let store = Store::open(&self.url, node).await.unwrap();
        assert_eq!(store.backend(), self.backend);
        store
    }
}

/// `on_both_backends!(a, b)`: for each async `fn a(db: Db)`, a module `a`
/// with tests `sqlite` and `postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::db::Db::sqlite().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::db::Db::postgres().await).await;
            }
        }
    )*};
}
