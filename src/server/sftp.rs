//! SFTP audit: the file operations inside an SFTP channel, read from the
//! bytes passing through the bastion.
//!
//! [`SftpAudit`] parses SFTP version 3 (draft-ietf-secsh-filexfer-02, what
//! OpenSSH speaks, with OpenSSH's extensions) in both directions, from any
//! chunking: a packet may span chunks, a chunk may hold several packets. It
//! never changes the bytes; it returns [`SftpOp`]s to audit.
//!
//! An operation is reported once, when the server answers it, with the
//! answer ([`Status`]): an `Open` when the HANDLE (or the failing STATUS)
//! comes back, a `Remove` when its STATUS does, and so on. A `Close` carries
//! the bytes the server returned in DATA replies to READs on that handle
//! and the bytes of the WRITEs it acknowledged with OK. Requests still
//! unanswered, and files never closed, are reported by
//! [`SftpAudit::finish`] with [`Status::NoReply`] when the channel ends.
//! READs, WRITEs, STATs, READDIRs and REALPATHs are not reported one by
//! one.
//!
//! `SSH_FXP_SYMLINK`: OpenSSH's client and server send the target path
//! first and the link path second, the reverse of the draft (OpenSSH's
//! PROTOCOL, 4.1). The targets behind Gatehouse run OpenSSH's sftp-server,
//! so the first string is read as the target. Another server that follows
//! the draft would have the two swapped in the audit.
//!
//! Some clients pick SYMLINK's order from the server's identification
//! string (asyncssh: "OpenSSH" or "paramiko" in it; libssh: "OpenSSH_"),
//! and behind the bastion they see `SSH-2.0-Gatehouse`, not the target's
//! string: asyncssh then sends the draft's order and OpenSSH's
//! sftp-server makes the link point the other way. [`symlink_swap_needed`]
//! asks what the client sent given the bastion's string and what it would
//! have sent to the target directly; when the two differ,
//! [`SftpAudit::with_symlink_swap`] rewrites each SYMLINK request into the
//! order the client would have used directly ([`SymlinkSwap`]), so a link
//! made through the bastion points the way one made directly does. The
//! bastion keeps its own identification string: the rewrite is the
//! bastion's business, not the client's. Clients that use one order
//! whatever the server (OpenSSH's `sftp`, paramiko, libssh2) pass
//! unchanged, as does any client not named here.
//!
//! Paths are shown as UTF-8, invalid bytes replaced, and cut after
//! [`MAX_PATH`] bytes.
//!
//! Errors end the channel (the caller's part): a packet longer than
//! [`MAX_PACKET`], a malformed packet, a version other than 3 (the audit
//! could not read it), more than [`MAX_TRACKED`] requests in flight or
//! handles open. After an error every call returns it again.
//!
//! Layer: the bottom of `server/` (pure parsing); imports nothing of
//! `server/`.

mod op;
mod reply;
mod request;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::mem;

/// Largest packet accepted, not counting its 4-byte length: OpenSSH's own
/// limit (SFTP_MAX_MSG_LENGTH), so no real client or server is refused.
pub const MAX_PACKET: usize = 256 * 1024;
/// Requests in flight, and handles open, tracked at most (each).
pub const MAX_TRACKED: usize = 10_000;
/// Bytes of paths and handles held for tracking, at most.
const MAX_TRACKED_BYTES: usize = 4 * 1024 * 1024;
/// Longest path kept in an operation, in bytes.
pub const MAX_PATH: usize = 4096;
/// The draft's limit on handle strings.
const MAX_HANDLE: usize = 256;
const MAX_MESSAGE: usize = 256;
const MAX_EXT_NAME: usize = 64;

const FXP_INIT: u8 = 1;
const FXP_VERSION: u8 = 2;
const FXP_OPEN: u8 = 3;
const FXP_CLOSE: u8 = 4;
const FXP_READ: u8 = 5;
const FXP_WRITE: u8 = 6;
const FXP_SETSTAT: u8 = 9;
const FXP_FSETSTAT: u8 = 10;
const FXP_OPENDIR: u8 = 11;
const FXP_REMOVE: u8 = 13;
const FXP_MKDIR: u8 = 14;
const FXP_RMDIR: u8 = 15;
const FXP_RENAME: u8 = 18;
const FXP_SYMLINK: u8 = 20;
const FXP_STATUS: u8 = 101;
const FXP_HANDLE: u8 = 102;
const FXP_DATA: u8 = 103;
const FXP_NAME: u8 = 104;
const FXP_ATTRS: u8 = 105;
const FXP_EXTENDED: u8 = 200;
const FXP_EXTENDED_REPLY: u8 = 201;

const FXF_READ: u32 = 0x01;
const FXF_WRITE: u32 = 0x02;
const FXF_APPEND: u32 = 0x04;
const FXF_CREAT: u32 = 0x08;
const FXF_TRUNC: u32 = 0x10;
const FXF_EXCL: u32 = 0x20;

const FX_OK: u32 = 0;

/// Extensions that only read: not reported.
const READ_ONLY_EXTENSIONS: &[&[u8]] = &[
    b"statvfs@openssh.com",
    b"fstatvfs@openssh.com",
    b"limits@openssh.com",
    b"expand-path@openssh.com",
    b"home-directory",
    b"users-groups-by-id@openssh.com",
    b"fsync@openssh.com",
    b"check-file-name",
    b"check-file-handle",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SftpError {
    #[error("sftp packet of {0} bytes exceeds the limit of {MAX_PACKET}")]
    TooLarge(u32),
    #[error("malformed sftp packet: {0}")]
    Malformed(&'static str),
    #[error("sftp protocol version {0} cannot be audited (only version 3)")]
    Version(u32),
    #[error("too many sftp {0} tracked at once")]
    TooMany(&'static str),
}

/// The server's answer to an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// An SSH_FX_* code other than OK, with the server's message.
    Failed {
        code: u32,
        message: String,
    },
    /// The channel ended before the answer (or, for `Close`, before the
    /// client closed the file).
    NoReply,
}

impl Status {
    fn from_reply(code: u32, message: String) -> Status {
        if code == FX_OK {
            Status::Ok
        } else {
            Status::Failed { code, message }
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::NoReply => "no reply",
            Status::Failed { code, .. } => match code {
                1 => "eof",
                2 => "no such file",
                3 => "permission denied",
                4 => "failure",
                5 => "bad message",
                6 => "no connection",
                7 => "connection lost",
                8 => "unsupported",
                _ => "error",
            },
        }
    }
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    Open {
        path: String,
        read: bool,
        write: bool,
        create: bool,
        truncate: bool,
        append: bool,
        exclusive: bool,
    },
    /// A file handle closed (directory handles are not reported).
    Close {
        path: String,
        bytes_read: u64,
        bytes_written: u64,
    },
    Opendir {
        path: String,
    },
    Remove {
        path: String,
    },
    /// SSH_FXP_RENAME or posix-rename@openssh.com.
    Rename {
        from: String,
        to: String,
    },
    Mkdir {
        path: String,
    },
    Rmdir {
        path: String,
    },
    /// SETSTAT, FSETSTAT (the handle's path) or lsetstat@openssh.com.
    Setstat {
        path: String,
    },
    /// `link` made pointing at `target`.
    Symlink {
        link: String,
        target: String,
    },
    /// hardlink@openssh.com: `link` made as a new name of `target`.
    Link {
        link: String,
        target: String,
    },
    /// copy-data: the server copies between two open files.
    CopyData {
        from: String,
        to: String,
    },
    /// An extension request this module does not know: it may write.
    Extended {
        name: String,
    },
}

/// One audited operation and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpOp {
    pub kind: OpKind,
    pub status: Status,
}

/// A request waiting for its answer.
#[derive(Debug, Clone)]
enum Pending {
    Open {
        path: String,
        pflags: u32,
    },
    Opendir {
        path: String,
    },
    Close {
        handle: Vec<u8>,
    },
    Read {
        handle: Vec<u8>,
    },
    Write {
        handle: Vec<u8>,
        len: u64,
    },
    Fsetstat {
        handle: Vec<u8>,
    },
    CopyData {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    /// Complete as it is; only the status is missing.
    Op(OpKind),
}

impl Pending {
    /// Bytes held, for the tracking budget.
    fn cost(&self) -> usize {
        match self {
            Pending::Open { path, .. } | Pending::Opendir { path } => path.len(),
            Pending::Close { handle }
            | Pending::Read { handle }
            | Pending::Write { handle, .. }
            | Pending::Fsetstat { handle } => handle.len(),
            Pending::CopyData { from, to } => from.len() + to.len(),
            Pending::Op(kind) => match kind {
                OpKind::Rename { from: a, to: b }
                | OpKind::CopyData { from: a, to: b }
                | OpKind::Symlink { link: a, target: b }
                | OpKind::Link { link: a, target: b } => a.len() + b.len(),
                OpKind::Open { path, .. }
                | OpKind::Close { path, .. }
                | OpKind::Opendir { path }
                | OpKind::Remove { path }
                | OpKind::Mkdir { path }
                | OpKind::Rmdir { path }
                | OpKind::Setstat { path } => path.len(),
                OpKind::Extended { name } => name.len(),
            },
        }
    }
}

/// An open handle.
#[derive(Debug, Clone)]
struct Handle {
    path: String,
    dir: bool,
    read: u64,
    written: u64,
}

/// A server answer, as far as matching it to its request needs.
enum Reply {
    Status(u32, String),
    Handle(Vec<u8>),
    Data(u64),
    Other,
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Client,
    Server,
}

/// Follows one SFTP channel. See the module doc.
#[derive(Debug, Default)]
pub struct SftpAudit {
    /// Bytes of an incomplete packet, per direction.
    client_buf: Vec<u8>,
    server_buf: Vec<u8>,
    init_seen: bool,
    version_seen: bool,
    pending: BTreeMap<u32, Pending>,
    handles: BTreeMap<Vec<u8>, Handle>,
    tracked_bytes: usize,
    failed: Option<SftpError>,
    /// Paths named by client requests since the last
    /// [`take_requested_paths`](Self::take_requested_paths), for path rules.
    requested: Vec<String>,
    /// Rewrites the client's SYMLINK requests (see the module doc).
    swap: Option<SymlinkSwap>,
}

impl SftpAudit {
    /// The paths client requests named (open, opendir, remove, rename,
    /// mkdir, rmdir, setstat, symlink, link) since the last call: the
    /// bridge checks them against the server's `sftp_deny_paths` before
    /// the bytes that carry them are forwarded.
    pub fn take_requested_paths(&mut self) -> Vec<String> {
        mem::take(&mut self.requested)
    }

    #[cfg(test)]
    pub fn new() -> Self {
        Self::default()
    }

    /// An audit whose [`client_bytes_to_forward`](Self::client_bytes_to_forward)
    /// also swaps the two paths of every SSH_FXP_SYMLINK request, when
    /// `swap` (see [`symlink_swap_needed`]).
    pub fn with_symlink_swap(swap: bool) -> Self {
        SftpAudit {
            swap: swap.then(SymlinkSwap::default),
            ..Self::default()
        }
    }

    /// Client to server bytes, and what to forward for them: `None` means
    /// `data` itself; `Some(bytes)` replaces it (SYMLINK requests
    /// rewritten, the bytes of an incomplete one held back until it is
    /// whole). The audit reads what is forwarded.
    pub fn client_bytes_to_forward(
        &mut self,
        data: &[u8],
    ) -> Result<(Vec<SftpOp>, Option<Vec<u8>>), SftpError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(swap) = self.swap.as_mut() else {
            return Ok((self.client_bytes(data)?, None));
        };
        match swap.feed(data) {
            Ok(Cow::Borrowed(_)) => Ok((self.client_bytes(data)?, None)),
            Ok(Cow::Owned(out)) => Ok((self.client_bytes(&out)?, Some(out))),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Client to server bytes. Ops are returned only by
    /// [`server_bytes`](Self::server_bytes) and [`finish`](Self::finish),
    /// so this returns an empty list or an error; it has the same shape so
    /// that both directions are driven alike.
    pub fn client_bytes(&mut self, data: &[u8]) -> Result<Vec<SftpOp>, SftpError> {
        self.run(Side::Client, data)
    }

    /// Server to client bytes: the operations these answers complete.
    pub fn server_bytes(&mut self, data: &[u8]) -> Result<Vec<SftpOp>, SftpError> {
        self.run(Side::Server, data)
    }

    /// The channel ended: requests never answered, and files still open
    /// (as `Close`), with [`Status::NoReply`].
    pub fn finish(&mut self) -> Vec<SftpOp> {
        let mut ops = Vec::new();
        for (_, p) in mem::take(&mut self.pending) {
            let kind = match p {
                Pending::Open { path, pflags } => open_kind(path, pflags),
                Pending::Opendir { path } => OpKind::Opendir { path },
                Pending::Close { handle } => match self.handles.remove(&handle) {
                    Some(h) if !h.dir => close_kind(h),
                    _ => continue,
                },
                Pending::Fsetstat { handle } => OpKind::Setstat {
                    path: self.handle_path(&handle),
                },
                Pending::CopyData { from, to } => OpKind::CopyData {
                    from: self.handle_path(&from),
                    to: self.handle_path(&to),
                },
                Pending::Op(kind) => kind,
                Pending::Read { .. } | Pending::Write { .. } => continue,
            };
            ops.push(SftpOp {
                kind,
                status: Status::NoReply,
            });
        }
        for (_, h) in mem::take(&mut self.handles) {
            if !h.dir {
                ops.push(SftpOp {
                    kind: close_kind(h),
                    status: Status::NoReply,
                });
            }
        }
        self.tracked_bytes = 0;
        ops
    }

    fn run(&mut self, side: Side, data: &[u8]) -> Result<Vec<SftpOp>, SftpError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.frame(side, data);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
            self.client_buf = Vec::new();
            self.server_buf = Vec::new();
        }
        r
    }

    fn frame(&mut self, side: Side, data: &[u8]) -> Result<Vec<SftpOp>, SftpError> {
        let mut buf = match side {
            Side::Client => mem::take(&mut self.client_buf),
            Side::Server => mem::take(&mut self.server_buf),
        };
        buf.extend_from_slice(data);
        let mut ops = Vec::new();
        let mut pos = 0;
        while let Some(head) = buf.get(pos..pos + 4) {
            let Ok(head) = <[u8; 4]>::try_from(head) else {
                break;
            };
            let len = u32::from_be_bytes(head);
            let n = len as usize;
            if n > MAX_PACKET {
                return Err(SftpError::TooLarge(len));
            }
            if n == 0 {
                return Err(SftpError::Malformed("empty packet"));
            }
            let Some(packet) = buf.get(pos + 4..pos + 4 + n) else {
                break;
            };
            match side {
                Side::Client => self.request(packet)?,
                Side::Server => self.reply(packet, &mut ops)?,
            }
            pos += 4 + n;
        }
        buf.drain(..pos);
        match side {
            Side::Client => self.client_buf = buf,
            Side::Server => self.server_buf = buf,
        }
        Ok(ops)
    }
}

fn open_kind(path: String, pflags: u32) -> OpKind {
    OpKind::Open {
        path,
        read: pflags & FXF_READ != 0,
        write: pflags & FXF_WRITE != 0,
        create: pflags & FXF_CREAT != 0,
        truncate: pflags & FXF_TRUNC != 0,
        append: pflags & FXF_APPEND != 0,
        exclusive: pflags & FXF_EXCL != 0,
    }
}

fn close_kind(h: Handle) -> OpKind {
    OpKind::Close {
        path: h.path,
        bytes_read: h.read,
        bytes_written: h.written,
    }
}

fn unknown_handle(handle: &[u8]) -> String {
    format!("<unknown handle {}>", hex::encode(handle))
}

/// Bytes shown as text: invalid UTF-8 replaced, cut after `max` bytes.
fn text(bytes: &[u8], max: usize) -> String {
    match bytes.get(..max) {
        Some(head) if bytes.len() > max => format!("{}...", String::from_utf8_lossy(head)),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Reads the fields of one packet; running short is `Malformed`.
/// The order of SSH_FXP_SYMLINK's two paths on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymlinkOrder {
    /// OpenSSH's: the link's target, then the link's own path.
    TargetFirst,
    /// The draft's: the link's path, then its target.
    LinkFirst,
}

/// The order in which the client that identified as `client` (its SSH
/// identification string, `SSH-2.0-...`) sends SYMLINK to a server that
/// identified as `server`, for the clients known to decide it from the
/// server's string; `None` for the others, which use one order whatever
/// the server (OpenSSH, PuTTY, paramiko, libssh2) or are unknown here.
///
/// - asyncssh (`AsyncSSH_`): OpenSSH's order when "OpenSSH" or
///   "paramiko" appears anywhere in the server's string, else the draft's
///   (`asyncssh/sftp.py`, `_nonstandard_symlink_impls`).
/// - libssh (`libssh_`, not libssh2): OpenSSH's order when the server's
///   string names an OpenSSH version (`OpenSSH_` and a digit), else the
///   draft's (`sftp_symlink`, `ssh_get_openssh_version`).
pub fn client_symlink_order(client: &str, server: &str) -> Option<SymlinkOrder> {
    let software = client
        .strip_prefix("SSH-2.0-")
        .or_else(|| client.strip_prefix("SSH-1.99-"))?;
    let openssh_like = if software.starts_with("AsyncSSH_") {
        server.contains("OpenSSH") || server.contains("paramiko")
    } else if software.starts_with("libssh_") {
        server
            .split("OpenSSH_")
            .skip(1)
            .any(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    } else {
        return None;
    };
    Some(if openssh_like {
        SymlinkOrder::TargetFirst
    } else {
        SymlinkOrder::LinkFirst
    })
}

/// Whether the bastion must swap SYMLINK's paths for this client: it sent
/// them in the order it uses towards the bastion's string (`bastion`), and
/// the target must get the order the client uses towards the target's
/// (`target`), as if the client had connected to it directly.
pub fn symlink_swap_needed(client: &str, bastion: &str, target: &str) -> bool {
    match (
        client_symlink_order(client, bastion),
        client_symlink_order(client, target),
    ) {
        (Some(sent), Some(direct)) => sent != direct,
        _ => false,
    }
}

/// Rewrites a client-to-server SFTP stream: every SSH_FXP_SYMLINK request
/// gets its two paths swapped; every other byte passes at once and
/// unchanged (only a packet's first five bytes are held until its type is
/// known, and a SYMLINK packet until it is whole: at most [`MAX_PACKET`]).
#[derive(Debug, Default)]
pub struct SymlinkSwap {
    /// The next packet's length and type, while incomplete.
    head: Vec<u8>,
    /// Bytes of the current packet still to pass unchanged.
    pass: usize,
    /// A SYMLINK packet being gathered (length and type included), and
    /// its whole size.
    held: Option<(Vec<u8>, usize)>,
    /// SYMLINK requests rewritten so far.
    pub swapped: u64,
}

impl SymlinkSwap {
    /// The bytes to forward for `data`: `Cow::Borrowed(data)` when they
    /// are `data` itself. A packet longer than [`MAX_PACKET`] or empty is
    /// an error, as for [`SftpAudit`].
    pub fn feed<'a>(&mut self, data: &'a [u8]) -> Result<Cow<'a, [u8]>, SftpError> {
        if self.head.is_empty() && self.held.is_none() && self.pass >= data.len() {
            self.pass -= data.len();
            return Ok(Cow::Borrowed(data));
        }
        let mut out = Vec::with_capacity(data.len());
        let mut rest = data;
        while !rest.is_empty() {
            if let Some((buf, size)) = &mut self.held {
                let take = (*size - buf.len()).min(rest.len());
                let (now, later) = rest.split_at(take);
                buf.extend_from_slice(now);
                rest = later;
                if buf.len() == *size {
                    let packet = mem::take(buf);
                    self.held = None;
                    out.extend_from_slice(&swap_symlink(&packet));
                    self.swapped += 1;
                }
            } else if self.pass > 0 {
                let take = self.pass.min(rest.len());
                let (now, later) = rest.split_at(take);
                out.extend_from_slice(now);
                rest = later;
                self.pass -= take;
            } else {
                let take = (5 - self.head.len()).min(rest.len());
                let (now, later) = rest.split_at(take);
                self.head.extend_from_slice(now);
                rest = later;
                let Ok([a, b, c, d, ty]) = <[u8; 5]>::try_from(self.head.as_slice()) else {
                    continue;
                };
                let len = u32::from_be_bytes([a, b, c, d]);
                let n = len as usize;
                if n > MAX_PACKET {
                    return Err(SftpError::TooLarge(len));
                }
                if n == 0 {
                    return Err(SftpError::Malformed("empty packet"));
                }
                let head = mem::take(&mut self.head);
                if ty == FXP_SYMLINK && n > 1 {
                    let mut buf = Vec::with_capacity(4 + n);
                    buf.extend_from_slice(&head);
                    self.held = Some((buf, 4 + n));
                } else {
                    out.extend_from_slice(&head);
                    self.pass = n - 1;
                }
            }
        }
        Ok(Cow::Owned(out))
    }
}

/// A whole SYMLINK packet (length, type, id, two strings) with its two
/// strings swapped; one that does not parse is returned as it is (the
/// audit then refuses it and ends the channel).
fn swap_symlink(packet: &[u8]) -> Vec<u8> {
    // The end of the string whose length field is at `at`.
    let string_end = |at: usize| -> Option<usize> {
        let len = <[u8; 4]>::try_from(packet.get(at..at.checked_add(4)?)?).ok()?;
        let end = (at + 4).checked_add(u32::from_be_bytes(len) as usize)?;
        (end <= packet.len()).then_some(end)
    };
    // Length (4), type (1) and id (4), then the two strings.
    const FIRST: usize = 9;
    let parts = string_end(FIRST).and_then(|mid| {
        let end = string_end(mid)?;
        Some((
            packet.get(..FIRST)?,
            packet.get(FIRST..mid)?,
            packet.get(mid..end)?,
            packet.get(end..)?,
        ))
    });
    match parts {
        Some((head, first, second, tail)) => [head, second, first, tail].concat(),
        None => packet.to_vec(),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SftpError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(SftpError::Malformed(
            "a field runs past the end of the packet",
        ))?;
        self.0 = rest;
        Ok(head)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn u8(&mut self) -> Result<u8, SftpError> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    fn u32(&mut self) -> Result<u32, SftpError> {
        let b = <[u8; 4]>::try_from(self.take(4)?)
            .map_err(|_| SftpError::Malformed("a field runs past the end of the packet"))?;
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, SftpError> {
        let b = <[u8; 8]>::try_from(self.take(8)?)
            .map_err(|_| SftpError::Malformed("a field runs past the end of the packet"))?;
        Ok(u64::from_be_bytes(b))
    }

    fn string(&mut self) -> Result<&'a [u8], SftpError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn path(&mut self) -> Result<String, SftpError> {
        Ok(text(self.string()?, MAX_PATH))
    }

    fn handle(&mut self) -> Result<Vec<u8>, SftpError> {
        let h = self.string()?;
        if h.len() > MAX_HANDLE {
            return Err(SftpError::Malformed("a handle longer than 256 bytes"));
        }
        Ok(h.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Packet builders.

    fn pkt(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut p = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        p.push(ty);
        p.extend_from_slice(body);
        p
    }

    /// A body from fields.
    struct B(Vec<u8>);

    impl B {
        fn new(id: u32) -> B {
            B(id.to_be_bytes().to_vec())
        }
        fn u32(mut self, v: u32) -> B {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> B {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn s(mut self, v: &[u8]) -> B {
            self.0.extend_from_slice(&(v.len() as u32).to_be_bytes());
            self.0.extend_from_slice(v);
            self
        }
        fn attrs(self) -> B {
            // Empty ATTRS: flags 0.
            self.u32(0)
        }
        fn pkt(self, ty: u8) -> Vec<u8> {
            pkt(ty, &self.0)
        }
    }

    fn init() -> Vec<u8> {
        pkt(FXP_INIT, &3u32.to_be_bytes())
    }
    fn version(v: u32) -> Vec<u8> {
        B(v.to_be_bytes().to_vec())
            .s(b"posix-rename@openssh.com")
            .s(b"1")
            .pkt(FXP_VERSION)
    }
    fn open(id: u32, path: &str, pflags: u32) -> Vec<u8> {
        B::new(id)
            .s(path.as_bytes())
            .u32(pflags)
            .attrs()
            .pkt(FXP_OPEN)
    }
    fn opendir(id: u32, path: &str) -> Vec<u8> {
        B::new(id).s(path.as_bytes()).pkt(FXP_OPENDIR)
    }
    fn handle(id: u32, h: &[u8]) -> Vec<u8> {
        B::new(id).s(h).pkt(FXP_HANDLE)
    }
    fn status(id: u32, code: u32) -> Vec<u8> {
        B::new(id).u32(code).s(b"msg").s(b"").pkt(FXP_STATUS)
    }
    fn read(id: u32, h: &[u8], off: u64, len: u32) -> Vec<u8> {
        B::new(id).s(h).u64(off).u32(len).pkt(FXP_READ)
    }
    fn data(id: u32, n: usize) -> Vec<u8> {
        B::new(id).s(&vec![b'x'; n]).pkt(FXP_DATA)
    }
    fn write(id: u32, h: &[u8], off: u64, n: usize) -> Vec<u8> {
        B::new(id).s(h).u64(off).s(&vec![b'y'; n]).pkt(FXP_WRITE)
    }
    fn close(id: u32, h: &[u8]) -> Vec<u8> {
        B::new(id).s(h).pkt(FXP_CLOSE)
    }
    fn path_op(ty: u8, id: u32, path: &str) -> Vec<u8> {
        B::new(id).s(path.as_bytes()).pkt(ty)
    }
    fn two_paths(ty: u8, id: u32, a: &str, b: &str) -> Vec<u8> {
        B::new(id).s(a.as_bytes()).s(b.as_bytes()).pkt(ty)
    }
    fn ext(id: u32, name: &str, rest: B) -> Vec<u8> {
        let mut b = B::new(id).s(name.as_bytes());
        b.0.extend_from_slice(&rest.0);
        b.pkt(FXP_EXTENDED)
    }
    fn fields() -> B {
        B(Vec::new())
    }

    fn ok(kind: OpKind) -> SftpOp {
        SftpOp {
            kind,
            status: Status::Ok,
        }
    }
    fn failed(kind: OpKind, code: u32) -> SftpOp {
        SftpOp {
            kind,
            status: Status::Failed {
                code,
                message: "msg".into(),
            },
        }
    }
    fn p(s: &str) -> String {
        s.to_string()
    }

    /// A session: every request first (pipelined), then every answer, so
    /// that both streams can be cut anywhere independently.
    fn session() -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<SftpOp>) {
        let client = vec![
            init(),
            open(1, "/tmp/up", FXF_WRITE | FXF_CREAT | FXF_TRUNC),
            write(2, b"H1", 0, 5),
            write(3, b"H1", 5, 3),
            close(4, b"H1"),
            open(5, "/etc/passwd", FXF_READ),
            read(6, b"H2", 0, 32768),
            read(7, b"H2", 10, 32768),
            close(8, b"H2"),
            path_op(FXP_REMOVE, 9, "/tmp/old"),
            two_paths(FXP_RENAME, 10, "/tmp/a", "/tmp/b"),
            B::new(11).s(b"/tmp/d").attrs().pkt(FXP_MKDIR),
            path_op(FXP_RMDIR, 12, "/tmp/e"),
            B::new(13).s(b"/tmp/f").attrs().pkt(FXP_SETSTAT),
            two_paths(FXP_SYMLINK, 14, "/etc/hosts", "/tmp/hosts-link"),
            ext(15, "posix-rename@openssh.com", fields().s(b"/x").s(b"/y")),
            opendir(16, "/var/log"),
            path_op(17, 17, "/etc"), // STAT: not audited
            ext(18, "statvfs@openssh.com", fields().s(b"/")),
            ext(19, "hardlink@openssh.com", fields().s(b"/t").s(b"/l")),
            open(20, "/tmp/up", FXF_WRITE | FXF_APPEND),
            B::new(21).s(b"H3").attrs().pkt(FXP_FSETSTAT),
            write(22, b"H3", 0, 4),
            write(23, b"H3", 4, 4),
            close(24, b"H4"),
            B::new(25).u32(7).pkt(250), // unknown type
            ext(26, "sha256@example.com", fields().s(b"/z")),
        ];
        let server = vec![
            version(3),
            handle(1, b"H1"),
            status(2, FX_OK),
            status(3, FX_OK),
            status(4, FX_OK),
            handle(5, b"H2"),
            data(6, 10),
            status(7, 1), // EOF
            status(8, FX_OK),
            status(9, FX_OK),
            status(10, 3),
            status(11, FX_OK),
            status(12, 2),
            status(13, FX_OK),
            status(14, FX_OK),
            status(15, FX_OK),
            handle(16, b"D1"),
            B::new(17).u32(0).pkt(FXP_ATTRS),
            B::new(18).u64(1).pkt(FXP_EXTENDED_REPLY),
            status(19, FX_OK),
            handle(20, b"H3"),
            status(21, FX_OK),
            status(22, FX_OK),
            status(23, 4),       // failed write: not counted
            handle(1000, b"HX"), // answer to nothing: ignored
            B::new(24).u32(99).pkt(FXP_STATUS),
            B::new(26).s(b"digest").pkt(FXP_EXTENDED_REPLY),
        ];
        let want = vec![
            ok(OpKind::Open {
                path: p("/tmp/up"),
                read: false,
                write: true,
                create: true,
                truncate: true,
                append: false,
                exclusive: false,
            }),
            ok(OpKind::Close {
                path: p("/tmp/up"),
                bytes_read: 0,
                bytes_written: 8,
            }),
            ok(OpKind::Open {
                path: p("/etc/passwd"),
                read: true,
                write: false,
                create: false,
                truncate: false,
                append: false,
                exclusive: false,
            }),
            ok(OpKind::Close {
                path: p("/etc/passwd"),
                bytes_read: 10,
                bytes_written: 0,
            }),
            ok(OpKind::Remove {
                path: p("/tmp/old"),
            }),
            failed(
                OpKind::Rename {
                    from: p("/tmp/a"),
                    to: p("/tmp/b"),
                },
                3,
            ),
            ok(OpKind::Mkdir { path: p("/tmp/d") }),
            failed(OpKind::Rmdir { path: p("/tmp/e") }, 2),
            ok(OpKind::Setstat { path: p("/tmp/f") }),
            ok(OpKind::Symlink {
                link: p("/tmp/hosts-link"),
                target: p("/etc/hosts"),
            }),
            ok(OpKind::Rename {
                from: p("/x"),
                to: p("/y"),
            }),
            ok(OpKind::Opendir {
                path: p("/var/log"),
            }),
            ok(OpKind::Link {
                link: p("/l"),
                target: p("/t"),
            }),
            ok(OpKind::Open {
                path: p("/tmp/up"),
                read: false,
                write: true,
                create: false,
                truncate: false,
                append: true,
                exclusive: false,
            }),
            ok(OpKind::Setstat { path: p("/tmp/up") }),
            SftpOp {
                kind: OpKind::Close {
                    path: p("<unknown handle 4834>"),
                    bytes_read: 0,
                    bytes_written: 0,
                },
                status: Status::Failed {
                    code: 99,
                    message: String::new(),
                },
            },
            ok(OpKind::Extended {
                name: p("sha256@example.com"),
            }),
        ];
        (client, server, want)
    }

    /// Feeds the client chunks, then the server chunks.
    fn drive(client: &[&[u8]], server: &[&[u8]]) -> (SftpAudit, Vec<SftpOp>) {
        let mut a = SftpAudit::new();
        let mut ops = Vec::new();
        for c in client {
            assert_eq!(a.client_bytes(c), Ok(vec![]));
        }
        for s in server {
            ops.extend(a.server_bytes(s).unwrap());
        }
        (a, ops)
    }

    #[test]
    fn a_session_in_whole_packets() {
        let (client, server, want) = session();
        let c: Vec<&[u8]> = client.iter().map(Vec::as_slice).collect();
        let s: Vec<&[u8]> = server.iter().map(Vec::as_slice).collect();
        let (mut a, ops) = drive(&c, &s);
        assert_eq!(ops, want);
        // Still open: H3 with its one acknowledged write, and the
        // directory handle (not reported).
        assert_eq!(
            a.finish(),
            vec![SftpOp {
                kind: OpKind::Close {
                    path: p("/tmp/up"),
                    bytes_read: 0,
                    bytes_written: 4,
                },
                status: Status::NoReply,
            }]
        );
    }

    #[test]
    fn a_session_cut_at_every_offset() {
        let (client, server, want) = session();
        let c = client.concat();
        let s = server.concat();
        for k in 0..=c.len() {
            let (_, ops) = drive(&[&c[..k], &c[k..]], &[&s]);
            assert_eq!(ops, want, "client cut at {k}");
        }
        for k in 0..=s.len() {
            let (_, ops) = drive(&[&c], &[&s[..k], &s[k..]]);
            assert_eq!(ops, want, "server cut at {k}");
        }
        // Byte by byte, and in odd chunk sizes.
        for size in [1, 3, 7, 64] {
            let cc: Vec<&[u8]> = c.chunks(size).collect();
            let sc: Vec<&[u8]> = s.chunks(size).collect();
            assert_eq!(drive(&cc, &sc).1, want, "chunks of {size}");
        }
    }

    #[test]
    fn interleaved_like_a_real_client() {
        let mut a = SftpAudit::new();
        a.client_bytes(&init()).unwrap();
        assert_eq!(a.server_bytes(&version(3)), Ok(vec![]));
        a.client_bytes(&open(1, "/srv/f", FXF_READ)).unwrap();
        let ops = a.server_bytes(&handle(1, b"\0\0\0\0")).unwrap();
        assert_eq!(ops.len(), 1);
        let mut up = Vec::new();
        for i in 0..4u32 {
            up.extend(read(10 + i, b"\0\0\0\0", u64::from(i) * 100, 100));
        }
        a.client_bytes(&up).unwrap();
        let mut down = Vec::new();
        for i in 0..3u32 {
            down.extend(data(10 + i, 100));
        }
        down.extend(status(13, 1));
        a.server_bytes(&down).unwrap();
        a.client_bytes(&close(20, b"\0\0\0\0")).unwrap();
        let ops = a.server_bytes(&status(20, FX_OK)).unwrap();
        assert_eq!(
            ops,
            vec![ok(OpKind::Close {
                path: p("/srv/f"),
                bytes_read: 300,
                bytes_written: 0
            })]
        );
        // The handle string is free again: a new open may reuse it.
        a.client_bytes(&open(21, "/srv/g", FXF_WRITE)).unwrap();
        a.server_bytes(&handle(21, b"\0\0\0\0")).unwrap();
        a.client_bytes(&write(22, b"\0\0\0\0", 0, 7)).unwrap();
        a.server_bytes(&status(22, FX_OK)).unwrap();
        assert_eq!(
            a.finish(),
            vec![SftpOp {
                kind: OpKind::Close {
                    path: p("/srv/g"),
                    bytes_read: 0,
                    bytes_written: 7
                },
                status: Status::NoReply
            }]
        );
    }

    #[test]
    fn unanswered_requests_are_reported_at_the_end() {
        let mut a = SftpAudit::new();
        a.client_bytes(&init()).unwrap();
        a.server_bytes(&version(3)).unwrap();
        let mut up = path_op(FXP_REMOVE, 2, "/a");
        up.extend(open(1, "/b", FXF_READ | FXF_WRITE | FXF_EXCL | FXF_CREAT));
        a.client_bytes(&up).unwrap();
        let ops = a.finish();
        assert_eq!(
            ops,
            vec![
                SftpOp {
                    kind: OpKind::Open {
                        path: p("/b"),
                        read: true,
                        write: true,
                        create: true,
                        truncate: false,
                        append: false,
                        exclusive: true,
                    },
                    status: Status::NoReply,
                },
                SftpOp {
                    kind: OpKind::Remove { path: p("/a") },
                    status: Status::NoReply,
                },
            ]
        );
        assert_eq!(a.finish(), vec![]);
    }

    #[test]
    fn bad_input_is_an_error_and_stays_one() {
        let started = || {
            let mut a = SftpAudit::new();
            a.client_bytes(&init()).unwrap();
            a.server_bytes(&version(3)).unwrap();
            a
        };
        // Zero length.
        let mut a = started();
        assert_eq!(
            a.client_bytes(&[0, 0, 0, 0]),
            Err(SftpError::Malformed("empty packet"))
        );
        // The error sticks, whatever comes next.
        assert!(a.client_bytes(&path_op(FXP_REMOVE, 1, "/a")).is_err());
        assert!(a.server_bytes(&status(1, 0)).is_err());

        // A length beyond the limit fails on its 4 bytes alone.
        let mut a = started();
        assert_eq!(
            a.server_bytes(&[0xff, 0xff, 0xff, 0xff]),
            Err(SftpError::TooLarge(u32::MAX))
        );
        let mut a = started();
        let big = (MAX_PACKET as u32 + 1).to_be_bytes();
        assert_eq!(
            a.client_bytes(&big),
            Err(SftpError::TooLarge(MAX_PACKET as u32 + 1))
        );
        // The limit itself is fine (a maximal WRITE).
        let mut a = started();
        let w = write(1, b"h", 0, MAX_PACKET - 1 - 4 - 5 - 8 - 4);
        assert_eq!(w.len(), MAX_PACKET + 4);
        assert_eq!(a.client_bytes(&w), Ok(vec![]));

        // Fields running past the packet's end.
        let mut a = started();
        let mut bad = B::new(1).s(b"/etc/passwd").pkt(FXP_OPEN); // no pflags
        assert!(matches!(a.client_bytes(&bad), Err(SftpError::Malformed(_))));
        let mut a = started();
        bad = B::new(1).u32(1000).pkt(FXP_REMOVE); // string longer than packet
        assert!(matches!(a.client_bytes(&bad), Err(SftpError::Malformed(_))));
        // An over-long handle.
        let mut a = started();
        assert!(matches!(
            a.client_bytes(&close(1, &[7; 300])),
            Err(SftpError::Malformed(_))
        ));
        // An answer that does not fit its request.
        let mut a = started();
        a.client_bytes(&path_op(FXP_REMOVE, 1, "/a")).unwrap();
        assert!(matches!(
            a.server_bytes(&data(1, 3)),
            Err(SftpError::Malformed(_))
        ));
    }

    #[test]
    fn the_handshake() {
        // Requests before INIT, replies before VERSION.
        let mut a = SftpAudit::new();
        assert!(a.client_bytes(&open(1, "/a", FXF_READ)).is_err());
        let mut a = SftpAudit::new();
        assert!(a.server_bytes(&status(1, 0)).is_err());
        // Only version 3 is audited.
        let mut a = SftpAudit::new();
        a.client_bytes(&pkt(FXP_INIT, &6u32.to_be_bytes())).unwrap();
        assert_eq!(a.server_bytes(&version(6)), Err(SftpError::Version(6)));
        // INIT with extensions; VERSION with extensions.
        let mut a = SftpAudit::new();
        let init_ext = B(3u32.to_be_bytes().to_vec())
            .s(b"x@y")
            .s(b"1")
            .pkt(FXP_INIT);
        a.client_bytes(&init_ext).unwrap();
        a.server_bytes(&version(3)).unwrap();
        assert!(a.server_bytes(&version(3)).is_err());
    }

    #[test]
    fn unknown_packets_pass() {
        let mut a = SftpAudit::new();
        a.client_bytes(&init()).unwrap();
        a.server_bytes(&version(3)).unwrap();
        assert_eq!(a.client_bytes(&pkt(77, b"whatever")), Ok(vec![]));
        assert_eq!(a.server_bytes(&pkt(177, b"")), Ok(vec![]));
        // Not audited but answered: no ops.
        a.client_bytes(&path_op(16, 3, ".")).unwrap(); // REALPATH
        assert_eq!(a.server_bytes(&B::new(3).u32(0).pkt(FXP_NAME)), Ok(vec![]));
    }

    #[test]
    fn tracking_is_bounded() {
        let mut a = SftpAudit::new();
        a.client_bytes(&init()).unwrap();
        let mut up = Vec::new();
        for id in 0..MAX_TRACKED as u32 {
            up.extend(path_op(FXP_REMOVE, id, "/a"));
        }
        a.client_bytes(&up).unwrap();
        // Reusing an id in flight is not a new entry.
        a.client_bytes(&path_op(FXP_REMOVE, 0, "/b")).unwrap();
        assert_eq!(
            a.client_bytes(&path_op(FXP_REMOVE, MAX_TRACKED as u32, "/a")),
            Err(SftpError::TooMany("requests in flight"))
        );
        // Long paths hit the byte budget first.
        let mut a = SftpAudit::new();
        a.client_bytes(&init()).unwrap();
        let long = "p".repeat(MAX_PATH * 2);
        let mut err = None;
        for id in 0..2000u32 {
            if let Err(e) = a.client_bytes(&path_op(FXP_REMOVE, id, &long)) {
                err = Some((id, e));
                break;
            }
        }
        let (id, e) = err.unwrap();
        assert_eq!(e, SftpError::TooMany("path bytes"));
        // Paths are kept cut.
        assert_eq!(id as usize, MAX_TRACKED_BYTES / (MAX_PATH + 3));
    }

    #[test]
    fn long_and_odd_paths() {
        let mut a = SftpAudit::new();
        a.client_bytes(&init()).unwrap();
        a.server_bytes(&version(3)).unwrap();
        let long = "q".repeat(MAX_PATH + 10);
        let mut up = path_op(FXP_REMOVE, 1, &long);
        up.extend(B::new(2).s(b"/tmp/\xff\xfe").pkt(FXP_REMOVE));
        a.client_bytes(&up).unwrap();
        let mut down = status(1, 0);
        down.extend(status(2, 0));
        let ops = a.server_bytes(&down).unwrap();
        let paths: Vec<String> = ops
            .into_iter()
            .map(|o| match o.kind {
                OpKind::Remove { path } => path,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            paths,
            vec![
                format!("{}...", "q".repeat(MAX_PATH)),
                p("/tmp/\u{fffd}\u{fffd}")
            ]
        );
    }

    #[test]
    fn writes_and_details() {
        let open = |read, write, create, truncate, append| SftpOp {
            kind: OpKind::Open {
                path: p("/f"),
                read,
                write,
                create,
                truncate,
                append,
                exclusive: false,
            },
            status: Status::Ok,
        };
        assert!(!open(true, false, false, false, false).is_write());
        assert!(open(false, true, false, false, false).is_write());
        assert!(open(true, false, true, false, false).is_write());
        assert!(open(true, false, false, true, false).is_write());
        assert!(open(false, false, false, false, true).is_write());
        let cases = [
            (
                OpKind::Close {
                    path: p("/f"),
                    bytes_read: 1,
                    bytes_written: 2,
                },
                false,
            ),
            (OpKind::Opendir { path: p("/") }, false),
            (OpKind::Remove { path: p("/f") }, true),
            (
                OpKind::Rename {
                    from: p("/a"),
                    to: p("/b"),
                },
                true,
            ),
            (OpKind::Mkdir { path: p("/d") }, true),
            (OpKind::Rmdir { path: p("/d") }, true),
            (OpKind::Setstat { path: p("/f") }, true),
            (
                OpKind::Symlink {
                    link: p("/l"),
                    target: p("/t"),
                },
                true,
            ),
            (
                OpKind::Link {
                    link: p("/l"),
                    target: p("/t"),
                },
                true,
            ),
            (
                OpKind::CopyData {
                    from: p("/a"),
                    to: p("/b"),
                },
                true,
            ),
            (OpKind::Extended { name: p("x@y") }, true),
        ];
        for (kind, w) in cases {
            assert_eq!(ok(kind.clone()).is_write(), w, "{kind:?}");
        }
        let d = failed(
            OpKind::Open {
                path: p("/etc/shadow"),
                read: true,
                write: true,
                create: true,
                truncate: true,
                append: false,
                exclusive: false,
            },
            3,
        )
        .details();
        let d: Vec<(&str, String)> = d.into_iter().map(|(k, v)| (k, v.to_string())).collect();
        assert_eq!(
            d,
            vec![
                ("op", r#""open""#.to_string()),
                ("path", r#""/etc/shadow""#.to_string()),
                ("mode", r#""rw""#.to_string()),
                ("flags", r#""create,truncate""#.to_string()),
                ("status", r#""permission denied""#.to_string()),
                ("code", "3".to_string()),
                ("message", r#""msg""#.to_string()),
            ]
        );
    }

    #[test]
    fn copy_data_names_both_files() {
        let mut a = SftpAudit::new();
        a.client_bytes(&init()).unwrap();
        a.server_bytes(&version(3)).unwrap();
        a.client_bytes(&open(1, "/src", FXF_READ)).unwrap();
        a.client_bytes(&open(2, "/dst", FXF_WRITE)).unwrap();
        a.server_bytes(&handle(1, b"A")).unwrap();
        a.server_bytes(&handle(2, b"B")).unwrap();
        let req = ext(
            3,
            "copy-data",
            fields().s(b"A").u64(0).u64(0).s(b"B").u64(0),
        );
        a.client_bytes(&req).unwrap();
        assert_eq!(
            a.server_bytes(&status(3, 0)).unwrap(),
            vec![ok(OpKind::CopyData {
                from: p("/src"),
                to: p("/dst")
            })]
        );
    }

    // Issue 17 item 11: SYMLINK's order behind the bastion.

    const GATEHOUSE: &str = "SSH-2.0-Gatehouse";
    const OPENSSH: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3";

    #[test]
    fn which_clients_follow_the_servers_string() {
        use SymlinkOrder::*;
        let asyncssh = "SSH-2.0-AsyncSSH_2.10.1";
        assert_eq!(client_symlink_order(asyncssh, OPENSSH), Some(TargetFirst));
        assert_eq!(
            client_symlink_order(asyncssh, "SSH-2.0-paramiko_2.12.0"),
            Some(TargetFirst)
        );
        assert_eq!(client_symlink_order(asyncssh, GATEHOUSE), Some(LinkFirst));
        let libssh = "SSH-2.0-libssh_0.10.6";
        assert_eq!(client_symlink_order(libssh, OPENSSH), Some(TargetFirst));
        assert_eq!(client_symlink_order(libssh, GATEHOUSE), Some(LinkFirst));
        assert_eq!(
            client_symlink_order(libssh, "SSH-2.0-OpenSSH_x"),
            Some(LinkFirst)
        );
        // One order whatever the server: never rewritten.
        for fixed in [
            "SSH-2.0-OpenSSH_9.2p1 Debian-2",
            "SSH-2.0-PuTTY_Release_0.78",
            "SSH-2.0-paramiko_2.12.0",
            "SSH-2.0-libssh2_1.10.0",
            "SSH-2.0-AsyncSSH",
            "junk",
            "",
        ] {
            assert_eq!(client_symlink_order(fixed, OPENSSH), None, "{fixed}");
            assert!(!symlink_swap_needed(fixed, GATEHOUSE, OPENSSH), "{fixed}");
        }
        assert!(symlink_swap_needed(asyncssh, GATEHOUSE, OPENSSH));
        assert!(symlink_swap_needed(libssh, GATEHOUSE, OPENSSH));
        // A target the client would also send the draft's order to.
        assert!(!symlink_swap_needed(
            asyncssh,
            GATEHOUSE,
            "SSH-2.0-dropbear_2022.83"
        ));
    }

    /// A stream of packets around two SYMLINKs, and what the target must
    /// receive for it.
    fn swap_stream() -> (Vec<u8>, Vec<u8>) {
        let before = [
            init(),
            open(1, "/tmp/up", FXF_WRITE | FXF_CREAT),
            write(2, b"H1", 0, 70_000),
        ];
        let link1 = two_paths(FXP_SYMLINK, 3, "/tmp/link", "/etc/hosts");
        let middle = [path_op(FXP_REMOVE, 4, "/tmp/old"), close(5, b"H1")];
        let link2 = B::new(6).s(b"l").s(b"target with spaces").pkt(FXP_SYMLINK);
        let mut sent = before.concat();
        sent.extend_from_slice(&link1);
        sent.extend_from_slice(&middle.concat());
        sent.extend_from_slice(&link2);
        let mut want = before.concat();
        want.extend_from_slice(&two_paths(FXP_SYMLINK, 3, "/etc/hosts", "/tmp/link"));
        want.extend_from_slice(&middle.concat());
        want.extend_from_slice(&B::new(6).s(b"target with spaces").s(b"l").pkt(FXP_SYMLINK));
        (sent, want)
    }

    #[test]
    fn symlink_paths_are_swapped_from_any_chunking() {
        let (sent, want) = swap_stream();
        for size in [1, 2, 3, 5, 7, 13, 64, 4096, 32768, sent.len()] {
            let mut swap = SymlinkSwap::default();
            let mut got = Vec::new();
            for part in sent.chunks(size) {
                got.extend_from_slice(&swap.feed(part).unwrap());
            }
            assert!(got == want, "chunks of {size}");
            assert_eq!(swap.swapped, 2);
        }
    }

    #[test]
    fn bulk_data_passes_without_copies() {
        let (sent, _) = swap_stream();
        let mut swap = SymlinkSwap::default();
        // The WRITE's 70,000 data bytes: after its header, whole chunks
        // inside it come back borrowed.
        let start = init().len() + open(1, "/tmp/up", FXF_WRITE | FXF_CREAT).len() + 64;
        let _ = swap.feed(&sent[..start]).unwrap();
        let inside = &sent[start..start + 32768];
        assert!(matches!(swap.feed(inside).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn the_audit_reads_the_rewritten_order() {
        let mut a = SftpAudit::with_symlink_swap(true);
        let (ops, out) = a.client_bytes_to_forward(&init()).unwrap();
        assert!(ops.is_empty());
        assert_eq!(out.as_deref(), Some(&init()[..]));
        a.server_bytes(&version(3)).unwrap();
        let link = two_paths(FXP_SYMLINK, 9, "/tmp/link", "/etc/hosts");
        let (_, out) = a.client_bytes_to_forward(&link).unwrap();
        assert_eq!(
            out,
            Some(two_paths(FXP_SYMLINK, 9, "/etc/hosts", "/tmp/link"))
        );
        let ops = a.server_bytes(&status(9, FX_OK)).unwrap();
        assert_eq!(
            ops,
            vec![ok(OpKind::Symlink {
                link: p("/tmp/link"),
                target: p("/etc/hosts"),
            })]
        );
        // Without the swap nothing is copied or changed.
        let mut plain = SftpAudit::new();
        assert_eq!(plain.client_bytes_to_forward(&init()).unwrap().1, None);
    }

    #[test]
    fn hostile_symlink_packets_never_panic() {
        for seed in 1..200u64 {
            let mut swap = SymlinkSwap::default();
            let junk = noise(seed, 300);
            let mut framed = Vec::new();
            for chunk in junk.chunks((seed % 30 + 2) as usize) {
                framed.extend_from_slice(&(chunk.len() as u32 + 1).to_be_bytes());
                framed.push(FXP_SYMLINK);
                framed.extend_from_slice(chunk);
            }
            let mut got = Vec::new();
            for part in framed.chunks(11) {
                got.extend_from_slice(&swap.feed(part).unwrap());
            }
            assert_eq!(got.len(), framed.len(), "bytes are never lost or made up");
        }
        let mut swap = SymlinkSwap::default();
        assert!(swap.feed(&[0xff, 0xff, 0xff, 0xff, FXP_SYMLINK]).is_err());
    }

    /// Deterministic pseudo-random bytes (xorshift).
    fn noise(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn random_bytes_never_panic() {
        for seed in 1..300u64 {
            let mut a = SftpAudit::new();
            let _ = a.client_bytes(&init());
            let _ = a.server_bytes(&version(3));
            let junk = noise(seed, 400);
            // Small lengths, so that packets actually complete.
            let mut framed = Vec::new();
            for chunk in junk.chunks((seed % 40 + 1) as usize) {
                framed.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
                framed.extend_from_slice(chunk);
            }
            for part in framed.chunks(13) {
                let _ = a.client_bytes(part);
                let _ = a.server_bytes(part);
            }
            let _ = a.client_bytes(&junk);
            let _ = a.server_bytes(&junk);
            a.finish();
        }
    }
}
