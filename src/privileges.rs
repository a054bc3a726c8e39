//! Privileges of `serve`: a loud warning when it runs as root, and the
//! optional drop to `[server] user` once the listener is bound and the
//! files only root may read (keys, master key) are loaded.
//!
//! The drop is `setgroups` (the user's primary group only), `setgid`,
//! `setuid`, through glibc, which applies each call to every thread of the
//! process: tokio's workers and SQLite's threads are already running. It
//! then checks that it holds: real, effective and saved ids are the user's,
//! no supplementary group is left, and `setuid(0)` fails. A process that
//! could take root back has not dropped anything, so that is an error and
//! `serve` stops.
//!
//! What the user must still write after the drop is handed to it with
//! `chown` just before ([`writable_after_drop`]); everything else stays as
//! it was. `serve` loads what it reads only once (keys, master key, the
//! console's certificate) before the drop, and after it probes, as the
//! user, every place it writes ([`crate::health`]): a place the user cannot
//! write stops the start with its name, instead of a bastion that loses
//! audit events or reports later.
//!
//! May import: config, health, seal (the key file's lock path).

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("[server] user: no such user `{0}`")]
    NoSuchUser(String),
    #[error("[server] user: cannot look up `{user}`: {source}")]
    Lookup {
        user: String,
        source: std::io::Error,
    },
    #[error("[server] user = \"{0}\" has uid 0: name an unprivileged user")]
    Root(String),
    #[error(
        "[server] user = \"{user}\": serve must be started as root to switch to it (it runs as uid {uid})"
    )]
    NotRoot { user: String, uid: u32 },
    #[error("cannot hand {path} to user {user}: {source}")]
    Chown {
        path: PathBuf,
        user: String,
        source: std::io::Error,
    },
    #[error("cannot drop privileges to {user}: {call}: {source}")]
    Call {
        user: String,
        call: &'static str,
        source: std::io::Error,
    },
    #[error("the privilege drop to {user} did not hold: {what}")]
    NotDropped { user: String, what: String },
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "after the drop to {user}: {problem} (give {user} write access to it, or move it under the config's folder)"
    )]
    CannotWrite { user: String, problem: String },
}

/// A local account `serve` switches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Whether the process runs with root's effective uid.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// What `serve` logs at start when it runs as root and keeps root.
pub const ROOT_WARNING: &str = "WARNING: gatehouse serve is running as root and will keep root \
     for its whole life; set [server] user = \"NAME\" to drop to an unprivileged user after \
     binding, or run it as that user (a port above 1024, or CAP_NET_BIND_SERVICE)";

/// Looks `name` up in the user database (getpwnam_r).
pub fn lookup(name: &str) -> Result<Account, PrivilegeError> {
    let c_name = CString::new(name).map_err(|_| PrivilegeError::NoSuchUser(name.into()))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value to be overwritten.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    loop {
        // SAFETY: every pointer is valid for the duration of the call and
        // `buf.len()` is the buffer's real size.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            0 => break,
            libc::ERANGE if buf.len() < 1024 * 1024 => buf.resize(buf.len() * 4, 0),
            e => {
                return Err(PrivilegeError::Lookup {
                    user: name.into(),
                    source: std::io::Error::from_raw_os_error(e),
                });
            }
        }
    }
    if result.is_null() {
        return Err(PrivilegeError::NoSuchUser(name.into()));
    }
    // SAFETY: on success pw_name points into `buf`, NUL-terminated.
    let found = unsafe { CStr::from_ptr(pwd.pw_name) };
    Ok(Account {
        name: found.to_string_lossy().into_owned(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// Checks, before anything else is opened, that `serve` can switch to
/// `name`: the user exists, is not root, and the process runs as root.
pub fn prepare(name: &str) -> Result<Account, PrivilegeError> {
    let account = lookup(name)?;
    if account.uid == 0 {
        return Err(PrivilegeError::Root(name.into()));
    }
    if !running_as_root() {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        return Err(PrivilegeError::NotRoot {
            user: name.into(),
            uid,
        });
    }
    Ok(account)
}

/// Everything `serve` still writes once it runs as the account, handed to
/// it before the drop:
/// - the recordings and reports folders (with the folders below them) and
///   the report job's lock file `REPORTS/.daily.lock` (an admin's
///   `report daily` run as root may have created it);
/// - a SQLite database with its `-wal`, `-shm` and `-journal` files;
/// - the audit spool file and the `.tmp` it is rewritten through;
/// - the audit seal key with its `.lock` and `.tmp`;
/// - the folders of the SQLite database and of the audit spool (SQLite
///   and the spool create files there), but only when they lie inside the
///   configuration's folder (as the default `data/` does): a folder
///   elsewhere may be shared (`/var/lib`, `/tmp`) and is left alone; the
///   check after the drop says when the user cannot write it.
pub fn writable_after_drop(config: &Config) -> Vec<PathBuf> {
    let mut paths = vec![
        config.recordings.clone(),
        config.reports.clone(),
        config.reports.join(".daily.lock"),
    ];
    let mut folders = Vec::new();
    if let Some(file) = sqlite_file(&config.database) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            paths.push(PathBuf::from(format!("{}{suffix}", file.display())));
        }
        folders.extend(file.parent().map(Path::to_path_buf));
    }
    paths.push(config.audit_spool.clone());
    paths.push(config.audit_spool.with_extension("tmp"));
    folders.extend(config.audit_spool.parent().map(Path::to_path_buf));
    // The audit seal key is replaced through `KEYFILE.tmp` under
    // `KEYFILE.lock` (crate::seal).
    let seal = &config.audit.seal_key;
    paths.push(seal.clone());
    paths.push(crate::seal::lock_path(seal));
    let mut tmp = seal.clone().into_os_string();
    tmp.push(".tmp");
    paths.push(PathBuf::from(tmp));
    folders.extend(seal.parent().map(Path::to_path_buf));
    let base = config_folder(config);
    for folder in folders {
        if inside(&folder, &base) && !paths.contains(&folder) {
            paths.push(folder);
        }
    }
    paths
}

/// The file of a `sqlite://` database URL (`None` for other databases
/// and in-memory ones).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let file = rest.split('?').next().unwrap_or(rest);
    (!file.is_empty() && file != ":memory:").then(|| PathBuf::from(file))
}

/// The folder relative paths of the configuration are resolved against.
fn config_folder(config: &Config) -> PathBuf {
    match config.source.as_deref().and_then(Path::parent) {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `folder` is strictly below `base` (both resolved; never when
/// `base` is `/`, below which everything is).
fn inside(folder: &Path, base: &Path) -> bool {
    let (Ok(folder), Ok(base)) = (folder.canonicalize(), base.canonicalize()) else {
        return false;
    };
    base.parent().is_some() && folder != base && folder.starts_with(&base)
}

/// Creates the recordings and reports folders (while root may, so they can
/// be handed over), hands over [`writable_after_drop`], and drops to the
/// account for good.
pub fn hand_over_and_drop(account: &Account, config: &Config) -> Result<(), PrivilegeError> {
    for dir in [&config.recordings, &config.reports] {
        std::fs::create_dir_all(dir).map_err(|source| PrivilegeError::Create {
            path: dir.clone(),
            source,
        })?;
    }
    drop_to(account, &writable_after_drop(config))
}

/// Hands `paths` to the account (each path itself and, for a folder, the
/// folders below it, without following symbolic links; missing paths are
/// skipped), then drops to it for good.
pub fn drop_to(account: &Account, paths: &[PathBuf]) -> Result<(), PrivilegeError> {
    for path in paths {
        chown_tree(path, account)?;
    }
    let call = |call: &'static str| PrivilegeError::Call {
        user: account.name.clone(),
        call,
        source: std::io::Error::last_os_error(),
    };
    let gid: libc::gid_t = account.gid;
    // Order matters: groups and gid while still root, the uid last.
    // SAFETY: plain system calls on values; `&gid` is one valid gid_t.
    unsafe {
        if libc::setgroups(1, &gid) != 0 {
            return Err(call("setgroups"));
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(call("setresgid"));
        }
        if libc::setresuid(account.uid, account.uid, account.uid) != 0 {
            return Err(call("setresuid"));
        }
    }
    verify(account)
}

/// The drop holds: every id is the account's and root cannot be regained.
fn verify(account: &Account) -> Result<(), PrivilegeError> {
    let fail = |what: String| PrivilegeError::NotDropped {
        user: account.name.clone(),
        what,
    };
    let (mut r, mut e, mut s) = (0, 0, 0);
    let (mut rg, mut eg, mut sg) = (0, 0, 0);
    // SAFETY: the out-pointers are valid locals.
    let ok = unsafe {
        libc::getresuid(&mut r, &mut e, &mut s) == 0
            && libc::getresgid(&mut rg, &mut eg, &mut sg) == 0
    };
    if !ok {
        return Err(fail("cannot read the process ids".into()));
    }
    if [r, e, s] != [account.uid; 3] || [rg, eg, sg] != [account.gid; 3] {
        return Err(fail(format!("uids {r}/{e}/{s}, gids {rg}/{eg}/{sg}")));
    }
    // SAFETY: setuid(0) either fails (as it must) or succeeds; either way
    // the process stays consistent, and success is reported as an error.
    if unsafe { libc::setuid(0) } == 0 || unsafe { libc::seteuid(0) } == 0 {
        return Err(fail("setuid(0) succeeded".into()));
    }
    let mut groups = [0 as libc::gid_t; 64];
    // SAFETY: the buffer holds 64 gids and its size is passed.
    let n = unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) };
    if n < 0 {
        return Err(fail("cannot read the supplementary groups".into()));
    }
    let extra: Vec<u32> = groups
        .iter()
        .take(n as usize)
        .copied()
        .filter(|g| *g != account.gid)
        .collect();
    if !extra.is_empty() {
        return Err(fail(format!("supplementary groups {extra:?} remain")));
    }
    Ok(())
}

fn chown_tree(path: &Path, account: &Account) -> Result<(), PrivilegeError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(chown_error(path, account, e)),
    };
    lchown(path, account)?;
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| chown_error(path, account, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| chown_error(path, account, e))?;
            // Only folders below: files already there (sealed casts, old
            // reports) are never written again, and a large archive
            // would make every start slow.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                chown_tree(&entry.path(), account)?;
            }
        }
    }
    Ok(())
}

fn lchown(path: &Path, account: &Account) -> Result<(), PrivilegeError> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        chown_error(
            path,
            account,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"),
        )
    })?;
    // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
    if unsafe { libc::lchown(c.as_ptr(), account.uid, account.gid) } != 0 {
        return Err(chown_error(path, account, std::io::Error::last_os_error()));
    }
    Ok(())
}

fn chown_error(path: &Path, account: &Account, source: std::io::Error) -> PrivilegeError {
    PrivilegeError::Chown {
        path: path.to_path_buf(),
        user: account.name.clone(),
        source,
    }
}

/// Sets the process umask so that everything `serve` creates without an
/// explicit mode is the owner's alone (0600 files, 0700 folders).
pub fn owner_only_umask() {
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_unknown_users_are_looked_up_honestly() {
        let root = lookup("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(matches!(prepare("root"), Err(PrivilegeError::Root(_))));
        assert!(matches!(
            lookup("no-such-user-gatehouse"),
            Err(PrivilegeError::NoSuchUser(_))
        ));
        assert!(matches!(
            lookup("bad\0name"),
            Err(PrivilegeError::NoSuchUser(_))
        ));
    }
}
