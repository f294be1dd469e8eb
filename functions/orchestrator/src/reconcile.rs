//! The reconcile and rollback stages over any object store: read a final run's accepted users
//! back from the tenant (one export job per run, or users-by-email for a tiny run), and undo it.
//!
//! Reconcile writes `reconciliation.json` and the report's section; an in-doubt chunk whose users
//! are missing is submitted once more (a `resubmits/<seq>.json` marker created only-if-absent
//! first, so it can never happen twice). Rollback deletes only users the run inserted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use auth0_api::{unix_now_ms, ApiError, ExportField, ManagementApi};
use import_core::jobs::{classify_job, parse_errors, ChunkReport, JobProgress};
use import_core::layout::{self, RunPath};
use import_core::ledger::{JobRecord, JobState, Ledger, Lines, ObjectStore, StoreError};
use import_core::manifest::RunManifest;
use import_core::multipart::ImportFields;
use import_core::reconcile::{
    created_by_run, export_fields, InDoubtVerdict, Index, IndexBuilder, Reconciliation, Samples,
    RECONCILIATION_JSON,
};
use import_core::report::{render_html, CsvRow, RunReport};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Runs with at most this many accepted users (all with an email) are checked one user at a
/// time with `GET /users-by-email` instead of an export job: 50 reads is within a second or two
/// of an Enterprise tenant's 16/s (25 s at the Free tier's 2/s), while an export job takes a
/// creation, several polls and a download, and its link expires in 60 s.
pub const BY_EMAIL_MAX_USERS: usize = 50;
/// `runs/<id>/reconcile-export.json`: the run's one export job, reused by a resumed reconcile.
pub const EXPORT_RECORD: &str = "reconcile-export.json";
/// `runs/<id>/rollback.json`
pub const ROLLBACK_JSON: &str = "rollback.json";
/// `runs/<id>/resubmits/<seq>.json`: an in-doubt chunk submitted once more.
pub const RESUBMITS_DIR: &str = "resubmits/";
/// Auth0 keeps a job (and its download) for 24 h; an older recorded export is made again.
const EXPORT_REUSE_MS: u64 = 23 * 3600 * 1000;
/// Users named in the rollback report's dry-run sample.
const ROLLBACK_SAMPLE: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("the run folder: {0}")]
    Store(#[from] StoreError),
    #[error("Auth0: {0}")]
    Api(#[from] ApiError),
    #[error("run {run}: {reason}")]
    Run { run: String, reason: String },
    #[error(transparent)]
    Reconcile(#[from] import_core::reconcile::ReconcileError),
    /// The token lacks a scope the stage needs.
    #[error("the credentials' token lacks the {scope} scope, which {what} needs: grant it to the application (Auth0 dashboard → Applications → APIs → Auth0 Management API)")]
    Scope {
        scope: &'static str,
        what: &'static str,
    },
}

/// The export job a run's reconcile made.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExportRecord {
    job_id: String,
    created_at_ms: u64,
}

/// An in-doubt chunk submitted once more.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resubmit {
    pub seq: u32,
    pub missing: u64,
    pub at_ms: u64,
    pub job_id: Option<String>,
    pub outcome: String,
}

pub struct Stage<'a, S> {
    pub ledger: &'a Ledger<S>,
    pub api: &'a ManagementApi,
    pub deadline: Instant,
    /// Between reads of a running export job.
    pub poll_every: Duration,
    /// How long after a chunk went in doubt (its claim) its missing users may be submitted once
    /// more: a job Auth0 created behind the lost answer may still be importing them before
    /// then. Auth0 ends every job within 2 h (facts §1.8): `IN_DOUBT_WAIT` by default.
    pub in_doubt_wait: Duration,
}

/// `jobs::JOB_DEAD_AFTER_MS` (2 h 10 min): past it, no job of the chunk can still be running.
pub const IN_DOUBT_WAIT: Duration = Duration::from_millis(import_core::jobs::JOB_DEAD_AFTER_MS);

/// What a run is, read once for both stages.
struct RunFacts {
    manifest: RunManifest,
    report: RunReport,
    connection_id: String,
    upsert: bool,
    /// The earliest moment any of the run's requests could have left (its first claim).
    started_ms: Option<u64>,
    /// When the latest chunk of the run now in doubt was claimed, if any is.
    in_doubt_since_ms: Option<u64>,
}

impl<S: ObjectStore> Stage<'_, S> {
    async fn facts(&self, run: &RunPath) -> Result<RunFacts, StageError> {
        let fail = |reason: &str| StageError::Run {
            run: run.id().to_string(),
            reason: reason.to_string(),
        };
        let manifest = self
            .ledger
            .get::<RunManifest>(&run.manifest())
            .await?
            .ok_or_else(|| fail("has no manifest"))?
            .value;
        let report = self
            .ledger
            .get::<RunReport>(&run.report_json())
            .await?
            .ok_or_else(|| fail("is not final yet (no report.json)"))?
            .value;
        let options = manifest
            .options
            .clone()
            .ok_or_else(|| fail("was a local rehearsal: it has no connection to read back"))?;
        let (mut started_ms, mut in_doubt_since_ms) = (None::<u64>, None::<u64>);
        for (key, _) in self.ledger.list(&run.jobs()).await? {
            if let Some(record) = self.ledger.get::<JobRecord>(&key).await? {
                let at = record.value.claimed_at_ms;
                started_ms = Some(started_ms.map_or(at, |s| s.min(at)));
                if matches!(record.value.state, JobState::InDoubt { .. }) {
                    in_doubt_since_ms = in_doubt_since_ms.max(Some(at));
                }
            }
        }
        Ok(RunFacts {
            manifest,
            report,
            connection_id: options.connection_id,
            upsert: options.upsert,
            started_ms,
            in_doubt_since_ms,
        })
    }

    /// The run's accepted users from its chunks, with Auth0's failures and the in-doubt chunks
    /// marked. Calls `each` with every accepted record too (for samples), after sealing.
    async fn index(&self, run: &RunPath, facts: &RunFacts) -> Result<Index, StageError> {
        let mut builder = IndexBuilder::default();
        for chunk in &facts.manifest.chunks {
            let report = self
                .ledger
                .get::<ChunkReport>(&run.report(chunk.seq))
                .await?
                .map(|r| r.value);
            // Chunks Auth0 refused, or never posted, cannot have reached the tenant.
            let never_sent = report
                .as_ref()
                .is_some_and(|r| r.job_id.is_empty() && !r.in_doubt());
            if never_sent {
                continue;
            }
            let bytes = self.chunk_bytes(run, &chunk.key).await?;
            let in_doubt = report.as_ref().is_none_or(ChunkReport::in_doubt);
            builder.add_chunk(chunk.seq, &bytes, in_doubt)?;
            for error in report.iter().flat_map(|r| r.errors.iter()) {
                builder.mark_failed(&error.user);
            }
        }
        Ok(builder.seal())
    }

    async fn chunk_bytes(&self, run: &RunPath, key: &str) -> Result<Vec<u8>, StageError> {
        match self.ledger.get_bytes(&run.object(key)).await? {
            Some((bytes, _)) => Ok(bytes),
            None => Err(StageError::Run {
                run: run.id().to_string(),
                reason: format!(
                    "chunk {key} is gone (purged after the run ended?): its users cannot be read back"
                ),
            }),
        }
    }

    /// Offers every accepted record to the samples (a second pass over the chunks).
    async fn samples(
        &self,
        run: &RunPath,
        facts: &RunFacts,
        index: &Index,
    ) -> Result<Samples, StageError> {
        let mut samples = Samples::default();
        for chunk in &facts.manifest.chunks {
            if samples.full() {
                break;
            }
            let Some((bytes, _)) = self.ledger.get_bytes(&run.object(&chunk.key)).await? else {
                continue;
            };
            let users: Vec<Value> = serde_json::from_slice(&bytes).unwrap_or_default();
            for user in &users {
                samples.offer(index, user);
            }
        }
        Ok(samples)
    }

    /// Streams the tenant's users of the connection into `on_user` (an export job, or one
    /// users-by-email read per accepted user for a tiny run). Returns the method used.
    async fn read_tenant(
        &self,
        run: &RunPath,
        facts: &RunFacts,
        fresh_export: bool,
        index: &mut Index,
        mut on_user: impl FnMut(&mut Index, &Value),
    ) -> Result<&'static str, StageError> {
        let emails: Option<Vec<String>> = if index.users() <= BY_EMAIL_MAX_USERS {
            self.emails(run, facts).await?
        } else {
            None
        };
        if let Some(emails) = emails {
            for email in emails {
                for user in self
                    .api
                    .users_by_email(&email.to_lowercase(), self.deadline)
                    .await?
                {
                    // users-by-email answers every connection: keep the database users.
                    let database = user
                        .get("identities")
                        .and_then(Value::as_array)
                        .is_some_and(|ids| {
                            ids.iter()
                                .any(|i| i.get("provider").and_then(Value::as_str) == Some("auth0"))
                        });
                    if database {
                        on_user(index, &user);
                    }
                }
            }
            return Ok("users_by_email");
        }
        let job_id = self.export_job(run, facts, fresh_export).await?;
        let mut lines = Lines::default();
        let mut failure: Option<String> = None;
        let cell = std::cell::RefCell::new(&mut *index);
        let handle = |line: &[u8],
                      failure: &mut Option<String>,
                      on_user: &mut dyn FnMut(&mut Index, &Value)| {
            if line.iter().all(u8::is_ascii_whitespace) {
                return;
            }
            match serde_json::from_slice::<Value>(line) {
                Ok(user) => on_user(&mut cell.borrow_mut(), &user),
                Err(e) => {
                    failure.get_or_insert_with(|| format!("an export line is not JSON: {e}"));
                }
            }
        };
        self.api
            .download_export(
                &job_id,
                self.poll_every,
                self.deadline,
                || {
                    cell.borrow_mut().reset();
                },
                |piece| {
                    lines.feed(piece, &mut |line: &[u8]| {
                        handle(line, &mut failure, &mut on_user);
                        Ok::<(), String>(())
                    })
                },
            )
            .await?;
        lines
            .finish(&mut |line: &[u8]| {
                handle(line, &mut failure, &mut on_user);
                Ok::<(), String>(())
            })
            .map_err(|reason| StageError::Run {
                run: run.id().to_string(),
                reason,
            })?;
        if let Some(reason) = failure {
            return Err(StageError::Run {
                run: run.id().to_string(),
                reason,
            });
        }
        Ok("export")
    }

    /// Every accepted user's email, or None when one has none (then only an export finds it).
    async fn emails(
        &self,
        run: &RunPath,
        facts: &RunFacts,
    ) -> Result<Option<Vec<String>>, StageError> {
        let mut emails = Vec::new();
        for chunk in &facts.manifest.chunks {
            let bytes = self.chunk_bytes(run, &chunk.key).await?;
            let users: Vec<Value> = serde_json::from_slice(&bytes).unwrap_or_default();
            for user in users {
                match user.get("email").and_then(Value::as_str) {
                    Some(email) => emails.push(email.to_string()),
                    None => return Ok(None),
                }
            }
        }
        emails.sort();
        emails.dedup();
        Ok(Some(emails))
    }

    /// The run's export job: the recorded one when it is recent (a resumed reconcile), else a
    /// new one, recorded. Rollback asks for a fresh one (users deleted since are not in the old).
    async fn export_job(
        &self,
        run: &RunPath,
        facts: &RunFacts,
        fresh: bool,
    ) -> Result<String, StageError> {
        let key = run.object(EXPORT_RECORD);
        if !fresh {
            if let Some(record) = self.ledger.get::<ExportRecord>(&key).await? {
                if unix_now_ms().saturating_sub(record.value.created_at_ms) < EXPORT_REUSE_MS {
                    return Ok(record.value.job_id);
                }
            }
        }
        let fields: Vec<ExportField> = export_fields()
            .into_iter()
            .map(|name| ExportField {
                name: name.to_string(),
                export_as: None,
            })
            .collect();
        let job_id = self
            .api
            .create_export(&facts.connection_id, &fields, self.deadline)
            .await?;
        let record = ExportRecord {
            job_id: job_id.clone(),
            created_at_ms: unix_now_ms(),
        };
        self.ledger.put(&key, &record).await?;
        Ok(job_id)
    }

    /// Reconciles a final run: `reconciliation.json`, the report's section, and the in-doubt
    /// chunks whose users are missing submitted once more (when `resubmit`).
    pub async fn reconcile(
        &self,
        run: &RunPath,
        resubmit: bool,
    ) -> Result<Reconciliation, StageError> {
        let facts = self.facts(run).await?;
        self.reconcile_with(run, facts, resubmit).await
    }

    /// Reads a final run back and reports only, once its chunks in doubt have settled
    /// (`in_doubt_wait` since the latest was claimed: a job Auth0 made behind a lost answer has
    /// ended, so its users are not counted missing while it still runs). `Ok(None)`: not yet.
    pub async fn reconcile_when_settled(
        &self,
        run: &RunPath,
    ) -> Result<Option<Reconciliation>, StageError> {
        let facts = self.facts(run).await?;
        let wait_ms = u64::try_from(self.in_doubt_wait.as_millis()).unwrap_or(u64::MAX);
        if facts
            .in_doubt_since_ms
            .is_some_and(|claimed_ms| unix_now_ms() < claimed_ms.saturating_add(wait_ms))
        {
            return Ok(None);
        }
        self.reconcile_with(run, facts, false).await.map(Some)
    }

    async fn reconcile_with(
        &self,
        run: &RunPath,
        facts: RunFacts,
        resubmit: bool,
    ) -> Result<Reconciliation, StageError> {
        let mut fresh_export = false;
        // A second pass only after chunks were submitted once more: it reads them back too.
        let result = loop {
            let mut index = self.index(run, &facts).await?;
            let method = self
                .read_tenant(run, &facts, fresh_export, &mut index, |ix, user| {
                    ix.user(user);
                })
                .await?;
            let mut result = index.finish(facts.report.inserted, facts.report.updated);
            result.report.method = Some(method.to_string());
            result.samples = self.samples(run, &facts, &index).await?;
            let mut sent = false;
            for chunk in &mut result.in_doubt_chunks {
                let marker = run.object(&format!("{RESUBMITS_DIR}{:06}.json", chunk.seq));
                if resubmit && chunk.verdict == InDoubtVerdict::Resubmit {
                    sent |= self.resubmit(run, &facts, chunk.seq, chunk.missing).await?;
                }
                chunk.resubmitted = self.ledger.exists(&marker).await?;
            }
            if !sent || fresh_export {
                break result;
            }
            fresh_export = true;
        };
        self.ledger
            .put(&run.object(RECONCILIATION_JSON), &result)
            .await?;
        let mut report = facts.report.clone();
        report.reconciliation = Some(result.report.clone());
        self.ledger.put(&run.report_json(), &report).await?;
        let sample = self.csv_sample(run).await?;
        self.ledger
            .put_raw(
                &run.report_html(),
                render_html(&report, &sample).into_bytes(),
                "text/html; charset=utf-8",
            )
            .await?;
        Ok(result)
    }

    /// The first rows of report.csv, for the page re-rendered with the new section.
    async fn csv_sample(&self, run: &RunPath) -> Result<Vec<CsvRow>, StageError> {
        let Some((bytes, _)) = self.ledger.get_bytes(&run.report_csv()).await? else {
            return Ok(Vec::new());
        };
        let text = String::from_utf8_lossy(&bytes);
        Ok(text
            .lines()
            .skip(1)
            .take(50)
            .filter_map(|line| {
                let cells = csv_cells(line);
                let [stage, index, email, code, message] = <[String; 5]>::try_from(cells).ok()?;
                Some(CsvRow {
                    stage: if stage == "split" { "split" } else { "auth0" },
                    index: index.parse().ok(),
                    email,
                    code,
                    message,
                })
            })
            .collect())
    }

    /// Submits an in-doubt chunk once more and follows its job to the end. The marker is created
    /// only if absent before anything is sent: a second reconcile finds it and sends nothing.
    async fn resubmit(
        &self,
        run: &RunPath,
        facts: &RunFacts,
        seq: u32,
        missing: u64,
    ) -> Result<bool, StageError> {
        let key = run.object(&format!("{RESUBMITS_DIR}{seq:06}.json"));
        // Not while a job Auth0 may have made of it could still be importing these users.
        let claimed_ms = self
            .ledger
            .get::<JobRecord>(&run.job(seq))
            .await?
            .map(|job| job.value.claimed_at_ms);
        let wait_ms = u64::try_from(self.in_doubt_wait.as_millis()).unwrap_or(u64::MAX);
        if let Some(settled_ms) = claimed_ms.map(|at| at.saturating_add(wait_ms)) {
            if unix_now_ms() < settled_ms {
                tracing::info!(
                    seq,
                    settled_ms,
                    "in-doubt chunk not submitted again yet: a job made of it may still be running"
                );
                return Ok(false);
            }
        }
        let mut marker = Resubmit {
            seq,
            missing,
            at_ms: unix_now_ms(),
            job_id: None,
            outcome: "sending".into(),
        };
        if !self.ledger.create(&key, &marker).await? {
            tracing::info!(
                seq,
                "in-doubt chunk was submitted once more already: not again"
            );
            return Ok(false);
        }
        let Some(chunk) = facts.manifest.chunks.iter().find(|c| c.seq == seq) else {
            return Ok(false);
        };
        let bytes = self.chunk_bytes(run, &chunk.key).await?;
        let external_id = format!("{}r", layout::external_id(run.id(), seq));
        let fields = ImportFields {
            connection_id: &facts.connection_id,
            upsert: facts.upsert,
            send_completion_email: false,
            external_id: &external_id,
        };
        let posted = loop {
            match self.api.post_import(&fields, &bytes, self.deadline).await {
                // Another run holds the tenant's slots: wait for one.
                Err(ApiError::SlotsBusy) if Instant::now() + self.poll_every < self.deadline => {
                    tokio::time::sleep(self.poll_every).await;
                }
                other => break other,
            }
        };
        match posted {
            Ok(job_id) => {
                marker.job_id = Some(job_id.clone());
                marker.outcome = self.follow(&job_id).await?;
            }
            Err(e) => marker.outcome = format!("not submitted again: {e}"),
        }
        self.ledger.put(&key, &marker).await?;
        Ok(true)
    }

    /// Follows a job to its end: `completed: N inserted, …` or why not.
    async fn follow(&self, job_id: &str) -> Result<String, StageError> {
        let submitted = unix_now_ms();
        loop {
            let (status, body) = self.api.get_job(job_id, self.deadline).await?;
            if let JobProgress::Ended(end) = classify_job(status, &body, submitted, unix_now_ms()) {
                let (errors, _) = match self.api.get_job_errors(job_id, self.deadline).await {
                    Ok((s, b)) => parse_errors(s, &b),
                    Err(_) => (Vec::new(), None),
                };
                return Ok(match end.summary {
                    Some(s) => format!(
                        "{}: {} inserted, {} updated, {} failed",
                        end.status,
                        s.inserted,
                        s.updated,
                        s.failed.max(errors.len() as u64)
                    ),
                    None => end.status,
                });
            }
            if Instant::now() + self.poll_every > self.deadline {
                return Ok("still running at the deadline".into());
            }
            tokio::time::sleep(self.poll_every).await;
        }
    }

    /// Rollback: deletes (with `act`) the users the run inserted and nothing else. Without `act`
    /// a dry run: the same classification, nothing deleted. Writes `rollback.json`.
    pub async fn rollback(&self, run: &RunPath, act: bool) -> Result<RollbackReport, StageError> {
        if act {
            let scopes = self.api.granted_scopes(self.deadline).await?;
            // A token that is not a JWT says nothing: then the first delete's 403 tells.
            let lacking = scopes
                .granted
                .as_ref()
                .is_some_and(|granted| !granted.iter().any(|s| s == "delete:users"));
            if lacking {
                return Err(StageError::Scope {
                    scope: "delete:users",
                    what: "rollback",
                });
            }
        }
        let facts = self.facts(run).await?;
        let mut index = self.index(run, &facts).await?;
        let started = facts.started_ms;
        let upsert = facts.upsert;
        let mut candidates: Vec<String> = Vec::new();
        let mut report = RollbackReport {
            run_id: run.id().to_string(),
            dry_run: !act,
            ..RollbackReport::default()
        };
        let skip = |report: &mut RollbackReport, reason: &str, user_id: Option<&String>| {
            *report.skipped.entry(reason.to_string()).or_default() += 1;
            if report.skipped_sample.len() < ROLLBACK_SAMPLE {
                report.skipped_sample.push(SkippedUser {
                    user_id: user_id.cloned().unwrap_or_default(),
                    reason: reason.to_string(),
                });
            }
        };
        self.read_tenant(run, &facts, true, &mut index, |ix, user| {
            let Some(found) = ix.user(user) else { return };
            let Some(user_id) = found.user_id.clone() else {
                skip(&mut report, "exported without a user_id", None);
                return;
            };
            if found.failed_at_auth0 {
                skip(
                    &mut report,
                    "Auth0 failed this user in the run (it existed before)",
                    Some(&user_id),
                );
                return;
            }
            match started.and_then(|s| created_by_run(found.created_at.as_deref(), s)) {
                Some(true) => candidates.push(user_id),
                Some(false) if upsert => skip(
                    &mut report,
                    "existed before the run (updated or untouched by it)",
                    Some(&user_id),
                ),
                Some(false) => skip(&mut report, "existed before the run", Some(&user_id)),
                None => skip(
                    &mut report,
                    "no created_at to tell whether the run created it",
                    Some(&user_id),
                ),
            }
        })
        .await?;
        candidates.sort();
        candidates.dedup();
        report.to_delete = candidates.len() as u64;
        report.sample = candidates.iter().take(ROLLBACK_SAMPLE).cloned().collect();
        if act {
            for user_id in &candidates {
                match self.api.delete_user(user_id, self.deadline).await {
                    Ok(()) => report.deleted += 1,
                    Err(ApiError::Refused { status: 403, .. }) => {
                        return Err(StageError::Scope {
                            scope: "delete:users",
                            what: "rollback",
                        })
                    }
                    Err(e) => {
                        report.failed += 1;
                        if report.failures.len() < ROLLBACK_SAMPLE {
                            report.failures.push(SkippedUser {
                                user_id: user_id.clone(),
                                reason: e.to_string(),
                            });
                        }
                    }
                }
            }
        }
        self.ledger.put(&run.object(ROLLBACK_JSON), &report).await?;
        Ok(report)
    }
}

/// `rollback.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackReport {
    pub run_id: String,
    pub dry_run: bool,
    /// Users the run inserted and that are still in the tenant.
    pub to_delete: u64,
    pub deleted: u64,
    pub failed: u64,
    /// The run's users left alone, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Some of the users to delete (user ids).
    pub sample: Vec<String>,
    pub skipped_sample: Vec<SkippedUser>,
    pub failures: Vec<SkippedUser>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedUser {
    pub user_id: String,
    pub reason: String,
}

/// The cells of one line of our report.csv (quoted cells, doubled quotes).
fn csv_cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_undo_our_quoting() {
        assert_eq!(
            csv_cells(r#"auth0,3,a@x.io,DUPLICATED_USER,"says ""hi"", twice""#),
            vec![
                "auth0",
                "3",
                "a@x.io",
                "DUPLICATED_USER",
                r#"says "hi", twice"#
            ]
        );
    }
}
