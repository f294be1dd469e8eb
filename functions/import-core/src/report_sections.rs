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
    /// How the tenant was read: `export` (a users-export job) or `users_by_email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Accepted users found more than once in the tenant.
    #[serde(default)]
    pub duplicates: u64,
    /// Of the users checked, those Auth0's job errors named as failed (not part of the identity).
    #[serde(default)]
    pub failed_at_auth0_checked: u64,
    /// Users of chunks in doubt found in the tenant: imported by a job we never heard of.
    #[serde(default)]
    pub imported_by_unknown_jobs: u64,
    /// Users of chunks with a job, not failed at Auth0, found in the tenant.
    #[serde(default)]
    pub verified_present: u64,
    /// The conservation identity in its verified form, and whether it holds.
    #[serde(default)]
    pub verified_identity: String,
    #[serde(default)]
    pub verified_identity_holds: bool,
    /// Users read from the tenant (the whole connection for an export).
    #[serde(default)]
    pub export_users_read: u64,
    /// Accepted records with no email, username or phone number to look them up by.
    #[serde(default)]
    pub accepted_without_key: u64,
    /// Accepted records whose identity key an earlier record of the run had already.
    #[serde(default)]
    pub accepted_more_than_once: u64,
    /// Memory the reconciliation held per accepted user.
    #[serde(default)]
    pub bytes_per_user: u64,
}
