//! `reconcile` and `rollback`: a final run's users read back from the tenant, and a guarded undo
//! of what it inserted, over the folder `migrate` kept (`--out`) or a deployed bucket (`--bucket`).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use auth0_api::ManagementApi;
use import_core::layout::{self, RunPath};
use import_core::ledger::{Ledger, ObjectStore};
use import_core::reconcile::{InDoubtVerdict, Reconciliation};
use orchestrator::reconcile::{RollbackReport, Stage};

use crate::store::FolderStore;

/// A reconcile or rollback may read a large export and delete many users: hours, not minutes.
const STAGE_TIME: Duration = Duration::from_secs(12 * 3600);
const EXPORT_POLL: Duration = Duration::from_secs(2);

/// Where the run lives.
pub struct Where<'a> {
    pub out: Option<&'a Path>,
    pub bucket: Option<&'a str>,
    pub run: Option<&'a str>,
    pub credentials: Option<&'a Path>,
}

/// The only run in `out`, or the one asked for.
fn pick_run(out: &Path, asked: Option<&str>) -> Result<String> {
    if let Some(run) = asked {
        return Ok(run.to_string());
    }
    let runs_dir = out.join(layout::RUNS_PREFIX);
    let mut runs: Vec<String> = std::fs::read_dir(&runs_dir)
        .with_context(|| format!("reading {}", runs_dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    runs.sort();
    match runs.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("{} holds no run", out.display()),
        _ => bail!(
            "{} holds {} runs ({}): name one with --run",
            out.display(),
            runs.len(),
            runs.join(", ")
        ),
    }
}

fn api(credentials: Option<&Path>) -> Result<ManagementApi> {
    let credentials = crate::credentials::load(credentials)?;
    ManagementApi::new(credentials).context("building the HTTP client")
}

pub fn reconcile_command(at: Where<'_>, in_doubt_wait: Duration) -> Result<ExitCode> {
    let api = api(at.credentials)?;
    crate::runtime()?.block_on(async {
        let result = match (at.out, at.bucket) {
            (Some(out), _) => {
                let run = pick_run(out, at.run)?;
                reconcile_run(
                    &Ledger::new(FolderStore::new(out)),
                    &api,
                    &run,
                    in_doubt_wait,
                )
                .await?
            }
            (None, Some(bucket)) => {
                let Some(run) = at.run else {
                    bail!("--bucket needs --run RUN_ID (see `auth0-s3-import runs`)")
                };
                let d = crate::deployed::connect(None, Some(bucket), None).await?;
                reconcile_run(&d.ledger, &api, run, in_doubt_wait).await?
            }
            (None, None) => {
                bail!("name the run's folder with --out DIR, or a deployed bucket with --bucket B")
            }
        };
        Ok(reconcile_exit(&result))
    })
}

/// Reconciles one run and prints what it found (also `migrate`'s last step).
pub async fn reconcile_run<S: ObjectStore>(
    ledger: &Ledger<S>,
    api: &ManagementApi,
    run_id: &str,
    in_doubt_wait: Duration,
) -> Result<Reconciliation> {
    let stage = Stage {
        ledger,
        api,
        deadline: Instant::now() + STAGE_TIME,
        poll_every: EXPORT_POLL,
        in_doubt_wait,
    };
    let run = RunPath::new(run_id);
    let result = stage.reconcile(&run, true).await?;
    print_reconciliation(&result);
    println!(
        "written: {}",
        run.object(import_core::reconcile::RECONCILIATION_JSON)
    );
    Ok(result)
}

fn print_reconciliation(r: &Reconciliation) {
    let x = &r.report;
    println!(
        "reconciled ({}): {} users checked, {} present, {} present with differences, {} missing",
        x.method.as_deref().unwrap_or("export"),
        x.users_checked,
        x.present,
        x.present_with_differences,
        x.missing
    );
    for (field, n) in &x.differences_by_field {
        println!("  {field}: {n} differ");
    }
    if x.duplicates > 0 {
        println!("  {} found more than once in the tenant", x.duplicates);
    }
    for chunk in &r.in_doubt_chunks {
        match chunk.verdict {
            InDoubtVerdict::Imported if chunk.resubmitted => println!(
                "  chunk {} (in doubt): its users were missing, so it was submitted once more; all {} found now",
                chunk.seq, chunk.found
            ),
            InDoubtVerdict::Imported => println!(
                "  chunk {} (in doubt): all {} users found — imported by a job we never heard of",
                chunk.seq, chunk.found
            ),
            InDoubtVerdict::Resubmit if chunk.resubmitted => println!(
                "  chunk {} (in doubt): {} users still missing after it was submitted once more (see resubmits/)",
                chunk.seq, chunk.missing
            ),
            InDoubtVerdict::Resubmit => println!(
                "  chunk {} (in doubt): {} users missing, not submitted again (reconcile without resubmission)",
                chunk.seq, chunk.missing
            ),
        }
    }
    println!(
        "verified: {} — {}",
        x.verified_identity,
        if x.verified_identity_holds {
            "holds"
        } else {
            "does not hold"
        }
    );
}

/// 0: every user checked is present and matches; 3: some differ or are missing.
fn reconcile_exit(r: &Reconciliation) -> ExitCode {
    let x = &r.report;
    if x.missing == 0 && x.present_with_differences == 0 && x.verified_identity_holds {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

pub fn rollback_command(at: Where<'_>, yes: bool) -> Result<ExitCode> {
    let api = api(at.credentials)?;
    crate::runtime()?.block_on(async {
        let report = match (at.out, at.bucket) {
            (Some(out), _) => {
                let run = pick_run(out, at.run)?;
                rollback_run(&Ledger::new(FolderStore::new(out)), &api, &run, yes).await?
            }
            (None, Some(bucket)) => {
                let Some(run) = at.run else {
                    bail!("--bucket needs --run RUN_ID (see `auth0-s3-import runs`)")
                };
                let d = crate::deployed::connect(None, Some(bucket), None).await?;
                rollback_run(&d.ledger, &api, run, yes).await?
            }
            (None, None) => {
                bail!("name the run's folder with --out DIR, or a deployed bucket with --bucket B")
            }
        };
        Ok(if report.failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}

async fn rollback_run<S: ObjectStore>(
    ledger: &Ledger<S>,
    api: &ManagementApi,
    run_id: &str,
    yes: bool,
) -> Result<RollbackReport> {
    let stage = Stage {
        ledger,
        api,
        deadline: Instant::now() + STAGE_TIME,
        poll_every: EXPORT_POLL,
        // Rollback submits nothing.
        in_doubt_wait: orchestrator::reconcile::IN_DOUBT_WAIT,
    };
    let run = RunPath::new(run_id);
    let report = stage.rollback(&run, yes).await?;
    if report.dry_run {
        println!(
            "dry run: {} users the run inserted would be deleted (run again with --yes to delete them)",
            report.to_delete
        );
        for user_id in &report.sample {
            println!("  {user_id}");
        }
    } else {
        println!(
            "deleted {} of {} users the run inserted; {} failed",
            report.deleted, report.to_delete, report.failed
        );
    }
    for (reason, n) in &report.skipped {
        println!("  left alone: {n} ({reason})");
    }
    println!(
        "written: {}",
        run.object(orchestrator::reconcile::ROLLBACK_JSON)
    );
    Ok(report)
}
