//! Optional sections of a run's report that later stages fill: users read back from the tenant
//! once the last job ended. (The canary section is `canary::CanaryReport`, made by split.)
//!
//! Kept minimal on purpose: each holds the counts a person and the notification need. The stages
//! that produce them may add fields (with `#[serde(default)]`, so older reports still parse);
//! `report_html` renders a section only when its field is present.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
