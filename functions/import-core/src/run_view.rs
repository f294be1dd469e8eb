//! Where a run stands, from the objects the pipeline leaves in its folder (manifest, status,
//! report, the job and chunk-report listings): the state, the counts so far and an ETA.
//! Pure: the CLI reads the objects and hands them here.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::manifest::{RunManifest, RunStatus, Source};
use crate::options::DropOptions;
use crate::pace;
use crate::report::{RunProgress, RunReport};
use crate::run_end::RunOutcome;

/// The stages a run goes through, as the folder shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// No manifest yet: split is reading the drop (or has not started).
    Splitting,
    /// Split refused the drop: no chunk was published.
    Refused,
    /// Chunks are published and none is claimed yet.
    Queued,
    /// Jobs are running or waiting for a slot.
    Importing,
    /// Auth0 refused the run's requests; its remaining chunks are being closed.
    RefusedByAuth0,
    /// `report.json` is written: the run is over.
    Final,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Splitting => "splitting",
            RunState::Refused => "refused",
            RunState::Queued => "queued",
            RunState::Importing => "importing",
            RunState::RefusedByAuth0 => "refused by Auth0",
            RunState::Final => "final",
        }
    }
}

/// What a run folder holds, read by the caller.
#[derive(Debug, Default)]
pub struct RunFolder<'a> {
    pub manifest: Option<&'a RunManifest>,
    pub progress: Option<&'a RunProgress>,
    pub report: Option<&'a RunReport>,
    /// `jobs/<seq>.json` objects: chunks claimed by submit.
    pub jobs_claimed: usize,
    /// `reports/<seq>.report.json` objects: chunks that ended.
    pub chunks_reported: usize,
    /// Durations of recently ended jobs (submitted → finished), for the ETA.
    pub recent_job_times: &'a [Duration],
    /// The tenant's job slots the pipeline uses (the `slots/` leases; 0 when unknown).
    pub slots: u32,
    /// `submit-failed.json` exists: Auth0 refused the run.
    pub submit_failed: bool,
}

/// One run as `runs` and `status` show it (and as `status --json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    pub run_id: String,
    pub state: RunState,
    /// For a final run: how it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RunOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<DropOptions>,
    pub users_in: u64,
    pub users_accepted: u64,
    pub users_rejected: u64,
    pub chunks_total: usize,
    pub chunks_pending: usize,
    pub chunks_active: usize,
    pub chunks_done: usize,
    pub inserted: u64,
    pub updated: u64,
    pub failed: u64,
    /// Only known once final.
    pub unknown: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conservation_holds: Option<bool>,
    /// Seconds until the last job ends, while importing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<u64>,
    /// What the ETA rests on: this run's measured job time, or Auth0's published pace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_basis: Option<String>,
    /// Why the drop was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl RunView {
    pub fn of(run_id: &str, f: &RunFolder<'_>) -> RunView {
        let mut v = RunView {
            run_id: run_id.to_string(),
            state: RunState::Splitting,
            outcome: None,
            source: None,
            options: None,
            users_in: 0,
            users_accepted: 0,
            users_rejected: 0,
            chunks_total: 0,
            chunks_pending: 0,
            chunks_active: 0,
            chunks_done: 0,
            inserted: 0,
            updated: 0,
            failed: 0,
            unknown: 0,
            conservation_holds: None,
            eta_s: None,
            eta_basis: None,
            failure: None,
        };
        if let Some(m) = f.manifest {
            v.source = Some(m.source.clone());
            v.options = m.options.clone();
            v.users_in = m.users_in;
            v.users_accepted = m.users_accepted;
            v.users_rejected = m.users_rejected;
            v.chunks_total = m.chunks.len();
            if m.status == RunStatus::Failed {
                v.state = RunState::Refused;
                v.failure = m.failure.as_ref().map(|x| x.reason.clone());
                v.conservation_holds = Some(m.conservation_holds);
                return v;
            }
            v.state = RunState::Queued;
        }
        if let Some(r) = f.report {
            v.state = RunState::Final;
            v.outcome = Some(RunOutcome::of(r));
            v.source = Some(r.source.clone());
            v.users_in = r.users_in;
            v.users_rejected = r.rejected_before_submission;
            v.chunks_total = r.chunks;
            v.chunks_done = r.chunks;
            v.inserted = r.inserted;
            v.updated = r.updated;
            v.failed = r.failed_at_auth0;
            v.unknown = r.unknown;
            v.conservation_holds = Some(r.conservation_holds);
            return v;
        }
        let Some(m) = f.manifest else {
            return v;
        };
        // Listings are current; status.json lags by one poll sweep, so counts come from them.
        let done = f.chunks_reported.min(v.chunks_total);
        let claimed = f.jobs_claimed.max(done).min(v.chunks_total);
        v.chunks_done = done;
        v.chunks_active = claimed - done;
        v.chunks_pending = v.chunks_total - claimed;
        if let Some(p) = f.progress {
            v.inserted = p.inserted_so_far;
            v.updated = p.updated_so_far;
            v.failed = p.failed_so_far;
        }
        if f.submit_failed {
            v.state = RunState::RefusedByAuth0;
        } else if claimed > 0 {
            v.state = RunState::Importing;
        }
        let left = (v.chunks_pending + v.chunks_active) as u64;
        // Nothing left to wait for but the report: no estimate.
        if v.state != RunState::RefusedByAuth0 && left > 0 {
            let upsert = m.options.as_ref().is_some_and(|o| o.upsert);
            let (job_time, basis) = match mean(f.recent_job_times) {
                Some(t) => (
                    t,
                    format!(
                        "this run's mean job time, {} over its last {} jobs",
                        pace::human(t),
                        f.recent_job_times.len()
                    ),
                ),
                None => (pace::assumed_job_time(upsert), pace::assumption(upsert)),
            };
            let slots = if f.slots == 0 {
                pace::TENANT_SLOTS
            } else {
                f.slots
            };
            v.eta_s = Some(pace::wall_time(left, slots, job_time).as_secs());
            v.eta_basis = Some(basis);
        }
        v
    }

    /// Users with an outcome at Auth0 so far.
    pub fn users_done(&self) -> u64 {
        self.inserted + self.updated + self.failed + self.unknown
    }
}

fn mean(times: &[Duration]) -> Option<Duration> {
    let n = u32::try_from(times.len()).ok().filter(|n| *n > 0)?;
    Some(times.iter().sum::<Duration>() / n)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::manifest::{ChunkEntry, Failure, Transformations};

    fn manifest(chunks: usize, upsert: bool) -> RunManifest {
        RunManifest {
            manifest_version: 1,
            run_id: "r".into(),
            status: RunStatus::Split,
            source: Source::Local {
                path: "u.json".into(),
                size: None,
            },
            options: Some(DropOptions {
                connection_id: "con_AbCdEf0123456789".into(),
                upsert,
                send_completion_email: false,
                canary_warn: false,
                source: None,
            }),
            format: None,
            failure: None,
            users_in: chunks as u64 * 10 + 1,
            users_accepted: chunks as u64 * 10,
            users_rejected: 1,
            conservation_holds: true,
            rejects_by_code: BTreeMap::new(),
            transformations: Transformations::default(),
            max_chunk_bytes: 1000,
            max_request_bytes: 512_000,
            mean_chunk_fill: 0.5,
            rejects_key: None,
            canaries: None,
            chunks: (0..chunks)
                .map(|i| ChunkEntry {
                    key: format!("chunks/{i}"),
                    seq: i as u32 + 1,
                    users: 10,
                    bytes: 10,
                    first_index: 0,
                    last_index: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn a_run_moves_through_its_states() {
        assert_eq!(
            RunView::of("r", &RunFolder::default()).state,
            RunState::Splitting
        );

        let m = manifest(10, false);
        let queued = RunView::of(
            "r",
            &RunFolder {
                manifest: Some(&m),
                ..RunFolder::default()
            },
        );
        assert_eq!(queued.state, RunState::Queued);
        assert_eq!(queued.chunks_pending, 10);
        // 10 chunks, 2 slots, 4 min each: 5 waves.
        assert_eq!(queued.eta_s, Some(5 * 240));
        assert!(queued.eta_basis.unwrap().contains("published pace"));

        let times = [Duration::from_secs(60), Duration::from_secs(120)];
        let importing = RunView::of(
            "r",
            &RunFolder {
                manifest: Some(&m),
                jobs_claimed: 6,
                chunks_reported: 4,
                recent_job_times: &times,
                slots: 2,
                ..RunFolder::default()
            },
        );
        assert_eq!(importing.state, RunState::Importing);
        assert_eq!(
            (
                importing.chunks_pending,
                importing.chunks_active,
                importing.chunks_done
            ),
            (4, 2, 4)
        );
        // 6 chunks left, 2 slots, measured 90 s each: 3 waves.
        assert_eq!(importing.eta_s, Some(270));
        assert!(importing
            .eta_basis
            .unwrap()
            .contains("this run's mean job time"));

        let refused = RunView::of(
            "r",
            &RunFolder {
                manifest: Some(&m),
                jobs_claimed: 1,
                submit_failed: true,
                ..RunFolder::default()
            },
        );
        assert_eq!(refused.state, RunState::RefusedByAuth0);
        assert_eq!(refused.eta_s, None);
    }

    #[test]
    fn a_refused_drop_says_why() {
        let mut m = manifest(0, false);
        m.status = RunStatus::Failed;
        m.failure = Some(Failure::new("the gzip stream is corrupt".into(), None, 7));
        let v = RunView::of(
            "r",
            &RunFolder {
                manifest: Some(&m),
                ..RunFolder::default()
            },
        );
        assert_eq!(v.state, RunState::Refused);
        assert_eq!(v.failure.as_deref(), Some("the gzip stream is corrupt"));
    }

    #[test]
    fn upserts_are_estimated_at_the_upsert_pace() {
        let m = manifest(3, true);
        let v = RunView::of(
            "r",
            &RunFolder {
                manifest: Some(&m),
                ..RunFolder::default()
            },
        );
        assert_eq!(v.eta_s, Some(2 * 14 * 60));
    }
}
