//! The load generator for issue 22, item 3: N concurrent interactive
//! sessions through one Gatehouse node from one process (russh's client on
//! one tokio runtime), each with a PTY and a shell, typing one letter every
//! `--interval` seconds (a random phase per session) and timing its echo.
//!
//! Sessions are opened at `--rate` per second with at most `--inflight`
//! logins under way. `--per-connection K` opens K session channels on each
//! SSH connection (as an OpenSSH ControlMaster does), so N sessions take
//! N/K connections: the bastion holds one client socket and one target
//! connection per connection, and a recording per session. Once every session is open (or has failed), the hold
//! runs for `--hold` seconds; then every session is closed. Progress and
//! phase marks go to stdout as JSON lines, so a driver (bench/sessions.py)
//! can sample the bastion's memory and CPU at the right moments:
//! `{"phase":"opened",...}` when the hold starts, `{"phase":"held",...}`
//! when it ends, `{"phase":"done",...}` with the summary last.
//!
//! Failures are counted by kind: connect, auth (refused), channel (open,
//! PTY or shell refused), disconnected, timeout (no prompt within
//! `--login-timeout`), and during the hold: echo timeout (no echo within
//! `--key-timeout`), lost (the channel closed).
//!
//! Usage: sessions --addr 127.0.0.1:PORT --user LOGIN --key PATH
//!   [--sessions N] [--per-connection K] [--rate R] [--inflight K]
//!   [--interval S] [--hold S]
//!   [--login-timeout S] [--key-timeout S] [--workers N]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};
use tokio::sync::{Semaphore, watch};

struct Opts {
    addr: String,
    user: String,
    key: Arc<russh::keys::PrivateKey>,
    sessions: usize,
    per_connection: usize,
    rate: f64,
    inflight: usize,
    interval: Duration,
    hold: Duration,
    login_timeout: Duration,
    key_timeout: Duration,
}

#[derive(Default)]
struct Stats {
    failures: BTreeMap<String, u64>,
    /// The first few failures' messages, for the report.
    examples: Vec<String>,
    open_ms: Vec<f64>,
    echo_ms: Vec<f64>,
    opened: u64,
    keys: u64,
}

impl Stats {
    fn fail(&mut self, kind: &str, detail: String) {
        *self.failures.entry(kind.to_string()).or_default() += 1;
        if self.examples.len() < 20 {
            self.examples.push(format!("{kind}: {detail}"));
        }
    }
}

struct Client;

impl client::Handler for Client {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // Loopback bench against a bastion this run started.
        Ok(true)
    }
}

/// Reads until `needle` shows up in channel data.
async fn wait_for(
    ch: &mut russh::Channel<client::Msg>,
    needle: &[u8],
    timeout: Duration,
) -> Result<(), &'static str> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen: Vec<u8> = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, ch.wait()).await {
            Err(_) => return Err("timeout"),
            Ok(None) | Ok(Some(ChannelMsg::Close)) | Ok(Some(ChannelMsg::Eof)) => {
                return Err("disconnected");
            }
            Ok(Some(ChannelMsg::Data { data })) => {
                seen.extend_from_slice(&data);
                if seen.windows(needle.len()).any(|w| w == needle) {
                    return Ok(());
                }
                if seen.len() > 4096 {
                    seen.drain(..seen.len() - needle.len());
                }
            }
            Ok(Some(ChannelMsg::Failure)) => return Err("channel"),
            Ok(Some(_)) => {}
        }
    }
}

async fn log_in(o: &Opts) -> Result<client::Handle<Client>, (&'static str, String)> {
    let config = Arc::new(client::Config {
        nodelay: true,
        inactivity_timeout: None,
        ..Default::default()
    });
    let mut handle = client::connect(config, o.addr.as_str(), Client)
        .await
        .map_err(|e| ("connect", e.to_string()))?;
    let auth = handle
        .authenticate_publickey(
            o.user.clone(),
            PrivateKeyWithHashAlg::new(o.key.clone(), None),
        )
        .await
        .map_err(|e| ("disconnected", e.to_string()))?;
    if !auth.success() {
        return Err(("auth", "public key refused".into()));
    }
    Ok(handle)
}

/// One session on a logged-in connection: a channel with a PTY and a
/// shell, open once the target's prompt shows.
async fn open_shell(
    handle: &client::Handle<Client>,
    o: &Opts,
) -> Result<russh::Channel<client::Msg>, (&'static str, String)> {
    let mut ch = handle
        .channel_open_session()
        .await
        .map_err(|e| ("channel", e.to_string()))?;
    ch.request_pty(true, "xterm", 200, 50, 0, 0, &[])
        .await
        .map_err(|e| ("channel", e.to_string()))?;
    ch.request_shell(true)
        .await
        .map_err(|e| ("channel", e.to_string()))?;
    // The target's prompt.
    wait_for(&mut ch, b"$ ", o.login_timeout)
        .await
        .map_err(|k| (k, "no prompt".to_string()))?;
    Ok(ch)
}

/// One session's hold: a letter every interval, its echo timed.
async fn type_and_time(
    ch: &mut russh::Channel<client::Msg>,
    o: &Opts,
    stats: &Mutex<Stats>,
    mut phase: watch::Receiver<u8>,
) {
    let offset = rand::thread_rng().gen_range(0.0..o.interval.as_secs_f64());
    let mut next = tokio::time::Instant::now() + Duration::from_secs_f64(offset);
    let mut n = 0u32;
    let mut pending: Option<(u8, Instant)> = None;
    loop {
        let timeout_at = pending.map(|(_, t0)| tokio::time::Instant::from_std(t0 + o.key_timeout));
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() >= 2 {
                    return;
                }
            }
            () = tokio::time::sleep_until(next), if pending.is_none() => {
                // a..z, with a Ctrl-U every 40 letters to keep the line short.
                let letter = b'a' + (n % 26) as u8;
                n += 1;
                let bytes: Vec<u8> = if n % 40 == 0 { vec![0x15, letter] } else { vec![letter] };
                let t0 = Instant::now();
                if ch.data(&bytes[..]).await.is_err() {
                    stats.lock().unwrap_or_else(|e| e.into_inner()).fail("lost", "write failed".into());
                    return;
                }
                pending = Some((letter, t0));
                next += o.interval;
            }
            () = async {
                match timeout_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                stats.lock().unwrap_or_else(|e| e.into_inner()).fail("echo_timeout", format!("{:?}", o.key_timeout));
                pending = None;
            }
            msg = ch.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    if let Some((letter, t0)) = pending
                        && data.contains(&letter)
                    {
                        let ms = t0.elapsed().as_secs_f64() * 1e3;
                        let mut st = stats.lock().unwrap_or_else(|e| e.into_inner());
                        st.echo_ms.push(ms);
                        st.keys += 1;
                        pending = None;
                    }
                }
                None | Some(ChannelMsg::Close) | Some(ChannelMsg::Eof) | Some(ChannelMsg::ExitStatus { .. }) => {
                    stats.lock().unwrap_or_else(|e| e.into_inner()).fail("lost", "channel closed".into());
                    // Wait for the end of the hold without the channel.
                    while phase.changed().await.is_ok() && *phase.borrow() < 2 {}
                    return;
                }
                Some(_) => {}
            }
        }
    }
}

/// One connection's life: log in, open `want` sessions on it one after
/// the other (each counted and reported on `open_tx`), idle until the
/// hold, type in every session at once, close.
async fn connection(
    o: Arc<Opts>,
    want: usize,
    stats: Arc<Mutex<Stats>>,
    phase: watch::Receiver<u8>,
    open_tx: tokio::sync::mpsc::UnboundedSender<bool>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let fail = |kind: &str, detail: &str, n: usize| {
        let mut st = stats.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..n {
            st.fail(kind, detail.to_string());
            let _ = open_tx.send(false);
        }
    };
    let mut t0 = Instant::now();
    let handle = match tokio::time::timeout(o.login_timeout, log_in(&o)).await {
        Ok(Ok(h)) => h,
        Ok(Err((kind, detail))) => return fail(kind, &detail, want),
        Err(_) => return fail("timeout", "login not done in time", want),
    };
    let mut channels = Vec::with_capacity(want);
    for k in 0..want {
        let opened = match tokio::time::timeout(o.login_timeout, open_shell(&handle, &o)).await {
            Ok(r) => r,
            Err(_) => Err(("timeout", "no prompt in time".to_string())),
        };
        match opened {
            Ok(ch) => {
                let mut st = stats.lock().unwrap_or_else(|e| e.into_inner());
                st.opened += 1;
                st.open_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                drop(st);
                let _ = open_tx.send(true);
                channels.push(ch);
            }
            Err((kind, detail)) => {
                // A connection that failed one channel is not trusted with
                // the rest of its share.
                fail(kind, &detail, want - k);
                break;
            }
        }
        t0 = Instant::now();
    }
    drop(permit);
    let sessions = channels.into_iter().map(|mut ch| {
        let (o, stats, mut phase) = (o.clone(), stats.clone(), phase.clone());
        async move {
            // Idle until the hold starts, reading: a channel never read
            // stalls its session.
            while *phase.borrow() == 0 {
                tokio::select! {
                    c = phase.changed() => if c.is_err() { return ch; },
                    m = ch.wait() => if matches!(m, None | Some(ChannelMsg::Close)) {
                        stats.lock().unwrap_or_else(|e| e.into_inner()).fail("lost", "closed before the hold".into());
                        return ch;
                    },
                }
            }
            type_and_time(&mut ch, &o, &stats, phase).await;
            ch
        }
    });
    for ch in futures::future::join_all(sessions).await {
        let _ = ch.close().await;
    }
    let _ = handle
        .disconnect(Disconnect::ByApplication, "bench done", "en")
        .await;
}

fn summarize(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "null".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "{{\"n\":{},\"median\":{:.3},\"p90\":{:.3},\"p99\":{:.3},\"p999\":{:.3},\"max\":{:.3}}}",
        v.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        v[v.len() - 1]
    )
}

fn stats_json(st: &Stats) -> String {
    let failures: Vec<String> = st
        .failures
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    let examples: Vec<String> = st
        .examples
        .iter()
        .map(|e| format!("{:?}", e.replace('"', "'")))
        .collect();
    format!(
        "\"opened\":{},\"keys\":{},\"failures\":{{{}}},\"failure_examples\":[{}],\"open_ms\":{},\"echo_ms\":{}",
        st.opened,
        st.keys,
        failures.join(","),
        examples.join(","),
        summarize(st.open_ms.clone()),
        summarize(st.echo_ms.clone())
    )
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let workers: usize = arg(&args, "--workers", 2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    let key_path: String = arg(&args, "--key", String::new());
    let o = Arc::new(Opts {
        addr: arg(&args, "--addr", String::new()),
        user: arg(&args, "--user", String::new()),
        key: Arc::new(russh::keys::load_secret_key(&key_path, None)?),
        sessions: arg(&args, "--sessions", 1000),
        per_connection: arg(&args, "--per-connection", 1usize).max(1),
        rate: arg(&args, "--rate", 100.0),
        inflight: arg(&args, "--inflight", 64),
        interval: Duration::from_secs_f64(arg(&args, "--interval", 10.0)),
        hold: Duration::from_secs_f64(arg(&args, "--hold", 120.0)),
        login_timeout: Duration::from_secs_f64(arg(&args, "--login-timeout", 60.0)),
        key_timeout: Duration::from_secs_f64(arg(&args, "--key-timeout", 10.0)),
    });
    let stats = Arc::new(Mutex::new(Stats::default()));
    // 0: ramp, 1: hold, 2: done.
    let (phase_tx, phase_rx) = watch::channel(0u8);
    let gate = Arc::new(Semaphore::new(o.inflight));
    let started = Instant::now();
    let connections = o.sessions.div_ceil(o.per_connection);
    let mut tasks = Vec::with_capacity(connections);
    // Sessions per second as asked, whatever the sessions per connection.
    let gap = Duration::from_secs_f64(o.per_connection as f64 / o.rate.max(0.001));
    let mut tick = tokio::time::interval(gap);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (open_tx, mut open_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    for c in 0..connections {
        tick.tick().await;
        let want = o.per_connection.min(o.sessions - c * o.per_connection);
        let permit = gate.clone().acquire_owned().await?;
        let (o2, stats2, phase, open_tx) =
            (o.clone(), stats.clone(), phase_rx.clone(), open_tx.clone());
        tasks.push(tokio::spawn(async move {
            connection(o2, want, stats2, phase, open_tx, permit).await;
        }));
        let asked = (c + 1) * o.per_connection;
        if asked % 500 < o.per_connection {
            let st = stats.lock().unwrap_or_else(|e| e.into_inner());
            println!(
                "{{\"phase\":\"ramp\",\"started\":{},\"opened\":{},\"failed\":{},\"t\":{:.1}}}",
                asked.min(o.sessions),
                st.opened,
                st.failures.values().sum::<u64>(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    drop(open_tx);
    // Every login has finished one way or the other (the tasks keep their
    // senders through the hold: count, do not wait for the close).
    for _ in 0..o.sessions {
        if open_rx.recv().await.is_none() {
            break;
        }
    }
    let ramp_s = started.elapsed().as_secs_f64();
    {
        let st = stats.lock().unwrap_or_else(|e| e.into_inner());
        println!(
            "{{\"phase\":\"opened\",\"ramp_s\":{ramp_s:.1},{}}}",
            stats_json(&st)
        );
    }
    // The hold: only keystrokes timed from here on count.
    stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .echo_ms
        .clear();
    let _ = phase_tx.send(1);
    tokio::time::sleep(o.hold).await;
    {
        let st = stats.lock().unwrap_or_else(|e| e.into_inner());
        println!("{{\"phase\":\"held\",{}}}", stats_json(&st));
    }
    let _ = phase_tx.send(2);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    let st = stats.lock().unwrap_or_else(|e| e.into_inner());
    println!(
        "{{\"phase\":\"done\",\"ramp_s\":{ramp_s:.1},\"hold_s\":{:.1},{}}}",
        o.hold.as_secs_f64(),
        stats_json(&st)
    );
    Ok(())
}
