//! `gatehouse ca show`: the bastion's user CA, as a target's
//! `TrustedUserCAKeys` file wants it. The key is created (0600) when it
//! does not exist yet, as `serve` would on its first start.

use crate::config::Config;

pub fn show(config: &Config, json: bool) -> anyhow::Result<i32> {
    let ca = crate::ca::UserCa::load_or_create(&config.ca_key)?;
    let line = ca.trusted_user_ca_keys_line();
    if json {
        let v = serde_json::json!({
            "trusted_user_ca_key": line,
            "fingerprint": ca.fingerprint(),
            "key": config.ca_key.display().to_string(),
        });
        println!("{v}");
    } else {
        println!("{line}");
    }
    Ok(0)
}
