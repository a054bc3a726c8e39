//! The handler's authentication steps: refusing (with its audit and the
//! constant wait), the pre-checks before a key is looked at, checking a
//! key, and accepting a login.
//!
//! Layer: part of `handler`; imports `handler` (and what it imports).

use super::*;

impl ConnHandler {
    /// Refuses one authentication request: audited, and counted against
    /// the source's budget (`auth_per_minute_per_source`). It never counts
    /// toward the user's lockout: anyone can offer any public key for any
    /// name, so a refused offer says nothing about the user (nor does a
    /// bad signature: see `settle_unproven`).
    pub(super) async fn refuse(&mut self, user: &str, reason: &str, code: &str) -> Auth {
        self.refuse_with(user, reason, code, &[]).await
    }

    /// [`Self::refuse`] with `extra` details in the `auth.failure` event.
    pub(super) async fn refuse_with(
        &mut self,
        user: &str,
        reason: &str,
        code: &str,
        extra: &[(&str, &str)],
    ) -> Auth {
        self.failures_here += 1;
        // The bastion's own fault (its database away) is no attempt of the
        // source's: it must not leave the source blocked once it is over.
        if code != STORE_DOWN {
            self.shared.note_source_failure(self.source());
        }
        // A source already over its budget may keep a connection offering
        // keys: one RATE_LIMITED event per connection says so.
        if code == "RATE_LIMITED" {
            if self.rate_limit_audited {
                return Auth::reject();
            }
            self.rate_limit_audited = true;
        }
        let mut ev = AuditEvent::new(EventKind::AuthFailure)
            .source(self.source().to_string())
            .session(&self.id)
            .detail("reason", reason)
            .detail("code", code);
        for (k, v) in extra {
            ev = ev.detail(k, *v);
        }
        if code == STORE_DOWN {
            ev = ev.detail("db_waits", self.db_waits);
        }
        if let Some(staff) = login::staff_part(user) {
            ev = ev.user(staff);
        } else {
            ev = ev.detail("login", sanitize(user));
        }
        self.shared.audit(ev).await;
        Auth::reject()
    }

    /// A listed key was accepted on offer (the client was told it may sign
    /// with it) and no verified signature followed before the next
    /// authentication request or the end of the connection. russh calls no
    /// handler for a bad signature, so this is how one is seen: the client
    /// either sent a signature that did not verify or never proved it holds
    /// the private key (an unsigned query, then nothing). Neither takes the
    /// private key, so neither counts toward the user's lockout: audited
    /// (`BAD_SIGNATURE`) and charged to the source's budget only.
    pub(super) async fn settle_unproven(&mut self) {
        if let Some(staff) = self.awaiting_proof.take() {
            self.failures_here += 1;
            unproven_key_failure(self.shared.clone(), staff, self.source(), self.id.clone()).await;
        }
    }

    /// Refuses a key offered or signed with a SHA-1 signature algorithm
    /// (`ssh-rsa`, `ssh-dss`): after the usual prechecks (rate limit,
    /// login name, lockout), a `KO_WEAK_SIGNATURE_ALGORITHM` failure naming
    /// the algorithm. The client may offer the key again with another.
    pub(super) async fn refuse_weak(
        &mut self,
        user: &str,
        algorithm: &russh::keys::Algorithm,
    ) -> Auth {
        if let Some(refusal) = self.precheck(user).await {
            return refusal;
        }
        let name = algorithm.as_str();
        self.refuse_with(
            user,
            &format!("signature algorithm {name} (SHA-1) is refused"),
            "KO_WEAK_SIGNATURE_ALGORITHM",
            &[("sig_alg", name)],
        )
        .await
    }

    /// Everything a key offer and a signed key both go through: the
    /// prechecks, then the policy's verdict on this key from this address
    /// now. `Ok` carries the staff name and the policy it was judged by;
    /// `Err` is the refusal to send.
    pub(super) async fn check_key(
        &mut self,
        user: &str,
        key: &russh::keys::PublicKey,
    ) -> Result<(String, Arc<policy::Policy>), Auth> {
        if let Some(refusal) = self.precheck(user).await {
            return Err(refusal);
        }
        let staff = login::staff_part(user).unwrap_or_default().to_string();
        let policy = self.shared.policy();
        if let Err(d) = policy::authenticate(&policy, &staff, key, self.source(), Shared::now()) {
            return Err(self.refuse(user, &d.rule, d.code.as_str()).await);
        }
        Ok((staff, policy))
    }

    /// The end every accepted authentication shares (a listed key, a staff
    /// certificate): the failure count reset, the `auth.success` event
    /// (`success` carries what proved the login), and the target decided
    /// now, during authentication (DESIGN.md, invariant 2).
    pub(super) async fn accept_login(
        &mut self,
        user: &str,
        staff: String,
        policy: &policy::Policy,
        success: AuditEvent,
        factors: login::Factors,
    ) -> Auth {
        if let Err(e) = self.shared.store.auth_success(&staff).await {
            tracing::error!("cannot reset failure counter, refusing: {e}");
            self.waited_for(&e);
            return self.refuse(user, "database unavailable", STORE_DOWN).await;
        }
        let audited = self
            .shared
            .audit(
                success
                    .user(&staff)
                    .source(self.source().to_string())
                    .session(&self.id)
                    .detail("login", sanitize(user))
                    .detail("factors", factors.used.clone()),
            )
            .await;
        if !audited {
            // The success may wait in the spool: the log must also say the
            // login was refused after it.
            return self.refuse(user, "audit log unavailable", STORE_DOWN).await;
        }
        let to_server = login::parse(user).is_ok_and(|l| l.server.is_some());
        let target = match &factors.enroll_only {
            // Enroll-only: command mode for `mfa enroll`/`mfa status`; a
            // server is refused on the first channel, and its forwards
            // with it (no server named in the refusal).
            Some(message) if to_server => {
                self.shared
                    .audit(
                        AuditEvent::new(EventKind::AccessDenied)
                            .user(&staff)
                            .source(self.source().to_string())
                            .session(&self.id)
                            .detail("code", "KO_MFA_ENROLL_FIRST")
                            .detail("reason", message.clone())
                            .detail("login", sanitize(user)),
                    )
                    .await;
                crate::server::conn::Target::Denied {
                    server: None,
                    account: None,
                    reason: message.clone(),
                    audit_on_use: false,
                }
            }
            _ => {
                crate::server::conn::decide_target(
                    &self.shared,
                    policy,
                    &staff,
                    user,
                    self.source(),
                    &self.id,
                )
                .await
            }
        };
        self.pending = Some((staff, target, factors));
        Auth::Accept
    }

    /// Checks that come before looking at the key: rate limit, login name
    /// shape, lockout. `Some(auth)` is a refusal.
    pub(super) async fn precheck(&mut self, user: &str) -> Option<Auth> {
        if self.shared.source_blocked(self.source()) {
            return Some(
                self.refuse(
                    user,
                    "too many failed attempts from this address",
                    "RATE_LIMITED",
                )
                .await,
            );
        }
        let Some(staff) = login::staff_part(user) else {
            return Some(
                self.refuse(user, "login name does not parse", "BAD_LOGIN")
                    .await,
            );
        };
        // The database is known to be away (the banner's probe failed,
        // events wait in the spool, start-up is incomplete): refuse at once
        // rather than wait for it once more.
        if self.shared.store.outage_known() {
            return Some(self.refuse(user, "database unavailable", STORE_DOWN).await);
        }
        match self.shared.store.locked_until(staff).await {
            Ok(None) => None,
            Ok(Some(_)) => Some(self.refuse(user, "account locked", "LOCKED").await),
            Err(e) => {
                tracing::error!("lockout check failed, refusing: {e}");
                self.waited_for(&e);
                Some(self.refuse(user, "database unavailable", STORE_DOWN).await)
            }
        }
    }

    /// A statement of this login failed: when for the database being away,
    /// that was a wait, and the outage is known from now on (the refusal's
    /// event goes to the spool without waiting again).
    pub(super) fn waited_for(&mut self, e: &crate::store::StoreError) {
        if e.is_unavailable() {
            self.db_waits += 1;
            self.shared.store.note_down();
        }
    }
}
