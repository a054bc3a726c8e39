//! The shared channel vocabulary at the bottom of `server/`: what a client
//! asks of a channel ([`ChanEvent`]), what a session runs ([`Start`],
//! [`PtyReq`]), the client's write half ([`ClientWriter`]) and the two ways
//! a channel is refused ([`refuse_open`], [`refuse`]).
//!
//! Imports nothing of `server/`: the flow control, the pump, the forwards,
//! command mode and the dispatcher all build on it.

use bytes::Bytes;
use russh::server::{ChannelOpenHandle, Msg};
use russh::{ChannelOpenFailure, ChannelWriteHalf, Pty, Sig};

/// What the client asked of a channel, in order.
#[derive(Debug)]
pub enum ChanEvent {
    Pty {
        term: String,
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
        modes: Vec<(Pty, u32)>,
    },
    Env(String, String),
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
    Data(Bytes),
    WindowChange {
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
    },
    Signal(Sig),
    Eof,
    Close,
}

/// What a session channel runs, once known.
#[derive(Debug, Clone)]
pub enum Start {
    Shell,
    Exec(String),
    Subsystem(String),
}

impl Start {
    pub fn kind(&self) -> &'static str {
        match self {
            Start::Shell => "shell",
            Start::Exec(_) => "exec",
            Start::Subsystem(_) => "subsystem",
        }
    }
}

pub struct PtyReq {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
    pub pix_width: u32,
    pub pix_height: u32,
    pub modes: Vec<(Pty, u32)>,
}

pub type ClientWriter = ChannelWriteHalf<Msg>;

/// Refuses a channel open with a reason the client prints: code 1
/// (administratively prohibited) for policy refusals, shown as
/// `gatehouse: access denied: REASON`; code 2 (connect failed) when the
/// destination could not be reached, shown as `gatehouse: REASON`.
pub async fn refuse_open(reply: ChannelOpenHandle, denied: bool, reason: String) {
    let (code, reason) = if denied {
        (1, format!("gatehouse: access denied: {reason}"))
    } else {
        (2, format!("gatehouse: {reason}"))
    };
    reply
        .reject(ChannelOpenFailure::Other { code, reason })
        .await;
}

/// Writes a line to the client's stderr, then exit status, EOF and close.
/// Bounded in time: a client that stopped reading must not keep the task.
pub async fn refuse(write: &ClientWriter, pty: bool, line: &str, status: u32) {
    let nl = if pty { "\r\n" } else { "\n" };
    let text = format!("{line}{nl}");
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let _ = write.extended_data_bytes(1, Bytes::from(text)).await;
        let _ = write.exit_status(status).await;
        let _ = write.eof().await;
        let _ = write.close().await;
    })
    .await;
}
