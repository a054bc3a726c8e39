//! The sidecar `ID.json` beside each cast: who, where, as whom, from where,
//! when, under which grant, what ran, byte counts and stream hashes, and
//! the cast's SHA-256 with an Ed25519 signature binding it all.
//!
//! # What is signed
//!
//! The signature (hex, field `signature`) is Ed25519 over the UTF-8 bytes
//! of this message, built from the sidecar's own fields:
//!
//! ```text
//! gatehouse-recording-v2\n
//! NAME=VALUE\n        (once per field, in the order of SIGNED_FIELDS)
//! ```
//!
//! That is format 2 (`"format": 2`), whose stream hashes are BLAKE3
//! (`stdin_blake3`, `stdout_blake3`, `stderr_blake3`): hashing every byte
//! of a bulk exec with SHA-256 was the largest cost of recording it.
//! Format 1 sidecars, written before, have SHA-256 stream hashes
//! (`*_sha256`) and sign `gatehouse-recording-v1\n` followed by
//! [`SIGNED_FIELDS_V1`]; they still verify. A sidecar of any other format
//! does not verify (fail closed). The cast's own hash is SHA-256 in both.
//!
//! `VALUE` is the field's JSON encoding exactly as a compact JSON encoder
//! writes a scalar: strings quoted with `\"`, `\\` and control characters
//! escaped and other characters (non-ASCII included) left as UTF-8 (Python:
//! `json.dumps(v, ensure_ascii=False)`), `null` when absent, integers in
//! decimal, `true`/`false`. The byte counts are the nested `bytes.stdin`,
//! `bytes.stdout`, `bytes.stderr`. The message ends with a newline after
//! the last field. Every field of the sidecar is covered except `format`,
//! `complete`, `error` and `signature` itself; `complete` must be `true`
//! for a recording to verify. Because `cast_sha256` is signed, changing one
//! byte of the cast, or any signed field of the sidecar, breaks the
//! signature or the hash check.
//!
//! An auditor can check a recording with the public key alone
//! (`signing_ed25519.pub`), e.g. in Python with `cryptography`:
//!
//! ```text
//! s = json.load(open("ID.json"))
//! get = lambda n: s["bytes"][n[6:]] if n.startswith("bytes.") else s[n]
//! msg = "gatehouse-recording-v2\n" + "".join(
//!     f"{n}={json.dumps(get(n), ensure_ascii=False)}\n" for n in SIGNED_FIELDS)
//! assert hashlib.sha256(open("ID.cast", "rb").read()).hexdigest() == s["cast_sha256"]
//! Ed25519PublicKey.from_public_bytes(bytes.fromhex(PUB)).verify(
//!     bytes.fromhex(s["signature"]), msg.encode())
//! ```

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Kind, RecordingError};

/// Current sidecar format number: 2, stream hashes are BLAKE3
/// (`*_blake3`). Format 1 sidecars (stream hashes SHA-256, `*_sha256`)
/// are still read and verified.
pub const FORMAT: u32 = 2;

/// The first format, whose stream hashes are SHA-256.
pub const FORMAT_V1: u32 = 1;

/// First line of the signed message of a format 1 sidecar.
pub const SIGNED_PREFIX_V1: &str = "gatehouse-recording-v1\n";

/// First line of the signed message of a format 2 sidecar.
pub const SIGNED_PREFIX: &str = "gatehouse-recording-v2\n";

/// The fields covered by the signature of a format 1 sidecar, in message
/// order.
pub const SIGNED_FIELDS_V1: &[&str] = &[
    "id",
    "session",
    "user",
    "server",
    "account",
    "source",
    "grant",
    "kind",
    "command",
    "term",
    "width",
    "height",
    "started_at",
    "ended_at",
    "exit_status",
    "exit_signal",
    "bytes.stdin",
    "bytes.stdout",
    "bytes.stderr",
    "stdin_sha256",
    "stdout_sha256",
    "stderr_sha256",
    "input_recorded",
    "text_cap",
    "text_recorded_bytes",
    "text_truncated",
    "interrupted",
    "cast",
    "cast_sha256",
    "signing_key",
];

/// The fields covered by the signature of a format 2 sidecar (the
/// current one), in message order: format 1's with the stream hashes
/// BLAKE3.
pub const SIGNED_FIELDS: &[&str] = &[
    "id",
    "session",
    "user",
    "server",
    "account",
    "source",
    "grant",
    "kind",
    "command",
    "term",
    "width",
    "height",
    "started_at",
    "ended_at",
    "exit_status",
    "exit_signal",
    "bytes.stdin",
    "bytes.stdout",
    "bytes.stderr",
    "stdin_blake3",
    "stdout_blake3",
    "stderr_blake3",
    "input_recorded",
    "text_cap",
    "text_recorded_bytes",
    "text_truncated",
    "interrupted",
    "cast",
    "cast_sha256",
    "signing_key",
];

/// Bytes that crossed the session, per stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteCounts {
    /// Client to server.
    pub stdin: u64,
    /// Server to client.
    pub stdout: u64,
    /// Server to client, extended data.
    pub stderr: u64,
}

/// The sidecar document. Optional fields are `null` when unknown; readers
/// accept missing fields so a provisional sidecar parses too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    pub format: u32,
    pub id: String,
    pub session: String,
    /// The staff member.
    pub user: String,
    pub server: String,
    /// The account on the server.
    pub account: String,
    /// The staff member's address, `IP:PORT`.
    pub source: String,
    /// The grant that authorized the session, if any.
    #[serde(default)]
    pub grant: Option<i64>,
    pub kind: Kind,
    /// Exec command or subsystem name.
    #[serde(default)]
    pub command: Option<String>,
    /// The client's TERM when a PTY was requested.
    #[serde(default)]
    pub term: Option<String>,
    pub width: u32,
    pub height: u32,
    /// RFC 3339, UTC.
    pub started_at: String,
    #[serde(default)]
    pub ended_at: Option<String>,
    /// `false` in the provisional sidecar written at start: a recording left
    /// like this was cut short (crash, kill) or failed (see `error`).
    #[serde(default)]
    pub complete: bool,
    #[serde(default)]
    pub exit_status: Option<i32>,
    #[serde(default)]
    pub exit_signal: Option<String>,
    #[serde(default)]
    pub bytes: ByteCounts,
    /// Format 1: SHA-256 of each stream (absent from format 2 sidecars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_sha256: Option<String>,
    /// Format 2: BLAKE3 of each stream (absent from format 1 sidecars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_blake3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_blake3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_blake3: Option<String>,
    /// Whether keystrokes were kept as "i" events.
    #[serde(default)]
    pub input_recorded: bool,
    /// Sessions without a PTY: the cap on output text kept in the cast.
    #[serde(default)]
    pub text_cap: Option<u64>,
    /// Sessions without a PTY: output bytes kept as text in the cast.
    #[serde(default)]
    pub text_recorded_bytes: Option<u64>,
    /// Sessions without a PTY: why output stopped being kept as text.
    #[serde(default)]
    pub text_truncated: Option<String>,
    /// The recording was cut short (bastion crash or kill) and sealed as
    /// found at the next start; `ended_at` is then its last event.
    #[serde(default)]
    pub interrupted: bool,
    /// The cast's file name, beside this sidecar.
    pub cast: String,
    #[serde(default)]
    pub cast_sha256: Option<String>,
    /// Hex Ed25519 public key of the signer.
    #[serde(default)]
    pub signing_key: Option<String>,
    /// Hex Ed25519 signature over [`Sidecar::signed_message`].
    #[serde(default)]
    pub signature: Option<String>,
    /// Why recording failed, when it did (never signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Sidecar {
    /// The exact bytes the signature covers (see the module docs), for
    /// the sidecar's own format; `None` for a format this build does not
    /// know (such a sidecar cannot verify: fail closed).
    pub fn signed_message(&self) -> Option<Vec<u8>> {
        match self.format {
            FORMAT_V1 => Some(self.message(SIGNED_PREFIX_V1, SIGNED_FIELDS_V1)),
            FORMAT => Some(self.message(SIGNED_PREFIX, SIGNED_FIELDS)),
            _ => None,
        }
    }

    fn message(&self, prefix: &str, fields: &[&str]) -> Vec<u8> {
        fn enc<T: Serialize>(v: &T) -> String {
            serde_json::to_string(v).unwrap_or_else(|_| "null".into())
        }
        let mut out = String::from(prefix);
        for name in fields {
            let value = match *name {
                "id" => enc(&self.id),
                "session" => enc(&self.session),
                "user" => enc(&self.user),
                "server" => enc(&self.server),
                "account" => enc(&self.account),
                "source" => enc(&self.source),
                "grant" => enc(&self.grant),
                "kind" => enc(&self.kind),
                "command" => enc(&self.command),
                "term" => enc(&self.term),
                "width" => enc(&self.width),
                "height" => enc(&self.height),
                "started_at" => enc(&self.started_at),
                "ended_at" => enc(&self.ended_at),
                "exit_status" => enc(&self.exit_status),
                "exit_signal" => enc(&self.exit_signal),
                "bytes.stdin" => enc(&self.bytes.stdin),
                "bytes.stdout" => enc(&self.bytes.stdout),
                "bytes.stderr" => enc(&self.bytes.stderr),
                "stdin_sha256" => enc(&self.stdin_sha256),
                "stdout_sha256" => enc(&self.stdout_sha256),
                "stderr_sha256" => enc(&self.stderr_sha256),
                "stdin_blake3" => enc(&self.stdin_blake3),
                "stdout_blake3" => enc(&self.stdout_blake3),
                "stderr_blake3" => enc(&self.stderr_blake3),
                "input_recorded" => enc(&self.input_recorded),
                "text_cap" => enc(&self.text_cap),
                "text_recorded_bytes" => enc(&self.text_recorded_bytes),
                "text_truncated" => enc(&self.text_truncated),
                "interrupted" => enc(&self.interrupted),
                "cast" => enc(&self.cast),
                "cast_sha256" => enc(&self.cast_sha256),
                "signing_key" => enc(&self.signing_key),
                _ => "null".into(),
            };
            out.push_str(name);
            out.push('=');
            out.push_str(&value);
            out.push('\n');
        }
        out.into_bytes()
    }

    /// Reads a sidecar file.
    pub fn read(path: &Path) -> Result<Sidecar, RecordingError> {
        let text = std::fs::read_to_string(path).map_err(|e| RecordingError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| RecordingError::Sidecar {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Writes the sidecar atomically (temporary file, fsync, rename).
    pub fn write(&self, path: &Path) -> Result<(), RecordingError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| RecordingError::Sidecar {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        text.push('\n');
        write_atomic(path, text.as_bytes())
    }
}

/// Replaces `path` with `bytes` so that a reader (or a crash) sees either
/// the old or the new content, never a mix. Files are created 0600: they
/// describe privileged sessions.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RecordingError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            // Make the rename itself durable; not all filesystems allow it.
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        RecordingError::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sidecar {
        Sidecar {
            format: FORMAT,
            id: "s1".into(),
            session: "s1".into(),
            user: "alice".into(),
            server: "prod-db".into(),
            account: "root".into(),
            source: "127.0.0.1:5000".into(),
            grant: Some(7),
            kind: Kind::Exec,
            command: Some("echo \"hé\"\nls".into()),
            term: None,
            width: 80,
            height: 24,
            started_at: "2026-01-02T03:04:05Z".into(),
            ended_at: None,
            complete: true,
            exit_status: Some(0),
            exit_signal: None,
            bytes: ByteCounts {
                stdin: 1,
                stdout: 2,
                stderr: 3,
            },
            stdin_sha256: None,
            stdout_sha256: None,
            stderr_sha256: None,
            stdin_blake3: None,
            stdout_blake3: Some("ab".into()),
            stderr_blake3: None,
            input_recorded: false,
            text_cap: Some(10),
            text_recorded_bytes: Some(2),
            text_truncated: None,
            interrupted: false,
            cast: "s1.cast".into(),
            cast_sha256: Some("cd".into()),
            signing_key: Some("ef".into()),
            signature: None,
            error: None,
        }
    }

    #[test]
    fn signed_message_is_line_per_field_with_json_values() {
        let msg = String::from_utf8(sample().signed_message().unwrap()).unwrap();
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines[0], "gatehouse-recording-v2");
        assert_eq!(lines.len(), SIGNED_FIELDS.len() + 1);
        assert!(lines.contains(&"grant=7"));
        assert!(lines.contains(&"kind=\"exec\""));
        assert!(lines.contains(&"command=\"echo \\\"hé\\\"\\nls\""));
        assert!(lines.contains(&"ended_at=null"));
        assert!(lines.contains(&"bytes.stderr=3"));
        assert!(lines.contains(&"input_recorded=false"));
        assert!(msg.ends_with("signing_key=\"ef\"\n"));
    }

    #[test]
    fn a_format_1_sidecar_signs_the_v1_message_with_its_sha256_stream_hashes() {
        let mut s = sample();
        s.format = FORMAT_V1;
        s.stdout_blake3 = None;
        s.stdout_sha256 = Some("ab".into());
        let msg = String::from_utf8(s.signed_message().unwrap()).unwrap();
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines[0], "gatehouse-recording-v1");
        assert_eq!(lines.len(), SIGNED_FIELDS_V1.len() + 1);
        assert!(lines.contains(&"stdout_sha256=\"ab\""));
        assert!(!msg.contains("blake3"));
        // The v2 message names the BLAKE3 fields instead.
        let v2 = String::from_utf8(sample().signed_message().unwrap()).unwrap();
        assert!(v2.contains("stdout_blake3=\"ab\"\n"));
        assert!(!v2.contains("sha256=\"ab\""));
        assert!(!v2.contains("stdout_sha256"));
    }

    #[test]
    fn an_unknown_format_has_no_message_to_verify() {
        for format in [0, 3, 99] {
            let mut s = sample();
            s.format = format;
            assert_eq!(s.signed_message(), None, "format {format}");
        }
    }

    #[test]
    fn format_2_json_has_no_sha256_stream_fields_and_format_1_reads_back() {
        let json = serde_json::to_string(&sample()).unwrap();
        assert!(json.contains("\"stdout_blake3\":\"ab\""), "{json}");
        assert!(!json.contains("stdout_sha256"), "{json}");
        let mut v1 = sample();
        v1.format = FORMAT_V1;
        v1.stdout_blake3 = None;
        v1.stdout_sha256 = Some("ab".into());
        let json = serde_json::to_string(&v1).unwrap();
        assert!(!json.contains("blake3"), "{json}");
        let back: Sidecar = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v1);
    }

    #[test]
    fn every_signed_field_changes_the_message() {
        let base = sample().signed_message();
        let mut s = sample();
        s.user = "bob".into();
        assert_ne!(s.signed_message(), base);
        let mut s = sample();
        s.bytes.stdout = 3;
        assert_ne!(s.signed_message(), base);
        let mut s = sample();
        s.cast_sha256 = Some("ce".into());
        assert_ne!(s.signed_message(), base);
    }

    #[test]
    fn atomic_write_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s1.json");
        sample().write(&p).unwrap();
        assert_eq!(Sidecar::read(&p).unwrap(), sample());
        assert!(!dir.path().join("s1.json.tmp").exists());
    }
}
