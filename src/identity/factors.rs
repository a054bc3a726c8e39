//! The store-backed steps of second factors, called by the SSH handler
//! (verification at login, the approval cache, enrollment in command
//! mode) and by `gatehouse mfa` (reset, forget, allow-enroll). Each writes
//! its own audit event; none puts a secret or a typed code in one.

use std::net::IpAddr;

use time::OffsetDateTime;

use super::totp::{self, TotpSecret};
use super::{Factor, IdentityError, Refusal, recovery};
use crate::audit::{AuditEvent, EventKind};
use crate::config::{AuthConfig, MfaMode};
use crate::policy::Policy;
use crate::store::Store;
use crate::vault::MasterKey;
use crate::vault::crypto::{self, Binding};
use crate::vault::secret::Secret;

/// The only factor kind stored so far.
pub const KIND_TOTP: &str = "totp";
/// How long `gatehouse mfa allow-enroll` lets a user enroll.
pub const ALLOW_ENROLL_FOR: time::Duration = time::Duration::hours(24);

/// The sealed secret's row binding (see `vault::crypto::totp_binding`).
fn binding(user: &str) -> Binding<'_> {
    crate::vault::crypto::totp_binding(user)
}

/// Who is logging in, for the cache key and the events.
#[derive(Debug, Clone)]
pub struct LoginContext {
    pub user: String,
    /// `SHA256:...` of the key that authenticated.
    pub fingerprint: String,
    pub source: IpAddr,
    pub session: Option<String>,
    pub server: Option<String>,
}

impl LoginContext {
    /// The cache key's address: an IPv4-mapped IPv6 address is the IPv4
    /// address it maps, so one client is one source whichever socket
    /// family accepted it.
    pub fn source_key(&self) -> String {
        match self.source {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => v6.to_string(),
            },
            IpAddr::V4(v4) => v4.to_string(),
        }
    }

    fn event(&self, kind: EventKind) -> AuditEvent {
        let mut e = AuditEvent::new(kind)
            .user(self.user.clone())
            .source(self.source.to_string())
            .detail("fingerprint", self.fingerprint.clone());
        if let Some(s) = &self.session {
            e = e.session(s.clone());
        }
        if let Some(s) = &self.server {
            e = e.server(s.clone());
        }
        e
    }
}

/// Whether `user` has an enrolled factor.
pub async fn enrolled(store: &Store, user: &str) -> Result<bool, IdentityError> {
    Ok(store.mfa_factor(user, KIND_TOTP).await?.is_some())
}

/// Whether (user, key, source) holds a cached approval at `now`.
pub async fn cached(
    store: &Store,
    ctx: &LoginContext,
    now: OffsetDateTime,
) -> Result<bool, IdentityError> {
    Ok(store
        .mfa_cache_hit(&ctx.user, &ctx.fingerprint, &ctx.source_key(), now)
        .await?)
}

/// Caches an approval for (user, key, source) until `now + mfa_cache`;
/// nothing when `mfa_cache` is zero.
pub async fn remember(
    store: &Store,
    auth: &AuthConfig,
    ctx: &LoginContext,
    now: OffsetDateTime,
) -> Result<(), IdentityError> {
    if auth.mfa_cache.is_zero() {
        return Ok(());
    }
    let ttl = time::Duration::try_from(auth.mfa_cache)
        .map_err(|e| IdentityError::Totp(format!("mfa_cache: {e}")))?;
    let until = now
        .checked_add(ttl)
        .ok_or_else(|| IdentityError::Totp("mfa_cache is out of range".into()))?;
    store
        .mfa_cache_put(&ctx.user, &ctx.fingerprint, &ctx.source_key(), until)
        .await?;
    Ok(())
}

/// Checks a code typed at the `Verification code: ` prompt: a TOTP code
/// for a step not used before, or an unused recovery code. Writes
/// `mfa.success` (`detail.factor`) or `mfa.failure` (`detail.code`, the
/// refusal's stable code), and on success caches the approval and notes
/// the factor's use. The caller counts a refusal toward `lockout_after`
/// (`Store::counted_failure`) and resets the count on success.
pub async fn verify_login(
    store: &Store,
    master: &MasterKey,
    auth: &AuthConfig,
    ctx: &LoginContext,
    typed: &str,
    now: OffsetDateTime,
) -> Result<Result<Factor, Refusal>, IdentityError> {
    let outcome = check_code(store, master, &ctx.user, typed, now).await?;
    match outcome {
        Ok(factor) => {
            store
                .audit(
                    &ctx.event(EventKind::MfaSuccess)
                        .detail("factor", factor.as_str()),
                )
                .await?;
            store.mfa_touch(&ctx.user, KIND_TOTP, now).await?;
            remember(store, auth, ctx, now).await?;
        }
        Err(refusal) => {
            store
                .audit(
                    &ctx.event(EventKind::MfaFailure)
                        .detail("code", refusal.code()),
                )
                .await?;
        }
    }
    Ok(outcome)
}

/// [`verify_login`] without the event and the cache.
async fn check_code(
    store: &Store,
    master: &MasterKey,
    user: &str,
    typed: &str,
    now: OffsetDateTime,
) -> Result<Result<Factor, Refusal>, IdentityError> {
    let Some(row) = store.mfa_factor(user, KIND_TOTP).await? else {
        return Ok(Err(Refusal::NotEnrolled));
    };
    let code = totp::normalise(typed);
    if totp::looks_like_totp(code) {
        let plain = crypto::open(master, binding(user), &row.sealed_secret)?;
        let secret = TotpSecret::from_base32(plain.expose())?;
        return match secret.check(code, now)? {
            None => Ok(Err(Refusal::WrongCode)),
            Some(step) if store.mfa_use_step(user, step).await? => Ok(Ok(Factor::Totp)),
            Some(_) => Ok(Err(Refusal::Replayed)),
        };
    }
    if recovery::normalise(code).is_none() {
        return Ok(Err(Refusal::WrongCode));
    }
    for (idx, stored) in store.mfa_recovery_unused(user).await? {
        if recovery::matches(&stored, code) {
            // Two nodes racing on one code: the store lets one win.
            return if store.mfa_recovery_use(user, idx, now).await? {
                Ok(Ok(Factor::Recovery))
            } else {
                Ok(Err(Refusal::Replayed))
            };
        }
    }
    Ok(Err(Refusal::WrongCode))
}

/// Whether `user` may enroll now: `mfa_self_enroll`, or an
/// `allow-enroll` in force.
pub async fn enroll_allowed(
    store: &Store,
    auth: &AuthConfig,
    user: &str,
    now: OffsetDateTime,
) -> Result<bool, IdentityError> {
    Ok(auth.mfa_self_enroll || store.mfa_enroll_allowed(user, now).await?)
}

/// An enrollment under way: the new secret lives only here until a first
/// good code stores it. `Debug` prints neither it nor the URI.
pub struct Enrollment {
    user: String,
    secret: TotpSecret,
    /// `otpauth://totp/Gatehouse:STAFF@BASTION?...`: printed once, first
    /// line of output without a terminal.
    pub uri: String,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Enrollment {
    /// A new secret for `user`; `bastion` is `[server] public_name` (else
    /// the listen address), for the label `STAFF@BASTION`.
    pub fn begin(user: &str, bastion: &str) -> Result<Enrollment, IdentityError> {
        let secret = TotpSecret::generate()?;
        let uri = totp::otpauth_uri(&secret, &format!("{user}@{bastion}"));
        Ok(Enrollment {
            user: user.to_string(),
            secret,
            uri,
        })
    }

    /// The URI as a QR code for a terminal.
    pub fn qr(&self) -> Result<String, IdentityError> {
        totp::qr_for_terminal(&self.uri)
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    #[doc(hidden)]
    /// The code for `now`, for tests that drive an enrollment.
    pub fn code_at(&self, now: OffsetDateTime) -> Result<String, IdentityError> {
        self.secret.code_at(now)
    }
}

/// Recovery codes as shown once at enrollment; `Debug` prints nothing.
pub struct RecoveryCodes(pub Vec<String>);

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecoveryCodes([{} redacted])", self.0.len())
    }
}

/// Completes `enrollment` with the first code: a good one stores the
/// sealed secret and ten hashed recovery codes (replacing any earlier
/// factor), marks the code's step used (the enrollment code cannot log
/// in), writes `mfa.enrolled`, and returns the recovery codes to print
/// once after the line `Recovery codes (each works once):`.
pub async fn finish_enrollment(
    store: &Store,
    master: &MasterKey,
    auth: &AuthConfig,
    enrollment: &Enrollment,
    typed: &str,
    source: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<Result<RecoveryCodes, Refusal>, IdentityError> {
    let user = enrollment.user.as_str();
    if !enroll_allowed(store, auth, user, now).await? {
        return Ok(Err(Refusal::EnrollNotAllowed));
    }
    let Some(step) = enrollment.secret.check(typed, now)? else {
        return Ok(Err(Refusal::WrongCode));
    };
    if !store.mfa_use_step(user, step).await? {
        return Ok(Err(Refusal::Replayed));
    }
    let codes = recovery::generate()?;
    let hashes = codes
        .iter()
        .map(|c| recovery::hash(c))
        .collect::<Result<Vec<_>, _>>()?;
    let sealed = crypto::seal(
        master,
        binding(user),
        &Secret::new(enrollment.secret.to_base32()),
    )?;
    store
        .mfa_enroll(user, KIND_TOTP, &sealed, &hashes, now)
        .await?;
    let mut e = AuditEvent::new(EventKind::MfaEnrolled)
        .user(user)
        .detail("factor", KIND_TOTP)
        .detail("recovery_codes", codes.len());
    if let Some(s) = source {
        e = e.source(s.to_string());
    }
    store.audit(&e).await?;
    Ok(Ok(RecoveryCodes(codes)))
}

/// `gatehouse mfa reset USER`: removes the factor, its recovery codes and
/// cached approvals. The event (`detail.by`) is written first: a reset
/// that cannot be recorded does not happen. `true` if one was enrolled.
pub async fn reset(store: &Store, user: &str, by: &str) -> Result<bool, IdentityError> {
    let was = enrolled(store, user).await?;
    store
        .audit(
            &AuditEvent::new(EventKind::MfaReset)
                .user(user)
                .detail("by", by)
                .detail("was_enrolled", was),
        )
        .await?;
    store.mfa_reset(user).await?;
    Ok(was)
}

/// `gatehouse mfa forget USER`: clears cached approvals; how many.
pub async fn forget(store: &Store, user: &str) -> Result<u64, IdentityError> {
    Ok(store.mfa_forget(user).await?)
}

/// Whether `user` must give a factor wherever they log in under `auth`
/// and `policy` (the parts that do not depend on the server).
fn always_required(auth: &AuthConfig, policy: &Policy, user: &str) -> bool {
    policy
        .user(user)
        .is_some_and(|u| auth.mfa == MfaMode::Required || u.mfa_required)
}

/// Users of `new` who must give a factor and did not have to under `old`
/// (or were not in it).
pub fn newly_required(auth: &AuthConfig, old: &Policy, new: &Policy) -> Vec<String> {
    new.users
        .keys()
        .filter(|u| always_required(auth, new, u) && !always_required(auth, old, u))
        .cloned()
        .collect()
}

/// For the policy reload path: clears the cached approvals of every user
/// the new policy makes need a factor again. Returns those users.
pub async fn clear_cache_on_policy_change(
    store: &Store,
    auth: &AuthConfig,
    old: &Policy,
    new: &Policy,
) -> Result<Vec<String>, IdentityError> {
    let users = newly_required(auth, old, new);
    for u in &users {
        store.mfa_forget(u).await?;
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_cache_key_is_user_key_and_address() {
        let ctx = |src: &str| LoginContext {
            user: "alice".into(),
            fingerprint: "SHA256:x".into(),
            source: src.parse().unwrap(),
            session: None,
            server: None,
        };
        assert_eq!(ctx("127.0.0.1").source_key(), "127.0.0.1");
        assert_eq!(ctx("::ffff:127.0.0.1").source_key(), "127.0.0.1");
        assert_eq!(ctx("::1").source_key(), "::1");
        assert_ne!(ctx("127.0.0.2").source_key(), ctx("127.0.0.1").source_key());
    }

    #[test]
    fn a_policy_that_requires_a_factor_again_names_the_users() {
        let auth = AuthConfig {
            mfa: MfaMode::Off,
            mfa_cache: Duration::from_secs(60),
            mfa_self_enroll: true,
        };
        let p = |bob_required: bool| {
            let extra = if bob_required {
                "mfa = \"required\"\n"
            } else {
                ""
            };
            let text = format!(
                "[[user]]\nname = \"alice\"\nkeys = []\nmfa = \"required\"\n\
                 [[user]]\nname = \"bob\"\nkeys = []\n{extra}"
            );
            Policy::from_sources(&[("p.toml".into(), text)]).unwrap()
        };
        assert_eq!(newly_required(&auth, &p(false), &p(true)), vec!["bob"]);
        assert!(newly_required(&auth, &p(true), &p(false)).is_empty());
        assert!(newly_required(&auth, &p(true), &p(true)).is_empty());
        let empty = Policy::default();
        assert_eq!(newly_required(&auth, &empty, &p(false)), vec!["alice"]);
    }
}
