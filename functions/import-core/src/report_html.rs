//! `report.html`: the page a person opens from the S3 console. One self-contained file (no
//! script, font, image or stylesheet from elsewhere), built with maud so every value is escaped
//! by construction: source, options, times, totals with the identity, what to do next, the jobs
//! on the tenant's slots, throughput, every chunk, canary and reconciliation when present.

use std::collections::BTreeMap;

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::clock::utc;
use crate::layout::RunPath;
use crate::manifest::Source;
use crate::pace;
use crate::report::{codes, CanaryOutcome, CsvRow, JobLine, RunReport};
use crate::run_end::RunOutcome;

/// Rows of the per-chunk table; report.json holds every chunk.
const MAX_CHUNK_ROWS: usize = 2000;

/// Our own stylesheet: a constant, so written out unescaped.
const CSS: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1f2328;background:#fff}\
main{max-width:1100px;margin:0 auto;padding:24px}\
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}\
table{border-collapse:collapse;margin:6px 0}td,th{padding:4px 10px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}\
th{background:#f6f8fa;font-weight:600}.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:12px 0}dl.facts dt{color:#59636e}dl.facts dd{margin:0}\
.verdict{font-size:16px;padding:10px 14px;border-radius:6px;margin:12px 0}\
.ok{background:#dafbe1;color:#116329}.warn{background:#fff8c5;color:#7d4e00}.bad{background:#ffebe9;color:#a40e26}\
.good{color:#116329}.poor{color:#a40e26}code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:1px 4px;border-radius:4px}\
ol.next li{margin:6px 0}.muted{color:#59636e}svg text{font:12px system-ui,sans-serif;fill:#1f2328}\
.scroll{overflow-x:auto}footer{margin-top:32px;color:#59636e;font-size:12px}";

/// The page for a final run; `sample_rows` are the first rows of report.csv.
pub fn render_html(report: &RunReport, sample_rows: &[CsvRow]) -> String {
    let mut page = page(report, sample_rows).into_string();
    page.push('\n');
    page
}

fn page(r: &RunReport, sample_rows: &[CsvRow]) -> Markup {
    let outcome = RunOutcome::of(r);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Import report " (r.run_id) }
                style { (PreEscaped(CSS)) }
            }
            body {
                main {
                    h1 { "Import report" }
                    p.muted { "Run " code #run-id { (r.run_id) } }
                    (verdict(r, outcome))
                    @if let Some(why) = &r.refused {
                        p.verdict.bad #refused { "The drop was refused as a whole; nothing was submitted: " (why) }
                    }
                    @if r.in_doubt > 0 {
                        p.verdict.warn #in-doubt {
                            (n(r.in_doubt)) " users are in doubt: their request reached Auth0 and its answer "
                            "does not say whether a job was created, so they may already be imported. They "
                            "are never posted again automatically; " code { "unknown-users.json" } " holds them."
                        }
                    }
                    (facts(r))
                    (totals(r))
                    (next_steps(r, outcome))
                    (timeline(r))
                    (throughput(r))
                    (reasons(r))
                    (canary(r))
                    (reconciliation(r))
                    (chunk_table(r))
                    (failures(sample_rows))
                    footer {
                        "Written from " code { "report.json" } " (every number on this page is there). "
                        "The users not imported are in " code { "report.csv" } "; "
                        "those a re-drop can fix are in " code { "failed-users.json" } ". "
                        "Auth0 deletes its job data after 24 h: these files are the lasting record."
                    }
                }
            }
        }
    }
}

fn verdict(r: &RunReport, outcome: RunOutcome) -> Markup {
    let not_imported = r.rejected_before_submission + r.failed_at_auth0 + r.unknown;
    let (class, text) = match outcome {
        RunOutcome::Completed => ("ok", "Every user was imported.".to_string()),
        RunOutcome::CompletedWithFailures => (
            "warn",
            format!(
                "Completed with failures: {} of {} users were not imported.",
                n(not_imported),
                n(r.users_in)
            ),
        ),
        RunOutcome::Refused => (
            "bad",
            "Refused as a whole: no user was imported.".to_string(),
        ),
        RunOutcome::CanaryFailed => (
            "bad",
            "Canary failed: passwords would not verify, so no job was started.".to_string(),
        ),
    };
    html! { p.verdict.(class) #verdict data-outcome=(outcome.as_str()) { (text) } }
}

fn facts(r: &RunReport) -> Markup {
    let duration = match (r.started_at_ms, r.finished_at_ms) {
        (Some(a), Some(b)) if b >= a => Some(b - a),
        _ => None,
    };
    html! {
        dl.facts {
            dt { "Source" } dd { (source(&r.source)) }
            dt { "Options" } dd {
                @match &r.options {
                    Some(o) => {
                        "connection " code { (o.connection_id) }
                        ", upsert " code { (o.upsert) }
                        ", completion e-mails " code { (o.send_completion_email) }
                    }
                    None => span.muted { "none (local rehearsal)" },
                }
            }
            dt { "Started" } dd #started { (r.started_at_ms.map(utc).unwrap_or_else(|| "no job was started".into())) }
            dt { "Ended" } dd #ended { (r.finished_at_ms.map(utc).unwrap_or_else(|| "—".into())) }
            dt { "Duration" } dd #duration { (duration.map(human_ms).unwrap_or_else(|| "—".into())) }
            dt { "Chunks" } dd { span data-field="chunks" { (n(r.chunks as u64)) } ", " span data-field="jobs" { (n(r.jobs.iter().filter(|j| !j.job_id.is_empty()).count() as u64)) } " of them became Auth0 jobs" }
        }
    }
}

fn source(s: &Source) -> Markup {
    match s {
        Source::S3 {
            bucket, key, size, ..
        } => html! {
            code { "s3://" (bucket) "/" (key) }
            @if let Some(size) = size { " (" (bytes(*size)) ")" }
        },
        Source::Local { path, size } => html! {
            code { (path) }
            @if let Some(size) = size { " (" (bytes(*size)) ")" }
        },
    }
}

fn totals(r: &RunReport) -> Markup {
    let rows: [(&str, &str, u64, &str); 7] = [
        ("users_in", "Users in the drop", r.users_in, ""),
        (
            "rejected_before_submission",
            "Rejected before submission",
            r.rejected_before_submission,
            "#bf8700",
        ),
        ("submitted", "Sent to Auth0", r.submitted, ""),
        ("inserted", "Inserted", r.inserted, "#1a7f37"),
        ("updated", "Updated", r.updated, "#0969da"),
        (
            "failed_at_auth0",
            "Failed at Auth0",
            r.failed_at_auth0,
            "#cf222e",
        ),
        ("unknown", "Outcome unknown", r.unknown, "#6e7781"),
    ];
    let bars: Vec<(String, u64, &str)> = rows
        .iter()
        .filter(|(_, _, _, color)| !color.is_empty())
        .map(|(_, label, v, color)| (label.to_string(), *v, *color))
        .collect();
    html! {
        section #totals {
            h2 { "Totals" }
            table {
                @for (field, label, value, _) in rows {
                    tr { th { (label) } td.n data-field=(field) { (n(value)) } }
                }
            }
            p {
                "Conservation: " code { (r.identity) } " "
                @if r.conservation_holds {
                    strong.good data-field="conservation_holds" { "holds" }
                } @else {
                    strong.poor data-field="conservation_holds" { "does not hold" }
                }
                "."
            }
            (bar_chart(&bars, r.users_in))
        }
    }
}

/// Bars with their labels and values, scaled to `scale`; each value carries its label
/// (`data-code`) for readers and tests.
fn bar_chart(rows: &[(String, u64, &str)], scale: u64) -> Markup {
    let scale = scale.max(1) as f64;
    let height = rows.len() * 26 + 4;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width="760" height=(height) role="img" aria-label="bar chart" {
            @for (i, (label, value, color)) in rows.iter().enumerate() {
                @let y = i * 26 + 2;
                @let w = ((*value as f64 / scale) * 420.0).round().max(if *value > 0 { 2.0 } else { 0.0 });
                text x="0" y=(y + 15) { (label) }
                rect x="250" y=(y) width=(w) height="20" fill=(color) {}
                text x=(256.0 + w) y=(y + 15) data-code=(label) { (n(*value)) }
            }
        }
    }
}

/// One thing to do per kind of failure the run had.
fn next_steps(r: &RunReport, outcome: RunOutcome) -> Markup {
    let mut steps: Vec<Markup> = Vec::new();
    let redrop = redrop_command(r);
    if let Some(c) = r.canaries.as_ref().filter(|c| c.stops_the_run()) {
        steps.push(html! {
            li { strong { "Passwords would not verify." } " "
                (c.failed) " canaries failed and " (c.missing) " were missing from the drop. "
                "Fix the hash parameters the canary section names and drop the file again, "
                "or plan a password reset for these users (Auth0 sends a change-password e-mail)." }
        });
    }
    if outcome == RunOutcome::Refused && r.chunks > 0 {
        steps.push(html! {
            li { strong { "Auth0 refused the run." } " The chunk table says why (most often a wrong "
                "connection id, a connection not enabled for any application, or a token without "
                code { "create:users" } "). Fix it, then drop the original file again." }
        });
    }
    if r.rejected_before_submission > 0 {
        steps.push(html! {
            li { strong { "Fix the mapping for " (n(r.rejected_before_submission)) " rejected records." } " "
                "They never reached Auth0. " code { "report.csv" } " (stage " code { "split" } ") "
                "gives each one's input index and every reason; the codes are under "
                em { "Reasons" } ". Correct the tool that made the export (or the records), "
                "then drop the fixed records as a new file." }
        });
    }
    let duplicated = r
        .failed_by_code
        .get("DUPLICATED_USER")
        .copied()
        .unwrap_or(0);
    if duplicated > 0 {
        steps.push(html! {
            li { strong { (n(duplicated)) " users already exist." } " "
                "If you meant to update them, re-drop " code { "failed-users.json" }
                " with " code { "upsert=true" } ": " code { (redrop.replace("{UPSERT}", " --upsert")) }
                ". Otherwise there is nothing to do." }
        });
    }
    let refused_codes = [
        codes::REQUEST_REFUSED,
        codes::NOT_SUBMITTED,
        "DUPLICATED_USER",
    ];
    let other_failed: u64 = r
        .failed_by_code
        .iter()
        .filter(|(c, _)| !refused_codes.contains(&c.as_str()))
        .map(|(_, v)| v)
        .sum();
    if other_failed > 0 {
        steps.push(html! {
            li { strong { (n(other_failed)) " users failed at Auth0." } " "
                "Read their reasons in " code { "report.csv" } " (stage " code { "auth0" } "), fix the "
                "records in " code { "failed-users.json" } " and drop it again: "
                code { (redrop.replace("{UPSERT}", "")) } "." }
        });
    }
    if r.unknown > 0 {
        let file = if r.unknown_users_key.is_some() {
            "unknown-users.json"
        } else {
            "failed-users.json"
        };
        steps.push(html! {
            li { strong { (n(r.unknown)) " users have an unknown outcome." } " "
                "Auth0 did not say what happened to them (a job failed as a whole, ran past 2 h, "
                "or its answer was lost). Re-dropping " code { (file) } " is safe: "
                "users already imported come back as " code { "DUPLICATED_USER" } "." }
        });
    }
    if r.reconciliation.as_ref().is_some_and(|x| x.missing > 0) {
        steps.push(html! {
            li { strong { "Users are missing from the tenant." } " The reconciliation section counts "
                "them; re-drop " code { "failed-users.json" } "." }
        });
    }
    html! {
        section #next-steps {
            h2 { "What to do next" }
            @if steps.is_empty() {
                p.good { "Nothing: every user is in Auth0. Users imported without a password hash "
                    "set one through a password reset at first login." }
            } @else {
                ol.next { @for s in &steps { (s) } }
                p.muted { "Download " code { "failed-users.json" } " and " code { "unknown-users.json" }
                    " before they expire (they hold password hashes and are deleted some days after the run)." }
            }
        }
    }
}

/// The CLI command that re-drops this run's failed users (`{UPSERT}` marks where
/// `--upsert` goes).
fn redrop_command(r: &RunReport) -> String {
    let connection = r
        .options
        .as_ref()
        .map(|o| o.connection_id.clone())
        .unwrap_or_else(|| "con_…".into());
    match &r.source {
        Source::S3 { bucket, .. } => format!(
            "aws s3 cp s3://{bucket}/{} . && auth0-s3-import drop failed-users.json --bucket {bucket} --connection-id {connection}{{UPSERT}}",
            RunPath::new(&r.run_id).failed_users()
        ),
        Source::Local { .. } => format!(
            "auth0-s3-import migrate {} --connection-id {connection}{{UPSERT}} …",
            RunPath::new(&r.run_id).failed_users()
        ),
    }
}

/// A job placed on a lane of the timeline.
struct Placed<'a> {
    lane: usize,
    start: u64,
    end: u64,
    job: &'a JobLine,
}

/// Lanes for the timed jobs: the slot each held when its record said so, else the first lane
/// free at its start (a job never overlaps another on its lane, so lanes ≤ slots in use).
fn place(jobs: &[JobLine]) -> (Vec<Placed<'_>>, Vec<String>) {
    let mut timed: Vec<&JobLine> = jobs
        .iter()
        .filter(|j| j.submitted_at_ms.is_some() && j.finished_at_ms.is_some())
        .collect();
    timed.sort_by_key(|j| (j.submitted_at_ms, j.seq));
    let span = |j: &JobLine| {
        let start = j.submitted_at_ms.unwrap_or(0);
        (start, j.finished_at_ms.unwrap_or(start).max(start))
    };
    if !timed.is_empty() && timed.iter().all(|j| j.slot.is_some()) {
        let slots: BTreeMap<u32, usize> = timed
            .iter()
            .filter_map(|j| j.slot)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .enumerate()
            .map(|(i, s)| (s, i))
            .collect();
        let labels = slots.keys().map(|s| format!("slot {s}")).collect();
        let placed = timed
            .into_iter()
            .map(|j| {
                let (start, end) = span(j);
                let lane = j.slot.and_then(|s| slots.get(&s).copied()).unwrap_or(0);
                Placed {
                    lane,
                    start,
                    end,
                    job: j,
                }
            })
            .collect();
        return (placed, labels);
    }
    let mut lane_free_at: Vec<u64> = Vec::new();
    let mut placed = Vec::new();
    for j in timed {
        let (start, end) = span(j);
        let lane = match lane_free_at.iter().position(|free| *free <= start) {
            Some(l) => l,
            None => {
                lane_free_at.push(0);
                lane_free_at.len() - 1
            }
        };
        lane_free_at[lane] = end;
        placed.push(Placed {
            lane,
            start,
            end,
            job: j,
        });
    }
    let labels = (0..lane_free_at.len())
        .map(|i| format!("slot {}", i + 1))
        .collect();
    (placed, labels)
}

fn job_color(j: &JobLine) -> &'static str {
    match j.status.as_str() {
        "completed" if j.failed == 0 && j.unknown == 0 => "#2da44e",
        "completed" => "#d4a72c",
        "failed" | "dead" | "gone" | "expired" => "#cf222e",
        _ => "#8c959f",
    }
}

fn timeline(r: &RunReport) -> Markup {
    let (placed, lanes) = place(&r.jobs);
    let untimed = r.jobs.len() - placed.len();
    let (Some(t0), Some(t1)) = (
        placed.iter().map(|p| p.start).min(),
        placed.iter().map(|p| p.end).max(),
    ) else {
        return html! {
            section #timeline { h2 { "Jobs on the tenant's slots" } p.muted { "No job ran." } }
        };
    };
    let (left, width, lane_h, top) = (70.0_f64, 880.0_f64, 26.0_f64, 6.0_f64);
    let total = (t1 - t0).max(1) as f64;
    let x = |t: u64| left + (t - t0) as f64 / total * width;
    let height = top + lane_h * lanes.len() as f64 + 28.0;
    let axis_y = top + lane_h * lanes.len() as f64 + 4.0;
    let ticks: Vec<(f64, String)> = (0..=5)
        .map(|i| {
            let t = t0 + (t1 - t0) * i / 5;
            (x(t), format!("+{}", clock(t - t0)))
        })
        .collect();
    html! {
        section #timeline {
            h2 { "Jobs on the tenant's slots" }
            p.muted {
                "Each bar is one Auth0 import job, from its post to the poll that saw it end. "
                "Green: every user imported; yellow: some failed; red: the job failed; grey: unknown. "
                @if r.jobs.iter().any(|j| j.slot.is_none()) && !placed.is_empty() {
                    "Slots are inferred from the job times. "
                }
                @if untimed == 1 { "1 chunk never became a job and is not drawn." }
                @if untimed > 1 { (untimed) " chunks never became jobs and are not drawn." }
            }
            div.scroll {
                svg xmlns="http://www.w3.org/2000/svg" width=(left + width + 20.0) height=(height) role="img" aria-label="timeline of import jobs" {
                    @for (i, label) in lanes.iter().enumerate() {
                        text x="0" y=(top + lane_h * i as f64 + 17.0) { (label) }
                        line x1=(left) x2=(left + width) y1=(top + lane_h * (i as f64 + 1.0)) y2=(top + lane_h * (i as f64 + 1.0)) stroke="#eaeef2" {}
                    }
                    @for p in &placed {
                        @let x0 = x(p.start);
                        rect.job x=(format!("{x0:.1}")) y=(top + lane_h * p.lane as f64 + 3.0)
                            width=(format!("{:.1}", (x(p.end) - x0).max(1.5))) height=(lane_h - 6.0)
                            fill=(job_color(p.job)) data-seq=(p.job.seq) {
                            title {
                                "chunk " (p.job.seq) " · " (p.job.job_id) " · " (p.job.status) " · "
                                (p.job.users) " users, " (p.job.inserted) " inserted, " (p.job.updated) " updated, "
                                (p.job.failed) " failed · " (human_ms(p.end - p.start))
                            }
                        }
                    }
                    line x1=(left) x2=(left + width) y1=(axis_y) y2=(axis_y) stroke="#8c959f" {}
                    @for (tx, label) in &ticks {
                        line x1=(tx) x2=(tx) y1=(axis_y) y2=(axis_y + 4.0) stroke="#8c959f" {}
                        text x=(tx - 14.0) y=(axis_y + 18.0) { (label) }
                    }
                }
            }
        }
    }
}

fn throughput(r: &RunReport) -> Markup {
    let processed = r.inserted + r.updated + r.failed_at_auth0;
    let times: Vec<f64> = r.jobs.iter().filter_map(|j| j.duration_s).collect();
    let wall_s = match (r.started_at_ms, r.finished_at_ms) {
        (Some(a), Some(b)) if b > a => Some((b - a) as f64 / 1000.0),
        _ => None,
    };
    let (placed, lanes) = place(&r.jobs);
    let busy_s: f64 = placed
        .iter()
        .map(|p| (p.end - p.start) as f64 / 1000.0)
        .sum();
    html! {
        section #throughput {
            h2 { "Throughput" }
            @if let (Some(wall), false) = (wall_s, times.is_empty()) {
                @let mean = times.iter().sum::<f64>() / times.len() as f64;
                table {
                    tr { th { "Users with an Auth0 outcome per minute" } td.n #users-per-minute { (format!("{:.0}", processed as f64 / wall * 60.0)) } }
                    tr { th { "Jobs" } td.n { (times.len()) } }
                    tr { th { "Mean job time" } td.n #mean-job-time { (human_ms((mean * 1000.0) as u64)) } }
                    tr { th { "Slowest job" } td.n { (human_ms((times.iter().cloned().fold(0.0, f64::max) * 1000.0) as u64)) } }
                    tr { th { "Slots busy" } td.n #slot-occupancy {
                        (format!("{:.0}%", busy_s / (wall * lanes.len().max(1) as f64) * 100.0))
                    } }
                }
                p.muted {
                    "For comparison, " (pace::assumption(r.options.as_ref().is_some_and(|o| o.upsert))) ". "
                    "A run's wall time is about the job time × chunks ÷ slots."
                }
            } @else {
                p.muted { "No job ran, so there is no throughput to show." }
            }
        }
    }
}

fn reasons(r: &RunReport) -> Markup {
    let mut rows: Vec<(String, u64, &str)> = r
        .rejected_by_code
        .iter()
        .map(|(c, v)| (format!("{c} (split)"), *v, "#bf8700"))
        .chain(
            r.failed_by_code
                .iter()
                .map(|(c, v)| (format!("{c} (Auth0)"), *v, "#cf222e")),
        )
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if rows.is_empty() {
        return html! {};
    }
    let max = rows.first().map(|r| r.1).unwrap_or(1);
    html! {
        section #reasons {
            h2 { "Reasons users were not imported" }
            p.muted { "A record rejected for several reasons counts under each." }
            (bar_chart(&rows, max))
        }
    }
}

fn canary(r: &RunReport) -> Markup {
    let Some(c) = &r.canaries else {
        return html! {};
    };
    html! {
        section #canary {
            h2 { "Canaries" }
            p { "Checked before any job was started: whether each canary's hash verifies its known password." }
            table {
                tr { th { "checked" } td.n data-field="canary_checked" { (c.checked) } }
                tr { th { "passed" } td.n data-field="canary_passed" { (c.passed) } }
                tr { th { "failed" } td.n data-field="canary_failed" { (c.failed) } }
                tr { th { "missing from the drop" } td.n data-field="canary_missing" { (c.missing) } }
            }
            @if c.blocked {
                p.bad { "A canary failed or is missing: the run was stopped before any chunk was submitted." }
            } @else if c.passed < c.checked {
                p.bad { "A canary failed or is missing; the run went on because failures only warn (canary=warn)." }
            }
            @if !c.results.is_empty() {
                table {
                    tr { th { "canary" } th { "outcome" } th { "why" } th { "doctor" } th { "tried" } }
                    @for x in &c.results {
                        tr {
                            td { (x.canary) }
                            td { (match x.outcome { CanaryOutcome::Passed => "passed", CanaryOutcome::Failed => "failed", CanaryOutcome::Missing => "missing" }) }
                            td { (x.reason.as_deref().unwrap_or("")) }
                            td { (x.doctor.as_deref().unwrap_or("")) }
                            td { (x.doctor_tried.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

fn reconciliation(r: &RunReport) -> Markup {
    let Some(x) = &r.reconciliation else {
        return html! {};
    };
    html! {
        section #reconciliation {
            h2 { "Reconciliation with the tenant" }
            p { "The run's accepted users, read back from Auth0 after the last job." }
            table {
                tr { th { "checked" } td.n data-field="reconciliation_checked" { (n(x.users_checked)) } }
                tr { th { "present and matching" } td.n data-field="reconciliation_present" { (n(x.present)) } }
                tr { th { "present with differences" } td.n data-field="reconciliation_differences" { (n(x.present_with_differences)) } }
                tr { th { "missing" } td.n data-field="reconciliation_missing" { (n(x.missing)) } }
                @if x.duplicates > 0 {
                    tr { th { "found more than once" } td.n data-field="reconciliation_duplicates" { (n(x.duplicates)) } }
                }
                @if x.imported_by_unknown_jobs > 0 {
                    tr { th { "in doubt, found (imported by a job we never heard of)" } td.n data-field="reconciliation_imported_by_unknown_jobs" { (n(x.imported_by_unknown_jobs)) } }
                }
            }
            @if !x.verified_identity.is_empty() {
                p.identity {
                    code { (x.verified_identity) } ": "
                    strong data-field="reconciliation_verified_identity_holds" { @if x.verified_identity_holds { "holds" } @else { "does not hold" } }
                    " (" (n(x.verified_present)) " verified present)"
                }
            }
            @if !x.differences_by_field.is_empty() {
                table {
                    tr { th { "field" } th.n { "users differing" } }
                    @for (field, v) in &x.differences_by_field { tr { td { code { (field) } } td.n { (n(*v)) } } }
                }
            }
        }
    }
}

fn chunk_table(r: &RunReport) -> Markup {
    // The slot column only when the writer recorded slots (older reports have none).
    let slots = r.jobs.iter().any(|j| j.slot.is_some());
    html! {
        section #chunks {
            h2 { "Every chunk" }
            @if r.jobs.len() > MAX_CHUNK_ROWS {
                p.muted { "The first " (MAX_CHUNK_ROWS) " of " (r.jobs.len()) " chunks; " code { "report.json" } " lists all." }
            }
            div.scroll {
                table #chunk-table {
                    tr {
                        th.n { "chunk" } th { "job" } th { "status" }
                        @if slots { th.n { "slot" } }
                        th.n { "users" }
                        th.n { "inserted" } th.n { "updated" } th.n { "failed" } th.n { "unknown" }
                        th.n { "time" } th.n { "users/s" } th { "details" }
                    }
                    @for j in r.jobs.iter().take(MAX_CHUNK_ROWS) {
                        tr data-seq=(j.seq) {
                            td.n { (j.seq) }
                            td { @if !j.job_id.is_empty() { code { (j.job_id) } } }
                            td { (j.status) }
                            @if slots { td.n { (j.slot.map(|s| s.to_string()).unwrap_or_default()) } }
                            td.n data-col="users" { (n(j.users)) }
                            td.n data-col="inserted" { (n(j.inserted)) }
                            td.n data-col="updated" { (n(j.updated)) }
                            td.n data-col="failed" { (n(j.failed)) }
                            td.n data-col="unknown" { (n(j.unknown)) }
                            td.n { (j.duration_s.map(|s| human_ms((s * 1000.0) as u64)).unwrap_or_default()) }
                            td.n { (j.duration_s.filter(|s| *s > 0.0).map(|s| format!("{:.1}", j.users as f64 / s)).unwrap_or_default()) }
                            td { (j.details.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

fn failures(rows: &[CsvRow]) -> Markup {
    if rows.is_empty() {
        return html! {};
    }
    html! {
        section #failures {
            h2 { "First users not imported" }
            p.muted { "The full list is in " code { "report.csv" } "." }
            div.scroll {
                table {
                    tr { th { "stage" } th.n { "input index" } th { "email" } th { "code" } th { "message" } }
                    @for row in rows {
                        tr {
                            td { (row.stage) }
                            td.n { (row.index.map(|i| i.to_string()).unwrap_or_default()) }
                            td { (row.email) }
                            td { code { (row.code) } }
                            td { (row.message) }
                        }
                    }
                }
            }
        }
    }
}

/// 1234567 → "1,234,567".
fn n(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bytes(v: u64) -> String {
    match v {
        0..=1023 => format!("{v} bytes"),
        1024..=1_048_575 => format!("{:.1} KiB", v as f64 / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.1} MiB", v as f64 / 1_048_576.0),
        _ => format!("{:.2} GiB", v as f64 / 1_073_741_824.0),
    }
}

/// A duration in ms as a person reads it: "850 ms", "4.2 s", then `pace::human`.
fn human_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => pace::human(std::time::Duration::from_millis(ms)),
    }
}

/// Elapsed ms as h:mm:ss (or m:ss), for the timeline's axis.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else if s >= 60 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::DropOptions;
    use crate::report::{CanaryOutcome, CanaryReport, CanaryResult, ReconciliationReport};
    use proptest::prelude::*;

    fn job(seq: u32, start: u64, end: u64, slot: Option<u32>) -> JobLine {
        JobLine {
            seq,
            job_id: format!("job_{seq}"),
            status: "completed".into(),
            users: 10,
            inserted: 9,
            updated: 0,
            failed: 1,
            unknown: 0,
            duration_s: Some((end - start) as f64 / 1000.0),
            details: None,
            submitted_at_ms: Some(start),
            finished_at_ms: Some(end),
            slot,
        }
    }

    fn report(jobs: Vec<JobLine>) -> RunReport {
        serde_json::from_value(serde_json::json!({
            "run_id": "users-json-0123456789abcdef",
            "source": {"kind": "s3", "bucket": "drops", "key": "inbox/con_AbCdEf0123456789/users.json", "etag": "e", "size": 123456},
            "users_in": 1234567, "rejected_before_submission": 3, "rejected_by_code": {"INVALID_FORMAT": 3},
            "submitted": 30, "inserted": 27, "updated": 0, "failed_at_auth0": 3,
            "failed_by_code": {"DUPLICATED_USER": 3}, "unknown": 0,
            "identity": "users_in = rejected_before_submission + inserted + updated + failed_at_auth0 + unknown",
            "conservation_holds": false, "jobs": [], "chunks": 3, "failed_users_key": "failed-users.json"
        }))
        .map(|mut r: RunReport| {
            r.jobs = jobs;
            r.options = Some(DropOptions {
                connection_id: "con_AbCdEf0123456789".into(),
                upsert: false,
                send_completion_email: false,
                canary_warn: false,
                source: None,
            });
            r.started_at_ms = Some(1_700_000_000_000);
            r.finished_at_ms = Some(1_700_000_360_000);
            r
        })
        .unwrap()
    }

    #[test]
    fn every_value_is_escaped_and_nothing_is_fetched() {
        let mut r = report(vec![job(1, 0, 1000, None)]);
        r.run_id = "<script>alert(1)</script>".into();
        r.jobs[0].details = Some("<img src=x onerror=alert(1)>".into());
        r.canaries = Some(CanaryReport {
            checked: 1,
            passed: 0,
            failed: 1,
            missing: 0,
            warn_only: false,
            blocked: true,
            results: vec![CanaryResult {
                canary: "\"><svg onload=alert(1)>".into(),
                outcome: CanaryOutcome::Failed,
                reason: Some("r&d".into()),
                doctor: None,
                doctor_tried: None,
                input_index: None,
            }],
        });
        let rows = vec![CsvRow {
            stage: "split",
            index: Some(3),
            email: "<script>@x.io".into(),
            code: "INVALID_FORMAT".into(),
            message: "a & b".into(),
        }];
        let html = render_html(&r, &rows);
        assert!(
            !html.contains("<script>") && !html.contains("<img") && !html.contains("<svg onload")
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("r&amp;d") && html.contains("a &amp; b"));
        // Self-contained: no URL but the SVG namespace, no external reference of any kind.
        let urls = html.matches("http://").count() + html.matches("https://").count();
        assert_eq!(
            urls,
            html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        );
        for external in [
            " src=\"", " href=\"", "<link", "<script", "<img", "@import", "url(",
        ] {
            assert!(!html.contains(external), "{external}");
        }
    }

    #[test]
    fn the_page_has_every_section_the_report_has() {
        let mut r = report(vec![
            job(1, 1_700_000_000_000, 1_700_000_120_000, Some(0)),
            job(2, 1_700_000_000_500, 1_700_000_200_000, Some(1)),
            job(3, 1_700_000_120_100, 1_700_000_360_000, Some(0)),
        ]);
        let html = render_html(&r, &[]);
        for id in [
            "verdict",
            "totals",
            "next-steps",
            "timeline",
            "throughput",
            "reasons",
            "chunks",
        ] {
            assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
        }
        assert!(!html.contains("id=\"canary\"") && !html.contains("id=\"reconciliation\""));
        assert!(html.contains("data-field=\"users_in\">1,234,567<"));
        assert!(html.contains("2023-11-14 22:13:20 UTC"), "start time");
        assert!(html.contains("6 min 00 s"), "duration");
        assert!(html.contains("does not hold"));
        assert_eq!(html.matches("<rect class=\"job\"").count(), 3);
        assert!(html.contains(">slot 0<") && html.contains(">slot 1<"));
        // Each failure class has its step.
        assert!(html.contains("Fix the mapping for 3 rejected records"));
        assert!(html.contains("3 users already exist"));
        assert!(html.contains("--connection-id con_AbCdEf0123456789 --upsert"));

        r.canaries = Some(CanaryReport {
            checked: 2,
            passed: 1,
            failed: 1,
            missing: 0,
            warn_only: false,
            blocked: true,
            results: vec![],
        });
        r.reconciliation = Some(ReconciliationReport {
            users_checked: 27,
            present: 26,
            present_with_differences: 0,
            missing: 1,
            differences_by_field: BTreeMap::new(),
            ..ReconciliationReport::default()
        });
        let html = render_html(&r, &[]);
        assert!(html.contains("id=\"canary\"") && html.contains("id=\"reconciliation\""));
        assert!(html.contains("Passwords would not verify"));
        assert!(html.contains("data-field=\"reconciliation_missing\">1<"));
    }

    #[test]
    fn refusals_and_doubt_are_said_first() {
        let mut r = report(vec![]);
        r.refused = Some("the gzip stream is corrupt <at byte 7>".into());
        r.in_doubt = 30;
        let html = render_html(&r, &[]);
        assert!(
            html.contains("nothing was submitted: the gzip stream is corrupt &lt;at byte 7&gt;")
        );
        assert!(html.contains("data-outcome=\"refused\""));
        assert!(html.contains("30 users are in doubt"));
    }

    #[test]
    fn a_clean_run_says_there_is_nothing_to_do() {
        let mut r = report(vec![job(1, 1000, 2000, None)]);
        r.rejected_before_submission = 0;
        r.rejected_by_code.clear();
        r.failed_at_auth0 = 0;
        r.failed_by_code.clear();
        r.users_in = 30;
        r.inserted = 30;
        r.conservation_holds = true;
        r.jobs[0].failed = 0;
        let html = render_html(&r, &[]);
        assert!(html.contains("data-outcome=\"completed\""));
        assert!(html.contains("Nothing: every user is in Auth0"));
        assert!(!html.contains("id=\"reasons\""));
    }

    proptest! {
        /// Inferred lanes never hold two overlapping jobs, and use no more lanes than the
        /// most jobs running at one moment.
        #[test]
        fn inferred_lanes_never_overlap(spans in proptest::collection::vec((0u64..10_000, 1u64..3_000), 0..40)) {
            let jobs: Vec<JobLine> = spans.iter().enumerate()
                .map(|(i, (s, d))| job(i as u32 + 1, *s, s + d, None)).collect();
            let (placed, lanes) = place(&jobs);
            prop_assert_eq!(placed.len(), jobs.len());
            for a in &placed {
                for b in &placed {
                    if a.job.seq != b.job.seq && a.lane == b.lane {
                        prop_assert!(a.end <= b.start || b.end <= a.start);
                    }
                }
            }
            let most = placed.iter().map(|p| placed.iter().filter(|q| q.start <= p.start && p.start < q.end).count()).max().unwrap_or(0);
            prop_assert!(lanes.len() <= most);
        }
    }

    #[test]
    fn numbers_and_dates_read_plainly() {
        assert_eq!(n(0), "0");
        assert_eq!(n(999), "999");
        assert_eq!(n(1000), "1,000");
        assert_eq!(n(1_234_567), "1,234,567");
        assert_eq!(human_ms(850), "850 ms");
        assert_eq!(human_ms(4_200), "4.2 s");
        assert_eq!(clock(125_000), "2:05");
    }
}
