//! The commands for a deployed stack, as an operator runs them: the binary against moto (S3 and
//! CloudFormation with the stack's outputs) while the pipeline's own handlers run the drop on
//! the emulated tenant. `drop` puts the file at the key split reads its options from and names
//! the run split makes; `status --watch` and `runs` follow it to its report; `plan` reads the
//! stack's slots.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use auth0_emulator::{EmulatorConfig, DEFAULT_CONNECTION_ID};
use import_core::layout;
use integration::pipeline::Pipeline;
use integration::{LocalWorld, MotoServer};
use poll::PollConfig;
use serde_json::{json, Value};
use split::SplitConfig;
use submit::SubmitConfig;

const STACK: &str = "teststack";
const BUCKET: &str = "teststack-drops-123456789012";
const SECRET: &str = "teststack/auth0";

/// The CLI with the AWS environment pointed at moto.
fn cli(moto: &MotoServer, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auth0-s3-import"));
    c.args(args)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("RUST_LOG");
    c
}

async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output())
        .await
        .unwrap()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A stack in moto's CloudFormation with the outputs the template gives (the bucket itself is
/// LocalWorld's, so the outputs name it literally).
async fn create_stack(moto: &MotoServer) {
    let sdk = moto.sdk_config().await;
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let template = json!({
        "Resources": {"RunTopic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "teststack-runs"}}},
        "Outputs": {
            "BucketName": {"Value": BUCKET},
            "InboxPrefix": {"Value": "inbox/"},
            "MaxChunkBytes": {"Value": "2000"},
            "DropLocation": {"Value": format!("s3://{BUCKET}/inbox/{DEFAULT_CONNECTION_ID}/")},
            "RunTopicArn": {"Value": {"Ref": "RunTopic"}}
        }
    });
    cfn.create_stack()
        .stack_name(STACK)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();
}

fn export(dir: &Path, n: usize, bad: usize) -> String {
    let mut users: Vec<Value> = (0..n)
        .map(|i| json!({"email": format!("d{i}@example.com"), "email_verified": true, "name": "Zoë"}))
        .collect();
    for u in users.iter_mut().take(bad) {
        u["email"] = json!("not-an-email");
    }
    let path = dir.join("users.json");
    std::fs::write(&path, serde_json::to_vec(&users).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

fn pipeline(world: &LocalWorld) -> Pipeline {
    Pipeline::new(
        world.sdk.clone(),
        world.secrets.clone(),
        SplitConfig {
            canary_secret: None,
            run_topic: None,
            inbox_prefix: "inbox/".into(),
            max_chunk_bytes: 2000,
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
    )
}

fn field<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_then_status_and_runs_follow_the_run_to_its_report() {
    let world = LocalWorld::start(
        BUCKET,
        SECRET,
        EmulatorConfig {
            job_base_time: Duration::from_millis(30),
            job_time_per_user: Duration::from_millis(1),
            ..EmulatorConfig::default()
        },
    )
    .await
    .unwrap();
    create_stack(&world.moto).await;
    let dir = tempfile::tempdir().unwrap();
    let file = export(dir.path(), 60, 2);

    // drop: the stack's DefaultConnection, upsert in the key, the run id split will use.
    let dropped = run(cli(
        &world.moto,
        &["drop", &file, "--stack", STACK, "--upsert"],
    ))
    .await;
    let (stdout, stderr) = text(&dropped);
    assert!(dropped.status.success(), "{stdout}\n{stderr}");
    let run_id = field(&stdout, "run id").to_string();
    let key = format!("inbox/{DEFAULT_CONNECTION_ID}/upsert=true/users.json");
    assert!(stdout.contains(&format!("s3://{BUCKET}/{key}")), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "auth0-s3-import status {run_id} --stack {STACK} --watch"
        )),
        "{stdout}"
    );
    let head = world
        .s3
        .head_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.content_length(),
        Some(std::fs::metadata(&file).unwrap().len() as i64)
    );

    // Nothing is split yet: status says so and fails; a watcher waits for it.
    let early = run(cli(&world.moto, &["status", &run_id, "--stack", STACK])).await;
    assert_eq!(early.status.code(), Some(1));
    assert!(text(&early).1.contains("no run"), "{}", text(&early).1);
    let watcher = cli(
        &world.moto,
        &[
            "status",
            &run_id,
            "--stack",
            STACK,
            "--watch",
            "--json",
            "--interval",
            "1",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();

    let p = pipeline(&world);
    let activity = p.deliver_events().await.unwrap();
    assert!(
        activity
            .split
            .iter()
            .any(|o| matches!(o, split::RecordOutcome::Split { run_id: r, .. } if *r == run_id)),
        "split made another run: {:?}",
        activity.split
    );
    let queued = run(cli(
        &world.moto,
        &["status", &run_id, "--stack", STACK, "--json"],
    ))
    .await;
    let view: Value = serde_json::from_slice(&queued.stdout).unwrap();
    assert_eq!(view["state"], "queued", "{view}");
    assert_eq!(
        (view["users_in"].as_u64(), view["users_rejected"].as_u64()),
        (Some(60), Some(2))
    );
    assert_eq!(view["options"]["upsert"], true);
    assert!(view["eta_s"].as_u64().unwrap() > 0, "{view}");
    assert!(
        view["eta_basis"].as_str().unwrap().contains("upsert"),
        "{view}"
    );

    let report = p
        .run_to_report(
            &run_id,
            Duration::from_millis(100),
            Duration::from_secs(120),
        )
        .await
        .unwrap();
    assert_eq!(report.inserted, 58);

    // The watcher saw the run move and ends with the run: exit 3, users were rejected.
    let watched = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || watcher.wait_with_output()),
    )
    .await
    .expect("the watcher ends when the run does")
    .unwrap()
    .unwrap();
    let (lines, stderr) = text(&watched);
    assert_eq!(watched.status.code(), Some(3), "{lines}\n{stderr}");
    let states: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = states.last().unwrap();
    assert_eq!(
        (last["state"].as_str(), last["outcome"].as_str()),
        (Some("final"), Some("completed_with_failures"))
    );
    assert_eq!(last["inserted"], 58);
    assert!(states.len() >= 2, "one snapshot only: {lines}");

    // status of the final run: totals, identity and where the reports are.
    let done = run(cli(&world.moto, &["status", &run_id, "--bucket", BUCKET])).await;
    let (stdout, _) = text(&done);
    assert_eq!(done.status.code(), Some(3));
    assert!(stdout.contains("completed with failures"), "{stdout}");
    assert!(
        stdout.contains(&format!("s3://{BUCKET}/runs/{run_id}/report.html")),
        "{stdout}"
    );
    assert!(stdout.contains("holds"), "{stdout}");

    // runs: a table for people, JSON for scripts, both from the same objects.
    let listed = run(cli(&world.moto, &["runs", "--stack", STACK])).await;
    let (table, stderr) = text(&listed);
    assert!(listed.status.success(), "{table}\n{stderr}");
    let row = table
        .lines()
        .find(|l| l.starts_with(&run_id))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("completed with failures") && row.contains(" 60 ") && row.contains(" 58 "),
        "{row}"
    );
    let json_runs = run(cli(&world.moto, &["runs", "--stack", STACK, "--json"])).await;
    let runs: Value = serde_json::from_slice(&json_runs.stdout).unwrap();
    assert_eq!(runs[0]["run_id"], run_id.as_str());
    assert_eq!(runs[0]["inserted"], report.inserted);
    assert_eq!(runs[0]["users_rejected"], report.rejected_before_submission);

    // plan --stack splits with the stack's chunk size, so it foresees the chunks the run had,
    // and reads the stack's slots (all free now).
    let mut planned = cli(
        &world.moto,
        &[
            "plan",
            &file,
            "--connection-id",
            DEFAULT_CONNECTION_ID,
            "--stack",
            STACK,
        ],
    );
    planned
        .env("AUTH0_DOMAIN", world.emulator.base_url())
        .env("AUTH0_CLIENT_ID", auth0_emulator::DEFAULT_CLIENT_ID)
        .env("AUTH0_CLIENT_SECRET", auth0_emulator::DEFAULT_CLIENT_SECRET);
    let planned = run(planned).await;
    let (table, stderr) = text(&planned);
    assert_eq!(planned.status.code(), Some(3), "{table}\n{stderr}");
    let chunks_row = table
        .lines()
        .find(|l| l.starts_with("| Chunks = import jobs"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        chunks_row.contains(&format!("| {} (up to 2,000 bytes", report.chunks)),
        "{chunks_row} vs {} chunks",
        report.chunks
    );
    assert!(
        table.contains("0 busy now in this stack's ledger"),
        "{table}"
    );

    world.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_versioned_bucket_the_run_id_names_the_version() {
    let moto = MotoServer::start().unwrap();
    let sdk = moto.sdk_config().await;
    let s3 = aws_shell::s3_client(&sdk);
    s3.create_bucket().bucket("versioned").send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket("versioned")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = export(dir.path(), 3, 0);
    let args = [
        "drop",
        &file,
        "--bucket",
        "versioned",
        "--connection-id",
        "con_AbCdEf0123456789",
        "--name",
        "monday.json",
        "--json",
    ];
    let first = run(cli(&moto, &args)).await;
    let a: Value = serde_json::from_slice(&first.stdout).unwrap();
    let second = run(cli(&moto, &args)).await;
    let b: Value = serde_json::from_slice(&second.stdout).unwrap();
    let key = "inbox/con_AbCdEf0123456789/monday.json";
    assert_eq!(a["key"], key);
    // The same bytes uploaded twice are two versions, so two runs.
    assert_ne!(a["version_id"], b["version_id"]);
    assert_ne!(a["run_id"], b["run_id"]);
    let head = s3
        .head_object()
        .bucket("versioned")
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(b["version_id"].as_str(), head.version_id());
    assert_eq!(
        b["run_id"].as_str().unwrap(),
        layout::run_id(key, head.version_id().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_goes_up_in_parts_and_arrives_whole() {
    let moto = MotoServer::start().unwrap();
    let sdk = moto.sdk_config().await;
    let s3 = aws_shell::s3_client(&sdk);
    s3.create_bucket().bucket("big").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Just past the single-PUT threshold (64 MiB): five parts of 16 MiB.
    let line = b"{\"email\":\"someone@example.com\",\"name\":\"A long enough record\"}\n";
    let mut bytes = Vec::with_capacity(65 * 1024 * 1024 + line.len());
    while bytes.len() <= 64 * 1024 * 1024 {
        bytes.extend_from_slice(line);
    }
    let path = dir.path().join("big.ndjson");
    std::fs::write(&path, &bytes).unwrap();
    let dropped = run(cli(
        &moto,
        &[
            "drop",
            path.to_str().unwrap(),
            "--bucket",
            "big",
            "--connection-id",
            "con_AbCdEf0123456789",
            "--json",
        ],
    ))
    .await;
    let (stdout, stderr) = text(&dropped);
    assert!(dropped.status.success(), "{stdout}\n{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let got = s3
        .get_object()
        .bucket("big")
        .key(out["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert!(
        got.e_tag().unwrap().contains("-5"),
        "a 5-part upload: {:?}",
        got.e_tag()
    );
    let body = got.body.collect().await.unwrap().into_bytes();
    assert!(
        body.as_ref() == bytes.as_slice(),
        "the object differs from the file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_that_does_not_exist_is_named() {
    let moto = MotoServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = export(dir.path(), 1, 0);
    let o = run(cli(
        &moto,
        &[
            "drop",
            &file,
            "--stack",
            "nope",
            "--connection-id",
            "con_AbCdEf0123456789",
        ],
    ))
    .await;
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr.contains("cannot read stack nope") && stderr.contains("--bucket"),
        "{stderr}"
    );
    let o = run(cli(&moto, &["runs", "--bucket", "missing-bucket"])).await;
    assert_eq!(o.status.code(), Some(1));
}
