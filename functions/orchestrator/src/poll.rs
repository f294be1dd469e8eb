//! The `poll` Lambda: follows every submitted job to its end, writes the chunk's report and
//! frees its slot (so submit refills it), keeps `status.json` current, and writes the run's
//! reports when its last chunk is final. Auth0 forgets jobs after 24 h; these reports stay.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth0_api::{unix_now_ms, ApiError, ManagementApi};
use futures_util::{stream, StreamExt, TryStreamExt};
use import_core::jobs::{
    classify_job, next_look_after, parse_errors, ChunkReport, JobEnd, JobProgress, MAX_LOOK_GAP,
};
use import_core::layout::{self, RunPath};
use import_core::ledger::{BadTransition, JobRecord, JobState, StoreError};
use import_core::ledger::{Ledger, Lines, ObjectStore, Versioned};
use import_core::manifest::{RejectEntry, RunManifest};
use import_core::report::{
    codes, render_html, CsvRow, RunProgress, RunReport, Unposted, CSV_HEADER,
};
use import_core::run_end::{RunEndMessage, RunNotifier};
use serde::Serialize;
use serde_json::Value;

/// Kept back from the deadline so the last sweep's writes finish.
const SAFETY_MARGIN: Duration = Duration::from_secs(15);
/// Requests in flight when finalising a run (reading every chunk report, tagging every chunk):
/// ~16× faster than one at a time, well under S3's per-prefix request rates.
const FINALIZE_REQUESTS_IN_FLIGHT: usize = 16;
/// Rows of report.csv repeated in report.html.
const HTML_SAMPLE_ROWS: usize = 50;

use import_core::layout::seq_of_report_key;
pub use import_core::layout::{
    FAILED_USERS, REPORT_CSV, REPORT_HTML, REPORT_JSON, STATUS, UNKNOWN_USERS,
};

/// Why a poll invocation failed. Auth0 not answering is not a failure: the next sweep asks
/// again, and a job nobody can follow is given up (its users unknown) so its slot comes back.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("the ledger: {0}")]
    Store(#[from] StoreError),
    /// The token endpoint refuses the secret's credentials: no job can be followed until the
    /// operator fixes the secret.
    #[error("{0}")]
    Credentials(ApiError),
    #[error(transparent)]
    Transition(#[from] BadTransition),
    #[error("scratch file: {0}")]
    Scratch(#[from] std::io::Error),
    #[error("{key}: {reason}")]
    Chunk { key: String, reason: String },
}

impl PollError {
    /// Whether the secret's credentials are at fault (the function forgets its cached client).
    pub fn is_credentials(&self) -> bool {
        matches!(self, PollError::Credentials(_))
    }
}

#[derive(Debug, Clone)]
pub struct PollConfig {
    pub bucket: String,
    pub secret_id: String,
    /// Pause between sweeps while jobs are active. A job is asked about at most once a sweep,
    /// and less often while Auth0 estimates it has long to go (`looks`).
    pub interval: Duration,
    /// When each processing job is next worth a GET; shared by the sweeps of one process (a
    /// warm Lambda container, the CLI), so a cold start costs one extra look per job at most.
    pub looks: LookSchedule,
    /// Read each final run's users back from the tenant (the reconcile stage) in later sweeps,
    /// `Some(wait)`: a run with a chunk in doubt waits until `wait` has passed since that
    /// chunk was claimed, so a job Auth0 created behind a lost answer has ended (Auth0 ends
    /// every job within 2 h, facts §1.8: `jobs::JOB_DEAD_AFTER_MS` in Lambda) and its users are
    /// not counted missing while it still runs. `None`: off (the CLI's `migrate` reconciles by
    /// itself).
    pub reconcile: Option<Duration>,
}

/// Time one sweep gives the reconcile stage: an export job that is not done by then is
/// followed again at the next sweep (its id is kept in the run folder), so polling of other
/// runs' jobs waits at most this long.
const RECONCILE_SLICE: Duration = Duration::from_secs(20);
/// The reconcile stage holds `reconcile::BYTES_PER_USER` (64) per accepted user: runs above
/// 4 M users (256 MB, half the poll function's 512 MB) are left to the CLI's `reconcile`.
const RECONCILE_MAX_INDEX_BYTES: u64 = 256 << 20;
/// Kept back from the invocation's deadline when the reconcile stage starts its slice.
const RECONCILE_MARGIN: Duration = Duration::from_secs(2);
/// Between reads of a running export job.
const EXPORT_POLL: Duration = Duration::from_secs(2);

/// When each active job is next worth a `GET /jobs/{id}` (`jobs::next_look_after`). Kept in
/// memory only: losing it costs a look, never a report.
#[derive(Debug, Clone, Default)]
pub struct LookSchedule(Arc<Mutex<HashMap<String, Instant>>>);

impl LookSchedule {
    /// Whether `job_id` may be asked about now (a job never seen is).
    fn due(&self, job_id: &str, now: Instant) -> bool {
        self.lock().get(job_id).is_none_or(|at| *at <= now)
    }

    fn look_again_at(&self, job_id: &str, at: Instant) {
        let mut looks = self.lock();
        // Jobs that ended are forgotten in `forget`; entries a crashed sweep left behind are
        // long past due and go here, so the map stays as small as the set of active jobs.
        let now = Instant::now();
        looks.retain(|_, due| *due + MAX_LOOK_GAP * 2 > now);
        looks.insert(job_id.to_string(), at);
    }

    fn forget(&self, job_id: &str) {
        self.lock().remove(job_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panic while holding it cannot leave the map inconsistent (single inserts/removes).
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What one invocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollReport {
    pub sweeps: u32,
    pub chunks_reported: Vec<String>,
    pub runs_finalized: Vec<String>,
    pub runs_reconciled: Vec<String>,
    pub active_jobs_left: usize,
}

pub struct Poller<'a, S, N> {
    pub ledger: &'a Ledger<S>,
    pub api: &'a ManagementApi,
    pub config: &'a PollConfig,
    /// Told once per run that ends (SNS in Lambda; `NoNotifier` for the CLI).
    pub notifier: &'a N,
    pub deadline: Instant,
}

impl<S: ObjectStore, N: RunNotifier> Poller<'_, S, N> {
    /// Sweeps every active run, again and again while jobs are in flight, until the deadline.
    pub async fn run(&self) -> Result<PollReport, PollError> {
        let mut report = PollReport::default();
        loop {
            report.sweeps += 1;
            let active = self.sweep(&mut report).await?;
            report.active_jobs_left = active;
            if active == 0 || Instant::now() + self.config.interval + SAFETY_MARGIN > self.deadline
            {
                return Ok(report);
            }
            tokio::time::sleep(self.config.interval).await;
        }
    }

    /// One pass over the active runs; returns how many jobs are still in flight.
    pub async fn sweep(&self, report: &mut PollReport) -> Result<usize, PollError> {
        let mut active = 0;
        let mut ended = Vec::new();
        for (key, _) in self.ledger.list(layout::ACTIVE_RUNS_PREFIX).await? {
            let Some(run_id) = layout::run_id_of_active_key(&key) else {
                continue;
            };
            let run = RunPath::new(run_id);
            let (in_flight, manifest) = self.poll_run(&run, report).await?;
            active += in_flight;
            if let Some(manifest) = manifest {
                ended.push((run, manifest));
            }
        }
        // Runs whose last chunk is reported are finalised after every run's jobs were looked
        // at (and their slots freed): a long finalisation never holds up another run's refill.
        for (run, manifest) in ended {
            self.finalize(&run, &manifest).await?;
            report.runs_finalized.push(run.id().to_string());
        }
        if let Some(wait) = self.config.reconcile {
            self.reconcile_final_runs(wait, report).await?;
        }
        Ok(active)
    }

    /// Reads final runs' users back from the tenant, one run at a time, each within a slice of
    /// this invocation. A run stays listed until its reconciliation is written: an export job
    /// still running, Auth0 unavailable or the deadline near, and the next sweep goes on.
    async fn reconcile_final_runs(
        &self,
        in_doubt_wait: Duration,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        for (key, _) in self.ledger.list(layout::RECONCILE_RUNS_PREFIX).await? {
            let Some(run_id) = layout::run_id_of_reconcile_key(&key) else {
                continue;
            };
            let run = RunPath::new(run_id);
            if self.in_doubt_since(&run).await?.is_some_and(|claimed_ms| {
                unix_now_ms() < claimed_ms.saturating_add(duration_ms(in_doubt_wait))
            }) {
                continue;
            }
            // The stage's requests are bounded by this; what follows it is one delete.
            let Some(deadline) = self
                .deadline
                .checked_sub(RECONCILE_MARGIN)
                .map(|end| end.min(Instant::now() + RECONCILE_SLICE))
                .filter(|end| *end > Instant::now())
            else {
                return Ok(());
            };
            let stage = crate::reconcile::Stage {
                ledger: self.ledger,
                api: self.api,
                deadline,
                poll_every: EXPORT_POLL,
                in_doubt_wait,
            };
            // Read back and report only: a chunk whose users are missing is named safe to submit
            // again, and the operator's `reconcile` command sends it (and follows its job, which
            // outlasts this slice).
            match stage.reconcile(&run, false).await {
                Ok(result) => {
                    tracing::info!(
                        run_id,
                        present = result.report.present,
                        missing = result.report.missing,
                        different = result.report.present_with_differences,
                        "run reconciled"
                    );
                    self.ledger.delete(&key).await?;
                    report.runs_reconciled.push(run_id.to_string());
                }
                Err(crate::reconcile::StageError::Store(e)) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(run_id, error = %e, "reconciliation not finished; the next sweep goes on");
                }
            }
        }
        Ok(())
    }

    /// When the latest chunk of the run now in doubt was claimed, if any is.
    async fn in_doubt_since(&self, run: &RunPath) -> Result<Option<u64>, PollError> {
        let mut latest = None;
        for (key, _) in self.ledger.list(&run.jobs()).await? {
            if let Some(job) = self.ledger.get::<JobRecord>(&key).await? {
                if matches!(job.value.state, JobState::InDoubt { .. }) {
                    latest = latest.max(Some(job.value.claimed_at_ms));
                }
            }
        }
        Ok(latest)
    }

    /// Follows a run's jobs and writes their chunk reports: (jobs still in flight, the manifest
    /// when every chunk is reported and the run is to be finalised).
    async fn poll_run(
        &self,
        run: &RunPath,
        report: &mut PollReport,
    ) -> Result<(usize, Option<RunManifest>), PollError> {
        let Some(manifest) = self.ledger.get::<RunManifest>(&run.manifest()).await? else {
            return Ok((0, None));
        };
        let manifest = manifest.value;
        let listed_reports = self.ledger.list(&run.reports()).await?;
        let reported: BTreeSet<u32> = run
            .seqs(listed_reports.iter().map(|(k, _)| k), seq_of_report_key)
            .collect();
        let listed_jobs = self.ledger.list(&run.jobs()).await?;
        let claimed: BTreeSet<u32> = run
            .seqs(listed_jobs.iter().map(|(k, _)| k), layout::seq_of_job_key)
            .collect();
        let mut in_flight = 0;
        let mut new_reports = Vec::new();
        for &seq in claimed.difference(&reported) {
            let Some(job) = self.ledger.get::<JobRecord>(&run.job(seq)).await? else {
                continue;
            };
            match self.follow(run, job).await? {
                Some(chunk_report) => new_reports.push(chunk_report),
                None => in_flight += 1,
            }
        }
        // Auth0 refused the run: its never-posted chunks end here, once nothing is in flight.
        let refused = self.ledger.get_bytes(&run.submit_failed()).await?;
        if let (Some((bytes, _)), 0) = (refused, in_flight) {
            let message = refusal_message(&bytes);
            for chunk in manifest.chunks.iter().filter(|c| !claimed.contains(&c.seq)) {
                new_reports.push(ChunkReport::unposted(
                    chunk.seq,
                    layout::external_id(run.id(), chunk.seq),
                    u64::from(chunk.users),
                    Unposted::NotSubmitted,
                    format!("not posted: Auth0 refused an earlier chunk of this run ({message})"),
                    unix_now_ms(),
                ));
            }
        }
        for r in &new_reports {
            self.ledger.put(&run.report(r.seq), r).await?;
            tracing::info!(
                run_id = run.id(),
                seq = r.seq,
                job_id = r.job_id,
                status = r.end.status,
                inserted = r.inserted,
                updated = r.updated,
                failed = r.failed,
                unknown = r.unknown,
                "chunk report written"
            );
            report
                .chunks_reported
                .push(format!("{}:{}", run.id(), r.seq));
        }
        let done = reported.len() + new_reports.len();
        let is_final = done >= manifest.chunks.len();
        self.update_status(
            run,
            &manifest,
            &new_reports,
            claimed.len(),
            in_flight,
            done,
            is_final,
        )
        .await?;
        Ok((in_flight, is_final.then_some(manifest)))
    }

    /// Follows one claimed chunk. `Some(report)` once it is final; `None` while in flight.
    async fn follow(
        &self,
        run: &RunPath,
        job: Versioned<JobRecord>,
    ) -> Result<Option<ChunkReport>, PollError> {
        let record = &job.value;
        let now = unix_now_ms();
        let unposted = |kind: Unposted, reason: String| {
            Some(ChunkReport::unposted(
                record.seq,
                record.external_id.clone(),
                u64::from(record.users),
                kind,
                reason,
                now,
            ))
        };
        let (job_id, submitted_at_ms, transition) = match &record.state {
            // Submit is posting it (or died doing so: submit's slot recovery settles that).
            JobState::Claimed | JobState::Posting { .. } => return Ok(None),
            JobState::Refused {
                status, message, ..
            } => {
                let reason = format!("Auth0 refused the request ({status}): {message}");
                return Ok(unposted(Unposted::Refused, reason));
            }
            JobState::InDoubt { reason } => {
                return Ok(unposted(Unposted::InDoubt, reason.clone()));
            }
            JobState::Submitted {
                job_id,
                submitted_at_ms,
            } => (job_id.clone(), *submitted_at_ms, true),
            // Finished but its report was never written (a crash in between): rebuild it.
            JobState::Finished { job_id, .. } => (job_id.clone(), record.claimed_at_ms, false),
        };
        if transition && !self.config.looks.due(&job_id, Instant::now()) {
            // Auth0 expects it to run a while yet: spare the tenant's rate limit.
            return Ok(None);
        }
        let answer = match self.api.get_job(&job_id, self.deadline).await {
            Ok(answer) => answer,
            Err(e) => return self.not_told(run, &job, &job_id, e, transition).await,
        };
        let end = match classify_job(answer.0, &answer.1, submitted_at_ms, now) {
            JobProgress::Active {
                status,
                percentage_done,
                time_left_seconds,
            } => {
                let gap = next_look_after(time_left_seconds, self.config.interval);
                self.config
                    .looks
                    .look_again_at(&job_id, Instant::now() + gap);
                tracing::debug!(
                    run_id = run.id(),
                    seq = record.seq,
                    job_id,
                    status,
                    percentage_done,
                    "job in flight"
                );
                if record.follow_trouble.is_some() {
                    // An answer ends the trouble: the count is of failures in a row.
                    let calm = JobRecord {
                        follow_trouble: None,
                        ..record.clone()
                    };
                    self.ledger
                        .replace(&run.job(record.seq), &calm, &job.etag)
                        .await?;
                }
                return Ok(None);
            }
            JobProgress::Ended(end) => {
                self.config.looks.forget(&job_id);
                end
            }
        };
        let (errors, details) = if matches!(end.status.as_str(), "completed" | "failed") {
            match self.api.get_job_errors(&job_id, self.deadline).await {
                Ok((status, body)) => parse_errors(status, &body),
                Err(e) => return self.not_told(run, &job, &job_id, e, transition).await,
            }
        } else {
            (Vec::new(), None)
        };
        let mut end = end;
        if end.details.is_none() {
            end.details = details;
        }
        let mut chunk_report = ChunkReport::new(
            record.seq,
            job_id,
            record.external_id.clone(),
            u64::from(record.users),
            end.clone(),
            errors,
            submitted_at_ms,
            now,
        );
        chunk_report.slot = Some(record.slot);
        if transition && !self.end_job(run, &job, &end.status).await? {
            return Ok(None);
        }
        Ok(Some(chunk_report))
    }

    /// Moves a submitted job to `Finished` and frees its slot. `false` when another poll got
    /// there first (it writes the report).
    async fn end_job(
        &self,
        run: &RunPath,
        job: &Versioned<JobRecord>,
        status: &str,
    ) -> Result<bool, PollError> {
        let record = &job.value;
        let finished = record.finished(status.to_string())?;
        if !self
            .ledger
            .replace(&run.job(record.seq), &finished, &job.etag)
            .await?
        {
            return Ok(false);
        }
        // The slot is freed before the report is written: the report's S3 event wakes submit,
        // which must find the slot free to refill it at once.
        self.ledger
            .release_slot(record.slot, run.id(), record.seq, unix_now_ms())
            .await?;
        Ok(true)
    }

    /// Auth0 did not tell how a job stands. Counted on the job record; once the job can no
    /// longer be followed (`JobRecord::give_up_following`) it ends with its users unknown and
    /// its slot comes back. A refusal of the credentials themselves fails the invocation.
    async fn not_told(
        &self,
        run: &RunPath,
        job: &Versioned<JobRecord>,
        job_id: &str,
        error: ApiError,
        transition: bool,
    ) -> Result<Option<ChunkReport>, PollError> {
        let record = &job.value;
        if let ApiError::Credentials { .. } = error {
            return Err(PollError::Credentials(error));
        }
        tracing::warn!(
            run_id = run.id(),
            seq = record.seq,
            job_id,
            error = %error,
            "job state not available this sweep"
        );
        if !transition {
            // Finished already (its slot is free); only its report is missing: ask again.
            return Ok(None);
        }
        let now = unix_now_ms();
        let troubled = record.follow_failed(error.is_refusal(), error.to_string(), now)?;
        let Some(reason) = troubled.give_up_following(now) else {
            self.ledger
                .replace(&run.job(record.seq), &troubled, &job.etag)
                .await?;
            return Ok(None);
        };
        let end = JobEnd {
            status: "lost".into(),
            summary: None,
            details: Some(reason.clone()),
        };
        if !self.end_job(run, job, &end.status).await? {
            return Ok(None);
        }
        tracing::error!(
            run_id = run.id(),
            seq = record.seq,
            job_id,
            reason,
            "job given up: its slot is free again and its users are unknown"
        );
        let submitted_at_ms = match record.state {
            JobState::Submitted {
                submitted_at_ms, ..
            } => submitted_at_ms,
            _ => record.claimed_at_ms,
        };
        let mut lost = ChunkReport::new(
            record.seq,
            job_id.to_string(),
            record.external_id.clone(),
            u64::from(record.users),
            end,
            Vec::new(),
            submitted_at_ms,
            now,
        );
        lost.slot = Some(record.slot);
        Ok(Some(lost))
    }

    #[allow(clippy::too_many_arguments)] // the counts are computed by the caller's one pass
    async fn update_status(
        &self,
        run: &RunPath,
        manifest: &RunManifest,
        new_reports: &[ChunkReport],
        claimed: usize,
        in_flight: usize,
        done: usize,
        is_final: bool,
    ) -> Result<(), PollError> {
        let key = run.status();
        let previous = self.ledger.get::<RunProgress>(&key).await?.map(|v| v.value);
        let (mut inserted, mut updated, mut failed) = previous
            .as_ref()
            .map(|p| (p.inserted_so_far, p.updated_so_far, p.failed_so_far))
            .unwrap_or((0, 0, 0));
        for r in new_reports {
            inserted += r.inserted;
            updated += r.updated;
            failed += r.failed;
        }
        let progress = RunProgress {
            run_id: run.id().to_string(),
            chunks_total: manifest.chunks.len(),
            chunks_pending: manifest.chunks.len().saturating_sub(claimed.max(done)),
            chunks_active: in_flight,
            chunks_done: done,
            users_accepted: manifest.users_accepted,
            inserted_so_far: inserted,
            updated_so_far: updated,
            failed_so_far: failed,
            final_report: is_final,
            updated_at_ms: unix_now_ms(),
        };
        // Written only when something but the clock changed: one write per sweep per active
        // run would be wasted requests.
        let unchanged = previous.as_ref().is_some_and(|p| {
            RunProgress {
                updated_at_ms: p.updated_at_ms,
                ..progress.clone()
            } == *p
        });
        if !unchanged || !new_reports.is_empty() {
            self.ledger.put(&key, &progress).await?;
        }
        Ok(())
    }

    /// Writes report.json, report.csv, report.html, failed-users.json and unknown-users.json
    /// from the manifest, the rejects and every chunk report, then takes the run off the active
    /// list. Idempotent.
    async fn finalize(&self, run: &RunPath, manifest: &RunManifest) -> Result<(), PollError> {
        // One request per chunk: run them a few at a time, or a run of thousands of chunks
        // would not finish within one invocation.
        // Kept without their per-user errors: the totals need only the counts, and a run with a
        // million users failed at Auth0 would otherwise hold every error list at once. The
        // lists are read again below, a chunk at a time, where the CSV rows are written.
        let report_keys: Vec<String> = manifest.chunks.iter().map(|c| run.report(c.seq)).collect();
        let reports: Vec<ChunkReport> = stream::iter(&report_keys)
            .map(|key| async move {
                let report = self.ledger.get::<ChunkReport>(key).await?;
                Ok::<_, StoreError>(report.map(|r| without_errors(r.value)))
            })
            .buffered(FINALIZE_REQUESTS_IN_FLIGHT)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        let mut run_report = RunReport::build(manifest, &reports);
        if let Some((bytes, _)) = self.ledger.get_bytes(&run.submit_failed()).await? {
            if run_report.submitted == 0 {
                run_report.refuse(format!(
                    "Auth0 refused the run's first request: {}",
                    refusal_message(&bytes)
                ));
            }
        }

        let mut csv = tempfile::NamedTempFile::new()?;
        let mut sample = Vec::new();
        let mut emit = |row: CsvRow, csv: &mut tempfile::NamedTempFile| -> Result<(), PollError> {
            if sample.len() < HTML_SAMPLE_ROWS {
                sample.push(row.clone());
            }
            csv.write_all(row.to_line().as_bytes())?;
            Ok(())
        };
        csv.write_all(CSV_HEADER.as_bytes())?;

        // Split's rejects: one row each, and their indexes to place chunk records in the input.
        // The file grows with the input (a redacted record per reject, and split writes it in
        // parts, so it can outgrow this function's /tmp), so it is read as it arrives, a line
        // at a time; only the indexes are kept (8 bytes each).
        let mut rejected: Vec<u64> = Vec::new();
        if let Some(rejects_key) = &manifest.rejects_key {
            let mut on_line = |line: &[u8]| -> Result<(), PollError> {
                let Some(row) = reject_row(line) else {
                    return Ok(());
                };
                if let Some(index) = row.index {
                    rejected.push(index);
                }
                emit(row, &mut csv)
            };
            let mut lines = Lines::default();
            self.ledger
                .get_pieces(&run.object(rejects_key), |piece| {
                    lines.feed(piece, &mut on_line)
                })
                .await?;
            lines.finish(&mut on_line)?;
        }

        // In-drop duplicates are found late, so the file is not in index order throughout.
        rejected.sort_unstable();
        rejected.dedup();

        // Users failed at Auth0, and users whose fate is unknown, with their original records
        // for a re-drop: two files, so a re-drop of failures is never mistaken for users that
        // may already be imported.
        let mut failed_users = UsersFile::new()?;
        let mut unknown_users = UsersFile::new()?;
        let by_seq: BTreeMap<u32, &ChunkReport> = reports.iter().map(|r| (r.seq, r)).collect();
        for chunk in &manifest.chunks {
            let Some(r) = by_seq.get(&chunk.seq) else {
                continue;
            };
            if r.failed == 0 && r.unknown == 0 {
                continue;
            }
            // This chunk's report again, whole: its per-user errors name who failed.
            let Some(r) = self
                .ledger
                .get::<ChunkReport>(&run.report(chunk.seq))
                .await?
            else {
                continue;
            };
            let r = &r.value;
            let chunk_key = run.object(&chunk.key);
            let Some((bytes, _)) = self.ledger.get_bytes(&chunk_key).await? else {
                continue;
            };
            let users: Vec<Value> =
                serde_json::from_slice(&bytes).map_err(|e| PollError::Chunk {
                    key: chunk_key.clone(),
                    reason: e.to_string(),
                })?;
            // Chunk position → input index.
            let indexes: Vec<u64> = chunk.input_indexes(&rejected).collect();
            for picked in pick_users(r, &users) {
                let user = &users[picked.position];
                let email = user
                    .get("email")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                emit(
                    CsvRow {
                        stage: "auth0",
                        index: indexes.get(picked.position).copied(),
                        email,
                        code: picked.code,
                        message: picked.message,
                    },
                    &mut csv,
                )?;
                if picked.unknown {
                    unknown_users.push(user)?;
                } else {
                    failed_users.push(user)?;
                }
            }
        }
        if let Some(path) = failed_users.finish()? {
            let key = run.failed_users();
            self.ledger.put_file(&key, &path).await?;
            self.ledger.mark_purgeable(&key).await?;
            run_report.failed_users_key = Some(FAILED_USERS.to_string());
        }
        if let Some(path) = unknown_users.finish()? {
            let key = run.object(UNKNOWN_USERS);
            self.ledger.put_file(&key, &path).await?;
            self.ledger.mark_purgeable(&key).await?;
            run_report.unknown_users_key = Some(UNKNOWN_USERS.to_string());
        }
        // The run is final and everything read from the chunks is written: their password
        // hashes may now age out under the bucket's retention rule.
        let chunk_keys: Vec<String> = manifest.chunks.iter().map(|c| run.object(&c.key)).collect();
        stream::iter(&chunk_keys)
            .map(|key| self.ledger.mark_purgeable(key))
            .buffer_unordered(FINALIZE_REQUESTS_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        csv.flush()?;
        self.ledger.put_file(&run.report_csv(), csv.path()).await?;
        let html = render_html(&run_report, &sample);
        self.ledger
            .put_raw(
                &run.report_html(),
                html.into_bytes(),
                "text/html; charset=utf-8",
            )
            .await?;
        self.ledger.put(&run.report_json(), &run_report).await?;
        // Told after the report exists, so the message's keys name objects that are there. A
        // finalisation retried after this line tells twice (the message carries the run id).
        let message = RunEndMessage::for_final_report(&run_report, Some(&self.config.bucket));
        if let Err(e) = self.notifier.notify(&message).await {
            tracing::warn!(run_id = run.id(), error = %e, "run-end notification not sent");
        }
        self.ledger
            .release_run_slots(run.id(), unix_now_ms())
            .await?;
        // Listed for the reconcile step before it stops being active, so no crash between the
        // two lines loses it. A run refused as a whole, or one that never reached Auth0 (a local
        // rehearsal), has nothing to read back.
        let index_bytes = run_report
            .submitted
            .saturating_mul(import_core::reconcile::BYTES_PER_USER as u64);
        let to_read_back = self.config.reconcile.is_some()
            && run_report.submitted > 0
            && manifest.options.is_some();
        if to_read_back && index_bytes > RECONCILE_MAX_INDEX_BYTES {
            tracing::warn!(
                run_id = run.id(),
                users = run_report.submitted,
                "too many users to read back within this function's memory: run `auth0-s3-import reconcile --bucket … --run …`"
            );
        } else if to_read_back {
            self.ledger
                .put(
                    &layout::reconcile_run_key(run.id()),
                    &serde_json::json!({ "final_at_ms": unix_now_ms() }),
                )
                .await?;
        }
        self.ledger.delete(&run.active_marker()).await?;
        tracing::info!(
            run_id = run.id(),
            users_in = run_report.users_in,
            rejected = run_report.rejected_before_submission,
            inserted = run_report.inserted,
            updated = run_report.updated,
            failed = run_report.failed_at_auth0,
            unknown = run_report.unknown,
            in_doubt = run_report.in_doubt,
            refused_as_a_whole = run_report.refused.is_some(),
            refused = run_report.refused.as_deref(),
            conservation_holds = run_report.conservation_holds,
            "run report written"
        );
        Ok(())
    }
}

/// Auth0's message in a `submit-failed.json` marker.
fn refusal_message(marker: &[u8]) -> String {
    serde_json::from_slice::<Value>(marker)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "Auth0 refused the run".to_string())
}

/// A chunk user the report lists: where it is in the chunk, why, and whether its fate is
/// unknown (else it failed).
struct Picked {
    position: usize,
    code: String,
    message: String,
    unknown: bool,
}

/// The users of a chunk that were not imported, as far as its report can name them: each user
/// of Auth0's error list, or every user of a chunk that ended without one (refused, in doubt,
/// failed as a whole, given up). Users a partial summary leaves unnamed stay counted only.
/// A chunk report without its per-user error list; its counts (failed, unknown, by code) stay.
fn without_errors(mut report: ChunkReport) -> ChunkReport {
    report.errors = Vec::new();
    report
}

fn pick_users(r: &ChunkReport, users: &[Value]) -> Vec<Picked> {
    if !r.errors.is_empty() {
        return r
            .errors
            .iter()
            .filter_map(|e| {
                Some(Picked {
                    position: position_of(users, &e.user)?,
                    code: e.errors.first().map(|v| v.code.clone()).unwrap_or_default(),
                    message: e
                        .errors
                        .iter()
                        .map(|v| v.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                    unknown: false,
                })
            })
            .collect();
    }
    let whole = if r.failed >= r.users {
        Some(false)
    } else if r.unknown >= r.users {
        Some(true)
    } else {
        None
    };
    let Some(unknown) = whole else {
        return Vec::new();
    };
    let code = if r.in_doubt() {
        codes::OUTCOME_IN_DOUBT.to_string()
    } else if unknown {
        codes::OUTCOME_UNKNOWN.to_string()
    } else {
        r.failed_by_code
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| codes::OUTCOME_UNKNOWN.to_string())
    };
    let message = r
        .end
        .details
        .clone()
        .unwrap_or_else(|| format!("job ended {}", r.end.status));
    (0..users.len())
        .map(|position| Picked {
            position,
            code: code.clone(),
            message: message.clone(),
            unknown,
        })
        .collect()
}

/// A JSON array of user records written to a scratch file as they come.
struct UsersFile {
    file: tempfile::NamedTempFile,
    count: u64,
}

impl UsersFile {
    fn new() -> Result<Self, PollError> {
        let mut file = tempfile::NamedTempFile::new()?;
        file.write_all(b"[")?;
        Ok(UsersFile { file, count: 0 })
    }

    fn push(&mut self, user: &Value) -> Result<(), PollError> {
        if self.count > 0 {
            self.file.write_all(b",")?;
        }
        serde_json::to_writer(&mut self.file, user).map_err(std::io::Error::from)?;
        self.count += 1;
        Ok(())
    }

    /// The file's path, when it holds any user.
    fn finish(mut self) -> Result<Option<tempfile::TempPath>, PollError> {
        if self.count == 0 {
            return Ok(None);
        }
        self.file.write_all(b"]")?;
        self.file.flush()?;
        Ok(Some(self.file.into_temp_path()))
    }
}

/// Finds the chunk record Auth0 reported (by email case-insensitively, else user_id, else
/// username): Auth0 echoes the user as submitted, less its secrets.
fn position_of(users: &[Value], reported: &Value) -> Option<usize> {
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_lowercase);
    for key in ["email", "user_id", "username"] {
        if let Some(want) = field(reported, key) {
            if let Some(p) = users
                .iter()
                .position(|u| field(u, key).as_deref() == Some(want.as_str()))
            {
                return Some(p);
            }
        }
    }
    None
}

/// The `report.csv` row of one line of split's rejects, `None` for a line that is not a reject
/// entry. Read through `RejectView`, which skips the record; a line it cannot read takes the
/// full `RejectEntry` parse, so the rows are those `reject_row_fully` gives.
fn reject_row(line: &[u8]) -> Option<CsvRow> {
    match serde_json::from_slice::<RejectView>(line) {
        Ok(view) => Some(split_row(
            view.index,
            view.user.and_then(|u| u.0).as_deref().unwrap_or(""),
            view.reasons.iter().map(|v| (&*v.code, &*v.message)),
        )),
        Err(_) => reject_row_fully(line),
    }
}

/// `reject_row` from the whole entry, the record parsed into a `Value`: four times the work
/// (1.2 GB of rejects of ~1 KB records, one core here: 10.4 s against 2.6 s).
fn reject_row_fully(line: &[u8]) -> Option<CsvRow> {
    let r = serde_json::from_slice::<RejectEntry>(line).ok()?;
    let email = r
        .user
        .as_ref()
        .and_then(|u| u.get("email"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Some(split_row(
        r.index,
        email,
        r.reasons
            .iter()
            .map(|v| (v.code.as_str(), v.message.as_str())),
    ))
}

fn split_row<'a>(
    index: u64,
    email: &str,
    reasons: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> CsvRow {
    CsvRow {
        stage: "split",
        index: Some(index),
        email: email.to_string(),
        code: reasons
            .clone()
            .map(|(code, _)| code)
            .collect::<Vec<_>>()
            .join("|"),
        message: reasons
            .map(|(_, message)| message)
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// What a report row reads of a `RejectEntry` line, borrowing its strings where it can: every
/// field `RejectEntry` requires, and of the record only its email.
#[derive(serde::Deserialize)]
struct RejectView<'a> {
    index: u64,
    #[allow(dead_code)]
    line: u64,
    #[allow(dead_code)]
    byte_offset: u64,
    #[serde(borrow)]
    reasons: Vec<ReasonView<'a>>,
    #[serde(default)]
    user: Option<UserEmail>,
}

#[derive(serde::Deserialize)]
struct ReasonView<'a> {
    #[serde(borrow)]
    code: std::borrow::Cow<'a, str>,
    #[allow(dead_code)]
    #[serde(borrow)]
    path: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
}

/// A record's `email` when the record is an object: the last `email` member, which must be a
/// string (a record of any other shape, or an email of any other type, fails the view, and
/// the line takes the full parse).
struct UserEmail(Option<String>);

impl<'de> serde::Deserialize<'de> for UserEmail {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = UserEmail;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a user object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UserEmail, A::Error> {
                let mut email = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "email" {
                        email = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(UserEmail(email))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use import_core::violation::Violation;
    use proptest::prelude::*;

    /// Records of every shape a reject can carry: objects with and without an `email`, of
    /// any type, with escapes and non-ASCII, and records that are not objects at all.
    fn record() -> impl Strategy<Value = Value> {
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z@.\\\\\"é\u{1F600}\n]{0,12}".prop_map(Value::from),
        ];
        let value = scalar.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::btree_map("(email|name|e\\u0061|x)", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        // Mostly strings at the top level, where a rule could mistake another member for the email.
        let member = prop_oneof![2 => "[a-z@.]{0,8}".prop_map(Value::from), 1 => value.clone()];
        prop_oneof![
            3 => proptest::collection::btree_map("(email|Email|ex|name|app_metadata|x)", member, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            1 => value,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// The report reads each reject line as the full parse does, whatever record it holds.
        #[test]
        fn the_view_of_a_reject_gives_the_full_parse_s_row(
            user in proptest::option::of(record()),
            reasons in proptest::collection::vec(("[A-Z_]{1,8}", "[a-z.]{0,6}", "[a-z \"\\\\é]{0,10}"), 0..3),
            index in 0u64..1_000_000,
        ) {
            let entry = RejectEntry {
                index,
                line: index + 1,
                byte_offset: 0,
                reasons: reasons
                    .iter()
                    .map(|(code, path, message)| Violation::new(code, path.as_str(), message.as_str()))
                    .collect(),
                user,
            };
            let line = serde_json::to_vec(&entry).unwrap();
            let row = reject_row(&line);
            prop_assert!(row.is_some());
            prop_assert_eq!(row, reject_row_fully(&line));
        }
    }

    #[test]
    fn lines_that_are_not_whole_entries_read_alike() {
        for line in [
            r#"{"index":1,"line":2,"byte_offset":0,"reasons":[{"code":"A","message":"m"}]}"#,
            r#"{"index":1,"byte_offset":0,"reasons":[]}"#,
            r#"{"index":1,"line":2,"byte_offset":0,"reasons":[],"user":{"email":"a@b.c","email":5}}"#,
            r#"{"index":1,"line":2,"byte_offset":0,"reasons":[],"user":{"email":5,"email":"a@b.c"}}"#,
            r#"{"index":1,"line":2,"byte_offset":0,"reasons":[],"user":["a@b.c"],"extra":true}"#,
            r#"{"index":1,"line":2,"byte_offset":0,"reasons":[],"user":{"email":"x@y.z"}}"#,
            "not json",
            "",
        ] {
            assert_eq!(
                reject_row(line.as_bytes()),
                reject_row_fully(line.as_bytes()),
                "{line}"
            );
        }
        assert_eq!(
            reject_row(br#"{"index":7,"line":8,"byte_offset":0,"reasons":[{"code":"A","path":"","message":"m"},{"code":"B","path":"p","message":"n"}],"user":{"email":"x@y.z","name":"N"}}"#),
            Some(CsvRow {
                stage: "split",
                index: Some(7),
                email: "x@y.z".into(),
                code: "A|B".into(),
                message: "m; n".into(),
            })
        );
    }
    use serde_json::json;

    #[test]
    fn reported_users_are_found_in_their_chunk() {
        let users = vec![
            json!({"email":"a@x.io"}),
            json!({"email":"B@x.io","user_id":"7"}),
        ];
        assert_eq!(position_of(&users, &json!({"email":"b@X.io"})), Some(1));
        assert_eq!(position_of(&users, &json!({"user_id":"7"})), Some(1));
        assert_eq!(position_of(&users, &json!({"email":"c@x.io"})), None);
    }
}
