//! Validation: raw entries from every file into the checked [`Policy`]; owns entry and cross-entry checks, imports only `policy::raw`, `policy`'s types and its child `values`.
//!
//! Every problem becomes a [`Diagnostic`] pointing at the offending value
//! (or at the entry's table when a required key is missing). Checking goes
//! on after a problem so that one run reports everything it can; a policy
//! is returned only when there is none.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use ring::digest;
use serde_spanned::Spanned;

mod values;

use super::raw::{self, Entry, RawServer, RawUser};
use super::{
    Diagnostic, Mode, Policy, Principal, RecordMode, Role, Server, StaffKey, TargetAuth, User,
};
pub(crate) use values::command_glob;
use values::{
    NameKind, check_account, check_fingerprint, check_name, cidrs, duration, globs, parse_date,
    parse_mode, parse_principal,
};
pub use values::{parse_address, parse_cidr};

pub fn load_dir(dir: &Path) -> Result<Policy, Vec<Diagnostic>> {
    load_dir_with_digest(dir).1
}

/// [`load_dir`], with the digest of what was read (the files' names and
/// contents; a valid policy's `digest` is the same value) whether or not it
/// is valid: from one read, so a watcher can tell an invalid folder it has
/// already rejected from a new edit.
pub fn load_dir_with_digest(dir: &Path) -> (String, Result<Policy, Vec<Diagnostic>>) {
    load_dir_with_digest_opts(dir, false)
}

/// [`load_dir_with_digest`]; `open_groups`: groups named in `allow` need
/// not be listed by a `[[user]]` (the directory supplies them).
pub fn load_dir_with_digest_opts(
    dir: &Path,
    open_groups: bool,
) -> (String, Result<Policy, Vec<Diagnostic>>) {
    let (sources, mut problems) = raw::read_dir_sources(dir);
    // The digest uses names relative to the folder, so that the same files
    // give the same digest wherever the folder lives (several nodes).
    let named: Vec<PathBuf> = sources
        .iter()
        .map(|(p, _)| p.strip_prefix(dir).unwrap_or(p).to_path_buf())
        .collect();
    let name = |i: usize| named.get(i).map(PathBuf::as_path);
    let digest = content_digest(&sources, name);
    let result = match build(&sources, name, open_groups) {
        Ok(policy) if problems.is_empty() => Ok(policy),
        Ok(_) => {
            sort(&mut problems);
            Err(problems)
        }
        Err(mut more) => {
            problems.append(&mut more);
            sort(&mut problems);
            Err(problems)
        }
    };
    (digest, result)
}

/// SHA-256 over each file's name (from `digest_name`, else its path) and
/// text, length-prefixed, in order.
fn content_digest<'n>(
    sources: &[(PathBuf, String)],
    digest_name: impl Fn(usize) -> Option<&'n Path>,
) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for (i, (path, text)) in sources.iter().enumerate() {
        let name = digest_name(i).unwrap_or(path);
        let name = name.to_string_lossy();
        ctx.update(&(name.len() as u64).to_be_bytes());
        ctx.update(name.as_bytes());
        ctx.update(&(text.len() as u64).to_be_bytes());
        ctx.update(text.as_bytes());
    }
    hex::encode(ctx.finish().as_ref())
}

pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<Policy, Vec<Diagnostic>> {
    build(sources, |i| sources.get(i).map(|(p, _)| p.as_path()), false)
}

/// A staff name as a `[[user]]` needs it (`[a-z][a-z0-9._-]*`, at most
/// 64 characters): the directory's names are checked the same way.
pub fn check_staff_name(name: &str) -> Result<(), String> {
    values::check_name(name, NameKind::User)
}

/// A group name as `groups` and `allow` need it.
pub fn check_group_name(name: &str) -> Result<(), String> {
    values::check_name(name, NameKind::Group)
}

fn sort(d: &mut [Diagnostic]) {
    d.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
}

/// Collects diagnostics, translating spans into lines and columns.
struct Sink<'a> {
    sources: &'a [(PathBuf, String)],
    /// Per file, the byte offset where each line starts (built on first
    /// use): every entry records its origin, so a linear scan per lookup
    /// would make checking a large policy quadratic.
    lines: Vec<std::sync::OnceLock<Vec<usize>>>,
    diags: Vec<Diagnostic>,
}

impl Sink<'_> {
    fn at(&mut self, file: usize, span: &Range<usize>, message: impl Into<String>) {
        let (path, text) = match self.sources.get(file) {
            Some((p, t)) => (p.clone(), t.as_str()),
            None => (PathBuf::new(), ""),
        };
        let (line, col) = self.line_col(file, text, span.start);
        self.diags.push(Diagnostic {
            file: path,
            line,
            col,
            message: message.into(),
        });
    }

    fn origin(&self, file: usize, span: &Range<usize>) -> String {
        let (path, text) = match self.sources.get(file) {
            Some((p, t)) => (p.display().to_string(), t.as_str()),
            None => (String::new(), ""),
        };
        format!("{path}:{}", self.line_col(file, text, span.start).0)
    }

    fn line_col(&self, file: usize, text: &str, offset: usize) -> (usize, usize) {
        match self.lines.get(file) {
            Some(cell) => line_col(cell.get_or_init(|| line_starts(text)), text, offset),
            None => line_col(&line_starts(text), text, offset),
        }
    }
}

/// Byte offsets where lines start: 0, then one past each `\n`.
fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(starts: &[usize], text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    // The last line start at or before `end`.
    let line = starts.partition_point(|&s| s <= end).max(1);
    let line_start = starts.get(line - 1).copied().unwrap_or(0);
    let col = text.get(line_start..end).unwrap_or("").chars().count() + 1;
    (line, col)
}

/// A checked user with the spans still needed for cross-entry checks.
struct UserDraft {
    file: usize,
    name_span: Range<usize>,
    user: User,
}

struct ServerDraft {
    file: usize,
    name_span: Range<usize>,
    allow: Vec<Spanned<String>>,
    via_span: Option<Range<usize>>,
    clone_span: Option<Range<usize>>,
    server: Server,
}

/// Names of entries that failed to parse, so that references to them are
/// not reported a second time as unknown.
#[derive(Default)]
struct Broken {
    users: BTreeSet<String>,
    servers: BTreeSet<String>,
    groups: BTreeSet<String>,
}

fn build<'n>(
    sources: &[(PathBuf, String)],
    digest_name: impl Fn(usize) -> Option<&'n Path>,
    open_groups: bool,
) -> Result<Policy, Vec<Diagnostic>> {
    let mut sink = Sink {
        sources,
        lines: sources.iter().map(|_| std::sync::OnceLock::new()).collect(),
        diags: Vec::new(),
    };
    let (users, servers, broken) = check_entries(&mut sink, sources);
    let user_map = merge_users(&mut sink, users);
    let groups: BTreeSet<&str> = user_map
        .values()
        .flat_map(|u| u.groups.iter().map(String::as_str))
        .collect();
    let kept = merge_servers(&mut sink, servers);
    check_references(&mut sink, &kept, &user_map, &groups, &broken, open_groups);

    if !sink.diags.is_empty() {
        let mut diags = sink.diags;
        sort(&mut diags);
        return Err(diags);
    }

    let digest = content_digest(sources, digest_name);
    Ok(Policy {
        users: user_map,
        servers: kept
            .into_iter()
            .map(|d| (d.server.name.clone(), d.server))
            .collect(),
        digest,
        files: sources.iter().map(|(p, _)| p.clone()).collect(),
        directory_users: BTreeSet::new(),
    })
}

/// Every file parsed and every entry checked on its own.
fn check_entries(
    sink: &mut Sink<'_>,
    sources: &[(PathBuf, String)],
) -> (Vec<UserDraft>, Vec<ServerDraft>, Broken) {
    let mut users = Vec::new();
    let mut servers = Vec::new();
    let mut broken = Broken::default();
    for (i, (_, text)) in sources.iter().enumerate() {
        let parsed = raw::parse_file(text);
        for (span, message) in &parsed.problems {
            sink.at(i, span, message.clone());
        }
        broken.users.extend(parsed.broken_users);
        broken.servers.extend(parsed.broken_servers);
        broken.groups.extend(parsed.broken_groups);
        for entry in parsed.users {
            users.push(check_user(sink, i, entry));
        }
        for entry in parsed.servers {
            servers.push(check_server(sink, i, entry));
        }
    }
    (users, servers, broken)
}

/// Users by name; duplicates and staff keys shared between users reported.
fn merge_users(sink: &mut Sink<'_>, users: Vec<UserDraft>) -> BTreeMap<String, User> {
    let mut user_map: BTreeMap<String, User> = BTreeMap::new();
    let mut user_where: HashMap<String, String> = HashMap::new();
    let mut key_owner: HashMap<String, String> = HashMap::new();
    for d in users {
        let name = d.user.name.clone();
        if let Some(first) = user_where.get(&name) {
            sink.at(
                d.file,
                &d.name_span,
                format!("duplicate user `{name}` (first defined at {first})"),
            );
            continue;
        }
        for k in &d.user.keys {
            let blob = k.fingerprint.clone();
            if let Some(owner) = key_owner.get(&blob) {
                sink.at(
                    d.file,
                    &d.name_span,
                    format!(
                        "key {} of user `{name}` is also a key of user `{owner}`: staff keys are personal",
                        k.fingerprint
                    ),
                );
            } else {
                key_owner.insert(blob, name.clone());
            }
        }
        user_where.insert(name.clone(), sink.origin(d.file, &d.name_span));
        user_map.insert(name, d.user);
    }
    user_map
}

/// Servers in order, the second of two with one name reported and dropped.
fn merge_servers(sink: &mut Sink<'_>, servers: Vec<ServerDraft>) -> Vec<ServerDraft> {
    let mut server_where: HashMap<String, String> = HashMap::new();
    let mut kept = Vec::new();
    for d in servers {
        let name = d.server.name.clone();
        if let Some(first) = server_where.get(&name) {
            sink.at(
                d.file,
                &d.name_span,
                format!("duplicate server `{name}` (first defined at {first})"),
            );
            continue;
        }
        server_where.insert(name, sink.origin(d.file, &d.name_span));
        kept.push(d);
    }
    kept
}

/// Cross-entry checks: `allow` names known users and groups, `via` and
/// `clone` name suitable other servers.
fn check_references(
    sink: &mut Sink<'_>,
    kept: &[ServerDraft],
    user_map: &BTreeMap<String, User>,
    groups: &BTreeSet<&str>,
    broken: &Broken,
    open_groups: bool,
) {
    let modes: HashMap<String, Mode> = kept
        .iter()
        .map(|d| (d.server.name.clone(), d.server.mode))
        .collect();
    let vias: HashMap<String, String> = kept
        .iter()
        .filter_map(|d| Some((d.server.name.clone(), d.server.via.clone()?)))
        .collect();
    for d in kept {
        check_allow_refs(sink, d, user_map, groups, broken, open_groups);
        check_via(sink, d, &modes, &vias, broken);
        check_clone(sink, d, &modes, broken);
    }
}

fn check_allow_refs(
    sink: &mut Sink<'_>,
    d: &ServerDraft,
    user_map: &BTreeMap<String, User>,
    groups: &BTreeSet<&str>,
    broken: &Broken,
    open_groups: bool,
) {
    for entry in &d.allow {
        match parse_principal(entry.get_ref()) {
            Ok(Principal::User(u)) => {
                if !user_map.contains_key(&u) && !broken.users.contains(&u) {
                    sink.at(d.file, &entry.span(), format!("unknown user `{u}`"));
                }
            }
            Ok(Principal::Group(g)) => {
                if !open_groups && !groups.contains(g.as_str()) && !broken.groups.contains(&g) {
                    sink.at(
                        d.file,
                        &entry.span(),
                        format!("unknown group `{g}`: no user lists it in `groups`"),
                    );
                }
            }
            // Reported by check_server.
            Err(_) => {}
        }
    }
}

fn check_via(
    sink: &mut Sink<'_>,
    d: &ServerDraft,
    modes: &HashMap<String, Mode>,
    vias: &HashMap<String, String>,
    broken: &Broken,
) {
    let name = &d.server.name;
    // A `via` in the wrong mode is already reported.
    let via = d.server.via.as_ref().filter(|_| d.server.mode == Mode::Vpn);
    let (Some(via), Some(span)) = (via, &d.via_span) else {
        return;
    };
    match modes.get(via) {
        _ if via == name => sink.at(d.file, span, "`via` must name another server"),
        None if broken.servers.contains(via) => {}
        None => sink.at(d.file, span, format!("`via` names unknown server `{via}`")),
        Some(m @ (Mode::Desktop | Mode::Clone)) => sink.at(
            d.file,
            span,
            format!(
                "`via` names server `{via}` in mode {}: a hop must accept SSH logins",
                m.as_str()
            ),
        ),
        Some(_) => {
            if via_loops(name, vias) {
                sink.at(
                    d.file,
                    span,
                    format!("`via` chain starting at `{name}` loops back to itself"),
                );
            }
        }
    }
}

fn check_clone(
    sink: &mut Sink<'_>,
    d: &ServerDraft,
    modes: &HashMap<String, Mode>,
    broken: &Broken,
) {
    let name = &d.server.name;
    // A `clone` in the wrong mode is already reported.
    let clone = d
        .server
        .clone
        .as_ref()
        .filter(|_| d.server.mode == Mode::Clone);
    let (Some(clone), Some(span)) = (clone, &d.clone_span) else {
        return;
    };
    match modes.get(clone) {
        _ if clone == name => sink.at(d.file, span, "`clone` must name another server"),
        None if broken.servers.contains(clone) => {}
        None => sink.at(
            d.file,
            span,
            format!("`clone` names unknown server `{clone}`"),
        ),
        Some(Mode::Clone) => sink.at(
            d.file,
            span,
            format!("`clone` names server `{clone}`, itself in mode clone"),
        ),
        Some(_) => {}
    }
}

/// Whether following `via` from `start` comes back to a server already seen.
fn via_loops(start: &str, vias: &HashMap<String, String>) -> bool {
    let mut seen = BTreeSet::new();
    let mut at = start;
    while let Some(next) = vias.get(at) {
        if !seen.insert(at) {
            return true;
        }
        at = next;
    }
    false
}

fn check_user(sink: &mut Sink<'_>, file: usize, entry: Entry<RawUser>) -> UserDraft {
    let raw = entry.value;
    let name_span = raw.name.span();
    let name = raw.name.into_inner();
    if let Err(m) = check_name(&name, NameKind::User) {
        sink.at(file, &name_span, m);
    }
    let mut keys = Vec::new();
    for k in &raw.keys {
        match russh::keys::PublicKey::from_openssh(k.get_ref().trim()) {
            Ok(key) => {
                let fingerprint = key.fingerprint(russh::keys::HashAlg::Sha256).to_string();
                keys.push(StaffKey { key, fingerprint });
            }
            Err(e) => sink.at(file, &k.span(), format!("malformed SSH public key: {e}")),
        }
    }
    let mut groups = Vec::new();
    for g in &raw.groups {
        match check_name(g.get_ref(), NameKind::Group) {
            Ok(()) => groups.push(g.get_ref().clone()),
            Err(m) => sink.at(file, &g.span(), m),
        }
    }
    let mut roles = Vec::new();
    for r in &raw.roles {
        match r.get_ref().as_str() {
            "approver" => roles.push(Role::Approver),
            "auditor" => roles.push(Role::Auditor),
            "admin" => roles.push(Role::Admin),
            other => sink.at(
                file,
                &r.span(),
                format!("unknown role `{other}`: expected approver, auditor or admin"),
            ),
        }
    }
    let allow_from = cidrs(sink, file, &raw.allow_from);
    let expires = raw.expires.and_then(|e| {
        let span = e.span();
        match parse_date(e.get_ref()) {
            Ok(d) => Some(d),
            Err(m) => {
                sink.at(file, &span, m);
                None
            }
        }
    });
    let mfa_required = match raw.mfa.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None => false,
        Some(("required", _)) => true,
        Some((other, span)) => {
            sink.at(
                file,
                &span,
                format!("unknown mfa `{other}`: expected required"),
            );
            false
        }
    };
    UserDraft {
        file,
        name_span,
        user: User {
            name,
            keys,
            groups,
            roles,
            allow_from,
            expires,
            mfa_required,
        },
    }
}

fn check_server(sink: &mut Sink<'_>, file: usize, entry: Entry<RawServer>) -> ServerDraft {
    let raw = entry.value;
    let span = entry.span;
    let name_span = raw.name.span();
    let name = raw.name.clone().into_inner();
    if let Err(m) = check_name(&name, NameKind::Server) {
        sink.at(file, &name_span, m);
    }
    let (host, port) = server_address(sink, file, &raw.address);
    let mode = match parse_mode(raw.mode.get_ref()) {
        Ok(m) => Some(m),
        Err(m) => {
            sink.at(file, &raw.mode.span(), m);
            None
        }
    };
    let host_key = raw
        .host_key
        .as_ref()
        .and_then(|k| match check_fingerprint(k.get_ref()) {
            Ok(()) => Some(k.get_ref().clone()),
            Err(m) => {
                sink.at(file, &k.span(), m);
                None
            }
        });
    let accounts = server_accounts(sink, file, &span, &name, &raw, mode);
    let allow = server_allow(sink, file, &raw.allow);
    let ports = server_ports(sink, file, &raw);
    let record = record_mode(sink, file, raw.record.as_ref());
    let allow_from = raw
        .allow_from
        .as_ref()
        .map(|l| cidrs(sink, file, l.get_ref()))
        .unwrap_or_default();
    let via = raw.via.as_ref().map(|v| v.get_ref().clone());
    let clone = raw.clone.as_ref().map(|v| v.get_ref().clone());
    let (deny_globs, deny_commands) = globs(sink, file, &raw.deny_commands);
    let (sftp_deny_globs, sftp_deny_paths) = globs(sink, file, &raw.sftp_deny_paths);
    let (allow_globs, allow_commands) = globs(sink, file, &raw.allow_commands);
    let max_session = duration(sink, file, raw.max_session.as_ref());
    let auth = target_auth(sink, file, raw.auth.as_ref());
    let idle_timeout = duration(sink, file, raw.idle_timeout.as_ref());
    let mfa_every_session = server_mfa(sink, file, raw.mfa.as_ref());
    if let Some(mode) = mode {
        check_mode_fields(sink, file, &span, &raw, mode);
    }

    ServerDraft {
        file,
        name_span,
        allow: raw.allow.clone(),
        via_span: raw.via.as_ref().map(|v| v.span()),
        clone_span: raw.clone.as_ref().map(|v| v.span()),
        server: Server {
            origin: sink.origin(file, &span),
            name,
            host,
            port,
            host_key,
            mode: mode.unwrap_or(Mode::Clone),
            accounts,
            allow,
            ports,
            record,
            require_grant: raw.require_grant,
            allow_from,
            via,
            clone,
            deny_commands,
            allow_commands,
            deny_globs,
            allow_globs,
            max_session,
            idle_timeout,
            end_on_blocked_command: raw.end_on_blocked_command,
            rotate_after_use: raw.rotate_after_use,
            sftp_deny_paths,
            sftp_deny_globs,
            sftp_command: raw
                .sftp_command
                .as_ref()
                .map(|c| c.get_ref().trim().to_string())
                .filter(|c| !c.is_empty()),
            auth,
            mfa_every_session,
        },
    }
}

/// `address`: host and port, `("", 22)` after a reported problem.
fn server_address(sink: &mut Sink<'_>, file: usize, address: &Spanned<String>) -> (String, u16) {
    match parse_address(address.get_ref()) {
        Ok(hp) => hp,
        Err(m) => {
            sink.at(file, &address.span(), m);
            (String::new(), 22)
        }
    }
}

/// `accounts`: required (and non-empty) except in mode clone.
fn server_accounts(
    sink: &mut Sink<'_>,
    file: usize,
    span: &Range<usize>,
    name: &str,
    raw: &RawServer,
    mode: Option<Mode>,
) -> Vec<String> {
    let mut accounts = Vec::new();
    match &raw.accounts {
        Some(list) => {
            if list.get_ref().is_empty() && mode != Some(Mode::Clone) {
                sink.at(
                    file,
                    &list.span(),
                    "`accounts` must list at least one account",
                );
            }
            for a in list.get_ref() {
                match check_account(a.get_ref()) {
                    Ok(()) => accounts.push(a.get_ref().clone()),
                    Err(m) => sink.at(file, &a.span(), m),
                }
            }
        }
        None if mode == Some(Mode::Clone) || mode.is_none() => {}
        None => sink.at(
            file,
            span,
            format!("server `{name}` has no `accounts`: list the accounts staff may become"),
        ),
    }
    accounts
}

/// `allow`: users and `@groups` (whether they exist is checked later).
fn server_allow(sink: &mut Sink<'_>, file: usize, allow: &[Spanned<String>]) -> Vec<Principal> {
    for a in allow {
        if let Err(m) = parse_principal(a.get_ref()) {
            sink.at(file, &a.span(), m);
        }
    }
    allow
        .iter()
        .filter_map(|a| parse_principal(a.get_ref()).ok())
        .collect()
}

/// `ports`: each within 1-65535.
fn server_ports(sink: &mut Sink<'_>, file: usize, raw: &RawServer) -> Vec<u16> {
    let mut ports = Vec::new();
    if let Some(list) = &raw.ports {
        for p in list.get_ref() {
            match u16::try_from(*p.get_ref()) {
                Ok(v) if v >= 1 => ports.push(v),
                _ => sink.at(
                    file,
                    &p.span(),
                    format!("port {} is out of range 1-65535", p.get_ref()),
                ),
            }
        }
    }
    ports
}

/// `record`: privileged by default; an unknown value records everything.
fn record_mode(sink: &mut Sink<'_>, file: usize, record: Option<&Spanned<String>>) -> RecordMode {
    match record {
        None => RecordMode::Privileged,
        Some(r) => match r.get_ref().as_str() {
            "always" => RecordMode::Always,
            "privileged" => RecordMode::Privileged,
            "never" => RecordMode::Never,
            other => {
                sink.at(
                    file,
                    &r.span(),
                    format!("unknown record value `{other}`: expected always, privileged or never"),
                );
                RecordMode::Always
            }
        },
    }
}

/// `auth`: how the bastion logs in to the server.
fn target_auth(sink: &mut Sink<'_>, file: usize, auth: Option<&Spanned<String>>) -> TargetAuth {
    match auth.map(|a| (a.get_ref().as_str(), a.span())) {
        None | Some(("identity", _)) => TargetAuth::Identity,
        Some(("certificate", _)) => TargetAuth::Certificate,
        Some((other, span)) => {
            sink.at(
                file,
                &span,
                format!("unknown auth `{other}`: expected identity or certificate"),
            );
            TargetAuth::Identity
        }
    }
}

/// A server's `mfa`: whether every session asks for the second factor.
fn server_mfa(sink: &mut Sink<'_>, file: usize, mfa: Option<&Spanned<String>>) -> bool {
    match mfa.map(|m| (m.get_ref().as_str(), m.span())) {
        None => false,
        Some(("every-session", _)) => true,
        Some((other, span)) => {
            sink.at(
                file,
                &span,
                format!("unknown mfa `{other}`: expected every-session"),
            );
            false
        }
    }
}

/// The keys a mode needs (`host_key`, `allow_from`, `via`, `clone`,
/// `ports`), and `via`/`clone` refused outside their mode.
fn check_mode_fields(
    sink: &mut Sink<'_>,
    file: usize,
    span: &Range<usize>,
    raw: &RawServer,
    mode: Mode,
) {
    let m = mode.as_str();
    let needs = |what: &str| format!("mode {m} needs {what}");
    if mode != Mode::Desktop && mode != Mode::Clone && raw.host_key.is_none() {
        sink.at(
            file,
            span,
            needs("`host_key`, the pinned SHA256 fingerprint of the server's host key"),
        );
    }
    match (&raw.allow_from, mode) {
        (None, Mode::Firewall) => sink.at(file, span, needs("`allow_from` source CIDRs")),
        (Some(l), Mode::Firewall) if l.get_ref().is_empty() => {
            sink.at(file, &l.span(), needs("a non-empty `allow_from`"))
        }
        _ => {}
    }
    match (&raw.via, mode) {
        (None, Mode::Vpn) => sink.at(file, span, needs("`via`, the server it is reached through")),
        (Some(v), m2) if m2 != Mode::Vpn => sink.at(
            file,
            &v.span(),
            format!("`via` is only used in mode vpn, not {m}"),
        ),
        _ => {}
    }
    match (&raw.clone, mode) {
        (None, Mode::Clone) => sink.at(
            file,
            span,
            needs("`clone`, the server staff must use instead"),
        ),
        (Some(c), m2) if m2 != Mode::Clone => sink.at(
            file,
            &c.span(),
            format!("`clone` is only used in mode clone, not {m}"),
        ),
        _ => {}
    }
    match (&raw.ports, mode) {
        (None, Mode::Desktop) => sink.at(file, span, needs("`ports` to forward to")),
        (Some(l), Mode::Desktop) if l.get_ref().is_empty() => {
            sink.at(file, &l.span(), needs("a non-empty `ports`"))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const ALICE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDzXhOm/CKaSOWAp/1cSJfYiJiaPNkrM2OFPyrc4A1yR alice@laptop";
    const BOB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHjOZyM6GB2D9P69i7SbNU2u6oAidpC5wDIB1O6Afy/E bob@laptop";
    const FP: &str = "SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM";

    #[test]
    fn line_and_column_of_every_offset_match_a_plain_count() {
        let text = "a = 1\n\nné = \"é\"\nlast";
        let starts = line_starts(text);
        for offset in 0..=text.len() + 2 {
            // The slow definition: count newlines and characters.
            let mut end = offset.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let before = &text[..end];
            let line = before.matches('\n').count() + 1;
            let from = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
            let col = before[from..].chars().count() + 1;
            assert_eq!(
                line_col(&starts, text, offset),
                (line, col),
                "offset {offset}"
            );
        }
        assert_eq!(line_col(&line_starts(""), "", 0), (1, 1));
    }

    fn users() -> String {
        format!(
            "[[user]]\nname = \"alice\"\nkeys = [\"{ALICE}\"]\ngroups = [\"ops\"]\nroles = [\"approver\"]\n\n[[user]]\nname = \"bob\"\nkeys = [\"{BOB}\"]\ngroups = [\"support\"]\n"
        )
    }

    /// A valid server entry; line 1 is the `[[server]]` header.
    fn server(name: &str, extra: &str) -> String {
        format!(
            "[[server]]\nname = \"{name}\"\naddress = \"127.0.0.1:22\"\nhost_key = \"{FP}\"\nmode = \"ssh-forwarding\"\naccounts = [\"root\"]\nallow = [\"group:support\"]\n{extra}"
        )
    }

    fn load(files: &[(&str, &str)]) -> Result<Policy, Vec<Diagnostic>> {
        let sources: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(n, t)| (PathBuf::from(n), (*t).to_owned()))
            .collect();
        from_sources(&sources)
    }

    /// The diagnostics of `servers.toml` holding `text`, next to valid users.
    fn problems(text: &str) -> Vec<String> {
        match load(&[("users.toml", &users()), ("servers.toml", text)]) {
            Ok(_) => vec![],
            Err(d) => d.iter().map(ToString::to_string).collect(),
        }
    }

    fn one(text: &str) -> String {
        let p = problems(text);
        assert_eq!(p.len(), 1, "expected one problem, got {p:#?}");
        p.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn merges_files_and_records_origins() {
        let servers = format!("# servers\n\n{}\n{}", server("db", ""), server("web", ""));
        let p = load(&[("a/users.toml", &users()), ("b/servers.toml", &servers)]).unwrap();
        assert_eq!(p.users.len(), 2);
        assert_eq!(p.servers.len(), 2);
        assert_eq!(p.server("db").unwrap().origin, "b/servers.toml:3");
        assert_eq!(p.server("web").unwrap().origin, "b/servers.toml:11");
        let alice = p.user("alice").unwrap();
        assert!(alice.has_role(Role::Approver));
        assert_eq!(alice.keys.len(), 1);
        assert!(alice.keys[0].fingerprint.starts_with("SHA256:"));
        let db = p.server("db").unwrap();
        assert_eq!((db.host.as_str(), db.port), ("127.0.0.1", 22));
        assert_eq!(db.record, RecordMode::Privileged);
        assert!(!db.require_grant && !db.end_on_blocked_command);
        assert_eq!(db.allow, vec![Principal::Group("support".into())]);
        assert_eq!(p.files.len(), 2);
        assert_eq!(p.digest.len(), 64);
        let again = load(&[("a/users.toml", &users()), ("b/servers.toml", &servers)]).unwrap();
        assert_eq!(p.digest, again.digest);
        let changed = format!("{servers}\n# edited\n");
        let other = load(&[("a/users.toml", &users()), ("b/servers.toml", &changed)]).unwrap();
        assert_ne!(p.digest, other.digest);
    }

    #[test]
    fn optional_server_keys() {
        let extra = "ports = [1521, 80]\nrecord = \"always\"\nrequire_grant = true\nallow_from = [\"203.0.113.0/24\", \"198.51.100.7\"]\ndeny_commands = [\"rm -rf /*\"]\nallow_commands = [\"ls*\"]\nmax_session = \"8h\"\nidle_timeout = \"15m\"\nend_on_blocked_command = true\n";
        let p = load(&[("u.toml", &users()), ("s.toml", &server("db", extra))]).unwrap();
        let db = p.server("db").unwrap();
        assert_eq!(db.ports, vec![1521, 80]);
        assert_eq!(db.record, RecordMode::Always);
        assert!(db.require_grant && db.end_on_blocked_command);
        assert_eq!(db.allow_from[1].to_string(), "198.51.100.7/32");
        assert_eq!(db.max_session, Some(Duration::from_secs(8 * 3600)));
        assert_eq!(db.idle_timeout, Some(Duration::from_secs(15 * 60)));
        assert_eq!(db.deny_globs.len(), 1);
        assert_eq!(db.allow_commands, vec!["ls*".to_owned()]);
    }

    #[test]
    fn syntax_errors_are_all_reported() {
        let p = problems("[[server]\nname = \"x\"\nfoo = = 1\n");
        assert_eq!(
            p[0],
            "servers.toml:1:10: unclosed array table, expected `]`"
        );
        assert!(p.iter().any(|d| d.starts_with("servers.toml:3:")), "{p:#?}");
    }

    #[test]
    fn unknown_key_points_at_the_key() {
        let d = one(&server("db", "colour = \"red\"\n"));
        assert!(
            d.starts_with("servers.toml:8:1: unknown field `colour`"),
            "{d}"
        );
        let d = one(&format!("[servers]\nx = 1\n\n{}", server("db", "")));
        assert!(
            d.starts_with("servers.toml:1:2: unknown key `servers`"),
            "{d}"
        );
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let d = one(&server("db", "require_grant = \"yes\"\n"));
        assert_eq!(
            d,
            "servers.toml:8:17: invalid type: string \"yes\", expected a boolean"
        );
    }

    #[test]
    fn missing_required_key_points_at_the_table() {
        let d = one("\n[[server]]\nname = \"db\"\nmode = \"global\"\naccounts = [\"root\"]\n");
        assert_eq!(d, "servers.toml:2:1: missing field `address`");
    }

    #[test]
    fn duplicates_across_files() {
        let more = format!(
            "\n[[user]]\nname = \"alice\"\nkeys = []\n\n{}",
            server("db", "")
        );
        let r = load(&[
            ("a.toml", &users()),
            ("b.toml", &server("db", "")),
            ("c.toml", &more),
        ]);
        let d: Vec<String> = r.unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(
            d,
            vec![
                "c.toml:3:8: duplicate user `alice` (first defined at a.toml:2)".to_owned(),
                "c.toml:7:8: duplicate server `db` (first defined at b.toml:2)".to_owned(),
            ]
        );
    }

    #[test]
    fn open_groups_accept_a_group_no_user_lists_but_not_an_unknown_user() {
        let text = server("db", "").replace("group:support", "group:dba");
        let sources = vec![
            (PathBuf::from("users.toml"), users()),
            (PathBuf::from("servers.toml"), text.clone()),
        ];
        let name = |i: usize| sources.get(i).map(|(p, _)| p.as_path());
        assert!(build(&sources, name, false).is_err());
        assert!(build(&sources, name, true).is_ok());
        let text = text.replace("group:dba", "user:carol");
        let sources = vec![
            (PathBuf::from("users.toml"), users()),
            (PathBuf::from("servers.toml"), text),
        ];
        let name = |i: usize| sources.get(i).map(|(p, _)| p.as_path());
        assert!(build(&sources, name, true).is_err());
    }

    #[test]
    fn unknown_references() {
        let text = format!(
            "{}{}",
            server("db", "").replace("group:support", "user:carol"),
            server("web", "").replace("group:support", "group:dba")
        );
        assert_eq!(
            problems(&text),
            vec![
                "servers.toml:7:10: unknown user `carol`".to_owned(),
                "servers.toml:14:10: unknown group `dba`: no user lists it in `groups`".to_owned(),
            ]
        );
        let d = one(&server("db", "allow_commands = []\n").replace("group:support", "team:x"));
        assert!(
            d.starts_with("servers.toml:7:10: invalid allow entry"),
            "{d}"
        );
    }

    #[test]
    fn malformed_key_and_bad_names() {
        let text = "[[user]]\nname = \"Carol\"\nkeys = [\"ssh-ed25519 AAAAnope carol@x\"]\ngroups = [\"a b\"]\nroles = [\"root\"]\n";
        let d = problems(text);
        assert_eq!(d.len(), 4, "{d:#?}");
        assert!(
            d[0].starts_with("servers.toml:2:8: invalid user name \"Carol\""),
            "{d:#?}"
        );
        assert!(
            d[1].starts_with("servers.toml:3:9: malformed SSH public key"),
            "{d:#?}"
        );
        assert!(
            d[2].starts_with("servers.toml:4:11: invalid group name"),
            "{d:#?}"
        );
        assert!(
            d[3].starts_with("servers.toml:5:10: unknown role `root`"),
            "{d:#?}"
        );
        let d = one(&server("-db", ""));
        assert!(
            d.starts_with("servers.toml:2:8: invalid server name \"-db\""),
            "{d}"
        );
    }

    #[test]
    fn shared_staff_key_is_refused() {
        let text = format!("[[user]]\nname = \"carol\"\nkeys = [\"{BOB}\"]\n");
        let d = one(&text);
        assert!(d.starts_with("servers.toml:2:8: key SHA256:"), "{d}");
        assert!(
            d.ends_with("is also a key of user `bob`: staff keys are personal"),
            "{d}"
        );
    }

    #[test]
    fn cidrs_durations_dates() {
        let d = one(&server("db", "allow_from = [\"10.0.0.0/33\"]\n"));
        assert!(
            d.starts_with("servers.toml:8:15: invalid CIDR \"10.0.0.0/33\""),
            "{d}"
        );
        let d = one(&server("db", "max_session = \"8 hours-ish\"\n"));
        assert!(d.starts_with("servers.toml:8:15: invalid duration"), "{d}");
        let d = one(&server("db", "idle_timeout = \"0s\"\n"));
        assert_eq!(d, "servers.toml:8:16: duration must be longer than zero");
        let d = one("[[user]]\nname = \"carol\"\nkeys = []\nexpires = \"30/06/2027\"\n");
        assert!(
            d.starts_with("servers.toml:4:11: invalid date \"30/06/2027\""),
            "{d}"
        );
        let p = load(&[(
            "u.toml",
            "[[user]]\nname = \"carol\"\nkeys = []\nexpires = 2027-06-30\nallow_from = [\"2001:db8::1\"]\n",
        )])
        .unwrap();
        let carol = p.user("carol").unwrap();
        assert_eq!(carol.expires, Some(time::macros::date!(2027 - 06 - 30)));
        assert_eq!(carol.allow_from[0].to_string(), "2001:db8::1/128");
    }

    #[test]
    fn mfa_keys_are_checked_with_positions() {
        let d = one(&server("db", "mfa = \"sometimes\"\n"));
        assert_eq!(
            d,
            "servers.toml:8:7: unknown mfa `sometimes`: expected every-session"
        );
        let d = one("[[user]]\nname = \"carol\"\nkeys = []\nmfa = \"every-session\"\n");
        assert_eq!(
            d,
            "servers.toml:4:7: unknown mfa `every-session`: expected required"
        );
        let d = one("[[user]]\nname = \"carol\"\nkeys = []\nmfa = true\n");
        assert!(d.starts_with("servers.toml:4:7:"), "{d}");
        let p = load(&[(
            "u.toml",
            "[[user]]\nname = \"carol\"\nkeys = []\nmfa = \"required\"\n\
             [[user]]\nname = \"dan\"\nkeys = []\n",
        )])
        .unwrap();
        assert!(p.user("carol").unwrap().mfa_required);
        assert!(!p.user("dan").unwrap().mfa_required);
    }

    #[test]
    fn fingerprints_ports_addresses() {
        let short = &FP[..FP.len() - 1];
        let d = one(&server("db", "").replace(FP, short));
        assert!(
            d.starts_with("servers.toml:4:12: invalid host key fingerprint"),
            "{d}"
        );
        let d = one(&server("db", "").replace(FP, "MD5:aa:bb"));
        assert!(
            d.starts_with("servers.toml:4:12: invalid host key fingerprint"),
            "{d}"
        );
        let d = problems(&server("db", "ports = [0, 22, 70000]\n"));
        assert_eq!(
            d,
            vec![
                "servers.toml:8:10: port 0 is out of range 1-65535".to_owned(),
                "servers.toml:8:17: port 70000 is out of range 1-65535".to_owned(),
            ]
        );
        let d = one(&server("db", "").replace("127.0.0.1:22", "db1:0"));
        assert!(
            d.starts_with("servers.toml:3:11: invalid address \"db1:0\""),
            "{d}"
        );
        let d = one(&server("db", "").replace("127.0.0.1:22", "[::1:22"));
        assert!(d.starts_with("servers.toml:3:11: invalid address"), "{d}");
        for (addr, host, port) in [
            ("db1.internal", "db1.internal", 22),
            ("db1:2200", "db1", 2200),
            ("[2001:db8::5]:2222", "2001:db8::5", 2222),
            ("2001:db8::5", "2001:db8::5", 22),
        ] {
            assert_eq!(parse_address(addr), Ok((host.to_owned(), port)), "{addr}");
        }
    }

    #[test]
    fn accounts_must_not_be_empty() {
        let d = one(&server("db", "").replace("[\"root\"]", "[]"));
        assert_eq!(
            d,
            "servers.toml:6:12: `accounts` must list at least one account"
        );
        let d = one(&server("db", "").replace("accounts = [\"root\"]\n", ""));
        assert!(
            d.starts_with("servers.toml:1:1: server `db` has no `accounts`"),
            "{d}"
        );
        let d = one(&server("db", "").replace("\"root\"", "\"ro ot\""));
        assert!(
            d.starts_with("servers.toml:6:13: invalid account name"),
            "{d}"
        );
    }

    #[test]
    fn modes_need_their_fields() {
        let fw = server("fw", "").replace("ssh-forwarding", "firewall");
        assert_eq!(
            one(&fw),
            "servers.toml:1:1: mode firewall needs `allow_from` source CIDRs"
        );
        let fw = server("fw", "allow_from = []\n").replace("ssh-forwarding", "firewall");
        assert_eq!(
            one(&fw),
            "servers.toml:8:14: mode firewall needs a non-empty `allow_from`"
        );
        let vpn = server("v", "").replace("ssh-forwarding", "vpn");
        assert_eq!(
            one(&vpn),
            "servers.toml:1:1: mode vpn needs `via`, the server it is reached through"
        );
        let clone = server("c", "").replace("ssh-forwarding", "clone");
        assert_eq!(
            one(&clone),
            "servers.toml:1:1: mode clone needs `clone`, the server staff must use instead"
        );
        let nokey = server("k", "").replace(&format!("host_key = \"{FP}\"\n"), "");
        assert!(one(&nokey).starts_with("servers.toml:1:1: mode ssh-forwarding needs `host_key`"));
        let desk = server("d", "").replace("ssh-forwarding", "desktop");
        assert_eq!(
            one(&desk),
            "servers.toml:1:1: mode desktop needs `ports` to forward to"
        );
        let desk = server("d", "ports = [3389]\n")
            .replace("ssh-forwarding", "desktop")
            .replace(&format!("host_key = \"{FP}\"\n"), "");
        assert_eq!(problems(&desk), Vec::<String>::new());
        let d = one(&server("x", "").replace("ssh-forwarding", "telnet"));
        assert!(
            d.starts_with("servers.toml:5:8: unknown mode `telnet`"),
            "{d}"
        );
        let d = one(&server("x", "via = \"y\"\n"));
        assert_eq!(
            d,
            "servers.toml:8:7: `via` is only used in mode vpn, not ssh-forwarding"
        );
    }

    #[test]
    fn via_and_clone_targets() {
        let desk = server("desk", "ports = [3389]\n").replace("ssh-forwarding", "desktop");
        let vpn = |name: &str, via: &str| {
            server(name, &format!("via = \"{via}\"\n")).replace("ssh-forwarding", "vpn")
        };
        let text = format!("{desk}{}", vpn("v", "desk"));
        assert!(
            one(&text).starts_with("servers.toml:16:7: `via` names server `desk` in mode desktop")
        );
        assert_eq!(
            one(&vpn("v", "v")),
            "servers.toml:8:7: `via` must name another server"
        );
        assert_eq!(
            one(&vpn("v", "nope")),
            "servers.toml:8:7: `via` names unknown server `nope`"
        );
        let text = format!("{}{}", vpn("a", "b"), vpn("b", "a"));
        assert_eq!(problems(&text).len(), 2);
        let gw = server("gw", "");
        assert_eq!(
            problems(&format!("{gw}{}", vpn("v", "gw"))),
            Vec::<String>::new()
        );
        let clone = |name: &str, target: &str| {
            server(name, &format!("clone = \"{target}\"\n"))
                .replace("ssh-forwarding", "clone")
                .replace(&format!("host_key = \"{FP}\"\n"), "")
        };
        assert_eq!(
            one(&clone("c", "nope")),
            "servers.toml:7:9: `clone` names unknown server `nope`"
        );
        let ok = load(&[
            ("u.toml", &users()),
            ("s.toml", &format!("{gw}{}", clone("c", "gw"))),
        ])
        .unwrap();
        assert_eq!(ok.server("c").unwrap().clone.as_deref(), Some("gw"));
    }

    #[test]
    fn bad_globs_and_record() {
        let d = one(&server("db", "deny_commands = [\"rm [a\"]\n"));
        assert!(
            d.starts_with("servers.toml:8:18: invalid command pattern"),
            "{d}"
        );
        let d = one(&server("db", "record = \"sometimes\"\n"));
        assert!(
            d.starts_with("servers.toml:8:10: unknown record value"),
            "{d}"
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let text = format!(
            "{}{}",
            server("db", "ports = [0]\nmax_session = \"x\"\n")
                .replace("group:support", "group:nope"),
            server("web", "").replace(FP, "SHA256:x")
        );
        assert_eq!(problems(&text).len(), 4, "{:#?}", problems(&text));
    }

    #[test]
    fn every_problem_in_one_entry_is_reported() {
        // An unknown key and an unknown mode in the same entry: two lines.
        let text = server("db", "colour = \"red\"\n").replace("ssh-forwarding", "teleport");
        let d = problems(&text);
        assert_eq!(d.len(), 2, "{d:#?}");
        assert!(
            d[0].starts_with("servers.toml:5:8: unknown mode `teleport`"),
            "{d:#?}"
        );
        assert!(
            d[1].starts_with("servers.toml:8:1: unknown field `colour`"),
            "{d:#?}"
        );
    }

    #[test]
    fn every_problem_in_every_entry_is_reported() {
        let text = format!(
            "{}{}\n[[server]]\nname = 7\nshape = 1\nwhat = 2\n",
            server(
                "db",
                "colour = \"red\"\nsize = 3\nrequire_grant = \"yes\"\nports = [\"x\", 0]\n"
            ),
            server("web", "").replace("127.0.0.1:22", "bad address:x"),
        );
        let d = problems(&text);
        let at: Vec<&str> = d
            .iter()
            .map(|l| l.split(": ").next().unwrap_or(""))
            .collect();
        assert_eq!(
            at,
            vec![
                // db: two unknown keys, a wrong type, an ill-typed port.
                "servers.toml:8:1",
                "servers.toml:9:1",
                "servers.toml:10:17",
                "servers.toml:11:10",
                // web: a malformed address (from `check`).
                "servers.toml:14:11",
                // the third: name and address missing at the table, a name
                // of the wrong type, two unknown keys.
                "servers.toml:20:1",
                "servers.toml:20:1",
                "servers.toml:21:8",
                "servers.toml:22:1",
                "servers.toml:23:1",
            ],
            "{d:#?}"
        );
        assert!(
            d[2].ends_with("invalid type: string \"yes\", expected a boolean"),
            "{d:#?}"
        );
        assert!(
            d.iter().any(|l| l.ends_with("missing field `address`")),
            "{d:#?}"
        );
        assert!(
            d.iter().any(|l| l.ends_with("missing field `mode`")),
            "{d:#?}"
        );
        // The reported name of the wrong type is not also "missing".
        assert!(
            !d.iter().any(|l| l.ends_with("missing field `name`")),
            "{d:#?}"
        );
    }

    #[test]
    fn required_keys_are_exactly_the_serde_required_ones() {
        let user = format!("[[user]]\nname = \"carol\"\nkeys = [\"{ALICE}\"]\n");
        let server =
            "[[server]]\nname = \"db\"\naddress = \"127.0.0.1\"\nmode = \"clone\"\nclone = \"x\"\n"
                .to_string();
        // With only the required keys (and what `check` needs) both load
        // their raw entries without a problem of their own.
        let parsed = raw::parse_file(&format!("{user}{server}"));
        assert!(parsed.problems.is_empty(), "{:#?}", parsed.problems);
        assert_eq!((parsed.users.len(), parsed.servers.len()), (1, 1));
        // Without any one of them, that one is reported missing.
        for (text, required) in [(&user, RawUser::REQUIRED), (&server, RawServer::REQUIRED)] {
            for key in required {
                let without: String = text
                    .lines()
                    .filter(|l| !l.starts_with(&format!("{key} =")))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let parsed = raw::parse_file(&without);
                let messages: Vec<&str> = parsed.problems.iter().map(|(_, m)| m.as_str()).collect();
                assert_eq!(
                    messages,
                    vec![format!("missing field `{key}`")],
                    "{without}"
                );
            }
        }
    }

    #[test]
    fn broken_entry_does_not_cascade() {
        // The user entry is broken (unknown key), yet references to it are
        // not reported a second time as unknown.
        let users = "[[user]]\nname = \"carol\"\nkeys = []\nshell = \"bash\"\n";
        let servers = server("db", "").replace("group:support", "user:carol");
        let d = load(&[("u.toml", users), ("s.toml", &servers)]).unwrap_err();
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!((d[0].line, d[0].col), (4, 1));
    }

    #[test]
    fn syntax_error_in_one_file_does_not_cascade() {
        let broken = format!("{}\noops = = 1\n", users());
        let d = load(&[("a.toml", &broken), ("b.toml", &server("db", ""))]).unwrap_err();
        // Only the syntax errors: b.toml's `group:support` is held by bob,
        // whose file could not be read in full.
        assert!(!d.is_empty());
        for p in &d {
            assert_eq!((p.file.to_str(), p.line), (Some("a.toml"), 12), "{d:#?}");
        }
    }

    #[test]
    fn via_loops_are_reported() {
        let vpn = |name: &str, via: &str| {
            server(name, &format!("via = \"{via}\"\n")).replace("ssh-forwarding", "vpn")
        };
        let d = problems(&format!("{}{}", vpn("a", "b"), vpn("b", "a")));
        assert_eq!(
            d,
            vec![
                "servers.toml:8:7: `via` chain starting at `a` loops back to itself".to_owned(),
                "servers.toml:16:7: `via` chain starting at `b` loops back to itself".to_owned(),
            ]
        );
    }

    #[test]
    fn inline_entries_are_accepted() {
        let text = "user = [{ name = \"zed\", keys = [], groups = [\"support\"] }]\n";
        let p = load(&[("u.toml", text)]).unwrap();
        assert_eq!(p.user("zed").unwrap().groups, vec!["support".to_owned()]);
    }

    #[test]
    fn load_dir_walks_sorted_and_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("users.toml"), users()).unwrap();
        std::fs::write(root.join("sub/servers.toml"), server("db", "")).unwrap();
        std::fs::write(root.join(".git/bad.toml"), "not = [toml").unwrap();
        std::fs::write(root.join("README.md"), "# notes").unwrap();
        let p = Policy::load_dir(root).unwrap();
        assert_eq!(
            p.files,
            vec![root.join("sub/servers.toml"), root.join("users.toml")]
        );
        assert_eq!(
            p.server("db").unwrap().origin,
            format!("{}:1", root.join("sub/servers.toml").display())
        );
        // The digest does not depend on where the folder is.
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(other.path().join("sub")).unwrap();
        std::fs::write(other.path().join("users.toml"), users()).unwrap();
        std::fs::write(other.path().join("sub/servers.toml"), server("db", "")).unwrap();
        assert_eq!(Policy::load_dir(other.path()).unwrap().digest, p.digest);

        std::fs::write(root.join("sub/more.toml"), "[[user]]\nname = 1\n").unwrap();
        let d = Policy::load_dir(root).unwrap_err();
        // `keys` missing (at the table) and `name` of the wrong type.
        assert_eq!(d.len(), 2, "{d:#?}");
        assert_eq!(d[0].file, root.join("sub/more.toml"));
        assert_eq!((d[0].line, d[0].col), (1, 1));
        assert_eq!((d[1].line, d[1].col), (2, 8));
    }

    #[test]
    fn missing_folder_is_a_diagnostic() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let d = Policy::load_dir(&missing).unwrap_err();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].file, missing);
        assert!(
            d[0].message.starts_with("cannot read policy folder"),
            "{:?}",
            d[0]
        );
    }
}
