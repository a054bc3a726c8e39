//! The SSH login name: `STAFF+ACCOUNT@SERVER`, `STAFF@SERVER`, or `STAFF`
//! alone for command mode (contract section 5). OpenSSH splits
//! `user@host` at the last `@`, so the login name arrives as
//! `alice+root@web1`. Parsing is strict: anything else is refused.
//!
//! Layer: the bottom of `server/` (pure); imports nothing of `server/`.

/// What a login name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub staff: String,
    pub account: Option<String>,
    /// `None`: command mode (no target), also used for ProxyJump.
    pub server: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("login name is too long")]
    TooLong,
    #[error("login name does not parse: use STAFF+ACCOUNT@SERVER, STAFF@SERVER or STAFF")]
    Malformed,
}

const MAX_LEN: usize = 200;

/// What proved a login (contract section 11), decided at authentication
/// and kept by the connection: `auth.success`'s `detail.factors`, and what
/// command mode and forwards may still do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Factors {
    /// `key`, `totp`, `recovery`, `cached`, `security-key`, in order.
    pub used: Vec<&'static str>,
    /// The user must give a second factor and has none enrolled: only
    /// `mfa enroll` and `mfa status` may run; anything else is refused
    /// with this message (after `gatehouse: access denied: `).
    pub enroll_only: Option<String>,
}

impl Factors {
    /// A second factor given at this very login (not a cached approval):
    /// what an `every-session` server asks for.
    pub fn fresh_second(&self) -> bool {
        self.used
            .iter()
            .any(|f| matches!(*f, "totp" | "recovery" | "security-key"))
    }
}

fn staff_ok(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'))
        && s.len() <= 64
}

fn account_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '$'))
        && !s.starts_with('-')
}

fn server_ok(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && s.len() <= 128
}

/// The staff part of a login name, if it is well formed, even when the rest
/// is not: lets the bastion authenticate the person and then explain the
/// refusal, instead of a bare "Permission denied".
pub fn staff_part(name: &str) -> Option<&str> {
    if name.len() > MAX_LEN {
        return None;
    }
    let end = name.find(['+', '@']).unwrap_or(name.len());
    let staff = name.get(..end)?;
    staff_ok(staff).then_some(staff)
}

pub fn parse(name: &str) -> Result<Login, LoginError> {
    if name.len() > MAX_LEN {
        return Err(LoginError::TooLong);
    }
    let (who, server) = match name.split_once('@') {
        Some((w, s)) => (w, Some(s)),
        None => (name, None),
    };
    let (staff, account) = match who.split_once('+') {
        Some((s, a)) => (s, Some(a)),
        None => (who, None),
    };
    if !staff_ok(staff) {
        return Err(LoginError::Malformed);
    }
    if let Some(a) = account
        && !account_ok(a)
    {
        return Err(LoginError::Malformed);
    }
    if let Some(s) = server
        && !server_ok(s)
    {
        return Err(LoginError::Malformed);
    }
    if account.is_some() && server.is_none() {
        return Err(LoginError::Malformed);
    }
    Ok(Login {
        staff: staff.to_string(),
        account: account.map(str::to_string),
        server: server.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &str, staff: &str, account: Option<&str>, server: Option<&str>) {
        assert_eq!(
            parse(name),
            Ok(Login {
                staff: staff.into(),
                account: account.map(Into::into),
                server: server.map(Into::into),
            }),
            "{name}"
        );
    }

    #[test]
    fn accepted_forms() {
        ok("alice+root@web1", "alice", Some("root"), Some("web1"));
        ok("alice@prod-db", "alice", None, Some("prod-db"));
        ok("alice", "alice", None, None);
        ok(
            "bob.smith+Administrator@win.example",
            "bob.smith",
            Some("Administrator"),
            Some("win.example"),
        );
    }

    #[test]
    fn refused_forms() {
        for bad in [
            "",
            "Alice@web1",
            "alice+@web1",
            "alice+root",
            "alice@",
            "alice@web1@x",
            "alice+ro ot@web1",
            "alice+root@we/b1",
            "alice:root@web1",
            "alice+-oProxyCommand@web1",
            "alice\u{0}@web1",
            "alice@-web1",
            "älice@web1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(parse(&"a".repeat(10_000)), Err(LoginError::TooLong));
    }

    #[test]
    fn staff_part_survives_a_bad_tail() {
        assert_eq!(staff_part("alice+root@we/b1"), Some("alice"));
        assert_eq!(staff_part("alice"), Some("alice"));
        assert_eq!(staff_part("Alice@x"), None);
    }
}
