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
    // The key `serve` will use: stored in the database by `ca show`
    // (shared by every node), never written to a file.
    assert!(!gh.home.join("data/user_ca_ed25519_key").exists());
    let target = Sshd::start(dir, SshdOpts::new().trust_user_ca(&ca_line));
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let policy = support_policy(&alice, "web1", &target)
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

// ------------------------------------------------ staff with certificates --

/// `ssh-keygen -s CA -I ID -n PRINCIPALS -V VALIDITY [-O OPT]... KEY.pub`:
/// the certificate file beside the key, as OpenSSH names it.
fn sign(
    ca: &Key,
    key: &Key,
    principals: &str,
    validity: &str,
    options: &[&str],
) -> std::path::PathBuf {
    let mut cmd = std::process::Command::new("ssh-keygen");
    cmd.args(["-q", "-s"]).arg(&ca.private).args([
        "-I",
        "carol-laptop",
        "-n",
        principals,
        "-V",
        validity,
    ]);
    for o in options {
        cmd.args(["-O", o]);
    }
    cmd.arg(&key.public_path);
    run(&mut cmd).assert_success("ssh-keygen -s");
    let cert = key.private.with_file_name(format!(
        "{}-cert.pub",
        key.private.file_name().unwrap().to_string_lossy()
    ));
    assert!(cert.exists(), "{}", cert.display());
    cert
}

#[test]
fn staff_log_in_with_certificates_from_a_trusted_ca() {
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
    let site_ca = keygen(dir.path(), "site-ca", KeyKind::Ed25519);
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    // carol has no key in the policy: only certificates.
    let policy = policy_user("alice", &alice, &["support"])
        + "\n[[user]]\nname = \"carol\"\nkeys = []\ngroups = [\"support\"]\n"
        + &policy_server(
            "web1",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        );
    let extra = format!("[ca]\ncert_authorities = [{}]\n", toml_str(&site_ca.public));
    let mut gh = Gatehouse::start(&dir, &extra, &policy);

    // Each case gets its own key and certificate.
    let attempt = |name: &str, principals: &str, validity: &str, options: &[&str]| {
        let key = keygen(dir.path(), name, KeyKind::Ed25519);
        let cert = sign(&site_ca, &key, principals, validity, options);
        let client = Client::with_options(
            &dir,
            &key,
            gh.port,
            &[&format!("CertificateFile {}", cert.display())],
        );
        client.ssh("carol+root@web1", &["id -un"])
    };

    let out = attempt("carol-ok", "carol", "-1m:+10m", &[]);
    out.assert_success("a valid certificate");
    assert_eq!(out.stdout_text(), "root\n");
    let ok = gh.wait_for_event("auth.success", Duration::from_secs(5), |e| {
        e["user"] == "carol"
    });
    assert_eq!(ok["detail"]["certificate"], "carol-laptop", "{ok:#}");
    // The algorithm the certificate's signature used (issue 17 item 4).
    assert_eq!(ok["detail"]["sig_alg"], "ssh-ed25519", "{ok:#}");
    assert!(
        ok["detail"]["ca"]
            .as_str()
            .is_some_and(|c| c == site_ca.fingerprint()),
        "{ok:#}"
    );

    // Refused, each audited with the certificate's reason.
    for (name, principals, validity, options, code) in [
        ("carol-dave", "dave", "-1m:+10m", &[][..], "CERT_PRINCIPAL"),
        (
            "carol-forced",
            "carol",
            "-1m:+10m",
            &["force-command=ls"][..],
            "CERT_FORCE_COMMAND",
        ),
        (
            "carol-elsewhere",
            "carol",
            "-1m:+10m",
            &["source-address=198.51.100.0/24"][..],
            "CERT_SOURCE",
        ),
    ] {
        let out = attempt(name, principals, validity, options);
        assert_eq!(out.code(), Some(255), "{name}: {out:?}");
        gh.wait_for_event("auth.failure", Duration::from_secs(5), |e| {
            e["user"] == "carol" && e["detail"]["code"] == code
        });
    }

    // Expired: refused by the SSH library before Gatehouse sees the
    // certificate (README); the client's fallback to the bare key is then
    // refused and audited as a key that is not listed.
    let before = gh.audit_events_of("auth.failure").len();
    let out = attempt("carol-old", "carol", "20200101:20200102", &[]);
    assert_eq!(out.code(), Some(255), "{out:?}");
    assert!(!out.stdout_text().contains("root"));
    assert!(
        wait_until(Duration::from_secs(5), || gh
            .audit_events_of("auth.failure")
            .len()
            > before),
        "the refused login is audited"
    );
    let successes = gh
        .audit_events_of("auth.success")
        .into_iter()
        .filter(|e| e["user"] == "carol")
        .count();
    assert_eq!(successes, 1);

    // Listed keys still work next to the CA, unlisted bare keys do not.
    let out = gh.client(&dir, &alice).ssh("alice+root@web1", &["id -un"]);
    out.assert_success("a listed key with staff CAs configured");
    let stranger = keygen(dir.path(), "stranger", KeyKind::Ed25519);
    let out = gh
        .client(&dir, &stranger)
        .ssh("carol+root@web1", &["id -un"]);
    assert_eq!(out.code(), Some(255), "{out:?}");
    gh.wait_for_event("auth.failure", Duration::from_secs(5), |e| {
        e["user"] == "carol" && e["detail"]["code"] == "KO_KEY_NOT_ALLOWED"
    });
    assert!(gh.stop());
}
