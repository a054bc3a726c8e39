//! End to end, issue 12: what a client may pass in its environment
//! (`[limits] accept_env`).

mod common;
#[path = "support/pg.rs"]
mod pg;

use std::time::Duration;

use common::*;
use serde_json::Value;

const WEB1: &str = "alice+root@web1";

fn detail<'a>(e: &'a Value, key: &str) -> &'a Value {
    &e["detail"][key]
}

/// A target sshd (with `sshd_extra` lines), alice, and a bastion on `db`.
struct World {
    gh: Gatehouse,
    client: Client,
    _target: Sshd,
    dir: TestDir,
}

fn world(sshd_extra: &[&str], database: Option<&str>) -> World {
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    let mut opts = SshdOpts::new().authorize("root", &identity.public);
    for line in sshd_extra {
        opts = opts.extra(line);
    }
    let target = Sshd::start(&dir, opts);
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let policy = policy_user("alice", &alice, &["support"])
        + &policy_server(
            "web1",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        );
    let mut gopts = GatehouseOpts::new().policy("policy.toml", &policy);
    if let Some(url) = database {
        gopts = gopts.database(url);
    }
    let gh = Gatehouse::start_with(&dir, gopts);
    let client = gh.client(&dir, &alice);
    World {
        gh,
        client,
        _target: target,
        dir,
    }
}

/// Issue 12 item 3: with a target that accepts any variable, only the
/// allowlist gets through; `BASH_ENV` (which would run a script before the
/// allowed command) is refused and audited by name, its value never shown.
#[test]
fn environment_is_filtered_and_refusals_are_audited() {
    let w = world(&["AcceptEnv *"], None);
    let marker = w.dir.write("bash_env.sh", "echo BASH_ENV-SCRIPT-RAN\n");
    set_mode(&marker, 0o755);
    let setenv = format!(
        "SetEnv=BASH_ENV={} LC_FOO=bar LD_PRELOAD=/nonexistent.so",
        marker.display()
    );
    let out = w.client.ssh_opts(
        &["-o", &setenv],
        WEB1,
        &["echo lc=$LC_FOO; echo be=$BASH_ENV; echo ld=$LD_PRELOAD"],
    );
    out.assert_success("exec with SetEnv");
    assert_eq!(out.stdout_text(), "lc=bar\nbe=\nld=\n", "{out:?}");
    assert!(!out.stdout_text().contains("SCRIPT-RAN"));

    let ev =
        w.gh.wait_for_event("access.denied", Duration::from_secs(10), |e| {
            detail(e, "code") == "KO_ENV_REFUSED"
        });
    let names: Vec<&str> = detail(&ev, "names")
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(names, ["BASH_ENV", "LD_PRELOAD"], "{ev}");
    assert_eq!(detail(&ev, "count"), 2, "{ev}");
    assert_eq!(ev["user"], "alice", "{ev}");
    assert_eq!(ev["server"], "web1", "{ev}");
    // One event for the channel, and no value in any event.
    let all = w.gh.audit_events();
    let refusals = all
        .iter()
        .filter(|e| detail(e, "code") == "KO_ENV_REFUSED")
        .count();
    assert_eq!(refusals, 1);
    let text = serde_json::to_string(&all).unwrap_or_default();
    assert!(!text.contains("bash_env.sh"), "a refused value was audited");
    assert!(
        !text.contains("nonexistent.so"),
        "a refused value was audited"
    );
}
