//! The handler's side of second factors (contract section 11, DESIGN.md
//! "Second factors: the handler's part"): after a verified key, decide
//! with `identity::need` whether a code is due, ask for it through
//! keyboard-interactive, check it with `identity::verify_login`, and count
//! wrong codes toward the lockout (`counted_failure`, the one place).
//!
//! russh calls `auth_keyboard_interactive` for any keyboard-interactive
//! request, whether or not a key came first, so the handler keeps its own
//! proof: [`KeyProven`], set only here once russh verified a key's
//! signature, for that login name. Without it a code alone would log in.
//!
//! Layer: part of `handler`; imports `handler` (and what it imports) and
//! `identity`.

use russh::server::Response;
use russh::{MethodKind, MethodSet};

use super::*;
use crate::identity::{self, LoginContext, Need, NeedInput};
use crate::server::login::Factors;

/// The prompt the stock client shows.
pub(super) const PROMPT: &str = "Verification code: ";

/// Sent as an authentication banner with the partial success: the stock
/// client prints it on stderr, in BatchMode too, so a script that cannot
/// answer the prompt learns why it was refused.
const ASK_BANNER: &str = "gatehouse: a second factor is required: a verification code is asked next (a BatchMode client cannot answer: run ssh without BatchMode)\r\n";

fn keyboard_interactive() -> Option<MethodSet> {
    Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..]))
}

impl ConnHandler {
    /// The key (or certificate) is proven and allowed: decide whether a
    /// second factor is due, and accept, ask, or accept into enroll-only.
    pub(super) async fn after_key(
        &mut self,
        user: &str,
        staff: String,
        policy: Arc<policy::Policy>,
        proof: KeyProof,
    ) -> Auth {
        let Some(policy_user) = policy.user(&staff) else {
            return self
                .refuse(user, "not in the policy", "KO_UNKNOWN_USER")
                .await;
        };
        let server = login::parse(user)
            .ok()
            .and_then(|l| l.server)
            .and_then(|s| policy.server(&s));
        let ctx = self.login_context(&staff, &proof.fingerprint, user);
        let now = Shared::now();
        let store = &self.shared.store;
        let looked_up = async {
            let enrolled = identity::factors::enrolled(store, &staff).await?;
            let cached = identity::factors::cached(store, &ctx, now).await?;
            Ok::<_, identity::IdentityError>((enrolled, cached))
        };
        let (enrolled, cached) = match Box::pin(looked_up).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("second factor lookup failed, refusing: {e}");
                if let identity::IdentityError::Store(e) = &e {
                    self.waited_for(e);
                }
                return self.refuse(user, "database unavailable", STORE_DOWN).await;
            }
        };
        let need = identity::need(NeedInput {
            auth: &self.shared.config.auth,
            user: policy_user,
            server,
            enrolled,
            cached,
            security_key: proof.security_key,
            public_name: self.shared.config.public_name.as_deref(),
            listen: self.shared.config.listen,
        });
        let key_factor = if proof.security_key {
            "security-key"
        } else {
            "key"
        };
        match need {
            Need::NotNeeded => {
                let factors = Factors {
                    used: vec![key_factor],
                    enroll_only: None,
                };
                self.accept_login(user, staff, &policy, proof.success, factors)
                    .await
            }
            Need::Cached => {
                let factors = Factors {
                    used: vec![key_factor, "cached"],
                    enroll_only: None,
                };
                self.accept_login(user, staff, &policy, proof.success, factors)
                    .await
            }
            Need::EnrollFirst { message } => {
                let factors = Factors {
                    used: vec![key_factor],
                    enroll_only: Some(message),
                };
                self.accept_login(user, staff, &policy, proof.success, factors)
                    .await
            }
            Need::Ask => {
                self.key_proven = Some(KeyProven {
                    login: user.to_string(),
                    staff,
                    fingerprint: proof.fingerprint,
                    sig_alg: proof.sig_alg,
                    success: proof.success,
                });
                self.banner = Some(ASK_BANNER.to_string());
                Auth::Reject {
                    proceed_with_methods: keyboard_interactive(),
                    partial_success: true,
                }
            }
        }
    }

    fn login_context(&self, staff: &str, fingerprint: &str, login_name: &str) -> LoginContext {
        LoginContext {
            user: staff.to_string(),
            fingerprint: fingerprint.to_string(),
            source: self.source(),
            session: Some(self.id.clone()),
            server: login::parse(login_name).ok().and_then(|l| l.server),
        }
    }

    /// One keyboard-interactive step: the prompt (no response yet), or
    /// the code typed.
    pub(super) async fn keyboard_interactive(
        &mut self,
        user: &str,
        response: Option<Response<'_>>,
    ) -> Auth {
        let proven = self.key_proven.as_ref().is_some_and(|k| k.login == user);
        if !proven {
            // Never a way in without a verified key first (russh does
            // not check that the method list allowed this request).
            self.key_proven = None;
            if let Some(refusal) = self.precheck(user).await {
                return refusal;
            }
            return self
                .refuse(
                    user,
                    "keyboard-interactive without a verified key",
                    "KO_NO_KEY_FIRST",
                )
                .await;
        }
        let Some(mut response) = response else {
            return Auth::Partial {
                name: "".into(),
                instructions: "".into(),
                prompts: vec![(PROMPT.into(), false)].into(),
            };
        };
        // A lockout (from another node, or this connection's own wrong
        // codes) stops the prompts at once.
        if let Some(refusal) = self.precheck(user).await {
            self.key_proven = None;
            return refusal;
        }
        let typed = response.next().map(|b| String::from_utf8(b.to_vec()));
        let Some(proof) = self.key_proven.as_ref() else {
            return Auth::reject();
        };
        let ctx = self.login_context(&proof.staff, &proof.fingerprint, user);
        let staff = proof.staff.clone();
        let outcome = match typed {
            Some(Ok(code)) => {
                let master = self.shared.vault.key();
                Box::pin(identity::verify_login(
                    &self.shared.store,
                    &master,
                    &self.shared.config.auth,
                    &ctx,
                    &code,
                    Shared::now(),
                ))
                .await
            }
            // No answer, or not UTF-8: a wrong code.
            _ => Ok(Err(identity::Refusal::WrongCode)),
        };
        match outcome {
            Ok(Ok(factor)) => {
                let Some(proof) = self.key_proven.take() else {
                    return Auth::reject();
                };
                let policy = self.shared.policy();
                // The policy may have changed while the code was typed:
                // the key is judged again by the policy in force.
                if policy.user(&staff).is_none() {
                    return self
                        .refuse(user, "not in the policy", "KO_UNKNOWN_USER")
                        .await;
                }
                let factors = Factors {
                    used: vec!["key", factor.as_str()],
                    enroll_only: None,
                };
                let success = proof.success.detail("sig_alg", proof.sig_alg);
                self.accept_login(user, staff, &policy, success, factors)
                    .await
            }
            Ok(Err(refusal)) => {
                tracing::info!("second factor refused for {staff}: {}", refusal.code());
                self.failures_here += 1;
                let locked = Box::pin(counted_failure(&self.shared, &staff, self.source())).await;
                if locked {
                    self.key_proven = None;
                    self.banner =
                        Some("gatehouse: too many wrong codes: account locked\r\n".into());
                    return Auth::reject();
                }
                self.banner = Some(format!("gatehouse: {}\r\n", refusal.message()));
                // Not a partial success: the code failed. The client may
                // ask again (OpenSSH: NumberOfPasswordPrompts); the lockout
                // is checked before every code.
                Auth::Reject {
                    proceed_with_methods: keyboard_interactive(),
                    partial_success: false,
                }
            }
            Err(e) => {
                tracing::error!("second factor check failed, refusing: {e}");
                self.key_proven = None;
                if let identity::IdentityError::Store(e) = &e {
                    self.waited_for(e);
                }
                self.refuse(user, "database unavailable", STORE_DOWN).await
            }
        }
    }

    /// A security-key signature without the user-presence flag: refused,
    /// never counted toward the user's lockout (no touch proves nothing of
    /// the person), audited with a stable code.
    pub(super) async fn refuse_no_presence(&mut self, user: &str, fingerprint: &str) -> Auth {
        self.refuse_with(
            user,
            "security key signature without user presence (no touch)",
            "KO_SK_NO_USER_PRESENCE",
            &[("key", fingerprint)],
        )
        .await
    }
}
