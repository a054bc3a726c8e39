//! Identity: who a staff member is beyond their key. This round, second
//! factors (contract section 11): TOTP per RFC 6238 ([`totp`]), recovery
//! codes ([`recovery`]), who must give a factor for a login ([`need`]: a
//! pure function), and the store-backed steps the SSH handler and the CLI
//! call ([`factors`]: enrollment, verification at login, the approval
//! cache, admin resets).
//!
//! This layer may use `config`, `policy`, `store`, the vault's crypto and
//! `audit`; never `server` or `web`, which call into it.
//!
//! Invariants:
//! - A TOTP secret is in the clear only in memory, inside a
//!   [`totp::TotpSecret`] whose `Debug` prints nothing; in the database it
//!   is sealed under the vault's master key, bound to its user.
//! - A code works once on every node: the last accepted time step per user
//!   lives in the database and is advanced by one conditional statement.
//! - A recovery code is stored only as a salted hash and used at most once.
//! - No event carries a secret, a code typed, or a recovery code.
//! - A refusal is a [`Refusal`] with a stable code; `Err` is a fault, and
//!   the handler refuses the login on a fault (fail closed).

pub mod factors;
pub mod need;
pub mod recovery;
pub mod totp;

pub use factors::{
    Enrollment, LoginContext, RecoveryCodes, clear_cache_on_policy_change, enroll_allowed,
    finish_enrollment, forget, remember, reset, verify_login,
};
pub use need::{Need, NeedInput, enroll_hint, need};

/// The factor a login used, as `auth.success`'s `detail.factors` and
/// `mfa.success`'s `detail.factor` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Totp,
    Recovery,
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::Recovery => "recovery",
        }
    }
}

/// Why a code was not accepted: a value, not a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Neither a current TOTP code nor an unused recovery code.
    WrongCode,
    /// A TOTP code for a step already used (here or on another node), or
    /// older than one used.
    Replayed,
    /// The user has no factor to check the code against.
    NotEnrolled,
    /// `mfa_self_enroll = false` and no `allow-enroll` in force.
    EnrollNotAllowed,
}

impl Refusal {
    /// Stable code, for events and tests.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::WrongCode => "mfa_wrong_code",
            Refusal::Replayed => "mfa_replayed",
            Refusal::NotEnrolled => "mfa_not_enrolled",
            Refusal::EnrollNotAllowed => "mfa_enroll_not_allowed",
        }
    }

    /// What the staff member is told.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::WrongCode => "wrong verification code",
            Refusal::Replayed => "this code was already used; wait for the next one",
            Refusal::NotEnrolled => "no second factor enrolled",
            Refusal::EnrollNotAllowed => {
                "enrolling needs an administrator's `gatehouse mfa allow-enroll` first"
            }
        }
    }
}

/// Faults of this layer.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("second factor secret: {0}")]
    Vault(#[from] crate::vault::VaultError),
    #[error("second factor: {0}")]
    Totp(String),
    #[error("the system random source failed")]
    Random,
    #[error("QR code: {0}")]
    Qr(String),
    #[error("the clock is before 1970")]
    Clock,
}
