//! The run's lasting account, built from split's manifest and every chunk's report: totals
//! with the conservation identity, the CSV of users not imported, the HTML page, the status.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

pub use crate::canary::{CanaryOutcome, CanaryReport, CanaryResult};
use crate::jobs::{ChunkReport, JobEnd};
use crate::manifest::{ChunkEntry, RunManifest, Source};
use crate::options::DropOptions;
pub use crate::report_html::render_html;
pub use crate::report_sections::ReconciliationReport;

/// Codes for users Auth0 never processed, so the report can name why.
pub mod codes {
    /// Auth0 refused the chunk's request (e.g. unknown connection).
    pub const REQUEST_REFUSED: &str = "REQUEST_REFUSED";
    /// The chunk was never posted because Auth0 had refused the run.
    pub const NOT_SUBMITTED: &str = "NOT_SUBMITTED";
    /// Auth0 said nothing about this user (job failed as a whole, dead, gone).
    pub const OUTCOME_UNKNOWN: &str = "OUTCOME_UNKNOWN";
    /// Accepted by split, but held back: a canary failed, so no chunk was submitted.
    pub const CANARY_CHECK_FAILED: &str = "CANARY_CHECK_FAILED";
    /// The chunk's request was sent and its answer does not prove that no job was created:
    /// the users may be imported already. Never posted again automatically.
    pub const OUTCOME_IN_DOUBT: &str = "OUTCOME_IN_DOUBT";
}

/// Why a chunk ended without a job we could follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unposted {
    /// Auth0 refused the request: no job, its users failed.
    Refused,
    /// Never sent, because Auth0 refused the run: its users failed.
    NotSubmitted,
    /// Sent, and whether a job was created is unknown: its users are unknown.
    InDoubt,
}

impl Unposted {
    fn status(self) -> &'static str {
        match self {
            Unposted::Refused => "refused",
            Unposted::NotSubmitted => "not_submitted",
            Unposted::InDoubt => "in_doubt",
        }
    }

    /// Whether the users are known not to be imported (else their fate is unknown).
    fn failed(self) -> bool {
        !matches!(self, Unposted::InDoubt)
    }
}

impl ChunkReport {
    /// A chunk that ended without a job we could follow: refused, never posted, or in doubt.
    pub fn unposted(
        seq: u32,
        external_id: String,
        users: u64,
        kind: Unposted,
        reason: String,
        now_ms: u64,
    ) -> Self {
        let code = match kind {
            Unposted::Refused => codes::REQUEST_REFUSED,
            Unposted::NotSubmitted => codes::NOT_SUBMITTED,
            Unposted::InDoubt => codes::OUTCOME_IN_DOUBT,
        };
        let failed = kind.failed();
        ChunkReport {
            seq,
            job_id: String::new(),
            external_id,
            end: JobEnd {
                status: kind.status().to_string(),
                summary: None,
                details: Some(reason),
            },
            users,
            inserted: 0,
            updated: 0,
            failed: if failed { users } else { 0 },
            unknown: if failed { 0 } else { users },
            failed_by_code: if failed {
                BTreeMap::from([(code.to_string(), users)])
            } else {
                BTreeMap::new()
            },
            errors: Vec::new(),
            submitted_at_ms: 0,
            finished_at_ms: now_ms,
            slot: None,
        }
    }

    /// Whether this chunk's users may already be in the tenant from a job we never heard of.
    pub fn in_doubt(&self) -> bool {
        self.end.status == Unposted::InDoubt.status()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobLine {
    pub seq: u32,
    pub job_id: String,
    pub status: String,
    pub users: u64,
    pub inserted: u64,
    pub updated: u64,
    pub failed: u64,
    pub unknown: u64,
    pub duration_s: Option<f64>,
    pub details: Option<String>,
    /// When the job was posted and when poll saw it end (ms since the epoch), for the
    /// timeline. Absent for a chunk that never became a job, and in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// The tenant job slot the job held (its job record's `slot`), when the writer knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
}

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub source: Source,
    pub users_in: u64,
    pub rejected_before_submission: u64,
    pub rejected_by_code: BTreeMap<String, u64>,
    pub submitted: u64,
    pub inserted: u64,
    pub updated: u64,
    pub failed_at_auth0: u64,
    pub failed_by_code: BTreeMap<String, u64>,
    pub unknown: u64,
    /// Of `unknown`, the users of chunks in doubt: sent, and maybe imported by a job whose id
    /// Auth0's answer did not give us. Never posted again automatically.
    #[serde(default)]
    pub in_doubt: u64,
    pub identity: String,
    pub conservation_holds: bool,
    pub jobs: Vec<JobLine>,
    pub chunks: usize,
    pub failed_users_key: Option<String>,
    /// Users whose fate is unknown (in doubt, job failed as a whole, dead): their original
    /// records. Re-dropping them is safe: users Auth0 already has come back as DUPLICATED_USER.
    #[serde(default)]
    pub unknown_users_key: Option<String>,
    /// Why the drop was refused as a whole (nothing was submitted), when it was.
    #[serde(default)]
    pub refused: Option<String>,
    /// The canary check split made (checked/passed/failed/missing and why), when it had canaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canaries: Option<CanaryReport>,
    /// The options the run's jobs were posted with (absent for a local rehearsal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<DropOptions>,
    /// The first job posted and the last chunk ended (ms since the epoch), when any did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// Users read back from the tenant after the last job, when the run was reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciliation: Option<ReconciliationReport>,
    /// Users split accepted without a password (a mapped source's empty hash column, or a
    /// system that exports none): they will have to reset it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub imported_without_password: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RunReport {
    /// The report of every chunk at once (a run of a few chunks; finalisation folds instead:
    /// `start`, `add_chunk` for each chunk in order, `close`).
    pub fn build(manifest: &RunManifest, chunk_reports: &[ChunkReport]) -> Self {
        let reported: BTreeMap<u32, &ChunkReport> =
            chunk_reports.iter().map(|c| (c.seq, c)).collect();
        let mut r = RunReport::start(manifest);
        for chunk in &manifest.chunks {
            r.add_chunk(chunk, reported.get(&chunk.seq).copied());
        }
        r.close();
        r
    }

    /// The totals before any chunk is counted: what the manifest says.
    pub fn start(manifest: &RunManifest) -> Self {
        let mut r = RunReport {
            run_id: manifest.run_id.clone(),
            source: manifest.source.clone(),
            users_in: manifest.users_in,
            rejected_before_submission: manifest.users_rejected,
            rejected_by_code: manifest.rejects_by_code.clone(),
            submitted: 0,
            inserted: 0,
            updated: 0,
            failed_at_auth0: 0,
            failed_by_code: BTreeMap::new(),
            unknown: 0,
            in_doubt: 0,
            identity: "users_in = rejected_before_submission + inserted + updated + failed_at_auth0 + unknown".into(),
            conservation_holds: false,
            jobs: Vec::new(),
            chunks: manifest.chunks.len(),
            failed_users_key: None,
            unknown_users_key: None,
            refused: refused_as_a_whole(manifest),
            canaries: manifest.canaries.clone(),
            options: manifest.options.clone(),
            started_at_ms: None,
            finished_at_ms: None,
            reconciliation: None,
            imported_without_password: manifest.transformations.imported_without_password,
        };
        // A run a canary stopped publishes no chunk: its accepted users were held back before
        // submission, and are counted there so the identity still accounts for them.
        if manifest.canaries.as_ref().is_some_and(|c| c.blocked) && manifest.chunks.is_empty() {
            r.rejected_before_submission += manifest.users_accepted;
            if manifest.users_accepted > 0 {
                *r.rejected_by_code
                    .entry(codes::CANARY_CHECK_FAILED.to_string())
                    .or_default() += manifest.users_accepted;
            }
        }
        r
    }

    /// Counts one chunk of the manifest, with its report when it has one. Chunks without a
    /// report count as unknown: the identity never hides a user.
    pub fn add_chunk(&mut self, chunk: &ChunkEntry, report: Option<&ChunkReport>) {
        let r = self;
        let Some(c) = report else {
            r.unknown += u64::from(chunk.users);
            return;
        };
        if !c.job_id.is_empty() {
            r.submitted += c.users;
        }
        r.inserted += c.inserted;
        r.updated += c.updated;
        r.failed_at_auth0 += c.failed;
        r.unknown += c.unknown;
        if c.in_doubt() {
            r.in_doubt += c.unknown;
        }
        for (code, n) in &c.failed_by_code {
            *r.failed_by_code.entry(code.clone()).or_default() += n;
        }
        // Failures the error list did not name still count, under an honest code.
        let named: u64 = c.failed_by_code.values().sum();
        if c.failed > named {
            *r.failed_by_code.entry("UNLISTED".into()).or_default() += c.failed - named;
        }
        let duration_s = (c.submitted_at_ms > 0 && c.finished_at_ms >= c.submitted_at_ms)
            .then(|| (c.finished_at_ms - c.submitted_at_ms) as f64 / 1000.0);
        r.jobs.push(JobLine {
            seq: c.seq,
            job_id: c.job_id.clone(),
            status: c.end.status.clone(),
            users: c.users,
            inserted: c.inserted,
            updated: c.updated,
            failed: c.failed,
            unknown: c.unknown,
            duration_s,
            details: c.end.details.clone(),
            submitted_at_ms: (c.submitted_at_ms > 0).then_some(c.submitted_at_ms),
            finished_at_ms: (c.finished_at_ms > 0).then_some(c.finished_at_ms),
            slot: c.slot,
        });
        if c.submitted_at_ms > 0 {
            r.started_at_ms = Some(
                r.started_at_ms
                    .map_or(c.submitted_at_ms, |t| t.min(c.submitted_at_ms)),
            );
        }
        if c.finished_at_ms > 0 {
            r.finished_at_ms = Some(
                r.finished_at_ms
                    .map_or(c.finished_at_ms, |t| t.max(c.finished_at_ms)),
            );
        }
    }

    /// Settles the identity once every chunk is counted.
    pub fn close(&mut self) {
        let r = self;
        r.conservation_holds = r.users_in
            == r.rejected_before_submission
                + r.inserted
                + r.updated
                + r.failed_at_auth0
                + r.unknown;
    }

    /// The refusal of a whole drop, as the report states it.
    pub fn refuse(&mut self, reason: String) {
        self.refused = Some(reason);
    }

    /// The totals as a person reads them (CLI, demo), identity last.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, n: u64| {
            let _ = writeln!(out, "{label:<30}{n:>8}");
        };
        line("users in", self.users_in);
        line(
            "rejected before submission",
            self.rejected_before_submission,
        );
        for (code, n) in &self.rejected_by_code {
            line(&format!("  {code}"), *n);
        }
        line("inserted", self.inserted);
        line("updated", self.updated);
        line("failed at Auth0", self.failed_at_auth0);
        for (code, n) in &self.failed_by_code {
            line(&format!("  {code}"), *n);
        }
        line("unknown", self.unknown);
        if self.in_doubt > 0 {
            line("  in doubt (maybe imported)", self.in_doubt);
        }
        if let Some(why) = &self.refused {
            let _ = writeln!(out, "the drop was refused as a whole: {why}");
        }
        if let Some(c) = &self.canaries {
            let _ = writeln!(
                out,
                "canaries: {} checked, {} passed, {} failed, {} missing{}",
                c.checked,
                c.passed,
                c.failed,
                c.missing,
                if c.blocked {
                    " (run stopped before submission)"
                } else {
                    ""
                }
            );
        }
        if let Some(x) = &self.reconciliation {
            let _ = writeln!(
                out,
                "reconciled: {} checked, {} present, {} present with differences, {} missing; verified identity {}",
                x.users_checked,
                x.present,
                x.present_with_differences,
                x.missing,
                if x.verified_identity_holds { "holds" } else { "does not hold" }
            );
        }
        let total: f64 = self.jobs.iter().filter_map(|j| j.duration_s).sum();
        let _ = writeln!(
            out,
            "{} jobs, {:.1} s of Auth0 job time in all",
            self.jobs.len(),
            total
        );
        let _ = writeln!(
            out,
            "{}: {}",
            self.identity,
            if self.conservation_holds {
                "holds"
            } else {
                "DOES NOT HOLD"
            }
        );
        out
    }

    pub fn all_imported(&self) -> bool {
        self.rejected_before_submission == 0 && self.failed_at_auth0 == 0 && self.unknown == 0
    }

    /// Records which tenant slot each chunk's job held (`jobs/<seq>.json`'s `slot`, by chunk
    /// sequence), so the timeline draws each job on its own slot.
    pub fn set_slots(&mut self, slot_of_seq: &BTreeMap<u32, u32>) {
        for job in &mut self.jobs {
            job.slot = slot_of_seq.get(&job.seq).copied();
        }
    }
}

/// Why a committed drop submits nothing at all, for its report: it could not be read, or no
/// user in it can be imported.
fn refused_as_a_whole(manifest: &RunManifest) -> Option<String> {
    if let Some(failure) = &manifest.failure {
        let at = match (failure.line, failure.column) {
            (Some(line), Some(column)) => format!(" (line {line}, column {column})"),
            (Some(line), None) => format!(" (line {line})"),
            _ => String::new(),
        };
        return Some(format!("{}{at}", failure.reason));
    }
    (manifest.chunks.is_empty()).then(|| {
        if manifest.users_in == 0 {
            "the drop holds no user".to_string()
        } else {
            format!(
                "every one of its {} users was rejected before submission (see report.csv)",
                manifest.users_in
            )
        }
    })
}

/// One row of `report.csv`: a user that was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CsvRow {
    /// `split` (rejected before submission) or `auth0`.
    pub stage: &'static str,
    pub index: Option<u64>,
    pub email: String,
    pub code: String,
    pub message: String,
}

/// The stages a `report.csv` row names.
pub const CSV_STAGES: [&str; 2] = ["split", "auth0"];

/// A `CsvRow` as stored (in a finalisation checkpoint), its stage one of `CSV_STAGES`.
#[derive(Deserialize)]
struct StoredRow {
    stage: String,
    index: Option<u64>,
    email: String,
    code: String,
    message: String,
}

impl<'de> Deserialize<'de> for CsvRow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = StoredRow::deserialize(d)?;
        let stage = CSV_STAGES
            .into_iter()
            .find(|s| *s == r.stage)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("unknown report stage {:?}", r.stage))
            })?;
        Ok(CsvRow {
            stage,
            index: r.index,
            email: r.email,
            code: r.code,
            message: r.message,
        })
    }
}

pub const CSV_HEADER: &str = "stage,input_index,email,code,message\n";

/// A CSV cell: quoted when needed, and never read as a formula by a spreadsheet (OWASP CSV
/// injection: cells starting with = + - @ or a tab/CR get a leading apostrophe).
pub fn csv_cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

impl CsvRow {
    pub fn to_line(&self) -> String {
        format!(
            "{},{},{},{},{}\n",
            self.stage,
            self.index.map(|i| i.to_string()).unwrap_or_default(),
            csv_cell(&self.email),
            csv_cell(&self.code),
            csv_cell(&self.message)
        )
    }
}

/// `status.json`: progress while the run is in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunProgress {
    pub run_id: String,
    pub chunks_total: usize,
    pub chunks_pending: usize,
    pub chunks_active: usize,
    pub chunks_done: usize,
    pub users_accepted: u64,
    pub inserted_so_far: u64,
    pub updated_so_far: u64,
    pub failed_so_far: u64,
    pub final_report: bool,
    pub updated_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::Summary;
    use crate::manifest::{ChunkEntry, RunStatus, Transformations};

    fn manifest(chunks: &[u32]) -> RunManifest {
        RunManifest {
            manifest_version: 1,
            run_id: "r".into(),
            status: RunStatus::Split,
            source: Source::Local {
                path: "x".into(),
                size: None,
            },
            options: None,
            format: None,
            failure: None,
            users_in: chunks.iter().map(|u| u64::from(*u)).sum::<u64>() + 3,
            users_accepted: chunks.iter().map(|u| u64::from(*u)).sum(),
            users_rejected: 3,
            conservation_holds: true,
            rejects_by_code: BTreeMap::from([("INVALID_FORMAT".into(), 3)]),
            transformations: Transformations::default(),
            max_chunk_bytes: 1000,
            max_request_bytes: 512_000,
            mean_chunk_fill: 0.5,
            rejects_key: None,
            chunks: chunks
                .iter()
                .enumerate()
                .map(|(i, u)| ChunkEntry {
                    key: format!("chunks/{i}"),
                    seq: i as u32 + 1,
                    users: *u,
                    bytes: 10,
                    first_index: 0,
                    last_index: 0,
                })
                .collect(),
            canaries: None,
        }
    }

    #[test]
    fn identity_holds_across_every_kind_of_chunk_end() {
        let m = manifest(&[10, 10, 10, 10]);
        let done = ChunkReport::new(
            1,
            "job_1".into(),
            "r:1".into(),
            10,
            JobEnd {
                status: "completed".into(),
                summary: Some(Summary {
                    inserted: 8,
                    updated: 1,
                    failed: 1,
                    total: 10,
                }),
                details: None,
            },
            vec![],
            1000,
            5000,
        );
        let refused = ChunkReport::unposted(
            2,
            "r:2".into(),
            10,
            Unposted::Refused,
            "The connection does not exist.".into(),
            0,
        );
        let unknown = ChunkReport::unposted(
            3,
            "r:3".into(),
            10,
            Unposted::InDoubt,
            "504 after sending".into(),
            0,
        );
        // Chunk 4 has no report at all.
        let r = RunReport::build(&m, &[done, refused, unknown]);
        assert_eq!(
            (r.inserted, r.updated, r.failed_at_auth0, r.unknown),
            (8, 1, 11, 20)
        );
        assert!(r.conservation_holds, "{r:?}");
        // Chunk 3 is in doubt; chunk 4 (no report) is unknown without being in doubt.
        assert_eq!(r.in_doubt, 10);
        assert_eq!(r.refused, None);
        assert_eq!(r.failed_by_code.get("REQUEST_REFUSED"), Some(&10));
        assert_eq!(r.failed_by_code.get("UNLISTED"), Some(&1));
        assert_eq!(r.submitted, 10);
        assert_eq!(r.jobs[0].duration_s, Some(4.0));
        // The run's span is its jobs' span; chunks that never became jobs add no start.
        assert_eq!(
            (r.started_at_ms, r.finished_at_ms),
            (Some(1000), Some(5000))
        );
        assert_eq!(
            (r.jobs[0].submitted_at_ms, r.jobs[1].submitted_at_ms),
            (Some(1000), None)
        );
    }

    #[test]
    fn slots_are_recorded_per_chunk_and_old_reports_still_parse() {
        let m = manifest(&[5, 5]);
        let a = ChunkReport::unposted(1, "r:1".into(), 5, Unposted::InDoubt, "t".into(), 9);
        let b = ChunkReport::unposted(2, "r:2".into(), 5, Unposted::InDoubt, "t".into(), 9);
        let mut r = RunReport::build(&m, &[a, b]);
        r.set_slots(&BTreeMap::from([(2, 1)]));
        assert_eq!((r.jobs[0].slot, r.jobs[1].slot), (None, Some(1)));
        // A report written before these fields existed reads back with them absent.
        let mut old = serde_json::to_value(&r).unwrap();
        for job in old["jobs"].as_array_mut().unwrap() {
            for k in ["submitted_at_ms", "finished_at_ms", "slot"] {
                job.as_object_mut().unwrap().remove(k);
            }
        }
        for k in [
            "options",
            "started_at_ms",
            "finished_at_ms",
            "canary",
            "reconciliation",
        ] {
            old.as_object_mut().unwrap().remove(k);
        }
        let back: RunReport = serde_json::from_value(old).unwrap();
        assert_eq!(back.jobs[1].slot, None);
        assert_eq!(back.users_in, r.users_in);
    }

    #[test]
    fn a_drop_that_submits_nothing_says_why() {
        let mut failed = manifest(&[]);
        failed.status = RunStatus::Failed;
        failed.failure = Some(crate::manifest::Failure {
            reason: "the gzip stream is corrupt".into(),
            line: Some(3),
            column: None,
            byte_offset: None,
            records_before_failure: 2,
        });
        let r = RunReport::build(&failed, &[]);
        assert_eq!(
            r.refused.as_deref(),
            Some("the gzip stream is corrupt (line 3)")
        );
        let all_rejected = manifest(&[]);
        let r = RunReport::build(&all_rejected, &[]);
        assert!(r
            .refused
            .as_deref()
            .unwrap()
            .contains("every one of its 3 users"));
        assert!(r.conservation_holds);
        assert!(!r.all_imported());
    }

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_cell("+1@x.io"), "'+1@x.io");
    }
}
