//! The raw serde shape of `gatehouse.toml`, one struct per section; imports only serde and `crate::algorithms`.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) recording: RawRecording,
    #[serde(default)]
    pub(super) vault: RawVault,
    #[serde(default)]
    pub(super) report: RawReport,
    #[serde(default)]
    pub(super) ssh: crate::algorithms::RawSsh,
    #[serde(default)]
    pub(super) ca: RawCa,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    #[serde(default)]
    pub(super) web: RawWeb,
    #[serde(default)]
    pub(super) audit: RawAudit,
    #[serde(default)]
    pub(super) auth: RawAuth,
    #[serde(default)]
    pub(super) review: RawReview,
    pub(super) directory: Option<RawDirectory>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReview {
    pub(super) every: Option<String>,
    pub(super) enforce: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirectory {
    pub(super) url: Option<String>,
    pub(super) start_tls: Option<bool>,
    pub(super) ca_file: Option<String>,
    pub(super) bind_dn: Option<String>,
    pub(super) bind_password_file: Option<String>,
    pub(super) users: Option<String>,
    pub(super) user_filter: Option<String>,
    pub(super) name_attribute: Option<String>,
    pub(super) key_attribute: Option<String>,
    pub(super) groups: Option<String>,
    pub(super) group_filter: Option<String>,
    pub(super) disabled_filter: Option<String>,
    pub(super) sync_every: Option<String>,
    pub(super) max_stale: Option<String>,
    #[serde(default)]
    pub(super) roles: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub(super) seal_key: Option<String>,
    pub(super) seal_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) mfa: Option<String>,
    pub(super) mfa_cache: Option<String>,
    pub(super) mfa_self_enroll: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCa {
    pub(super) key: Option<String>,
    pub(super) cert_authorities: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
    pub(super) max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) public_name: Option<String>,
    pub(super) host_key: Option<String>,
    pub(super) identity_key: Option<String>,
    pub(super) signing_key: Option<String>,
    pub(super) policies: Option<String>,
    pub(super) recordings: Option<String>,
    pub(super) reports: Option<String>,
    pub(super) database: Option<String>,
    pub(super) master_key: Option<String>,
    pub(super) node: Option<String>,
    pub(super) audit_spool: Option<String>,
    pub(super) user: Option<String>,
    pub(super) node_lost_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) login_grace_time: Option<String>,
    pub(super) max_startups: Option<usize>,
    pub(super) auth_per_minute_per_source: Option<u32>,
    pub(super) lockout_after: Option<u32>,
    pub(super) lockout_for: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) accept_env: Option<Vec<String>>,
    pub(super) max_channels_per_connection: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecording {
    pub(super) privileged_accounts: Option<Vec<String>>,
    pub(super) record_input: Option<bool>,
    pub(super) exec_text_cap: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVault {
    pub(super) rotation_admin_account: Option<String>,
    pub(super) internal_min_length: Option<usize>,
    pub(super) third_party_min_length: Option<usize>,
    pub(super) internal_max_age_days: Option<u32>,
    pub(super) third_party_max_age_days: Option<u32>,
    pub(super) history: Option<usize>,
    pub(super) third_party_accounts: Option<Vec<String>>,
    pub(super) rotation_concurrency: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    pub(super) listen: Option<String>,
    pub(super) cert: Option<String>,
    pub(super) key: Option<String>,
    pub(super) url: Option<String>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_source: Option<usize>,
    pub(super) handshake_timeout: Option<String>,
    pub(super) header_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) max_live_streams: Option<usize>,
    pub(super) max_live_streams_per_user: Option<usize>,
    pub(super) oidc: Option<RawOidc>,
}

/// `[web.oidc]`: single sign-on to the console (contract section 13).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOidc {
    pub(super) issuer: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret_file: Option<String>,
    pub(super) username_claim: Option<String>,
    pub(super) ca_file: Option<String>,
    pub(super) mfa_amr: Option<Vec<String>>,
    pub(super) mfa_acr: Option<Vec<String>>,
    pub(super) algorithms: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReport {
    pub(super) working_hours: Option<String>,
    pub(super) working_days: Option<Vec<String>>,
}
