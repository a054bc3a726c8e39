//! Policy: the `[[user]]` and `[[server]]` files admins keep in git
//! (contract section 3), validated into a checked [`Policy`], and the access
//! decision ([`decide`]), a pure function of (policy, request, grants, now).
//!
//! Parse, validate, compile once: `raw` holds the serde types
//! (`deny_unknown_fields`, spans kept for `FILE:LINE:COL` diagnostics),
//! `check` turns them into the types below, `decide` answers requests.
//! May import: grant_types (plain values below it).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;
use time::OffsetDateTime;

use crate::grant_types::Grant;

mod check;
mod decide;
pub mod entitlements;
pub(crate) mod explain;
mod live;
mod raw;

pub use check::{check_group_name, check_staff_name, parse_address, parse_cidr};
pub use decide::{
    OVERDUE, Reach, ReachGrant, ReviewInput, SUSPENDED, authenticate, authenticate_certified,
    check_command, check_open_session, decide, decide_reviewed, reachable, should_record,
};
pub use live::Live;

/// One problem found in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// The checked, merged policy. Only [`Policy::load_dir`] (and tests through
/// [`Policy::from_sources`]) build one, so every value here is valid.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub users: BTreeMap<String, User>,
    pub servers: BTreeMap<String, Server>,
    /// SHA-256 over the files' names and contents, for audit events.
    pub digest: String,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Users that came from the site's directory (merged in by
    /// `directory::merge`), not from a `[[user]]` entry.
    pub directory_users: std::collections::BTreeSet<String>,
}

impl Policy {
    /// Reads and merges every `*.toml` under `dir` (recursively, sorted).
    pub fn load_dir(dir: &Path) -> Result<Policy, Vec<Diagnostic>> {
        check::load_dir(dir)
    }

    /// [`Policy::load_dir`], with the digest of the files read even when
    /// they are invalid (equal to the policy's `digest` when valid).
    pub fn load_dir_with_digest(dir: &Path) -> (String, Result<Policy, Vec<Diagnostic>>) {
        check::load_dir_with_digest(dir)
    }

    /// [`Policy::load_dir`]; with `open_groups` (a `[directory]` is set),
    /// `allow = ["group:G"]` may name a group no `[[user]]` lists: the
    /// directory's groups are known only at run time.
    pub fn load_dir_with(dir: &Path, open_groups: bool) -> Result<Policy, Vec<Diagnostic>> {
        check::load_dir_with_digest_opts(dir, open_groups).1
    }

    /// [`Policy::load_dir_with_digest`] with `open_groups` as in
    /// [`Policy::load_dir_with`].
    pub fn load_dir_with_digest_opts(
        dir: &Path,
        open_groups: bool,
    ) -> (String, Result<Policy, Vec<Diagnostic>>) {
        check::load_dir_with_digest_opts(dir, open_groups)
    }

    /// Where a user comes from: `directory` or `policy`.
    pub fn user_source(&self, name: &str) -> &'static str {
        if self.directory_users.contains(name) {
            "directory"
        } else {
            "policy"
        }
    }

    /// Builds a policy from in-memory `(file name, text)` pairs.
    pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<Policy, Vec<Diagnostic>> {
        check::from_sources(sources)
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.get(name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Approver,
    Auditor,
    Admin,
}

#[derive(Debug, Clone)]
pub struct StaffKey {
    pub key: russh::keys::PublicKey,
    /// `SHA256:...` fingerprint, for audit events.
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub keys: Vec<StaffKey>,
    pub groups: Vec<String>,
    pub roles: Vec<Role>,
    /// Empty: anywhere.
    pub allow_from: Vec<IpNet>,
    /// From this day on (UTC) the account is refused.
    pub expires: Option<time::Date>,
    /// `mfa = "required"`: a second factor whatever `[auth] mfa`.
    pub mfa_required: bool,
}

impl User {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Global,
    Firewall,
    SshForwarding,
    Vpn,
    OnRequest,
    Desktop,
    Clone,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Global => "global",
            Mode::Firewall => "firewall",
            Mode::SshForwarding => "ssh-forwarding",
            Mode::Vpn => "vpn",
            Mode::OnRequest => "on-request",
            Mode::Desktop => "desktop",
            Mode::Clone => "clone",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordMode {
    Always,
    Privileged,
    Never,
}

/// How the bastion authenticates to a server's accounts when the vault
/// holds no credential for them (`auth` of a `[[server]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetAuth {
    /// The bastion's identity key (listed in the target's authorized_keys).
    Identity,
    /// A per-session certificate from the bastion's CA.
    Certificate,
}

/// Who a server's `allow` entry names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Principal {
    User(String),
    Group(String),
}

#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Pinned `SHA256:...` fingerprint of the target's host key (absent for desktop servers).
    pub host_key: Option<String>,
    pub mode: Mode,
    /// Accounts staff may become; the first is the default.
    pub accounts: Vec<String>,
    pub allow: Vec<Principal>,
    pub ports: Vec<u16>,
    pub record: RecordMode,
    pub require_grant: bool,
    pub allow_from: Vec<IpNet>,
    pub via: Option<String>,
    pub clone: Option<String>,
    pub deny_commands: Vec<String>,
    pub allow_commands: Vec<String>,
    /// `deny_commands` compiled once when the policy is checked.
    pub deny_globs: globset::GlobSet,
    /// `allow_commands` compiled once when the policy is checked.
    pub allow_globs: globset::GlobSet,
    /// Longest a session may last (`max_session = "8h"`), `None`: unlimited.
    pub max_session: Option<Duration>,
    /// Per-server idle timeout overriding `[limits] idle_timeout`.
    pub idle_timeout: Option<Duration>,
    /// What a blocked interactive line does: false keeps the session, true ends it.
    pub end_on_blocked_command: bool,
    /// Rotate a vault password after each session that used it.
    pub rotate_after_use: bool,
    /// SFTP requests naming a matching path end the SFTP channel.
    pub sftp_deny_paths: Vec<String>,
    pub sftp_deny_globs: globset::GlobSet,
    /// Command run on the target for the sftp subsystem (e.g. a read-only
    /// `sftp-server -R`), instead of the target's own subsystem.
    pub sftp_command: Option<String>,
    /// How the bastion logs in where the vault holds no credential.
    pub auth: TargetAuth,
    /// `mfa = "every-session"`: a fresh second factor at every login to
    /// it; the approval cache does not apply.
    pub mfa_every_session: bool,
    /// Line in the file where the entry starts, for `explain`.
    pub origin: String,
}

impl Server {
    pub fn default_account(&self) -> Option<&str> {
        self.accounts.first().map(String::as_str)
    }
}

/// What the user asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Login to the server for shell, exec or a subsystem (sftp).
    Session,
    /// `-L`/`-D`: a direct-tcpip channel to `host:port` on a login to the server.
    LocalForward {
        host: String,
        port: u16,
    },
    /// `-R`: tcpip-forward on a login to the server.
    RemoteForward {
        port: u16,
    },
    /// `-J`: direct-tcpip to `host:port` on a login without a target.
    Jump {
        host: String,
        port: u16,
    },
    AgentForward,
    X11Forward,
}

#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub user: &'a str,
    /// The server named in the login; for [`Action::Jump`] the destination
    /// host as the client gave it.
    pub server: &'a str,
    /// `None`: the server's default account.
    pub account: Option<&'a str>,
    pub source: IpAddr,
    pub action: Action,
}

/// How an allowed login or forward reaches its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// The bastion opens the TCP connection itself.
    Direct,
    /// A direct-tcpip channel on the bastion's SSH connection to the server.
    ThroughSshd,
    /// Not a forward (sessions).
    Session,
}

#[derive(Debug, Clone, Serialize)]
pub struct Allowed {
    pub server: String,
    pub account: String,
    pub mode: Mode,
    /// The grant that authorized this, when one was needed.
    pub grant: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub grant_expires: Option<OffsetDateTime>,
    pub path: Route,
    /// For forwards: the destination to dial (host, port).
    pub dest: Option<(String, u16)>,
    /// The rule that decided, for a person.
    pub rule: String,
    /// `global` mode: allowed but below modern standards; flagged in reports.
    pub flagged: bool,
}

/// Stable denial codes (a refusal is a value, not a fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum DenyCode {
    #[serde(rename = "KO_UNKNOWN_USER")]
    UnknownUser,
    #[serde(rename = "KO_USER_EXPIRED")]
    UserExpired,
    #[serde(rename = "KO_SOURCE_NOT_ALLOWED")]
    SourceNotAllowed,
    #[serde(rename = "KO_KEY_NOT_ALLOWED")]
    KeyNotAllowed,
    /// Unknown server or not allowed: the same text to the client.
    #[serde(rename = "KO_ACCESS_DENIED")]
    AccessDenied,
    #[serde(rename = "KO_ACCOUNT_NOT_ALLOWED")]
    AccountNotAllowed,
    #[serde(rename = "KO_MODE_REFUSES")]
    ModeRefuses,
    #[serde(rename = "KO_GRANT_REQUIRED")]
    GrantRequired,
    #[serde(rename = "KO_PORT_NOT_ALLOWED")]
    PortNotAllowed,
    #[serde(rename = "KO_DESTINATION_NOT_ALLOWED")]
    DestinationNotAllowed,
    #[serde(rename = "KO_USE_CLONE")]
    UseClone,
    #[serde(rename = "KO_AGENT_FORWARDING")]
    AgentForwarding,
    #[serde(rename = "KO_X11_FORWARDING")]
    X11Forwarding,
    #[serde(rename = "KO_COMMAND_BLOCKED")]
    CommandBlocked,
    /// An access review suspended this entitlement (contract section 14).
    #[serde(rename = "KO_REVIEW_SUSPENDED")]
    ReviewSuspended,
    /// `[review] enforce` and the entitlement's review is overdue.
    #[serde(rename = "KO_REVIEW_OVERDUE")]
    ReviewOverdue,
}

impl DenyCode {
    pub fn as_str(self) -> &'static str {
        match self {
            DenyCode::UnknownUser => "KO_UNKNOWN_USER",
            DenyCode::UserExpired => "KO_USER_EXPIRED",
            DenyCode::SourceNotAllowed => "KO_SOURCE_NOT_ALLOWED",
            DenyCode::KeyNotAllowed => "KO_KEY_NOT_ALLOWED",
            DenyCode::AccessDenied => "KO_ACCESS_DENIED",
            DenyCode::AccountNotAllowed => "KO_ACCOUNT_NOT_ALLOWED",
            DenyCode::ModeRefuses => "KO_MODE_REFUSES",
            DenyCode::GrantRequired => "KO_GRANT_REQUIRED",
            DenyCode::PortNotAllowed => "KO_PORT_NOT_ALLOWED",
            DenyCode::DestinationNotAllowed => "KO_DESTINATION_NOT_ALLOWED",
            DenyCode::UseClone => "KO_USE_CLONE",
            DenyCode::AgentForwarding => "KO_AGENT_FORWARDING",
            DenyCode::X11Forwarding => "KO_X11_FORWARDING",
            DenyCode::CommandBlocked => "KO_COMMAND_BLOCKED",
            DenyCode::ReviewSuspended => "KO_REVIEW_SUSPENDED",
            DenyCode::ReviewOverdue => "KO_REVIEW_OVERDUE",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Denial {
    pub code: DenyCode,
    /// Safe to show the client: never reveals whether a server the user
    /// may not reach exists.
    pub reason: String,
    /// The rule that decided, for admins (`policy explain`, audit detail).
    pub rule: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum Decision {
    Allow(Allowed),
    Deny(Denial),
}

/// Inputs of [`decide`] other than the policy, bundled for readability.
pub struct Context<'a> {
    pub grants: &'a [Grant],
    pub now: OffsetDateTime,
}
