//! The daily audit and compliance report (contract section 9).
