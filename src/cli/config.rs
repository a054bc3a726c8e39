//! `gatehouse config show`: the effective configuration, every key with its
//! value or default, as gatehouse.toml spells it (in the spirit of
//! `sshd -T`). The output is itself a valid gatehouse.toml; paths are
//! printed resolved (joined with the config file's folder).

use crate::config::Config;
use toml::{Table, Value};

pub fn show(config: &Config, json: bool) -> anyhow::Result<i32> {
    let table = effective(config);
    if json {
        println!("{}", serde_json::to_string_pretty(&table)?);
    } else {
        print!("{}", toml::to_string(&table)?);
    }
    Ok(0)
}

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

fn path(p: &std::path::Path) -> Value {
    s(p.display().to_string())
}

fn strings<'a>(v: impl IntoIterator<Item = &'a String>) -> Value {
    Value::Array(v.into_iter().map(|x| s(x.clone())).collect())
}

fn int(n: impl TryInto<i64>) -> Value {
    Value::Integer(n.try_into().unwrap_or(i64::MAX))
}

fn duration(d: std::time::Duration) -> Value {
    s(humantime::format_duration(d).to_string())
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Every setting of `config` as a gatehouse.toml table.
pub fn effective(config: &Config) -> Table {
    let mut server = Table::new();
    server.insert("listen".into(), s(config.listen.to_string()));
    if let Some(name) = &config.public_name {
        server.insert("public_name".into(), s(name.clone()));
    }
    server.insert("host_key".into(), path(&config.host_key));
    server.insert("identity_key".into(), path(&config.identity_key));
    server.insert("signing_key".into(), path(&config.signing_key));
    server.insert("policies".into(), path(&config.policies));
    server.insert("recordings".into(), path(&config.recordings));
    server.insert("reports".into(), path(&config.reports));
    server.insert("database".into(), s(redact_url(&config.database)));
    server.insert("master_key".into(), path(&config.master_key));
    server.insert("node".into(), s(config.node.clone()));
    // No TOML null: an unset user is left out, as in the file.
    if let Some(user) = &config.user {
        server.insert("user".into(), s(user.clone()));
    }

    let l = &config.limits;
    let mut limits = Table::new();
    limits.insert("login_grace_time".into(), duration(l.login_grace_time));
    limits.insert("max_startups".into(), int(l.max_startups));
    limits.insert(
        "auth_per_minute_per_source".into(),
        int(l.auth_per_minute_per_source),
    );
    limits.insert("lockout_after".into(), int(l.lockout_after));
    limits.insert("lockout_for".into(), duration(l.lockout_for));
    limits.insert("idle_timeout".into(), duration(l.idle_timeout));

    let r = &config.recording;
    let mut recording = Table::new();
    recording.insert(
        "privileged_accounts".into(),
        strings(&r.privileged_accounts),
    );
    recording.insert("record_input".into(), Value::Boolean(r.record_input));
    recording.insert("exec_text_cap".into(), int(r.exec_text_cap));

    let v = &config.vault;
    let mut vault = Table::new();
    vault.insert(
        "rotation_admin_account".into(),
        s(v.rotation_admin_account.clone()),
    );
    vault.insert("internal_min_length".into(), int(v.internal_min_length));
    vault.insert(
        "third_party_min_length".into(),
        int(v.third_party_min_length),
    );
    vault.insert("internal_max_age_days".into(), int(v.internal_max_age_days));
    vault.insert(
        "third_party_max_age_days".into(),
        int(v.third_party_max_age_days),
    );
    vault.insert("history".into(), int(v.history));
    vault.insert(
        "third_party_accounts".into(),
        strings(&v.third_party_accounts),
    );
    vault.insert("rotation_concurrency".into(), int(v.rotation_concurrency));

    let rp = &config.report;
    let mut report = Table::new();
    report.insert(
        "working_hours".into(),
        s(format!("{:02}-{:02}", rp.work_start_hour, rp.work_end_hour)),
    );
    report.insert(
        "working_days".into(),
        Value::Array(
            rp.working_days
                .iter()
                .filter_map(|d| DAYS.get(usize::from(*d).wrapping_sub(1)))
                .map(|d| s(*d))
                .collect(),
        ),
    );

    let mut audit = Table::new();
    audit.insert("seal_key".into(), path(&config.audit.seal_key));
    audit.insert("seal_interval".into(), duration(config.audit.seal_interval));

    let mut t = Table::new();
    t.insert("server".into(), Value::Table(server));
    t.insert("audit".into(), Value::Table(audit));
    t.insert("limits".into(), Value::Table(limits));
    t.insert("recording".into(), Value::Table(recording));
    t.insert("vault".into(), Value::Table(vault));
    t.insert("report".into(), Value::Table(report));
    t.insert("ssh".into(), Value::Table(config.ssh.to_toml()));
    let mut ca = Table::new();
    ca.insert("key".into(), path(&config.ca_key));
    ca.insert(
        "cert_authorities".into(),
        Value::Array(
            config
                .cert_authorities
                .iter()
                .filter_map(|k| k.to_openssh().ok())
                .map(s)
                .collect(),
        ),
    );
    t.insert("ca".into(), Value::Table(ca));
    let mut auth = Table::new();
    auth.insert("mfa".into(), s(config.auth.mfa.as_str()));
    auth.insert("mfa_cache".into(), duration(config.auth.mfa_cache));
    auth.insert(
        "mfa_self_enroll".into(),
        Value::Boolean(config.auth.mfa_self_enroll),
    );
    t.insert("auth".into(), Value::Table(auth));
    if let Some(o) = &config.web.oidc {
        let mut oidc = Table::new();
        oidc.insert("issuer".into(), s(o.issuer.clone()));
        oidc.insert("client_id".into(), s(o.client_id.clone()));
        oidc.insert("client_secret_file".into(), path(&o.client_secret_file));
        oidc.insert("username_claim".into(), s(o.username_claim.clone()));
        if let Some(ca) = &o.ca_file {
            oidc.insert("ca_file".into(), path(ca));
        }
        oidc.insert("mfa_amr".into(), strings(&o.mfa_amr));
        oidc.insert("mfa_acr".into(), strings(&o.mfa_acr));
        oidc.insert("algorithms".into(), strings(&o.algorithms));
        // [web]'s own keys are another section's; this adds to it.
        if let Some(Value::Table(web)) = t.get_mut("web") {
            web.insert("oidc".into(), Value::Table(oidc));
        } else {
            let mut web = Table::new();
            web.insert("oidc".into(), Value::Table(oidc));
            t.insert("web".into(), Value::Table(web));
        }
    }
    let mut review = Table::new();
    if let Some(every) = config.review.every {
        review.insert("every".into(), duration(every));
    }
    review.insert("enforce".into(), Value::Boolean(config.review.enforce));
    t.insert("review".into(), Value::Table(review));
    if let Some(d) = &config.directory {
        t.insert("directory".into(), Value::Table(directory(d)));
    }
    t
}

/// `[directory]` as in force (the password file's path, never its content).
fn directory(d: &crate::config::DirectoryConfig) -> Table {
    let mut t = Table::new();
    t.insert("url".into(), s(d.url.as_str()));
    t.insert(
        "start_tls".into(),
        Value::Boolean(d.tls == crate::config::DirectoryTls::StartTls),
    );
    if let Some(ca) = &d.ca_file {
        t.insert("ca_file".into(), path(ca));
    }
    t.insert("bind_dn".into(), s(d.bind_dn.as_str()));
    t.insert("bind_password_file".into(), path(&d.bind_password_file));
    t.insert("users".into(), s(d.users.as_str()));
    t.insert("user_filter".into(), s(d.user_filter.as_str()));
    t.insert("name_attribute".into(), s(d.name_attribute.as_str()));
    t.insert("key_attribute".into(), s(d.key_attribute.as_str()));
    if let Some(g) = &d.groups {
        t.insert("groups".into(), s(g.as_str()));
    }
    t.insert("group_filter".into(), s(d.group_filter.as_str()));
    if let Some(f) = &d.disabled_filter {
        t.insert("disabled_filter".into(), s(f.as_str()));
    }
    t.insert("sync_every".into(), duration(d.sync_every));
    t.insert("max_stale".into(), duration(d.max_stale));
    let mut roles = Table::new();
    for (role, groups) in &d.roles {
        roles.insert(role.clone(), strings(groups));
    }
    t.insert("roles".into(), Value::Table(roles));
    t
}

/// A database URL without its password (`postgres://u:SECRET@h/db`).
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:[redacted]@{host}{tail}")
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_output_is_a_config_that_loads_to_the_same_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatehouse.toml");
        let text = "[server]\nlisten = \"127.0.0.1:2200\"\nuser = \"gatehouse\"\n\
                    [limits]\nlockout_for = \"1h 30m\"\n[report]\nworking_days = [\"mon\", \"sat\"]\n\
                    [ssh]\nkex = [\"curve25519-sha256\"]\n\
                    [auth]\nmfa = \"optional\"\nmfa_cache = \"0s\"\n\
                    [web.oidc]\nissuer = \"https://idp.example.com\"\nclient_id = \"gh\"\n\
                    client_secret_file = \"oidc.secret\"\nmfa_acr = [\"phr\"]\n\
                    [review]\nevery = \"90d\"\nenforce = true\n";
        let config = Config::from_str_at(text, &path).unwrap();
        let shown = toml::to_string(&effective(&config)).unwrap();
        let again = Config::from_str_at(&shown, &path).unwrap();
        assert_eq!(effective(&again), effective(&config), "{shown}");
        assert!(shown.contains("lockout_for = \"1h 30m\""), "{shown}");
        assert!(shown.contains("user = \"gatehouse\""), "{shown}");
        assert!(
            shown.contains("working_days = [\"mon\", \"sat\"]"),
            "{shown}"
        );
        assert!(shown.contains("[ssh]"), "{shown}");
        assert!(shown.contains("mfa = \"optional\""), "{shown}");
        assert!(shown.contains("mfa_cache = \"0s\""), "{shown}");
        assert!(shown.contains("mfa_self_enroll = true"), "{shown}");
        assert!(shown.contains("target_macs = ["), "{shown}");
        assert!(shown.contains("[web.oidc]"), "{shown}");
        assert!(
            shown.contains("username_claim = \"preferred_username\""),
            "{shown}"
        );
        assert!(shown.contains("mfa_acr = [\"phr\"]"), "{shown}");
        assert!(shown.contains("[review]"), "{shown}");
        assert!(shown.contains("enforce = true"), "{shown}");
        assert_eq!(again.review.every, config.review.every);
        // Defaults appear too.
        assert!(shown.contains("max_startups = 100"), "{shown}");
        assert!(shown.contains("working_hours = \"08-18\""), "{shown}");
        let d = effective(&Config::default());
        assert!(d["server"].get("user").is_none());
        assert_eq!(
            d["server"]["host_key"].as_str(),
            Path::new("data/ssh_host_ed25519_key").to_str()
        );
    }

    #[test]
    fn database_passwords_are_not_shown() {
        assert_eq!(
            redact_url("postgres://gh:s3cret@db.internal:5432/gatehouse"),
            "postgres://gh:[redacted]@db.internal:5432/gatehouse"
        );
        assert_eq!(redact_url("postgres://gh@db/x"), "postgres://gh@db/x");
        assert_eq!(redact_url("sqlite://data/g.db"), "sqlite://data/g.db");
    }
}
