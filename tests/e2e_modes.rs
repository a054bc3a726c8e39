//! End to end, contract section 4: each access mode through the real
//! OpenSSH client, `gatehouse serve` and real sshd targets, showing what
//! the mode allows working and what it refuses refused with its reason.
//! Forwards go to a plain TCP service the test starts; `ssh -W` opens a
//! direct-tcpip channel whose refusal is the command's failure.
//! These scenarios touch the database only for audit events: SQLite only
//! (grants, lockouts and command mode run on both backends elsewhere).

mod common;
#[macro_use]
#[path = "common/access.rs"]
mod access;
#[path = "support/pg.rs"]
mod pg;

use std::time::Duration;

use access::*;
use common::*;

/// One bastion with its identity authorized on a target sshd as root, and
/// staff alice (group support) with her key.
struct World {
    dir: TestDir,
    alice: Key,
    identity: Key,
}

impl World {
    fn new() -> World {
        let dir = TestDir::new();
        let identity = Gatehouse::prepare_identity(&dir);
        let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
        World {
            dir,
            alice,
            identity,
        }
    }

    /// A target sshd accepting the bastion's identity for root.
    fn target(&self) -> Sshd {
        Sshd::start(
            &self.dir,
            SshdOpts::new().authorize("root", &self.identity.public),
        )
    }

    fn users(&self) -> String {
        policy_user("alice", &self.alice, &["support"])
    }
}

fn exec_ok(client: &Client, login: &str) {
    let out = client.ssh(login, &["echo exec-$((6*7)); exit 3"]);
    assert_eq!(
        out.code(),
        Some(3),
        "exec on {login}: {}",
        out.stderr_text()
    );
    assert_eq!(out.stdout_text(), "exec-42\n");
}

fn shell_ok(client: &Client, login: &str) {
    // No PTY: the remote shell reads its commands from stdin.
    let out = client.ssh_with_stdin(login, &[], b"echo shell-$((7*6))\nexit 4\n");
    assert_eq!(
        out.code(),
        Some(4),
        "shell on {login}: {}",
        out.stderr_text()
    );
    assert!(
        out.stdout_text().contains("shell-42"),
        "{}",
        out.stdout_text()
    );
}

fn sftp_ok(dir: &TestDir, client: &Client, login: &str) {
    let up = dir.write(dir.unique("sftp-up"), random_bytes(50_000));
    let remote = dir.join(dir.unique("sftp-remote"));
    let down = dir.join(dir.unique("sftp-down"));
    let out = client.sftp_batch(
        login,
        &format!(
            "put {} {r}\nget {r} {}\n",
            up.display(),
            down.display(),
            r = remote.display()
        ),
    );
    out.assert_success(&format!("sftp on {login}"));
    assert_eq!(sha256_file(&up), sha256_file(&down));
}

/// Shell, exec and sftp are all refused with `reason_part`.
fn sessions_refused(client: &Client, login: &str, reason_part: &str) {
    assert_denied(&client.ssh(login, &["echo leaked"]), reason_part);
    assert_denied(
        &client.ssh_with_stdin(login, &[], b"echo leaked\n"),
        reason_part,
    );
    let out = client.sftp_batch(login, "ls /\n");
    assert_ne!(out.code(), Some(0), "sftp must fail on {login}");
    assert!(
        out.stderr_text().contains(reason_part),
        "sftp stderr should name the reason:\n{}",
        out.stderr_text()
    );
}

/// Round trip through `ssh -W` to the service: byte-exact.
fn forward_ok(client: &Client, login: &str, dest: &str) {
    let data = random_bytes(200_000);
    let out = ssh_w(client, &[], login, dest, &data);
    out.assert_success(&format!("ssh -W {dest} {login}"));
    assert!(out.stdout == data, "echo through {dest} is not byte-exact");
}

fn remote_forward_refused(client: &Client, login: &str) {
    let port = free_port().to_string();
    let spec = format!("{port}:127.0.0.1:9");
    let out = ssh_args(
        client,
        &[
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            &spec,
            &client.destination(login),
        ],
    );
    assert_eq!(out.code(), Some(255), "-R on {login}: {out:?}");
    assert!(
        out.stderr_text().contains("remote port forwarding failed"),
        "{}",
        out.stderr_text()
    );
}

fn jump_refused(w: &World, gh: &Gatehouse, target: &Sshd, reason_part: &str) {
    let jump = format!("alice@127.0.0.1:{}", gh.port);
    // The jump's own ssh reads the -F file, not the command line's -o:
    // its "open failed" line needs LogLevel INFO there.
    let client = Client::with_options(&w.dir, &w.alice, gh.port, &["LogLevel INFO"]);
    let out = ssh_args(
        &client,
        &[
            "-J",
            &jump,
            "-p",
            &target.port.to_string(),
            "root@127.0.0.1",
            "echo leaked",
        ],
    );
    assert_eq!(out.code(), Some(255), "{out:?}");
    assert!(!out.stdout_text().contains("leaked"));
    assert!(
        out.stderr_text().contains("open failed") && out.stderr_text().contains(reason_part),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn global_mode_allows_everything_flagged() {
    let w = World::new();
    let target = w.target();
    // ProxyJump authenticates to the target end to end with alice's key.
    target.authorize("root", &w.alice.public);
    let svc = Service::start();
    let policy = w.users()
        + &policy_server("g1", &target, "global", &["root"], &["group:support"])
        + "ports = [1]\n";
    let gh = Gatehouse::start(&w.dir, "", &policy);
    let client = gh.client(&w.dir, &w.alice);

    exec_ok(&client, "alice@g1");
    shell_ok(&client, "alice@g1");
    sftp_ok(&w.dir, &client, "alice+root@g1");
    // Any port of the server, not just `ports`, dialled by the bastion.
    forward_ok(&client, "alice@g1", &format!("127.0.0.1:{}", svc.port));
    forward_ok(&client, "alice@g1", &format!("localhost:{}", svc.port));
    // ...but only the server itself.
    let out = ssh_w(&client, &[], "alice@g1", "192.0.2.1:80", b"x");
    assert_open_failed(&out, "may only reach g1 itself");

    let starts = events_for(&gh, "session.start", "g1");
    assert!(!starts.is_empty());
    for e in &starts {
        assert_eq!(e["detail"]["flagged"], true, "{e}");
        assert_eq!(detail_str(e, "mode"), "global");
    }
    let opens = events_for(&gh, "forward.open", "g1");
    assert_eq!(opens.len(), 2, "{opens:#?}");
    for e in &opens {
        assert_eq!(e["detail"]["flagged"], true, "{e}");
        assert_eq!(detail_str(e, "path"), "Direct", "{e}");
    }

    // ProxyJump: allowed and audited (flagged).
    let jump = format!("alice@127.0.0.1:{}", gh.port);
    let out = ssh_args(
        &client,
        &[
            "-J",
            &jump,
            "-p",
            &target.port.to_string(),
            "root@127.0.0.1",
            "echo jumped",
        ],
    );
    out.assert_success("ssh -J through the bastion");
    assert_eq!(out.stdout_text(), "jumped\n");
    let j = gh.wait_for_event("jump.open", Duration::from_secs(10), |e| {
        field(e, "server") == "g1"
    });
    assert_eq!(j["detail"]["flagged"], true, "{j}");
    assert_eq!(field(&j, "user"), "alice");

    // Remote forwarding: the target's sshd listens, connections come back
    // through the bastion to the client's side (here: the service).
    let rport = free_port();
    let spec = format!("{rport}:127.0.0.1:{}", svc.port);
    let dest = client.destination("alice@g1");
    let mut bg = BackgroundSsh::start(
        &w.dir,
        &client,
        &["-N", "-o", "ExitOnForwardFailure=yes", "-R", &spec, &dest],
    );
    assert!(
        wait_until(Duration::from_secs(20), || is_listening(rport)
            || !bg.is_running()),
        "the target did not bind the remote forward; ssh stderr:\n{}",
        bg.stderr_text()
    );
    let data = random_bytes(100_000);
    let back = tcp_roundtrip(rport, &data).expect("-R round trip");
    assert!(back == data, "-R is not byte-exact");
    let remote = gh.wait_for_event("forward.open", Duration::from_secs(10), |e| {
        detail_str(e, "direction") == "remote"
    });
    assert_eq!(remote["detail"]["flagged"], true, "{remote}");
    assert_eq!(field(&remote, "server"), "g1");
    drop(bg);
}

/// `ssh -N -L A:localhost:ALLOWED -L B:localhost:REFUSED -D C LOGIN`: the
/// allowed local forward carries bytes exactly, the refused one is closed
/// with the reason in ssh's log; the same through the SOCKS (`-D`) port,
/// also with curl when it is installed.
fn local_and_dynamic_forwards(
    dir: &TestDir,
    client: &Client,
    login: &str,
    svc: &Service,
    refused_port: u16,
    reason_part: &str,
) {
    let (l_ok, l_no, d) = (free_port(), free_port(), free_port());
    let spec_ok = format!("{l_ok}:localhost:{}", svc.port);
    let spec_no = format!("{l_no}:localhost:{refused_port}");
    let d_spec = d.to_string();
    let dest = client.destination(login);
    let mut bg = BackgroundSsh::start(
        dir,
        client,
        &[
            "-N",
            "-o",
            "LogLevel=INFO",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            &spec_ok,
            "-L",
            &spec_no,
            "-D",
            &d_spec,
            &dest,
        ],
    );
    bg.wait_listening(l_ok);
    bg.wait_listening(l_no);
    bg.wait_listening(d);

    // Larger than the 2 MiB channel window and russh's per-channel queue:
    // uploads through a forward once stalled there.
    let data = random_bytes(5 << 20);
    let back = tcp_roundtrip(l_ok, &data).expect("-L round trip");
    assert!(back == data, "-L to the service is not byte-exact");

    let before = svc.accepted();
    let back = tcp_roundtrip(l_no, b"hello").unwrap_or_default();
    assert!(back.is_empty(), "refused -L returned {back:?}");
    assert!(
        wait_until(Duration::from_secs(10), || {
            let e = bg.stderr_text();
            e.contains("open failed") && e.contains(reason_part)
        }),
        "ssh's log should show the refusal with `{reason_part}`:\n{}",
        bg.stderr_text()
    );

    let back = socks5_roundtrip(d, "localhost", svc.port, &data).expect("SOCKS5 round trip");
    assert!(back == data, "-D to the service is not byte-exact");
    let back = socks5_roundtrip(d, "localhost", refused_port, b"hello").unwrap_or_default();
    assert!(back.is_empty(), "refused -D returned {back:?}");

    if have("curl") {
        let out = run(std::process::Command::new("curl")
            .args(["-sS", "--max-time", "20", "--socks5-hostname"])
            .arg(format!("127.0.0.1:{d}"))
            .arg(format!("http://localhost:{}/", svc.port)));
        out.assert_success("curl through ssh -D");
        assert_eq!(out.stdout_text(), format!("service-{}\n", svc.port));
        let out = run(std::process::Command::new("curl")
            .args(["-sS", "--max-time", "20", "--socks5-hostname"])
            .arg(format!("127.0.0.1:{d}"))
            .arg(format!("http://localhost:{refused_port}/")));
        assert_ne!(out.code(), Some(0), "curl to a refused port must fail");
    }
    // The refused destination is the target's sshd or an unopened port:
    // the service saw only the allowed connections.
    assert!(svc.accepted() >= before);
    assert!(bg.is_running(), "ssh -N should still run");
}

/// `-A` and `-X` are refused (and audited) while the session still works.
fn agent_and_x11_refused(dir: &TestDir, client: &Client, gh: &Gatehouse, key: &Key, login: &str) {
    let sock = dir.join(dir.unique("agent.sock"));
    let _agent = ChildGuard::spawn(
        "ssh-agent",
        std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock),
        None,
        None,
    );
    assert!(
        wait_until(Duration::from_secs(10), || sock.exists()),
        "ssh-agent did not start"
    );
    run(std::process::Command::new("ssh-add")
        .arg(&key.private)
        .env("SSH_AUTH_SOCK", &sock))
    .assert_success("ssh-add");
    // IdentityAgent none (the client config) would also stop forwarding:
    // name the agent for this run.
    let agent = format!("IdentityAgent={}", sock.display());
    let mut c = client.ssh_command(
        &["-o", &agent, "-o", "ForwardAgent=yes"],
        login,
        &["test -n \"$SSH_AUTH_SOCK\" && echo agent || echo no-agent"],
    );
    c.env("SSH_AUTH_SOCK", &sock);
    let out = run(&mut c);
    out.assert_success("session with -A");
    assert_eq!(out.stdout_text(), "no-agent\n");
    gh.wait_for_event("forward.denied", Duration::from_secs(10), |e| {
        detail_str(e, "action") == "agent forwarding"
            && detail_str(e, "code") == "KO_AGENT_FORWARDING"
    });

    let mut c = client.ssh_command(
        &["-o", "LogLevel=INFO", "-X"],
        login,
        &["test -n \"$DISPLAY\" && echo x11 || echo no-x11"],
    );
    c.env("DISPLAY", ":0");
    let out = run(&mut c);
    out.assert_success("session with -X");
    assert_eq!(out.stdout_text(), "no-x11\n");
    assert!(
        out.stderr_text().contains("X11 forwarding request failed"),
        "{}",
        out.stderr_text()
    );
    gh.wait_for_event("forward.denied", Duration::from_secs(10), |e| {
        detail_str(e, "action") == "X11 forwarding" && detail_str(e, "code") == "KO_X11_FORWARDING"
    });
}

#[test]
fn firewall_mode_ports_direct_and_sources() {
    let w = World::new();
    // The target's sshd forwards nothing: firewall forwards are dialled
    // by the bastion itself, not carried by sshd.
    let target = Sshd::start(
        &w.dir,
        SshdOpts::new()
            .authorize("root", &w.identity.public)
            // sshd keeps the first value of a keyword: override the
            // harness's `AllowTcpForwarding yes` in a Match block.
            .extra("Match all")
            .extra("AllowTcpForwarding no"),
    );
    let svc = Service::start();
    let fw = |name: &str, allow_from: &str| {
        policy_server(name, &target, "firewall", &["root"], &["group:support"])
            + &format!("ports = [{}]\nallow_from = {allow_from}\n", svc.port)
    };
    let policy = w.users()
        + &fw("fw1", r#"["127.0.0.0/8"]"#)
        + &fw("fw2", r#"["10.0.0.0/8"]"#)
        + &fw("fw3", r#"["127.0.0.2/32"]"#);
    let gh = Gatehouse::start(&w.dir, "", &policy);
    let client = gh.client(&w.dir, &w.alice);

    exec_ok(&client, "alice@fw1");
    shell_ok(&client, "alice@fw1");
    sftp_ok(&w.dir, &client, "alice@fw1");
    forward_ok(&client, "alice@fw1", &format!("127.0.0.1:{}", svc.port));
    let out = ssh_w(
        &client,
        &[],
        "alice@fw1",
        &format!("localhost:{}", target.port),
        b"x",
    );
    assert_open_failed(
        &out,
        &format!("port {} is not open for forwarding on fw1", target.port),
    );
    local_and_dynamic_forwards(
        &w.dir,
        &client,
        "alice@fw1",
        &svc,
        target.port,
        "is not open for forwarding on fw1",
    );
    let opens = events_for(&gh, "forward.open", "fw1");
    assert!(opens.len() >= 3, "{opens:#?}");
    for e in &opens {
        assert_eq!(detail_str(e, "path"), "Direct", "{e}");
        assert_eq!(e["detail"]["flagged"], false, "{e}");
    }
    let denied = events_for(&gh, "forward.denied", "fw1");
    assert!(
        denied
            .iter()
            .any(|e| detail_str(e, "code") == "KO_PORT_NOT_ALLOWED"),
        "{denied:#?}"
    );

    remote_forward_refused(&client, "alice@fw1");
    gh.wait_for_event("forward.denied", Duration::from_secs(10), |e| {
        detail_str(e, "reason").contains("remote forwarding is refused")
            && detail_str(e, "reason").contains("firewall")
    });
    jump_refused(&w, &gh, &target, "ProxyJump is not allowed");
    agent_and_x11_refused(&w.dir, &client, &gh, &w.alice, "alice@fw1");

    // Outside allow_from: sessions and forwards refused, naming the source.
    let why = "connections from 127.0.0.1 are not allowed to fw2";
    assert_denied(&client.ssh("alice@fw2", &["echo leaked"]), why);
    let out = ssh_w(
        &client,
        &[],
        "alice@fw2",
        &format!("127.0.0.1:{}", svc.port),
        b"x",
    );
    assert_open_failed(&out, why);

    // Source addresses: fw3 admits 127.0.0.2 only (ssh -b binds the source).
    let out = client.ssh_opts(&["-b", "127.0.0.2"], "alice@fw3", &["echo from-2"]);
    out.assert_success("fw3 from 127.0.0.2");
    assert_eq!(out.stdout_text(), "from-2\n");
    assert_denied(
        &client.ssh("alice@fw3", &["echo leaked"]),
        "connections from 127.0.0.1 are not allowed to fw3",
    );
    let ev = gh.wait_for_event("access.denied", Duration::from_secs(10), |e| {
        field(e, "server") == "fw3"
    });
    assert_eq!(detail_str(&ev, "code"), "KO_SOURCE_NOT_ALLOWED");
    assert_eq!(field(&ev, "source"), "127.0.0.1");
}

#[test]
fn ssh_forwarding_mode_carries_forwards_through_sshd() {
    let w = World::new();
    let target = w.target();
    // A second target whose sshd refuses TCP forwarding: in this mode the
    // forward is carried by the target's sshd, so it must fail there.
    let no_fwd = Sshd::start(
        &w.dir,
        SshdOpts::new()
            .authorize("root", &w.identity.public)
            // sshd keeps the first value of a keyword: override the
            // harness's `AllowTcpForwarding yes` in a Match block.
            .extra("Match all")
            .extra("AllowTcpForwarding no"),
    );
    let svc = Service::start();
    let ports = format!("ports = [{}]\n", svc.port);
    let policy = w.users()
        + &policy_server(
            "sf1",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
        + &ports
        + &policy_server(
            "sf2",
            &no_fwd,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
        + &ports;
    let gh = Gatehouse::start(&w.dir, "", &policy);
    let client = gh.client(&w.dir, &w.alice);

    exec_ok(&client, "alice@sf1");
    shell_ok(&client, "alice@sf1");
    sftp_ok(&w.dir, &client, "alice+root@sf1");
    forward_ok(&client, "alice@sf1", &format!("localhost:{}", svc.port));
    let out = ssh_w(
        &client,
        &[],
        "alice@sf1",
        &format!("127.0.0.1:{}", target.port),
        b"x",
    );
    assert_open_failed(
        &out,
        &format!("port {} is not open for forwarding on sf1", target.port),
    );
    local_and_dynamic_forwards(
        &w.dir,
        &client,
        "alice@sf1",
        &svc,
        target.port,
        "is not open for forwarding on sf1",
    );
    let opens = events_for(&gh, "forward.open", "sf1");
    assert!(!opens.is_empty());
    for e in &opens {
        assert_eq!(detail_str(e, "path"), "ThroughSshd", "{e}");
    }

    // Through a target whose sshd does not forward: refused there.
    let out = ssh_w(
        &client,
        &[],
        "alice@sf2",
        &format!("localhost:{}", svc.port),
        b"x",
    );
    assert_eq!(out.code(), Some(255), "{out:?}");
    assert!(
        out.stderr_text().contains("sf2 refused the forward"),
        "{}",
        out.stderr_text()
    );
    exec_ok(&client, "alice@sf2");

    remote_forward_refused(&client, "alice@sf1");
    gh.wait_for_event("forward.denied", Duration::from_secs(10), |e| {
        detail_str(e, "reason").contains("ssh-forwarding")
    });
    jump_refused(&w, &gh, &target, "ProxyJump is not allowed");
    gh.wait_for_event("access.denied", Duration::from_secs(10), |e| {
        detail_str(e, "code") == "KO_MODE_REFUSES" && field(e, "user") == "alice"
    });
}

#[test]
fn vpn_mode_goes_through_the_hop_with_both_host_keys_pinned() {
    let w = World::new();
    let hop = w.target();
    let inner = w.target();
    let svc = Service::start();
    let wrong = w.alice.fingerprint();
    let gw = |name: &str, host_key: &str| {
        format!(
            "\n[[server]]\nname = \"{name}\"\naddress = \"{}\"\nhost_key = \"{host_key}\"\n\
             mode = \"ssh-forwarding\"\naccounts = [\"root\"]\nallow = []\n",
            hop.address()
        )
    };
    let vpn = |name: &str, via: &str, host_key: &str| {
        format!(
            "\n[[server]]\nname = \"{name}\"\naddress = \"{}\"\nhost_key = \"{host_key}\"\n\
             mode = \"vpn\"\nvia = \"{via}\"\naccounts = [\"root\"]\nallow = [\"group:support\"]\n\
             ports = [{}]\n",
            inner.address(),
            svc.port
        )
    };
    let policy = w.users()
        + &gw("gw", &hop.host_key_fingerprint)
        + &gw("gw-badkey", &wrong)
        + &vpn("in1", "gw", &inner.host_key_fingerprint)
        + &vpn("in-badhop", "gw-badkey", &inner.host_key_fingerprint)
        + &vpn("in-badkey", "gw", &wrong);
    let gh = Gatehouse::start(&w.dir, "", &policy);
    gh.cli(&["policy", "check"]).assert_success("policy check");
    let client = gh.client(&w.dir, &w.alice);

    exec_ok(&client, "alice@in1");
    shell_ok(&client, "alice@in1");
    sftp_ok(&w.dir, &client, "alice@in1");
    // The bastion logged in to the hop (the inner leg runs inside it:
    // stopping the hop below makes the vpn server unreachable).
    assert!(
        hop.log().contains("Accepted publickey for root"),
        "{}",
        hop.log()
    );

    // No forwards in vpn mode, even to a listed port.
    let out = ssh_w(
        &client,
        &[],
        "alice@in1",
        &format!("localhost:{}", svc.port),
        b"x",
    );
    assert_open_failed(&out, "forwarding is not available in vpn mode");
    remote_forward_refused(&client, "alice@in1");
    jump_refused(&w, &gh, &inner, "ProxyJump is not allowed");

    // A wrong pinned key on either leg refuses the session.
    for (login, server) in [
        ("alice@in-badhop", "gw-badkey"),
        ("alice@in-badkey", "in-badkey"),
    ] {
        let out = client.ssh(login, &["echo leaked"]);
        assert_eq!(out.code(), Some(1), "{login}: {out:?}");
        assert!(!out.stdout_text().contains("leaked"));
        assert!(
            out.stderr_text()
                .contains(&format!("host key of {server} does not match")),
            "{login}: {}",
            out.stderr_text()
        );
        let ev = gh.wait_for_event("hostkey.mismatch", Duration::from_secs(10), |e| {
            field(e, "server") == server
        });
        assert_eq!(detail_str(&ev, "expected"), wrong);
    }

    // Without the hop, the vpn server cannot be reached at all.
    hop.stop();
    let out = client.ssh("alice@in1", &["echo leaked"]);
    assert_eq!(out.code(), Some(255), "{out:?}");
    assert!(
        out.stderr_text().contains("cannot connect to gw"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn desktop_mode_forwards_without_an_ssh_login() {
    let w = World::new();
    // No sshd at all: only the "RDP" service and a port that is not listed.
    let rdp = Service::start();
    let other = Service::start();
    let policy = w.users()
        + &format!(
            "\n[[server]]\nname = \"desk\"\naddress = \"127.0.0.1\"\nmode = \"desktop\"\n\
             accounts = [\"Administrator\"]\nallow = [\"group:support\"]\nports = [{}]\n",
            rdp.port
        );
    let gh = Gatehouse::start(&w.dir, "", &policy);
    let client = gh.client(&w.dir, &w.alice);

    forward_ok(&client, "alice@desk", &format!("localhost:{}", rdp.port));
    forward_ok(&client, "alice@desk", &format!("127.0.0.1:{}", rdp.port));
    let out = ssh_w(
        &client,
        &[],
        "alice@desk",
        &format!("localhost:{}", other.port),
        b"x",
    );
    assert_open_failed(
        &out,
        &format!("port {} is not open for forwarding on desk", other.port),
    );
    assert_eq!(other.accepted(), 0, "a refused forward reached the port");
    local_and_dynamic_forwards(
        &w.dir,
        &client,
        "alice@desk",
        &rdp,
        other.port,
        "is not open for forwarding on desk",
    );
    let opens = events_for(&gh, "forward.open", "desk");
    assert!(opens.len() >= 2, "{opens:#?}");
    for e in &opens {
        assert_eq!(detail_str(e, "path"), "Direct", "{e}");
    }

    sessions_refused(&client, "alice@desk", "desk allows only port forwards");
    remote_forward_refused(&client, "alice@desk");
    gh.wait_for_event("forward.denied", Duration::from_secs(10), |e| {
        detail_str(e, "reason").contains("desktop")
    });
}

#[test]
fn clone_mode_refuses_everything_naming_the_clone() {
    let w = World::new();
    let target = w.target();
    let svc = Service::start();
    let policy = w.users()
        + &policy_server(
            "copy",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
        + &format!("ports = [{}]\n", svc.port)
        + "\n[[server]]\nname = \"orig\"\naddress = \"127.0.0.1:1\"\nmode = \"clone\"\n\
           clone = \"copy\"\nallow = [\"group:support\"]\n";
    let gh = Gatehouse::start(&w.dir, "", &policy);
    gh.cli(&["policy", "check"]).assert_success("policy check");
    let client = gh.client(&w.dir, &w.alice);

    let why = "orig is reached only through its clone: use copy";
    sessions_refused(&client, "alice@orig", why);
    let out = ssh_w(
        &client,
        &[],
        "alice@orig",
        &format!("localhost:{}", svc.port),
        b"x",
    );
    assert_open_failed(&out, why);
    assert_eq!(svc.accepted(), 0);
    remote_forward_refused(&client, "alice@orig");
    let ev = gh.wait_for_event("access.denied", Duration::from_secs(10), |e| {
        field(e, "server") == "orig"
    });
    assert_eq!(detail_str(&ev, "code"), "KO_USE_CLONE");

    // The clone itself works.
    exec_ok(&client, "alice@copy");
    forward_ok(&client, "alice@copy", &format!("localhost:{}", svc.port));
}

#[test]
fn unknown_and_forbidden_servers_get_the_same_answer() {
    let w = World::new();
    let target = w.target();
    let bob = keygen(w.dir.path(), "bob", KeyKind::Ed25519);
    let policy = w.users()
        + &policy_user("bob", &bob, &["dba"])
        + &policy_server("mine", &target, "global", &["root"], &["group:support"])
        + &policy_server("theirs", &target, "global", &["root"], &["group:dba"]);
    let gh = Gatehouse::start(&w.dir, "", &policy);
    let client = gh.client(&w.dir, &w.alice);
    let a = client.ssh("alice@theirs", &["echo leaked"]);
    let b = client.ssh("alice@nosuch", &["echo leaked"]);
    assert_denied(&a, "no such server, or you may not reach it");
    assert_denied(&b, "no such server, or you may not reach it");
    assert_eq!(a.stderr_text(), b.stderr_text());
    let fa = ssh_w(&client, &[], "alice@theirs", "localhost:22", b"");
    let fb = ssh_w(&client, &[], "alice@nosuch", "localhost:22", b"");
    assert_open_failed(&fa, "no such server, or you may not reach it");
    assert_open_failed(&fb, "no such server, or you may not reach it");
    // Account not in the server's list.
    assert_denied(
        &client.ssh("alice+postgres@mine", &["echo leaked"]),
        "account postgres is not allowed on mine",
    );
}
