//! The documented built-in defaults of every `gatehouse.toml` key; imports only the parent's resolved types, `crate::envfilter` and `crate::algorithms`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    AuditConfig, AuthConfig, Config, Limits, MetricsConfig, MfaMode, RecordingConfig, ReportConfig,
    ReviewConfig, VaultConfig, WebConfig,
};

/// `[web.oidc] username_claim`.
pub(super) const OIDC_USERNAME_CLAIM: &str = "preferred_username";
/// `[web.oidc] mfa_amr` (RFC 8176: multiple factors, one-time password,
/// hardware-secured key).
pub(super) const OIDC_MFA_AMR: [&str; 3] = ["mfa", "otp", "hwk"];
/// `[web.oidc] algorithms`; the ones that may be listed are these and
/// HS256, HS384, HS512, RS384, RS512, PS256, PS384, PS512, ES384.
pub(super) const OIDC_ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

/// Built-in defaults cannot fail to resolve; this exists only so that
/// `Default` needs no panic path.
pub(super) fn unreachable_defaults() -> Config {
    Config {
        source: None,
        listen: SocketAddr::from(([0, 0, 0, 0], 2222)),
        public_name: None,
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
            oidc: None,
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
        review: ReviewConfig {
            every: None,
            enforce: false,
        },
        directory: None,
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
