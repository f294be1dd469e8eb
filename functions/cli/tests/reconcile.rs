//! Reconcile and rollback as an operator runs them: `migrate` against our Auth0 emulator, then the
//! users read back (in-doubt chunks resolved, upserts that changed nothing caught), then undone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use auth0_emulator::{
    ClientConfig, Emulator, EmulatorConfig, Faults, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_CONNECTION_ID,
};
use serde_json::{json, Value};

const ADMIN: &str = "admin-client";

fn config() -> EmulatorConfig {
    let mut config = EmulatorConfig {
        job_base_time: Duration::from_millis(30),
        job_time_per_user: Duration::from_millis(1),
        export_base_time: Duration::from_millis(30),
        ..EmulatorConfig::default()
    };
    config.clients.push(ClientConfig {
        client_id: ADMIN.into(),
        client_secret: "admin-secret".into(),
        scopes: vec![
            "create:users".into(),
            "read:users".into(),
            "delete:users".into(),
        ],
    });
    config
}

fn write_users(dir: &Path, name: &str, users: &[Value]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(users).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

fn users(range: std::ops::Range<usize>, plan: &str) -> Vec<Value> {
    range
        .map(|i| json!({"email": format!("r{i}@example.com"), "email_verified": true, "given_name": format!("G{i}"), "user_metadata": {"plan": plan}}))
        .collect()
}

fn credentials(dir: &Path, emulator: &Emulator, client: (&str, &str)) -> String {
    let path = dir.join(format!("{}.json", client.0));
    let secret =
        json!({"domain": emulator.base_url(), "client_id": client.0, "client_secret": client.1});
    std::fs::write(&path, secret.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

async fn cli(args: Vec<String>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auth0-s3-import"));
    c.args(args);
    tokio::task::spawn_blocking(move || c.output())
        .await
        .unwrap()
        .unwrap()
}

fn migrate_args(file: &str, out: &Path, creds: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
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
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run_dir(out: &Path) -> PathBuf {
    std::fs::read_dir(out.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Each email of `emails` appears in the tenant exactly once.
fn present_once(emulator: &Emulator, emails: impl Iterator<Item = String>) {
    let tenant = emulator.users();
    for email in emails {
        let n = tenant
            .iter()
            .filter(|u| u["email"] == email.as_str())
            .count();
        assert_eq!(n, 1, "{email} is in the tenant {n} times");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_doubt_chunks_end_with_every_user_verified_present_exactly_once() {
    let emulator = Emulator::start(config()).await.unwrap();
    // The first post creates its job and answers 504; the second is read whole and dropped
    // without creating one. Both chunks end in doubt.
    emulator.set_faults(Faults {
        create_then_fail: 1,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = write_users(dir.path(), "users.json", &users(0..60, "gold"));
    let creds = credentials(
        dir.path(),
        &emulator,
        (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    );
    let out = dir.path().join("migration");
    let output = cli(migrate_args(&file, &out, &creds, &["--max-jobs", "1"])).await;
    let run = run_dir(&out);
    let report = read_json(&run.join("report.json"));
    assert!(
        report["in_doubt"].as_u64().unwrap() > 0,
        "{}",
        text(&output)
    );
    let reconciliation = read_json(&run.join("reconciliation.json"));
    assert_eq!(reconciliation["missing"], 0, "{reconciliation:#}");
    assert_eq!(reconciliation["duplicates"], 0);
    assert_eq!(reconciliation["present"], 60);
    assert_eq!(reconciliation["verified_identity_holds"], true);
    assert_eq!(reconciliation["in_doubt_chunks"][0]["verdict"], "imported");
    assert_eq!(
        reconciliation["imported_by_unknown_jobs"],
        reconciliation["in_doubt_chunks"][0]["found"]
    );
    // The section is in report.json and report.html too.
    assert_eq!(report["reconciliation"]["present"], 60);
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("data-field=\"reconciliation_present\">60<"),
        "{html}"
    );
    present_once(&emulator, (0..60).map(|i| format!("r{i}@example.com")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_doubt_chunk_whose_users_are_missing_is_submitted_once_more_and_only_once() {
    let emulator = Emulator::start(config()).await.unwrap();
    // The first post is dropped before any job exists: its users never reached the tenant.
    emulator.set_faults(Faults {
        reset_after_body: 1,
        reset_creates_job: false,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = write_users(dir.path(), "users.json", &users(0..40, "gold"));
    let creds = credentials(
        dir.path(),
        &emulator,
        (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    );
    let out = dir.path().join("migration");
    let output = cli(migrate_args(&file, &out, &creds, &[])).await;
    let run = run_dir(&out);
    // Right after the run a job Auth0 made behind the lost answer could still be importing
    // these users: migrate reports them missing and safe to submit again later, sends nothing.
    let reconciliation = read_json(&run.join("reconciliation.json"));
    let waiting = &reconciliation["in_doubt_chunks"][0];
    assert_eq!(waiting["verdict"], "resubmit", "{}", text(&output));
    assert_eq!(waiting["resubmitted"], false);
    assert!(!run.join("resubmits").exists());
    // Once that window has passed (here: told it has), reconcile sends it, once.
    let output = cli(vec![
        "reconcile".into(),
        "--out".into(),
        out.to_str().unwrap().into(),
        "--credentials".into(),
        creds.clone(),
        "--in-doubt-wait-s".into(),
        "0".into(),
    ])
    .await;
    let reconciliation = read_json(&run.join("reconciliation.json"));
    let resubmit = &reconciliation["in_doubt_chunks"][0];
    // Read back after the resubmission: every user found, the chunk marked resubmitted.
    assert_eq!(resubmit["verdict"], "imported", "{}", text(&output));
    assert_eq!(resubmit["resubmitted"], true);
    assert_eq!(reconciliation["missing"], 0);
    let seq = resubmit["seq"].as_u64().unwrap();
    let marker = read_json(&run.join(format!("resubmits/{seq:06}.json")));
    assert!(
        marker["outcome"].as_str().unwrap().starts_with("completed"),
        "{marker}"
    );
    present_once(&emulator, (0..40).map(|i| format!("r{i}@example.com")));

    // A second reconcile finds every user and sends nothing again.
    let posts = |e: &Emulator| {
        e.requests()
            .iter()
            .filter(|r| r.path == "/api/v2/jobs/users-imports")
            .count()
    };
    let before = posts(&emulator);
    let again = cli(vec![
        "reconcile".into(),
        "--out".into(),
        out.to_str().unwrap().into(),
        "--credentials".into(),
        creds.clone(),
        "--in-doubt-wait-s".into(),
        "0".into(),
    ])
    .await;
    assert_eq!(posts(&emulator), before, "{}", text(&again));
    let reconciliation = read_json(&run.join("reconciliation.json"));
    assert_eq!(reconciliation["missing"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_that_left_the_metadata_unchanged_is_present_with_differences() {
    let emulator = Emulator::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials(
        dir.path(),
        &emulator,
        (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    );
    let first = write_users(dir.path(), "first.json", &users(0..30, "gold"));
    let output = cli(migrate_args(&first, &dir.path().join("first"), &creds, &[])).await;
    assert!(output.status.success(), "{}", text(&output));

    emulator.set_faults(Faults {
        upsert_keeps_metadata: true,
        ..Faults::default()
    });
    let second = write_users(dir.path(), "second.json", &users(0..30, "silver"));
    let out = dir.path().join("second");
    let output = cli(migrate_args(
        &second,
        &out,
        &creds,
        &["--upsert", "--no-reconcile"],
    ))
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let run = run_dir(&out);
    assert!(!run.join("reconciliation.json").exists());
    let report = read_json(&run.join("report.json"));
    assert_eq!(report["updated"], 30);

    let reconciled = cli(vec![
        "reconcile".into(),
        "--out".into(),
        out.to_str().unwrap().into(),
        "--credentials".into(),
        creds.clone(),
    ])
    .await;
    assert_eq!(reconciled.status.code(), Some(3), "{}", text(&reconciled));
    assert!(text(&reconciled).contains("user_metadata: 30 differ"));
    let reconciliation = read_json(&run.join("reconciliation.json"));
    assert_eq!(reconciliation["present_with_differences"], 30);
    assert_eq!(
        reconciliation["differences_by_field"],
        json!({"user_metadata": 30})
    );
    assert_eq!(
        reconciliation["samples"]["different"][0]["fields"],
        json!(["user_metadata"])
    );
    // Job summaries said 30 updated, and 30 are there: the verified identity holds.
    assert_eq!(reconciliation["verified_identity_holds"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_removes_exactly_the_inserted_users_and_a_second_rollback_is_a_no_op() {
    let emulator = Emulator::start(config()).await.unwrap();
    // Users that exist before the run: one the run will update, one it does not touch.
    emulator.seed_users(
        None,
        vec![
            json!({"email": "r0@example.com", "given_name": "Old"}),
            json!({"email": "bystander@example.com"}),
        ],
    );
    // created_at has millisecond precision: let the clock move past the seeding.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials(
        dir.path(),
        &emulator,
        (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    );
    let admin = credentials(dir.path(), &emulator, (ADMIN, "admin-secret"));
    let file = write_users(dir.path(), "users.json", &users(0..25, "gold"));
    let out = dir.path().join("migration");
    let output = cli(migrate_args(&file, &out, &creds, &["--upsert"])).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(emulator.users().len(), 26);
    let rollback = |creds: &str, yes: bool| {
        let mut args: Vec<String> = vec![
            "rollback".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--credentials".into(),
            creds.into(),
        ];
        if yes {
            args.push("--yes".into());
        }
        cli(args)
    };

    // A dry run: counts and a sample, nothing deleted.
    let dry = rollback(&creds, false).await;
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(text(&dry).contains("dry run: 24 users"), "{}", text(&dry));
    assert_eq!(emulator.users().len(), 26);
    let run = run_dir(&out);
    let report = read_json(&run.join("rollback.json"));
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["to_delete"], 24);
    assert_eq!(
        report["skipped"],
        json!({"existed before the run (updated or untouched by it)": 1})
    );

    // Without delete:users: refused up front, with the scope named.
    let refused = rollback(&creds, true).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains("delete:users"),
        "{}",
        text(&refused)
    );
    assert_eq!(emulator.users().len(), 26);

    let done = rollback(&admin, true).await;
    assert!(done.status.success(), "{}", text(&done));
    let left: Vec<String> = emulator
        .users()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec!["r0@example.com", "bystander@example.com"]);
    let report = read_json(&run.join("rollback.json"));
    assert_eq!(report["deleted"], 24);
    assert_eq!(report["failed"], 0);

    let again = rollback(&admin, true).await;
    assert!(again.status.success(), "{}", text(&again));
    let report = read_json(&run.join("rollback.json"));
    assert_eq!(report["to_delete"], 0);
    assert_eq!(report["deleted"], 0);
    assert_eq!(emulator.users().len(), 2);
}
