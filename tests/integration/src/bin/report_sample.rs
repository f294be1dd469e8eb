//! `report_sample OUT_DIR`: a finished run with every kind of outcome, made by the real pipeline
//! on moto and the emulator, its reports copied to OUT_DIR for `make test-browser`.
//!
//! A first drop puts a few users in the tenant; the second drop (400 generated users, ~4%
//! invalid) repeats them (DUPLICATED_USER at Auth0, insert-only), one job is made to fail as a
//! whole and one post is answered 504 after its job was created (in doubt), so the report has
//! rejects, Auth0 failures, unknown and in-doubt users, and jobs overlapping on both slots.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use auth0_emulator::{EmulatorConfig, Faults, DEFAULT_CONNECTION_ID};
use aws_sdk_s3::primitives::ByteStream;
use import_core::layout;
use integration::pipeline::Pipeline;
use integration::LocalWorld;
use poll::PollConfig;
use serde_json::Value;
use split::{RecordOutcome, SplitConfig};
use submit::SubmitConfig;

const BUCKET: &str = "auth0-import-sample";
const SECRET: &str = "auth0-import/tenant";

#[tokio::main]
async fn main() -> Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: report_sample OUT_DIR")?,
    );
    std::fs::create_dir_all(&out)?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let export = out.join("legacy-users.json");
    generate(&root, &export)?;
    let users: Vec<Value> = serde_json::from_slice(&std::fs::read(&export)?)?;
    // Valid records from the export, imported beforehand so the main drop meets them again.
    let earlier: Vec<&Value> = users
        .iter()
        .filter(|u| {
            u.get("email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.contains('@'))
        })
        .skip(100)
        .take(6)
        .collect();

    let world = LocalWorld::start(
        BUCKET,
        SECRET,
        EmulatorConfig {
            job_base_time: Duration::from_millis(300),
            job_time_per_user: Duration::from_millis(12),
            ..EmulatorConfig::default()
        },
    )
    .await?;
    let pipeline = Pipeline::new(
        world.sdk.clone(),
        world.secrets.clone(),
        SplitConfig {
            canary_secret: None,
            run_topic: None,
            inbox_prefix: layout::DEFAULT_INBOX_PREFIX.into(),
            max_chunk_bytes: 24_000,
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
            interval: Duration::from_millis(100),
            looks: Default::default(),
            reconcile: None,
        },
    );
    let inbox = format!("inbox/{DEFAULT_CONNECTION_ID}");
    let first = drop_and_run(
        &world,
        &pipeline,
        &format!("{inbox}/earlier.json"),
        serde_json::to_vec(&earlier)?,
    )
    .await?;
    println!("earlier run {first}: {} users", earlier.len());

    world.emulator.set_faults(Faults {
        fail_next_jobs: 1,
        // One post creates its job and answers 504: the chunk is in doubt.
        create_then_fail: 1,
        after_create_status: 504,
        ..Faults::default()
    });
    let run_id = drop_and_run(
        &world,
        &pipeline,
        &format!("{inbox}/legacy users.json"),
        std::fs::read(&export)?,
    )
    .await?;
    let prefix = layout::run_prefix(&run_id);
    for name in [
        layout::REPORT_JSON,
        layout::REPORT_HTML,
        layout::REPORT_CSV,
        layout::MANIFEST,
    ] {
        let Some((bytes, _)) = pipeline
            .ledger
            .get_bytes(&format!("{prefix}{name}"))
            .await
            .map_err(anyhow::Error::msg)?
        else {
            bail!("run {run_id} has no {name}");
        };
        std::fs::write(out.join(name), bytes)?;
    }
    println!("run {run_id}: reports in {}", out.display());
    world.emulator.shutdown().await;
    Ok(())
}

/// Puts `body` at `key`, runs the pipeline until the run's report exists, returns the run id.
async fn drop_and_run(
    world: &LocalWorld,
    pipeline: &Pipeline,
    key: &str,
    body: Vec<u8>,
) -> Result<String> {
    world
        .s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await?;
    let activity = pipeline
        .deliver_events()
        .await
        .map_err(anyhow::Error::msg)?;
    let Some(run_id) = activity.split.iter().find_map(|o| match o {
        RecordOutcome::Split { run_id, .. } => Some(run_id.clone()),
        _ => None,
    }) else {
        bail!("{key} was not split: {:?}", activity.split);
    };
    pipeline
        .run_to_report(
            &run_id,
            Duration::from_millis(100),
            Duration::from_secs(300),
        )
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(run_id)
}

fn generate(root: &Path, out: &Path) -> Result<()> {
    let status = Command::new(integration::python())
        .arg(root.join("tests/data/gen_export.py"))
        .args([
            "--users",
            "400",
            "--invalid-rate",
            "0.04",
            "--format",
            "json",
            "--seed",
            "20",
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
