//! The daily report's HTML opened in a real browser (headless Chromium):
//! it must load as one self-contained file and render to a non-trivial
//! page. CI must have Chromium installed (`apt-get install -y chromium`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gatehouse::report::{Format, ReportInput, UserFact, WorkHours, build, write_report};
use gatehouse::store::SessionRow;
use time::macros::{date, datetime};

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn session(id: &str, user: &str, hour: u8, recorded: bool) -> SessionRow {
    let start = date!(2026 - 03 - 10)
        .with_hms(hour, 0, 0)
        .unwrap()
        .assume_utc();
    SessionRow {
        id: id.into(),
        user: user.into(),
        server: Some("<b>prod-db</b>".into()),
        account: Some("oracle".into()),
        source: "198.51.100.7".into(),
        node: "n1".into(),
        started_at: start,
        ended_at: Some(start + time::Duration::minutes(30)),
        mode: Some("ssh-forwarding".into()),
        grant_id: None,
        recorded,
        bytes_up: 1234,
        bytes_down: 567_890,
        exit_status: Some(0),
        end_reason: Some("closed".into()),
        flagged: None,
        review: None,
    }
}

/// Runs `cmd`, killing it after `limit`.
fn run_with_limit(mut cmd: Command, limit: Duration) -> std::process::ExitStatus {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn the_html_report_renders_in_headless_chromium() {
    let Some(chromium) = find_chromium() else {
        panic!(
            "chromium is not installed: CI must install it (apt-get install -y chromium) \
             to check that the HTML report renders"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports");
    let input = ReportInput {
        generated_at: Some(datetime!(2026-03-11 00:05 UTC)),
        sessions: vec![
            session("s1", "alice", 9, true),
            session("s2", "<script>document.title='pwned'</script>", 14, false),
            session("s3", "bob", 22, true),
        ],
        users: vec![UserFact {
            name: "alice".into(),
            expires: None,
            from_directory: false,
        }],
        hours: WorkHours::default(),
        ..ReportInput::default()
    };
    let report = build(&input, date!(2026 - 03 - 10));
    let written = write_report(
        &report,
        &[Format::Html],
        &out,
        &dir.path().join("recordings"),
    )
    .unwrap();
    let html = &written[0];
    let png = dir.path().join("shot.png");
    let profile = dir.path().join("profile");
    let mut cmd = Command::new(&chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1200,2000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--screenshot={}", png.display()))
    .arg(format!("file://{}", html.display()));
    let status = run_with_limit(cmd, Duration::from_secs(120));
    assert!(status.success(), "chromium failed: {status}");
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert_eq!(png_size(&bytes), (1200, 2000));
    // A blank page compresses to a few kilobytes; tables, text and the
    // chart make it much larger.
    assert!(
        bytes.len() > 30_000,
        "the screenshot is nearly empty ({} bytes)",
        bytes.len()
    );
    assert!(Path::new(html).exists());
    // To look at it: GATEHOUSE_KEEP_SHOT=/tmp/report.png
    if let Some(keep) = std::env::var_os("GATEHOUSE_KEEP_SHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
}
