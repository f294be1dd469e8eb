//! `make demo`: the pipeline as far as it exists, locally and for real. moto's S3 server on
//! loopback, a generated export dropped into the inbox, the split handler run on its event.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use aws_lambda_events::event::s3::S3Event;
use aws_sdk_s3::primitives::ByteStream;
use import_core::layout;
use import_core::manifest::{RejectEntry, RunManifest};
use integration::{s3_put_event, MotoServer};
use split::{handle, RecordOutcome, SplitConfig};

const BUCKET: &str = "auth0-import-demo";
const KEY: &str = "inbox/con_DemoConnection0001/legacy users.json.gz";

#[tokio::main]
async fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = root.join("demo-data");
    std::fs::create_dir_all(&data)?;
    let export = data.join("legacy-users.json.gz");

    step("generating a sample export: 2,000 users, ~3% invalid, gzipped JSON array");
    generate(&root, &export)?;

    step("starting moto's S3 server on loopback");
    let moto = MotoServer::start()?;
    println!("   {}", moto.endpoint());
    let sdk = moto.sdk_config().await;
    let client = aws_shell::s3_client(&sdk);
    client.create_bucket().bucket(BUCKET).send().await?;

    step(&format!("dropping it at s3://{BUCKET}/{KEY}"));
    let body = std::fs::read(&export)?;
    let size = body.len() as u64;
    let put = client
        .put_object()
        .bucket(BUCKET)
        .key(KEY)
        .body(ByteStream::from(body))
        .send()
        .await?;
    let etag = put
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    let event: S3Event = serde_json::from_value(s3_put_event(BUCKET, KEY, size, &etag))?;

    step("running the split Lambda's handler on the ObjectCreated event");
    let scratch = tempfile_dir(&data)?;
    let config = SplitConfig {
        inbox_prefix: layout::DEFAULT_INBOX_PREFIX.into(),
        max_chunk_bytes: 100_000,
        scratch_dir: Some(scratch),
    };
    let response = handle(&client, &config, event.clone())
        .await
        .map_err(anyhow::Error::msg)?;
    let run_id = match &response.records[0] {
        RecordOutcome::Split { run_id, .. } => run_id.clone(),
        other => bail!("the drop was not split: {other:?}"),
    };
    let again = handle(&client, &config, event)
        .await
        .map_err(anyhow::Error::msg)?;
    println!(
        "   delivered twice (S3 events are at-least-once): second delivery -> {}",
        serde_json::to_string(&again.records[0])?
    );

    step(&format!(
        "the run folder s3://{BUCKET}/{}",
        layout::run_prefix(&run_id)
    ));
    let prefix = layout::run_prefix(&run_id);
    let listing = client
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(&prefix)
        .send()
        .await?;
    for o in listing.contents() {
        println!(
            "   {:>9} B  {}",
            o.size().unwrap_or_default(),
            o.key().unwrap_or_default()
        );
    }
    let manifest: RunManifest =
        serde_json::from_slice(&get(&client, &format!("{prefix}{}", layout::MANIFEST)).await?)?;
    println!();
    println!(
        "   users in {}  accepted {}  rejected {}  (in = accepted + rejected: {})",
        manifest.users_in,
        manifest.users_accepted,
        manifest.users_rejected,
        if manifest.conservation_holds {
            "holds"
        } else {
            "DOES NOT HOLD"
        }
    );
    println!(
        "   chunks {}  mean fill {:.1}% of {} bytes",
        manifest.chunks.len(),
        manifest.mean_chunk_fill * 100.0,
        manifest.max_chunk_bytes
    );
    println!(
        "   rejects by reason: {}",
        serde_json::to_string(&manifest.rejects_by_code)?
    );
    let rejects = String::from_utf8(get(&client, &format!("{prefix}{}", layout::REJECTS)).await?)?;
    println!("   first rejects (secrets redacted):");
    for line in rejects.lines().take(4) {
        let r: RejectEntry = serde_json::from_str(line)?;
        for reason in &r.reasons {
            println!(
                "     record {} (line {}): {} {} — {}",
                r.index, r.line, reason.code, reason.path, reason.message
            );
        }
    }

    step("not done yet");
    println!("   submit (Auth0 import jobs, token from Secrets Manager) and poll (job reports)");
    println!("   are not built yet: this demo stops after split. See the open issues.");
    drop(moto);
    println!("\nstopped moto; the export stays in {}", display(&export));
    Ok(())
}

fn step(text: &str) {
    println!("\n== {text}");
}

fn generate(root: &Path, out: &Path) -> Result<()> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(python)
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

fn tempfile_dir(parent: &Path) -> Result<PathBuf> {
    let dir = parent.join("scratch");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn get(client: &aws_sdk_s3::Client, key: &str) -> Result<Vec<u8>> {
    let out = client.get_object().bucket(BUCKET).key(key).send().await?;
    Ok(out.body.collect().await?.into_bytes().to_vec())
}

fn display(p: &Path) -> String {
    p.canonicalize()
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}
