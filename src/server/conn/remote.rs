//! A connection's port forwards: the policy decision for `-L`/`-W`
//! ([`ConnState::decide_forward`]) and the remote forwards (`-R`) it asks
//! the target to listen for.
//!
//! Layer: part of `conn`; imports `conn` only (and what it imports).

use super::*;

impl ConnState {
    /// Decides a direct-tcpip channel: a local forward on a target login, or
    /// a ProxyJump hop on a command-mode login.
    pub async fn decide_forward(&self, host: &str, port: u16) -> Result<Allowed, String> {
        let policy = self.shared.policy();
        let grants = self
            .shared
            .store
            .grants_for(&self.user)
            .await
            .map_err(|_| "the bastion cannot reach its database".to_string())?;
        // A user who must enroll a second factor first reaches nothing.
        if let Some(message) = &self.factors.enroll_only {
            self.audit_denied(
                &Action::LocalForward {
                    host: host.to_string(),
                    port,
                },
                "KO_MFA_ENROLL_FIRST",
                message,
            )
            .await;
            return Err(message.clone());
        }
        let (server, account, action) = match &self.target {
            // The login's session was refused, but forwards are decided on
            // their own: mode desktop refuses sessions and allows forwards
            // to its ports. Every other refusal (eligibility, clone,
            // account, source, grant) is decided the same way again.
            Target::Denied {
                server: Some(server),
                account,
                ..
            } => (
                server.clone(),
                account.clone(),
                Action::LocalForward {
                    host: host.to_string(),
                    port,
                },
            ),
            Target::Denied { reason, .. } => {
                self.audit_denied(
                    &Action::LocalForward {
                        host: host.to_string(),
                        port,
                    },
                    DenyCode::AccessDenied.as_str(),
                    reason,
                )
                .await;
                return Err(reason.clone());
            }
            Target::CommandMode => (
                host.to_string(),
                None,
                Action::Jump {
                    host: host.to_string(),
                    port,
                },
            ),
            Target::Server(t) => (
                t.server.name.clone(),
                Some(t.allowed.account.clone()),
                Action::LocalForward {
                    host: host.to_string(),
                    port,
                },
            ),
        };
        let req = Request {
            user: &self.user,
            server: &server,
            account: account.as_deref(),
            source: self.source,
            action: action.clone(),
        };
        match policy::decide(&policy, &req, &grants, Shared::now()) {
            // A ProxyJump hop is a login to the server too: one that asks
            // for a fresh second factor at every login is not reached on
            // the strength of a command-mode login without one.
            Decision::Allow(a)
                if matches!(action, Action::Jump { .. })
                    && !self.factors.fresh_second()
                    && policy
                        .server(&a.server)
                        .is_some_and(|s| s.mfa_every_session) =>
            {
                let reason = format!(
                    "{} asks for a fresh second factor at every login: connect as {}@{} through the bastion, not with ProxyJump",
                    a.server, self.user, a.server
                );
                self.audit_denied(&action, "KO_MFA_EVERY_SESSION", &reason)
                    .await;
                Err(reason)
            }
            Decision::Allow(a) => Ok(a),
            Decision::Deny(d) => {
                let kind = if matches!(action, Action::Jump { .. }) {
                    EventKind::AccessDenied
                } else {
                    EventKind::ForwardDenied
                };
                self.shared
                    .audit(
                        self.base_event(kind)
                            .detail("destination", format!("{host}:{port}"))
                            .detail("code", d.code.as_str())
                            .detail("reason", d.reason.clone())
                            .detail("rule", d.rule.clone()),
                    )
                    .await;
                Err(d.reason)
            }
        }
    }

    /// `-R`: allowed only where the mode allows it (audited either way).
    /// The target's sshd binds the port; connections to it come back as
    /// forwarded-tcpip channels, bridged to the client by `forwarded_loop`.
    pub async fn remote_forward(self: &Arc<Self>, address: &str, port: &mut u32) -> bool {
        let p = u16::try_from(*port).unwrap_or(0);
        // A login whose session was refused (e.g. mode desktop) still gets
        // the mode's own reason for -R.
        let (server, account) = match &self.target {
            Target::Server(t) => (t.server.name.as_str(), Some(t.allowed.account.as_str())),
            Target::Denied {
                server: Some(s),
                account,
                ..
            } => (s.as_str(), account.as_deref()),
            _ => {
                self.audit_denied(
                    &Action::RemoteForward { port: p },
                    "KO_NO_TARGET",
                    "remote forwarding needs a target",
                )
                .await;
                return false;
            }
        };
        let policy = self.shared.policy();
        let grants = self
            .shared
            .store
            .grants_for(&self.user)
            .await
            .unwrap_or_default();
        let req = Request {
            user: &self.user,
            server,
            account,
            source: self.source,
            action: Action::RemoteForward { port: p },
        };
        let allowed = match policy::decide(&policy, &req, &grants, Shared::now()) {
            Decision::Allow(a) => a,
            Decision::Deny(d) => {
                self.audit_denied(
                    &Action::RemoteForward { port: p },
                    d.code.as_str(),
                    &d.reason,
                )
                .await;
                return false;
            }
        };
        let up = match self.upstream().await {
            Ok(u) => u,
            Err(e) => {
                self.audit_denied(
                    &Action::RemoteForward { port: p },
                    "ERR_TARGET_UNAVAILABLE",
                    &e.to_string(),
                )
                .await;
                return false;
            }
        };
        let bound = match tokio::time::timeout(
            Duration::from_secs(10),
            up.handle.tcpip_forward(address, *port),
        )
        .await
        {
            Ok(Ok(b)) => b,
            _ => {
                self.audit_denied(
                    &Action::RemoteForward { port: p },
                    "ERR_TARGET_REFUSED_LISTEN",
                    "the target refused to listen",
                )
                .await;
                return false;
            }
        };
        if *port == 0 {
            *port = bound;
        }
        if let Ok(mut set) = self.remote_forwards.lock() {
            set.insert((address.to_string(), *port));
        }
        self.shared
            .audit(
                self.base_event(EventKind::ForwardOpen)
                    .detail("direction", "remote")
                    .detail("bind", format!("{address}:{port}"))
                    .detail("flagged", allowed.flagged),
            )
            .await;
        true
    }

    /// The channels the target opens for this connection's remote
    /// forwards, once: the caller (the handler, above the forwards) runs
    /// the loop that bridges them after the first forward is set up.
    pub(in crate::server) fn take_forwarded(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<Box<upstream::Forwarded>>> {
        self.forwarded_rx.lock().ok().and_then(|mut r| r.take())
    }

    pub async fn cancel_remote_forward(&self, address: &str, port: u32) -> bool {
        let known = self
            .remote_forwards
            .lock()
            .map(|mut s| s.remove(&(address.to_string(), port)))
            .unwrap_or(false);
        if !known {
            return false;
        }
        if let Ok(up) = self.upstream().await {
            let _ = up.handle.cancel_tcpip_forward(address, port).await;
        }
        true
    }

    /// Whether the target may open a channel for this bound forward.
    pub fn remote_forward_known(&self, address: &str, port: u32) -> bool {
        self.remote_forwards
            .lock()
            .map(|s| {
                s.iter().any(|(a, p)| {
                    *p == port && (a == address || a.is_empty() || address.is_empty())
                })
            })
            .unwrap_or(false)
    }
}
