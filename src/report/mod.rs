//! The daily audit and compliance report (contract section 9): who reached
//! what, as whom and how; what was refused, blocked or looked odd; which
//! recordings await review; who may reach what and through which rule or
//! grant; how the privileged credentials stand.
//!
//! The pieces, in the order data flows:
//! - [`source`]: what the report reads ([`ReportSource`]), [`gather`]ing
//!   the facts and [`generate`] (facts plus the day's events, streamed);
//!   [`LiveSource`] binds it to the store, recordings folder and vault.
//! - [`input`]: those facts as plain data ([`ReportInput`]).
//! - [`build`]: the correlation, one pass over the events
//!   ([`DayBuilder`]) then a join ([`build()`] for in-memory input).
//! - [`detect`]: failed-login bursts.
//! - [`model`]: the [`Report`] (the JSON document).
//! - [`render`] and [`escape`]: HTML, Markdown, CSV and JSON, with every
//!   user- or target-supplied string escaped for its output.
//! - [`write`]: `OUT/YYYY-MM-DD.{html,md,json,csv}`, written atomically.
//! - [`job`]: the nightly run inside `serve`.
//!
//! Volume: events are never held all at once. Per event only counters and
//! small per-item records change; the lists of denials, lockouts, grant
//! activity, policy changes and each kind of suspicious entry keep their
//! first [`LIST_CAP`] entries and `summary.omitted` counts the rest (the
//! summary counts always include them). Sessions and recordings to review
//! are never capped.
//!
//! May import: everything it reports on (store, audit, grant types, policy,
//! recording, seal, vault, config); nothing imports it but the CLI and
//! the server's nightly job.

pub mod build;
pub(crate) mod detect;
pub(crate) mod escape;
pub(crate) mod input;
pub mod job;
pub(crate) mod model;
pub(crate) mod render;
pub(crate) mod source;
pub(crate) mod write;

use std::path::{Path, PathBuf};

pub use build::{DayBuilder, LIST_CAP, build, day_bounds};
pub use input::{
    CredentialFact, EntitlementFact, RecordingFact, ReportInput, ReviewState, ServerFact, Through,
    UserFact, WorkHours,
};
pub use job::daily_job;
pub use model::Report;
pub(crate) use source::enrolled_in_store;
pub use source::{LiveSource, LoginHistory, ReportSource, gather, generate, sign_chain_heads};
pub use write::{Format, report_path, secure_reports_folder, write_report};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("recordings: {0}")]
    Recordings(String),
    #[error("rendering the report: {0}")]
    Render(String),
    /// A source this build cannot read.
    #[error("{0}")]
    Unavailable(String),
}

impl ReportError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<time::Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.trim(), fmt).ok()
}

/// The day before `now`'s UTC date: the default report day.
pub fn yesterday(now: time::OffsetDateTime) -> time::Date {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    today.previous_day().unwrap_or(today)
}

#[cfg(test)]
mod tests;
