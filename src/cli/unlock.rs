//! `gatehouse unlock USER`.
use crate::config::Config;

pub async fn run(_config: Config, _user: &str) -> anyhow::Result<i32> {
    Err(super::Exit::new(1, "unlock: not implemented yet").into())
}
