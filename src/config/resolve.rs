//! `RawConfig` into `Config`, one function per `gatehouse.toml` section; imports only the parent's types and helpers, `raw`, `defaults`, `crate::algorithms` and `crate::envfilter`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::defaults::unreachable_defaults;
use super::raw::{
    RawAudit, RawAuth, RawConfig, RawDirectory, RawLimits, RawMetrics, RawOidc, RawRecording,
    RawReport, RawReview, RawServer, RawVault, RawWeb,
};
use super::{
    AuditConfig, AuthConfig, Config, ConfigError, DirectoryConfig, DirectoryTls, Limits,
    MetricsConfig, MfaMode, OidcConfig, RecordingConfig, ReportConfig, ReviewConfig, VaultConfig,
    WebConfig, default_node, parse_duration, resolve_sqlite_url, with_node,
};

/// What every section needs: where the file is (for errors) and its folder
/// (for relative paths).
struct Ctx<'a> {
    src_path: PathBuf,
    base: &'a Path,
}

impl Ctx<'_> {
    fn invalid(&self, key: &'static str, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.src_path.clone(),
            key,
            message,
        }
    }

    fn join(&self, p: Option<String>, default: PathBuf) -> PathBuf {
        let p = p.map(PathBuf::from).unwrap_or(default);
        if p.is_absolute() || self.base == Path::new(".") {
            p
        } else {
            self.base.join(p)
        }
    }

    fn dur(
        &self,
        key: &'static str,
        v: Option<String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match v {
            Some(s) => parse_duration(&s).map_err(|m| self.invalid(key, m)),
            None => Ok(default),
        }
    }

    /// A count that must be at least 1.
    fn positive(
        &self,
        key: &'static str,
        v: Option<usize>,
        default: usize,
    ) -> Result<usize, ConfigError> {
        match v {
            Some(0) => Err(self.invalid(key, "must be at least 1".to_string())),
            Some(n) => Ok(n),
            None => Ok(default),
        }
    }

    fn listen(
        &self,
        key: &'static str,
        v: Option<String>,
    ) -> Result<Option<SocketAddr>, ConfigError> {
        match v {
            Some(l) => Ok(Some(
                l.parse::<SocketAddr>()
                    .map_err(|e| self.invalid(key, format!("{l:?}: {e}")))?,
            )),
            None => Ok(None),
        }
    }
}

pub(super) fn resolve(
    raw: RawConfig,
    base: &Path,
    source: Option<PathBuf>,
) -> Result<Config, ConfigError> {
    let d = unreachable_defaults();
    let cx = Ctx {
        src_path: source
            .clone()
            .unwrap_or_else(|| PathBuf::from("(defaults)")),
        base,
    };
    let server = server(&cx, raw.server, &d)?;
    let limits = limits(&cx, raw.limits, &d.limits)?;
    let recording = recording(&cx, raw.recording, &d.recording)?;
    let vault = vault(raw.vault, &d.vault);
    let report = report(&cx, raw.report, &d.report)?;
    let web = web(&cx, raw.web, &d.web)?;
    let node = server.node;
    let metrics = metrics(&cx, raw.metrics, &d.metrics)?;
    let audit = audit(&cx, raw.audit, &d.audit, &node)?;
    let auth = auth(&cx, raw.auth, &d.auth)?;
    let review = review(&cx, raw.review)?;
    let cert_authorities = cert_authorities(&cx, raw.ca.cert_authorities)?;
    let ssh = crate::algorithms::SshAlgorithms::resolve(raw.ssh)
        .map_err(|e| cx.invalid(e.key, e.message))?;
    let ca_key = ca_key(&cx, raw.ca.key, d.ca_key);
    let directory = match raw.directory {
        Some(r) => Some(directory(&cx, r)?),
        None => None,
    };
    Ok(Config {
        source,
        listen: server.listen,
        public_name: server.public_name,
        host_key: server.host_key,
        identity_key: server.identity_key,
        signing_key: server.signing_key,
        policies: server.policies,
        recordings: server.recordings,
        reports: server.reports,
        database: server.database,
        master_key: server.master_key,
        audit_spool: server.audit_spool,
        node,
        user: server.user,
        node_lost_after: server.node_lost_after,
        limits,
        recording,
        vault,
        report,
        ssh,
        ca_key,
        metrics,
        web,
        cert_authorities,
        audit,
        auth,
        review,
        directory,
    })
}

/// The resolved `[server]` section (its keys sit at the top of [`Config`]).
struct Server {
    listen: SocketAddr,
    public_name: Option<String>,
    host_key: PathBuf,
    identity_key: PathBuf,
    signing_key: PathBuf,
    policies: PathBuf,
    recordings: PathBuf,
    reports: PathBuf,
    database: String,
    master_key: PathBuf,
    audit_spool: PathBuf,
    node: String,
    user: Option<String>,
    node_lost_after: Duration,
}

fn server(cx: &Ctx<'_>, raw: RawServer, d: &Config) -> Result<Server, ConfigError> {
    let listen = match raw.listen {
        Some(l) => l
            .parse::<SocketAddr>()
            .map_err(|e| cx.invalid("server.listen", format!("{l:?}: {e}")))?,
        None => d.listen,
    };
    let database = match raw.database {
        Some(url) => url,
        None => d.database.clone(),
    };
    let database = resolve_sqlite_url(&database, cx.base);
    let node_lost_after = cx.dur(
        "server.node_lost_after",
        raw.node_lost_after,
        d.node_lost_after,
    )?;
    if node_lost_after < Duration::from_secs(5) {
        return Err(cx.invalid(
            "server.node_lost_after",
            "must be at least 5s (nodes beat every few seconds)".into(),
        ));
    }
    let public_name = match raw.public_name.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) if valid_public_name(name) => Some(name.to_string()),
        Some(name) => {
            return Err(cx.invalid(
                "server.public_name",
                format!(
                    "{name:?}: a host name or address staff type after `ssh`, without user or port"
                ),
            ));
        }
    };
    Ok(Server {
        listen,
        public_name,
        host_key: cx.join(raw.host_key, d.host_key.clone()),
        identity_key: cx.join(raw.identity_key, d.identity_key.clone()),
        signing_key: cx.join(raw.signing_key, d.signing_key.clone()),
        policies: cx.join(raw.policies, d.policies.clone()),
        recordings: cx.join(raw.recordings, d.recordings.clone()),
        reports: cx.join(raw.reports, d.reports.clone()),
        database,
        master_key: cx.join(raw.master_key, d.master_key.clone()),
        audit_spool: cx.join(raw.audit_spool, d.audit_spool.clone()),
        node: raw.node.unwrap_or_else(default_node),
        user: raw.user.filter(|u| !u.is_empty()),
        node_lost_after,
    })
}

/// A DNS name or an IP address: letters, digits, `.`, `-` (and `:` for an
/// IPv6 address), at most 253 characters, not starting with `-` (it would
/// read as an option in the commands the bastion prints).
fn valid_public_name(name: &str) -> bool {
    name.len() <= 253
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
}

fn limits(cx: &Ctx<'_>, raw: RawLimits, d: &Limits) -> Result<Limits, ConfigError> {
    let limits = Limits {
        login_grace_time: cx.dur(
            "limits.login_grace_time",
            raw.login_grace_time,
            d.login_grace_time,
        )?,
        max_startups: raw.max_startups.unwrap_or(d.max_startups),
        auth_per_minute_per_source: raw
            .auth_per_minute_per_source
            .unwrap_or(d.auth_per_minute_per_source),
        lockout_after: raw.lockout_after.unwrap_or(d.lockout_after),
        lockout_for: cx.dur("limits.lockout_for", raw.lockout_for, d.lockout_for)?,
        idle_timeout: cx.dur("limits.idle_timeout", raw.idle_timeout, d.idle_timeout)?,
        accept_env: raw.accept_env.unwrap_or_else(|| d.accept_env.clone()),
        max_channels_per_connection: raw
            .max_channels_per_connection
            .unwrap_or(d.max_channels_per_connection),
    };
    crate::envfilter::EnvFilter::new(&limits.accept_env)
        .map_err(|e| cx.invalid("limits.accept_env", e.to_string()))?;
    if limits.max_channels_per_connection == 0 {
        return Err(cx.invalid(
            "limits.max_channels_per_connection",
            "must be at least 1".into(),
        ));
    }
    if limits.max_startups == 0 {
        return Err(cx.invalid("limits.max_startups", "must be at least 1".into()));
    }
    if limits.auth_per_minute_per_source == 0 {
        return Err(cx.invalid(
            "limits.auth_per_minute_per_source",
            "must be at least 1".into(),
        ));
    }
    Ok(limits)
}

fn recording(
    cx: &Ctx<'_>,
    raw: RawRecording,
    d: &RecordingConfig,
) -> Result<RecordingConfig, ConfigError> {
    let recording = RecordingConfig {
        privileged_accounts: raw
            .privileged_accounts
            .unwrap_or_else(|| d.privileged_accounts.clone()),
        record_input: raw.record_input.unwrap_or(false),
        exec_text_cap: raw.exec_text_cap.unwrap_or(d.exec_text_cap),
    };
    for g in &recording.privileged_accounts {
        globset::Glob::new(g)
            .map_err(|e| cx.invalid("recording.privileged_accounts", format!("{g:?}: {e}")))?;
    }
    Ok(recording)
}

fn vault(raw: RawVault, d: &VaultConfig) -> VaultConfig {
    VaultConfig {
        rotation_admin_account: raw
            .rotation_admin_account
            .unwrap_or_else(|| d.rotation_admin_account.clone()),
        internal_min_length: raw.internal_min_length.unwrap_or(d.internal_min_length),
        third_party_min_length: raw
            .third_party_min_length
            .unwrap_or(d.third_party_min_length),
        internal_max_age_days: raw.internal_max_age_days.unwrap_or(d.internal_max_age_days),
        third_party_max_age_days: raw
            .third_party_max_age_days
            .unwrap_or(d.third_party_max_age_days),
        history: raw.history.unwrap_or(d.history),
        third_party_accounts: raw.third_party_accounts.unwrap_or_default(),
        rotation_concurrency: raw
            .rotation_concurrency
            .unwrap_or(d.rotation_concurrency)
            .max(1),
    }
}

fn report(cx: &Ctx<'_>, raw: RawReport, d: &ReportConfig) -> Result<ReportConfig, ConfigError> {
    let mut report = d.clone();
    if let Some(h) = raw.working_hours {
        let (a, b) = h.split_once('-').ok_or_else(|| {
            cx.invalid("report.working_hours", format!("{h:?}: expected \"08-18\""))
        })?;
        let a: u8 = a
            .trim()
            .parse()
            .map_err(|_| cx.invalid("report.working_hours", format!("{h:?}")))?;
        let b: u8 = b
            .trim()
            .parse()
            .map_err(|_| cx.invalid("report.working_hours", format!("{h:?}")))?;
        if a >= b || b > 24 {
            return Err(cx.invalid(
                "report.working_hours",
                format!("{h:?}: start must be before end, within 0-24"),
            ));
        }
        report.work_start_hour = a;
        report.work_end_hour = b;
    }
    if let Some(days) = raw.working_days {
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
                    return Err(
                        cx.invalid("report.working_days", format!("{day:?}: not a weekday"))
                    );
                }
            };
            out.push(n);
        }
        report.working_days = out;
    }
    Ok(report)
}

fn web(cx: &Ctx<'_>, raw: RawWeb, d: &WebConfig) -> Result<WebConfig, ConfigError> {
    Ok(WebConfig {
        listen: cx.listen("web.listen", raw.listen)?,
        cert: cx.join(raw.cert, d.cert.clone()),
        key: cx.join(raw.key, d.key.clone()),
        url: match raw.url {
            Some(u) if u.starts_with("https://") => Some(u.trim_end_matches('/').to_string()),
            Some(u) => {
                return Err(cx.invalid("web.url", format!("{u:?}: must start with https://")));
            }
            None => None,
        },
        max_connections: cx.positive(
            "web.max_connections",
            raw.max_connections,
            d.max_connections,
        )?,
        max_connections_per_source: cx.positive(
            "web.max_connections_per_source",
            raw.max_connections_per_source,
            d.max_connections_per_source,
        )?,
        handshake_timeout: cx.dur(
            "web.handshake_timeout",
            raw.handshake_timeout,
            d.handshake_timeout,
        )?,
        header_timeout: cx.dur("web.header_timeout", raw.header_timeout, d.header_timeout)?,
        idle_timeout: cx.dur("web.idle_timeout", raw.idle_timeout, d.idle_timeout)?,
        max_live_streams: cx.positive(
            "web.max_live_streams",
            raw.max_live_streams,
            d.max_live_streams,
        )?,
        max_live_streams_per_user: cx.positive(
            "web.max_live_streams_per_user",
            raw.max_live_streams_per_user,
            d.max_live_streams_per_user,
        )?,
        oidc: match raw.oidc {
            Some(o) => Some(oidc(cx, o)?),
            None => None,
        },
    })
}

/// Signature algorithms `[web.oidc] algorithms` may name (`none` is not
/// one of them).
const OIDC_KNOWN_ALGORITHMS: [&str; 12] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
    "HS384", "HS512",
];

/// ID token claims that are not one plain string (localized or
/// structured): they cannot name a staff member.
const OIDC_UNUSABLE_CLAIMS: [&str; 20] = [
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "c_hash",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "profile",
    "picture",
    "website",
    "address",
];

/// Whether `rest` (what follows `http://`) names a loopback host, with
/// no user part: `127.0.0.1`, `[::1]` or `localhost`, any port, any path.
pub(super) fn loopback_authority(rest: &str) -> bool {
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = if authority.starts_with("[::1]") {
        authority.get(..5).unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let port_ok = match authority.get(host.len()..) {
        Some("") => true,
        Some(p) => p
            .strip_prefix(':')
            .is_some_and(|n| !n.is_empty() && n.parse::<u16>().is_ok()),
        None => false,
    };
    matches!(host, "127.0.0.1" | "[::1]" | "localhost") && port_ok
}

fn oidc(cx: &Ctx<'_>, raw: RawOidc) -> Result<OidcConfig, ConfigError> {
    let need = |key: &'static str, v: Option<String>| {
        v.filter(|s| !s.trim().is_empty())
            .ok_or_else(|| cx.invalid(key, "required when [web.oidc] is present".into()))
    };
    let issuer = need("web.oidc.issuer", raw.issuer)?;
    // The provider's answers decide who signs in: only over TLS (a test
    // provider gets a certificate from a test CA through ca_file), or
    // plain http to a provider on this very host (loopback), which no
    // one on the network can read or alter.
    // Kept as written: the token's `iss` must equal it exactly.
    let rest = match (
        issuer.strip_prefix("https://"),
        issuer.strip_prefix("http://"),
    ) {
        (Some(rest), _) => rest,
        (None, Some(rest)) if loopback_authority(rest) => rest,
        _ => {
            return Err(cx.invalid(
                "web.oidc.issuer",
                format!(
                    "{issuer:?}: must start with https:// (http:// only for a provider on \
                     127.0.0.1, [::1] or localhost)"
                ),
            ));
        }
    };
    if rest.is_empty() || rest.starts_with('/') || issuer.contains(['?', '#', '@', ' ']) {
        return Err(cx.invalid(
            "web.oidc.issuer",
            format!("{issuer:?}: expected https://HOST[:PORT][/PATH]"),
        ));
    }
    let username_claim = raw
        .username_claim
        .unwrap_or_else(|| super::defaults::OIDC_USERNAME_CLAIM.to_string());
    if username_claim.is_empty() || OIDC_UNUSABLE_CLAIMS.contains(&username_claim.as_str()) {
        return Err(cx.invalid(
            "web.oidc.username_claim",
            format!("{username_claim:?}: not a claim that can name a staff member"),
        ));
    }
    let algorithms = raw.algorithms.unwrap_or_else(|| {
        super::defaults::OIDC_ALGORITHMS
            .iter()
            .map(|a| a.to_string())
            .collect()
    });
    if algorithms.is_empty() {
        return Err(cx.invalid("web.oidc.algorithms", "must name at least one".into()));
    }
    for a in &algorithms {
        if !OIDC_KNOWN_ALGORITHMS.contains(&a.as_str()) {
            return Err(cx.invalid(
                "web.oidc.algorithms",
                format!("{a:?}: not one of {}", OIDC_KNOWN_ALGORITHMS.join(", ")),
            ));
        }
    }
    Ok(OidcConfig {
        issuer,
        client_id: need("web.oidc.client_id", raw.client_id)?,
        client_secret_file: cx.join(
            Some(need("web.oidc.client_secret_file", raw.client_secret_file)?),
            PathBuf::new(),
        ),
        username_claim,
        ca_file: raw.ca_file.map(|f| cx.join(Some(f), PathBuf::new())),
        mfa_amr: raw.mfa_amr.unwrap_or_else(|| {
            super::defaults::OIDC_MFA_AMR
                .iter()
                .map(|a| a.to_string())
                .collect()
        }),
        mfa_acr: raw.mfa_acr.unwrap_or_default(),
        algorithms,
    })
}

fn metrics(cx: &Ctx<'_>, raw: RawMetrics, d: &MetricsConfig) -> Result<MetricsConfig, ConfigError> {
    Ok(MetricsConfig {
        listen: cx.listen("metrics.listen", raw.listen)?,
        max_connections: cx.positive(
            "metrics.max_connections",
            raw.max_connections,
            d.max_connections,
        )?,
    })
}

fn audit(
    cx: &Ctx<'_>,
    raw: RawAudit,
    d: &AuditConfig,
    node: &str,
) -> Result<AuditConfig, ConfigError> {
    let audit = AuditConfig {
        seal_key: with_node(&cx.join(raw.seal_key, d.seal_key.clone()), node),
        seal_interval: cx.dur("audit.seal_interval", raw.seal_interval, d.seal_interval)?,
    };
    if audit.seal_interval < Duration::from_secs(1) {
        return Err(cx.invalid("audit.seal_interval", "must be at least 1s".to_string()));
    }
    Ok(audit)
}

fn auth(cx: &Ctx<'_>, raw: RawAuth, d: &AuthConfig) -> Result<AuthConfig, ConfigError> {
    let auth = AuthConfig {
        mfa: match raw.mfa {
            Some(m) => MfaMode::parse(&m).ok_or_else(|| {
                cx.invalid(
                    "auth.mfa",
                    format!("{m:?}: must be \"off\", \"optional\" or \"required\""),
                )
            })?,
            None => d.mfa,
        },
        mfa_cache: cx.dur("auth.mfa_cache", raw.mfa_cache, d.mfa_cache)?,
        mfa_self_enroll: raw.mfa_self_enroll.unwrap_or(d.mfa_self_enroll),
    };
    // A cache is a convenience, not a standing way in; a year also keeps
    // every expiry a storable timestamp.
    if auth.mfa_cache > Duration::from_secs(365 * 86400) {
        return Err(cx.invalid(
            "auth.mfa_cache",
            "must be at most 365d (\"0s\" asks every time)".into(),
        ));
    }
    Ok(auth)
}

/// `[review]`: `every` absent means no reviews; when set it must be at
/// least a second (tests use "1s") and at most ten years, so that every
/// due date is a storable timestamp.
fn review(cx: &Ctx<'_>, raw: RawReview) -> Result<ReviewConfig, ConfigError> {
    let every = match raw.every {
        Some(s) => {
            let d = parse_duration(&s).map_err(|m| cx.invalid("review.every", m))?;
            if d < Duration::from_secs(1) || d > Duration::from_secs(3650 * 86400) {
                return Err(cx.invalid(
                    "review.every",
                    format!("{s:?}: must be between 1s and 3650d"),
                ));
            }
            Some(d)
        }
        None => None,
    };
    Ok(ReviewConfig {
        every,
        enforce: raw.enforce.unwrap_or(false),
    })
}

/// `[ca].cert_authorities`: OpenSSH public key lines.
fn cert_authorities(
    cx: &Ctx<'_>,
    lines: Option<Vec<String>>,
) -> Result<Vec<russh::keys::PublicKey>, ConfigError> {
    let mut out = Vec::new();
    for line in lines.unwrap_or_default() {
        let key = russh::keys::PublicKey::from_openssh(line.trim()).map_err(|e| {
            cx.invalid(
                "ca.cert_authorities",
                format!("not an OpenSSH public key line: {e}"),
            )
        })?;
        out.push(key);
    }
    Ok(out)
}

/// `[ca].key`.
fn ca_key(cx: &Ctx<'_>, key: Option<String>, default: PathBuf) -> PathBuf {
    cx.join(key, default)
}

/// Role names `[directory.roles]` may give (those of a `[[user]]`).
const DIRECTORY_ROLES: &[&str] = &["approver", "auditor", "admin"];

/// `[directory]`: a TLS URL, the bind identity, the searches, the timing.
fn directory(cx: &Ctx<'_>, raw: RawDirectory) -> Result<DirectoryConfig, ConfigError> {
    let required = |key: &'static str, v: Option<String>| -> Result<String, ConfigError> {
        match v {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(cx.invalid(key, "required when [directory] is present".to_string())),
        }
    };
    let url = required("directory.url", raw.url)?;
    let start_tls = raw.start_tls.unwrap_or(false);
    let lower = url.to_ascii_lowercase();
    let tls = if lower.starts_with("ldaps://") {
        if start_tls {
            return Err(cx.invalid(
                "directory.start_tls",
                "ldaps:// is TLS already: start_tls applies to ldap:// only".to_string(),
            ));
        }
        DirectoryTls::Ldaps
    } else if lower.starts_with("ldap://") {
        if !start_tls {
            return Err(cx.invalid(
                "directory.url",
                format!(
                    "{url:?}: ldap:// sends the bind password in the clear; use ldaps:// or set start_tls = true"
                ),
            ));
        }
        DirectoryTls::StartTls
    } else {
        return Err(cx.invalid(
            "directory.url",
            format!("{url:?}: expected ldaps://HOST[:PORT] or ldap://HOST[:PORT]"),
        ));
    };
    let sync_every = cx.dur(
        "directory.sync_every",
        raw.sync_every,
        Duration::from_secs(60),
    )?;
    if sync_every < Duration::from_secs(1) {
        return Err(cx.invalid("directory.sync_every", "must be at least 1s".to_string()));
    }
    let max_stale = cx.dur(
        "directory.max_stale",
        raw.max_stale,
        Duration::from_secs(15 * 60),
    )?;
    if max_stale < sync_every {
        return Err(cx.invalid(
            "directory.max_stale",
            "must be at least sync_every".to_string(),
        ));
    }
    let mut roles = Vec::new();
    for (role, groups) in raw.roles {
        if !DIRECTORY_ROLES.contains(&role.as_str()) {
            return Err(cx.invalid(
                "directory.roles",
                format!("unknown role {role:?}: expected one of {DIRECTORY_ROLES:?}"),
            ));
        }
        roles.push((role, groups));
    }
    let groups = raw.groups.filter(|g| !g.trim().is_empty());
    Ok(DirectoryConfig {
        url,
        tls,
        ca_file: raw.ca_file.map(|p| cx.join(Some(p), PathBuf::new())),
        bind_dn: required("directory.bind_dn", raw.bind_dn)?,
        bind_password_file: cx.join(
            Some(required(
                "directory.bind_password_file",
                raw.bind_password_file,
            )?),
            PathBuf::new(),
        ),
        users: required("directory.users", raw.users)?,
        user_filter: raw
            .user_filter
            .unwrap_or_else(|| "(objectClass=posixAccount)".to_string()),
        name_attribute: raw.name_attribute.unwrap_or_else(|| "uid".to_string()),
        key_attribute: raw
            .key_attribute
            .unwrap_or_else(|| "sshPublicKey".to_string()),
        groups,
        group_filter: raw
            .group_filter
            .unwrap_or_else(|| "(objectClass=groupOfNames)".to_string()),
        disabled_filter: raw.disabled_filter.filter(|f| !f.trim().is_empty()),
        sync_every,
        max_stale,
        roles,
    })
}
