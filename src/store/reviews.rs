//! Access reviews (contract section 14): certifications and suspensions of
//! (user, server, account) entitlements, shared by every node. Both tables
//! only grow; an entitlement's state is its latest certification and its
//! latest suspension ([`ReviewMark`]), which `policy::entitlements` and
//! the login decision read. Writing the `access.*` events is the caller's
//! (`cli::access`, the console), after the rows.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::{Ctx, Store, StoreError, get, get_ts, ts_text};
use crate::policy::entitlements::ReviewMark;

/// One entitlement named by a certification or suspension.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReviewKey {
    pub user: String,
    pub server: String,
    pub account: String,
}

impl Store {
    /// Certifies each of `keys` at `at` by `by`, in one transaction: all
    /// or none. A certification lifts an earlier suspension.
    pub async fn review_certify(
        &self,
        keys: &[ReviewKey],
        by: &str,
        note: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.review_append(
            "INSERT INTO access_certifications \
             (username, server, account, certified_at, certified_by, note) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            keys,
            by,
            note,
            at,
            ("certify entitlement", "commit certification"),
        )
        .await
    }

    /// Suspends each of `keys` at `at` by `by`, in one transaction.
    pub async fn review_suspend(
        &self,
        keys: &[ReviewKey],
        by: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.review_append(
            "INSERT INTO access_suspensions \
             (username, server, account, suspended_at, suspended_by, reason) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            keys,
            by,
            Some(reason),
            at,
            ("suspend entitlement", "commit suspension"),
        )
        .await
    }

    /// One row per key through `insert` (user, server, account, at, by,
    /// text), all in one transaction: both review tables only grow.
    async fn review_append(
        &self,
        insert: &'static str,
        keys: &[ReviewKey],
        by: &str,
        text: Option<&str>,
        at: OffsetDateTime,
        (row, commit): (&'static str, &'static str),
    ) -> Result<(), StoreError> {
        let at = ts_text(at)?;
        let mut tx = self.begin_write().await?;
        for k in keys {
            sqlx::query(insert)
                .bind(&k.user)
                .bind(&k.server)
                .bind(&k.account)
                .bind(&at)
                .bind(by)
                .bind(text)
                .execute(&mut *tx)
                .await
                .ctx(row)?;
        }
        tx.commit().await.ctx(commit)?;
        Ok(())
    }

    /// The latest certification and suspension of every entitlement ever
    /// reviewed (of `user` only, when given), sorted by user, server,
    /// account. Rows of entitlements that no longer exist are returned
    /// too; callers match them against the current entitlements.
    ///
    /// Only the latest row of each table per entitlement is read (latest
    /// by time, then by id), picked in SQL: the histories are not read
    /// whole.
    pub async fn review_marks(&self, user: Option<&str>) -> Result<Vec<ReviewMark>, StoreError> {
        let certs = self
            .latest_marks(
                "access_certifications",
                "certified_at, certified_by, note",
                "certified_at",
                user,
            )
            .await
            .ctx("read certifications")?;
        let susp = self
            .latest_marks(
                "access_suspensions",
                "suspended_at, suspended_by, reason",
                "suspended_at",
                user,
            )
            .await
            .ctx("read suspensions")?;

        let mut marks: BTreeMap<ReviewKey, ReviewMark> = BTreeMap::new();
        // One row of each table per entitlement: its latest.
        for row in &certs {
            let m = entry(&mut marks, row)?;
            m.certified_at = Some(get_ts(row, "certified_at")?);
            m.certified_by = Some(get(row, "certified_by")?);
            m.note = get(row, "note")?;
        }
        for row in &susp {
            let m = entry(&mut marks, row)?;
            m.suspended_at = Some(get_ts(row, "suspended_at")?);
            m.suspended_by = Some(get(row, "suspended_by")?);
            m.reason = Some(get(row, "reason")?);
        }
        Ok(marks.into_values().collect())
    }

    /// The latest row of `table` (one of the two review tables, by name)
    /// per (username, server, account), of `user` only when given: the
    /// first by `at` and `id` descending of each entitlement, by
    /// `ROW_NUMBER()`, which both backends have.
    async fn latest_marks(
        &self,
        table: &'static str,
        columns: &'static str,
        at: &'static str,
        user: Option<&str>,
    ) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
        let filter = if user.is_some() {
            " WHERE username = $1"
        } else {
            ""
        };
        let sql = format!(
            "SELECT username, server, account, {columns} FROM (\
             SELECT username, server, account, {columns}, ROW_NUMBER() OVER (\
             PARTITION BY username, server, account ORDER BY {at} DESC, id DESC) AS latest \
             FROM {table}{filter}) marks WHERE latest = 1"
        );
        let q = sqlx::query(sqlx::AssertSqlSafe(sql));
        match user {
            Some(u) => q.bind(u),
            None => q,
        }
        .fetch_all(self.pool())
        .await
    }
}

/// The mark of the row's entitlement, created empty on first sight.
fn entry<'m>(
    marks: &'m mut BTreeMap<ReviewKey, ReviewMark>,
    row: &sqlx::any::AnyRow,
) -> Result<&'m mut ReviewMark, StoreError> {
    let k = ReviewKey {
        user: get(row, "username")?,
        server: get(row, "server")?,
        account: get(row, "account")?,
    };
    Ok(marks.entry(k.clone()).or_insert_with(|| ReviewMark {
        user: k.user,
        server: k.server,
        account: k.account,
        ..ReviewMark::default()
    }))
}
