//! One reason a record cannot be imported, shaped like Auth0's per-user job errors
//! (`{code, path, message}`) so pre-submit rejects and Auth0's own errors read alike.

use serde::{Deserialize, Serialize};

/// A single rule broken by a record. `code` reuses Auth0's error codes where one fits
/// (`INVALID_TYPE`, `PATTERN`, `DUPLICATED_USER`, ...); our own codes cover what Auth0 never sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub code: String,
    /// Dotted path inside the record (`custom_password_hash.salt`), empty for the record itself.
    pub path: String,
    pub message: String,
}

impl Violation {
    pub fn new(code: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            path: path.into(),
            message: message.into(),
        }
    }
}
