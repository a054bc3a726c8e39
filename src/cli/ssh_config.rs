//! `gatehouse ssh-config USER`: an ssh_config block per server USER may
//! reach, so `ssh NAME`, `scp NAME:file .` and `sftp NAME` need no typing
//! beyond the server's name.
//!
//! Each server gets `Host SERVER` (its default account, as before) and one
//! alias per account USER may become there, `Host SERVER--ACCOUNT`, each
//! with `User USER+ACCOUNT@SERVER`. The aliases are plain host names, so
//! tools that build their own command lines from a host and a user
//! (Ansible expands `~` as `~REMOTE_USER`: with `ansible_user` set to
//! `eve+root@web1` that is `~eve+root@web1`, which no shell knows) can
//! name a server and account by host alone and leave the user to
//! ssh_config. An alias that would be the name of a reachable server, or
//! another alias, is left out with a comment rather than made ambiguous.

use std::collections::BTreeSet;

use crate::config::Config;
use crate::policy::{Mode, Policy, Reach};
use crate::store::Store;

/// What separates a server from an account in an alias: not `@` (Ansible
/// and scp read it as a user), nor `+` or `:`; rare in host names.
pub const ALIAS_SEPARATOR: &str = "--";

/// The alias of `account` on `server`.
pub fn alias(server: &str, account: &str) -> String {
    format!("{server}{ALIAS_SEPARATOR}{account}")
}

/// One `Host` block of the output.
struct Block {
    host: String,
    user: String,
    /// `None` for the server's own name (its default account).
    account: Option<String>,
}

/// The blocks of one server: its name, then an alias per account, those
/// that would clash with `taken` (names already used) left out and
/// returned apart.
fn blocks(staff: &str, r: &Reach, taken: &mut BTreeSet<String>) -> (Vec<Block>, Vec<String>) {
    let mut out = vec![Block {
        host: r.server.clone(),
        user: format!("{staff}@{}", r.server),
        account: None,
    }];
    let mut clashes = Vec::new();
    for a in &r.accounts {
        let host = alias(&r.server, a);
        if !taken.insert(host.clone()) {
            clashes.push(host);
            continue;
        }
        out.push(Block {
            host,
            user: format!("{staff}+{a}@{}", r.server),
            account: Some(a.clone()),
        });
    }
    (out, clashes)
}

pub async fn run(
    config: Config,
    user: &str,
    bastion: Option<&str>,
    json: bool,
) -> anyhow::Result<i32> {
    let policy =
        Policy::load_dir_with(&config.policies, config.directory.is_some()).map_err(|d| {
            anyhow::anyhow!(
                "{} problem(s) in the policy files (run `gatehouse policy check`)",
                d.len()
            )
        })?;
    if policy.user(user).is_none() {
        return Err(super::Exit::new(1, format!("unknown user {user}")).into());
    }
    let grants = match Store::open(&config.database, &config.node).await {
        Ok(store) => store.grants_for(user).await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let now = time::OffsetDateTime::now_utc();
    let reach: Vec<Reach> = crate::policy::reachable(&policy, user, &grants, now)
        .into_iter()
        .filter(|r| !matches!(r.mode, Mode::Desktop | Mode::Clone))
        .collect();
    let host = bastion
        .map(str::to_string)
        .or_else(|| config.public_name.clone())
        .unwrap_or_else(|| {
            let ip = config.listen.ip();
            if ip.is_unspecified() {
                std::fs::read_to_string("/etc/hostname")
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "localhost".into())
            } else {
                ip.to_string()
            }
        });
    let port = config.listen.port();
    // Server names come first: an alias never hides a server.
    let mut taken: BTreeSet<String> = reach.iter().map(|r| r.server.clone()).collect();
    let per_server: Vec<(&Reach, Vec<Block>, Vec<String>)> = reach
        .iter()
        .map(|r| {
            let (b, c) = blocks(user, r, &mut taken);
            (r, b, c)
        })
        .collect();
    if json {
        let out: Vec<_> = per_server
            .iter()
            .map(|(r, blocks, _)| {
                let aliases: Vec<_> = blocks
                    .iter()
                    .filter_map(|b| {
                        b.account.as_ref().map(|a| {
                            serde_json::json!({
                                "host": b.host,
                                "account": a,
                                "user": b.user,
                            })
                        })
                    })
                    .collect();
                serde_json::json!({
                    "host": r.server,
                    "hostname": host,
                    "port": port,
                    "user": format!("{user}@{}", r.server),
                    "accounts": r.accounts,
                    "aliases": aliases,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    println!("# Gatehouse: servers {user} may reach through {host}:{port}");
    println!("# Generated by `gatehouse ssh-config {user}`; add to ~/.ssh/config.");
    println!(
        "# `Host SERVER` logs in as the server's default account, `Host SERVER{ALIAS_SEPARATOR}ACCOUNT` as ACCOUNT."
    );
    for (r, blocks, clashes) in &per_server {
        println!();
        println!(
            "# {} ({}), accounts: {}",
            r.server,
            r.mode.as_str(),
            r.accounts.join(", ")
        );
        for c in clashes {
            println!("# {c}: left out, the name is already used above");
        }
        for (i, b) in blocks.iter().enumerate() {
            if i > 0 {
                println!();
            }
            println!("Host {}", b.host);
            println!("    HostName {host}");
            println!("    Port {port}");
            println!("    User {}", b.user);
            println!("    ForwardAgent no");
            println!("    ForwardX11 no");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(server: &str, accounts: &[&str]) -> Reach {
        Reach {
            server: server.into(),
            mode: Mode::SshForwarding,
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            ports: Vec::new(),
            any_port: false,
            policy: None,
            grants: Vec::new(),
            needs_grant: false,
            flagged: false,
            use_instead: None,
            via: None,
        }
    }

    #[test]
    fn one_alias_per_account_and_no_clash() {
        let web = reach("web1", &["root", "ghtest"]);
        // A server literally named like an alias keeps its name.
        let odd = reach("web1--root", &["admin"]);
        let mut taken: BTreeSet<String> = [web.server.clone(), odd.server.clone()].into();
        let (b, clashes) = blocks("eve", &web, &mut taken);
        let hosts: Vec<_> = b
            .iter()
            .map(|b| (b.host.as_str(), b.user.as_str()))
            .collect();
        assert_eq!(
            hosts,
            [("web1", "eve@web1"), ("web1--ghtest", "eve+ghtest@web1")]
        );
        assert_eq!(clashes, ["web1--root"]);
        let (b, clashes) = blocks("eve", &odd, &mut taken);
        assert_eq!(b.len(), 2);
        assert!(clashes.is_empty());
    }
}
