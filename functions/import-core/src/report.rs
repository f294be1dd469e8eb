//! The run's lasting account, built from split's manifest and every chunk's report: totals
//! with the conservation identity, the CSV of users not imported, the HTML page, the status.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::jobs::{ChunkReport, JobEnd};
use crate::manifest::{RunManifest, Source};

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
    pub canaries: Option<crate::canary::CanaryReport>,
}

impl RunReport {
    pub fn build(manifest: &RunManifest, chunk_reports: &[ChunkReport]) -> Self {
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
        // Chunks without a report count as unknown: the identity never hides a user.
        let reported: BTreeMap<u32, &ChunkReport> =
            chunk_reports.iter().map(|c| (c.seq, c)).collect();
        for chunk in &manifest.chunks {
            let Some(c) = reported.get(&chunk.seq) else {
                r.unknown += u64::from(chunk.users);
                continue;
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
            });
        }
        r.conservation_holds = r.users_in
            == r.rejected_before_submission
                + r.inserted
                + r.updated
                + r.failed_at_auth0
                + r.unknown;
        r
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRow {
    /// `split` (rejected before submission) or `auth0`.
    pub stage: &'static str,
    pub index: Option<u64>,
    pub email: String,
    pub code: String,
    pub message: String,
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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `report.html`: one self-contained page (no external assets) for a person opening it from
/// the S3 console: totals, a bar chart of outcomes and error codes, the worst offenders.
pub fn render_html(report: &RunReport, sample_rows: &[CsvRow]) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let ok = if report.conservation_holds {
        "holds"
    } else {
        "DOES NOT HOLD"
    };
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Import report {id}</title>\
<style>body{{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}}th{{background:#f4f4f4}}\
.n{{text-align:right;font-variant-numeric:tabular-nums}}.bad{{color:#b00020}}.good{{color:#0a7c2f}}</style></head><body>\
<h1>Import report</h1><p>Run <code>{id}</code> &middot; {chunks} chunks &middot; conservation {ok}: \
<code>{identity}</code></p>",
        id = esc(&report.run_id),
        chunks = report.chunks,
        ok = ok,
        identity = esc(&report.identity),
    );
    if let Some(why) = &report.refused {
        let _ = write!(
            h,
            "<p class=bad>The drop was refused as a whole; nothing was submitted: {}</p>",
            esc(why)
        );
    }
    if report.in_doubt > 0 {
        let _ = write!(
            h,
            "<p class=bad>{} users are in doubt: their request reached Auth0 and its answer does not say whether a job was created, so they may already be imported. They are never posted again automatically; <code>unknown-users.json</code> holds them (re-dropping is safe: users Auth0 already has come back as DUPLICATED_USER).</p>",
            report.in_doubt
        );
    }
    if let Some(c) = &report.canaries {
        h.push_str(&canary_section(c));
    }
    let outcomes = [
        ("inserted", report.inserted, "#0a7c2f"),
        ("updated", report.updated, "#2c6ecb"),
        (
            "rejected before submission",
            report.rejected_before_submission,
            "#b36b00",
        ),
        ("failed at Auth0", report.failed_at_auth0, "#b00020"),
        ("unknown", report.unknown, "#777"),
    ];
    h.push_str("<h2>Outcomes</h2>");
    h.push_str(&bar_chart(
        &outcomes
            .iter()
            .map(|(l, n, c)| (l.to_string(), *n, *c))
            .collect::<Vec<_>>(),
        report.users_in,
    ));
    let mut codes: Vec<(String, u64, &str)> = report
        .rejected_by_code
        .iter()
        .map(|(c, n)| (format!("{c} (split)"), *n, "#b36b00"))
        .chain(
            report
                .failed_by_code
                .iter()
                .map(|(c, n)| (format!("{c} (Auth0)"), *n, "#b00020")),
        )
        .collect();
    codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if !codes.is_empty() {
        h.push_str("<h2>Reasons users were not imported</h2>");
        let max = codes.first().map(|c| c.1).unwrap_or(1);
        h.push_str(&bar_chart(&codes, max));
    }
    let mut worst: Vec<_> = report
        .jobs
        .iter()
        .filter(|j| j.failed + j.unknown > 0)
        .collect();
    worst.sort_by_key(|j| std::cmp::Reverse(j.failed + j.unknown));
    if !worst.is_empty() {
        h.push_str("<h2>Worst chunks</h2><table><tr><th>chunk</th><th>job</th><th>status</th><th class=n>users</th><th class=n>failed</th><th class=n>unknown</th><th>details</th></tr>");
        for j in worst.iter().take(10) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td></tr>",
                j.seq, esc(&j.job_id), esc(&j.status), j.users, j.failed, j.unknown, esc(j.details.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</table>");
    }
    if !sample_rows.is_empty() {
        h.push_str("<h2>First users not imported</h2><p>The full list is in <code>report.csv</code>.</p><table><tr><th>stage</th><th class=n>input index</th><th>email</th><th>code</th><th>message</th></tr>");
        for r in sample_rows {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=n>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.stage,
                r.index.map(|i| i.to_string()).unwrap_or_default(),
                esc(&r.email),
                esc(&r.code),
                esc(&r.message)
            );
        }
        h.push_str("</table>");
    }
    let verdict = if report.all_imported() {
        "<p class=good>Every user was imported.</p>"
    } else {
        "<p class=bad>Some users were not imported: see <code>report.csv</code>; <code>failed-users.json</code> holds the ones a re-drop can fix.</p>"
    };
    h.push_str(verdict);
    h.push_str("</body></html>\n");
    h
}

/// The canary check: counts, then one row per canary with the reason and the doctor's advice.
fn canary_section(c: &crate::canary::CanaryReport) -> String {
    use crate::canary::CanaryOutcome;
    let mut h = String::new();
    let verdict = if c.blocked {
        "<p class=bad>A canary failed: the run was stopped before any chunk was submitted.</p>"
    } else if c.passed < c.checked {
        "<p class=bad>A canary failed; the run went on because failures only warn (canary=warn).</p>"
    } else {
        "<p class=good>Every canary's password verifies as Auth0 will check it.</p>"
    };
    let _ = write!(
        h,
        "<h2>Canaries</h2>{verdict}<p>{} checked &middot; {} passed &middot; {} failed &middot; {} missing</p>",
        c.checked, c.passed, c.failed, c.missing
    );
    h.push_str("<table><tr><th>canary</th><th>outcome</th><th>reason</th><th>doctor</th><th>tried</th></tr>");
    for r in &c.results {
        let (outcome, class) = match r.outcome {
            CanaryOutcome::Passed => ("passed", "good"),
            CanaryOutcome::Failed => ("failed", "bad"),
            CanaryOutcome::Missing => ("missing", "bad"),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class={class}>{outcome}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.canary),
            esc(r.reason.as_deref().unwrap_or("")),
            esc(r.doctor.as_deref().unwrap_or("")),
            esc(r.doctor_tried.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>");
    h
}

fn bar_chart(rows: &[(String, u64, &str)], scale: u64) -> String {
    let scale = scale.max(1) as f64;
    let height = rows.len() * 26 + 4;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"{height}\" role=\"img\">"
    );
    for (i, (label, n, color)) in rows.iter().enumerate() {
        let y = i * 26 + 2;
        let w = ((*n as f64 / scale) * 420.0)
            .round()
            .max(if *n > 0 { 2.0 } else { 0.0 });
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{ty}\" font-size=\"13\">{label}</text><rect x=\"250\" y=\"{y}\" width=\"{w}\" height=\"20\" fill=\"{color}\"/><text x=\"{tx}\" y=\"{ty}\" font-size=\"13\">{n}</text>",
            ty = y + 15,
            label = esc(label),
            tx = 256.0 + w,
        );
    }
    svg.push_str("</svg>");
    svg
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

    #[test]
    fn html_is_self_contained_and_escaped() {
        let m = manifest(&[5]);
        let r = RunReport::build(&m, &[]);
        let rows = vec![CsvRow {
            stage: "split",
            index: Some(3),
            email: "<script>@x.io".into(),
            code: "INVALID_FORMAT".into(),
            message: "bad".into(),
        }];
        let html = render_html(&r, &rows);
        assert!(!html.contains("<script>"));
        assert!(
            !html.contains("http://")
                || html.matches("http://").count()
                    == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        );
        assert!(!html.contains("src=") && !html.contains("<link"));
        assert!(html.contains("INVALID_FORMAT"));
    }
}
