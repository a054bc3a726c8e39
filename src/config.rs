//! `gatehouse.toml`: the bastion's own settings (contract section 2); owns the resolved types and loading, imports only std, `crate::algorithms` and its children.
//!
//! Parsed once with `deny_unknown_fields` into [`raw::RawConfig`], then
//! resolved into [`Config`] by [`resolve`]: durations parsed, relative paths
//! made relative to the config file's folder. Every key is optional; the
//! defaults in [`defaults`] are the documented ones.

mod defaults;
mod raw;
mod resolve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use defaults::unreachable_defaults;
use raw::RawConfig;
use resolve::resolve;

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

/// The resolved configuration. Paths are absolute or relative to the
/// process's working directory (already joined with the config's folder).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where this configuration came from, `None` for built-in defaults.
    pub source: Option<PathBuf>,
    pub listen: SocketAddr,
    /// `[server] public_name`: the name staff reach the bastion by, used
    /// in the commands and links it prints; `None`: the listen address.
    pub public_name: Option<String>,
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
    /// `[review]`: periodic access reviews (contract section 14).
    pub review: ReviewConfig,
    /// `[directory]`: staff from the site's LDAP or Active Directory
    /// (contract section 12); `None` when the section is absent.
    pub directory: Option<DirectoryConfig>,
}

/// `[review]`: how often standing access must be certified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReviewConfig {
    /// Each standing entitlement must be certified this often; `None`
    /// (the key absent): no reviews, nothing is ever due.
    pub every: Option<Duration>,
    /// An overdue entitlement is refused at login until certified.
    pub enforce: bool,
}

/// How the directory's TLS is set up: `ldaps://` is TLS from the first
/// byte; `ldap://` is allowed only with StartTLS (never in the clear).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryTls {
    Ldaps,
    StartTls,
}

/// `[directory]`: where staff and groups are read from, and how often.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// `ldaps://host[:port]` or `ldap://host[:port]` (with `start_tls`).
    pub url: String,
    pub tls: DirectoryTls,
    /// PEM certificates trusted for the directory's certificate; `None`:
    /// the system's roots.
    pub ca_file: Option<PathBuf>,
    pub bind_dn: String,
    /// Holds the bind password; must be 0600 (checked when read).
    pub bind_password_file: PathBuf,
    /// Search base of staff entries.
    pub users: String,
    pub user_filter: String,
    /// The attribute holding the staff name (lowercased).
    pub name_attribute: String,
    /// The attribute holding OpenSSH public keys (several values).
    pub key_attribute: String,
    /// Search base of groups; `None`: groups are not read (only
    /// `memberOf` on user entries counts).
    pub groups: Option<String>,
    pub group_filter: String,
    /// Users matching this filter (under `users`) are disabled.
    pub disabled_filter: Option<String>,
    pub sync_every: Duration,
    /// The last good copy serves for this long after the last good sync.
    pub max_stale: Duration,
    /// `[directory.roles]`: role name (`approver`, `auditor`, `admin`) ->
    /// directory groups (cn) whose members get it.
    pub roles: Vec<(String, Vec<String>)>,
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
    /// `[web.oidc]`: single sign-on; `None` when the section is absent.
    pub oidc: Option<OidcConfig>,
}

/// `[web.oidc]`: signing in to the console with the site's OpenID
/// provider (src/web/oidc.rs). Checked at load; the secret file is read
/// (and its mode checked) when the console starts.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    /// `https://` only; discovery at ISSUER/.well-known/openid-configuration.
    pub issuer: String,
    pub client_id: String,
    /// 0600 (or stricter), else `serve` refuses to start.
    pub client_secret_file: PathBuf,
    /// The ID token claim that names the staff member (default
    /// `preferred_username`).
    pub username_claim: String,
    /// PEM certificates trusted for the provider instead of the built-in
    /// roots.
    pub ca_file: Option<PathBuf>,
    /// A staff member who needs a second factor gets in only when the
    /// token's `amr` holds one of these...
    pub mfa_amr: Vec<String>,
    /// ...or its `acr` is one of these.
    pub mfa_acr: Vec<String>,
    /// The ID token signature algorithms accepted (default RS256, ES256,
    /// EdDSA); `none` is never accepted, HS256/384/512 only when listed.
    pub algorithms: Vec<String>,
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
    fn public_name_is_a_host_name_or_address() {
        let at = Path::new("/x/g.toml");
        let d = Config::from_str_at("", at).unwrap();
        assert_eq!(d.public_name, None);
        for (text, want) in [
            ("bastion.example.com", Some("bastion.example.com")),
            (" bastion-1 ", Some("bastion-1")),
            ("192.0.2.7", Some("192.0.2.7")),
            ("2001:db8::7", Some("2001:db8::7")),
            ("", None),
        ] {
            let c =
                Config::from_str_at(&format!("[server]\npublic_name = {text:?}\n"), at).unwrap();
            assert_eq!(c.public_name.as_deref(), want, "{text:?}");
        }
        for bad in [
            "alice@bastion",
            "bastion:22x y",
            "-oProxyCommand=x",
            "b\u{e9}te",
        ] {
            let err = Config::from_str_at(&format!("[server]\npublic_name = {bad:?}\n"), at)
                .unwrap_err()
                .to_string();
            assert!(err.contains("server.public_name"), "{bad:?}: {err}");
        }
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
    fn oidc_defaults_and_refusals() {
        let p = Path::new("/etc/gh/gatehouse.toml");
        assert!(Config::from_str_at("", p).unwrap().web.oidc.is_none());
        let c = Config::from_str_at(
            "[web.oidc]\nissuer = \"https://idp.example.com\"\nclient_id = \"gatehouse\"\n\
             client_secret_file = \"data/oidc.secret\"\n",
            p,
        )
        .unwrap();
        let o = c.web.oidc.unwrap();
        assert_eq!(o.issuer, "https://idp.example.com");
        assert_eq!(
            o.client_secret_file,
            PathBuf::from("/etc/gh/data/oidc.secret")
        );
        assert_eq!(o.username_claim, "preferred_username");
        assert_eq!(o.mfa_amr, ["mfa", "otp", "hwk"]);
        assert!(o.mfa_acr.is_empty());
        assert_eq!(o.algorithms, ["RS256", "ES256", "EdDSA"]);
        assert_eq!(o.ca_file, None);
        let bad = |text: &str, key: &str| {
            let err = Config::from_str_at(text, p).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        };
        let base = "client_id = \"g\"\nclient_secret_file = \"s\"\n";
        bad(
            &format!("[web.oidc]\nissuer = \"http://idp.example.com\"\n{base}"),
            "web.oidc.issuer: \"http://idp.example.com\": must start with https://",
        );
        for not_loopback in [
            "http://127.0.0.1.example.com",
            "http://127.0.0.1@evil.example.com",
            "http://127.0.0.2:9",
            "http://localhost:x",
            "http://[::1]x",
        ] {
            bad(
                &format!("[web.oidc]\nissuer = \"{not_loopback}\"\n{base}"),
                "must start with https://",
            );
        }
        for loopback in [
            "http://127.0.0.1:9",
            "http://localhost",
            "http://[::1]:8080/realms/x",
        ] {
            let c = Config::from_str_at(&format!("[web.oidc]\nissuer = \"{loopback}\"\n{base}"), p)
                .unwrap_or_else(|e| panic!("{loopback}: {e}"));
            assert_eq!(c.web.oidc.unwrap().issuer, loopback);
        }
        bad(
            "[web.oidc]\nclient_id = \"g\"\n",
            "web.oidc.issuer: required",
        );
        bad(
            "[web.oidc]\nissuer = \"https://i\"\nclient_id = \"g\"\n",
            "web.oidc.client_secret_file: required",
        );
        let https = "issuer = \"https://i\"\n";
        bad(
            &format!("[web.oidc]\n{https}{base}algorithms = [\"none\"]\n"),
            "web.oidc.algorithms: \"none\"",
        );
        bad(
            &format!("[web.oidc]\n{https}{base}algorithms = []\n"),
            "web.oidc.algorithms",
        );
        bad(
            &format!("[web.oidc]\n{https}{base}username_claim = \"aud\"\n"),
            "web.oidc.username_claim",
        );
        bad(&format!("[web.oidc]\n{https}{base}bogus = 1\n"), "bogus");
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn directory_section() {
        let base = "[directory]\nurl = \"ldaps://dc1\"\nbind_dn = \"cn=g\"\n\
                    bind_password_file = \"data/d.secret\"\nusers = \"ou=p\"\n";
        let c = Config::from_str_at(base, Path::new("/x/g.toml")).unwrap();
        let d = c.directory.expect("[directory]");
        assert_eq!(d.tls, DirectoryTls::Ldaps);
        assert_eq!(d.bind_password_file, Path::new("/x/data/d.secret"));
        assert_eq!(d.name_attribute, "uid");
        assert_eq!(d.sync_every, Duration::from_secs(60));
        assert_eq!(d.max_stale, Duration::from_secs(900));
        assert!(
            Config::from_str_at("", Path::new("/x/g.toml"))
                .unwrap()
                .directory
                .is_none()
        );
        let bad = |text: String| {
            Config::from_str_at(&text, Path::new("/x/g.toml"))
                .unwrap_err()
                .to_string()
        };
        // ldap:// only with StartTLS: never a bind password in the clear.
        let plain = base.replace("ldaps://", "ldap://");
        assert!(
            bad(plain.clone()).contains("start_tls"),
            "{}",
            bad(plain.clone())
        );
        let c = Config::from_str_at(
            &format!("{plain}start_tls = true\n"),
            Path::new("/x/g.toml"),
        )
        .unwrap();
        assert_eq!(c.directory.unwrap().tls, DirectoryTls::StartTls);
        assert!(bad(base.replace("ldaps://dc1", "http://dc1")).contains("directory.url"));
        assert!(bad(base.replace("users = \"ou=p\"\n", "")).contains("directory.users"));
        assert!(
            bad(format!("{base}max_stale = \"10s\"\nsync_every = \"60s\"\n")).contains("max_stale")
        );
        assert!(bad(format!("{base}[directory.roles]\nroot = [\"g\"]\n")).contains("unknown role"));
        assert!(bad(format!("{base}colour = \"red\"\n")).contains("colour"));
    }
}
