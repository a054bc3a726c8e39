//! HTTPS for the review console: the certificate (from the config, or a
//! self-signed one created on first start), its SHA-256 fingerprint, and a
//! listener that hands axum only connections whose TLS handshake finished.
//!
//! Handshakes run in their own tasks with a deadline, so a client that
//! opens a connection and says nothing holds up nobody else.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::WebError;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait in the kernel.
const MAX_HANDSHAKES: usize = 256;

/// The console's certificate chain, key and the fingerprint `serve` prints.
pub struct Identity {
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate, as colon-separated hex pairs.
    pub fingerprint: String,
    /// Whether the pair was created by this start.
    pub created: bool,
}

/// Loads `cert` and `key` (PEM); creates a self-signed pair for `names`
/// when both are missing. One without the other is an error rather than
/// silently replaced.
pub fn load_or_create(cert: &Path, key: &Path, names: &[String]) -> Result<Identity, WebError> {
    let created = match (cert.exists(), key.exists()) {
        (true, true) => false,
        (false, false) => {
            create_self_signed(cert, key, names)?;
            true
        }
        _ => {
            return Err(WebError::Tls(format!(
                "{} and {} must both exist (or both be missing, to create a self-signed pair)",
                cert.display(),
                key.display()
            )));
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| WebError::Tls(format!("{}: {e}", cert.display())))?;
    let leaf = chain
        .first()
        .ok_or_else(|| WebError::Tls(format!("{}: no certificate", cert.display())))?;
    let fingerprint = fingerprint(leaf.as_ref());
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| WebError::Tls(format!("{}: {e}", key.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| WebError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .map_err(|e| WebError::Tls(format!("{}: {e}", cert.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        config: Arc::new(config),
        fingerprint,
        created,
    })
}

/// `AB:CD:...`, the form browsers and `openssl x509 -fingerprint -sha256` show.
pub fn fingerprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn create_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<(), WebError> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| WebError::Tls(format!("cannot create a certificate: {e}")))?;
    for p in [cert, key] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| WebError::io(dir, e))?;
        }
    }
    // The key first and private from its first byte: 0600 at creation.
    write_new(key, made.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert, made.cert.pem().as_bytes(), 0o644)
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), WebError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| WebError::io(path, e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| WebError::io(path, e))
}

/// Accepted connections after their handshake, for `axum::serve`.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp` until `stop` fires.
    pub fn new(tcp: TcpListener, tls: Arc<rustls::ServerConfig>, stop: CancellationToken) -> Self {
        let local = tcp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(accept_loop(tcp, TlsAcceptor::from(tls), tx, stop));
        TlsListener { rx, local }
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = tcp.accept() => a,
        };
        let (sock, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!("web: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, "web: TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "web: TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop stopped (shutdown): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The client's address, for handlers (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_pair_once_with_a_private_key_and_reloads_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("d/c.pem"), dir.path().join("d/k.pem"));
        let first = load_or_create(&c, &k, &["localhost".into()]).unwrap();
        assert!(first.created);
        let mode = std::fs::metadata(&k).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create(&c, &k, &["localhost".into()]).unwrap();
        assert!(!again.created);
        assert_eq!(first.fingerprint, again.fingerprint);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
    }

    #[test]
    fn one_file_without_the_other_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, "x").unwrap();
        assert!(load_or_create(&c, &k, &["localhost".into()]).is_err());
    }
}
