//! The functional core of auth0-s3-import: bytes in, verdicts and chunks out.
//! It knows Auth0's import rules and our run-folder layout, and nothing of AWS or HTTP.

pub mod auth0;
pub mod canary;
pub mod chunk;
pub mod clock;
pub mod compact;
pub mod drop_budget;
pub mod duplicates;
pub mod export;
pub mod finalize;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod input;
pub mod jobs;
pub mod layout;
pub mod ledger;
pub mod manifest;
pub mod mapping;
pub mod multipart;
pub mod options;
pub mod pace;
pub mod pipeline;
pub mod preflight;
mod read_ahead;
pub mod reconcile;
pub mod redact;
pub mod report;
mod report_html;
mod report_sections;
pub mod rules;
pub mod run_end;
pub mod run_view;
pub mod split;
pub mod storage;
pub mod violation;
