//! Who is at the browser: one-time login links, the session cookie, roles
//! and CSRF tokens.
//!
//! - A link carries 256 random bits; the database keeps their SHA-256, so
//!   any node redeems a link another issued, and a database copy opens
//!   nothing. A link works once, for [`LINK_TTL`].
//! - Redeeming sets `__Host-gatehouse` (Secure, HttpOnly, SameSite=Strict,
//!   Path=/): another random token whose hash names a `web_sessions` row. A
//!   cookie without a live row is refused, so a forged one opens nothing.
//! - The row also holds the session's CSRF token, which every POST must
//!   carry (form field `csrf`); a missing or wrong one is a 403.
//! - Roles come from the policy in force at each request: a user removed
//!   from the policy, or expired, is signed out at their next click.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use super::{WebError, WebState};
use crate::audit::{AuditEvent, EventKind};
use crate::policy::{Policy, Role};
use crate::store::{LinkRedemption, Store, WebSessionRow};

/// How long a login link stays valid.
pub const LINK_TTL: Duration = Duration::from_secs(60);
/// A console session ends after this long without a request...
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// ...and this long after sign-in, whatever happens.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// `last_seen` is written at most this often (not on every request).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

pub const COOKIE: &str = "__Host-gatehouse";

/// 32 random bytes, base64url without padding.
pub fn random_token() -> Result<String, WebError> {
    let mut b = [0u8; 32];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| WebError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// What the database stores for a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

/// Equal without telling by timing where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Issues a one-time link for `user` (who must be in the policy) and
/// audits it. `base` is the console's URL (no trailing slash); `via` says
/// who asked (`ssh` or `cli`).
pub async fn issue_link(
    store: &Store,
    policy: &Policy,
    base: &str,
    user: &str,
    via: &str,
    source: Option<&str>,
) -> Result<String, WebError> {
    if policy.user(user).is_none() {
        return Err(WebError::Refused(format!("unknown user {user}")));
    }
    let token = random_token()?;
    let now = OffsetDateTime::now_utc();
    let ttl = time::Duration::try_from(LINK_TTL).unwrap_or(time::Duration::MINUTE);
    store
        .web_link_insert(&token_hash(&token), user, now, now + ttl)
        .await?;
    let mut ev = AuditEvent::new(EventKind::WebLink)
        .user(user)
        .detail("via", via)
        .detail("valid_secs", LINK_TTL.as_secs());
    if let Some(s) = source {
        ev = ev.source(s);
    }
    store.audit(&ev).await?;
    Ok(format!("{base}/login/{token}"))
}

/// Why a sign-in did not sign anyone in (the `reason` of
/// `web.login_refused`): a link's, or single sign-on's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    Unknown,
    Used,
    Expired,
    RateLimited,
    NotInPolicy,
    Sso(super::oidc::SsoRefusal),
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown",
            Refusal::Used => "used",
            Refusal::Expired => "expired",
            Refusal::RateLimited => "rate_limited",
            Refusal::NotInPolicy => "not_in_policy",
            Refusal::Sso(r) => r.as_str(),
        }
    }

    /// `detail.method` of the event: `link` or `oidc`.
    pub fn method(self) -> &'static str {
        match self {
            Refusal::Sso(_) => "oidc",
            _ => "link",
        }
    }
}

/// A new console session: the cookie value and the row's CSRF token.
pub struct NewSession {
    pub user: String,
    pub cookie: Cookie<'static>,
}

/// Redeems `token` from `source`: rate limit, single use, expiry, policy.
/// Every refusal is counted and audited in summaries (see
/// [`super::refusals`]); the sign-in is audited at once.
pub async fn redeem(
    state: &WebState,
    token: &str,
    source: IpAddr,
) -> Result<Result<NewSession, Refusal>, WebError> {
    let store = &state.core.store;
    let refuse = |why: Refusal, user: Option<String>| {
        state.login_refusals.note(source, why, user);
        Ok(Err(why))
    };
    if state.login_limiter.check_key(&source).is_err() {
        return refuse(Refusal::RateLimited, None);
    }
    // Tokens are 43 characters of base64url; anything else cannot exist.
    let plausible = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let now = OffsetDateTime::now_utc();
    let outcome = if plausible {
        store.web_link_redeem(&token_hash(token), now).await?
    } else {
        LinkRedemption::Unknown
    };
    let user = match outcome {
        LinkRedemption::Ok(u) => u,
        LinkRedemption::Unknown => return refuse(Refusal::Unknown, None),
        LinkRedemption::Used(u) => return refuse(Refusal::Used, Some(u)),
        LinkRedemption::Expired(u) => return refuse(Refusal::Expired, Some(u)),
    };
    let policy = state.core.policy();
    if !in_policy(&policy, &user, now) {
        return refuse(Refusal::NotInPolicy, Some(user));
    }
    Ok(Ok(open_session(state, &user, source, "link").await?))
}

/// `GET /login`: how to sign in: the one-time link from SSH, and single
/// sign-on when `[web.oidc]` is set.
pub async fn login_page(
    axum::extract::State(state): axum::extract::State<Arc<WebState>>,
) -> maud::Markup {
    let body = maud::html! {
        p #link-help {
            "Run " code { "ssh USER@BASTION web" } " and open the one-time link it prints."
        }
        @if state.sso.is_some() {
            p { "Or use your organisation's account:" }
            p { a #sso href="/login/oidc" { "Sign in with single sign-on" } }
        }
    };
    super::views::layout(None, "Sign in", body)
}

/// The console session every sign-in opens, a link's or single sign-on's
/// (`method`), and its `web.login` event. The caller has checked that
/// `user` is a staff member of the policy in force.
pub async fn open_session(
    state: &WebState,
    user: &str,
    source: IpAddr,
    method: &'static str,
) -> Result<NewSession, WebError> {
    let store = &state.core.store;
    let now = OffsetDateTime::now_utc();
    let session = random_token()?;
    let csrf = random_token()?;
    store
        .web_session_insert(&token_hash(&session), user, &csrf, now)
        .await?;
    store
        .audit(
            &AuditEvent::new(EventKind::WebLogin)
                .user(user)
                .source(source.to_string())
                .detail("method", method),
        )
        .await?;
    Ok(NewSession {
        user: user.to_string(),
        cookie: session_cookie(session),
    })
}

fn session_cookie(value: String) -> Cookie<'static> {
    Cookie::build((COOKIE, value))
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(time::Duration::seconds(
            i64::try_from(ABSOLUTE_TIMEOUT.as_secs()).unwrap_or(43_200),
        ))
        .build()
}

/// The cookie that clears the session cookie.
pub fn removal_cookie() -> Cookie<'static> {
    let mut c = session_cookie(String::new());
    c.make_removal();
    c
}

pub(super) fn in_policy(policy: &Policy, user: &str, now: OffsetDateTime) -> bool {
    policy
        .user(user)
        .is_some_and(|u| u.expires.is_none_or(|d| now.date() < d))
}

/// Whether a console session may still be used at `now`: not signed out,
/// used within [`IDLE_TIMEOUT`], begun within [`ABSOLUTE_TIMEOUT`].
fn alive(row: &WebSessionRow, now: OffsetDateTime) -> bool {
    let idle = time::Duration::try_from(IDLE_TIMEOUT).unwrap_or(time::Duration::ZERO);
    let absolute = time::Duration::try_from(ABSOLUTE_TIMEOUT).unwrap_or(time::Duration::ZERO);
    row.ended_at.is_none() && now - row.last_seen <= idle && now - row.created_at <= absolute
}

/// The signed-in user of a request, with their roles as of now.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: String,
    pub csrf: String,
    pub auditor: bool,
    pub approver: bool,
    /// The session cookie's hash (for sign-out).
    pub session_hash: String,
}

impl Viewer {
    /// Auditors (and admins) see and review every session and recording.
    pub fn sees_all(&self) -> bool {
        self.auditor
    }

    /// Whether the viewer may see a session or recording of `owner`.
    pub fn may_see(&self, owner: &str) -> bool {
        self.sees_all() || self.user == owner
    }

    /// Checks a POST's CSRF token; a missing or wrong one is a 403.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), WebError> {
        match given {
            Some(t) if same(t, &self.csrf) => Ok(()),
            _ => Err(WebError::Csrf),
        }
    }
}

impl FromRequestParts<Arc<WebState>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<WebState>,
    ) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(token) = jar.get(COOKIE).map(|c| c.value().to_string()) else {
            return Err(WebError::NotSignedIn.into_response());
        };
        viewer_of(state, &token)
            .await
            .map_err(IntoResponse::into_response)
    }
}

async fn viewer_of(state: &WebState, token: &str) -> Result<Viewer, WebError> {
    let store = &state.core.store;
    let hash = token_hash(token);
    let Some(row) = store.web_session_get(&hash).await? else {
        return Err(WebError::NotSignedIn);
    };
    let now = OffsetDateTime::now_utc();
    if !alive(&row, now) {
        return Err(WebError::NotSignedIn);
    }
    let policy = state.core.policy();
    if !in_policy(&policy, &row.user, now) {
        return Err(WebError::NotSignedIn);
    }
    let (auditor, approver) = policy
        .user(&row.user)
        .map(|u| {
            (
                u.has_role(Role::Auditor) || u.has_role(Role::Admin),
                u.has_role(Role::Approver),
            )
        })
        .unwrap_or((false, false));
    if now - row.last_seen > time::Duration::try_from(TOUCH_EVERY).unwrap_or_default() {
        store.web_session_touch(&hash, now).await?;
    }
    Ok(Viewer {
        user: row.user,
        csrf: row.csrf,
        auditor,
        approver,
        session_hash: hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn sessions_end_when_idle_too_long_or_too_old_or_signed_out() {
        use time::macros::datetime;
        let t = datetime!(2026-03-10 08:00 UTC);
        let row = |created: OffsetDateTime, seen: OffsetDateTime, ended: bool| WebSessionRow {
            user: "alice".into(),
            csrf: "c".into(),
            created_at: created,
            last_seen: seen,
            ended_at: ended.then_some(seen),
        };
        let m = time::Duration::minutes;
        assert!(alive(&row(t, t, false), t + m(29)));
        assert!(!alive(&row(t, t, false), t + m(31)), "idle 30 min");
        // Kept busy, it still ends 12 h after sign-in.
        assert!(alive(&row(t, t + m(715), false), t + m(719)));
        assert!(
            !alive(&row(t, t + m(719), false), t + m(721)),
            "absolute 12 h"
        );
        assert!(!alive(&row(t, t, true), t + m(1)), "signed out");
    }

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }

    #[test]
    fn the_cookie_is_secure_http_only_strict() {
        let c = session_cookie("v".into()).to_string();
        for part in [
            "__Host-gatehouse=v",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
        ] {
            assert!(c.contains(part), "{c}");
        }
    }
}
