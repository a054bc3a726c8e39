//! Client requests as the SFTP audit reads them: each request is checked
//! and remembered until its reply, and the paths it names are kept for the
//! `sftp_deny` check.
//!
//! Layer: part of `sftp`; imports `sftp` only.

use super::*;

impl SftpAudit {
    pub(super) fn request(&mut self, packet: &[u8]) -> Result<(), SftpError> {
        let mut r = Reader(packet);
        let ty = r.u8()?;
        if !self.init_seen {
            if ty != FXP_INIT {
                return Err(SftpError::Malformed("the client did not begin with INIT"));
            }
            // The client's version and extensions: the server's VERSION
            // decides.
            r.u32()?;
            self.init_seen = true;
            return Ok(());
        }
        let pending = match ty {
            FXP_INIT => return Err(SftpError::Malformed("a second INIT")),
            FXP_OPEN => {
                let id = r.u32()?;
                let path = r.path()?;
                let pflags = r.u32()?;
                (id, Pending::Open { path, pflags })
            }
            FXP_OPENDIR => (r.u32()?, Pending::Opendir { path: r.path()? }),
            FXP_CLOSE => (
                r.u32()?,
                Pending::Close {
                    handle: r.handle()?,
                },
            ),
            FXP_READ => (
                r.u32()?,
                Pending::Read {
                    handle: r.handle()?,
                },
            ),
            FXP_WRITE => {
                let id = r.u32()?;
                let handle = r.handle()?;
                r.u64()?;
                let len = r.string()?.len() as u64;
                (id, Pending::Write { handle, len })
            }
            FXP_FSETSTAT => (
                r.u32()?,
                Pending::Fsetstat {
                    handle: r.handle()?,
                },
            ),
            FXP_SETSTAT => (r.u32()?, Pending::Op(OpKind::Setstat { path: r.path()? })),
            FXP_REMOVE => (r.u32()?, Pending::Op(OpKind::Remove { path: r.path()? })),
            FXP_MKDIR => (r.u32()?, Pending::Op(OpKind::Mkdir { path: r.path()? })),
            FXP_RMDIR => (r.u32()?, Pending::Op(OpKind::Rmdir { path: r.path()? })),
            FXP_RENAME => {
                let id = r.u32()?;
                let from = r.path()?;
                let to = r.path()?;
                (id, Pending::Op(OpKind::Rename { from, to }))
            }
            FXP_SYMLINK => {
                let id = r.u32()?;
                // OpenSSH's order: target first (see the module doc).
                let target = r.path()?;
                let link = r.path()?;
                (id, Pending::Op(OpKind::Symlink { link, target }))
            }
            FXP_EXTENDED => {
                let id = r.u32()?;
                let name = r.string()?;
                match self.extended(name, &mut r)? {
                    Some(p) => (id, p),
                    None => return Ok(()),
                }
            }
            // STAT, LSTAT, FSTAT, READDIR, REALPATH, READLINK, and types
            // unknown to version 3: nothing to audit.
            _ => return Ok(()),
        };
        if self.requested.len() < 1024 {
            match &pending.1 {
                Pending::Open { path, .. } | Pending::Opendir { path } => {
                    self.requested.push(path.clone())
                }
                Pending::Op(
                    OpKind::Setstat { path }
                    | OpKind::Remove { path }
                    | OpKind::Mkdir { path }
                    | OpKind::Rmdir { path },
                ) => self.requested.push(path.clone()),
                Pending::Op(OpKind::Rename { from, to }) => {
                    self.requested.push(from.clone());
                    self.requested.push(to.clone());
                }
                Pending::Op(OpKind::Symlink { link, target } | OpKind::Link { link, target }) => {
                    self.requested.push(link.clone());
                    self.requested.push(target.clone());
                }
                _ => {}
            }
        }
        self.track(pending)
    }

    pub(super) fn extended(
        &self,
        name: &[u8],
        r: &mut Reader,
    ) -> Result<Option<Pending>, SftpError> {
        let p = match name {
            b"posix-rename@openssh.com" => {
                let from = r.path()?;
                let to = r.path()?;
                Pending::Op(OpKind::Rename { from, to })
            }
            b"hardlink@openssh.com" => {
                let target = r.path()?;
                let link = r.path()?;
                Pending::Op(OpKind::Link { link, target })
            }
            b"lsetstat@openssh.com" => Pending::Op(OpKind::Setstat { path: r.path()? }),
            b"copy-data" => {
                let from = r.handle()?;
                r.u64()?;
                r.u64()?;
                let to = r.handle()?;
                Pending::CopyData { from, to }
            }
            n if READ_ONLY_EXTENSIONS.contains(&n) => return Ok(None),
            n => Pending::Op(OpKind::Extended {
                name: text(n, MAX_EXT_NAME),
            }),
        };
        Ok(Some(p))
    }
}
