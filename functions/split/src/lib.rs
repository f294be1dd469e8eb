//! The `split` Lambda: for each S3 ObjectCreated record under the inbox prefix, stream that
//! object version through the core's split stage into `runs/<run-id>/` of the same bucket.
//!
//! One run per dropped object version, however often and however concurrently its event is
//! delivered: the run id comes from the event's `versionId` (else `eTag`), one invocation at a
//! time holds the run's split claim, each attempt writes into its own folder, and the manifest
//! (create-once) commits exactly one attempt.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use aws_sdk_s3::Client;
use aws_shell::ledger::{s3_ledger, S3Ledger};
use aws_shell::{describe, status_of, S3RunSink};
use import_core::canary::{canaries_from_secret, Canaries, Canary};
use import_core::drop_budget::{DropBudget, DEFAULT_MAX_BYTES, DEFAULT_MAX_GZIP_BYTES};
use import_core::layout::{self, RunPath, DEFAULT_INBOX_PREFIX};
use import_core::ledger::{split_claim_verdict, SplitClaim, SplitClaimVerdict, StoreError};
use import_core::manifest::{RunManifest, RunStatus, Source};
use import_core::mapping::{presets, Mapping};
use import_core::options::{mapping_key, parse_drop_key, DropSource};
use import_core::run_end::{RunEndMessage, RunNotifier};
use import_core::split::{reject_drop, split, SplitOptions, SplitOutcome, DEFAULT_MAX_CHUNK_BYTES};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use tokio_util_bridge::SyncReader;

/// Where the canaries' plaintext passwords are kept: a Secrets Manager secret with a
/// `canaries` field (never S3, logs or reports).
#[derive(Debug, Clone)]
pub struct CanarySecret {
    pub client: aws_sdk_secretsmanager::Client,
    pub secret_id: String,
}

/// The function's settings, from its environment.
#[derive(Debug, Clone)]
pub struct SplitConfig {
    /// The canary secret (`CANARY_SECRET_ID`), read for every drop so an update applies to the
    /// next one. `None`: no canary is checked.
    pub canary_secret: Option<CanarySecret>,
    /// Told when split itself ends a run (a canary stopped it); poll tells the rest. `None`:
    /// nobody is told (tests, the CLI).
    pub run_topic: Option<aws_shell::notify::RunTopic>,
    /// Only objects under this prefix are splits; everything else (our own run folders
    /// included) is ignored.
    pub inbox_prefix: String,
    pub max_chunk_bytes: usize,
    /// Spill space (Lambda's ephemeral /tmp).
    pub scratch_dir: Option<PathBuf>,
    /// Drops too big to split before the deadline are refused before they are read.
    pub budget: DropBudget,
}

impl SplitConfig {
    /// `INBOX_PREFIX` (default `inbox/`), `MAX_CHUNK_BYTES` (default 500000), `SCRATCH_DIR`,
    /// `MAX_DROP_BYTES` and `MAX_GZIP_DROP_BYTES` (defaults in `drop_budget`);
    /// the canary secret is set by the entry point, which has the AWS configuration.
    pub fn from_env() -> Result<Self, String> {
        let inbox_prefix =
            std::env::var("INBOX_PREFIX").unwrap_or_else(|_| DEFAULT_INBOX_PREFIX.to_string());
        let max_chunk_bytes = match std::env::var("MAX_CHUNK_BYTES") {
            Ok(v) => v.parse().map_err(|_| {
                format!("MAX_CHUNK_BYTES must be a whole number of bytes, got {v:?}")
            })?,
            Err(_) => DEFAULT_MAX_CHUNK_BYTES,
        };
        let scratch_dir = std::env::var_os("SCRATCH_DIR").map(PathBuf::from);
        let bytes = |name: &str, default: u64| {
            std::env::var(name).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| format!("{name} must be a whole number of bytes, got {v:?}"))
            })
        };
        let budget = DropBudget {
            max_bytes: bytes("MAX_DROP_BYTES", DEFAULT_MAX_BYTES)?,
            max_gzip_bytes: bytes("MAX_GZIP_DROP_BYTES", DEFAULT_MAX_GZIP_BYTES)?,
        };
        Ok(SplitConfig {
            canary_secret: None,
            run_topic: None,
            inbox_prefix,
            max_chunk_bytes,
            scratch_dir,
            budget,
        })
    }
}

/// The invocation doing the work: Lambda's request id (kept across Lambda's retries of one
/// event) and its deadline, in milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub request_id: String,
    pub deadline_ms: Option<u64>,
}

/// One dropped object version to split: what an S3 event record says, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedObject {
    pub bucket: String,
    /// Decoded (S3 events URL-encode keys).
    pub key: String,
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub size: Option<u64>,
}

/// What happened to one event record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RecordOutcome {
    Split {
        key: String,
        run_id: String,
        status: RunStatus,
        users_in: u64,
        users_accepted: u64,
        users_rejected: u64,
        chunks: usize,
    },
    /// The run's manifest already exists: a duplicate event, nothing added.
    AlreadySplit {
        key: String,
        run_id: String,
        by: Option<String>,
    },
    /// Another invocation is splitting this run right now: this duplicate stops here.
    BeingSplit {
        key: String,
        run_id: String,
        by: String,
        until_ms: Option<u64>,
    },
    Ignored {
        key: String,
        why: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitResponse {
    pub records: Vec<RecordOutcome>,
}

/// Why an invocation failed (Lambda retries it, then sends the event to the dead-letter queue).
#[derive(Debug, thiserror::Error)]
pub enum SplitFailure {
    #[error("the run folder of {key}: {error}")]
    Ledger { key: String, error: StoreError },
    #[error("s3://{bucket}/{key}: {reason}")]
    Source {
        bucket: String,
        key: String,
        reason: String,
    },
    /// The canary secret could not be read or parsed: splitting without the check the operator
    /// asked for would defeat it, so the drop waits (Lambda retries).
    #[error("canaries for s3://{bucket}/{key}: {reason}")]
    Canaries {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("split of s3://{bucket}/{key}: {reason}")]
    Split {
        bucket: String,
        key: String,
        reason: String,
    },
}

/// S3 event keys are URL-encoded with `+` for space.
pub fn decode_key(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

impl DroppedObject {
    /// The object an ObjectCreated record names; `Err` says why the record is not a drop.
    pub fn of_record(record: &S3EventRecord) -> Result<Self, (String, String)> {
        let key = decode_key(record.s3.object.key.as_deref().unwrap_or_default());
        let event_name = record.event_name.clone().unwrap_or_default();
        if !event_name.starts_with("ObjectCreated:") {
            return Err((key, format!("event {event_name:?} is not ObjectCreated")));
        }
        let bucket = record.s3.bucket.name.clone().unwrap_or_default();
        if bucket.is_empty() || key.is_empty() {
            return Err((key, "the record names no bucket or key".into()));
        }
        Ok(DroppedObject {
            bucket,
            key,
            version_id: record.s3.object.version_id.clone(),
            etag: record.s3.object.e_tag.clone(),
            size: record.s3.object.size.and_then(|n| u64::try_from(n).ok()),
        })
    }
}

/// Handles one S3 event. An error means a record could not be processed and the invocation
/// should be retried; records already split are skipped on the retry, and duplicates that
/// find the run being split stop cleanly.
pub async fn handle(
    client: &Client,
    config: &SplitConfig,
    invocation: &Invocation,
    event: S3Event,
) -> Result<SplitResponse, SplitFailure> {
    let mut records = Vec::with_capacity(event.records.len());
    for record in &event.records {
        let outcome = match DroppedObject::of_record(record) {
            // Boxed: the split's state machine is deep, and an unboxed one overflows the
            // compiler's layout depth in the binary that awaits it.
            Ok(object) => Box::pin(split_object(client, config, invocation, &object)).await?,
            Err((key, why)) => ignored(key, why),
        };
        records.push(outcome);
    }
    Ok(SplitResponse { records })
}

/// Splits one dropped object version into its run, or finds the run split (or being split)
/// already.
pub async fn split_object(
    client: &Client,
    config: &SplitConfig,
    invocation: &Invocation,
    object: &DroppedObject,
) -> Result<RecordOutcome, SplitFailure> {
    let key = object.key.clone();
    if !key.starts_with(&config.inbox_prefix) {
        return Ok(ignored(
            key,
            format!("outside the inbox prefix {:?}", config.inbox_prefix),
        ));
    }
    if key.ends_with('/') {
        return Ok(ignored(key, "a folder marker, not an export".into()));
    }
    // The event names the version; a later HEAD could name a newer upload to the same key.
    let Some(version) =
        layout::object_version(object.version_id.as_deref(), object.etag.as_deref())
    else {
        return Ok(ignored(
            key,
            "the event names neither a versionId nor an eTag, so no run can be tied to this object's content"
                .into(),
        ));
    };
    let run = RunPath::new(&layout::run_id(&key, version));
    let ledger = s3_ledger(client.clone(), &object.bucket);
    let store_failed = |error: StoreError| SplitFailure::Ledger {
        key: key.clone(),
        error,
    };
    if let Some(outcome) = already_split(&ledger, &run, &key)
        .await
        .map_err(store_failed)?
    {
        return Ok(outcome);
    }
    let claim = match take_claim(&ledger, &run, invocation)
        .await
        .map_err(store_failed)?
    {
        Ok(claim) => claim,
        Err(busy) => {
            tracing::info!(
                run_id = run.id(),
                key,
                ?busy,
                "duplicate delivery: the run is being split by another invocation"
            );
            return Ok(busy.outcome(key, run.id()));
        }
    };
    let result = Box::pin(split_claimed(client, config, object, &run, &ledger, &claim)).await;
    match &result {
        Ok(_) => {
            // The claim stays: it names who split the run for later duplicates.
        }
        Err(_) => {
            // Let Lambda's retry start at once rather than wait out this invocation's deadline.
            let released = SplitClaim {
                released: true,
                ..claim.clone()
            };
            if let Err(e) = ledger.put(&run.split_claim(), &released).await {
                tracing::warn!(run_id = run.id(), error = %e, "could not release the split claim");
            }
        }
    }
    result
}

/// The run's manifest exists: say so, and make sure the run is listed (its first activation
/// may have been lost with an invocation that died right after committing).
async fn already_split(
    ledger: &S3Ledger,
    run: &RunPath,
    key: &str,
) -> Result<Option<RecordOutcome>, StoreError> {
    if !ledger.exists(&run.manifest()).await? {
        return Ok(None);
    }
    ledger.activate_run(run, now_ms()).await?;
    let by = ledger
        .get::<SplitClaim>(&run.split_claim())
        .await?
        .map(|c| c.value.holder);
    tracing::info!(
        run_id = run.id(),
        key,
        by,
        "duplicate event: the run is already split"
    );
    Ok(Some(RecordOutcome::AlreadySplit {
        key: key.to_string(),
        run_id: run.id().to_string(),
        by,
    }))
}

/// Who holds a run's split claim when this invocation cannot take it.
#[derive(Debug)]
struct Busy {
    by: String,
    until_ms: Option<u64>,
}

impl Busy {
    fn outcome(self, key: String, run_id: &str) -> RecordOutcome {
        RecordOutcome::BeingSplit {
            key,
            run_id: run_id.to_string(),
            by: self.by,
            until_ms: self.until_ms,
        }
    }
}

/// Takes the run's split claim (`ledger::split_claim_verdict`): `Err(Busy)` when a living
/// invocation holds it.
async fn take_claim(
    ledger: &S3Ledger,
    run: &RunPath,
    invocation: &Invocation,
) -> Result<Result<SplitClaim, Busy>, StoreError> {
    let now = now_ms();
    let claim = SplitClaim {
        attempt: format!("{:016x}", fastrand::u64(..)),
        holder: invocation.request_id.clone(),
        claimed_at_ms: now,
        deadline_ms: invocation.deadline_ms,
        released: false,
    };
    let found = ledger.get::<SplitClaim>(&run.split_claim()).await?;
    let taken = match split_claim_verdict(found.as_ref().map(|c| &c.value), &claim.holder, now) {
        SplitClaimVerdict::Claim => ledger.create(&run.split_claim(), &claim).await?,
        SplitClaimVerdict::TakeOver => match &found {
            Some(found) => {
                ledger
                    .replace(&run.split_claim(), &claim, &found.etag)
                    .await?
            }
            None => false,
        },
        SplitClaimVerdict::Busy { holder, until_ms } => {
            return Ok(Err(Busy {
                by: holder,
                until_ms,
            }))
        }
    };
    if taken {
        return Ok(Ok(claim));
    }
    // Another invocation wrote the claim between our read and our write.
    let by = ledger
        .get::<SplitClaim>(&run.split_claim())
        .await?
        .map(|c| (c.value.holder, c.value.deadline_ms));
    let (by, until_ms) = by.unwrap_or_else(|| ("another invocation".to_string(), None));
    Ok(Err(Busy { by, until_ms }))
}

/// The split proper, under the claim: the drop's options, the object version read as a
/// stream, the attempt's folder, the commit, and the run listed for submit and poll.
async fn split_claimed(
    client: &Client,
    config: &SplitConfig,
    object: &DroppedObject,
    run: &RunPath,
    ledger: &S3Ledger,
    claim: &SplitClaim,
) -> Result<RecordOutcome, SplitFailure> {
    let (bucket, key) = (object.bucket.clone(), object.key.clone());
    let source = Source::S3 {
        bucket: bucket.clone(),
        key: key.clone(),
        etag: object
            .etag
            .clone()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string(),
        version_id: object.version_id.clone(),
        size: object.size,
    };
    let handle = tokio::runtime::Handle::current();
    let mut sink = S3RunSink::new(client.clone(), &bucket, run.id(), handle.clone());
    let failed = |reason: String| SplitFailure::Split {
        bucket: bucket.clone(),
        key: key.clone(),
        reason,
    };
    // Every reason to refuse the drop before reading it: its options, its size, its mapping.
    let admitted = match parse_drop_key(&config.inbox_prefix, &key) {
        Err(e) => Err(format!("the drop's key does not state valid options: {e}")),
        // Refused before reading rather than killed at the deadline halfway, three times over.
        Ok(options) => match config.budget.refusal(&key, object.size) {
            Some(why) => Err(why),
            // A mapping that is missing or does not check fails the drop the same way.
            None => read_mapping(client, &bucket, options.source.as_ref())
                .await?
                .map(|mapping| (options, mapping)),
        },
    };
    let outcome = match admitted {
        Err(reason) => {
            // The drop is answered in its run folder, where the operator looks, not only in logs.
            let run_id = run.id().to_string();
            tokio::task::spawn_blocking(move || reject_drop(source, &run_id, reason, &mut sink))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(|e| failed(e.to_string()))?
        }
        Ok((drop_options, mapping)) => {
            let Some(body) = read_version(client, object).await? else {
                return Ok(ignored(
                    key,
                    "this version of the object no longer exists (deleted, or overwritten in an unversioned bucket); a newer upload has an event of its own"
                        .into(),
                ));
            };
            let canaries = read_canaries(config, object).await?;
            let reader = SyncReader::new(body.into_async_read(), handle);
            let options = SplitOptions {
                max_chunk_bytes: config.max_chunk_bytes,
                scratch_dir: config.scratch_dir.clone(),
                drop_options: Some(drop_options),
                attempt: Some(claim.attempt.clone()),
                canaries: Canaries {
                    list: canaries,
                    // The drop's `canary=warn/` option is read by split itself.
                    warn_only: false,
                },
                mapping,
            };
            let run_id = run.id().to_string();
            tokio::task::spawn_blocking(move || split(reader, source, &run_id, &options, &mut sink))
                .await
                .map_err(|e| failed(format!("the split task stopped: {e}")))?
                .map_err(|e| failed(e.to_string()))?
        }
    };
    let store_failed = |error: StoreError| SplitFailure::Ledger {
        key: key.clone(),
        error,
    };
    if !outcome.committed {
        tracing::info!(
            run_id = run.id(),
            key,
            "another invocation committed this run first"
        );
        remove_attempts(ledger, run, |attempt| attempt == claim.attempt).await;
        return Ok(RecordOutcome::AlreadySplit {
            key,
            run_id: run.id().to_string(),
            by: None,
        });
    }
    // Listed for submit and poll now, so the run starts (and ends with a report) even if the
    // manifest's own event is lost or submit cannot run yet.
    ledger
        .activate_run(run, now_ms())
        .await
        .map_err(store_failed)?;
    // What earlier or concurrent attempts left is never read: it goes.
    remove_attempts(ledger, run, |attempt| attempt != claim.attempt).await;
    // A run a canary stopped ends here, its report written by split: told now (poll tells
    // every other run when it writes the report).
    if outcome
        .manifest
        .canaries
        .as_ref()
        .is_some_and(|c| c.stops_the_run())
    {
        if let Some(topic) = &config.run_topic {
            let report = import_core::report::RunReport::build(&outcome.manifest, &[]);
            let message = RunEndMessage::for_final_report(&report, Some(&object.bucket));
            if let Err(e) = topic.notify(&message).await {
                tracing::warn!(run_id = run.id(), error = %e, "run-end notification not sent");
            }
        }
    }
    Ok(report(key, run.id().to_string(), &outcome))
}

/// The canaries the operator keeps in the canary secret (none without one). Their passwords
/// stay in memory: never logged, never written.
async fn read_canaries(
    config: &SplitConfig,
    object: &DroppedObject,
) -> Result<Vec<Canary>, SplitFailure> {
    let Some(secret) = &config.canary_secret else {
        return Ok(Vec::new());
    };
    let failed = |reason: String| SplitFailure::Canaries {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        reason,
    };
    let text = aws_shell::ledger::secret_string(&secret.client, &secret.secret_id)
        .await
        .map_err(failed)?;
    canaries_from_secret(&text).map_err(|e| failed(format!("secret {}: {e}", secret.secret_id)))
}

/// The mapping a drop's key names: `Ok(Ok(None))` for none (or `from=auth0-export`),
/// `Ok(Err(reason))` when it is missing or does not check (the drop fails with that reason),
/// `Err` when the bucket could not be read (retried).
async fn read_mapping(
    client: &Client,
    bucket: &str,
    source: Option<&DropSource>,
) -> Result<Result<Option<Arc<Mapping>>, String>, SplitFailure> {
    match source {
        None => Ok(Ok(None)),
        Some(DropSource::Preset(name)) => Ok(presets::mapping(name)
            .map(|m| m.map(Arc::new))
            .map_err(|e| e.to_string())),
        Some(DropSource::Mapping(name)) => {
            let key = mapping_key(name);
            let body = match client.get_object().bucket(bucket).key(&key).send().await {
                Ok(o) => o.body.collect().await.map_err(|e| SplitFailure::Source {
                    bucket: bucket.to_string(),
                    key: key.clone(),
                    reason: format!("reading the mapping: {e}"),
                })?,
                Err(e) if status_of(&e) == Some(404) => {
                    return Ok(Err(format!(
                        "the drop names mapping={name}, and the bucket has no {key}: upload the mapping there, then drop the file again"
                    )))
                }
                Err(e) => {
                    return Err(SplitFailure::Source {
                        bucket: bucket.to_string(),
                        key,
                        reason: format!("GET: {}", describe(&e)),
                    })
                }
            };
            let text = match String::from_utf8(body.into_bytes().to_vec()) {
                Ok(text) => text,
                Err(_) => return Ok(Err(format!("{key} is not UTF-8 text"))),
            };
            Ok(Mapping::from_toml(&text)
                .map(|m| Some(Arc::new(m)))
                .map_err(|e| format!("{key}: {e}")))
        }
    }
}

/// The dropped version's body: by `versionId` when the event has one, else pinned to its ETag.
/// `None` when that version is gone.
async fn read_version(
    client: &Client,
    object: &DroppedObject,
) -> Result<Option<aws_sdk_s3::primitives::ByteStream>, SplitFailure> {
    let mut get = client.get_object().bucket(&object.bucket).key(&object.key);
    get = match (&object.version_id, &object.etag) {
        (Some(version), _) if !version.is_empty() && version != "null" => get.version_id(version),
        (_, Some(etag)) => get.if_match(format!("\"{}\"", etag.trim_matches('"'))),
        _ => get,
    };
    match get.send().await {
        Ok(o) => Ok(Some(o.body)),
        // 404: the version was deleted; 412: an unversioned bucket's object changed since.
        Err(e) if matches!(status_of(&e), Some(404) | Some(412)) => Ok(None),
        Err(e) => Err(SplitFailure::Source {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            reason: format!("GET: {}", describe(&e)),
        }),
    }
}

/// Deletes the attempt folders `doomed` picks (best effort: the bucket's age rule removes what
/// is left, and the manifest never lists them).
async fn remove_attempts(ledger: &S3Ledger, run: &RunPath, doomed: impl Fn(&str) -> bool) {
    let prefix = run.attempts();
    let listed = match ledger.list(&prefix).await {
        Ok(listed) => listed,
        Err(e) => {
            tracing::warn!(run_id = run.id(), error = %e, "could not list split attempts to clean up");
            return;
        }
    };
    for (object, _) in listed {
        let attempt = object
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default();
        if doomed(attempt) {
            if let Err(e) = ledger.delete(&object).await {
                tracing::warn!(run_id = run.id(), error = %e, "could not delete a split attempt's object");
            }
        }
    }
}

/// Logs the run (one line with its counts) and says what happened to the record.
fn report(key: String, run_id: String, outcome: &SplitOutcome) -> RecordOutcome {
    let m: &RunManifest = &outcome.manifest;
    tracing::info!(
        run_id,
        key,
        status = ?m.status,
        users_in = m.users_in,
        users_accepted = m.users_accepted,
        users_rejected = m.users_rejected,
        chunks = m.chunks.len(),
        mean_chunk_fill = m.mean_chunk_fill,
        failure = m.failure.as_ref().map(|f| f.reason.as_str()),
        "split run"
    );
    RecordOutcome::Split {
        key,
        run_id,
        status: m.status,
        users_in: m.users_in,
        users_accepted: m.users_accepted,
        users_rejected: m.users_rejected,
        chunks: m.chunks.len(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn ignored(key: String, why: String) -> RecordOutcome {
    tracing::info!(key, why, "ignored");
    RecordOutcome::Ignored { key, why }
}

/// An async S3 body read from a blocking thread.
mod tokio_util_bridge {
    use std::io::{self, Read};

    use tokio::io::{AsyncRead, AsyncReadExt};
    use tokio::runtime::Handle;

    pub struct SyncReader<R> {
        inner: R,
        handle: Handle,
    }

    impl<R> SyncReader<R> {
        pub fn new(inner: R, handle: Handle) -> Self {
            SyncReader { inner, handle }
        }
    }

    impl<R: AsyncRead + Unpin> Read for SyncReader<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.handle.block_on(self.inner.read(buf))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(
            decode_key("inbox/con_x/my+users%2B2024.json"),
            "inbox/con_x/my users+2024.json"
        );
        assert_eq!(decode_key("inbox/%C3%A9t%C3%A9.json"), "inbox/été.json");
    }
}
