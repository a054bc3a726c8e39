//! `gatehouse recordings`.
use super::RecordingsCmd;
use crate::config::Config;

pub async fn run(_config: Config, _cmd: RecordingsCmd) -> anyhow::Result<i32> {
    Err(super::Exit::new(1, "recordings: not implemented yet").into())
}
