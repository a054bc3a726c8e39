//! Target replies as the SFTP audit reads them: a reply completes its
//! request into an operation for the audit, and handles are tracked.
//!
//! Layer: part of `sftp`; imports `sftp` only.

use super::*;

impl SftpAudit {
    pub(super) fn reply(&mut self, packet: &[u8], ops: &mut Vec<SftpOp>) -> Result<(), SftpError> {
        let mut r = Reader(packet);
        let ty = r.u8()?;
        if !self.version_seen {
            if ty != FXP_VERSION {
                return Err(SftpError::Malformed(
                    "the server did not begin with VERSION",
                ));
            }
            let v = r.u32()?;
            if v != 3 {
                return Err(SftpError::Version(v));
            }
            self.version_seen = true;
            return Ok(());
        }
        let (id, reply) = match ty {
            FXP_STATUS => {
                let id = r.u32()?;
                let code = r.u32()?;
                // Servers before version 3 ended the packet here.
                let message = if r.is_empty() {
                    String::new()
                } else {
                    text(r.string()?, MAX_MESSAGE)
                };
                (id, Reply::Status(code, message))
            }
            FXP_HANDLE => (r.u32()?, Reply::Handle(r.handle()?)),
            FXP_DATA => {
                let id = r.u32()?;
                (id, Reply::Data(r.string()?.len() as u64))
            }
            FXP_NAME | FXP_ATTRS | FXP_EXTENDED_REPLY => (r.u32()?, Reply::Other),
            FXP_VERSION => return Err(SftpError::Malformed("a second VERSION")),
            _ => return Ok(()),
        };
        let Some(p) = self.pending.remove(&id) else {
            // An answer to a request that is not audited.
            return Ok(());
        };
        self.tracked_bytes = self.tracked_bytes.saturating_sub(p.cost());
        let (kind, status) = match (p, reply) {
            (Pending::Open { path, pflags }, Reply::Handle(h)) => {
                let kind = open_kind(path.clone(), pflags);
                self.add_handle(h, path, false)?;
                (kind, Status::Ok)
            }
            (Pending::Opendir { path }, Reply::Handle(h)) => {
                self.add_handle(h, path.clone(), true)?;
                (OpKind::Opendir { path }, Status::Ok)
            }
            (Pending::Open { path, pflags }, Reply::Status(code, msg)) => {
                (open_kind(path, pflags), Status::from_reply(code, msg))
            }
            (Pending::Opendir { path }, Reply::Status(code, msg)) => {
                (OpKind::Opendir { path }, Status::from_reply(code, msg))
            }
            (Pending::Close { handle }, Reply::Status(code, msg)) => {
                // The server drops the handle even when close fails.
                match self.remove_handle(&handle) {
                    Some(h) if h.dir => return Ok(()),
                    Some(h) => (close_kind(h), Status::from_reply(code, msg)),
                    None => (
                        OpKind::Close {
                            path: unknown_handle(&handle),
                            bytes_read: 0,
                            bytes_written: 0,
                        },
                        Status::from_reply(code, msg),
                    ),
                }
            }
            (Pending::Read { handle }, Reply::Data(n)) => {
                if let Some(h) = self.handles.get_mut(&handle) {
                    h.read = h.read.saturating_add(n);
                }
                return Ok(());
            }
            (Pending::Write { handle, len }, Reply::Status(code, _)) => {
                if code == FX_OK
                    && let Some(h) = self.handles.get_mut(&handle)
                {
                    h.written = h.written.saturating_add(len);
                }
                return Ok(());
            }
            // End of file, or a failed read.
            (Pending::Read { .. }, Reply::Status(..)) => return Ok(()),
            (Pending::Fsetstat { handle }, Reply::Status(code, msg)) => (
                OpKind::Setstat {
                    path: self.handle_path(&handle),
                },
                Status::from_reply(code, msg),
            ),
            (Pending::CopyData { from, to }, Reply::Status(code, msg)) => (
                OpKind::CopyData {
                    from: self.handle_path(&from),
                    to: self.handle_path(&to),
                },
                Status::from_reply(code, msg),
            ),
            (Pending::Op(kind), Reply::Status(code, msg)) => (kind, Status::from_reply(code, msg)),
            // Extensions may answer with EXTENDED_REPLY.
            (Pending::Op(kind @ OpKind::Extended { .. }), Reply::Other) => (kind, Status::Ok),
            _ => {
                return Err(SftpError::Malformed(
                    "the server's answer does not fit the request",
                ));
            }
        };
        ops.push(SftpOp { kind, status });
        Ok(())
    }

    pub(super) fn track(&mut self, (id, p): (u32, Pending)) -> Result<(), SftpError> {
        let cost = p.cost();
        // A client reusing an id in flight replaces the earlier request.
        if let Some(old) = self.pending.remove(&id) {
            self.tracked_bytes = self.tracked_bytes.saturating_sub(old.cost());
        }
        if self.pending.len() >= MAX_TRACKED {
            return Err(SftpError::TooMany("requests in flight"));
        }
        if self.tracked_bytes + cost > MAX_TRACKED_BYTES {
            return Err(SftpError::TooMany("path bytes"));
        }
        self.tracked_bytes += cost;
        self.pending.insert(id, p);
        Ok(())
    }

    pub(super) fn add_handle(
        &mut self,
        handle: Vec<u8>,
        path: String,
        dir: bool,
    ) -> Result<(), SftpError> {
        // A handle string may be reused once closed; a server handing out
        // one still open would have it replaced here.
        self.remove_handle(&handle);
        let cost = handle.len() + path.len();
        if self.handles.len() >= MAX_TRACKED {
            return Err(SftpError::TooMany("open handles"));
        }
        if self.tracked_bytes + cost > MAX_TRACKED_BYTES {
            return Err(SftpError::TooMany("path bytes"));
        }
        self.tracked_bytes += cost;
        self.handles.insert(
            handle,
            Handle {
                path,
                dir,
                read: 0,
                written: 0,
            },
        );
        Ok(())
    }

    pub(super) fn remove_handle(&mut self, handle: &[u8]) -> Option<Handle> {
        let h = self.handles.remove(handle)?;
        self.tracked_bytes = self
            .tracked_bytes
            .saturating_sub(handle.len() + h.path.len());
        Some(h)
    }

    pub(super) fn handle_path(&self, handle: &[u8]) -> String {
        match self.handles.get(handle) {
            Some(h) => h.path.clone(),
            None => unknown_handle(handle),
        }
    }
}
