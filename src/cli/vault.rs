//! `gatehouse vault`.
use super::VaultCmd;
use crate::config::Config;

pub async fn run(_config: Config, _cmd: VaultCmd) -> anyhow::Result<i32> {
    Err(super::Exit::new(1, "vault: not implemented yet").into())
}
