//! What the report is built from: plain data, gathered from the store, the
//! recordings folder, the policy and the vault by [`super::gather`], or
//! written by hand in tests. Nothing here touches a database or a file.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::audit::AuditRecord;
use crate::config::ReportConfig;
use crate::grant_types::Grant;
use crate::store::SessionRow;

/// Everything [`super::build`] correlates for one day.
///
/// `events` holds the day's audit records for the pure, in-memory
/// [`super::build`]; the live path ([`super::generate`]) leaves it empty and
/// streams the events from the store into a [`super::DayBuilder`] instead,
/// so a day of a million events is never held in memory at once.
#[derive(Debug, Clone, Default)]
pub struct ReportInput {
    /// When the report is generated; entitlements are judged at
    /// `min(generated_at, end of the day)`.
    pub generated_at: Option<OffsetDateTime>,
    pub events: Vec<AuditRecord>,
    /// Sessions that overlap the day (a session crossing midnight belongs
    /// to both days).
    pub sessions: Vec<SessionRow>,
    /// Every recording on disk, all days: unreviewed ones carry over.
    pub recordings: Vec<RecordingFact>,
    /// Every grant (their current state), for the day's grant activity.
    pub grants: Vec<Grant>,
    pub users: Vec<UserFact>,
    pub servers: Vec<ServerFact>,
    /// Who may reach what, at the judging time.
    pub entitlements: Vec<EntitlementFact>,
    /// Each standing (user, server, account) with its access review state
    /// at the judging time (contract section 14; `policy::entitlements`).
    pub access_reviews: Vec<crate::policy::entitlements::Reviewed>,
    /// Vault credentials with their compliance; `None` when the vault
    /// could not be read (see `vault_note`) or holds nothing.
    pub credentials: Option<Vec<CredentialFact>>,
    /// Why the vault could not be read, shown in the report.
    pub vault_note: Option<String>,
    /// `config.recording.privileged_accounts`: globs naming privileged accounts.
    pub privileged_globs: Vec<String>,
    pub hours: WorkHours,
    /// `(user, source)` pairs with a successful login before the day.
    pub seen_before: HashSet<(String, String)>,
    /// Each user's last successful login before the day.
    pub last_login: HashMap<String, OffsetDateTime>,
    /// Per staff member, whether a second factor is required and
    /// enrolled; `None` when the source cannot say (no factors table).
    pub second_factors: Option<Vec<SecondFactorFact>>,
}

/// One staff member's second factor (contract section 11).
#[derive(Debug, Clone, PartialEq)]
pub struct SecondFactorFact {
    pub user: String,
    /// `[auth] mfa = "required"`, the user's `mfa = "required"`, or a
    /// server they may reach with `mfa = "every-session"`.
    pub required: bool,
    pub enrolled: bool,
}

/// Working hours in UTC: `start_hour <= hour < end_hour` on `days`
/// (1 = Monday .. 7 = Sunday).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkHours {
    pub start_hour: u8,
    pub end_hour: u8,
    pub days: Vec<u8>,
}

impl Default for WorkHours {
    fn default() -> Self {
        WorkHours {
            start_hour: 8,
            end_hour: 18,
            days: vec![1, 2, 3, 4, 5],
        }
    }
}

impl From<&ReportConfig> for WorkHours {
    fn from(c: &ReportConfig) -> Self {
        WorkHours {
            start_hour: c.work_start_hour,
            end_hour: c.work_end_hour,
            days: c.working_days.clone(),
        }
    }
}

impl WorkHours {
    /// Whether `t` (taken in UTC) falls within working hours.
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        let t = t.to_offset(time::UtcOffset::UTC);
        let day = t.weekday().number_from_monday();
        self.days.contains(&day) && self.start_hour <= t.hour() && t.hour() < self.end_hour
    }
}

/// A staff account in the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFact {
    pub name: String,
    /// From this day on the account is refused.
    pub expires: Option<Date>,
    /// From the site's directory (`[directory]`), not a `[[user]]` entry.
    pub from_directory: bool,
}

/// A server in the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerFact {
    pub name: String,
    /// The access mode's name (`global`, `firewall`, ...).
    pub mode: String,
}

/// One way a user may reach a server.
#[derive(Debug, Clone, PartialEq)]
pub struct EntitlementFact {
    pub user: String,
    pub server: String,
    pub mode: String,
    pub accounts: Vec<String>,
    pub ports: Vec<u16>,
    /// Mode global with standing access: forwards may reach any port.
    pub any_port: bool,
    pub through: Through,
}

/// What makes an entitlement.
#[derive(Debug, Clone, PartialEq)]
pub enum Through {
    /// A standing policy rule (e.g. `group:support`).
    Policy { rule: String },
    /// An active grant, until when (`None`: permanent).
    Grant {
        id: i64,
        until: Option<OffsetDateTime>,
        approved_by: Option<String>,
    },
    /// Eligible by `rule`, but sessions need a grant and none is active.
    GrantRequired { rule: String },
}

/// Review state of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewState {
    Unreviewed,
    Reviewed,
    Flagged,
}

impl ReviewState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewState::Unreviewed => "unreviewed",
            ReviewState::Reviewed => "reviewed",
            ReviewState::Flagged => "flagged",
        }
    }
}

/// One recording on disk, as the report needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingFact {
    pub id: String,
    /// The date folder (UTC start date).
    pub date: Date,
    /// The session it recorded (the sidecar's `session`).
    pub session: Option<String>,
    pub user: Option<String>,
    pub server: Option<String>,
    pub account: Option<String>,
    pub started_at: Option<OffsetDateTime>,
    /// The cast's path relative to the recordings folder, `/`-separated
    /// (`2026-03-10/ID.cast`).
    pub path: String,
    pub state: ReviewState,
    /// Why the sidecar could not be read, if it could not.
    pub problem: Option<String>,
}

/// A vault credential's metadata and compliance verdict (never a secret).
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialFact {
    pub server: String,
    pub account: String,
    /// `password` or `private-key`.
    pub kind: String,
    pub third_party: bool,
    pub created: OffsetDateTime,
    /// When the secret last changed.
    pub rotated: OffsetDateTime,
    pub last_used: Option<OffsetDateTime>,
    /// The last day the current secret is within policy.
    pub rotation_due: Date,
    pub complies: bool,
    /// Why not, one sentence each.
    pub reasons: Vec<String>,
}
