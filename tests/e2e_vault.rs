//! Issue 5 end to end: a target that accepts only a password (the vault's),
//! the password never shown to staff nor written to the recording, the audit
//! log or the logs; rotation with chpasswd over SSH, verified before it is
//! committed; a failed rotation leaves the old password working. On SQLite
//! and PostgreSQL.

#[path = "support/backend.rs"]
mod backend;
mod common;
#[path = "support/pg.rs"]
mod pg;

use std::time::Duration;

use backend::with_backend;
use common::*;

/// One system account per backend: the two variants run in parallel and
/// each changes its account's password.
fn scenario(database: Option<String>) {
    let account = if database.is_some() {
        "ghvaultpg"
    } else {
        "ghvaultsq"
    };
    ensure_account(account);
    let first = "Initial-Passw0rd-42!";
    set_password(account, first);
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    // The bastion's identity key may log in as root (the rotation admin),
    // never as the vaulted account: that one accepts only its password.
    let target = Sshd::start(
        &dir,
        SshdOpts::new()
            .authorize("root", &identity.public)
            .password_auth(),
    );
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let policy = policy_user("alice", &alice, &["support"])
        + &policy_server(
            "web1",
            &target,
            "ssh-forwarding",
            &[account, "root"],
            &["group:support"],
        )
        + "record = \"always\"\n"
        + &policy_server(
            "web2",
            &target,
            "ssh-forwarding",
            &[account],
            &["group:support"],
        )
        + "rotate_after_use = true\n";
    let mut opts = GatehouseOpts::new().policy("policy.toml", &policy);
    if let Some(url) = &database {
        opts = opts.database(url);
    }
    let mut gh = Gatehouse::configure(&dir, opts);

    // Stored by an admin on the bastion host; `list` never shows it.
    gh.cli_with_stdin(
        &["vault", "set", "web1", account, "--password-stdin"],
        format!("{first}\n").as_bytes(),
    )
    .assert_success("vault set");
    let list = gh.cli(&["vault", "list", "--json"]);
    list.assert_success("vault list");
    assert!(!list.stdout_text().contains(first));
    assert!(list.stdout_text().contains(account));
    gh.serve();

    // Staff log in as the account without ever holding its password.
    let client = gh.client(&dir, &alice);
    let out = client.ssh(
        &format!("alice+{account}@web1"),
        &["id -un; echo secret-check"],
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr_text());
    assert!(
        out.stdout_text().starts_with(&format!("{account}\n")),
        "{}",
        out.stdout_text()
    );
    let read = gh.wait_for_event("vault.read", Duration::from_secs(5), |e| {
        e["account"] == account
    });
    assert_eq!(read["server"], "web1");

    // Rotation: set on the target with chpasswd as root, verified, committed.
    let rot = gh.cli(&["vault", "rotate", "web1", account]);
    rot.assert_success("vault rotate");
    gh.wait_for_event("vault.rotated", Duration::from_secs(5), |e| {
        e["account"] == account
    });
    // The old password no longer opens the account directly...
    let direct = Client::new(&dir, &alice, target.port);
    let old = direct.ssh_password(account, first, &["true"]);
    assert_ne!(
        old.code(),
        Some(0),
        "the old password must be gone after rotation"
    );
    // ...and the bastion logs in with the new one.
    let out = client.ssh(&format!("alice+{account}@web1"), &["id -un"]);
    assert_eq!(
        out.stdout_text(),
        format!("{account}\n"),
        "{}",
        out.stderr_text()
    );

    // A failed rotation: the admin account can no longer log in, so
    // chpasswd never runs; the current password stays valid and usable.
    target.revoke_all("root");
    let rot = gh.cli(&["vault", "rotate", "web1", account]);
    assert_eq!(rot.code(), Some(1), "{rot:?}");
    assert!(
        rot.stderr_text().contains("old password is unchanged"),
        "{}",
        rot.stderr_text()
    );
    gh.wait_for_event("vault.rotation_failed", Duration::from_secs(5), |e| {
        e["account"] == account
    });
    let out = client.ssh(&format!("alice+{account}@web1"), &["id -un"]);
    assert_eq!(
        out.stdout_text(),
        format!("{account}\n"),
        "{}",
        out.stderr_text()
    );

    // rotate_after_use: the password that logged a session in is rotated
    // once the session ends.
    target.authorize("root", &identity.public);
    let third = "Third-Passw0rd-99!";
    set_password(account, third);
    gh.cli_with_stdin(
        &["vault", "set", "web2", account, "--password-stdin"],
        format!("{third}\n").as_bytes(),
    )
    .assert_success("vault set web2");
    let out = client.ssh("alice@web2", &["id -un"]);
    assert_eq!(
        out.stdout_text(),
        format!("{account}\n"),
        "{}",
        out.stderr_text()
    );
    gh.wait_for_event("vault.rotated", Duration::from_secs(20), |e| {
        e["server"] == "web2" && e["user"] == "rotate_after_use"
    });
    let old = direct.ssh_password(account, third, &["true"]);
    assert_ne!(
        old.code(),
        Some(0),
        "rotated after use: the used password must be gone"
    );

    // The passwords are nowhere: not in the casts, the audit log or the logs.
    assert!(gh.stop());
    let mut haystacks = vec![gh.log()];
    haystacks.push(gh.cli(&["audit", "export"]).stdout_text());
    for entry in walk(&gh.home.join("recordings")) {
        haystacks.push(String::from_utf8_lossy(&std::fs::read(entry).unwrap()).into_owned());
    }
    assert!(haystacks.len() >= 3, "expected recordings to check");
    for h in &haystacks {
        assert!(!h.contains(first), "the first password leaked");
        assert!(!h.contains(third), "the third password leaked");
        assert!(!h.contains("Passw0rd"), "a password leaked");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn vault_login_and_rotation_sqlite() {
    with_backend(false, scenario);
}

#[test]
fn vault_login_and_rotation_postgres() {
    with_backend(true, scenario);
}
