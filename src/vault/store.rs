//! The vault's SQL (tables from `migrations/*/0002_vault.sql`), written once
//! for SQLite and PostgreSQL through `sqlx::Any`: `$N` placeholders, flags as
//! integers, timestamps as fixed-width RFC 3339 UTC text. Each function is
//! one statement and takes any executor: the pool, or `&mut *tx` inside a
//! transaction the caller holds. Nothing here decrypts.

use sqlx::{Any, Executor, Row};
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use super::VaultError;

/// `2026-01-02T03:04:05.123456Z`: fixed width, so text order is time order.
const TS_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Formats a time as stored: UTC, microseconds.
pub fn format_ts(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(TS_FORMAT)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses a stored time (the fixed format, or any RFC 3339 text).
pub fn parse_ts(s: &str) -> Result<OffsetDateTime, VaultError> {
    time::PrimitiveDateTime::parse(s, TS_FORMAT)
        .map(|t| t.assume_utc())
        .or_else(|_| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339))
        .map_err(|_| VaultError::Corrupt(format!("timestamp {s:?}")))
}

/// The current time at the precision the database keeps, so that a value
/// written and read back compares equal.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t)
}

impl From<sqlx::Error> for VaultError {
    fn from(e: sqlx::Error) -> Self {
        VaultError::Db(e.to_string())
    }
}

/// One row of `vault_credentials`, still sealed.
#[derive(Clone)]
pub struct CredentialRow {
    pub server: String,
    pub account: String,
    pub kind: String,
    pub ciphertext: String,
    pub third_party: bool,
    pub strength_ok: bool,
    pub strength_reasons: Vec<String>,
    pub key_info: Option<String>,
    pub created_at: OffsetDateTime,
    pub rotated_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub pending_ciphertext: Option<String>,
    pub pending_since: Option<OffsetDateTime>,
}

/// The columns of [`CredentialRow`], as a literal so that `concat!` keeps
/// the queries `&'static str`.
macro_rules! columns {
    () => {
        "server, account, kind, ciphertext, third_party, strength_ok, strength_reasons, \
         key_info, created_at, rotated_at, last_used_at, pending_ciphertext, pending_since"
    };
}

fn row_from(r: &sqlx::any::AnyRow) -> Result<CredentialRow, VaultError> {
    let opt_ts = |col: &str| -> Result<Option<OffsetDateTime>, VaultError> {
        r.try_get::<Option<String>, _>(col)?
            .map(|s| parse_ts(&s))
            .transpose()
    };
    let reasons: String = r.try_get("strength_reasons")?;
    Ok(CredentialRow {
        server: r.try_get("server")?,
        account: r.try_get("account")?,
        kind: r.try_get("kind")?,
        ciphertext: r.try_get("ciphertext")?,
        third_party: r.try_get::<i64, _>("third_party")? != 0,
        strength_ok: r.try_get::<i64, _>("strength_ok")? != 0,
        strength_reasons: serde_json::from_str(&reasons)
            .map_err(|_| VaultError::Corrupt("strength_reasons".into()))?,
        key_info: r.try_get("key_info")?,
        created_at: parse_ts(&r.try_get::<String, _>("created_at")?)?,
        rotated_at: parse_ts(&r.try_get::<String, _>("rotated_at")?)?,
        last_used_at: opt_ts("last_used_at")?,
        pending_ciphertext: r.try_get("pending_ciphertext")?,
        pending_since: opt_ts("pending_since")?,
    })
}

pub async fn get<'e, E>(
    db: E,
    server: &str,
    account: &str,
) -> Result<Option<CredentialRow>, VaultError>
where
    E: Executor<'e, Database = Any>,
{
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM vault_credentials WHERE server = $1 AND account = $2"
    ))
    .bind(server)
    .bind(account)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(row_from).transpose()
}

pub async fn list<'e, E>(db: E) -> Result<Vec<CredentialRow>, VaultError>
where
    E: Executor<'e, Database = Any>,
{
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM vault_credentials ORDER BY server, account"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(row_from).collect()
}

/// What a set, generate or committed rotation writes.
pub struct NewSecret<'a> {
    pub server: &'a str,
    pub account: &'a str,
    pub kind: &'a str,
    pub ciphertext: &'a str,
    pub third_party: bool,
    pub strength_ok: bool,
    pub strength_reasons: &'a [String],
    pub key_info: Option<&'a str>,
    pub at: OffsetDateTime,
}

/// Inserts or replaces the secret of a row. `created_at` and `last_used_at`
/// of an existing row are kept; any pending rotation is cleared.
pub async fn upsert<'e, E>(db: E, n: &NewSecret<'_>) -> Result<(), VaultError>
where
    E: Executor<'e, Database = Any>,
{
    let reasons = serde_json::to_string(n.strength_reasons)
        .map_err(|e| VaultError::Corrupt(e.to_string()))?;
    let at = format_ts(n.at);
    sqlx::query(
        "INSERT INTO vault_credentials (server, account, kind, ciphertext, third_party, \
         strength_ok, strength_reasons, key_info, created_at, rotated_at, last_used_at, \
         pending_ciphertext, pending_since) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, NULL, NULL, NULL) \
         ON CONFLICT (server, account) DO UPDATE SET \
         kind = excluded.kind, ciphertext = excluded.ciphertext, \
         third_party = excluded.third_party, strength_ok = excluded.strength_ok, \
         strength_reasons = excluded.strength_reasons, key_info = excluded.key_info, \
         rotated_at = excluded.rotated_at, pending_ciphertext = NULL, pending_since = NULL",
    )
    .bind(n.server)
    .bind(n.account)
    .bind(n.kind)
    .bind(n.ciphertext)
    .bind(i64::from(n.third_party))
    .bind(i64::from(n.strength_ok))
    .bind(reasons)
    .bind(n.key_info)
    .bind(at)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn touch_used<'e, E>(
    db: E,
    server: &str,
    account: &str,
    at: OffsetDateTime,
) -> Result<(), VaultError>
where
    E: Executor<'e, Database = Any>,
{
    sqlx::query(
        "UPDATE vault_credentials SET last_used_at = $3 WHERE server = $1 AND account = $2",
    )
    .bind(server)
    .bind(account)
    .bind(format_ts(at))
    .execute(db)
    .await?;
    Ok(())
}

/// Sets or clears (`None`) the pending rotation of a row; returns whether
/// the row exists.
pub async fn set_pending<'e, E>(
    db: E,
    server: &str,
    account: &str,
    pending: Option<(&str, OffsetDateTime)>,
) -> Result<bool, VaultError>
where
    E: Executor<'e, Database = Any>,
{
    let r = sqlx::query(
        "UPDATE vault_credentials SET pending_ciphertext = $3, pending_since = $4 \
         WHERE server = $1 AND account = $2",
    )
    .bind(server)
    .bind(account)
    .bind(pending.map(|(c, _)| c.to_string()))
    .bind(pending.map(|(_, t)| format_ts(t)))
    .execute(db)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Replaces both ciphertexts of a row (re-encryption under a new key).
pub async fn set_ciphertexts<'e, E>(
    db: E,
    server: &str,
    account: &str,
    ciphertext: &str,
    pending: Option<&str>,
) -> Result<(), VaultError>
where
    E: Executor<'e, Database = Any>,
{
    sqlx::query(
        "UPDATE vault_credentials SET ciphertext = $3, pending_ciphertext = $4 \
         WHERE server = $1 AND account = $2",
    )
    .bind(server)
    .bind(account)
    .bind(ciphertext)
    .bind(pending)
    .execute(db)
    .await?;
    Ok(())
}

/// The newest `limit` history hashes of a row, newest first.
pub async fn history_recent<'e, E>(
    db: E,
    server: &str,
    account: &str,
    limit: usize,
) -> Result<Vec<String>, VaultError>
where
    E: Executor<'e, Database = Any>,
{
    let rows = sqlx::query(
        "SELECT hash FROM vault_history WHERE server = $1 AND account = $2 \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(server)
    .bind(account)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("hash").map_err(VaultError::from))
        .collect()
}

pub async fn history_push<'e, E>(
    db: E,
    server: &str,
    account: &str,
    hash: &str,
    at: OffsetDateTime,
) -> Result<(), VaultError>
where
    E: Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO vault_history (server, account, hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(server)
    .bind(account)
    .bind(hash)
    .bind(format_ts(at))
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes all but the newest `keep` history hashes of a row.
pub async fn history_prune<'e, E>(
    db: E,
    server: &str,
    account: &str,
    keep: usize,
) -> Result<(), VaultError>
where
    E: Executor<'e, Database = Any>,
{
    sqlx::query(
        "DELETE FROM vault_history WHERE server = $1 AND account = $2 AND id NOT IN \
         (SELECT id FROM vault_history WHERE server = $1 AND account = $2 \
          ORDER BY id DESC LIMIT $3)",
    )
    .bind(server)
    .bind(account)
    .bind(i64::try_from(keep).unwrap_or(i64::MAX))
    .execute(db)
    .await?;
    Ok(())
}

/// Takes the vault's write lock: a no-op update of the `vault_state` row,
/// which holds SQLite's write lock and PostgreSQL's row lock until the
/// transaction ends. Returns whether the row exists.
pub async fn lock_state<'e, E>(db: E) -> Result<bool, VaultError>
where
    E: Executor<'e, Database = Any>,
{
    let r = sqlx::query("UPDATE vault_state SET key_check = key_check WHERE id = 1")
        .execute(db)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Records the key check value when there is none yet (first use).
pub async fn init_state<'e, E>(db: E, key_check: &str) -> Result<(), VaultError>
where
    E: Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO vault_state (id, key_check) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
    )
    .bind(key_check)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn key_check<'e, E>(db: E) -> Result<Option<String>, VaultError>
where
    E: Executor<'e, Database = Any>,
{
    let row = sqlx::query("SELECT key_check FROM vault_state WHERE id = 1")
        .fetch_optional(db)
        .await?;
    Ok(row
        .map(|r| r.try_get::<String, _>("key_check"))
        .transpose()?)
}

pub async fn set_key_check<'e, E>(db: E, key_check: &str) -> Result<(), VaultError>
where
    E: Executor<'e, Database = Any>,
{
    sqlx::query("UPDATE vault_state SET key_check = $1 WHERE id = 1")
        .bind(key_check)
        .execute(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_are_fixed_width_utc() {
        let t = datetime!(2026-03-04 05:06:07.5 +02:00);
        let s = format_ts(t);
        assert_eq!(s, "2026-03-04T03:06:07.500000Z");
        assert_eq!(parse_ts(&s).unwrap(), t);
        assert_eq!(
            parse_ts("2026-03-04T03:06:07Z").unwrap(),
            datetime!(2026-03-04 03:06:07 UTC)
        );
        assert!(parse_ts("yesterday").is_err());
        let n = now();
        assert_eq!(parse_ts(&format_ts(n)).unwrap(), n);
    }
}
