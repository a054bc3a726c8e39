//! End to end, contract sections 5 and 6: command mode (`ssh
//! STAFF@bastion [COMMAND]`), the grant workflow over SSH and through
//! `gatehouse grant`, mode on-request sessions living exactly as long as
//! their grant, and `gatehouse policy explain`. Every scenario runs once
//! on SQLite and once on PostgreSQL.

mod common;
#[macro_use]
#[path = "common/access.rs"]
mod access;
#[path = "support/pg.rs"]
mod pg;

use std::time::Duration;

use access::*;
use common::*;
use serde_json::Value;

/// How long a session may outlive its grant's end before the test fails:
/// the contract says "within seconds"; the bastion checks every second.
const CUTOFF: Duration = Duration::from_secs(20);

/// alice and bob are approvers, carol is not; all three in group support.
/// `ondb` is mode on-request on a real sshd, `ondb2` and `ondb3` too;
/// `web` is ssh-forwarding, for `list`.
struct World {
    dir: TestDir,
    alice: Key,
    bob: Key,
    carol: Key,
    target: Sshd,
    svc: Service,
    gh: Gatehouse,
}

impl World {
    fn start(backend: &Backend) -> World {
        let dir = TestDir::new();
        let identity = Gatehouse::prepare_identity(&dir);
        let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
        let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
        let bob = keygen(dir.path(), "bob", KeyKind::Ed25519);
        let carol = keygen(dir.path(), "carol", KeyKind::Ed25519);
        let svc = Service::start();
        let on_request = |name: &str| {
            policy_server(
                name,
                &target,
                "on-request",
                &["root", "ghtest"],
                &["group:support"],
            )
        };
        let policy = policy_user("alice", &alice, &["support"])
            + "roles = [\"approver\"]\n"
            + &policy_user("bob", &bob, &["support"])
            + "roles = [\"approver\"]\n"
            + &policy_user("carol", &carol, &["support"])
            + &on_request("ondb")
            + &on_request("ondb2")
            + &on_request("ondb3")
            + &policy_server(
                "web",
                &target,
                "ssh-forwarding",
                &["root"],
                &["group:support"],
            )
            + &format!("ports = [{}]\n", svc.port);
        let gh = Gatehouse::start_with(&dir, backend.opts().policy("policy.toml", &policy));
        World {
            dir,
            alice,
            bob,
            carol,
            target,
            svc,
            gh,
        }
    }

    fn client(&self, key: &Key) -> Client {
        self.gh.client(&self.dir, key)
    }

    /// `ssh STAFF@bastion COMMAND --json`, parsed.
    fn cmd_json(&self, key: &Key, staff: &str, command: &str) -> Value {
        let out = self.client(key).ssh(staff, &[&format!("{command} --json")]);
        json_of(&out, &format!("ssh {staff}@bastion {command} --json"))
    }

    /// bob requests a grant over SSH; returns its id.
    fn request(&self, args: &str) -> i64 {
        let g = self.cmd_json(&self.bob, "bob", &format!("request {args}"));
        assert_eq!(g["state"], "pending", "{g}");
        assert_eq!(g["user"], "bob", "{g}");
        g["id"].as_i64().unwrap_or_else(|| panic!("no id in {g}"))
    }

    fn approve(&self, id: i64) -> Value {
        let g = self.cmd_json(&self.alice, "alice", &format!("approve {id}"));
        assert_eq!(g["state"], "approved", "{g}");
        assert_eq!(g["approved_by"], "alice", "{g}");
        g
    }

    /// `ssh bob@SERVER 'echo started; sleep 60'` in the background, once
    /// the remote command runs.
    fn long_session(&self, server: &str) -> BackgroundSsh {
        let client = self.client(&self.bob);
        let dest = client.destination(&format!("bob@{server}"));
        BackgroundSsh::start_long(&self.dir, &client, &dest)
    }
}

/// The session in `bg` ends on its own within [`CUTOFF`], telling the
/// client `why`.
fn assert_cut_off(bg: &mut BackgroundSsh, why: &str) {
    let status = bg.wait(CUTOFF);
    assert!(
        status.is_some(),
        "the session outlived its grant by more than {CUTOFF:?}; stderr:\n{}",
        bg.stderr_text()
    );
    assert!(!status.unwrap().success());
    assert!(
        bg.stderr_text().contains(why),
        "the client should be told `{why}`:\n{}",
        bg.stderr_text()
    );
}

fn exec_works(client: &Client, login: &str) {
    let out = client.ssh(login, &["echo in-$((40+2))"]);
    out.assert_success(&format!("exec on {login}"));
    assert_eq!(out.stdout_text(), "in-42\n");
}

fn grant_events(gh: &Gatehouse, kind: &str, id: i64) -> Vec<Value> {
    gh.audit_events_of(kind)
        .into_iter()
        .filter(|e| e["detail"]["grant"].as_i64() == Some(id))
        .collect()
}

fn grant_workflow_over_ssh(backend: Backend) {
    let w = World::start(&backend);
    let bob = w.client(&w.bob);
    let need = "ondb needs an approved grant";

    // No grant: nothing.
    assert_denied(&bob.ssh("bob@ondb", &["echo leaked"]), need);
    assert_open_failed(
        &ssh_w(
            &bob,
            &[],
            "bob@ondb",
            &format!("localhost:{}", w.svc.port),
            b"x",
        ),
        need,
    );

    let id = w.request(&format!(
        "ondb --ports {} --for 1h --reason T-1",
        w.svc.port
    ));
    assert_eq!(grant_events(&w.gh, "grant.requested", id).len(), 1);
    // Pending authorizes nothing.
    assert_denied(&bob.ssh("bob@ondb", &["echo leaked"]), need);

    // Four eyes: not the requester, and only an approver.
    let out = bob.ssh("bob", &[&format!("approve {id}")]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr_text()
            .contains("nobody approves their own request"),
        "{}",
        out.stderr_text()
    );
    let out = w.client(&w.carol).ssh("carol", &[&format!("approve {id}")]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr_text().contains("approver role"),
        "{}",
        out.stderr_text()
    );
    let g = w.approve(id);
    assert!(g["expires_at"].is_string(), "{g}");
    let approved = grant_events(&w.gh, "grant.approved", id);
    assert_eq!(approved.len(), 1);
    assert_eq!(field(&approved[0], "user"), "alice");

    // Active: sessions, sftp and the granted port work.
    exec_works(&bob, "bob@ondb");
    exec_works(&bob, "bob+root@ondb");
    let up = w.dir.write("up.bin", random_bytes(20_000));
    let down = w.dir.join("down.bin");
    let remote = w.dir.join("remote.bin");
    bob.sftp_batch(
        "bob@ondb",
        &format!(
            "put {} {r}\nget {r} {}\n",
            up.display(),
            down.display(),
            r = remote.display()
        ),
    )
    .assert_success("sftp under a grant");
    assert_eq!(sha256_file(&up), sha256_file(&down));
    let data = random_bytes(100_000);
    let out = ssh_w(
        &bob,
        &[],
        "bob@ondb",
        &format!("localhost:{}", w.svc.port),
        &data,
    );
    out.assert_success("forward to the granted port");
    assert!(out.stdout == data);
    // ...but only the granted port and account.
    assert_open_failed(
        &ssh_w(
            &bob,
            &[],
            "bob@ondb",
            &format!("localhost:{}", w.target.port),
            b"x",
        ),
        &format!("port {} is not open for forwarding on ondb", w.target.port),
    );
    assert_denied(
        &bob.ssh("bob+ghtest@ondb", &["echo leaked"]),
        "ondb needs an approved grant",
    );
    let starts = events_for(&w.gh, "session.start", "ondb");
    assert!(
        starts
            .iter()
            .any(|e| e["detail"]["grant"].as_i64() == Some(id)),
        "{starts:#?}"
    );
    let opens = events_for(&w.gh, "forward.open", "ondb");
    assert!(
        opens
            .iter()
            .any(|e| e["detail"]["grant"].as_i64() == Some(id) && detail_str(e, "path") == "Direct"),
        "{opens:#?}"
    );
    // Remote forwards and jumps stay refused under a grant.
    let spec = format!("{}:127.0.0.1:9", free_port());
    let out = ssh_args(
        &bob,
        &[
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            &spec,
            &bob.destination("bob@ondb"),
        ],
    );
    assert_eq!(out.code(), Some(255), "{out:?}");

    // The grant shows in `grants` and `list`.
    let gs = w.cmd_json(&w.bob, "bob", "grants");
    assert!(gs.as_array().unwrap().iter().any(|g| g["id"] == id), "{gs}");
    let list = w.cmd_json(&w.bob, "bob", "list");
    let ondb = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server"] == "ondb")
        .cloned()
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(ondb["grants"][0]["id"], id, "{ondb}");
    assert_eq!(ondb["needs_grant"], false, "{ondb}");

    // A grant from other source addresses does not apply here.
    let id2 = w.request("ondb2 --from 10.0.0.0/8 --for 1h --reason T-2");
    w.approve(id2);
    assert_denied(
        &bob.ssh("bob@ondb2", &["echo leaked"]),
        "ondb2 needs an approved grant",
    );
    let ev =
        w.gh.wait_for_event("access.denied", Duration::from_secs(10), |e| {
            field(e, "server") == "ondb2"
        });
    assert_eq!(detail_str(&ev, "code"), "KO_GRANT_REQUIRED");
    assert!(detail_str(&ev, "rule").contains("from 127.0.0.1"), "{ev}");

    // A denied grant authorizes nothing.
    let id3 = w.request("ondb3 --for 1h --reason T-3");
    let g = w.cmd_json(&w.alice, "alice", &format!("deny {id3} --reason not-now"));
    assert_eq!(g["state"], "denied", "{g}");
    assert_denied(
        &bob.ssh("bob@ondb3", &["echo leaked"]),
        "ondb3 needs an approved grant",
    );
    assert_eq!(grant_events(&w.gh, "grant.denied", id3).len(), 1);
    // Decided grants cannot be decided again.
    let out = w
        .client(&w.alice)
        .ssh("alice", &[&format!("approve {id3}")]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr_text().contains("not pending"),
        "{}",
        out.stderr_text()
    );

    // Revocation cuts a live session off.
    let mut bg = w.long_session("ondb");
    let g = w.cmd_json(&w.alice, "alice", &format!("revoke {id}"));
    assert_eq!(g["state"], "revoked", "{g}");
    assert_cut_off(&mut bg, "revoked");
    assert_eq!(grant_events(&w.gh, "grant.revoked", id).len(), 1);
    assert_denied(&bob.ssh("bob@ondb", &["echo leaked"]), need);
}

fn grant_expiry_ends_the_session(backend: Backend) {
    let w = World::start(&backend);
    let bob = w.client(&w.bob);
    let id = w.request("ondb --for 5s --reason T-5");
    w.approve(id);
    let mut bg = w.long_session("ondb");
    assert_cut_off(&mut bg, "expired");
    let ev =
        w.gh.wait_for_event("grant.expired", Duration::from_secs(10), |e| {
            e["detail"]["grant"].as_i64() == Some(id)
        });
    assert_eq!(detail_str(&ev, "state"), "expired");
    assert_denied(
        &bob.ssh("bob@ondb", &["echo leaked"]),
        "ondb needs an approved grant",
    );
    let end =
        w.gh.wait_for_event("session.end", Duration::from_secs(10), |e| {
            field(e, "server") == "ondb" && detail_str(e, "reason").contains("expired")
        });
    assert_eq!(field(&end, "user"), "bob");
}

fn grant_admin_cli(backend: Backend) {
    let w = World::start(&backend);
    let gh = &w.gh;
    let cli_json = |args: &[&str], what: &str| json_of(&gh.cli(args), what);
    let port = w.svc.port.to_string();

    let g = cli_json(
        &[
            "grant", "request", "--user", "bob", "ondb", "--ports", &port, "--for", "1h",
            "--reason", "T-10", "--json",
        ],
        "grant request",
    );
    assert_eq!(g["state"], "pending", "{g}");
    assert_eq!(g["ports"][0].as_u64(), Some(u64::from(w.svc.port)), "{g}");
    let id = g["id"].as_i64().unwrap();
    let ids = id.to_string();

    let out = gh.cli(&["grant", "approve", &ids, "--by", "bob"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr_text().starts_with("error: ")
            && out
                .stderr_text()
                .contains("nobody approves their own request"),
        "{}",
        out.stderr_text()
    );
    let out = gh.cli(&["grant", "approve", &ids, "--by", "carol"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let g = cli_json(
        &["grant", "approve", &ids, "--by", "alice", "--json"],
        "grant approve",
    );
    assert_eq!(g["state"], "approved", "{g}");

    let all = cli_json(&["grant", "list", "--json"], "grant list");
    assert!(
        all.as_array().unwrap().iter().any(|x| x["id"] == id),
        "{all}"
    );
    let mine = cli_json(
        &["grant", "list", "--user", "bob", "--json"],
        "grant list --user",
    );
    assert!(mine.as_array().unwrap().iter().all(|x| x["user"] == "bob"));
    let none = cli_json(
        &["grant", "list", "--user", "carol", "--json"],
        "grant list carol",
    );
    assert_eq!(none.as_array().unwrap().len(), 0, "{none}");
    let text = gh.cli(&["grant", "list"]);
    text.assert_success("grant list");
    assert!(
        text.stdout_text().contains(&format!("#{id}")),
        "{}",
        text.stdout_text()
    );

    // What the CLI approved, the running bastion honours.
    let bob = w.client(&w.bob);
    exec_works(&bob, "bob@ondb");

    // Deny and its note.
    let g = cli_json(
        &[
            "grant", "request", "--user", "bob", "ondb3", "--for", "2h", "--reason", "T-11",
            "--json",
        ],
        "grant request 2",
    );
    let id2 = g["id"].as_i64().unwrap().to_string();
    let g = cli_json(
        &[
            "grant", "deny", &id2, "--by", "alice", "--reason", "later", "--json",
        ],
        "grant deny",
    );
    assert_eq!(g["state"], "denied", "{g}");
    assert_eq!(g["decision_note"], "later", "{g}");
    let out = gh.cli(&["grant", "revoke", &id2, "--by", "alice"]);
    assert_eq!(out.code(), Some(1), "revoking a denied grant: {out:?}");

    // Bad input: exit 2 (usage) or 1 (refused), one `error:` line.
    let out = gh.cli(&[
        "grant", "request", "--user", "bob", "ondb", "--for", "soon", "--reason", "x",
    ]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    let out = gh.cli(&[
        "grant", "request", "--user", "bob", "nosuch", "--for", "1h", "--reason", "x",
    ]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let out = gh.cli(&["grant", "request", "--user", "bob", "ondb", "--reason", "x"]);
    assert_eq!(
        out.code(),
        Some(1),
        "neither --for nor --permanent: {out:?}"
    );

    // Revoking from the CLI (another process) cuts the live session off.
    let mut bg = w.long_session("ondb");
    let g = cli_json(
        &["grant", "revoke", &ids, "--by", "alice", "--json"],
        "grant revoke",
    );
    assert_eq!(g["state"], "revoked", "{g}");
    assert_cut_off(&mut bg, "revoked");
    for kind in ["grant.requested", "grant.approved", "grant.revoked"] {
        assert_eq!(grant_events(gh, kind, id).len(), 1, "{kind}");
    }
}

fn command_mode(backend: Backend) {
    let w = World::start(&backend);
    let alice = w.client(&w.alice);

    // No command: `list`.
    let out = alice.ssh("alice", &[]);
    out.assert_success("ssh alice@bastion");
    let text = out.stdout_text();
    for word in [
        "SERVER",
        "MODE",
        "ACCOUNTS",
        "ondb",
        "on-request",
        "web",
        "ssh-forwarding",
    ] {
        assert!(text.contains(word), "list lacks {word}:\n{text}");
    }
    assert!(text.contains("needs a grant"), "{text}");
    let line = text.lines().find(|l| l.starts_with("web ")).unwrap();
    assert!(
        line.contains("root") && line.contains(&w.svc.port.to_string()),
        "{line}"
    );
    assert_eq!(alice.ssh("alice", &["list"]).stdout_text(), text);

    let list = w.cmd_json(&w.alice, "alice", "list");
    let servers = list["servers"].as_array().unwrap();
    let names: Vec<&str> = servers
        .iter()
        .filter_map(|s| s["server"].as_str())
        .collect();
    assert_eq!(names, ["ondb", "ondb2", "ondb3", "web"]);
    let web = &servers[3];
    assert_eq!(web["mode"], "ssh-forwarding");
    assert_eq!(web["accounts"][0], "root");
    assert_eq!(servers[0]["needs_grant"], true);
    assert!(list["grants"].as_array().unwrap().is_empty());

    let me = w.cmd_json(&w.alice, "alice", "whoami");
    assert_eq!(me["user"], "alice");
    assert_eq!(me["groups"][0], "support");
    assert_eq!(me["roles"][0], "approver");
    assert_eq!(me["source"], "127.0.0.1");
    let out = alice.ssh("alice", &["whoami"]);
    out.assert_success("whoami");
    assert!(
        out.stdout_text().contains("user: alice"),
        "{}",
        out.stdout_text()
    );

    let gs = w.cmd_json(&w.alice, "alice", "grants");
    assert_eq!(gs, Value::Array(vec![]));
    let out = alice.ssh("alice", &["grants"]);
    assert!(
        out.stdout_text().contains("(no grants)"),
        "{}",
        out.stdout_text()
    );

    // carol (no approver role) sees her own grants only.
    let id = w.request("ondb --for 1h --reason T-20");
    let carol = w.cmd_json(&w.carol, "carol", "grants");
    assert_eq!(carol, Value::Array(vec![]));
    let all = w.cmd_json(&w.alice, "alice", "grants");
    assert_eq!(all[0]["id"], id, "{all}");
    let out = w.client(&w.bob).ssh("bob", &["list"]);
    assert!(
        out.stdout_text().contains("GRANTS"),
        "{}",
        out.stdout_text()
    );
    assert!(
        out.stdout_text().contains(&format!("#{id}")),
        "{}",
        out.stdout_text()
    );

    // Unknown command: usage, exit 2.
    let out = alice.ssh("alice", &["frobnicate"]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr_text().contains("usage:"),
        "{}",
        out.stderr_text()
    );
    assert!(out.stdout.is_empty());
    // A request without its required parts: usage (2) or refusal (1).
    let out = alice.ssh("alice", &["request", "ondb", "--bogus"]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    let out = alice.ssh("alice", &["request", "ondb", "--for", "1h"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr_text().contains("reason"),
        "{}",
        out.stderr_text()
    );
    let out = alice.ssh(
        "alice",
        &["request", "nosuch", "--for", "1h", "--reason", "x"],
    );
    assert_eq!(out.code(), Some(1), "{out:?}");
    // Subsystems need a target.
    let out = alice.sftp_batch("alice", "ls\n");
    assert_ne!(out.code(), Some(0));
}

fn policy_explain(backend: Backend) {
    let w = World::start(&backend);
    let gh = &w.gh;
    let explain = |args: &[&str]| {
        let mut a = vec!["policy", "explain"];
        a.extend_from_slice(args);
        gh.cli(&a)
    };

    let out = explain(&["alice", "web"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let text = out.stdout_text();
    assert!(text.starts_with("ALLOW alice -> web as root"), "{text}");
    assert!(text.contains("rule: web allows group:support"), "{text}");

    let port = w.svc.port.to_string();
    let out = explain(&["alice", "web", "--port", &port]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stdout_text().contains("through sshd"),
        "{}",
        out.stdout_text()
    );
    let out = explain(&["alice", "web", "--port", "22"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stdout_text().starts_with("DENY KO_PORT_NOT_ALLOWED"),
        "{}",
        out.stdout_text()
    );
    let out = explain(&["alice", "web", "--account", "ghtest"]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stdout_text().contains("KO_ACCOUNT_NOT_ALLOWED"));
    let out = explain(&["alice", "nosuch"]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stdout_text().contains("KO_ACCESS_DENIED"));
    let out = explain(&["alice", "web", "--from", "not-an-ip"]);
    assert_eq!(out.code(), Some(2), "{out:?}");

    // on-request: denied without a grant, allowed with one, and the grant's
    // source restriction shows.
    let out = explain(&["bob", "ondb"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stdout_text().starts_with("DENY KO_GRANT_REQUIRED"),
        "{}",
        out.stdout_text()
    );
    let id = w.request(&format!(
        "ondb --ports {} --from 127.0.0.0/8 --for 1h --reason T-30",
        w.svc.port
    ));
    let out = explain(&["bob", "ondb"]);
    assert_eq!(out.code(), Some(1), "pending grant: {out:?}");
    assert!(
        out.stdout_text().contains("grant considered"),
        "{}",
        out.stdout_text()
    );
    w.approve(id);
    let out = explain(&["bob", "ondb"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let text = out.stdout_text();
    assert!(text.starts_with("ALLOW bob -> ondb as root"), "{text}");
    assert!(text.contains(&format!("grant #{id}")), "{text}");
    let out = explain(&["bob", "ondb", "--port", &port]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let out = explain(&["bob", "ondb", "--port", "22"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let out = explain(&["bob", "ondb", "--from", "10.1.2.3"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let out = explain(&["bob", "ondb", "--json"]);
    let v = json_of(&out, "policy explain --json");
    assert_eq!(v["request"]["user"], "bob", "{v}");
}

on_both_backends!(
    grant_workflow_over_ssh,
    grant_expiry_ends_the_session,
    grant_admin_cli,
    command_mode,
    policy_explain,
);
