//! `gatehouse vault`: store, generate, list and re-key target credentials.
//! Secrets come in on standard input or from a file and go out only through
//! `generate --show`; every change is an audit event, which never carries
//! a secret.

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use sqlx::AnyPool;

use super::{Exit, VaultCmd};
use crate::audit::{AuditEvent, EventKind};
use crate::config::Config;
use crate::store::Store;
use crate::vault::{
    self, CredentialStatus, KeySource, MASTER_KEY_ENV, MasterKey, Secret, Vault, replace_key_file,
};

/// Private key files larger than this are not keys.
const MAX_KEY_FILE: u64 = 64 * 1024;

pub async fn run(config: Config, cmd: VaultCmd) -> anyhow::Result<i32> {
    match cmd {
        VaultCmd::Set {
            server,
            account,
            password_stdin,
            key,
            third_party,
        } => {
            let input = match (password_stdin, key) {
                (true, None) => Input::Password(read_password_line(std::io::stdin().lock())?),
                (false, Some(path)) => Input::Key(read_key_file(&path)?),
                _ => {
                    return Err(Exit::new(
                        2,
                        "vault set: give exactly one of --password-stdin or --key FILE",
                    )
                    .into());
                }
            };
            set(&config, &server, &account, input, third_party).await
        }
        VaultCmd::Generate {
            server,
            account,
            show,
            third_party,
        } => generate(&config, &server, &account, show, third_party).await,
        VaultCmd::Rotate { server, account } => rotate(&config, &server, &account).await,
        VaultCmd::List { json } => list(&config, json).await,
        VaultCmd::Rekey { new_key } => rekey(&config, &new_key).await,
    }
}

enum Input {
    Password(Secret),
    Key(Secret),
}

/// One line from `r`, without its line ending. Nothing at all is an error;
/// an empty line is left to the vault to refuse.
fn read_password_line(mut r: impl BufRead) -> anyhow::Result<Secret> {
    let mut buf = String::new();
    let n = r.read_line(&mut buf);
    // Owned by a Secret at once, so that the raw line is wiped too.
    let raw = Secret::new(buf);
    let n = n.context("reading the password from standard input")?;
    if n == 0 {
        anyhow::bail!("no password on standard input");
    }
    let line = raw.expose().strip_suffix('\n').unwrap_or(raw.expose());
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(Secret::new(line))
}

fn read_key_file(path: &Path) -> anyhow::Result<Secret> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if meta.len() > MAX_KEY_FILE {
        anyhow::bail!(
            "{}: {} bytes is too large for a private key",
            path.display(),
            meta.len()
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    Ok(Secret::new(text))
}

/// The store and its pool. The vault's tables come with the store's
/// migrations (`0002_vault.sql`).
async fn open_store(config: &Config) -> anyhow::Result<(Store, AnyPool)> {
    let store = Store::open(&config.database, &config.node)
        .await
        .context("opening the database")?;
    let pool = store_pool(&store)?.clone();
    Ok((store, pool))
}

/// LEAD: the store branch adds `Store::pool()`; once merged, this body is
/// `Ok(store.pool())`. Until then `Store::open` fails first anyway.
fn store_pool(store: &Store) -> anyhow::Result<&AnyPool> {
    Ok(store.pool())
}

async fn open_vault(config: &Config) -> anyhow::Result<(Store, Vault)> {
    // The database first: a failure there must not leave a new key file.
    let (store, pool) = open_store(config).await?;
    let key = MasterKey::resolve(&config.master_key)?;
    let vault = Vault::new(pool, key, config.vault.clone());
    vault.check_key().await.map_err(|e| match e {
        vault::VaultError::WrongMasterKey => anyhow::anyhow!(
            "{e}; check server.master_key ({}) and {MASTER_KEY_ENV}",
            config.master_key.display()
        ),
        e => e.into(),
    })?;
    Ok((store, vault))
}

/// `vault rotate SERVER ACCOUNT`: a new password set on the target with
/// chpasswd, verified by logging in with it, then committed.
async fn rotate(config: &Config, server: &str, account: &str) -> anyhow::Result<i32> {
    let (store, vault) = open_vault(config).await?;
    let policy = crate::policy::Policy::load_dir_with(&config.policies, config.directory.is_some())
        .map_err(|d| {
            anyhow::anyhow!(
                "{} problem(s) in the policy files (run `gatehouse policy check`)",
                d.len()
            )
        })?;
    let identity = crate::keys::load_or_create(&config.identity_key, "gatehouse identity")?;
    let who = operator();
    let rotator = vault::rotate::Rotator {
        vault: &vault,
        store: &store,
        policy: &policy,
        identity: std::sync::Arc::new(identity),
        admin_account: &config.vault.rotation_admin_account,
        algorithms: &config.ssh.target,
        actor: &who,
    };
    rotator
        .rotate(server, account)
        .await
        .map_err(|e| Exit::new(1, e.to_string()))?;
    println!("rotated the password of {account}@{server} (set on the target, verified, committed)");
    Ok(0)
}

/// Who ran the command on the bastion host, for the audit trail.
fn operator() -> String {
    super::operator::name()
}

/// Writes an audit event after a change; a failure is reported as such so
/// that the operator knows the change happened but is not in the trail.
async fn audit_after_change(store: &Store, ev: AuditEvent) -> anyhow::Result<()> {
    store
        .audit(&ev.detail("by", operator()))
        .await
        .context("the change was made, but its audit event could not be written")?;
    Ok(())
}

async fn set(
    config: &Config,
    server: &str,
    account: &str,
    input: Input,
    third_party: bool,
) -> anyhow::Result<i32> {
    let (store, vault) = open_vault(config).await?;
    let meta = match input {
        Input::Password(pw) => vault.set_password(server, account, pw, third_party).await?,
        Input::Key(text) => vault.set_key(server, account, text, third_party).await?,
    };
    audit_after_change(
        &store,
        AuditEvent::new(EventKind::VaultSet)
            .server(server)
            .account(account)
            .detail("action", "set")
            .detail("kind", meta.kind.as_str())
            .detail("strength_ok", meta.strength_ok)
            .detail("key_info", meta.key_info.clone()),
    )
    .await?;
    println!("stored {} for {}", meta.kind, meta.label());
    if !meta.strength_ok {
        eprintln!(
            "warning: it does not meet the policy: {}",
            meta.strength_reasons.join("; ")
        );
    }
    Ok(0)
}

async fn generate(
    config: &Config,
    server: &str,
    account: &str,
    show: bool,
    third_party: bool,
) -> anyhow::Result<i32> {
    let (store, vault) = open_vault(config).await?;
    let pw = vault.generate(server, account, third_party).await?;
    audit_after_change(
        &store,
        AuditEvent::new(EventKind::VaultSet)
            .server(server)
            .account(account)
            .detail("action", "generate")
            .detail("kind", "password")
            .detail("shown", show),
    )
    .await?;
    if show {
        println!("{}", pw.expose());
    } else {
        eprintln!(
            "generated and stored a new password for {account}@{server}; not shown (--show prints it)"
        );
    }
    Ok(0)
}

async fn list(config: &Config, json: bool) -> anyhow::Result<i32> {
    let (_store, pool) = open_store(config).await?;
    let rows = vault::status(&pool, &config.vault, time::OffsetDateTime::now_utc()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render_table(&rows));
    }
    Ok(0)
}

fn date(t: time::OffsetDateTime) -> String {
    t.date().to_string()
}

/// The human form of `vault list`: one row per credential, the reasons it
/// does not comply indented below it.
fn render_table(rows: &[CredentialStatus]) -> String {
    if rows.is_empty() {
        return "no credentials in the vault\n".into();
    }
    let header = [
        "SERVER",
        "ACCOUNT",
        "KIND",
        "CREATED",
        "ROTATED",
        "LAST USED",
        "DUE",
        "COMPLIES",
    ];
    let mut table: Vec<[String; 8]> = vec![header.map(String::from)];
    for r in rows {
        let m = &r.meta;
        let kind = if m.third_party {
            format!("{} (3rd party)", m.kind)
        } else {
            m.kind.to_string()
        };
        table.push([
            m.server.clone(),
            m.account.clone(),
            kind,
            date(m.created_at),
            date(m.rotated_at),
            m.last_used_at.map(date).unwrap_or_else(|| "never".into()),
            r.compliance.rotation_due.to_string(),
            if r.compliance.complies { "yes" } else { "no" }.into(),
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (i, row) in table.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if let Some(r) = i.checked_sub(1).and_then(|j| rows.get(j)) {
            for reason in &r.compliance.reasons {
                out.push_str("    - ");
                out.push_str(reason);
                out.push('\n');
            }
        }
    }
    out
}

/// Re-encrypts the vault under the key in `new_key_path` (created when
/// missing), then installs that key where the configuration looks for it:
/// the `master_key` file is replaced atomically; a key from the
/// environment has to be changed by the operator.
async fn rekey(config: &Config, new_key_path: &Path) -> anyhow::Result<i32> {
    let (store, vault) = open_vault(config).await?;
    let source = MasterKey::resolve(&config.master_key)?.source().clone();
    let new_key = MasterKey::load_or_create(new_key_path)?;
    let n = vault.rekey(new_key).await?;
    audit_after_change(
        &store,
        AuditEvent::new(EventKind::VaultSet)
            .detail("action", "rekey")
            .detail("credentials", n),
    )
    .await?;
    let new_key = MasterKey::load_or_create(new_key_path)?;
    let shown = new_key_path.display();
    match source {
        KeySource::File(path) => {
            replace_key_file(&path, &new_key).with_context(|| {
                format!(
                    "re-encrypted {n} credentials, but could not install the new key as {}; \
                     the vault now needs the key in {shown}",
                    path.display()
                )
            })?;
            println!(
                "re-encrypted {n} credentials; {} now holds the new key (so does {shown})",
                path.display()
            );
        }
        KeySource::Env | KeySource::Memory => {
            println!("re-encrypted {n} credentials; set {MASTER_KEY_ENV} to the key in {shown}");
        }
    }
    eprintln!(
        "note: every running bastion node still holds the old key: give each the new key and restart it"
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::{Compliance, CredentialKind, CredentialMeta};
    use time::macros::{date, datetime};

    #[test]
    fn one_line_without_its_ending() {
        let read = |s: &str| read_password_line(std::io::Cursor::new(s.as_bytes().to_vec()));
        assert_eq!(read("Pass-word 1\n").unwrap().expose(), "Pass-word 1");
        assert_eq!(
            read("Pass-word 1\r\nsecond\n").unwrap().expose(),
            "Pass-word 1"
        );
        assert_eq!(read("no newline").unwrap().expose(), "no newline");
        assert_eq!(read("\n").unwrap().expose(), "");
        assert!(read("").is_err());
    }

    #[test]
    fn the_table_shows_metadata_and_reasons_only() {
        let t = datetime!(2026-01-02 03:04 UTC);
        let meta = CredentialMeta {
            server: "prod-db".into(),
            account: "oracle".into(),
            kind: CredentialKind::Password,
            third_party: false,
            strength_ok: false,
            strength_reasons: vec!["too short".into()],
            key_info: None,
            created_at: t,
            rotated_at: t,
            last_used_at: None,
            rotation_pending_since: None,
        };
        let row = CredentialStatus {
            meta,
            compliance: Compliance {
                complies: false,
                reasons: vec!["password too short".into()],
                age_days: 3,
                max_age_days: 180,
                rotation_due: date!(2026 - 07 - 01),
            },
        };
        let out = render_table(&[row]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("SERVER   ACCOUNT  KIND"), "{out}");
        assert!(lines[1].contains("prod-db"), "{out}");
        assert!(lines[1].contains("2026-01-02"), "{out}");
        assert!(lines[1].contains("never"), "{out}");
        assert!(lines[1].contains("2026-07-01"), "{out}");
        assert!(lines[1].ends_with("no"), "{out}");
        assert_eq!(lines[2], "    - password too short");
        assert_eq!(render_table(&[]), "no credentials in the vault\n");
    }
}
