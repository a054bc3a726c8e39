//! Staff from the site's directory (contract section 12, issue 20) against
//! a real OpenLDAP (`tests/support/slapd.rs`) with the stock `ssh`: a
//! directory user logs in; leavers and movers are cut off mid-session with
//! the reason on their terminal; a policy `[[user]]` of the same name wins;
//! a key removed ends the sessions that logged in with it, and only those;
//! pending grant requests of leavers and movers are cancelled; the
//! directory away: the last copy serves for `max_stale`, then directory
//! users fail closed while policy users still log in; two nodes on one
//! PostgreSQL serve the same copy; the CLI (`directory sync/show`) over
//! StartTLS and AD-shaped entries.

mod common;
#[macro_use]
#[path = "common/access.rs"]
mod access;
#[path = "support/pg.rs"]
mod pg;
#[path = "support/slapd.rs"]
mod slapd;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use access::BackgroundSsh;
use common::*;
use serde_json::Value;
use slapd::{SUFFIX, Slapd, ad_user, group_of_names, person, posix_group};

/// Generous deadlines: waits end as soon as the thing happens.
const WAIT: Duration = Duration::from_secs(40);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

struct Keys {
    alice: Key,
    alice_dir: Key,
    dan: Key,
    erin: Key,
    frank: Key,
}

fn keys(dir: &Path) -> Keys {
    std::fs::create_dir_all(dir).expect("key folder");
    Keys {
        alice: keygen(dir, "alice", KeyKind::Ed25519),
        alice_dir: keygen(dir, "alice-dir", KeyKind::Ed25519),
        dan: keygen(dir, "dan", KeyKind::Ed25519),
        erin: keygen(dir, "erin", KeyKind::Ed25519),
        frank: keygen(dir, "frank", KeyKind::Ed25519),
    }
}

/// dan and erin in `support`, frank disabled, `alice` also in the
/// directory (with another key), dan in the posix group `leads`.
fn directory_data(k: &Keys) -> String {
    person("dan", &[&k.dan.public], false)
        + &person("erin", &[&k.erin.public], false)
        + &person("frank", &[&k.frank.public], true)
        + &person("alice", &[&k.alice_dir.public], false)
        + &group_of_names("support", &["dan", "erin", "frank", "alice"])
        + &posix_group("leads", &["dan"])
}

struct Site {
    nodes: Vec<Gatehouse>,
    _target: Sshd,
    keys: Keys,
    slapd: Slapd,
    _db: Option<pg::TestDb>,
    dir: TestDir,
}

impl Site {
    /// A target sshd, slapd, and `nodes` bastions (on PostgreSQL when
    /// `pg`), each with `[directory]` (sync every 2 s).
    fn start(nodes: usize, pg: bool, max_stale: &str) -> Site {
        let dir = TestDir::new();
        let shared = dir.join("shared");
        let identity = Gatehouse::prepare_identity_in(&shared);
        let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
        let keys = keys(&dir.join("keys"));
        let slapd = Slapd::start(&directory_data(&keys));
        let db = pg.then(|| runtime().block_on(pg::fresh_db()));
        let policy = policy_user("alice", &keys.alice, &["ops"])
            + &policy_server(
                "web1",
                &target,
                "ssh-forwarding",
                &["root"],
                &["group:support", "group:ops"],
            )
            // Grants may be asked for by the directory group dbas only.
            + &policy_server("ondb", &target, "on-request", &["root"], &["group:dbas"]);
        let secret = dir.join("shared/directory.secret");
        let directory = slapd.directory_toml(&secret, "2s", max_stale);
        let mut started = Vec::new();
        for i in 0..nodes {
            let name = format!("node-{i}");
            let p = |rel: &str| toml_str(&shared.join(rel).display().to_string());
            let mut opts = GatehouseOpts::new()
                .name(&name)
                .policy("policy.toml", &policy)
                .extra_toml(&format!(
                    "[server]\nnode = {}\nidentity_key = {}\nmaster_key = {}\n\
                     signing_key = {}\n\n{directory}",
                    toml_str(&name),
                    p("data/identity_ed25519_key"),
                    p("data/master.key"),
                    p("data/signing_ed25519.pk8"),
                ));
            if let Some(db) = &db {
                opts = opts.database(&db.url);
            }
            started.push(Gatehouse::start_with(&dir, opts));
        }
        Site {
            nodes: started,
            _target: target,
            keys,
            slapd,
            _db: db,
            dir,
        }
    }

    fn node(&self) -> &Gatehouse {
        &self.nodes[0]
    }

    fn client(&self, node: &Gatehouse, key: &Key) -> Client {
        node.client(&self.dir, key)
    }

    /// `ssh STAFF@web1 echo ok` through `node`.
    fn login(&self, node: &Gatehouse, staff: &str, key: &Key) -> std::process::Output {
        self.client(node, key)
            .ssh(&format!("{staff}@web1"), &["echo", "ok"])
    }

    fn can_login(&self, node: &Gatehouse, staff: &str, key: &Key) -> bool {
        let out = self.login(node, staff, key);
        out.status.success() && String::from_utf8_lossy(&out.stdout) == "ok\n"
    }

    /// Waits for the first sync to have stored dan, and every node to
    /// serve the copy (each looks at the database every second).
    fn wait_synced(&self) {
        self.node()
            .wait_for_event("user.added", WAIT, |e| e["user"] == "dan");
        for node in &self.nodes {
            assert!(
                wait_until(WAIT, || self.can_login(node, "dan", &self.keys.dan)),
                "the copy is not served: {}",
                node.log()
            );
        }
    }
}

/// Waits for a held session to end; returns its stderr and how long it took.
fn ended(bg: &mut BackgroundSsh) -> (String, Duration) {
    let t0 = Instant::now();
    let status = bg.wait(WAIT);
    assert!(
        status.is_some(),
        "the session was not cut off within {WAIT:?}"
    );
    (bg.stderr_text(), t0.elapsed())
}

fn detail<'a>(e: &'a Value, key: &str) -> &'a Value {
    &e["detail"][key]
}

#[test]
fn directory_users_log_in_and_leavers_and_movers_are_cut_off() {
    let site = Site::start(1, false, "10m");
    site.wait_synced();
    let gh = site.node();
    let k = &site.keys;

    // A directory user logs in with the directory's key.
    assert!(
        site.can_login(gh, "dan", &k.dan),
        "dan: {:?}",
        site.login(gh, "dan", &k.dan)
    );
    // A disabled one does not.
    assert!(!site.can_login(gh, "frank", &k.frank));
    // A policy [[user]] of the same name wins: its key, not the directory's.
    assert!(site.can_login(gh, "alice", &k.alice));
    assert!(!site.can_login(gh, "alice", &k.alice_dir));
    gh.wait_for_event("directory.conflict", WAIT, |e| e["user"] == "alice");
    let synced = gh.wait_for_event("directory.synced", WAIT, |_| true);
    assert_eq!(detail(&synced, "users"), 3, "{synced:#}");
    // Roles through [directory.roles]: dan (leads) may approve.
    let explain = gh.cli(&["policy", "explain", "dan", "web1"]);
    explain.assert_success("policy explain dan web1");
    let text = explain.stdout_text();
    assert!(
        text.contains("ALLOW") && text.contains("source: directory (uid=dan"),
        "{text}"
    );
    let show = gh.cli(&["directory", "show", "dan", "--json"]);
    show.assert_success("directory show dan");
    let shown: Value = serde_json::from_slice(&show.stdout).expect("JSON");
    assert_eq!(shown["roles"], serde_json::json!(["approver"]), "{shown:#}");
    assert_eq!(
        shown["groups"],
        serde_json::json!(["leads", "support"]),
        "{shown:#}"
    );

    // Live sessions of dan and erin.
    let dan_client = site.client(gh, &k.dan);
    let mut dan =
        BackgroundSsh::start_long(&site.dir, &dan_client, &dan_client.destination("dan@web1"));
    let erin_client = site.client(gh, &k.erin);
    let mut erin = BackgroundSsh::start_long(
        &site.dir,
        &erin_client,
        &erin_client.destination("erin@web1"),
    );

    // A leaver: removed from the directory, cut off with the reason.
    site.slapd.delete(&format!("uid=dan,ou=people,{SUFFIX}"));
    let (stderr, took) = ended(&mut dan);
    eprintln!("dan cut off {took:?} after removal (sync_every 2 s)");
    assert!(
        stderr.contains("gatehouse: ") && stderr.contains("no longer in the site's directory"),
        "{stderr}"
    );
    gh.wait_for_event("user.removed", WAIT, |e| e["user"] == "dan");
    assert!(!site.can_login(gh, "dan", &k.dan));
    assert!(erin.is_running(), "erin's session must not be touched");

    // A mover: erin leaves group support, the only one web1 allows her by.
    site.slapd.modify(&format!(
        "dn: cn=support,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\n\
         member: uid=erin,ou=people,{SUFFIX}\n"
    ));
    let (stderr, took) = ended(&mut erin);
    eprintln!("erin cut off {took:?} after leaving the group");
    assert!(
        stderr.contains("gatehouse: ") && stderr.contains("no longer gives this access"),
        "{stderr}"
    );
    let changed = gh.wait_for_event("user.changed", WAIT, |e| e["user"] == "erin");
    assert_eq!(
        detail(&changed, "groups_left"),
        &serde_json::json!(["support"])
    );
    assert!(!site.can_login(gh, "erin", &k.erin));
    // The policy user was never touched.
    assert!(site.can_login(gh, "alice", &k.alice));

    // A joiner: back in the group, back in.
    site.slapd.modify(&format!(
        "dn: cn=support,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\n\
         member: uid=erin,ou=people,{SUFFIX}\n"
    ));
    assert!(
        wait_until(WAIT, || site.can_login(gh, "erin", &k.erin)),
        "erin back in support must log in again"
    );
}

/// A new key pair under the site's folder, for a user added mid-test.
fn new_key(site: &Site, name: &str) -> Key {
    keygen(&site.dir.join("keys"), name, KeyKind::Ed25519)
}

/// `ssh STAFF@bastion COMMAND --json` (command mode), parsed.
fn command_json(site: &Site, key: &Key, staff: &str, command: &str) -> Value {
    let out = site
        .client(site.node(), key)
        .ssh(staff, &[&format!("{command} --json")]);
    access::json_of(&out, &format!("ssh {staff}@bastion {command} --json"))
}

/// `staff` asks for a grant on ondb once the copy serves them; its id.
fn request_ondb(site: &Site, key: &Key, staff: &str) -> i64 {
    let client = site.client(site.node(), key);
    let cmd = "request ondb --for 1h --reason T-20 --json";
    let mut last = None;
    let asked = wait_until(WAIT, || {
        let out = client.ssh(staff, &[cmd]);
        let ok = out.status.success();
        last = Some(out);
        ok
    });
    let out = last.expect("one try at least");
    assert!(asked, "{staff} could not ask for ondb: {out:?}");
    let g = access::json_of(&out, cmd);
    assert_eq!(g["state"], "pending", "{g}");
    g["id"].as_i64().unwrap_or_else(|| panic!("no id in {g}"))
}

/// The grant's state as the approver dan sees it (`grants --json`).
fn grant_state(site: &Site, id: i64) -> String {
    let all = command_json(site, &site.keys.dan, "dan", "grants");
    all.as_array()
        .into_iter()
        .flatten()
        .find(|g| g["id"].as_i64() == Some(id))
        .and_then(|g| g["state"].as_str())
        .unwrap_or_else(|| panic!("grant {id} not in {all}"))
        .to_string()
}

/// The `grant.denied` the sync wrote for `id`: by `directory`, with a note.
fn cancelled_by_directory(site: &Site, id: i64) -> Value {
    let ev = site.node().wait_for_event("grant.denied", WAIT, |e| {
        e["detail"]["grant"].as_i64() == Some(id)
    });
    assert_eq!(detail(&ev, "by"), "directory", "{ev:#}");
    ev
}

/// dan (approver, group leads) may not approve a cancelled request.
fn approve_refused(site: &Site, id: i64) {
    let out = site
        .client(site.node(), &site.keys.dan)
        .ssh("dan", &[&format!("approve {id}")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("grant {id} is denied, not pending")),
        "{err}"
    );
}

#[test]
fn a_removed_key_ends_the_sessions_that_logged_in_with_it_and_only_those() {
    let site = Site::start(1, false, "10m");
    site.wait_synced();
    let gh = site.node();
    // gina holds two keys and is in support (web1 allows support).
    let key_a = new_key(&site, "gina-a");
    let key_b = new_key(&site, "gina-b");
    site.slapd
        .add(&person("gina", &[&key_a.public, &key_b.public], false));
    site.slapd.modify(&format!(
        "dn: cn=support,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\n\
         member: uid=gina,ou=people,{SUFFIX}\n"
    ));
    assert!(
        wait_until(WAIT, || site.can_login(gh, "gina", &key_a)),
        "gina must log in with key A: {:?}",
        site.login(gh, "gina", &key_a)
    );
    assert!(site.can_login(gh, "gina", &key_b));
    let with_a = site.client(gh, &key_a);
    let mut held_a =
        BackgroundSsh::start_long(&site.dir, &with_a, &with_a.destination("gina@web1"));
    let with_b = site.client(gh, &key_b);
    let mut held_b =
        BackgroundSsh::start_long(&site.dir, &with_b, &with_b.destination("gina@web1"));

    // Key A leaves gina's entry; gina stays, in the same groups.
    site.slapd.modify(&format!(
        "dn: uid=gina,ou=people,{SUFFIX}\nchangetype: modify\ndelete: sshPublicKey\n\
         sshPublicKey: {}\n",
        key_a.public
    ));
    let (stderr, took) = ended(&mut held_a);
    eprintln!("the session with key A cut off {took:?} after the key was removed");
    assert!(
        stderr.contains("gatehouse: ")
            && stderr.contains(
                "the key this session logged in with was removed from the site's directory"
            ),
        "{stderr}"
    );
    let changed = gh.wait_for_event("user.changed", WAIT, |e| {
        e["user"] == "gina" && e["detail"]["keys_removed"] == 1
    });
    assert_eq!(
        detail(&changed, "groups_left"),
        &serde_json::json!([]),
        "{changed:#}"
    );
    assert_eq!(detail(&changed, "source"), "directory", "{changed:#}");
    // Key A is refused from now on; key B logs in, and its session holds.
    assert!(!site.can_login(gh, "gina", &key_a));
    assert!(site.can_login(gh, "gina", &key_b));
    assert!(
        held_b.is_running(),
        "the session with key B must hold: {}",
        held_b.stderr_text()
    );
    // The session's end event says why; the other session has none.
    let ends: Vec<Value> = gh
        .audit_events_of("session.end")
        .into_iter()
        .filter(|e| e["user"] == "gina")
        .filter(|e| {
            detail(e, "reason")
                .as_str()
                .is_some_and(|r| r.contains("the key this session logged in with was removed"))
        })
        .collect();
    assert_eq!(ends.len(), 1, "{ends:#?}");
}

#[test]
fn pending_requests_of_leavers_and_movers_are_cancelled() {
    let site = Site::start(1, false, "10m");
    site.wait_synced();
    let gh = site.node();
    // ondb allows group dbas: ivan (will be disabled), jade (will leave
    // dbas) and kurt (stays) may ask for it.
    let ivan = new_key(&site, "ivan");
    let jade = new_key(&site, "jade");
    let kurt = new_key(&site, "kurt");
    site.slapd.add(
        &(person("ivan", &[&ivan.public], false)
            + &person("jade", &[&jade.public], false)
            + &person("kurt", &[&kurt.public], false)
            + &group_of_names("dbas", &["ivan", "jade", "kurt"])),
    );
    let ivan_req = request_ondb(&site, &ivan, "ivan");
    let jade_req = request_ondb(&site, &jade, "jade");
    let kurt_req = request_ondb(&site, &kurt, "kurt");

    // A leaver: ivan is disabled in the directory.
    site.slapd.modify(&format!(
        "dn: uid=ivan,ou=people,{SUFFIX}\nchangetype: modify\nadd: employeeType\n\
         employeeType: disabled\n"
    ));
    gh.wait_for_event("user.disabled", WAIT, |e| e["user"] == "ivan");
    let ev = cancelled_by_directory(&site, ivan_req);
    assert_eq!(ev["user"], "ivan", "{ev:#}");
    assert_eq!(ev["server"], "ondb", "{ev:#}");
    assert!(
        detail(&ev, "note").to_string().contains("disabled"),
        "{ev:#}"
    );
    assert_eq!(grant_state(&site, ivan_req), "denied");
    approve_refused(&site, ivan_req);
    assert_eq!(grant_state(&site, jade_req), "pending");

    // A mover: jade leaves dbas, the group that let her ask for ondb.
    site.slapd.modify(&format!(
        "dn: cn=dbas,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\n\
         member: uid=jade,ou=people,{SUFFIX}\n"
    ));
    gh.wait_for_event("user.changed", WAIT, |e| {
        e["user"] == "jade" && e["detail"]["groups_left"] == serde_json::json!(["dbas"])
    });
    let ev = cancelled_by_directory(&site, jade_req);
    assert!(
        detail(&ev, "note")
            .to_string()
            .contains("jade may no longer ask for ondb: none of their directory groups"),
        "{ev:#}"
    );
    assert_eq!(grant_state(&site, jade_req), "denied");
    approve_refused(&site, jade_req);
    // jade is still staff (command mode works) but may not ask again once
    // the node serves the new copy (it looks once a second).
    let jade_client = site.client(gh, &jade);
    let mut again = None;
    let refused = wait_until(WAIT, || {
        let out = jade_client.ssh("jade", &["request ondb --for 1h --reason T-21"]);
        let done = out.status.code() == Some(1);
        again = Some(out);
        done
    });
    assert!(refused, "jade may still ask for ondb: {again:?}");
    let whoami = jade_client.ssh("jade", &["whoami"]);
    assert!(whoami.status.success(), "{whoami:?}");

    // kurt stayed: his request is still pending, and dan approves it.
    assert_eq!(grant_state(&site, kurt_req), "pending");
    let g = command_json(&site, &site.keys.dan, "dan", &format!("approve {kurt_req}"));
    assert_eq!(g["state"], "approved", "{g}");
    // kurt's request was never touched (a request jade slipped in through
    // the previous copy would be cancelled too, by the next sync).
    let by_directory: Vec<i64> = gh
        .audit_events_of("grant.denied")
        .into_iter()
        .filter(|e| e["detail"]["by"] == "directory")
        .filter_map(|e| e["detail"]["grant"].as_i64())
        .collect();
    assert!(
        by_directory.contains(&ivan_req)
            && by_directory.contains(&jade_req)
            && !by_directory.contains(&kurt_req),
        "{by_directory:?}"
    );
}

#[test]
fn directory_away_last_copy_serves_then_directory_users_fail_closed() {
    let mut site = Site::start(1, false, "8s");
    site.wait_synced();
    let k = &site.keys;
    assert!(site.can_login(site.node(), "dan", &k.dan));

    site.slapd.stop();
    site.node()
        .wait_for_event("directory.unreachable", WAIT, |_| true);
    // Fail closed once the copy is older than max_stale; the policy user
    // is unaffected.
    assert!(
        wait_until(WAIT, || !site.can_login(site.node(), "dan", &k.dan)),
        "dan must be refused once the copy is older than max_stale"
    );
    assert!(site.can_login(site.node(), "alice", &k.alice));
    let health = site.node().cli(&["healthz"]);
    assert_eq!(health.status.code(), Some(1), "{health:?}");
    let text = health.stderr_text();
    assert!(
        text.contains("directory copy is stale"),
        "healthz names the directory: {text}"
    );
    // One unreachable event for the whole episode.
    assert_eq!(
        site.node().audit_events_of("directory.unreachable").len(),
        1
    );

    site.slapd.run();
    site.node()
        .wait_for_event("directory.recovered", WAIT, |_| true);
    assert!(
        wait_until(WAIT, || site.can_login(site.node(), "dan", &k.dan)),
        "dan must log in again once the directory answers"
    );
}

#[test]
fn the_last_copy_serves_while_the_directory_is_away_within_max_stale() {
    let mut site = Site::start(1, false, "10m");
    site.wait_synced();
    site.slapd.stop();
    site.node()
        .wait_for_event("directory.unreachable", WAIT, |_| true);
    let k = &site.keys;
    assert!(
        site.can_login(site.node(), "dan", &k.dan),
        "the last good copy serves"
    );
    assert!(!site.can_login(site.node(), "frank", &k.frank));
}

#[test]
fn two_nodes_on_one_postgresql_serve_the_same_copy() {
    let site = Site::start(2, true, "10m");
    site.wait_synced();
    let k = &site.keys;
    let (a, b) = (&site.nodes[0], &site.nodes[1]);
    assert!(wait_until(WAIT, || site.can_login(b, "dan", &k.dan)));
    assert!(site.can_login(a, "dan", &k.dan));
    let dan_b = site.client(b, &k.dan);
    let mut held = BackgroundSsh::start_long(&site.dir, &dan_b, &dan_b.destination("dan@web1"));
    site.slapd.delete(&format!("uid=dan,ou=people,{SUFFIX}"));
    let (stderr, _) = ended(&mut held);
    assert!(
        stderr.contains("no longer in the site's directory"),
        "{stderr}"
    );
    // Each node looks at the stored copy every second: the other one
    // follows within a second or so.
    assert!(wait_until(WAIT, || !site.can_login(a, "dan", &k.dan)));
    assert!(!site.can_login(b, "dan", &k.dan));
    // The change was announced once, by whichever node synced.
    std::thread::sleep(Duration::from_secs(3));
    let removed: Vec<Value> = a
        .audit_events_of("user.removed")
        .into_iter()
        .filter(|e| e["user"] == "dan")
        .collect();
    assert_eq!(removed.len(), 1, "{removed:#?}");
}

/// A bastion folder with only a config (no `serve`), for the CLI.
fn cli_home(dir: &TestDir, directory: &str) -> PathBuf {
    let home = dir.join("cli");
    std::fs::create_dir_all(home.join("policies")).expect("policies");
    std::fs::write(home.join("policies/p.toml"), "").expect("policy");
    std::fs::write(home.join("gatehouse.toml"), directory).expect("config");
    home
}

fn gatehouse(home: &Path, args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    c.arg("--config")
        .arg(home.join("gatehouse.toml"))
        .args(args);
    run(&mut c)
}

#[test]
fn directory_sync_and_show_over_starttls_with_ad_shaped_entries() {
    let dir = TestDir::new();
    let k = keys(&dir.join("keys"));
    let data = ad_user("Greta", &[&k.dan.public], &["dbas"], false)
        + &ad_user("Hans", &[&k.erin.public], &["dbas"], true)
        + &ad_user("bad name!", &[&k.frank.public], &[], false)
        + &ad_user("Ivo", &["ssh-ed25519 AAAA-not-a-key"], &[], false)
        + &group_of_names("dbas", &["nobody"]);
    let slapd = Slapd::start(&data);
    let secret = dir.join("directory.secret");
    slapd::write_secret(&secret);
    let toml = format!(
        "[directory]\nurl = \"{}\"\nstart_tls = true\nca_file = \"{}\"\n\
         bind_dn = \"{}\"\nbind_password_file = \"{}\"\nusers = \"ou=ad,{SUFFIX}\"\n\
         user_filter = \"(objectClass=adShapedUser)\"\nname_attribute = \"sAMAccountName\"\n\
         key_attribute = \"sshPublicKey\"\ngroups = \"ou=groups,{SUFFIX}\"\n\
         group_filter = \"(objectClass=groupOfNames)\"\n\
         disabled_filter = \"(userAccountControl:1.2.840.113556.1.4.803:=2)\"\n",
        slapd.ldap_url(),
        slapd.ca_file.display(),
        slapd::BIND_DN,
        secret.display()
    );
    let home = cli_home(&dir, &toml);

    let dry = gatehouse(&home, &["directory", "sync", "--dry-run", "--json"]);
    dry.assert_success("directory sync --dry-run");
    let r: Value = serde_json::from_slice(&dry.stdout).expect("JSON");
    assert_eq!(
        r["diff"]["added"],
        serde_json::json!(["greta", "ivo"]),
        "{r:#}"
    );
    assert_eq!(r["disabled"], 1, "Hans by userAccountControl: {r:#}");
    let reasons = r["skipped"].to_string();
    assert!(
        reasons.contains("invalid user name") && reasons.contains("malformed key"),
        "{r:#}"
    );
    // A dry run stores nothing.
    let show = gatehouse(&home, &["directory", "show", "greta"]);
    assert_eq!(show.status.code(), Some(1), "{show:?}");

    let sync = gatehouse(&home, &["directory", "sync"]);
    sync.assert_success("directory sync");
    assert!(
        sync.stdout_text().contains("+ greta: added"),
        "{}",
        sync.stdout_text()
    );
    let show = gatehouse(&home, &["directory", "show", "GRETA", "--json"]);
    show.assert_success("directory show greta");
    let shown: Value = serde_json::from_slice(&show.stdout).expect("JSON");
    assert_eq!(
        shown["groups"],
        serde_json::json!(["dbas"]),
        "memberOf: {shown:#}"
    );
    assert_eq!(shown["keys"].as_array().map(Vec::len), Some(1));
    let again = gatehouse(&home, &["directory", "sync"]);
    assert!(
        again.stdout_text().contains("(no change)"),
        "{}",
        again.stdout_text()
    );

    // A bind password others may read is refused, with a clear message.
    set_mode(&secret, 0o644);
    let refused = gatehouse(&home, &["directory", "sync"]);
    assert_eq!(refused.status.code(), Some(1));
    let err = refused.stderr_text();
    assert!(
        err.starts_with("error: ") && err.contains("chmod 600"),
        "{err}"
    );
}
