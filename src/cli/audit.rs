//! `gatehouse audit`.
use super::AuditCmd;
use crate::config::Config;

pub async fn run(_config: Config, _cmd: AuditCmd) -> anyhow::Result<i32> {
    Err(super::Exit::new(1, "audit: not implemented yet").into())
}
