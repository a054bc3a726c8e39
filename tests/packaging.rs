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
//! - `docker/gatehouse.service` goes through `systemd-analyze verify` and
//!   `systemd-analyze security --offline` (when systemd-analyze exists),
//!   plus a check of the hardening options themselves.
//!
//! What could not be checked is printed by each test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use gatehouse::config::Config;
use serde_norway::Value;

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
    for v in ["/data", "/policies", "/recordings"] {
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
    // The config the image ships loads, with every path on a volume.
    let cfg = load_config("docker/gatehouse.toml", "/etc/gatehouse/gatehouse.toml");
    for (what, p) in [
        ("host_key", &cfg.host_key),
        ("identity_key", &cfg.identity_key),
        ("signing_key", &cfg.signing_key),
        ("master_key", &cfg.master_key),
        ("reports", &cfg.reports),
        ("policies", &cfg.policies),
        ("recordings", &cfg.recordings),
    ] {
        assert!(
            ["/data", "/policies", "/recordings"]
                .iter()
                .any(|v| p.starts_with(v)),
            "{what} = {} is on no volume",
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
