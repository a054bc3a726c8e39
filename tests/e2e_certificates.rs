//! Short-lived OpenSSH user certificates from the bastion to targets
//! (issue 11 item 2), with real sshd targets that trust the bastion's CA
//! (`TrustedUserCAKeys`) and list no key for it: the certificate logs in,
//! its key id reaches the target's log, a PTY is allowed, and a
//! certificate issued with the signing clock moved back (test knob
//! `GATEHOUSE_TEST_CA_BACKDATE_SECS`) is refused by sshd as expired.

mod common;

use std::time::Duration;

use common::*;

/// A bastion configured but not started, whose CA line `ca show` printed,
/// and a target trusting that CA only (no authorized_keys at all).
fn bastion_and_target(dir: &TestDir, opts: GatehouseOpts) -> (Gatehouse, Sshd, Key) {
    let gh = Gatehouse::configure(dir, opts);
    let out = gh.cli(&["ca", "show"]);
    out.assert_success("ca show");
    let ca_line = out.stdout_text().trim().to_string();
    assert!(ca_line.starts_with("ssh-ed25519 "), "{ca_line}");
    // The key `serve` will use: created 0600 by `ca show`.
    let ca_pub = std::fs::read_to_string(gh.home.join("data/user_ca_ed25519_key.pub")).unwrap();
    assert_eq!(ca_pub.trim(), ca_line);
    let target = Sshd::start(dir, SshdOpts::new().trust_user_ca(&ca_line));
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let policy = policy_user("alice", &alice, &["support"])
        + &policy_server(
            "web1",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
        + "auth = \"certificate\"\n"
        // The same target with the identity key: not authorized there.
        + &policy_server(
            "web1-key",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        );
    gh.write_policy("policy.toml", &policy);
    (gh, target, alice)
}

#[test]
fn a_target_trusting_the_ca_needs_no_authorized_keys() {
    let dir = TestDir::new();
    let (mut gh, target, alice) = bastion_and_target(&dir, GatehouseOpts::new());
    gh.serve();
    let client = gh.client(&dir, &alice);

    let out = client.ssh("alice+root@web1", &["id -un"]);
    out.assert_success("exec with a CA certificate");
    assert_eq!(out.stdout_text(), "root\n");
    // permit-pty: a shell's terminal is allowed.
    let out = client.ssh_opts(&["-tt"], "alice+root@web1", &["tty"]);
    out.assert_success("PTY with a CA certificate");
    assert!(out.stdout_text().starts_with("/dev/pts/"), "{out:?}");

    // sshd names the certificate's key id and CA in its log.
    let session = gh
        .audit_events_of("session.start")
        .first()
        .and_then(|e| e["session"].as_str().map(str::to_owned))
        .expect("a session.start event");
    assert!(
        wait_until(Duration::from_secs(5), || target.log().contains(&format!(
            "ID gatehouse staff=alice session={session} server=web1"
        ))),
        "{}",
        target.log()
    );
    assert!(target.log().contains("CA ED25519"), "{}", target.log());

    // The identity key alone is not a credential on this target.
    let out = client.ssh("alice+root@web1-key", &["id -un"]);
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(!out.stdout_text().contains("root"));
    assert!(gh.stop());
}

#[test]
fn an_expired_certificate_is_refused_by_sshd() {
    let dir = TestDir::new();
    // Signed an hour in the past: expired 55 minutes ago.
    let (mut gh, target, alice) = bastion_and_target(
        &dir,
        GatehouseOpts::new().env("GATEHOUSE_TEST_CA_BACKDATE_SECS", "3600"),
    );
    gh.serve();
    let out = gh.client(&dir, &alice).ssh("alice+root@web1", &["id -un"]);
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(!out.stdout_text().contains("root"));
    assert!(
        wait_until(Duration::from_secs(5), || target.log().contains("expired")),
        "sshd should refuse the certificate as expired:\n{}",
        target.log()
    );
    assert!(!target.log().contains("Accepted publickey for root"));
    assert!(gh.stop());
}

#[test]
fn an_unknown_auth_value_is_a_policy_error() {
    let dir = TestDir::new();
    let gh = Gatehouse::configure(
        &dir,
        GatehouseOpts::new().policy(
            "p.toml",
            "[[server]]\nname = \"w\"\naddress = \"127.0.0.1\"\n\
             host_key = \"SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM\"\n\
             mode = \"global\"\naccounts = [\"root\"]\nauth = \"magic\"\n",
        ),
    );
    let out = gh.cli(&["policy", "check"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stdout_text()
            .contains("p.toml:7:8: unknown auth `magic`: expected identity or certificate"),
        "{}",
        out.stdout_text()
    );
}
