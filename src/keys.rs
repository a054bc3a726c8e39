//! The bastion's own SSH keys: the host key staff see, and the identity key
//! it logs in to targets with. Both are OpenSSH Ed25519 private keys
//! created 0600 on first start (with a `.pub` beside them), or loaded when
//! an admin put them there.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::rand::SecureRandom;
use russh::keys::ssh_key::{LineEnding, private::Ed25519Keypair};
use russh::keys::{HashAlg, PrivateKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: not a usable OpenSSH private key: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Loads the private key at `path`, creating an Ed25519 key (and `path.pub`)
/// with mode 0600 when the file does not exist.
pub fn load_or_create(path: &Path, comment: &str) -> Result<PrivateKey, KeyError> {
    let io = |message: String| KeyError::Io {
        path: path.to_path_buf(),
        message,
    };
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|e| io(e.to_string()))?;
        return PrivateKey::from_openssh(text.as_bytes()).map_err(|e| KeyError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        });
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io(e.to_string()))?;
    }
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| io("no randomness available".into()))?;
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    seed.fill(0);
    key.set_comment(comment);
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| io(format!("cannot encode key: {e}")))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(e.to_string()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| io(e.to_string()))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| io(format!("cannot encode public key: {e}")))?;
    let pub_path = PathBuf::from(format!("{}.pub", path.display()));
    std::fs::write(&pub_path, format!("{public}\n")).map_err(|e| KeyError::Io {
        path: pub_path.clone(),
        message: e.to_string(),
    })?;
    Ok(key)
}

/// `ssh-ed25519 AAAA... comment`, as targets' authorized_keys want it.
pub fn public_line(key: &PrivateKey) -> String {
    key.public_key().to_openssh().unwrap_or_default()
}

/// `SHA256:...`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &russh::keys::PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key");
        let a = load_or_create(&path, "gatehouse").unwrap();
        let b = load_or_create(&path, "gatehouse").unwrap();
        assert_eq!(a.public_key().key_data(), b.public_key().key_data());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let pubtext = std::fs::read_to_string(dir.path().join("sub/key.pub")).unwrap();
        assert!(pubtext.starts_with("ssh-ed25519 "));
        assert!(fingerprint(a.public_key()).starts_with("SHA256:"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            load_or_create(&path, "x"),
            Err(KeyError::Parse { .. })
        ));
    }
}
