//! AWS adapters for the functions: an S3 client set up for AWS or a loopback emulator, the
//! S3 run folder (`RunSink`) with pipelined uploads, and S3 objects read as sync streams.

pub mod lambda;
pub mod ledger;
pub mod notify;
pub mod secrets;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use import_core::layout;
use import_core::storage::{ObjectStore, RunSink, SinkError};
use ledger::S3Store;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Chunk uploads in flight at once: enough to hide S3 latency behind parsing, few enough that
/// memory stays bounded (each holds at most one chunk, ≤ 512 KB).
const UPLOADS_IN_FLIGHT: usize = 8;

/// Parts of a multipart upload in flight at once (`RunSink::put_part`): each holds a part of
/// several MB, and one more behind it keeps the upload busy.
const PARTS_IN_FLIGHT: usize = 2;

/// Prefetched GETs in flight at once (`RunSink::prefetch`): same reasoning, same bound.
const FETCHES_IN_FLIGHT: usize = 8;

type Fetch = JoinHandle<Result<Vec<u8>, String>>;

/// The content type of rejects.ndjson, the object written in parts.
const NDJSON: &str = "application/x-ndjson";

type PartUpload = JoinHandle<Result<CompletedPart, String>>;

/// An object being written by multipart upload: its upload id and its parts.
struct Multipart {
    upload_id: String,
    /// Parts still being stored, with their numbers, in the order they were given.
    running: Vec<(i32, PartUpload)>,
    /// Parts stored.
    done: Vec<CompletedPart>,
}

impl Multipart {
    /// Moves the parts stored (all of them when `all`, waiting) from `running` to `done`, and
    /// surfaces the first that failed.
    fn settle(&mut self, handle: &Handle, all: bool) -> Result<(), SinkError> {
        settle_tasks(
            handle,
            &mut self.running,
            |_, task| all || task.is_finished(),
            |part| self.done.push(part),
        )
    }
}

/// Waits for the tasks `wait` picks and hands each one's value to `stored`; the others stay in
/// `tasks`, in order. Surfaces the first failure once every picked task has ended.
fn settle_tasks<K, T>(
    handle: &Handle,
    tasks: &mut Vec<(K, JoinHandle<Result<T, String>>)>,
    wait: impl Fn(&K, &JoinHandle<Result<T, String>>) -> bool,
    mut stored: impl FnMut(T),
) -> Result<(), SinkError> {
    let mut failure: Option<String> = None;
    for (key, task) in std::mem::take(tasks) {
        if !wait(&key, &task) {
            tasks.push((key, task));
            continue;
        }
        match handle.block_on(task) {
            Ok(Ok(value)) => stored(value),
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(join) => failure = failure.or(Some(join.to_string())),
        }
    }
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// An S3 client from the shared config. With an endpoint override (moto on loopback, via
/// `AWS_ENDPOINT_URL`), path-style addressing is forced: bucket subdomains of 127.0.0.1 do not exist.
/// The `x-amz-tagging` of a PUT: objects holding password hashes are tagged from their first
/// byte, so the bucket's age rule deletes them even if their run never ends.
pub fn hash_tagging(key: &str) -> Option<String> {
    layout::holds_password_hashes(key).then(|| layout::tagging_header(layout::IN_FLIGHT_TAG))
}

pub fn s3_client(config: &aws_config::SdkConfig) -> Client {
    let mut builder = aws_sdk_s3::config::Builder::from(config);
    if config.endpoint_url().is_some() {
        builder = builder.force_path_style(true);
    }
    Client::from_conf(builder.build())
}

/// HTTP status of a failed S3 call, when the service answered.
pub fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// A readable error: the service's code and message rather than "service error".
pub fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    err: &SdkError<E, R>,
) -> String {
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            format!(
                "{}: {}",
                e.code().unwrap_or("unknown error"),
                e.message().unwrap_or("no message")
            )
        }
        other => format!("{other}"),
    }
}

/// Whether an object exists (HEAD; 404 means no).
pub async fn object_exists(client: &Client, bucket: &str, key: &str) -> Result<bool, SinkError> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(e) if status_of(&e) == Some(404) => Ok(false),
        Err(e) => Err(format!("HEAD s3://{bucket}/{key}: {}", describe(&e)).into()),
    }
}

/// The run folder `s3://bucket/runs/<run-id>/` as a `RunSink`. Its methods block, so it must be
/// used from a blocking thread (`spawn_blocking`) of the runtime behind `handle`.
pub struct S3RunSink {
    client: Client,
    bucket: String,
    prefix: String,
    handle: Handle,
    uploads: Arc<Semaphore>,
    /// Uploads not yet known to be done, with their keys (relative to the run folder).
    in_flight: Vec<(String, JoinHandle<Result<(), String>>)>,
    /// Keys `prefetch` announced and no GET was started for yet, in order.
    wanted: VecDeque<String>,
    /// GETs started ahead of `get`, in the order they were announced.
    fetches: VecDeque<(String, Fetch)>,
    part_uploads: Arc<Semaphore>,
    /// Objects being written in parts, by key (relative to the run folder).
    multiparts: BTreeMap<String, Multipart>,
}

impl S3RunSink {
    pub fn new(client: Client, bucket: &str, run_id: &str, handle: Handle) -> Self {
        S3RunSink {
            client,
            bucket: bucket.to_string(),
            prefix: layout::run_prefix(run_id),
            handle,
            uploads: Arc::new(Semaphore::new(UPLOADS_IN_FLIGHT)),
            in_flight: Vec::new(),
            wanted: VecDeque::new(),
            fetches: VecDeque::new(),
            part_uploads: Arc::new(Semaphore::new(PARTS_IN_FLIGHT)),
            multiparts: BTreeMap::new(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    fn store(&self) -> S3Store {
        S3Store {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
        }
    }

    /// Waits for the uploads in flight (all of them, or only those already ended when
    /// `only_ended`), forgets them, and surfaces the first failure among them.
    fn settle(&mut self, only_ended: bool) -> Result<(), SinkError> {
        self.settle_where(|_, task| !only_ended || task.is_finished())
    }

    /// `settle` for the uploads of one key (and any already ended): what a read or delete of
    /// that key must wait for, and no more.
    fn settle_key(&mut self, key: &str) -> Result<(), SinkError> {
        self.settle_where(|k, task| k == key || task.is_finished())
    }

    fn settle_where(
        &mut self,
        wait: impl Fn(&str, &JoinHandle<Result<(), String>>) -> bool,
    ) -> Result<(), SinkError> {
        settle_tasks(
            &self.handle,
            &mut self.in_flight,
            |key, task| wait(key, task),
            |()| {},
        )
    }

    /// Forgets a prefetch of `key`: what it would read is about to change.
    fn forget_fetch(&mut self, key: &str) {
        self.wanted.retain(|k| k != key);
        self.fetches.retain(|(k, task)| {
            if k == key {
                task.abort();
            }
            k != key
        });
    }

    /// Starts announced GETs until `FETCHES_IN_FLIGHT` are under way.
    fn start_fetches(&mut self) -> Result<(), SinkError> {
        while self.fetches.len() < FETCHES_IN_FLIGHT {
            let Some(key) = self.wanted.pop_front() else {
                break;
            };
            // A GET must not overtake a PUT of the same key.
            self.settle_key(&key)?;
            let (store, full) = (self.store(), self.key(&key));
            let task = self
                .handle
                .spawn(async move { get_bytes(&store, &full).await });
            self.fetches.push_back((key, task));
        }
        Ok(())
    }
}

/// A run-folder object through the ledger's store, where a missing one is an error.
async fn get_bytes(store: &S3Store, full: &str) -> Result<Vec<u8>, String> {
    match store.get_bytes(full).await.map_err(|e| e.to_string())? {
        Some((bytes, _etag)) => Ok(bytes),
        None => Err(format!(
            "GET s3://{}/{full}: NoSuchKey: the object does not exist",
            store.bucket
        )),
    }
}

impl RunSink for S3RunSink {
    fn put(&mut self, key: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
        self.forget_fetch(key);
        self.settle(true)?;
        let permit = self
            .handle
            .block_on(self.uploads.clone().acquire_owned())
            .map_err(|e| format!("upload queue closed: {e}"))?;
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let full = self.key(key);
        let task = self.handle.spawn(async move {
            let _permit = permit;
            client
                .put_object()
                .bucket(&bucket)
                .key(&full)
                .set_tagging(hash_tagging(&full))
                .content_type("application/json")
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("PUT s3://{bucket}/{full}: {}", describe(&e)))
        });
        self.in_flight.push((key.to_string(), task));
        Ok(())
    }

    fn put_part(&mut self, key: &str, part: &[u8]) -> Result<(), SinkError> {
        let full = self.key(key);
        let (client, bucket, handle) = (&self.client, &self.bucket, &self.handle);
        let upload = match self.multiparts.entry(key.to_string()) {
            Entry::Occupied(upload) => upload.into_mut(),
            Entry::Vacant(slot) => {
                let started = handle.block_on(
                    client
                        .create_multipart_upload()
                        .bucket(bucket)
                        .key(&full)
                        .content_type(NDJSON)
                        .send(),
                );
                let failed =
                    |why: String| format!("starting an upload to s3://{bucket}/{full}: {why}");
                let upload_id = started
                    .map_err(|e| failed(describe(&e)))?
                    .upload_id
                    .ok_or_else(|| failed("S3 gave no upload id".into()))?;
                slot.insert(Multipart {
                    upload_id,
                    running: Vec::new(),
                    done: Vec::new(),
                })
            }
        };
        // A part that failed fails the run now, not after the rest of the input.
        upload.settle(handle, false)?;
        let permit = handle
            .block_on(self.part_uploads.clone().acquire_owned())
            .map_err(|e| format!("part upload queue closed: {e}"))?;
        let number = i32::try_from(upload.running.len() + upload.done.len() + 1)?;
        let (client, bucket, upload_id) =
            (client.clone(), bucket.clone(), upload.upload_id.clone());
        // Owned by the upload, which outlives this call.
        let part = part.to_vec();
        let task = handle.spawn(async move {
            let _permit = permit;
            let stored = client
                .upload_part()
                .bucket(&bucket)
                .key(&full)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(part))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "PUT part {number} of s3://{bucket}/{full}: {}",
                        describe(&e)
                    )
                })?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(stored.e_tag)
                .build())
        });
        upload.running.push((number, task));
        Ok(())
    }

    fn finish_parts(&mut self, key: &str) -> Result<(), SinkError> {
        let full = self.key(key);
        let (client, bucket) = (&self.client, &self.bucket);
        let Some(mut upload) = self.multiparts.remove(key) else {
            self.handle
                .block_on(
                    client
                        .put_object()
                        .bucket(bucket)
                        .key(&full)
                        .content_type(NDJSON)
                        .body(ByteStream::from(Vec::new()))
                        .send(),
                )
                .map_err(|e| format!("PUT s3://{bucket}/{full}: {}", describe(&e)))?;
            return Ok(());
        };
        if let Err(e) = upload.settle(&self.handle, true) {
            // Put back for the caller's `abort_parts`.
            self.multiparts.insert(key.to_string(), upload);
            return Err(e);
        }
        upload.done.sort_by_key(|part| part.part_number);
        let parts = std::mem::take(&mut upload.done);
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        let completed = self.handle.block_on(
            client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(&full)
                .upload_id(&upload.upload_id)
                .multipart_upload(done)
                .send(),
        );
        if let Err(e) = completed {
            let why = format!(
                "completing the upload of s3://{bucket}/{full}: {}",
                describe(&e)
            );
            // Put back for the caller's `abort_parts`.
            self.multiparts.insert(key.to_string(), upload);
            return Err(why.into());
        }
        Ok(())
    }

    fn abort_parts(&mut self, key: &str) -> Result<(), SinkError> {
        let Some(upload) = self.multiparts.remove(key) else {
            return Ok(());
        };
        // Every part request has ended before the abort: one still in flight could store its
        // part after it.
        for (_, task) in upload.running {
            task.abort();
            let _ = self.handle.block_on(task);
        }
        let full = self.key(key);
        let (client, bucket) = (&self.client, &self.bucket);
        self.handle
            .block_on(
                client
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(&full)
                    .upload_id(&upload.upload_id)
                    .send(),
            )
            .map_err(|e| {
                format!(
                    "abandoning the upload of s3://{bucket}/{full}: {}",
                    describe(&e)
                )
            })?;
        Ok(())
    }

    fn get(&mut self, key: &str) -> Result<Vec<u8>, SinkError> {
        let prefetched = self.fetches.iter().position(|(k, _)| k == key);
        let bytes = match prefetched.and_then(|at| self.fetches.remove(at)) {
            Some((_, task)) => self
                .handle
                .block_on(task)
                .map_err(|join| join.to_string())?,
            None => {
                self.wanted.retain(|k| k != key);
                self.settle_key(key)?;
                let full = self.key(key);
                self.handle.block_on(get_bytes(&self.store(), &full))
            }
        };
        self.start_fetches()?;
        Ok(bytes?)
    }

    fn prefetch(&mut self, keys: &[String]) -> Result<(), SinkError> {
        self.wanted.extend(keys.iter().cloned());
        self.start_fetches()
    }

    fn delete(&mut self, key: &str) -> Result<(), SinkError> {
        self.forget_fetch(key);
        self.settle_key(key)?;
        let full = self.key(key);
        let (client, bucket) = (&self.client, &self.bucket);
        self.handle.block_on(async {
            client
                .delete_object()
                .bucket(bucket)
                .key(&full)
                .send()
                .await
                .map_err(|e| format!("DELETE s3://{bucket}/{full}: {}", describe(&e)))?;
            Ok::<(), SinkError>(())
        })
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.settle(false)
    }

    fn commit_manifest(&mut self, bytes: Vec<u8>) -> Result<bool, SinkError> {
        self.flush()?;
        let full = self.key(layout::MANIFEST);
        let (client, bucket) = (&self.client, &self.bucket);
        self.handle.block_on(async {
            // If-None-Match: * makes the manifest a create-once commit point: of two
            // invocations for the same drop, exactly one commits.
            let result = client
                .put_object()
                .bucket(bucket)
                .key(&full)
                .if_none_match("*")
                .content_type("application/json")
                .body(ByteStream::from(bytes))
                .send()
                .await;
            match result {
                Ok(_) => Ok(true),
                Err(e) if status_of(&e) == Some(412) => Ok(false),
                Err(e) => Err(format!("PUT s3://{bucket}/{full}: {}", describe(&e)).into()),
            }
        })
    }
}
