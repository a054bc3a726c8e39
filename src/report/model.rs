//! The report as data: the JSON document (contract section 9) that every
//! renderer reads. Timestamps are RFC 3339 UTC strings with second
//! precision (`2026-03-10T08:00:00Z`), so they sort as text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The daily report. Top-level keys are fixed by the contract; the lists
/// marked "capped" keep their first [`super::LIST_CAP`] entries in time
/// order and count the rest in `summary.omitted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `YYYY-MM-DD` (UTC day).
    pub date: String,
    pub summary: Summary,
    /// Every session to a target that overlapped the day, by start time.
    pub sessions: Vec<SessionEntry>,
    /// Every recording not yet reviewed, this day's and earlier days'.
    pub recordings_to_review: Vec<ReviewEntry>,
    /// access.denied, forward.denied and command.blocked events (capped).
    pub denials: Vec<DenialEntry>,
    /// auth.lockout events (capped).
    pub lockouts: Vec<LockoutEntry>,
    /// By time (capped per kind).
    pub suspicious: Vec<Suspicious>,
    /// Per user, by name.
    pub entitlements: Vec<UserEntitlements>,
    pub privileged_accounts: PrivilegedAccounts,
    /// Grant activity of the day (capped).
    pub grants: Vec<GrantActivity>,
    /// policy.reloaded and policy.rejected events (capped).
    pub policy_changes: Vec<PolicyChange>,
    /// The day's joiners, movers and leavers from the site's directory
    /// (`user.added`, `user.changed`, `user.disabled`, `user.removed`; capped).
    #[serde(default)]
    pub directory_changes: Vec<DirectoryChange>,
    /// Servers in mode `global`: below modern security standards.
    pub global_servers: Vec<String>,
    pub generated_at: String,
    /// When entitlements were judged: the end of the day, or the
    /// generation time for a day not yet over.
    pub as_of: String,
    pub working_hours: WorkingHours,
    /// Each node's audit chain head when the report was written, signed
    /// with the bastion's recording signing key: a copy kept elsewhere
    /// pins the past (`gatehouse audit verify --pin REPORT.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_chain: Option<AuditChain>,
    /// Per staff member, by name: whether a second factor is required and
    /// enrolled (never a secret). Required and not enrolled is also in
    /// `suspicious` (`mfa_not_enrolled`).
    #[serde(default)]
    pub second_factors: Vec<SecondFactorEntry>,
}

/// One staff member's second factor, in `second_factors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondFactorEntry {
    pub user: String,
    pub required: bool,
    pub enrolled: bool,
}

/// The signed chain heads (`audit_chain`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditChain {
    /// The report's date, part of what each signature covers.
    pub date: String,
    /// The Ed25519 public key (hex) the signatures verify with; `None`
    /// when no signing key was available (the heads are then unsigned).
    pub public_key: Option<String>,
    pub nodes: Vec<ChainHead>,
}

/// One node's chain head: its last `seq` and hash, the last seal's epoch
/// and `seq`, and the Ed25519 signature (hex) over
/// [`crate::seal::head_message`] (empty when unsigned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainHead {
    pub node: String,
    pub seq: i64,
    pub hash: String,
    pub seal_epoch: Option<i64>,
    pub sealed_seq: Option<i64>,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkingHours {
    pub start_hour: u8,
    pub end_hour: u8,
    /// 1 = Monday .. 7 = Sunday.
    pub days: Vec<u8>,
    pub timezone: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Audit events recorded during the day.
    pub events: u64,
    pub sessions: u64,
    pub sessions_recorded: u64,
    pub sessions_unrecorded: u64,
    /// Sessions to servers in mode global.
    pub sessions_flagged: u64,
    pub sessions_out_of_hours: u64,
    /// Sessions started during the day, per UTC hour.
    pub sessions_per_hour: Vec<u64>,
    /// Logins without a target (command mode).
    pub command_mode_logins: u64,
    /// Distinct staff members with a session.
    pub users_active: u64,
    /// Distinct servers with a session.
    pub servers_accessed: u64,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub auth_success: u64,
    pub auth_failure: u64,
    pub failed_login_bursts: u64,
    pub lockouts: u64,
    /// All denials, including any omitted from the list.
    pub denials: u64,
    pub blocked_commands: u64,
    pub hostkey_mismatches: u64,
    pub first_seen_sources: u64,
    pub suspicious: u64,
    pub recordings_to_review: u64,
    /// Of those, recordings from earlier days.
    pub recordings_carried_over: u64,
    pub grants_requested: u64,
    pub grants_approved: u64,
    pub grants_denied: u64,
    pub grants_revoked: u64,
    pub grants_expired: u64,
    pub policy_reloads: u64,
    pub policy_rejections: u64,
    pub privileged_credentials: u64,
    pub privileged_noncompliant: u64,
    /// Standing entitlements whose access review is overdue, and those
    /// suspended by a review (contract section 14).
    #[serde(default)]
    pub reviews_overdue: u64,
    #[serde(default)]
    pub reviews_suspended: u64,
    /// Users without a login for 90 days (or none on record).
    pub users_dormant: Vec<String>,
    /// Users whose account expires within 14 days.
    pub users_expiring: Vec<String>,
    /// Users whose account has expired.
    pub users_expired: Vec<String>,
    /// Entries left out of capped lists, by list (`denials`,
    /// `suspicious.blocked_command`, ...). Empty when nothing was left out.
    pub omitted: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEntry {
    pub id: String,
    pub user: String,
    pub server: String,
    pub account: Option<String>,
    pub source: String,
    pub start: String,
    pub end: Option<String>,
    /// `None` while the session is live.
    pub duration_secs: Option<i64>,
    pub live: bool,
    /// Started before the day (reported on its first day too).
    pub started_before_day: bool,
    /// Client to target.
    pub bytes_up: i64,
    /// Target to client.
    pub bytes_down: i64,
    pub recorded: bool,
    pub recording: Option<String>,
    /// The cast, relative to the recordings folder.
    pub recording_path: Option<String>,
    /// The grant that authorized the session.
    pub grant: Option<i64>,
    pub mode: Option<String>,
    /// Mode global: below modern security standards.
    pub flagged: bool,
    pub out_of_hours: bool,
    pub exit_status: Option<i64>,
    pub end_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewEntry {
    pub id: String,
    /// The recording's date folder.
    pub date: String,
    pub session: Option<String>,
    pub user: Option<String>,
    pub server: Option<String>,
    pub account: Option<String>,
    pub started_at: Option<String>,
    /// Relative to the recordings folder.
    pub path: String,
    /// From an earlier day and still unreviewed.
    pub carried_over: bool,
    pub days_waiting: i64,
    /// Why the sidecar could not be read, if it could not.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenialEntry {
    pub when: String,
    /// access.denied, forward.denied or command.blocked.
    pub kind: String,
    pub user: Option<String>,
    pub server: Option<String>,
    pub account: Option<String>,
    pub source: Option<String>,
    pub session: Option<String>,
    /// The policy's stable code, when given.
    pub code: Option<String>,
    pub reason: Option<String>,
    /// What was refused: the command, or the forward's destination.
    pub target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockoutEntry {
    pub when: String,
    pub user: Option<String>,
    pub source: Option<String>,
    pub failures: Option<i64>,
    pub until: Option<String>,
}

/// Something a reviewer should look at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspicious {
    /// `failed_login_burst`, `lockout`, `blocked_command`,
    /// `hostkey_mismatch`, `out_of_hours_session`, `first_seen_source`,
    /// `global_server_session`, `mfa_failure_burst` (wrong second-factor
    /// codes), `mfa_not_enrolled` (a factor required and none enrolled) or
    /// `review_overdue` (an entitlement whose access review is overdue at
    /// the judging time).
    pub kind: String,
    pub when: String,
    pub user: Option<String>,
    pub server: Option<String>,
    pub source: Option<String>,
    pub session: Option<String>,
    pub detail: String,
    /// Failed-login bursts: how many failures.
    pub count: Option<u64>,
    /// Failed-login bursts: the last failure.
    pub until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserEntitlements {
    pub user: String,
    /// Where the user comes from: `policy` (a `[[user]]`) or `directory`.
    #[serde(default = "policy_source")]
    pub source: String,
    pub expires: Option<String>,
    pub expired: bool,
    /// Expires within 14 days.
    pub expires_soon: bool,
    /// Last successful login on record (90 days back at most).
    pub last_login: Option<String>,
    /// No login for 90 days (or none on record).
    pub dormant: bool,
    pub access: Vec<Access>,
}

fn policy_source() -> String {
    "policy".to_string()
}

/// One joiner, mover or leaver of the day (a `user.*` event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryChange {
    pub when: String,
    pub user: Option<String>,
    /// `joiner` (user.added), `mover` (user.changed), `leaver`
    /// (user.disabled, user.removed).
    pub kind: String,
    /// The event's kind.
    pub event: String,
    pub groups_joined: Vec<String>,
    pub groups_left: Vec<String>,
    pub keys_added: i64,
    pub keys_removed: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Access {
    pub server: String,
    pub mode: String,
    pub accounts: Vec<String>,
    pub ports: Vec<u16>,
    pub any_port: bool,
    /// `policy`, `grant` or `grant-required`.
    pub through: String,
    /// The standing rule, for `policy` and `grant-required`.
    pub rule: Option<String>,
    pub grant: Option<i64>,
    /// For grants: until when; `None` is permanent.
    pub until: Option<String>,
    pub approved_by: Option<String>,
    pub flagged: bool,
    /// Access review (contract section 14), for standing access (policy
    /// or a permanent grant; `null` for temporary grants and
    /// grant-required rows): the least recent certification among its
    /// accounts, by whom, and when the next is due (`null` without
    /// `[review] every`, or when never certified).
    #[serde(default)]
    pub certified_at: Option<String>,
    #[serde(default)]
    pub certified_by: Option<String>,
    #[serde(default)]
    pub due: Option<String>,
    /// `ok`, `due`, `overdue` or `suspended`: the worst of its accounts.
    #[serde(default)]
    pub review: Option<String>,
    /// The same per account.
    #[serde(default)]
    pub reviews: Vec<AccountReview>,
}

/// One account's access review state within an [`Access`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountReview {
    pub account: String,
    pub certified_at: Option<String>,
    pub certified_by: Option<String>,
    pub due: Option<String>,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivilegedAccounts {
    /// Whether the vault could be read.
    pub vault: bool,
    pub vault_note: Option<String>,
    /// Per vault credential.
    pub credentials: Vec<CredentialEntry>,
    /// Privileged accounts (`recording.privileged_accounts`) used in the
    /// day's sessions, and by whom: the only view when the vault is empty.
    pub used: Vec<PrivilegedUse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialEntry {
    pub server: String,
    pub account: String,
    pub kind: String,
    pub third_party: bool,
    pub created: String,
    pub rotated: String,
    pub last_used: Option<String>,
    /// Whole days since the secret last changed.
    pub age_days: i64,
    pub rotation_due: String,
    pub complies: bool,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivilegedUse {
    pub server: String,
    pub account: String,
    pub users: Vec<String>,
    pub sessions: u64,
    pub first: String,
    pub last: String,
    /// Whether the vault holds a credential for it (`None`: vault unread).
    pub in_vault: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantActivity {
    pub when: String,
    /// requested, approved, denied, revoked or expired.
    pub action: String,
    pub grant: i64,
    /// The staff member the grant is for.
    pub user: Option<String>,
    /// Who acted (the requester, the approver, `gatehouse` for expiry).
    pub by: Option<String>,
    pub server: Option<String>,
    pub accounts: Vec<String>,
    pub ports: Vec<u16>,
    pub reason: Option<String>,
    /// The grant's state now.
    pub state: Option<String>,
    /// Expiry of an approved grant; `None` with state approved is permanent.
    pub until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyChange {
    pub when: String,
    /// `reloaded` or `rejected`.
    pub kind: String,
    /// Reloads: `start` or `changed`.
    pub reason: Option<String>,
    /// Reloads: the new policy's digest; rejections: the one kept serving.
    pub digest: Option<String>,
    pub users: Option<i64>,
    pub servers: Option<i64>,
    pub problem_count: Option<i64>,
    /// Rejections: the first problems, `FILE:LINE:COL: message`.
    pub problems: Vec<String>,
}
