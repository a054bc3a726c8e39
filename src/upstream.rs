//! The bastion's side as an SSH client: logging in to a target (and, for
//! `vpn` servers, through the `via` hop first) with a pinned host key.
//! Staff never see what authenticates this leg: the identity key or a vault
//! credential.
//!
//! Layer: below both `vault` (which rotates passwords through it) and
//! `server`; may import `secret` and `readbuf` only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::PublicKeyOrCertificate;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};

use crate::readbuf::ReadBuffer;
use crate::secret::Secret;

/// How the bastion authenticates to a target account.
#[derive(Clone)]
pub enum Credential {
    /// The bastion's identity key (the default).
    Identity(Arc<PrivateKey>),
    /// A vault password (password, then keyboard-interactive).
    Password(Arc<Secret>),
    /// A vault private key.
    Key(Arc<PrivateKey>),
    /// A per-session certificate from the bastion's CA and its key.
    Certificate(Arc<PrivateKey>, Box<russh::keys::Certificate>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Identity(_) => "Credential::Identity",
            Credential::Password(_) => "Credential::Password([redacted])",
            Credential::Key(_) => "Credential::Key([redacted])",
            Credential::Certificate(..) => "Credential::Certificate([redacted])",
        })
    }
}

/// Where to connect and what host key to expect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// `SHA256:...`; `None` refuses every key (fail closed).
    pub host_key: Option<String>,
    /// `[ssh]` target_* lists: what the bastion offers this target.
    pub algorithms: russh::Preferred,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {server}: {message}")]
    Connect { server: String, message: String },
    #[error("host key of {server} does not match the pinned fingerprint")]
    HostKeyMismatch {
        server: String,
        expected: Option<String>,
        presented: String,
        /// Type of the key presented, to try the target's other host keys.
        presented_type: Option<russh::keys::Algorithm>,
    },
    #[error("{server} refused the bastion's login as {account}")]
    AuthRefused { server: String, account: String },
    #[error("{server}: {message}")]
    Protocol { server: String, message: String },
    #[error("connecting to {server} timed out")]
    Timeout { server: String },
}

/// A forwarded-tcpip channel the target opened for a remote forward (`-R`).
/// Sent boxed: an idle channel of these still holds a block of 32 slots.
pub struct Forwarded {
    pub channel: russh::Channel<client::Msg>,
    pub reply: client::ChannelOpenHandle,
    pub connected_address: String,
    pub connected_port: u32,
    pub originator_address: String,
    pub originator_port: u32,
}

/// Handler of the bastion-to-target connection: checks the host key and
/// hands remote-forward channels to the session (refused when it asked
/// for none).
pub struct TargetHandler {
    expected: Option<String>,
    /// The fingerprint and type of the key the target presented, for the
    /// mismatch event and the retry with another type.
    presented: Arc<Mutex<Option<(String, russh::keys::Algorithm)>>>,
    forwards: Option<tokio::sync::mpsc::UnboundedSender<Box<Forwarded>>>,
    /// The target's SSH identification string, kept at the first key
    /// exchange (SFTP needs it: see `sftp::symlink_swap_needed`).
    server_id: Arc<std::sync::OnceLock<String>>,
}

impl client::Handler for TargetHandler {
    type Error = russh::Error;

    async fn kex_done(
        &mut self,
        _shared_secret: Option<&[u8]>,
        _names: &russh::Names,
        session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let id: String = String::from_utf8_lossy(session.remote_sshid())
            .chars()
            .take(255)
            .collect();
        let _ = self.server_id.set(id);
        Ok(())
    }

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // Host certificates are not pinned by fingerprint: refuse them.
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        let ok = self.expected.as_deref() == Some(fp.as_str());
        if let Ok(mut p) = self.presented.lock() {
            *p = Some((fp, key.algorithm()));
        }
        Ok(ok)
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let Some(tx) = &self.forwards else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        // The session checks the port was one it asked for; dropping the
        // reply (if the session is gone) refuses the channel.
        let _ = tx.send(Box::new(Forwarded {
            channel,
            reply,
            connected_address: connected_address.chars().take(255).collect(),
            connected_port,
            originator_address: originator_address.chars().take(255).collect(),
            originator_port,
        }));
        Ok(())
    }
}

pub type TargetHandle = client::Handle<TargetHandler>;

/// A logged-in connection to a target.
pub struct Upstream {
    pub handle: TargetHandle,
    /// The hop's connection for `vpn` servers, kept alive with the target's.
    #[expect(
        dead_code,
        reason = "held, never read: dropping it would close the hop"
    )]
    pub hop: Option<TargetHandle>,
    /// The target's SSH identification string (`SSH-2.0-OpenSSH_...`).
    pub server_id: String,
}

pub fn client_config(preferred: &russh::Preferred) -> Arc<client::Config> {
    Arc::new(client::Config {
        window_size: 2 * 1024 * 1024,
        maximum_packet_size: 32 * 1024,
        nodelay: true,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        preferred: preferred.clone(),
        ..Default::default()
    })
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Logs in to `target` as `account`, through `via` (a hop reached with the
/// identity key as `via_account`) when given.
pub async fn connect(
    target: &Endpoint,
    account: &str,
    credential: &Credential,
    via: Option<(&Endpoint, &str, &Credential)>,
) -> Result<Upstream, UpstreamError> {
    connect_with_forwards(target, account, credential, via, None).await
}

/// [`connect`], handing channels the target opens for remote forwards to
/// `forwards`.
///
/// A fingerprint does not say which type of key it pins, and a target
/// presents the key of the first type both sides offer: when the key
/// presented does not match, the login is tried again without that type,
/// until a key matches (the pinned one was of another type) or no type is
/// left (a real mismatch, reported as such).
pub async fn connect_with_forwards(
    target: &Endpoint,
    account: &str,
    credential: &Credential,
    via: Option<(&Endpoint, &str, &Credential)>,
    forwards: Option<tokio::sync::mpsc::UnboundedSender<Box<Forwarded>>>,
) -> Result<Upstream, UpstreamError> {
    let mut attempt = target.clone();
    // The first mismatch is what is reported if no other type matches.
    let mut mismatch: Option<UpstreamError> = None;
    loop {
        let e = match connect_once(&attempt, account, credential, via, forwards.clone()).await {
            Ok(up) => return Ok(up),
            Err(e) => e,
        };
        let kind = match &e {
            UpstreamError::HostKeyMismatch {
                server,
                presented_type: Some(kind),
                ..
            } if *server == target.name => kind.clone(),
            // The target has no key of the types left, or failed otherwise.
            _ => return Err(mismatch.unwrap_or(e)),
        };
        let same_type =
            |a: &russh::keys::Algorithm| std::mem::discriminant(a) == std::mem::discriminant(&kind);
        let left: Vec<_> = attempt
            .algorithms
            .key
            .iter()
            .filter(|a| !same_type(a))
            .cloned()
            .collect();
        let exhausted = left.is_empty() || left.len() == attempt.algorithms.key.len();
        let first = mismatch.take().unwrap_or(e);
        if exhausted {
            return Err(first);
        }
        mismatch = Some(first);
        attempt.algorithms.key = std::borrow::Cow::Owned(left);
    }
}

async fn connect_once(
    target: &Endpoint,
    account: &str,
    credential: &Credential,
    via: Option<(&Endpoint, &str, &Credential)>,
    forwards: Option<tokio::sync::mpsc::UnboundedSender<Box<Forwarded>>>,
) -> Result<Upstream, UpstreamError> {
    let fut = async {
        match via {
            None => {
                let (handle, server_id) =
                    handshake(target, account, credential, dial(target).await?, forwards).await?;
                Ok(Upstream {
                    handle,
                    hop: None,
                    server_id,
                })
            }
            Some((hop, hop_account, hop_cred)) => {
                let (hop_handle, _) =
                    handshake(hop, hop_account, hop_cred, dial(hop).await?, None).await?;
                let ch = hop_handle
                    .channel_open_direct_tcpip(
                        target.host.clone(),
                        u32::from(target.port),
                        "127.0.0.1",
                        0,
                    )
                    .await
                    .map_err(|e| UpstreamError::Connect {
                        server: target.name.clone(),
                        message: format!("through {}: {e}", hop.name),
                    })?;
                // A channel through the hop: no socket of its own.
                let (handle, server_id) = handshake(
                    target,
                    account,
                    credential,
                    ReadBuffer::new(ch.into_stream()),
                    forwards,
                )
                .await?;
                Ok(Upstream {
                    handle,
                    hop: Some(hop_handle),
                    server_id,
                })
            }
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::Timeout {
            server: target.name.clone(),
        }),
    }
}

/// A TCP connection to `to`, behind the read buffer (whose holds raise the
/// socket's low-water mark).
async fn dial(to: &Endpoint) -> Result<ReadBuffer<tokio::net::TcpStream>, UpstreamError> {
    let tcp = tokio::net::TcpStream::connect((to.host.as_str(), to.port))
        .await
        .map_err(|e| UpstreamError::Connect {
            server: to.name.clone(),
            message: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    Ok(ReadBuffer::with_socket(tcp))
}

async fn handshake<S>(
    target: &Endpoint,
    account: &str,
    credential: &Credential,
    stream: ReadBuffer<S>,
    forwards: Option<tokio::sync::mpsc::UnboundedSender<Box<Forwarded>>>,
) -> Result<(TargetHandle, String), UpstreamError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let presented = Arc::new(Mutex::new(None));
    let server_id = Arc::new(std::sync::OnceLock::new());
    let handler = TargetHandler {
        expected: target.host_key.clone(),
        presented: presented.clone(),
        forwards,
        server_id: server_id.clone(),
    };
    let mut handle =
        match client::connect_stream(client_config(&target.algorithms), stream, handler).await {
            Ok(h) => h,
            Err(e) => {
                let seen = presented.lock().ok().and_then(|p| p.clone());
                if let Some((fp, kind)) = seen
                    && target.host_key.as_deref() != Some(fp.as_str())
                {
                    return Err(UpstreamError::HostKeyMismatch {
                        server: target.name.clone(),
                        expected: target.host_key.clone(),
                        presented: fp,
                        presented_type: Some(kind),
                    });
                }
                return Err(UpstreamError::Protocol {
                    server: target.name.clone(),
                    message: e.to_string(),
                });
            }
        };
    let proto = |e: russh::Error| UpstreamError::Protocol {
        server: target.name.clone(),
        message: e.to_string(),
    };
    let ok = match credential {
        Credential::Identity(key) | Credential::Key(key) => {
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(proto)?
                .flatten();
            handle
                .authenticate_publickey(account, PrivateKeyWithHashAlg::new(key.clone(), hash))
                .await
                .map_err(proto)?
                .success()
        }
        Credential::Certificate(key, cert) => handle
            .authenticate_openssh_cert(account, key.clone(), (**cert).clone())
            .await
            .map_err(proto)?
            .success(),
        Credential::Password(secret) => {
            let r = handle
                .authenticate_password(account, secret.expose())
                .await
                .map_err(proto)?;
            if r.success() {
                true
            } else {
                keyboard_interactive(&mut handle, account, secret)
                    .await
                    .map_err(proto)?
            }
        }
    };
    if !ok {
        return Err(UpstreamError::AuthRefused {
            server: target.name.clone(),
            account: account.to_string(),
        });
    }
    let server_id = server_id.get().cloned().unwrap_or_default();
    Ok((handle, server_id))
}

/// Answers every password-looking prompt with the secret (PAM's usual
/// single "Password:" prompt).
async fn keyboard_interactive(
    handle: &mut TargetHandle,
    account: &str,
    secret: &Secret,
) -> Result<bool, russh::Error> {
    use client::KeyboardInteractiveAuthResponse as R;
    let mut resp = handle
        .authenticate_keyboard_interactive_start(account, None)
        .await?;
    for _ in 0..4 {
        match resp {
            R::Success => return Ok(true),
            R::Failure { .. } => return Ok(false),
            R::InfoRequest { ref prompts, .. } => {
                let answers = prompts
                    .iter()
                    .map(|p| {
                        if p.echo {
                            String::new()
                        } else {
                            secret.expose().to_string()
                        }
                    })
                    .collect();
                resp = handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await?;
            }
        }
    }
    Ok(false)
}
