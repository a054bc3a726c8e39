//! Hardening (issue 11, issue 10 item 5) end to end: `policy check` reports
//! every problem at once; `serve` creates its files owner-only, refuses a
//! master key others can read, warns when it keeps root and drops to
//! `[server] user` after binding.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A target trusting the bastion's identity, a user and a server on it.
fn target_and_policy(dir: &TestDir, extra_server: &str) -> (Sshd, Key, String) {
    let identity = Gatehouse::prepare_identity(dir);
    let target = Sshd::start(dir, SshdOpts::new().authorize("root", &identity.public));
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let policy = support_policy(&alice, "web1", &target) + extra_server;
    (target, alice, policy)
}

// --------------------------------------------------------- policy check --

#[test]
fn policy_check_reports_every_problem_of_every_entry() {
    let dir = TestDir::new();
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let users = policy_user("alice", &alice, &["support"]);
    // Line 1 is the first header.
    let servers = "[[server]]\n\
                   name = \"db\"\n\
                   address = \"127.0.0.1:22\"\n\
                   host_key = \"SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM\"\n\
                   mode = \"teleport\"\n\
                   accounts = [\"root\"]\n\
                   colour = \"red\"\n\
                   require_grant = \"yes\"\n\
                   \n\
                   [[server]]\n\
                   name = \"web\"\n\
                   address = \"127.0.0.1:22\"\n\
                   mode = \"global\"\n\
                   accounts = [\"root\"]\n\
                   allow = [\"group:nobody-has-it\"]\n\
                   shape = \"round\"\n";
    let gh = Gatehouse::configure(
        &dir,
        GatehouseOpts::new()
            .policy("users.toml", &users)
            .policy("servers.toml", servers),
    );
    let out = gh.cli(&["policy", "check"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let file = gh.home.join("policies/servers.toml");
    let lines: Vec<String> = out.stdout_text().lines().map(str::to_owned).collect();
    let expect = [
        (5, 8, "unknown mode `teleport`"),
        (7, 1, "unknown field `colour`"),
        (8, 17, "invalid type: string \"yes\", expected a boolean"),
        (10, 1, "mode global needs `host_key`"),
        (15, 10, "unknown group `nobody-has-it`"),
        (16, 1, "unknown field `shape`"),
    ];
    assert_eq!(lines.len(), expect.len(), "{lines:#?}");
    for ((line, col, message), got) in expect.iter().zip(&lines) {
        let want = format!("{}:{line}:{col}: {message}", file.display());
        assert!(
            got.starts_with(&want),
            "want {want}\ngot  {got}\nall {lines:#?}"
        );
    }
}

// ----------------------------------------------------------- privileges --

#[test]
fn serve_refuses_a_master_key_others_can_read() {
    let dir = TestDir::new();
    let gh = Gatehouse::configure(&dir, GatehouseOpts::new());
    let key = gh.home.join("data/master.key");
    std::fs::write(&key, format!("{}\n", "A".repeat(43) + "=")).unwrap();
    set_mode(&key, 0o644);
    let out = gh.cli(&["serve"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let err = out.stderr_text();
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: ") && last.contains("master.key") && last.contains("chmod 600"),
        "{err}"
    );
    assert!(!is_listening(gh.port), "it must not have started listening");
    // The same key, owner-only, is accepted.
    set_mode(&key, 0o600);
    let mut gh = gh;
    gh.serve();
    assert!(gh.stop());
}

#[test]
fn serve_creates_its_files_owner_only() {
    let dir = TestDir::new();
    let (_target, alice, policy) = target_and_policy(&dir, "record = \"always\"\n");
    // Everything under a folder serve has to create itself.
    let fresh = |rel: &str| toml_str(&dir.join("fresh").join(rel).display().to_string());
    let extra = format!(
        "[server]\nhost_key = {}\nsigning_key = {}\nmaster_key = {}\ndatabase = {}\n\
         recordings = {}\nreports = {}\n",
        fresh("keys/host_key"),
        fresh("keys/signing.pk8"),
        fresh("vault/master.key"),
        toml_str(&format!(
            "sqlite://{}",
            dir.join("fresh/db/gatehouse.db").display()
        )),
        fresh("recordings"),
        fresh("reports"),
    );
    let mut gh = Gatehouse::start(&dir, &extra, &policy);
    let out = gh.client(&dir, &alice).ssh("alice+root@web1", &["echo hi"]);
    out.assert_success("a recorded exec");
    let f = |rel: &str| dir.join("fresh").join(rel);
    for file in [
        "keys/host_key",
        "keys/signing.pk8",
        "vault/master.key",
        "db/gatehouse.db",
    ] {
        assert_eq!(mode_of(&f(file)), 0o600, "{file}");
    }
    for folder in ["keys", "vault", "db", "recordings"] {
        assert_eq!(mode_of(&f(folder)), 0o700, "{folder}");
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            scenario_files(&f("recordings"))
                .iter()
                .any(|p| p.extension().is_some_and(|e| e == "json"))
        }),
        "no sidecar written"
    );
    assert!(gh.stop());
    let files = scenario_files(&f("recordings"));
    assert!(files.len() >= 2, "{files:?}");
    for p in files {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode_of(&p), want, "{}", p.display());
    }
}

/// Every path below `root`, folders included.
fn scenario_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(scenario_files(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn serve_as_root_warns_loudly() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = TestDir::new();
    let mut gh = Gatehouse::start(&dir, "", "");
    assert!(
        wait_until(Duration::from_secs(5), || gh
            .log()
            .contains("WARNING: gatehouse serve is running as root")),
        "{}",
        gh.log()
    );
    assert!(gh.stop());
}

#[test]
fn serve_drops_to_the_configured_user_after_binding() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    ensure_account("ghtest");
    let dir = TestDir::new();
    let (_target, alice, policy) = target_and_policy(&dir, "record = \"always\"\n");
    let mut gh = Gatehouse::start(&dir, "[server]\nuser = \"ghtest\"\n", &policy);
    let uid = run(std::process::Command::new("id").args(["-u", "ghtest"]))
        .stdout_text()
        .trim()
        .to_string();
    let pid = gh.pid().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(uids, vec![uid.as_str(); 4], "{status}");
    let groups = status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or("")
        .trim()
        .to_string();
    assert!(!groups.split_whitespace().any(|g| g == "0"), "{status}");
    assert!(
        !gh.log()
            .contains("WARNING: gatehouse serve is running as root")
    );

    // It still serves: a recorded session, written by the unprivileged user.
    let out = gh.client(&dir, &alice).ssh("alice+root@web1", &["echo hi"]);
    out.assert_success("exec after the drop");
    assert_eq!(out.stdout_text(), "hi\n");
    gh.wait_for_event("session.end", Duration::from_secs(10), |_| true);
    let casts: Vec<_> = scenario_files(&gh.home.join("recordings"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cast"))
        .collect();
    assert_eq!(casts.len(), 1, "{casts:?}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&casts[0]).unwrap().uid().to_string(), uid);
    assert!(gh.stop());
}

#[test]
fn a_configured_user_that_does_not_exist_is_an_error() {
    let dir = TestDir::new();
    let gh = Gatehouse::configure(
        &dir,
        GatehouseOpts::new().extra_toml("[server]\nuser = \"no-such-user-gh\"\n"),
    );
    let out = gh.cli(&["serve"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr_text()
            .contains("error: [server] user: no such user `no-such-user-gh`"),
        "{}",
        out.stderr_text()
    );
}
