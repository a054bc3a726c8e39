//! What one command-mode command answers: text for stdout, text for
//! stderr, and the exit status the client sees. Imports nothing.

/// Output of one command: text for stdout, text for stderr, exit status.
pub(crate) struct Reply {
    pub stdout: String,
    pub stderr: String,
    pub status: u32,
}

impl Reply {
    pub(crate) fn ok(stdout: String) -> Self {
        Reply {
            stdout,
            stderr: String::new(),
            status: 0,
        }
    }

    pub(crate) fn fail(status: u32, stderr: String) -> Self {
        Reply {
            stdout: String::new(),
            stderr,
            status,
        }
    }

    /// A command line that does not parse: the reason, then the usage
    /// line, exit status 2.
    pub(crate) fn usage(msg: &str, usage: &str) -> Self {
        Reply::fail(2, format!("gatehouse: {msg}\n{usage}\n"))
    }
}
