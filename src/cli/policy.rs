//! `gatehouse policy check|explain`.
use super::PolicyCmd;
use crate::config::Config;

pub async fn run(_config: Config, _cmd: PolicyCmd) -> anyhow::Result<i32> {
    Err(super::Exit::new(1, "policy: not implemented yet").into())
}
