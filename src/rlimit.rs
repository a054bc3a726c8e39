//! The process's open-file limit (`RLIMIT_NOFILE`). `serve` raises the
//! soft limit to the hard one at start: a bastion holds a socket or two
//! per session, and the distribution's default soft limit (often 1024)
//! is reached long before memory or CPU. The web console and the admin
//! listener size their connection caps from the limit read here (see
//! `web::conns`), so that whatever they receive, descriptors stay free for
//! the SSH listener.

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Returns the soft
/// limit in force afterwards; on failure, the error and the limit stays.
pub fn raise_nofile() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(nofile())
}

/// The soft `RLIMIT_NOFILE` now (`u64::MAX` for "unlimited"; 1024, the
/// common default, if it cannot be read).
pub fn nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        lim.rlim_cur
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let after = super::raise_nofile().unwrap();
        assert_eq!(after, super::nofile());
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
