//! The `gatehouse` binary under test: writes its gatehouse.toml and policy
//! files into the test folder, runs `gatehouse serve`, waits for its
//! listener, and offers its admin CLI.
//!
//! Layout (HOME = `DIR/gatehouse` unless [`GatehouseOpts::name`] says
//! otherwise): `HOME/gatehouse.toml`, `HOME/policies/*.toml`,
//! `HOME/data/` (keys, SQLite database), `HOME/recordings`,
//! `HOME/reports`, `HOME/stdout.log`, `HOME/stderr.log`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::client::Client;
use super::keys::{Key, KeyKind, fingerprint, keygen_at};
use super::process::{ChildGuard, OutputExt, run, run_with_stdin};
use super::{TestDir, free_port, is_listening_by, log_tail, wait_until};

/// How the bastion is configured. `Default` gives a SQLite database in
/// `HOME/data` and no policy file.
#[derive(Debug, Clone)]
pub struct GatehouseOpts {
    /// Folder under the test folder; change it to run two bastions.
    pub name: String,
    /// sqlx database URL; `None` = `sqlite://HOME/data/gatehouse.db`.
    /// The PostgreSQL helper (tests/support/pg.rs) hands its URL in here.
    pub database: Option<String>,
    /// TOML merged into the generated gatehouse.toml: tables are merged key
    /// by key (so `[server]` or `[limits]` may appear here even though the
    /// harness writes `[server]` too), other values replace the harness's.
    pub extra_toml: String,
    /// Policy files `(file name, contents)` written to `HOME/policies/`.
    pub policies: Vec<(String, String)>,
    /// Extra environment for `gatehouse serve` (e.g. `GATEHOUSE_MASTER_KEY`).
    pub env: Vec<(String, String)>,
    /// Program run instead of the `gatehouse` binary; only the harness's
    /// own tests use it, with a stand-in server.
    pub binary: Option<PathBuf>,
}

impl Default for GatehouseOpts {
    fn default() -> Self {
        GatehouseOpts {
            name: "gatehouse".into(),
            database: None,
            extra_toml: String::new(),
            policies: Vec::new(),
            env: Vec::new(),
            binary: None,
        }
    }
}

impl GatehouseOpts {
    pub fn new() -> GatehouseOpts {
        GatehouseOpts::default()
    }
    pub fn policy(mut self, file_name: &str, contents: &str) -> Self {
        self.policies.push((file_name.into(), contents.into()));
        self
    }
    pub fn database(mut self, url: &str) -> Self {
        self.database = Some(url.into());
        self
    }
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra_toml.push('\n');
        self.extra_toml.push_str(toml);
        self
    }
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }
    pub fn binary(mut self, program: &Path) -> Self {
        self.binary = Some(program.to_path_buf());
        self
    }
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// A running (or stopped) bastion; killed on drop.
pub struct Gatehouse {
    pub home: PathBuf,
    pub config_path: PathBuf,
    pub port: u16,
    /// The bastion's identity key pair (what targets must authorize).
    pub identity: Key,
    pub stdout_log: PathBuf,
    pub stderr_log: PathBuf,
    opts: GatehouseOpts,
    child: Option<ChildGuard>,
}

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

impl Gatehouse {
    /// The folder of the bastion named `name` in this test.
    pub fn home_of(dir: &TestDir, name: &str) -> PathBuf {
        dir.join(name)
    }

    /// Creates the identity key (`HOME/data/identity_ed25519_key` + `.pub`)
    /// with ssh-keygen before the bastion first starts, so target sshds can
    /// authorize it first; the bastion then uses this key as it is.
    pub fn prepare_identity(dir: &TestDir) -> Key {
        Gatehouse::prepare_identity_in(&Gatehouse::home_of(dir, "gatehouse"))
    }

    /// [`Gatehouse::prepare_identity`] for the bastion whose home is `home`.
    pub fn prepare_identity_in(home: &Path) -> Key {
        let private = home.join("data").join("identity_ed25519_key");
        if private.exists() {
            return Key::load(&private);
        }
        keygen_at(&private, "gatehouse-identity", KeyKind::Ed25519)
    }

    /// Starts a bastion with `extra_toml` merged into its config and
    /// `policy_toml` as `policies/policy.toml`.
    pub fn start(dir: &TestDir, extra_toml: &str, policy_toml: &str) -> Gatehouse {
        Gatehouse::start_with(
            dir,
            GatehouseOpts::new()
                .extra_toml(extra_toml)
                .policy("policy.toml", policy_toml),
        )
    }

    /// Starts a bastion and waits until it listens (fails the test, showing
    /// its log, after about 20 s or when it exits first).
    pub fn start_with(dir: &TestDir, opts: GatehouseOpts) -> Gatehouse {
        let mut g = Gatehouse::configure(dir, opts);
        g.serve();
        g
    }

    /// Writes the folders, gatehouse.toml and policy files without starting
    /// the server, for tests that run admin commands (`vault set`, `grant`)
    /// first; then call [`Gatehouse::serve`].
    pub fn configure(dir: &TestDir, opts: GatehouseOpts) -> Gatehouse {
        let home = Gatehouse::home_of(dir, &opts.name);
        for sub in ["data", "policies", "recordings", "reports"] {
            std::fs::create_dir_all(home.join(sub)).unwrap();
        }
        for (name, text) in &opts.policies {
            std::fs::write(home.join("policies").join(name), text).unwrap();
        }
        let g = Gatehouse {
            stdout_log: home.join("stdout.log"),
            stderr_log: home.join("stderr.log"),
            identity: Key {
                private: PathBuf::new(),
                public_path: PathBuf::new(),
                public: String::new(),
            },
            config_path: home.join("gatehouse.toml"),
            home,
            port: free_port(),
            opts,
            child: None,
        };
        g.write_config();
        g
    }

    /// Runs `gatehouse serve` and waits until it listens; afterwards
    /// [`Gatehouse::identity`] holds the key it logs in to targets with.
    /// Picks a new port (rewriting the config) if another process took it.
    pub fn serve(&mut self) {
        assert!(self.child.is_none(), "gatehouse is running already");
        let mut last = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                self.port = free_port();
                self.write_config();
            }
            if self.spawn_and_wait() {
                self.identity = self.read_identity();
                return;
            }
            last = self.log_tail();
            if !last.contains("in use") {
                break;
            }
        }
        panic!(
            "gatehouse serve did not start listening on 127.0.0.1:{}; log:\n{last}",
            self.port
        );
    }

    fn write_config(&self) {
        let h = &self.home;
        let database = self
            .opts
            .database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", h.join("data/gatehouse.db").display()));
        let p = |rel: &str| toml::Value::String(h.join(rel).display().to_string());
        let mut server = toml::Table::new();
        server.insert("listen".into(), format!("127.0.0.1:{}", self.port).into());
        server.insert("host_key".into(), p("data/ssh_host_ed25519_key"));
        server.insert("identity_key".into(), p("data/identity_ed25519_key"));
        server.insert("policies".into(), p("policies"));
        server.insert("recordings".into(), p("recordings"));
        server.insert("reports".into(), p("reports"));
        server.insert("database".into(), database.into());
        server.insert("master_key".into(), p("data/master.key"));
        let mut config = toml::Table::new();
        config.insert("server".into(), server.into());
        let extra: toml::Table = toml::from_str(&self.opts.extra_toml).unwrap_or_else(|e| {
            panic!(
                "extra_toml is not valid TOML: {e}\n{}",
                self.opts.extra_toml
            )
        });
        merge(&mut config, extra);
        let text = toml::to_string(&config).expect("serialise gatehouse.toml");
        std::fs::write(&self.config_path, text).unwrap();
    }

    /// Spawns `gatehouse serve`; true once it listens, false if it exited
    /// or did not listen within 20 s (then it is killed).
    fn spawn_and_wait(&mut self) -> bool {
        let mut cmd = Command::new(self.program());
        cmd.arg("--config")
            .arg(&self.config_path)
            .arg("serve")
            .current_dir(&self.home)
            .env_remove("GATEHOUSE_MASTER_KEY")
            .env_remove("SSH_AUTH_SOCK");
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        let mut child = ChildGuard::spawn(
            "gatehouse",
            &mut cmd,
            Some(&self.stdout_log),
            Some(&self.stderr_log),
        );
        let port = self.port;
        let pid = child.pid();
        let up = wait_until(Duration::from_secs(20), || {
            is_listening_by(port, pid) || child.try_wait().is_some()
        });
        if up && child.try_wait().is_none() {
            self.child = Some(child);
            true
        } else {
            drop(child);
            false
        }
    }

    fn program(&self) -> PathBuf {
        self.opts
            .binary
            .clone()
            .unwrap_or_else(|| PathBuf::from(BIN))
    }

    fn read_identity(&self) -> Key {
        let private = self.identity_key_path();
        let mut public = private.as_os_str().to_owned();
        public.push(".pub");
        let public = PathBuf::from(public);
        // The server writes its keys before it listens; a short grace for
        // a server that writes the .pub file just after.
        if !wait_until(Duration::from_secs(5), || public.exists()) {
            panic!(
                "gatehouse is listening but did not write {} (contract: identity key as \
                 OpenSSH files KEY + KEY.pub); log:\n{}",
                public.display(),
                self.log_tail()
            );
        }
        Key::load(&private)
    }

    /// The identity key path from the written config (tests may override it).
    fn identity_key_path(&self) -> PathBuf {
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        let t: toml::Table = toml::from_str(&text).unwrap();
        let p = t
            .get("server")
            .and_then(|s| s.get("identity_key"))
            .and_then(|v| v.as_str())
            .unwrap_or("data/identity_ed25519_key");
        self.home.join(p)
    }

    /// `SHA256:...` of the bastion's host key, once it exists.
    pub fn host_key_fingerprint(&self) -> String {
        fingerprint(&self.home.join("data/ssh_host_ed25519_key"))
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A stock OpenSSH client for the staff member holding `key`.
    pub fn client(&self, dir: &TestDir, key: &Key) -> Client {
        Client::new(dir, key, self.port)
    }

    /// `gatehouse --config HOME/gatehouse.toml ARGS...` (cwd HOME, stdin
    /// /dev/null, the usual deadline).
    pub fn cli(&self, args: &[&str]) -> Output {
        run(&mut self.cli_command(args))
    }

    /// Like [`Gatehouse::cli`], feeding `stdin` (e.g. `vault set --password-stdin`).
    pub fn cli_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_with_stdin(&mut self.cli_command(args), stdin)
    }

    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.program());
        c.arg("--config")
            .arg(&self.config_path)
            .args(args)
            .current_dir(&self.home)
            .env_remove("GATEHOUSE_MASTER_KEY");
        for (k, v) in &self.opts.env {
            c.env(k, v);
        }
        c
    }

    /// `audit export` parsed: one JSON object per event (contract section 8).
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        let out = self.cli(&["audit", "export"]);
        out.assert_success("gatehouse audit export");
        out.stdout_text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
            .collect()
    }

    /// Events of one `kind` (e.g. `"session.start"`).
    pub fn audit_events_of(&self, kind: &str) -> Vec<serde_json::Value> {
        self.audit_events()
            .into_iter()
            .filter(|e| e.get("kind").and_then(|k| k.as_str()) == Some(kind))
            .collect()
    }

    /// Polls `audit export` until an event of `kind` matching `pred`
    /// exists and returns it; fails the test after `timeout`.
    pub fn wait_for_event(
        &self,
        kind: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut found = None;
        let ok = wait_until(timeout, || {
            found = self.audit_events_of(kind).into_iter().find(|e| pred(e));
            found.is_some()
        });
        match found {
            Some(e) if ok => e,
            _ => panic!(
                "no {kind} event within {timeout:?}; events:\n{:#?}",
                self.audit_events()
            ),
        }
    }

    /// Replaces (or adds) policy file `file_name`: written beside, then
    /// renamed, so a watching server never reads half a file.
    pub fn write_policy(&self, file_name: &str, contents: &str) {
        let dir = self.home.join("policies");
        let tmp = dir.join(format!(".{file_name}.tmp"));
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, dir.join(file_name)).unwrap();
    }

    pub fn remove_policy(&self, file_name: &str) {
        std::fs::remove_file(self.home.join("policies").join(file_name)).unwrap();
    }

    /// Both logs so far (stdout then stderr).
    pub fn log(&self) -> String {
        let mut s = std::fs::read_to_string(&self.stdout_log).unwrap_or_default();
        s.push_str(&std::fs::read_to_string(&self.stderr_log).unwrap_or_default());
        s
    }

    fn log_tail(&self) -> String {
        format!(
            "--- stdout ({})\n{}\n--- stderr ({})\n{}",
            self.stdout_log.display(),
            log_tail(&self.stdout_log, 3000),
            self.stderr_log.display(),
            log_tail(&self.stderr_log, 5000)
        )
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid())
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().is_none(),
            None => false,
        }
    }

    /// SIGTERM, then waits up to 10 s (SIGKILL after that). True when the
    /// server exited on its own with status 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        child.signal(libc::SIGTERM);
        match child.wait_timeout(Duration::from_secs(10)) {
            Some(status) => status.success(),
            None => {
                child.kill();
                false
            }
        }
    }

    /// SIGKILL at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Starts the server again with the same config and data, on the same
    /// port when it is still free (stopping it first if it runs).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.serve();
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- gatehouse on port {} ({}):\n{}",
                self.port,
                self.home.display(),
                self.log_tail()
            );
        }
        // The ChildGuard kills the server when dropped.
    }
}

/// Merges `extra` into `base`: tables recursively, everything else replaced.
pub fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (k, v) in extra {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}
