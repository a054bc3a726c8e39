//! The handler's side of staff certificates: runs the pure check of
//! `server::staff_cert`, then the same standing, audit and target
//! decision as a listed key (`auth_publickey`). A child module of the
//! handler so that it shares its private state without widening it.
//!
//! Layer: part of `handler`; may import `handler`, `login`, `shared`,
//! `staff_cert`.

use russh::server::Auth;

use super::ConnHandler;
use crate::audit::{AuditEvent, EventKind};
use crate::policy;
use crate::server::login;
use crate::server::shared::Shared;

impl ConnHandler {
    /// A staff certificate (see `staff_cert`): the certificate, then the
    /// policy's standing checks; refusals are `auth.failure` events with
    /// the certificate's reason.
    pub(super) async fn check_certificate(
        &mut self,
        user: &str,
        cert: &russh::keys::Certificate,
    ) -> Auth {
        if let Some(refusal) = self.precheck(user).await {
            return refusal;
        }
        let staff = login::staff_part(user).unwrap_or_default().to_string();
        let now = Shared::now();
        let unix = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let cas = &self.shared.config.cert_authorities;
        if let Err(r) = crate::server::staff_cert::check(cert, cas, &staff, self.source(), unix) {
            return self.refuse(user, &r.reason, r.code).await;
        }
        let policy = self.shared.policy();
        if let Err(d) = policy::authenticate_certified(&policy, &staff, self.source(), now) {
            return self.refuse(user, &d.rule, d.code.as_str()).await;
        }
        let (key_id, ca, serial) = crate::server::staff_cert::describe(cert);
        let key = russh::keys::PublicKey::new(cert.public_key().clone(), "");
        let fingerprint = crate::keys::fingerprint(&key);
        let sig_alg = self.offered_algorithm.clone().unwrap_or_default();
        let success = AuditEvent::new(EventKind::AuthSuccess)
            .detail("key", fingerprint.clone())
            .detail("certificate", key_id)
            .detail("ca", ca)
            .detail("serial", serial)
            .detail(
                "sig_alg",
                self.offered_algorithm.clone().unwrap_or_default(),
            );
        // A certificate's signature flags are not handed over by russh: a
        // security-key certificate counts as a key, not as two factors.
        let proof = super::KeyProof {
            fingerprint,
            sig_alg,
            security_key: false,
            success,
        };
        Box::pin(self.after_key(user, staff, policy, proof)).await
    }
}
