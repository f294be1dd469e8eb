//! Issue 21: poll's finalisation of one very large run (10 M users), measured per Lambda
//! invocation on moto and the Auth0 emulator, invocation after invocation until the run is final.
//!
//! ```text
//! bench_scale run    [--users N] [--reject-rate 0.2] [--fail-rate 0.1] [--deadline-s 90]
//!                    [--no-kill] [--max-invocations 60]
//! bench_scale seed   --s3 URL [--bucket B] [--users N] [--reject-rate R] [--fail-rate F]
//! bench_scale invoke --s3 URL --auth0 URL [--bucket B] [--deadline-s 90]
//! ```
//!
//! `run` starts moto and the emulator on loopback, seeds the ledger a finished run leaves for poll
//! (`seed`), then runs `invoke` as fresh processes, one after another, until `report.json` exists
//! and the run is off the active list. Each invocation drives the poll stage only through its
//! public face, `Poller { .. }.run()`, as the poll Lambda does, so the harness measures whatever
//! `finalize` is (one pass, or a resumable stage that stops before its deadline).
//!
//! Every invocation reaches S3 and Auth0 through counting proxies that live in the driver, not in
//! the invocation, so their buffers are not counted in its memory and a killed invocation's
//! requests are still counted. Like Lambda, the driver kills an invocation still running at its
//! deadline (`--no-kill` lets it run to its end, to see how long one pass takes).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use auth0_api::ManagementApi;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_shell::ledger::{s3_ledger, S3Ledger};
use futures_util::{stream, StreamExt, TryStreamExt};
use import_core::auth0::Auth0Credentials;
use import_core::input::{Compression, Layout};
use import_core::jobs::{parse_errors, ChunkReport, JobEnd, Summary};
use import_core::layout::{self, RunPath};
use import_core::ledger::{Holder, JobRecord, SlotLease};
use import_core::manifest::{
    ChunkEntry, DetectedFormat, Flavor, RejectEntry, RunManifest, RunStatus, Source,
    Transformations, MANIFEST_VERSION,
};
use import_core::options::DropOptions;
use import_core::report::RunProgress;
use import_core::run_end::NoNotifier;
use import_core::violation::Violation;
use integration::counting_proxy::{auth0_kind, s3_kind, CountingProxy, KindCount};
use integration::MotoServer;
use poll::{PollConfig, Poller};
use serde_json::{json, Value};

const BUCKET: &str = "bench-scale";
/// Users per chunk, as the issue's sizing has it (8,569 chunks for 10 M users): the records
/// seeded here are ~390 bytes compact, so a chunk holds ~455 KB, under split's 500,000.
const USERS_PER_CHUNK: u64 = 1167;
const MAX_CHUNK_BYTES: u64 = 500_000;
/// PUTs in flight while seeding: moto answers each in a few ms, so 10 M users take minutes.
const SEED_IN_FLIGHT: usize = 32;
/// Split writes its rejects in parts of this size (an S3 multipart upload).
const REJECT_PART_BYTES: usize = 8 << 20;
/// One reject in this many is an in-drop duplicate: split finds those only once the input has
/// ended, so their lines come last, out of index order.
const DUPLICATE_EVERY: u64 = 50;
/// Slots of the tenant (submit's default).
const SLOTS: u32 = 2;
/// Invocations before the driver gives up on a run that does not end (`--max-invocations`).
const MAX_INVOCATIONS: usize = 60;
/// How often the driver samples an invocation's /tmp use and memory.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Beyond its deadline, Lambda stops an invocation at once; this is the driver's lag.
const KILL_GRACE: Duration = Duration::from_millis(500);
/// What names the invocation's result line among its JSON logs.
const RESULT_KEY: &str = "bench_invocation";

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let flags = Flags::parse(args)?;
    match command.as_str() {
        "seed" => {
            let s3 = flags.text("--s3")?;
            let plan = Plan::new(&flags)?;
            let seeded = seed(&s3_ledger(s3_client(&s3).await, &flags.bucket()), &plan).await?;
            println!("{}", seeded.describe(&plan));
            Ok(())
        }
        "invoke" => invoke(&flags).await,
        "run" => drive(&flags).await,
        _ => bail!("usage: bench_scale run|seed|invoke [flags] (see the file's opening comment)"),
    }
}

/// `--name value` pairs and bare `--switch`es.
struct Flags(BTreeMap<String, Option<String>>);

impl Flags {
    fn parse(args: impl Iterator<Item = String>) -> Result<Self> {
        let mut map = BTreeMap::new();
        let mut args = args.peekable();
        while let Some(name) = args.next() {
            if !name.starts_with("--") {
                bail!("unexpected argument {name:?}");
            }
            let value = args.next_if(|v| !v.starts_with("--"));
            map.insert(name, value);
        }
        Ok(Flags(map))
    }

    fn text(&self, name: &str) -> Result<String> {
        self.0
            .get(name)
            .cloned()
            .flatten()
            .with_context(|| format!("{name} is required"))
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v
                .as_deref()
                .unwrap_or("")
                .replace('_', "")
                .parse()
                .map_err(|_| anyhow::anyhow!("{name} needs a number, got {v:?}")),
        }
    }

    fn switch(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn bucket(&self) -> String {
        self.text("--bucket").unwrap_or_else(|_| BUCKET.to_string())
    }
}

async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let sdk = sdk_config(endpoint).await;
    aws_shell::s3_client(&sdk)
}

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await
}

// ---------------------------------------------------------------------------------------------
// The run to seed

/// `n` of `total` items, spread evenly: item `i` is picked when the running share crosses an
/// integer there. Exactly `n` items are picked, with no state to keep.
fn picked(i: u64, n: u64, total: u64) -> bool {
    let share = |k: u64| (u128::from(k) * u128::from(n)) / u128::from(total.max(1));
    share(i + 1) > share(i)
}

/// The synthetic drop and what became of each user: which input records split rejected (and
/// why), how the accepted ones were chunked, and which chunks Auth0 failed user by user.
struct Plan {
    run: RunPath,
    drop_key: String,
    users_in: u64,
    rejects: u64,
    chunks: Vec<PlannedChunk>,
}

#[derive(Clone)]
struct PlannedChunk {
    entry: ChunkEntry,
    /// Every user of the chunk failed at Auth0 (its report lists each), or none did.
    failed: bool,
}

impl Plan {
    fn new(flags: &Flags) -> Result<Self> {
        let users_in: u64 = flags.number("--users", 10_000_000)?;
        let reject_rate: f64 = flags.number("--reject-rate", 0.2)?;
        let fail_rate: f64 = flags.number("--fail-rate", 0.1)?;
        if !(0.0..1.0).contains(&reject_rate) || !(0.0..=1.0).contains(&fail_rate) {
            bail!("--reject-rate must be in [0, 1) and --fail-rate in [0, 1]");
        }
        let rejects = (users_in as f64 * reject_rate).round() as u64;
        let drop_key = format!(
            "{}{}/users-{users_in}.json",
            layout::DEFAULT_INBOX_PREFIX,
            auth0_emulator::DEFAULT_CONNECTION_ID
        );
        let run = RunPath::new(&layout::run_id(&drop_key, "bench-scale-version-1"));
        let attempt = layout::attempt_dir(Some("bench-attempt"));
        let mut chunks = Vec::new();
        let mut open: Option<ChunkEntry> = None;
        for i in 0..users_in {
            if picked(i, rejects, users_in) {
                continue;
            }
            let chunk = open.get_or_insert_with(|| {
                let seq = chunks.len() as u32 + 1;
                ChunkEntry {
                    key: layout::chunk_key(&attempt, seq),
                    seq,
                    users: 0,
                    bytes: 0,
                    first_index: i,
                    last_index: i,
                }
            });
            chunk.users += 1;
            chunk.last_index = i;
            if u64::from(chunk.users) == USERS_PER_CHUNK {
                chunks.extend(open.take());
            }
        }
        chunks.extend(open.take());
        // Whole chunks fail, as many as hold the failure rate's share of the drop.
        let total = chunks.len() as u64;
        let failed_chunks = ((users_in as f64 * fail_rate) / USERS_PER_CHUNK as f64).round() as u64;
        let chunks = chunks
            .into_iter()
            .enumerate()
            .map(|(k, entry)| PlannedChunk {
                entry,
                failed: picked(k as u64, failed_chunks.min(total), total),
            })
            .collect();
        Ok(Plan {
            run,
            drop_key,
            users_in,
            rejects,
            chunks,
        })
    }

    fn attempt(&self) -> String {
        layout::attempt_dir(Some("bench-attempt"))
    }

    fn failed_users(&self) -> u64 {
        self.chunks
            .iter()
            .filter(|c| c.failed)
            .map(|c| u64::from(c.entry.users))
            .sum()
    }

    fn accepted(&self) -> u64 {
        self.users_in - self.rejects
    }

    fn is_rejected(&self, i: u64) -> bool {
        picked(i, self.rejects, self.users_in)
    }
}

/// A small deterministic generator (SplitMix64) for the placeholder hashes: no crate, no seed
/// file, the same bytes every run.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A string with bcrypt's shape (`$2b$10$` and 53 characters of its alphabet), from the
/// generator: a placeholder that hashes no password at all.
fn bcrypt_shaped(i: u64) -> String {
    const ALPHABET: &[u8] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = SplitMix(i);
    let mut out = String::from("$2b$10$");
    for _ in 0..53 {
        out.push(ALPHABET[(rng.next_u64() % ALPHABET.len() as u64) as usize] as char);
    }
    out
}

/// User `i` of the drop, as an export from another system would give it (~430 bytes compact).
fn user(i: u64) -> Value {
    let plan = ["free", "pro", "team"][(i % 3) as usize];
    let locale = ["en-GB", "pt-BR", "de-DE", "ja-JP"][(i % 4) as usize];
    json!({
        "email": format!("user{i}@example.com"),
        "email_verified": !i.is_multiple_of(3),
        "user_id": format!("legacy-{i}"),
        "given_name": format!("Given{i}"),
        "family_name": format!("Family{}", i % 9973),
        "name": format!("Given{i} Family{}", i % 9973),
        "app_metadata": {"plan": plan, "legacy_id": i},
        "user_metadata": {
            "locale": locale,
            "signed_up": format!("20{:02}-{:02}-{:02}", 10 + i % 15, 1 + i % 12, 1 + i % 28),
            "newsletter": i.is_multiple_of(2),
            "referrer": format!("campaign-{}", i % 211),
        },
        "password_hash": bcrypt_shaped(i),
    })
}

/// What Auth0's `GET /jobs/{id}/errors` lists for a user it would not import: the user as
/// submitted, less its secrets, and why (the emulator's wording for an existing user).
fn auth0_error(user: &Value) -> Value {
    json!({
        "user": user,
        "errors": [{"code": "DUPLICATED_USER", "message": "The user already exist and upsert parameter is false"}],
    })
}

// ---------------------------------------------------------------------------------------------
// Seeding

#[derive(Default)]
struct Seeded {
    objects: AtomicU64,
    bytes: AtomicU64,
    real_chunks: AtomicU64,
    placeholder_chunks: AtomicU64,
    reject_parts: AtomicU64,
    reject_bytes: AtomicU64,
    elapsed: Duration,
}

impl Seeded {
    fn add(&self, bytes: usize) {
        self.objects.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn describe(&self, plan: &Plan) -> String {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "seeded run {}: {} users in, {} rejected, {} chunks ({} failed user by user at Auth0: {} users), \
             {} objects, {:.1} MB, in {:.1} s\n  \
             chunk bodies: {} real (the failed chunks, read by finalize), {} placeholders \
             (faithful because finalize never reads them, only tags them)\n  \
             rejects.ndjson: {} parts, {:.1} MB",
            plan.run.id(),
            plan.users_in,
            plan.rejects,
            plan.chunks.len(),
            plan.chunks.iter().filter(|c| c.failed).count(),
            plan.failed_users(),
            n(&self.objects),
            n(&self.bytes) as f64 / 1e6,
            self.elapsed.as_secs_f64(),
            n(&self.real_chunks),
            n(&self.placeholder_chunks),
            n(&self.reject_parts),
            n(&self.reject_bytes) as f64 / 1e6,
        )
    }
}

/// Writes a JSON object as the ledger does (`to_vec_pretty`), counting it. A macro, not a
/// function: the bound a function would need is serde's `Serialize`, and this crate reaches
/// serde only through serde_json.
macro_rules! put_json {
    ($ledger:expr, $key:expr, $value:expr, $seeded:expr) => {
        async {
            let bytes = serde_json::to_vec_pretty($value)?;
            $seeded.add(bytes.len());
            $ledger.put_raw($key, bytes, "application/json").await?;
            Ok::<(), anyhow::Error>(())
        }
    };
}

/// Writes the run folder a finished run leaves for poll to finalise: every chunk, its job record
/// in its final state and its report, split's rejects, the manifest, the free slots, status.json
/// as the last sweep wrote it, and the run on the active list.
async fn seed(ledger: &S3Ledger, plan: &Plan) -> Result<Seeded> {
    let started = Instant::now();
    let seeded = Seeded::default();
    let bucket = ledger.store.bucket.clone();
    let client = ledger.store.client.clone();
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .context("creating the bucket")?;
    let now = auth0_api::unix_now_ms();
    let holder = Holder {
        name: "submit-bench-scale".into(),
        deadline_ms: Some(now),
    };
    let rejects_key = (plan.rejects > 0).then(|| layout::rejects_key(&plan.attempt()));
    let (chunks, rejects) = tokio::join!(
        stream::iter(&plan.chunks)
            .map(|chunk| seed_chunk(ledger, plan, chunk, &holder, now, &seeded))
            .buffer_unordered(SEED_IN_FLIGHT / 3)
            .try_collect::<Vec<ChunkEntry>>(),
        async {
            match &rejects_key {
                Some(key) => {
                    seed_rejects(&client, &bucket, &plan.run.object(key), plan, &seeded).await
                }
                None => Ok(BTreeMap::new()),
            }
        }
    );
    let mut chunks = chunks?;
    chunks.sort_by_key(|c| c.seq);
    let rejects_by_code = rejects?;
    let failed = plan.failed_users();
    let progress = RunProgress {
        run_id: plan.run.id().to_string(),
        chunks_total: chunks.len(),
        chunks_pending: 0,
        chunks_active: 0,
        chunks_done: chunks.len(),
        users_accepted: plan.accepted(),
        inserted_so_far: plan.accepted() - failed,
        updated_so_far: 0,
        failed_so_far: failed,
        final_report: true,
        updated_at_ms: now,
    };
    put_json!(ledger, &plan.run.status(), &progress, &seeded).await?;
    for k in 0..SLOTS {
        let free = SlotLease::Free {
            released_at_ms: now,
        };
        put_json!(ledger, &layout::slot_key(k), &free, &seeded).await?;
    }
    let fill = chunks.iter().map(|c| c.bytes as f64).sum::<f64>()
        / (chunks.len().max(1) as f64 * MAX_CHUNK_BYTES as f64);
    let manifest = RunManifest {
        manifest_version: MANIFEST_VERSION,
        run_id: plan.run.id().to_string(),
        status: RunStatus::Split,
        source: Source::S3 {
            bucket: bucket.clone(),
            key: plan.drop_key.clone(),
            etag: "\"bench-scale-etag\"".into(),
            version_id: Some("bench-scale-version-1".into()),
            size: Some(plan.users_in * 440),
        },
        options: Some(DropOptions {
            connection_id: auth0_emulator::DEFAULT_CONNECTION_ID.into(),
            upsert: false,
            send_completion_email: false,
            canary_warn: false,
            source: None,
        }),
        format: Some(DetectedFormat {
            compression: Compression::None,
            layout: Layout::JsonArray,
            flavor: Flavor::Import,
        }),
        failure: None,
        users_in: plan.users_in,
        users_accepted: plan.accepted(),
        users_rejected: plan.rejects,
        conservation_holds: true,
        rejects_by_code,
        transformations: Transformations::default(),
        max_chunk_bytes: MAX_CHUNK_BYTES,
        max_request_bytes: import_core::multipart::AUTH0_MAX_REQUEST_BYTES as u64,
        mean_chunk_fill: fill,
        rejects_key,
        chunks,
        canaries: None,
    };
    // The manifest is split's commit point, and the active marker follows it: written last.
    put_json!(ledger, &plan.run.manifest(), &manifest, &seeded).await?;
    if !ledger.activate_run(&plan.run, now).await? {
        bail!("the run was not listed as active");
    }
    seeded.add(0);
    Ok(Seeded {
        elapsed: started.elapsed(),
        ..seeded
    })
}

/// One chunk, its finished job record and its report. A chunk that failed at Auth0 gets its
/// real body (finalize reads it to find the failed users' records); the others a placeholder.
async fn seed_chunk(
    ledger: &S3Ledger,
    plan: &Plan,
    chunk: &PlannedChunk,
    holder: &Holder,
    now: u64,
    seeded: &Seeded,
) -> Result<ChunkEntry> {
    let mut entry = chunk.entry.clone();
    let seq = entry.seq;
    let users = u64::from(entry.users);
    let indexes: Vec<u64> = (entry.first_index..=entry.last_index)
        .filter(|i| !plan.is_rejected(*i))
        .collect();
    // Only chunks with failed users are read by finalize; the rest are only tagged, so a
    // placeholder body is faithful for them (and saves moto gigabytes). The manifest gives every
    // chunk the size of its real body.
    let records: Vec<Value> = indexes.iter().map(|&i| user(i)).collect();
    let real = serde_json::to_vec(&records)?;
    if real.len() as u64 > MAX_CHUNK_BYTES {
        bail!("chunk {seq} is {} bytes, above split's limit", real.len());
    }
    entry.bytes = real.len() as u64;
    let (body, errors) = if chunk.failed {
        let listed: Vec<Value> = records.iter().map(auth0_error).collect();
        // Through the parser poll uses on Auth0's answer (which also masks the hashes).
        let (errors, _) = parse_errors(200, &serde_json::to_vec(&listed)?);
        seeded.real_chunks.fetch_add(1, Ordering::Relaxed);
        (real, errors)
    } else {
        seeded.placeholder_chunks.fetch_add(1, Ordering::Relaxed);
        (b"[]".to_vec(), Vec::new())
    };
    let job_id = format!("job_{:016x}", SplitMix(u64::from(seq)).next_u64());
    let external_id = layout::external_id(plan.run.id(), seq);
    let slot = seq % SLOTS;
    let claimed_at = now - 3_600_000 + u64::from(seq) * 10;
    let record = JobRecord::claim(
        seq,
        entry.key.clone(),
        entry.users,
        external_id.clone(),
        slot,
        claimed_at,
        holder,
    )
    .posting(claimed_at + 1)?
    .submitted(job_id.clone(), claimed_at + 2)?
    .finished("completed".into())?;
    let summary = if chunk.failed {
        Summary {
            inserted: 0,
            updated: 0,
            failed: users,
            total: users,
        }
    } else {
        Summary {
            inserted: users,
            updated: 0,
            failed: 0,
            total: users,
        }
    };
    let end = JobEnd {
        status: "completed".into(),
        summary: Some(summary),
        details: None,
    };
    let mut report = ChunkReport::new(
        seq,
        job_id,
        external_id,
        users,
        end,
        errors,
        claimed_at + 2,
        claimed_at + 60_000,
    );
    report.slot = Some(slot);
    seeded.add(body.len());
    let chunk_key = plan.run.object(&entry.key);
    tokio::try_join!(
        async {
            ledger
                .put_raw(&chunk_key, body, "application/json")
                .await
                .map_err(anyhow::Error::from)
        },
        put_json!(ledger, &plan.run.job(seq), &record, seeded),
        put_json!(ledger, &plan.run.report(seq), &report, seeded),
    )?;
    Ok(entry)
}

/// Split's `rejects.ndjson`: one redacted entry per rejected record, in input order, except the
/// in-drop duplicates, which split finds at the end; written as a multipart upload of 8 MiB
/// parts, as split writes it. Returns the rejects by code.
async fn seed_rejects(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    plan: &Plan,
    seeded: &Seeded,
) -> Result<BTreeMap<String, u64>> {
    let upload = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type("application/x-ndjson")
        .send()
        .await?;
    let upload_id = upload.upload_id().context("no upload id")?.to_string();
    let mut by_code = BTreeMap::new();
    let mut buffer = Vec::with_capacity(REJECT_PART_BYTES + 4096);
    let mut duplicates = Vec::new();
    let mut ordinal = 0u64;
    let entry = |i: u64, duplicate: bool| {
        let reason = if duplicate {
            Violation::new(
                "DUPLICATED_USER",
                "email",
                format!(
                    "A user with this email was already provided: record {} (line {}) has the same email (compared case-insensitively); the first occurrence is kept",
                    i / 2,
                    i / 2 + 2
                ),
            )
        } else {
            Violation::new(
                "INVALID_FORMAT",
                "email",
                "email: Object didn't pass validation for format email: not-an-email",
            )
        };
        let mut record = user(i);
        if !duplicate {
            record["email"] = json!(format!("user{i}.example.com"));
        }
        RejectEntry::redacted((i, i + 2, 1 + i * 440), vec![reason], Some(record))
    };
    let mut parts = PartUploader {
        client,
        bucket,
        key,
        upload_id: &upload_id,
        done: Vec::new(),
        seeded,
    };
    for i in 0..plan.users_in {
        if !plan.is_rejected(i) {
            continue;
        }
        ordinal += 1;
        if ordinal.is_multiple_of(DUPLICATE_EVERY) {
            duplicates.push(i);
            continue;
        }
        *by_code.entry("INVALID_FORMAT".to_string()).or_insert(0) += 1;
        entry(i, false).write_line(&mut buffer)?;
        parts.send_full(&mut buffer).await?;
    }
    for i in duplicates {
        *by_code.entry("DUPLICATED_USER".to_string()).or_insert(0) += 1;
        entry(i, true).write_line(&mut buffer)?;
        parts.send_full(&mut buffer).await?;
    }
    if !buffer.is_empty() {
        parts.send(std::mem::take(&mut buffer)).await?;
    }
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts.done))
                .build(),
        )
        .send()
        .await?;
    seeded.add(0);
    seeded.bytes.fetch_add(
        seeded.reject_bytes.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    Ok(by_code)
}

/// The parts of one multipart upload, sent one after another.
struct PartUploader<'a> {
    client: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    key: &'a str,
    upload_id: &'a str,
    done: Vec<CompletedPart>,
    seeded: &'a Seeded,
}

impl PartUploader<'_> {
    /// Sends `buffer` as the next part once it holds a part's worth.
    async fn send_full(&mut self, buffer: &mut Vec<u8>) -> Result<()> {
        if buffer.len() >= REJECT_PART_BYTES {
            self.send(std::mem::take(buffer)).await?;
        }
        Ok(())
    }

    async fn send(&mut self, body: Vec<u8>) -> Result<()> {
        let number = self.done.len() as i32 + 1;
        self.seeded.reject_parts.fetch_add(1, Ordering::Relaxed);
        self.seeded
            .reject_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let part = self
            .client
            .upload_part()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(self.upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await?;
        self.done.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// One invocation

/// One poll invocation, as the poll Lambda makes it: the ledger, the Management API client, the
/// stage's settings, a deadline; then `Poller::run`. Prints its JSON logs and one result line.
async fn invoke(flags: &Flags) -> Result<()> {
    aws_shell::lambda::init_json_logs();
    let started = Instant::now();
    let deadline_s: f64 = flags.number("--deadline-s", 90.0)?;
    let deadline = started + Duration::from_secs_f64(deadline_s);
    let bucket = flags.bucket();
    let ledger = s3_ledger(s3_client(&flags.text("--s3")?).await, &bucket);
    let api = ManagementApi::new(Auth0Credentials::ClientCredentials {
        base_url: flags.text("--auth0")?,
        client_id: auth0_emulator::DEFAULT_CLIENT_ID.into(),
        client_secret: auth0_emulator::DEFAULT_CLIENT_SECRET.into(),
    })?;
    let config = PollConfig {
        bucket,
        secret_id: "auth0/bench-scale".into(),
        interval: Duration::from_secs(2),
        looks: Default::default(),
        // Off: reading 8 M users back from the tenant is the reconcile stage's own benchmark
        // (`make bench-reconcile`), and above 4 M users poll leaves it to the CLI anyway.
        reconcile: None,
    };
    let poller = Poller {
        ledger: &ledger,
        api: &api,
        config: &config,
        notifier: &NoNotifier,
        deadline,
    };
    let outcome = poller.run().await;
    let wall = started.elapsed();
    let (finalized, error) = match &outcome {
        Ok(report) => (report.runs_finalized.len(), None),
        Err(e) => (0, Some(e.to_string())),
    };
    let line = json!({
        RESULT_KEY: {
            "wall_ms": wall.as_millis() as u64,
            "peak_rss_kb": peak_rss_kb(std::process::id()),
            "runs_finalized": finalized,
            "sweeps": outcome.as_ref().map(|r| r.sweeps).unwrap_or(0),
            "error": error,
        }
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// VmHWM of a process (its peak resident set), in KiB; 0 once it is gone.
fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("VmHWM:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Bytes of the files under `dir` now.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// The driver

struct Invocation {
    wall: Duration,
    outcome: String,
    peak_rss_kb: u64,
    tmp_peak: u64,
    finalized: bool,
    s3: BTreeMap<String, KindCount>,
    auth0: BTreeMap<String, KindCount>,
}

/// Whether a counted kind of request belongs to a column of the table.
type KindFilter = fn(&str) -> bool;

/// The S3 request types of the table, and which counted kinds each sums.
const S3_COLUMNS: &[(&str, KindFilter)] = &[
    ("GET", |k| k.starts_with("GET ")),
    ("PUT", |k| k.starts_with("PUT ") && k != "PUT tagging"),
    ("PUT tagging", |k| k == "PUT tagging"),
    ("LIST", |k| k == "LIST"),
    ("DELETE", |k| k.starts_with("DELETE")),
    ("HEAD", |k| k == "HEAD"),
    ("multipart", |k| k.starts_with("multipart")),
];

async fn drive(flags: &Flags) -> Result<()> {
    let plan = Plan::new(flags)?;
    let deadline_s: f64 = flags.number("--deadline-s", 90.0)?;
    let kill = !flags.switch("--no-kill");
    let max_invocations: usize = flags.number("--max-invocations", MAX_INVOCATIONS)?;
    let bucket = flags.bucket();
    let moto = MotoServer::start()?;
    let direct = s3_ledger(s3_client(&moto.endpoint()).await, &bucket);
    let emulator = auth0_emulator::Emulator::start(auth0_emulator::EmulatorConfig::default())
        .await
        .map_err(|e| anyhow::anyhow!("starting the emulator: {e}"))?;
    eprintln!(
        "seeding {} users ({} rejected, {} chunks) into moto at {} …",
        plan.users_in,
        plan.rejects,
        plan.chunks.len(),
        moto.endpoint()
    );
    let seeded = seed(&direct, &plan).await?;
    println!("{}\n", seeded.describe(&plan));
    let s3_proxy = CountingProxy::start(&moto.endpoint(), s3_kind).await?;
    let auth0_proxy = CountingProxy::start(&emulator.base_url(), auth0_kind).await?;
    let scratch = std::env::temp_dir().join(format!("bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let exe = std::env::current_exe()?;
    let mut invocations = Vec::new();
    let mut finalized = false;
    for n in 1..=max_invocations {
        let tmp = scratch.join(format!("invocation-{n}"));
        std::fs::create_dir_all(&tmp)?;
        let log = scratch.join(format!("invocation-{n}.log"));
        s3_proxy.counts.take();
        auth0_proxy.counts.take();
        let started = Instant::now();
        let mut child = Command::new(&exe)
            .args(["invoke", "--s3", &s3_proxy.endpoint, "--auth0"])
            .arg(&auth0_proxy.endpoint)
            .args(["--bucket", &bucket, "--deadline-s", &deadline_s.to_string()])
            .env("TMPDIR", &tmp)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::from(std::fs::File::create(&log)?))
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut tmp_peak = 0;
        let mut rss_sampled = 0;
        let mut killed = false;
        let status = loop {
            tmp_peak = tmp_peak.max(dir_bytes(&tmp));
            rss_sampled = rss_sampled.max(peak_rss_kb(child.id()));
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if kill && started.elapsed() > Duration::from_secs_f64(deadline_s) + KILL_GRACE {
                child.kill()?;
                killed = true;
                break child.wait()?;
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        };
        let wall = started.elapsed();
        let result = read_result(&log)?;
        let rss = result
            .as_ref()
            .and_then(|r| r["peak_rss_kb"].as_u64())
            .unwrap_or(0)
            .max(rss_sampled);
        let outcome = if killed {
            "killed at deadline".to_string()
        } else if let Some(e) = result.as_ref().and_then(|r| r["error"].as_str()) {
            format!("error: {e}")
        } else if status.success() {
            "ok".to_string()
        } else {
            format!("exit {status}")
        };
        let _ = std::fs::remove_dir_all(&tmp);
        let done = direct.exists(&plan.run.report_json()).await?
            && !direct.exists(&plan.run.active_marker()).await?;
        let invocation = Invocation {
            wall,
            outcome,
            peak_rss_kb: rss,
            tmp_peak,
            finalized: done,
            s3: s3_proxy.counts.take(),
            auth0: auth0_proxy.counts.take(),
        };
        println!("{}", invocation_json(n, &invocation));
        eprintln!(
            "invocation {n}: {:.1} s, {}, peak RSS {:.0} MB, log {}",
            wall.as_secs_f64(),
            invocation.outcome,
            rss as f64 / 1024.0,
            log.display()
        );
        invocations.push(invocation);
        if done {
            finalized = true;
            break;
        }
    }
    println!();
    print_table(&invocations, deadline_s, kill);
    println!();
    print_phases(&invocations);
    println!();
    if finalized {
        check_result(&direct, &plan).await?;
    } else {
        println!(
            "NOT FINALISED after {} invocations: report.json missing or the run still active",
            invocations.len()
        );
    }
    Ok(())
}

/// The invocation's result line, if it wrote one before it ended.
fn read_result(log: &Path) -> Result<Option<Value>> {
    let file = std::io::BufReader::new(std::fs::File::open(log)?);
    let mut result = None;
    for line in file.lines() {
        let line = line?;
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if let Some(r) = v.get(RESULT_KEY) {
                result = Some(r.clone());
            }
        }
    }
    Ok(result)
}

fn invocation_json(n: usize, i: &Invocation) -> Value {
    let kinds = |m: &BTreeMap<String, KindCount>| -> Value {
        m.iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    json!({
        RESULT_KEY: {
            "invocation": n,
            "wall_ms": i.wall.as_millis() as u64,
            "outcome": i.outcome,
            "peak_rss_kb": i.peak_rss_kb,
            "tmp_peak_bytes": i.tmp_peak,
            "finalized": i.finalized,
            "s3": kinds(&i.s3),
            "auth0": kinds(&i.auth0),
        }
    })
}

fn requests(counts: &BTreeMap<String, KindCount>, of: impl Fn(&str) -> bool) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| of(k))
        .map(|(_, v)| v.requests)
        .sum()
}

fn print_table(invocations: &[Invocation], deadline_s: f64, kill: bool) {
    println!(
        "Per invocation (deadline {deadline_s} s{}):\n",
        if kill {
            ", killed at it as Lambda would"
        } else {
            ", not enforced (--no-kill)"
        }
    );
    let mut header = String::from("| # | outcome | wall s | peak RSS MB | /tmp peak MB |");
    let mut rule = String::from("|---|---|---:|---:|---:|");
    for (name, _) in S3_COLUMNS {
        header.push_str(&format!(" S3 {name} |"));
        rule.push_str("---:|");
    }
    header.push_str(" Auth0 | final |");
    rule.push_str("---:|---|");
    println!("{header}\n{rule}");
    let mut totals = [0u64; 7];
    let mut wall = 0.0;
    let mut auth0 = 0;
    for (n, i) in invocations.iter().enumerate() {
        let mut row = format!(
            "| {} | {} | {:.1} | {:.0} | {:.1} |",
            n + 1,
            i.outcome,
            i.wall.as_secs_f64(),
            i.peak_rss_kb as f64 / 1024.0,
            i.tmp_peak as f64 / 1e6
        );
        for (c, (_, of)) in S3_COLUMNS.iter().enumerate() {
            let r = requests(&i.s3, of);
            totals[c] += r;
            row.push_str(&format!(" {r} |"));
        }
        let a = requests(&i.auth0, |_| true);
        auth0 += a;
        wall += i.wall.as_secs_f64();
        row.push_str(&format!(
            " {a} | {} |",
            if i.finalized { "yes" } else { "no" }
        ));
        println!("{row}");
    }
    let mut row = format!(
        "| total | {} invocations | {wall:.1} | | |",
        invocations.len()
    );
    for t in totals {
        row.push_str(&format!(" {t} |"));
    }
    row.push_str(&format!(" {auth0} | |"));
    println!("{row}");
}

/// Each kind of request an invocation made, when it made the first and the last: finalize makes
/// one kind per phase (chunk reports read, rejects streamed, failed chunks read, chunks tagged,
/// reports written), so these spans are its phases.
fn print_phases(invocations: &[Invocation]) {
    for (n, i) in invocations.iter().enumerate() {
        println!(
            "Invocation {} requests by kind (span from its start):\n",
            n + 1
        );
        println!("| kind | requests | MB | first s | last s |\n|---|---:|---:|---:|---:|");
        let mut kinds: Vec<(&String, &KindCount)> = i.s3.iter().chain(i.auth0.iter()).collect();
        kinds.sort_by_key(|(_, v)| v.first_ms);
        for (k, v) in kinds {
            println!(
                "| {k} | {} | {:.1} | {:.2} | {:.2} |",
                v.requests,
                v.bytes as f64 / 1e6,
                v.first_ms as f64 / 1e3,
                v.last_ms as f64 / 1e3
            );
        }
        println!();
    }
}

/// The final reports against what was seeded: totals, conservation, one CSV row per reject
/// and per failed user, and failed-users.json holding exactly the failed users.
async fn check_result(ledger: &S3Ledger, plan: &Plan) -> Result<()> {
    let run = &plan.run;
    let report: Value = ledger
        .get::<Value>(&run.report_json())
        .await?
        .context("report.json")?
        .value;
    let failed = plan.failed_users();
    let inserted = plan.accepted() - failed;
    let mut problems = Vec::new();
    for (field, want) in [
        ("users_in", json!(plan.users_in)),
        ("rejected_before_submission", json!(plan.rejects)),
        ("failed_at_auth0", json!(failed)),
        ("inserted", json!(inserted)),
        ("unknown", json!(0)),
        ("conservation_holds", json!(true)),
    ] {
        if report[field] != want {
            problems.push(format!(
                "report.json {field} = {}, seeded {want}",
                report[field]
            ));
        }
    }
    let sizes = |key: String| async move {
        let head = ledger
            .store
            .client
            .head_object()
            .bucket(&ledger.store.bucket)
            .key(&key)
            .send()
            .await;
        head.ok().and_then(|h| h.content_length()).unwrap_or(-1)
    };
    let mut csv_lines = 0u64;
    ledger
        .get_pieces(&run.report_csv(), |piece| {
            csv_lines += piece.iter().filter(|b| **b == b'\n').count() as u64;
            Ok::<(), import_core::ledger::StoreError>(())
        })
        .await?;
    let want_lines = 1 + plan.rejects + failed;
    if csv_lines != want_lines {
        problems.push(format!(
            "report.csv has {csv_lines} lines, want {want_lines} (header + rejects + failed)"
        ));
    }
    let mut failed_users = 0u64;
    if failed > 0 {
        let (bytes, _) = ledger
            .get_bytes(&run.failed_users())
            .await?
            .context("failed-users.json is missing")?;
        let users: Vec<Value> = serde_json::from_slice(&bytes).context("failed-users.json")?;
        failed_users = users.len() as u64;
        let got: BTreeSet<u64> = users
            .iter()
            .filter_map(|u| {
                u["email"]
                    .as_str()?
                    .strip_prefix("user")?
                    .strip_suffix("@example.com")?
                    .parse()
                    .ok()
            })
            .collect();
        let want: BTreeSet<u64> = plan
            .chunks
            .iter()
            .filter(|c| c.failed)
            .flat_map(|c| c.entry.first_index..=c.entry.last_index)
            .filter(|i| !plan.is_rejected(*i))
            .collect();
        if got != want || failed_users != want.len() as u64 {
            problems.push(format!(
                "failed-users.json holds {failed_users} users ({} distinct), not the {} failed ones",
                got.len(),
                want.len()
            ));
        }
    }
    println!("Result:\n");
    println!(
        "- report.json: users_in {}, rejected {}, inserted {}, failed_at_auth0 {}, unknown {}, conservation_holds {}",
        report["users_in"],
        report["rejected_before_submission"],
        report["inserted"],
        report["failed_at_auth0"],
        report["unknown"],
        report["conservation_holds"]
    );
    println!(
        "- report.csv: {:.1} MB, {csv_lines} lines",
        sizes(run.report_csv()).await as f64 / 1e6
    );
    println!(
        "- failed-users.json: {:.1} MB, {failed_users} users",
        sizes(run.failed_users()).await as f64 / 1e6
    );
    println!(
        "- report.html: {:.2} MB",
        sizes(run.report_html()).await as f64 / 1e6
    );
    if problems.is_empty() {
        println!("- correctness: every check passed");
        Ok(())
    } else {
        for p in &problems {
            println!("- WRONG: {p}");
        }
        bail!("{} check(s) failed", problems.len())
    }
}
