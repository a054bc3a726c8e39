//! Nodes that die and databases that are away (issue 17 items 20-22), on a
//! throwaway PostgreSQL, with the stock OpenSSH client:
//!
//! - a node killed with SIGKILL mid-session: another node closes its
//!   session once its heartbeat is older than `node_lost_after`, with one
//!   `session.end` "node lost" carrying the bytes last written and ending
//!   before the kill (not counting the downtime);
//! - with no other node left to close it, `sessions list` marks the
//!   session's node lost and `sessions kill` says the node is gone and
//!   closes the session itself;
//! - `serve` started while PostgreSQL is down listens, refuses logins with
//!   the banner, and serves once PostgreSQL is back, without a restart
//!   (migrations applied then);
//! - a login refused during an outage waits for the database once at most
//!   (`detail.db_waits` of the refusal), and not at all once the outage is
//!   known.
//!
//! No assertion on elapsed time: waits are polls with generous give-up
//! limits.

mod common;
#[macro_use]
#[path = "common/access.rs"]
mod access;
#[path = "support/pg.rs"]
mod pg;

use std::time::Duration;

use access::{BackgroundSsh, live, node_name};
use common::*;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The bound used here (the default is 30 s; at least 5 s).
const LOST_AFTER: &str = "6s";
/// Give-up limit for a lost node's sessions to be closed.
const GIVE_UP: Duration = Duration::from_secs(120);
/// What `seq 1 3000` prints: the bytes the session moves before it idles.
const SEQ_BYTES: i64 = 9 * 2 + 90 * 3 + 900 * 4 + 2001 * 5;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Bastion nodes sharing one database and one identity, and a target.
/// Field order is drop order.
struct Site {
    nodes: Vec<Gatehouse>,
    _target: Sshd,
    alice: Key,
    _db: pg::TestDb,
    dir: TestDir,
}

impl Site {
    /// `names` nodes (started one after the other) on `db`; `web1` is
    /// always recorded. `lost_after`: `[server] node_lost_after`, if set.
    fn start(db: pg::TestDb, names: &[&str], lost_after: Option<&str>) -> Site {
        let dir = TestDir::new();
        let shared = dir.join("shared");
        let identity = Gatehouse::prepare_identity_in(&shared);
        let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
        let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
        let policy = support_policy(&alice, "web1", &target) + "record = \"always\"\n";
        let nodes = names
            .iter()
            .map(|name| {
                let p = |rel: &str| toml_str(&shared.join(rel).display().to_string());
                let opts = GatehouseOpts::new()
                    .name(name)
                    .database(&db.url)
                    .policy("policy.toml", &policy)
                    .extra_toml(&format!(
                        "[server]\nnode = {}\nidentity_key = {}\nmaster_key = {}\n\
                         signing_key = {}\nrecordings = {}\n{}",
                        toml_str(name),
                        p("data/identity_ed25519_key"),
                        p("data/master.key"),
                        p("data/signing_ed25519.pk8"),
                        p("recordings"),
                        lost_after
                            .map(|d| format!("node_lost_after = {}\n", toml_str(d)))
                            .unwrap_or_default(),
                    ));
                Gatehouse::start_with(&dir, opts)
            })
            .collect();
        Site {
            nodes,
            _target: target,
            alice,
            _db: db,
            dir,
        }
    }

    fn client(&self, node: usize) -> Client {
        self.nodes[node].client(&self.dir, &self.alice)
    }

    /// A session on node `node` that prints `seq 1 3000` and then idles;
    /// with its id once it is live.
    fn busy_session(&self, node: usize) -> (BackgroundSsh, String) {
        let client = self.client(node);
        let dest = client.destination("alice+root@web1");
        let mut bg = BackgroundSsh::start(
            &self.dir,
            &client,
            &[&dest, "seq 1 3000; echo started; sleep 600"],
        );
        let ok = wait_until(Duration::from_secs(30), || {
            bg.stdout_text().contains("started") || !bg.is_running()
        });
        assert!(
            ok && bg.stdout_text().contains("started"),
            "{}",
            bg.stderr_text()
        );
        let gh = &self.nodes[node];
        let name = node_name(gh);
        let ev = gh.wait_for_event("session.start", Duration::from_secs(15), |e| {
            e["node"] == name.as_str() && e["user"] == "alice"
        });
        (bg, ev["session"].as_str().expect("session id").to_string())
    }
}

fn listed(node: &Gatehouse, id: &str) -> Option<Value> {
    live(node).into_iter().find(|s| s["id"] == id)
}

/// Waits until the session's row carries the bytes the session moved (the
/// node writes them every few seconds); returns them.
fn wait_for_progress(node: &Gatehouse, id: &str) -> i64 {
    let mut down = 0;
    let written = wait_until(Duration::from_secs(60), || {
        down = listed(node, id)
            .and_then(|s| s["bytes_down"].as_i64())
            .unwrap_or(0);
        down >= SEQ_BYTES
    });
    assert!(
        written,
        "the session row never carried the bytes moved ({down} < {SEQ_BYTES})"
    );
    down
}

fn ts(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("timestamp"), &Rfc3339).expect("RFC 3339")
}

/// The `session.end` events of session `id`.
fn ends_of(node: &Gatehouse, id: &str) -> Vec<Value> {
    node.audit_events_of("session.end")
        .into_iter()
        .filter(|e| e["session"] == id)
        .collect()
}

/// A session.end written for a dead node: "node lost", the bytes last
/// known, ended when the node was last seen (before the kill).
fn assert_closed_as_lost(end: &Value, start: &Value, known_down: i64, killed_at: OffsetDateTime) {
    assert_eq!(end["detail"]["reason"], "node lost", "{end:#}");
    assert_eq!(end["detail"]["node"], "node-a", "{end:#}");
    assert_eq!(
        end["detail"]["bytes_down"].as_i64(),
        Some(known_down),
        "{end:#}"
    );
    assert!(end["detail"]["bytes_up"].as_i64().is_some(), "{end:#}");
    let ended = ts(&end["detail"]["ended_at"]);
    assert!(
        ended <= killed_at,
        "the session cannot have lasted past the kill ({ended} > {killed_at}): the downtime \
         was counted: {end:#}"
    );
    // The duration runs from the start to then (the start event is written
    // a moment after the session row's start, so it is no shorter).
    let secs = end["detail"]["duration_secs"].as_f64().expect("duration");
    let from_event = (ended - ts(&start["ts"])).as_seconds_f64();
    assert!(
        secs + 0.001 >= from_event,
        "duration {secs} s, start to end {from_event} s: {end:#}"
    );
}

/// Item 20 and the second half of item 22: node A dies under a session,
/// node B closes it once A's heartbeat is older than the bound, once, with
/// what was last known; A, restarted, writes no second end.
#[test]
fn a_dead_nodes_session_is_closed_by_another_node_as_last_known() {
    let mut site = Site::start(
        runtime().block_on(pg::fresh_db()),
        &["node-a", "node-b"],
        Some(LOST_AFTER),
    );
    let (mut bg, id) = site.busy_session(0);
    let known_down = wait_for_progress(&site.nodes[1], &id);

    site.nodes[0].kill();
    let killed_at = OffsetDateTime::now_utc();
    assert!(
        bg.wait(Duration::from_secs(30)).is_some(),
        "the client of the killed node must lose its connection"
    );

    let b = &site.nodes[1];
    let closed = wait_until(GIVE_UP, || listed(b, &id).is_none());
    assert!(closed, "node B never closed the dead node's session {id}");
    let start = b
        .audit_events_of("session.start")
        .into_iter()
        .find(|e| e["session"] == id.as_str())
        .expect("session.start");
    let ends = ends_of(b, &id);
    assert_eq!(ends.len(), 1, "one session.end: {ends:#?}");
    assert_eq!(
        ends[0]["node"], "node-b",
        "written by the node that closed it"
    );
    assert_closed_as_lost(&ends[0], &start, known_down, killed_at);

    // A comes back: nothing of its own is left open, nothing is ended twice.
    site.nodes[0].restart();
    exec_works(&site.client(0));
    exec_works(&site.client(1));
    assert_eq!(ends_of(&site.nodes[0], &id).len(), 1);
    site.nodes[1]
        .cli(&["audit", "verify"])
        .assert_success("audit verify");
}

fn exec_works(client: &Client) {
    let out = client.ssh("alice+root@web1", &["echo in-$((40+2))"]);
    out.assert_success("exec");
    assert_eq!(out.stdout_text(), "in-42\n");
}

/// Item 20, with nobody left to close the session: `sessions list` marks
/// the dead node's session, and `sessions kill` says the node is gone and
/// closes it (one session.end "node lost", as last known).
#[test]
fn killing_a_session_of_a_lost_node_says_so_and_closes_it() {
    let mut site = Site::start(
        runtime().block_on(pg::fresh_db()),
        &["node-a", "node-b"],
        Some(LOST_AFTER),
    );
    assert!(site.nodes[1].stop(), "node B stops cleanly");
    let (mut bg, id) = site.busy_session(0);
    let known_down = wait_for_progress(&site.nodes[0], &id);
    site.nodes[0].kill();
    let killed_at = OffsetDateTime::now_utc();
    assert!(bg.wait(Duration::from_secs(30)).is_some());

    let cli = &site.nodes[1];
    let marked = wait_until(GIVE_UP, || {
        listed(cli, &id).is_some_and(|s| s["node_lost"] == true)
    });
    assert!(
        marked,
        "sessions list never marked node-a lost: {:#?}",
        live(cli)
    );
    let text = cli.cli(&["sessions", "list"]);
    text.assert_success("sessions list");
    assert!(
        text.stdout_text().contains("node-a (lost)") && text.stdout_text().contains("is lost"),
        "{}",
        text.stdout_text()
    );

    let out = cli.cli(&["sessions", "kill", &id]);
    out.assert_success("sessions kill");
    let said = out.stdout_text();
    assert!(
        said.contains("node node-a is gone") && said.contains("closed"),
        "sessions kill should say the node is gone and what it did: {said}"
    );
    assert!(listed(cli, &id).is_none(), "the session is closed");
    let start = cli
        .audit_events_of("session.start")
        .into_iter()
        .find(|e| e["session"] == id.as_str())
        .expect("session.start");
    let ends = ends_of(cli, &id);
    assert_eq!(ends.len(), 1, "{ends:#?}");
    assert_closed_as_lost(&ends[0], &start, known_down, killed_at);
    let killed: Vec<Value> = cli
        .audit_events_of("session.killed")
        .into_iter()
        .filter(|e| e["session"] == id.as_str())
        .collect();
    assert_eq!(killed.len(), 1, "{killed:#?}");
    assert_eq!(killed[0]["detail"]["node_lost"], true);

    // A second kill finds nothing live.
    let again = cli.cli(&["sessions", "kill", &id]);
    assert_eq!(again.code(), Some(1), "{again:?}");
}

/// The STORE_DOWN refusals in the log.
fn store_down_refusals(node: &Gatehouse) -> Vec<Value> {
    node.audit_events_of("auth.failure")
        .into_iter()
        .filter(|e| e["detail"]["code"] == "STORE_DOWN")
        .collect()
}

/// A login during an outage: refused, with the banner.
fn assert_refused_with_banner(client: &Client) {
    let out = client.ssh_opts(
        &["-o", "LogLevel=INFO"],
        "alice+root@web1",
        &["echo during"],
    );
    assert_eq!(out.code(), Some(255), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        out.stderr_text()
            .contains("gatehouse: the bastion cannot reach its database"),
        "the refusal should say why: {}",
        out.stderr_text()
    );
}

fn wait_for_login(client: &Client) {
    let back = wait_until(Duration::from_secs(90), || {
        client
            .ssh("alice+root@web1", &["echo after"])
            .status
            .success()
    });
    assert!(back, "no login after PostgreSQL came back");
}

/// Item 21: `serve` started while PostgreSQL is down (on a database it
/// never migrated) listens, refuses logins with the banner, and serves as
/// soon as PostgreSQL is back, without a restart.
#[test]
fn serve_started_during_an_outage_refuses_then_recovers_without_a_restart() {
    let pg = std::sync::Arc::new(pg::PgCluster::start_private());
    let db = runtime().block_on(pg::fresh_db_on(pg.clone()));
    pg.stop();
    let site = Site::start(db, &["node-a"], None);
    let client = site.client(0);
    assert_refused_with_banner(&client);
    assert_refused_with_banner(&client);

    pg.start_again();
    wait_for_login(&client);
    exec_works(&client);
    let a = &site.nodes[0];
    // The refusals were kept and written once the database was back, and
    // none of them waited (the outage was known from the start).
    let refused = wait_until(Duration::from_secs(30), || {
        store_down_refusals(a).len() >= 2
    });
    assert!(refused, "the refusals are not in the log");
    for ev in store_down_refusals(a) {
        assert_eq!(ev["detail"]["db_waits"], 0, "{ev:#}");
        assert!(!ev["detail"]["spool_id"].is_null(), "{ev:#}");
    }
    a.cli(&["audit", "verify"]).assert_success("audit verify");
    drop(site);
}

/// Item 22: during an outage a refusal waits for the database at most once
/// (the authentication banner's probe), then never again while the outage
/// is known: not three 3-second waits.
#[test]
fn a_login_refused_during_an_outage_waits_for_the_database_once() {
    let pg = std::sync::Arc::new(pg::PgCluster::start_private());
    let db = runtime().block_on(pg::fresh_db_on(pg.clone()));
    let site = Site::start(db, &["node-a"], None);
    let client = site.client(0);
    exec_works(&client);
    // That session's end is written before the outage: nothing waits in
    // the spool, so the outage is not known yet when it begins.
    let a = &site.nodes[0];
    a.wait_for_event("session.end", Duration::from_secs(15), |_| true);
    let no_sessions = wait_until(Duration::from_secs(15), || live(a).is_empty());
    assert!(no_sessions, "{:#?}", live(a));

    pg.stop();
    assert_refused_with_banner(&client);
    assert_refused_with_banner(&client);
    pg.start_again();
    wait_for_login(&client);

    let mut refusals = Vec::new();
    let logged = wait_until(Duration::from_secs(30), || {
        refusals = store_down_refusals(a);
        refusals.len() >= 2
    });
    assert!(logged, "the refusals are not in the log: {refusals:#?}");
    for ev in &refusals {
        let waits = ev["detail"]["db_waits"].as_u64();
        assert!(
            matches!(waits, Some(0 | 1)),
            "one bounded wait per login at most: {ev:#}"
        );
    }
    assert_eq!(
        refusals[0]["detail"]["db_waits"], 1,
        "the first refusal waited once, for the banner's probe: {:#}",
        refusals[0]
    );
    let last = refusals.last().expect("a refusal");
    assert_eq!(
        last["detail"]["db_waits"], 0,
        "once the outage is known, a refusal does not wait: {last:#}"
    );
    a.cli(&["audit", "verify"]).assert_success("audit verify");
}
