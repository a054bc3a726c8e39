//! The stock OpenSSH clients (`ssh`, `scp`, `sftp`, `rsync -e ssh`) with a
//! generated ssh_config per client, so each test picks its identity and
//! port without touching the user's own ~/.ssh.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::TestDir;
use super::keys::Key;
use super::process::{run, run_with_stdin};
use super::tmux::Tmux;

/// The address every server in the tests listens on.
pub const HOST: &str = "127.0.0.1";

/// One staff member's (or a plain user's) OpenSSH client setup.
#[derive(Debug, Clone)]
pub struct Client {
    /// `-F` file: port, identity, no host key checks, batch mode.
    pub config: PathBuf,
    pub port: u16,
    pub identity: PathBuf,
    /// Folder for batch files and password helpers.
    scratch: PathBuf,
}

impl Client {
    /// A client that logs in with `key` to 127.0.0.1:`port`.
    pub fn new(dir: &TestDir, key: &Key, port: u16) -> Client {
        Client::with_options(dir, key, port, &[])
    }

    /// Like [`Client::new`], with extra ssh_config lines (e.g.
    /// `"KexAlgorithms curve25519-sha256"`); they come first, so they win.
    pub fn with_options(dir: &TestDir, key: &Key, port: u16, extra: &[&str]) -> Client {
        let scratch = dir.join(dir.unique("client"));
        std::fs::create_dir_all(&scratch).unwrap();
        let config = scratch.join("ssh_config");
        let mut text = String::from("Host *\n");
        for line in extra {
            text.push_str(&format!("  {line}\n"));
        }
        text.push_str(&format!(
            "  HostName {HOST}\n  Port {port}\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
             IdentityAgent none\n  BatchMode yes\n  StrictHostKeyChecking no\n  \
             UserKnownHostsFile /dev/null\n  GlobalKnownHostsFile /dev/null\n  \
             LogLevel ERROR\n  ConnectTimeout 10\n  ControlMaster no\n  ControlPath none\n",
            key.private.display()
        ));
        std::fs::write(&config, text).unwrap();
        Client {
            config,
            port,
            identity: key.private.clone(),
            scratch,
        }
    }

    /// `LOGIN@127.0.0.1`; OpenSSH splits at the last `@`, so a login such
    /// as `alice+root@web1` reaches the server unchanged.
    pub fn destination(&self, login: &str) -> String {
        format!("{login}@{HOST}")
    }

    /// `LOGIN@127.0.0.1:PATH` for scp and rsync.
    pub fn remote(&self, login: &str, path: &str) -> String {
        format!("{login}@{HOST}:{path}")
    }

    /// A bare command for `program` (ssh, scp, sftp) with `-F CONFIG` and
    /// a clean environment (no agent).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.arg("-F").arg(&self.config);
        c.env_remove("SSH_AUTH_SOCK");
        c
    }

    /// `ssh -F CONFIG [OPTS] LOGIN@127.0.0.1 [CMD...]` as a [`Command`].
    pub fn ssh_command(&self, opts: &[&str], login: &str, cmd: &[&str]) -> Command {
        let mut c = self.command("ssh");
        c.args(opts).arg(self.destination(login)).args(cmd);
        c
    }

    /// Runs `ssh LOGIN@host CMD...` (stdin /dev/null) and returns its output.
    pub fn ssh(&self, login: &str, cmd: &[&str]) -> Output {
        run(&mut self.ssh_command(&[], login, cmd))
    }

    /// Like [`Client::ssh`] with ssh options before the destination.
    pub fn ssh_opts(&self, opts: &[&str], login: &str, cmd: &[&str]) -> Output {
        run(&mut self.ssh_command(opts, login, cmd))
    }

    /// Runs `ssh LOGIN@host CMD...` with `stdin` then EOF.
    pub fn ssh_with_stdin(&self, login: &str, cmd: &[&str], stdin: &[u8]) -> Output {
        run_with_stdin(&mut self.ssh_command(&[], login, cmd), stdin)
    }

    /// Logs in with a password instead of the key (through `SSH_ASKPASS`,
    /// so no terminal is needed).
    pub fn ssh_password(&self, login: &str, password: &str, cmd: &[&str]) -> Output {
        let mut c = self.ssh_command(
            &[
                "-o",
                "BatchMode=no",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "PreferredAuthentications=keyboard-interactive,password",
                "-o",
                "NumberOfPasswordPrompts=1",
            ],
            login,
            cmd,
        );
        self.askpass(&mut c, password);
        run(&mut c)
    }

    fn askpass(&self, c: &mut Command, password: &str) {
        let secret = self.scratch.join("askpass.secret");
        std::fs::write(&secret, password).unwrap();
        let script = self.scratch.join("askpass.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\ncat '{}'\necho\n", secret.display()),
        )
        .unwrap();
        super::set_mode(&script, 0o700);
        c.env("SSH_ASKPASS", &script)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0");
    }

    /// `scp -F CONFIG ARGS...`; build remote paths with [`Client::remote`].
    pub fn scp(&self, args: &[&str]) -> Output {
        let mut c = self.command("scp");
        c.args(args);
        run(&mut c)
    }

    /// `sftp -F CONFIG -b BATCH LOGIN@host` with `commands` (one per line)
    /// as the batch file. sftp stops at the first failing command and then
    /// exits non-zero (prefix a command with `-` to ignore its failure).
    pub fn sftp_batch(&self, login: &str, commands: &str) -> Output {
        let batch = self.scratch.join("sftp.batch");
        std::fs::write(&batch, commands).unwrap();
        let mut c = self.command("sftp");
        c.arg("-b").arg(&batch).arg(self.destination(login));
        run(&mut c)
    }

    /// `rsync -e "ssh -F CONFIG" ARGS...`.
    pub fn rsync(&self, args: &[&str]) -> Output {
        let mut c = Command::new("rsync");
        c.arg("-e")
            .arg(format!("ssh -F {}", self.config.display()))
            .args(args)
            .env_remove("SSH_AUTH_SOCK");
        run(&mut c)
    }

    /// An interactive `ssh -tt LOGIN@host [CMD]` in a detached tmux pane
    /// of `cols`x`rows`, to type into with [`Tmux::send_line`].
    pub fn tmux(&self, dir: &TestDir, login: &str, cmd: &[&str]) -> Tmux {
        let mut line = format!(
            "ssh -F {} -tt {}",
            shell_quote(&self.config.display().to_string()),
            shell_quote(&self.destination(login))
        );
        for a in cmd {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        Tmux::start(dir, &line)
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }
}

/// Quotes `s` for /bin/sh.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
