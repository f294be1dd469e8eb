//! The `submit` stage: whatever woke it (a manifest, a finished job's report, the schedule),
//! it starts Auth0 import jobs for pending chunks while the tenant has free slots.
//!
//! At most once per chunk: a chunk is claimed (`jobs/<seq>.json`, create-if-absent) and marked
//! `posting` before its request leaves; only an answer that proves no job was created gives the
//! chunk back. At most N jobs in flight: each needs a slot lease (`slots/<k>.json`, CAS).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use auth0_api::{unix_now_ms, ApiError, ManagementApi};
use import_core::layout::{self, RunPath};
use import_core::ledger::Versioned;
use import_core::ledger::{BadTransition, Holder, JobRecord, Ledger, ObjectStore, StoreError};
use import_core::manifest::{RunManifest, RunStatus};
use import_core::multipart::ImportFields;
use import_core::options::DropOptions;
use serde::Serialize;
use serde_json::Value;

/// Time kept back from the invocation's deadline: a post plus its ledger writes fit in it.
const SAFETY_MARGIN: Duration = Duration::from_secs(20);
/// Tries to record a job id Auth0 gave us: losing it would leave the chunk in doubt.
const RECORD_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
pub struct SubmitConfig {
    pub bucket: String,
    /// Import jobs this pipeline may have in flight for the tenant (Auth0 allows 2, facts §1.6).
    pub slots: u32,
    pub secret_id: String,
}

/// Why submit runs: runs whose manifest just appeared (they are activated first), or the
/// schedule and finished jobs, which only ask it to fill free slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitTrigger {
    Manifests(BTreeSet<String>),
    Refill,
}

impl SubmitTrigger {
    /// The trigger an S3 event or a schedule event amounts to. Only `runs/<id>/manifest.json`
    /// keys activate a run; other keys (chunk reports) and the schedule only wake submit.
    pub fn of_event(event: &Value) -> Self {
        let mut runs = BTreeSet::new();
        if let Some(records) = event.get("Records").and_then(Value::as_array) {
            for r in records {
                let key = r
                    .pointer("/s3/object/key")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                // Our own keys are plain ASCII (run ids are slugs), so no URL decoding is needed.
                if let Some(run) = RunPath::of_key(key) {
                    if key == run.manifest() {
                        runs.insert(run.id().to_string());
                    }
                }
            }
        }
        if runs.is_empty() {
            SubmitTrigger::Refill
        } else {
            SubmitTrigger::Manifests(runs)
        }
    }
}

/// What one invocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubmitReport {
    pub submitted: Vec<String>,
    pub refused_runs: Vec<String>,
    pub in_doubt: Vec<String>,
    /// Claims given back because nothing was sent (the chunk is pending again).
    pub released: Vec<String>,
    pub slots_recovered: u32,
    /// Why the invocation stopped starting jobs.
    pub stopped: String,
}

/// Why a submit invocation failed. Anything else (Auth0 busy, out of time) ends it cleanly.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the ledger: {0}")]
    Store(#[from] StoreError),
    /// Auth0 refused our credentials: every chunk would fail the same way until the secret
    /// is fixed.
    #[error("run {run_id} chunk {seq}: {error}")]
    Credentials {
        run_id: String,
        seq: u32,
        error: ApiError,
    },
    #[error(transparent)]
    Transition(#[from] BadTransition),
}

impl SubmitError {
    /// Whether the secret's credentials are at fault (the function forgets its cached client).
    pub fn is_credentials(&self) -> bool {
        matches!(self, SubmitError::Credentials { .. })
    }
}

/// Makes each named run active (`Ledger::activate_run`). Needs no token, so a run is listed
/// even while the Auth0 secret is unusable, and the schedule picks it up once it is fixed.
/// Split lists its runs itself; this covers a run whose split predates that, and costs one
/// read when the run is listed already.
pub async fn activate_runs<S: ObjectStore>(
    ledger: &Ledger<S>,
    trigger: &SubmitTrigger,
) -> Result<(), StoreError> {
    if let SubmitTrigger::Manifests(runs) = trigger {
        for run_id in runs {
            if ledger
                .activate_run(&RunPath::new(run_id), unix_now_ms())
                .await?
            {
                tracing::info!(run_id, "run activated");
            }
        }
    }
    Ok(())
}

pub struct Submitter<'a, S> {
    pub ledger: &'a Ledger<S>,
    pub api: &'a ManagementApi,
    pub config: &'a SubmitConfig,
    /// Names this invocation in claims and leases (the Lambda request id), with its deadline.
    pub holder: Holder,
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
    /// Fills free slots from active runs, oldest first.
    pub async fn run(&self) -> Result<SubmitReport, SubmitError> {
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
            match self
                .fill_from_run(&RunPath::new(run_id), &mut report)
                .await?
            {
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

    async fn fill_from_run(
        &self,
        run: &RunPath,
        report: &mut SubmitReport,
    ) -> Result<Step, SubmitError> {
        if self.ledger.exists(&run.submit_failed()).await? {
            return Ok(Step::Continue);
        }
        let Some(manifest) = self.ledger.get::<RunManifest>(&run.manifest()).await? else {
            return Ok(Step::Continue);
        };
        let manifest = manifest.value;
        if manifest.status != RunStatus::Split {
            return Ok(Step::Continue);
        }
        let Some(options) = manifest.options.clone() else {
            return Ok(Step::Continue);
        };
        let listed = self.ledger.list(&run.jobs()).await?;
        let claimed: BTreeSet<u32> = run
            .seqs(listed.iter().map(|(k, _)| k), layout::seq_of_job_key)
            .collect();
        for chunk in manifest.chunks.iter().filter(|c| !claimed.contains(&c.seq)) {
            if Instant::now() + SAFETY_MARGIN > self.deadline {
                return Ok(Step::Stop("out of time for this invocation".into()));
            }
            let step = self
                .submit_chunk(run, chunk.seq, &chunk.key, chunk.users, &options, report)
                .await?;
            if !matches!(step, Step::Continue) {
                return Ok(step);
            }
        }
        Ok(Step::Continue)
    }

    async fn take_slot(
        &self,
        run: &RunPath,
        seq: u32,
        report: &mut SubmitReport,
    ) -> Result<Option<u32>, StoreError> {
        let slots = self.config.slots;
        if let Some(k) = self
            .ledger
            .acquire_slot(slots, run.id(), seq, &self.holder, unix_now_ms())
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
            .acquire_slot(slots, run.id(), seq, &self.holder, unix_now_ms())
            .await
    }

    async fn submit_chunk(
        &self,
        run: &RunPath,
        seq: u32,
        chunk_key: &str,
        users: u32,
        options: &DropOptions,
        report: &mut SubmitReport,
    ) -> Result<Step, SubmitError> {
        let Some(slot) = self.take_slot(run, seq, report).await? else {
            return Ok(Step::Stop("all job slots are busy".into()));
        };
        let job_key = run.job(seq);
        let external_id = layout::external_id(run.id(), seq);
        let claim = JobRecord::claim(
            seq,
            chunk_key.to_string(),
            users,
            external_id.clone(),
            slot,
            unix_now_ms(),
            &self.holder,
        );
        let etag = match self.ledger.create_versioned(&job_key, &claim).await {
            Ok(Some(etag)) => etag,
            Ok(None) => {
                // Another invocation claimed this chunk first: it posts it, not us.
                self.ledger
                    .release_slot(slot, run.id(), seq, unix_now_ms())
                    .await?;
                return Ok(Step::Continue);
            }
            Err(e) => {
                // Whether the claim was written is unknown: give it back either way.
                let _ = self.ledger.release_claim(run, &claim, unix_now_ms()).await;
                return Err(e.into());
            }
        };
        let claim = Versioned { value: claim, etag };
        match self.prepare(run, claim, chunk_key).await {
            Ok(Prepared::Ready { claim, users_json }) => {
                let fields = ImportFields {
                    connection_id: &options.connection_id,
                    upsert: options.upsert,
                    send_completion_email: options.send_completion_email,
                    external_id: &external_id,
                };
                self.post(run, claim, &fields, &users_json, report).await
            }
            Ok(Prepared::ChunkMissing(claim)) => {
                let refused = claim.value.refused(
                    0,
                    None,
                    format!("not sent: chunk {chunk_key} is missing from the run folder"),
                )?;
                self.ledger.replace(&job_key, &refused, &claim.etag).await?;
                self.ledger
                    .release_slot(slot, run.id(), seq, unix_now_ms())
                    .await?;
                Ok(Step::Continue)
            }
            Ok(Prepared::Taken) => Ok(Step::Continue),
            Err((claim, failure)) => {
                // Nothing has left: give the chunk and the slot back, so this failure can never
                // turn into an "in doubt" outcome.
                self.ledger
                    .release_claim(run, &claim, unix_now_ms())
                    .await?;
                report.released.push(format!("{}:{seq}", run.id()));
                match failure {
                    Failure::Store(e) => Err(e.into()),
                    Failure::Transition(e) => Err(e.into()),
                    Failure::Api(e) => self.not_sent(run, seq, e),
                }
            }
        }
    }

    /// Everything a post needs that can fail before it leaves: the chunk, a token, and the
    /// `posting` mark. On failure the claim comes back for release.
    async fn prepare(
        &self,
        run: &RunPath,
        claim: Versioned<JobRecord>,
        chunk_key: &str,
    ) -> Result<Prepared, (JobRecord, Failure)> {
        let job_key = run.job(claim.value.seq);
        let users_json = match self.ledger.get_bytes(&run.object(chunk_key)).await {
            Ok(Some((bytes, _))) => bytes,
            Ok(None) => return Ok(Prepared::ChunkMissing(claim)),
            Err(e) => return Err((claim.value, Failure::Store(e))),
        };
        // The token is minted now, before the chunk is marked as leaving.
        if let Err(e) = self.api.token(false, self.post_deadline()).await {
            return Err((claim.value, Failure::Api(e)));
        }
        let posting = match claim.value.posting(unix_now_ms()) {
            Ok(posting) => posting,
            Err(e) => return Err((claim.value, Failure::Transition(e))),
        };
        match self
            .ledger
            .replace_versioned(&job_key, &posting, &claim.etag)
            .await
        {
            Ok(Some(etag)) => Ok(Prepared::Ready {
                claim: Versioned {
                    value: posting,
                    etag,
                },
                users_json,
            }),
            // Someone changed the claim: slot recovery thought us dead, and owns it now.
            Ok(None) => Ok(Prepared::Taken),
            Err(e) => Err((claim.value, Failure::Store(e))),
        }
    }

    fn post_deadline(&self) -> Instant {
        self.deadline - SAFETY_MARGIN / 2
    }

    /// Sends the chunk and records what Auth0's answer proves.
    async fn post(
        &self,
        run: &RunPath,
        claim: Versioned<JobRecord>,
        fields: &ImportFields<'_>,
        users_json: &[u8],
        report: &mut SubmitReport,
    ) -> Result<Step, SubmitError> {
        let record = &claim.value;
        let (seq, slot, users) = (record.seq, record.slot, record.users);
        let job_key = run.job(seq);
        let outcome = self
            .api
            .post_import(fields, users_json, self.post_deadline())
            .await;
        let now = unix_now_ms();
        let run_id = run.id();
        match outcome {
            Ok(job_id) => {
                let next = record.submitted(job_id.clone(), now)?;
                self.record_job_id(&job_key, &next, &claim.etag, &job_id)
                    .await?;
                tracing::info!(run_id, seq, job_id, users, slot, "import job started");
                report.submitted.push(format!("{run_id}:{seq}={job_id}"));
                Ok(Step::Continue)
            }
            Err(ApiError::InDoubt { reason }) => {
                let next = record.in_doubt(reason.clone())?;
                self.ledger.replace(&job_key, &next, &claim.etag).await?;
                self.ledger.release_slot(slot, run_id, seq, now).await?;
                tracing::error!(
                    run_id,
                    seq,
                    reason,
                    "chunk in doubt: Auth0 may have created a job; it is never posted again automatically"
                );
                report.in_doubt.push(format!("{run_id}:{seq}"));
                Ok(Step::Continue)
            }
            Err(ApiError::Refused {
                status,
                code,
                message,
            }) => {
                let next = record.refused(status, code.clone(), message.clone())?;
                self.ledger.replace(&job_key, &next, &claim.etag).await?;
                self.ledger.release_slot(slot, run_id, seq, now).await?;
                let marker = serde_json::json!({"status": status, "code": code, "message": message, "chunk": seq, "at_ms": now});
                self.ledger.put(&run.submit_failed(), &marker).await?;
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
            // Every other answer proves that no job was created: the chunk is pending again.
            Err(e) => {
                self.ledger.release_claim(run, record, now).await?;
                report.released.push(format!("{run_id}:{seq}"));
                self.not_sent(run, seq, e)
            }
        }
    }

    /// After a claim was given back because nothing was sent: stop this invocation (Auth0 is
    /// busy, rate limited or unreachable), or fail it when the credentials are at fault.
    fn not_sent(&self, run: &RunPath, seq: u32, error: ApiError) -> Result<Step, SubmitError> {
        match error {
            ApiError::Credentials { .. } | ApiError::Unauthorized { .. } => {
                Err(SubmitError::Credentials {
                    run_id: run.id().to_string(),
                    seq,
                    error,
                })
            }
            other => {
                let why = other.to_string();
                tracing::info!(run_id = run.id(), seq, why, "chunk left pending");
                Ok(Step::Stop(why))
            }
        }
    }

    /// Writes the job id Auth0 gave us, retrying a failed write: once lost, the chunk could
    /// only be recovered as in doubt.
    async fn record_job_id(
        &self,
        job_key: &str,
        next: &JobRecord,
        etag: &str,
        job_id: &str,
    ) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.ledger.replace(job_key, next, etag).await {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    tracing::error!(
                        job_key,
                        job_id,
                        "the claim changed under us after posting; the job id is only in this log"
                    );
                    return Ok(());
                }
                Err(e) if attempt < RECORD_ATTEMPTS => {
                    tracing::warn!(job_key, job_id, error = %e, "recording the job id failed, retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(e) => {
                    tracing::error!(job_key, job_id, error = %e, "the job id could not be recorded; the chunk will be in doubt");
                    return Err(e);
                }
            }
        }
    }
}

/// Where a claimed chunk stands once everything before its post is done.
enum Prepared {
    Ready {
        claim: Versioned<JobRecord>,
        users_json: Vec<u8>,
    },
    /// The chunk object is not in the run folder: nothing can be sent, ever.
    ChunkMissing(Versioned<JobRecord>),
    /// Someone else changed the claim (recovery took it): leave it to them.
    Taken,
}

/// What stopped a post before it left.
enum Failure {
    Store(StoreError),
    Api(ApiError),
    Transition(BadTransition),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_name_runs() {
        let event = serde_json::json!({"Records": [
            {"s3": {"object": {"key": "runs/r-1/manifest.json"}}},
            {"s3": {"object": {"key": "runs/r-2/reports/000001.report.json"}}},
            {"s3": {"object": {"key": "inbox/x.json"}}}
        ]});
        assert_eq!(
            SubmitTrigger::of_event(&event),
            SubmitTrigger::Manifests(BTreeSet::from(["r-1".to_string()]))
        );
        let schedule =
            serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"});
        assert_eq!(SubmitTrigger::of_event(&schedule), SubmitTrigger::Refill);
        let report_only = serde_json::json!({"Records": [
            {"s3": {"object": {"key": "runs/r-2/reports/000001.report.json"}}}
        ]});
        assert_eq!(SubmitTrigger::of_event(&report_only), SubmitTrigger::Refill);
    }
}
