//! Single policy values (names, accounts, principals, modes, CIDRs, addresses, fingerprints, dates, durations, globs); imports only the parent's `Sink` and `crate::policy` types.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use base64::Engine;
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use ipnet::IpNet;
use serde_spanned::Spanned;

use super::super::{Mode, Principal};
use super::Sink;

/// Longest user, group, server or account name accepted.
const MAX_NAME: usize = 64;

#[derive(Clone, Copy)]
pub(super) enum NameKind {
    User,
    Group,
    Server,
}

pub(super) fn check_name(name: &str, kind: NameKind) -> Result<(), String> {
    let (what, pattern, first_ok): (&str, &str, fn(char) -> bool) = match kind {
        NameKind::User => ("user", "[a-z][a-z0-9._-]*", |c| c.is_ascii_lowercase()),
        NameKind::Group => ("group", "[A-Za-z0-9][A-Za-z0-9._-]*", |c| {
            c.is_ascii_alphanumeric()
        }),
        NameKind::Server => ("server", "[A-Za-z0-9][A-Za-z0-9._-]*", |c| {
            c.is_ascii_alphanumeric()
        }),
    };
    let rest_ok = |c: char| match kind {
        NameKind::User => c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c),
        _ => c.is_ascii_alphanumeric() || "._-".contains(c),
    };
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(first_ok) && chars.all(rest_ok);
    if !valid {
        return Err(format!("invalid {what} name {name:?}: expected {pattern}"));
    }
    if name.len() > MAX_NAME {
        return Err(format!("{what} name is longer than {MAX_NAME} characters"));
    }
    Ok(())
}

/// Target accounts: letters, digits, `.`, `_`, `-` and a trailing `$`
/// (Windows machine accounts). No `@` or `+`, which the login name uses.
pub(super) fn check_account(name: &str) -> Result<(), String> {
    let body = name.strip_suffix('$').unwrap_or(name);
    let mut chars = body.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !valid {
        return Err(format!(
            "invalid account name {name:?}: expected [A-Za-z0-9_][A-Za-z0-9._-]*"
        ));
    }
    if name.len() > MAX_NAME {
        return Err(format!("account name is longer than {MAX_NAME} characters"));
    }
    Ok(())
}

pub(super) fn parse_principal(s: &str) -> Result<Principal, String> {
    if let Some(u) = s.strip_prefix("user:") {
        check_name(u, NameKind::User)?;
        Ok(Principal::User(u.to_owned()))
    } else if let Some(g) = s.strip_prefix("group:") {
        check_name(g, NameKind::Group)?;
        Ok(Principal::Group(g.to_owned()))
    } else {
        Err(format!(
            "invalid allow entry {s:?}: expected \"user:NAME\" or \"group:NAME\""
        ))
    }
}

pub(super) fn parse_mode(s: &str) -> Result<Mode, String> {
    Ok(match s {
        "global" => Mode::Global,
        "firewall" => Mode::Firewall,
        "ssh-forwarding" => Mode::SshForwarding,
        "vpn" => Mode::Vpn,
        "on-request" => Mode::OnRequest,
        "desktop" => Mode::Desktop,
        "clone" => Mode::Clone,
        other => {
            return Err(format!(
                "unknown mode `{other}`: expected global, firewall, ssh-forwarding, vpn, on-request, desktop or clone"
            ));
        }
    })
}

/// A source CIDR; a bare address means that one address (/32 or /128).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<IpNet>() {
        return Ok(n);
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err(format!(
        "invalid CIDR {s:?}: expected an address or ADDRESS/PREFIX, such as 192.0.2.0/24"
    ))
}

pub(super) fn cidrs(sink: &mut Sink<'_>, file: usize, list: &[Spanned<String>]) -> Vec<IpNet> {
    let mut out = Vec::new();
    for c in list {
        match parse_cidr(c.get_ref()) {
            Ok(n) => out.push(n),
            Err(m) => sink.at(file, &c.span(), m),
        }
    }
    out
}

/// `host[:port]`, `[v6]:port` or a bare IPv6 address; port 22 by default.
pub fn parse_address(s: &str) -> Result<(String, u16), String> {
    let bad = |why: &str| format!("invalid address {s:?}: {why}");
    let parse_port = |p: &str| match p.parse::<u16>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(bad("port must be 1-65535")),
    };
    if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(bad("missing `]`"));
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err(bad("not an IPv6 address between [ ]"));
        }
        let port = match after {
            "" => 22,
            _ => match after.strip_prefix(':') {
                Some(p) => parse_port(p)?,
                None => return Err(bad("expected `:PORT` after `]`")),
            },
        };
        return Ok((v6.to_owned(), port));
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        return Ok((s.to_owned(), 22));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, parse_port(p)?),
        None => (s, 22),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
        && !host.starts_with(['.', '-']);
    if !host_ok {
        return Err(bad("expected host[:port]"));
    }
    Ok((host.to_owned(), port))
}

/// `SHA256:` and 43 characters of unpadded base64 (32 bytes), as printed
/// by `ssh-keygen -lf`.
pub(crate) fn check_fingerprint(s: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "invalid host key fingerprint {s:?}: expected SHA256: and 43 base64 characters, as `ssh-keygen -lf` prints"
        )
    };
    let b64 = s.strip_prefix("SHA256:").ok_or_else(bad)?;
    if b64.len() != 43 {
        return Err(bad());
    }
    match base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64) {
        Ok(bytes) if bytes.len() == 32 => Ok(()),
        _ => Err(bad()),
    }
}

pub(super) fn parse_date(v: &toml::Value) -> Result<time::Date, String> {
    let text = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) if d.time.is_none() && d.offset.is_none() => d.to_string(),
        other => {
            return Err(format!("invalid date {other}: expected \"YYYY-MM-DD\""));
        }
    };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text.trim(), format)
        .map_err(|e| format!("invalid date {text:?}: expected YYYY-MM-DD ({e})"))
}

pub(super) fn duration(
    sink: &mut Sink<'_>,
    file: usize,
    v: Option<&Spanned<String>>,
) -> Option<Duration> {
    let v = v?;
    match humantime::parse_duration(v.get_ref().trim()) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            sink.at(file, &v.span(), "duration must be longer than zero");
            None
        }
        Err(e) => {
            sink.at(
                file,
                &v.span(),
                format!(
                    "invalid duration {:?}: {e} (examples: \"30m\", \"8h\", \"1h 30m\")",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

/// A command glob: `*` matches anything, `/` and spaces included.
pub(crate) fn command_glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
}

pub(super) fn globs(
    sink: &mut Sink<'_>,
    file: usize,
    list: &[Spanned<String>],
) -> (GlobSet, Vec<String>) {
    let mut builder = GlobSetBuilder::new();
    let mut kept = Vec::new();
    for g in list {
        let pattern = g.get_ref().trim();
        if pattern.is_empty() {
            sink.at(file, &g.span(), "empty command pattern");
            continue;
        }
        match command_glob(pattern) {
            Ok(glob) => {
                builder.add(glob);
                kept.push(pattern.to_owned());
            }
            Err(e) => sink.at(file, &g.span(), format!("invalid command pattern: {e}")),
        }
    }
    // Each glob compiled alone above; only the combined regex size limit
    // can fail here, and it is reported like any other problem.
    match builder.build() {
        Ok(set) => (set, kept),
        Err(e) => {
            sink.at(
                file,
                &list.first().map(|g| g.span()).unwrap_or(0..0),
                format!("command patterns: {e}"),
            );
            (GlobSet::empty(), Vec::new())
        }
    }
}
