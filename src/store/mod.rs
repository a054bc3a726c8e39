//! The database: the audit hash chain, sessions, grants, lockouts and seen
//! sources, on SQLite (embedded default) or PostgreSQL (several bastion
//! nodes sharing one state). Everything the bastion remembers lives here.

use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditRecord};
use crate::grants::Grant;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(String),
    #[error("not implemented")]
    NotImplemented,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One row per SSH session (a login to a target, or a command-mode login).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionRow {
    pub id: String,
    pub user: String,
    pub server: Option<String>,
    pub account: Option<String>,
    pub source: String,
    pub node: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub mode: Option<String>,
    pub grant_id: Option<i64>,
    pub recorded: bool,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub exit_status: Option<i64>,
    pub end_reason: Option<String>,
}

/// Result of checking the audit chain.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChainReport {
    pub events: u64,
    /// `None` when intact; else the first event that was changed, inserted
    /// or removed, and what is wrong.
    pub first_bad: Option<ChainFault>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChainFault {
    pub node: String,
    pub seq: i64,
    pub id: Option<i64>,
    pub problem: String,
}

#[derive(Clone)]
pub struct Store {}

impl Store {
    pub async fn open(url: &str, node: &str) -> Result<Store, StoreError> {
        let _ = (url, node);
        Err(StoreError::NotImplemented)
    }
    pub fn backend(&self) -> Backend {
        Backend::Sqlite
    }
    pub async fn audit(&self, ev: &AuditEvent) -> Result<AuditRecord, StoreError> {
        let _ = ev;
        Err(StoreError::NotImplemented)
    }
    pub async fn export(
        &self,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let _ = (since, until);
        Err(StoreError::NotImplemented)
    }
    pub async fn verify_chain(&self) -> Result<ChainReport, StoreError> {
        Err(StoreError::NotImplemented)
    }
    pub async fn session_start(&self, s: &SessionRow) -> Result<(), StoreError> {
        let _ = s;
        Err(StoreError::NotImplemented)
    }
    pub async fn session_end(
        &self,
        id: &str,
        ended_at: OffsetDateTime,
        bytes_up: i64,
        bytes_down: i64,
        exit_status: Option<i64>,
        reason: &str,
    ) -> Result<(), StoreError> {
        let _ = (id, ended_at, bytes_up, bytes_down, exit_status, reason);
        Err(StoreError::NotImplemented)
    }
    pub async fn sessions_live(&self) -> Result<Vec<SessionRow>, StoreError> {
        Err(StoreError::NotImplemented)
    }
    pub async fn request_kill(&self, id: &str) -> Result<bool, StoreError> {
        let _ = id;
        Err(StoreError::NotImplemented)
    }
    pub async fn kill_requests(&self, node: &str) -> Result<Vec<String>, StoreError> {
        let _ = node;
        Err(StoreError::NotImplemented)
    }
    pub async fn auth_failure(&self, user: &str, now: OffsetDateTime) -> Result<u32, StoreError> {
        let _ = (user, now);
        Err(StoreError::NotImplemented)
    }
    pub async fn auth_success(&self, user: &str) -> Result<(), StoreError> {
        let _ = user;
        Err(StoreError::NotImplemented)
    }
    pub async fn lock_user(&self, user: &str, until: OffsetDateTime) -> Result<(), StoreError> {
        let _ = (user, until);
        Err(StoreError::NotImplemented)
    }
    pub async fn locked_until(&self, user: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        let _ = user;
        Err(StoreError::NotImplemented)
    }
    pub async fn unlock(&self, user: &str) -> Result<bool, StoreError> {
        let _ = user;
        Err(StoreError::NotImplemented)
    }
    pub async fn grants_for(&self, user: &str) -> Result<Vec<Grant>, StoreError> {
        let _ = user;
        Err(StoreError::NotImplemented)
    }
    pub async fn grant_insert(&self, g: &Grant) -> Result<i64, StoreError> {
        let _ = g;
        Err(StoreError::NotImplemented)
    }
    pub async fn grant_get(&self, id: i64) -> Result<Option<Grant>, StoreError> {
        let _ = id;
        Err(StoreError::NotImplemented)
    }
    pub async fn grant_update(&self, g: &Grant) -> Result<(), StoreError> {
        let _ = g;
        Err(StoreError::NotImplemented)
    }
    pub async fn grants_list(&self, user: Option<&str>) -> Result<Vec<Grant>, StoreError> {
        let _ = user;
        Err(StoreError::NotImplemented)
    }
    pub async fn grants_expire_due(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError> {
        let _ = now;
        Err(StoreError::NotImplemented)
    }
}
