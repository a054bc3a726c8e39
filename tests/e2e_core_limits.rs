//! The bastion's lifecycle and limits end to end: policy hot reload
//! (valid and invalid), SIGTERM with a live session, `login_grace_time`,
//! `max_startups`, `idle_timeout`, and hostile bytes on raw TCP
//! connections. After each abuse the bastion must still serve a login.

mod common;
#[path = "support/pg.rs"]
mod pg;
#[path = "common/scenario.rs"]
mod scenario;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use scenario::*;

const WEB1: &str = "alice+root@web1";

// ------------------------------------------------------------- lifecycle --

fn policy_hot_reload(backend: Backend) {
    let w = setup(backend).start();
    let out = w.client.ssh("alice+root@web2", &["echo leaked"]);
    assert_eq!(out.code(), Some(1), "web2 does not exist yet: {out:?}");

    // A new file with a new server: new sessions reach it at once.
    let web2 = policy_server(
        "web2",
        &w.target,
        "ssh-forwarding",
        &["root"],
        &["group:support"],
    );
    w.gh.write_policy("web2.toml", &web2);
    let reloaded =
        w.gh.wait_for_event("policy.reloaded", Duration::from_secs(15), |e| {
            detail(e, "servers") == 2
        });
    assert!(!detail(&reloaded, "digest").is_null(), "{reloaded:#}");
    let out = w.client.ssh("alice+root@web2", &["echo reached-$((1+1))"]);
    out.assert_success("web2 after reload");
    assert_eq!(out.stdout_text(), "reached-2\n");

    // An invalid file: rejected whole, the previous policy keeps serving.
    w.gh.write_policy(
        "broken.toml",
        "[[server]]\nname = \"web3\"\nbogus_key = 1\n",
    );
    let rejected =
        w.gh.wait_for_event("policy.rejected", Duration::from_secs(15), |_| true);
    let problems = detail(&rejected, "problems").to_string();
    assert!(problems.contains("broken.toml"), "{rejected:#}");
    assert_eq!(
        detail(&rejected, "serving"),
        detail(&reloaded, "digest"),
        "the rejected event names the policy still serving"
    );
    w.client
        .ssh("alice+root@web2", &["true"])
        .assert_success("web2 while the new policy is rejected");
    w.client
        .ssh(WEB1, &["true"])
        .assert_success("web1 while the new policy is rejected");

    // Removing a server takes effect for new sessions too.
    let after = rejected["id"].as_i64().expect("event id");
    w.gh.remove_policy("broken.toml");
    w.gh.remove_policy("web2.toml");
    w.gh.wait_for_event("policy.reloaded", Duration::from_secs(15), |e| {
        e["id"].as_i64() > Some(after) && detail(e, "servers") == 1
    });
    let out = w.client.ssh("alice+root@web2", &["echo leaked"]);
    assert_eq!(out.code(), Some(1), "web2 removed: {out:?}");
    assert!(!out.stdout_text().contains("leaked"));
}

fn sigterm_ends_live_sessions_cleanly(backend: Backend) {
    let mut w = setup(backend).start();
    let out_file = w.dir.join("held.out");
    let mut held = Background::bash(&format!(
        "{} 'echo up; sleep 60' > {}",
        ssh_line(&w.client, WEB1),
        shell_quote(&out_file.display().to_string())
    ));
    let sid = w.session_id(|e| str_at(e, "server") == "web1");
    // The command runs on the target before the bastion is stopped.
    assert!(
        wait_until(Duration::from_secs(15), || std::fs::read_to_string(
            &out_file
        )
        .is_ok_and(|t| t == "up\n")),
        "the command never started"
    );
    assert!(w.gh.stop(), "SIGTERM must end the bastion with status 0");
    let (code, _, stderr) = held.wait(Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&stderr);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("gatehouse: ") && stderr.contains("shutting down"),
        "the client should be told why: {stderr:?}"
    );
    // The end of the session was written before the process exited.
    let end =
        w.gh.audit_events_of("session.end")
            .into_iter()
            .find(|e| str_at(e, "session") == sid)
            .unwrap_or_else(|| panic!("no session.end for {sid}"));
    assert!(
        detail(&end, "reason").to_string().contains("shutting down"),
        "{end:#}"
    );
    w.gh.cli(&["audit", "verify"])
        .assert_success("audit verify");
}

on_both_backends!(policy_hot_reload, sigterm_ends_live_sessions_cleanly);

// ---------------------------------------------------------------- limits --

/// Reads from `s` until EOF or an error; true if that happened within
/// `within` (the peer closed), false if the connection stayed open.
fn closed_by_peer(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn login_grace_time_drops_idle_connections() {
    let w = setup(Backend::Sqlite)
        .toml("[limits]\nlogin_grace_time = \"2s\"\n")
        .start();
    // Silent from the start.
    let mut silent = TcpStream::connect(w.gh.address()).unwrap();
    // Sends its banner, then nothing.
    let mut banner = TcpStream::connect(w.gh.address()).unwrap();
    banner.write_all(b"SSH-2.0-OpenSSH_9.2p1 idle\r\n").unwrap();
    assert!(
        closed_by_peer(&mut silent, Duration::from_secs(20)),
        "a silent connection outlived login_grace_time"
    );
    assert!(
        closed_by_peer(&mut banner, Duration::from_secs(20)),
        "a connection idle after its banner outlived login_grace_time"
    );
    // Through the key exchange, then no authentication.
    let port = w.gh.port;
    let dropped = runtime().block_on(async move {
        use russh::client;
        let config = std::sync::Arc::new(client::Config::default());
        let h = client::connect(config, ("127.0.0.1", port), TrustAnyHostKey)
            .await
            .expect("key exchange");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !h.is_closed() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        h.is_closed()
    });
    assert!(
        dropped,
        "an unauthenticated session outlived login_grace_time"
    );
    w.client
        .ssh(WEB1, &["true"])
        .assert_success("login after grace-time drops");
}

#[test]
fn max_startups_flood_does_not_lock_staff_out() {
    let mut w = setup(Backend::Sqlite)
        .toml("[limits]\nmax_startups = 5\n")
        .start();
    let idle: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(w.gh.address()).unwrap())
        .collect();
    // Unauthenticated connections older than a second may be evicted for
    // a newcomer (README, [limits] max_startups).
    std::thread::sleep(Duration::from_millis(1500));
    let out = w.client.ssh(WEB1, &["echo through-$((3*3))"]);
    out.assert_success("ssh during a flood of idle connections");
    assert_eq!(out.stdout_text(), "through-9\n");
    assert!(w.gh.is_running());
    // The flood was noticed.
    w.gh.wait_for_event("connection.refused", Duration::from_secs(10), |_| true);
    // Of the 50, at most max_startups are still held open by the server.
    let mut open = 0;
    for mut s in idle {
        if !closed_by_peer(&mut s, Duration::from_millis(300)) {
            open += 1;
        }
    }
    assert!(open <= 5, "{open} unauthenticated connections kept");
}

/// Unauthenticated connections that send a banner and then stall the key
/// exchange are what a real attacker would hold open: they must neither
/// outlive login_grace_time nor keep staff out once max_startups is reached.
#[test]
fn max_startups_flood_of_stalled_handshakes() {
    let mut w = setup(Backend::Sqlite)
        .toml("[limits]\nmax_startups = 5\nlogin_grace_time = \"60s\"\n")
        .start();
    let stalled: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(w.gh.address()).unwrap();
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 stall\r\n");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let out = w.client.ssh(WEB1, &["echo through-$((3*3))"]);
    out.assert_success("ssh during a flood of stalled handshakes");
    assert_eq!(out.stdout_text(), "through-9\n");
    assert!(w.gh.is_running());
    drop(stalled);
}

#[test]
fn idle_timeout_ends_an_idle_shell() {
    let w = setup(Backend::Sqlite)
        .toml("[limits]\nidle_timeout = \"3s\"\n")
        .start();
    let t = w.client.tmux(&w.dir, WEB1, &[]);
    t.send_line("echo alive-$((4+4))");
    t.wait_for("alive-8", Duration::from_secs(30));
    // Then nothing: the bastion ends the session and says why.
    let code = t.wait_exit(Duration::from_secs(30));
    assert_ne!(code, 0);
    let pane = t.capture();
    assert!(
        pane.contains("idle timeout"),
        "no message on the client:\n{pane}"
    );
    let end =
        w.gh.wait_for_event("session.end", Duration::from_secs(10), |_| true);
    assert!(
        detail(&end, "reason").to_string().contains("idle"),
        "{end:#}"
    );
}

#[test]
fn hostile_bytes_do_not_hurt_the_bastion() {
    let mut w = setup(Backend::Sqlite).start();
    let addr = w.gh.address();
    let attacks: Vec<(&str, Vec<u8>)> = vec![
        ("garbage instead of a banner", random_bytes(1 << 20)),
        ("a banner line that never ends", {
            let mut v = b"SSH-2.0-".to_vec();
            v.extend(std::iter::repeat_n(b'A', 300_000));
            v
        }),
        ("a banner then garbage packets", {
            let mut v = b"SSH-2.0-OpenSSH_9.2p1 evil\r\n".to_vec();
            v.extend(random_bytes(256 << 10));
            v
        }),
        ("a banner then a huge packet length", {
            let mut v = b"SSH-2.0-OpenSSH_9.2p1 evil\r\n".to_vec();
            v.extend([0xff, 0xff, 0xff, 0xf0, 0x04]);
            v.extend(random_bytes(64 << 10));
            v
        }),
        ("a banner then a zero-length packet", {
            let mut v = b"SSH-2.0-OpenSSH_9.2p1 evil\r\n".to_vec();
            v.extend([0, 0, 0, 0, 0, 0, 0, 0]);
            v
        }),
        ("control characters and NULs", {
            let mut v = b"SSH-2.0-\x00\x1b[2J\x07\r\n".to_vec();
            v.extend([0u8; 70_000]);
            v
        }),
    ];
    for (what, bytes) in &attacks {
        // Each several times, some at once.
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let addr = addr.clone();
                let bytes = bytes.clone();
                std::thread::spawn(move || {
                    let Ok(mut s) = TcpStream::connect(&addr) else {
                        return;
                    };
                    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
                    // The server may hang up mid-write: that is its right.
                    let _ = s.write_all(&bytes);
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    let _ = closed_by_peer(&mut s, Duration::from_secs(10));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(w.gh.is_running(), "the bastion died on {what}");
    }
    assert!(!w.gh.log().contains("panicked"), "{}", w.gh.log());
    let out = w.client.ssh(WEB1, &["echo still-$((5*5))"]);
    out.assert_success("login after hostile bytes");
    assert_eq!(out.stdout_text(), "still-25\n");
}
