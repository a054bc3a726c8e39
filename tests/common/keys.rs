//! SSH keys made by the stock `ssh-keygen`, as staff, targets and the
//! bastion's identity would have them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{OutputExt, run};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519,
    Ecdsa,
    Rsa,
}

impl KeyKind {
    fn args(self) -> &'static [&'static str] {
        match self {
            KeyKind::Ed25519 => &["-t", "ed25519"],
            KeyKind::Ecdsa => &["-t", "ecdsa", "-b", "256"],
            KeyKind::Rsa => &["-t", "rsa", "-b", "3072"],
        }
    }
}

/// An OpenSSH key pair on disk.
#[derive(Debug, Clone)]
pub struct Key {
    /// Private key file (OpenSSH format, no passphrase, mode 0600).
    pub private: PathBuf,
    /// `PRIVATE.pub`.
    pub public_path: PathBuf,
    /// The public key line, `ssh-ed25519 AAAA... COMMENT`, without newline.
    pub public: String,
}

impl Key {
    /// `SHA256:...` of this key.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public_path)
    }

    /// Loads an existing pair from `private` and `private.pub`.
    pub fn load(private: &Path) -> Key {
        let public_path = pub_path(private);
        let public = std::fs::read_to_string(&public_path)
            .unwrap_or_else(|e| panic!("{}: {e}", public_path.display()))
            .trim()
            .to_string();
        Key {
            private: private.to_path_buf(),
            public_path,
            public,
        }
    }
}

fn pub_path(private: &Path) -> PathBuf {
    let mut p = private.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Creates `DIR/keys/NAME` (+ `.pub`) with comment NAME.
pub fn keygen(dir: &Path, name: &str, kind: KeyKind) -> Key {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    keygen_at(&keys.join(name), name, kind)
}

/// Creates a key pair at exactly `private` (+ `.pub`), replacing nothing:
/// the test fails if the file exists.
pub fn keygen_at(private: &Path, comment: &str, kind: KeyKind) -> Key {
    assert!(!private.exists(), "{} exists already", private.display());
    if let Some(parent) = private.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    run(Command::new("ssh-keygen")
        .arg("-q")
        .args(kind.args())
        .args(["-N", "", "-C", comment, "-f"])
        .arg(private))
    .assert_success("ssh-keygen");
    Key::load(private)
}

/// `SHA256:...` of a public key file (or a private key file, whose public
/// half OpenSSH stores unencrypted), as `ssh-keygen -lf` prints it.
pub fn fingerprint(key_path: &Path) -> String {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(key_path));
    out.assert_success("ssh-keygen -lf");
    let text = out.stdout_text();
    let fp = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("ssh-keygen -lf printed {text:?}"));
    assert!(fp.starts_with("SHA256:"), "unexpected fingerprint {fp:?}");
    fp.to_string()
}
