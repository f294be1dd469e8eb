//! What end-to-end tests share: a world (moto, the emulator, the functions wired as Lambda
//! runs them), users, drops, and the check that a run's account is true: one run per drop,
//! chunks unchanged since their commit, no chunk imported twice, no slot held, and a report
//! that agrees with the tenant.

// Test support: a step that fails is a failed test, so it may panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use auth0_emulator::{Emulator, EmulatorConfig, JobStatus, DEFAULT_CONNECTION_ID};
use aws_sdk_s3::primitives::ByteStream;
use import_core::jobs::ChunkReport;
use import_core::layout::{self, RunPath};
use import_core::ledger::SlotLease;
use import_core::manifest::{RunManifest, Source};
use import_core::report::{RunProgress, RunReport};
use poll::PollConfig;
use serde_json::{json, Value};
use split::{RecordOutcome, SplitConfig};
use submit::SubmitConfig;

use crate::pipeline::Pipeline;
use crate::{LocalWorld, MotoServer};

pub const BUCKET: &str = "migration";
pub const SECRET: &str = "auth0/tenant";
/// A bcrypt hash the users carry: it must never show in a report.
pub const HASH: &str = "$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234";

/// Jobs that take milliseconds.
pub fn quick() -> EmulatorConfig {
    EmulatorConfig {
        job_time_per_user: Duration::from_millis(2),
        job_base_time: Duration::from_millis(20),
        ..EmulatorConfig::default()
    }
}

/// Valid import records with the given indexes.
pub fn users(range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|i| {
            json!({
                "email": format!("person{i}@example.com"),
                "email_verified": true,
                "given_name": "Zoë", "family_name": "Ñúñez",
                "user_id": format!("legacy-{i}"),
                "password_hash": HASH,
                "app_metadata": {"plan": "gold", "n": i}
            })
        })
        .collect()
}

pub struct World {
    pub moto: MotoServer,
    pub emulator: Emulator,
    pub pipeline: Pipeline,
}

/// What `World::check_run` found, for a scenario's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truth {
    /// The most jobs Auth0 created for one chunk (must be at most 1).
    pub max_jobs_per_chunk: usize,
    pub tenant_users: u64,
    pub report_inserted: u64,
    pub report_unknown: u64,
    pub report_in_doubt: u64,
}

impl World {
    pub async fn start(config: EmulatorConfig) -> World {
        let local = LocalWorld::start(BUCKET, SECRET, config)
            .await
            .expect("local world");
        let pipeline = Pipeline::new(
            local.sdk.clone(),
            local.secrets.clone(),
            SplitConfig {
                canary_secret: None,
                run_topic: None,
                inbox_prefix: layout::DEFAULT_INBOX_PREFIX.into(),
                max_chunk_bytes: 3000,
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
                interval: Duration::from_millis(50),
                looks: Default::default(),
                reconcile: None,
            },
        );
        World {
            moto: local.moto,
            emulator: local.emulator,
            pipeline,
        }
    }

    /// Uploads an export into the inbox for the default connection; returns its key and the
    /// run id its version maps to.
    pub async fn put_export(&self, name: &str, records: &[Value]) -> (String, String) {
        self.put_bytes(
            &format!("inbox/{DEFAULT_CONNECTION_ID}/{name}"),
            serde_json::to_vec_pretty(records).unwrap(),
        )
        .await
    }

    /// Uploads bytes at `key`; returns the key and the run id of this version.
    pub async fn put_bytes(&self, key: &str, body: Vec<u8>) -> (String, String) {
        let out = self
            .pipeline
            .ledger
            .store
            .client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        let version = layout::object_version(out.version_id(), out.e_tag())
            .expect("a versioned bucket answers with a version id")
            .to_string();
        (key.to_string(), layout::run_id(key, &version))
    }

    /// Uploads an export and delivers its events; returns the run id, once split.
    pub async fn drop_export(&self, name: &str, records: &[Value]) -> String {
        let (_, run_id) = self.put_export(name, records).await;
        let activity = self.pipeline.deliver_events().await.expect("events");
        assert!(
            activity
                .split
                .iter()
                .any(|o| matches!(o, RecordOutcome::Split { run_id: r, .. } if *r == run_id)),
            "{:?}",
            activity.split
        );
        run_id
    }

    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.pipeline
            .ledger
            .get_bytes(key)
            .await
            .unwrap()
            .map(|(b, _)| b)
    }

    pub async fn manifest(&self, run_id: &str) -> Option<RunManifest> {
        self.pipeline
            .ledger
            .get::<RunManifest>(&RunPath::new(run_id).manifest())
            .await
            .unwrap()
            .map(|v| v.value)
    }

    /// The ETag of each chunk the run's manifest lists (to compare later: committed chunks
    /// never change).
    pub async fn chunk_etags(&self, run_id: &str) -> BTreeMap<String, String> {
        let run = RunPath::new(run_id);
        let mut out = BTreeMap::new();
        let Some(manifest) = self.manifest(run_id).await else {
            return out;
        };
        for c in &manifest.chunks {
            let (_, etag) = self
                .pipeline
                .ledger
                .get_bytes(&run.object(&c.key))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("chunk {} of a committed manifest is missing", c.key));
            out.insert(c.key.clone(), etag);
        }
        out
    }

    /// Jobs Auth0 created, by the external id (chunk) they were posted for.
    pub fn jobs_per_chunk(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for j in self.emulator.jobs() {
            *out.entry(j.external_id.unwrap_or_default()).or_default() += 1;
        }
        out
    }

    /// Every committed run of `key` (manifests whose source is that key).
    pub async fn runs_of(&self, key: &str) -> Vec<RunManifest> {
        let mut out = Vec::new();
        for (k, _) in self
            .pipeline
            .ledger
            .list(layout::RUNS_PREFIX)
            .await
            .unwrap()
        {
            if !k.ends_with(&format!("/{}", layout::MANIFEST)) {
                continue;
            }
            let m: RunManifest = self.pipeline.ledger.require(&k).await.unwrap().value;
            if matches!(&m.source, Source::S3 { key: k2, .. } if k2 == key) {
                out.push(m);
            }
        }
        out
    }

    /// Everything that must hold once a run has its report; returns what it measured.
    pub async fn check_run(&self, run_id: &str, report: &RunReport) -> Truth {
        let run = RunPath::new(run_id);
        assert!(report.conservation_holds, "{report:?}");
        let per_chunk = self.jobs_per_chunk();
        let max_jobs_per_chunk = per_chunk.values().copied().max().unwrap_or(0);
        assert!(
            max_jobs_per_chunk <= 1,
            "a chunk was imported by two jobs: {per_chunk:?}"
        );
        assert!(
            self.emulator
                .requests()
                .iter()
                .all(|r| r.active_jobs_after <= 2),
            "more than two import jobs at once"
        );
        for key in [run.report_json(), run.report_csv(), run.report_html()] {
            assert!(self.get(&key).await.is_some(), "{key} missing");
        }
        let manifest = self.manifest(run_id).await.expect("manifest");
        self.check_chunks(&run, &manifest).await;
        if !manifest.chunks.is_empty() {
            let status: RunProgress =
                serde_json::from_slice(&self.get(&run.status()).await.expect("status")).unwrap();
            assert!(
                status.final_report && status.chunks_done == status.chunks_total,
                "{status:?}"
            );
        }
        assert!(
            self.get(&run.active_marker()).await.is_none(),
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
        // Chunks hold password hashes: once the run is final they carry the purge tag.
        for c in &manifest.chunks {
            let tags = self
                .pipeline
                .ledger
                .store
                .client
                .get_object_tagging()
                .bucket(BUCKET)
                .key(run.object(&c.key))
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
        for key in [run.report_json(), run.report_csv(), run.report_html()] {
            let text = String::from_utf8(self.get(&key).await.unwrap()).unwrap();
            assert!(!text.contains(HASH), "{key} leaks a hash");
        }
        // Whoever subscribes to the run topic was told, with the report's numbers.
        let told: Vec<_> = self
            .pipeline
            .notifier
            .sent()
            .into_iter()
            .filter(|m| m.run_id == run_id)
            .collect();
        assert!(!told.is_empty(), "nobody was told run {run_id} ended");
        assert!(told
            .iter()
            .all(|m| m.users_in == report.users_in && m.inserted == report.inserted));
        self.check_against_tenant(&run, &manifest, report).await
    }

    /// The committed chunks are what the manifest lists, byte for byte, and hold every accepted
    /// user exactly once.
    async fn check_chunks(&self, run: &RunPath, manifest: &RunManifest) {
        let mut emails = BTreeSet::new();
        let mut total = 0u64;
        for c in &manifest.chunks {
            let bytes = self
                .get(&run.object(&c.key))
                .await
                .unwrap_or_else(|| panic!("{} is missing", c.key));
            assert_eq!(
                bytes.len() as u64,
                c.bytes,
                "{} is not the size listed",
                c.key
            );
            let records: Vec<Value> = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{} is not a JSON array: {e}", c.key));
            assert_eq!(
                records.len() as u32,
                c.users,
                "{} does not hold its users",
                c.key
            );
            for r in &records {
                let email = r["email"].as_str().unwrap_or_default().to_lowercase();
                assert!(
                    emails.insert(email.clone()),
                    "{email} is in two chunks (or twice in one): a mixed run"
                );
            }
            total += u64::from(c.users);
        }
        assert_eq!(total, manifest.users_accepted);
    }

    /// The report agrees with the tenant: what it calls inserted is what the jobs it knows of
    /// inserted, and users the tenant got from jobs it does not know are among its unknown.
    async fn check_against_tenant(
        &self,
        run: &RunPath,
        manifest: &RunManifest,
        report: &RunReport,
    ) -> Truth {
        let ours: BTreeSet<String> = manifest
            .chunks
            .iter()
            .map(|c| layout::external_id(run.id(), c.seq))
            .collect();
        let jobs: BTreeMap<String, auth0_emulator::JobView> = self
            .emulator
            .jobs()
            .into_iter()
            .filter(|j| j.external_id.as_ref().is_some_and(|e| ours.contains(e)))
            .map(|j| (j.id.clone(), j))
            .collect();
        let mut known_inserted = 0u64;
        let mut known_jobs = BTreeSet::new();
        for c in &manifest.chunks {
            let Some(bytes) = self.get(&run.report(c.seq)).await else {
                panic!("chunk {} has no report", c.seq);
            };
            let chunk: ChunkReport = serde_json::from_slice(&bytes).unwrap();
            if chunk.job_id.is_empty() {
                continue;
            }
            known_jobs.insert(chunk.job_id.clone());
            let job = jobs.get(&chunk.job_id).unwrap_or_else(|| {
                panic!(
                    "chunk {} names job {} Auth0 never made",
                    c.seq, chunk.job_id
                )
            });
            let tenant_inserted = job.summary.map_or(0, |s| s.inserted as u64);
            if chunk.end.summary.is_some() {
                assert_eq!(
                    chunk.inserted, tenant_inserted,
                    "chunk {}: the report and the job disagree",
                    c.seq
                );
                known_inserted += chunk.inserted;
            } else {
                assert_eq!(chunk.inserted, 0, "chunk {}", c.seq);
            }
        }
        assert_eq!(report.inserted, known_inserted);
        let unknown_to_us: u64 = jobs
            .values()
            .filter(|j| !known_jobs.contains(&j.id))
            .filter(|j| j.status == JobStatus::Completed)
            .map(|j| j.summary.map_or(0, |s| s.inserted as u64))
            .sum();
        assert!(
            unknown_to_us <= report.in_doubt,
            "{unknown_to_us} users came from jobs the report does not know, more than the {} it says are in doubt",
            report.in_doubt
        );
        let tenant_users = self.emulator.users().len() as u64;
        Truth {
            max_jobs_per_chunk: jobs_per_external_id(&jobs),
            tenant_users,
            report_inserted: report.inserted,
            report_unknown: report.unknown,
            report_in_doubt: report.in_doubt,
        }
    }
}

fn jobs_per_external_id(jobs: &BTreeMap<String, auth0_emulator::JobView>) -> usize {
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for j in jobs.values() {
        *per.entry(j.external_id.as_deref().unwrap_or(""))
            .or_default() += 1;
    }
    per.values().copied().max().unwrap_or(0)
}
