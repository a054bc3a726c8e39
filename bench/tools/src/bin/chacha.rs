//! Issue 22, item 2: what `chacha20-poly1305@openssh.com` costs per byte
//! as russh 0.65.1 seals and opens it, against the IETF ChaCha20-Poly1305
//! AEAD of the same backend, on this CPU, with 32 KiB packets.
//!
//! russh (built with `aws-lc-rs`, as the bastion builds it) seals an SSH
//! packet with `aws_lc_rs::aead::chacha20_poly1305_openssh::SealingKey::
//! seal_in_place(sequence_number, packet_length || padding_length ||
//! payload || padding, tag)` and opens it with `OpeningKey::open_in_place`
//! (russh-0.65.1/src/cipher/chacha20poly1305.rs); this program calls
//! exactly those on the same packet layout. The IETF AEAD (RFC 8439) is
//! sealed over the same bytes with the 4 length bytes as associated data,
//! as SSH's AES-GCM does. ring's versions of both, and AES-128-GCM, are
//! shown for comparison; `openssl speed -evp` is run for OpenSSL's figure.
//!
//! Time is the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so other work
//! on a shared machine does not count; each figure is the best of
//! `--rounds` rounds. Open figures include restoring the ciphertext
//! (a 32 KiB copy), shown apart as "copy" so it can be subtracted.
//!
//! Usage: chacha [--payload BYTES] [--mib-per-round N] [--rounds N] [--no-openssl]

use std::hint::black_box;
use std::process::Command;

/// SSH packet: 4 length bytes, 1 padding-length byte, the payload, and
/// padding to a multiple of 8 (at least 4 bytes).
fn packet_len(payload: usize) -> usize {
    let unpadded = 1 + payload;
    let mut pad = 8 - unpadded % 8;
    if pad < 4 {
        pad += 8;
    }
    4 + unpadded + pad
}

fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

struct Opts {
    payload: usize,
    iters: usize,
    rounds: usize,
}

/// Best CPU seconds per payload GB (10^9 bytes) over the rounds.
fn measure(o: &Opts, mut f: impl FnMut(u32)) -> f64 {
    let mut best = f64::MAX;
    let mut seq = 0u32;
    for _ in 0..o.rounds {
        let t0 = thread_cpu();
        for _ in 0..o.iters {
            f(seq);
            seq = seq.wrapping_add(1);
        }
        let dt = thread_cpu() - t0;
        best = best.min(dt / (o.iters * o.payload) as f64 * 1e9);
    }
    best
}

struct Row {
    name: &'static str,
    seal: f64,
    open: f64,
}

fn openssh_awslc(o: &Opts) -> Row {
    use aws_lc_rs::aead::chacha20_poly1305_openssh::{KEY_LEN, OpeningKey, SealingKey, TAG_LEN};
    let key = [7u8; KEY_LEN];
    let sk = SealingKey::new(&key);
    let ok = OpeningKey::new(&key);
    let n = packet_len(o.payload);
    let mut buf = vec![0x61u8; n];
    buf[..4].copy_from_slice(&((n - 4) as u32).to_be_bytes());
    let mut tag = [0u8; TAG_LEN];
    let seal = measure(o, |seq| {
        sk.seal_in_place(seq, black_box(&mut buf), &mut tag);
    });
    let plain = buf.clone();
    let mut sealed = plain.clone();
    sk.seal_in_place(0, &mut sealed, &mut tag);
    let open = measure(o, |_| {
        buf.copy_from_slice(&sealed);
        let r = ok.open_in_place(0, black_box(&mut buf), &tag);
        assert!(r.is_ok());
    });
    Row {
        name: "aws-lc-rs chacha20-poly1305@openssh.com (russh's)",
        seal,
        open,
    }
}

fn openssh_ring(o: &Opts) -> Row {
    use ring::aead::chacha20_poly1305_openssh::{KEY_LEN, OpeningKey, SealingKey, TAG_LEN};
    let key = [7u8; KEY_LEN];
    let sk = SealingKey::new(&key);
    let ok = OpeningKey::new(&key);
    let n = packet_len(o.payload);
    let mut buf = vec![0x61u8; n];
    let mut tag = [0u8; TAG_LEN];
    let seal = measure(o, |seq| {
        sk.seal_in_place(seq, black_box(&mut buf), &mut tag);
    });
    let mut sealed = buf.clone();
    sk.seal_in_place(0, &mut sealed, &mut tag);
    let open = measure(o, |_| {
        buf.copy_from_slice(&sealed);
        let r = ok.open_in_place(0, black_box(&mut buf), &tag);
        assert!(r.is_ok());
    });
    Row {
        name: "ring chacha20-poly1305@openssh.com",
        seal,
        open,
    }
}

macro_rules! ietf {
    ($fn:ident, $lib:ident, $alg:ident, $name:expr) => {
        fn $fn(o: &Opts) -> Row {
            use $lib::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
            let key_bytes = vec![7u8; $lib::aead::$alg.key_len()];
            let key = LessSafeKey::new(
                UnboundKey::new(&$lib::aead::$alg, &key_bytes).expect("key length"),
            );
            let n = packet_len(o.payload);
            let mut buf = vec![0x61u8; n];
            let nonce = |seq: u32| {
                let mut b = [0u8; 12];
                b[8..].copy_from_slice(&seq.to_be_bytes());
                Nonce::assume_unique_for_key(b)
            };
            let seal = measure(o, |seq| {
                let (len, body) = buf.split_at_mut(4);
                let t = key
                    .seal_in_place_separate_tag(nonce(seq), Aad::from(&*len), black_box(body))
                    .expect("seal");
                let _ = black_box(t);
            });
            // Ciphertext || tag, opened again and again.
            let mut sealed = buf.clone();
            let t = {
                let (len, body) = sealed.split_at_mut(4);
                key.seal_in_place_separate_tag(nonce(0), Aad::from(&*len), body)
                    .expect("seal")
            };
            sealed.extend_from_slice(t.as_ref());
            let mut work = sealed.clone();
            let open = measure(o, |_| {
                work.copy_from_slice(&sealed);
                let (len, body) = work.split_at_mut(4);
                let r = key.open_in_place(nonce(0), Aad::from(&*len), black_box(body));
                assert!(r.is_ok());
            });
            Row {
                name: $name,
                seal,
                open,
            }
        }
    };
}

ietf!(
    ietf_awslc,
    aws_lc_rs,
    CHACHA20_POLY1305,
    "aws-lc-rs ChaCha20-Poly1305 (IETF, RFC 8439)"
);
ietf!(
    ietf_ring,
    ring,
    CHACHA20_POLY1305,
    "ring ChaCha20-Poly1305 (IETF, RFC 8439)"
);
ietf!(gcm_awslc, aws_lc_rs, AES_128_GCM, "aws-lc-rs AES-128-GCM");
ietf!(gcm_ring, ring, AES_128_GCM, "ring AES-128-GCM");

fn copy_only(o: &Opts) -> f64 {
    let n = packet_len(o.payload);
    let src = vec![1u8; n + 16];
    let mut dst = vec![0u8; n + 16];
    measure(o, |_| {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    })
}

/// `openssl speed -evp ALG -bytes N`: the last figure, in bytes per second.
fn openssl_speed(alg: &str, bytes: usize) -> Option<f64> {
    let out = Command::new("openssl")
        .args([
            "speed",
            "-evp",
            alg,
            "-bytes",
            &bytes.to_string(),
            "-seconds",
            "3",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().to_ascii_lowercase().starts_with(alg))?;
    let last = line.split_whitespace().last()?;
    let k: f64 = last.trim_end_matches('k').parse().ok()?;
    Some(k * 1000.0)
}

fn arg(args: &[String], name: &str) -> Option<usize> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let payload = arg(&args, "--payload").unwrap_or(32 * 1024);
    let mib = arg(&args, "--mib-per-round").unwrap_or(256);
    let o = Opts {
        payload,
        iters: (mib << 20) / payload,
        rounds: arg(&args, "--rounds").unwrap_or(5),
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "CPU: {cpu}; payload {} bytes per packet ({} on the wire before the tag); best of {} rounds of {} MiB; thread CPU time",
        o.payload,
        packet_len(o.payload),
        o.rounds,
        mib
    );
    let copy = copy_only(&o);
    let rows = [
        openssh_awslc(&o),
        ietf_awslc(&o),
        openssh_ring(&o),
        ietf_ring(&o),
        gcm_awslc(&o),
        gcm_ring(&o),
    ];
    println!();
    println!("| construction | seal s/GB | seal GB/s | open s/GB (copy subtracted) | open GB/s |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        let open = (r.open - copy).max(1e-9);
        println!(
            "| {} | {:.3} | {:.2} | {:.3} | {:.2} |",
            r.name,
            r.seal,
            1.0 / r.seal,
            open,
            1.0 / open
        );
    }
    println!("\n(copy of one packet: {copy:.3} s/GB, subtracted from the open figures)");
    let ssh = &rows[0];
    let ietf = &rows[1];
    println!(
        "russh's openssh construction / IETF of the same backend: seal {:.2}x, open {:.2}x",
        ssh.seal / ietf.seal,
        (ssh.open - copy) / (ietf.open - copy)
    );
    if !args.iter().any(|a| a == "--no-openssl") {
        println!();
        for alg in ["chacha20-poly1305", "aes-128-gcm"] {
            match openssl_speed(alg, o.payload) {
                Some(bps) => println!(
                    "openssl speed -evp {alg} -bytes {}: {:.2} GB/s = {:.3} s/GB (wall clock, one thread)",
                    o.payload,
                    bps / 1e9,
                    1e9 / bps
                ),
                None => println!("openssl speed -evp {alg}: not available"),
            }
        }
    }
}
