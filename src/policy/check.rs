//! Validation: raw types into the checked [`super::Policy`].
use std::path::{Path, PathBuf};

use super::{Diagnostic, Policy};

pub fn load_dir(dir: &Path) -> Result<Policy, Vec<Diagnostic>> {
    Err(vec![Diagnostic {
        file: dir.to_path_buf(),
        line: 1,
        col: 1,
        message: "policy loading not implemented yet".into(),
    }])
}

pub fn from_sources(_sources: &[(PathBuf, String)]) -> Result<Policy, Vec<Diagnostic>> {
    Err(vec![])
}
