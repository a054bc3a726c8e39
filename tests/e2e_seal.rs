//! Issue 17 item 3: the audit chain is tamper-evident against whoever can
//! write the database. Events are written through the store, sealed with
//! the real `gatehouse audit seal`, then attacked with SQL over a raw
//! connection of the test's own (an attacker with database access who
//! knows the chain's documented hash and recomputes it), and checked with
//! the real `gatehouse audit verify`. Each attack runs on SQLite and on
//! PostgreSQL (support/pg.rs).

mod common;
#[path = "support/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gatehouse::audit::{AuditEvent, EventKind};
use gatehouse::store::{Backend, Store};
use ring::digest;
use sqlx::AnyPool;
use sqlx::Row;

/// One database on one backend, a config using it, and a data folder.
struct Env {
    url: String,
    dir: tempfile::TempDir,
    config: PathBuf,
    _pg: Option<pg::TestDb>,
}

impl Env {
    async fn new(backend: Backend) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("data/g.db").display()),
                None,
            ),
            Backend::Postgres => {
                let db = pg::fresh_db().await;
                (db.url.clone(), Some(db))
            }
        };
        std::fs::create_dir_all(dir.path().join("policies")).unwrap();
        let config = dir.path().join("gatehouse.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nnode = \"n1\"\ndatabase = \"{url}\"\npolicies = \"policies\"\n\
                 recordings = \"recs\"\nreports = \"reports\"\n\
                 signing_key = \"data/signing_ed25519.pk8\"\n\
                 [audit]\nseal_key = \"data/audit-seal.key\"\nseal_interval = \"60s\"\n"
            ),
        )
        .unwrap();
        Env {
            url,
            dir,
            config,
            _pg: pg,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn store(&self) -> Store {
        Store::open(&self.url, "n1").await.unwrap()
    }

    async fn raw(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPool::connect(&self.url).await.unwrap()
    }

    /// Events 1..=n more, then `audit seal`.
    async fn append_and_seal(&self, store: &Store, from: usize, n: usize) {
        for i in from..from + n {
            store
                .audit(
                    &AuditEvent::new(EventKind::Exec)
                        .user("alice")
                        .server("prod-db")
                        .account("root")
                        .source("192.0.2.7")
                        .session(format!("s{i}"))
                        .detail("command", format!("cat /etc/file{i}")),
                )
                .await
                .unwrap();
        }
        let out = self.run(&["audit", "seal"]);
        assert!(out.status.success(), "audit seal: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("sealed node n1"),
            "{}",
            text(&out.stdout)
        );
    }

    /// 35 events in three sealed epochs (up to seq 20, 25, 35), then the
    /// initial key printed to `keys.txt`.
    async fn sealed_chain(&self) -> Store {
        let store = self.store().await;
        self.append_and_seal(&store, 1, 20).await;
        self.append_and_seal(&store, 21, 5).await;
        self.append_and_seal(&store, 26, 10).await;
        let out = self.run(&["audit", "seal-key"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let line = text(&out.stdout);
        assert!(line.starts_with("n1 "), "{line}");
        assert_eq!(line.trim().len(), 3 + 64, "{line}");
        std::fs::write(self.path("keys.txt"), &line).unwrap();
        store
    }

    fn verify(&self, extra: &[&str]) -> Output {
        let mut args = vec!["audit", "verify"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn verify_with_key(&self) -> Output {
        let keys = self.path("keys.txt");
        self.verify(&["--seal-key", keys.to_str().unwrap()])
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fails_naming(out: &Output, what: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {} stderr {err}",
        text(&out.stdout)
    );
    for w in what {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
}

fn passes(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout {} stderr {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The chain's documented hash (store::audit::chain_hash), as an attacker
/// would recompute it.
#[allow(clippy::too_many_arguments)]
fn chain_hash(
    node: &str,
    seq: i64,
    ts: &str,
    kind: &str,
    fields: [Option<&str>; 5],
    detail: &str,
    prev: &str,
) -> String {
    fn put(ctx: &mut digest::Context, v: Option<&str>) {
        match v {
            None => ctx.update(&[0]),
            Some(s) => {
                ctx.update(&[1]);
                ctx.update(&(s.len() as u64).to_be_bytes());
                ctx.update(s.as_bytes());
            }
        }
    }
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"gatehouse-audit-v1\0");
    put(&mut ctx, Some(node));
    ctx.update(&seq.to_be_bytes());
    put(&mut ctx, Some(ts));
    put(&mut ctx, Some(kind));
    for f in fields {
        put(&mut ctx, f);
    }
    put(&mut ctx, Some(detail));
    put(&mut ctx, Some(prev));
    hex::encode(ctx.finish().as_ref())
}

/// Recomputes every hash and prev_hash of node n1 from its first event
/// on, and the head: what `audit verify` without seals cannot tell from
/// the real thing. Returns the new hash of each seq.
async fn rechain(raw: &AnyPool) -> Vec<(i64, String)> {
    let rows = sqlx::query(
        "SELECT id, ts, kind, username, server, account, session_id, source, detail, seq \
         FROM audit_events WHERE node = 'n1' ORDER BY seq",
    )
    .fetch_all(raw)
    .await
    .unwrap();
    let mut prev = "0".repeat(64);
    let mut out = Vec::new();
    for r in &rows {
        let id: i64 = r.get("id");
        let seq: i64 = r.get("seq");
        let ts: String = r.get("ts");
        let kind: String = r.get("kind");
        let f: Vec<Option<String>> = ["username", "server", "account", "session_id", "source"]
            .iter()
            .map(|c| r.get::<Option<String>, _>(*c))
            .collect();
        let detail: String = r.get("detail");
        let hash = chain_hash(
            "n1",
            seq,
            &ts,
            &kind,
            [
                f[0].as_deref(),
                f[1].as_deref(),
                f[2].as_deref(),
                f[3].as_deref(),
                f[4].as_deref(),
            ],
            &detail,
            &prev,
        );
        sqlx::query("UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE id = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(id)
            .execute(raw)
            .await
            .unwrap();
        prev = hash.clone();
        out.push((seq, hash));
    }
    let last = out.last().cloned().unwrap_or((0, "0".repeat(64)));
    sqlx::query("UPDATE audit_heads SET seq = $1, hash = $2 WHERE node = 'n1'")
        .bind(last.0)
        .bind(&last.1)
        .execute(raw)
        .await
        .unwrap();
    out
}

async fn exec(raw: &AnyPool, sql: &str) -> u64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(raw)
        .await
        .unwrap()
        .rows_affected()
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Env::new(gatehouse::store::Backend::Sqlite).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Env::new(gatehouse::store::Backend::Postgres).await).await;
            }
        }
    )*};
}

on_both_backends!(
    untouched_chain_is_proven,
    rewritten_event_with_recomputed_chain_fails,
    removed_tail_with_fixed_head_fails,
    removed_or_forged_seals_fail,
    report_pins_the_head,
    two_nodes_seal_and_prove_apart,
);

async fn untouched_chain_is_proven(env: Env) {
    let store = env.sealed_chain().await;
    let out = passes(&env.verify_with_key());
    assert!(out.contains("audit chain intact: 35 events"), "{out}");
    assert!(
        out.contains("node n1: 35 events, sealed to seq 35 (epochs 0..2), proven"),
        "{out}"
    );
    let out = passes(&env.verify(&[]));
    assert!(out.contains("not proven (give --seal-key)"), "{out}");
    // Nothing new: no empty epoch. A new event is unsealed until the next.
    let out = passes(&env.run(&["audit", "seal"]));
    assert!(out.contains("nothing new to seal"), "{out}");
    env.append_and_seal(&store, 36, 1).await;
    let out = passes(&env.verify_with_key());
    assert!(
        out.contains("sealed to seq 36 (epochs 0..3), proven"),
        "{out}"
    );

    // The key file: 0600, the current epoch's key only (K_0 erased).
    use std::os::unix::fs::PermissionsExt;
    let key_file = env.path("data/audit-seal.key");
    let meta = std::fs::metadata(&key_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let k0 = std::fs::read_to_string(env.path("keys.txt")).unwrap();
    let k0 = k0.split_whitespace().nth(1).unwrap().to_string();
    let on_disk = std::fs::read_to_string(&key_file).unwrap();
    assert!(!on_disk.contains(&k0), "{on_disk}");
    assert!(on_disk.contains("epoch 4"), "{on_disk}");
    // Printed once.
    let again = env.run(&["audit", "seal-key"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(again.stdout.is_empty());
    assert!(
        text(&again.stderr).contains("already printed"),
        "{}",
        text(&again.stderr)
    );
    // A wrong key proves nothing.
    std::fs::write(env.path("wrong.txt"), format!("n1 {}\n", "ab".repeat(32))).unwrap();
    let wrong = env.path("wrong.txt");
    fails_naming(
        &env.verify(&["--seal-key", wrong.to_str().unwrap()]),
        &["epoch 0", "forged"],
    );
    // Seals of a node the key file does not name cannot be proven.
    std::fs::write(env.path("other.txt"), format!("n2 {}\n", "ab".repeat(32))).unwrap();
    let other = env.path("other.txt");
    fails_naming(
        &env.verify(&["--seal-key", other.to_str().unwrap()]),
        &["no seal key given for node n1"],
    );
    store.close().await;
}

async fn rewritten_event_with_recomputed_chain_fails(env: Env) {
    let store = env.sealed_chain().await;
    let raw = env.raw().await;
    // The attack: change one event, recompute every later hash
    // and the stored head.
    let n = exec(
        &raw,
        "UPDATE audit_events SET detail = '{\"command\":\"true\"}' WHERE node = 'n1' AND seq = 22",
    )
    .await;
    assert_eq!(n, 1);
    let hashes = rechain(&raw).await;
    // The seals know better, even without the key.
    fails_naming(&env.verify(&[]), &["seq 25", "sealed epoch 1", "changed"]);
    // An attacker who read the code also rewrites the sealed hashes: the
    // chain then looks sealed, but the MACs, which need the key, do not
    // follow.
    for (epoch, seq) in [(0, 20), (1, 25), (2, 35)] {
        let h = &hashes.iter().find(|(s, _)| *s == seq).unwrap().1;
        exec(
            &raw,
            &format!("UPDATE audit_seals SET hash = '{h}' WHERE node = 'n1' AND epoch = {epoch}"),
        )
        .await;
    }
    let out = passes(&env.verify(&[]));
    assert!(out.contains("not proven"), "{out}");
    fails_naming(&env.verify_with_key(), &["seq 25", "epoch 1", "forged"]);
    store.close().await;
}

async fn removed_tail_with_fixed_head_fails(env: Env) {
    let store = env.sealed_chain().await;
    let raw = env.raw().await;
    // The second attack: delete the last five events, fix the head.
    assert_eq!(
        exec(
            &raw,
            "DELETE FROM audit_events WHERE node = 'n1' AND seq > 30"
        )
        .await,
        5
    );
    rechain(&raw).await;
    fails_naming(
        &env.verify_with_key(),
        &["removed", "sealed epoch 2", "seq 35", "ends at seq 30"],
    );
    // Removing the seal that covered them too: the node's key file is at
    // epoch 3, so epoch 2's seal must exist.
    assert_eq!(
        exec(
            &raw,
            "DELETE FROM audit_seals WHERE node = 'n1' AND epoch = 2"
        )
        .await,
        1
    );
    fails_naming(&env.verify_with_key(), &["removed", "epoch 3"]);
    store.close().await;
}

async fn removed_or_forged_seals_fail(env: Env) {
    let store = env.sealed_chain().await;
    let raw = env.raw().await;
    // A seal forged without the key, for events added behind the node's back.
    exec(
        &raw,
        &format!(
            "INSERT INTO audit_seals (node, epoch, seq, hash, ts, mac) SELECT node, 3, seq, hash, \
             '2030-01-01T00:00:00.000000Z', '{}' FROM audit_heads WHERE node = 'n1'",
            "00".repeat(32)
        ),
    )
    .await;
    // The seal names seq 35, which exists: only the key tells.
    fails_naming(&env.verify_with_key(), &["epoch 3", "forged"]);
    exec(
        &raw,
        "DELETE FROM audit_seals WHERE node = 'n1' AND epoch = 3",
    )
    .await;
    passes(&env.verify_with_key());
    // A seal removed from the middle.
    exec(
        &raw,
        "DELETE FROM audit_seals WHERE node = 'n1' AND epoch = 1",
    )
    .await;
    fails_naming(
        &env.verify(&[]),
        &["removed", "the seal of epoch 1 is missing"],
    );
    store.close().await;
}

async fn report_pins_the_head(env: Env) {
    let store = env.sealed_chain().await;
    // The signing key exists once serve ran; here the report is the first.
    gatehouse::recording::Signer::load_or_create(&env.path("data/signing_ed25519.pk8")).unwrap();
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let out = env.run(&[
        "report",
        "daily",
        "--date",
        &today,
        "--format",
        "json,md,html",
        "--out",
        "out",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report_path = env.path(&format!("out/{today}.json"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let chain = &report["audit_chain"];
    assert_eq!(chain["date"], today.as_str());
    let head = &chain["nodes"][0];
    assert_eq!(head["node"], "n1");
    assert_eq!(head["seq"], 35);
    assert_eq!(head["seal_epoch"], 2);
    assert_eq!(head["signature"].as_str().unwrap().len(), 128);
    let md = std::fs::read_to_string(env.path(&format!("out/{today}.md"))).unwrap();
    assert!(md.contains("## Audit chain"), "{md}");
    assert!(md.contains(head["hash"].as_str().unwrap()), "{md}");
    let html = std::fs::read_to_string(env.path(&format!("out/{today}.html"))).unwrap();
    assert!(html.contains("id=\"chain\""));

    let pin = report_path.to_str().unwrap();
    let out = passes(&env.verify(&["--pin", pin]));
    assert!(out.contains("1 pinned head(s) found"), "{out}");

    // A report whose head was edited no longer verifies.
    let mut forged = report.clone();
    forged["audit_chain"]["nodes"][0]["seq"] = 30.into();
    let forged_path = env.path("forged.json");
    std::fs::write(&forged_path, forged.to_string()).unwrap();
    fails_naming(
        &env.verify(&["--pin", forged_path.to_str().unwrap()]),
        &["signature"],
    );

    // An attacker removes the tail, its seal, and the node's key file's
    // testimony (verify runs on another machine, without it): only the
    // pinned head remains, and it is enough.
    let raw = env.raw().await;
    exec(
        &raw,
        "DELETE FROM audit_events WHERE node = 'n1' AND seq > 30",
    )
    .await;
    exec(
        &raw,
        "DELETE FROM audit_seals WHERE node = 'n1' AND epoch = 2",
    )
    .await;
    rechain(&raw).await;
    std::fs::remove_file(env.path("data/audit-seal.key")).unwrap();
    passes(&env.verify_with_key());
    fails_naming(
        &env.verify(&["--pin", pin]),
        &["removed", "pinned", "seq 35", "ends at seq 30"],
    );
    store.close().await;
}

/// Several nodes on one database: each seals its own segment with its own
/// key file; one `--seal-key` file holds a `NODE KEY` line per node (or
/// `--seal-key` is given once per node), and a key proves only its node.
async fn two_nodes_seal_and_prove_apart(env: Env) {
    let store = env.sealed_chain().await;
    // Node n2: its own config (same database), its own key file.
    let text = std::fs::read_to_string(&env.config).unwrap();
    let n2_config = env.path("n2.toml");
    std::fs::write(
        &n2_config,
        text.replace("node = \"n1\"", "node = \"n2\"")
            .replace("data/audit-seal.key", "data/n2/audit-seal.key"),
    )
    .unwrap();
    let n2 = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--config")
            .arg(&n2_config)
            .args(args)
            .current_dir(env.dir.path())
            .output()
            .unwrap()
    };
    let store2 = Store::open(&env.url, "n2").await.unwrap();
    for i in 0..3 {
        // Interleaved with n1's, as nodes write.
        store2
            .audit(&AuditEvent::new(EventKind::Exec).detail("n", i))
            .await
            .unwrap();
        store
            .audit(&AuditEvent::new(EventKind::Exec).detail("m", i))
            .await
            .unwrap();
    }
    passes(&n2(&["audit", "seal"]));
    passes(&env.run(&["audit", "seal"]));
    let out = passes(&n2(&["audit", "seal-key"]));
    assert!(out.starts_with("n2 "), "{out}");
    std::fs::write(env.path("n2.txt"), &out).unwrap();
    let n1_line = std::fs::read_to_string(env.path("keys.txt")).unwrap();
    std::fs::write(env.path("both.txt"), format!("# site keys\n{n1_line}{out}")).unwrap();

    let both = env.path("both.txt");
    let out = passes(&env.verify(&["--seal-key", both.to_str().unwrap()]));
    assert!(
        out.contains("node n1: 38 events, sealed to seq 38 (epochs 0..3), proven"),
        "{out}"
    );
    assert!(
        out.contains("node n2: 3 events, sealed to seq 3 (epochs 0..0), proven"),
        "{out}"
    );
    let (k1, k2) = (env.path("keys.txt"), env.path("n2.txt"));
    passes(&env.verify(&[
        "--seal-key",
        k1.to_str().unwrap(),
        "--seal-key",
        k2.to_str().unwrap(),
    ]));
    // n1's key does not prove n2's seals, nor the other way round.
    std::fs::write(
        env.path("swapped.txt"),
        format!(
            "n1 {}\nn2 {}\n",
            out_key(&std::fs::read_to_string(&k2).unwrap()),
            out_key(&n1_line)
        ),
    )
    .unwrap();
    let swapped = env.path("swapped.txt");
    fails_naming(
        &env.verify(&["--seal-key", swapped.to_str().unwrap()]),
        &["forged", "epoch 0"],
    );
    // n2's chain rewritten under its seal: named with its node.
    let raw = env.raw().await;
    exec(
        &raw,
        "UPDATE audit_events SET detail = '{\"n\":9}' WHERE node = 'n2' AND seq = 2",
    )
    .await;
    fails_naming(
        &env.verify(&["--seal-key", both.to_str().unwrap()]),
        &["node n2", "seq 2", "changed"],
    );
    store2.close().await;
    store.close().await;
}

fn out_key(line: &str) -> String {
    line.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn key_lines_file_is_documented_format() {
    // `NODE KEY` per line, as `audit seal-key` prints; comments allowed.
    let dir = tempfile::tempdir().unwrap();
    let p: &Path = dir.path();
    std::fs::write(p.join("k"), "not a key line\n").unwrap();
    let config = p.join("gatehouse.toml");
    std::fs::write(
        &config,
        format!("[server]\ndatabase = \"sqlite://{}/g.db\"\n", p.display()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--config")
        .arg(&config)
        .args(["audit", "verify", "--seal-key"])
        .arg(p.join("k"))
        .current_dir(p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("NODE KEY"),
        "{}",
        text(&out.stderr)
    );
}

/// `serve` makes the key file at start and seals at a clean shutdown:
/// after two runs every event is sealed and the seals prove with the
/// printed key.
#[test]
fn serve_seals_its_chain_at_shutdown() {
    let dir = common::TestDir::new();
    let mut g = common::Gatehouse::start(&dir, "", "");
    assert!(g.stop(), "serve did not stop cleanly: {}", g.log());
    // The default key file names the node, so nodes sharing a data
    // folder keep a key each.
    let keys: Vec<_> = std::fs::read_dir(g.home.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("audit-seal-") && n.ends_with(".key"))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let sealed = |g: &common::Gatehouse, extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--json"];
        args.extend_from_slice(extra);
        let out = g.cli(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["nodes"][0].clone()
    };
    let n = sealed(&g, &[]);
    assert!(n["last_seq"].as_i64().unwrap() >= 1, "{n}");
    assert_eq!(n["sealed_seq"], n["last_seq"], "{n}");
    assert_eq!(n["proven"], false);

    g.restart();
    assert!(g.stop(), "serve did not stop cleanly: {}", g.log());
    let out = g.cli(&["audit", "seal-key"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let keys = g.home.clone().join("keys.txt");
    std::fs::write(&keys, &out.stdout).unwrap();
    let n = sealed(&g, &["--seal-key", keys.to_str().unwrap()]);
    assert_eq!(n["sealed_seq"], n["last_seq"], "{n}");
    assert!(n["sealed_epoch"].as_i64().unwrap() >= 1, "{n}");
    assert_eq!(n["proven"], true, "{n}");
}

/// Issue 17 item 3, recordings: a recording deleted with its sidecar is
/// reported missing, since the audit log says it was made.
#[test]
fn deleted_recording_and_sidecar_are_reported_missing() {
    use common::*;
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let policy = policy_user("alice", &alice, &["support"])
        + &policy_server(
            "web1",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
        + "record = \"always\"\n";
    let mut gh = Gatehouse::start(&dir, "", &policy);
    let client = gh.client(&dir, &alice);
    for _ in 0..2 {
        let out = client.ssh("alice@web1", &["echo recorded"]);
        assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    }
    assert!(gh.stop(), "{}", gh.log());
    let started = gh
        .audit_events_of("recording.start")
        .into_iter()
        .map(|e| e["detail"]["recording"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(started.len(), 2, "{started:?}");
    gh.cli(&["recordings", "verify"])
        .assert_success("recordings verify");

    let list = gh.cli(&["recordings", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&list.stdout_text()).unwrap();
    let gone = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == started[0].as_str())
        .unwrap()
        .clone();
    std::fs::remove_file(gone["cast_path"].as_str().unwrap()).unwrap();
    std::fs::remove_file(gone["sidecar_path"].as_str().unwrap()).unwrap();

    let out = gh.cli(&["recordings", "verify"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let shown = out.stdout_text();
    assert!(
        shown.contains(&format!(
            "FAILED {}: missing: the audit log says it was recorded",
            started[0]
        )),
        "{shown}"
    );
    assert!(shown.contains(&format!("OK {}", started[1])), "{shown}");
    assert!(
        out.stderr_text().contains("1 of 2 recordings failed"),
        "{}",
        out.stderr_text()
    );
    let out = gh.cli(&["recordings", "verify", &started[0], "--json"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
    assert_eq!(v[0]["problems"][0]["problem"], "gone", "{v}");
    gh.cli(&["recordings", "verify", &started[1]])
        .assert_success("the other recording still verifies");
}
