//! The policy in force, one cell shared by everything that serves: the SSH
//! server swaps it on a reload, the console reads it per request. A reader
//! keeps the `Arc<Policy>` it took for as long as it works with it, so one
//! decision never sees two policies.

use std::sync::{Arc, RwLock};

use super::Policy;

/// A cheap handle (clone it) to the policy in force.
#[derive(Clone)]
pub struct Live(Arc<RwLock<Arc<Policy>>>);

impl Live {
    pub fn new(policy: Policy) -> Live {
        Live(Arc::new(RwLock::new(Arc::new(policy))))
    }

    /// The policy in force now.
    pub fn get(&self) -> Arc<Policy> {
        match self.0.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `policy` in force for every later [`Live::get`].
    pub fn set(&self, policy: Policy) {
        let mut guard = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handle_sees_a_swap() {
        let live = Live::new(Policy::default());
        let other = live.clone();
        let before = other.get();
        live.set(Policy {
            digest: "changed".into(),
            ..Default::default()
        });
        assert_eq!(other.get().digest, "changed");
        // What a reader took before the swap stays as it was.
        assert_ne!(before.digest, "changed");
    }
}
