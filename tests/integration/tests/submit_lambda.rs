//! The submit Lambda's handler against moto (S3 + Secrets Manager) and the Auth0 emulator, all
//! on loopback. The emulator's request log is the witness: what really reached "Auth0".
//!
//! Poll is not built yet, so `finish_jobs` stands in for it: it waits for the emulator's jobs to
//! end, then records them finished and frees their slots exactly as poll will.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use auth0_emulator::{Emulator, EmulatorConfig, Faults, JobStatus, DEFAULT_CONNECTION_ID};
use aws_lambda_events::event::s3::S3Event;
use aws_sdk_s3::primitives::ByteStream;
use aws_shell::ledger::{s3_ledger, S3Ledger};
use import_core::layout;
use import_core::ledger::{JobRecord, JobState, SlotLease};
use import_core::manifest::RunManifest;
use integration::{s3_put_event, LocalWorld, MotoServer};
use serde_json::{json, Value};
use split::{RecordOutcome, SplitConfig};
use submit::{
    activate_runs, ApiCache, Holder, SubmitConfig, SubmitReport, SubmitTrigger, Submitter,
};

const BUCKET: &str = "drops";
const SECRET: &str = "auth0/import";
const DEADLINE: Duration = Duration::from_secs(60);

struct World {
    _moto: MotoServer,
    emulator: Emulator,
    s3: aws_sdk_s3::Client,
    secrets: aws_sdk_secretsmanager::Client,
    ledger: S3Ledger,
    apis: ApiCache,
    config: SubmitConfig,
}

async fn world(config: EmulatorConfig) -> World {
    let local = LocalWorld::start(BUCKET, SECRET, config)
        .await
        .expect("local world");
    let (s3, secrets, emulator, moto) = (local.s3, local.secrets, local.emulator, local.moto);
    World {
        _moto: moto,
        ledger: s3_ledger(s3.clone(), BUCKET),
        emulator,
        s3,
        secrets,
        apis: ApiCache::default(),
        config: SubmitConfig {
            bucket: BUCKET.into(),
            slots: 2,
            secret_id: SECRET.into(),
        },
    }
}

/// A submit invocation that lives as long as the tests' deadline.
fn holder(name: &str) -> Holder {
    Holder {
        name: name.into(),
        deadline_ms: Some(auth0_api::unix_now_ms() + DEADLINE.as_millis() as u64),
    }
}

fn users(n: usize, tag: &str) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"email": format!("{tag}{i}@example.com"), "email_verified": true, "name": "Zoë Ñúñez", "app_metadata": {"i": i}}))
        .collect()
}

impl World {
    /// Drops an export and runs the real split handler on it; returns the run id and the
    /// manifest-created event submit would get.
    async fn split(&self, connection: &str, records: &[Value]) -> (String, Value) {
        let key = format!("inbox/{connection}/users.json");
        let body = serde_json::to_vec(records).unwrap();
        let size = body.len() as u64;
        let put = self
            .s3
            .put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        let etag = put
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string();
        let event: S3Event =
            serde_json::from_value(s3_put_event(BUCKET, &key, size, &etag)).unwrap();
        let config = SplitConfig {
            canary_secret: None,
            run_topic: None,
            inbox_prefix: "inbox/".into(),
            max_chunk_bytes: 2048,
            scratch_dir: None,
            budget: Default::default(),
        };
        let invocation = split::Invocation {
            request_id: format!("split-{etag}"),
            deadline_ms: None,
        };
        let response = split::handle(&self.s3, &config, &invocation, event)
            .await
            .expect("split");
        let RecordOutcome::Split { run_id, .. } = &response.records[0] else {
            panic!("{response:?}")
        };
        let manifest_key = format!("{}{}", layout::run_prefix(run_id), layout::MANIFEST);
        (
            run_id.clone(),
            json!({"Records": [{"s3": {"object": {"key": manifest_key}}}]}),
        )
    }

    async fn submit(&self, event: &Value, invocation: &str) -> SubmitReport {
        self.try_submit(event, invocation).await.expect("submit")
    }

    async fn try_submit(&self, event: &Value, invocation: &str) -> Result<SubmitReport, String> {
        let trigger = SubmitTrigger::of_event(event);
        activate_runs(&self.ledger, &trigger)
            .await
            .map_err(|e| e.to_string())?;
        let api = self.apis.get(&self.secrets, SECRET).await?;
        let submitter = Submitter {
            ledger: &self.ledger,
            api: &api,
            config: &self.config,
            holder: holder(invocation),
            deadline: Instant::now() + DEADLINE,
        };
        submitter.run().await.map_err(|e| e.to_string())
    }

    async fn manifest(&self, run_id: &str) -> RunManifest {
        let key = format!("{}{}", layout::run_prefix(run_id), layout::MANIFEST);
        self.ledger
            .get::<RunManifest>(&key)
            .await
            .unwrap()
            .unwrap()
            .value
    }

    async fn jobs(&self, run_id: &str) -> BTreeMap<u32, JobRecord> {
        let prefix = layout::run_prefix(run_id);
        let mut out = BTreeMap::new();
        for (key, _) in self
            .ledger
            .list(&format!("{prefix}{}", layout::JOBS_DIR))
            .await
            .unwrap()
        {
            let record: JobRecord = self.ledger.get(&key).await.unwrap().unwrap().value;
            out.insert(record.seq, record);
        }
        out
    }

    /// Poll's part, for now: every submitted job that the emulator has ended becomes finished
    /// and frees its slot. Waits (bounded) for at least one job to end when any is in flight.
    async fn finish_jobs(&self, run_id: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ended: BTreeMap<String, JobStatus> = self
                .emulator
                .jobs()
                .into_iter()
                .filter(|j| matches!(j.status, JobStatus::Completed | JobStatus::Failed))
                .map(|j| (j.id.clone(), j.status))
                .collect();
            let mut in_flight = 0;
            let mut finished = 0;
            for (seq, record) in self.jobs(run_id).await {
                let JobState::Submitted { job_id, .. } = &record.state else {
                    continue;
                };
                in_flight += 1;
                let Some(status) = ended.get(job_id) else {
                    continue;
                };
                let key = format!("{}{}", layout::run_prefix(run_id), layout::job_key(seq));
                let current = self.ledger.get::<JobRecord>(&key).await.unwrap().unwrap();
                let done = current
                    .value
                    .finished(format!("{status:?}").to_lowercase())
                    .unwrap();
                assert!(self
                    .ledger
                    .replace(&key, &done, &current.etag)
                    .await
                    .unwrap());
                assert!(self
                    .ledger
                    .release_slot(record.slot, run_id, seq, auth0_api::unix_now_ms())
                    .await
                    .unwrap());
                finished += 1;
            }
            if in_flight == 0 || finished > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "no job ended within 20 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Import posts that reached the emulator, by external id: (status, count).
    fn posts(&self) -> BTreeMap<(String, u16), usize> {
        let mut out = BTreeMap::new();
        for r in self.emulator.requests() {
            if r.path == "/api/v2/jobs/users-imports" {
                *out.entry((r.external_id.clone().unwrap_or_default(), r.status))
                    .or_default() += 1;
            }
        }
        out
    }

    fn max_active_jobs(&self) -> usize {
        self.emulator
            .requests()
            .iter()
            .map(|r| r.active_jobs_after)
            .max()
            .unwrap_or(0)
    }
}

/// Runs submit and the poll stand-in until every chunk of the run is settled: finished, or in
/// doubt (never posted again), or refused (bounded).
async fn drive_to_end(w: &World, run_id: &str, event: &Value) {
    let chunks = w.manifest(run_id).await.chunks.len();
    for round in 0..200 {
        w.submit(event, &format!("inv-{round}")).await;
        w.finish_jobs(run_id).await;
        let jobs = w.jobs(run_id).await;
        if jobs.len() == chunks
            && jobs.values().all(|j| {
                matches!(
                    j.state,
                    JobState::Finished { .. } | JobState::InDoubt { .. } | JobState::Refused { .. }
                )
            })
        {
            return;
        }
    }
    panic!(
        "the run did not finish in 200 rounds: {:?}",
        w.jobs(run_id).await
    );
}

fn quick_jobs() -> EmulatorConfig {
    EmulatorConfig {
        job_time_per_user: Duration::from_millis(1),
        job_base_time: Duration::from_millis(20),
        ..EmulatorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_posts_every_chunk_once_within_two_slots() {
    let w = world(quick_jobs()).await;
    let (run_id, event) = w.split(DEFAULT_CONNECTION_ID, &users(150, "h")).await;
    let m = w.manifest(&run_id).await;
    assert!(m.chunks.len() >= 5, "{} chunks", m.chunks.len());

    // The first trigger fills both slots and stops there.
    let first = w.submit(&event, "inv-first").await;
    assert_eq!(first.submitted.len(), 2, "{first:?}");
    assert_eq!(first.stopped, "all job slots are busy");

    drive_to_end(&w, &run_id, &event).await;
    let posts = w.posts();
    for c in &m.chunks {
        let ext = layout::external_id(&run_id, c.seq);
        assert_eq!(posts.get(&(ext.clone(), 202)), Some(&1), "{ext}: {posts:?}");
    }
    assert_eq!(
        posts.values().sum::<usize>(),
        m.chunks.len(),
        "nothing but one 202 per chunk: {posts:?}"
    );
    assert!(w.max_active_jobs() <= 2);
    assert_eq!(w.emulator.users().len() as u64, m.users_accepted);
    // Completion e-mail stays off unless the drop asks for it.
    assert!(w
        .emulator
        .jobs()
        .iter()
        .all(|j| !j.send_completion_email && !j.upsert));
    // Every slot is free at the end.
    for k in 0..2 {
        let lease: SlotLease = w
            .ledger
            .get(&layout::slot_key(k))
            .await
            .unwrap()
            .unwrap()
            .value;
        assert!(matches!(lease, SlotLease::Free { .. }), "{lease:?}");
    }
    // A late duplicate trigger finds nothing to post.
    let late = w.submit(&event, "inv-late").await;
    assert!(late.submitted.is_empty());
    assert_eq!(w.posts().values().sum::<usize>(), m.chunks.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_concurrent_invocations_never_exceed_the_slots_or_post_twice() {
    let w = world(EmulatorConfig {
        job_time_per_user: Duration::from_millis(200),
        ..quick_jobs()
    })
    .await;
    let (run_id, event) = w.split(DEFAULT_CONNECTION_ID, &users(60, "c")).await;
    let (a, b, c, d) = tokio::join!(
        w.submit(&event, "inv-a"),
        w.submit(&event, "inv-b"),
        w.submit(&event, "inv-c"),
        w.submit(&event, "inv-d"),
    );
    let total = a.submitted.len() + b.submitted.len() + c.submitted.len() + d.submitted.len();
    assert_eq!(total, 2, "{a:?} {b:?} {c:?} {d:?}");
    let posts = w.posts();
    assert_eq!(posts.len(), 2, "two chunks, each posted once: {posts:?}");
    assert!(posts.values().all(|n| *n == 1));
    assert!(w.max_active_jobs() <= 2);
    let claimed: Vec<_> = w
        .jobs(&run_id)
        .await
        .into_values()
        .map(|j| j.state.name())
        .collect();
    assert_eq!(claimed, vec!["submitted", "submitted"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_minted_again() {
    let w = world(quick_jobs()).await;
    let (run_id, event) = w.split(DEFAULT_CONNECTION_ID, &users(120, "t")).await;
    // Tokens minted from now on die after 300 ms, whatever expires_in says.
    w.emulator.set_faults(Faults {
        expire_tokens_after: Some(Duration::from_millis(300)),
        ..Faults::default()
    });
    w.submit(&event, "inv-1").await;
    let api = w.apis.get(&w.secrets, SECRET).await.unwrap();
    let cached = api.token(false, Instant::now() + DEADLINE).await.unwrap();
    // Wait (bounded) until the emulator itself refuses the cached token.
    let http = reqwest_free_probe(&w.emulator.base_url(), &cached);
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.await_status().await != 401 {
        assert!(Instant::now() < deadline, "the token never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.emulator.set_faults(Faults::default());
    drive_to_end(&w, &run_id, &event).await;
    let log = w.emulator.requests();
    let refused = log
        .iter()
        .filter(|r| r.path == "/api/v2/jobs/users-imports" && r.status == 401)
        .count();
    let tokens = log
        .iter()
        .filter(|r| r.path == "/oauth/token" && r.status == 200)
        .count();
    assert!(refused >= 1, "the stale token was used once and refused");
    assert!(tokens >= 2, "a new token was minted");
    let m = w.manifest(&run_id).await;
    assert_eq!(w.emulator.users().len() as u64, m.users_accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out_and_a_5xx_leaves_its_chunk_in_doubt_never_resent() {
    let w = world(quick_jobs()).await;
    let (run_id, event) = w.split(DEFAULT_CONNECTION_ID, &users(150, "r")).await;
    w.emulator.set_faults(Faults {
        seed: 7,
        extra_429_rate: 0.3,
        error_5xx_rate: 0.3,
        ..Faults::default()
    });
    drive_to_end(&w, &run_id, &event).await;
    let posts = w.posts();
    let count = |pick: &dyn Fn(u16) -> bool| {
        posts
            .iter()
            .filter(|((_, status), _)| pick(*status))
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    let (limited, failed) = (count(&|s| s == 429), count(&|s| s >= 500));
    assert!(limited > 0 && failed > 0, "faults were injected: {posts:?}");
    let m = w.manifest(&run_id).await;
    let jobs = w.jobs(&run_id).await;
    let mut imported = 0;
    let mut in_doubt = 0;
    for c in &m.chunks {
        let ext = layout::external_id(&run_id, c.seq);
        let accepted = posts.get(&(ext.clone(), 202)).copied().unwrap_or(0);
        match &jobs[&c.seq].state {
            // A 5xx may hide a created job: the chunk is never posted again.
            JobState::InDoubt { reason } => {
                assert_eq!(accepted, 0, "{ext}: {posts:?}");
                assert!(reason.contains("50"), "{reason}");
                in_doubt += 1;
            }
            JobState::Finished { .. } => {
                assert_eq!(accepted, 1, "{ext}: {posts:?}");
                imported += u64::from(c.users);
            }
            other => panic!("{ext}: {other:?}"),
        }
    }
    // Every 5xx answered a post that was never sent again: one in-doubt chunk each.
    assert_eq!(in_doubt, failed, "{posts:?}");
    assert_eq!(w.emulator.users().len() as u64, imported);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0s_two_active_jobs_429_leaves_the_chunk_pending() {
    let w = world(EmulatorConfig {
        job_time_per_user: Duration::from_millis(500),
        ..quick_jobs()
    })
    .await;
    // Another tool fills the tenant's two import slots.
    let (other_run, other_event) = w.split(DEFAULT_CONNECTION_ID, &users(40, "o")).await;
    let occupied = w.submit(&other_event, "other-tool").await;
    assert_eq!(occupied.submitted.len(), 2);
    // Forget the other run's slots, as if they belonged to someone else entirely.
    for k in 0..2 {
        w.ledger
            .put(&layout::slot_key(k), &SlotLease::Free { released_at_ms: 0 })
            .await
            .unwrap();
    }
    w.ledger
        .delete(&layout::active_run_key(&other_run))
        .await
        .unwrap();

    let (run_id, event) = w.split(DEFAULT_CONNECTION_ID, &users(10, "p")).await;
    let report = w.submit(&event, "inv-1").await;
    assert!(report.submitted.is_empty(), "{report:?}");
    assert!(report.stopped.contains("slots full"), "{report:?}");
    assert!(
        w.jobs(&run_id).await.is_empty(),
        "the chunk is pending again"
    );
    let lease: SlotLease = w
        .ledger
        .get(&layout::slot_key(0))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert!(
        matches!(lease, SlotLease::Free { .. }),
        "the slot was given back: {lease:?}"
    );
    let busy = w
        .posts()
        .get(&(layout::external_id(&run_id, 1), 429))
        .copied();
    assert_eq!(busy, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_connection_fails_the_run_with_auth0s_message() {
    let w = world(quick_jobs()).await;
    let (run_id, event) = w.split("con_NoSuchConnection", &users(30, "b")).await;
    let report = w.submit(&event, "inv-1").await;
    assert_eq!(report.refused_runs.len(), 1, "{report:?}");
    let marker = w
        .ledger
        .get_bytes(&format!(
            "{}{}",
            layout::run_prefix(&run_id),
            layout::SUBMIT_FAILED
        ))
        .await
        .unwrap();
    let marker: Value = serde_json::from_slice(&marker.expect("submit-failed marker").0).unwrap();
    assert!(
        marker["message"]
            .as_str()
            .unwrap()
            .contains("The connection does not exist."),
        "{marker}"
    );
    // One request reached Auth0; no further chunk of the run is posted, now or later.
    w.submit(&event, "inv-2").await;
    assert_eq!(w.posts().values().sum::<usize>(), 1);
    let jobs = w.jobs(&run_id).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[&1].state.name(), "refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_secret_names_the_field_not_the_value() {
    let w = world(quick_jobs()).await;
    let (_, event) = w.split(DEFAULT_CONNECTION_ID, &users(3, "s")).await;
    let bad = json!({"domain": w.emulator.base_url(), "client_id": "hunter2-id"});
    w.secrets
        .put_secret_value()
        .secret_id(SECRET)
        .secret_string(bad.to_string())
        .send()
        .await
        .unwrap();
    let err = w.try_submit(&event, "inv-1").await.unwrap_err();
    assert!(err.contains("client_secret"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(w.posts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_left_by_dead_invocations_are_released_or_in_doubt_and_free_their_slots() {
    let w = world(quick_jobs()).await;
    let (run_id, event) = w.split(DEFAULT_CONNECTION_ID, &users(120, "d")).await;
    // Two invocations died twenty minutes ago (past their deadlines): one holding slot 0 with
    // chunk 1 claimed and nothing sent, one holding slot 1 while sending chunk 2.
    let long_ago = auth0_api::unix_now_ms() - 20 * 60 * 1000;
    let dead = Holder {
        name: "dead".into(),
        deadline_ms: Some(long_ago + 60_000),
    };
    for (slot, seq) in [(0, 1), (1, 2)] {
        let lease = SlotLease::Held {
            run_id: run_id.clone(),
            seq,
            acquired_at_ms: long_ago,
            holder: "dead".into(),
            holder_deadline_ms: dead.deadline_ms,
        };
        w.ledger.put(&layout::slot_key(slot), &lease).await.unwrap();
        let claim = JobRecord::claim(
            seq,
            layout::chunk_key("", seq),
            5,
            layout::external_id(&run_id, seq),
            slot,
            long_ago,
            &dead,
        );
        let claim = if seq == 2 {
            claim.posting(long_ago + 10).unwrap()
        } else {
            claim
        };
        w.ledger
            .put(&layout::RunPath::new(&run_id).job(seq), &claim)
            .await
            .unwrap();
    }

    let report = w.submit(&event, "inv-1").await;
    assert_eq!(report.slots_recovered, 2, "{report:?}");
    let jobs = w.jobs(&run_id).await;
    // Nothing of chunk 1 left: it is pending again and posted now, never "unknown".
    assert!(
        matches!(&jobs[&1].state, JobState::Submitted { .. }),
        "{:?}",
        jobs[&1]
    );
    // Chunk 2 was being sent: in doubt, never posted again.
    assert!(
        matches!(&jobs[&2].state, JobState::InDoubt { reason } if reason.contains("unknown")),
        "{:?}",
        jobs[&2]
    );
    assert!(!w
        .posts()
        .keys()
        .any(|(ext, _)| *ext == layout::external_id(&run_id, 2)));
    assert_eq!(report.submitted.len(), 2, "{report:?}");
}

/// A one-request HTTP probe with a given bearer token (hyper-free, std only), to ask the
/// emulator whether it still accepts a token.
struct Probe {
    addr: String,
    token: String,
}

fn reqwest_free_probe(base_url: &str, token: &str) -> Probe {
    Probe {
        addr: base_url.trim_start_matches("http://").to_string(),
        token: token.to_string(),
    }
}

impl Probe {
    async fn await_status(&self) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
        let req = format!("GET /api/v2/jobs/job_0000000000000000 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", self.addr, self.token);
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf);
        head.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}
