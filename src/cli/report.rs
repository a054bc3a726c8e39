//! `gatehouse report`.
use super::ReportCmd;
use crate::config::Config;

pub async fn run(_config: Config, _cmd: ReportCmd) -> anyhow::Result<i32> {
    Err(super::Exit::new(1, "report: not implemented yet").into())
}
