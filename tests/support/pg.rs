//! A throwaway PostgreSQL cluster for integration tests.
//!
//! Include it with `#[path = "support/pg.rs"] mod pg;` and call
//! [`fresh_db`] for an empty database of your own (`CREATE DATABASE
//! t_<random>`), so tests are independent and may run in parallel.
//!
//! - With `GATEHOUSE_TEST_PG_URL` set (a superuser-ish URL to any database
//!   of a running server), databases are created there and dropped when the
//!   [`TestDb`] is dropped.
//! - Otherwise a private cluster is built: `initdb` and `pg_ctl` from
//!   `/usr/lib/postgresql/*/bin` (newest first) or `PATH`, in a temporary
//!   folder, listening on a free 127.0.0.1 port with its socket in that
//!   folder, `fsync` off. PostgreSQL refuses to run as root, so when the
//!   tests run as root the cluster runs as the `postgres` system user (via
//!   `runuser`). Concurrent tests share one cluster; the last one to finish
//!   stops it (`pg_ctl stop -m immediate`) and removes the folder.
//!
//! Missing binaries fail the test with a message saying what to install:
//! PostgreSQL tests never skip silently.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

/// Set to use an existing server instead of a private cluster.
pub const URL_ENV: &str = "GATEHOUSE_TEST_PG_URL";

/// An empty database for one test. Keeps its cluster running while alive.
pub struct TestDb {
    /// Connection URL of the database.
    pub url: String,
    name: String,
    cluster: Arc<PgCluster>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // A private cluster is deleted whole; on a shared server, drop the
        // database (from a thread of its own: Drop may run inside a runtime).
        if let Source::External { base } = &self.cluster.source {
            let admin = base.clone();
            let name = self.name.clone();
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut c)
                        .await;
                        let _ = c.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// A fresh, empty database on the shared test cluster (started if needed).
/// Panics with a clear message when PostgreSQL is not available.
pub async fn fresh_db() -> TestDb {
    fresh_db_on(cluster()).await
}

/// A fresh, empty database on `cluster`.
pub async fn fresh_db_on(cluster: Arc<PgCluster>) -> TestDb {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = cluster.admin_url();
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("test PostgreSQL: cannot connect to {admin}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("test PostgreSQL: CREATE DATABASE {name}: {e}"));
    let _ = c.close().await;
    TestDb {
        url: cluster.url_for(&name),
        name,
        cluster,
    }
}

static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());

/// The cluster shared by the tests running now; started on first use.
pub fn cluster() -> Arc<PgCluster> {
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = slot.upgrade() {
        return c;
    }
    let c = Arc::new(PgCluster::start());
    *slot = Arc::downgrade(&c);
    c
}

pub struct PgCluster {
    source: Source,
}

enum Source {
    /// `base` is the URL from the environment.
    External {
        base: String,
    },
    Local(Local),
}

struct Local {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    /// Uses `GATEHOUSE_TEST_PG_URL` or starts a private cluster.
    pub fn start() -> PgCluster {
        if let Ok(base) = std::env::var(URL_ENV)
            && !base.is_empty()
        {
            return PgCluster {
                source: Source::External { base },
            };
        }
        PgCluster {
            source: Source::Local(Local::start()),
        }
    }

    /// A private cluster of the caller's own, shared with no other test, so
    /// that it may be stopped and started again ([`PgCluster::stop`]).
    /// Panics when `GATEHOUSE_TEST_PG_URL` is set: a test cannot stop a
    /// server it does not own.
    pub fn start_private() -> PgCluster {
        if std::env::var(URL_ENV).is_ok_and(|v| !v.is_empty()) {
            panic!("this test stops PostgreSQL: it needs a private cluster, unset {URL_ENV}");
        }
        PgCluster {
            source: Source::Local(Local::start()),
        }
    }

    /// `pg_ctl stop -m fast`: clients are disconnected, new ones refused.
    pub fn stop(&self) {
        let Source::Local(l) = &self.source else {
            panic!("cannot stop an external PostgreSQL server");
        };
        let mut cmd = l.command("pg_ctl");
        cmd.arg("-D")
            .arg(l.data_dir())
            .args(["-m", "fast", "-w", "stop"]);
        if let Err(e) = run_output(cmd) {
            panic!("test PostgreSQL: stop: {e}");
        }
    }

    /// Starts a stopped cluster again on the same port.
    pub fn start_again(&self) {
        let Source::Local(l) = &self.source else {
            panic!("cannot start an external PostgreSQL server");
        };
        if let Err(e) = l.try_start() {
            panic!("test PostgreSQL: start again: {e}");
        }
    }

    /// URL of the maintenance database, for CREATE/DROP DATABASE.
    pub fn admin_url(&self) -> String {
        match &self.source {
            Source::External { base } => base.clone(),
            Source::Local(l) => format!("postgres://postgres@127.0.0.1:{}/postgres", l.port),
        }
    }

    /// URL of database `name` on this cluster.
    pub fn url_for(&self, name: &str) -> String {
        match &self.source {
            Source::External { base } => replace_db_name(base, name),
            Source::Local(l) => format!("postgres://postgres@127.0.0.1:{}/{name}", l.port),
        }
    }
}

/// `postgres://u@h:5432/db?x=y` with `db` replaced by `name`.
fn replace_db_name(url: &str, name: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = head.split_once("://").unwrap_or(("postgres", head));
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Local {
    fn start() -> Local {
        let bin = find_bin_dir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL tests need initdb and pg_ctl (looked in /usr/lib/postgresql/*/bin \
                 and PATH): install them (`apt-get install -y postgresql`) or set {URL_ENV} \
                 to a server the tests may create databases on"
            )
        });
        // SAFETY: geteuid has no preconditions and cannot fail.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("test PostgreSQL: cannot create a temp folder: {e}"));
        if as_postgres {
            let (uid, gid) = postgres_ids().unwrap_or_else(|| {
                panic!(
                    "the tests run as root and PostgreSQL refuses to: they run the test \
                     cluster as the `postgres` system user, which does not exist here. \
                     Install PostgreSQL (`apt-get install -y postgresql` creates it) or \
                     set {URL_ENV}"
                )
            });
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("test PostgreSQL: chown {:?}: {e}", dir.path()));
        }
        let mut local = Local {
            dir,
            bin,
            port: 0,
            as_postgres,
        };
        let data = local.data_dir();
        let mut initdb = local.command("initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        if let Err(e) = run_output(initdb) {
            panic!("test PostgreSQL: {e}");
        }
        // The port is free when chosen but could be taken before the server
        // binds it: try a few.
        let mut last_err = String::new();
        for _ in 0..3 {
            local.port = free_port();
            match local.try_start() {
                Ok(()) => return local,
                Err(e) => last_err = e,
            }
        }
        panic!("test PostgreSQL did not start: {last_err}");
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn try_start(&self) -> Result<(), String> {
        let data = self.data_dir();
        let log = self.dir.path().join("postgres.log");
        let opts = format!(
            "-F -c fsync=off -c full_page_writes=off -c listen_addresses=127.0.0.1 -p {} \
             -c unix_socket_directories={} -c max_connections=300",
            self.port,
            self.dir.path().display()
        );
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o"])
            .arg(&opts)
            .arg("start");
        match run_output(cmd) {
            Ok(_) => Ok(()),
            Err(e) => {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                Err(format!("{e}\n--- postgres.log ---\n{log}"))
            }
        }
    }

    /// `BIN/program`, as the `postgres` user when the tests run as root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // The test's own folder may not be readable by `postgres`.
        cmd.current_dir(self.dir.path());
        cmd
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let data = self.data_dir();
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = cmd.output();
        // The TempDir removes the folder after this.
    }
}

fn run_output(mut cmd: Command) -> Result<std::process::Output, String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{shown} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The newest `/usr/lib/postgresql/N/bin` holding initdb, else the folder
/// of `initdb` on PATH.
fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_tools(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|d| {
        let initdb = d.join("initdb");
        if !initdb.is_file() {
            return None;
        }
        // Follow a symlink to the real folder, where pg_ctl and postgres live.
        let real = std::fs::canonicalize(&initdb).ok()?;
        let dir = real.parent()?.to_path_buf();
        if has_tools(&dir) {
            Some(dir)
        } else if has_tools(&d) {
            Some(d)
        } else {
            None
        }
    })
}

fn postgres_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("test PostgreSQL: no free port on 127.0.0.1: {e}"))
}
