//! The command line (contract section 1). Raw flags are parsed by clap here;
//! each subcommand group lives in its own file and receives validated
//! arguments plus the loaded [`Config`]. `anyhow` is used only in this layer.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

mod access;
mod audit;
mod ca;
mod config;
mod directory;
mod grant;
mod healthz;
mod mfa;
mod operator;
mod policy;
mod recordings;
mod report;
mod serve;
mod sessions;
mod ssh_config;
mod unlock;
mod vault;
mod web;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "An SSH privileged-access bastion"
)]
pub struct Cli {
    /// Configuration file (default: ./gatehouse.toml when present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bastion until SIGTERM/SIGINT.
    Serve,
    /// Validate and explain the policy files.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Grants: recent, time-boxed, approved authorization.
    #[command(subcommand)]
    Grant(GrantCmd),
    /// Target credentials kept encrypted by the bastion.
    #[command(subcommand)]
    Vault(VaultCmd),
    /// Live sessions.
    #[command(subcommand)]
    Sessions(SessionsCmd),
    /// Session recordings.
    #[command(subcommand)]
    Recordings(RecordingsCmd),
    /// Audit events.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Reports.
    #[command(subcommand)]
    Report(ReportCmd),
    /// Lift a lockout.
    Unlock { user: String },
    /// Periodic access reviews: list, certify, suspend standing access.
    #[command(subcommand)]
    Access(AccessCmd),
    /// Staff second factors (TOTP): list, reset, forget, allow-enroll.
    #[command(subcommand)]
    Mfa(MfaCmd),
    /// The site's directory: sync now, or show what it gives a user.
    #[command(subcommand)]
    Directory(DirectoryCmd),
    /// The effective configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// The bastion's user CA (certificates to targets).
    #[command(subcommand)]
    Ca(CaCmd),
    /// Check the database takes writes and the recordings folder is writable.
    Healthz,
    /// The review console.
    #[command(subcommand)]
    Web(WebCmd),
    /// Print an ssh_config block per server USER may reach.
    SshConfig {
        user: String,
        /// Bastion host name as users reach it (default: this host's name).
        #[arg(long)]
        bastion: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccessCmd {
    /// Each standing entitlement: user, server, account, source, last
    /// certified, by whom, when due, state (ok, due, overdue, suspended).
    Review {
        /// Only this staff member's.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Certify USER's standing access (on SERVER only, when given); lifts
    /// a suspension. Nobody certifies their own access.
    Certify {
        user: String,
        server: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Suspend USER's standing access to SERVER until certified again.
    Suspend {
        user: String,
        server: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MfaCmd {
    /// Enrolled factors: user, factor, enrolled, last used (never a secret).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove USER's factor, recovery codes and cached approvals.
    Reset { user: String },
    /// Clear USER's cached approvals: the next login asks for a code.
    Forget { user: String },
    /// Let USER enroll for 24 hours (under `mfa_self_enroll = false`).
    AllowEnroll { user: String },
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCmd {
    /// Read the directory now and store the copy (one node at a time);
    /// prints the joiners, movers and leavers.
    Sync {
        /// Read and compare only: print what would change.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// What the stored directory copy gives USER (keys, groups, roles).
    Show {
        user: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaCmd {
    /// Print the line for a target's TrustedUserCAKeys file.
    Show {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print every setting, defaults included, as gatehouse.toml.
    Show {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebCmd {
    /// Print a one-time sign-in link for USER (valid 60 seconds, once).
    Link {
        user: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Validate the policy files; prints FILE:LINE:COL: message per problem.
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Print the decision for USER reaching SERVER and the rule that made it.
    Explain {
        user: String,
        server: String,
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        port: Option<u16>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct GrantRequestArgs {
    /// The staff member the grant is for.
    #[arg(long)]
    pub user: String,
    pub server: String,
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long, value_delimiter = ',')]
    pub ports: Vec<u16>,
    #[arg(long, value_delimiter = ',')]
    pub from: Vec<String>,
    #[arg(long = "for", value_name = "DURATION", conflicts_with = "permanent")]
    pub duration: Option<String>,
    #[arg(long)]
    pub permanent: bool,
    #[arg(long)]
    pub reason: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum GrantCmd {
    /// Request a grant on behalf of a user.
    Request(GrantRequestArgs),
    /// Approve a pending grant (four eyes: not the requester).
    Approve {
        id: i64,
        #[arg(long)]
        by: String,
        #[arg(long)]
        json: bool,
    },
    /// Deny a pending grant.
    Deny {
        id: i64,
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a grant.
    Revoke {
        id: i64,
        #[arg(long)]
        by: String,
        #[arg(long)]
        json: bool,
    },
    /// List grants.
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum VaultCmd {
    /// Store a password (from stdin) or a private key for SERVER ACCOUNT.
    Set {
        server: String,
        account: String,
        #[arg(long, conflicts_with = "key")]
        password_stdin: bool,
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Treat the account as third-party (password policy).
        #[arg(long)]
        third_party: bool,
    },
    /// Generate and store a random password meeting the policy.
    Generate {
        server: String,
        account: String,
        #[arg(long)]
        show: bool,
        #[arg(long)]
        third_party: bool,
    },
    /// Rotate a password on the target, verify it, then commit it.
    Rotate { server: String, account: String },
    /// Credential metadata, never a secret.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Re-encrypt every credential under a new master key.
    Rekey {
        /// File holding the new master key (created 0600 if missing).
        #[arg(long, value_name = "FILE")]
        new_key: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCmd {
    /// Live sessions.
    List {
        #[arg(long)]
        json: bool,
    },
    /// End a live session at once.
    Kill {
        id: String,
        /// Shown to the user on their terminal.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecordingsCmd {
    /// List recordings, with filters.
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        server: Option<String>,
        #[arg(long)]
        account: Option<String>,
        /// YYYY-MM-DD
        #[arg(long)]
        date: Option<String>,
        /// unreviewed, reviewed or flagged
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Replay a recording in the terminal with its original timing.
    Play {
        id: String,
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Cap pauses at this many seconds.
        #[arg(long)]
        idle_limit: Option<f64>,
    },
    /// Find where TEXT appeared on screen or was typed.
    Search {
        text: String,
        #[arg(long)]
        json: bool,
    },
    /// Check recordings' hashes and signatures.
    Verify {
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Mark a recording reviewed or flagged.
    Review {
        id: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        flag: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Audit events as JSON lines.
    Export {
        /// RFC 3339 time or YYYY-MM-DD.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// Accepted for symmetry with listing commands; output is always JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain, and how far it is sealed.
    Verify {
        /// File of initial seal keys, one `NODE KEY` line per node (as
        /// `audit seal-key` prints them); may be given once per file.
        /// Every seal is then proven.
        #[arg(long = "seal-key", value_name = "FILE")]
        seal_keys: Vec<PathBuf>,
        /// A daily report's JSON: its signed chain heads must still be in
        /// the chain. May be repeated.
        #[arg(long = "pin", value_name = "REPORT.json")]
        pins: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print this node's initial seal key once (`NODE KEY`), then erase
    /// it from the bastion: keep it offline for `audit verify --seal-key`.
    SealKey,
    /// Seal this node's chain now (serve does so every `[audit]
    /// seal_interval` and at shutdown).
    Seal {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// The daily audit and compliance report.
    Daily {
        /// YYYY-MM-DD, default yesterday (UTC).
        #[arg(long)]
        date: Option<String>,
        #[arg(long, value_delimiter = ',', default_value = "html,md,json,csv")]
        format: Vec<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// An error whose message is already user-facing, with an exit status.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl Exit {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Exit {
            code,
            message: message.into(),
        }
    }
}

/// Runs the CLI and returns the process exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_tracing(matches!(cli.command, Command::Serve));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<Exit>() {
                if !exit.message.is_empty() {
                    eprintln!("error: {}", one_line(&exit.message));
                }
                return exit.code;
            }
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            1
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

fn init_tracing(serving: bool) {
    use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};
    let default = if serving { "info" } else { "warn" };
    let filter =
        EnvFilter::try_from_env("GATEHOUSE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // PuTTY's harmless channel requests make russh warn on every
    // connection: those lines alone are dropped (`server::quiet`).
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(crate::server::quiet::KnownHarmless);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve::run(config).await,
        Command::Policy(cmd) => policy::run(config, cmd).await,
        Command::Grant(cmd) => grant::run(config, cmd).await,
        Command::Vault(cmd) => vault::run(config, cmd).await,
        Command::Sessions(cmd) => sessions::run(config, cmd).await,
        Command::Recordings(cmd) => recordings::run(config, cmd).await,
        Command::Audit(cmd) => audit::run(config, cmd).await,
        Command::Report(cmd) => report::run(config, cmd).await,
        Command::Unlock { user } => unlock::run(config, &user).await,
        Command::Access(cmd) => access::run(config, cmd).await,
        Command::Mfa(cmd) => mfa::run(config, cmd).await,
        Command::Directory(cmd) => directory::run(config, cmd).await,
        Command::Config(ConfigCmd::Show { json }) => config::show(&config, json),
        Command::Ca(CaCmd::Show { json }) => ca::show(&config, json).await,
        Command::Healthz => healthz::run(config).await,
        Command::Web(cmd) => web::run(config, cmd).await,
        Command::SshConfig {
            user,
            bastion,
            json,
        } => ssh_config::run(config, &user, bastion.as_deref(), json).await,
    }
}
