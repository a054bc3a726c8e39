//! Hardening (issue 11, issue 10 item 5) end to end: `policy check` reports
//! every problem at once; `serve` creates its files owner-only, refuses a
//! master key others can read, warns when it keeps root and drops to
//! `[server] user` after binding.

mod common;

use common::*;

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
