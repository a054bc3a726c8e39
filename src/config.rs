//! `gatehouse.toml`: the bastion's own settings (contract section 2).
//!
//! Parsed once with `deny_unknown_fields` into [`RawConfig`], then resolved
//! into [`Config`]: durations parsed, relative paths made relative to the
//! config file's folder. Every key is optional; the defaults below are the
//! documented ones.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    recording: RawRecording,
    #[serde(default)]
    vault: RawVault,
    #[serde(default)]
    report: RawReport,
    #[serde(default)]
    ssh: crate::algorithms::RawSsh,
    #[serde(default)]
    ca: RawCa,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    web: RawWeb,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    auth: RawAuth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    seal_key: Option<String>,
    seal_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    mfa: Option<String>,
    mfa_cache: Option<String>,
    mfa_self_enroll: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCa {
    key: Option<String>,
    cert_authorities: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
    max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    host_key: Option<String>,
    identity_key: Option<String>,
    signing_key: Option<String>,
    policies: Option<String>,
    recordings: Option<String>,
    reports: Option<String>,
    database: Option<String>,
    master_key: Option<String>,
    node: Option<String>,
    audit_spool: Option<String>,
    user: Option<String>,
    node_lost_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    login_grace_time: Option<String>,
    max_startups: Option<usize>,
    auth_per_minute_per_source: Option<u32>,
    lockout_after: Option<u32>,
    lockout_for: Option<String>,
    idle_timeout: Option<String>,
    accept_env: Option<Vec<String>>,
    max_channels_per_connection: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecording {
    privileged_accounts: Option<Vec<String>>,
    record_input: Option<bool>,
    exec_text_cap: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVault {
    rotation_admin_account: Option<String>,
    internal_min_length: Option<usize>,
    third_party_min_length: Option<usize>,
    internal_max_age_days: Option<u32>,
    third_party_max_age_days: Option<u32>,
    history: Option<usize>,
    third_party_accounts: Option<Vec<String>>,
    rotation_concurrency: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    listen: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    url: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_source: Option<usize>,
    handshake_timeout: Option<String>,
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_live_streams: Option<usize>,
    max_live_streams_per_user: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    working_hours: Option<String>,
    working_days: Option<Vec<String>>,
}

/// The resolved configuration. Paths are absolute or relative to the
/// process's working directory (already joined with the config's folder).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where this configuration came from, `None` for built-in defaults.
    pub source: Option<PathBuf>,
    pub listen: SocketAddr,
    pub host_key: PathBuf,
    pub identity_key: PathBuf,
    /// Ed25519 key (PKCS#8) that signs recordings; created if missing.
    pub signing_key: PathBuf,
    pub policies: PathBuf,
    pub recordings: PathBuf,
    pub reports: PathBuf,
    /// sqlx URL; a relative sqlite path is resolved against the config folder.
    pub database: String,
    pub master_key: PathBuf,
    /// Where `serve` keeps audit events the database could not take.
    pub audit_spool: PathBuf,
    /// Name of this bastion node (audit chain segment); defaults to the hostname.
    pub node: String,
    /// `serve` started as root drops to this user after binding (`None`: keep the uid).
    pub user: Option<String>,
    /// A node whose heartbeat is older than this is lost: another node
    /// closes its sessions ("node lost"). At least 5 s.
    pub node_lost_after: Duration,
    pub limits: Limits,
    pub recording: RecordingConfig,
    pub vault: VaultConfig,
    pub report: ReportConfig,
    /// `[ssh]`: algorithms offered to staff and to targets.
    pub ssh: crate::algorithms::SshAlgorithms,
    /// `[ca] key`: a CA key file imported into the database when it holds no
    /// user CA yet (src/ca.rs); never written, unused once the database has one.
    pub ca_key: PathBuf,
    /// `[ca] cert_authorities`: CAs whose user certificates staff may log in with.
    pub cert_authorities: Vec<russh::keys::PublicKey>,
    pub metrics: MetricsConfig,
    pub web: WebConfig,
    pub audit: AuditConfig,
    /// `[auth]`: second factors (contract section 11).
    pub auth: AuthConfig,
}

/// `[audit]`: forward-secure sealing of this node's audit chain (the
/// `seal` module).
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// This node's current seal key (0600, never in the database); holds
    /// the initial key until `gatehouse audit seal-key` prints it. `{node}`
    /// in the configured path is replaced by the node's name, so nodes
    /// sharing a data folder keep a key each.
    pub seal_key: PathBuf,
    /// An epoch's length: `serve` seals the chain this often when there
    /// are new events, and at a clean shutdown.
    pub seal_interval: Duration,
}

/// `[auth] mfa`: who needs a second factor besides the policy's own
/// `mfa = "required"` users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaMode {
    /// Only users the policy marks `mfa = "required"`.
    Off,
    /// Those users, and anyone who has enrolled a factor.
    Optional,
    /// Every staff member.
    Required,
}

impl MfaMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MfaMode::Off => "off",
            MfaMode::Optional => "optional",
            MfaMode::Required => "required",
        }
    }

    pub fn parse(s: &str) -> Option<MfaMode> {
        match s {
            "off" => Some(MfaMode::Off),
            "optional" => Some(MfaMode::Optional),
            "required" => Some(MfaMode::Required),
            _ => None,
        }
    }
}

/// `[auth]`: second factors.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mfa: MfaMode,
    /// A good code spares the same user, key fingerprint and source
    /// address for this long; zero asks every time.
    pub mfa_cache: Duration,
    /// `false`: enrolling needs `gatehouse mfa allow-enroll USER` first.
    pub mfa_self_enroll: bool,
}

/// `[metrics]`: the admin listener (`/metrics`, `/healthz`); off when absent.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
    /// Connections at once (default 64); also bounded by the open-file
    /// limit, see `web::conns`.
    pub max_connections: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: None,
            max_connections: 64,
        }
    }
}

/// `[web]`: the review console (src/web). Off while `listen` is absent.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain and private key; a self-signed pair is
    /// created at these paths on first start when both are missing.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Base URL printed in login links, e.g. `https://bastion.example.com:8443`;
    /// by default `https://` and the listen address.
    pub url: Option<String>,
    /// Connections at once (default 512) and per source address (default
    /// 32); at either cap the oldest idle connection gives way. Both are
    /// also bounded by the open-file limit (see `web::conns`).
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    /// A TLS handshake not finished in this long is dropped (default 10s).
    pub handshake_timeout: Duration,
    /// A request whose headers take longer than this is dropped (default 10s).
    pub header_timeout: Duration,
    /// A kept-alive connection with no request for this long is closed
    /// (default 60s).
    pub idle_timeout: Duration,
    /// Live views (server-sent event streams) at once (default 64) and per
    /// staff member (default 4).
    pub max_live_streams: usize,
    pub max_live_streams_per_user: usize,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub login_grace_time: Duration,
    pub max_startups: usize,
    pub auth_per_minute_per_source: u32,
    pub lockout_after: u32,
    pub lockout_for: Duration,
    pub idle_timeout: Duration,
    /// Environment variable names (globs) passed on to targets.
    pub accept_env: Vec<String>,
    /// Channels open at once on one connection; more are refused.
    pub max_channels_per_connection: usize,
}

#[derive(Debug, Clone)]
pub struct RecordingConfig {
    pub privileged_accounts: Vec<String>,
    pub record_input: bool,
    /// Exec sessions without a PTY: how much of the output text is kept in the cast.
    pub exec_text_cap: usize,
}

#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Account used on targets to run `chpasswd` during rotation.
    pub rotation_admin_account: String,
    pub internal_min_length: usize,
    pub third_party_min_length: usize,
    pub internal_max_age_days: u32,
    pub third_party_max_age_days: u32,
    pub history: usize,
    /// Account-name globs treated as third-party accounts.
    pub third_party_accounts: Vec<String>,
    pub rotation_concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Working hours in UTC, `start..end` hours, e.g. 8..18.
    pub work_start_hour: u8,
    pub work_end_hour: u8,
    /// Working days (Mon..Sun as 1..7).
    pub working_days: Vec<u8>,
}

impl Default for Config {
    fn default() -> Self {
        resolve(RawConfig::default(), Path::new("."), None)
            .unwrap_or_else(|_| unreachable_defaults())
    }
}

/// Built-in defaults cannot fail to resolve; this exists only so that
/// `Default` needs no panic path.
fn unreachable_defaults() -> Config {
    Config {
        source: None,
        listen: SocketAddr::from(([0, 0, 0, 0], 2222)),
        host_key: PathBuf::from("data/ssh_host_ed25519_key"),
        identity_key: PathBuf::from("data/identity_ed25519_key"),
        signing_key: PathBuf::from("data/signing_ed25519.pk8"),
        policies: PathBuf::from("policies"),
        recordings: PathBuf::from("recordings"),
        reports: PathBuf::from("reports"),
        database: "sqlite://data/gatehouse.db".into(),
        master_key: PathBuf::from("data/master.key"),
        audit_spool: PathBuf::from("data/audit-spool.jsonl"),
        node: "gatehouse".into(),
        user: None,
        node_lost_after: Duration::from_secs(30),
        limits: Limits {
            login_grace_time: Duration::from_secs(30),
            max_startups: 100,
            auth_per_minute_per_source: 20,
            lockout_after: 10,
            lockout_for: Duration::from_secs(6 * 3600),
            idle_timeout: Duration::from_secs(30 * 60),
            accept_env: crate::envfilter::DEFAULT_ACCEPT_ENV
                .iter()
                .map(|s| s.to_string())
                .collect(),
            max_channels_per_connection: 64,
        },
        recording: RecordingConfig {
            privileged_accounts: default_privileged(),
            record_input: false,
            exec_text_cap: 1 << 20,
        },
        vault: default_vault(),
        report: ReportConfig {
            work_start_hour: 8,
            work_end_hour: 18,
            working_days: vec![1, 2, 3, 4, 5],
        },
        ssh: crate::algorithms::SshAlgorithms::default(),
        ca_key: PathBuf::from("data/user_ca_ed25519_key"),
        cert_authorities: Vec::new(),
        metrics: MetricsConfig::default(),
        web: WebConfig {
            listen: None,
            cert: PathBuf::from("data/web_cert.pem"),
            key: PathBuf::from("data/web_key.pem"),
            url: None,
            max_connections: 512,
            max_connections_per_source: 32,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_live_streams: 64,
            max_live_streams_per_user: 4,
        },
        audit: AuditConfig {
            seal_key: PathBuf::from("data/audit-seal-{node}.key"),
            seal_interval: Duration::from_secs(60),
        },
        auth: AuthConfig {
            mfa: MfaMode::Off,
            mfa_cache: Duration::from_secs(8 * 3600),
            mfa_self_enroll: true,
        },
    }
}

fn default_privileged() -> Vec<String> {
    ["root", "Administrator", "oracle", "postgres"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn default_vault() -> VaultConfig {
    VaultConfig {
        rotation_admin_account: "root".into(),
        internal_min_length: 12,
        third_party_min_length: 8,
        internal_max_age_days: 180,
        third_party_max_age_days: 90,
        history: 10,
        third_party_accounts: Vec::new(),
        rotation_concurrency: 4,
    }
}

impl Config {
    /// Loads `--config FILE` when given, else `./gatehouse.toml` when present,
    /// else the built-in defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let p = PathBuf::from("gatehouse.toml");
                p.exists().then_some(p)
            }
        };
        let Some(path) = path else {
            return resolve(RawConfig::default(), Path::new("."), None);
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_str_at(&text, &path)
    }

    /// Parses configuration text as if it were read from `path`.
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                col,
                message: e.message().to_string(),
            }
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        resolve(raw, base, Some(path.to_path_buf()))
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map(|i| before.len() - i)
        .unwrap_or(before.len() + 1);
    (line, col)
}

/// Parses a duration such as `30s`, `30m`, `6h`, `7d`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

fn resolve(raw: RawConfig, base: &Path, source: Option<PathBuf>) -> Result<Config, ConfigError> {
    let d = unreachable_defaults();
    let src_path = source
        .clone()
        .unwrap_or_else(|| PathBuf::from("(defaults)"));
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: src_path.clone(),
        key,
        message,
    };
    let join = |p: Option<String>, default: PathBuf| -> PathBuf {
        let p = p.map(PathBuf::from).unwrap_or(default);
        if p.is_absolute() || base == Path::new(".") {
            p
        } else {
            base.join(p)
        }
    };
    let listen = match raw.server.listen {
        Some(l) => l
            .parse::<SocketAddr>()
            .map_err(|e| invalid("server.listen", format!("{l:?}: {e}")))?,
        None => d.listen,
    };
    let database = match raw.server.database {
        Some(url) => url,
        None => d.database.clone(),
    };
    let database = resolve_sqlite_url(&database, base);
    let dur = |key: &'static str, v: Option<String>, default: Duration| match v {
        Some(s) => parse_duration(&s).map_err(|m| invalid(key, m)),
        None => Ok(default),
    };
    let node_lost_after = dur(
        "server.node_lost_after",
        raw.server.node_lost_after,
        d.node_lost_after,
    )?;
    if node_lost_after < Duration::from_secs(5) {
        return Err(invalid(
            "server.node_lost_after",
            "must be at least 5s (nodes beat every few seconds)".into(),
        ));
    }
    // A count that must be at least 1.
    let positive = |key: &'static str, v: Option<usize>, default: usize| match v {
        Some(0) => Err(invalid(key, "must be at least 1".to_string())),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    let limits = Limits {
        login_grace_time: dur(
            "limits.login_grace_time",
            raw.limits.login_grace_time,
            d.limits.login_grace_time,
        )?,
        max_startups: raw.limits.max_startups.unwrap_or(d.limits.max_startups),
        auth_per_minute_per_source: raw
            .limits
            .auth_per_minute_per_source
            .unwrap_or(d.limits.auth_per_minute_per_source),
        lockout_after: raw.limits.lockout_after.unwrap_or(d.limits.lockout_after),
        lockout_for: dur(
            "limits.lockout_for",
            raw.limits.lockout_for,
            d.limits.lockout_for,
        )?,
        idle_timeout: dur(
            "limits.idle_timeout",
            raw.limits.idle_timeout,
            d.limits.idle_timeout,
        )?,
        accept_env: raw.limits.accept_env.unwrap_or(d.limits.accept_env),
        max_channels_per_connection: raw
            .limits
            .max_channels_per_connection
            .unwrap_or(d.limits.max_channels_per_connection),
    };
    crate::envfilter::EnvFilter::new(&limits.accept_env)
        .map_err(|e| invalid("limits.accept_env", e.to_string()))?;
    if limits.max_channels_per_connection == 0 {
        return Err(invalid(
            "limits.max_channels_per_connection",
            "must be at least 1".into(),
        ));
    }
    if limits.max_startups == 0 {
        return Err(invalid("limits.max_startups", "must be at least 1".into()));
    }
    if limits.auth_per_minute_per_source == 0 {
        return Err(invalid(
            "limits.auth_per_minute_per_source",
            "must be at least 1".into(),
        ));
    }
    let recording = RecordingConfig {
        privileged_accounts: raw
            .recording
            .privileged_accounts
            .unwrap_or(d.recording.privileged_accounts),
        record_input: raw.recording.record_input.unwrap_or(false),
        exec_text_cap: raw
            .recording
            .exec_text_cap
            .unwrap_or(d.recording.exec_text_cap),
    };
    for g in &recording.privileged_accounts {
        globset::Glob::new(g)
            .map_err(|e| invalid("recording.privileged_accounts", format!("{g:?}: {e}")))?;
    }
    let dv = d.vault;
    let vault = VaultConfig {
        rotation_admin_account: raw
            .vault
            .rotation_admin_account
            .unwrap_or(dv.rotation_admin_account),
        internal_min_length: raw
            .vault
            .internal_min_length
            .unwrap_or(dv.internal_min_length),
        third_party_min_length: raw
            .vault
            .third_party_min_length
            .unwrap_or(dv.third_party_min_length),
        internal_max_age_days: raw
            .vault
            .internal_max_age_days
            .unwrap_or(dv.internal_max_age_days),
        third_party_max_age_days: raw
            .vault
            .third_party_max_age_days
            .unwrap_or(dv.third_party_max_age_days),
        history: raw.vault.history.unwrap_or(dv.history),
        third_party_accounts: raw.vault.third_party_accounts.unwrap_or_default(),
        rotation_concurrency: raw
            .vault
            .rotation_concurrency
            .unwrap_or(dv.rotation_concurrency)
            .max(1),
    };
    let mut report = d.report;
    if let Some(h) = raw.report.working_hours {
        let (a, b) = h
            .split_once('-')
            .ok_or_else(|| invalid("report.working_hours", format!("{h:?}: expected \"08-18\"")))?;
        let a: u8 = a
            .trim()
            .parse()
            .map_err(|_| invalid("report.working_hours", format!("{h:?}")))?;
        let b: u8 = b
            .trim()
            .parse()
            .map_err(|_| invalid("report.working_hours", format!("{h:?}")))?;
        if a >= b || b > 24 {
            return Err(invalid(
                "report.working_hours",
                format!("{h:?}: start must be before end, within 0-24"),
            ));
        }
        report.work_start_hour = a;
        report.work_end_hour = b;
    }
    if let Some(days) = raw.report.working_days {
        let mut out = Vec::new();
        for day in days {
            let n = match day.to_ascii_lowercase().get(..3) {
                Some("mon") => 1,
                Some("tue") => 2,
                Some("wed") => 3,
                Some("thu") => 4,
                Some("fri") => 5,
                Some("sat") => 6,
                Some("sun") => 7,
                _ => {
                    return Err(invalid(
                        "report.working_days",
                        format!("{day:?}: not a weekday"),
                    ));
                }
            };
            out.push(n);
        }
        report.working_days = out;
    }
    let web = WebConfig {
        listen: match raw.web.listen {
            Some(l) => Some(
                l.parse::<SocketAddr>()
                    .map_err(|e| invalid("web.listen", format!("{l:?}: {e}")))?,
            ),
            None => None,
        },
        cert: join(raw.web.cert, d.web.cert),
        key: join(raw.web.key, d.web.key),
        url: match raw.web.url {
            Some(u) if u.starts_with("https://") => Some(u.trim_end_matches('/').to_string()),
            Some(u) => {
                return Err(invalid(
                    "web.url",
                    format!("{u:?}: must start with https://"),
                ));
            }
            None => None,
        },
        max_connections: positive(
            "web.max_connections",
            raw.web.max_connections,
            d.web.max_connections,
        )?,
        max_connections_per_source: positive(
            "web.max_connections_per_source",
            raw.web.max_connections_per_source,
            d.web.max_connections_per_source,
        )?,
        handshake_timeout: dur(
            "web.handshake_timeout",
            raw.web.handshake_timeout,
            d.web.handshake_timeout,
        )?,
        header_timeout: dur(
            "web.header_timeout",
            raw.web.header_timeout,
            d.web.header_timeout,
        )?,
        idle_timeout: dur("web.idle_timeout", raw.web.idle_timeout, d.web.idle_timeout)?,
        max_live_streams: positive(
            "web.max_live_streams",
            raw.web.max_live_streams,
            d.web.max_live_streams,
        )?,
        max_live_streams_per_user: positive(
            "web.max_live_streams_per_user",
            raw.web.max_live_streams_per_user,
            d.web.max_live_streams_per_user,
        )?,
    };
    let node = raw.server.node.unwrap_or_else(default_node);
    let metrics = MetricsConfig {
        listen: match raw.metrics.listen {
            Some(l) => Some(
                l.parse::<SocketAddr>()
                    .map_err(|e| invalid("metrics.listen", format!("{l:?}: {e}")))?,
            ),
            None => None,
        },
        max_connections: positive(
            "metrics.max_connections",
            raw.metrics.max_connections,
            d.metrics.max_connections,
        )?,
    };
    let audit = AuditConfig {
        seal_key: with_node(&join(raw.audit.seal_key, d.audit.seal_key.clone()), &node),
        seal_interval: dur(
            "audit.seal_interval",
            raw.audit.seal_interval,
            d.audit.seal_interval,
        )?,
    };
    if audit.seal_interval < Duration::from_secs(1) {
        return Err(invalid(
            "audit.seal_interval",
            "must be at least 1s".to_string(),
        ));
    }
    let auth = AuthConfig {
        mfa: match raw.auth.mfa {
            Some(m) => MfaMode::parse(&m).ok_or_else(|| {
                invalid(
                    "auth.mfa",
                    format!("{m:?}: must be \"off\", \"optional\" or \"required\""),
                )
            })?,
            None => d.auth.mfa,
        },
        mfa_cache: dur("auth.mfa_cache", raw.auth.mfa_cache, d.auth.mfa_cache)?,
        mfa_self_enroll: raw.auth.mfa_self_enroll.unwrap_or(d.auth.mfa_self_enroll),
    };
    // A cache is a convenience, not a standing way in; a year also keeps
    // every expiry a storable timestamp.
    if auth.mfa_cache > Duration::from_secs(365 * 86400) {
        return Err(invalid(
            "auth.mfa_cache",
            "must be at most 365d (\"0s\" asks every time)".into(),
        ));
    }
    let mut cert_authorities = Vec::new();
    for line in raw.ca.cert_authorities.unwrap_or_default() {
        let key = russh::keys::PublicKey::from_openssh(line.trim()).map_err(|e| {
            invalid(
                "ca.cert_authorities",
                format!("not an OpenSSH public key line: {e}"),
            )
        })?;
        cert_authorities.push(key);
    }
    Ok(Config {
        source,
        listen,
        host_key: join(raw.server.host_key, d.host_key),
        identity_key: join(raw.server.identity_key, d.identity_key),
        signing_key: join(raw.server.signing_key, d.signing_key),
        policies: join(raw.server.policies, d.policies),
        recordings: join(raw.server.recordings, d.recordings),
        reports: join(raw.server.reports, d.reports),
        database,
        master_key: join(raw.server.master_key, d.master_key),
        audit_spool: join(raw.server.audit_spool, d.audit_spool),
        node,
        user: raw.server.user.filter(|u| !u.is_empty()),
        node_lost_after,
        limits,
        recording,
        vault,
        report,
        ssh: crate::algorithms::SshAlgorithms::resolve(raw.ssh)
            .map_err(|e| invalid(e.key, e.message))?,
        ca_key: join(raw.ca.key, d.ca_key),
        metrics,
        web,
        cert_authorities,
        audit,
        auth,
    })
}

/// `{node}` in a path replaced by the node's name, made safe for a file
/// name (anything but letters, digits, `.`, `_` and `-` becomes `_`).
fn with_node(path: &Path, node: &str) -> PathBuf {
    let text = path.to_string_lossy();
    if !text.contains("{node}") {
        return path.to_path_buf();
    }
    let safe: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = if safe.starts_with('.') || safe.is_empty() {
        format!("_{safe}")
    } else {
        safe
    };
    PathBuf::from(text.replace("{node}", &safe))
}

fn default_node() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "gatehouse".into())
}

/// `sqlite://data/x.db` with a relative path is made relative to `base`.
fn resolve_sqlite_url(url: &str, base: &Path) -> String {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.is_empty() || path == ":memory:" || path.starts_with('/') || base == Path::new(".")
        {
            return url.to_string();
        }
        let joined = base.join(path);
        let mut out = format!("sqlite://{}", joined.display());
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        return out;
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::default();
        assert_eq!(c.listen.port(), 2222);
        assert_eq!(c.limits.max_startups, 100);
        assert_eq!(c.limits.lockout_after, 10);
        assert_eq!(c.limits.lockout_for, Duration::from_secs(6 * 3600));
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.database, "sqlite://data/gatehouse.db");
        assert!(!c.recording.record_input);
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let err = Config::from_str_at(
            "[server]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n",
            Path::new("/x/g.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("/x/g.toml:3:1:"), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn web_limits_have_defaults_and_refuse_zero_and_unknown_keys() {
        let d = Config::from_str_at("", Path::new("/x/g.toml")).unwrap();
        assert_eq!(d.web.max_connections, 512);
        assert_eq!(d.web.max_connections_per_source, 32);
        assert_eq!(d.web.header_timeout, Duration::from_secs(10));
        assert_eq!(d.web.max_live_streams_per_user, 4);
        assert_eq!(d.metrics.max_connections, 64);
        let c = Config::from_str_at(
            "[web]\nmax_connections = 9\nidle_timeout = \"5m\"\nmax_live_streams = 2\n\
             [metrics]\nmax_connections = 3\n",
            Path::new("/x/g.toml"),
        )
        .unwrap();
        assert_eq!(c.web.max_connections, 9);
        assert_eq!(c.web.idle_timeout, Duration::from_secs(300));
        assert_eq!(c.web.max_live_streams, 2);
        assert_eq!(c.metrics.max_connections, 3);
        let zero = Config::from_str_at("[web]\nmax_connections = 0\n", Path::new("/x/g.toml"));
        assert!(
            zero.unwrap_err()
                .to_string()
                .contains("web.max_connections")
        );
        assert!(Config::from_str_at("[web]\nmax_conns = 1\n", Path::new("/x/g.toml")).is_err());
    }

    #[test]
    fn relative_paths_follow_the_config_folder() {
        let c = Config::from_str_at(
            "[server]\npolicies = \"pol\"\ndatabase = \"sqlite://d/g.db\"\n",
            Path::new("/etc/gh/gatehouse.toml"),
        )
        .unwrap();
        assert_eq!(c.policies, PathBuf::from("/etc/gh/pol"));
        assert_eq!(
            c.host_key,
            PathBuf::from("/etc/gh/data/ssh_host_ed25519_key")
        );
        assert_eq!(c.database, "sqlite:///etc/gh/d/g.db");
    }

    #[test]
    fn seal_key_names_the_node() {
        let c = Config::default();
        assert_eq!(
            c.audit.seal_key,
            with_node(Path::new("data/audit-seal-{node}.key"), &c.node)
        );
        assert!(!c.audit.seal_key.to_string_lossy().contains("{node}"));
        assert_eq!(
            with_node(Path::new("/data/audit-seal-{node}.key"), "gatehouse-1"),
            PathBuf::from("/data/audit-seal-gatehouse-1.key")
        );
        assert_eq!(
            with_node(Path::new("d/{node}.key"), "../x y"),
            PathBuf::from("d/_.._x_y.key")
        );
        assert_eq!(
            with_node(Path::new("d/fixed.key"), "n1"),
            PathBuf::from("d/fixed.key")
        );
    }

    #[test]
    fn bad_durations_are_refused() {
        let err = Config::from_str_at("[limits]\nlockout_for = \"soon\"\n", Path::new("g.toml"))
            .unwrap_err();
        assert!(err.to_string().contains("limits.lockout_for"));
    }

    #[test]
    fn auth_defaults_and_values() {
        let d = Config::default();
        assert_eq!(d.auth.mfa, MfaMode::Off);
        assert_eq!(d.auth.mfa_cache, Duration::from_secs(8 * 3600));
        assert!(d.auth.mfa_self_enroll);
        let c = Config::from_str_at(
            "[auth]\nmfa = \"required\"\nmfa_cache = \"0s\"\nmfa_self_enroll = false\n",
            Path::new("g.toml"),
        )
        .unwrap();
        assert_eq!(c.auth.mfa, MfaMode::Required);
        assert_eq!(c.auth.mfa_cache, Duration::ZERO);
        assert!(!c.auth.mfa_self_enroll);
        let err = Config::from_str_at("[auth]\nmfa = \"sometimes\"\n", Path::new("g.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.mfa"), "{err}");
        let err = Config::from_str_at("[auth]\nmfa_cache = \"a while\"\n", Path::new("g.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.mfa_cache"), "{err}");
        let err = Config::from_str_at("[auth]\nmfa_cache = \"400d\"\n", Path::new("g.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auth.mfa_cache: must be at most 365d"),
            "{err}"
        );
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
