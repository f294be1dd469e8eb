//! The `poll` Lambda: follows every submitted job to its end, writes the chunk's report and
//! frees its slot (so submit refills it), keeps `status.json` current, and writes the run's
//! reports when its last chunk is final. Auth0 forgets jobs after 24 h; these reports stay.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth0_api::{unix_now_ms, ApiError, ManagementApi};
use import_core::jobs::{
    classify_job, next_look_after, parse_errors, ChunkReport, JobEnd, JobProgress, MAX_LOOK_GAP,
};
use import_core::layout::{self, RunPath};
use import_core::ledger::{BadTransition, JobRecord, JobState, StoreError};
use import_core::ledger::{Ledger, ObjectStore, Versioned};
use import_core::manifest::RunManifest;
use import_core::report::{RunProgress, Unposted};
use import_core::run_end::RunNotifier;
use serde::Serialize;
use serde_json::Value;

/// Kept back from the deadline so the last sweep's writes finish.
const SAFETY_MARGIN: Duration = Duration::from_secs(15);
/// The longest a sweep finalises runs while other runs have jobs in flight: their jobs are
/// looked at, and their slots refilled, at least this often. Finalisation goes on next sweep.
const FINALIZE_SLICE: Duration = Duration::from_secs(20);

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
pub(crate) const RECONCILE_MAX_INDEX_BYTES: u64 = 256 << 20;
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

/// What the sweeps of one invocation keep of each active run, so that a sweep every few
/// seconds does not read a large run whole each time: its manifest (written once, before the
/// run is listed active), and the `reported_through` seq, up to which every chunk is reported.
/// Reports are never removed while a run is active, so the keys up to there need not be
/// listed again; reports land out of seq order, so that mark is where the first gap is.
#[derive(Default)]
struct Known {
    runs: HashMap<String, KnownRun>,
}

struct KnownRun {
    manifest: Arc<RunManifest>,
    reported_through: u32,
}

/// Seqs are written with 6 digits (`layout::job_key`): listing from a key skips exactly the
/// lower seqs only while every seq has that width.
const LISTED_IN_SEQ_ORDER: u32 = 999_999;

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
        let mut known = Known::default();
        loop {
            report.sweeps += 1;
            let active = self.sweep_knowing(&mut report, &mut known).await?;
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
        self.sweep_knowing(report, &mut Known::default()).await
    }

    /// `sweep`, with what earlier sweeps of this invocation read of each run.
    async fn sweep_knowing(
        &self,
        report: &mut PollReport,
        known: &mut Known,
    ) -> Result<usize, PollError> {
        let mut active = 0;
        let mut ended = Vec::new();
        let mut listed = HashMap::new();
        for (key, _) in self.ledger.list(layout::ACTIVE_RUNS_PREFIX).await? {
            let Some(run_id) = layout::run_id_of_active_key(&key) else {
                continue;
            };
            let run = RunPath::new(run_id);
            let was = known.runs.remove(run_id);
            let (in_flight, is_final, now) = match self.poll_run(&run, was, report).await? {
                Some(polled) => polled,
                None => continue,
            };
            active += in_flight;
            if is_final {
                ended.push((run, Arc::clone(&now.manifest)));
            }
            listed.insert(run_id.to_string(), now);
        }
        // Runs no longer active are forgotten.
        known.runs = listed;
        // Runs whose last chunk is reported are finalised after every run's jobs were looked
        // at (and their slots freed): a long finalisation never holds up another run's refill.
        // Kept back for the last unit of work and the checkpoint's save: the sweep's margin, or
        // a third of what is left for a short invocation (every call makes some progress).
        let now = Instant::now();
        let left = self.deadline.saturating_duration_since(now);
        let mut stop_at = self.deadline - SAFETY_MARGIN.min(left / 3);
        if active > 0 {
            stop_at = stop_at.min(now + FINALIZE_SLICE);
        }
        for (run, manifest) in ended {
            if Instant::now() >= stop_at {
                break;
            }
            let finalizer = crate::finalize::Finalizer {
                ledger: self.ledger,
                config: self.config,
                notifier: self.notifier,
                stop_at,
                part_bytes: import_core::finalize::PART_BYTES,
            };
            if let crate::finalize::Finalized::Done = finalizer.run(&run, manifest.as_ref()).await?
            {
                report.runs_finalized.push(run.id().to_string());
            }
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
            match stage.reconcile_when_settled(&run).await {
                // A chunk in doubt may still be importing: read back in a later sweep.
                Ok(None) => continue,
                Ok(Some(result)) => {
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

    /// Follows a run's jobs and writes their chunk reports: (jobs still in flight, whether
    /// every chunk is reported and the run is to be finalised, what the next sweep knows);
    /// `None` for a run without a manifest. `known` is what the last sweep knew of the run.
    async fn poll_run(
        &self,
        run: &RunPath,
        known: Option<KnownRun>,
        report: &mut PollReport,
    ) -> Result<Option<(usize, bool, KnownRun)>, PollError> {
        let (manifest, through) = match known {
            Some(known) => (known.manifest, known.reported_through),
            None => match self.ledger.get::<RunManifest>(&run.manifest()).await? {
                Some(manifest) => (Arc::new(manifest.value), 0),
                None => return Ok(None),
            },
        };
        let max_seq = manifest.chunks.iter().map(|c| c.seq).max().unwrap_or(0);
        // Every seq up to `through` is reported: only the keys after it are listed.
        let (listed_reports, listed_jobs) = if through > 0 && max_seq <= LISTED_IN_SEQ_ORDER {
            (
                self.ledger
                    .list_after(&run.reports(), &run.report(through))
                    .await?,
                self.ledger
                    .list_after(&run.jobs(), &run.job(through))
                    .await?,
            )
        } else {
            (
                self.ledger.list(&run.reports()).await?,
                self.ledger.list(&run.jobs()).await?,
            )
        };
        let reported: BTreeSet<u32> = run
            .seqs(listed_reports.iter().map(|(k, _)| k), seq_of_report_key)
            .filter(|seq| *seq > through)
            .collect();
        let claimed: BTreeSet<u32> = run
            .seqs(listed_jobs.iter().map(|(k, _)| k), layout::seq_of_job_key)
            .filter(|seq| *seq > through)
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
            // Each once: a refused run's finalisation spans sweeps.
            let unposted = manifest.chunks.iter().filter(|c| {
                c.seq > through && !claimed.contains(&c.seq) && !reported.contains(&c.seq)
            });
            for chunk in unposted {
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
        // Seqs up to `through` count as claimed and reported (a refused run's unposted chunks
        // among them were never claimed, but are not pending either).
        let mut after: Vec<u32> = manifest
            .chunks
            .iter()
            .map(|c| c.seq)
            .filter(|seq| *seq > through)
            .collect();
        after.sort_unstable();
        let through_count = manifest.chunks.len() - after.len();
        let mut now_reported = reported;
        now_reported.extend(new_reports.iter().map(|r| r.seq));
        let done = through_count + now_reported.len();
        let is_final = done >= manifest.chunks.len();
        self.update_status(
            run,
            &manifest,
            &new_reports,
            through_count + claimed.len(),
            in_flight,
            done,
            is_final,
        )
        .await?;
        // The mark moves over the chunks reported without a gap, in seq order.
        let reported_through = after
            .into_iter()
            .take_while(|seq| now_reported.contains(seq))
            .last()
            .unwrap_or(through);
        let known = KnownRun {
            manifest,
            reported_through,
        };
        Ok(Some((in_flight, is_final, known)))
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
}

/// Auth0's message in a `submit-failed.json` marker.
pub(crate) fn refusal_message(marker: &[u8]) -> String {
    serde_json::from_slice::<Value>(marker)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "Auth0 refused the run".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finalize::tests::{config, seeded};
    use crate::testing::Watched;
    use import_core::auth0::Auth0Credentials;
    use import_core::run_end::NoNotifier;

    /// A sweep every few seconds must not list a large run whole each time (15 LISTs at 10 M
    /// users): after an invocation's first sweep, only the keys past the chunks reported without
    /// a gap are listed. Reports land out of order, so that mark waits at the first gap.
    #[tokio::test]
    async fn sweeps_list_only_past_the_chunks_reported_without_a_gap() {
        let run = RunPath::new("r5");
        let (memory, manifest) = seeded(&run).await;
        assert_eq!(manifest.chunks.len(), 6);
        memory.put(&run.manifest(), &manifest).await.unwrap();
        // Chunks 3 and 5 are not reported yet (nor claimed: nothing to ask Auth0).
        let mut held = Vec::new();
        for seq in [3, 5] {
            let (bytes, _) = memory.get_bytes(&run.report(seq)).await.unwrap().unwrap();
            memory.delete(&run.report(seq)).await.unwrap();
            held.push((run.report(seq), bytes));
        }
        let ledger = Ledger::new(Watched::new(memory.store, None));
        // Never called: no chunk is in flight.
        let api = ManagementApi::new(Auth0Credentials::StaticToken {
            base_url: "http://127.0.0.1:9".into(),
            token: "unused".into(),
        })
        .unwrap();
        let config = config();
        let poller = Poller {
            ledger: &ledger,
            api: &api,
            config: &config,
            notifier: &NoNotifier,
            deadline: Instant::now() + Duration::from_secs(600),
        };
        let mut known = Known::default();
        let finalized = std::cell::RefCell::new(Vec::new());
        let sweep = async |known: &mut Known| {
            let mut report = PollReport::default();
            poller.sweep_knowing(&mut report, known).await.unwrap();
            finalized.borrow_mut().extend(report.runs_finalized);
            let status: RunProgress = ledger.get(&run.status()).await.unwrap().unwrap().value;
            let lists: Vec<(String, Option<String>)> = ledger
                .store
                .take_lists()
                .into_iter()
                .filter(|(prefix, _)| prefix.starts_with(&run.object("")))
                .collect();
            (status.chunks_done, status.final_report, lists)
        };
        let whole = vec![(run.reports(), None), (run.jobs(), None)];
        let after = |seq| {
            vec![
                (run.reports(), Some(run.report(seq))),
                (run.jobs(), Some(run.job(seq))),
            ]
        };
        // The invocation's first sweep lists all: 1, 2, 4 and 6 are reported.
        assert_eq!(sweep(&mut known).await, (4, false, whole.clone()));
        // 5 lands: listed past 2, the first gap being at 3.
        let (key, bytes) = held.pop().unwrap();
        ledger.put_raw(&key, bytes, "").await.unwrap();
        assert_eq!(sweep(&mut known).await, (5, false, after(2)));
        // 3 lands, still past 2; every chunk is reported and the run is finalised.
        let (key, bytes) = held.pop().unwrap();
        ledger.put_raw(&key, bytes, "").await.unwrap();
        let (done, is_final, lists) = sweep(&mut known).await;
        assert_eq!((done, is_final), (6, true));
        assert_eq!(lists[..2], after(2));
        assert_eq!(*finalized.borrow(), vec!["r5".to_string()]);
        assert!(!ledger.exists(&run.active_marker()).await.unwrap());
        // No longer active: not listed, and forgotten.
        assert_eq!(sweep(&mut known).await.2, Vec::new());
        assert!(known.runs.is_empty());
    }
}
