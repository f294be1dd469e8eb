//! Makespan benchmark: with every emulated import job taking exactly `--job-ms`, how close does
//! the pipeline (split → submit → poll, driven by `Pipeline::tick`) come to the slot-bound
//! optimum for a run of `--chunks` chunks on `--slots` slots?
//!
//! `cargo run --release -p integration --bin makespan -- [--chunks 20] [--job-ms 1000]
//! [--slots 2] [--tick-ms 20] [--header] [--phases]`
//!
//! Prints one Markdown table row (and the header first with `--header`) on stdout; the details
//! (per-gap breakdown, request counts) go to stderr. `--phases` makes the same three calls as
//! `Pipeline::tick` (poll, scheduled submit, event delivery) one by one to time each.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use auth0_emulator::{EmulatorConfig, JobView, DEFAULT_CONNECTION_ID};
use aws_lambda_events::event::s3::S3Event;
use aws_sdk_s3::primitives::ByteStream;
use aws_shell::ledger::{s3_ledger, S3Ledger};
use import_core::layout;
use import_core::ledger::{JobRecord, JobState};
use integration::pipeline::Pipeline;
use integration::{s3_put_event, LocalWorld};
use poll::PollConfig;
use serde_json::{json, Value};
use split::{RecordOutcome, SplitConfig};
use submit::{SubmitConfig, SubmitTrigger};

const BUCKET: &str = "migration";
/// A second bucket where the user count giving exactly N chunks is found (its runs never run).
const CALIBRATION_BUCKET: &str = "calibration";
const SECRET: &str = "auth0/tenant";
const MAX_CHUNK_BYTES: usize = 2000;
/// Gives up on a run that has no report after this long.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

struct Args {
    chunks: usize,
    job_ms: u64,
    slots: u32,
    tick_ms: u64,
    header: bool,
    /// Time poll, submit and event delivery separately (the calls `Pipeline::tick` makes).
    phases: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        chunks: 20,
        job_ms: 1000,
        slots: 2,
        tick_ms: 20,
        header: false,
        phases: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> Result<u64> {
            let v = it.next().with_context(|| format!("{name} needs a value"))?;
            v.parse()
                .with_context(|| format!("{name} must be a non-negative integer, got {v:?}"))
        };
        match flag.as_str() {
            "--chunks" => args.chunks = usize::try_from(value("--chunks")?)?,
            "--job-ms" => args.job_ms = value("--job-ms")?,
            "--slots" => args.slots = u32::try_from(value("--slots")?)?,
            "--tick-ms" => args.tick_ms = value("--tick-ms")?,
            "--header" => args.header = true,
            "--phases" => args.phases = true,
            "-h" | "--help" => {
                println!(
                    "usage: makespan [--chunks N] [--job-ms MS] [--slots K] [--tick-ms MS] [--header] [--phases]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if args.chunks == 0 || args.slots == 0 || args.job_ms == 0 {
        bail!("--chunks, --slots and --job-ms must be positive");
    }
    Ok(args)
}

/// Users of one size (the index is zero-padded), so chunk count grows by one at a time.
fn users(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "email": format!("person{i:07}@example.com"),
                "email_verified": true,
                "given_name": "Zoë", "family_name": "Ñúñez",
                "user_id": format!("legacy-{i:07}"),
                "password_hash": "$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
            })
        })
        .collect()
}

/// Uploads `records` and returns the new object's ETag.
async fn put(ledger: &S3Ledger, bucket: &str, key: &str, records: &[Value]) -> Result<String> {
    let out = ledger
        .store
        .client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(serde_json::to_vec(records)?))
        .send()
        .await
        .with_context(|| format!("PUT s3://{bucket}/{key}"))?;
    Ok(out.e_tag().unwrap_or_default().to_string())
}

/// Chunks the split handler makes of `n` users, found by splitting them in the calibration bucket.
async fn chunks_for(ledger: &S3Ledger, config: &SplitConfig, n: usize) -> Result<usize> {
    let key = format!("inbox/{DEFAULT_CONNECTION_ID}/calibrate-{n}.json");
    let etag = put(ledger, CALIBRATION_BUCKET, &key, &users(n)).await?;
    let event: S3Event = serde_json::from_value(s3_put_event(CALIBRATION_BUCKET, &key, 0, &etag))?;
    let invocation = split::Invocation {
        request_id: format!("calibrate-{n}"),
        deadline_ms: None,
    };
    let response = split::handle(&ledger.store.client, config, &invocation, event)
        .await
        .map_err(anyhow::Error::msg)?;
    match &response.records[0] {
        RecordOutcome::Split { chunks, .. } => Ok(*chunks),
        other => bail!("calibration drop of {n} users was not split: {other:?}"),
    }
}

/// The most users that still make exactly `target` chunks (every chunk full but the last).
async fn users_for_chunks(ledger: &S3Ledger, config: &SplitConfig, target: usize) -> Result<usize> {
    // Chunks per user count; each count is split once (a second drop of the same key would be
    // `AlreadySplit`).
    let mut known = BTreeMap::from([(0, 0)]);
    // Smallest n with more than `target` chunks, by doubling then bisection.
    let mut hi = target.max(1);
    loop {
        let c = chunks_for(ledger, config, hi).await?;
        known.insert(hi, c);
        if c > target {
            break;
        }
        hi *= 2;
    }
    let mut lo = hi / 2; // chunks(lo) <= target, and known
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let c = chunks_for(ledger, config, mid).await?;
        known.insert(mid, c);
        if c <= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let got = known.get(&lo).copied().unwrap_or_default();
    if got != target {
        bail!("no user count gives exactly {target} chunks ({lo} users give {got})");
    }
    Ok(lo)
}

fn mean(xs: &[u64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<u64>() as f64 / xs.len() as f64
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let job = Duration::from_millis(args.job_ms);
    let tick_every = Duration::from_millis(args.tick_ms);

    // Job time fixed: a job is `pending` for job_base_time, then processes users × per-user
    // time (jobs.rs), so per-user 0 makes every job take exactly job_ms from its creation.
    let LocalWorld {
        moto,
        emulator,
        sdk,
        s3,
        secrets,
    } = LocalWorld::start(
        BUCKET,
        SECRET,
        EmulatorConfig {
            job_base_time: job,
            job_time_per_user: Duration::ZERO,
            max_active_jobs: args.slots as usize,
            ..EmulatorConfig::default()
        },
    )
    .await?;
    s3.create_bucket().bucket(CALIBRATION_BUCKET).send().await?;
    let split_config = SplitConfig {
        canary_secret: None,
        run_topic: None,
        inbox_prefix: "inbox/".into(),
        max_chunk_bytes: MAX_CHUNK_BYTES,
        scratch_dir: None,
        budget: Default::default(),
    };
    let mut pipeline = Pipeline::new(
        sdk,
        secrets,
        split_config.clone(),
        SubmitConfig {
            bucket: BUCKET.into(),
            slots: args.slots,
            secret_id: SECRET.into(),
        },
        // One sweep per tick (run_poll's deadline leaves no room for a second): the tick period
        // is the poll cadence, this interval is never slept.
        PollConfig {
            bucket: BUCKET.into(),
            secret_id: SECRET.into(),
            interval: tick_every,
            looks: Default::default(),
            reconcile: None,
        },
    );

    // One delivery per event: the benchmark measures the pipeline's own overhead against the
    // slot-bound optimum, not S3's duplicates (the integrity tests deliver every event twice).
    pipeline.delivery = integration::pipeline::Delivery {
        copies: 1,
        concurrent: false,
    };
    let n_users = users_for_chunks(
        &s3_ledger(s3.clone(), CALIBRATION_BUCKET),
        &split_config,
        args.chunks,
    )
    .await?;
    eprintln!(
        "makespan: {n_users} users make {} chunks of <= {MAX_CHUNK_BYTES} bytes",
        args.chunks
    );

    // The drop: PUT, its event (split, then the manifest's event activates the run and submit
    // fills the slots), then the schedules tick until the final report exists.
    let records = users(n_users);
    let key = format!("inbox/{DEFAULT_CONNECTION_ID}/makespan.json");
    let dropped = Instant::now();
    put(&pipeline.ledger, BUCKET, &key, &records).await?;
    let activity = pipeline
        .deliver_events()
        .await
        .map_err(anyhow::Error::msg)?;
    let run_id = match activity.split.first() {
        Some(RecordOutcome::Split { run_id, chunks, .. }) => {
            if *chunks != args.chunks {
                bail!("the drop made {chunks} chunks, not {}", args.chunks);
            }
            run_id.clone()
        }
        other => bail!("the drop was not split: {other:?}"),
    };
    let mut ticks: Vec<u64> = Vec::new();
    // Milliseconds spent in poll, scheduled submit and event delivery, per tick (--phases).
    let mut phases: [Vec<u64>; 3] = Default::default();
    let report = loop {
        let t = Instant::now();
        if args.phases {
            pipeline.run_poll().await;
            let polled = t.elapsed();
            pipeline.run_submit(SubmitTrigger::Refill).await;
            let submitted = t.elapsed();
            pipeline
                .deliver_events()
                .await
                .map_err(anyhow::Error::msg)?;
            let delivered = t.elapsed();
            phases[0].push(polled.as_millis() as u64);
            phases[1].push((submitted - polled).as_millis() as u64);
            phases[2].push((delivered - submitted).as_millis() as u64);
        } else {
            pipeline.tick().await.map_err(anyhow::Error::msg)?;
        }
        ticks.push(t.elapsed().as_millis() as u64);
        if let Some(report) = pipeline.report(&run_id).await.map_err(anyhow::Error::msg)? {
            break report;
        }
        if dropped.elapsed() > RUN_TIMEOUT {
            bail!("run {run_id} has no report after {RUN_TIMEOUT:?}");
        }
        // The schedule's period (a stand-in for EventBridge's rate), not a synchronisation.
        tokio::time::sleep(tick_every).await;
    };
    let wall = dropped.elapsed();
    if report.chunks != args.chunks || report.inserted != n_users as u64 {
        bail!("the run did not import every user: {report:?}");
    }

    // Emulator clock (ms since it started): the jobs, and which slot held each (from the ledger).
    let jobs: BTreeMap<String, JobView> = emulator
        .jobs()
        .into_iter()
        .map(|j| (j.id.clone(), j))
        .collect();
    if jobs.len() != args.chunks {
        bail!("{} jobs for {} chunks", jobs.len(), args.chunks);
    }
    let mut slot_of: BTreeMap<String, u32> = BTreeMap::new();
    let prefix = layout::run_prefix(&run_id);
    for (k, _) in pipeline
        .ledger
        .list(&format!("{prefix}{}", layout::JOBS_DIR))
        .await
        .map_err(anyhow::Error::msg)?
    {
        let Some(record) = pipeline
            .ledger
            .get::<JobRecord>(&k)
            .await
            .map_err(anyhow::Error::msg)?
        else {
            continue;
        };
        if let JobState::Finished { job_id, .. } | JobState::Submitted { job_id, .. } =
            record.value.state
        {
            slot_of.insert(job_id, record.value.slot);
        }
    }
    let finished = |j: &JobView| j.finished_ms.context("a job never finished");
    let first_created = jobs.values().map(|j| j.created_ms).min().unwrap_or(0);
    let last_finished = jobs
        .values()
        .map(finished)
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .max()
        .unwrap_or(0);
    let makespan = last_finished - first_created;
    for j in jobs.values() {
        let took = finished(j)? - j.created_ms;
        if took.abs_diff(args.job_ms) > 5 {
            eprintln!("makespan: warning: job {} took {took} ms", j.id);
        }
    }

    // Refill gaps per slot, each split into detection (job end → the first status GET that can
    // see it) and refill (that GET → the next job's POST: poll's writes, then submit).
    let requests = emulator.requests();
    let mut gaps = Vec::new();
    let mut detects = Vec::new();
    let mut refills = Vec::new();
    // The slot whose last job ends last: makespan = its jobs × job_ms + its start offset + its gaps.
    let mut critical = (0u64, 0u32, 0usize, 0u64, 0u64); // (last end, slot, jobs, offset, gaps)
    for slot in 0..args.slots {
        let mut mine: Vec<&JobView> = jobs
            .values()
            .filter(|j| slot_of.get(&j.id) == Some(&slot))
            .collect();
        mine.sort_by_key(|j| j.created_ms);
        let mut slot_gaps = 0;
        for pair in mine.windows(2) {
            let end = finished(pair[0])?;
            let next = pair[1].created_ms;
            gaps.push(next.saturating_sub(end));
            slot_gaps += next.saturating_sub(end);
            let seen = requests
                .iter()
                .filter(|r| {
                    r.method == "GET"
                        && r.job_id.as_deref() == Some(pair[0].id.as_str())
                        && !r.path.ends_with("/errors")
                        && r.status == 200
                        && r.at_ms >= end
                })
                .map(|r| r.at_ms)
                .min();
            if let Some(seen) = seen {
                detects.push(seen - end);
                refills.push(next.saturating_sub(seen));
            }
        }
        if let (Some(first), Some(last)) = (mine.first(), mine.last()) {
            let end = finished(last)?;
            if end >= critical.0 {
                let offset = first.created_ms - first_created;
                critical = (end, slot, mine.len(), offset, slot_gaps);
            }
        }
    }
    if slot_of.len() != args.chunks {
        eprintln!(
            "makespan: warning: slots known for {} of {} jobs",
            slot_of.len(),
            args.chunks
        );
    }
    let count = |pred: &dyn Fn(&auth0_emulator::LoggedRequest) -> bool| {
        requests.iter().filter(|r| pred(r)).count()
    };
    let status_gets = count(&|r| {
        r.method == "GET" && r.path.starts_with("/api/v2/jobs/") && !r.path.ends_with("/errors")
    });
    let too_many = count(&|r| r.status == 429);
    let posts = count(&|r| r.path == "/api/v2/jobs/users-imports");

    // What one S3 request costs on this moto, and a whole-bucket listing (deliver_events does one
    // per tick), to turn the phase times above into request counts.
    let manifest_key = format!("{prefix}{}", layout::MANIFEST);
    let t = Instant::now();
    for _ in 0..20 {
        pipeline
            .ledger
            .get_bytes(&manifest_key)
            .await
            .map_err(anyhow::Error::msg)?;
    }
    let get_ms = t.elapsed().as_secs_f64() * 1000.0 / 20.0;
    let t = Instant::now();
    let mut objects = 0;
    for _ in 0..5 {
        objects = pipeline
            .ledger
            .list("")
            .await
            .map_err(anyhow::Error::msg)?
            .len();
    }
    let list_ms = t.elapsed().as_secs_f64() * 1000.0 / 5.0;

    let slots = u64::from(args.slots);
    let chunks = args.chunks as u64;
    let exact = chunks as f64 * args.job_ms as f64 / slots as f64; // the formula
    let bound = chunks.div_ceil(slots) * args.job_ms; // whole jobs per slot: the true bound
    let ratio = makespan as f64 / bound as f64;
    let max = |xs: &[u64]| xs.iter().copied().max().unwrap_or(0);

    eprintln!(
        "makespan: first POST {first_created} ms, last job end {last_finished} ms (emulator clock); \
         final report {:.2} s after the drop",
        wall.as_secs_f64()
    );
    eprintln!(
        "makespan: refill gap = detection (job end → first status GET after it) + refill (that GET → next POST)"
    );
    eprintln!(
        "makespan:   gap mean {:.0} max {} ms; detection mean {:.0} max {} ms; refill mean {:.0} max {} ms",
        mean(&gaps),
        max(&gaps),
        mean(&detects),
        max(&detects),
        mean(&refills),
        max(&refills)
    );
    eprintln!(
        "makespan:   {} ticks, tick duration mean {:.0} max {} ms (+ {} ms sleep each); \
         {status_gets} status GETs, {posts} import POSTs, {too_many} answers 429",
        ticks.len(),
        mean(&ticks),
        max(&ticks),
        args.tick_ms
    );
    eprintln!(
        "makespan:   critical slot {}: {} jobs × {} ms + start offset {} ms + gaps {} ms = {} ms",
        critical.1,
        critical.2,
        args.job_ms,
        critical.3,
        critical.4,
        critical.2 as u64 * args.job_ms + critical.3 + critical.4
    );
    eprintln!(
        "makespan:   moto: one GET {get_ms:.1} ms; listing the whole bucket ({objects} objects) {list_ms:.1} ms"
    );
    if args.phases {
        eprintln!(
            "makespan:   per tick, mean / max ms: poll {:.0} / {}, scheduled submit {:.0} / {}, event delivery {:.0} / {}",
            mean(&phases[0]),
            max(&phases[0]),
            mean(&phases[1]),
            max(&phases[1]),
            mean(&phases[2]),
            max(&phases[2])
        );
    }
    eprintln!(
        "makespan:   ratio vs chunks × job ÷ slots ({exact:.0} ms): {:.3}",
        makespan as f64 / exact
    );

    if args.header {
        println!(
            "| chunks | slots | job ms | tick ms | optimum ms (⌈chunks/slots⌉ × job) | chunks × job ÷ slots | makespan ms | ratio | refill gap mean / max ms | detection mean ms | wall s to report |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    println!(
        "| {} | {} | {} | {} | {bound} | {exact:.0} | {makespan} | {ratio:.3} | {:.0} / {} | {:.0} | {:.2} |",
        args.chunks,
        args.slots,
        args.job_ms,
        args.tick_ms,
        mean(&gaps),
        max(&gaps),
        mean(&detects),
        wall.as_secs_f64()
    );
    drop(emulator);
    drop(moto);
    Ok(())
}
