//! The credential vault: target credentials kept encrypted (issue 5).
