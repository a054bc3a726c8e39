//! The algorithms the bastion offers, graded by ssh-audit (PyPI, installed
//! by scripts/setup): on its listener (server audit) and as a client to a
//! target (ssh-audit's client audit, `-c`, stands in for the target). No
//! algorithm may be graded "fail"; the only warnings left are the classical
//! curve25519 key exchanges, which the stock OpenSSH 9.2 client and server
//! here need (README lists them), and the stock client still connects with
//! its defaults.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Warnings that stay on purpose (see README, "SSH algorithms").
const ACCEPTED_WARNINGS: &[&str] = &["curve25519-sha256", "curve25519-sha256@libssh.org"];

fn ssh_audit() -> Command {
    let probe = Command::new("ssh-audit").arg("-h").output();
    assert!(
        probe.is_ok(),
        "ssh-audit is not installed: run scripts/setup (pip install ssh-audit)"
    );
    Command::new("ssh-audit")
}

/// Algorithms graded fail and warn in an ssh-audit JSON report, after
/// checking that it lists no CVE and graded every section.
fn grades(json: &str) -> (Vec<String>, BTreeSet<String>, serde_json::Value) {
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("ssh-audit JSON: {e}\n{json}"));
    assert_eq!(v["cves"], serde_json::json!([]), "{v:#}");
    let mut fails = Vec::new();
    let mut warns = BTreeSet::new();
    for section in ["kex", "key", "enc", "mac"] {
        let list = v[section]
            .as_array()
            .unwrap_or_else(|| panic!("no {section} in {v:#}"));
        assert!(!list.is_empty(), "{section} empty: {v:#}");
        for a in list {
            let name = a["algorithm"].as_str().unwrap_or("?").to_string();
            if a["notes"].get("fail").is_some() {
                fails.push(format!("{section} {name}: {}", a["notes"]["fail"]));
            }
            if a["notes"].get("warn").is_some() {
                warns.insert(name);
            }
        }
    }
    (fails, warns, v)
}

fn names(v: &serde_json::Value, section: &str) -> Vec<String> {
    v[section]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|a| a["algorithm"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_only_accepted_warnings(warns: &BTreeSet<String>, v: &serde_json::Value) {
    let accepted: BTreeSet<String> = ACCEPTED_WARNINGS.iter().map(|s| s.to_string()).collect();
    assert!(
        warns.is_subset(&accepted),
        "unexpected warnings {:?}: {v:#}",
        warns.difference(&accepted).collect::<Vec<_>>()
    );
}

#[test]
fn the_listener_has_no_failing_algorithm() {
    let dir = TestDir::new();
    let mut gh = Gatehouse::start(&dir, "", "");
    let out = run_timeout(
        ssh_audit()
            .args(["-j", "-p", &gh.port.to_string()])
            .arg("127.0.0.1"),
        None,
        Duration::from_secs(60),
    );
    // 0 good, 2 warnings, 3 failures.
    assert_ne!(out.code(), Some(3), "{}", out.stdout_text());
    let (fails, warns, v) = grades(&out.stdout_text());
    assert!(fails.is_empty(), "{fails:#?}");
    assert_only_accepted_warnings(&warns, &v);
    let kex = names(&v, "kex");
    assert_eq!(
        kex.first().map(String::as_str),
        Some("mlkem768x25519-sha256")
    );
    assert!(
        kex.iter().any(|k| k == "kex-strict-s-v00@openssh.com"),
        "{kex:?}"
    );
    assert_eq!(names(&v, "key"), vec!["ssh-ed25519".to_string()]);
    assert!(
        names(&v, "mac")
            .iter()
            .all(|m| m.ends_with("-etm@openssh.com"))
    );
    assert!(gh.stop());
}

#[test]
fn the_bastion_as_a_client_has_no_failing_algorithm() {
    let dir = TestDir::new();
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let port = free_port();
    let report = dir.join("client-audit.json");
    let mut audit = ChildGuard::spawn(
        "ssh-audit -c",
        ssh_audit()
            .args(["-c", "-j", "-p", &port.to_string()])
            .arg("127.0.0.1"),
        Some(&report),
        Some(&dir.join("client-audit.err")),
    );
    assert!(
        wait_until(Duration::from_secs(20), || is_listening(port)),
        "ssh-audit -c did not listen on {port}"
    );
    let policy = policy_user("alice", &alice, &["support"])
        + &format!(
            "\n[[server]]\nname = \"audited\"\naddress = \"127.0.0.1:{port}\"\n\
             host_key = \"SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM\"\n\
             mode = \"ssh-forwarding\"\naccounts = [\"root\"]\nallow = [\"group:support\"]\n"
        );
    let mut gh = Gatehouse::start(&dir, "", &policy);
    // ssh-audit only reads the bastion's key exchange offer and hangs up:
    // the session fails, which is all this needs.
    let _ = gh.client(&dir, &alice).ssh("alice+root@audited", &["true"]);
    let status = audit.wait_timeout(Duration::from_secs(30));
    assert!(status.is_some(), "ssh-audit -c did not finish");
    let json = std::fs::read_to_string(&report).unwrap_or_default();
    let (fails, warns, v) = grades(&json);
    assert!(fails.is_empty(), "{fails:#?}");
    assert_only_accepted_warnings(&warns, &v);
    assert_eq!(
        names(&v, "key"),
        vec!["ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"],
        "no SHA-1 or NIST-curve host key types offered to targets"
    );
    assert!(
        names(&v, "kex")
            .iter()
            .any(|k| k == "kex-strict-c-v00@openssh.com")
    );
    assert!(gh.stop());
}

#[test]
fn the_stock_openssh_client_negotiates_with_its_defaults() {
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let policy = support_policy(&alice, "web1", &target);
    let mut gh = Gatehouse::start(&dir, "", &policy);
    let out = gh
        .client(&dir, &alice)
        .ssh_opts(&["-v"], "alice+root@web1", &["echo through"]);
    out.assert_success("ssh with OpenSSH's default algorithms");
    assert_eq!(out.stdout_text(), "through\n");
    let log = out.stderr_text();
    assert!(
        log.contains("kex: algorithm: curve25519-sha256"),
        "OpenSSH 9.2 has no ML-KEM: curve25519 expected\n{log}"
    );
    // The bastion to the target (OpenSSH 9.2 sshd) agreed too.
    assert!(
        target.log().contains("Accepted publickey for root"),
        "{}",
        target.log()
    );
    assert!(gh.stop());
}

#[test]
fn config_show_prints_the_effective_settings_and_bad_names_are_refused() {
    let dir = TestDir::new();
    let gh = Gatehouse::configure(
        &dir,
        GatehouseOpts::new().extra_toml("[ssh]\ntarget_kex = [\"curve25519-sha256\"]\n"),
    );
    let out = gh.cli(&["config", "show"]);
    out.assert_success("config show");
    let shown: toml::Table = toml::from_str(&out.stdout_text()).unwrap();
    let list = |t: &str, k: &str| -> Vec<String> {
        shown[t][k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(list("ssh", "kex")[0], "mlkem768x25519-sha256");
    assert_eq!(list("ssh", "target_kex"), vec!["curve25519-sha256"]);
    assert_eq!(shown["limits"]["max_startups"].as_integer(), Some(100));
    assert_eq!(
        shown["server"]["listen"].as_str(),
        Some(gh.address().as_str())
    );

    let bad = Gatehouse::configure(
        &dir,
        GatehouseOpts::new()
            .name("bad")
            .extra_toml("[ssh]\nmacs = [\"hmac-md5\"]\n"),
    );
    let out = bad.cli(&["serve"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr_text()
            .contains("ssh.macs: unsupported algorithm \"hmac-md5\""),
        "{}",
        out.stderr_text()
    );
}

/// A target with an Ed25519 and an RSA host key, pinned by its RSA key's
/// fingerprint: the bastion offers Ed25519 first, sees a key that does not
/// match, and tries again without that type (a fingerprint does not say
/// its key type). A pin matching neither key is still a mismatch.
#[test]
fn the_pinned_host_key_type_is_learned() {
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    let rsa = keygen_at(&dir.join("target_rsa_host_key"), "target-rsa", KeyKind::Rsa);
    let target = Sshd::start(
        &dir,
        SshdOpts::new()
            .authorize("root", &identity.public)
            .extra(&format!("HostKey {}", rsa.private.display())),
    );
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let server = |name: &str, pin: &str| {
        policy_server(
            name,
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
        .replace(&target.host_key_fingerprint, pin)
    };
    let policy = policy_user("alice", &alice, &["support"])
        + &server("by-rsa", &rsa.fingerprint())
        + &server(
            "by-nothing",
            "SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM",
        );
    let mut gh = Gatehouse::start(&dir, "", &policy);
    let client = gh.client(&dir, &alice);
    let out = client.ssh("alice+root@by-rsa", &["echo pinned-rsa"]);
    out.assert_success("a target pinned by its RSA host key");
    assert_eq!(out.stdout_text(), "pinned-rsa\n");
    assert!(gh.audit_events_of("hostkey.mismatch").is_empty());

    let out = client.ssh("alice+root@by-nothing", &["echo leaked"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(!out.stdout_text().contains("leaked"));
    let mismatches = gh.audit_events_of("hostkey.mismatch");
    assert_eq!(mismatches.len(), 1, "{mismatches:#?}");
    assert!(gh.stop());
}
