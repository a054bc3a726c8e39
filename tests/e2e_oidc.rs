//! Single sign-on to the review console (issue 20 item 7, contract section
//! 13) end to end: a real `serve` with `[web.oidc]`, a real OpenID provider
//! (the npm package `oidc-provider`, tests/web/oidc-provider.mjs) over
//! HTTPS with a certificate from a CA this test makes (`ca_file`), and
//! headless Chromium (tests/web/oidc.mjs) through `/login`: alice signs in
//! and lands on the console with her roles; a replayed callback, an
//! unknown name (mallory), a tampered `state`, a token for another
//! audience and a staff member who needs a second factor without one are
//! refused; each is then found in the audit log with `detail.method =
//! "oidc"` and its reason. Also: `serve` refuses a client secret file
//! others can read.
//!
//! Needs `node`, `chromium` and `tests/web/node_modules` (scripts/setup);
//! `GATEHOUSE_SKIP_BROWSER=1` skips loudly where chromium cannot be had.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const CLIENT_ID: &str = "gatehouse-console";
const CLIENT_SECRET: &str = "test-client-secret-0123456789abcdef";

/// A test CA and a certificate for 127.0.0.1 signed by it: (CA PEM,
/// certificate PEM, key PEM).
fn test_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "gatehouse test IdP CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

fn write_0600(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn oidc_toml(issuer: &str, dir: &Path, web_port: u16) -> String {
    format!(
        "[web]\nlisten = \"127.0.0.1:{web_port}\"\n\
         [web.oidc]\nissuer = \"{issuer}\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret_file = \"{}\"\nca_file = \"{}\"\n",
        dir.join("oidc.secret").display(),
        dir.join("idp-ca.pem").display(),
    )
}

/// The provider, running until dropped.
struct Provider {
    child: std::process::Child,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_provider(dir: &Path, port: u16, redirect_uri: &str) -> Provider {
    let (ca, cert, key) = test_pki();
    std::fs::write(dir.join("idp-ca.pem"), ca).unwrap();
    std::fs::write(dir.join("idp-cert.pem"), cert).unwrap();
    write_0600(&dir.join("idp-key.pem"), &key);
    let cfg = serde_json::json!({
        "port": port,
        "cert": dir.join("idp-cert.pem"),
        "key": dir.join("idp-key.pem"),
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": redirect_uri,
        "accounts": ["alice", "mallory", "carol"],
    });
    let cfg_path = dir.join("idp.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let log = std::fs::File::create(dir.join("idp.log")).unwrap();
    let child = Command::new("node")
        .arg(web_dir().join("oidc-provider.mjs"))
        .arg(&cfg_path)
        .current_dir(web_dir())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("node");
    let provider = Provider { child };
    assert!(
        wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(dir.join("idp.log"))
                .unwrap_or_default()
                .contains("ready https://127.0.0.1:")
        }),
        "the provider did not start:\n{}",
        std::fs::read_to_string(dir.join("idp.log")).unwrap_or_default()
    );
    provider
}

fn refusals(gh: &Gatehouse) -> Vec<serde_json::Value> {
    gh.audit_events_of("web.login_refused")
        .into_iter()
        .filter(|e| e["detail"]["method"] == "oidc")
        .collect()
}

#[test]
fn single_sign_on_in_a_real_browser_against_a_real_provider() {
    if !browser_available("e2e_oidc", &["oidc-provider"]) {
        return;
    }
    let dir = TestDir::new();
    let (idp_port, web_port) = (free_port(), free_port());
    let issuer = format!("https://127.0.0.1:{idp_port}");
    let base = format!("https://127.0.0.1:{web_port}");
    let _provider = start_provider(dir.path(), idp_port, &format!("{base}/login/oidc/callback"));
    write_0600(&dir.join("oidc.secret"), &format!("{CLIENT_SECRET}\n"));
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let carol = keygen(dir.path(), "carol", KeyKind::Ed25519);
    let policy = policy_user("alice", &alice, &["support"])
        + "roles = [\"auditor\"]\n"
        + &policy_user("carol", &carol, &["support"])
        + "mfa = \"required\"\n";
    let gh = Gatehouse::start(&dir, &oidc_toml(&issuer, dir.path(), web_port), &policy);
    assert!(
        wait_until(Duration::from_secs(20), || is_listening(web_port)),
        "console not listening; log:\n{}",
        gh.log()
    );

    let shots = dir.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let config = serde_json::json!({
        "chromium": CHROMIUM,
        "base": base,
        "issuer": issuer,
        "shots": shots,
    });
    let config_path = dir.write("oidc-e2e.json", config.to_string());
    let mut node = Command::new("node");
    node.arg(web_dir().join("oidc.mjs"))
        .arg(&config_path)
        .current_dir(web_dir());
    let out = run_timeout(&mut node, None, Duration::from_secs(300));
    eprintln!("{}", out.stdout_text());
    assert_eq!(
        out.code(),
        Some(0),
        "browser script failed:\n{}\n{}\nbastion log:\n{}\nprovider log:\n{}",
        out.stdout_text(),
        out.stderr_text(),
        gh.log(),
        std::fs::read_to_string(dir.join("idp.log")).unwrap_or_default()
    );

    // Who got in, and how.
    let logins: Vec<serde_json::Value> = gh
        .audit_events_of("web.login")
        .into_iter()
        .filter(|e| e["detail"]["method"] == "oidc")
        .collect();
    let users: Vec<&str> = logins.iter().map(|e| str_of(e, "user")).collect();
    assert_eq!(users, ["alice", "carol"], "{logins:?}");
    // Every refusal, audited with its reason (summaries are written within
    // a few seconds).
    let want = [
        ("replayed_code", None),
        ("unknown_user", Some("mallory")),
        ("bad_state", None),
        ("wrong_audience", None),
        ("needs_factor", Some("carol")),
    ];
    let found = wait_until(Duration::from_secs(30), || {
        let got = refusals(&gh);
        want.iter().all(|(reason, user)| {
            got.iter().any(|e| {
                e["detail"]["reason"] == *reason && user.is_none_or(|u| str_of(e, "user") == u)
            })
        })
    });
    assert!(found, "refusals audited: {:#?}", refusals(&gh));
    // The replay was tried twice (same browser, another browser).
    let replays: u64 = refusals(&gh)
        .iter()
        .filter(|e| e["detail"]["reason"] == "replayed_code")
        .filter_map(|e| e["detail"]["count"].as_u64())
        .sum();
    assert_eq!(replays, 2, "{:#?}", refusals(&gh));
    assert!(
        gh.cli(&["audit", "verify"]).code() == Some(0),
        "the chain holds"
    );
}

fn str_of<'a>(e: &'a serde_json::Value, key: &str) -> &'a str {
    e[key].as_str().unwrap_or("")
}

#[test]
fn serve_refuses_a_client_secret_others_can_read() {
    let dir = TestDir::new();
    let web_port = free_port();
    std::fs::write(dir.join("oidc.secret"), "s3cret\n").unwrap();
    std::fs::write(dir.join("idp-ca.pem"), test_pki().0).unwrap();
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let gh = Gatehouse::configure(
        &dir,
        GatehouseOpts::new()
            .extra_toml(&oidc_toml("https://127.0.0.1:9", dir.path(), web_port))
            .policy("policy.toml", &policy_user("alice", &alice, &["support"])),
    );
    let out = run_timeout(
        &mut gh.cli_command(&["serve"]),
        None,
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), Some(1), "{out:?}");
    let err = out.stderr_text();
    assert!(
        err.contains("client_secret_file") && err.contains("must be 0600"),
        "a clear message: {err}"
    );
    // With 0600 and the provider down, the console starts all the same:
    // discovery waits for the first sign-in.
    write_0600(&dir.join("oidc.secret"), "s3cret\n");
    let mut gh = gh;
    gh.serve();
    assert!(
        wait_until(Duration::from_secs(20), || is_listening(web_port)),
        "console not listening with the provider down; log:\n{}",
        gh.log()
    );
}
