//! Misbehaving SSH clients for the tests: what a stock OpenSSH client
//! never does, but an attacker's client may.

use super::Key;

/// A russh client handler that trusts any host key: the tests' raw
/// clients talk to a bastion they have just started.
pub struct TrustAnyHostKey;

impl russh::client::Handler for TrustAnyHostKey {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Logs in as `login` on `port` offering `key` (the right public key) and
/// answering the bastion's go-ahead with a signature that does not verify,
/// as a client without the private key could: `attempts` times on one
/// connection from address `from`, then disconnects. True if the bastion ever accepted.
pub fn bad_signatures(port: u16, from: &str, login: &str, key: &Key, attempts: usize) -> bool {
    use russh::client;
    /// Signs everything with 64 zero bytes: well formed, never valid.
    struct Forger;
    impl russh::Signer for Forger {
        type Error = russh::SendError;
        async fn auth_sign(
            &mut self,
            _key: &russh::keys::agent::AgentIdentity,
            _hash_alg: Option<russh::keys::HashAlg>,
            mut to_sign: Vec<u8>,
        ) -> Result<Vec<u8>, Self::Error> {
            let alg = b"ssh-ed25519";
            let sig = [0u8; 64];
            let blob_len = 4 + alg.len() + 4 + sig.len();
            to_sign.extend_from_slice(&(blob_len as u32).to_be_bytes());
            to_sign.extend_from_slice(&(alg.len() as u32).to_be_bytes());
            to_sign.extend_from_slice(alg);
            to_sign.extend_from_slice(&(sig.len() as u32).to_be_bytes());
            to_sign.extend_from_slice(&sig);
            Ok(to_sign)
        }
    }
    let public = russh::keys::PublicKey::from_openssh(&key.public).expect("public key");
    let login = login.to_string();
    let from: std::net::IpAddr = from.parse().expect("source address");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind((from, 0).into())
            .expect("bind the source address");
        let stream = socket
            .connect(([127, 0, 0, 1], port).into())
            .await
            .expect("connect");
        let config = std::sync::Arc::new(client::Config::default());
        let mut h = client::connect_stream(config, stream, TrustAnyHostKey)
            .await
            .expect("key exchange");
        let mut accepted = false;
        for _ in 0..attempts {
            match h
                .authenticate_publickey_with(&login, public.clone(), None, &mut Forger)
                .await
            {
                Ok(r) if r.success() => accepted = true,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = h
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        accepted
    })
}

/// Locks `user` out for an hour straight through the database of the
/// bastion configured at `config` (its `[server] database`): since nothing
/// a client sends without the private key counts toward `lockout_after`,
/// this is how the tests get a locked user for `gatehouse unlock` and the
/// `LOCKED` refusal (second-factor failures will be the way in).
pub fn lock_out_through_store(config: &std::path::Path, user: &str) {
    let text = std::fs::read_to_string(config).expect("read gatehouse.toml");
    let t: toml::Table = toml::from_str(&text).expect("parse gatehouse.toml");
    let url = t
        .get("server")
        .and_then(|s| s.get("database"))
        .and_then(|v| v.as_str())
        .expect("[server] database in the test config")
        .to_string();
    let user = user.to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let store = gatehouse::store::Store::open(&url, "test-lockout")
            .await
            .expect("open the bastion's database");
        let until = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        store.lock_user(&user, until).await.expect("lock the user");
    });
}
