//! The vault's master key: 32 bytes from the environment variable
//! `GATEHOUSE_MASTER_KEY` (base64, or 64 hex digits) or from the file named
//! by `server.master_key` (base64), created 0600 with fresh random bytes on
//! first use. The environment wins so that a deployment can keep the key
//! out of the filesystem entirely.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};

use super::VaultError;
use super::secret::{REDACTED, Secret};

/// Name of the environment variable that overrides the key file.
pub const MASTER_KEY_ENV: &str = "GATEHOUSE_MASTER_KEY";

/// Length of the master key in bytes (AES-256).
pub const MASTER_KEY_LEN: usize = 32;

/// Where the key in use came from; `vault rekey` needs to know whether it
/// can replace a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(std::path::PathBuf),
    /// Built in memory (tests, a freshly generated key).
    Memory,
}

/// 32 secret bytes. Prints as `[redacted]`; wiped on drop.
pub struct MasterKey {
    bytes: [u8; MASTER_KEY_LEN],
    source: KeySource,
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> MasterKey {
        MasterKey {
            bytes,
            source: KeySource::Memory,
        }
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<MasterKey, VaultError> {
        let mut bytes = [0u8; MASTER_KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| VaultError::Random)?;
        Ok(MasterKey::from_bytes(bytes))
    }

    /// Parses base64 (standard alphabet, padded or not) or exactly 64 hex
    /// digits; surrounding whitespace is ignored. Errors never echo the text.
    pub fn parse(text: &str) -> Result<MasterKey, VaultError> {
        let t = text.trim();
        let decoded = if t.len() == 2 * MASTER_KEY_LEN && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|_| VaultError::MasterKey("not valid hex".into()))?
        } else {
            STANDARD
                .decode(t)
                .or_else(|_| STANDARD_NO_PAD.decode(t))
                .map_err(|_| VaultError::MasterKey("neither base64 nor 64 hex digits".into()))?
        };
        let n = decoded.len();
        let bytes: Result<[u8; MASTER_KEY_LEN], _> = decoded.as_slice().try_into();
        super::secret::wipe(decoded);
        match bytes {
            Ok(bytes) => Ok(MasterKey::from_bytes(bytes)),
            Err(_) => Err(VaultError::MasterKey(format!(
                "expected {MASTER_KEY_LEN} bytes, found {n}"
            ))),
        }
    }

    /// The key the bastion uses: `GATEHOUSE_MASTER_KEY` when set, else the
    /// file at `path`, created when missing.
    pub fn resolve(path: &Path) -> Result<MasterKey, VaultError> {
        let env = std::env::var(MASTER_KEY_ENV).ok().map(Secret::new);
        Self::resolve_with(env.as_ref(), path)
    }

    /// [`MasterKey::resolve`] with the environment value passed in, so that
    /// tests need not mutate the process environment.
    pub fn resolve_with(env: Option<&Secret>, path: &Path) -> Result<MasterKey, VaultError> {
        match env {
            Some(v) if !v.expose().trim().is_empty() => {
                let mut k = MasterKey::parse(v.expose())
                    .map_err(|e| VaultError::MasterKey(format!("{MASTER_KEY_ENV}: {e}")))?;
                k.source = KeySource::Env;
                Ok(k)
            }
            _ => MasterKey::load_or_create(path),
        }
    }

    /// Reads the base64 key in `path`; when the file does not exist, creates
    /// it (and its folders) with mode 0600 holding a fresh random key.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, VaultError> {
        let io = |e: std::io::Error| VaultError::MasterKey(format!("{}: {e}", path.display()));
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Secret::new(text);
                // Refused before it is even parsed: a key others could read
                // opens every credential in the vault.
                let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(VaultError::MasterKey(format!(
                        "{}: the key file is accessible by group or others (mode {:04o}); \
                         chmod 600 it",
                        path.display(),
                        mode & 0o7777
                    )));
                }
                let mut k = MasterKey::parse(text.expose())
                    .map_err(|e| VaultError::MasterKey(format!("{}: {e}", path.display())))?;
                k.source = KeySource::File(path.to_path_buf());
                Ok(k)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = MasterKey::generate()?;
                write_new_key_file(path, &k).map_err(io)?;
                k.source = KeySource::File(path.to_path_buf());
                Ok(k)
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The key as base64 text, as stored in a key file.
    pub fn to_base64(&self) -> Secret {
        Secret::new(STANDARD.encode(self.bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.bytes
    }

    /// Constant-time comparison of two keys' bytes.
    pub fn same_bytes(&self, other: &MasterKey) -> bool {
        super::secret::ct_eq(&self.bytes, &other.bytes)
    }
}

/// Creates `path` (never overwriting) with mode 0600 and the key in base64.
fn write_new_key_file(path: &Path, key: &MasterKey) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let text = key.to_base64();
    f.write_all(text.expose().as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Replaces the key file at `path` with `key`, atomically: a 0600 temporary
/// file beside it, synced, then renamed over the old one. Used by
/// `vault rekey` after the database has been re-encrypted.
pub fn replace_key_file(path: &Path, key: &MasterKey) -> Result<(), VaultError> {
    let io = |e: std::io::Error| VaultError::MasterKey(format!("{}: {e}", path.display()));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "master.key".into());
    let tmp = dir.join(format!(".{name}.new"));
    let _ = std::fs::remove_file(&tmp);
    write_new_key_file(&tmp, key).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.bytes = [0u8; MASTER_KEY_LEN];
        std::hint::black_box(&self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base64_and_hex() {
        let k = MasterKey::from_bytes([7u8; 32]);
        let b64 = k.to_base64();
        let back = MasterKey::parse(b64.expose()).unwrap();
        assert!(back.same_bytes(&k));
        let back = MasterKey::parse(&format!("  {}\n", hex::encode([7u8; 32]))).unwrap();
        assert!(back.same_bytes(&k));
        let unpadded = b64.expose().trim_end_matches('=').to_string();
        assert!(MasterKey::parse(&unpadded).unwrap().same_bytes(&k));
    }

    #[test]
    fn wrong_length_and_garbage_are_clear_errors() {
        let short = STANDARD.encode([1u8; 16]);
        let err = MasterKey::parse(&short).unwrap_err().to_string();
        assert!(err.contains("expected 32 bytes, found 16"), "{err}");
        let err = MasterKey::parse("not a key at all!")
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither base64 nor 64 hex"), "{err}");
        // 63 hex digits is not hex-shaped; it is not valid base64 either.
        let err = MasterKey::parse(&"a".repeat(63)).unwrap_err().to_string();
        assert!(err.contains("master key"), "{err}");
    }

    #[test]
    fn file_is_created_0600_with_its_folders_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/master.key");
        let k1 = MasterKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(k1.source(), &KeySource::File(path.clone()));
        let k2 = MasterKey::load_or_create(&path).unwrap();
        assert!(k1.same_bytes(&k2));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 44);
    }

    #[test]
    fn environment_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let env = Secret::new(hex::encode([9u8; 32]));
        let k = MasterKey::resolve_with(Some(&env), &path).unwrap();
        assert!(k.same_bytes(&MasterKey::from_bytes([9u8; 32])));
        assert_eq!(k.source(), &KeySource::Env);
        assert!(
            !path.exists(),
            "the file must not be created when env is set"
        );
        let bad = Secret::new("garbage");
        let err = MasterKey::resolve_with(Some(&bad), &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains(MASTER_KEY_ENV), "{err}");
    }

    #[test]
    fn a_key_file_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load_or_create(&path).unwrap();
        for mode in [0o640, 0o604, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = MasterKey::load_or_create(&path).unwrap_err().to_string();
            assert!(err.contains("accessible by group or others"), "{err}");
            assert!(err.contains(&format!("{mode:04o}")), "{err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(MasterKey::load_or_create(&path).is_ok());
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, "xx").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = MasterKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("master.key"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "xx");
    }

    #[test]
    fn replace_key_file_swaps_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let old = MasterKey::load_or_create(&path).unwrap();
        let new = MasterKey::generate().unwrap();
        replace_key_file(&path, &new).unwrap();
        let back = MasterKey::load_or_create(&path).unwrap();
        assert!(back.same_bytes(&new));
        assert!(!back.same_bytes(&old));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn debug_is_redacted() {
        let k = MasterKey::from_bytes([1u8; 32]);
        assert_eq!(format!("{k:?}"), REDACTED);
    }
}
