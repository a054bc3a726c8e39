//! Gatehouse: an SSH privileged-access bastion.
//!
//! One module per concern: [`config`] (gatehouse.toml), [`policy`] (policy
//! files, validation, the access decision), [`grants`] (recent
//! authorization), [`audit`] (event kinds), [`store`] (the database: audit
//! chain, sessions, grants, lockouts), [`seal`] (forward-secure seals of
//! the audit chain), [`recording`] (asciicast and
//! sidecars), [`vault`] (target credentials), [`identity`] (second
//! factors), [`server`] (the SSH front end
//! and the bridge to targets), [`report`] (the daily report), [`web`] (the
//! review console) and [`cli`]; for operations, [`metrics`], [`health`] and
//! the [`admin`] listener.

pub(crate) mod admin;
pub(crate) mod algorithms;
pub mod audit;
pub(crate) mod ca;
pub mod cli;
pub mod config;
pub mod directory;
pub(crate) mod envfilter;
pub(crate) mod grant_types;
pub mod grants;
pub(crate) mod health;
pub mod identity;
pub(crate) mod keys;
pub(crate) mod metrics;
pub mod policy;
pub(crate) mod privileges;
pub(crate) mod readbuf;
pub mod recording;
pub mod report;
pub(crate) mod rlimit;
pub(crate) mod seal;
pub(crate) mod sealer;
pub(crate) mod secret;
pub mod server;
pub mod store;
pub(crate) mod upstream;
pub mod vault;
pub(crate) mod web;
