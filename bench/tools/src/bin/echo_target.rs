//! A small SSH target for the 10,000-session bench (issue 22, item 3):
//! accepts any public key, gives every session channel a PTY and a
//! "shell" that echoes each byte it receives, like a terminal's line
//! discipline with echo on. One process, one tokio runtime, no child
//! processes: the target's cost stays small beside the bastion's, where
//! 10,000 sshd + bash pairs would drown it.
//!
//! Usage: echo_target --listen 127.0.0.1:PORT --host-key PATH (an OpenSSH
//! private key file, e.g. from `ssh-keygen -t ed25519 -N ''`).
//! Prints `listening` on stdout once the socket is bound.

use std::sync::Arc;
use std::time::Duration;

use russh::server::{Auth, Msg, Server as _, Session};
use russh::{Channel, ChannelId};

#[derive(Clone)]
struct Target;

impl russh::server::Server for Target {
    type Handler = Target;
    fn new_client(&mut self, _: Option<std::net::SocketAddr>) -> Target {
        Target
    }
}

impl russh::server::Handler for Target {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        _user: &str,
        _key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        session.data(channel, b"$ ".to_vec())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Ctrl-D ends the "shell" with status 0.
        if data.contains(&4) {
            session.exit_status_request(channel, 0)?;
            session.eof(channel)?;
            return session.close(channel);
        }
        session.data(channel, data.to_vec())
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen").ok_or("--listen ADDR is required")?;
    let key_path = arg(&args, "--host-key").ok_or("--host-key PATH is required")?;
    let key = russh::keys::load_secret_key(&key_path, None)?;
    let config = russh::server::Config {
        keys: vec![key],
        inactivity_timeout: None,
        auth_rejection_time: Duration::from_millis(10),
        auth_rejection_time_initial: Some(Duration::ZERO),
        nodelay: true,
        ..Default::default()
    };
    let socket = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening");
    Target.run_on_socket(Arc::new(config), &socket).await?;
    Ok(())
}
