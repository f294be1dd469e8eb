//! `local_stack [SECONDS]`: a deployed stack on this machine, to try the CLI's stack commands as
//! an operator would. moto plays S3, Secrets Manager and CloudFormation (a stack named `local`
//! whose outputs name the bucket), the emulator plays the tenant, and the three handlers run on
//! the bucket's events and a 1-second schedule. Prints the environment to export, then serves
//! until SECONDS pass (default 1800), and stops moto and the emulator.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use auth0_emulator::{
    EmulatorConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_CONNECTION_ID,
};
use integration::pipeline::Pipeline;
use integration::LocalWorld;
use poll::PollConfig;
use serde_json::json;
use split::SplitConfig;
use submit::SubmitConfig;

const STACK: &str = "local";
const BUCKET: &str = "local-drops-000000000000";
const SECRET: &str = "local/auth0";

#[tokio::main]
async fn main() -> Result<()> {
    let serve_for = Duration::from_secs(
        std::env::args()
            .nth(1)
            .map(|s| s.parse().context("SECONDS must be a number"))
            .transpose()?
            .unwrap_or(1800),
    );
    let mut config = EmulatorConfig {
        job_base_time: Duration::from_millis(500),
        job_time_per_user: Duration::from_millis(10),
        ..EmulatorConfig::default()
    };
    // `plan` reads the connection too.
    config.clients[0].scopes.push("read:connections".into());
    let world = LocalWorld::start(BUCKET, SECRET, config).await?;
    let sdk = world.moto.sdk_config().await;
    let template = json!({
        "Resources": {"RunTopic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "local-runs"}}},
        "Outputs": {
            "BucketName": {"Value": BUCKET},
            "InboxPrefix": {"Value": "inbox/"},
            "MaxChunkBytes": {"Value": "50000"},
            "DropLocation": {"Value": format!("s3://{BUCKET}/inbox/{DEFAULT_CONNECTION_ID}/")},
            "RunTopicArn": {"Value": {"Ref": "RunTopic"}}
        }
    });
    aws_sdk_cloudformation::Client::new(&sdk)
        .create_stack()
        .stack_name(STACK)
        .template_body(template.to_string())
        .send()
        .await?;
    println!(
        "stack {STACK} (bucket {BUCKET}, connection {DEFAULT_CONNECTION_ID}); in another shell:\n"
    );
    println!(
        "export AWS_ENDPOINT_URL={} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test",
        world.moto.endpoint()
    );
    println!(
        "export AUTH0_DOMAIN={} AUTH0_CLIENT_ID={DEFAULT_CLIENT_ID} AUTH0_CLIENT_SECRET={DEFAULT_CLIENT_SECRET}\n",
        world.emulator.base_url()
    );
    println!("serving for {} s", serve_for.as_secs());

    let pipeline = Pipeline::new(
        world.sdk.clone(),
        world.secrets.clone(),
        SplitConfig {
            canary_secret: None,
            run_topic: None,
            inbox_prefix: "inbox/".into(),
            max_chunk_bytes: 50_000,
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
    let deadline = Instant::now() + serve_for;
    while Instant::now() < deadline {
        match pipeline.tick().await {
            Ok(a) => {
                for s in &a.split {
                    println!("split: {s:?}");
                }
                for p in a.poll.iter().filter(|p| !p.runs_finalized.is_empty()) {
                    println!("poll: final {:?}", p.runs_finalized);
                }
            }
            Err(e) => eprintln!("tick: {e}"),
        }
        // The schedule's period (EventBridge's rate in AWS).
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    world.emulator.shutdown().await;
    Ok(())
}
