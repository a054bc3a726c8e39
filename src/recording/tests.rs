//! Recorder tests: they drive real files in a temporary folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ring::digest::{SHA256, digest};
use time::macros::datetime;

use super::cast::{Code, Event, Reader};
use super::*;

fn meta(id: &str, kind: Kind, term: Option<&str>, command: Option<&str>) -> RecordingMeta {
    RecordingMeta {
        id: id.into(),
        session: id.into(),
        user: "alice".into(),
        server: "prod-db".into(),
        account: "root".into(),
        source: "127.0.0.1:50000".into(),
        grant: Some(3),
        kind,
        command: command.map(Into::into),
        term: term.map(Into::into),
        width: 80,
        height: 24,
        started_at: datetime!(2026-03-04 23:59:59 UTC),
    }
}

fn signer(dir: &Path) -> Arc<Signer> {
    Arc::new(Signer::load_or_create(&dir.join("keys/signing_ed25519.pk8")).unwrap())
}

fn opts(record_input: bool, text_cap: usize) -> RecorderOptions {
    RecorderOptions {
        record_input,
        text_cap,
    }
}

fn events(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap();
    let (_, mut r) = Reader::new(text.as_bytes()).unwrap();
    let mut out = Vec::new();
    while let Some(e) = r.next_event() {
        out.push(e.unwrap());
    }
    out
}

fn output_text(path: &Path) -> String {
    events(path)
        .into_iter()
        .filter(|e| e.code == Code::Output)
        .map(|e| e.data)
        .collect()
}

fn hex_sha(data: &[u8]) -> String {
    hex::encode(digest(&SHA256, data).as_ref())
}

#[tokio::test]
async fn shell_recording_lands_in_the_date_folder_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let s = signer(dir.path());
    let rec = Recorder::start(
        &root,
        meta("s1", Kind::Shell, Some("xterm-256color"), None),
        s.clone(),
        opts(true, 100),
    )
    .await
    .unwrap();
    let cast = root.join("2026-03-04/s1.cast");
    assert_eq!(rec.cast_path(), cast);
    // The provisional sidecar exists from the start.
    let provisional = Sidecar::read(&sidecar_path(&cast)).unwrap();
    assert!(!provisional.complete);
    assert!(provisional.signature.is_none());

    // One clone per direction, as the proxy does.
    let out = rec.clone();
    let writer = tokio::spawn(async move {
        out.output(Bytes::copy_from_slice(b"$ ")).await.unwrap();
        out.resize(100, 40).await.unwrap();
        out.output(Bytes::copy_from_slice("h\u{e9}llo\r\n".as_bytes()))
            .await
            .unwrap();
    });
    rec.input(Bytes::copy_from_slice(b"ls\r")).await.unwrap();
    writer.await.unwrap();
    let summary = rec.finish(Some(0), None).await.unwrap();

    let evs = events(&cast);
    assert!(
        evs.iter()
            .any(|e| e.code == Code::Resize && e.data == "100x40")
    );
    assert!(
        evs.iter()
            .any(|e| e.code == Code::Input && e.data == "ls\r")
    );
    assert_eq!(output_text(&cast), "$ h\u{e9}llo\r\n");
    assert!(evs.windows(2).all(|w| w[0].time <= w[1].time));

    let sc = &summary.sidecar;
    assert!(sc.complete);
    assert_eq!(sc.exit_status, Some(0));
    assert_eq!(sc.grant, Some(3));
    assert_eq!(sc.bytes.stdin, 3);
    assert_eq!(sc.bytes.stdout, 2 + "h\u{e9}llo\r\n".len() as u64);
    assert_eq!(sc.started_at, "2026-03-04T23:59:59Z");
    assert_eq!(
        sc.cast_sha256.as_deref(),
        Some(hex_sha(&std::fs::read(&cast).unwrap()).as_str())
    );
    assert_eq!(Sidecar::read(&summary.sidecar_path).unwrap(), *sc);

    let info = find(&root, "s1").unwrap();
    assert_eq!(verify(&info, Some(s.public_key())), []);
}

#[tokio::test]
async fn utf8_split_across_chunks_is_carried_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let rec = Recorder::start(
        &root,
        meta("u", Kind::Shell, Some("xterm"), None),
        signer(dir.path()),
        opts(false, 0),
    )
    .await
    .unwrap();
    let text = "a\u{e9}\u{4e16}\u{1f389}z".as_bytes();
    for b in text {
        rec.output(Bytes::copy_from_slice(&[*b])).await.unwrap();
    }
    rec.output(Bytes::copy_from_slice(b"\xff")).await.unwrap();
    rec.output(Bytes::copy_from_slice(b"\xe2\x82"))
        .await
        .unwrap(); // cut short by the end of the session
    rec.input(Bytes::copy_from_slice(b"typed")).await.unwrap(); // record_input off: not stored
    let s = rec.finish(None, Some("TERM".into())).await.unwrap();
    let cast = s.cast_path.clone();
    assert_eq!(
        output_text(&cast),
        "a\u{e9}\u{4e16}\u{1f389}z\u{fffd}\u{fffd}"
    );
    assert!(events(&cast).iter().all(|e| e.code != Code::Input));
    assert_eq!(s.sidecar.exit_signal.as_deref(), Some("TERM"));
    assert!(!s.sidecar.input_recorded);
    assert_eq!(s.sidecar.bytes.stdin, 5);
}

#[tokio::test]
async fn exec_without_pty_keeps_text_up_to_the_cap_and_hashes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    // No window size, as with most exec channels.
    let mut m = meta("e1", Kind::Exec, None, Some("cat /etc/hosts"));
    m.width = 0;
    m.height = 0;
    let rec = Recorder::start(&root, m, signer(dir.path()), opts(true, 10))
        .await
        .unwrap();
    let stdout = b"line one\nline two\nline three\n";
    rec.output(Bytes::copy_from_slice(&stdout[..12]))
        .await
        .unwrap();
    rec.output(Bytes::copy_from_slice(&stdout[12..]))
        .await
        .unwrap();
    rec.stderr(Bytes::copy_from_slice(b"warn\n")).await.unwrap();
    rec.input(Bytes::copy_from_slice(b"secret stdin"))
        .await
        .unwrap();
    let s = rec.finish(Some(0), None).await.unwrap();
    let sc = &s.sidecar;

    let text = output_text(&s.cast_path);
    assert!(text.starts_with("line one\r\nl\r\n[gatehouse"), "{text:?}");
    assert!(!text.contains("line two"), "{text:?}");
    assert!(text.contains("not recorded as text"), "{text:?}");
    assert!(
        !std::fs::read_to_string(&s.cast_path)
            .unwrap()
            .contains("secret")
    );

    assert_eq!(sc.text_cap, Some(10));
    assert_eq!(sc.text_recorded_bytes, Some(10));
    assert!(
        sc.text_truncated
            .as_deref()
            .unwrap_or("")
            .contains("text cap"),
        "{sc:?}"
    );
    assert_eq!(sc.bytes.stdout, stdout.len() as u64);
    assert_eq!(sc.bytes.stderr, 5);
    assert_eq!(sc.bytes.stdin, 12);
    let b3 = |d: &[u8]| blake3::hash(d).to_hex().to_string();
    assert_eq!(sc.stdout_blake3.as_deref(), Some(b3(stdout).as_str()));
    assert_eq!(
        sc.stdin_blake3.as_deref(),
        Some(b3(b"secret stdin").as_str())
    );
    assert_eq!(sc.stderr_blake3.as_deref(), Some(b3(b"warn\n").as_str()));
    assert_eq!(
        sc.stdout_sha256, None,
        "format 2 has no SHA-256 stream hashes"
    );
    assert!(!sc.input_recorded, "no PTY: stdin is never stored");

    let header = std::fs::read_to_string(&s.cast_path).unwrap();
    let first = header.lines().next().unwrap();
    assert!(first.contains("\"command\":\"cat /etc/hosts\""), "{first}");
    assert!(first.contains("\"width\":80,\"height\":24"), "{first}");
    assert!(
        first.contains("alice as root@prod-db (exec): cat /etc/hosts"),
        "{first}"
    );
}

#[tokio::test]
async fn binary_exec_output_is_counted_not_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let rec = Recorder::start(
        &root,
        meta("b1", Kind::Exec, None, Some("tar cf - /etc")),
        signer(dir.path()),
        opts(false, 1 << 20),
    )
    .await
    .unwrap();
    rec.output(Bytes::copy_from_slice(b"etc/\0\0\0\x80\x81binary"))
        .await
        .unwrap();
    let big = vec![0xffu8; 256 * 1024];
    rec.output(Bytes::copy_from_slice(&big)).await.unwrap();
    rec.stderr(Bytes::copy_from_slice(b"tar: removing leading /\n"))
        .await
        .unwrap();
    let s = rec.finish(Some(0), None).await.unwrap();
    let size = std::fs::metadata(&s.cast_path).unwrap().len();
    assert!(size < 4096, "binary data was stored: {size} bytes");
    let text = output_text(&s.cast_path);
    assert!(text.contains("binary data on stdout"), "{text:?}");
    assert!(text.contains("tar: removing leading /\r\n"), "{text:?}");
    assert_eq!(s.sidecar.bytes.stdout, 15 + 256 * 1024);
    assert!(
        s.sidecar
            .text_truncated
            .as_deref()
            .unwrap_or("")
            .contains("binary data on stdout")
    );
}

#[tokio::test]
async fn tampering_with_the_cast_or_sidecar_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let s = signer(dir.path());
    let rec = Recorder::start(
        &root,
        meta("t1", Kind::Shell, Some("xterm"), None),
        s.clone(),
        opts(false, 0),
    )
    .await
    .unwrap();
    rec.output(Bytes::copy_from_slice(b"rm -rf /important\r\n"))
        .await
        .unwrap();
    let summary = rec.finish(Some(0), None).await.unwrap();
    assert_eq!(
        verify(&find(&root, "t1").unwrap(), Some(s.public_key())),
        []
    );

    // One byte of the cast changed.
    let mut bytes = std::fs::read(&summary.cast_path).unwrap();
    let pos = bytes.windows(9).position(|w| w == b"important").unwrap();
    bytes[pos] = b'I';
    std::fs::write(&summary.cast_path, &bytes).unwrap();
    let problems = verify(&find(&root, "t1").unwrap(), Some(s.public_key()));
    assert!(
        matches!(problems.as_slice(), [Problem::HashMismatch { .. }]),
        "{problems:?}"
    );

    // Recomputing the hash in the sidecar breaks the signature instead.
    let mut sc = Sidecar::read(&summary.sidecar_path).unwrap();
    sc.cast_sha256 = Some(hex_sha(&bytes));
    sc.write(&summary.sidecar_path).unwrap();
    let problems = verify(&find(&root, "t1").unwrap(), Some(s.public_key()));
    assert_eq!(problems, [Problem::BadSignature]);

    // A different key than the configured one is named as such.
    let other = Signer::load_or_create(&dir.path().join("other.pk8")).unwrap();
    let problems = verify(&find(&root, "t1").unwrap(), Some(other.public_key()));
    assert!(
        matches!(problems.as_slice(), [Problem::UnknownKey { .. }]),
        "{problems:?}"
    );

    // A missing sidecar.
    std::fs::remove_file(&summary.sidecar_path).unwrap();
    let problems = verify(&find(&root, "t1").unwrap(), Some(s.public_key()));
    assert_eq!(problems, [Problem::MissingSidecar]);
}

/// Polls until `check` holds, for up to five seconds.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..50 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check()
}

#[tokio::test]
async fn data_reaches_the_file_without_finish() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let rec = Recorder::start(
        &root,
        meta("f1", Kind::Shell, Some("xterm"), None),
        signer(dir.path()),
        opts(false, 0),
    )
    .await
    .unwrap();
    rec.output(Bytes::copy_from_slice(b"still running\r\n"))
        .await
        .unwrap();
    let cast: PathBuf = rec.cast_path().to_path_buf();
    let landed =
        eventually(|| std::fs::read_to_string(&cast).is_ok_and(|t| t.contains("still running")))
            .await;
    assert!(
        landed,
        "output never reached the file while the session ran"
    );
    // Later output too, by the periodic flush alone.
    rec.output(Bytes::copy_from_slice(b"and later\r\n"))
        .await
        .unwrap();
    let landed =
        eventually(|| std::fs::read_to_string(&cast).is_ok_and(|t| t.contains("and later"))).await;
    assert!(
        landed,
        "later output never reached the file while the session ran"
    );
    // What is on disk already plays: a header and whole event lines.
    assert_eq!(output_text(&cast), "still running\r\nand later\r\n");
    rec.finish(None, None).await.unwrap();
}

/// Descriptors of this process open on `path`.
fn open_descriptors(path: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn an_idle_recording_holds_no_descriptor_and_reopens_to_append() {
    // Issue 22: a node holds two sockets per session already; a recorded
    // session that is idle must not hold its cast open as well.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let rec = Recorder::start(
        &root,
        meta("fd1", Kind::Shell, Some("xterm"), None),
        signer(dir.path()),
        opts(false, 0),
    )
    .await
    .unwrap();
    let cast: PathBuf = std::fs::canonicalize(rec.cast_path()).unwrap();
    rec.output(Bytes::copy_from_slice(b"first\r\n"))
        .await
        .unwrap();
    let synced = eventually(|| {
        std::fs::read_to_string(&cast).is_ok_and(|t| t.contains("first"))
            && open_descriptors(&cast) == 0
    })
    .await;
    assert!(synced, "the cast stayed open after its data was synced");
    // The next output opens it again, appending after what is there.
    rec.output(Bytes::copy_from_slice(b"second\r\n"))
        .await
        .unwrap();
    let summary = rec.finish(Some(0), None).await.unwrap();
    assert_eq!(output_text(&cast), "first\r\nsecond\r\n");
    assert_eq!(open_descriptors(&cast), 0);
    assert!(summary.sidecar.signature.is_some());
}

#[tokio::test]
async fn dropping_every_handle_still_closes_and_signs_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let s = signer(dir.path());
    let rec = Recorder::start(
        &root,
        meta("d1", Kind::Shell, Some("xterm"), None),
        s.clone(),
        opts(false, 0),
    )
    .await
    .unwrap();
    rec.output(Bytes::copy_from_slice(b"bye\r\n"))
        .await
        .unwrap();
    drop(rec);
    let sidecar = root.join("2026-03-04/d1.json");
    let done = eventually(|| Sidecar::read(&sidecar).is_ok_and(|sc| sc.complete)).await;
    assert!(done);
    assert_eq!(
        verify(&find(&root, "d1").unwrap(), Some(s.public_key())),
        []
    );
}

#[tokio::test]
async fn a_recording_is_never_overwritten_and_ids_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let s = signer(dir.path());
    let rec = Recorder::start(
        &root,
        meta("x1", Kind::Shell, Some("xterm"), None),
        s.clone(),
        opts(false, 0),
    )
    .await
    .unwrap();
    let again = Recorder::start(
        &root,
        meta("x1", Kind::Shell, Some("xterm"), None),
        s.clone(),
        opts(false, 0),
    )
    .await;
    assert!(matches!(again, Err(RecordingError::Exists(_))), "{again:?}");
    for bad in ["../x", "a/b", ".hidden", "", "x.review"] {
        let r = Recorder::start(
            &root,
            meta(bad, Kind::Shell, None, None),
            s.clone(),
            opts(false, 0),
        )
        .await;
        assert!(
            matches!(r, Err(RecordingError::InvalidId(_))),
            "{bad}: {r:?}"
        );
    }
    rec.finish(None, None).await.unwrap();
}

/// Points the writer's file descriptor for `path` at /dev/full, so its next
/// write fails with ENOSPC like a full disk.
fn make_disk_full(path: &Path) {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let canonical = path.canonicalize().unwrap();
    let mut swapped = 0;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        if std::fs::read_link(entry.path()).ok().as_deref() == Some(canonical.as_path()) {
            let fd: i32 = entry.file_name().to_str().unwrap().parse().unwrap();
            let rc = unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&full), fd) };
            assert!(rc >= 0);
            swapped += 1;
        }
    }
    assert_eq!(swapped, 1, "expected one open descriptor on the cast");
}

#[tokio::test]
async fn a_write_failure_fails_closed_and_is_observable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let rec = Recorder::start(
        &root,
        meta("w1", Kind::Shell, Some("xterm"), None),
        signer(dir.path()),
        opts(false, 0),
    )
    .await
    .unwrap();
    let failed = rec.failed();
    make_disk_full(rec.cast_path());
    rec.output(Bytes::copy_from_slice(b"this cannot be written\r\n"))
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), failed)
        .await
        .expect("failed() never resolved");
    assert!(reason.contains("w1.cast"), "{reason}");
    assert!(rec.failure().is_some());
    // From now on every call refuses.
    assert!(matches!(
        rec.output(Bytes::copy_from_slice(b"x")).await,
        Err(RecordingError::Failed(_))
    ));
    assert!(matches!(
        rec.input(Bytes::copy_from_slice(b"x")).await,
        Err(RecordingError::Failed(_))
    ));
    assert!(matches!(
        rec.resize(1, 1).await,
        Err(RecordingError::Failed(_))
    ));
    assert!(matches!(
        rec.output(Bytes::copy_from_slice(b"")).await,
        Err(RecordingError::Failed(_))
    ));
    assert!(rec.clone().finish(Some(0), None).await.is_err());
    // The sidecar says so, and the recording does not verify.
    let sidecar = root.join("2026-03-04/w1.json");
    let noted = eventually(|| Sidecar::read(&sidecar).is_ok_and(|s| s.error.is_some())).await;
    assert!(noted);
    let problems = verify(&find(&root, "w1").unwrap(), None);
    assert!(
        matches!(
            problems.as_slice(),
            [Problem::Incomplete { error: Some(_) }]
        ),
        "{problems:?}"
    );
}

#[tokio::test]
async fn failed_never_resolves_for_a_recording_that_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let rec = Recorder::start(
        &root,
        meta("n1", Kind::Shell, Some("xterm"), None),
        signer(dir.path()),
        opts(false, 0),
    )
    .await
    .unwrap();
    let failed = rec.failed();
    rec.finish(Some(0), None).await.unwrap();
    let r = tokio::time::timeout(Duration::from_millis(300), failed).await;
    assert!(r.is_err(), "failed() resolved for a good recording: {r:?}");
}

#[test]
fn scan_reads_sidecars_and_reviews() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert!(scan(&root.join("missing")).unwrap().is_empty());
    let day = root.join("2026-01-02");
    std::fs::create_dir_all(&day).unwrap();
    std::fs::create_dir_all(root.join("not-a-date")).unwrap();
    std::fs::write(
        day.join("a.cast"),
        "{\"version\":2,\"width\":1,\"height\":1}\n",
    )
    .unwrap();
    std::fs::write(day.join("b.json"), "not json").unwrap();
    let all = scan(root).unwrap();
    assert_eq!(
        all.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(all[0].meta.is_none() && all[0].meta_error.is_none());
    assert!(all[1].meta_error.is_some() && !all[1].cast_exists);
    assert_eq!(all[0].state, ReviewState::Unreviewed);

    let at = datetime!(2026-01-03 10:00 UTC);
    let info = add_review(root, "a", "carol", Some("looks fine"), false, at).unwrap();
    assert_eq!(info.state, ReviewState::Reviewed);
    let info = add_review(root, "a", "dave", None, true, at).unwrap();
    assert_eq!(info.state, ReviewState::Flagged);
    assert_eq!(info.reviews.len(), 2);
    assert_eq!(info.reviews[0].note.as_deref(), Some("looks fine"));
    assert_eq!(info.reviews[1].at, "2026-01-03T10:00:00Z");
    assert!(matches!(
        find(root, "zzz"),
        Err(RecordingError::NotFound(_))
    ));
    assert!(matches!(
        find(root, "../a"),
        Err(RecordingError::InvalidId(_))
    ));
}

#[tokio::test]
async fn an_interrupted_recording_is_sealed_as_found() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let s = signer(dir.path());
    let rec = Recorder::start(
        &root,
        meta("c1", Kind::Shell, Some("xterm"), None),
        s.clone(),
        opts(false, 0),
    )
    .await
    .unwrap();
    rec.output(Bytes::copy_from_slice(b"before the crash\r\n"))
        .await
        .unwrap();
    let cast = rec.cast_path().to_path_buf();
    assert!(eventually(|| std::fs::read_to_string(&cast).is_ok_and(|t| t.contains("crash"))).await);
    // As if the process died: copy what is on disk, plus a torn line.
    let copy_root = dir.path().join("after-crash");
    let day = copy_root.join("2026-03-04");
    std::fs::create_dir_all(&day).unwrap();
    let mut bytes = std::fs::read(&cast).unwrap();
    bytes.extend_from_slice(b"[9.0, \"o\", \"tor");
    std::fs::write(day.join("c1.cast"), &bytes).unwrap();
    std::fs::copy(sidecar_path(&cast), day.join("c1.json")).unwrap();
    rec.finish(None, None).await.unwrap();

    let problems = verify(&find(&copy_root, "c1").unwrap(), Some(s.public_key()));
    assert!(
        matches!(problems.as_slice(), [Problem::Incomplete { error: None }]),
        "{problems:?}"
    );
    // While its session is live (on another node), it is left as it is.
    let session = find(&copy_root, "c1").unwrap().meta.unwrap().session;
    assert!(
        seal_interrupted_except(&copy_root, &s, |id| id == session)
            .unwrap()
            .is_empty()
    );
    assert_eq!(seal_interrupted(&copy_root, &s).unwrap(), ["c1"]);
    let info = find(&copy_root, "c1").unwrap();
    assert_eq!(verify(&info, Some(s.public_key())), []);
    let sc = info.meta.unwrap();
    assert!(sc.interrupted && sc.complete);
    assert!(sc.ended_at.unwrap().starts_with("2026-03-04T23:59:59"));
    let text = std::fs::read_to_string(day.join("c1.cast")).unwrap();
    assert!(text.ends_with("before the crash\\r\\n\"]\n"), "{text}");
    // Already sealed: nothing more to do.
    assert!(seal_interrupted(&copy_root, &s).unwrap().is_empty());
}

/// A recording as a build before sidecar format 2 wrote it: SHA-256 stream
/// hashes, the `gatehouse-recording-v1` message. It must keep verifying.
#[tokio::test]
async fn a_format_1_recording_still_verifies_and_an_unknown_format_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let s = signer(dir.path());
    let rec = Recorder::start(
        &root,
        meta("v1", Kind::Exec, None, Some("cat")),
        s.clone(),
        opts(false, 100),
    )
    .await
    .unwrap();
    rec.output(Bytes::copy_from_slice(b"hello\n"))
        .await
        .unwrap();
    rec.input(Bytes::copy_from_slice(b"in")).await.unwrap();
    let summary = rec.finish(Some(0), None).await.unwrap();
    assert_eq!(summary.sidecar.format, sidecar::FORMAT);
    assert_eq!(
        verify(&find(&root, "v1").unwrap(), Some(s.public_key())),
        []
    );

    // Rewrite it as format 1, signed the way format 1 was.
    let mut old = Sidecar::read(&summary.sidecar_path).unwrap();
    old.format = sidecar::FORMAT_V1;
    old.stdin_blake3 = None;
    old.stdout_blake3 = None;
    old.stderr_blake3 = None;
    old.stdin_sha256 = Some(hex_sha(b"in"));
    old.stdout_sha256 = Some(hex_sha(b"hello\n"));
    old.stderr_sha256 = Some(hex_sha(b""));
    old.signature = Some(hex::encode(s.sign(&old.signed_message().unwrap())));
    old.write(&summary.sidecar_path).unwrap();
    let text = std::fs::read_to_string(&summary.sidecar_path).unwrap();
    assert!(
        text.contains("\"stdout_sha256\"") && !text.contains("blake3"),
        "{text}"
    );
    assert_eq!(
        verify(&find(&root, "v1").unwrap(), Some(s.public_key())),
        []
    );

    // Its signed fields are still covered: a changed stream hash fails.
    let mut forged = old.clone();
    forged.stdout_sha256 = Some(hex_sha(b"something else\n"));
    forged.write(&summary.sidecar_path).unwrap();
    assert_eq!(
        verify(&find(&root, "v1").unwrap(), Some(s.public_key())),
        [Problem::BadSignature]
    );

    // Relabelling it as format 2 does not carry the signature over.
    let mut relabelled = old.clone();
    relabelled.format = sidecar::FORMAT;
    relabelled.write(&summary.sidecar_path).unwrap();
    assert_eq!(
        verify(&find(&root, "v1").unwrap(), Some(s.public_key())),
        [Problem::BadSignature]
    );

    // A format this build does not know fails closed, and says why.
    let mut future = old;
    future.format = 3;
    future.write(&summary.sidecar_path).unwrap();
    assert_eq!(
        verify(&find(&root, "v1").unwrap(), Some(s.public_key())),
        [Problem::UnknownFormat { format: 3 }]
    );
}
