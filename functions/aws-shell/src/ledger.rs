//! The submission ledger in S3: JSON objects changed only by compare-and-swap (conditional
//! writes), and the tenant's job-slot leases built on them. Shared by submit and poll.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use import_core::layout;
use import_core::ledger::{recover_slot, JobRecord, SlotLease, SlotRecovery};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{describe, status_of};

pub type LedgerError = String;

/// A JSON object in one bucket, read with its ETag and written conditionally.
#[derive(Clone)]
pub struct Ledger {
    pub client: Client,
    pub bucket: String,
}

/// A value and the ETag it was read at (for If-Match).
pub struct Versioned<T> {
    pub value: T,
    pub etag: String,
}

impl Ledger {
    pub fn new(client: Client, bucket: &str) -> Self {
        Ledger {
            client,
            bucket: bucket.to_string(),
        }
    }

    pub async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, LedgerError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let etag = out.e_tag().unwrap_or_default().to_string();
                let body = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| format!("GET s3://{}/{key}: {e}", self.bucket))?;
                Ok(Some((body.into_bytes().to_vec(), etag)))
            }
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(format!("GET s3://{}/{key}: {}", self.bucket, describe(&e))),
        }
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, LedgerError> {
        let Some((bytes, etag)) = self.get_bytes(key).await? else {
            return Ok(None);
        };
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "s3://{}/{key} is not what this version writes: {e}",
                self.bucket
            )
        })?;
        Ok(Some(Versioned { value, etag }))
    }

    /// Creates `key` only if absent. `Ok(false)` when it already exists.
    pub async fn create<T: Serialize>(&self, key: &str, value: &T) -> Result<bool, LedgerError> {
        self.conditional_put(key, value, Condition::Absent).await
    }

    /// Replaces `key` only if it is still at `etag`. `Ok(false)` when someone changed it.
    pub async fn replace<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        etag: &str,
    ) -> Result<bool, LedgerError> {
        self.conditional_put(key, value, Condition::At(etag)).await
    }

    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), LedgerError> {
        self.conditional_put(key, value, Condition::None)
            .await
            .map(|_| ())
    }

    async fn conditional_put<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        condition: Condition<'_>,
    ) -> Result<bool, LedgerError> {
        let body = serde_json::to_vec_pretty(value).map_err(|e| format!("encoding {key}: {e}"))?;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        req = match condition {
            Condition::Absent => req.if_none_match("*"),
            Condition::At(etag) => req.if_match(etag),
            Condition::None => req,
        };
        match req.send().await {
            Ok(_) => Ok(true),
            // 412: the condition failed; 409: a concurrent conditional write won the race.
            Err(e) if matches!(status_of(&e), Some(412) | Some(409)) => Ok(false),
            Err(e) => Err(format!("PUT s3://{}/{key}: {}", self.bucket, describe(&e))),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), LedgerError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("DELETE s3://{}/{key}: {}", self.bucket, describe(&e)))
    }

    /// Every key under `prefix` with its last-modified time (ms), in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>, LedgerError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| format!("LIST s3://{}/{prefix}: {}", self.bucket, describe(&e)))?;
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

    /// Takes a free slot among `slots` for (run, seq). `None` when all are held.
    pub async fn acquire_slot(
        &self,
        slots: u32,
        run_id: &str,
        seq: u32,
        holder: &str,
        now_ms: u64,
    ) -> Result<Option<u32>, LedgerError> {
        let held = SlotLease::Held {
            run_id: run_id.to_string(),
            seq,
            acquired_at_ms: now_ms,
            holder: holder.to_string(),
        };
        for k in 0..slots {
            let key = layout::slot_key(k);
            let taken = match self.get::<SlotLease>(&key).await? {
                None => self.create(&key, &held).await?,
                Some(Versioned {
                    value: SlotLease::Free { .. },
                    etag,
                }) => self.replace(&key, &held, &etag).await?,
                Some(_) => false,
            };
            if taken {
                return Ok(Some(k));
            }
        }
        Ok(None)
    }

    /// Frees slot `k` if (run, seq) still holds it. Returns whether it did.
    pub async fn release_slot(
        &self,
        k: u32,
        run_id: &str,
        seq: u32,
        now_ms: u64,
    ) -> Result<bool, LedgerError> {
        let key = layout::slot_key(k);
        match self.get::<SlotLease>(&key).await? {
            Some(v) if v.value.is_held_by(run_id, seq) => {
                self.replace(
                    &key,
                    &SlotLease::Free {
                        released_at_ms: now_ms,
                    },
                    &v.etag,
                )
                .await
            }
            _ => Ok(false),
        }
    }

    /// Frees slots whose holders died (see `ledger::recover_slot`). Returns how many it freed.
    pub async fn recover_slots(&self, slots: u32, now_ms: u64) -> Result<u32, LedgerError> {
        let mut freed = 0;
        for k in 0..slots {
            let key = layout::slot_key(k);
            let Some(lease) = self.get::<SlotLease>(&key).await? else {
                continue;
            };
            let SlotLease::Held {
                run_id,
                seq,
                acquired_at_ms,
                ..
            } = &lease.value
            else {
                continue;
            };
            let job_key = format!("{}{}", layout::run_prefix(run_id), layout::job_key(*seq));
            let job = self.get::<JobRecord>(&job_key).await?;
            match recover_slot(*acquired_at_ms, job.as_ref().map(|j| &j.value), now_ms) {
                SlotRecovery::Keep => {}
                SlotRecovery::Free => {
                    if self
                        .replace(
                            &key,
                            &SlotLease::Free {
                                released_at_ms: now_ms,
                            },
                            &lease.etag,
                        )
                        .await?
                    {
                        tracing::warn!(
                            slot = k,
                            run_id,
                            seq,
                            "freed a slot its holder no longer needs"
                        );
                        freed += 1;
                    }
                }
                SlotRecovery::MarkUnknownThenFree(reason) => {
                    let Some(job) = job else { continue };
                    let Ok(unknown) = job.value.unknown(reason.clone()) else {
                        continue;
                    };
                    if self.replace(&job_key, &unknown, &job.etag).await?
                        && self
                            .replace(
                                &key,
                                &SlotLease::Free {
                                    released_at_ms: now_ms,
                                },
                                &lease.etag,
                            )
                            .await?
                    {
                        tracing::warn!(
                            slot = k,
                            run_id,
                            seq,
                            reason,
                            "a claim was abandoned: outcome unknown, slot freed"
                        );
                        freed += 1;
                    }
                }
            }
        }
        Ok(freed)
    }
}

enum Condition<'a> {
    Absent,
    At(&'a str),
    None,
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
        aws_sdk_secretsmanager::error::SdkError::ServiceError(se) => format!(
            "{}: {}",
            se.err().code().unwrap_or("error"),
            se.err().message().unwrap_or("no message")
        ),
        other => format!("{other}"),
    }
}
