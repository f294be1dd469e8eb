//! Finalisation as a stage that spans invocations: the run's reports (report.json, report.csv,
//! report.html, failed-users.json, unknown-users.json) written from its manifest, split's
//! rejects and every chunk report, then the run taken off the active list.
//!
//! What is written is decided by `import_core::finalize` and `RunReport`'s fold; this moves the
//! bytes. Each step stops before `stop_at` and saves a `Checkpoint` in the run folder, so the
//! next invocation goes on where this one stopped. Memory is bounded by the outputs' part
//! buffers (8 MiB each), a few chunks read ahead, and 8 bytes per rejected user; nothing is
//! written to local disk. The checkpoint is saved by compare-and-swap: of two invocations
//! finalising the same run, the one that loses stops (and aborts the uploads it started, which
//! no checkpoint names). Once the run is left, the checkpoint stays, saying "told", so that an
//! invocation that began before then stops instead of finalising the run again.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use auth0_api::unix_now_ms;
use futures_util::{stream, StreamExt, TryStreamExt};
use import_core::finalize::{self, Checkpoint, Output, Step};
use import_core::jobs::ChunkReport;
use import_core::layout::{self, RunPath, FAILED_USERS, REPORT_CSV, UNKNOWN_USERS};
use import_core::ledger::{Ledger, Lines, ObjectStore, StoreError};
use import_core::manifest::RunManifest;
use import_core::report::{render_html, RunReport, CSV_HEADER};
use import_core::run_end::{RunEndMessage, RunNotifier};
use import_core::storage::UploadedPart;
use serde_json::Value;

use crate::poll::{refusal_message, PollConfig, PollError, RECONCILE_MAX_INDEX_BYTES};

/// The run folder's finalisation state and scratch objects.
const FINALIZE_DIR: &str = "finalize/";
const CHECKPOINT: &str = "finalize/checkpoint.json";
/// Requests in flight when reading chunk reports or tagging chunks: S3 answers each in tens of
/// milliseconds, so one at a time would take minutes for 8,571 chunks.
const REQUESTS_IN_FLIGHT: usize = 32;
/// Chunks (and their reports) read ahead of the one being written out.
const CHUNKS_AHEAD: usize = 8;
/// Chunk reports counted, or chunks tagged, between two looks at the clock.
const BATCH: usize = 512;
/// How often a step saves its progress even when the invocation is far from its end: a killed
/// invocation loses at most this much work.
const SAVE_EVERY: Duration = Duration::from_secs(15);
/// Lines of the rejects read between two looks at the clock.
const LINES_PER_LOOK: u32 = 1024;

/// How a finalisation call ended.
pub enum Finalized {
    /// The reports are written and the run is no longer active.
    Done,
    /// Stopped before its deadline (or another invocation holds the run); the next sweep goes on.
    Paused,
}

pub struct Finalizer<'a, S, N> {
    pub ledger: &'a Ledger<S>,
    pub config: &'a PollConfig,
    pub notifier: &'a N,
    /// No step starts new work after this.
    pub stop_at: Instant,
    /// The size at which an output's waiting bytes are stored as a part (`PART_BYTES`; tests
    /// make it small to write many parts).
    pub part_bytes: usize,
}

/// The outputs' bytes produced after their last stored part.
#[derive(Default)]
struct Buffers {
    csv: Vec<u8>,
    failed: Vec<u8>,
    unknown: Vec<u8>,
}

/// The outputs written in parts, with their content types, in the order of `Buffers::each`
/// and `outputs`: every loop over them goes through these.
const OUTPUTS: [(&str, &str); 3] = [
    (REPORT_CSV, CSV_TYPE),
    (FAILED_USERS, JSON_TYPE),
    (UNKNOWN_USERS, JSON_TYPE),
];

impl Buffers {
    fn each(&mut self) -> [&mut Vec<u8>; 3] {
        [&mut self.csv, &mut self.failed, &mut self.unknown]
    }
}

/// The checkpoint's record of each of `OUTPUTS`.
fn outputs(cp: &mut Checkpoint) -> [&mut Output; 3] {
    [&mut cp.csv, &mut cp.failed, &mut cp.unknown]
}

struct State {
    cp: Checkpoint,
    /// The checkpoint's ETag; `None` before its first save.
    etag: Option<String>,
    buffers: Buffers,
    /// Rejected indexes read since the last save.
    rejected: Vec<u64>,
    /// Uploads started since the last save (key, upload id): aborted if the save loses, since
    /// no checkpoint will name them.
    started: Vec<(String, String)>,
    saved_at: Instant,
}

/// Why a read of the rejects stopped before their end.
enum Halt {
    /// A part is full or the deadline is near: store, save, and go on from the offset.
    Cut,
    Store(StoreError),
}

impl From<StoreError> for Halt {
    fn from(e: StoreError) -> Self {
        Halt::Store(e)
    }
}

const CSV_TYPE: &str = "text/csv; charset=utf-8";
const JSON_TYPE: &str = "application/json";

impl<S: ObjectStore, N: RunNotifier> Finalizer<'_, S, N> {
    /// Goes on with the run's finalisation from its checkpoint, until it is done or `stop_at`.
    pub async fn run(&self, run: &RunPath, manifest: &RunManifest) -> Result<Finalized, PollError> {
        let (error, started) = match self.load(run, manifest).await {
            // Left already, by an invocation finalising it at the same time.
            Ok(None) => return Ok(Finalized::Done),
            Ok(Some(mut st)) => match self.go(run, manifest, &mut st).await {
                Err(PollError::Store(StoreError::UploadGone { key })) => {
                    return self.start_over(run, manifest, st, &key).await
                }
                Err(PollError::Store(e)) => (e, st.started),
                other => return other,
            },
            Err(PollError::Store(e)) => (e, Vec::new()),
            Err(e) => return Err(e),
        };
        // Another invocation finished the run and removed its scratch objects (carries,
        // rejected indexes) while this one read them: nothing is wrong, and nothing is left
        // to do. While the run is active, the error is one.
        if self.ledger.exists(&run.active_marker()).await? {
            return Err(error.into());
        }
        tracing::info!(run_id = run.id(), error = %error, "another invocation finished this run");
        for (key, upload_id) in &started {
            self.ledger.abort_upload(key, upload_id).await?;
        }
        Ok(Finalized::Done)
    }

    /// The state saved by the last checkpoint (or the start); `None` when the run was left
    /// already.
    async fn load(
        &self,
        run: &RunPath,
        manifest: &RunManifest,
    ) -> Result<Option<State>, PollError> {
        let st = match self
            .ledger
            .get::<Checkpoint>(&run.object(CHECKPOINT))
            .await?
        {
            Some(saved)
                if saved.value.step == Step::Told
                    && !self.ledger.exists(&run.active_marker()).await? =>
            {
                return Ok(None);
            }
            Some(saved) => {
                let buffers = self.load_carry(run, saved.value.carry.as_deref()).await?;
                State {
                    cp: saved.value,
                    etag: Some(saved.etag),
                    buffers,
                    rejected: Vec::new(),
                    started: Vec::new(),
                    saved_at: Instant::now(),
                }
            }
            None => State {
                cp: Checkpoint::start(RunReport::start(manifest)),
                etag: None,
                buffers: Buffers::default(),
                rejected: Vec::new(),
                started: Vec::new(),
                saved_at: Instant::now(),
            },
        };
        Ok(Some(st))
    }

    /// The steps from the checkpoint in `st` on, until done or `stop_at`.
    async fn go(
        &self,
        run: &RunPath,
        manifest: &RunManifest,
        st: &mut State,
    ) -> Result<Finalized, PollError> {
        loop {
            let step_done = match st.cp.step.clone() {
                Step::Totals { next } => self.totals(run, manifest, st, next).await?,
                Step::Rejects { offset } => self.rejects(run, manifest, st, offset).await?,
                Step::Users { next } => self.users(run, manifest, st, next).await?,
                Step::Tags { next } => self.tags(run, manifest, st, next).await?,
                Step::Publish => {
                    self.publish(run, st).await?;
                    true
                }
                Step::Told => {
                    self.leave(run, manifest, &st.cp.report).await?;
                    return Ok(Finalized::Done);
                }
            };
            if !self.save(run, st).await? || !step_done || Instant::now() >= self.stop_at {
                tracing::info!(run_id = run.id(), step = ?st.cp.step, "finalisation paused");
                return Ok(Finalized::Paused);
            }
        }
    }

    /// An output's upload is gone. Completed, its object is there: an invocation finalising the
    /// run at the same time is ahead, and this one stops. Otherwise it was aborted before it
    /// was completed (the bucket aborts uploads left for a day: a finalisation that stopped
    /// that long). What its parts held is gone, and every step can be done again (the reports
    /// are written whole, tags set again), so the checkpoint goes back to the start, by
    /// compare-and-swap like any save; the next sweep goes on from there. The outputs' other
    /// uploads are aborted (their parts can hold password hashes), and outputs completed
    /// before are removed, so that from here on an output that exists was completed after the
    /// start; the old scratch objects go when the run is left.
    async fn start_over(
        &self,
        run: &RunPath,
        manifest: &RunManifest,
        mut st: State,
        key: &str,
    ) -> Result<Finalized, PollError> {
        if self.ledger.exists(key).await? {
            tracing::info!(
                run_id = run.id(),
                key,
                "another invocation completed this output; it goes on"
            );
            // No checkpoint names the uploads this invocation started since its last save.
            for (key, upload_id) in &st.started {
                self.ledger.abort_upload(key, upload_id).await?;
            }
            return Ok(Finalized::Paused);
        }
        tracing::warn!(
            run_id = run.id(),
            key,
            "an upload of the run's reports was aborted before it was completed; finalisation starts over"
        );
        let mut fresh = State {
            cp: Checkpoint::start(RunReport::start(manifest)),
            etag: st.etag.clone(),
            buffers: Buffers::default(),
            rejected: Vec::new(),
            // Aborted by the save if it loses; if it wins, they are among the uploads below.
            started: std::mem::take(&mut st.started),
            saved_at: Instant::now(),
        };
        if self.save(run, &mut fresh).await? {
            // Best effort, each on its own: no checkpoint names these any more, so one left
            // behind by an error is only S3's lifecycle rule's to abort.
            for ((name, _), output) in OUTPUTS.iter().zip(outputs(&mut st.cp)) {
                let key = run.object(name);
                if let (Some(upload_id), false) = (&output.upload_id, output.finished) {
                    if let Err(e) = self.ledger.abort_upload(&key, upload_id).await {
                        tracing::warn!(run_id = run.id(), key, error = %e, "an old upload not aborted");
                    }
                }
                if let Err(e) = self.ledger.delete(&key).await {
                    tracing::warn!(run_id = run.id(), key, error = %e, "an old output not removed");
                }
            }
        }
        Ok(Finalized::Paused)
    }

    /// Counts every chunk report, in manifest order.
    async fn totals(
        &self,
        run: &RunPath,
        manifest: &RunManifest,
        st: &mut State,
        mut next: usize,
    ) -> Result<bool, PollError> {
        while next < manifest.chunks.len() {
            let batch = &manifest.chunks[next..(next + BATCH).min(manifest.chunks.len())];
            // Kept without their per-user errors: the totals need only the counts. The lists are
            // read again in `users`, a chunk at a time.
            let reports: Vec<Option<ChunkReport>> = stream::iter(batch)
                .map(|chunk| async move {
                    let report = self
                        .ledger
                        .get::<ChunkReport>(&run.report(chunk.seq))
                        .await?;
                    Ok::<_, StoreError>(report.map(|r| without_errors(r.value)))
                })
                .buffered(REQUESTS_IN_FLIGHT)
                .try_collect()
                .await?;
            for (chunk, report) in batch.iter().zip(&reports) {
                st.cp.report.add_chunk(chunk, report.as_ref());
            }
            next += batch.len();
            st.cp.step = Step::Totals { next };
            if next < manifest.chunks.len() && !self.go_on(run, st).await? {
                return Ok(false);
            }
        }
        let report = &mut st.cp.report;
        report.close();
        if let Some((bytes, _)) = self.ledger.get_bytes(&run.submit_failed()).await? {
            if report.submitted == 0 {
                report.refuse(format!(
                    "Auth0 refused the run's first request: {}",
                    refusal_message(&bytes)
                ));
            }
        }
        st.cp.step = Step::Rejects { offset: 0 };
        Ok(true)
    }

    /// Split's rejects: one report.csv row each, and their input indexes (to place chunk
    /// records in the input). The file grows with the input, so it is read from the checkpoint's
    /// offset as it arrives, a line at a time.
    async fn rejects(
        &self,
        run: &RunPath,
        manifest: &RunManifest,
        st: &mut State,
        mut offset: u64,
    ) -> Result<bool, PollError> {
        let Some(rejects) = &manifest.rejects_key else {
            st.cp.step = Step::Users { next: 0 };
            return Ok(true);
        };
        let key = run.object(rejects);
        let (stop_at, part_bytes) = (self.stop_at, self.part_bytes);
        loop {
            let mut at = offset;
            let mut lines_read = 0u32;
            let (cp, buffers, rejected) = (&mut st.cp, &mut st.buffers, &mut st.rejected);
            let mut on_line = |line: &[u8]| -> Result<(), Halt> {
                at += line.len() as u64 + 1;
                if let Some(row) = finalize::reject_row(line) {
                    if let Some(index) = row.index {
                        rejected.push(index);
                    }
                    cp.push_row(row, &mut buffers.csv);
                }
                lines_read += 1;
                let look = lines_read.is_multiple_of(LINES_PER_LOOK);
                if buffers.csv.len() >= part_bytes || (look && Instant::now() >= stop_at) {
                    return Err(Halt::Cut);
                }
                Ok(())
            };
            let mut lines = Lines::default();
            let read = self
                .ledger
                .get_pieces_from(&key, offset, |piece| lines.feed(piece, &mut on_line))
                .await;
            let whole = match read {
                // The last line, when the file does not end with a newline: a cut after it
                // leaves nothing to read.
                Ok(_) => match lines.finish(&mut on_line) {
                    Ok(()) | Err(Halt::Cut) => true,
                    Err(Halt::Store(e)) => return Err(e.into()),
                },
                Err(Halt::Cut) => false,
                Err(Halt::Store(e)) => return Err(e.into()),
            };
            offset = at;
            self.store_full_parts(run, st).await?;
            if whole {
                st.cp.step = Step::Users { next: 0 };
                return Ok(true);
            }
            st.cp.step = Step::Rejects { offset };
            if !self.go_on(run, st).await? {
                return Ok(false);
            }
        }
    }

    /// The chunks whose users were not all imported: a report.csv row per user the report
    /// names, and the user's original record in failed-users.json or unknown-users.json.
    async fn users(
        &self,
        run: &RunPath,
        manifest: &RunManifest,
        st: &mut State,
        next: usize,
    ) -> Result<bool, PollError> {
        let not_all: BTreeSet<u32> = st
            .cp
            .report
            .jobs
            .iter()
            .filter(|j| j.failed > 0 || j.unknown > 0)
            .map(|j| j.seq)
            .collect();
        let todo: Vec<usize> = (next..manifest.chunks.len())
            .filter(|&i| not_all.contains(&manifest.chunks[i].seq))
            .collect();
        if todo.is_empty() {
            st.cp.step = Step::Tags { next: 0 };
            return Ok(true);
        }
        let rejected = self.rejected_indexes(run, &st.cp).await?;
        let mut fetched = stream::iter(todo)
            .map(|i| async move {
                let chunk = &manifest.chunks[i];
                // This chunk's report again, whole: its per-user errors name who failed.
                let report = self
                    .ledger
                    .get::<ChunkReport>(&run.report(chunk.seq))
                    .await?;
                let users = match self.ledger.get_bytes(&run.object(&chunk.key)).await? {
                    Some((bytes, _)) => {
                        Some(serde_json::from_slice::<Vec<Value>>(&bytes).map_err(|e| {
                            PollError::Chunk {
                                key: run.object(&chunk.key),
                                reason: e.to_string(),
                            }
                        })?)
                    }
                    None => None,
                };
                Ok::<_, PollError>((i, report.map(|r| r.value), users))
            })
            .buffered(CHUNKS_AHEAD);
        while let Some(item) = fetched.next().await {
            let (i, report, users) = item?;
            if let (Some(report), Some(users)) = (report, users) {
                // Chunk position → input index.
                let indexes: Vec<u64> = manifest.chunks[i].input_indexes(&rejected).collect();
                for user in finalize::not_imported(&report, &users, &indexes) {
                    st.cp.push_row(user.row, &mut st.buffers.csv);
                    let record = &users[user.position];
                    if user.unknown {
                        finalize::push_user(&mut st.cp.unknown, record, &mut st.buffers.unknown);
                    } else {
                        finalize::push_user(&mut st.cp.failed, record, &mut st.buffers.failed);
                    }
                }
            }
            st.cp.step = Step::Users { next: i + 1 };
            self.store_full_parts(run, st).await?;
            if !self.go_on(run, st).await? {
                return Ok(false);
            }
        }
        st.cp.step = Step::Tags { next: 0 };
        Ok(true)
    }

    /// Every chunk tagged purgeable: the run is final and everything read from the chunks is
    /// written, so their password hashes may now age out under the bucket's retention rule.
    async fn tags(
        &self,
        run: &RunPath,
        manifest: &RunManifest,
        st: &mut State,
        mut next: usize,
    ) -> Result<bool, PollError> {
        while next < manifest.chunks.len() {
            let batch = &manifest.chunks[next..(next + BATCH).min(manifest.chunks.len())];
            stream::iter(batch)
                .map(|chunk| async move { self.ledger.mark_purgeable(&run.object(&chunk.key)).await })
                .buffer_unordered(REQUESTS_IN_FLIGHT)
                .try_collect::<()>()
                .await?;
            next += batch.len();
            st.cp.step = Step::Tags { next };
            if next < manifest.chunks.len() && !self.go_on(run, st).await? {
                return Ok(false);
            }
        }
        st.cp.step = Step::Publish;
        Ok(true)
    }

    /// The outputs completed, report.html and report.json written (report.json last: its
    /// presence means final), and the operator told.
    async fn publish(&self, run: &RunPath, st: &mut State) -> Result<(), PollError> {
        if st.cp.csv.records == 0 && st.cp.csv.parts.is_empty() && st.buffers.csv.is_empty() {
            st.buffers.csv.extend_from_slice(CSV_HEADER.as_bytes());
        }
        let csv = std::mem::take(&mut st.buffers.csv);
        self.finish_output(
            &run.report_csv(),
            &mut st.cp.csv,
            csv,
            CSV_TYPE,
            &mut st.started,
        )
        .await?;
        if st.cp.failed.records > 0 {
            let mut last = std::mem::take(&mut st.buffers.failed);
            if !st.cp.failed.finished {
                finalize::close_users(&mut last);
            }
            let key = run.failed_users();
            self.finish_output(&key, &mut st.cp.failed, last, JSON_TYPE, &mut st.started)
                .await?;
            self.ledger.mark_purgeable(&key).await?;
            st.cp.report.failed_users_key = Some(FAILED_USERS.to_string());
        }
        if st.cp.unknown.records > 0 {
            let mut last = std::mem::take(&mut st.buffers.unknown);
            if !st.cp.unknown.finished {
                finalize::close_users(&mut last);
            }
            let key = run.object(UNKNOWN_USERS);
            self.finish_output(&key, &mut st.cp.unknown, last, JSON_TYPE, &mut st.started)
                .await?;
            self.ledger.mark_purgeable(&key).await?;
            st.cp.report.unknown_users_key = Some(UNKNOWN_USERS.to_string());
        }
        let report = &st.cp.report;
        let html = render_html(report, &st.cp.sample);
        self.ledger
            .put_raw(
                &run.report_html(),
                html.into_bytes(),
                "text/html; charset=utf-8",
            )
            .await?;
        self.ledger.put(&run.report_json(), report).await?;
        // Told after the report exists, so the message's keys name objects that are there. A
        // finalisation that dies before its next save tells twice (the message has the run id).
        let message = RunEndMessage::for_final_report(report, Some(&self.config.bucket));
        if let Err(e) = self.notifier.notify(&message).await {
            tracing::warn!(run_id = run.id(), error = %e, "run-end notification not sent");
        }
        tracing::info!(
            run_id = run.id(),
            users_in = report.users_in,
            rejected = report.rejected_before_submission,
            inserted = report.inserted,
            updated = report.updated,
            failed = report.failed_at_auth0,
            unknown = report.unknown,
            in_doubt = report.in_doubt,
            refused_as_a_whole = report.refused.is_some(),
            refused = report.refused.as_deref(),
            conservation_holds = report.conservation_holds,
            "run report written"
        );
        st.cp.step = Step::Told;
        Ok(())
    }

    /// The slots freed, the run listed for reading back, taken off the active list, and its
    /// scratch objects removed. Every line is safe to repeat.
    async fn leave(
        &self,
        run: &RunPath,
        manifest: &RunManifest,
        report: &RunReport,
    ) -> Result<(), PollError> {
        self.ledger
            .release_run_slots(run.id(), unix_now_ms())
            .await?;
        // Listed for the reconcile step before it stops being active, so no crash between the
        // two lines loses it. A run refused as a whole, or one that never reached Auth0 (a local
        // rehearsal), has nothing to read back.
        let index_bytes = report
            .submitted
            .saturating_mul(import_core::reconcile::BYTES_PER_USER as u64);
        let to_read_back =
            self.config.reconcile.is_some() && report.submitted > 0 && manifest.options.is_some();
        if to_read_back && index_bytes > RECONCILE_MAX_INDEX_BYTES {
            tracing::warn!(
                run_id = run.id(),
                users = report.submitted,
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
        // The scratch objects go before the run stops being active (a carry may hold password
        // hashes or emails). The checkpoint, which says "told", stays: an invocation that
        // started finalising before this one left finds it and stops, where it would otherwise
        // create a checkpoint of its own and finalise the run again.
        let checkpoint = run.object(CHECKPOINT);
        let scratch: Vec<String> = self
            .ledger
            .list(&run.object(FINALIZE_DIR))
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| *key != checkpoint)
            .collect();
        stream::iter(&scratch)
            .map(|key| self.ledger.delete(key))
            .buffer_unordered(REQUESTS_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        self.ledger.delete(&run.active_marker()).await?;
        Ok(())
    }

    /// Whether the step goes on: the deadline not reached and, when a save is due, the save
    /// won (another invocation finalising the same run makes this one stop).
    async fn go_on(&self, run: &RunPath, st: &mut State) -> Result<bool, PollError> {
        if Instant::now() >= self.stop_at {
            return Ok(false);
        }
        if st.saved_at.elapsed() >= SAVE_EVERY {
            return self.save(run, st).await;
        }
        Ok(true)
    }

    /// Saves the checkpoint, with the bytes waiting in memory in a new carry and the rejected
    /// indexes read since the last save in a new object. `Ok(false)` when another invocation
    /// saved first.
    async fn save(&self, run: &RunPath, st: &mut State) -> Result<bool, PollError> {
        let token = finalize::save_token();
        let buffers = st.buffers.each();
        if buffers.iter().any(|b| !b.is_empty()) {
            // All three, empty ones too: a carry the checkpoint names and cannot be found was
            // removed (the run was left by another invocation), never taken for empty bytes.
            for ((name, _), bytes) in OUTPUTS.iter().zip(buffers) {
                let key = run.object(&format!("{FINALIZE_DIR}carry-{token}/{name}"));
                self.ledger
                    .put_raw(&key, bytes.clone(), "application/octet-stream")
                    .await?;
            }
            st.cp.carry = Some(token.clone());
        } else {
            st.cp.carry = None;
        }
        if !st.rejected.is_empty() {
            let key = format!("{FINALIZE_DIR}rejected-{token}.bin");
            self.ledger
                .put_raw(
                    &run.object(&key),
                    finalize::rejected_bytes(&st.rejected),
                    "application/octet-stream",
                )
                .await?;
            st.cp.rejected.push(key);
            st.rejected.clear();
        }
        let key = run.object(CHECKPOINT);
        let mut written = match &st.etag {
            None => self.ledger.create_versioned(&key, &st.cp).await?,
            Some(etag) => self.ledger.replace_versioned(&key, &st.cp, etag).await?,
        };
        if written.is_none() {
            // The SDK retries a write whose answer was lost; when the first try had landed, the
            // retry's condition fails. The checkpoint then holds exactly this state: it won.
            written = self
                .ledger
                .get::<Checkpoint>(&key)
                .await?
                .filter(|saved| saved.value == st.cp)
                .map(|saved| saved.etag);
        }
        st.saved_at = Instant::now();
        let started = std::mem::take(&mut st.started);
        match written {
            Some(etag) => {
                st.etag = Some(etag);
                Ok(true)
            }
            None => {
                tracing::info!(
                    run_id = run.id(),
                    "another invocation is finalising this run; it goes on"
                );
                // Only this invocation knows these uploads: no checkpoint names them.
                for (key, upload_id) in &started {
                    self.ledger.abort_upload(key, upload_id).await?;
                }
                Ok(false)
            }
        }
    }

    /// The bytes a saved checkpoint's carry holds.
    async fn load_carry(&self, run: &RunPath, token: Option<&str>) -> Result<Buffers, PollError> {
        let mut buffers = Buffers::default();
        let Some(token) = token else {
            return Ok(buffers);
        };
        for ((name, _), buffer) in OUTPUTS.iter().zip(buffers.each()) {
            let key = run.object(&format!("{FINALIZE_DIR}carry-{token}/{name}"));
            let (bytes, _) = self
                .ledger
                .get_bytes(&key)
                .await?
                .ok_or(StoreError::NotFound { key })?;
            *buffer = bytes;
        }
        Ok(buffers)
    }

    /// Split's rejected input indexes, sorted (in-drop duplicates are found late, so the
    /// rejects are not in index order throughout).
    async fn rejected_indexes(
        &self,
        run: &RunPath,
        cp: &Checkpoint,
    ) -> Result<Vec<u64>, PollError> {
        let mut all = Vec::new();
        for key in &cp.rejected {
            let (bytes, _) = self
                .ledger
                .get_bytes(&run.object(key))
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    key: run.object(key),
                })?;
            all.extend(finalize::rejected_from_bytes(&bytes));
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// Stores each output's waiting bytes as a part once they reach `part_bytes`.
    async fn store_full_parts(&self, run: &RunPath, st: &mut State) -> Result<(), PollError> {
        let each = outputs(&mut st.cp).into_iter().zip(st.buffers.each());
        for ((name, content_type), (output, buffer)) in OUTPUTS.iter().zip(each) {
            if buffer.len() >= self.part_bytes {
                let bytes = std::mem::take(buffer);
                self.store_part(
                    &run.object(name),
                    output,
                    bytes,
                    content_type,
                    &mut st.started,
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn store_part(
        &self,
        key: &str,
        output: &mut Output,
        bytes: Vec<u8>,
        content_type: &str,
        started: &mut Vec<(String, String)>,
    ) -> Result<(), PollError> {
        let upload_id = match &output.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self.ledger.start_upload(key, content_type).await?;
                output.upload_id = Some(id.clone());
                started.push((key.to_string(), id.clone()));
                id
            }
        };
        let number = output.next_part();
        let etag = self
            .ledger
            .upload_part(key, &upload_id, number, bytes)
            .await?;
        output.parts.push(UploadedPart { number, etag });
        Ok(())
    }

    /// Writes an output's last bytes and completes it: one PUT when it never needed a part.
    async fn finish_output(
        &self,
        key: &str,
        output: &mut Output,
        last: Vec<u8>,
        content_type: &str,
        started: &mut Vec<(String, String)>,
    ) -> Result<(), PollError> {
        if output.finished {
            return Ok(());
        }
        match output.upload_id.clone() {
            None => self.ledger.put_raw(key, last, content_type).await?,
            Some(upload_id) => {
                // Completed by an invocation that died before its save: the upload is gone.
                let listed = self.ledger.list(key).await?;
                if !listed.iter().any(|(k, _)| k == key) {
                    if !last.is_empty() {
                        self.store_part(key, output, last, content_type, started)
                            .await?;
                    }
                    self.ledger
                        .finish_upload(key, &upload_id, &output.parts)
                        .await?;
                }
            }
        }
        output.finished = true;
        Ok(())
    }
}

/// A chunk report without its per-user error list; its counts (failed, unknown, by code) stay.
fn without_errors(mut report: ChunkReport) -> ChunkReport {
    report.errors = Vec::new();
    report
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::Watched;
    use import_core::jobs::{JobEnd, Summary, UserError};
    use import_core::manifest::{ChunkEntry, RejectEntry, RunStatus, Source, Transformations};
    use import_core::report::Unposted;
    use import_core::run_end::NoNotifier;
    use import_core::storage::{MemoryStore, UPLOADS_PREFIX};
    use import_core::violation::Violation;
    use serde_json::json;
    use std::collections::BTreeMap;

    const USERS_PER_CHUNK: usize = 5;
    /// Input positions split rejected, in the order its rejects file lists them (an in-drop
    /// duplicate found late comes after a later index).
    const REJECTED: [u64; 4] = [2, 20, 9, 33];
    const USERS_IN: u64 = 34;

    fn email(index: u64) -> String {
        format!("user{index}@example.com")
    }

    /// A run of six chunks: all imported; two users failed by name; failed as a whole; in
    /// doubt; all imported; every user failed by name. Returns the store and the manifest.
    pub(crate) async fn seeded(run: &RunPath) -> (Ledger<MemoryStore>, RunManifest) {
        let ledger = Ledger::new(MemoryStore::default());
        let accepted: Vec<u64> = (0..USERS_IN).filter(|i| !REJECTED.contains(i)).collect();
        let mut chunks = Vec::new();
        for (n, indexes) in accepted.chunks(USERS_PER_CHUNK).enumerate() {
            let seq = n as u32 + 1;
            let key = format!("chunks/{seq:06}.json");
            let users: Vec<Value> = indexes
                .iter()
                .map(|&i| json!({"email": email(i), "password_hash": "$2b$10$placeholderplaceholderplaceholderplaceholderplacehold"}))
                .collect();
            ledger.put(&run.object(&key), &users).await.unwrap();
            chunks.push(ChunkEntry {
                key,
                seq,
                users: indexes.len() as u32,
                bytes: 1,
                first_index: indexes[0],
                last_index: *indexes.last().unwrap(),
            });
            let users_n = indexes.len() as u64;
            let ended = |inserted: u64, failed: u64| JobEnd {
                status: "completed".into(),
                summary: Some(Summary {
                    inserted,
                    updated: 0,
                    failed,
                    total: users_n,
                }),
                details: None,
            };
            let by_name = |which: &[u64]| -> Vec<UserError> {
                which
                    .iter()
                    // Auth0 echoes the user; the case of an email may differ.
                    .map(|&i| UserError {
                        user: json!({"email": email(i).to_uppercase()}),
                        errors: vec![Violation::new(
                            "DUPLICATED_USER",
                            "",
                            "The user already exists.",
                        )],
                    })
                    .collect()
            };
            let report = match seq {
                2 => ChunkReport::new(
                    seq,
                    "job_2".into(),
                    "x".into(),
                    users_n,
                    ended(3, 2),
                    by_name(&indexes[1..3]),
                    10,
                    20,
                ),
                3 => ChunkReport::new(
                    seq,
                    "job_3".into(),
                    "x".into(),
                    users_n,
                    JobEnd {
                        status: "failed".into(),
                        summary: None,
                        details: Some("job failed".into()),
                    },
                    vec![],
                    10,
                    20,
                ),
                4 => ChunkReport::unposted(
                    seq,
                    "x".into(),
                    users_n,
                    Unposted::InDoubt,
                    "gateway timeout".into(),
                    20,
                ),
                6 => ChunkReport::new(
                    seq,
                    "job_6".into(),
                    "x".into(),
                    users_n,
                    ended(0, users_n),
                    by_name(indexes),
                    10,
                    20,
                ),
                _ => ChunkReport::new(
                    seq,
                    format!("job_{seq}"),
                    "x".into(),
                    users_n,
                    ended(users_n, 0),
                    vec![],
                    10,
                    20,
                ),
            };
            ledger.put(&run.report(seq), &report).await.unwrap();
        }
        let rejects: String = REJECTED
            .iter()
            .map(|&index| {
                let entry = RejectEntry {
                    index,
                    line: index + 1,
                    byte_offset: 0,
                    reasons: vec![Violation::new("INVALID_EMAIL", "email", "not an email")],
                    user: Some(json!({"email": email(index)})),
                };
                format!("{}\n", serde_json::to_string(&entry).unwrap())
            })
            .collect();
        ledger
            .put_raw(&run.object("rejects.ndjson"), rejects.into_bytes(), "")
            .await
            .unwrap();
        ledger.put(&run.active_marker(), &json!({})).await.unwrap();
        let manifest = RunManifest {
            manifest_version: 1,
            run_id: run.id().into(),
            status: RunStatus::Split,
            source: Source::Local {
                path: "x".into(),
                size: None,
            },
            options: None,
            format: None,
            failure: None,
            users_in: USERS_IN,
            users_accepted: accepted.len() as u64,
            users_rejected: REJECTED.len() as u64,
            conservation_holds: true,
            rejects_by_code: BTreeMap::from([("INVALID_EMAIL".into(), REJECTED.len() as u64)]),
            transformations: Transformations::default(),
            max_chunk_bytes: 1000,
            max_request_bytes: 512_000,
            mean_chunk_fill: 0.5,
            rejects_key: Some("rejects.ndjson".into()),
            chunks,
            canaries: None,
        };
        (ledger, manifest)
    }

    pub(crate) fn config() -> PollConfig {
        PollConfig {
            bucket: "b".into(),
            secret_id: "s".into(),
            interval: Duration::from_millis(1),
            looks: Default::default(),
            reconcile: None,
        }
    }

    /// Finalises the run, each call stopping at `stop_after` from its start; the calls made.
    async fn finalise(
        ledger: &Ledger<MemoryStore>,
        run: &RunPath,
        manifest: &RunManifest,
        stop_after: Duration,
        part_bytes: usize,
    ) -> usize {
        let config = config();
        for call in 1..=500 {
            let finalizer = Finalizer {
                ledger,
                config: &config,
                notifier: &NoNotifier,
                stop_at: Instant::now() + stop_after,
                part_bytes,
            };
            if let Finalized::Done = finalizer.run(run, manifest).await.unwrap() {
                return call;
            }
        }
        panic!("not finalised in 500 calls");
    }

    async fn outputs<S: ObjectStore>(ledger: &Ledger<S>, run: &RunPath) -> [Option<Vec<u8>>; 4] {
        let get =
            |key: String| async move { ledger.get_bytes(&key).await.unwrap().map(|(b, _)| b) };
        [
            get(run.report_csv()).await,
            get(run.failed_users()).await,
            get(run.object(UNKNOWN_USERS)).await,
            get(run.report_json()).await,
        ]
    }

    #[tokio::test]
    async fn a_finalisation_cut_anywhere_writes_what_one_pass_writes() {
        let run = RunPath::new("r1");
        let (whole, manifest) = seeded(&run).await;
        assert_eq!(
            finalise(
                &whole,
                &run,
                &manifest,
                Duration::from_secs(3600),
                finalize::PART_BYTES
            )
            .await,
            1
        );
        let expected = outputs(&whole, &run).await;

        // Every call past its deadline from the start, and parts of 64 bytes: each call does
        // one unit of work (a batch, a stretch of rejects, a chunk) and saves.
        let (cut, manifest) = seeded(&run).await;
        let calls = finalise(&cut, &run, &manifest, Duration::ZERO, 64).await;
        assert!(
            calls > 8,
            "only {calls} calls: the run was not cut into pieces"
        );
        assert_eq!(outputs(&cut, &run).await, expected);

        // What the run's users say, independently of the code above: the rows and records.
        let [csv, failed, unknown, report] = expected;
        let csv = String::from_utf8(csv.unwrap()).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows[0], CSV_HEADER.trim_end());
        // 4 rejects, 2 + 5 failed by name, 5 failed as a whole (unknown), 5 in doubt.
        assert_eq!(rows.len(), 1 + 4 + 2 + 5 + 5 + 5);
        for index in REJECTED {
            assert!(rows.contains(
                &format!("split,{index},{},INVALID_EMAIL,not an email", email(index)).as_str()
            ));
        }
        let emails = |bytes: Option<Vec<u8>>| -> Vec<String> {
            serde_json::from_slice::<Vec<Value>>(&bytes.unwrap())
                .unwrap()
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_string())
                .collect()
        };
        // Chunk 1 holds inputs 0, 1, 3, 4, 5 (2 was rejected); chunk 2 holds 6, 7, 8, 10, 11
        // (9 was rejected): its 2nd and 3rd failed.
        let mut failed_expected = vec![email(7), email(8)];
        // Chunk 6 holds the last five accepted inputs: 28..=32.
        failed_expected.extend((28..=32).map(email));
        assert_eq!(emails(failed), failed_expected);
        // Chunk 3 (12..=16) failed as a whole, chunk 4 (17, 18, 19, 21, 22) in doubt.
        let unknown_expected: Vec<String> = [12, 13, 14, 15, 16, 17, 18, 19, 21, 22]
            .into_iter()
            .map(email)
            .collect();
        assert_eq!(emails(unknown), unknown_expected);
        assert!(
            csv.contains(&format!(
                "auth0,21,{},{}",
                email(21),
                import_core::report::codes::OUTCOME_IN_DOUBT
            )),
            "{csv}"
        );
        let report: RunReport = serde_json::from_slice(&report.unwrap()).unwrap();
        assert!(report.conservation_holds);
        assert_eq!(
            (
                report.users_in,
                report.rejected_before_submission,
                report.failed_at_auth0,
                report.unknown
            ),
            (34, 4, 7, 10)
        );

        // Nothing of the stage is left behind, and the run is no longer active.
        for ledger in [&whole, &cut] {
            assert_eq!(left_behind(ledger, &run).await, Vec::<String>::new());
            assert!(!ledger.exists(&run.active_marker()).await.unwrap());
        }
    }

    /// A finalisation call on `ledger`, stopping at `stop_at`.
    fn finalizer<'a, S: ObjectStore>(
        ledger: &'a Ledger<S>,
        config: &'a PollConfig,
        stop_at: Instant,
        part_bytes: usize,
    ) -> Finalizer<'a, S, NoNotifier> {
        Finalizer {
            ledger,
            config,
            notifier: &NoNotifier,
            stop_at,
            part_bytes,
        }
    }

    /// The outputs of the run finalised in one call.
    async fn one_pass(run: &RunPath) -> [Option<Vec<u8>>; 4] {
        let (whole, manifest) = seeded(run).await;
        finalise(&whole, run, &manifest, Duration::from_secs(3600), 64).await;
        outputs(&whole, run).await
    }

    /// The run's saved checkpoint, if any.
    async fn saved<S: ObjectStore>(ledger: &Ledger<S>, run: &RunPath) -> Option<Checkpoint> {
        let cp = ledger.get::<Checkpoint>(&run.object(CHECKPOINT)).await;
        cp.unwrap().map(|cp| cp.value)
    }

    /// What a finished finalisation left besides its checkpoint, which stays and says "told".
    async fn left_behind<S: ObjectStore>(ledger: &Ledger<S>, run: &RunPath) -> Vec<String> {
        assert_eq!(saved(ledger, run).await.map(|cp| cp.step), Some(Step::Told));
        let mut left = ledger.list(&run.object(FINALIZE_DIR)).await.unwrap();
        left.extend(ledger.list(UPLOADS_PREFIX).await.unwrap());
        left.into_iter()
            .map(|(key, _)| key)
            .filter(|key| *key != run.object(CHECKPOINT))
            .collect()
    }

    #[tokio::test]
    async fn every_call_makes_progress_and_a_lost_save_stops_the_loser() {
        let run = RunPath::new("r2");
        let (ledger, manifest) = seeded(&run).await;
        let config = config();
        let at = |stop_at| finalizer(&ledger, &config, stop_at, 64);
        // A call finds the checkpoint a step further each time.
        let mut steps = Vec::new();
        for _ in 0..4 {
            assert!(matches!(
                at(Instant::now()).run(&run, &manifest).await.unwrap(),
                Finalized::Paused
            ));
            steps.push(saved(&ledger, &run).await.unwrap().step);
        }
        for (i, step) in steps.iter().enumerate() {
            assert!(!steps[..i].contains(step), "no progress: {steps:?}");
        }
        // Another invocation's save lands between this one's load and save: this one stops
        // without writing, and the saved state is the other's.
        let cp = ledger
            .get::<Checkpoint>(&run.object(CHECKPOINT))
            .await
            .unwrap()
            .unwrap();
        let mut st = State {
            cp: cp.value.clone(),
            etag: Some(cp.etag.clone()),
            buffers: Buffers::default(),
            rejected: Vec::new(),
            started: Vec::new(),
            saved_at: Instant::now(),
        };
        let mut theirs = cp.value.clone();
        theirs.sample.clear();
        theirs.csv.records += 1;
        assert!(ledger
            .replace(&run.object(CHECKPOINT), &theirs, &cp.etag)
            .await
            .unwrap());
        assert!(!at(Instant::now()).save(&run, &mut st).await.unwrap());
    }

    /// S3 aborts an upload left incomplete for a day (the bucket's lifecycle rule). A
    /// finalisation that stopped that long finds its parts gone when it completes the upload:
    /// it starts over instead of failing at every sweep, and writes what one pass writes.
    #[tokio::test]
    async fn an_upload_aborted_under_a_paused_finalisation_starts_it_over() {
        let run = RunPath::new("r3");
        let expected = one_pass(&run).await;

        let (ledger, manifest) = seeded(&run).await;
        let config = config();
        let call = || finalizer(&ledger, &config, Instant::now(), 64);
        let step = || async { saved(&ledger, &run).await.map(|cp| cp.step) };
        // Paused once parts of failed-users.json are stored, then a day passes: the parts go.
        loop {
            call().run(&run, &manifest).await.unwrap();
            let cp = saved(&ledger, &run).await;
            if cp.is_some_and(|cp| !cp.failed.parts.is_empty()) {
                break;
            }
        }
        let parts = ledger.list(UPLOADS_PREFIX).await.unwrap();
        assert!(!parts.is_empty());
        for (key, _) in parts {
            ledger.delete(&key).await.unwrap();
        }
        // Calls go on until one finds the upload gone (storing its next part, or completing
        // it) and starts over.
        let mut steps = vec![step().await];
        while steps.last().unwrap() != &Some(Step::Totals { next: 0 }) {
            assert!(steps.len() < 500, "never started over: {steps:?}");
            let finalized = call().run(&run, &manifest).await.unwrap();
            assert!(matches!(finalized, Finalized::Paused));
            steps.push(step().await);
        }
        assert!(
            steps.len() > 1 && steps[steps.len() - 2] != Some(Step::Totals { next: 0 }),
            "{steps:?}"
        );
        finalise(&ledger, &run, &manifest, Duration::ZERO, 64).await;
        assert_eq!(outputs(&ledger, &run).await, expected);
        assert_eq!(left_behind(&ledger, &run).await, Vec::<String>::new());
    }

    /// An invocation that loaded the checkpoint before another finished the run (and removed
    /// its scratch objects) finds them gone: it is done, not failed.
    #[tokio::test]
    async fn a_finalisation_finished_by_another_meanwhile_is_done() {
        let run = RunPath::new("r6");
        let (ledger, manifest) = seeded(&run).await;
        let config = config();
        let call = || finalizer(&ledger, &config, Instant::now(), 64);
        // Paused in Users, which reads the rejected indexes saved by Rejects.
        loop {
            call().run(&run, &manifest).await.unwrap();
            if matches!(saved(&ledger, &run).await.unwrap().step, Step::Users { .. }) {
                break;
            }
        }
        // The other invocation's leaving: its scratch objects and the active marker go.
        for (key, _) in ledger.list(&run.object(FINALIZE_DIR)).await.unwrap() {
            if key != run.object(CHECKPOINT) {
                ledger.delete(&key).await.unwrap();
            }
        }
        ledger.delete(&run.active_marker()).await.unwrap();
        assert!(matches!(
            call().run(&run, &manifest).await.unwrap(),
            Finalized::Done
        ));
        // While the run is active, a scratch object missing is an error.
        ledger.put(&run.active_marker(), &json!({})).await.unwrap();
        assert!(call().run(&run, &manifest).await.is_err());
    }

    /// An invocation that read the checkpoint at Publish just before another finished the run
    /// finds the carries it names removed: it stops, and does not write the reports again from
    /// empty buffers (found in review: report.csv would have become empty).
    #[tokio::test]
    async fn a_late_invocation_at_publish_leaves_the_reports_whole() {
        let run = RunPath::new("r7");
        let expected = one_pass(&run).await;
        let (ledger, manifest) = seeded(&run).await;
        let config = config();
        // A small run's outputs wait whole in the carry until Publish.
        let call = |stop_at| finalizer(&ledger, &config, stop_at, finalize::PART_BYTES);
        let at_publish = loop {
            call(Instant::now()).run(&run, &manifest).await.unwrap();
            let cp = saved(&ledger, &run).await.unwrap();
            if cp.step == Step::Publish {
                break cp;
            }
        };
        assert!(at_publish.carry.is_some());
        // One invocation finishes the run; the other read the checkpoint at Publish before.
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(matches!(
            call(far).run(&run, &manifest).await.unwrap(),
            Finalized::Done
        ));
        assert_eq!(outputs(&ledger, &run).await, expected);
        ledger
            .put(&run.object(CHECKPOINT), &at_publish)
            .await
            .unwrap();
        assert!(matches!(
            call(far).run(&run, &manifest).await.unwrap(),
            Finalized::Done
        ));
        assert_eq!(outputs(&ledger, &run).await, expected);
    }

    /// The SDK retries a write whose answer was lost; when the first try had landed, the retry
    /// is refused (its condition no longer holds). A checkpoint saved that way was saved: the
    /// call does not take itself for the loser and abort the uploads it just recorded (found in
    /// review: the next call then found them gone and started the run over).
    #[tokio::test]
    async fn a_save_whose_answer_was_lost_is_a_save() {
        let run = RunPath::new("r8");
        let expected = one_pass(&run).await;
        let (memory, manifest) = seeded(&run).await;
        let ledger = Ledger::new(Watched::new(memory.store, None));
        *ledger.store.lose_answers_to.lock().unwrap() = Some(run.object(CHECKPOINT));
        let config = config();
        let mut steps = Vec::new();
        loop {
            let call = Finalizer {
                ledger: &ledger,
                config: &config,
                notifier: &NoNotifier,
                stop_at: Instant::now(),
                part_bytes: 64,
            };
            if let Finalized::Done = call.run(&run, &manifest).await.unwrap() {
                break;
            }
            steps.push(saved(&ledger, &run).await.unwrap().step);
            assert!(
                steps.len() < 500,
                "not finalised, steps begin {:?}",
                &steps[..6]
            );
        }
        // Every call went on from where the last one stopped: never back to the start.
        let starts = steps
            .iter()
            .filter(|step| **step == Step::Totals { next: 0 })
            .count();
        assert!(starts <= 1, "started over {starts} times");
        assert_eq!(outputs(&ledger, &run).await, expected);
        assert_eq!(left_behind(&ledger, &run).await, Vec::<String>::new());
    }

    /// Two invocations finalising the same run at once (a sweep that overran its tick, a
    /// retried invocation), their requests interleaved differently for each seed: the run is
    /// finalised once, with the bytes one pass writes, and nothing is left behind.
    #[tokio::test]
    async fn two_finalisations_interleaved_request_by_request_write_what_one_pass_writes() {
        let run = RunPath::new("r4");
        let expected = one_pass(&run).await;
        let config = config();
        for seed in 1..=300u64 {
            let (memory, manifest) = seeded(&run).await;
            let ledger = Ledger::new(Watched::new(memory.store, Some(seed)));
            let (l, c, r, m) = (&ledger, &config, &run, &manifest);
            let finalisation = |stop_after: Duration| async move {
                let mut errors = Vec::new();
                for _ in 0..2000 {
                    if !l.exists(&r.active_marker()).await.unwrap() {
                        return errors;
                    }
                    let call = Finalizer {
                        ledger: l,
                        config: c,
                        notifier: &NoNotifier,
                        stop_at: Instant::now() + stop_after,
                        part_bytes: 64,
                    };
                    match call.run(r, m).await {
                        Ok(Finalized::Done) => return errors,
                        Ok(Finalized::Paused) => {}
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                panic!("seed {seed}: not finalised in 2000 calls");
            };
            // Calls that each do one unit of work, or one that runs to the end.
            let other = [
                Duration::ZERO,
                Duration::from_millis(1),
                Duration::from_secs(3600),
            ];
            let (a, b) = tokio::join!(
                finalisation(Duration::ZERO),
                finalisation(other[seed as usize % 3])
            );
            assert_eq!(outputs(&ledger, &run).await, expected, "seed {seed}");
            assert!(a.is_empty() && b.is_empty(), "seed {seed}: {a:?} {b:?}");
            let left = left_behind(&ledger, &run).await;
            assert!(left.is_empty(), "seed {seed}: left behind {left:?}");
        }
    }
}
