//! `gatehouse sessions`.
use super::SessionsCmd;
use crate::config::Config;

pub async fn run(_config: Config, _cmd: SessionsCmd) -> anyhow::Result<i32> {
    Err(super::Exit::new(1, "sessions: not implemented yet").into())
}
