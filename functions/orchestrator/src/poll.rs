//! The `poll` Lambda: follows every submitted job to its end, writes the chunk's report and
//! frees its slot (so submit refills it), keeps `status.json` current, and writes the run's
//! reports when its last chunk is final. Auth0 forgets jobs after 24 h; these reports stay.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

use auth0_api::{unix_now_ms, ApiError, ManagementApi};
use futures_util::{stream, StreamExt, TryStreamExt};
use import_core::jobs::{classify_job, parse_errors, ChunkReport, JobProgress};
use import_core::layout;
use import_core::ledger::{JobRecord, JobState};
use import_core::ledger::{Ledger, Lines, ObjectStore, Versioned};
use import_core::manifest::{RejectEntry, RunManifest};
use import_core::report::{codes, render_html, CsvRow, RunProgress, RunReport, CSV_HEADER};
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
    report_key, FAILED_USERS, REPORTS_DIR, REPORT_CSV, REPORT_HTML, REPORT_JSON, STATUS,
};

#[derive(Debug, Clone)]
pub struct PollConfig {
    pub bucket: String,
    pub secret_id: String,
    /// Pause between sweeps while jobs are active: one GET per active job per sweep stays far
    /// below any Management API rate limit (2 slots → ≤ 1 request/s at 2 s).
    pub interval: Duration,
}

/// What one invocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollReport {
    pub sweeps: u32,
    pub chunks_reported: Vec<String>,
    pub runs_finalized: Vec<String>,
    pub active_jobs_left: usize,
}

pub struct Poller<'a, S> {
    pub ledger: &'a Ledger<S>,
    pub api: &'a ManagementApi,
    pub config: &'a PollConfig,
    pub deadline: Instant,
}

impl<S: ObjectStore> Poller<'_, S> {
    /// Sweeps every active run, again and again while jobs are in flight, until the deadline.
    pub async fn run(&self) -> Result<PollReport, String> {
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
    pub async fn sweep(&self, report: &mut PollReport) -> Result<usize, String> {
        let mut active = 0;
        for (key, _) in self.ledger.list(layout::ACTIVE_RUNS_PREFIX).await? {
            let Some(run_id) = layout::run_id_of_active_key(&key) else {
                continue;
            };
            active += self.poll_run(run_id, report).await?;
        }
        Ok(active)
    }

    async fn poll_run(&self, run_id: &str, report: &mut PollReport) -> Result<usize, String> {
        let prefix = layout::run_prefix(run_id);
        let Some(manifest) = self
            .ledger
            .get::<RunManifest>(&format!("{prefix}{}", layout::MANIFEST))
            .await?
        else {
            return Ok(0);
        };
        let manifest = manifest.value;
        let reported: BTreeSet<u32> = self
            .ledger
            .list(&format!("{prefix}{REPORTS_DIR}"))
            .await?
            .iter()
            .filter_map(|(k, _)| seq_of_report_key(k.strip_prefix(&prefix)?))
            .collect();
        let claimed: BTreeSet<u32> = self
            .ledger
            .list(&format!("{prefix}{}", layout::JOBS_DIR))
            .await?
            .iter()
            .filter_map(|(k, _)| layout::seq_of_job_key(k.strip_prefix(&prefix)?))
            .collect();
        let mut in_flight = 0;
        let mut new_reports = Vec::new();
        for &seq in claimed.difference(&reported) {
            let job_key = format!("{prefix}{}", layout::job_key(seq));
            let Some(job) = self.ledger.get::<JobRecord>(&job_key).await? else {
                continue;
            };
            match self.follow(run_id, &job_key, job).await? {
                Some(chunk_report) => new_reports.push(chunk_report),
                None => in_flight += 1,
            }
        }
        // Auth0 refused the run: its never-posted chunks end here, once nothing is in flight.
        let refused = self
            .ledger
            .get_bytes(&format!("{prefix}{}", layout::SUBMIT_FAILED))
            .await?;
        if let (Some((bytes, _)), 0) = (refused, in_flight) {
            let why: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let message = why
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("Auth0 refused the run")
                .to_string();
            for chunk in manifest.chunks.iter().filter(|c| !claimed.contains(&c.seq)) {
                new_reports.push(ChunkReport::unposted(
                    chunk.seq,
                    layout::external_id(run_id, chunk.seq),
                    u64::from(chunk.users),
                    "not_submitted",
                    format!("not posted: Auth0 refused an earlier chunk of this run ({message})"),
                    true,
                    unix_now_ms(),
                ));
            }
        }
        for r in &new_reports {
            self.ledger
                .put(&format!("{prefix}{}", report_key(r.seq)), r)
                .await?;
            tracing::info!(
                run_id,
                seq = r.seq,
                job_id = r.job_id,
                status = r.end.status,
                inserted = r.inserted,
                updated = r.updated,
                failed = r.failed,
                unknown = r.unknown,
                "chunk report written"
            );
            report.chunks_reported.push(format!("{run_id}:{}", r.seq));
        }
        let done = reported.len() + new_reports.len();
        let is_final = done >= manifest.chunks.len();
        self.update_status(
            run_id,
            &manifest,
            &new_reports,
            claimed.len(),
            in_flight,
            done,
            is_final,
        )
        .await?;
        if is_final {
            self.finalize(run_id, &manifest).await?;
            report.runs_finalized.push(run_id.to_string());
        }
        Ok(in_flight)
    }

    /// Follows one claimed chunk. `Some(report)` once it is final; `None` while in flight.
    async fn follow(
        &self,
        run_id: &str,
        job_key: &str,
        job: Versioned<JobRecord>,
    ) -> Result<Option<ChunkReport>, String> {
        let record = &job.value;
        let now = unix_now_ms();
        let (job_id, submitted_at_ms, transition) = match &record.state {
            // Submit is posting it (or died doing so: submit's slot recovery settles that).
            JobState::Claimed => return Ok(None),
            JobState::Refused { status, message } => {
                let reason = format!("Auth0 refused the request ({status}): {message}");
                return Ok(Some(ChunkReport::unposted(
                    record.seq,
                    record.external_id.clone(),
                    u64::from(record.users),
                    "refused",
                    reason,
                    true,
                    now,
                )));
            }
            JobState::Unknown { reason } => {
                return Ok(Some(ChunkReport::unposted(
                    record.seq,
                    record.external_id.clone(),
                    u64::from(record.users),
                    "unknown",
                    reason.clone(),
                    false,
                    now,
                )));
            }
            JobState::Submitted {
                job_id,
                submitted_at_ms,
            } => (job_id.clone(), *submitted_at_ms, true),
            // Finished but its report was never written (a crash in between): rebuild it.
            JobState::Finished { job_id, .. } => (job_id.clone(), record.claimed_at_ms, false),
        };
        let Some(answer) = this_sweep(
            self.api.get_job(&job_id, self.deadline).await,
            run_id,
            record.seq,
            &job_id,
            "job status",
        )?
        else {
            return Ok(None);
        };
        let end = match classify_job(answer.0, &answer.1, submitted_at_ms, now) {
            JobProgress::Active {
                status,
                percentage_done,
                ..
            } => {
                tracing::debug!(
                    run_id,
                    seq = record.seq,
                    job_id,
                    status,
                    percentage_done,
                    "job in flight"
                );
                return Ok(None);
            }
            JobProgress::Ended(end) => end,
        };
        let (errors, details) = if matches!(end.status.as_str(), "completed" | "failed") {
            let Some((status, body)) = this_sweep(
                self.api.get_job_errors(&job_id, self.deadline).await,
                run_id,
                record.seq,
                &job_id,
                "job errors",
            )?
            else {
                return Ok(None);
            };
            parse_errors(status, &body)
        } else {
            (Vec::new(), None)
        };
        let mut end = end;
        if end.details.is_none() {
            end.details = details;
        }
        let chunk_report = ChunkReport::new(
            record.seq,
            job_id,
            record.external_id.clone(),
            u64::from(record.users),
            end.clone(),
            errors,
            submitted_at_ms,
            now,
        );
        if transition {
            let finished = record
                .finished(end.status.clone())
                .map_err(|e| e.to_string())?;
            if !self.ledger.replace(job_key, &finished, &job.etag).await? {
                // Another poll got there first; it writes the report.
                return Ok(None);
            }
            // The slot is freed before the report is written: the report's S3 event wakes
            // submit, which must find the slot free to refill it at once.
            self.ledger
                .release_slot(record.slot, run_id, record.seq, now)
                .await?;
        }
        Ok(Some(chunk_report))
    }

    #[allow(clippy::too_many_arguments)] // the counts are computed by the caller's one pass
    async fn update_status(
        &self,
        run_id: &str,
        manifest: &RunManifest,
        new_reports: &[ChunkReport],
        claimed: usize,
        in_flight: usize,
        done: usize,
        is_final: bool,
    ) -> Result<(), String> {
        let key = format!("{}{STATUS}", layout::run_prefix(run_id));
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
            run_id: run_id.to_string(),
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

    /// Writes report.json, report.csv, report.html and failed-users.json from the manifest, the
    /// rejects and every chunk report, then takes the run off the active list. Idempotent.
    async fn finalize(&self, run_id: &str, manifest: &RunManifest) -> Result<(), String> {
        let prefix = layout::run_prefix(run_id);
        // One request per chunk: run them a few at a time, or a run of thousands of chunks
        // would not finish within one invocation.
        let report_keys: Vec<String> = manifest
            .chunks
            .iter()
            .map(|c| format!("{prefix}{}", report_key(c.seq)))
            .collect();
        let reports: Vec<ChunkReport> = stream::iter(&report_keys)
            .map(|key| self.ledger.get::<ChunkReport>(key))
            .buffered(FINALIZE_REQUESTS_IN_FLIGHT)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .map(|r| r.value)
            .collect();
        let mut run_report = RunReport::build(manifest, &reports);

        let mut csv = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        let mut failed_users = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        let mut sample = Vec::new();
        let mut emit = |row: CsvRow, csv: &mut tempfile::NamedTempFile| -> Result<(), String> {
            if sample.len() < HTML_SAMPLE_ROWS {
                sample.push(row.clone());
            }
            csv.write_all(row.to_line().as_bytes())
                .map_err(|e| e.to_string())
        };
        csv.write_all(CSV_HEADER.as_bytes())
            .map_err(|e| e.to_string())?;

        // Split's rejects: one row each, and their indexes to place chunk records in the input.
        // The file grows with the input (a redacted record per reject, and split writes it in
        // parts, so it can outgrow this function's /tmp), so it is read as it arrives, a line
        // at a time; only the indexes are kept (8 bytes each).
        let mut rejected: Vec<u64> = Vec::new();
        let mut on_line = |line: &[u8]| -> Result<(), String> {
            let Some(row) = reject_row(line) else {
                return Ok(());
            };
            if let Some(index) = row.index {
                rejected.push(index);
            }
            emit(row, &mut csv)
        };
        let mut lines = Lines::default();
        let rejects_key = format!("{prefix}{}", layout::REJECTS);
        self.ledger
            .get_pieces(&rejects_key, |piece| lines.feed(piece, &mut on_line))
            .await?;
        lines.finish(&mut on_line)?;

        // In-drop duplicates are found late, so the file is not in index order throughout.
        rejected.sort_unstable();
        rejected.dedup();

        // Auth0's failures and unknowns, with the original records for a re-drop.
        let mut failed_count = 0u64;
        failed_users.write_all(b"[").map_err(|e| e.to_string())?;
        let by_seq: BTreeMap<u32, &ChunkReport> = reports.iter().map(|r| (r.seq, r)).collect();
        for chunk in &manifest.chunks {
            let Some(r) = by_seq.get(&chunk.seq) else {
                continue;
            };
            if r.failed == 0 && r.unknown == 0 {
                continue;
            }
            let Some((bytes, _)) = self
                .ledger
                .get_bytes(&format!("{prefix}{}", chunk.key))
                .await?
            else {
                continue;
            };
            let users: Vec<Value> =
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", chunk.key))?;
            // Chunk position → input index.
            let indexes: Vec<u64> = chunk.input_indexes(&rejected).collect();
            let mut picked: Vec<(usize, String, String)> = Vec::new();
            if r.errors.is_empty() {
                let code = r
                    .failed_by_code
                    .keys()
                    .next()
                    .cloned()
                    .unwrap_or_else(|| codes::OUTCOME_UNKNOWN.to_string());
                let message = r
                    .end
                    .details
                    .clone()
                    .unwrap_or_else(|| format!("job ended {}", r.end.status));
                if r.failed + r.unknown >= r.users {
                    picked.extend((0..users.len()).map(|p| (p, code.clone(), message.clone())));
                }
            } else {
                for e in &r.errors {
                    if let Some(p) = position_of(&users, &e.user) {
                        let code = e.errors.first().map(|v| v.code.clone()).unwrap_or_default();
                        let message = e
                            .errors
                            .iter()
                            .map(|v| v.message.as_str())
                            .collect::<Vec<_>>()
                            .join("; ");
                        picked.push((p, code, message));
                    }
                }
            }
            for (p, code, message) in picked {
                let user = &users[p];
                let email = user
                    .get("email")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                emit(
                    CsvRow {
                        stage: "auth0",
                        index: indexes.get(p).copied(),
                        email,
                        code,
                        message,
                    },
                    &mut csv,
                )?;
                if failed_count > 0 {
                    failed_users.write_all(b",").map_err(|e| e.to_string())?;
                }
                serde_json::to_writer(&mut failed_users, user).map_err(|e| e.to_string())?;
                failed_count += 1;
            }
        }
        failed_users.write_all(b"]").map_err(|e| e.to_string())?;
        if failed_count > 0 {
            let key = format!("{prefix}{FAILED_USERS}");
            self.ledger.put_file(&key, failed_users.path()).await?;
            self.ledger.mark_purgeable(&key).await?;
            run_report.failed_users_key = Some(FAILED_USERS.to_string());
        }
        // The run is final and everything read from the chunks is written: their password
        // hashes may now age out under the bucket's retention rule.
        let chunk_keys: Vec<String> = manifest
            .chunks
            .iter()
            .map(|c| format!("{prefix}{}", c.key))
            .collect();
        stream::iter(&chunk_keys)
            .map(|key| self.ledger.mark_purgeable(key))
            .buffer_unordered(FINALIZE_REQUESTS_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        csv.flush().map_err(|e| e.to_string())?;
        self.ledger
            .put_file(&format!("{prefix}{REPORT_CSV}"), csv.path())
            .await?;
        let html = render_html(&run_report, &sample);
        self.ledger
            .put_raw(
                &format!("{prefix}{REPORT_HTML}"),
                html.into_bytes(),
                "text/html; charset=utf-8",
            )
            .await?;
        self.ledger
            .put(&format!("{prefix}{REPORT_JSON}"), &run_report)
            .await?;
        self.ledger.delete(&layout::active_run_key(run_id)).await?;
        tracing::info!(
            run_id,
            users_in = run_report.users_in,
            rejected = run_report.rejected_before_submission,
            inserted = run_report.inserted,
            updated = run_report.updated,
            failed = run_report.failed_at_auth0,
            unknown = run_report.unknown,
            conservation_holds = run_report.conservation_holds,
            "run report written"
        );
        Ok(())
    }
}

/// An Auth0 answer for this sweep: `None` when Auth0 was not available (rate limit past the
/// deadline, repeated 5xx), which the next sweep retries; an error only for a credentials fault.
fn this_sweep<T>(
    answer: Result<T, ApiError>,
    run_id: &str,
    seq: u32,
    job_id: &str,
    what: &str,
) -> Result<Option<T>, String> {
    match answer {
        Ok(a) => Ok(Some(a)),
        Err(ApiError::Transient(e)) => {
            tracing::warn!(
                run_id,
                seq,
                job_id,
                error = e,
                "{what} not available this sweep"
            );
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
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
