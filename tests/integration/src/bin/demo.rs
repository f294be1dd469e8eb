//! `make demo`: the whole pipeline on one machine, for real. moto's server provides S3 and
//! Secrets Manager, our emulator plays the Auth0 tenant, a generated export is dropped into the
//! inbox, and the three handlers run on the bucket's events and schedule ticks until the run's
//! report is final. Everything started here is stopped at the end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use auth0_emulator::{EmulatorConfig, DEFAULT_CONNECTION_ID};
use aws_sdk_s3::primitives::ByteStream;
use import_core::layout;
use import_core::report::{RunProgress, RunReport};
use integration::pipeline::Pipeline;
use integration::LocalWorld;
use poll::PollConfig;
use split::{RecordOutcome, SplitConfig};
use submit::SubmitConfig;

const BUCKET: &str = "auth0-import-demo";
const SECRET: &str = "auth0-import/tenant";

#[tokio::main]
async fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = root.join("demo-data");
    std::fs::create_dir_all(&data)?;
    let export = data.join("legacy-users.json.gz");

    step("generating a sample export: 2,000 users, ~3% of them invalid, gzipped JSON array");
    generate(&root, &export)?;

    step(&format!(
        "starting moto (S3 + Secrets Manager) and the Auth0 emulator on loopback; bucket {BUCKET}, secret {SECRET}"
    ));
    let LocalWorld {
        moto,
        emulator,
        sdk,
        s3,
        secrets,
    } = LocalWorld::start(
        BUCKET,
        SECRET,
        EmulatorConfig {
            job_base_time: Duration::from_millis(300),
            job_time_per_user: Duration::from_millis(2),
            ..EmulatorConfig::default()
        },
    )
    .await?;
    println!("   moto     {}", moto.endpoint());
    println!(
        "   Auth0    {} (emulated tenant, connection {DEFAULT_CONNECTION_ID})",
        emulator.base_url()
    );
    println!(
        "   the secret holds {{\"domain\", \"client_id\", \"client_secret\"}} (values not shown)"
    );

    let key = format!("inbox/{DEFAULT_CONNECTION_ID}/legacy users.json.gz");
    step(&format!("dropping the export at s3://{BUCKET}/{key}"));
    s3.put_object()
        .bucket(BUCKET)
        .key(&key)
        .body(ByteStream::from(std::fs::read(&export)?))
        .send()
        .await?;

    let pipeline = Pipeline::new(
        sdk,
        secrets,
        SplitConfig {
            canary_secret: None,
            run_topic: None,
            inbox_prefix: layout::DEFAULT_INBOX_PREFIX.into(),
            max_chunk_bytes: 100_000,
            scratch_dir: None,
            budget: Default::default(),
        },
        SubmitConfig {
            bucket: BUCKET.into(),
            slots: 2,
            secret_id: SECRET.into(),
        },
        PollConfig {
            bucket: BUCKET.into(),
            secret_id: SECRET.into(),
            interval: Duration::from_millis(200),
            looks: Default::default(),
            reconcile: None,
        },
    );

    step("split (on the ObjectCreated event, delivered twice at once as S3 may)");
    let activity = pipeline
        .deliver_events()
        .await
        .map_err(anyhow::Error::msg)?;
    for outcome in &activity.split {
        match outcome {
            RecordOutcome::BeingSplit { by, .. } => {
                println!("   a duplicate delivery stopped cleanly: the run is being split by {by}")
            }
            RecordOutcome::AlreadySplit { .. } => {
                println!("   a duplicate delivery stopped cleanly: the run is already split")
            }
            _ => {}
        }
    }
    let split = activity
        .split
        .iter()
        .find(|o| matches!(o, RecordOutcome::Split { .. }));
    let run_id = match split {
        Some(RecordOutcome::Split {
            run_id,
            users_in,
            users_accepted,
            users_rejected,
            chunks,
            ..
        }) => {
            println!("   run {run_id}: {users_in} users in, {users_accepted} accepted, {users_rejected} rejected, {chunks} chunks");
            run_id.clone()
        }
        other => bail!("the drop was not split: {other:?}"),
    };
    let prefix = layout::run_prefix(&run_id);

    step("submit and poll: 2 import jobs at a time, driven by events and schedule ticks");
    let started = Instant::now();
    let mut last = None;
    let report = loop {
        pipeline.tick().await.map_err(anyhow::Error::msg)?;
        if let Some((bytes, _)) = pipeline
            .ledger
            .get_bytes(&format!("{prefix}{}", layout::STATUS))
            .await?
        {
            let s: RunProgress = serde_json::from_slice(&bytes)?;
            let now = (
                s.chunks_done,
                s.chunks_active,
                s.chunks_pending,
                s.inserted_so_far,
            );
            if last != Some(now) {
                println!(
                    "   {:>5.1} s  chunks {}/{} done, {} active, {} pending; inserted so far {}",
                    started.elapsed().as_secs_f64(),
                    s.chunks_done,
                    s.chunks_total,
                    s.chunks_active,
                    s.chunks_pending,
                    s.inserted_so_far
                );
                last = Some(now);
            }
        }
        if let Some(report) = pipeline.report(&run_id).await.map_err(anyhow::Error::msg)? {
            break report;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the run did not finish within 5 minutes");
        }
        // The schedule's period in this local world (EventBridge's rate in AWS).
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    step("the report");
    print_report(&report);
    let local = data.join(format!("run-{run_id}"));
    std::fs::create_dir_all(&local)?;
    let manifest: import_core::manifest::RunManifest = pipeline
        .ledger
        .require(&format!("{prefix}{}", layout::MANIFEST))
        .await?
        .value;
    let rejects = manifest.rejects_key.unwrap_or_default();
    for (name, key) in [
        (layout::REPORT_JSON, layout::REPORT_JSON),
        (layout::REPORT_CSV, layout::REPORT_CSV),
        (layout::REPORT_HTML, layout::REPORT_HTML),
        (layout::REJECTS, rejects.as_str()),
        (layout::MANIFEST, layout::MANIFEST),
        (layout::STATUS, layout::STATUS),
    ] {
        if let Some((bytes, _)) = pipeline.ledger.get_bytes(&format!("{prefix}{key}")).await? {
            std::fs::write(local.join(name), bytes)?;
        }
    }
    println!("\n   in the bucket: s3://{BUCKET}/{prefix}{{report.json,report.csv,report.html,failed-users.json,...}}");
    println!(
        "   copied here:   {}/ (open report.html in a browser)",
        display(&local)
    );
    println!(
        "   failed-users.json holds password hashes, like the chunks: it stays in the bucket only."
    );

    step("stopping moto and the emulator");
    emulator.shutdown().await;
    drop(moto);
    println!("   done");
    Ok(())
}

fn print_report(r: &RunReport) {
    for line in r.summary().lines() {
        println!("   {line}");
    }
}

fn step(text: &str) {
    println!("\n== {text}");
}

fn generate(root: &Path, out: &Path) -> Result<()> {
    let status = Command::new(integration::python())
        .arg(root.join("tests/data/gen_export.py"))
        .args([
            "--users",
            "2000",
            "--invalid-rate",
            "0.03",
            "--format",
            "json",
            "--gzip",
            "--seed",
            "7",
            "--out",
        ])
        .arg(out)
        .status()
        .context("running tests/data/gen_export.py")?;
    if !status.success() {
        bail!("the export generator failed: {status}");
    }
    Ok(())
}

fn display(p: &Path) -> String {
    p.canonicalize()
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}
