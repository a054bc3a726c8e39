//! Forward-secure sealing of the audit chain (journald's FSS, Schneier and
//! Kelsey's secure logs).
//!
//! The hash chain alone proves nothing against whoever can write the
//! database: they can change an event and recompute every later hash and
//! the head. So each node also *seals* its chain segment with a key that
//! evolves forward and is never in the database:
//!
//! - `K_0` is 32 random bytes made when the node first seals. Epoch `i`'s
//!   key is `K_i = HMAC-SHA256(K_{i-1}, "gatehouse-seal-evolve")`; the MAC
//!   key of an epoch is `HMAC-SHA256(K_i, "gatehouse-seal-mac")`.
//! - At the end of an epoch (every `[audit] seal_interval` with new
//!   events, and at a clean shutdown) the node writes a seal row: node,
//!   epoch, the last `seq` covered, the chain hash at that `seq`, the time,
//!   and the MAC of those fields under the epoch's MAC key
//!   ([`seal_mac`]). Then the key file is rewritten with `K_{i+1}`: `K_i`
//!   is gone from disk and memory, so whoever takes the bastion later can
//!   forge no seal of a past epoch.
//! - `K_0` stays in the key file until `gatehouse audit seal-key` prints
//!   it once (the site keeps it offline) and erases it.
//! - `gatehouse audit verify --seal-key FILE` derives every epoch's key
//!   from `K_0` and checks every seal, and that the chain still holds the
//!   sealed hash at each sealed `seq` (`Store::verify_chain_with`).
//!
//! The key file (`[audit] seal_key`, default `data/audit-seal-{node}.key`, 0600)
//! is text: a version line, then `node`, `epoch`, `key` and, until
//! printed, `initial`. Every change goes through a temporary file, fsync
//! and rename, under an exclusive lock on `KEYFILE.lock`, so `serve` and
//! `gatehouse audit seal` never seal the same epoch twice.
//!
//! This module owns the maths (key evolution, seal MACs, the signed chain
//! head's message) and the key file; writing seal rows is the `sealer`
//! workflow above the store. May import: nothing of this crate.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::hmac;

const VERSION_LINE: &str = "gatehouse-audit-seal-key 1";
const EVOLVE_LABEL: &[u8] = b"gatehouse-seal-evolve";
const MAC_LABEL: &[u8] = b"gatehouse-seal-mac";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("seal key task: {0}")]
    Task(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("seal key file {}: belongs to node {found:?}, this node is {expected:?}", path.display())]
    WrongNode {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("randomness: {0}")]
    Random(String),
}

impl SealError {
    fn io(path: &Path, source: std::io::Error) -> SealError {
        SealError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    fn format(path: &Path, message: impl Into<String>) -> SealError {
        SealError::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// A 32-byte seal key; zeroed when dropped, never printed by `Debug`.
pub struct SealKey([u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl Drop for SealKey {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // Volatile, so the compiler cannot drop the wipe of a value
            // about to be freed.
            // SAFETY: `b` is a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl Clone for SealKey {
    fn clone(&self) -> Self {
        SealKey(self.0)
    }
}

impl SealKey {
    pub fn random() -> Result<SealKey, SealError> {
        use ring::rand::SecureRandom;
        let mut k = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| SealError::Random("the system random source failed".into()))?;
        Ok(SealKey(k))
    }

    /// From 64 hex digits.
    pub fn from_hex(s: &str) -> Option<SealKey> {
        let bytes = hex::decode(s.trim()).ok()?;
        let k: [u8; 32] = bytes.try_into().ok()?;
        Some(SealKey(k))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The next epoch's key. `self` should be dropped after.
    pub fn evolve(&self) -> SealKey {
        SealKey(prf(&self.0, EVOLVE_LABEL))
    }

    /// The key `n` epochs later.
    #[cfg(test)]
    pub(crate) fn evolve_by(&self, n: u64) -> SealKey {
        let mut k = self.clone();
        for _ in 0..n {
            k = k.evolve();
        }
        k
    }

    fn mac_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &prf(&self.0, MAC_LABEL))
    }
}

fn prf(key: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), label);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The fields a seal row's MAC covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealFields<'a> {
    pub node: &'a str,
    pub epoch: i64,
    pub seq: i64,
    pub hash: &'a str,
    pub ts: &'a str,
}

fn seal_message(f: &SealFields<'_>) -> Vec<u8> {
    let mut m = b"gatehouse-seal-v1\0".to_vec();
    m.extend_from_slice(&(f.node.len() as u64).to_be_bytes());
    m.extend_from_slice(f.node.as_bytes());
    m.extend_from_slice(&f.epoch.to_be_bytes());
    m.extend_from_slice(&f.seq.to_be_bytes());
    for text in [f.hash.as_bytes(), f.ts.as_bytes()] {
        m.extend_from_slice(&(text.len() as u64).to_be_bytes());
        m.extend_from_slice(text);
    }
    m
}

/// Hex HMAC-SHA256 of a seal's fields under `key` (the epoch's key).
pub fn seal_mac(key: &SealKey, f: &SealFields<'_>) -> String {
    hex::encode(hmac::sign(&key.mac_key(), &seal_message(f)).as_ref())
}

/// Whether `mac` (hex) is the seal's MAC under `key`, in constant time.
pub fn seal_mac_ok(key: &SealKey, f: &SealFields<'_>, mac: &str) -> bool {
    match hex::decode(mac) {
        Ok(tag) => hmac::verify(&key.mac_key(), &seal_message(f), &tag).is_ok(),
        Err(_) => false,
    }
}

/// The key file's content.
#[derive(Debug)]
pub struct KeyFile {
    pub node: String,
    /// The epoch the next seal will be for; `key` is its key.
    pub epoch: i64,
    pub key: SealKey,
    /// `K_0`, until `audit seal-key` printed it.
    pub initial: Option<SealKey>,
    /// When `K_0` was printed (RFC 3339), once it was.
    pub printed: Option<String>,
    /// The last `seq` this node sealed (0 before the first seal): read
    /// from here, not from the database, which an attacker may write.
    pub sealed: i64,
}

impl KeyFile {
    fn parse(path: &Path, text: &str) -> Result<KeyFile, SealError> {
        let mut lines = text.lines();
        if lines.next() != Some(VERSION_LINE) {
            return Err(SealError::format(
                path,
                format!("not a seal key file (first line must be {VERSION_LINE:?})"),
            ));
        }
        let (mut node, mut epoch, mut key, mut initial, mut printed) =
            (None, None, None, None, None);
        let mut sealed = 0;
        for line in lines {
            let Some((name, value)) = line.split_once(' ') else {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(SealError::format(path, format!("bad line {line:?}")));
            };
            let bad = |what: &str| SealError::format(path, format!("bad {what}"));
            match name {
                "node" => node = Some(value.to_string()),
                "epoch" => epoch = Some(value.parse::<i64>().map_err(|_| bad("epoch"))?),
                "key" => key = Some(SealKey::from_hex(value).ok_or_else(|| bad("key"))?),
                "initial" => {
                    initial = Some(SealKey::from_hex(value).ok_or_else(|| bad("initial key"))?)
                }
                "printed" => printed = Some(value.to_string()),
                "sealed" => sealed = value.parse::<i64>().map_err(|_| bad("sealed"))?,
                _ => return Err(SealError::format(path, format!("unknown field {name:?}"))),
            }
        }
        let missing = |what: &str| SealError::format(path, format!("no {what} line"));
        let epoch = epoch.ok_or_else(|| missing("epoch"))?;
        if epoch < 0 {
            return Err(SealError::format(path, "negative epoch"));
        }
        Ok(KeyFile {
            node: node.ok_or_else(|| missing("node"))?,
            epoch,
            key: key.ok_or_else(|| missing("key"))?,
            initial,
            printed,
            sealed,
        })
    }

    fn render(&self) -> String {
        let mut s = format!(
            "{VERSION_LINE}\nnode {}\nepoch {}\nsealed {}\nkey {}\n",
            self.node,
            self.epoch,
            self.sealed,
            self.key.to_hex()
        );
        if let Some(k) = &self.initial {
            s.push_str(&format!("initial {}\n", k.to_hex()));
        }
        if let Some(p) = &self.printed {
            s.push_str(&format!("printed {p}\n"));
        }
        s
    }
}

/// The key file, held under its lock for as long as this lives.
pub struct KeyStore {
    path: PathBuf,
    _lock: std::fs::File,
}

impl KeyStore {
    /// Takes the key file's lock (waiting for another process's seal).
    pub fn lock(path: &Path) -> Result<KeyStore, SealError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| SealError::io(dir, e))?;
        }
        let lock_path = lock_path(path);
        let lock = open_private(&lock_path, false)?;
        lock.lock().map_err(|e| SealError::io(&lock_path, e))?;
        Ok(KeyStore {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The key file, or `None` when there is none yet.
    ///
    /// [`KeyStore::write`] wipes the old file before renaming the new one
    /// over it; after a crash between the two, the wiped file does not
    /// parse and the new one is still in `KEYFILE.tmp`: it is taken.
    pub fn read(&self) -> Result<Option<KeyFile>, SealError> {
        let main = match std::fs::read_to_string(&self.path) {
            Ok(text) => KeyFile::parse(&self.path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SealError::io(&self.path, e)),
        };
        if let Err(SealError::Format { .. }) = &main {
            let tmp = self.tmp_path();
            if let Ok(text) = std::fs::read_to_string(&tmp)
                && let Ok(f) = KeyFile::parse(&tmp, &text)
            {
                std::fs::rename(&tmp, &self.path).map_err(|e| SealError::io(&self.path, e))?;
                return Ok(Some(f));
            }
        }
        main
    }

    fn tmp_path(&self) -> PathBuf {
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        self.path.with_file_name(tmp_name)
    }

    /// The key file for `node`, created at epoch 0 with a fresh `K_0` if
    /// missing.
    pub fn read_or_create(&self, node: &str) -> Result<KeyFile, SealError> {
        let file = match self.read()? {
            Some(f) => f,
            None => {
                let k0 = SealKey::random()?;
                let f = KeyFile {
                    node: node.to_string(),
                    epoch: 0,
                    key: k0.clone(),
                    initial: Some(k0),
                    printed: None,
                    sealed: 0,
                };
                self.write(&f)?;
                f
            }
        };
        if file.node != node {
            return Err(SealError::WrongNode {
                path: self.path.clone(),
                found: file.node,
                expected: node.to_string(),
            });
        }
        Ok(file)
    }

    /// Replaces the key file (temporary file, fsync, rename, fsync of the
    /// folder): a crash leaves the old or the new file, never a torn one.
    ///
    /// After `serve` dropped privileges the folder may not be its own:
    /// then the file (handed over before the drop) is rewritten in place.
    pub fn write(&self, f: &KeyFile) -> Result<(), SealError> {
        let tmp = self.tmp_path();
        let text = f.render();
        let put = |path: &Path, mut out: std::fs::File| {
            out.write_all(text.as_bytes())
                .and_then(|()| out.sync_all())
                .map_err(|e| SealError::io(path, e))
        };
        match open_private(&tmp, true) {
            Ok(out) => put(&tmp, out)?,
            Err(SealError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                let out = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&self.path)
                    .map_err(|e| SealError::io(&self.path, e))?;
                return put(&self.path, out);
            }
            Err(e) => return Err(e),
        }
        // The old key's bytes are overwritten where they lie before the
        // file is replaced, not merely unlinked (best effort: a
        // copy-on-write filesystem or an SSD may keep old blocks).
        wipe(&self.path)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| SealError::io(&self.path, e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Overwrites a file's bytes with zeros and syncs; a missing file is fine.
fn wipe(path: &Path) -> Result<(), SealError> {
    let mut f = match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SealError::io(path, e)),
    };
    let len = f.metadata().map_err(|e| SealError::io(path, e))?.len();
    let zeros = vec![0u8; usize::try_from(len).unwrap_or(0)];
    f.write_all(&zeros)
        .and_then(|()| f.sync_all())
        .map_err(|e| SealError::io(path, e))
}

/// `KEYFILE.lock`, beside the key file.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

/// Opens (creating 0600) for writing; `truncate` empties it.
fn open_private(path: &Path, truncate: bool) -> Result<std::fs::File, SealError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(truncate)
        .mode(0o600)
        .open(path)
        .map_err(|e| SealError::io(path, e))
}

/// Runs `f` with the key file locked, off the async threads (taking the
/// lock may wait for another process's seal).
pub(crate) async fn with_keys<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce(&KeyStore) -> Result<T, SealError> + Send + 'static,
) -> Result<(KeyStore, T), SealError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let ks = KeyStore::lock(&path)?;
        let v = f(&ks)?;
        Ok((ks, v))
    })
    .await
    .map_err(|e| SealError::Task(e.to_string()))?
}

/// Makes the key file if this node has none (`serve` at start), so `K_0`
/// exists before the first event it could seal.
pub async fn ensure_key(path: &Path, node: &str) -> Result<(), SealError> {
    let node = node.to_string();
    with_keys(path, move |ks| ks.read_or_create(&node).map(drop)).await?;
    Ok(())
}

/// What `audit seal-key` found.
#[derive(Debug)]
pub enum Initial {
    /// `K_0`, now erased from the key file.
    Key(SealKey),
    /// Printed before, at this time.
    AlreadyPrinted(Option<String>),
}

/// Takes `K_0` out of the key file (creating the file if this node has
/// none yet): returned once, then erased.
pub async fn take_initial(path: &Path, node: &str, now: String) -> Result<Initial, SealError> {
    let node = node.to_string();
    let (_ks, out) = with_keys(path, move |ks| {
        let mut file = ks.read_or_create(&node)?;
        match file.initial.take() {
            None => Ok(Initial::AlreadyPrinted(file.printed)),
            Some(k0) => {
                file.printed = Some(now);
                ks.write(&file)?;
                Ok(Initial::Key(k0))
            }
        }
    })
    .await?;
    Ok(out)
}

/// The epoch the node's key file is at (the next seal's), without the
/// key: seals below it must all be in the database.
pub fn current_epoch(path: &Path, node: &str) -> Result<Option<i64>, SealError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let f = KeyFile::parse(path, &text)?;
            Ok((f.node == node).then_some(f.epoch))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SealError::io(path, e)),
    }
}

/// What the daily report's signature over one node's chain head covers:
/// the report's date, the node, the head's `seq` and hash, and the last
/// seal's epoch (`-1` for none), length-prefixed.
pub fn head_message(date: &str, node: &str, seq: i64, hash: &str, epoch: Option<i64>) -> Vec<u8> {
    let mut m = b"gatehouse-chain-head-v1\0".to_vec();
    for text in [date.as_bytes(), node.as_bytes(), hash.as_bytes()] {
        m.extend_from_slice(&(text.len() as u64).to_be_bytes());
        m.extend_from_slice(text);
    }
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&epoch.unwrap_or(-1).to_be_bytes());
    m
}

/// The initial keys an auditor holds, by node: `--seal-key FILE` (may be
/// repeated), each line `NODE KEY` as `audit seal-key` prints it. Blank
/// lines and lines starting with `#` are skipped.
pub fn parse_key_lines(
    path: &Path,
    text: &str,
    into: &mut std::collections::HashMap<String, SealKey>,
) -> Result<(), SealError> {
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(node), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::format(
                path,
                format!("line {}: expected `NODE KEY`", n + 1),
            ));
        };
        let key = SealKey::from_hex(key).ok_or_else(|| {
            SealError::format(
                path,
                format!("line {}: the key is not 64 hex digits", n + 1),
            )
        })?;
        if into.insert(node.to_string(), key).is_some() {
            return Err(SealError::format(
                path,
                format!("line {}: node {node} named twice", n + 1),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> SealFields<'static> {
        SealFields {
            node: "n1",
            epoch: 3,
            seq: 42,
            hash: "ab",
            ts: "2026-01-01T00:00:00.000000Z",
        }
    }

    #[test]
    fn keys_evolve_one_way_and_deterministically() {
        let k0 = SealKey::from_hex(&"11".repeat(32)).unwrap();
        let k1 = k0.evolve();
        let k2 = k1.evolve();
        assert_ne!(k0.to_hex(), k1.to_hex());
        assert_ne!(k1.to_hex(), k2.to_hex());
        assert_eq!(k0.evolve_by(2).to_hex(), k2.to_hex());
        assert_eq!(k0.evolve_by(0).to_hex(), k0.to_hex());
        // HMAC-SHA256(K_0, label), computed independently.
        let expect = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &[0x11; 32]),
            b"gatehouse-seal-evolve",
        );
        assert_eq!(k1.to_hex(), hex::encode(expect.as_ref()));
        // The MAC key is not the evolving key: a seal MAC never reveals
        // the next epoch's key.
        assert_ne!(prf(&k1.0, MAC_LABEL), k2.0);
    }

    #[test]
    fn a_seal_verifies_only_under_its_epochs_key_and_fields() {
        let k0 = SealKey::random().unwrap();
        let k3 = k0.evolve_by(3);
        let mac = seal_mac(&k3, &fields());
        assert!(seal_mac_ok(&k3, &fields(), &mac));
        assert!(!seal_mac_ok(&k0.evolve_by(2), &fields(), &mac));
        assert!(!seal_mac_ok(&k0.evolve_by(4), &fields(), &mac));
        for changed in [
            SealFields {
                seq: 41,
                ..fields()
            },
            SealFields {
                epoch: 4,
                ..fields()
            },
            SealFields {
                hash: "ac",
                ..fields()
            },
            SealFields {
                node: "n2",
                ..fields()
            },
            SealFields {
                ts: "2026-01-01T00:00:00.000001Z",
                ..fields()
            },
        ] {
            assert!(!seal_mac_ok(&k3, &changed, &mac), "{changed:?}");
        }
        assert!(!seal_mac_ok(&k3, &fields(), "zz"));
    }

    #[test]
    fn key_file_round_trips_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/seal.key");
        let store = KeyStore::lock(&path).unwrap();
        let f = store.read_or_create("n1").unwrap();
        assert_eq!(f.epoch, 0);
        assert_eq!(
            f.initial.as_ref().map(SealKey::to_hex),
            Some(f.key.to_hex())
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = store.read().unwrap().unwrap();
        assert_eq!(again.key.to_hex(), f.key.to_hex());
        assert!(matches!(
            store.read_or_create("n2"),
            Err(SealError::WrongNode { .. })
        ));
        let next = KeyFile {
            node: "n1".into(),
            epoch: 1,
            key: f.key.evolve(),
            initial: None,
            printed: Some("2026-01-01T00:00:00Z".into()),
            sealed: 7,
        };
        store.write(&next).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&f.key.to_hex()), "{text}");
        let back = store.read().unwrap().unwrap();
        assert_eq!(back.epoch, 1);
        assert_eq!(back.sealed, 7);
        assert!(back.initial.is_none());
    }

    #[test]
    fn a_crash_between_wipe_and_rename_keeps_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        let store = KeyStore::lock(&path).unwrap();
        let f = store.read_or_create("n1").unwrap();
        let next = KeyFile {
            node: "n1".into(),
            epoch: 1,
            key: f.key.evolve(),
            initial: None,
            printed: None,
            sealed: 3,
        };
        // What `write` leaves if it stops after the wipe.
        std::fs::write(dir.path().join("seal.key.tmp"), next.render()).unwrap();
        wipe(&path).unwrap();
        let old = std::fs::read(&path).unwrap();
        assert!(old.iter().all(|b| *b == 0) && !old.is_empty());
        let back = store.read().unwrap().unwrap();
        assert_eq!(back.epoch, 1);
        assert_eq!(back.key.to_hex(), f.key.evolve().to_hex());
        assert!(!dir.path().join("seal.key.tmp").exists());
        assert_eq!(store.read().unwrap().unwrap().sealed, 3);
    }

    #[test]
    fn key_lines_name_nodes() {
        let mut keys = std::collections::HashMap::new();
        let text = format!(
            "# site keys\nn1 {}\n\nn2 {}\n",
            "aa".repeat(32),
            "bb".repeat(32)
        );
        parse_key_lines(Path::new("k"), &text, &mut keys).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(parse_key_lines(Path::new("k"), "n3 abc\n", &mut keys).is_err());
        assert!(
            parse_key_lines(
                Path::new("k"),
                &format!("n1 {}\n", "cc".repeat(32)),
                &mut keys
            )
            .is_err()
        );
        assert!(parse_key_lines(Path::new("k"), "justakey\n", &mut keys).is_err());
    }
}
