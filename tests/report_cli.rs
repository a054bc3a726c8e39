//! `gatehouse report daily` refuses bad usage with exit status 2 before
//! touching the database.

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gatehouse.toml");
    std::fs::write(&cfg, "[server]\ndatabase = \"sqlite://data/g.db\"\n").unwrap();
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_bad_date_is_bad_usage() {
    for date in ["2026-13-01", "yesterday", "2026-02-30", ""] {
        let out = run(&["report", "daily", "--date", date]);
        assert_eq!(out.status.code(), Some(2), "{date:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: invalid --date"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn a_bad_format_is_bad_usage() {
    let out = run(&[
        "report",
        "daily",
        "--date",
        "2026-03-10",
        "--format",
        "html,pdf",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"pdf\""), "{err}");
}
