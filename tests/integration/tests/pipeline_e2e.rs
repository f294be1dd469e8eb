//! The whole pipeline end to end — split, submit, poll — on moto and the Auth0 emulator, driven
//! by the bucket's events and schedule ticks, with and without faults. Whatever happens, the
//! run reaches a final report, the conservation identity holds, and no chunk is posted twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use auth0_emulator::{Emulator, EmulatorConfig, Faults, DEFAULT_CONNECTION_ID};
use aws_sdk_s3::primitives::ByteStream;
use aws_shell::ledger::s3_ledger;
use import_core::layout;
use import_core::ledger::SlotLease;
use import_core::report::{RunProgress, RunReport};
use integration::pipeline::Pipeline;
use integration::{LocalWorld, MotoServer};
use poll::PollConfig;
use serde_json::{json, Value};
use split::SplitConfig;
use submit::SubmitConfig;

const BUCKET: &str = "migration";
const SECRET: &str = "auth0/tenant";

struct World {
    _moto: MotoServer,
    emulator: Emulator,
    pipeline: Pipeline,
}

async fn world(config: EmulatorConfig) -> World {
    let local = LocalWorld::start(BUCKET, SECRET, config)
        .await
        .expect("local world");
    let (s3, secrets) = (local.s3.clone(), local.secrets.clone());
    let pipeline = Pipeline::new(
        s3_ledger(s3, BUCKET),
        secrets,
        SplitConfig {
            inbox_prefix: "inbox/".into(),
            max_chunk_bytes: 3000,
            scratch_dir: None,
        },
        SubmitConfig {
            bucket: BUCKET.into(),
            slots: 2,
            secret_id: SECRET.into(),
        },
        PollConfig {
            bucket: BUCKET.into(),
            secret_id: SECRET.into(),
            interval: Duration::from_millis(50),
        },
    );
    World {
        emulator: local.emulator,
        _moto: local.moto,
        pipeline,
    }
}

fn quick() -> EmulatorConfig {
    EmulatorConfig {
        job_time_per_user: Duration::from_millis(2),
        job_base_time: Duration::from_millis(20),
        ..EmulatorConfig::default()
    }
}

fn users(range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|i| {
            json!({
                "email": format!("person{i}@example.com"),
                "email_verified": true,
                "given_name": "Zoë", "family_name": "Ñúñez",
                "user_id": format!("legacy-{i}"),
                "password_hash": "$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
                "app_metadata": {"plan": "gold", "n": i}
            })
        })
        .collect()
}

impl World {
    async fn drop_export(&mut self, name: &str, records: &[Value]) -> String {
        let key = format!("inbox/{DEFAULT_CONNECTION_ID}/{name}");
        let ledger = &self.pipeline.ledger;
        ledger
            .store
            .client
            .put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(ByteStream::from(
                serde_json::to_vec_pretty(records).unwrap(),
            ))
            .send()
            .await
            .unwrap();
        let activity = self.pipeline.deliver_events().await.expect("events");
        match &activity.split[0].records[0] {
            split::RecordOutcome::Split { run_id, .. } => run_id.clone(),
            other => panic!("{other:?}"),
        }
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.pipeline
            .ledger
            .get_bytes(key)
            .await
            .unwrap()
            .map(|(b, _)| b)
    }

    /// 202s per external id: a chunk may be posted at most once.
    fn accepted_posts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in self.emulator.requests() {
            if r.path == "/api/v2/jobs/users-imports" && r.status == 202 {
                *out.entry(r.external_id.unwrap_or_default()).or_default() += 1;
            }
        }
        out
    }

    async fn assert_settled(&self, run_id: &str, report: &RunReport) {
        assert!(report.conservation_holds, "{report:?}");
        assert!(
            self.accepted_posts().values().all(|n| *n == 1),
            "a chunk was posted twice: {:?}",
            self.accepted_posts()
        );
        assert!(self
            .emulator
            .requests()
            .iter()
            .all(|r| r.active_jobs_after <= 2));
        let prefix = layout::run_prefix(run_id);
        for name in ["report.json", "report.csv", "report.html", "status.json"] {
            assert!(
                self.get(&format!("{prefix}{name}")).await.is_some(),
                "{name} missing"
            );
        }
        let status: RunProgress =
            serde_json::from_slice(&self.get(&format!("{prefix}status.json")).await.unwrap())
                .unwrap();
        assert!(
            status.final_report && status.chunks_done == status.chunks_total,
            "{status:?}"
        );
        assert!(
            self.get(&layout::active_run_key(run_id)).await.is_none(),
            "run still active"
        );
        for k in 0..2 {
            if let Some(bytes) = self.get(&layout::slot_key(k)).await {
                let lease: SlotLease = serde_json::from_slice(&bytes).unwrap();
                assert!(
                    matches!(lease, SlotLease::Free { .. }),
                    "slot {k} still held: {lease:?}"
                );
            }
        }
        // Chunks hold password hashes: once the run is final they carry the purge tag that
        // the bucket's lifecycle rule deletes.
        let manifest: import_core::manifest::RunManifest =
            serde_json::from_slice(&self.get(&format!("{prefix}manifest.json")).await.unwrap())
                .unwrap();
        for c in &manifest.chunks {
            let tags = self
                .pipeline
                .ledger
                .store
                .client
                .get_object_tagging()
                .bucket(BUCKET)
                .key(format!("{prefix}{}", c.key))
                .send()
                .await
                .unwrap();
            let (k, v) = layout::PURGE_TAG;
            assert!(
                tags.tag_set()
                    .iter()
                    .any(|t| t.key() == k && t.value() == v),
                "{} is not tagged",
                c.key
            );
        }
        // Reports are for people: no secret leaks into them.
        for name in ["report.json", "report.csv", "report.html"] {
            let text =
                String::from_utf8(self.get(&format!("{prefix}{name}")).await.unwrap()).unwrap();
            assert!(!text.contains("$2b$10$abc"), "{name} leaks a hash");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_is_imported_and_reported_and_a_colliding_drop_is_accounted_for() {
    let mut w = world(quick()).await;
    let mut first = users(0..60);
    first[7]["email"] = json!("not-an-email");
    first[30] = first[3].clone(); // an in-drop duplicate
    let run_a = w.drop_export("first.json", &first).await;
    let a = w
        .pipeline
        .run_to_report(&run_a, Duration::from_millis(30), Duration::from_secs(60))
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
    w.assert_settled(&run_a, &a).await;
    let csv = String::from_utf8(
        w.get(&format!("{}report.csv", layout::run_prefix(&run_a)))
            .await
            .unwrap(),
    )
    .unwrap();
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
        .run_to_report(&run_b, Duration::from_millis(30), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        (b.users_in, b.inserted, b.failed_at_auth0),
        (25, 20, 5),
        "{b:?}"
    );
    assert_eq!(b.failed_by_code.get("DUPLICATED_USER"), Some(&5));
    w.assert_settled(&run_b, &b).await;
    let prefix = layout::run_prefix(&run_b);
    let failed: Vec<Value> =
        serde_json::from_slice(&w.get(&format!("{prefix}failed-users.json")).await.unwrap())
            .unwrap();
    assert_eq!(failed.len(), 5);
    // The originals, hashes included, so a re-drop (e.g. with upsert=true) imports them as they were.
    assert_eq!(failed[0], second[0]);
    let csv = String::from_utf8(w.get(&format!("{prefix}report.csv")).await.unwrap()).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("auth0,0,person55@example.com,DUPLICATED_USER,")),
        "{csv}"
    );
    let html = String::from_utf8(w.get(&format!("{prefix}report.html")).await.unwrap()).unwrap();
    assert!(html.contains("DUPLICATED_USER (Auth0)") && !html.contains("<script"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_killed_invocations_still_end_in_a_true_report() {
    let mut w = world(quick()).await;
    w.emulator.set_faults(Faults {
        seed: 10,
        extra_429_rate: 0.15,
        error_5xx_rate: 0.15,
        fail_next_jobs: 1,
        expire_tokens_after: Some(Duration::from_millis(700)),
        ..Faults::default()
    });
    let run_id = w.drop_export("faulty.json", &users(0..120)).await;
    // A duplicate S3 event for the same drop and for the manifest adds nothing.
    let again = w.pipeline.split.clone();
    let client = w.pipeline.ledger.store.client.clone();
    let dup: aws_lambda_events::event::s3::S3Event =
        serde_json::from_value(integration::s3_put_event(
            BUCKET,
            &format!("inbox/{DEFAULT_CONNECTION_ID}/faulty.json"),
            0,
            "",
        ))
        .unwrap();
    let r = split::handle(&client, &again, dup).await.unwrap();
    assert!(matches!(
        r.records[0],
        split::RecordOutcome::AlreadySplit { .. }
    ));
    let manifest_event = json!({"Records": [{"s3": {"object": {"key": format!("{}manifest.json", layout::run_prefix(&run_id))}}}]});
    w.pipeline.run_submit(&manifest_event).await.unwrap();

    // Invocations killed mid-step: futures dropped after a few milliseconds, at varying points.
    for ms in [1u64, 3, 7, 15, 40] {
        let _ = tokio::time::timeout(Duration::from_millis(ms), w.pipeline.run_poll()).await;
        let _ = tokio::time::timeout(
            Duration::from_millis(ms),
            w.pipeline.run_submit(&manifest_event),
        )
        .await;
    }
    // A claim cut off before its post is settled by slot recovery once its holder is surely
    // dead (16 min); the test moves the clock instead of waiting.
    let later = auth0_api::unix_now_ms() + 17 * 60 * 1000;
    let deadline = Instant::now() + Duration::from_secs(90);
    let report = loop {
        w.pipeline.ledger.recover_slots(2, later).await.unwrap();
        match w
            .pipeline
            .run_to_report(&run_id, Duration::from_millis(30), Duration::from_secs(5))
            .await
        {
            Ok(r) => break r,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
    };
    w.assert_settled(&run_id, &report).await;
    assert_eq!(report.users_in, 120);
    let failed_job = report
        .jobs
        .iter()
        .find(|j| j.status == "failed")
        .expect("the injected failed job is reported");
    assert!(failed_job.unknown > 0 || failed_job.failed > 0);
    let log = w.emulator.requests();
    assert!(
        log.iter().any(|r| r.status == 429) && log.iter().any(|r| r.status >= 500),
        "faults were injected"
    );
    assert!(
        log.iter()
            .filter(|r| r.path == "/oauth/token" && r.status == 200)
            .count()
            >= 2,
        "tokens were re-minted"
    );
}
