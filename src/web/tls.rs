//! HTTPS for the review console: the certificate (from the config, or a
//! self-signed one created on first start and renewed when near its end)
//! and its SHA-256 fingerprint. Connections and their handshakes are
//! [`super::conns`]'s.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::WebError;

/// The console's certificate chain, key and the fingerprint `serve` prints.
pub struct Identity {
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate, as colon-separated hex pairs.
    pub fingerprint: String,
    /// Whether the pair was created by this start.
    pub created: bool,
}

/// The organisation our self-signed certificates carry: what marks a pair
/// as ours to renew (a site's own certificate is never touched).
const SELF_SIGNED_ORG: &str = "Gatehouse (self-signed)";
/// The common name rcgen's `generate_simple_self_signed` gave the pairs
/// older versions created (valid 1975 to 4096): renewed at the next start.
const OLD_SELF_SIGNED_CN: &str = "rcgen self signed cert";
/// How long a self-signed certificate is valid.
const VALIDITY_DAYS: i64 = 365;
/// A self-signed certificate this close to its end is renewed at start.
const RENEW_WITHIN_DAYS: i64 = 30;

/// Loads `cert` and `key` (PEM). When both are missing, creates a
/// self-signed pair for `names` (the first is the subject's common name;
/// all are subject alternative names), valid for a year. A self-signed pair
/// made by Gatehouse is replaced the same way when it ends within 30 days
/// or was made by an older version. One file without the other is an error
/// rather than silently replaced.
pub fn load_or_create(cert: &Path, key: &Path, names: &[String]) -> Result<Identity, WebError> {
    let created = match (cert.exists(), key.exists()) {
        (true, true) => {
            let now = time::OffsetDateTime::now_utc();
            let pem = std::fs::read(cert).map_err(|e| WebError::io(cert, e))?;
            if ours_and_due(&pem, now) {
                tracing::info!(
                    "renewing the console's self-signed certificate {}",
                    cert.display()
                );
                create_self_signed(cert, key, names, true)?;
                true
            } else {
                false
            }
        }
        (false, false) => {
            create_self_signed(cert, key, names, false)?;
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

/// Whether the PEM certificate is a self-signed one Gatehouse made that is
/// due for renewal at `now`. Anything unreadable is left alone.
fn ours_and_due(pem: &[u8], now: time::OffsetDateTime) -> bool {
    let Some(der) = CertificateDer::pem_slice_iter(pem)
        .next()
        .and_then(Result::ok)
    else {
        return false;
    };
    let Ok((_, x509)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return false;
    };
    let subject = x509.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok());
    let not_after = x509.validity().not_after.timestamp();
    // rcgen's defaults, as older versions used them: 1975 to 4096 (the
    // check: after the year 3000).
    if cn == Some(OLD_SELF_SIGNED_CN) && not_after > 32_503_680_000 {
        return true;
    }
    let ours = subject
        .iter_organization()
        .any(|a| a.as_str().ok() == Some(SELF_SIGNED_ORG));
    ours && not_after - now.unix_timestamp() < RENEW_WITHIN_DAYS * 86_400
}

fn create_self_signed(
    cert: &Path,
    key: &Path,
    names: &[String],
    replace: bool,
) -> Result<(), WebError> {
    let fail = |e: rcgen::Error| WebError::Tls(format!("cannot create a certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(fail)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        names.first().cloned().unwrap_or_else(|| "localhost".into()),
    );
    dn.push(rcgen::DnType::OrganizationName, SELF_SIGNED_ORG);
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
    let pair = rcgen::KeyPair::generate().map_err(fail)?;
    let made = params.self_signed(&pair).map_err(fail)?;
    for p in [cert, key] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| WebError::io(dir, e))?;
        }
    }
    if replace {
        // Written beside and renamed over: a crash leaves the old pair or
        // the new one, never half of each... unless it falls between the
        // two renames, which the next start then reports as a mismatch.
        let (kt, ct) = (
            key.with_extension("pem.new"),
            cert.with_extension("pem.new"),
        );
        for t in [&kt, &ct] {
            let _ = std::fs::remove_file(t);
        }
        write_new(&kt, pair.serialize_pem().as_bytes(), 0o600)?;
        write_new(&ct, made.pem().as_bytes(), 0o644)?;
        std::fs::rename(&kt, key).map_err(|e| WebError::io(key, e))?;
        return std::fs::rename(&ct, cert).map_err(|e| WebError::io(cert, e));
    }
    // The key first and private from its first byte: 0600 at creation.
    write_new(key, pair.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert, made.pem().as_bytes(), 0o644)
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

/// The client's address, for handlers (`ConnectInfo<Peer>`), set by
/// [`super::conns`] on every request.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

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
    fn the_certificate_names_the_host_for_a_year_and_is_renewed_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let names = vec!["bastion.example".to_string(), "localhost".to_string()];
        let first = load_or_create(&c, &k, &names).unwrap();
        let pem = std::fs::read(&c).unwrap();
        let der = CertificateDer::pem_slice_iter(&pem)
            .next()
            .unwrap()
            .unwrap();
        let (_, x) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let cn = x.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "bastion.example");
        let days =
            (x.validity().not_after.timestamp() - x.validity().not_before.timestamp()) / 86_400;
        assert!((360..=370).contains(&days), "{days} days");
        let now = time::OffsetDateTime::now_utc();
        assert!(!ours_and_due(&pem, now));
        assert!(ours_and_due(&pem, now + time::Duration::days(340)));
        // Reloaded as is while not due.
        let again = load_or_create(&c, &k, &names).unwrap();
        assert!(!again.created);
        assert_eq!(again.fingerprint, first.fingerprint);
        // What older versions made is replaced at the next start.
        let old = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(&c, old.cert.pem()).unwrap();
        std::fs::write(&k, old.signing_key.serialize_pem()).unwrap();
        let renewed = load_or_create(&c, &k, &names).unwrap();
        assert!(renewed.created);
        let pem = std::fs::read(&c).unwrap();
        assert!(!ours_and_due(&pem, now));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&k).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A site's own certificate (not ours) is never replaced.
        let mut p = rcgen::CertificateParams::new(vec!["site.example".to_string()]).unwrap();
        p.not_after = now + time::Duration::days(2);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "site.example");
        let kp = rcgen::KeyPair::generate().unwrap();
        let site = p.self_signed(&kp).unwrap();
        assert!(!ours_and_due(site.pem().as_bytes(), now));
    }

    #[test]
    fn one_file_without_the_other_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, "x").unwrap();
        assert!(load_or_create(&c, &k, &["localhost".into()]).is_err());
    }
}
