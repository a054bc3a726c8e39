//! What real clients other than `ssh` trip on (issue 17, items 8, 9, 11),
//! end to end through the bastion to a real OpenSSH target:
//!
//! - git sends `GIT_PROTOCOL` on every clone, fetch and push: accepted by
//!   default, no `access.denied`, and protocol v2 reaches the target.
//! - Ansible with the host aliases of `gatehouse ssh-config`: `ping`,
//!   `copy dest=~/...` and an async task, with ControlPersist and
//!   pipelining, and no `ansible_user`.
//! - SFTP symlinks point the same way through the bastion as directly, for
//!   OpenSSH's `sftp`, paramiko and asyncssh. (PuTTY's `psftp` 0.78 has no
//!   command that makes a symlink: nothing to compare.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// A target sshd, a bastion whose policy lets alice reach it as `web1`
/// (accounts root, the default, and ghtest), and alice's OpenSSH client.
/// Field order is drop order.
struct Fixture {
    gh: Gatehouse,
    target: Sshd,
    client: Client,
    alice: Key,
    dir: TestDir,
}

fn start(sshd_extra: &[&str]) -> Fixture {
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let mut opts = SshdOpts::new()
        .authorize("root", &identity.public)
        .authorize("ghtest", &identity.public)
        // For the direct connections the SFTP tests compare with.
        .authorize("root", &alice.public);
    for line in sshd_extra {
        opts = opts.extra(line);
    }
    let target = Sshd::start(&dir, opts);
    let policy = policy_user("alice", &alice, &["support"])
        + &policy_server(
            "web1",
            &target,
            "ssh-forwarding",
            &["root", "ghtest"],
            &["group:support"],
        );
    let gh = Gatehouse::start(&dir, "", &policy);
    let client = gh.client(&dir, &alice);
    Fixture {
        gh,
        target,
        client,
        alice,
        dir,
    }
}

// Item 8: git.

/// `git ARGS` with the bastion as its ssh (alice's client config), a
/// private HOME, and packet tracing on stderr.
fn git(f: &Fixture, home: &Path, args: &[&str]) -> std::process::Output {
    let mut c = Command::new("git");
    c.args(args)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env(
            "GIT_SSH_COMMAND",
            format!(
                "ssh -F {}",
                shell_quote(&f.client.config.display().to_string())
            ),
        )
        .env("GIT_TRACE_PACKET", "1")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("GIT_PROTOCOL");
    run(&mut c)
}

#[test]
fn git_clone_fetch_and_push_pass_git_protocol() {
    // The target accepts GIT_PROTOCOL, as a git server's sshd does, so
    // protocol v2 shows whether the variable got through.
    let f = start(&["AcceptEnv GIT_PROTOCOL"]);
    let home = f.dir.join("git-home");
    std::fs::create_dir_all(&home).unwrap();
    let repo = f.dir.join("repo.git");
    run(Command::new("git")
        .args(["init", "--bare", "-b", "main"])
        .arg(&repo)
        .env("HOME", &home))
    .assert_success("git init --bare");
    // scp-like syntax: ssh splits the login at its last `@`.
    let url = format!("alice@web1@{HOST}:{}", repo.display());
    let work = f.dir.join("work");
    let work_s = work.display().to_string();
    let out = git(&f, &home, &["clone", &url, &work_s]);
    out.assert_success("git clone (empty)");
    assert!(
        out.stderr_text().contains("version 2"),
        "the target did not speak protocol v2: GIT_PROTOCOL was lost\n{}",
        out.stderr_text()
    );
    std::fs::write(work.join("README"), "through the bastion\n").unwrap();
    let w = |args: &[&str]| {
        let mut all = vec![
            "-C",
            work_s.as_str(),
            "-c",
            "user.name=Alice",
            "-c",
            "user.email=alice@example.com",
        ];
        all.extend_from_slice(args);
        git(&f, &home, &all)
    };
    w(&["add", "README"]).assert_success("git add");
    w(&["commit", "-q", "-m", "first"]).assert_success("git commit");
    w(&["push", "-q", "origin", "HEAD:refs/heads/main"]).assert_success("git push");
    w(&["fetch", "-q", "origin"]).assert_success("git fetch");
    let again = f.dir.join("again");
    let out = git(
        &f,
        &home,
        &["clone", "-q", &url, &again.display().to_string()],
    );
    out.assert_success("git clone (after the push)");
    assert_eq!(
        std::fs::read_to_string(again.join("README")).unwrap(),
        "through the bastion\n"
    );
    // git's commands went through as exec events, and nothing was denied.
    let execs = f.gh.audit_events_of("exec");
    assert!(
        execs
            .iter()
            .any(|e| e.to_string().contains("git-receive-pack")),
        "no push in the audit: {execs:#?}"
    );
    let denied = f.gh.audit_events_of("access.denied");
    assert!(denied.is_empty(), "git was denied: {denied:#?}");
}

// Item 9: Ansible through `gatehouse ssh-config` aliases.

#[test]
fn ansible_ping_copy_and_async_through_ssh_config_aliases() {
    let f = start(&[]);
    let out = f.gh.cli(&["ssh-config", "alice"]);
    out.assert_success("gatehouse ssh-config alice");
    let generated = out.stdout_text();
    // What `ssh web1` did keeps working: the default account's block.
    assert!(
        generated.contains("Host web1\n") && generated.contains("User alice@web1\n"),
        "{generated}"
    );
    for (alias, user) in [
        ("web1--root", "alice+root@web1"),
        ("web1--ghtest", "alice+ghtest@web1"),
    ] {
        assert!(
            generated.contains(&format!("Host {alias}\n"))
                && generated.contains(&format!("User {user}\n")),
            "no alias {alias}:\n{generated}"
        );
    }
    // The same aliases in the JSON form.
    let out = f.gh.cli(&["ssh-config", "alice", "--json"]);
    out.assert_success("gatehouse ssh-config alice --json");
    let v: serde_json::Value = serde_json::from_str(&out.stdout_text()).expect("JSON");
    assert_eq!(v[0]["host"], "web1", "{v:#}");
    assert_eq!(v[0]["user"], "alice@web1", "{v:#}");
    assert_eq!(v[0]["aliases"][1]["host"], "web1--ghtest", "{v:#}");
    assert_eq!(v[0]["aliases"][1]["account"], "ghtest", "{v:#}");
    assert_eq!(v[0]["aliases"][1]["user"], "alice+ghtest@web1", "{v:#}");
    let home = f.dir.join("ansible-home");
    for sub in ["tmp", "cp"] {
        std::fs::create_dir_all(home.join(sub)).unwrap();
    }
    let conf = f.dir.write("gatehouse.conf", &generated);
    // The user's own ssh config: the generated file, then their defaults.
    let ssh_config = f.dir.write(
        "ansible-ssh-config",
        format!(
            "Include {}\nHost *\n  IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
             BatchMode yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  \
             GlobalKnownHostsFile /dev/null\n  LogLevel ERROR\n  ConnectTimeout 10\n",
            conf.display(),
            f.alice.private.display()
        ),
    );
    // The inventory README documents: host aliases only, no ansible_user.
    let inventory = f.dir.write("inventory.ini", "[web]\nweb1--ghtest\n");
    let cfg = f.dir.write(
        "ansible.cfg",
        format!(
            "[defaults]\ninventory = {}\nhost_key_checking = False\nretry_files_enabled = False\n\
             interpreter_python = /usr/bin/python3\nlocal_tmp = {}\n\
             [ssh_connection]\nssh_args = -F {} -o ControlMaster=auto -o ControlPersist=60s\n\
             control_path_dir = {}\npipelining = True\n",
            inventory.display(),
            home.join("tmp").display(),
            ssh_config.display(),
            home.join("cp").display()
        ),
    );
    let ansible = |args: &[&str]| {
        let mut c = Command::new("ansible");
        c.args(args)
            .env("ANSIBLE_CONFIG", &cfg)
            .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
            .env("HOME", &home)
            .env("ANSIBLE_NOCOLOR", "1")
            .env_remove("ANSIBLE_REMOTE_USER")
            .env_remove("SSH_AUTH_SOCK");
        run_timeout(&mut c, None, Duration::from_secs(300))
    };
    let out = ansible(&["web1--ghtest", "-m", "ping"]);
    out.assert_success("ansible -m ping");
    assert!(out.stdout_text().contains("pong"), "{}", out.stdout_text());
    let name = format!("gh-ansible-{}", std::process::id());
    let dest = PathBuf::from("/home/ghtest").join(&name);
    let _ = std::fs::remove_file(&dest);
    let out = ansible(&[
        "web1--ghtest",
        "-m",
        "copy",
        "-a",
        &format!("content=via-gatehouse dest=~/{name}"),
    ]);
    let copied = std::fs::read_to_string(&dest);
    let _ = std::fs::remove_file(&dest);
    out.assert_success("ansible -m copy dest=~/...");
    assert_eq!(
        copied.as_deref().ok(),
        Some("via-gatehouse"),
        "{}",
        out.stdout_text()
    );
    let out = ansible(&[
        "web1--ghtest",
        "-B",
        "30",
        "-P",
        "2",
        "-m",
        "shell",
        "-a",
        "echo async-$(id -un)",
    ]);
    out.assert_success("ansible async task");
    assert!(
        out.stdout_text().contains("async-ghtest"),
        "{}",
        out.stdout_text()
    );
    // Every session went through the bastion as alice, as ghtest.
    let starts = f.gh.audit_events_of("session.start");
    assert!(!starts.is_empty());
    for s in &starts {
        assert_eq!(s["user"], "alice", "{s:#}");
        assert_eq!(s["account"], "ghtest", "{s:#}");
    }
    let _ = &f.target;
}

// Item 11: SFTP symlinks.

/// Where each client makes its links: a folder of the test the default
/// account (root) may write.
fn links_dir(f: &Fixture) -> PathBuf {
    let d = f.dir.join("links");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What every link must point at: an absolute path in the same folder
/// that does not exist, so that a client whose paths arrive reversed
/// makes a link there (pointing at the link's name) instead, and nothing
/// lands outside the test's folder.
fn link_target(dir: &Path) -> String {
    dir.join("points-here").display().to_string()
}

/// Where the link named `name` points, as the target's file system says
/// (and, if the arguments were reversed, where the link landed instead).
fn link_of(dir: &Path, name: &str) -> String {
    match std::fs::read_link(dir.join(name)) {
        Ok(p) => p.display().to_string(),
        Err(e) => format!("(no link {name}: {e}; folder: {:?})", listing(dir)),
    }
}

fn listing(dir: &Path) -> Vec<(String, Option<String>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read_link(e.path())
                            .ok()
                            .map(|p| p.display().to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs a Python client script: `python3 -c SCRIPT HOST PORT USER KEY LINK
/// TARGET` (the script makes LINK point at [`link_target`]).
fn python(script: &str, port: u16, user: &str, key: &Path, link: &Path) {
    let target = link.parent().map(link_target).unwrap_or_default();
    let out = run(Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(HOST)
        .arg(port.to_string())
        .arg(user)
        .arg(key)
        .arg(link)
        .arg(target));
    out.assert_success("python sftp client");
}

const PARAMIKO: &str = r#"
import sys, paramiko
host, port, user, key, link, target = sys.argv[1:7]
c = paramiko.SSHClient()
c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
c.connect(host, port=int(port), username=user, key_filename=key,
          allow_agent=False, look_for_keys=False, timeout=20)
s = c.open_sftp()
s.symlink(target, link)
s.close()
c.close()
"#;

const ASYNCSSH: &str = r#"
import sys, asyncio, asyncssh
host, port, user, key, link, target = sys.argv[1:7]
async def main():
    async with asyncssh.connect(host, port=int(port), username=user,
                                client_keys=[key], known_hosts=None,
                                agent_path=None) as conn:
        async with conn.start_sftp_client() as sftp:
            await sftp.symlink(target, link)
asyncio.run(main())
"#;

#[test]
fn sftp_symlinks_point_the_same_way_as_direct_for_openssh() {
    let f = start(&[]);
    let dir = links_dir(&f);
    let direct = Client::new(&f.dir, &f.alice, f.target.port);
    for (client, login, name) in [
        (&f.client, "alice@web1", "via-bastion"),
        (&direct, "root", "direct"),
    ] {
        let link = dir.join(name);
        client
            .sftp_batch(
                login,
                &format!("ln -s {} {}\n", link_target(&dir), link.display()),
            )
            .assert_success("sftp ln -s");
    }
    assert_eq!(link_of(&dir, "direct"), link_target(&dir));
    assert_eq!(link_of(&dir, "via-bastion"), link_of(&dir, "direct"));
}

#[test]
fn sftp_symlinks_point_the_same_way_as_direct_for_paramiko() {
    let f = start(&[]);
    let dir = links_dir(&f);
    let key = &f.alice.private;
    python(
        PARAMIKO,
        f.gh.port,
        "alice@web1",
        key,
        &dir.join("via-bastion"),
    );
    python(PARAMIKO, f.target.port, "root", key, &dir.join("direct"));
    assert_eq!(link_of(&dir, "direct"), link_target(&dir));
    assert_eq!(link_of(&dir, "via-bastion"), link_of(&dir, "direct"));
}

#[test]
fn sftp_symlinks_point_the_same_way_as_direct_for_asyncssh() {
    let f = start(&[]);
    let dir = links_dir(&f);
    let key = &f.alice.private;
    python(ASYNCSSH, f.target.port, "root", key, &dir.join("direct"));
    python(
        ASYNCSSH,
        f.gh.port,
        "alice@web1",
        key,
        &dir.join("via-bastion"),
    );
    assert_eq!(link_of(&dir, "direct"), link_target(&dir));
    assert_eq!(
        link_of(&dir, "via-bastion"),
        link_of(&dir, "direct"),
        "folder: {:?}",
        listing(&dir)
    );
    // The audit reads the request as the target got it.
    let ev =
        f.gh.wait_for_event("sftp.op", Duration::from_secs(15), |e| {
            e["detail"]["op"] == "symlink"
        });
    assert_eq!(
        ev["detail"]["link"],
        dir.join("via-bastion").display().to_string(),
        "{ev:#}"
    );
    assert_eq!(ev["detail"]["target"], link_target(&dir), "{ev:#}");
    assert_eq!(ev["detail"]["status"], "ok", "{ev:#}");
}
