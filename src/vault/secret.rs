//! The [`Secret`] wrapper lives at the bottom of the crate ([`crate::secret`])
//! so that the SSH client to targets ([`crate::upstream`]) can hold one
//! without importing the vault; the vault re-exports it here.

pub use crate::secret::{REDACTED, Secret};
pub(crate) use crate::secret::{ct_eq, wipe};
