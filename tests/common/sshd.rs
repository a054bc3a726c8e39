//! Real OpenSSH `sshd` targets on 127.0.0.1, one folder and one free port
//! each, with their own host key and per-account authorized_keys files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::keys::{Key, KeyKind, keygen_at};
use super::process::ChildGuard;
use super::{TestDir, ensure_account, free_port, is_listening_by, log_tail, set_mode, wait_until};

const SSHD: &str = "/usr/sbin/sshd";

/// What a target sshd accepts.
#[derive(Debug, Clone, Default)]
pub struct SshdOpts {
    /// `(account, public key line)`: written to that account's
    /// authorized_keys file (`AuthorizedKeysFile DIR/authorized_keys/%u`).
    /// Accounts other than root are created if missing.
    pub authorized: Vec<(String, String)>,
    /// `PasswordAuthentication`, `KbdInteractiveAuthentication` and `UsePAM`
    /// all `yes` (password targets, vault tests); otherwise all `no`.
    pub password_auth: bool,
    /// `AllowUsers` when not empty.
    pub allow_users: Vec<String>,
    /// Extra `sshd_config` lines, appended as they are.
    pub extra: Vec<String>,
    /// A CA public key line: user certificates it signed are accepted
    /// (`TrustedUserCAKeys`, principal = the account name).
    pub trusted_user_ca: Option<String>,
}

impl SshdOpts {
    pub fn new() -> SshdOpts {
        SshdOpts::default()
    }

    /// Accepts `public_key` (a `ssh-... AAAA...` line) for `account`.
    pub fn authorize(mut self, account: &str, public_key: &str) -> SshdOpts {
        self.authorized
            .push((account.to_string(), public_key.trim().to_string()));
        self
    }

    pub fn password_auth(mut self) -> SshdOpts {
        self.password_auth = true;
        self
    }

    pub fn allow_users(mut self, users: &[&str]) -> SshdOpts {
        self.allow_users = users.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn extra(mut self, line: &str) -> SshdOpts {
        self.extra.push(line.to_string());
        self
    }

    pub fn trust_user_ca(mut self, ca_public_key: &str) -> SshdOpts {
        self.trusted_user_ca = Some(ca_public_key.trim().to_string());
        self
    }
}

/// A running target sshd; killed on drop.
pub struct Sshd {
    pub port: u16,
    /// `SHA256:...` of the target's ed25519 host key (for the policy's `host_key`).
    pub host_key_fingerprint: String,
    pub host_key: Key,
    /// The folder holding its config, keys, pid file and log.
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    child: ChildGuard,
}

impl Sshd {
    /// Starts a target sshd and waits until it listens (fails the test,
    /// showing the sshd log, after about 10 s).
    pub fn start(dir: &TestDir, opts: SshdOpts) -> Sshd {
        for (account, _) in &opts.authorized {
            if account != "root" {
                ensure_account(account);
            }
        }
        // Privilege separation folder; a fresh container may not have it.
        let _ = std::fs::create_dir_all("/run/sshd");
        set_mode(Path::new("/run/sshd"), 0o755);

        let home = dir.join(dir.unique("sshd"));
        std::fs::create_dir_all(home.join("authorized_keys")).unwrap();
        set_mode(&home, 0o755);
        set_mode(&home.join("authorized_keys"), 0o755);
        let host_key = keygen_at(
            &home.join("ssh_host_ed25519_key"),
            "target",
            KeyKind::Ed25519,
        );
        let host_key_fingerprint = host_key.fingerprint();
        let sshd_keys = home.join("authorized_keys");
        for (account, key) in &opts.authorized {
            append_line(&sshd_keys.join(account), key);
        }
        if let Some(ca) = &opts.trusted_user_ca {
            append_line(&home.join("trusted_user_ca_keys"), ca);
        }
        let log_path = home.join("sshd.log");
        let config_path = home.join("sshd_config");

        let mut last_log = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            std::fs::write(&config_path, config_text(&home, port, &opts)).unwrap();
            // `-t` first: a config mistake is reported clearly, not as a timeout.
            let check = Command::new(SSHD)
                .args(["-t", "-f"])
                .arg(&config_path)
                .output()
                .expect("run sshd -t");
            assert!(
                check.status.success(),
                "sshd -t rejected {}:\n{}",
                config_path.display(),
                String::from_utf8_lossy(&check.stderr)
            );
            let mut child = ChildGuard::spawn(
                "sshd",
                Command::new(SSHD)
                    .args(["-D", "-e", "-f"])
                    .arg(&config_path),
                Some(&log_path),
                Some(&log_path),
            );
            let pid = child.pid();
            let up = wait_until(Duration::from_secs(10), || {
                is_listening_by(port, pid) || child.try_wait().is_some()
            });
            if up && child.try_wait().is_none() {
                return Sshd {
                    port,
                    host_key_fingerprint,
                    host_key,
                    dir: home,
                    config_path,
                    log_path,
                    child,
                };
            }
            last_log = log_tail(&log_path, 4000);
            drop(child);
            if !last_log.contains("in use") {
                break;
            }
        }
        panic!("sshd did not start; log:\n{last_log}");
    }

    /// Adds `public_key` to `account`'s authorized_keys (read per login).
    pub fn authorize(&self, account: &str, public_key: &str) {
        if account != "root" {
            ensure_account(account);
        }
        append_line(&self.dir.join("authorized_keys").join(account), public_key);
    }

    /// Empties `account`'s authorized_keys.
    pub fn revoke_all(&self, account: &str) {
        let _ = std::fs::write(self.dir.join("authorized_keys").join(account), "");
    }

    /// The sshd log so far (LogLevel VERBOSE).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `127.0.0.1:PORT`, as a policy's `address`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Stops the listener now (established sessions live on in their own
    /// processes until their clients leave).
    pub fn stop(mut self) {
        self.child.kill();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- sshd on port {} ({}), log tail:\n{}",
                self.port,
                self.log_path.display(),
                log_tail(&self.log_path, 3000)
            );
        }
    }
}

fn append_line(path: &Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    writeln!(f, "{}", line.trim()).unwrap();
    drop(f);
    set_mode(path, 0o644);
}

fn config_text(home: &Path, port: u16, opts: &SshdOpts) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut c = String::new();
    let h = home.display();
    let _ = writeln!(c, "Port {port}");
    let _ = writeln!(c, "ListenAddress 127.0.0.1");
    let _ = writeln!(c, "HostKey {h}/ssh_host_ed25519_key");
    let _ = writeln!(c, "PidFile {h}/sshd.pid");
    let _ = writeln!(c, "AuthorizedKeysFile {h}/authorized_keys/%u");
    let _ = writeln!(c, "StrictModes no");
    let _ = writeln!(c, "PermitRootLogin yes");
    let _ = writeln!(c, "PubkeyAuthentication yes");
    let _ = writeln!(c, "PasswordAuthentication {}", yes_no(opts.password_auth));
    let _ = writeln!(
        c,
        "KbdInteractiveAuthentication {}",
        yes_no(opts.password_auth)
    );
    let _ = writeln!(c, "UsePAM {}", yes_no(opts.password_auth));
    let _ = writeln!(c, "Subsystem sftp internal-sftp");
    let _ = writeln!(c, "AllowTcpForwarding yes");
    let _ = writeln!(c, "X11Forwarding no");
    let _ = writeln!(c, "PrintMotd no");
    let _ = writeln!(c, "PrintLastLog no");
    let _ = writeln!(c, "UseDNS no");
    // bash skips ~/.bashrc for `ssh host cmd` when SHLVL is already set:
    // the root account here initialises pyenv there, 0.35 s per command.
    let _ = writeln!(c, "SetEnv SHLVL=1");
    // Many tests connect at once through one bastion: no early drops.
    let _ = writeln!(c, "MaxStartups 200");
    let _ = writeln!(c, "MaxSessions 100");
    let _ = writeln!(c, "LogLevel VERBOSE");
    if opts.trusted_user_ca.is_some() {
        let _ = writeln!(c, "TrustedUserCAKeys {h}/trusted_user_ca_keys");
    }
    if !opts.allow_users.is_empty() {
        let _ = writeln!(c, "AllowUsers {}", opts.allow_users.join(" "));
    }
    for line in &opts.extra {
        let _ = writeln!(c, "{line}");
    }
    c
}
