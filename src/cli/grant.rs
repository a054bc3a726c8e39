//! `gatehouse grant`.
use super::GrantCmd;
use crate::config::Config;

pub async fn run(_config: Config, _cmd: GrantCmd) -> anyhow::Result<i32> {
    Err(super::Exit::new(1, "grant: not implemented yet").into())
}
