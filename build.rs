//! Rebuilds the crate when a migration is added or edited: `sqlx::migrate!`
//! embeds `migrations/` at compile time but cannot tell cargo to watch it.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
