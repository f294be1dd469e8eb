//! `auth0-s3-import runs` and `status RUN [--watch]`: a deployed stack's runs and one run's
//! progress, read from the objects the pipeline writes (nothing here writes), as a table or a
//! progress bar for people and as JSON for scripts.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use import_core::clock::utc_minutes;
use import_core::layout::{self, RunPath};
use import_core::pace;
use import_core::run_end::RunOutcome;
use import_core::run_view::{RunState, RunView};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::deployed::{self, Deployed, RunRead};

pub struct Target<'a> {
    pub stack: Option<&'a str>,
    pub bucket: Option<&'a str>,
}

/// A run in `runs --json`.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    view: &'a RunView,
    started_at_ms: Option<i64>,
}

pub fn runs(target: Target<'_>, json: bool, limit: usize) -> Result<ExitCode> {
    crate::runtime()?.block_on(async {
        let d = deployed::connect(target.stack, target.bucket, None).await?;
        let runs = d.read_runs().await?;
        let shown: Vec<&RunRead> = runs.iter().take(limit).collect();
        if json {
            let listed: Vec<Listed> = shown
                .iter()
                .map(|r| Listed {
                    view: &r.view,
                    started_at_ms: r.started_at_ms,
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&listed)?);
            return Ok(ExitCode::SUCCESS);
        }
        if runs.is_empty() {
            println!(
                "no runs in s3://{}/{} yet: drop a file with auth0-s3-import drop FILE {}",
                d.target.bucket,
                layout::RUNS_PREFIX,
                d.target.flag()
            );
            return Ok(ExitCode::SUCCESS);
        }
        print!("{}", table(&shown));
        if runs.len() > shown.len() {
            println!(
                "({} older runs not shown: --limit {})",
                runs.len() - shown.len(),
                runs.len()
            );
        }
        println!("details: auth0-s3-import status RUN {}", d.target.flag());
        Ok(ExitCode::SUCCESS)
    })
}

/// The runs as a fixed-width table (newest first).
fn table(runs: &[&RunRead]) -> String {
    let width = runs
        .iter()
        .map(|r| r.view.run_id.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!(
        "{:<width$}  {:<23}  {:<20}  {:>9}  {:>9}  {:>9}  {:>12}  {:>11}\n",
        "RUN",
        "STATE",
        "STARTED (UTC)",
        "USERS IN",
        "INSERTED",
        "UPDATED",
        "NOT IMPORTED",
        "CHUNKS"
    );
    for r in runs {
        let v = &r.view;
        let not_imported = if v.state == RunState::Final {
            (v.users_rejected + v.failed + v.unknown).to_string()
        } else {
            format!("{}+", v.users_rejected + v.failed)
        };
        out.push_str(&format!(
            "{:<width$}  {:<23}  {:<20}  {:>9}  {:>9}  {:>9}  {:>12}  {:>11}\n",
            v.run_id,
            state_text(v),
            r.started_at_ms
                .map(|t| utc_minutes(t.max(0) as u64))
                .unwrap_or_else(|| "—".into()),
            v.users_in,
            v.inserted,
            v.updated,
            not_imported,
            format!("{}/{}", v.chunks_done, v.chunks_total),
        ));
    }
    out
}

fn state_text(v: &RunView) -> String {
    match (v.state, v.outcome) {
        (RunState::Final, Some(o)) => o.phrase().to_string(),
        (state, _) => state.as_str().to_string(),
    }
}

pub struct StatusArgs<'a> {
    pub run_id: &'a str,
    pub target: Target<'a>,
    pub watch: bool,
    pub json: bool,
    pub interval: Duration,
    pub timeout: Duration,
}

pub fn status(args: StatusArgs<'_>) -> Result<ExitCode> {
    crate::runtime()?.block_on(async {
        let d = deployed::connect(args.target.stack, args.target.bucket, None).await?;
        let first = d.read_run(args.run_id, true).await?;
        if !first.exists {
            if !args.watch {
                bail!(
                    "no run {} in s3://{}/{}: list them with auth0-s3-import runs {}",
                    args.run_id,
                    d.target.bucket,
                    layout::RUNS_PREFIX,
                    d.target.flag()
                );
            }
            eprintln!(
                "nothing under runs/{}/ yet: waiting for split to start",
                args.run_id
            );
        }
        if !args.watch {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&first.view)?);
            } else {
                print!("{}", describe(&first, &d));
            }
            return Ok(exit_code(&first.view));
        }
        watch(&d, &args, first).await
    })
}

/// Follows the run until it ends (or `timeout`), redrawing a bar on a terminal, else printing a
/// line (or a JSON object with `--json`) whenever something changes.
async fn watch(d: &Deployed, args: &StatusArgs<'_>, mut read: RunRead) -> Result<ExitCode> {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.json;
    let bar = ProgressBar::new(read.view.chunks_total as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos}/{len} chunks  {msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if !terminal {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let deadline = Instant::now() + args.timeout;
    let mut last: Option<String> = None;
    loop {
        let v = &read.view;
        let line = serde_json::to_string(v)?;
        if last.as_deref() != Some(line.as_str()) {
            if args.json {
                println!("{line}");
            } else if !terminal {
                println!("{}", one_line(v));
            }
            last = Some(line);
        }
        bar.set_length(v.chunks_total as u64);
        bar.set_position(v.chunks_done as u64);
        bar.set_prefix(v.state.as_str());
        bar.set_message(progress_message(v));
        if matches!(v.state, RunState::Final | RunState::Refused) {
            bar.finish_and_clear();
            if !args.json {
                print!("{}", describe(&read, d));
            }
            return Ok(exit_code(v));
        }
        if Instant::now() + args.interval > deadline {
            bar.abandon();
            bail!(
                "run {} is still {} after {}: run the same command again to keep watching",
                v.run_id,
                v.state.as_str(),
                pace::human(args.timeout)
            );
        }
        // The refresh period a person asked for (--interval), bounded by the deadline above.
        tokio::time::sleep(args.interval).await;
        read = d.read_run(args.run_id, true).await?;
    }
}

/// 0 every user imported, 3 ended with users not imported, 1 refused or numbers that do not
/// add up; 0 while the run is still going (a snapshot is not a verdict).
fn exit_code(v: &RunView) -> ExitCode {
    match (v.state, v.outcome) {
        (RunState::Refused, _) => ExitCode::FAILURE,
        (RunState::Final, Some(RunOutcome::Completed)) => ExitCode::SUCCESS,
        (RunState::Final, _) if v.conservation_holds == Some(false) => ExitCode::FAILURE,
        (RunState::Final, Some(RunOutcome::CompletedWithFailures)) => ExitCode::from(3),
        (RunState::Final, _) => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}

fn progress_message(v: &RunView) -> String {
    let mut m = format!(
        "{} active, {} pending · {} inserted, {} updated, {} failed",
        v.chunks_active, v.chunks_pending, v.inserted, v.updated, v.failed
    );
    if let Some(eta) = v.eta_s {
        m.push_str(&format!(
            " · ETA ~{}",
            pace::human(Duration::from_secs(eta))
        ));
    }
    m
}

fn one_line(v: &RunView) -> String {
    format!(
        "{} {}: chunks {}/{} done · {}",
        v.run_id,
        state_text(v),
        v.chunks_done,
        v.chunks_total,
        progress_message(v)
    )
}

/// The run for a person: state, counts, progress and where the reports are.
fn describe(r: &RunRead, d: &Deployed) -> String {
    let v = &r.view;
    let mut out = format!("run        {}\nstate      {}\n", v.run_id, state_text(v));
    if let Some(source) = &v.source {
        let s = match source {
            import_core::manifest::Source::S3 { bucket, key, .. } => format!("s3://{bucket}/{key}"),
            import_core::manifest::Source::Local { path, .. } => path.clone(),
        };
        out.push_str(&format!("source     {s}\n"));
    }
    if let Some(o) = &v.options {
        out.push_str(&format!(
            "options    connection {}, upsert {}, completion e-mails {}\n",
            o.connection_id, o.upsert, o.send_completion_email
        ));
    }
    if let Some(t) = r.started_at_ms {
        out.push_str(&format!("split at   {}\n", utc_minutes(t.max(0) as u64)));
    }
    if let Some(f) = &v.failure {
        out.push_str(&format!("refused    {f}\n"));
        return out;
    }
    if let Some(report) = &r.report {
        out.push('\n');
        out.push_str(&report.summary());
        let run = RunPath::new(&v.run_id);
        out.push_str(&format!(
            "\nreport     s3://{}/{}\n           s3://{}/{} (one row per user not imported)\n",
            d.target.bucket,
            run.report_html(),
            d.target.bucket,
            run.report_csv()
        ));
        return out;
    }
    out.push_str(&format!(
        "users      {} in, {} accepted, {} rejected before submission\n",
        v.users_in, v.users_accepted, v.users_rejected
    ));
    out.push_str(&format!(
        "chunks     {} done, {} active, {} pending of {}\n",
        v.chunks_done, v.chunks_active, v.chunks_pending, v.chunks_total
    ));
    out.push_str(&format!(
        "so far     {} inserted, {} updated, {} failed at Auth0\n",
        v.inserted, v.updated, v.failed
    ));
    if let (Some(eta), Some(basis)) = (v.eta_s, &v.eta_basis) {
        out.push_str(&format!(
            "ETA        ~{} ({basis})\n",
            pace::human(Duration::from_secs(eta))
        ));
    }
    if v.state == RunState::RefusedByAuth0 {
        out.push_str(&format!(
            "Auth0 refused the run: read s3://{}/{}\n",
            d.target.bucket,
            RunPath::new(&v.run_id).submit_failed()
        ));
    }
    out
}
