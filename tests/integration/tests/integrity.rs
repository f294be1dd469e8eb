//! Integrity as deployed: the functions run as Lambda runs them (every S3 event delivered
//! twice, concurrently; failed and killed invocations retried with their request id), against
//! Auth0 answers that hide what they did (a 504 after the job was created, a dropped connection,
//! a 2xx without a job id, a token endpoint down, job reads refused forever) and kills at S3
//! writes. After each scenario: one run per drop, no chunk imported twice, every slot free, and
//! a report that agrees with the tenant.

use std::time::Duration;

use auth0_emulator::Faults;
use import_core::layout::RunPath;
use import_core::ledger::{JobRecord, JobState};
use integration::fixtures::{quick, users, World, SECRET};
use integration::pipeline::Ended;
use integration::s3_proxy::KillMode;
use serde_json::Value;
use split::RecordOutcome;

const TICK: Duration = Duration::from_millis(30);
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// The job records of a run, by chunk.
async fn jobs(w: &World, run_id: &str) -> Vec<JobRecord> {
    let run = RunPath::new(run_id);
    let mut out = Vec::new();
    for (key, _) in w.pipeline.ledger.list(&run.jobs()).await.unwrap() {
        out.push(
            w.pipeline
                .ledger
                .require::<JobRecord>(&key)
                .await
                .unwrap()
                .value,
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_concurrent_drop_events_end_in_one_run_with_unchanged_chunks() {
    let w = World::start(quick()).await;
    // In-drop duplicates make split rewrite chunks after the stream: two splits writing one
    // folder would mix their chunks.
    let mut records = users(0..400);
    for i in (10..400).step_by(10) {
        records[i]["email"] = serde_json::json!(format!("PERSON{}@example.com", i - 7));
    }
    let (key, run_id) = w.put_export("twice.json", &records).await;
    let activity = w.pipeline.deliver_events().await.unwrap();
    // Two deliveries at once: one split, the other stopped cleanly.
    let splits = activity
        .split
        .iter()
        .filter(|o| matches!(o, RecordOutcome::Split { .. }))
        .count();
    assert_eq!(splits, 1, "{:?}", activity.split);
    assert!(
        activity.split.iter().all(|o| matches!(
            o,
            RecordOutcome::Split { .. }
                | RecordOutcome::BeingSplit { .. }
                | RecordOutcome::AlreadySplit { .. }
        )),
        "{:?}",
        activity.split
    );
    let committed = w.chunk_etags(&run_id).await;
    assert!(committed.len() > 3, "{committed:?}");
    let report = w
        .pipeline
        .run_to_report(&run_id, TICK, RUN_TIMEOUT)
        .await
        .unwrap();
    let truth = w.check_run(&run_id, &report).await;
    assert_eq!(truth.tenant_users, 361);
    assert_eq!(report.rejected_before_submission, 39);
    assert_eq!(w.runs_of(&key).await.len(), 1);
    assert_eq!(
        w.chunk_etags(&run_id).await,
        committed,
        "a committed chunk changed"
    );
    // Nothing but the committed attempt's objects is left in the run folder.
    let leftovers: Vec<String> = w
        .pipeline
        .ledger
        .list(&RunPath::new(&run_id).attempts())
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| !committed.keys().any(|c| k.ends_with(c.as_str())))
        .filter(|k| !k.ends_with("rejects.ndjson"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A second upload to the same key is a second version: a second run, never a mix.
    let (_, second) = w.put_export("twice.json", &users(500..530)).await;
    assert_ne!(second, run_id);
    w.pipeline.deliver_events().await.unwrap();
    let report = w
        .pipeline
        .run_to_report(&second, TICK, RUN_TIMEOUT)
        .await
        .unwrap();
    w.check_run(&second, &report).await;
    assert_eq!(report.inserted, 30);
    assert_eq!(w.runs_of(&key).await.len(), 2);
    assert!(
        w.pipeline.dead_letters().is_empty(),
        "{:?}",
        w.pipeline.dead_letters()
    );
}

/// The chunks Auth0 answered with a failure that hid a created job: each is in doubt, never
/// posted again, and its users are unknown (not failed), offered in unknown-users.json.
async fn hidden_job_scenario(faults: Faults) -> (World, u64) {
    let w = World::start(quick()).await;
    w.emulator.set_faults(faults);
    let run_id = w.drop_export("hidden.json", &users(0..60)).await;
    let report = w
        .pipeline
        .run_to_report(&run_id, TICK, RUN_TIMEOUT)
        .await
        .unwrap();
    let truth = w.check_run(&run_id, &report).await;
    let in_doubt: Vec<JobRecord> = jobs(&w, &run_id)
        .await
        .into_iter()
        .filter(|j| matches!(j.state, JobState::InDoubt { .. }))
        .collect();
    assert_eq!(in_doubt.len(), 1, "{in_doubt:?}");
    let users_in_doubt = u64::from(in_doubt[0].users);
    assert_eq!(report.in_doubt, users_in_doubt, "{report:?}");
    assert_eq!(report.unknown, users_in_doubt);
    assert_eq!(report.failed_at_auth0, 0, "in-doubt users are not failures");
    let run = RunPath::new(&run_id);
    assert!(w.get(&run.failed_users()).await.is_none());
    let unknown: Vec<Value> = serde_json::from_slice(
        &w.get(&run.object(poll::UNKNOWN_USERS))
            .await
            .expect("unknown-users.json"),
    )
    .unwrap();
    assert_eq!(unknown.len() as u64, users_in_doubt);
    assert_eq!(truth.max_jobs_per_chunk, 1);
    (w, users_in_doubt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_answer_after_the_job_was_created_leaves_the_chunk_in_doubt() {
    for status in [504, 502, 500] {
        let (w, _) = hidden_job_scenario(Faults {
            create_then_fail: 1,
            after_create_status: status,
            ..Faults::default()
        })
        .await;
        // The hidden job imported its users: the tenant has them all, the report says the
        // in-doubt ones are unknown and counts only what it knows as inserted.
        assert_eq!(w.emulator.users().len(), 60, "{status}");
        assert_eq!(
            w.emulator.jobs().len(),
            w.jobs_per_chunk().len(),
            "{status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_after_the_body_was_sent_leaves_the_chunk_in_doubt() {
    for creates in [true, false] {
        let (w, in_doubt) = hidden_job_scenario(Faults {
            reset_after_body: 1,
            reset_creates_job: creates,
            ..Faults::default()
        })
        .await;
        // Whether Auth0 had made the job or not, the client cannot tell: in doubt either way.
        let tenant = w.emulator.users().len() as u64;
        let expected = if creates { 60 } else { 60 - in_doubt };
        assert_eq!(tenant, expected, "job created behind the reset: {creates}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_without_a_job_id_leaves_the_chunk_in_doubt() {
    let (w, _) = hidden_job_scenario(Faults {
        accept_without_id: 1,
        ..Faults::default()
    })
    .await;
    assert_eq!(w.emulator.users().len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waits_out_a_token_endpoint_down_and_an_unfilled_secret_without_losing_a_user() {
    let w = World::start(quick()).await;
    // The secret is not filled yet when the drop lands.
    w.pipeline
        .secrets
        .put_secret_value()
        .secret_id(SECRET)
        .secret_string("{}")
        .send()
        .await
        .unwrap();
    let run_id = w.drop_export("early.json", &users(0..50)).await;
    for _ in 0..3 {
        w.pipeline.tick().await.unwrap();
    }
    assert!(w.emulator.jobs().is_empty());
    assert!(
        w.get(&RunPath::new(&run_id).active_marker())
            .await
            .is_some(),
        "the run is listed for the schedule"
    );
    // Filled, but Auth0's token endpoint is down: nothing leaves, nothing is in doubt.
    let secret = serde_json::json!({
        "domain": w.emulator.base_url(),
        "client_id": auth0_emulator::DEFAULT_CLIENT_ID,
        "client_secret": auth0_emulator::DEFAULT_CLIENT_SECRET,
    });
    w.pipeline
        .secrets
        .put_secret_value()
        .secret_id(SECRET)
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();
    w.emulator.set_faults(Faults {
        token_endpoint_down: true,
        ..Faults::default()
    });
    for _ in 0..3 {
        w.pipeline.tick().await.unwrap();
    }
    assert!(w.emulator.jobs().is_empty());
    assert!(
        jobs(&w, &run_id).await.is_empty(),
        "every claim was released"
    );
    w.emulator.set_faults(Faults::default());
    let report = w
        .pipeline
        .run_to_report(&run_id, TICK, RUN_TIMEOUT)
        .await
        .unwrap();
    let truth = w.check_run(&run_id, &report).await;
    assert_eq!((report.inserted, report.unknown), (50, 0));
    assert_eq!(truth.tenant_users, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_cannot_be_followed_give_their_slots_back() {
    for status in [401, 403, 404] {
        let w = World::start(quick()).await;
        w.emulator.set_faults(Faults {
            job_reads_answer: Some(status),
            ..Faults::default()
        });
        let run_id = w.drop_export("unfollowable.json", &users(0..40)).await;
        let report = w
            .pipeline
            .run_to_report(&run_id, TICK, RUN_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        w.check_run(&run_id, &report).await;
        // Every chunk was posted once and its users are unknown: Auth0 never told us.
        assert_eq!(report.unknown, 40, "{status}: {report:?}");
        assert_eq!(report.inserted, 0, "{status}");
        assert_eq!(w.emulator.jobs().len(), report.chunks, "{status}");
        assert!(
            jobs(&w, &run_id)
                .await
                .iter()
                .all(|j| matches!(&j.state, JobState::Finished { status, .. } if status == "lost" || status == "gone")),
            "{status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_refused_as_a_whole_still_ends_with_a_report_and_the_failure_alarm() {
    let w = World::start(quick()).await;
    let connection = auth0_emulator::DEFAULT_CONNECTION_ID;
    let mut truncated = serde_json::to_vec(&users(0..20)).unwrap();
    truncated.truncate(truncated.len() / 2);
    let all_bad: Vec<Value> = (0..5).map(|i| serde_json::json!({"email": i})).collect();
    let drops = [
        (
            format!("inbox/{connection}/upsert=yes/options.json"),
            serde_json::to_vec(&users(0..3)).unwrap(),
            "not an option",
        ),
        (
            format!("inbox/{connection}/corrupt.json.gz"),
            vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4],
            "gzip",
        ),
        (
            format!("inbox/{connection}/cut.json"),
            truncated,
            "truncated",
        ),
        (
            format!("inbox/{connection}/all-bad.json"),
            serde_json::to_vec(&all_bad).unwrap(),
            "every one of its 5 users was rejected",
        ),
    ];
    let mut runs = Vec::new();
    for (key, body, why) in drops {
        let (_, run_id) = w.put_bytes(&key, body).await;
        runs.push((run_id, why));
    }
    w.pipeline.deliver_events().await.unwrap();
    for (run_id, why) in runs {
        let report = w
            .pipeline
            .run_to_report(&run_id, TICK, RUN_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{why}: {e}"));
        let refused = report.refused.clone().unwrap_or_default();
        assert!(refused.contains(why), "{why}: {refused}");
        assert!(report.conservation_holds, "{report:?}");
        let html =
            String::from_utf8(w.get(&RunPath::new(&run_id).report_html()).await.unwrap()).unwrap();
        assert!(html.contains("refused as a whole"), "{why}");
    }
    assert!(w.emulator.jobs().is_empty());
    assert!(
        w.pipeline.dead_letters().is_empty(),
        "{:?}",
        w.pipeline.dead_letters()
    );
}

/// Kill points spread over a whole run's S3 writes; `make soak` runs every one.
fn kill_points(total: u64) -> Vec<(u64, KillMode)> {
    let every: u64 = std::env::var("KILL_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    (1..=total)
        .filter(|k| k % every.max(1) == 1 % every.max(1))
        .flat_map(|k| {
            let modes: &[KillMode] = if every == 1 {
                &[KillMode::BeforeWrite, KillMode::AfterWrite]
            } else if k % 2 == 0 {
                &[KillMode::AfterWrite]
            } else {
                &[KillMode::BeforeWrite]
            };
            modes.iter().map(move |m| (k, *m))
        })
        .collect()
}

/// One drop, with the invocation that makes S3 write `kill` killed there (none for `None`).
/// Returns the writes the run made and what the check found.
async fn killed_run(kill: Option<(u64, KillMode)>) -> (u64, Option<String>) {
    let w = World::start(quick()).await;
    if let Some((nth, mode)) = kill {
        w.pipeline.kills.plan(nth, mode);
    }
    let (key, run_id) = w.put_export("killed.json", &users(0..60)).await;
    w.pipeline.deliver_events().await.unwrap();
    let report = w
        .pipeline
        .run_to_report(&run_id, TICK, RUN_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("kill {kill:?}: {e}"));
    let truth = w.check_run(&run_id, &report).await;
    assert_eq!(w.runs_of(&key).await.len(), 1, "kill {kill:?}");
    assert_eq!(truth.max_jobs_per_chunk, 1, "kill {kill:?}");
    // In doubt means "maybe": a kill after the chunk was marked posting and before its request
    // left is in doubt too (its successor cannot tell), yet Auth0 holds none of its users. So
    // the tenant holds every user reported inserted, and at most the in-doubt ones besides.
    assert!(
        (report.inserted..=report.inserted + report.in_doubt).contains(&truth.tenant_users),
        "kill {kill:?}: tenant {} against {report:?}",
        truth.tenant_users
    );
    let killed = w.pipeline.kills.killed();
    // How many writes a run makes varies a little with timing (poll's sweeps, a finalisation
    // cut by a short invocation's deadline saves once more): a kill planned past this run's
    // last write has nothing to kill.
    if kill.is_some_and(|(nth, _)| w.pipeline.kills.writes() >= nth) {
        assert!(
            w.pipeline
                .invocations()
                .iter()
                .any(|i| i.ended == Ended::Killed),
            "kill {kill:?} killed nothing"
        );
    }
    assert!(
        w.pipeline.dead_letters().is_empty(),
        "kill {kill:?}: {:?}",
        w.pipeline.dead_letters()
    );
    eprintln!(
        "kill {kill:?} at {killed:?}: report inserted {} in doubt {} unknown {}; tenant {}; max jobs per chunk {}",
        report.inserted, report.in_doubt, report.unknown, truth.tenant_users, truth.max_jobs_per_chunk
    );
    (w.pipeline.kills.writes(), killed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_killed_at_s3_writes_are_retried_into_a_true_report() {
    let (total, _) = killed_run(None).await;
    assert!(total > 20, "{total} writes");
    let points = kill_points(total);
    for &point in &points {
        killed_run(Some(point)).await;
    }
    eprintln!("{} kill scenarios over {total} S3 writes", points.len());
}

/// The deployed path reconciles on its own: poll lists a final run under `reconcile-runs/`,
/// reads its users back in a later sweep (once a chunk in doubt is old enough that any job Auth0
/// made of it has ended), and says how the chunk in doubt stands: imported by a job we never
/// heard of when Auth0 created one behind the error, missing and safe to submit again when not.
/// Lambda never re-posts it by itself; `auth0-s3-import reconcile` does, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_lambda_reconciles_final_runs_and_resolves_chunks_in_doubt() {
    for creates in [true, false] {
        let mut w = World::start(quick()).await;
        // The emulator's jobs end in milliseconds; Lambda waits JOB_DEAD_AFTER_MS.
        w.pipeline.poll.reconcile = Some(Duration::from_millis(500));
        w.emulator.set_faults(Faults {
            reset_after_body: 1,
            reset_creates_job: creates,
            ..Faults::default()
        });
        let run_id = w.drop_export("reconciled.json", &users(0..60)).await;
        let report = w
            .pipeline
            .run_to_report(&run_id, TICK, RUN_TIMEOUT)
            .await
            .unwrap();
        assert_eq!((report.inserted, report.in_doubt), (48, 12), "{creates}");
        let run = RunPath::new(&run_id);
        let key = run.object(import_core::reconcile::RECONCILIATION_JSON);
        let deadline = std::time::Instant::now() + RUN_TIMEOUT;
        let reconciliation: Value = loop {
            w.pipeline.tick().await.unwrap();
            if let Some(bytes) = w.get(&key).await {
                break serde_json::from_slice(&bytes).unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{creates}: no reconciliation"
            );
            // The schedule's period, as in run_to_report.
            tokio::time::sleep(TICK).await;
        };
        let tenant = if creates { 60 } else { 48 };
        assert_eq!(w.emulator.users().len(), tenant, "{creates}");
        assert!(w.jobs_per_chunk().values().all(|&n| n == 1), "{creates}");
        let chunks = reconciliation["in_doubt_chunks"].as_array().unwrap();
        assert_eq!(chunks.len(), 1, "{reconciliation}");
        assert_eq!(chunks[0]["resubmitted"], false, "{reconciliation}");
        let (found, verdict) = if creates {
            (12, "imported")
        } else {
            (0, "resubmit")
        };
        assert_eq!(chunks[0]["found"], found, "{reconciliation}");
        assert_eq!(chunks[0]["verdict"], verdict, "{reconciliation}");
        assert_eq!(reconciliation["missing"], 12 - found, "{reconciliation}");
        assert_eq!(reconciliation["verified_present"], 48, "{reconciliation}");
        assert_eq!(
            reconciliation["imported_by_unknown_jobs"], found,
            "{reconciliation}"
        );
        // report.json carries the section; the run is listed until done, and done once.
        let final_report: Value =
            serde_json::from_slice(&w.get(&run.report_json()).await.unwrap()).unwrap();
        assert_eq!(final_report["reconciliation"]["missing"], 12 - found);
        assert!(w
            .get(&import_core::layout::reconcile_run_key(&run_id))
            .await
            .is_none());
        assert!(
            w.pipeline.dead_letters().is_empty(),
            "{:?}",
            w.pipeline.dead_letters()
        );
    }
}
