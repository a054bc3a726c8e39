//! Packaging (issue 10 items 3 and 4), checked as far as this machine
//! allows. No Docker daemon runs here, so nothing is built or started:
//! - `docker/compose.yaml` is parsed (and given to `docker compose config`
//!   when the compose plugin exists) and must define PostgreSQL and two
//!   Gatehouse nodes with distinct node names sharing one database, one
//!   data volume and one recordings volume;
//! - the configurations the image and compose ship are loaded by
//!   Gatehouse's own config parser (unknown keys are errors there);
//! - the Dockerfile is read: a build stage running exactly
//!   `cargo build --release --locked`, whose `--locked` is checked against
//!   the lock file here; a Debian slim runtime as a non-root user with the
//!   three volumes; every file it copies exists and is not excluded from
//!   the build context;
//! - every path a node writes (its resolved configuration, defaults
//!   included) lies on a writable volume, and a node's audit spool on a
//!   volume of its own;
//! - a compose node's configuration and volumes are laid out in a
//!   temporary root (each container path `/X` at `ROOT/X`, the config
//!   folder read-only), and `gatehouse serve` runs there as an
//!   unprivileged user on a throwaway PostgreSQL: it starts, takes a
//!   login, writes only to its volumes, and `gatehouse healthz` (the
//!   image's health check) says ok;
//! - `docker/gatehouse.service` goes through `systemd-analyze verify` and
//!   `systemd-analyze security --offline` (when systemd-analyze exists),
//!   plus a check of the hardening options themselves.
//!
//! What could not be checked is printed by each test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gatehouse::config::Config;
use serde_norway::Value;

mod common;
#[path = "support/pg.rs"]
mod pg;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn have(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn not_checked(what: &str) {
    eprintln!("NOT CHECKED here: {what}");
}

/// A config file as Gatehouse loads it, placed where the image puts it.
fn load_config(rel: &str, installed_at: &str) -> Config {
    Config::from_str_at(&read(rel), Path::new(installed_at))
        .unwrap_or_else(|e| panic!("{rel} does not load: {e}"))
}

// ---------------------------------------------------------------- compose --

fn compose() -> Value {
    serde_norway::from_str(&read("docker/compose.yaml")).expect("compose.yaml is YAML")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `SOURCE:TARGET[:ro]` volume entries of a service, by target.
fn mounts(service: &Value) -> BTreeMap<String, (String, bool)> {
    strings(&service["volumes"])
        .iter()
        .map(|m| {
            let parts: Vec<&str> = m.split(':').collect();
            assert!(parts.len() >= 2, "volume {m:?}");
            let ro = parts.get(2) == Some(&"ro");
            (parts[1].to_string(), (parts[0].to_string(), ro))
        })
        .collect()
}

/// Every path `serve` may write under `cfg` (defaults included), by key.
fn written_paths(cfg: &Config) -> Vec<(&'static str, PathBuf)> {
    let mut v = vec![
        ("server.host_key", cfg.host_key.clone()),
        ("server.identity_key", cfg.identity_key.clone()),
        ("server.signing_key", cfg.signing_key.clone()),
        ("server.master_key", cfg.master_key.clone()),
        ("server.reports", cfg.reports.clone()),
        ("server.recordings", cfg.recordings.clone()),
        ("server.audit_spool", cfg.audit_spool.clone()),
        ("ca.key", cfg.ca_key.clone()),
        ("web.cert", cfg.web.cert.clone()),
        ("web.key", cfg.web.key.clone()),
    ];
    if let Some(file) = cfg.database.strip_prefix("sqlite://") {
        v.push(("server.database", PathBuf::from(file)));
    }
    v
}

/// The writable mount of `mounts` that holds `path`, if any.
fn writable_mount<'a>(
    mounts: &'a BTreeMap<String, (String, bool)>,
    path: &Path,
) -> Option<&'a str> {
    mounts
        .iter()
        .filter(|(target, (_, ro))| !ro && path.starts_with(target.as_str()))
        .map(|(target, _)| target.as_str())
        .max_by_key(|t| t.len())
}

#[test]
fn compose_runs_postgresql_and_two_nodes_sharing_state() {
    let c = compose();
    let services = c["services"].as_mapping().expect("services");
    let names: Vec<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    let pg = &c["services"]["postgres"];
    assert!(
        pg["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("postgres")),
        "a postgres service: {names:?}"
    );
    assert!(
        pg["healthcheck"].is_mapping(),
        "postgres has a health check"
    );
    let nodes: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("gatehouse"))
        .collect();
    assert_eq!(nodes.len(), 2, "two gatehouse nodes: {names:?}");

    // Node names: a node is named after its host name (the config names
    // none), so the hostnames must differ.
    let hostnames: Vec<&str> = nodes
        .iter()
        .map(|n| c["services"][*n]["hostname"].as_str().expect("hostname"))
        .collect();
    assert_ne!(hostnames[0], hostnames[1], "distinct node names");

    let mut configs = Vec::new();
    let mut ports = Vec::new();
    for n in &nodes {
        let s = &c["services"][*n];
        assert!(
            s["depends_on"]["postgres"]["condition"].as_str() == Some("service_healthy"),
            "{n} waits for PostgreSQL"
        );
        let m = mounts(s);
        for target in ["/data", "/recordings"] {
            let (source, ro) = m
                .get(target)
                .unwrap_or_else(|| panic!("{n} mounts {target}"));
            assert!(!ro, "{n}: {target} is writable");
            assert!(
                c["volumes"].get(source.as_str()).is_some(),
                "{n}: {target} is the named volume {source:?}"
            );
        }
        let (policies, ro) = m.get("/policies").expect("policies mounted");
        assert!(*ro, "policies are mounted read-only");
        assert!(repo().join("docker").join(policies).is_dir(), "{policies}");
        let (cfg, _) = m
            .get("/etc/gatehouse/gatehouse.toml")
            .expect("config mounted");
        configs.push(cfg.clone());
        ports.extend(strings(&s["ports"]));
        assert_eq!(
            s["cap_drop"][0].as_str(),
            Some("ALL"),
            "{n} drops capabilities"
        );
    }
    // One database, one data volume, one recordings volume for both.
    let m0 = mounts(&c["services"][nodes[0]]);
    let m1 = mounts(&c["services"][nodes[1]]);
    assert_eq!(m0.get("/data"), m1.get("/data"), "one data volume");
    assert_eq!(
        m0.get("/recordings"),
        m1.get("/recordings"),
        "one recordings volume"
    );
    assert_eq!(configs[0], configs[1], "one configuration");
    let cfg = load_config(
        &format!("docker/{}", configs[0].trim_start_matches("./")),
        "/etc/gatehouse/gatehouse.toml",
    );
    assert!(
        cfg.database.starts_with("postgres://") && cfg.database.contains("@postgres:"),
        "the nodes use the postgres service: {}",
        cfg.database
    );
    assert!(cfg.recordings.starts_with("/recordings"));
    assert!(cfg.master_key.starts_with("/data") && cfg.host_key.starts_with("/data"));
    // The containers are read-only: everything a node writes is on a
    // writable volume, and a node's audit spool on its own (a spool is
    // replayed by the node that wrote it).
    let mut spools = Vec::new();
    for n in &nodes {
        let m = mounts(&c["services"][*n]);
        assert_eq!(c["services"][*n]["read_only"].as_bool(), Some(true), "{n}");
        for (key, path) in written_paths(&cfg) {
            let mount = writable_mount(&m, &path).unwrap_or_else(|| {
                panic!(
                    "{n}: {key} = {} is on no writable volume (a read-only file system)",
                    path.display()
                )
            });
            if key == "server.audit_spool" {
                spools.push(m[mount].0.clone());
            }
        }
    }
    assert_ne!(spools[0], spools[1], "each node spools to its own volume");
    let password = pg["environment"]["POSTGRES_PASSWORD"]
        .as_str()
        .expect("password");
    assert!(
        cfg.database.contains(&format!(":{password}@")),
        "same password"
    );
    let mut host_ports: Vec<&str> = ports
        .iter()
        .map(|p| p.rsplit_once(':').map_or(p.as_str(), |x| x.0))
        .collect();
    let all = host_ports.len();
    host_ports.sort();
    host_ports.dedup();
    assert_eq!(
        host_ports.len(),
        all,
        "no host port published twice: {ports:?}"
    );

    if have("docker", &["compose", "version"]) {
        let out = Command::new("docker")
            .args(["compose", "-f"])
            .arg(repo().join("docker/compose.yaml"))
            .args(["config", "--quiet"])
            .output()
            .expect("docker compose config");
        assert!(
            out.status.success(),
            "docker compose config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        not_checked("`docker compose config` (no compose plugin on this machine)");
    }
    not_checked("starting the compose project (no Docker daemon)");
}

/// Rewrites a compose node's configuration for a run on this machine, as
/// the container would see it: every absolute path `/X` becomes `ROOT/X`,
/// the `postgres` service becomes `db_url`, and the listen addresses take
/// free ports on 127.0.0.1. Returns the text and the SSH port.
fn remap_config(text: &str, root: &Path, db_url: &str) -> (String, u16) {
    fn walk(v: &mut toml::Value, root: &Path) {
        match v {
            toml::Value::String(s) if s.starts_with('/') => {
                *s = format!("{}{s}", root.display());
            }
            toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| walk(v, root)),
            toml::Value::Array(a) => a.iter_mut().for_each(|v| walk(v, root)),
            _ => {}
        }
    }
    let mut t: toml::Table = toml::from_str(text).expect("compose.toml is TOML");
    let server = t
        .get_mut("server")
        .and_then(|s| s.as_table_mut())
        .expect("[server]");
    let db = server
        .get("database")
        .and_then(|d| d.as_str())
        .expect("database");
    assert!(db.contains("@postgres:"), "the postgres service: {db}");
    server.insert("database".into(), db_url.into());
    let port = common::free_port();
    server.insert("listen".into(), format!("127.0.0.1:{port}").into());
    if let Some(m) = t.get_mut("metrics").and_then(|m| m.as_table_mut()) {
        m.insert(
            "listen".into(),
            format!("127.0.0.1:{}", common::free_port()).into(),
        );
    }
    let mut v = toml::Value::Table(t);
    walk(&mut v, root);
    (toml::to_string(&v).expect("toml"), port)
}

/// `uid` and `gid` of a local account.
fn ids_of(account: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, account])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("numeric id")
    };
    (id("-u"), id("-g"))
}

/// Every file below `dir` (folders not listed).
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_below(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_compose_node_starts_on_its_volumes_as_an_unprivileged_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        not_checked("starting a compose node as another uid (needs root)");
        return;
    }
    use common::*;
    use std::os::unix::process::CommandExt;
    ensure_account("ghtest");
    let (uid, gid) = ids_of("ghtest");
    let c = compose();
    let node = &c["services"]["gatehouse-1"];
    let dir = TestDir::new();
    let db = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(pg::fresh_db());
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);

    // The container's file system: ROOT, root's and read-only to the node's
    // user, with its volumes inside; new named volumes take the ownership
    // of the image's folders (the Dockerfile gives them to its user).
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc/gatehouse")).expect("etc");
    let mut config_path = None;
    for (target, (source, _ro)) in mounts(node) {
        let host = root.join(target.trim_start_matches('/'));
        if target == "/etc/gatehouse/gatehouse.toml" {
            let text = read(&format!("docker/{}", source.trim_start_matches("./")));
            let (text, port) = remap_config(&text, &root, &db.url);
            std::fs::write(&host, text).expect("config");
            set_mode(&host, 0o644);
            config_path = Some((host, port));
            continue;
        }
        std::fs::create_dir_all(&host).expect("volume");
        if c["volumes"].get(source.as_str()).is_some() {
            std::os::unix::fs::chown(&host, Some(uid), Some(gid)).expect("chown");
            set_mode(&host, 0o750);
        } else if target == "/policies" {
            std::fs::write(
                host.join("policy.toml"),
                policy_user("alice", &alice, &["support"]),
            )
            .expect("policy");
        }
    }
    let (config, port) = config_path.expect("the node mounts its configuration");
    for p in [&root, &root.join("etc"), &root.join("etc/gatehouse")] {
        set_mode(p, 0o755);
    }
    let environment: Vec<(String, String)> = match &node["environment"] {
        Value::Mapping(m) => m
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
            .collect(),
        _ => strings(&node["environment"])
            .iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.into(), v.into())))
            .collect(),
    };
    let gatehouse = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.arg("--config")
            .arg(&config)
            .args(args)
            // The image's WORKDIR.
            .current_dir(root.join("data"))
            .env_remove("GATEHOUSE_MASTER_KEY")
            // The image's user has /data as its home.
            .env("HOME", root.join("data"))
            .envs(environment.iter().map(|(k, v)| (k, v)))
            .uid(uid)
            .gid(gid);
        cmd
    };

    let log = dir.join("serve.log");
    let mut serve = ChildGuard::spawn(
        "gatehouse",
        &mut gatehouse(&["serve"]),
        Some(&log),
        Some(&log),
    );
    let pid = serve.pid();
    let up = wait_until(Duration::from_secs(30), || {
        is_listening_by(port, pid) || serve.try_wait().is_some()
    });
    assert!(
        up && serve.try_wait().is_none(),
        "serve did not start with the compose configuration:\n{}",
        log_tail(&log, 4000)
    );
    let out = Client::new(&dir, &alice, port).ssh("alice", &["whoami"]);
    out.assert_success("a login to the compose node");
    assert!(out.stdout_text().contains("alice"), "{}", out.stdout_text());
    let health = run(&mut gatehouse(&["healthz"]));
    health.assert_success("the image's health check");

    // It wrote only to its volumes.
    let written: Vec<PathBuf> = files_below(&root)
        .into_iter()
        .filter(|p| !p.starts_with(root.join("policies")) && p != &config)
        .collect();
    assert!(
        written.iter().any(|p| p.starts_with(root.join("data"))),
        "{written:?}"
    );
    for p in &written {
        let on_volume = mounts(node).iter().any(|(t, (src, _))| {
            c["volumes"].get(src.as_str()).is_some()
                && p.starts_with(root.join(t.trim_start_matches('/')))
        });
        assert!(on_volume, "{} is on no volume", p.display());
    }
    serve.signal(libc::SIGTERM);
    assert!(
        serve.wait_timeout(Duration::from_secs(20)).is_some(),
        "serve stops on SIGTERM"
    );
    not_checked("the image itself (no Docker daemon); the same config, volumes and uid were run");
}

// ------------------------------------------------------------- Dockerfile --

/// The Dockerfile's instructions, continuation lines joined: (stage index,
/// INSTRUCTION, arguments).
fn instructions(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut stage = 0usize;
    let mut seen_from = false;
    let mut line = String::new();
    for raw in text.lines() {
        let t = raw.trim();
        if line.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        if let Some(part) = t.strip_suffix('\\') {
            line.push_str(part);
            line.push(' ');
            continue;
        }
        line.push_str(t);
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let word = word.to_ascii_uppercase();
        if word == "FROM" {
            if seen_from {
                stage += 1;
            }
            seen_from = true;
        }
        out.push((
            stage,
            word,
            rest.split_whitespace().collect::<Vec<_>>().join(" "),
        ));
        line.clear();
    }
    out
}

#[test]
fn dockerfile_builds_locked_and_runs_unprivileged_with_volumes() {
    let text = read("docker/Dockerfile");
    let ins = instructions(&text);
    let froms: Vec<&(usize, String, String)> = ins.iter().filter(|i| i.1 == "FROM").collect();
    assert_eq!(froms.len(), 2, "multi-stage: build and runtime");
    assert!(
        froms[0].2.starts_with("rust:") && froms[0].2.ends_with(" AS build"),
        "{:?}",
        froms[0]
    );
    assert!(
        froms[1].2.contains("-slim"),
        "a slim runtime image: {:?}",
        froms[1]
    );
    let in_stage = |s: usize, word: &str| -> Vec<String> {
        ins.iter()
            .filter(|i| i.0 == s && i.1 == word)
            .map(|i| i.2.clone())
            .collect()
    };
    assert!(
        in_stage(0, "RUN")
            .iter()
            .any(|r| r.contains("cargo build --release --locked")),
        "the build stage runs `cargo build --release --locked`"
    );
    // The runtime stage takes only the binary from the build.
    let from_build: Vec<String> = in_stage(1, "COPY")
        .into_iter()
        .filter(|c| c.starts_with("--from=build"))
        .collect();
    assert_eq!(from_build.len(), 1, "{from_build:?}");
    assert!(from_build[0].contains("/gatehouse"));

    let user = in_stage(1, "USER");
    assert_eq!(user.len(), 1, "runs as a named user");
    assert!(
        !user[0].starts_with("root") && !user[0].starts_with('0'),
        "{user:?}"
    );
    let volumes = in_stage(1, "VOLUME").join(" ");
    for v in ["/data", "/policies", "/recordings", "/spool"] {
        assert!(
            volumes.contains(&format!("\"{v}\"")),
            "VOLUME {v}: {volumes}"
        );
    }
    assert!(
        in_stage(1, "HEALTHCHECK")
            .iter()
            .any(|h| h.contains("healthz")),
        "the image's health check runs `gatehouse healthz`"
    );

    // Every file the runtime copies from the context exists and is not
    // excluded by docker/Dockerfile.dockerignore.
    let ignore = read("docker/Dockerfile.dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    assert!(
        ignored.contains(&"target"),
        "the context leaves target/ out"
    );
    for copy in in_stage(1, "COPY").iter().filter(|c| !c.starts_with("--")) {
        let src = copy.split_whitespace().next().unwrap_or_default();
        let src = src.trim_end_matches('/');
        assert!(repo().join(src).exists(), "COPY {src}: missing");
        assert!(
            !ignored
                .iter()
                .any(|i| src == *i || src.starts_with(&format!("{i}/"))),
            "COPY {src} is excluded from the context"
        );
    }
    // The config the image ships loads, with every path on a volume (and
    // every path it writes on one the image's user owns).
    let cfg = load_config("docker/gatehouse.toml", "/etc/gatehouse/gatehouse.toml");
    assert!(
        cfg.policies.starts_with("/policies"),
        "policies = {}",
        cfg.policies.display()
    );
    for (what, p) in written_paths(&cfg) {
        assert!(
            ["/data", "/recordings", "/spool"]
                .iter()
                .any(|v| p.starts_with(v) && volumes.contains(&format!("\"{v}\""))),
            "{what} = {} is on no writable volume",
            p.display()
        );
    }
    assert!(cfg.metrics.listen.is_some(), "the image serves /healthz");

    // `--locked` fails when Cargo.lock is out of step with Cargo.toml: check
    // that here, the part of the build stage that can fail without Docker.
    // `cargo tree` resolves for this host only, so it needs no more than
    // the test build downloaded (`cargo metadata` wants every platform's
    // crates, which a fresh machine has not fetched, and fails offline).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(repo())
        .args(["tree", "--locked", "--offline", "--quiet"])
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "Cargo.lock is not in step (the image's `cargo build --locked` would fail): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    not_checked(
        "`docker build` itself (no Docker daemon); CI builds the same `cargo build --release --locked`",
    );
}

// ---------------------------------------------------------------- systemd --

fn unit_settings(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') || line.is_empty() {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            m.entry(k.trim().to_string())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    m
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let text = read("docker/gatehouse.service");
    let s = unit_settings(&text);
    let one = |k: &str| -> String {
        let v = s.get(k).unwrap_or_else(|| panic!("{k}= is missing"));
        v.last().cloned().unwrap_or_default()
    };
    assert_eq!(one("User"), "gatehouse");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("PrivateTmp"), "yes");
    assert_eq!(one("ProtectHome"), "yes");
    assert_eq!(one("CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    let writable = one("ReadWritePaths");
    assert!(one("ExecStart").contains(" serve"), "runs serve");
    // Everything the host config writes is under the writable path.
    let cfg = load_config(
        "docker/gatehouse.host.toml",
        "/etc/gatehouse/gatehouse.toml",
    );
    for p in [
        &cfg.host_key,
        &cfg.identity_key,
        &cfg.signing_key,
        &cfg.master_key,
        &cfg.recordings,
        &cfg.reports,
    ] {
        assert!(
            p.starts_with(&writable),
            "{} outside {writable}",
            p.display()
        );
    }
    assert!(cfg.database.contains(&writable), "{}", cfg.database);
    assert!(cfg.policies.starts_with("/etc/gatehouse"));

    if !have("systemd-analyze", &["--version"]) {
        not_checked("systemd-analyze verify/security (systemd-analyze is not installed)");
        return;
    }
    // verify wants ExecStart's program to exist: point it at this build.
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("gatehouse.service");
    let bin = env!("CARGO_BIN_EXE_gatehouse");
    std::fs::write(&unit, text.replace("/usr/local/bin/gatehouse", bin)).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze verify");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze security");
    let report = String::from_utf8_lossy(&out.stdout);
    let level: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for gatehouse.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    // systemd rates 0-10; up to 2 is "OK", the best band.
    assert!(level <= 2.0, "exposure {level}:\n{report}");
    not_checked("starting the unit (no systemd as PID 1 here)");
}
