//! `migrate` as an operator runs it: the binary against our Auth0 emulator (on loopback),
//! to the final report, and again after being killed mid-run: it resumes, posts no chunk twice.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use auth0_emulator::{
    Emulator, EmulatorConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_CONNECTION_ID,
};
use serde_json::{json, Value};

fn export(dir: &Path, n: usize) -> String {
    let users: Vec<Value> = (0..n)
        .map(|i| json!({"email": format!("m{i}@example.com"), "email_verified": true, "name": "Ana Lúcia", "app_metadata": {"n": i}}))
        .collect();
    let path = dir.join("users.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&users).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

fn credentials(dir: &Path, emulator: &Emulator) -> String {
    let path = dir.join("tenant.json");
    let secret = json!({"domain": emulator.base_url(), "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET});
    std::fs::write(&path, secret.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

fn migrate_cmd(file: &str, out: &Path, creds: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auth0-s3-import"));
    c.args([
        "migrate",
        file,
        "--out",
        out.to_str().unwrap(),
        "--credentials",
        creds,
        "--connection-id",
        DEFAULT_CONNECTION_ID,
        "--max-chunk-bytes",
        "2000",
    ]);
    c
}

fn posts_per_chunk(emulator: &Emulator) -> Vec<usize> {
    let mut counts = std::collections::BTreeMap::new();
    for r in emulator.requests() {
        if r.path == "/api/v2/jobs/users-imports" && r.status == 202 {
            *counts
                .entry(r.external_id.unwrap_or_default())
                .or_insert(0usize) += 1;
        }
    }
    counts.into_values().collect()
}

fn report(out: &Path) -> Value {
    let runs = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    serde_json::from_slice(&std::fs::read(runs.join("report.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_runs_to_a_report() {
    let emulator = Emulator::start(EmulatorConfig {
        job_base_time: Duration::from_millis(30),
        job_time_per_user: Duration::from_millis(1),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = export(dir.path(), 120);
    let creds = credentials(dir.path(), &emulator);
    let out = dir.path().join("migration");
    let mut cmd = migrate_cmd(&file, &out, &creds);
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("inserted") && stdout.contains("holds"),
        "{stdout}"
    );
    let r = report(&out);
    assert_eq!(r["inserted"], 120);
    assert_eq!(r["conservation_holds"], true);
    assert_eq!(emulator.users().len(), 120);
    assert!(posts_per_chunk(&emulator).iter().all(|n| *n == 1));
    // The token never reaches the output.
    assert!(!stdout.contains(DEFAULT_CLIENT_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_migration_resumes_and_posts_nothing_twice() {
    let emulator = Emulator::start(EmulatorConfig {
        job_base_time: Duration::from_millis(400),
        job_time_per_user: Duration::from_millis(5),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = export(dir.path(), 150);
    let creds = credentials(dir.path(), &emulator);
    let out = dir.path().join("migration");
    let mut child = migrate_cmd(&file, &out, &creds)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once jobs are in flight (bounded wait on the emulator's own job list).
    let deadline = Instant::now() + Duration::from_secs(30);
    while emulator.jobs().len() < 2 {
        assert!(Instant::now() < deadline, "no job started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = emulator.jobs().len();

    let mut cmd = migrate_cmd(&file, &out, &creds);
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("resuming run"), "{stdout}");
    let r = report(&out);
    assert_eq!(r["conservation_holds"], true, "{r}");
    assert_eq!(r["users_in"], 150);
    assert!(
        posts_per_chunk(&emulator).iter().all(|n| *n == 1),
        "a chunk was posted twice"
    );
    assert!(
        emulator.jobs().len() > before,
        "the resumed run posted the remaining chunks"
    );
    // Users are all imported, or (if the kill cut a post) accounted for as unknown.
    let inserted = r["inserted"].as_u64().unwrap();
    let unknown = r["unknown"].as_u64().unwrap();
    assert_eq!(inserted + unknown, 150, "{r}");
    // A post cut by the kill may still have created its job: those users are in the tenant
    // but reported unknown, never counted twice.
    let in_tenant = emulator.users().len() as u64;
    assert!(
        inserted <= in_tenant && in_tenant <= 150,
        "{in_tenant} in the tenant, {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_can_come_from_the_environment() {
    let emulator = Emulator::start(EmulatorConfig {
        job_base_time: Duration::from_millis(20),
        job_time_per_user: Duration::from_millis(1),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = export(dir.path(), 20);
    let out = dir.path().join("migration");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_auth0-s3-import"));
    cmd.args([
        "migrate",
        &file,
        "--out",
        out.to_str().unwrap(),
        "--connection-id",
        DEFAULT_CONNECTION_ID,
    ])
    .env("AUTH0_DOMAIN", emulator.base_url())
    .env("AUTH0_CLIENT_ID", DEFAULT_CLIENT_ID)
    .env("AUTH0_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
    .env_remove("AUTH0_TOKEN");
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report(&out)["inserted"], 20);
    assert_eq!(emulator.users().len(), 20);

    // Neither a file nor the variables: the error says what to provide.
    let mut bare = Command::new(env!("CARGO_BIN_EXE_auth0-s3-import"));
    bare.args([
        "migrate",
        &file,
        "--out",
        dir.path().join("other").to_str().unwrap(),
        "--connection-id",
        DEFAULT_CONNECTION_ID,
    ])
    .env_remove("AUTH0_DOMAIN")
    .env_remove("AUTH0_TOKEN")
    .env_remove("AUTH0_CLIENT_ID")
    .env_remove("AUTH0_CLIENT_SECRET");
    let output = bare.output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("AUTH0_DOMAIN") && stderr.contains("--credentials"),
        "{stderr}"
    );
}
