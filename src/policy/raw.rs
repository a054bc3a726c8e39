//! Raw serde types of the policy files.
