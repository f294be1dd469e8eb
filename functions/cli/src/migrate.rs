//! `auth0-s3-import migrate`: a whole migration from a laptop. The same split, submit and poll
//! as the Lambdas, with the ledger in a local folder instead of a bucket, so an interrupted run
//! started again with the same arguments resumes where it stopped.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use auth0_api::{unix_now_ms, ManagementApi};
use import_core::layout;
use import_core::layout::RunPath;
use import_core::ledger::{Holder, Ledger, CLAIM_TIMEOUT_MS};
use import_core::manifest::{RunManifest, RunStatus};
use import_core::options::{is_connection_id, DropOptions};
use import_core::report::{RunProgress, RunReport};
use import_core::run_end::NoNotifier;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use orchestrator::poll::{PollConfig, PollReport, Poller};
use orchestrator::submit::{activate_runs, SubmitConfig, SubmitTrigger, Submitter};

use crate::folder::FolderSink;
use crate::store::FolderStore;

/// A run that makes no progress for this long is left for a later resume: Auth0 fails jobs
/// after 2 h, so by then something outside this tool holds the tenant's import slots.
const STALL_LIMIT: Duration = Duration::from_secs(3 * 3600);
const TICK: Duration = Duration::from_secs(1);
/// Slots a previous invocation may have used; all are checked on resume.
const MAX_SLOTS: u32 = 16;

pub struct MigrateArgs<'a> {
    pub file: &'a Path,
    pub out: &'a Path,
    /// The credentials file; `None`: from the environment.
    pub credentials: Option<&'a Path>,
    pub connection_id: &'a str,
    pub upsert: bool,
    pub max_jobs: u32,
    pub max_chunk_bytes: usize,
    pub canaries: import_core::canary::Canaries,
    /// Read the users back from the tenant once the run is final (`--no-reconcile` clears it).
    pub reconcile: bool,
    /// How to read the file when it is not in Auth0's formats (`--mapping`, `--from`).
    pub mapping: Option<std::sync::Arc<import_core::mapping::Mapping>>,
}

pub fn migrate(args: MigrateArgs<'_>) -> Result<ExitCode> {
    if !is_connection_id(args.connection_id) {
        bail!("--connection-id {:?} is not a connection id: con_ followed by 16 letters or digits (the id, not the name)", args.connection_id);
    }
    if !(1..=MAX_SLOTS).contains(&args.max_jobs) {
        bail!("--max-jobs must be 1..={MAX_SLOTS} (Auth0 runs 2 import jobs per tenant at once)");
    }
    let credentials = crate::credentials::load(args.credentials)?;
    let api = ManagementApi::new(credentials).context("building the HTTP client")?;

    let run_id = crate::local_run_id(args.file)?;
    let run_dir = args.out.join(layout::run_prefix(&run_id));
    let manifest_path = run_dir.join(layout::MANIFEST);
    if manifest_path.exists() {
        println!("resuming run {run_id} in {}", run_dir.display());
    } else {
        let options = DropOptions {
            connection_id: args.connection_id.to_string(),
            upsert: args.upsert,
            send_completion_email: false,
            canary_warn: args.canaries.warn_only,
            source: None,
        };
        let mut sink = FolderSink::create(&run_dir).map_err(anyhow::Error::msg)?;
        let manifest = crate::run_split(
            args.file,
            &run_id,
            args.max_chunk_bytes,
            Some(options),
            args.canaries,
            args.mapping,
            &mut sink,
        )?;
        crate::print_summary(&manifest, &run_dir);
        if manifest.status == RunStatus::Failed {
            return Ok(ExitCode::FAILURE);
        }
    }
    let manifest: RunManifest = serde_json::from_slice(&std::fs::read(&manifest_path)?)?;
    if let Some(o) = &manifest.options {
        if o.connection_id != args.connection_id || o.upsert != args.upsert {
            bail!(
                "{} was split for connection {} (upsert {}); resume with the same arguments or use another --out",
                run_dir.display(),
                o.connection_id,
                o.upsert
            );
        }
    }
    if manifest.status == RunStatus::Failed {
        // A resumed run that split had stopped (a broken input, a failed canary) stays stopped.
        crate::print_summary(&manifest, &run_dir);
        println!(
            "this run failed at split; to try again, remove {} or use another --out",
            run_dir.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if manifest.chunks.is_empty() {
        println!("nothing to submit: no user was accepted");
        return Ok(ExitCode::FAILURE);
    }
    crate::runtime()?.block_on(follow(
        &api,
        args.out,
        &run_id,
        &manifest,
        args.max_jobs,
        args.reconcile,
    ))
}

async fn follow(
    api: &ManagementApi,
    out: &Path,
    run_id: &str,
    manifest: &RunManifest,
    slots: u32,
    reconcile: bool,
) -> Result<ExitCode> {
    let ledger = Ledger::new(FolderStore::new(out));
    // This process is the folder's only user: claims an earlier process left unposted are dead
    // now, not in 16 minutes. They are recorded as unknown, never posted again.
    let recovered = ledger
        .recover_slots(MAX_SLOTS, unix_now_ms() + CLAIM_TIMEOUT_MS + 1)
        .await?;
    if recovered > 0 {
        println!("settled {recovered} job slot(s) left by an interrupted run");
    }
    let submit_config = SubmitConfig {
        bucket: out.display().to_string(),
        slots,
        secret_id: String::new(),
    };
    let poll_config = PollConfig {
        bucket: out.display().to_string(),
        secret_id: String::new(),
        interval: TICK,
        looks: Default::default(),
        reconcile: None,
    };
    let run = RunPath::new(run_id);
    activate_runs(
        &ledger,
        &SubmitTrigger::Manifests([run_id.to_string()].into()),
    )
    .await?;

    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let chunks_bar = bars.add(
        ProgressBar::new(manifest.chunks.len() as u64)
            .with_style(style.clone())
            .with_prefix("chunks"),
    );
    let users_bar = bars.add(
        ProgressBar::new(manifest.users_accepted)
            .with_style(style)
            .with_prefix("users"),
    );
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut last_progress = (0, 0);
    let mut progressed_at = Instant::now();
    let mut invocation = 0u64;
    loop {
        invocation += 1;
        let deadline = Instant::now() + Duration::from_secs(120);
        let submitter = Submitter {
            ledger: &ledger,
            api,
            config: &submit_config,
            holder: Holder {
                name: format!("cli-{}-{invocation}", std::process::id()),
                // One process uses the folder: a claim it left is dead when it restarts.
                deadline_ms: Some(unix_now_ms() + 120_000),
            },
            deadline,
        };
        submitter.run().await?;
        // One sweep per tick; its requests may take as long as a poll invocation's would.
        let poller = Poller {
            ledger: &ledger,
            api,
            config: &poll_config,
            // The report on disk is how the CLI tells its operator.
            notifier: &NoNotifier,
            deadline: Instant::now() + Duration::from_secs(60),
        };
        poller.sweep(&mut PollReport::default()).await?;

        if let Some(status) = ledger.get::<RunProgress>(&run.status()).await? {
            let s = status.value;
            chunks_bar.set_position(s.chunks_done as u64);
            chunks_bar.set_message(format!("{} in flight", s.chunks_active));
            users_bar.set_position(s.inserted_so_far + s.updated_so_far + s.failed_so_far);
            users_bar.set_message(format!(
                "{} inserted, {} updated, {} failed",
                s.inserted_so_far, s.updated_so_far, s.failed_so_far
            ));
            let now = (s.chunks_done, s.chunks_active);
            if now != last_progress {
                last_progress = now;
                progressed_at = Instant::now();
            }
        }
        if let Some(report) = ledger.get::<RunReport>(&run.report_json()).await? {
            chunks_bar.finish_and_clear();
            users_bar.finish_and_clear();
            let report = report.value;
            println!("\n{}", report.summary());
            println!("reports: {}", out.join(run.prefix()).display());
            if reconcile {
                // A failed read-back does not undo the import: say so, keep the run's exit code.
                if let Err(e) = crate::readback::reconcile_run(
                    &ledger,
                    api,
                    run_id,
                    orchestrator::reconcile::IN_DOUBT_WAIT,
                )
                .await
                {
                    eprintln!("reconcile failed: {e:#} (run `auth0-s3-import reconcile --out {}` to try again)", out.display());
                }
            }
            return Ok(if report.all_imported() {
                ExitCode::SUCCESS
            } else if report.conservation_holds {
                // Completed, with users not imported: see report.csv / failed-users.json.
                ExitCode::from(3)
            } else {
                ExitCode::FAILURE
            });
        }
        if progressed_at.elapsed() > STALL_LIMIT {
            bail!("no progress for {} h (Auth0's import slots busy?): run the same command again later to resume", STALL_LIMIT.as_secs() / 3600);
        }
        tokio::time::sleep(TICK).await;
    }
}
