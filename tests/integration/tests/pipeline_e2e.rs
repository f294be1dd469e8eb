//! The whole pipeline end to end — split, submit, poll — on moto and the Auth0 emulator, driven
//! by the bucket's events (each delivered twice, concurrently) and schedule ticks, with and
//! without faults. Whatever happens, the run reaches a final report that agrees with the
//! tenant, and no chunk is imported twice.

use std::time::Duration;

use auth0_emulator::Faults;
use import_core::layout::RunPath;
use integration::fixtures::{quick, users, World};
use serde_json::{json, Value};

const TICK: Duration = Duration::from_millis(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_is_imported_and_reported_and_a_colliding_drop_is_accounted_for() {
    let w = World::start(quick()).await;
    let mut first = users(0..60);
    first[7]["email"] = json!("not-an-email");
    first[30] = first[3].clone(); // an in-drop duplicate
    let run_a = w.drop_export("first.json", &first).await;
    let a = w
        .pipeline
        .run_to_report(&run_a, TICK, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        (
            a.users_in,
            a.rejected_before_submission,
            a.inserted,
            a.failed_at_auth0,
            a.unknown
        ),
        (60, 2, 58, 0, 0),
        "{a:?}"
    );
    let truth = w.check_run(&run_a, &a).await;
    assert_eq!(truth.tenant_users, 58);
    let run = RunPath::new(&run_a);
    let csv = String::from_utf8(w.get(&run.report_csv()).await.unwrap()).unwrap();
    assert_eq!(csv.lines().count(), 3, "header + the two rejects:\n{csv}");
    assert!(
        csv.contains("split,7,") && csv.contains("DUPLICATED_USER"),
        "{csv}"
    );

    // A second drop repeats 5 users already in the tenant: Auth0 fails them (no upsert).
    let second = users(55..80);
    let run_b = w.drop_export("second.json", &second).await;
    let b = w
        .pipeline
        .run_to_report(&run_b, TICK, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        (b.users_in, b.inserted, b.failed_at_auth0),
        (25, 20, 5),
        "{b:?}"
    );
    assert_eq!(b.failed_by_code.get("DUPLICATED_USER"), Some(&5));
    w.check_run(&run_b, &b).await;
    let run = RunPath::new(&run_b);
    let failed: Vec<Value> =
        serde_json::from_slice(&w.get(&run.failed_users()).await.unwrap()).unwrap();
    assert_eq!(failed.len(), 5);
    // The originals, hashes included, so a re-drop (e.g. with upsert=true) imports them as they were.
    assert_eq!(failed[0], second[0]);
    let csv = String::from_utf8(w.get(&run.report_csv()).await.unwrap()).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("auth0,0,person55@example.com,DUPLICATED_USER,")),
        "{csv}"
    );
    let html = String::from_utf8(w.get(&run.report_html()).await.unwrap()).unwrap();
    assert!(html.contains("DUPLICATED_USER (Auth0)") && !html.contains("<script"));
    // Every event was delivered twice; no invocation had to go to the dead-letter queue.
    assert!(
        w.pipeline.dead_letters().is_empty(),
        "{:?}",
        w.pipeline.dead_letters()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_failed_jobs_and_expiring_tokens_still_end_in_a_true_report() {
    let w = World::start(quick()).await;
    w.emulator.set_faults(Faults {
        seed: 10,
        extra_429_rate: 0.2,
        fail_next_jobs: 1,
        expire_tokens_after: Some(Duration::from_millis(700)),
        ..Faults::default()
    });
    let run_id = w.drop_export("faulty.json", &users(0..120)).await;
    let report = w
        .pipeline
        .run_to_report(&run_id, TICK, Duration::from_secs(90))
        .await
        .unwrap();
    let truth = w.check_run(&run_id, &report).await;
    assert_eq!(report.users_in, 120);
    let failed_job = report
        .jobs
        .iter()
        .find(|j| j.status == "failed")
        .expect("the injected failed job is reported");
    assert!(failed_job.unknown > 0 || failed_job.failed > 0);
    // The failed job's users are unknown, not failed: they go to unknown-users.json.
    assert_eq!(report.unknown, failed_job.unknown);
    assert_eq!(truth.tenant_users, report.inserted);
    let log = w.emulator.requests();
    assert!(log.iter().any(|r| r.status == 429), "faults were injected");
    assert!(
        log.iter()
            .filter(|r| r.path == "/oauth/token" && r.status == 200)
            .count()
            >= 2,
        "tokens were re-minted"
    );
}

/// A bcrypt hash of `password` made by Python's `bcrypt` (an independent implementation).
fn bcrypt_of(password: &str) -> String {
    let out = std::process::Command::new(integration::python())
        .args([
            "-c",
            "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(10, prefix=b'2b')).decode())",
            password,
        ])
        .output()
        .expect("python with bcrypt (make deps-python)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_split_lambda_checks_the_canaries_kept_in_secrets_manager() {
    let mut w = World::start(quick()).await;
    let secrets = w.pipeline.secrets.clone();
    let set_canaries = |password: &str| {
        let value = json!({"canaries": [{"email": "person3@example.com", "password": password}]});
        let secrets = secrets.clone();
        async move {
            let _ = secrets
                .create_secret()
                .name("canaries")
                .secret_string("{}")
                .send()
                .await;
            secrets
                .put_secret_value()
                .secret_id("canaries")
                .secret_string(value.to_string())
                .send()
                .await
                .unwrap();
        }
    };
    w.pipeline.split.canary_secret = Some(split::CanarySecret {
        client: secrets.clone(),
        secret_id: "canaries".into(),
    });
    let mut records = users(0..30);
    records[3]["password_hash"] = json!(bcrypt_of("correct horse battery"));

    // The known password verifies: the run goes on, and its report says so.
    set_canaries("correct horse battery").await;
    let run_id = w.drop_export("canary-ok.json", &records).await;
    let report = w
        .pipeline
        .run_to_report(&run_id, TICK, Duration::from_secs(60))
        .await
        .unwrap();
    w.check_run(&run_id, &report).await;
    let canaries = report.canaries.clone().expect("canary section");
    assert_eq!(
        (canaries.checked, canaries.passed, canaries.blocked),
        (1, 1, false)
    );
    assert_eq!(report.inserted, 30);

    // A wrong one stops the next drop before any job: no chunk is left to submit.
    set_canaries("Tr0ub4dor&3").await;
    let jobs_before = w.emulator.jobs().len();
    let mut second = users(40..60);
    second.push(records[3].clone());
    let blocked = w.drop_export("canary-bad.json", &second).await;
    let report = w
        .pipeline
        .run_to_report(&blocked, TICK, Duration::from_secs(60))
        .await
        .unwrap();
    let canaries = report.canaries.clone().expect("canary section");
    assert!(canaries.blocked && canaries.failed == 1, "{canaries:?}");
    assert_eq!(
        w.emulator.jobs().len(),
        jobs_before,
        "no job for a stopped run"
    );
    assert!(report.conservation_holds);
    for key in [
        RunPath::new(&blocked).report_json(),
        RunPath::new(&blocked).report_html(),
    ] {
        let text = String::from_utf8(w.get(&key).await.unwrap()).unwrap();
        assert!(
            !text.contains("Tr0ub4dor") && !text.contains("correct horse"),
            "{key}"
        );
    }
}
