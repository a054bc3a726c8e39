//! A connection's login on its target, opened on first use: the
//! credential (vault, identity key, or a certificate from the CA), the
//! `via` hop, and the target's error kept typed ([`TargetError`]).
//!
//! Layer: part of `conn`; imports `conn` only (and what it imports).

use super::*;

impl ConnState {
    /// The logged-in connection to the target, opened on first use and
    /// shared by the connection's channels.
    pub async fn upstream(&self) -> Result<Arc<Upstream>, TargetError> {
        self.upstream
            .get_or_init(|| async {
                let Some(t) = self.server_target() else {
                    return Err(TargetError::Bastion("no target".to_string()));
                };
                self.connect_upstream(t).await.map(Arc::new)
            })
            .await
            .clone()
    }

    async fn connect_upstream(&self, t: &ServerTarget) -> Result<Upstream, TargetError> {
        let endpoint = |s: &policy::Server| Endpoint {
            name: s.name.clone(),
            host: s.host.clone(),
            port: s.port,
            host_key: s.host_key.clone(),
            algorithms: self.shared.config.ssh.target.preferred(),
        };
        let target = endpoint(&t.server);
        let credential = match self
            .credential_for(&t.server.name, &t.allowed.account)
            .await
            .map_err(TargetError::Bastion)?
        {
            Credential::Identity(_) if t.server.auth == policy::TargetAuth::Certificate => {
                self.certificate_for(t).map_err(TargetError::Bastion)?
            }
            c => c,
        };
        let identity = Credential::Identity(self.shared.identity.clone());
        let hop = t.via.as_ref().map(endpoint);
        let hop_account = t
            .via
            .as_ref()
            .and_then(|v| v.default_account().map(str::to_string))
            .unwrap_or_else(|| "root".into());
        let via = hop.as_ref().map(|h| (h, hop_account.as_str(), &identity));
        let forwards = Some(self.forwarded_tx.clone());
        match upstream::connect_with_forwards(
            &target,
            &t.allowed.account,
            &credential,
            via,
            forwards,
        )
        .await
        {
            Ok(u) => Ok(u),
            Err(e) => {
                if let UpstreamError::HostKeyMismatch {
                    server,
                    expected,
                    presented,
                    ..
                } = &e
                {
                    self.shared
                        .audit(
                            self.base_event(EventKind::HostkeyMismatch)
                                .server(server.clone())
                                .detail("expected", expected.clone())
                                .detail("presented", presented.clone()),
                        )
                        .await;
                }
                tracing::warn!(session = %self.id, "upstream: {e}");
                Err(TargetError::Upstream(Arc::new(e)))
            }
        }
    }

    /// The vault's credential for the target account, else the identity
    /// key. Each vault use is a `vault.read` event (never the secret).
    async fn credential_for(&self, server: &str, account: &str) -> Result<Credential, String> {
        let cred = self.shared.vault.get(server, account).await.map_err(|e| {
            tracing::error!("vault: {e}");
            "the bastion cannot read its vault".to_string()
        })?;
        let Some(cred) = cred else {
            return Ok(Credential::Identity(self.shared.identity.clone()));
        };
        let out = if let Some(pw) = cred.password() {
            self.used_vault_password.store(true, Ordering::SeqCst);
            Credential::Password(Arc::new(pw.clone()))
        } else {
            match cred.private_key() {
                Ok(Some(k)) => Credential::Key(Arc::new(k)),
                _ => return Err("the vault's credential for this account is unusable".into()),
            }
        };
        let audited = self
            .shared
            .audit(
                self.base_event(EventKind::VaultRead)
                    .server(server)
                    .account(account)
                    .detail("kind", cred.meta.kind.as_str()),
            )
            .await;
        if !audited {
            return Err("the bastion cannot write its audit log".into());
        }
        Ok(out)
    }

    /// A certificate from the bastion's CA for this login (see `crate::ca`).
    fn certificate_for(&self, t: &ServerTarget) -> Result<Credential, String> {
        let req = crate::ca::CertRequest {
            account: &t.allowed.account,
            staff: &self.user,
            session: &self.id,
            server: &t.server.name,
            // Forwards through the target's sshd: -L in ssh-forwarding,
            // -R (bound by the target's sshd) in global.
            port_forwarding: matches!(
                t.allowed.mode,
                policy::Mode::SshForwarding | policy::Mode::Global
            ),
        };
        let ca = self.shared.ca.get().ok_or_else(|| {
            tracing::error!(
                "certificate for {}: the user CA is not loaded",
                t.server.name
            );
            "the bastion cannot sign its login certificate".to_string()
        })?;
        let issued = ca.issue(&req, std::time::SystemTime::now()).map_err(|e| {
            tracing::error!("certificate for {}: {e}", t.server.name);
            "the bastion cannot sign its login certificate".to_string()
        })?;
        tracing::info!(
            session = %self.id,
            server = %t.server.name,
            account = %t.allowed.account,
            serial = issued.certificate.serial(),
            "signed a login certificate"
        );
        Ok(Credential::Certificate(
            issued.key,
            Box::new(issued.certificate),
        ))
    }
}
