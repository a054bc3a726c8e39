//! Reading policy files: the folder walk, TOML parsing with recovery, and the
//! raw serde types of `[[user]]` and `[[server]]` entries.
//!
//! Each file is parsed into a spanned TOML tree first (so that every syntax
//! error in it is reported, not just the first), then each entry is
//! deserialized on its own with `deny_unknown_fields`, again and again
//! without the key each error points at, so that every unknown key, value
//! of the wrong type and missing key is reported, as a compiler would
//! (see `deserialize_entry`). Spans are kept on every value that
//! `check` validates, so that its diagnostics point at the offending value.
//!
//! # Server keys beyond the contract example
//!
//! Besides the keys shown in contract section 3, a `[[server]]` entry takes:
//!
//! - `max_session = "8h"`: the longest a session may last (humantime
//!   duration); default unlimited.
//! - `idle_timeout = "15m"`: overrides `[limits] idle_timeout` of
//!   gatehouse.toml for this server.
//! - `sftp_command = "/usr/lib/openssh/sftp-server -R"`: what the bastion
//!   runs on the target for the `sftp` subsystem instead of requesting the
//!   target's own subsystem. With OpenSSH's `sftp-server` this is how a
//!   server refuses SFTP writes (`-R`, read-only) or chosen requests
//!   (`-P remove,rename,...`); staff cannot change it. Refused requests
//!   still appear as `sftp.op` events, with their failure status.
//! - `sftp_deny_paths = ["/etc/*", "*.key"]`: globs (`*` matches `/`
//!   too); an SFTP request naming a matching path (open, opendir, remove,
//!   rename, mkdir, rmdir, setstat, symlink, link) is never delivered: the
//!   SFTP channel ends with the reason and an `sftp.op` refusal event.
//! - `rotate_after_use = true`: a vault password used to log in to this
//!   server is rotated once the session ends (default `false`).
//! - `end_on_blocked_command = true`: a blocked interactive line ends the
//!   session instead of only being refused; default `false`.
//! - `auth = "certificate"`: where the vault holds no credential for the
//!   account, the bastion logs in with a short-lived certificate signed by
//!   its own CA (`[ca] key`, see the `ca` module) instead of its identity key;
//!   the target trusts the CA (`TrustedUserCAKeys`). Default `"identity"`.
//!
//! - `mfa = "every-session"`: a fresh second factor at every login to
//!   this server, whatever `[auth] mfa_cache` (contract section 11).
//!
//! A `[[user]]` may say `mfa = "required"` (contract section 11).
//!
//! Defaults of the contract's optional keys: `record = "privileged"`,
//! `require_grant = false`, `ports = []`, `allow = []`, `allow_from = []`
//! (anywhere), `deny_commands = []`, `allow_commands = []`. `accounts` may
//! be left out only in mode `clone` (nobody logs in to a clone-mode entry).
//!
//! `expires` on a user takes a quoted date (`"2027-06-30"`) or a bare TOML
//! date (`2027-06-30`).
//!
//! Files and folders whose names start with `.` (such as `.git`) are
//! skipped; symbolic links to folders are not followed.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::Diagnostic;

/// Folder depth below which `*.toml` files are no longer looked for.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser {
    pub name: Spanned<String>,
    pub keys: Vec<Spanned<String>>,
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
    #[serde(default)]
    pub roles: Vec<Spanned<String>>,
    #[serde(default)]
    pub allow_from: Vec<Spanned<String>>,
    /// A string or a TOML date: checked in `check`.
    #[serde(default)]
    pub expires: Option<Spanned<toml::Value>>,
    /// `"required"`: checked in `check`.
    #[serde(default)]
    pub mfa: Option<Spanned<String>>,
}

impl RawUser {
    /// Keys without a serde default: each one missing is reported.
    pub(crate) const REQUIRED: &[&str] = &["name", "keys"];
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    #[serde(default)]
    pub host_key: Option<Spanned<String>>,
    pub mode: Spanned<String>,
    #[serde(default)]
    pub accounts: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// i64 so that 0 or 70000 reach `check` and get a precise message.
    #[serde(default)]
    pub ports: Option<Spanned<Vec<Spanned<i64>>>>,
    #[serde(default)]
    pub record: Option<Spanned<String>>,
    #[serde(default)]
    pub require_grant: bool,
    #[serde(default)]
    pub allow_from: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub via: Option<Spanned<String>>,
    #[serde(default)]
    pub clone: Option<Spanned<String>>,
    #[serde(default)]
    pub deny_commands: Vec<Spanned<String>>,
    #[serde(default)]
    pub allow_commands: Vec<Spanned<String>>,
    #[serde(default)]
    pub max_session: Option<Spanned<String>>,
    #[serde(default)]
    pub idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub end_on_blocked_command: bool,
    #[serde(default)]
    pub rotate_after_use: bool,
    #[serde(default)]
    pub sftp_command: Option<Spanned<String>>,
    #[serde(default)]
    pub sftp_deny_paths: Vec<Spanned<String>>,
    #[serde(default)]
    pub auth: Option<Spanned<String>>,
    /// `"every-session"`: checked in `check`.
    #[serde(default)]
    pub mfa: Option<Spanned<String>>,
}

impl RawServer {
    /// Keys without a serde default: each one missing is reported.
    pub(crate) const REQUIRED: &[&str] = &["name", "address", "mode"];
}

/// One deserialized entry and where its table starts.
#[derive(Debug)]
pub(crate) struct Entry<T> {
    pub value: T,
    /// Span of the entry's table (the `[[server]]` header and its body).
    pub span: Range<usize>,
}

/// What one file yielded.
#[derive(Debug, Default)]
pub(crate) struct ParsedFile {
    pub users: Vec<Entry<RawUser>>,
    pub servers: Vec<Entry<RawServer>>,
    /// Names of entries that could not be deserialized: references to them
    /// are not reported again as unknown.
    pub broken_users: Vec<String>,
    pub broken_servers: Vec<String>,
    /// Groups listed by users whose entry could not be deserialized.
    pub broken_groups: Vec<String>,
    /// Problems as (span, message); `check` turns them into diagnostics.
    pub problems: Vec<(Range<usize>, String)>,
}

/// Lists every `*.toml` under `dir`, recursively, sorted by path, with its
/// text. Read failures become diagnostics; the other files are still read.
pub(crate) fn read_dir_sources(dir: &Path) -> (Vec<(PathBuf, String)>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => walk(dir, 0, &mut files, &mut problems),
        Ok(_) => problems.push(whole_file(dir, "policy folder is not a folder".into())),
        Err(e) => problems.push(whole_file(dir, format!("cannot read policy folder: {e}"))),
    }
    files.sort();
    let mut sources = Vec::with_capacity(files.len());
    for path in files {
        match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => sources.push((path, text)),
                Err(e) => {
                    problems.push(whole_file(&path, format!("file is not UTF-8: {e}")));
                }
            },
            Err(e) => problems.push(whole_file(&path, format!("cannot read file: {e}"))),
        }
    }
    (sources, problems)
}

fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>, problems: &mut Vec<Diagnostic>) {
    if depth > MAX_DEPTH {
        problems.push(whole_file(dir, "policy folders nested too deep".into()));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(whole_file(dir, format!("cannot read policy folder: {e}")));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                problems.push(whole_file(dir, format!("cannot read policy folder: {e}")));
                continue;
            }
        };
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // file_type() does not follow symbolic links: a linked folder is
        // skipped (no loops), a linked file is read through metadata().
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&path, depth + 1, files, problems);
        } else if path.extension().is_some_and(|e| e == "toml")
            && (kind.is_file() || std::fs::metadata(&path).is_ok_and(|m| m.is_file()))
        {
            files.push(path);
        }
    }
}

fn whole_file(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line: 1,
        col: 1,
        message,
    }
}

/// Parses one file's text into entries and problems.
pub(crate) fn parse_file(text: &str) -> ParsedFile {
    let mut out = ParsedFile::default();
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    let broken = !syntax_errors.is_empty();
    for e in syntax_errors {
        out.problems
            .push((e.span().unwrap_or(0..0), one_line(e.message())));
    }
    for (key, value) in root.into_inner() {
        let kind = key.get_ref().as_ref();
        let key_span = key.span();
        match kind {
            "user" | "server" => {}
            other => {
                if !broken {
                    out.problems.push((
                        key_span,
                        format!("unknown key `{other}`: a policy file holds [[user]] and [[server]] entries"),
                    ));
                }
                continue;
            }
        }
        let value_span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            if !broken {
                out.problems.push((
                    value_span,
                    format!("`{kind}` must be an array of tables: write [[{kind}]]"),
                ));
            }
            continue;
        };
        for item in items {
            let span = item.span();
            let name = entry_string(item.get_ref(), "name");
            let groups = entry_strings(item.get_ref(), "groups");
            if !matches!(item.get_ref(), DeValue::Table(_)) {
                if !broken {
                    out.problems
                        .push((span, format!("each `{kind}` entry must be a table")));
                }
                continue;
            }
            // In a file with syntax errors the recovered tree may be
            // incomplete: its entries only contribute their names.
            let mut sink = Vec::new();
            let problems = if broken { &mut sink } else { &mut out.problems };
            if kind == "user" {
                match deserialize_entry::<RawUser>(item, RawUser::REQUIRED, problems) {
                    Some(value) if !broken => out.users.push(Entry { value, span }),
                    _ => {
                        out.broken_users.extend(name);
                        out.broken_groups.extend(groups);
                    }
                }
            } else {
                match deserialize_entry::<RawServer>(item, RawServer::REQUIRED, problems) {
                    Some(value) if !broken => out.servers.push(Entry { value, span }),
                    _ => out.broken_servers.extend(name),
                }
            }
        }
    }
    out
}

/// Deserializes one `[[user]]` or `[[server]]` table, reporting every
/// problem in it rather than the first: serde stops at the first unknown
/// key or ill-typed value, so the key it points at is reported, taken out,
/// and the rest deserialized again, until nothing is left to report. Every
/// missing required key is reported at the table. An entry whose problems
/// were only unknown or ill-typed optional keys still deserializes, so that
/// `check` validates its values too (an unknown key and an unknown mode in
/// one entry are two problems); the policy is refused either way.
fn deserialize_entry<T: DeserializeOwned>(
    item: Spanned<DeValue<'_>>,
    required: &[&'static str],
    problems: &mut Vec<(Range<usize>, String)>,
) -> Option<T> {
    let span = item.span();
    let DeValue::Table(mut table) = item.into_inner() else {
        return None;
    };
    let mut complete = true;
    for key in required {
        if !table.contains_key(*key) {
            let e = <toml::de::Error as serde::de::Error>::missing_field(key);
            problems.push((span.clone(), one_line(e.message())));
            complete = false;
        }
    }
    // Each round removes one key, so this ends.
    loop {
        let candidate = Spanned::new(span.clone(), DeValue::Table(table.clone()));
        let e = match T::deserialize(toml::de::ValueDeserializer::from(candidate)) {
            Ok(value) => return complete.then_some(value),
            Err(e) => e,
        };
        let at = e.span();
        let culprit = at.as_ref().and_then(|at| {
            table
                .iter()
                .find(|(k, v)| within(at, &k.span()) || within(at, &v.span()))
                .map(|(k, _)| k.get_ref().to_string())
        });
        match culprit {
            Some(key) => {
                problems.push((at.unwrap_or_else(|| span.clone()), one_line(e.message())));
                table.remove(key.as_str());
                if required.contains(&key.as_str()) {
                    complete = false;
                }
            }
            None => {
                // A required key absent now was reported above or just
                // removed for its own problem; anything else is new.
                if required.iter().all(|k| table.contains_key(*k)) {
                    problems.push((at.unwrap_or(span), one_line(e.message())));
                }
                return None;
            }
        }
    }
}

/// Whether `inner` lies inside `outer`.
fn within(inner: &Range<usize>, outer: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// A string field of an entry that may not deserialize as a whole.
fn entry_string(value: &DeValue<'_>, key: &str) -> Option<String> {
    entry_field(value, key).and_then(|v| v.as_str().map(str::to_owned))
}

/// The strings of an array field of an entry that may not deserialize.
fn entry_strings(value: &DeValue<'_>, key: &str) -> Vec<String> {
    entry_field(value, key)
        .and_then(DeValue::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.get_ref().as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn entry_field<'a, 'i>(value: &'a DeValue<'i>, key: &str) -> Option<&'a DeValue<'i>> {
    let DeValue::Table(t) = value else {
        return None;
    };
    t.iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v.get_ref())
}

fn one_line(s: &str) -> String {
    s.trim().replace('\n', " ")
}
