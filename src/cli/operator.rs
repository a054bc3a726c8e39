//! Who runs a CLI command on the bastion host, for audit events such as
//! `unlock`, `session.killed` and `vault.set`.
//!
//! The answer comes from the process's real uid and the password database,
//! never from the environment: `LOGNAME`, `USER` and `SUDO_USER` are set by
//! whoever starts the process, so `LOGNAME=alice gatehouse unlock bob`
//! would otherwise put alice's name on bob's unlock.

use std::ffi::CStr;

/// The real uid's login name (`getpwuid_r`), or `uid N` when the password
/// database has no entry for it.
pub fn name() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    login_of(uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// The login name of `uid`, if the password database knows it.
fn login_of(uid: libc::uid_t) -> Option<String> {
    // Big enough for any ordinary entry; grown on ERANGE up to a bound, so
    // a hostile NSS module cannot make us allocate without end.
    let mut size = 1024usize;
    while size <= 1 << 20 {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: `passwd` is plain data; an all-zero value is valid.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and `buf` is `size`
        // bytes long; getpwuid_r writes only into `pwd` and `buf`.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), size, &mut result) };
        if rc == libc::ERANGE {
            size *= 4;
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string in
        // `buf`, which is still alive here.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_uid_zero_and_unknown_uids_have_no_name() {
        assert_eq!(login_of(0).as_deref(), Some("root"));
        assert_eq!(login_of(4_000_000_000), None);
    }
}
