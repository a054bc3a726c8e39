//! Who must give a second factor for a login: a pure function of the
//! settings, the policy's user and server, and what the store says
//! (enrolled? a cached approval?), tested table-driven.
//!
//! The rules, in order:
//! 1. A security-key login (`sk-*` key with the user-presence flag) is
//!    already two factors: [`Need::NotNeeded`].
//! 2. A factor is required when `[auth] mfa = "required"`, the user says
//!    `mfa = "required"`, the server says `mfa = "every-session"`, or
//!    `[auth] mfa = "optional"` and the user has enrolled one. Otherwise
//!    [`Need::NotNeeded`] (`mfa = "off"` asks only the users and servers
//!    the policy marks).
//! 3. Required but not enrolled: [`Need::EnrollFirst`] with the message
//!    that tells how.
//! 4. An every-session server ignores the cache: [`Need::Ask`].
//! 5. A cached approval for this user, key and source: [`Need::Cached`];
//!    else [`Need::Ask`].

use std::net::SocketAddr;

use crate::config::{AuthConfig, MfaMode};
use crate::policy::{Server, User};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    NotNeeded,
    /// A cached approval stands in for the code (`detail.factors` gets `cached`).
    Cached,
    /// Ask for a code (keyboard-interactive, `Verification code: `).
    Ask,
    /// No factor yet: only `mfa enroll` and `mfa status` in command mode;
    /// any server is refused with `gatehouse: access denied: ` and this
    /// message.
    EnrollFirst {
        message: String,
    },
}

/// What [`need`] decides from.
#[derive(Debug, Clone, Copy)]
pub struct NeedInput<'a> {
    pub auth: &'a AuthConfig,
    pub user: &'a User,
    /// The server the login names; `None` for command mode.
    pub server: Option<&'a Server>,
    pub enrolled: bool,
    /// A cached approval for this user, key fingerprint and source address.
    pub cached: bool,
    /// The key is a security key whose signature had the user-presence flag.
    pub security_key: bool,
    /// `[server] public_name`, when set.
    pub public_name: Option<&'a str>,
    pub listen: SocketAddr,
}

pub fn need(i: NeedInput<'_>) -> Need {
    if i.security_key {
        return Need::NotNeeded;
    }
    let every_session = i.server.is_some_and(|s| s.mfa_every_session);
    let required = i.auth.mfa == MfaMode::Required
        || i.user.mfa_required
        || every_session
        || (i.auth.mfa == MfaMode::Optional && i.enrolled);
    if !required {
        return Need::NotNeeded;
    }
    if !i.enrolled {
        return Need::EnrollFirst {
            message: enroll_hint(&i.user.name, i.public_name, i.listen),
        };
    }
    if i.cached && !every_session {
        return Need::Cached;
    }
    Need::Ask
}

/// `enroll a second factor first: ssh -t [-p PORT] STAFF@BASTION mfa enroll`,
/// BASTION being `public_name`, else the listen address.
pub fn enroll_hint(user: &str, public_name: Option<&str>, listen: SocketAddr) -> String {
    let host = match public_name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => name.to_string(),
        None => listen.ip().to_string(),
    };
    let port = match listen.port() {
        22 => String::new(),
        p => format!("-p {p} "),
    };
    format!("enroll a second factor first: ssh -t {port}{user}@{host} mfa enroll")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn auth(mfa: MfaMode) -> AuthConfig {
        AuthConfig {
            mfa,
            mfa_cache: Duration::from_secs(8 * 3600),
            mfa_self_enroll: true,
        }
    }

    fn policy() -> crate::policy::Policy {
        let text = "[[user]]\nname = \"alice\"\nkeys = []\n\
                    [[user]]\nname = \"bob\"\nkeys = []\nmfa = \"required\"\n\
                    [[server]]\nname = \"web\"\naddress = \"127.0.0.1:22\"\nhost_key = \"SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM\"\n\
                    mode = \"ssh-forwarding\"\naccounts = [\"root\"]\nallow = [\"user:alice\", \"user:bob\"]\n\
                    [[server]]\nname = \"db\"\naddress = \"127.0.0.1:22\"\nhost_key = \"SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM\"\n\
                    mode = \"ssh-forwarding\"\naccounts = [\"root\"]\nallow = [\"user:alice\", \"user:bob\"]\nmfa = \"every-session\"\n";
        crate::policy::Policy::from_sources(&[("p.toml".into(), text.into())]).unwrap()
    }

    /// (mode, user, server, enrolled, cached, security key) -> need
    type Row<'a> = (MfaMode, &'a str, Option<&'a str>, bool, bool, bool, Need);

    #[test]
    fn the_table() {
        use MfaMode::*;
        let p = policy();
        let listen: SocketAddr = "0.0.0.0:2222".parse().unwrap();
        let enroll = || Need::EnrollFirst {
            message:
                "enroll a second factor first: ssh -t -p 2222 alice@bastion.example.com mfa enroll"
                    .into(),
        };
        let enroll_bob = || Need::EnrollFirst {
            message:
                "enroll a second factor first: ssh -t -p 2222 bob@bastion.example.com mfa enroll"
                    .into(),
        };
        // (mode, user, server, enrolled, cached, security key) -> need
        let rows: Vec<Row<'_>> = vec![
            (
                Off,
                "alice",
                Some("web"),
                false,
                false,
                false,
                Need::NotNeeded,
            ),
            (
                Off,
                "alice",
                Some("web"),
                true,
                false,
                false,
                Need::NotNeeded,
            ),
            (Off, "alice", None, true, true, false, Need::NotNeeded),
            (Off, "bob", Some("web"), false, false, false, enroll_bob()),
            (Off, "bob", None, false, false, false, enroll_bob()),
            (Off, "bob", Some("web"), true, false, false, Need::Ask),
            (Off, "bob", Some("web"), true, true, false, Need::Cached),
            (Off, "alice", Some("db"), false, false, false, enroll()),
            (Off, "alice", Some("db"), true, true, false, Need::Ask),
            (
                Optional,
                "alice",
                Some("web"),
                false,
                false,
                false,
                Need::NotNeeded,
            ),
            (
                Optional,
                "alice",
                Some("web"),
                true,
                false,
                false,
                Need::Ask,
            ),
            (
                Optional,
                "alice",
                Some("web"),
                true,
                true,
                false,
                Need::Cached,
            ),
            (Optional, "alice", Some("db"), true, true, false, Need::Ask),
            (
                Required,
                "alice",
                Some("web"),
                false,
                false,
                false,
                enroll(),
            ),
            (Required, "alice", None, false, true, false, enroll()),
            (Required, "alice", None, true, false, false, Need::Ask),
            (Required, "alice", None, true, true, false, Need::Cached),
            (Required, "alice", Some("db"), true, true, false, Need::Ask),
            (
                Required,
                "alice",
                Some("db"),
                false,
                false,
                true,
                Need::NotNeeded,
            ),
            (
                Required,
                "bob",
                Some("web"),
                false,
                false,
                true,
                Need::NotNeeded,
            ),
        ];
        for (mode, user, server, enrolled, cached, sk, want) in rows {
            let a = auth(mode);
            let got = need(NeedInput {
                auth: &a,
                user: p.user(user).unwrap(),
                server: server.map(|s| p.server(s).unwrap()),
                enrolled,
                cached,
                security_key: sk,
                public_name: Some("bastion.example.com"),
                listen,
            });
            assert_eq!(
                got, want,
                "{mode:?} {user} {server:?} enrolled={enrolled} cached={cached} sk={sk}"
            );
        }
    }

    #[test]
    fn the_enroll_hint_names_the_bastion() {
        let l22: SocketAddr = "192.0.2.7:22".parse().unwrap();
        let l2222: SocketAddr = "192.0.2.7:2222".parse().unwrap();
        assert_eq!(
            enroll_hint("alice", None, l22),
            "enroll a second factor first: ssh -t alice@192.0.2.7 mfa enroll"
        );
        assert_eq!(
            enroll_hint("alice", Some("gh.example"), l2222),
            "enroll a second factor first: ssh -t -p 2222 alice@gh.example mfa enroll"
        );
        assert_eq!(
            enroll_hint("alice", Some(" "), l2222),
            "enroll a second factor first: ssh -t -p 2222 alice@192.0.2.7 mfa enroll"
        );
    }
}
