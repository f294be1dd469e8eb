//! S3 as the ledger's store: conditional writes (`If-None-Match: *`, `If-Match`) are the
//! compare-and-swap that makes claims and slot leases safe across concurrent invocations.

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
pub use import_core::ledger::{Ledger, Versioned};
use import_core::storage::{ObjectStore, StoreError, UploadedPart, WriteIf};

use crate::{describe, status_of};

/// One bucket.
#[derive(Clone)]
pub struct S3Store {
    pub client: Client,
    pub bucket: String,
}

pub type S3Ledger = Ledger<S3Store>;

/// The ledger in `bucket`.
pub fn s3_ledger(client: Client, bucket: &str) -> S3Ledger {
    Ledger::new(S3Store {
        client,
        bucket: bucket.to_string(),
    })
}

impl S3Store {
    /// Every key under `prefix` (after `start_after`, when given) with its last-modified time.
    async fn list_from(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_string))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.failed("LIST", prefix, describe(&e)))?;
            for o in page.contents() {
                let modified = o
                    .last_modified()
                    .map(|t| t.to_millis().unwrap_or(0))
                    .unwrap_or(0);
                out.push((o.key().unwrap_or_default().to_string(), modified));
            }
        }
        Ok(out)
    }

    /// Whether an upload is still open, asked after a part or a completion failed: S3 answers
    /// those with NoSuchUpload (404) once the upload is aborted, but moto with a 500, while
    /// both answer ListParts with NoSuchUpload.
    async fn upload_exists(&self, key: &str, upload_id: &str) -> Result<bool, StoreError> {
        match self
            .client
            .list_parts()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .max_parts(1)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.failed("listing the parts of", key, describe(&e))),
        }
    }

    /// The object at `key`, its body not read yet; `None` when there is none.
    async fn get_object(&self, key: &str) -> Result<Option<GetObjectOutput>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.failed("GET", key, describe(&e))),
        }
    }

    /// Hands an object's body to `on_piece` as it arrives; `Ok(true)`: the object was there.
    async fn pour<E: From<StoreError>>(
        &self,
        key: &str,
        mut out: GetObjectOutput,
        mut on_piece: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<bool, E> {
        while let Some(piece) = out
            .body
            .try_next()
            .await
            .map_err(|e| self.failed("GET", key, e))?
        {
            on_piece(&piece)?;
        }
        Ok(true)
    }

    fn failed(
        &self,
        operation: &'static str,
        key: &str,
        why: impl std::fmt::Display,
    ) -> StoreError {
        StoreError::io(operation, &format!("s3://{}/{key}", self.bucket), why)
    }
}

impl ObjectStore for S3Store {
    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        let Some(out) = self.get_object(key).await? else {
            return Ok(None);
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| self.failed("GET", key, e))?;
        Ok(Some((body.into_bytes().to_vec(), etag)))
    }

    async fn get_pieces<E: From<StoreError> + Send>(
        &self,
        key: &str,
        on_piece: impl FnMut(&[u8]) -> Result<(), E> + Send,
    ) -> Result<bool, E> {
        let Some(out) = self.get_object(key).await? else {
            return Ok(false);
        };
        self.pour(key, out, on_piece).await
    }

    async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        condition: WriteIf<'_>,
    ) -> Result<String, StoreError> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_tagging(crate::hash_tagging(key))
            .content_type(content_type)
            .body(ByteStream::from(bytes));
        req = match condition {
            WriteIf::Absent => req.if_none_match("*"),
            WriteIf::At(etag) => req.if_match(etag),
            WriteIf::Always => req,
        };
        match req.send().await {
            Ok(out) => Ok(out.e_tag().unwrap_or_default().to_string()),
            // 412: the condition failed; 409: a concurrent conditional write won the race.
            Err(e) if matches!(status_of(&e), Some(412) | Some(409)) => {
                Err(StoreError::ConditionFailed {
                    key: key.to_string(),
                })
            }
            Err(e) => Err(self.failed("PUT", key, describe(&e))),
        }
    }

    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), StoreError> {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| StoreError::io("reading", &path.display().to_string(), e))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_tagging(crate::hash_tagging(key))
            .body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.failed("PUT", key, describe(&e)))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.failed("DELETE", key, describe(&e)))
    }

    async fn mark_purgeable(&self, key: &str) -> Result<(), StoreError> {
        let (k, v) = import_core::layout::PURGE_TAG;
        let tagging = aws_sdk_s3::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
            .and_then(|tag| aws_sdk_s3::types::Tagging::builder().tag_set(tag).build())
            .map_err(|e| self.failed("tagging", key, e))?;
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.failed("tagging", key, describe(&e)))
    }

    async fn get_pieces_from<E: From<StoreError> + Send>(
        &self,
        key: &str,
        from: u64,
        on_piece: impl FnMut(&[u8]) -> Result<(), E> + Send,
    ) -> Result<bool, E> {
        let sent = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={from}-"))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) if status_of(&e) == Some(404) => return Ok(false),
            // 416: the range starts at or past the end; nothing is left to read.
            Err(e) if status_of(&e) == Some(416) => return Ok(true),
            Err(e) => return Err(self.failed("GET", key, describe(&e)).into()),
        };
        self.pour(key, out, on_piece).await
    }

    async fn start_upload(&self, key: &str, content_type: &str) -> Result<String, StoreError> {
        self.client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_tagging(crate::hash_tagging(key))
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| self.failed("starting an upload to", key, describe(&e)))?
            .upload_id
            .ok_or_else(|| self.failed("starting an upload to", key, "S3 gave no upload id"))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError> {
        let number = i32::try_from(number)
            .map_err(|_| self.failed("PUT part", key, "part number out of range"))?;
        let sent = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match sent {
            Ok(stored) => Ok(stored.e_tag.unwrap_or_default()),
            Err(_) if !self.upload_exists(key, upload_id).await? => Err(StoreError::UploadGone {
                key: key.to_string(),
            }),
            Err(e) => Err(self.failed("PUT part", key, describe(&e))),
        }
    }

    async fn finish_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), StoreError> {
        let parts = parts
            .iter()
            .map(|p| {
                Ok(CompletedPart::builder()
                    .part_number(
                        i32::try_from(p.number)
                            .map_err(|_| self.failed("completing", key, "part number"))?,
                    )
                    .e_tag(&p.etag)
                    .build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        match self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(done)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Finished already by an invocation that died before it could record so: the
            // upload is gone and the object is there.
            Err(e) if status_of(&e) == Some(404) && self.get_object(key).await?.is_some() => Ok(()),
            // Gone without being completed: aborted.
            Err(_) if !self.upload_exists(key, upload_id).await? => Err(StoreError::UploadGone {
                key: key.to_string(),
            }),
            Err(e) => Err(self.failed("completing the upload of", key, describe(&e))),
        }
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            // NoSuchUpload: completed or aborted already.
            Err(e) if status_of(&e) != Some(404) => {
                Err(self.failed("aborting the upload of", key, describe(&e)))
            }
            _ => Ok(()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>, StoreError> {
        self.list_from(prefix, None).await
    }

    async fn list_after(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.list_from(prefix, Some(start_after)).await
    }
}

/// Reads a Secrets Manager secret's string. Errors name the secret id, never its value.
pub async fn secret_string(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<String, String> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| format!("reading secret {secret_id}: {}", describe_secret_error(&e)))?;
    out.secret_string().map(str::to_string).ok_or_else(|| {
        format!("secret {secret_id} has no SecretString (a binary secret is not supported)")
    })
}

fn describe_secret_error<
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::fmt::Debug,
    R,
>(
    e: &aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> String {
    match e {
        aws_sdk_secretsmanager::error::SdkError::ServiceError(se) => {
            format!(
                "{}: {}",
                se.err().code().unwrap_or("error"),
                se.err().message().unwrap_or("no message")
            )
        }
        other => format!("{other}"),
    }
}
