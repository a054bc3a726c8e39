//! Reading the directory with the `ldap3` client over rustls: bind, then
//! three paged searches (users, disabled users, groups). Referrals are
//! never followed (they are reported and skipped). The read runs in its
//! own task with a deadline, so a directory that stalls, or an answer the
//! client cannot parse, is a failed read, never a stuck or crashed node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConnAsync, LdapConnSettings, ResultEntry, Scope, SearchEntry};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::DirectoryError;
use super::entries::{RawEntry, RawRead};
use crate::config::{DirectoryConfig, DirectoryTls};
use crate::secret::Secret;

/// Entries asked for per page (the simple paged results control).
const PAGE_SIZE: i32 = 500;
/// A whole read (connect, bind, searches) must end in this long.
const READ_DEADLINE: Duration = Duration::from_secs(120);
/// Connecting (TCP and TLS) must end in this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Entries read per search at most: a directory answering more is refused
/// rather than let memory grow without bound.
const MAX_ENTRIES: usize = 1_000_000;

/// Reads the bind password: the file must be 0600 (or stricter) and
/// hold one line.
pub fn read_bind_password(cfg: &DirectoryConfig) -> Result<Secret, DirectoryError> {
    use std::os::unix::fs::MetadataExt;
    let path = &cfg.bind_password_file;
    let meta = std::fs::metadata(path).map_err(|e| {
        DirectoryError::Secret(format!(
            "[directory] bind_password_file {}: {e}",
            path.display()
        ))
    })?;
    if meta.mode() & 0o077 != 0 {
        return Err(DirectoryError::Secret(format!(
            "[directory] bind_password_file {} is mode {:o}: it must be readable by its owner only (chmod 600)",
            path.display(),
            meta.mode() & 0o777
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        DirectoryError::Secret(format!(
            "[directory] bind_password_file {}: {e}",
            path.display()
        ))
    })?;
    let pw = text.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        return Err(DirectoryError::Secret(format!(
            "[directory] bind_password_file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(pw))
}

/// The TLS client settings when `ca_file` is set (its certificates as the
/// only roots, ring as the provider); `None`: `ldap3`'s own, the
/// system's roots.
fn tls_config(cfg: &DirectoryConfig) -> Result<Option<Arc<rustls::ClientConfig>>, DirectoryError> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| DirectoryError::Tls(format!("ca_file {}: {e}", path.display())))?
                .collect::<Result<_, _>>()
                .map_err(|e| DirectoryError::Tls(format!("ca_file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(DirectoryError::Tls(format!(
                    "ca_file {}: no certificate",
                    path.display()
                )));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| DirectoryError::Tls(format!("ca_file {}: {e}", path.display())))?;
            }
        }
        None => return Ok(None),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| DirectoryError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

fn ldap_err(what: &str, e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Ldap(format!("{what}: {e}"))
}

/// Reads users, disabled users and groups.
pub async fn read(cfg: &DirectoryConfig) -> Result<RawRead, DirectoryError> {
    let password = read_bind_password(cfg)?;
    let tls = tls_config(cfg)?;
    let cfg = cfg.clone();
    let task = tokio::spawn(async move {
        tokio::time::timeout(READ_DEADLINE, read_inner(&cfg, tls, password))
            .await
            .unwrap_or_else(|_| {
                Err(DirectoryError::Ldap(format!(
                    "no complete answer within {}s",
                    READ_DEADLINE.as_secs()
                )))
            })
    });
    match task.await {
        Ok(r) => r,
        Err(e) => Err(DirectoryError::Ldap(format!("the read failed: {e}"))),
    }
}

async fn read_inner(
    cfg: &DirectoryConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    password: Secret,
) -> Result<RawRead, DirectoryError> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(CONNECT_TIMEOUT)
        .set_starttls(cfg.tls == DirectoryTls::StartTls);
    if let Some(tls) = tls {
        settings = settings.set_config(tls);
    }
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &cfg.url)
        .await
        .map_err(|e| ldap_err("connect", e))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!("directory connection: {e}");
        }
    });
    let result = async {
        ldap.simple_bind(&cfg.bind_dn, password.expose())
            .await
            .map_err(|e| ldap_err("bind", e))?
            .success()
            .map_err(|e| ldap_err("bind", e))?;
        let name = cfg.name_attribute.as_str();
        let key = cfg.key_attribute.as_str();
        let mut read = RawRead::default();
        let (users, refs) = search(
            &mut ldap,
            &cfg.users,
            &cfg.user_filter,
            vec![name, key, "memberOf"],
        )
        .await?;
        read.users = users;
        read.referrals.extend(refs);
        if let Some(f) = &cfg.disabled_filter {
            let filter = format!("(&{}{})", wrap(&cfg.user_filter), wrap(f));
            let (disabled, refs) = search(&mut ldap, &cfg.users, &filter, vec!["1.1"]).await?;
            read.disabled = disabled.into_iter().map(|e| e.dn).collect();
            read.referrals.extend(refs);
        }
        if let Some(base) = &cfg.groups {
            let (groups, refs) = search(
                &mut ldap,
                base,
                &cfg.group_filter,
                vec!["cn", "member", "uniqueMember", "memberUid"],
            )
            .await?;
            read.groups = groups;
            read.referrals.extend(refs);
        }
        let _ = ldap.unbind().await;
        Ok(read)
    }
    .await;
    driver.abort();
    result
}

/// A filter in parentheses, as `(&..)` needs its parts.
fn wrap(f: &str) -> String {
    let f = f.trim();
    if f.starts_with('(') {
        f.to_string()
    } else {
        format!("({f})")
    }
}

/// One paged subtree search: entries (attribute names lowercased) and the
/// referrals met.
async fn search(
    ldap: &mut ldap3::Ldap,
    base: &str,
    filter: &str,
    attrs: Vec<&str>,
) -> Result<(Vec<RawEntry>, Vec<String>), DirectoryError> {
    let attrs: Vec<String> = attrs.into_iter().map(str::to_string).collect();
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(PAGE_SIZE)),
    ];
    let mut stream = ldap
        .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs)
        .await
        .map_err(|e| ldap_err("search", e))?;
    let mut entries = Vec::new();
    let mut referrals = Vec::new();
    while let Some(entry) = stream.next().await.map_err(|e| ldap_err("search", e))? {
        if entries.len() >= MAX_ENTRIES {
            let _ = stream.finish().await;
            return Err(DirectoryError::Ldap(format!(
                "search under {base:?} returned more than {MAX_ENTRIES} entries"
            )));
        }
        if entry.is_ref() {
            referrals.push(format!("referral under {base}"));
            continue;
        }
        match construct(entry) {
            Some(e) => entries.push(e),
            None => referrals.push(format!("unreadable entry under {base}")),
        }
    }
    let res = stream.finish().await;
    // 10: a referral as the search's result; the entries read stand.
    if res.rc == 10 {
        referrals.extend(res.refs.iter().cloned());
    } else {
        res.success().map_err(|e| ldap_err("search", e))?;
    }
    Ok((entries, referrals))
}

/// `SearchEntry::construct` panics on malformed BER; a panic here is
/// one entry skipped, not a crash.
fn construct(entry: ResultEntry) -> Option<RawEntry> {
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        SearchEntry::construct(entry)
    }))
    .ok()?;
    let mut attrs: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in e.attrs {
        attrs.entry(k.to_lowercase()).or_default().extend(v);
    }
    Some(RawEntry { dn: e.dn, attrs })
}
