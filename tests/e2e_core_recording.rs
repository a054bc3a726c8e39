//! Session recording end to end: which sessions are recorded (`record =
//! always | privileged | never`), where the cast and its sidecar land, that
//! asciinema and the `gatehouse recordings` commands accept them, that an
//! exec's sidecar hashes exactly what the client received, that a live
//! PTY session reaches disk while it runs, and that a bastion killed with
//! SIGKILL leaves a playable cast.

mod common;
#[path = "support/pg.rs"]
mod pg;
#[path = "common/scenario.rs"]
mod scenario;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use scenario::*;

/// `asciinema cat FILE`: asciinema's own parser accepts the cast.
fn asciinema_cat(cast: &Path) -> String {
    let out = run(Command::new("asciinema").arg("cat").arg(cast));
    out.assert_success(&format!("asciinema cat {}", cast.display()));
    out.stdout_text()
}

/// Every line of a cast as JSON: the header (version 2) then events
/// `[time, code, data]`. Fails on a line that does not parse.
fn cast_lines(cast: &Path) -> (serde_json::Value, Vec<serde_json::Value>) {
    let text = std::fs::read_to_string(cast).unwrap();
    assert!(text.ends_with('\n'), "torn last line in {}", cast.display());
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().expect("header")).unwrap();
    assert_eq!(header["version"], 2, "{header}");
    let events = lines
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("cast line {l:?}: {e}")))
        .collect::<Vec<serde_json::Value>>();
    for e in &events {
        let a = e.as_array().unwrap_or_else(|| panic!("event {e}"));
        assert_eq!(a.len(), 3, "{e}");
        assert!(
            a[0].is_number() && a[1].is_string() && a[2].is_string(),
            "{e}"
        );
    }
    (header, events)
}

/// The text of the events of `code` ("o", "i", "r") joined.
fn events_text(events: &[serde_json::Value], code: &str) -> String {
    events
        .iter()
        .filter(|e| e[1] == code)
        .map(|e| e[2].as_str().unwrap_or(""))
        .collect()
}

fn recording_policy(backend: Backend) {
    let w = setup(backend)
        .web1("record = \"always\"")
        .server("web2", &["root", "ghtest"], "record = \"privileged\"")
        .server("web3", &["root"], "record = \"never\"")
        .start();
    let rec = w.recordings();

    // Always: an exec as a non-privileged account is recorded.
    let out = w.client.ssh(
        "alice+ghtest@web1",
        &["echo rec-$((6*7)); seq 1 3000; echo to-stderr >&2; exit 3"],
    );
    assert_eq!(out.code(), Some(3), "{out:?}");
    let sid = w.session_id(|e| str_at(e, "server") == "web1");
    let start =
        w.gh.wait_for_event("session.start", Duration::from_secs(5), |e| {
            str_at(e, "session") == sid
        });
    w.gh.wait_for_event("session.end", Duration::from_secs(10), |e| {
        str_at(e, "session") == sid
    });
    let (cast, sidecar) = w
        .recording_files(&sid)
        .unwrap_or_else(|| panic!("no recording {sid}: {:?}", all_files(&rec)));
    // recordings/YYYY-MM-DD/SESSION_ID.cast, dated by the session's start (UTC).
    let day = &str_at(&start, "ts")[..10];
    assert_eq!(cast, rec.join(day).join(format!("{sid}.cast")));
    assert!(sidecar.exists(), "{}", sidecar.display());

    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sidecar).unwrap()).unwrap();
    assert_eq!(meta["session"], sid.as_str(), "{meta:#}");
    assert_eq!(meta["user"], "alice");
    assert_eq!(meta["server"], "web1");
    assert_eq!(meta["account"], "ghtest");
    assert_eq!(meta["kind"], "exec");
    assert_eq!(meta["exit_status"], 3, "{meta:#}");
    assert_eq!(meta["complete"], true, "{meta:#}");
    // The sidecar hashes exactly what the client received.
    assert_eq!(meta["bytes"]["stdout"], out.stdout.len() as u64, "{meta:#}");
    assert_eq!(meta["bytes"]["stderr"], out.stderr.len() as u64, "{meta:#}");
    assert_eq!(meta["format"], 2, "{meta:#}");
    assert_eq!(
        meta["stdout_blake3"],
        blake3::hash(&out.stdout).to_hex().as_str(),
        "{meta:#}"
    );
    assert_eq!(
        meta["stderr_blake3"],
        blake3::hash(&out.stderr).to_hex().as_str(),
        "{meta:#}"
    );
    assert_eq!(
        meta["cast_sha256"],
        sha256_file(&cast),
        "the sidecar's cast hash"
    );
    assert!(meta["signature"].as_str().is_some_and(|s| !s.is_empty()));
    let (_, events) = cast_lines(&cast);
    assert!(events_text(&events, "o").contains("rec-42"), "{events:?}");
    assert!(asciinema_cat(&cast).contains("rec-42"));

    // The admin CLI sees, verifies and plays it.
    let out = w.gh.cli(&["recordings", "verify"]);
    out.assert_success("recordings verify");
    let out = w.gh.cli(&["recordings", "list", "--json"]);
    out.assert_success("recordings list --json");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let item = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == sid.as_str())
        .unwrap_or_else(|| panic!("{sid} not listed: {list:#}"));
    assert_eq!(item["user"], "alice", "{item:#}");
    assert_eq!(item["server"], "web1", "{item:#}");
    let out = w.gh.cli(&["recordings", "play", &sid, "--speed", "100"]);
    out.assert_success("recordings play");
    assert!(
        out.stdout_text().contains("rec-42"),
        "{}",
        out.stdout_text()
    );

    // Never: nothing on disk for that session.
    w.client
        .ssh("alice+root@web3", &["echo never"])
        .assert_success("web3");
    let never = w.session_id(|e| str_at(e, "server") == "web3");
    // Privileged, as a non-privileged account: nothing either.
    w.client
        .ssh("alice+ghtest@web2", &["echo plain"])
        .assert_success("web2 as ghtest");
    let plain = w.session_id(|e| str_at(e, "server") == "web2" && str_at(e, "account") == "ghtest");
    // Privileged, as root: recorded.
    w.client
        .ssh("alice+root@web2", &["echo privileged-$((1+1))"])
        .assert_success("web2 as root");
    let privileged =
        w.session_id(|e| str_at(e, "server") == "web2" && str_at(e, "account") == "root");
    for s in [&never, &plain, &privileged] {
        w.gh.wait_for_event("session.end", Duration::from_secs(10), |e| {
            str_at(e, "session") == s.as_str()
        });
    }
    let files = all_files(&rec);
    for s in [&never, &plain] {
        assert!(
            !files
                .iter()
                .any(|f| f.to_string_lossy().contains(s.as_str())),
            "session {s} must not be recorded: {files:?}"
        );
    }
    let (cast, _) = w
        .recording_files(&privileged)
        .unwrap_or_else(|| panic!("root on web2 must be recorded: {files:?}"));
    assert!(asciinema_cat(&cast).contains("privileged-2"));
    w.gh.cli(&["recordings", "verify"])
        .assert_success("recordings verify (two recordings)");
}

fn pty_recording_live_then_bastion_killed(backend: Backend) {
    let mut w = setup(backend).web1("record = \"always\"").start();
    let t = w.client.tmux(&w.dir, "alice+root@web1", &[]);
    t.send_line("echo typed-$((6*7))");
    t.wait_for("typed-42", Duration::from_secs(30));
    let sid = w.session_id(|e| str_at(e, "server") == "web1");

    // The output is on disk while the session still runs.
    let mut cast_path = None;
    let seen = wait_until(Duration::from_secs(5), || {
        let Some((cast, _)) = w.recording_files(&sid) else {
            return false;
        };
        let text = std::fs::read_to_string(&cast).unwrap_or_default();
        cast_path = Some(cast);
        text.contains("typed-42")
    });
    let cast = cast_path.unwrap_or_else(|| panic!("no cast for live session {sid}"));
    assert!(seen, "typed output not on disk within seconds: {cast:?}");
    assert!(t.exit_status().is_none(), "the session must still be live");
    let (header, events) = cast_lines(&cast);
    assert_eq!(header["width"], 120, "{header}");
    assert_eq!(header["height"], 40, "{header}");
    assert!(events_text(&events, "o").contains("typed-42"));

    // More output, then the bastion dies without any chance to clean up.
    t.send_line("echo second-$((50+5))");
    t.wait_for("second-55", Duration::from_secs(30));
    wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&cast)
            .unwrap_or_default()
            .contains("second-55")
    });
    w.gh.kill();
    // The client notices the connection is gone.
    assert_ne!(t.wait_exit(Duration::from_secs(30)), 0);

    // What reached disk is a valid cast, playable as it is.
    let (_, events) = cast_lines(&cast);
    let text = events_text(&events, "o");
    assert!(
        text.contains("typed-42") && text.contains("second-55"),
        "{text}"
    );
    assert!(asciinema_cat(&cast).contains("second-55"));
    let out = run(Command::new("asciinema")
        .args(["play", "-i", "0.01", "-s", "100"])
        .arg(&cast));
    out.assert_success("asciinema play");

    // The next start seals it; then it verifies.
    w.gh.restart();
    let out = w.gh.cli(&["recordings", "verify"]);
    out.assert_success("recordings verify after a crash");
    let (_, sidecar) = w.recording_files(&sid).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sidecar).unwrap()).unwrap();
    assert_eq!(meta["interrupted"], true, "{meta:#}");
    // The cast still plays after sealing.
    assert!(asciinema_cat(&cast).contains("second-55"));
    // The killed session is no longer listed as live.
    let out = w.gh.cli(&["sessions", "list", "--json"]);
    out.assert_success("sessions list");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !list
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == sid.as_str()),
        "{list:#}"
    );
}

/// Issue 21 (migration 0022): the database's review state of a session,
/// which the Today page counts, follows the review files. A recording
/// begun marks its session unreviewed and `recordings review` marks it
/// reviewed; what the database missed (a recording made before the column
/// existed, a review it did not take) `serve` reconciles from the files
/// when it starts, in the background, and says so in its log.
fn review_states_follow_the_files(backend: Backend) {
    use gatehouse::store::{SessionReview, Store};
    let keys = TestDir::new();
    let carol = keygen(keys.path(), "carol", KeyKind::Ed25519);
    let auditor = policy_user("carol", &carol, &["support"]) + "roles = [\"auditor\"]\n";
    let mut w = setup(backend)
        .web1("record = \"always\"")
        .policy(&auditor)
        .start();
    w.client
        .ssh("alice+root@web1", &["echo FIRST"])
        .assert_success("first exec");
    let one = w.session_id(|e| str_at(e, "server") == "web1");
    w.client
        .ssh("alice+root@web1", &["echo SECOND"])
        .assert_success("second exec");
    let two = w.session_id(|e| str_at(e, "server") == "web1" && str_at(e, "session") != one);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = w.db_url();
    let store = rt.block_on(Store::open(&url, "probe")).unwrap();
    let state = |id: &str| {
        rt.block_on(store.session_get(id))
            .unwrap()
            .unwrap_or_else(|| panic!("no session {id}"))
            .review
    };
    assert_eq!(state(&one), Some(SessionReview::Unreviewed));
    assert_eq!(state(&two), Some(SessionReview::Unreviewed));
    w.gh.cli(&["recordings", "review", &two, "--by", "carol"])
        .assert_success("recordings review");
    assert_eq!(state(&two), Some(SessionReview::Reviewed));

    // What an older version left (no state) and a review the database did
    // not take.
    assert!(w.gh.stop(), "clean stop");
    rt.block_on(store.session_review_set(&one, None)).unwrap();
    rt.block_on(store.session_review_set(&two, Some(SessionReview::Unreviewed)))
        .unwrap();
    w.gh.restart();
    assert!(
        wait_until(Duration::from_secs(15), || w
            .gh
            .log()
            .contains("review states reconciled")),
        "no reconciliation in the log:\n{}",
        w.gh.log()
    );
    assert!(
        w.gh.log().contains("2 of 2 session(s) updated"),
        "{}",
        w.gh.log()
    );
    assert_eq!(state(&one), Some(SessionReview::Unreviewed));
    assert_eq!(state(&two), Some(SessionReview::Reviewed));
    rt.block_on(store.close());
}

on_both_backends!(
    recording_policy,
    pty_recording_live_then_bastion_killed,
    review_states_follow_the_files
);

/// Contract section 7: resizes are recorded as "r" events.
#[test]
fn pty_recording_has_resize_events() {
    let w = setup(Backend::Sqlite).web1("record = \"always\"").start();
    let t = w.client.tmux(&w.dir, "alice+root@web1", &[]);
    t.send_line("echo ready-$((2+3))");
    t.wait_for("ready-5", Duration::from_secs(30));
    t.resize(100, 30);
    t.send_line("stty size");
    t.wait_for("30 100", Duration::from_secs(30));
    t.send_line("exit");
    assert_eq!(t.wait_exit(Duration::from_secs(30)), 0);
    let sid = w.session_id(|e| str_at(e, "server") == "web1");
    w.gh.wait_for_event("session.end", Duration::from_secs(10), |e| {
        str_at(e, "session") == sid
    });
    let (cast, _) = w.recording_files(&sid).expect("recorded");
    let (_, events) = cast_lines(&cast);
    let resizes: Vec<&serde_json::Value> = events.iter().filter(|e| e[1] == "r").collect();
    assert!(
        resizes.iter().any(|e| e[2] == "100x30"),
        "no \"r\" event for the resize to 100x30: {resizes:?}"
    );
}
