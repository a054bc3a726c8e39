//! The handler's channel bookkeeping: handing events to a channel's task
//! through its inbox, the windows and the budget, protocol violations, the
//! per-connection channel cap, and refused `env` requests.
//!
//! Layer: part of `handler`; imports `handler` (and what it imports).

use super::*;

impl ConnHandler {
    /// Audits the environment variables refused on `channel`, if any: one
    /// `access.denied` event naming them (never their values).
    pub(super) async fn audit_env_refused(&mut self, channel: ChannelId) {
        let Some(refused) = self.env_refused.remove(&channel) else {
            return;
        };
        let Some(state) = &self.state else {
            return;
        };
        self.shared
            .audit(
                state
                    .base_event(EventKind::AccessDenied)
                    .detail("code", "KO_ENV_REFUSED")
                    .detail("kind", "env")
                    .detail("reason", "environment variables not in [limits] accept_env")
                    .detail("names", refused.names)
                    .detail("count", refused.count),
            )
            .await;
    }

    /// Queues an event for a channel's task (channels the bastion opened
    /// itself, for remote forwards, are read through their own handles).
    /// A queue over its limits ends the connection.
    pub(super) fn event(&mut self, channel: ChannelId, ev: ChanEvent) {
        let Some(tx) = self.channels.get(&channel) else {
            return;
        };
        let queued = match &ev {
            ChanEvent::Data(b) => tx.data(b),
            _ => tx.event(ev),
        };
        match queued {
            Ok(()) => {}
            Err(ChannelFlowError::Closed) => {
                self.channels.remove(&channel);
            }
            Err(e) => self.violation(channel, &e),
        }
    }

    /// Data or extended data arrived: checks it against the channel's
    /// window (russh has already refilled it if it was due). False when
    /// the packet must be dropped.
    pub(super) fn received(&mut self, channel: ChannelId, len: usize, session: &Session) -> bool {
        if self.violated {
            return false;
        }
        let after = session.window_size(&channel);
        match self.windows.received(channel, len, after) {
            Ok(()) => true,
            Err(e) => {
                self.violation(channel, &e);
                false
            }
        }
    }

    /// The peer broke flow control: audit it, tell the client, hang up.
    /// Everything it sends from now on is dropped. The socket is cut
    /// shortly after the disconnect message, because russh would keep
    /// reading (and discarding) for as long as the peer sends.
    pub(super) fn violation(&mut self, channel: ChannelId, e: &ChannelFlowError) {
        if std::mem::replace(&mut self.violated, true) {
            return;
        }
        // Dropping the queues' senders lets the channel tasks finish.
        self.channels.clear();
        tracing::warn!(session = %self.id, peer = %self.peer, "protocol violation: {e}");
        let mut ev = match &self.state {
            Some(s) => s.base_event(EventKind::ProtocolViolation),
            None => AuditEvent::new(EventKind::ProtocolViolation)
                .source(self.source().to_string())
                .session(&self.id),
        };
        ev = ev
            .detail("reason", format!("protocol violation: {e}"))
            .detail("channel", u32::from(channel))
            .detail("queued_bytes", self.budget.queued());
        if let ChannelFlowError::WindowExceeded { window, sent } = e {
            ev = ev.detail("window", *window).detail("sent", *sent);
        }
        let message = format!("gatehouse: protocol violation: {e}");
        let state = self.state.clone();
        if let Some(s) = &state {
            s.end(&format!("protocol violation: {e}"));
        }
        let shared = self.shared.clone();
        let cut = self.cut.clone();
        tokio::spawn(async move {
            shared.audit(ev).await;
            if let Some(s) = state {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_millis(500),
                    s.handle
                        .disconnect(russh::Disconnect::ProtocolError, message, "en".into()),
                )
                .await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            cut.cancel();
        });
    }

    /// Whether one more channel may open (`max_channels_per_connection`).
    pub(super) fn admit_channel(&mut self, session: &Session) -> bool {
        // Channels the bastion closed first never see the client's close
        // (russh drops it), so the map is swept by its tasks' liveness.
        self.channels.retain(|_, tx| tx.is_open());
        self.windows.sweep(|c| session.max_packet_size(&c) == 0);
        let max = self.shared.config.limits.max_channels_per_connection;
        self.channels.len() < max && !self.violated
    }

    /// A channel open over the limit: the first refusal is audited, then
    /// the 10th, 100th, 1000th..., so a loop of opens is no audit flood.
    pub(super) async fn channel_refused(&mut self) {
        let max = self.shared.config.limits.max_channels_per_connection;
        self.channels_refused += 1;
        let n = self.channels_refused;
        let power_of_ten = n.checked_ilog10().is_some_and(|e| 10u64.pow(e) == n);
        if power_of_ten && let Some(s) = &self.state {
            self.shared
                .audit(
                    s.base_event(EventKind::ChannelRefused)
                        .detail("reason", "max_channels_per_connection reached")
                        .detail("limit", max)
                        .detail("refused", n),
                )
                .await;
        }
    }
}
