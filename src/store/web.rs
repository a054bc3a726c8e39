//! The review console's tables (migration 0006): one-time login links,
//! browser sessions, the paginated sessions list, and kill reasons.
//!
//! Tokens never reach the database in the clear: callers pass the SHA-256
//! of the token (hex), so a copy of the database opens no console session.

use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::sessions::{SESSION_COLUMNS, SessionReview, session_from_row};
use super::{Ctx, SessionRow, Store, StoreError, get, get_opt_ts, get_ts, ts_text};

/// What redeeming a link found. Only `Ok` logs anyone in; the others say
/// why not, for the audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRedemption {
    Ok(String),
    Unknown,
    Used(String),
    Expired(String),
}

/// A browser session row.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSessionRow {
    pub user: String,
    pub csrf: String,
    pub created_at: OffsetDateTime,
    pub last_seen: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
}

/// The sessions list's filters; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub user: Option<String>,
    pub server: Option<String>,
    pub account: Option<String>,
    /// Started at or after.
    pub from: Option<OffsetDateTime>,
    /// Started before.
    pub to: Option<OffsetDateTime>,
    pub recorded: Option<bool>,
    pub under_grant: Option<bool>,
    pub live: Option<bool>,
    /// Keyset cursor: only sessions strictly older than this
    /// `(started_at, id)`, as returned in [`SessionPage::next`].
    pub before: Option<(OffsetDateTime, String)>,
    /// Case-insensitive prefixes of the user, server and account (the
    /// console's filters; exact names go in `user`, `server`, `account`,
    /// which walk their indexes).
    pub user_prefix: Option<String>,
    pub server_prefix: Option<String>,
    pub account_prefix: Option<String>,
    /// Only sessions to a target (`mode` set): no command-mode calls, no
    /// refused logins.
    pub targets_only: bool,
    /// Only recorded sessions in this review state (migration 0022).
    pub review: Option<SessionReview>,
}

/// The order of [`Store::sessions_by_duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationOrder {
    Longest,
    Shortest,
}

/// One page of the sessions list, newest first.
#[derive(Debug, Clone)]
pub struct SessionPage {
    pub rows: Vec<SessionRow>,
    /// The cursor for the next page, when there may be one.
    pub next: Option<(OffsetDateTime, String)>,
}

/// One page of the sessions list by duration.
#[derive(Debug, Clone)]
pub struct DurationPage {
    /// Each session with its duration in milliseconds (the stored one, or
    /// up to `now` while live): the cursor of a page that ends there.
    pub rows: Vec<(i64, SessionRow)>,
    /// The cursor for the next page (the last row's duration in
    /// milliseconds, live ones up to `now`, and id), when there may be one.
    pub next: Option<(i64, String)>,
}

/// A WHERE clause being built: conditions joined with AND, and the values
/// bound to their `$N` placeholders in order. Only fixed SQL text goes into
/// conditions; every value is bound.
#[derive(Default)]
struct Where {
    conds: Vec<String>,
    binds: Vec<String>,
}

impl Where {
    /// Adds a value and returns its placeholder.
    fn bind(&mut self, v: String) -> String {
        self.binds.push(v);
        format!("${}", self.binds.len())
    }
    fn cond(&mut self, c: String) {
        self.conds.push(c);
    }
    fn clause(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conds.join(" AND "))
        }
    }
}

/// `v` lower-cased, with LIKE's wildcards and the escape character
/// escaped, then `%`: a case-insensitive prefix pattern.
fn like_prefix(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    for c in v.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The list's SQL (fetching `limit + 1` rows, to know whether there is a
/// next page) and its bound values.
fn page_query(f: &SessionFilter, limit: usize) -> Result<(String, Vec<String>), StoreError> {
    let mut w = Where::default();
    conditions(f, &mut w)?;
    let where_ = w.clause();
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions{where_} \
             ORDER BY started_at DESC, id DESC LIMIT {}",
        limit + 1
    );
    Ok((sql, w.binds))
}

/// The ended sessions of the list by duration: the SQL (`limit + 1`
/// rows, after the cursor `after`) and its binds. One index range walked
/// in order (`sessions_duration`, or `sessions_user_duration` /
/// `sessions_server_duration` for one user or server, migration 0020):
/// no sort of the matching rows, so a page costs what the first one does.
fn duration_query(
    f: &SessionFilter,
    order: DurationOrder,
    after: Option<&(i64, String)>,
    limit: usize,
) -> Result<(String, Vec<String>), StoreError> {
    let mut w = Where::default();
    conditions(f, &mut w)?;
    w.cond("duration_ms IS NOT NULL".into());
    let (dir, cmp) = match order {
        DurationOrder::Longest => ("DESC", "<"),
        DurationOrder::Shortest => ("ASC", ">"),
    };
    if let Some((ms, id)) = after {
        // A row value, as the start-time cursor: both backends walk the
        // index from the cursor on. The cast keeps the bound text a number.
        let (a, b) = (w.bind(ms.to_string()), w.bind(id.clone()));
        w.cond(format!(
            "(duration_ms, id) {cmp} (CAST({a} AS BIGINT), {b})"
        ));
    }
    let where_ = w.clause();
    let sql = format!(
        "SELECT {SESSION_COLUMNS}, duration_ms FROM sessions{where_} \
         ORDER BY duration_ms {dir}, id {dir} LIMIT {}",
        limit + 1
    );
    Ok((sql, w.binds))
}

/// The live sessions of the list by duration (their duration grows, so
/// no index orders them): `ended_at IS NULL` is one range of
/// `sessions_ended`, as many rows as sessions are live, at most
/// [`MAX_LIVE_BY_DURATION`].
fn live_query(f: &SessionFilter) -> Result<(String, Vec<String>), StoreError> {
    let mut w = Where::default();
    conditions(f, &mut w)?;
    w.cond("ended_at IS NULL".into());
    let where_ = w.clause();
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions{where_} ORDER BY started_at, id LIMIT {}",
        MAX_LIVE_BY_DURATION
    );
    Ok((sql, w.binds))
}

/// Most live sessions the list by duration merges in (beyond that, the
/// longest-running ones are those listed).
pub const MAX_LIVE_BY_DURATION: usize = 1000;

/// The filters of `f` as conditions of `w`.
fn conditions(f: &SessionFilter, w: &mut Where) -> Result<(), StoreError> {
    if let Some(u) = &f.user {
        let p = w.bind(u.clone());
        w.cond(format!("username = {p}"));
    }
    if let Some(s) = &f.server {
        let p = w.bind(s.clone());
        w.cond(format!("server = {p}"));
    }
    if let Some(a) = &f.account {
        let p = w.bind(a.clone());
        w.cond(format!("account = {p}"));
    }
    for (col, prefix) in [
        ("username", &f.user_prefix),
        ("server", &f.server_prefix),
        ("account", &f.account_prefix),
    ] {
        if let Some(v) = prefix {
            let p = w.bind(like_prefix(v));
            w.cond(format!("lower({col}) LIKE {p} ESCAPE '\\'"));
        }
    }
    if f.targets_only {
        // A ProxyJump is a command-mode login (no server, no mode) that
        // reached a target: its `jump.open` event keeps it in the list.
        w.cond(
            "(mode IS NOT NULL OR EXISTS (SELECT 1 FROM audit_events j \
             WHERE j.session_id = sessions.id AND j.kind = 'jump.open'))"
                .into(),
        );
    }
    if let Some(t) = f.from {
        let p = w.bind(ts_text(t)?);
        w.cond(format!("started_at >= {p}"));
    }
    if let Some(t) = f.to {
        let p = w.bind(ts_text(t)?);
        w.cond(format!("started_at < {p}"));
    }
    if let Some((t, id)) = &f.before {
        // A row value: both backends walk the index from the cursor on,
        // where `a < x OR (a = x AND b < y)` has SQLite scan from the top.
        let (a, b) = (w.bind(ts_text(*t)?), w.bind(id.clone()));
        w.cond(format!("(started_at, id) < ({a}, {b})"));
    }
    match f.recorded {
        Some(true) => w.cond("recorded <> 0".into()),
        Some(false) => w.cond("recorded = 0".into()),
        None => {}
    }
    match f.under_grant {
        Some(true) => w.cond("grant_id IS NOT NULL".into()),
        Some(false) => w.cond("grant_id IS NULL".into()),
        None => {}
    }
    match f.live {
        Some(true) => w.cond("ended_at IS NULL".into()),
        Some(false) => w.cond("ended_at IS NOT NULL".into()),
        None => {}
    }
    if let Some(r) = f.review {
        // The state as a literal (one of three fixed words): "unreviewed"
        // is then the partial index of migration 0022.
        w.cond(format!("review = '{}'", r.as_str()));
    }
    Ok(())
}

impl Store {
    pub async fn web_link_insert(
        &self,
        token_hash: &str,
        user: &str,
        now: OffsetDateTime,
        expires: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO web_links (token_hash, username, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(token_hash)
        .bind(user)
        .bind(ts_text(now)?)
        .bind(ts_text(expires)?)
        .execute(self.pool())
        .await
        .ctx("store a login link")?;
        // Links are tiny, but nothing needs one an hour past its expiry.
        let horizon = ts_text(now - time::Duration::hours(1))?;
        sqlx::query("DELETE FROM web_links WHERE expires_at < $1")
            .bind(horizon)
            .execute(self.pool())
            .await
            .ctx("prune login links")?;
        Ok(())
    }

    /// Marks the link used if it is unused and unexpired. The UPDATE is
    /// the decision, so two nodes redeeming one link at once cannot both
    /// win.
    pub async fn web_link_redeem(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<LinkRedemption, StoreError> {
        let now_t = ts_text(now)?;
        let won = sqlx::query(
            "UPDATE web_links SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(&now_t)
        .bind(token_hash)
        .bind(&now_t)
        .execute(self.pool())
        .await
        .ctx("redeem a login link")?
        .rows_affected()
            == 1;
        let row = sqlx::query("SELECT username, used_at FROM web_links WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await
            .ctx("read a login link")?;
        let Some(row) = row else {
            return Ok(LinkRedemption::Unknown);
        };
        let user: String = get(&row, "username")?;
        let used: Option<String> = get(&row, "used_at")?;
        Ok(if won {
            LinkRedemption::Ok(user)
        } else if used.is_some() {
            LinkRedemption::Used(user)
        } else {
            LinkRedemption::Expired(user)
        })
    }

    pub async fn web_session_insert(
        &self,
        token_hash: &str,
        user: &str,
        csrf: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let now_text = ts_text(now)?;
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, username, csrf, created_at, last_seen, ended_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(token_hash)
        .bind(user)
        .bind(csrf)
        .bind(&now_text)
        .bind(&now_text)
        .execute(self.pool())
        .await
        .ctx("store a console session")?;
        // Rows past the absolute lifetime (12 h) open nothing; a day on,
        // they go.
        let horizon = ts_text(now - time::Duration::days(1))?;
        sqlx::query("DELETE FROM web_sessions WHERE created_at < $1")
            .bind(horizon)
            .execute(self.pool())
            .await
            .ctx("prune console sessions")?;
        Ok(())
    }

    pub async fn web_session_get(
        &self,
        token_hash: &str,
    ) -> Result<Option<WebSessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT username, csrf, created_at, last_seen, ended_at FROM web_sessions \
             WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await
        .ctx("read a console session")?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(WebSessionRow {
            user: get(&row, "username")?,
            csrf: get(&row, "csrf")?,
            created_at: get_ts(&row, "created_at")?,
            last_seen: get_ts(&row, "last_seen")?,
            ended_at: get_opt_ts(&row, "ended_at")?,
        }))
    }

    pub async fn web_session_touch(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE web_sessions SET last_seen = $1 WHERE token_hash = $2")
            .bind(ts_text(now)?)
            .bind(token_hash)
            .execute(self.pool())
            .await
            .ctx("touch a console session")?;
        Ok(())
    }

    pub async fn web_session_end(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE web_sessions SET ended_at = $1 WHERE token_hash = $2 AND ended_at IS NULL",
        )
        .bind(ts_text(now)?)
        .bind(token_hash)
        .execute(self.pool())
        .await
        .ctx("end a console session")?;
        Ok(())
    }

    /// Runs one of this file's built queries with its text binds, in
    /// order.
    async fn fetch_bound(
        &self,
        sql: String,
        binds: Vec<String>,
        what: &'static str,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        q.fetch_all(self.pool()).await.ctx(what)
    }

    /// One page of sessions matching `f`, newest first, at most `limit`.
    /// Keyset pagination over `(started_at, id)` walks one index range
    /// (`sessions_user_started`, `sessions_server_started` or
    /// `sessions_started_id`) however deep the page, so the cost does not
    /// grow with the number of sessions.
    pub async fn sessions_page(
        &self,
        f: &SessionFilter,
        limit: usize,
    ) -> Result<SessionPage, StoreError> {
        let limit = limit.clamp(1, 500);
        let (sql, binds) = page_query(f, limit)?;
        let rows = self.fetch_bound(sql, binds, "list sessions page").await?;
        let mut rows = rows
            .iter()
            .map(session_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(|r| (r.started_at, r.id.clone()))
        } else {
            None
        };
        Ok(SessionPage { rows, next })
    }

    /// One page of sessions matching `f` by duration, live ones up to
    /// `now`, after the keyset cursor `after` (`(duration in ms, id)`, as
    /// returned in [`DurationPage::next`]); `f.before` is ignored. Ended
    /// sessions come from one index range walked in order
    /// ([`duration_query`]); live ones are merged in from the `ended_at IS
    /// NULL` range, their duration up to `now`. A live session's duration
    /// grows while one pages: one that grows past the cursor between two
    /// pages is on neither (the list by start shows every session).
    pub async fn sessions_by_duration(
        &self,
        f: &SessionFilter,
        order: DurationOrder,
        now: OffsetDateTime,
        after: Option<&(i64, String)>,
        limit: usize,
    ) -> Result<DurationPage, StoreError> {
        let limit = limit.clamp(1, 500);
        let f = SessionFilter {
            before: None,
            ..f.clone()
        };
        let mut found: Vec<(i64, SessionRow)> = Vec::new();
        if f.live != Some(true) {
            let (sql, binds) = duration_query(&f, order, after, limit)?;
            let rows = self
                .fetch_bound(sql, binds, "list sessions by duration")
                .await?;
            for r in &rows {
                found.push((get(r, "duration_ms")?, session_from_row(r)?));
            }
        }
        if f.live != Some(false) {
            let (sql, binds) = live_query(&f)?;
            let rows = self
                .fetch_bound(sql, binds, "list live sessions by duration")
                .await?;
            for r in &rows {
                let row = session_from_row(r)?;
                let ms = i64::try_from((now - row.started_at).whole_milliseconds())
                    .unwrap_or(i64::MAX)
                    .max(0);
                let key = (ms, row.id.clone());
                let past = after.is_some_and(|c| match order {
                    DurationOrder::Longest => key >= *c,
                    DurationOrder::Shortest => key <= *c,
                });
                if !past {
                    found.push((ms, row));
                }
            }
        }
        found.sort_by(|(a, x), (b, y)| {
            let k = (a, &x.id).cmp(&(b, &y.id));
            match order {
                DurationOrder::Longest => k.reverse(),
                DurationOrder::Shortest => k,
            }
        });
        let more = found.len() > limit;
        found.truncate(limit);
        let next = if more {
            found.last().map(|(ms, r)| (*ms, r.id.clone()))
        } else {
            None
        };
        Ok(DurationPage { rows: found, next })
    }

    /// The query plan of the ended part of the list by duration
    /// ([`duration_query`]), one line per step; see [`Store::plan`].
    pub async fn sessions_by_duration_plan(
        &self,
        f: &SessionFilter,
        order: DurationOrder,
        after: Option<&(i64, String)>,
    ) -> Result<Vec<String>, StoreError> {
        let (sql, binds) = duration_query(f, order, after, 50)?;
        self.plan(&sql, &binds).await
    }

    /// The plan of `sql` (its `$N` bound to `binds`), one line per step:
    /// SQLite's `EXPLAIN QUERY PLAN` details, or PostgreSQL's `EXPLAIN`
    /// lines with sequential scans and sorts disabled for the one query,
    /// so that the plan shows an index when one can serve the query (on a
    /// test's small tables the planner would rightly prefer a scan). For
    /// the tests that pin the console's plans, and the benches.
    pub async fn plan(&self, sql: &str, binds: &[String]) -> Result<Vec<String>, StoreError> {
        let (explain, column) = match self.backend() {
            super::Backend::Sqlite => ("EXPLAIN QUERY PLAN", "detail"),
            super::Backend::Postgres => ("EXPLAIN", "QUERY PLAN"),
        };
        let mut tx = self.pool().begin().await.ctx("plan a query")?;
        if self.backend() == super::Backend::Postgres {
            for set in [
                "SET LOCAL enable_seqscan = off",
                "SET LOCAL enable_sort = off",
            ] {
                sqlx::query(set)
                    .execute(&mut *tx)
                    .await
                    .ctx("plan a query")?;
            }
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("{explain} {sql}")));
        for b in binds {
            q = q.bind(b.clone());
        }
        let rows = q.fetch_all(&mut *tx).await.ctx("plan a query")?;
        tx.rollback().await.ctx("plan a query")?;
        rows.iter().map(|r| get::<String>(r, column)).collect()
    }

    /// Like [`Store::request_kill`], with the reason the user is shown.
    pub async fn request_kill_with_reason(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET kill_requested = 1, kill_reason = $1 \
             WHERE id = $2 AND ended_at IS NULL",
        )
        .bind(reason)
        .bind(id)
        .execute(self.pool())
        .await
        .ctx("request session kill")?;
        Ok(done.rows_affected() > 0)
    }

    /// The reason given with a kill request, if any.
    pub async fn kill_reason(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT kill_reason FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .ctx("read kill reason")?;
        match row {
            Some(r) => get(&r, "kill_reason"),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = Store::open(&url, "n1").await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_link_works_once_and_not_after_it_expires() {
        let (_d, s) = store().await;
        let now = datetime!(2026-03-10 12:00 UTC);
        let later = now + time::Duration::seconds(60);
        s.web_link_insert("h1", "alice", now, later).await.unwrap();
        s.web_link_insert("h2", "bob", now, later).await.unwrap();
        let at = now + time::Duration::seconds(5);
        assert_eq!(
            s.web_link_redeem("h1", at).await.unwrap(),
            LinkRedemption::Ok("alice".into())
        );
        assert_eq!(
            s.web_link_redeem("h1", at).await.unwrap(),
            LinkRedemption::Used("alice".into())
        );
        assert_eq!(
            s.web_link_redeem("h2", later).await.unwrap(),
            LinkRedemption::Expired("bob".into())
        );
        assert_eq!(
            s.web_link_redeem("nope", at).await.unwrap(),
            LinkRedemption::Unknown
        );
        s.close().await;
    }

    fn session(id: &str, user: &str, minute: u8) -> SessionRow {
        SessionRow {
            id: id.into(),
            user: user.into(),
            server: Some("web1".into()),
            account: Some("root".into()),
            source: "127.0.0.1".into(),
            node: "n1".into(),
            started_at: datetime!(2026-03-10 12:00 UTC)
                .replace_minute(minute)
                .unwrap(),
            ended_at: None,
            mode: None,
            grant_id: None,
            recorded: minute.is_multiple_of(2),
            bytes_up: 0,
            bytes_down: 0,
            exit_status: None,
            end_reason: None,
            flagged: None,
            review: None,
        }
    }

    #[tokio::test]
    async fn pages_follow_the_keyset_newest_first_with_filters() {
        let (_d, s) = store().await;
        // Two sessions share a start time: the id breaks the tie.
        for (id, user, m) in [
            ("a", "alice", 1),
            ("b", "bob", 2),
            ("c", "alice", 3),
            ("d", "alice", 3),
        ] {
            s.session_start(&session(id, user, m)).await.unwrap();
        }
        let mut f = SessionFilter::default();
        let mut seen = Vec::new();
        loop {
            let page = s.sessions_page(&f, 1).await.unwrap();
            seen.extend(page.rows.iter().map(|r| r.id.clone()));
            match page.next {
                Some(c) => f.before = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, ["d", "c", "b", "a"]);
        let alice = SessionFilter {
            user: Some("alice".into()),
            recorded: Some(false),
            ..Default::default()
        };
        let ids: Vec<String> = s
            .sessions_page(&alice, 50)
            .await
            .unwrap()
            .rows
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["d", "c", "a"]);
        s.close().await;
    }

    /// The list's query walks an index in order, with no sort of the
    /// whole table, so a deep page costs what the first one does.
    #[tokio::test]
    async fn the_list_walks_an_index_on_sqlite() {
        let (_d, s) = store().await;
        for (filter, index) in [
            (SessionFilter::default(), "sessions_started_id"),
            (
                SessionFilter {
                    user: Some("alice".into()),
                    ..Default::default()
                },
                "sessions_user_started",
            ),
            (
                SessionFilter {
                    before: Some((datetime!(2026-03-10 12:00 UTC), "x".into())),
                    ..Default::default()
                },
                "sessions_started_id (",
            ),
        ] {
            let (sql, binds) = page_query(&filter, 50).unwrap();
            let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
            for b in binds {
                q = q.bind(b);
            }
            let plan: Vec<String> = q
                .fetch_all(s.pool())
                .await
                .unwrap()
                .iter()
                .map(|r| get::<String>(r, "detail").unwrap())
                .collect();
            assert!(
                plan.iter().any(|d| d.contains(index))
                    && !plan.iter().any(|d| d.contains("TEMP B-TREE")),
                "{plan:?}"
            );
        }
        s.close().await;
    }
}
