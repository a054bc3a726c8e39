//! Issue 17 item 2: the console and admin ports cannot starve SSH. A real
//! `serve` runs under a low open-file limit (256, soft and hard, set with
//! `prlimit` before it starts), its console port is flooded with silent
//! pre-handshake sockets from several addresses and with TLS connections
//! that never finish their headers, and then a stock OpenSSH `ssh` login,
//! `/healthz` and a normal console request all still succeed. And the
//! live view's server-sent event streams are capped per staff member and in
//! total, giving their places back when they close.

mod common;
#[path = "support/http.rs"]
mod http;
#[path = "support/pg.rs"]
mod pg;
#[path = "common/scenario.rs"]
mod scenario;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use scenario::*;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// The standard world (target, alice, web1 recorded), with `serve` started
/// under `prlimit --nofile=LIMIT:LIMIT` when `limit` is given.
fn world(limit: Option<u32>, toml: &str, policy_extra: &str) -> World {
    let dir = TestDir::new();
    let db = Db::new(Backend::Sqlite);
    let identity = Gatehouse::prepare_identity(&dir);
    let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let policy = policy_user("alice", &alice, &["support"])
        + &policy_server(
            "web1",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
        + "record = \"always\"\n"
        + policy_extra;
    let mut opts = GatehouseOpts::new()
        .extra_toml(toml)
        .policy("policy.toml", &policy);
    if let Some(n) = limit {
        let wrapper = dir.write(
            "gatehouse-limited.sh",
            format!("#!/bin/sh\nexec /usr/bin/prlimit --nofile={n}:{n} -- {BIN} \"$@\"\n"),
        );
        set_mode(&wrapper, 0o755);
        opts = opts.binary(&wrapper);
    }
    let gh = Gatehouse::start_with(&dir, opts);
    let client = gh.client(&dir, &alice);
    World {
        gh,
        target,
        client,
        alice,
        db,
        dir,
    }
}

/// `curl -sk` with extra arguments: (status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-sk", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}"])
        .args(args);
    let out = run_timeout(&mut c, None, Duration::from_secs(90));
    let text = out.stdout_text();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// TLS to the console, trusting its own certificate (read from disk).
fn tls_connector(w: &World) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(w.gh.home.join("data/web_cert.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[test]
fn a_flooded_console_port_does_not_starve_ssh_healthz_or_the_console() {
    let (web, admin) = (free_port(), free_port());
    let w = world(
        Some(256),
        &format!(
            "[web]\nlisten = \"127.0.0.1:{web}\"\nheader_timeout = \"10m\"\nidle_timeout = \"10m\"\n\
             handshake_timeout = \"10m\"\n[metrics]\nlisten = \"127.0.0.1:{admin}\"\n"
        ),
        "",
    );
    assert!(
        wait_until(Duration::from_secs(20), || is_listening(web)),
        "console not listening; log:\n{}",
        w.gh.log()
    );
    let pid = w.gh.pid().expect("serve's pid");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.split_whitespace().filter(|w| *w == "256").count() == 2,
        "serve runs with 256 descriptors at most: {line}"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let connector = tls_connector(&w);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{web}").parse().unwrap();
    // The flood, held open for the rest of the test: 400 silent sockets
    // from four addresses (never a TLS byte), then 60 TLS connections from
    // two more that send half a request header and stop. The timeouts are
    // set long above: only the caps can keep the console and SSH going.
    let (silent, slow) = rt.block_on(async {
        let mut silent = Vec::new();
        for src in 2u8..=5 {
            for _ in 0..100 {
                let s = tokio::net::TcpSocket::new_v4().unwrap();
                s.bind(format!("127.0.0.{src}:0").parse().unwrap()).unwrap();
                if let Ok(c) = s.connect(addr).await {
                    silent.push(c);
                }
            }
        }
        let mut slow = Vec::new();
        for src in 6u8..=7 {
            for _ in 0..30 {
                let s = tokio::net::TcpSocket::new_v4().unwrap();
                s.bind(format!("127.0.0.{src}:0").parse().unwrap()).unwrap();
                let Ok(tcp) = s.connect(addr).await else {
                    continue;
                };
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                // A connection evicted during its handshake is fine too.
                if let Ok(Ok(mut tls)) =
                    tokio::time::timeout(Duration::from_secs(30), connector.connect(name, tcp))
                        .await
                {
                    use tokio::io::AsyncWriteExt;
                    let _ = tls
                        .write_all(b"GET /sessions HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                        .await;
                    let _ = tls.flush().await;
                    slow.push(tls);
                }
            }
        }
        (silent, slow)
    });
    assert_eq!(silent.len(), 400, "the silent sockets connected");
    eprintln!(
        "flood: {} silent sockets, {} slow-header TLS connections",
        silent.len(),
        slow.len()
    );

    // A staff member still logs in over SSH...
    let out = w
        .client
        .ssh("alice+root@web1", &["echo", "FLOODED-BUT-FINE"]);
    assert!(
        out.code() == Some(0) && out.stdout_text().contains("FLOODED-BUT-FINE"),
        "ssh during the flood: {out:?}\nlog:\n{}",
        w.gh.log()
    );
    // ... monitoring still answers ...
    let (status, body) = http::get(&format!("127.0.0.1:{admin}"), "/healthz");
    assert_eq!(
        (status, body.trim()),
        (200, "ok"),
        "healthz during the flood"
    );
    // ... and so does the console, for a request of its own.
    let (status, body) = curl(&[&format!("https://127.0.0.1:{web}/login/{}", "A".repeat(43))]);
    assert_eq!(status, 200, "the console during the flood: {body}");
    assert!(body.contains("Sign in"), "{body}");
    // The flood was cut down by eviction, as the metrics say.
    let (_, text) = http::get(&format!("127.0.0.1:{admin}"), "/metrics");
    let evicted = http::metric(
        &text,
        "gatehouse_web_connections_total",
        &[("listener", "web"), ("outcome", "evicted")],
    );
    assert!(evicted >= 300.0, "evictions counted: {evicted}\n{text}");
    drop((silent, slow));
}

#[test]
fn live_views_are_capped_per_user_and_in_total() {
    let (web, admin) = (free_port(), free_port());
    let keys = TestDir::new();
    let carol = keygen(keys.path(), "carol", KeyKind::Ed25519);
    let w = world(
        None,
        &format!(
            "[web]\nlisten = \"127.0.0.1:{web}\"\nmax_live_streams = 3\nmax_live_streams_per_user = 2\n\
             [metrics]\nlisten = \"127.0.0.1:{admin}\"\n"
        ),
        &(policy_user("carol", &carol, &["support"]) + "roles = [\"auditor\"]\n"),
    );
    assert!(wait_until(Duration::from_secs(20), || is_listening(web)));
    let base = format!("https://127.0.0.1:{web}");
    // alice's live session.
    let mut live_cmd = w.client.ssh_command(
        &["-tt"],
        "alice+root@web1",
        &["echo LIVE-CAP-$((2*3)); sleep 600"],
    );
    live_cmd.stdin(std::process::Stdio::piped());
    let _live = ChildGuard::spawn("ssh", &mut live_cmd, None, None);
    let ev =
        w.gh.wait_for_event("session.start", Duration::from_secs(20), |e| {
            str_at(e, "user") == "alice" && str_at(e, "server") == "web1"
        });
    let id = str_at(&ev, "session").to_string();
    // Signed in with curl: the link's page, then its button's POST.
    let sign_in = |who: &str| {
        let out = w.gh.cli(&["web", "link", who]);
        out.assert_success("web link");
        let url = out.stdout_text().lines().next().unwrap_or("").to_string();
        let jar = w.dir.join(format!("{who}.jar"));
        let jar_s = jar.display().to_string();
        let (status, _) = curl(&["-c", &jar_s, &url]);
        assert_eq!(status, 200, "the link's page");
        let (status, body) = curl(&["-c", &jar_s, "-X", "POST", &url]);
        assert_eq!(status, 200, "sign-in: {body}");
        jar_s
    };
    let alice_jar = sign_in("alice");
    let carol_jar = sign_in("carol");
    let events = format!("{base}/sessions/{id}/events");
    let streams = || {
        let (_, text) = http::get(&format!("127.0.0.1:{admin}"), "/metrics");
        http::metric(&text, "gatehouse_web_live_streams", &[])
    };
    let stream = |jar: &str, n: usize| {
        let mut c = Command::new("curl");
        c.args(["-skN", "-b", jar, &events]);
        ChildGuard::spawn(
            "curl",
            &mut c,
            Some(&w.dir.join(format!("stream{n}.out"))),
            None,
        )
    };
    let a1 = stream(&alice_jar, 1);
    let _a2 = stream(&alice_jar, 2);
    assert!(
        wait_until(Duration::from_secs(30), || streams() == 2.0),
        "two streams open: {}",
        streams()
    );
    // A third of alice's is over her cap of 2.
    let (status, body) = curl(&["-b", &alice_jar, &events]);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("too many live views"), "{body}");
    // carol's first fits (3 in all); her second is over the total.
    let _c1 = stream(&carol_jar, 3);
    assert!(
        wait_until(Duration::from_secs(30), || streams() == 3.0),
        "three streams open: {}",
        streams()
    );
    let (status, body) = curl(&["-b", &carol_jar, &events]);
    assert_eq!(status, 429, "{body}");
    // The streams carry the session (each found and follows its cast).
    assert!(
        wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(w.dir.join("stream1.out"))
                .unwrap_or_default()
                .contains("LIVE-CAP-6")
        }),
        "the stream shows the session's output"
    );
    // A closed stream gives its place back.
    drop(a1);
    assert!(
        wait_until(Duration::from_secs(30), || streams() == 2.0),
        "the closed stream was counted out: {}",
        streams()
    );
    let _a3 = stream(&alice_jar, 4);
    assert!(
        wait_until(Duration::from_secs(30), || streams() == 3.0),
        "alice opens one again: {}",
        streams()
    );
}
