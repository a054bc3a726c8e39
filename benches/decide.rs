//! Decisions per second of the authorization function with a policy of
//! 10,000 servers and 1,000 users: `cargo bench --bench decide`.
//!
//! A plain timing harness (no external bench crate): it builds the policy
//! through the real parser and checker, then times `policy::decide` over a
//! mix of allowed and refused requests, sessions and forwards.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Instant;

use gatehouse::policy::{self, Action, Policy, Request};

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
/// binary without it, as a quick smoke test of the same code path.
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}
const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIDzXhOm/CKaSOWAp/1cSJfYiJiaPNkrM2OFPyrc4A1yR";

fn policy_text(users: usize, servers: usize) -> String {
    let mut s = String::with_capacity(4 << 20);
    // Keys must be unique per user: vary the last characters of a valid
    // ed25519 blob is not possible, so give each user a generated key.
    for u in 0..users {
        s.push_str(&format!(
            "[[user]]\nname = \"u{u}\"\nkeys = [\"{}\"]\ngroups = [\"g{}\"]\n\n",
            user_key(u),
            u % 50
        ));
    }
    let modes = ["ssh-forwarding", "firewall", "global", "on-request"];
    for n in 0..servers {
        let mode = modes[n % modes.len()];
        let extra = if mode == "firewall" {
            "allow_from = [\"127.0.0.0/8\"]\n"
        } else {
            ""
        };
        s.push_str(&format!(
            "[[server]]\nname = \"s{n}\"\naddress = \"10.{}.{}.{}:22\"\nhost_key = \"SHA256:{}\"\nmode = \"{mode}\"\naccounts = [\"root\", \"app\"]\nallow = [\"group:g{}\", \"user:u{}\"]\nports = [5432, 8080]\n{extra}\n",
            (n >> 16) & 255,
            (n >> 8) & 255,
            n & 255,
            "A".repeat(43),
            n % users.min(50),
            n % users
        ));
    }
    s
}

/// A distinct, valid ed25519 public key per user, derived from the index.
fn user_key(u: usize) -> String {
    use base64::Engine;
    let mut blob = base64::engine::general_purpose::STANDARD
        .decode(KEY)
        .expect("valid key");
    let len = blob.len();
    let idx = u.to_le_bytes();
    blob[len - 1] = idx[0];
    blob[len - 2] = idx[1];
    format!(
        "ssh-ed25519 {}",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

fn main() {
    let (users_n, servers_n, n) = if full() {
        (1_000, 10_000, 2_000_000)
    } else {
        (20, 200, 10_000)
    };
    let t = Instant::now();
    let text = policy_text(users_n, servers_n);
    let policy: Policy = match Policy::from_sources(&[(PathBuf::from("bench.toml"), text)]) {
        Ok(p) => p,
        Err(d) => {
            eprintln!(
                "policy invalid: {}",
                d.first().map(|d| d.to_string()).unwrap_or_default()
            );
            std::process::exit(1);
        }
    };
    println!(
        "policy: {} users, {} servers, parsed and checked in {:.2?}",
        policy.users.len(),
        policy.servers.len(),
        t.elapsed()
    );
    let names: Vec<String> = (0..servers_n).map(|n| format!("s{n}")).collect();
    let users: Vec<String> = (0..users_n).map(|u| format!("u{u}")).collect();
    let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let now = time::OffsetDateTime::now_utc();
    let start = Instant::now();
    let mut allowed = 0usize;
    for i in 0..n {
        let user = &users[i % users_n];
        let server = &names[(i * 7919) % servers_n];
        let action = if i % 3 == 0 {
            Action::LocalForward {
                host: "localhost".into(),
                port: if i % 2 == 0 { 5432 } else { 22 },
            }
        } else {
            Action::Session
        };
        let req = Request {
            user,
            server,
            account: None,
            source,
            action,
        };
        if matches!(
            black_box(policy::decide(&policy, &req, &[], now)),
            policy::Decision::Allow(_)
        ) {
            allowed += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "decide: {n} decisions in {secs:.2}s = {:.0} decisions/s ({allowed} allowed, {} refused)",
        n as f64 / secs,
        n - allowed
    );
}
