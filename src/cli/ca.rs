//! `gatehouse ca show`: the bastion's user CA, as a target's
//! `TrustedUserCAKeys` file wants it. The CA lives in the database, sealed
//! under the vault's master key (src/ca.rs), so every node prints the same
//! line; when the database has none yet, it is stored now as `serve` would
//! on its first start (imported from `[ca] key` when that file exists).

use crate::ca::{Origin, UserCa};
use crate::config::Config;
use crate::store::Store;
use crate::vault::{MasterKey, Vault};

pub async fn show(config: &Config, json: bool) -> anyhow::Result<i32> {
    let store = Store::open(&config.database, &config.node).await?;
    let master = MasterKey::resolve(&config.master_key)?;
    let vault = Vault::new(store.pool().clone(), master, config.vault.clone());
    // Fails clearly on a master key that is not this database's.
    vault.check_key().await?;
    let (ca, origin) = UserCa::load_shared(store.pool(), &vault.key(), &config.ca_key).await?;
    store.close().await;
    let line = ca.trusted_user_ca_keys_line();
    if json {
        let origin = match &origin {
            Origin::Database => "database".to_string(),
            Origin::Generated => "generated".to_string(),
            Origin::Imported(p) => format!("imported from {}", p.display()),
        };
        let v = serde_json::json!({
            "trusted_user_ca_key": line,
            "fingerprint": ca.fingerprint(),
            "stored": "database",
            "origin": origin,
        });
        println!("{v}");
    } else {
        println!("{line}");
    }
    Ok(0)
}
