//! Audit events: one typed enum of kinds (contract section 8) and the event
//! value; the store writes them in one place (`Store::audit`), and reports
//! and exports read only the store. Plain values at the bottom of the layers.
//! May import: nothing of this crate.

use serde::{Deserialize, Serialize};

/// Every kind of audit event. The string form is the stable, exported name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "auth.success")]
    AuthSuccess,
    #[serde(rename = "auth.failure")]
    AuthFailure,
    #[serde(rename = "auth.lockout")]
    AuthLockout,
    #[serde(rename = "access.denied")]
    AccessDenied,
    #[serde(rename = "session.start")]
    SessionStart,
    #[serde(rename = "session.end")]
    SessionEnd,
    #[serde(rename = "exec")]
    Exec,
    #[serde(rename = "command.blocked")]
    CommandBlocked,
    #[serde(rename = "forward.open")]
    ForwardOpen,
    #[serde(rename = "forward.close")]
    ForwardClose,
    #[serde(rename = "forward.denied")]
    ForwardDenied,
    #[serde(rename = "jump.open")]
    JumpOpen,
    #[serde(rename = "sftp.op")]
    SftpOp,
    #[serde(rename = "grant.requested")]
    GrantRequested,
    #[serde(rename = "grant.approved")]
    GrantApproved,
    #[serde(rename = "grant.denied")]
    GrantDenied,
    #[serde(rename = "grant.revoked")]
    GrantRevoked,
    #[serde(rename = "grant.expired")]
    GrantExpired,
    #[serde(rename = "policy.reloaded")]
    PolicyReloaded,
    #[serde(rename = "policy.rejected")]
    PolicyRejected,
    #[serde(rename = "hostkey.mismatch")]
    HostkeyMismatch,
    #[serde(rename = "vault.read")]
    VaultRead,
    #[serde(rename = "vault.rotated")]
    VaultRotated,
    #[serde(rename = "vault.rotation_failed")]
    VaultRotationFailed,
    #[serde(rename = "vault.set")]
    VaultSet,
    #[serde(rename = "recording.reviewed")]
    RecordingReviewed,
    /// A recording began: `detail.recording` (its id) and `detail.cast`
    /// (its path under the recordings folder). `recordings verify` reports
    /// a recording so announced whose cast is gone.
    #[serde(rename = "recording.start")]
    RecordingStart,
    #[serde(rename = "session.killed")]
    SessionKilled,
    #[serde(rename = "connection.refused")]
    ConnectionRefused,
    #[serde(rename = "channel.refused")]
    ChannelRefused,
    #[serde(rename = "protocol.violation")]
    ProtocolViolation,
    #[serde(rename = "unlock")]
    Unlock,
    /// The review console: a one-time login link was issued.
    #[serde(rename = "web.link")]
    WebLink,
    #[serde(rename = "web.login")]
    WebLogin,
    /// A link that is unknown, used, expired, rate-limited, or for a user
    /// no longer in the policy.
    #[serde(rename = "web.login_refused")]
    WebLoginRefused,
    #[serde(rename = "web.logout")]
    WebLogout,
    /// A staff member enrolled a second factor (never the secret).
    #[serde(rename = "mfa.enrolled")]
    MfaEnrolled,
    /// A good second factor; `detail.factor` says which (`totp`, `recovery`).
    #[serde(rename = "mfa.success")]
    MfaSuccess,
    /// A wrong, replayed or unusable code; `detail.code` is the refusal's
    /// stable code (never the code typed).
    #[serde(rename = "mfa.failure")]
    MfaFailure,
    /// An admin removed a staff member's factor; `detail.by` who.
    #[serde(rename = "mfa.reset")]
    MfaReset,
    /// An admin cleared a staff member's cached approvals; `detail.by` who.
    #[serde(rename = "mfa.forget")]
    MfaForget,
    /// An admin let a staff member enroll (`mfa_self_enroll = false`);
    /// `detail.by` who, `detail.until` when it ends.
    #[serde(rename = "mfa.allow_enroll")]
    MfaAllowEnroll,
    /// An access review certified an entitlement (contract section 14):
    /// `user`, `server`, `account` the entitlement, `detail.by` the
    /// auditor, `detail.note`.
    #[serde(rename = "access.certified")]
    AccessCertified,
    /// An access review suspended an entitlement: `detail.by`,
    /// `detail.reason`.
    #[serde(rename = "access.suspended")]
    AccessSuspended,
    /// A directory sync stored a new copy; `detail` has the counts (users, groups, added, changed, disabled, removed, skipped).
    #[serde(rename = "directory.synced")]
    DirectorySynced,
    /// A directory user has the name of a policy `[[user]]`: the policy entry wins.
    #[serde(rename = "directory.conflict")]
    DirectoryConflict,
    /// The directory could not be read; once per episode (`detail.error`).
    #[serde(rename = "directory.unreachable")]
    DirectoryUnreachable,
    /// The directory answered again after `directory.unreachable`.
    #[serde(rename = "directory.recovered")]
    DirectoryRecovered,
    /// A directory entry was skipped (a name that is not a staff name, a malformed key, a referral, too many members); `detail.reason`.
    #[serde(rename = "directory.skipped")]
    DirectorySkipped,
    /// A staff member appeared in the directory.
    #[serde(rename = "user.added")]
    UserAdded,
    /// A directory staff member's keys or groups changed; `detail` says which.
    #[serde(rename = "user.changed")]
    UserChanged,
    /// A directory staff member was disabled.
    #[serde(rename = "user.disabled")]
    UserDisabled,
    /// A staff member left the directory.
    #[serde(rename = "user.removed")]
    UserRemoved,
}

impl EventKind {
    pub const ALL: &'static [EventKind] = &[
        EventKind::AuthSuccess,
        EventKind::AuthFailure,
        EventKind::AuthLockout,
        EventKind::AccessDenied,
        EventKind::SessionStart,
        EventKind::SessionEnd,
        EventKind::Exec,
        EventKind::CommandBlocked,
        EventKind::ForwardOpen,
        EventKind::ForwardClose,
        EventKind::ForwardDenied,
        EventKind::JumpOpen,
        EventKind::SftpOp,
        EventKind::GrantRequested,
        EventKind::GrantApproved,
        EventKind::GrantDenied,
        EventKind::GrantRevoked,
        EventKind::GrantExpired,
        EventKind::PolicyReloaded,
        EventKind::PolicyRejected,
        EventKind::HostkeyMismatch,
        EventKind::VaultRead,
        EventKind::VaultRotated,
        EventKind::VaultRotationFailed,
        EventKind::VaultSet,
        EventKind::RecordingReviewed,
        EventKind::RecordingStart,
        EventKind::SessionKilled,
        EventKind::ConnectionRefused,
        EventKind::ChannelRefused,
        EventKind::ProtocolViolation,
        EventKind::Unlock,
        EventKind::WebLink,
        EventKind::WebLogin,
        EventKind::WebLoginRefused,
        EventKind::WebLogout,
        EventKind::MfaEnrolled,
        EventKind::MfaSuccess,
        EventKind::MfaFailure,
        EventKind::MfaReset,
        EventKind::MfaForget,
        EventKind::MfaAllowEnroll,
        EventKind::AccessCertified,
        EventKind::AccessSuspended,
        EventKind::DirectorySynced,
        EventKind::DirectoryConflict,
        EventKind::DirectoryUnreachable,
        EventKind::DirectoryRecovered,
        EventKind::DirectorySkipped,
        EventKind::UserAdded,
        EventKind::UserChanged,
        EventKind::UserDisabled,
        EventKind::UserRemoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AuthSuccess => "auth.success",
            EventKind::AuthFailure => "auth.failure",
            EventKind::AuthLockout => "auth.lockout",
            EventKind::AccessDenied => "access.denied",
            EventKind::SessionStart => "session.start",
            EventKind::SessionEnd => "session.end",
            EventKind::Exec => "exec",
            EventKind::CommandBlocked => "command.blocked",
            EventKind::ForwardOpen => "forward.open",
            EventKind::ForwardClose => "forward.close",
            EventKind::ForwardDenied => "forward.denied",
            EventKind::JumpOpen => "jump.open",
            EventKind::SftpOp => "sftp.op",
            EventKind::GrantRequested => "grant.requested",
            EventKind::GrantApproved => "grant.approved",
            EventKind::GrantDenied => "grant.denied",
            EventKind::GrantRevoked => "grant.revoked",
            EventKind::GrantExpired => "grant.expired",
            EventKind::PolicyReloaded => "policy.reloaded",
            EventKind::PolicyRejected => "policy.rejected",
            EventKind::HostkeyMismatch => "hostkey.mismatch",
            EventKind::VaultRead => "vault.read",
            EventKind::VaultRotated => "vault.rotated",
            EventKind::VaultRotationFailed => "vault.rotation_failed",
            EventKind::VaultSet => "vault.set",
            EventKind::RecordingReviewed => "recording.reviewed",
            EventKind::RecordingStart => "recording.start",
            EventKind::SessionKilled => "session.killed",
            EventKind::ConnectionRefused => "connection.refused",
            EventKind::ChannelRefused => "channel.refused",
            EventKind::ProtocolViolation => "protocol.violation",
            EventKind::Unlock => "unlock",
            EventKind::WebLink => "web.link",
            EventKind::WebLogin => "web.login",
            EventKind::WebLoginRefused => "web.login_refused",
            EventKind::WebLogout => "web.logout",
            EventKind::MfaEnrolled => "mfa.enrolled",
            EventKind::MfaSuccess => "mfa.success",
            EventKind::MfaFailure => "mfa.failure",
            EventKind::MfaReset => "mfa.reset",
            EventKind::MfaForget => "mfa.forget",
            EventKind::MfaAllowEnroll => "mfa.allow_enroll",
            EventKind::AccessCertified => "access.certified",
            EventKind::AccessSuspended => "access.suspended",
            EventKind::DirectorySynced => "directory.synced",
            EventKind::DirectoryConflict => "directory.conflict",
            EventKind::DirectoryUnreachable => "directory.unreachable",
            EventKind::DirectoryRecovered => "directory.recovered",
            EventKind::DirectorySkipped => "directory.skipped",
            EventKind::UserAdded => "user.added",
            EventKind::UserChanged => "user.changed",
            EventKind::UserDisabled => "user.disabled",
            EventKind::UserRemoved => "user.removed",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event as the bastion emits it. The store adds `ts`, the node, the
/// sequence number and the chain hashes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEvent {
    pub kind: EventKind,
    pub user: Option<String>,
    pub server: Option<String>,
    pub account: Option<String>,
    pub session: Option<String>,
    pub source: Option<String>,
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(kind: EventKind) -> Self {
        AuditEvent {
            kind,
            user: None,
            server: None,
            account: None,
            session: None,
            source: None,
            detail: serde_json::Value::Object(Default::default()),
        }
    }
    // Every string field and detail passes through `escape_bidi` here, the
    // one way events are built, so peer input (login names, commands,
    // paths, reasons) cannot reorder how an event reads.
    pub fn user(mut self, u: impl Into<String>) -> Self {
        self.user = Some(escape_bidi(u.into()));
        self
    }
    pub fn server(mut self, s: impl Into<String>) -> Self {
        self.server = Some(escape_bidi(s.into()));
        self
    }
    pub fn account(mut self, a: impl Into<String>) -> Self {
        self.account = Some(escape_bidi(a.into()));
        self
    }
    pub fn session(mut self, s: impl Into<String>) -> Self {
        self.session = Some(escape_bidi(s.into()));
        self
    }
    pub fn source(mut self, s: impl Into<String>) -> Self {
        self.source = Some(escape_bidi(s.into()));
        self
    }
    /// Adds one key to the `detail` object.
    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        if let serde_json::Value::Object(m) = &mut self.detail {
            let mut value = value.into();
            escape_bidi_in(&mut value);
            m.insert(escape_bidi(key.to_string()), value);
        }
        self
    }
}

/// The Unicode bidirectional controls: embeddings and overrides
/// (U+202A..U+202E, the right-to-left override among them), isolates
/// (U+2066..U+2069), and the marks U+200E, U+200F and U+061C. In a terminal,
/// a log viewer or a browser they make text read in another order than it
/// is stored (`rm -rf /tmp/x` shown as something harmless).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// Writes each bidirectional control as the visible text `<U+202E>`: the
/// event still shows that one was sent, but it no longer acts.
pub fn escape_bidi(s: String) -> String {
    if !s.chars().any(is_bidi_control) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_bidi_control(c) {
            out.push_str(&format!("<U+{:04X}>", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// [`escape_bidi`] on every string in a JSON value, keys included.
fn escape_bidi_in(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => *s = escape_bidi(std::mem::take(s)),
        Value::Array(items) => items.iter_mut().for_each(escape_bidi_in),
        Value::Object(m) => {
            if m.keys().any(|k| k.chars().any(is_bidi_control)) {
                let old = std::mem::take(m);
                for (k, mut val) in old {
                    escape_bidi_in(&mut val);
                    m.insert(escape_bidi(k), val);
                }
            } else {
                m.values_mut().for_each(escape_bidi_in);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// An event as stored and exported (contract section 8).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    /// RFC 3339 UTC.
    pub ts: String,
    pub kind: String,
    pub user: Option<String>,
    pub server: Option<String>,
    pub account: Option<String>,
    pub session: Option<String>,
    pub source: Option<String>,
    pub detail: serde_json::Value,
    pub node: String,
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_are_escaped_in_every_field() {
        let rlo = "rm -rf /tmp/x\u{202e}txt.exe";
        let ev = AuditEvent::new(EventKind::Exec)
            .user("bob\u{2066}")
            .server("web\u{200f}")
            .detail("command", rlo)
            .detail("nested", serde_json::json!({"k\u{202a}": ["\u{061c}a", 1]}));
        assert_eq!(ev.user.as_deref(), Some("bob<U+2066>"));
        assert_eq!(ev.server.as_deref(), Some("web<U+200F>"));
        assert_eq!(ev.detail["command"], "rm -rf /tmp/x<U+202E>txt.exe");
        assert_eq!(
            ev.detail["nested"],
            serde_json::json!({"k<U+202A>": ["<U+061C>a", 1]})
        );
        for c in [
            '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200e}', '\u{200f}', '\u{061c}',
        ] {
            assert!(is_bidi_control(c), "{c:?}");
            assert!(!escape_bidi(format!("a{c}b")).contains(c));
        }
        // Everything else is left alone, other Unicode included.
        assert_eq!(
            escape_bidi("ünï \u{200d} עברית".into()),
            "ünï \u{200d} עברית"
        );
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(*k));
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
    }
}
