//! Issue 4 end to end: command control on exec and in interactive shells
//! (typed and pasted), the SFTP audit through the real `sftp`, tamper
//! evidence for recordings and the audit chain, and on-screen search. On
//! SQLite and PostgreSQL.

#[path = "support/backend.rs"]
mod backend;
mod common;
#[path = "support/pg.rs"]
mod pg;

use std::time::Duration;

use backend::with_backend;
use common::*;

struct World {
    dir: TestDir,
    _target: Sshd,
    gh: Gatehouse,
    client: Client,
}

fn world(database: Option<String>) -> World {
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let policy = policy_user("alice", &alice, &["support"])
        + "roles = [\"auditor\"]\n"
        + &policy_server(
            "web1",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
        + "record = \"always\"\ndeny_commands = [\"shutdown*\", \"rm -rf /*\"]\n"
        + &policy_server(
            "web-ro",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
        + "sftp_command = \"/usr/lib/openssh/sftp-server -R\"\n"
        + &policy_server(
            "web-paths",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
        + "sftp_deny_paths = [\"*/secret/*\"]\n";
    let mut opts = GatehouseOpts::new().policy("policy.toml", &policy);
    if let Some(url) = &database {
        opts = opts.database(url);
    }
    let gh = Gatehouse::start_with(&dir, opts);
    let client = gh.client(&dir, &alice);
    World {
        dir,
        _target: target,
        gh,
        client,
    }
}

fn scenario(database: Option<String>) {
    let w = world(database);
    let gh = &w.gh;

    // A blocked exec never reaches the target.
    let out = w
        .client
        .ssh("alice@web1", &["shutdown -h now; echo reached"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr_text()
            .contains("gatehouse: access denied: command blocked"),
        "{}",
        out.stderr_text()
    );
    assert!(!out.stdout_text().contains("reached"));
    let ev = gh.wait_for_event("command.blocked", Duration::from_secs(5), |e| {
        e["detail"]["interactive"].is_null()
    });
    assert_eq!(ev["detail"]["command"], "shutdown -h now; echo reached");

    // Interactive: a typed blocked line is refused, the session goes on.
    let tmux = w.client.tmux(&w.dir, "alice@web1", &[]);
    tmux.wait_for("#", Duration::from_secs(15));
    tmux.send_line("echo typed-$((6*7))");
    tmux.wait_for("typed-42", Duration::from_secs(10));
    tmux.send_line("shutdown -r now");
    tmux.wait_for("gatehouse: command blocked", Duration::from_secs(10));
    // A paste of several lines in one go: each line is checked.
    tmux.send_text("echo pasted-$((1+1))\recho pasted-$((2+2))\rrm -rf /tmp/nothing-here\r");
    tmux.wait_for("pasted-4", Duration::from_secs(10));
    tmux.send_line("echo still-$((3*3))");
    let screen = tmux.wait_for("still-9", Duration::from_secs(10));
    assert!(screen.contains("pasted-2"), "{screen}");
    tmux.send_line("exit 4");
    assert_eq!(tmux.wait_exit(Duration::from_secs(15)), 4);
    let blocked: Vec<_> = gh
        .audit_events_of("command.blocked")
        .into_iter()
        .filter(|e| e["detail"]["interactive"] == true)
        .collect();
    // The typed `shutdown` and the pasted `rm -rf /...` (the glob
    // `rm -rf /*` matches it): both refused, both audited.
    assert_eq!(blocked.len(), 2, "{blocked:?}");
    assert_eq!(blocked[0]["detail"]["command"], "shutdown -r now");
    assert_eq!(blocked[1]["detail"]["command"], "rm -rf /tmp/nothing-here");
    let lines: Vec<String> = gh
        .audit_events_of("exec")
        .into_iter()
        .filter(|e| e["detail"]["kind"] == "line")
        .map(|e| {
            e["detail"]["command"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    for want in [
        "echo typed-$((6*7))",
        "echo pasted-$((1+1))",
        "echo pasted-$((2+2))",
        "echo still-$((3*3))",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want} not in {lines:?}");
    }
    // A refused line is never audited as a delivered one.
    assert!(!lines.iter().any(|l| l.starts_with("rm -rf")), "{lines:?}");

    // SFTP operations are events with their paths.
    let file = w.dir.write("upload.txt", b"sftp audit\n");
    let remote = w.dir.join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    let batch = format!(
        "put {} {r}/a.txt\nrename {r}/a.txt {r}/b.txt\nmkdir {r}/sub\nrmdir {r}/sub\nget {r}/b.txt {l}\nrm {r}/b.txt\n",
        file.display(),
        r = remote.display(),
        l = w.dir.join("back.txt").display()
    );
    w.client
        .sftp_batch("alice@web1", &batch)
        .assert_success("sftp batch");
    let ops = gh.audit_events_of("sftp.op");
    let has = |op: &str, key: &str, suffix: &str| {
        ops.iter().any(|e| {
            e["detail"]["op"] == op
                && e["detail"][key]
                    .as_str()
                    .is_some_and(|p| p.ends_with(suffix))
        })
    };
    assert!(has("open", "path", "/a.txt"), "{ops:?}");
    assert!(has("close", "path", "/a.txt"));
    assert!(has("rename", "to", "/b.txt"));
    assert!(has("mkdir", "path", "/sub"));
    assert!(has("rmdir", "path", "/sub"));
    assert!(has("remove", "path", "/b.txt"));
    let close = ops
        .iter()
        .find(|e| {
            e["detail"]["op"] == "close"
                && e["detail"]["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/a.txt"))
        })
        .unwrap();
    assert_eq!(close["detail"]["bytes_written"], 11);

    // A server whose SFTP is read-only (sftp_command): reads work, writes
    // are refused by the target's sftp-server and still audited.
    let ro_batch = format!(
        "get {r}/../upload.txt {l}\n",
        r = remote.display(),
        l = w.dir.join("ro-back.txt").display()
    );
    w.client
        .sftp_batch("alice@web-ro", &ro_batch)
        .assert_success("read-only sftp get");
    let put = w.client.sftp_batch(
        "alice@web-ro",
        &format!("put {} {}/ro.txt\n", file.display(), remote.display()),
    );
    assert_ne!(
        put.code(),
        Some(0),
        "a write must fail on a read-only server: {put:?}"
    );
    assert!(!remote.join("ro.txt").exists());
    let refused = gh.wait_for_event("sftp.op", Duration::from_secs(5), |e| {
        e["server"] == "web-ro"
            && e["detail"]["op"] == "open"
            && e["detail"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/ro.txt"))
    });
    assert_ne!(refused["detail"]["status"], "ok", "{refused}");

    // Path rules: a request naming a refused path never reaches the target.
    std::fs::create_dir_all(remote.join("secret")).unwrap();
    std::fs::write(remote.join("secret/k.txt"), b"key").unwrap();
    let ok = w.client.sftp_batch(
        "alice@web-paths",
        &format!(
            "get {}/../upload.txt {}\n",
            remote.display(),
            w.dir.join("p1.txt").display()
        ),
    );
    ok.assert_success("sftp get of an allowed path");
    let denied = w.client.sftp_batch(
        "alice@web-paths",
        &format!("rm {}/secret/k.txt\n", remote.display()),
    );
    assert_ne!(denied.code(), Some(0), "{denied:?}");
    assert!(
        remote.join("secret/k.txt").exists(),
        "the refused remove must not happen"
    );
    assert!(
        denied.stderr_text().contains("is refused by policy"),
        "{}",
        denied.stderr_text()
    );
    gh.wait_for_event("sftp.op", Duration::from_secs(5), |e| {
        e["server"] == "web-paths" && e["detail"]["op"] == "refused"
    });

    // On-screen search finds a word a remote command printed.
    let out = w
        .client
        .ssh_opts(&["-tt"], "alice@web1", &["echo needle-$((40+2))-found"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let hits = gh.cli(&["recordings", "search", "needle-42-found", "--json"]);
    hits.assert_success("recordings search");
    assert!(
        hits.stdout_text().contains("needle-42-found"),
        "{}",
        hits.stdout_text()
    );

    // Tamper evidence: every recording verifies; one changed byte is named.
    // No waiting: the bastion seals a recording before it passes the exit
    // status on, so the client's exit means the last sidecar is signed.
    gh.cli(&["recordings", "verify"])
        .assert_success("recordings verify");
    let list = gh.cli(&["recordings", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&list.stdout_text()).unwrap();
    let first = &v.as_array().unwrap()[0];
    let id = first["id"].as_str().unwrap().to_string();
    let cast = std::path::PathBuf::from(first["cast_path"].as_str().unwrap());
    let mut bytes = std::fs::read(&cast).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    std::fs::write(&cast, bytes).unwrap();
    let out = gh.cli(&["recordings", "verify"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stdout_text().contains(&format!("FAILED {id}")),
        "{}",
        out.stdout_text()
    );

    // The audit chain is intact; it is checked again after tampering in the
    // SQLite variant below (a removed row).
    gh.cli(&["audit", "verify"]).assert_success("audit verify");
}

#[test]
fn evidence_sqlite() {
    with_backend(false, |db| {
        scenario(db);
    });
}

#[test]
fn evidence_postgres() {
    with_backend(true, scenario);
}

/// A removed audit row is detected and named.
#[test]
fn deleted_audit_row_is_detected() {
    let w = world(None);
    let out = w.client.ssh("alice@web1", &["true"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    let mut gh = w.gh;
    assert!(gh.stop());
    let db = gh.home.join("data/gatehouse.db");
    let script = format!(
        "import sqlite3; c = sqlite3.connect({:?}); c.execute('DELETE FROM audit_events WHERE id = 3'); c.commit()",
        db.display().to_string()
    );
    run(std::process::Command::new("python3").args(["-c", &script])).assert_success("delete a row");
    let out = gh.cli(&["audit", "verify"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr_text().contains("seq 3"), "{}", out.stderr_text());
}
