//! The split Lambda's handler on a local file through moto's S3: how long one drop takes end to
//! end when every chunk is a PUT (and every thinned chunk a GET and a PUT) on loopback.
//!
//! `cargo run --release -p integration --bin split_s3 -- FILE [--max-chunk-bytes N]
//! [--endpoint http://127.0.0.1:PORT]`
//!
//! Prints the handler's outcome and wall time. Without `--endpoint` it starts moto itself; with
//! it, it uses an S3 endpoint already listening on loopback (moto behind
//! `tests/bench/latency_proxy.py`, to see how many requests wait on one another). Neither says
//! what real S3 would take.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use aws_config::{BehaviorVersion, Region};
use aws_lambda_events::event::s3::S3Event;
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use integration::{s3_put_event, MotoServer};
use split::SplitConfig;

const BUCKET: &str = "bench";

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let mut max_chunk_bytes = import_core::split::DEFAULT_MAX_CHUNK_BYTES;
    let mut endpoint = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--max-chunk-bytes" => {
                max_chunk_bytes = args
                    .next()
                    .context("--max-chunk-bytes needs a value")?
                    .parse()
                    .context("--max-chunk-bytes must be a number")?;
            }
            "--endpoint" => endpoint = Some(args.next().context("--endpoint needs a URL")?),
            _ if file.is_none() => file = Some(arg),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let Some(file) = file else {
        bail!("usage: split_s3 FILE [--max-chunk-bytes N]");
    };
    let body = std::fs::read(&file).with_context(|| format!("reading {file}"))?;
    let size = body.len() as u64;

    let (_moto, sdk) = match endpoint {
        Some(url) if url.starts_with("http://127.0.0.1:") => (None, sdk_config(&url).await),
        Some(url) => bail!("--endpoint must be http://127.0.0.1:PORT, got {url}"),
        None => {
            let moto = MotoServer::start()?;
            let sdk = moto.sdk_config().await;
            (Some(moto), sdk)
        }
    };
    let client = aws_shell::s3_client(&sdk);
    client.create_bucket().bucket(BUCKET).send().await?;
    let key = "inbox/con_AbCdEf0123456789/bench.json";
    let put = client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await?;
    let etag = put
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    let event: S3Event = serde_json::from_value(s3_put_event(BUCKET, key, size, &etag))?;
    let config = SplitConfig {
        canary_secret: None,
        run_topic: None,
        inbox_prefix: "inbox/".into(),
        max_chunk_bytes,
        scratch_dir: None,
        budget: Default::default(),
    };

    let started = Instant::now();
    let invocation = split::Invocation {
        request_id: "split-s3-bench".into(),
        deadline_ms: None,
    };
    let response = split::handle(&client, &config, &invocation, event)
        .await
        .map_err(anyhow::Error::msg)?;
    let elapsed = started.elapsed();
    println!("{}", serde_json::to_string(&response.records)?);
    for record in &response.records {
        if let split::RecordOutcome::Split { run_id, .. } = record {
            let manifest = client
                .get_object()
                .bucket(BUCKET)
                .key(format!(
                    "{}{}",
                    import_core::layout::run_prefix(run_id),
                    import_core::layout::MANIFEST
                ))
                .send()
                .await?
                .body
                .collect()
                .await?
                .into_bytes();
            let manifest: import_core::manifest::RunManifest = serde_json::from_slice(&manifest)?;
            if let Some(failure) = manifest.failure {
                println!("failed: {failure:?}");
            } else {
                println!("mean chunk fill {:.4}", manifest.mean_chunk_fill);
            }
        }
    }
    println!(
        "split handler: {:.2} s for {size} bytes",
        elapsed.as_secs_f64()
    );
    Ok(())
}

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
        .load()
        .await
}
