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

pub mod admin;
pub mod algorithms;
pub mod audit;
pub mod ca;
pub mod cli;
pub mod config;
pub mod directory;
pub mod envfilter;
pub mod grant_types;
pub mod grants;
pub mod health;
pub mod identity;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod privileges;
pub mod readbuf;
pub mod recording;
pub mod report;
pub mod rlimit;
pub mod seal;
pub mod sealer;
pub mod secret;
pub mod server;
pub mod store;
pub mod upstream;
pub mod vault;
pub mod web;
