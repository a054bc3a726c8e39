//! Rotation over SSH (issue 5): generate a new password, set it on the
//! target with `chpasswd` run as the configured admin account, verify it
//! with a fresh login as the account, and only then commit it. On any
//! failure the old password stays valid and usable, and the failure is an
//! event.

use std::sync::Arc;
use std::time::Duration;

use russh::ChannelMsg;
use russh::keys::PrivateKey;

use super::{PendingRotation, Secret, Vault};
use crate::audit::{AuditEvent, EventKind};
use crate::policy::{Mode, Policy};
use crate::store::Store;
use crate::upstream::{self, Credential, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("no server {0} in the policy")]
    UnknownServer(String),
    #[error("{0} has no SSH login to rotate through (mode {1})")]
    NoSsh(String, &'static str),
    #[error("{0}")]
    Vault(#[from] super::VaultError),
    #[error("setting the password on {server} failed: {why}; the old password is unchanged")]
    SetFailed { server: String, why: String },
    #[error(
        "the new password did not work on {server}: {why}; the old password stays in the vault"
    )]
    VerifyFailed { server: String, why: String },
    #[error("audit: {0}")]
    Audit(String),
}

/// What rotation needs from the bastion.
pub struct Rotator<'a> {
    pub vault: &'a Vault,
    pub store: &'a Store,
    pub policy: &'a Policy,
    pub identity: Arc<PrivateKey>,
    pub admin_account: &'a str,
    /// `[ssh]` target_* lists.
    pub algorithms: &'a crate::algorithms::Side,
    /// Who asked: "scheduler" or the admin's name, for the event.
    pub actor: &'a str,
}

fn endpoint(s: &crate::policy::Server, algorithms: &crate::algorithms::Side) -> Endpoint {
    Endpoint {
        name: s.name.clone(),
        host: s.host.clone(),
        port: s.port,
        host_key: s.host_key.clone(),
        algorithms: algorithms.preferred(),
    }
}

impl Rotator<'_> {
    /// Rotates the password of `account` on `server`.
    pub async fn rotate(&self, server: &str, account: &str) -> Result<(), RotateError> {
        let result = self.try_rotate(server, account).await;
        let ev = match &result {
            Ok(()) => AuditEvent::new(EventKind::VaultRotated),
            Err(e) => {
                AuditEvent::new(EventKind::VaultRotationFailed).detail("reason", e.to_string())
            }
        }
        .user(self.actor)
        .server(server)
        .account(account);
        self.store
            .audit(&ev)
            .await
            .map_err(|e| RotateError::Audit(e.to_string()))?;
        result
    }

    async fn try_rotate(&self, server_name: &str, account: &str) -> Result<(), RotateError> {
        let server = self
            .policy
            .server(server_name)
            .ok_or_else(|| RotateError::UnknownServer(server_name.to_string()))?;
        if matches!(server.mode, Mode::Desktop | Mode::Clone) {
            return Err(RotateError::NoSsh(
                server.name.clone(),
                server.mode.as_str(),
            ));
        }
        let pending = self.vault.begin_rotation(server_name, account).await?;
        match self.apply(server, &pending).await {
            Ok(()) => {
                self.vault.commit_rotation(&pending).await?;
                Ok(())
            }
            Err(e @ RotateError::SetFailed { .. }) => {
                // The target kept its old password: drop the pending one.
                let _ = self.vault.abort_rotation(server_name, account).await;
                Err(e)
            }
            Err(e) => {
                // The target may or may not have the new password: keep the
                // pending one (`vault rotate` retries it) and say so.
                Err(e)
            }
        }
    }

    async fn apply(
        &self,
        server: &crate::policy::Server,
        p: &PendingRotation,
    ) -> Result<(), RotateError> {
        let target = endpoint(server, self.algorithms);
        let via = server.via.as_deref().and_then(|v| self.policy.server(v));
        let hop = via.map(|v| endpoint(v, self.algorithms));
        let hop_account = via
            .and_then(|v| v.default_account().map(str::to_string))
            .unwrap_or_else(|| "root".into());
        let identity = Credential::Identity(self.identity.clone());
        let hop_ref = hop.as_ref().map(|h| (h, hop_account.as_str(), &identity));
        let set_failed = |why: String| RotateError::SetFailed {
            server: server.name.clone(),
            why,
        };
        // 1. chpasswd as the admin account (its vault credential, else the identity key).
        let admin_cred = match self.vault.get(&server.name, self.admin_account).await? {
            Some(c) => match (c.password(), c.private_key()) {
                (Some(pw), _) => Credential::Password(Arc::new(pw.clone())),
                (None, Ok(Some(k))) => Credential::Key(Arc::new(k)),
                _ => identity.clone(),
            },
            None => identity.clone(),
        };
        let admin = upstream::connect(&target, self.admin_account, &admin_cred, hop_ref)
            .await
            .map_err(|e| set_failed(e.to_string()))?;
        let command = if self.admin_account == "root" {
            "chpasswd"
        } else {
            "sudo -n chpasswd"
        };
        let line = Secret::new(format!("{}:{}\n", p.account, p.new_password.expose()));
        let status = run_with_stdin(&admin.handle, command, line.expose().as_bytes())
            .await
            .map_err(set_failed)?;
        let _ = admin
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        if status != 0 {
            return Err(set_failed(format!("{command} exited with status {status}")));
        }
        // 2. Verify with a fresh login as the account.
        let cred = Credential::Password(Arc::new(p.new_password.clone()));
        match upstream::connect(&target, &p.account, &cred, hop_ref).await {
            Ok(u) => {
                let _ = u
                    .handle
                    .disconnect(russh::Disconnect::ByApplication, "", "en")
                    .await;
                Ok(())
            }
            Err(e) => Err(RotateError::VerifyFailed {
                server: server.name.clone(),
                why: e.to_string(),
            }),
        }
    }
}

/// Runs `command` with `input` on stdin; returns its exit status.
async fn run_with_stdin(
    handle: &upstream::TargetHandle,
    command: &str,
    input: &[u8],
) -> Result<u32, String> {
    let fut = async {
        let mut ch = handle
            .channel_open_session()
            .await
            .map_err(|e| e.to_string())?;
        ch.exec(true, command).await.map_err(|e| e.to_string())?;
        ch.data(input).await.map_err(|e| e.to_string())?;
        ch.eof().await.map_err(|e| e.to_string())?;
        let mut status = None;
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Failure => return Err(format!("{command} was refused")),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        status.ok_or_else(|| format!("{command} ended without an exit status"))
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .map_err(|_| format!("{command} timed out"))?
}

/// Rotates every password whose rotation is due, `concurrency` at a time.
/// Returns (rotated, failed).
pub async fn rotate_due(
    r: &Rotator<'_>,
    concurrency: usize,
    now: time::OffsetDateTime,
) -> (usize, usize) {
    use futures::StreamExt;
    let Ok(status) = r.vault.status(now).await else {
        return (0, 0);
    };
    let today = now.date();
    let due: Vec<(String, String)> = status
        .into_iter()
        .filter(|s| s.meta.kind == super::CredentialKind::Password)
        .filter(|s| s.compliance.rotation_due <= today)
        .map(|s| (s.meta.server.clone(), s.meta.account.clone()))
        .collect();
    let results: Vec<bool> = futures::stream::iter(due)
        .map(|(s, a)| async move { r.rotate(&s, &a).await.is_ok() })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let ok = results.iter().filter(|b| **b).count();
    (ok, results.len() - ok)
}
