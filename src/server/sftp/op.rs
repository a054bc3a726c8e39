//! What an SFTP operation says about itself: whether it writes, its
//! audit name and details.
//!
//! Layer: part of `sftp`; imports `sftp` only.

use super::*;

impl SftpOp {
    /// Whether the operation changes (or may change) the target's files.
    pub fn is_write(&self) -> bool {
        match &self.kind {
            OpKind::Open {
                write,
                create,
                truncate,
                append,
                ..
            } => *write || *create || *truncate || *append,
            OpKind::Close { .. } | OpKind::Opendir { .. } => false,
            OpKind::Remove { .. }
            | OpKind::Rename { .. }
            | OpKind::Mkdir { .. }
            | OpKind::Rmdir { .. }
            | OpKind::Setstat { .. }
            | OpKind::Symlink { .. }
            | OpKind::Link { .. }
            | OpKind::CopyData { .. }
            | OpKind::Extended { .. } => true,
        }
    }

    /// A stable short name: "open", "close", "opendir", "remove", "rename",
    /// "mkdir", "rmdir", "setstat", "symlink", "link", "copy-data",
    /// "extended".
    pub fn name(&self) -> &'static str {
        match &self.kind {
            OpKind::Open { .. } => "open",
            OpKind::Close { .. } => "close",
            OpKind::Opendir { .. } => "opendir",
            OpKind::Remove { .. } => "remove",
            OpKind::Rename { .. } => "rename",
            OpKind::Mkdir { .. } => "mkdir",
            OpKind::Rmdir { .. } => "rmdir",
            OpKind::Setstat { .. } => "setstat",
            OpKind::Symlink { .. } => "symlink",
            OpKind::Link { .. } => "link",
            OpKind::CopyData { .. } => "copy-data",
            OpKind::Extended { .. } => "extended",
        }
    }

    /// The operation as audit details: `op`, the paths (`path`, or `from`
    /// and `to`, or `link` and `target`, or `name`), for an open `mode`
    /// ("r", "w", "rw") and `flags` ("create,truncate,append,exclusive" as
    /// set), for a close `bytes_read` and `bytes_written`, then `status`
    /// and, on failure, `code` and `message`.
    pub fn details(&self) -> Vec<(&'static str, serde_json::Value)> {
        let mut d: Vec<(&'static str, serde_json::Value)> = vec![("op", self.name().into())];
        match &self.kind {
            OpKind::Open {
                path,
                read,
                write,
                create,
                truncate,
                append,
                exclusive,
            } => {
                d.push(("path", path.as_str().into()));
                let mode = match (read, write) {
                    (true, true) => "rw",
                    (false, true) => "w",
                    _ => "r",
                };
                d.push(("mode", mode.into()));
                let flags: Vec<&str> = [
                    (*create, "create"),
                    (*truncate, "truncate"),
                    (*append, "append"),
                    (*exclusive, "exclusive"),
                ]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
                if !flags.is_empty() {
                    d.push(("flags", flags.join(",").into()));
                }
            }
            OpKind::Close {
                path,
                bytes_read,
                bytes_written,
            } => {
                d.push(("path", path.as_str().into()));
                d.push(("bytes_read", (*bytes_read).into()));
                d.push(("bytes_written", (*bytes_written).into()));
            }
            OpKind::Opendir { path }
            | OpKind::Remove { path }
            | OpKind::Mkdir { path }
            | OpKind::Rmdir { path }
            | OpKind::Setstat { path } => d.push(("path", path.as_str().into())),
            OpKind::Rename { from, to } | OpKind::CopyData { from, to } => {
                d.push(("from", from.as_str().into()));
                d.push(("to", to.as_str().into()));
            }
            OpKind::Symlink { link, target } | OpKind::Link { link, target } => {
                d.push(("link", link.as_str().into()));
                d.push(("target", target.as_str().into()));
            }
            OpKind::Extended { name } => d.push(("name", name.as_str().into())),
        }
        d.push(("status", self.status.as_str().into()));
        if let Status::Failed { code, message } = &self.status {
            d.push(("code", (*code).into()));
            if !message.is_empty() {
                d.push(("message", message.as_str().into()));
            }
        }
        d
    }
}
