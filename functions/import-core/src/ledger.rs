//! The submission ledger kept in the bucket: one job record per chunk (the claim that makes a
//! chunk post at most once) and one lease per tenant job slot. Pure data and transitions only.
//!
//! Every write of these objects is a compare-and-swap (`If-None-Match: *` to create, `If-Match`
//! to change), so concurrent invocations agree on who holds what.

use serde::{Deserialize, Serialize};

/// How long a claim may stay unposted before its holder is presumed dead. A submit invocation
/// lives at most 15 minutes (Lambda's ceiling); a claim older than that was never finished.
pub const CLAIM_TIMEOUT_MS: u64 = 16 * 60 * 1000;

/// How long a slot may be held with no job record behind it (the holder died between taking
/// the slot and claiming a chunk, which normally takes milliseconds).
pub const ORPHAN_SLOT_TIMEOUT_MS: u64 = 5 * 60 * 1000;

/// Where a chunk's submission stands. Transitions are the methods below; nothing else
/// constructs a later state from an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Claimed by an invocation that is about to post it.
    Claimed,
    /// Auth0 accepted the job (202).
    Submitted { job_id: String, submitted_at_ms: u64 },
    /// Auth0 refused the request (4xx other than the concurrency 429): not retried.
    Refused { status: u16, message: String },
    /// The request may or may not have created a job (crash or timeout after sending).
    /// Never retried: posting again could import the same users twice.
    Unknown { reason: String },
    /// Poll saw the job end and wrote the chunk's report.
    Finished { job_id: String, status: String },
}

/// `runs/<run-id>/jobs/<seq>.json`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub seq: u32,
    pub chunk_key: String,
    pub users: u32,
    pub external_id: String,
    /// The tenant slot this job holds while it is in flight.
    pub slot: u32,
    pub claimed_at_ms: u64,
    pub claimed_by: String,
    #[serde(flatten)]
    pub state: JobState,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job record {seq}: cannot go from {from} to {to}")]
pub struct BadTransition {
    pub seq: u32,
    pub from: &'static str,
    pub to: &'static str,
}

impl JobState {
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Claimed => "claimed",
            JobState::Submitted { .. } => "submitted",
            JobState::Refused { .. } => "refused",
            JobState::Unknown { .. } => "unknown",
            JobState::Finished { .. } => "finished",
        }
    }

    /// Whether the job still occupies a tenant slot.
    pub fn holds_slot(&self) -> bool {
        matches!(self, JobState::Claimed | JobState::Submitted { .. })
    }
}

impl JobRecord {
    pub fn claim(
        seq: u32,
        chunk_key: String,
        users: u32,
        external_id: String,
        slot: u32,
        now_ms: u64,
        claimed_by: String,
    ) -> Self {
        JobRecord {
            seq,
            chunk_key,
            users,
            external_id,
            slot,
            claimed_at_ms: now_ms,
            claimed_by,
            state: JobState::Claimed,
        }
    }

    fn to(&self, next: JobState, allowed: bool) -> Result<JobRecord, BadTransition> {
        if !allowed {
            return Err(BadTransition {
                seq: self.seq,
                from: self.state.name(),
                to: next.name(),
            });
        }
        Ok(JobRecord {
            state: next,
            ..self.clone()
        })
    }

    pub fn submitted(&self, job_id: String, now_ms: u64) -> Result<JobRecord, BadTransition> {
        let ok = self.state == JobState::Claimed;
        self.to(
            JobState::Submitted {
                job_id,
                submitted_at_ms: now_ms,
            },
            ok,
        )
    }

    pub fn refused(&self, status: u16, message: String) -> Result<JobRecord, BadTransition> {
        let ok = self.state == JobState::Claimed;
        self.to(JobState::Refused { status, message }, ok)
    }

    pub fn unknown(&self, reason: String) -> Result<JobRecord, BadTransition> {
        let ok = self.state == JobState::Claimed;
        self.to(JobState::Unknown { reason }, ok)
    }

    pub fn finished(&self, status: String) -> Result<JobRecord, BadTransition> {
        match &self.state {
            JobState::Submitted { job_id, .. } => {
                let job_id = job_id.clone();
                self.to(JobState::Finished { job_id, status }, true)
            }
            other => Err(BadTransition {
                seq: self.seq,
                from: other.name(),
                to: "finished",
            }),
        }
    }
}

/// `slots/<k>.json`: a lease on one of the tenant's import-job slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SlotLease {
    Free {
        released_at_ms: u64,
    },
    Held {
        run_id: String,
        seq: u32,
        acquired_at_ms: u64,
        holder: String,
    },
}

impl SlotLease {
    pub fn is_held_by(&self, run: &str, chunk: u32) -> bool {
        matches!(self, SlotLease::Held { run_id, seq, .. } if run_id == run && *seq == chunk)
    }
}

/// What to do with a held slot whose holder may have died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotRecovery {
    /// The holder is alive or its job is in flight: leave it.
    Keep,
    /// Nothing occupies the slot any more: free it.
    Free,
    /// The claim was never finished: record the chunk as unknown, then free the slot.
    MarkUnknownThenFree(String),
}

/// Decides a held slot's fate from the job record of the chunk it names (None = no record).
pub fn recover_slot(acquired_at_ms: u64, job: Option<&JobRecord>, now_ms: u64) -> SlotRecovery {
    match job {
        None if now_ms.saturating_sub(acquired_at_ms) > ORPHAN_SLOT_TIMEOUT_MS => {
            SlotRecovery::Free
        }
        None => SlotRecovery::Keep,
        Some(j) => match &j.state {
            JobState::Claimed if now_ms.saturating_sub(j.claimed_at_ms) > CLAIM_TIMEOUT_MS => {
                SlotRecovery::MarkUnknownThenFree(format!(
                    "claimed by {} at {} ms and never recorded as posted: the invocation died, so whether Auth0 created a job is unknown",
                    j.claimed_by, j.claimed_at_ms
                ))
            }
            JobState::Claimed | JobState::Submitted { .. } => SlotRecovery::Keep,
            JobState::Refused { .. } | JobState::Unknown { .. } | JobState::Finished { .. } => {
                SlotRecovery::Free
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(at: u64) -> JobRecord {
        JobRecord::claim(3, "chunks/000003.json".into(), 10, "run:3".into(), 1, at, "inv-1".into())
    }

    #[test]
    fn transitions_follow_the_lifecycle() {
        let c = claimed(0);
        let s = c.submitted("job_abc".into(), 5).unwrap();
        assert!(s.state.holds_slot());
        let f = s.finished("completed".into()).unwrap();
        assert_eq!(f.state, JobState::Finished { job_id: "job_abc".into(), status: "completed".into() });
        assert!(!f.state.holds_slot());
        // No way back, no skipping.
        assert!(f.submitted("job_x".into(), 6).is_err());
        assert!(c.finished("completed".into()).is_err());
        assert!(s.unknown("x".into()).is_err());
        assert!(c.refused(400, "bad".into()).is_ok());
    }

    #[test]
    fn record_round_trips_as_flat_json() {
        let s = claimed(7).submitted("job_abc".into(), 9).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["state"], "submitted");
        assert_eq!(v["job_id"], "job_abc");
        let back: JobRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn dead_holders_are_recovered_live_ones_kept() {
        let now = 100 * 60 * 1000;
        assert_eq!(recover_slot(now - 1000, None, now), SlotRecovery::Keep);
        assert_eq!(recover_slot(now - ORPHAN_SLOT_TIMEOUT_MS - 1, None, now), SlotRecovery::Free);
        assert_eq!(recover_slot(0, Some(&claimed(now - 1000)), now), SlotRecovery::Keep);
        assert!(matches!(
            recover_slot(0, Some(&claimed(now - CLAIM_TIMEOUT_MS - 1)), now),
            SlotRecovery::MarkUnknownThenFree(_)
        ));
        let submitted = claimed(0).submitted("job_1".into(), 1).unwrap();
        assert_eq!(recover_slot(0, Some(&submitted), now), SlotRecovery::Keep);
        let finished = submitted.finished("completed".into()).unwrap();
        assert_eq!(recover_slot(0, Some(&finished), now), SlotRecovery::Free);
    }

    #[test]
    fn lease_names_its_holder() {
        let l = SlotLease::Held { run_id: "r".into(), seq: 2, acquired_at_ms: 0, holder: "i".into() };
        assert!(l.is_held_by("r", 2));
        assert!(!l.is_held_by("r", 3));
        assert!(!SlotLease::Free { released_at_ms: 0 }.is_held_by("r", 2));
    }
}
