//! The recording signing key: an Ed25519 key pair (ring) kept as a PKCS#8
//! file at `config.signing_key`, created 0600 on first use, with the hex
//! public key written beside it (`*.pub`) so an auditor can verify
//! recordings holding only the public key.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use super::RecordingError;

/// Signs recording sidecars. Cheap to share behind an `Arc`.
pub struct Signer {
    pair: Ed25519KeyPair,
    path: PathBuf,
}

impl fmt::Debug for Signer {
    // Never print key material beyond the public half.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("path", &self.path)
            .field("public_key", &self.public_key_hex())
            .finish()
    }
}

impl Signer {
    /// Loads the PKCS#8 key at `path`, or creates it (0600, parent folders
    /// included) when the file does not exist. Also (re)writes the public
    /// key file beside it when missing or stale.
    pub fn load_or_create(path: &Path) -> Result<Signer, RecordingError> {
        let signer = match std::fs::metadata(path) {
            Ok(_) => Self::load(path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path)?,
            Err(source) => return Err(RecordingError::io(path, source)),
        };
        signer.write_public_key_file()?;
        Ok(signer)
    }

    /// Loads an existing key; refuses a file others may read, as sshd does.
    pub fn load(path: &Path) -> Result<Signer, RecordingError> {
        let meta = std::fs::metadata(path).map_err(|e| RecordingError::io(path, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(RecordingError::Signing(format!(
                "{}: permissions {:o} are too open: the signing key must be readable by its owner only (chmod 600)",
                path.display(),
                meta.permissions().mode() & 0o777
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| RecordingError::io(path, e))?;
        let der = pem_or_der(&bytes).ok_or_else(|| {
            RecordingError::Signing(format!("{}: not a PKCS#8 key (DER or PEM)", path.display()))
        })?;
        // Keys from other tools (openssl genpkey) are PKCS#8 v1 without the
        // public key; ring's checked loader wants v2, so fall back.
        let pair = Ed25519KeyPair::from_pkcs8(&der)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der))
            .map_err(|e| {
                RecordingError::Signing(format!(
                    "{}: not an Ed25519 PKCS#8 key: {e}",
                    path.display()
                ))
            })?;
        Ok(Signer {
            pair,
            path: path.to_path_buf(),
        })
    }

    fn create(path: &Path) -> Result<Signer, RecordingError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| RecordingError::io(parent, e))?;
        }
        let rng = SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| RecordingError::Signing("cannot generate an Ed25519 key".into()))?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        let mut file = match file {
            Ok(f) => f,
            // Another process created it between our check and now: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Self::load(path),
            Err(e) => return Err(RecordingError::io(path, e)),
        };
        file.write_all(doc.as_ref())
            .and_then(|()| file.sync_all())
            .map_err(|e| RecordingError::io(path, e))?;
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
            .map_err(|e| RecordingError::Signing(format!("generated key rejected: {e}")))?;
        Ok(Signer {
            pair,
            path: path.to_path_buf(),
        })
    }

    fn write_public_key_file(&self) -> Result<(), RecordingError> {
        let pub_path = public_key_path(&self.path);
        let want = format!("{}\n", self.public_key_hex());
        if std::fs::read_to_string(&pub_path).is_ok_and(|have| have == want) {
            return Ok(());
        }
        std::fs::write(&pub_path, want).map_err(|e| RecordingError::io(&pub_path, e))
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key as lowercase hex (as stored in sidecars and `*.pub`).
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key())
    }

    /// Ed25519 signature over `msg`.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair.sign(msg).as_ref().to_vec()
    }

    /// Where the key lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `data/signing_ed25519.pk8` -> `data/signing_ed25519.pub`.
pub fn public_key_path(key_path: &Path) -> PathBuf {
    key_path.with_extension("pub")
}

/// The configured signing key's public key, without creating anything:
/// from the private key when present, else from the `.pub` file beside it.
/// `Ok(None)` when neither exists.
pub fn configured_public_key(key_path: &Path) -> Result<Option<Vec<u8>>, RecordingError> {
    if key_path.exists() {
        return Ok(Some(Signer::load(key_path)?.public_key().to_vec()));
    }
    let pub_path = public_key_path(key_path);
    match std::fs::read_to_string(&pub_path) {
        Ok(text) => decode_public_key(text.trim()).map(Some).ok_or_else(|| {
            RecordingError::Signing(format!(
                "{}: not a hex or base64 Ed25519 public key",
                pub_path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RecordingError::io(&pub_path, e)),
    }
}

/// Parses a 32-byte public key written as hex or base64.
pub fn decode_public_key(text: &str) -> Option<Vec<u8>> {
    let bytes = hex::decode(text)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())?;
    (bytes.len() == 32).then_some(bytes)
}

/// Checks an Ed25519 signature. Any malformed input is simply `false`.
pub fn verify(public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(msg, sig)
        .is_ok()
}

/// DER as is, or the body of a `-----BEGIN PRIVATE KEY-----` PEM block.
fn pem_or_der(bytes: &[u8]) -> Option<Vec<u8>> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Some(bytes.to_vec());
    };
    if !text.contains("-----BEGIN") {
        return Some(bytes.to_vec());
    }
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_0600_with_public_key_beside_and_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/signing_ed25519.pk8");
        let a = Signer::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let pub_text =
            std::fs::read_to_string(dir.path().join("sub/dir/signing_ed25519.pub")).unwrap();
        assert_eq!(pub_text.trim(), a.public_key_hex());
        let b = Signer::load_or_create(&path).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(
            configured_public_key(&path).unwrap().unwrap(),
            a.public_key()
        );
    }

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let dir = tempfile::tempdir().unwrap();
        let s = Signer::load_or_create(&dir.path().join("k.pk8")).unwrap();
        let sig = s.sign(b"message");
        assert!(verify(s.public_key(), b"message", &sig));
        assert!(!verify(s.public_key(), b"messagf", &sig));
        assert!(!verify(&[0u8; 3], b"message", &sig));
    }

    #[test]
    fn refuses_a_key_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pk8");
        Signer::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Signer::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("too open"), "{err}");
    }

    #[test]
    fn public_key_alone_is_enough_to_find_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pk8");
        let s = Signer::load_or_create(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            configured_public_key(&path).unwrap().unwrap(),
            s.public_key()
        );
        assert!(
            configured_public_key(&dir.path().join("none.pk8"))
                .unwrap()
                .is_none()
        );
    }
}
