//! The transport under a hostile or unusual peer, end to end: a client
//! that ignores the channel window (the connection ends, audited, and the
//! bastion's memory stays bounded), a client opening channels without end
//! (refused past `max_channels_per_connection`), and a ControlMaster
//! connection whose finished channels' recordings are sealed while the
//! master stays open. The misbehaving clients are `tests/support/badclient.py`
//! (paramiko), since stock OpenSSH always plays by the rules.

mod common;
#[path = "support/pg.rs"]
mod pg;
#[path = "common/scenario.rs"]
mod scenario;

use std::process::Command;
use std::time::Duration;

use common::*;
use scenario::*;

const WEB1: &str = "alice+root@web1";

/// `badclient.py` as alice against the bastion of `w`.
fn badclient(w: &World, login: &str, mode: &[&str]) -> Command {
    badclient_with(w, &[], login, mode)
}

/// The same with the script's options (`--ready FILE`, `--source ADDR`).
fn badclient_with(w: &World, opts: &[&str], login: &str, mode: &[&str]) -> Command {
    let mut c = Command::new("/usr/bin/python3");
    c.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/badclient.py"
    ))
    .args(opts)
    .arg("127.0.0.1")
    .arg(w.gh.port.to_string())
    .arg(login)
    .arg(&w.alice.private)
    .args(mode);
    c
}

/// The JSON object the script printed last.
fn report(stdout: &[u8], stderr: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().last().unwrap_or_else(|| {
        panic!(
            "badclient printed nothing; stderr:\n{}",
            String::from_utf8_lossy(stderr)
        )
    });
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn a_client_ignoring_the_window_is_cut_and_memory_stays_bounded() {
    let w = setup(Backend::Sqlite).start();
    let pid = w.gh.pid().expect("bastion pid");
    // A warm-up login, so the baseline includes what any session costs.
    w.client.ssh(WEB1, &["true"]).assert_success("warm-up");
    let before = rss_bytes(pid).expect("bastion RSS");
    // The target never reads its stdin: everything sent past the window
    // would pile up in the bastion.
    let total = 256 * 1024 * 1024;
    let mut bad = Background::spawn(badclient(
        &w,
        WEB1,
        &["overrun", &total.to_string(), "sleep 600"],
    ));
    let mut peak = before;
    let (code, out, err) = bad.wait_with(Duration::from_secs(120), || {
        if let Some(r) = rss_bytes(pid) {
            peak = peak.max(r);
        }
    });
    assert_eq!(code, 0, "badclient: {}", String::from_utf8_lossy(&err));
    let r = report(&out, &err);
    assert_eq!(r["active"], false, "the bastion did not hang up: {r}");
    let sent = r["sent"].as_u64().unwrap_or(0);
    assert!(
        sent < total,
        "all {total} bytes went through before the hang-up: {r}"
    );
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 64 * 1024 * 1024,
        "RSS grew by {} MiB (from {} MiB)",
        growth >> 20,
        before >> 20
    );
    let v =
        w.gh.wait_for_event("protocol.violation", Duration::from_secs(15), |_| true);
    assert_eq!(str_at(&v, "user"), "alice", "{v:#}");
    assert_eq!(str_at(&v, "server"), "web1", "{v:#}");
    let reason = detail(&v, "reason").as_str().unwrap_or("");
    assert!(reason.contains("window"), "{v:#}");
    assert!(
        detail(&v, "sent").as_u64() > detail(&v, "window").as_u64(),
        "{v:#}"
    );
    let sid = str_at(&v, "session").to_string();
    let end =
        w.gh.wait_for_event("session.end", Duration::from_secs(15), |e| {
            str_at(e, "session") == sid
        });
    assert!(
        detail(&end, "reason")
            .as_str()
            .is_some_and(|r| r.contains("protocol violation")),
        "{end:#}"
    );
    // The bastion serves on, and a well-behaved upload still goes through.
    let data = random_bytes(3 * 1024 * 1024);
    let out = w.client.ssh_with_stdin(WEB1, &["wc -c"], &data);
    out.assert_success("upload after the violation");
    assert_eq!(out.stdout_text().trim(), data.len().to_string());
    w.gh.cli(&["audit", "verify"])
        .assert_success("audit verify");
}

#[test]
fn channels_past_the_limit_are_refused() {
    let w = setup(Backend::Sqlite)
        .toml("[limits]\nmax_channels_per_connection = 8\n")
        .start();
    let mut bad = Background::spawn(badclient(&w, WEB1, &["channels", "200"]));
    let (code, out, err) = bad.wait(Duration::from_secs(120));
    assert_eq!(code, 0, "badclient: {}", String::from_utf8_lossy(&err));
    let r = report(&out, &err);
    assert_eq!(r["opened"], 8, "{r}");
    let refused = r["refused"].as_array().expect("refusals");
    assert_eq!(refused.len(), 192, "{r}");
    // SSH_OPEN_RESOURCE_SHORTAGE
    assert!(refused.iter().all(|c| c == 4), "{r}");
    // Closing channels makes room again.
    assert_eq!(r["reopened"], 3, "{r}");
    let events = w.gh.audit_events_of("channel.refused");
    // The 1st, 10th and 100th refusal: noticed, without an audit flood.
    let counts: Vec<u64> = events
        .iter()
        .filter_map(|e| detail(e, "refused").as_u64())
        .collect();
    assert_eq!(counts, vec![1, 10, 100], "{events:#?}");
    assert_eq!(detail(&events[0], "limit"), 8);
    assert_eq!(str_at(&events[0], "user"), "alice");
    // Ordinary logins are not affected.
    w.client
        .ssh(WEB1, &["true"])
        .assert_success("login after the refusals");
}

/// An OpenSSH client multiplexing over one master connection.
fn mux_client(w: &World) -> Client {
    let cm = w.dir.join("cm-%C").display().to_string();
    Client::with_options(
        &w.dir,
        &w.alice,
        w.gh.port,
        &[
            "ControlMaster auto",
            &format!("ControlPath {cm}"),
            "ControlPersist 60",
        ],
    )
}

#[test]
fn a_multiplexed_channel_is_sealed_when_it_ends() {
    let w = setup(Backend::Sqlite).web1("record = \"always\"").start();
    let client = mux_client(&w);
    let out = client.ssh(WEB1, &["echo first-$((20+1))"]);
    assert_eq!(out.stdout_text(), "first-21\n", "{out:?}");
    let sid = w.session_id(|e| str_at(e, "server") == "web1");
    let out = client.ssh(WEB1, &["echo second-$((20+2))"]);
    assert_eq!(out.stdout_text(), "second-22\n", "{out:?}");
    // The master is still up: one session, not ended.
    assert!(
        !w.gh
            .audit_events_of("session.end")
            .iter()
            .any(|e| str_at(e, "session") == sid),
        "the master connection ended"
    );
    // Both channels' recordings are finished, signed and verifiable now.
    for id in [sid.clone(), format!("{sid}-2")] {
        let sealed = wait_until(Duration::from_secs(15), || {
            w.gh.cli(&["recordings", "verify", &id]).status.success()
        });
        let out = w.gh.cli(&["recordings", "verify", &id]);
        assert!(
            sealed,
            "recording {id} is not sealed while the master is open: {}{}",
            out.stdout_text(),
            out.stderr_text()
        );
        let (cast, _) = w.recording_files(&id).expect("cast");
        let text = std::fs::read_to_string(&cast).unwrap();
        let want = if id == sid { "first-21" } else { "second-22" };
        assert!(text.contains(want), "{id}: {text}");
    }
    let out = run(client
        .command("ssh")
        .args(["-O", "exit"])
        .arg(client.destination(WEB1)));
    assert!(out.status.success(), "{}", out.stderr_text());
    w.gh.wait_for_event("session.end", Duration::from_secs(15), |e| {
        str_at(e, "session") == sid
    });
}

/// A raw TCP connection to the bastion from `source` (any 127.0.0.0/8
/// address is this machine), sending `first` bytes, held open.
fn connect_from(source: &str, port: u16, first: &[u8]) -> Option<std::net::TcpStream> {
    let rt = runtime();
    let stream = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().ok()?;
        sock.bind(format!("{source}:0").parse().ok()?).ok()?;
        let s = sock
            .connect(format!("127.0.0.1:{port}").parse().ok()?)
            .await
            .ok()?;
        s.into_std().ok()
    })?;
    stream.set_nonblocking(false).ok()?;
    use std::io::Write;
    let _ = (&stream).write_all(first);
    Some(stream)
}

/// The `connection.refused` summaries matching `reason` from `source`,
/// their counts added up.
fn refused_count(gh: &Gatehouse, source: &str, reason: &str) -> u64 {
    gh.audit_events_of("connection.refused")
        .iter()
        .filter(|e| str_at(e, "source") == source && detail(e, "reason") == reason)
        .filter_map(|e| detail(e, "count").as_u64())
        .sum()
}

#[test]
fn a_flood_from_one_source_does_not_evict_a_slow_login_from_another() {
    let w = setup(Backend::Sqlite)
        .toml("[limits]\nmax_startups = 8\nlogin_grace_time = \"60s\"\n")
        .start();
    // A real client from 127.0.0.1: banner and key exchange, then 3 s
    // before it authenticates (a passphrase, a key touch).
    let ready = w.dir.join("slow.ready");
    let ready_arg = ready.display().to_string();
    let mut slow = Background::spawn(badclient_with(
        &w,
        &["--ready", &ready_arg],
        WEB1,
        &["slow-auth", "3", "echo slow-$((2*21))"],
    ));
    assert!(
        wait_until(Duration::from_secs(20), || ready.exists()),
        "the slow client never completed its key exchange"
    );
    // Meanwhile a flood from 127.0.0.2 keeps max_startups full: silent
    // connections and connections stalling after their banner.
    let mut flood = Vec::new();
    let mut done = None;
    for i in 0..400 {
        let first: &[u8] = if i % 2 == 0 {
            b""
        } else {
            b"SSH-2.0-flood\r\n"
        };
        if let Some(s) = connect_from("127.0.0.2", w.gh.port, first) {
            flood.push(s);
        }
        std::thread::sleep(Duration::from_millis(20));
        if let Some(code) = slow.try_wait() {
            done = Some(code);
            break;
        }
    }
    assert!(
        done.is_some(),
        "the slow login did not finish during the flood"
    );
    let (code, out, err) = slow.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "slow login: {}", String::from_utf8_lossy(&err));
    let r = report(&out, &err);
    assert_eq!(r["stdout"], "slow-42\n", "{r}");
    assert_eq!(r["status"], 0, "{r}");
    // The flood evicted its own connections, audited as counts.
    assert!(
        wait_until(Duration::from_secs(20), || {
            refused_count(&w.gh, "127.0.0.2", "evicted (max_startups)") > 0
        }),
        "{:#?}",
        w.gh.audit_events_of("connection.refused")
    );
    assert_eq!(
        refused_count(&w.gh, "127.0.0.1", "evicted (max_startups)"),
        0,
        "{:#?}",
        w.gh.audit_events_of("connection.refused")
    );
    drop(flood);
    w.client
        .ssh(WEB1, &["true"])
        .assert_success("login after the flood");
}

#[test]
fn malformed_connections_are_audited_as_counts() {
    let w = setup(Backend::Sqlite).start();
    // Not SSH: a long line without a newline is not a banner.
    let junk = vec![b'A'; 600];
    let conns: Vec<_> = (0..20)
        .filter_map(|_| connect_from("127.0.0.3", w.gh.port, &junk))
        .collect();
    assert_eq!(conns.len(), 20);
    assert!(
        wait_until(Duration::from_secs(30), || {
            refused_count(&w.gh, "127.0.0.3", "malformed") == 20
        }),
        "{:#?}",
        w.gh.audit_events_of("connection.refused")
    );
    let events: Vec<_> =
        w.gh.audit_events_of("connection.refused")
            .into_iter()
            .filter(|e| str_at(e, "source") == "127.0.0.3")
            .collect();
    // Summaries, not one event per connection.
    assert!(events.len() <= 3, "{events:#?}");
    assert!(!detail(&events[0], "error").is_null(), "{events:#?}");
    drop(conns);
    w.client
        .ssh(WEB1, &["true"])
        .assert_success("login after the junk");
}

#[test]
fn a_crashed_bastion_leaves_no_ghost_session() {
    let mut w = setup(Backend::Sqlite).start();
    let mut held = Background::spawn(w.client.ssh_command(&[], WEB1, &["echo up; sleep 60"]));
    let sid = w.session_id(|e| str_at(e, "server") == "web1");
    let listed = |gh: &Gatehouse| {
        let out = gh.cli(&["sessions", "list", "--json"]);
        out.assert_success("sessions list");
        out.stdout_text().contains(&sid)
    };
    assert!(listed(&w.gh), "the live session is not listed");
    // kill -9: no chance to close anything.
    w.gh.kill();
    let _ = held.wait(Duration::from_secs(30));
    assert!(
        !w.gh
            .audit_events_of("session.end")
            .iter()
            .any(|e| str_at(e, "session") == sid),
        "session.end before the restart?"
    );
    w.gh.restart();
    let end =
        w.gh.wait_for_event("session.end", Duration::from_secs(15), |e| {
            str_at(e, "session") == sid
        });
    assert_eq!(detail(&end, "reason"), "bastion restarted", "{end:#}");
    assert_eq!(str_at(&end, "user"), "alice", "{end:#}");
    assert_eq!(str_at(&end, "server"), "web1", "{end:#}");
    assert!(!listed(&w.gh), "a ghost session after the restart");
    w.gh.cli(&["audit", "verify"])
        .assert_success("audit verify");
    w.client
        .ssh(WEB1, &["true"])
        .assert_success("login after the restart");
}
