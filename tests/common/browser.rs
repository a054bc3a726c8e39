//! The console's browser tests (e2e_web, e2e_workbench, e2e_oidc): Debian's
//! chromium driven by playwright-core from tests/web, installed by
//! scripts/setup.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// tests/web: the node scripts and their node_modules.
pub fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web")
}

/// Whether chromium, node and the npm packages `packages` (besides
/// playwright-core) are here. Missing pieces fail the test `test` with
/// what to run, unless `GATEHOUSE_SKIP_BROWSER` is set: then it says so
/// loudly and returns `false`.
pub fn browser_available(test: &str, packages: &[&str]) -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let mut missing: Vec<String> = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(CHROMIUM.into());
    }
    if !node {
        missing.push("node".into());
    }
    for p in std::iter::once("playwright-core").chain(packages.iter().copied()) {
        if !web_dir().join("node_modules").join(p).exists() {
            missing.push(format!("tests/web/node_modules/{p} (run scripts/setup)"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("GATEHOUSE_SKIP_BROWSER").is_some() {
        eprintln!(
            "\n!!!!!!!! {test} SKIPPED: missing {missing:?} and GATEHOUSE_SKIP_BROWSER is set !!!!!!!!\n"
        );
        return false;
    }
    panic!("{test} needs {missing:?}: run scripts/setup (or set GATEHOUSE_SKIP_BROWSER=1)");
}
