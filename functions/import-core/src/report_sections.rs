//! Optional sections of a run's report that later stages fill: canary passwords checked before
//! any job is spent, and users read back from the tenant once the last job ended.
//!
//! Kept minimal on purpose: each holds the counts a person and the notification need. The stages
//! that produce them may add fields (with `#[serde(default)]`, so older reports still parse);
//! `report_html` renders a section only when its field is present.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Canaries: test accounts whose plaintext the operator knows, verified against their hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryReport {
    #[serde(default)]
    pub checked: u32,
    #[serde(default)]
    pub passed: u32,
    #[serde(default)]
    pub failed: u32,
    /// Named by the operator but not found in the drop.
    #[serde(default)]
    pub missing: u32,
    /// One line per canary that did not pass. `canary` is the operator's label for it (never a
    /// password or a hash); `reason` says what did not verify.
    #[serde(default)]
    pub failures: Vec<CanaryFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryFailure {
    pub canary: String,
    pub reason: String,
}

impl CanaryReport {
    /// Whether the canaries stop the run: any failed or missing.
    pub fn stops_the_run(&self) -> bool {
        self.failed > 0 || self.missing > 0
    }
}

/// Reconciliation: the run's accepted users looked up in the tenant after the last job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciliationReport {
    #[serde(default)]
    pub users_checked: u64,
    /// Found, and every field the run set matches.
    #[serde(default)]
    pub present: u64,
    #[serde(default)]
    pub present_with_differences: u64,
    #[serde(default)]
    pub missing: u64,
    /// Fields that differed, with how many users differed in each.
    #[serde(default)]
    pub differences_by_field: BTreeMap<String, u64>,
}
