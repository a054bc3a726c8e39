//! Single sign-on to the console with the site's OpenID provider
//! (`[web.oidc]`, contract section 13): the authorization code flow with
//! PKCE, `state` and `nonce`, over the `openidconnect` crate.
//!
//! - **Discovery** (ISSUER/.well-known/openid-configuration, with the
//!   JWKS) happens when first needed and is kept for [`METADATA_TTL`]; a
//!   provider that is down makes sign-ins fail with `provider_error`, not
//!   the console, and the next sign-in tries again. A token signed with a
//!   key the cached JWKS lacks drops the cache, so a key rotation costs
//!   one refused sign-in.
//! - **State, nonce and the PKCE verifier** are kept in the database
//!   (`oidc_pending`, [`crate::store::NewSignIn`]) for [`PENDING_TTL`],
//!   keyed by the state's hash, so the provider's redirect may land on
//!   any node behind the console's address, or on this one restarted. The
//!   nonce and the binding are kept as hashes; the verifier as it is,
//!   blanked once taken. The browser holds only the state (in the URL)
//!   and a random binding value in a `SameSite=Lax` HttpOnly cookie, which
//!   the callback must present, so a callback URL sent to someone else
//!   signs nobody in. A state works once, on every node together (the
//!   store's take is one guarded UPDATE): a second callback with it is
//!   `replayed_code`.
//! - **The ID token** is checked by the crate against the provider's
//!   JWKS: signature with an algorithm from `[web.oidc] algorithms` (never
//!   `none`; HS* only when listed), issuer, audience (our client id, and no
//!   other untrusted audience), expiry and nonce.
//! - **Who**: the claim `username_claim` must name a staff member of the
//!   policy in force, not expired; roles come from that entry, never from
//!   the token. A staff member who needs a second factor (`[auth] mfa`,
//!   the user's `mfa = "required"`, or `optional` and enrolled) gets in
//!   only when the token's `amr` holds one of `mfa_amr` or its `acr` is
//!   one of `mfa_acr`; otherwise `needs_factor` and the SSH link.
//! - Every refusal is a [`SsoRefusal`] with a stable code, counted and
//!   audited as `web.login_refused` (`detail.method = "oidc"`) through the
//!   same summaries as refused links; a sign-in is `web.login` with
//!   `detail.method = "oidc"` and opens the same console session a link
//!   does ([`super::auth::open_session`]).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, TokenResponse,
};
use serde::Deserialize;

use super::auth::{self, Refusal};
use super::{WebError, WebState};
use crate::config::{Config, MfaMode, OidcConfig};
use crate::policy::Policy;
use crate::secret::Secret;
use crate::store::{NewSignIn, SignInTake, Store, StoreError};

/// How long a begun sign-in may take at the provider.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Sign-ins begun and not yet expired, at most, every node's together
/// (counted in the database; finished ones count until they expire).
pub const MAX_PENDING: u64 = 10_000;
/// How long discovery (metadata and JWKS) is trusted before it is fetched again.
pub const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Requests to the provider give up after this long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Sign-ins begun and callbacks, per source address and minute, on each
/// node (kept in memory: a limiter in the database would cost a write per
/// request).
const CALLBACKS_PER_MINUTE: u32 = 30;
/// The cookie that binds a sign-in to the browser that began it.
pub const BINDING_COOKIE: &str = "__Host-gatehouse-sso";
/// Where the provider sends the browser back.
pub const CALLBACK_PATH: &str = "/login/oidc/callback";

/// Why a single sign-on did not sign anyone in: the `reason` of
/// `web.login_refused` with `detail.method = "oidc"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SsoRefusal {
    /// No state, an unknown or tampered one, or not this browser's.
    BadState,
    /// The state (and so its code) was already used.
    ReplayedCode,
    /// The sign-in was begun more than [`PENDING_TTL`] ago.
    Expired,
    /// The provider refused the code at the token endpoint.
    CodeRejected,
    /// The provider answered with an error, or could not be reached.
    ProviderError,
    /// No ID token, or a bad signature, algorithm, issuer or expiry.
    TokenInvalid,
    /// The token is for another client.
    WrongAudience,
    /// The token's nonce is not the one this sign-in sent.
    BadNonce,
    /// The token has no (string) `username_claim`.
    NoUsername,
    /// The name is no staff member of the policy in force (or expired).
    UnknownUser,
    /// A second factor is needed and the token does not say one was checked.
    NeedsFactor,
    RateLimited,
}

impl SsoRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            SsoRefusal::BadState => "bad_state",
            SsoRefusal::ReplayedCode => "replayed_code",
            SsoRefusal::Expired => "expired",
            SsoRefusal::CodeRejected => "code_rejected",
            SsoRefusal::ProviderError => "provider_error",
            SsoRefusal::TokenInvalid => "token_invalid",
            SsoRefusal::WrongAudience => "wrong_audience",
            SsoRefusal::BadNonce => "bad_nonce",
            SsoRefusal::NoUsername => "no_username",
            SsoRefusal::UnknownUser => "unknown_user",
            SsoRefusal::NeedsFactor => "needs_factor",
            SsoRefusal::RateLimited => "rate_limited",
        }
    }

    /// What the browser is told.
    fn message(self) -> &'static str {
        match self {
            SsoRefusal::BadState | SsoRefusal::ReplayedCode | SsoRefusal::Expired => {
                "this sign-in is not valid here (it was used already, is too old, or was begun in \
                 another browser): start again from the sign-in page"
            }
            SsoRefusal::CodeRejected | SsoRefusal::ProviderError => {
                "the identity provider did not complete the sign-in; try again, or use the link \
                 from `ssh USER@BASTION web`"
            }
            SsoRefusal::TokenInvalid | SsoRefusal::WrongAudience | SsoRefusal::BadNonce => {
                "the identity provider's answer did not pass the checks; the sign-in is refused"
            }
            SsoRefusal::NoUsername | SsoRefusal::UnknownUser => {
                "this identity is not a staff member of this bastion"
            }
            SsoRefusal::NeedsFactor => {
                "your account needs a second factor and the identity provider did not say it \
                 checked one: sign in with the link from `ssh USER@BASTION web`"
            }
            SsoRefusal::RateLimited => "too many sign-in attempts from your address; wait a minute",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("[web.oidc] client_secret_file {path}: {message}")]
    Secret { path: String, message: String },
    #[error("[web.oidc] ca_file {path}: {message}")]
    Ca { path: String, message: String },
    #[error("[web.oidc]: {0}")]
    Setup(String),
}

/// One sign-in between `/login/oidc` and its callback, as its callback
/// took it from the store.
struct Pending {
    /// SHA-256 (hex) of the nonce sent: the ID token's must hash to it.
    nonce_hash: String,
    pkce_verifier: Secret,
}

/// Why a sign-in could not begin.
#[derive(Debug, thiserror::Error)]
enum BeginError {
    /// Discovery failed, or the provider's metadata is unusable.
    #[error("{0}")]
    Provider(String),
    /// [`MAX_PENDING`] sign-ins are under way.
    #[error("too many sign-ins under way")]
    Busy,
    #[error(transparent)]
    Web(#[from] WebError),
}

struct Discovered {
    metadata: CoreProviderMetadata,
    at: Instant,
}

/// The console's single sign-on: settings, the client secret, the HTTP
/// client towards the provider, the cached discovery and the per-source
/// limiter. The sign-ins under way are in the store, not here.
pub struct Sso {
    config: OidcConfig,
    secret: Secret,
    redirect: RedirectUrl,
    algorithms: Vec<CoreJwsSigningAlgorithm>,
    http: reqwest::Client,
    discovered: tokio::sync::Mutex<Option<Discovered>>,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

/// Reads the client secret: a file of mode 0600 or stricter (not
/// readable or writable by group or others), its first line the secret.
pub fn read_secret(path: &Path) -> Result<Secret, OidcError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |message: String| OidcError::Secret {
        path: path.display().to_string(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(err(format!(
            "mode {mode:04o}: must be 0600 (chmod 600 {})",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let secret = text.lines().next().unwrap_or("").trim().to_string();
    if secret.is_empty() {
        return Err(err("empty".into()));
    }
    Ok(Secret::new(secret))
}

impl Sso {
    /// Everything that can fail before the console serves: the secret
    /// file (read before `serve` drops privileges), the CA file, the
    /// algorithms. Contacts nobody: discovery waits for the first sign-in.
    pub fn new(config: &Config, base_url: &str) -> Result<Option<Sso>, OidcError> {
        let Some(oidc) = config.web.oidc.clone() else {
            return Ok(None);
        };
        let secret = read_secret(&oidc.client_secret_file)?;
        let mut http = reqwest::Client::builder()
            // The crate's advice against SSRF: the provider's answers are
            // taken as they come, never followed elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            // Config allows http:// only for a provider on loopback.
            .https_only(oidc.issuer.starts_with("https://"))
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(HTTP_TIMEOUT);
        if let Some(ca) = &oidc.ca_file {
            let cerr = |message: String| OidcError::Ca {
                path: ca.display().to_string(),
                message,
            };
            let pem = std::fs::read(ca).map_err(|e| cerr(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| cerr(e.to_string()))?;
            if certs.is_empty() {
                return Err(cerr("no certificate in the file".into()));
            }
            http = http.tls_built_in_root_certs(false);
            for c in certs {
                http = http.add_root_certificate(c);
            }
        }
        let http = http
            .build()
            .map_err(|e| OidcError::Setup(format!("HTTP client: {e}")))?;
        let redirect = RedirectUrl::new(format!("{base_url}{CALLBACK_PATH}"))
            .map_err(|e| OidcError::Setup(format!("console URL {base_url:?}: {e}")))?;
        let algorithms = oidc
            .algorithms
            .iter()
            .map(|a| {
                serde_json::from_value::<CoreJwsSigningAlgorithm>(serde_json::Value::String(
                    a.clone(),
                ))
                .map_err(|e| OidcError::Setup(format!("algorithm {a:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let per_minute = NonZeroU32::new(CALLBACKS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Ok(Some(Sso {
            config: oidc,
            secret,
            redirect,
            algorithms,
            http,
            discovered: tokio::sync::Mutex::new(None),
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }))
    }

    /// Discovery, from the cache while it is fresh.
    async fn metadata(&self) -> Result<CoreProviderMetadata, String> {
        let mut cached = self.discovered.lock().await;
        if let Some(d) = cached.as_ref()
            && d.at.elapsed() < METADATA_TTL
        {
            return Ok(d.metadata.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone()).map_err(|e| e.to_string())?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| error_chain(&e))?;
        *cached = Some(Discovered {
            metadata: metadata.clone(),
            at: Instant::now(),
        });
        Ok(metadata)
    }

    /// Fetches discovery once, for `serve`'s log: the console starts
    /// whatever the answer.
    pub async fn warm_up(&self) {
        match self.metadata().await {
            Ok(_) => tracing::info!("single sign-on: provider {} discovered", self.config.issuer),
            Err(e) => tracing::warn!(
                "single sign-on: provider {} not reachable yet ({e}); tried again at the next sign-in",
                self.config.issuer
            ),
        }
    }

    async fn forget_metadata(&self) {
        *self.discovered.lock().await = None;
    }

    /// Begins a sign-in: the provider's authorization URL and the binding
    /// cookie's value; the sign-in is stored for whichever node takes the
    /// callback.
    async fn begin(&self, store: &Store) -> Result<(String, String), BeginError> {
        let metadata = self.metadata().await.map_err(BeginError::Provider)?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.secret.expose().to_string())),
        )
        .set_redirect_uri(self.redirect.clone());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        if self.config.username_claim == "email" {
            request = request.add_scope(Scope::new("email".into()));
        }
        let (url, state, nonce) = request.url();
        let binding = self
            .remember(
                store,
                state.secret(),
                nonce.secret(),
                Secret::new(verifier.secret().to_string()),
                time::OffsetDateTime::now_utc(),
            )
            .await?;
        Ok((url.to_string(), binding))
    }

    /// Stores a sign-in begun at `now`; returns the binding cookie's value.
    async fn remember(
        &self,
        store: &Store,
        state: &str,
        nonce: &str,
        pkce_verifier: Secret,
        now: time::OffsetDateTime,
    ) -> Result<String, BeginError> {
        let binding = auth::random_token()?;
        let ttl = time::Duration::try_from(PENDING_TTL).unwrap_or(time::Duration::minutes(10));
        let stored = store
            .oidc_pending_insert(
                &NewSignIn {
                    state_hash: auth::token_hash(state),
                    binding_hash: auth::token_hash(&binding),
                    nonce_hash: auth::token_hash(nonce),
                    pkce_verifier,
                    created_at: now,
                    expires_at: now + ttl,
                },
                MAX_PENDING,
            )
            .await
            .map_err(WebError::from)?;
        if !stored {
            return Err(BeginError::Busy);
        }
        Ok(binding)
    }

    /// Takes the sign-in `state` names, once, for the browser holding
    /// `binding`, from whichever node began it. `Err` is the store failing
    /// (the callback then fails closed).
    async fn take(
        &self,
        store: &Store,
        state: Option<&str>,
        binding: Option<&str>,
        now: time::OffsetDateTime,
    ) -> Result<Result<Pending, SsoRefusal>, StoreError> {
        let Some(state) = state.filter(|s| !s.is_empty() && s.len() <= 512) else {
            return Ok(Err(SsoRefusal::BadState));
        };
        let binding = binding.map(auth::token_hash);
        Ok(
            match store
                .oidc_pending_take(&auth::token_hash(state), binding.as_deref(), now)
                .await?
            {
                SignInTake::Taken {
                    nonce_hash,
                    pkce_verifier,
                } => Ok(Pending {
                    nonce_hash,
                    pkce_verifier,
                }),
                SignInTake::Unknown | SignInTake::OtherBrowser => Err(SsoRefusal::BadState),
                SignInTake::Used => Err(SsoRefusal::ReplayedCode),
                SignInTake::Expired => Err(SsoRefusal::Expired),
            },
        )
    }

    /// The token endpoint and the ID token's checks: the verified claims'
    /// name, and whether the provider says it checked a second factor.
    async fn finish(&self, p: Pending, code: &str) -> Result<Verified, SsoRefusal> {
        let provider = |e: String| {
            tracing::warn!("single sign-on: provider error: {e}");
            SsoRefusal::ProviderError
        };
        let metadata = self.metadata().await.map_err(provider)?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.secret.expose().to_string())),
        )
        .set_redirect_uri(self.redirect.clone());
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| provider(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(p.pkce_verifier.expose().to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r)
                    if *r.error() == CoreErrorResponseType::InvalidGrant =>
                {
                    tracing::warn!("single sign-on: the provider refused the code: {r}");
                    SsoRefusal::CodeRejected
                }
                other => provider(error_chain(&other)),
            })?;
        let Some(id_token) = response.id_token() else {
            tracing::warn!("single sign-on: the token response has no ID token");
            return Err(SsoRefusal::TokenInvalid);
        };
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs(self.algorithms.iter().cloned());
        let claims = match id_token.claims(&verifier, nonce_check(&p.nonce_hash)) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("single sign-on: ID token refused: {e}");
                if matches!(
                    e,
                    ClaimsVerificationError::SignatureVerification(
                        SignatureVerificationError::NoMatchingKey
                    )
                ) {
                    self.forget_metadata().await;
                }
                return Err(match e {
                    ClaimsVerificationError::InvalidAudience(_) => SsoRefusal::WrongAudience,
                    ClaimsVerificationError::InvalidNonce(_) => SsoRefusal::BadNonce,
                    _ => SsoRefusal::TokenInvalid,
                });
            }
        };
        let amr: Vec<String> = claims
            .auth_method_refs()
            .map(|v| v.iter().map(|a| a.to_string()).collect())
            .unwrap_or_default();
        let acr = claims.auth_context_ref().map(|a| a.to_string());
        // Verified above: the payload is the signed one.
        let name = claim_string(&id_token.to_string(), &self.config.username_claim)
            .ok_or(SsoRefusal::NoUsername)?;
        Ok(Verified {
            name,
            second_factor: second_factor(&self.config, &amr, acr.as_deref()),
        })
    }
}

/// The ID token's nonce check: only the nonce's hash was kept, so the
/// token's nonce must hash to it.
fn nonce_check(hash: &str) -> impl FnOnce(Option<&Nonce>) -> Result<(), String> + '_ {
    move |n| match n {
        Some(n) if auth::same(&auth::token_hash(n.secret()), hash) => Ok(()),
        Some(_) => Err("nonce mismatch".to_string()),
        None => Err("missing nonce claim".to_string()),
    }
}

/// What a verified ID token says.
struct Verified {
    name: String,
    second_factor: bool,
}

/// An error and its sources on one line (the crate's top-level messages
/// alone say little: "Request failed").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

/// A string claim of a compact JWT's payload (which the caller has
/// verified). `None` when absent, not a string, or empty.
fn claim_string(jwt: &str, claim: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let s = v.get(claim)?.as_str()?.trim();
    (!s.is_empty() && s.len() <= 256).then(|| s.to_string())
}

/// Whether the token's `amr` or `acr` says the provider checked a second factor.
fn second_factor(config: &OidcConfig, amr: &[String], acr: Option<&str>) -> bool {
    amr.iter().any(|a| config.mfa_amr.contains(a))
        || acr.is_some_and(|a| config.mfa_acr.iter().any(|x| x == a))
}

/// Whether `user` must give a second factor to reach the console: the
/// same rules as an SSH login to command mode (`identity::need`, without
/// the security-key and cache cases, which the console cannot see).
fn needs_factor(
    auth: &crate::config::AuthConfig,
    user: &crate::policy::User,
    enrolled: bool,
) -> bool {
    auth.mfa == MfaMode::Required
        || user.mfa_required
        || (auth.mfa == MfaMode::Optional && enrolled)
}

/// The staff member a token's name stands for: the policy's entry of that
/// name, else of its lowercase (directories lowercase names).
fn staff<'p>(policy: &'p Policy, name: &str) -> Option<&'p crate::policy::User> {
    policy
        .user(name)
        .or_else(|| policy.user(&name.to_lowercase()))
}

/// `GET /login/oidc`: off to the provider.
pub async fn start(
    State(state): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<super::tls::Peer>,
    jar: CookieJar,
) -> Response {
    let Some(sso) = state.sso.as_ref() else {
        return WebError::NotFound.into_response();
    };
    if sso.limiter.check_key(&peer.0.ip()).is_err() {
        state
            .login_refusals
            .note(peer.0.ip(), Refusal::Sso(SsoRefusal::RateLimited), None);
        let status = StatusCode::TOO_MANY_REQUESTS;
        return (
            status,
            super::views::error_page(status, SsoRefusal::RateLimited.message()),
        )
            .into_response();
    }
    match sso.begin(&state.core.store).await {
        Ok((url, binding)) => {
            (jar.add(binding_cookie(binding)), Redirect::to(&url)).into_response()
        }
        Err(BeginError::Web(e)) => e.into_response(),
        Err(BeginError::Busy) => {
            tracing::warn!("single sign-on: cannot begin: {}", BeginError::Busy);
            let status = StatusCode::SERVICE_UNAVAILABLE;
            (
                status,
                super::views::error_page(
                    status,
                    "too many sign-ins are under way; try again in a few minutes, or use the \
                     link from `ssh USER@BASTION web`",
                ),
            )
                .into_response()
        }
        Err(e @ BeginError::Provider(_)) => {
            tracing::warn!("single sign-on: cannot begin: {e}");
            (
                StatusCode::BAD_GATEWAY,
                super::views::error_page(
                    StatusCode::BAD_GATEWAY,
                    "the identity provider cannot be reached now; try again later, or use the \
                     link from `ssh USER@BASTION web`",
                ),
            )
                .into_response()
        }
    }
}

fn binding_cookie(value: String) -> Cookie<'static> {
    // Lax, not Strict: the callback is a top-level navigation coming from
    // the provider's site, on which a Strict cookie is not sent.
    Cookie::build((BINDING_COOKIE, value))
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(time::Duration::seconds(
            i64::try_from(PENDING_TTL.as_secs()).unwrap_or(600),
        ))
        .build()
}

/// The provider's redirect back: `code` and `state`, or `error`.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    /// RFC 9207: the issuer that answered, when the provider says.
    iss: Option<String>,
}

/// `GET /login/oidc/callback`.
pub async fn callback(
    State(state): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<super::tls::Peer>,
    jar: CookieJar,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, WebError> {
    let Some(sso) = state.sso.as_ref() else {
        return Err(WebError::NotFound);
    };
    let source = peer.0.ip();
    let binding = jar.get(BINDING_COOKIE).map(|c| c.value().to_string());
    let jar = jar.remove(Cookie::build(BINDING_COOKIE).path("/").build());
    let outcome = sign_in(&state, sso, &binding, &q, source).await?;
    Ok(match outcome {
        Ok(session) => (
            jar.add(session.cookie),
            super::views::signed_in(&session.user),
        )
            .into_response(),
        Err((why, user)) => {
            state.login_refusals.note(source, Refusal::Sso(why), user);
            let status = if why == SsoRefusal::RateLimited {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::FORBIDDEN
            };
            (status, super::views::error_page(status, why.message())).into_response()
        }
    })
}

type Outcome = Result<auth::NewSession, (SsoRefusal, Option<String>)>;

/// The callback's decision, in order: rate limit, state (single use, this
/// browser), the provider's error, the code at the token endpoint, the ID
/// token's checks, the staff member, the second factor.
async fn sign_in(
    state: &WebState,
    sso: &Sso,
    binding: &Option<String>,
    q: &CallbackQuery,
    source: IpAddr,
) -> Result<Outcome, WebError> {
    if sso.limiter.check_key(&source).is_err() {
        return Ok(Err((SsoRefusal::RateLimited, None)));
    }
    let pending = match sso
        .take(
            &state.core.store,
            q.state.as_deref(),
            binding.as_deref(),
            time::OffsetDateTime::now_utc(),
        )
        .await?
    {
        Ok(p) => p,
        Err(why) => return Ok(Err((why, None))),
    };
    // RFC 9207: an answer from another issuer (a mix-up) is not ours.
    if q.iss.as_deref().is_some_and(|i| i != sso.config.issuer) {
        tracing::warn!("single sign-on: the callback names another issuer");
        return Ok(Err((SsoRefusal::ProviderError, None)));
    }
    if let Some(e) = &q.error {
        tracing::warn!(
            "single sign-on: the provider answered {:?}",
            crate::report::escape::clean(e)
        );
        return Ok(Err((SsoRefusal::ProviderError, None)));
    }
    let Some(code) = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 4096)
    else {
        return Ok(Err((SsoRefusal::ProviderError, None)));
    };
    let verified = match sso.finish(pending, code).await {
        Ok(v) => v,
        Err(why) => return Ok(Err((why, None))),
    };
    let policy = state.core.policy();
    let now = time::OffsetDateTime::now_utc();
    let Some(user) =
        staff(&policy, &verified.name).filter(|u| auth::in_policy(&policy, &u.name, now))
    else {
        return Ok(Err((SsoRefusal::UnknownUser, Some(verified.name))));
    };
    let name = user.name.clone();
    // Fail closed: a store that cannot say counts as enrolled.
    let enrolled = state.core.config.auth.mfa == MfaMode::Optional
        && crate::identity::factors::enrolled(&state.core.store, &name)
            .await
            .unwrap_or(true);
    if needs_factor(&state.core.config.auth, user, enrolled) && !verified.second_factor {
        return Ok(Err((SsoRefusal::NeedsFactor, Some(name))));
    }
    let session = auth::open_session(state, &name, source, "oidc").await?;
    Ok(Ok(session))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::from_str_at(text, Path::new("/nonexistent/gatehouse.toml")).unwrap()
    }

    fn sso_with(dir: &Path, extra: &str) -> Sso {
        sso_at(dir, "https://127.0.0.1:9", extra)
    }

    fn sso_at(dir: &Path, issuer: &str, extra: &str) -> Sso {
        let secret = dir.join("oidc.secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(&secret).unwrap().permissions(),
            0o600,
        );
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let c = config(&format!(
            "[web.oidc]\nissuer = \"{issuer}\"\nclient_id = \"gh\"\n\
             client_secret_file = \"{}\"\n{extra}",
            secret.display()
        ));
        Sso::new(&c, "https://127.0.0.1:8443").unwrap().unwrap()
    }

    /// A node's store on the database file in `dir` (several nodes: the
    /// same `dir`, other names).
    async fn store(dir: &Path, node: &str) -> Store {
        let url = format!("sqlite://{}", dir.join("g.db").display());
        Store::open(&url, node).await.unwrap()
    }

    /// A sign-in begun at `begun` with nonce "n" and verifier "v"; its
    /// binding cookie's value.
    async fn pending(sso: &Sso, store: &Store, state: &str, begun: time::OffsetDateTime) -> String {
        sso.remember(store, state, "n", Secret::new("v"), begun)
            .await
            .unwrap()
    }

    async fn take(
        sso: &Sso,
        store: &Store,
        state: Option<&str>,
        binding: Option<&str>,
    ) -> Result<Pending, SsoRefusal> {
        sso.take(store, state, binding, time::OffsetDateTime::now_utc())
            .await
            .unwrap()
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "x\n").unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let err = read_secret(&f).unwrap_err().to_string();
        assert!(err.contains("mode 0644: must be 0600"), "{err}");
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        assert_eq!(read_secret(&f).unwrap().expose(), "x");
        std::fs::write(&f, "\n").unwrap();
        assert!(read_secret(&f).unwrap_err().to_string().contains("empty"));
        let missing = read_secret(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("client_secret_file"), "{missing}");
    }

    #[tokio::test]
    async fn a_state_works_once_for_the_browser_that_began_it() {
        let dir = tempfile::tempdir().unwrap();
        let sso = sso_with(dir.path(), "");
        let db = store(dir.path(), "n1").await;
        let now = time::OffsetDateTime::now_utc();
        let bind = pending(&sso, &db, "st", now).await;
        assert_eq!(
            take(&sso, &db, None, Some(&bind)).await.err(),
            Some(SsoRefusal::BadState)
        );
        assert_eq!(
            take(&sso, &db, Some("st-tampered"), Some(&bind))
                .await
                .err(),
            Some(SsoRefusal::BadState)
        );
        assert_eq!(
            take(&sso, &db, Some("st"), None).await.err(),
            Some(SsoRefusal::BadState)
        );
        assert_eq!(
            take(&sso, &db, Some("st"), Some("other")).await.err(),
            Some(SsoRefusal::BadState)
        );
        let p = take(&sso, &db, Some("st"), Some(&bind)).await.unwrap();
        assert_eq!(p.pkce_verifier.expose(), "v");
        assert_eq!(p.nonce_hash, auth::token_hash("n"));
        // A replay, from this browser or another.
        for b in [Some(bind.as_str()), Some("other"), None] {
            assert_eq!(
                take(&sso, &db, Some("st"), b).await.err(),
                Some(SsoRefusal::ReplayedCode)
            );
        }
        let ttl = time::Duration::try_from(PENDING_TTL).unwrap();
        let old = pending(&sso, &db, "old", now - ttl - time::Duration::seconds(1)).await;
        assert_eq!(
            take(&sso, &db, Some("old"), Some(&old)).await.err(),
            Some(SsoRefusal::Expired)
        );
        // Refused once as expired, then gone.
        assert_eq!(
            take(&sso, &db, Some("old"), Some(&old)).await.err(),
            Some(SsoRefusal::BadState)
        );
        db.close().await;
    }

    /// Two nodes on one database: the provider's redirect lands on the
    /// node that did not begin the sign-in, or on one restarted since.
    #[tokio::test]
    async fn a_sign_in_begun_on_one_node_is_finished_on_another_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (sso_with(dir.path(), ""), sso_with(dir.path(), ""));
        let (sa, sb) = (store(dir.path(), "n1").await, store(dir.path(), "n2").await);
        let now = time::OffsetDateTime::now_utc();
        let bind = pending(&a, &sa, "st", now).await;
        let p = take(&b, &sb, Some("st"), Some(&bind)).await.unwrap();
        assert_eq!(p.pkce_verifier.expose(), "v");
        assert_eq!(
            take(&a, &sa, Some("st"), Some(&bind)).await.err(),
            Some(SsoRefusal::ReplayedCode)
        );
        // Node a restarted: a new store and a new Sso.
        let bind = pending(&a, &sa, "st2", now).await;
        sa.close().await;
        let (a2, sa2) = (sso_with(dir.path(), ""), store(dir.path(), "n1").await);
        assert!(take(&a2, &sa2, Some("st2"), Some(&bind)).await.is_ok());
        sa2.close().await;
        sb.close().await;
    }

    /// A provider with discovery and an empty JWKS on 127.0.0.1: enough to
    /// begin a sign-in. Its issuer URL.
    async fn discovery_only_provider() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let meta = serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(meta) }),
            )
            .route(
                "/jwks",
                axum::routing::get(|| async { axum::Json(serde_json::json!({"keys": []})) }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        issuer
    }

    /// `begin` as `/login/oidc` runs it: what the browser is sent away
    /// with is what the other node finds, and the database holds no state,
    /// nonce or binding in the clear.
    #[tokio::test]
    async fn begin_stores_hashes_and_the_verifier_of_the_challenge_sent() {
        let issuer = discovery_only_provider().await;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            sso_at(dir.path(), &issuer, ""),
            sso_at(dir.path(), &issuer, ""),
        );
        let (sa, sb) = (store(dir.path(), "n1").await, store(dir.path(), "n2").await);
        let (url, bind) = a.begin(&sa).await.unwrap();
        let url = openidconnect::url::Url::parse(&url).unwrap();
        let query = |k: &str| {
            url.query_pairs()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_string())
                .unwrap()
        };
        let (state, nonce, challenge) = (query("state"), query("nonce"), query("code_challenge"));
        assert_eq!(query("code_challenge_method"), "S256");
        let rows = sqlx::query(
            "SELECT state_hash, binding_hash, nonce_hash, pkce_verifier, created_at, expires_at \
             FROM oidc_pending",
        )
        .fetch_all(sa.pool())
        .await
        .unwrap();
        assert_eq!(rows.len(), 1);
        for col in ["state_hash", "binding_hash", "nonce_hash", "pkce_verifier"] {
            let v: String = crate::store::get(&rows[0], col).unwrap();
            for raw in [&state, &nonce, &bind] {
                assert!(!v.contains(raw.as_str()), "{col} holds a raw value");
            }
        }
        let p = take(&b, &sb, Some(&state), Some(&bind)).await.unwrap();
        assert_eq!(p.nonce_hash, auth::token_hash(&nonce));
        let sent = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            p.pkce_verifier.expose().as_bytes(),
        ));
        assert_eq!(sent, challenge, "the verifier is the challenge's");
        // Taken: the verifier is blanked at once, on every node.
        let left: String = crate::store::get(
            &sqlx::query("SELECT pkce_verifier FROM oidc_pending")
                .fetch_one(sa.pool())
                .await
                .unwrap(),
            "pkce_verifier",
        )
        .unwrap();
        assert_eq!(left, "");
        assert_eq!(
            take(&a, &sa, Some(&state), Some(&bind)).await.err(),
            Some(SsoRefusal::ReplayedCode)
        );
        sa.close().await;
        sb.close().await;
    }

    #[test]
    fn the_provider_is_contacted_only_when_needed() {
        // Nothing listens on port 9: building the console's SSO must not fail.
        let dir = tempfile::tempdir().unwrap();
        let sso = sso_with(dir.path(), "algorithms = [\"RS256\", \"HS256\"]\n");
        assert_eq!(
            sso.algorithms,
            [
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                CoreJwsSigningAlgorithm::HmacSha256
            ]
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        let db = rt.block_on(store(dir2.path(), "n1"));
        assert!(matches!(
            rt.block_on(sso.begin(&db)),
            Err(BeginError::Provider(_))
        ));
        assert_eq!(
            rt.block_on(db.oidc_pending_count(time::OffsetDateTime::now_utc()))
                .unwrap(),
            0
        );
        rt.block_on(db.close());
    }

    #[test]
    fn the_token_nonce_must_hash_to_the_one_kept() {
        let kept = auth::token_hash("n0nce");
        assert!(nonce_check(&kept)(Some(&Nonce::new("n0nce".into()))).is_ok());
        assert!(nonce_check(&kept)(Some(&Nonce::new("n0nc".into()))).is_err());
        assert!(nonce_check(&kept)(Some(&Nonce::new(kept.clone()))).is_err());
        assert!(nonce_check(&kept)(None).is_err());
    }

    #[test]
    fn the_default_algorithms_are_asymmetric() {
        let dir = tempfile::tempdir().unwrap();
        let sso = sso_with(dir.path(), "");
        assert_eq!(
            sso.algorithms,
            [
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                CoreJwsSigningAlgorithm::EcdsaP256Sha256,
                CoreJwsSigningAlgorithm::EdDsa
            ]
        );
    }

    #[test]
    fn claims_are_read_from_the_payload_and_hostile_ones_ignored() {
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let jwt = format!(
            "{}.{}.sig",
            enc("{}"),
            enc(r#"{"preferred_username":"alice","upn":" bob ","n":1,"e":""}"#)
        );
        assert_eq!(
            claim_string(&jwt, "preferred_username").as_deref(),
            Some("alice")
        );
        assert_eq!(claim_string(&jwt, "upn").as_deref(), Some("bob"));
        assert_eq!(claim_string(&jwt, "n"), None);
        assert_eq!(claim_string(&jwt, "e"), None);
        assert_eq!(claim_string(&jwt, "missing"), None);
        for junk in ["", ".", "a.b.c", "a.!!!.c", "only"] {
            assert_eq!(claim_string(junk, "sub"), None);
        }
    }

    #[test]
    fn a_second_factor_is_what_amr_or_acr_says() {
        let dir = tempfile::tempdir().unwrap();
        let c = sso_with(dir.path(), "mfa_acr = [\"phr\"]\n").config;
        assert!(second_factor(&c, &["pwd".into(), "otp".into()], None));
        assert!(second_factor(&c, &["mfa".into()], None));
        assert!(!second_factor(&c, &["pwd".into()], None));
        assert!(!second_factor(&c, &[], Some("phrh")));
        assert!(second_factor(&c, &[], Some("phr")));
        assert!(!second_factor(&c, &[], None));
    }

    #[test]
    fn refusal_codes_are_stable() {
        let all = [
            (SsoRefusal::BadState, "bad_state"),
            (SsoRefusal::ReplayedCode, "replayed_code"),
            (SsoRefusal::Expired, "expired"),
            (SsoRefusal::CodeRejected, "code_rejected"),
            (SsoRefusal::ProviderError, "provider_error"),
            (SsoRefusal::TokenInvalid, "token_invalid"),
            (SsoRefusal::WrongAudience, "wrong_audience"),
            (SsoRefusal::BadNonce, "bad_nonce"),
            (SsoRefusal::NoUsername, "no_username"),
            (SsoRefusal::UnknownUser, "unknown_user"),
            (SsoRefusal::NeedsFactor, "needs_factor"),
            (SsoRefusal::RateLimited, "rate_limited"),
        ];
        for (r, code) in all {
            assert_eq!(r.as_str(), code);
            assert_eq!(Refusal::Sso(r).as_str(), code);
            assert_eq!(Refusal::Sso(r).method(), "oidc");
        }
        assert_eq!(Refusal::Used.method(), "link");
    }
}
