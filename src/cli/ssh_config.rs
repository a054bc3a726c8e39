//! `gatehouse ssh-config USER`.
use crate::config::Config;

pub async fn run(
    _config: Config,
    _user: &str,
    _bastion: Option<&str>,
    _json: bool,
) -> anyhow::Result<i32> {
    Err(super::Exit::new(1, "ssh-config: not implemented yet").into())
}
