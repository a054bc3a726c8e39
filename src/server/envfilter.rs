//! Which environment variables a client may pass to a target
//! (`[limits] accept_env`, globs; default `LANG`, `LC_*`, `TERM` and
//! `GIT_PROTOCOL`, which git sends with every clone, fetch and push and
//! which only chooses git's wire protocol version).
//!
//! A target configured with `AcceptEnv *` would otherwise let `SetEnv
//! BASH_ENV=...` or `LD_PRELOAD=...` run code of the client's choosing
//! before the allowed command, out of sight of the audit: so the bastion
//! passes only what the allowlist names and audits the rest (by name,
//! never by value).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Longest variable name passed on; longer names are refused.
const MAX_NAME: usize = 64;
/// Longest value passed on; a longer one refuses the variable.
const MAX_VALUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[error("accept_env pattern {pattern:?}: {source}")]
pub struct EnvFilterError {
    pattern: String,
    source: globset::Error,
}

/// The compiled allowlist.
#[derive(Debug, Clone)]
pub struct EnvFilter {
    set: GlobSet,
}

impl EnvFilter {
    pub fn new(patterns: &[String]) -> Result<EnvFilter, EnvFilterError> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            let glob = GlobBuilder::new(p)
                .literal_separator(false)
                .build()
                .map_err(|source| EnvFilterError {
                    pattern: p.clone(),
                    source,
                })?;
            b.add(glob);
        }
        let set = b.build().map_err(|source| EnvFilterError {
            pattern: patterns.join(","),
            source,
        })?;
        Ok(EnvFilter { set })
    }

    /// Passes nothing: what an unusable allowlist falls back to.
    pub fn deny_all() -> EnvFilter {
        EnvFilter {
            set: GlobSet::empty(),
        }
    }

    /// Whether `name=value` may go to the target: a plain shell variable
    /// name matching the allowlist, and a value of bounded length without
    /// control characters.
    pub fn allows(&self, name: &str, value: &str) -> bool {
        plain_name(name)
            && value.len() <= MAX_VALUE
            && !value.chars().any(char::is_control)
            && self.set.is_match(name)
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, at most `MAX_NAME` bytes.
fn plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME
}

/// The variables refused on one channel, audited as one event when the
/// channel starts its shell, command or subsystem (or closes).
#[derive(Debug, Default)]
pub struct Refused {
    /// Sanitized names, the first few.
    pub names: Vec<String>,
    pub count: usize,
}

/// A refused variable's name as it may appear in an audit event: at most
/// `MAX_NAME` characters, anything but `[A-Za-z0-9_]` shown as `?`.
pub fn audit_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(MAX_NAME)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if name.chars().count() > MAX_NAME {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_filter() -> EnvFilter {
        EnvFilter::new(&crate::config::Config::default().limits.accept_env).unwrap()
    }

    #[test]
    fn default_allowlist() {
        let f = default_filter();
        assert!(f.allows("LANG", "en_US.UTF-8"));
        assert!(f.allows("LC_FOO", "bar"));
        assert!(f.allows("TERM", "xterm"));
        // git's `GIT_PROTOCOL=version=2` (issue 17 item 8).
        assert!(f.allows("GIT_PROTOCOL", "version=2"));
        for bad in [
            "BASH_ENV",
            "LD_PRELOAD",
            "lang",
            "LANGX",
            "PATH",
            "LC",
            "",
            "GIT_SSH_COMMAND",
            "GIT_DIR",
        ] {
            assert!(!f.allows(bad, "x"), "{bad}");
        }
    }

    #[test]
    fn hostile_names_and_values_are_refused() {
        let f = EnvFilter::new(&["*".into()]).unwrap();
        assert!(f.allows("ANYTHING", "x"));
        assert!(!f.allows("LC_X=1", "x"));
        assert!(!f.allows("LC\nX", "x"));
        assert!(!f.allows("1LC", "x"));
        assert!(!f.allows(&"A".repeat(65), "x"));
        assert!(!f.allows("LANG", "a\nb"));
        assert!(!f.allows("LANG", &"a".repeat(2000)));
    }

    #[test]
    fn audit_names_are_short_and_plain() {
        assert_eq!(audit_name("BASH_ENV"), "BASH_ENV");
        assert_eq!(audit_name("A\u{202e}B=c"), "A?B?c");
        let long = audit_name(&"X".repeat(500));
        assert_eq!(long.len(), MAX_NAME + 3);
    }

    #[test]
    fn a_bad_pattern_is_an_error() {
        assert!(EnvFilter::new(&["LC_[".into()]).is_err());
    }
}
