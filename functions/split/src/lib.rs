//! The `split` Lambda: for each S3 ObjectCreated record under the inbox prefix, stream the
//! object through the core's split stage into `runs/<run-id>/` of the same bucket.

use std::path::PathBuf;

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use aws_sdk_s3::Client;
use aws_shell::{describe, object_exists, status_of, S3RunSink};
use import_core::layout::{self, DEFAULT_INBOX_PREFIX};
use import_core::manifest::{RunStatus, Source};
use import_core::options::parse_drop_key;
use import_core::split::{reject_drop, split, SplitOptions, SplitOutcome, DEFAULT_MAX_CHUNK_BYTES};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use tokio_util_bridge::SyncReader;

/// The function's settings, from its environment.
#[derive(Debug, Clone)]
pub struct SplitConfig {
    /// Only objects under this prefix are splits; everything else (our own run folders
    /// included) is ignored.
    pub inbox_prefix: String,
    pub max_chunk_bytes: usize,
    /// Spill space (Lambda's ephemeral /tmp).
    pub scratch_dir: Option<PathBuf>,
}

impl SplitConfig {
    /// `INBOX_PREFIX` (default `inbox/`), `MAX_CHUNK_BYTES` (default 500000), `SCRATCH_DIR`.
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
        Ok(SplitConfig {
            inbox_prefix,
            max_chunk_bytes,
            scratch_dir,
        })
    }
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

/// S3 event keys are URL-encoded with `+` for space.
pub fn decode_key(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// Handles one S3 event. An error means a record could not be processed and the invocation
/// should be retried; already-split records are skipped on the retry.
pub async fn handle(
    client: &Client,
    config: &SplitConfig,
    event: S3Event,
) -> Result<SplitResponse, String> {
    let mut records = Vec::with_capacity(event.records.len());
    for record in event.records {
        records.push(handle_record(client, config, record).await?);
    }
    Ok(SplitResponse { records })
}

async fn handle_record(
    client: &Client,
    config: &SplitConfig,
    record: S3EventRecord,
) -> Result<RecordOutcome, String> {
    let key = decode_key(record.s3.object.key.as_deref().unwrap_or_default());
    let bucket = record.s3.bucket.name.clone().unwrap_or_default();
    let event_name = record.event_name.clone().unwrap_or_default();
    if !event_name.starts_with("ObjectCreated:") {
        return Ok(ignored(
            key,
            format!("event {event_name:?} is not ObjectCreated"),
        ));
    }
    if bucket.is_empty() || key.is_empty() {
        return Ok(ignored(key, "the record names no bucket or key".into()));
    }
    if !key.starts_with(&config.inbox_prefix) {
        return Ok(ignored(
            key,
            format!("outside the inbox prefix {:?}", config.inbox_prefix),
        ));
    }
    if key.ends_with('/') {
        return Ok(ignored(key, "a folder marker, not an export".into()));
    }
    // The ETag of the object as it is now: the run id names this exact content.
    let head = match client.head_object().bucket(&bucket).key(&key).send().await {
        Ok(h) => h,
        Err(e) if status_of(&e) == Some(404) => {
            return Ok(ignored(key, "the object no longer exists".into()))
        }
        Err(e) => return Err(format!("HEAD s3://{bucket}/{key}: {}", describe(&e))),
    };
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    let run_id = layout::run_id(&key, &etag);
    let manifest_key = format!("{}{}", layout::run_prefix(&run_id), layout::MANIFEST);
    if object_exists(client, &bucket, &manifest_key)
        .await
        .map_err(|e| e.to_string())?
    {
        tracing::info!(
            run_id,
            key,
            "duplicate event: the run already has a manifest"
        );
        return Ok(RecordOutcome::AlreadySplit { key, run_id });
    }
    let handle = tokio::runtime::Handle::current();
    let source = Source::S3 {
        bucket: bucket.clone(),
        key: key.clone(),
        etag: etag.clone(),
        size: head.content_length().and_then(|n| u64::try_from(n).ok()),
    };
    let mut sink = S3RunSink::new(client.clone(), &bucket, &run_id, handle.clone());
    let drop_options = match parse_drop_key(&config.inbox_prefix, &key) {
        Ok(o) => o,
        Err(e) => {
            // The drop is answered in its run folder, where the operator looks, not only in logs.
            let reason = format!("the drop's key does not state valid options: {e}");
            let run = run_id.clone();
            let outcome =
                tokio::task::spawn_blocking(move || reject_drop(source, &run, reason, &mut sink))
                    .await
                    .map_err(|e| format!("rejecting {key}: {e}"))?
                    .map_err(|e| format!("rejecting {key}: {e}"))?;
            return Ok(report(key, run_id, &outcome));
        }
    };
    // If-Match pins the read to the ETag the run id was made from.
    let object = match client
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .if_match(format!("\"{etag}\""))
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) if status_of(&e) == Some(412) => return Ok(ignored(
            key,
            "the object changed while it was being read; its new version has an event of its own"
                .into(),
        )),
        Err(e) => return Err(format!("GET s3://{bucket}/{key}: {}", describe(&e))),
    };
    let reader = SyncReader::new(object.body.into_async_read(), handle);
    let options = SplitOptions {
        max_chunk_bytes: config.max_chunk_bytes,
        scratch_dir: config.scratch_dir.clone(),
        drop_options: Some(drop_options),
        ..SplitOptions::default()
    };
    let run = run_id.clone();
    let outcome =
        tokio::task::spawn_blocking(move || split(reader, source, &run, &options, &mut sink))
            .await
            .map_err(|e| format!("split task of {key}: {e}"))?
            .map_err(|e| format!("split of s3://{bucket}/{key}: {e}"))?;
    Ok(report(key, run_id, &outcome))
}

/// Logs the run (one line with its counts) and says what happened to the record.
fn report(key: String, run_id: String, outcome: &SplitOutcome) -> RecordOutcome {
    let m = &outcome.manifest;
    if !outcome.committed {
        tracing::info!(run_id, key, "another invocation committed this run first");
        return RecordOutcome::AlreadySplit { key, run_id };
    }
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
