//! Moving bytes through the bastion with the stock tools: a 1 GiB stream
//! each way through exec, scp and sftp of 100 MB both ways, rsync (full,
//! then incremental), full duplex `cat`, and flow control: a slow reader
//! or a slow target consumer must not make the bastion's memory grow.
//!
//! These scenarios do not exercise the database beyond the usual events,
//! so they run on SQLite only (CI time).

mod common;
#[path = "support/pg.rs"]
mod pg;
#[path = "common/scenario.rs"]
mod scenario;

use std::time::Duration;

use common::*;
use scenario::*;

const WEB1: &str = "alice+root@web1";

/// How long one big transfer may take on a loaded 2-core CI machine.
const BIG: Duration = Duration::from_secs(600);

/// The most the bastion may hold while a peer does not keep up. Its
/// baseline is a few tens of MB; a bastion that buffered the stream would
/// pass this long before the transfer ends.
const RSS_BOUND: u64 = 300 * 1024 * 1024;

/// Runs a bash pipeline to completion (failing after `BIG`).
fn bash(script: &str) -> (i32, String, String) {
    let mut b = Background::bash(script);
    let (code, out, err) = b.wait(BIG);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// Runs `script`, whose sender prints the SHA-256 of what it sent on
/// stderr and whose receiver prints that of what arrived on stdout, and
/// checks that it succeeded and that both digests are there, once each,
/// and equal.
fn assert_arrived_intact(script: &str, what: &str) {
    let (code, out, err) = bash(script);
    assert_eq!(code, 0, "{err}");
    let received = digests(&out);
    let sent = digests(&err);
    assert_eq!(received.len(), 1, "{what}: {out}");
    assert_eq!(sent.len(), 1, "{what}: {err}");
    assert_eq!(received, sent, "{what} differs");
}

#[test]
fn one_gib_download_through_exec() {
    let w = setup(Backend::Sqlite).start();
    // The sender hashes what it sends (on stderr); the receiver hashes
    // what arrived. Nothing is kept in memory or on disk.
    let script = format!(
        "set -o pipefail; {} 'head -c 1073741824 /dev/urandom | tee >(sha256sum >&2)' | sha256sum",
        ssh_line(&w.client, WEB1)
    );
    assert_arrived_intact(&script, "1 GiB download");
    let end =
        w.gh.wait_for_event("session.end", Duration::from_secs(10), |_| true);
    assert!(
        detail(&end, "bytes_down").as_u64().unwrap_or(0) >= 1 << 30,
        "{end:#}"
    );
}

#[test]
fn one_gib_upload_through_exec() {
    let w = setup(Backend::Sqlite).start();
    let script = format!(
        "set -o pipefail; head -c 1073741824 /dev/urandom | tee >(sha256sum >&2) | {} sha256sum",
        ssh_line(&w.client, WEB1)
    );
    assert_arrived_intact(&script, "1 GiB upload");
    let end =
        w.gh.wait_for_event("session.end", Duration::from_secs(10), |_| true);
    assert_eq!(detail(&end, "bytes_up"), 1u64 << 30, "{end:#}");
}

#[test]
fn scp_and_sftp_round_trip_100_mb() {
    let w = setup(Backend::Sqlite).start();
    let up = w.dir.join("up.bin");
    run(std::process::Command::new("head")
        .args(["-c", "104857600", "/dev/urandom"])
        .stdout(std::fs::File::create(&up).unwrap()))
    .assert_success("make 100 MB");
    let want = sha256_file(&up);
    let remote = w.dir.join("remote-scp.bin");
    let down = w.dir.join("down-scp.bin");
    w.client
        .scp(&[
            up.to_str().unwrap(),
            &w.client.remote(WEB1, remote.to_str().unwrap()),
        ])
        .assert_success("scp up");
    assert_eq!(sha256_file(&remote), want, "scp upload");
    w.client
        .scp(&[
            &w.client.remote(WEB1, remote.to_str().unwrap()),
            down.to_str().unwrap(),
        ])
        .assert_success("scp down");
    assert_eq!(sha256_file(&down), want, "scp download");
    std::fs::remove_file(&remote).unwrap();
    std::fs::remove_file(&down).unwrap();

    let remote = w.dir.join("remote-sftp.bin");
    let down = w.dir.join("down-sftp.bin");
    w.client
        .sftp_batch(
            WEB1,
            &format!(
                "put {} {r}\nget {r} {}\n",
                up.display(),
                down.display(),
                r = remote.display()
            ),
        )
        .assert_success("sftp put/get");
    assert_eq!(sha256_file(&remote), want, "sftp upload");
    assert_eq!(sha256_file(&down), want, "sftp download");
}

#[test]
fn rsync_full_then_incremental() {
    let w = setup(Backend::Sqlite).start();
    let src = w.dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("big"), random_bytes(3 << 20)).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(src.join("sub/b.txt"), b"bravo\n").unwrap();
    let dst = w.dir.join("dst");
    let dest = w.client.remote(WEB1, &format!("{}/", dst.display()));
    let from = format!("{}/", src.display());
    w.client
        .rsync(&["-a", "--stats", &from, &dest])
        .assert_success("rsync full");
    let same = |rel: &str| sha256_file(&src.join(rel)) == sha256_file(&dst.join(rel));
    assert!(same("big") && same("a.txt") && same("sub/b.txt"));

    // Change one file, add one, remove one: only the change moves.
    std::fs::write(src.join("a.txt"), b"alpha two\n").unwrap();
    std::fs::write(src.join("sub/c.txt"), b"charlie\n").unwrap();
    std::fs::remove_file(src.join("sub/b.txt")).unwrap();
    let out = w.client.rsync(&["-a", "--delete", "--stats", &from, &dest]);
    out.assert_success("rsync incremental");
    assert_eq!(std::fs::read(dst.join("a.txt")).unwrap(), b"alpha two\n");
    assert_eq!(std::fs::read(dst.join("sub/c.txt")).unwrap(), b"charlie\n");
    assert!(!dst.join("sub/b.txt").exists());
    assert!(same("big"));
    // The 3 MB file was not sent again.
    let stats = out.stdout_text();
    let sent_line = stats
        .lines()
        .find(|l| l.starts_with("Total bytes sent:"))
        .unwrap_or_else(|| panic!("no stats: {stats}"));
    let sent: u64 = sent_line
        .trim_start_matches("Total bytes sent:")
        .trim()
        .replace(',', "")
        .parse()
        .unwrap();
    assert!(sent < 1 << 20, "incremental rsync resent data: {sent_line}");
}

#[test]
fn full_duplex_cat_200_mb() {
    let w = setup(Backend::Sqlite).start();
    // Both directions at full speed at once: the classic deadlock when a
    // relay blocks one direction on the other.
    let script = format!(
        "set -o pipefail; head -c 209715200 /dev/urandom | tee >(sha256sum >&2) | {} cat | sha256sum",
        ssh_line(&w.client, WEB1)
    );
    assert_arrived_intact(&script, "cat through the bastion");
}

/// Runs `script` while sampling the bastion's RSS; returns (exit code,
/// stdout, stderr, peak RSS).
fn with_peak_rss(w: &World, script: &str) -> (i32, String, String, u64) {
    let pid = w.gh.pid().expect("bastion running");
    let base = rss_bytes(pid).unwrap();
    let mut peak = base;
    let mut b = Background::bash(script);
    let (code, out, err) = b.wait_with(BIG, || {
        if let Some(r) = rss_bytes(pid) {
            peak = peak.max(r);
        }
    });
    eprintln!(
        "bastion RSS: base {} MB, peak {} MB",
        base >> 20,
        peak >> 20
    );
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        peak,
    )
}

#[test]
fn slow_reader_keeps_bastion_memory_bounded() {
    let w = setup(Backend::Sqlite).start();
    // The target can push 500 MB far faster than this reader, which
    // reads nothing for 8 seconds, then trickles in 64 KiB reads.
    let script = format!(
        "set -o pipefail; {} 'head -c 524288000 /dev/zero' | \
         (sleep 8; dd bs=64k status=none | wc -c)",
        ssh_line(&w.client, WEB1)
    );
    let (code, out, err, peak) = with_peak_rss(&w, &script);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "524288000", "{err}");
    assert!(
        peak < RSS_BOUND,
        "bastion RSS reached {} MB with a slow reader",
        peak >> 20
    );
}

#[test]
fn slow_target_consumer_keeps_bastion_memory_bounded() {
    let w = setup(Backend::Sqlite).start();
    // The client uploads 500 MB into a command that reads nothing for 8
    // seconds.
    let script = format!(
        "set -o pipefail; head -c 524288000 /dev/zero | {} 'sleep 8; wc -c'",
        ssh_line(&w.client, WEB1)
    );
    let (code, out, err, peak) = with_peak_rss(&w, &script);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "524288000", "{err}");
    assert!(
        peak < RSS_BOUND,
        "bastion RSS reached {} MB with a slow target consumer",
        peak >> 20
    );
}
