//! The `submit` Lambda: whatever woke it (a manifest, a finished job's report, the schedule),
//! it starts Auth0 import jobs for pending chunks while the tenant has free slots.
//!
//! At most once per chunk: a chunk is claimed (`jobs/<seq>.json`, create-if-absent) before it
//! is posted. At most N jobs in flight: each needs a slot lease (`slots/<k>.json`, CAS).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use auth0_api::{unix_now_ms, ImportOutcome, ManagementApi};
use import_core::layout;
use import_core::ledger::JobRecord;
use import_core::ledger::{Ledger, ObjectStore};
use import_core::manifest::{RunManifest, RunStatus};
use import_core::multipart::ImportFields;
use serde::Serialize;
use serde_json::Value;

/// Time kept back from the invocation's deadline: a post plus its ledger writes fit in it.
const SAFETY_MARGIN: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct SubmitConfig {
    pub bucket: String,
    /// Import jobs this pipeline may have in flight for the tenant (Auth0 allows 2, facts §1.6).
    pub slots: u32,
    pub secret_id: String,
}

/// What one invocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubmitReport {
    pub submitted: Vec<String>,
    pub refused_runs: Vec<String>,
    pub unknown: Vec<String>,
    pub slots_recovered: u32,
    /// Why the invocation stopped starting jobs.
    pub stopped: String,
}

/// Runs whose manifest an S3 event announces (`runs/<id>/manifest.json`). Other keys (chunk
/// reports) and the schedule only wake submit; they never activate a run.
pub fn manifests_in_event(event: &Value) -> BTreeSet<String> {
    let mut runs = BTreeSet::new();
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        for r in records {
            let key = r
                .pointer("/s3/object/key")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // Our own keys are plain ASCII (run ids are slugs), so no URL decoding is needed.
            if let Some(id) = layout::run_id_of_key(key) {
                if key == format!("{}{}", layout::run_prefix(id), layout::MANIFEST) {
                    runs.insert(id.to_string());
                }
            }
        }
    }
    runs
}

pub struct Submitter<'a, S> {
    pub ledger: &'a Ledger<S>,
    pub api: &'a ManagementApi,
    pub config: &'a SubmitConfig,
    /// Names this invocation in claims and leases (the Lambda request id).
    pub invocation: String,
    pub deadline: Instant,
}

enum Step {
    Continue,
    /// Stop starting jobs in this invocation (slots full, Auth0 busy or out of time).
    Stop(String),
    /// This run cannot go on (Auth0 refused it); carry on with other runs.
    RunRefused,
}

impl<S: ObjectStore> Submitter<'_, S> {
    /// Activates runs named by the event, then fills free slots from active runs, oldest first.
    pub async fn run(&self, event: &Value) -> Result<SubmitReport, String> {
        for run_id in manifests_in_event(event) {
            self.activate(&run_id).await?;
        }
        let mut report = SubmitReport::default();
        // Most triggers find every slot busy: say so after reading the leases, before reading
        // any run. Holders that died are recovered here too.
        if !self.ledger.any_slot_free(self.config.slots).await? {
            report.slots_recovered += self
                .ledger
                .recover_slots(self.config.slots, unix_now_ms())
                .await?;
            if report.slots_recovered == 0 {
                report.stopped = "all job slots are busy".into();
                return Ok(report);
            }
        }
        let mut active = self.ledger.list(layout::ACTIVE_RUNS_PREFIX).await?;
        active.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        for (key, _) in active {
            let Some(run_id) = layout::run_id_of_active_key(&key) else {
                continue;
            };
            match self.fill_from_run(run_id, &mut report).await? {
                Step::Stop(why) => {
                    report.stopped = why;
                    return Ok(report);
                }
                Step::RunRefused | Step::Continue => {}
            }
        }
        report.stopped = "no pending chunks".into();
        Ok(report)
    }

    /// A run whose manifest committed with chunks becomes active (idempotent).
    async fn activate(&self, run_id: &str) -> Result<(), String> {
        let key = format!("{}{}", layout::run_prefix(run_id), layout::MANIFEST);
        let Some(manifest) = self.ledger.get::<RunManifest>(&key).await? else {
            return Ok(());
        };
        let m = manifest.value;
        if m.status != RunStatus::Split || m.chunks.is_empty() || m.options.is_none() {
            return Ok(());
        }
        // A late duplicate of the manifest event must not reopen a run poll has closed.
        let report = format!("{}{}", layout::run_prefix(run_id), layout::REPORT_JSON);
        if self.ledger.get_bytes(&report).await?.is_some() {
            return Ok(());
        }
        let marker = serde_json::json!({"run_id": run_id, "activated_at_ms": unix_now_ms()});
        if self
            .ledger
            .create(&layout::active_run_key(run_id), &marker)
            .await?
        {
            tracing::info!(
                run_id,
                chunks = m.chunks.len(),
                users = m.users_accepted,
                "run activated for submission"
            );
        }
        Ok(())
    }

    async fn fill_from_run(&self, run_id: &str, report: &mut SubmitReport) -> Result<Step, String> {
        let prefix = layout::run_prefix(run_id);
        if self
            .ledger
            .get_bytes(&format!("{prefix}{}", layout::SUBMIT_FAILED))
            .await?
            .is_some()
        {
            return Ok(Step::Continue);
        }
        let Some(manifest) = self
            .ledger
            .get::<RunManifest>(&format!("{prefix}{}", layout::MANIFEST))
            .await?
        else {
            return Ok(Step::Continue);
        };
        let manifest = manifest.value;
        let Some(options) = manifest.options.clone() else {
            return Ok(Step::Continue);
        };
        let jobs_prefix = format!("{prefix}{}", layout::JOBS_DIR);
        let claimed: BTreeSet<u32> = self
            .ledger
            .list(&jobs_prefix)
            .await?
            .iter()
            .filter_map(|(k, _)| layout::seq_of_job_key(k.strip_prefix(&prefix)?))
            .collect();
        for chunk in manifest.chunks.iter().filter(|c| !claimed.contains(&c.seq)) {
            if Instant::now() + SAFETY_MARGIN > self.deadline {
                return Ok(Step::Stop("out of time for this invocation".into()));
            }
            let step = self
                .submit_chunk(run_id, chunk.seq, &chunk.key, chunk.users, &options, report)
                .await?;
            if !matches!(step, Step::Continue) {
                return Ok(step);
            }
        }
        Ok(Step::Continue)
    }

    async fn take_slot(
        &self,
        run_id: &str,
        seq: u32,
        report: &mut SubmitReport,
    ) -> Result<Option<u32>, String> {
        let slots = self.config.slots;
        if let Some(k) = self
            .ledger
            .acquire_slot(slots, run_id, seq, &self.invocation, unix_now_ms())
            .await?
        {
            return Ok(Some(k));
        }
        let freed = self.ledger.recover_slots(slots, unix_now_ms()).await?;
        report.slots_recovered += freed;
        if freed == 0 {
            return Ok(None);
        }
        self.ledger
            .acquire_slot(slots, run_id, seq, &self.invocation, unix_now_ms())
            .await
    }

    async fn submit_chunk(
        &self,
        run_id: &str,
        seq: u32,
        chunk_key: &str,
        users: u32,
        options: &import_core::options::DropOptions,
        report: &mut SubmitReport,
    ) -> Result<Step, String> {
        let Some(slot) = self.take_slot(run_id, seq, report).await? else {
            return Ok(Step::Stop("all job slots are busy".into()));
        };
        let prefix = layout::run_prefix(run_id);
        let job_key = format!("{prefix}{}", layout::job_key(seq));
        let external_id = layout::external_id(run_id, seq);
        let claim = JobRecord::claim(
            seq,
            chunk_key.to_string(),
            users,
            external_id.clone(),
            slot,
            unix_now_ms(),
            self.invocation.clone(),
        );
        if !self.ledger.create(&job_key, &claim).await? {
            // Another invocation claimed this chunk first: it posts it, not us.
            self.ledger
                .release_slot(slot, run_id, seq, unix_now_ms())
                .await?;
            return Ok(Step::Continue);
        }
        let Some(claimed) = self.ledger.get::<JobRecord>(&job_key).await? else {
            return Err(format!(
                "the claim {job_key} vanished right after it was written"
            ));
        };
        let Some((users_json, _)) = self
            .ledger
            .get_bytes(&format!("{prefix}{chunk_key}"))
            .await?
        else {
            let refused = claimed
                .value
                .refused(
                    0,
                    format!("chunk {chunk_key} is missing from the run folder"),
                )
                .map_err(|e| e.to_string())?;
            self.ledger
                .replace(&job_key, &refused, &claimed.etag)
                .await?;
            self.ledger
                .release_slot(slot, run_id, seq, unix_now_ms())
                .await?;
            return Ok(Step::Continue);
        };
        let fields = ImportFields {
            connection_id: &options.connection_id,
            upsert: options.upsert,
            send_completion_email: options.send_completion_email,
            external_id: &external_id,
        };
        let outcome = self
            .api
            .post_import(&fields, &users_json, self.deadline - SAFETY_MARGIN / 2)
            .await
            .map_err(|e| format!("run {run_id} chunk {seq}: {e}"))?;
        let now = unix_now_ms();
        let transition = |r: Result<JobRecord, _>| {
            r.map_err(|e: import_core::ledger::BadTransition| e.to_string())
        };
        match outcome {
            ImportOutcome::Created { job_id } => {
                let next = transition(claimed.value.submitted(job_id.clone(), now))?;
                if !self.ledger.replace(&job_key, &next, &claimed.etag).await? {
                    tracing::error!(
                        run_id,
                        seq,
                        job_id,
                        "the claim changed under us after posting; the job id is only in this log"
                    );
                }
                tracing::info!(run_id, seq, job_id, users, slot, "import job started");
                report.submitted.push(format!("{run_id}:{seq}={job_id}"));
                Ok(Step::Continue)
            }
            ImportOutcome::SlotsBusy | ImportOutcome::NotNow { .. } => {
                let why = match outcome {
                    ImportOutcome::NotNow { reason } => reason,
                    _ => "Auth0 reports its import job slots full".to_string(),
                };
                // Nothing was created: the chunk goes back to pending, the slot back to the pool.
                self.ledger.delete(&job_key).await?;
                self.ledger.release_slot(slot, run_id, seq, now).await?;
                tracing::info!(run_id, seq, why, "chunk left pending");
                Ok(Step::Stop(why))
            }
            ImportOutcome::Refused { status, message } => {
                let next = transition(claimed.value.refused(status, message.clone()))?;
                self.ledger.replace(&job_key, &next, &claimed.etag).await?;
                self.ledger.release_slot(slot, run_id, seq, now).await?;
                let marker = serde_json::json!({"status": status, "message": message, "chunk": seq, "at_ms": now});
                self.ledger
                    .put(&format!("{prefix}{}", layout::SUBMIT_FAILED), &marker)
                    .await?;
                tracing::error!(
                    run_id,
                    seq,
                    status,
                    message,
                    "Auth0 refused the run; no more of its chunks will be posted"
                );
                report
                    .refused_runs
                    .push(format!("{run_id}: {status} {message}"));
                Ok(Step::RunRefused)
            }
            ImportOutcome::Unknown { reason } => {
                let next = transition(claimed.value.unknown(reason.clone()))?;
                self.ledger.replace(&job_key, &next, &claimed.etag).await?;
                self.ledger.release_slot(slot, run_id, seq, now).await?;
                tracing::error!(
                    run_id,
                    seq,
                    reason,
                    "submission outcome unknown; the chunk is not posted again"
                );
                report.unknown.push(format!("{run_id}:{seq}"));
                Ok(Step::Continue)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_name_runs() {
        let event = serde_json::json!({"Records": [
            {"s3": {"object": {"key": "runs/r-1/manifest.json"}}},
            {"s3": {"object": {"key": "runs/r-2/reports/000001.json"}}},
            {"s3": {"object": {"key": "inbox/x.json"}}}
        ]});
        assert_eq!(
            manifests_in_event(&event).into_iter().collect::<Vec<_>>(),
            vec!["r-1"]
        );
        let schedule =
            serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"});
        assert!(manifests_in_event(&schedule).is_empty());
    }
}
