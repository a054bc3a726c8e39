//! The bastion's own keys: host key, identity key (logging in to targets)
//! and recording signing key, created 0600 on first start.
