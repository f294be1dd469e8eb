//! The submission ledger kept in the bucket: one job record per chunk (the claim that makes a
//! chunk post at most once) and one lease per tenant job slot. Pure data and transitions only.
//!
//! Every write of these objects is a compare-and-swap (`If-None-Match: *` to create, `If-Match`
//! to change), so concurrent invocations agree on who holds what.

use serde::{Deserialize, Serialize};

pub use crate::storage::{content_etag, Lines, ObjectStore, StoreError, Versioned, WriteIf};

/// How long a claim may stay unfinished when its holder did not say when it would die (older
/// records, or a store used by hand). A Lambda invocation lives at most 15 minutes.
pub const CLAIM_TIMEOUT_MS: u64 = 16 * 60 * 1000;

/// Time allowed past a holder's stated deadline before it is presumed dead: Lambda stops an
/// invocation at its deadline, and clocks of two machines differ by less than this.
pub const HOLDER_GRACE_MS: u64 = 30 * 1000;

/// How long a slot may be held with no job record behind it (the holder died between taking
/// the slot and claiming a chunk, which normally takes milliseconds).
pub const ORPHAN_SLOT_TIMEOUT_MS: u64 = 5 * 60 * 1000;

/// Sweeps in a row on which Auth0 refused to tell a job's state (401 after a fresh token, 403,
/// another 4xx) before poll gives the job up: a blip passes, a missing scope does not.
pub const FOLLOW_REFUSALS_BEFORE_GIVING_UP: u32 = 3;

/// Where a chunk's submission stands. Transitions are the methods below; nothing else
/// constructs a later state from an earlier one.
///
/// ```text
/// Claimed ──posting──▶ Posting ──submitted──▶ Submitted ──finished──▶ Finished
///    │                    ├──refused──▶ Refused
///    │                    └──in_doubt─▶ InDoubt
///    └─ (nothing sent: the record is deleted, the chunk is pending again)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Claimed by an invocation that has not sent anything yet. If it fails (or dies) here, the
    /// claim is released and the chunk is pending again: nothing can have reached Auth0.
    Claimed,
    /// The request is about to leave, or has left: from here on, only an answer from Auth0
    /// settles whether a job exists.
    Posting { posting_at_ms: u64 },
    /// Auth0 accepted the job (202 with a job id).
    Submitted {
        job_id: String,
        submitted_at_ms: u64,
    },
    /// Auth0 refused the request (a 4xx that proves no job was created): not retried.
    Refused {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        message: String,
    },
    /// The request was sent and nothing proves that no job was created (timeout, a dropped
    /// connection, a 5xx, a 2xx without a job id, or the holder died while sending). Never
    /// posted again automatically: its users are unknown until they are read back from Auth0.
    #[serde(alias = "unknown")]
    InDoubt { reason: String },
    /// Poll saw the job end (or gave it up) and wrote the chunk's report.
    Finished { job_id: String, status: String },
}

/// Auth0 would not say how a submitted job stands, sweep after sweep (kept on the job record so
/// the count survives invocations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowTrouble {
    pub first_at_ms: u64,
    /// Sweeps in a row that got a refusal (401 after a fresh token, 403, another 4xx).
    pub refusals: u32,
    /// Sweeps in a row that got no answer at all (5xx, timeouts, rate limits past the deadline).
    pub no_answers: u32,
    pub last_error: String,
}

/// `runs/<run-id>/jobs/<seq>.json`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub seq: u32,
    pub chunk_key: String,
    pub users: u32,
    pub external_id: String,
    /// The tenant slot this job holds while it is in flight.
    pub slot: u32,
    pub claimed_at_ms: u64,
    pub claimed_by: String,
    /// When the claiming invocation is stopped at the latest (Lambda's deadline): past it (and
    /// `HOLDER_GRACE_MS`), an unfinished claim has no living holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_deadline_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_trouble: Option<FollowTrouble>,
    #[serde(flatten)]
    pub state: JobState,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job record {seq}: cannot go from {from} to {to}")]
pub struct BadTransition {
    pub seq: u32,
    pub from: &'static str,
    pub to: &'static str,
}

impl JobState {
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Claimed => "claimed",
            JobState::Posting { .. } => "posting",
            JobState::Submitted { .. } => "submitted",
            JobState::Refused { .. } => "refused",
            JobState::InDoubt { .. } => "in_doubt",
            JobState::Finished { .. } => "finished",
        }
    }

    /// Whether the job still occupies a tenant slot.
    pub fn holds_slot(&self) -> bool {
        matches!(
            self,
            JobState::Claimed | JobState::Posting { .. } | JobState::Submitted { .. }
        )
    }
}

/// Who claims a chunk: the invocation's name and when it is stopped at the latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
    pub deadline_ms: Option<u64>,
}

impl Holder {
    /// Whether something held by this holder since `since_ms` is past any living holder.
    pub fn is_dead(deadline_ms: Option<u64>, since_ms: u64, now_ms: u64) -> bool {
        match deadline_ms {
            Some(deadline) => now_ms > deadline.saturating_add(HOLDER_GRACE_MS),
            None => now_ms.saturating_sub(since_ms) > CLAIM_TIMEOUT_MS,
        }
    }
}

impl JobRecord {
    pub fn claim(
        seq: u32,
        chunk_key: String,
        users: u32,
        external_id: String,
        slot: u32,
        now_ms: u64,
        holder: &Holder,
    ) -> Self {
        JobRecord {
            seq,
            chunk_key,
            users,
            external_id,
            slot,
            claimed_at_ms: now_ms,
            claimed_by: holder.name.clone(),
            holder_deadline_ms: holder.deadline_ms,
            follow_trouble: None,
            state: JobState::Claimed,
        }
    }

    fn to(&self, next: JobState, allowed: bool) -> Result<JobRecord, BadTransition> {
        if !allowed {
            return Err(BadTransition {
                seq: self.seq,
                from: self.state.name(),
                to: next.name(),
            });
        }
        Ok(JobRecord {
            state: next,
            follow_trouble: None,
            ..self.clone()
        })
    }

    /// Written right before the request leaves: a crash after this line is "in doubt".
    pub fn posting(&self, now_ms: u64) -> Result<JobRecord, BadTransition> {
        let ok = self.state == JobState::Claimed;
        self.to(
            JobState::Posting {
                posting_at_ms: now_ms,
            },
            ok,
        )
    }

    pub fn submitted(&self, job_id: String, now_ms: u64) -> Result<JobRecord, BadTransition> {
        let ok = matches!(self.state, JobState::Posting { .. });
        self.to(
            JobState::Submitted {
                job_id,
                submitted_at_ms: now_ms,
            },
            ok,
        )
    }

    /// Auth0 refused the request, or it was never sendable (its chunk is missing): either way
    /// no job exists.
    pub fn refused(
        &self,
        status: u16,
        code: Option<String>,
        message: String,
    ) -> Result<JobRecord, BadTransition> {
        let ok = matches!(self.state, JobState::Claimed | JobState::Posting { .. });
        self.to(
            JobState::Refused {
                status,
                code,
                message,
            },
            ok,
        )
    }

    pub fn in_doubt(&self, reason: String) -> Result<JobRecord, BadTransition> {
        let ok = matches!(self.state, JobState::Posting { .. });
        self.to(JobState::InDoubt { reason }, ok)
    }

    pub fn finished(&self, status: String) -> Result<JobRecord, BadTransition> {
        match &self.state {
            JobState::Submitted { job_id, .. } => {
                let job_id = job_id.clone();
                self.to(JobState::Finished { job_id, status }, true)
            }
            other => Err(BadTransition {
                seq: self.seq,
                from: other.name(),
                to: "finished",
            }),
        }
    }

    /// A submitted job whose state Auth0 would not tell this sweep. `refused` is a definite
    /// refusal (a 4xx); otherwise there was no answer at all.
    pub fn follow_failed(
        &self,
        refused: bool,
        error: String,
        now_ms: u64,
    ) -> Result<JobRecord, BadTransition> {
        if !matches!(self.state, JobState::Submitted { .. }) {
            return Err(BadTransition {
                seq: self.seq,
                from: self.state.name(),
                to: "submitted (follow failed)",
            });
        }
        let mut trouble = self.follow_trouble.clone().unwrap_or(FollowTrouble {
            first_at_ms: now_ms,
            refusals: 0,
            no_answers: 0,
            last_error: String::new(),
        });
        if refused {
            trouble.refusals += 1;
        } else {
            trouble.no_answers += 1;
        }
        trouble.last_error = error;
        Ok(JobRecord {
            follow_trouble: Some(trouble),
            ..self.clone()
        })
    }

    /// Whether poll should stop asking about this submitted job and report its users unknown:
    /// Auth0 refused to tell us `FOLLOW_REFUSALS_BEFORE_GIVING_UP` sweeps in a row, or the job is
    /// older than Auth0's own 2 h limit (`jobs::JOB_DEAD_AFTER_MS`) and still gives no answer.
    pub fn give_up_following(&self, now_ms: u64) -> Option<String> {
        let JobState::Submitted {
            submitted_at_ms, ..
        } = &self.state
        else {
            return None;
        };
        let trouble = self.follow_trouble.as_ref()?;
        if trouble.refusals >= FOLLOW_REFUSALS_BEFORE_GIVING_UP {
            return Some(format!(
                "Auth0 refused to tell this job's state {} sweeps in a row ({}); its users are unknown",
                trouble.refusals, trouble.last_error
            ));
        }
        let age = now_ms.saturating_sub(*submitted_at_ms);
        (age > crate::jobs::JOB_DEAD_AFTER_MS).then(|| {
            format!(
                "no answer about this job for {} min and it is past Auth0's 2 h job limit ({}); its users are unknown",
                now_ms.saturating_sub(trouble.first_at_ms) / 60_000,
                trouble.last_error
            )
        })
    }
}

/// `slots/<k>.json`: a lease on one of the tenant's import-job slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SlotLease {
    Free {
        released_at_ms: u64,
    },
    Held {
        run_id: String,
        seq: u32,
        acquired_at_ms: u64,
        holder: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder_deadline_ms: Option<u64>,
    },
}

impl SlotLease {
    pub fn is_held_by(&self, run: &str, chunk: u32) -> bool {
        matches!(self, SlotLease::Held { run_id, seq, .. } if run_id == run && *seq == chunk)
    }
}

/// What to do with a held slot whose holder may have died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotRecovery {
    /// The holder is alive or its job is in flight: leave it.
    Keep,
    /// Nothing occupies the slot any more: free it.
    Free,
    /// The holder died before sending anything: delete the claim (the chunk is pending again),
    /// then free the slot.
    ReleaseClaimThenFree,
    /// The holder died while sending: record the chunk as in doubt, then free the slot.
    MarkInDoubtThenFree(String),
}

/// Decides a held slot's fate from the job record of the chunk it names (None = no record).
pub fn recover_slot(
    acquired_at_ms: u64,
    lease_deadline_ms: Option<u64>,
    job: Option<&JobRecord>,
    now_ms: u64,
) -> SlotRecovery {
    let Some(j) = job else {
        let orphaned = now_ms.saturating_sub(acquired_at_ms) > ORPHAN_SLOT_TIMEOUT_MS
            || lease_deadline_ms
                .is_some_and(|_| Holder::is_dead(lease_deadline_ms, acquired_at_ms, now_ms));
        return if orphaned {
            SlotRecovery::Free
        } else {
            SlotRecovery::Keep
        };
    };
    let holder_dead = Holder::is_dead(j.holder_deadline_ms, j.claimed_at_ms, now_ms);
    match &j.state {
        JobState::Claimed if holder_dead => SlotRecovery::ReleaseClaimThenFree,
        JobState::Posting { posting_at_ms } if holder_dead => {
            SlotRecovery::MarkInDoubtThenFree(format!(
                "{} started sending this chunk at {posting_at_ms} ms and stopped before recording Auth0's answer: whether Auth0 created a job is unknown",
                j.claimed_by
            ))
        }
        JobState::Claimed | JobState::Posting { .. } | JobState::Submitted { .. } => {
            SlotRecovery::Keep
        }
        JobState::Refused { .. } | JobState::InDoubt { .. } | JobState::Finished { .. } => {
            SlotRecovery::Free
        }
    }
}

/// `runs/<run-id>/split-claim.json`: the invocation splitting a run. Duplicate deliveries of
/// the drop's event find it and stop cleanly; a holder that died is taken over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitClaim {
    /// The folder its chunks and rejects go to (`layout::attempt_dir`).
    pub attempt: String,
    /// The invocation (Lambda request id; Lambda keeps it across its retries of one event).
    pub holder: String,
    pub claimed_at_ms: u64,
    pub deadline_ms: Option<u64>,
    /// Set by a holder that stopped with an error, so its retry need not wait for its deadline.
    #[serde(default)]
    pub released: bool,
}

/// What an invocation about to split a run should do, given the claim it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitClaimVerdict {
    /// No claim: create one.
    Claim,
    /// A claim whose holder is gone (released, dead, or this invocation's own earlier try):
    /// replace it.
    TakeOver,
    /// Another invocation is splitting this run now: stop here, cleanly.
    Busy {
        holder: String,
        until_ms: Option<u64>,
    },
}

pub fn split_claim_verdict(found: Option<&SplitClaim>, me: &str, now_ms: u64) -> SplitClaimVerdict {
    match found {
        None => SplitClaimVerdict::Claim,
        Some(c) if c.released || c.holder == me => SplitClaimVerdict::TakeOver,
        Some(c) if Holder::is_dead(c.deadline_ms, c.claimed_at_ms, now_ms) => {
            SplitClaimVerdict::TakeOver
        }
        Some(c) => SplitClaimVerdict::Busy {
            holder: c.holder.clone(),
            until_ms: c.deadline_ms,
        },
    }
}

/// The submission ledger over any store: JSON objects changed by compare-and-swap, and the
/// tenant's job-slot leases built on them. Shared by submit, poll and the CLI.
pub struct Ledger<S> {
    pub store: S,
}

impl<S: ObjectStore> Ledger<S> {
    pub fn new(store: S) -> Self {
        Ledger { store }
    }

    pub async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        self.store.get_bytes(key).await
    }

    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.store.get_bytes(key).await?.is_some())
    }

    pub async fn get_pieces<E: From<StoreError> + Send>(
        &self,
        key: &str,
        piece: impl FnMut(&[u8]) -> Result<(), E> + Send,
    ) -> Result<bool, E> {
        self.store.get_pieces(key, piece).await
    }

    pub async fn get_pieces_from<E: From<StoreError> + Send>(
        &self,
        key: &str,
        from: u64,
        piece: impl FnMut(&[u8]) -> Result<(), E> + Send,
    ) -> Result<bool, E> {
        self.store.get_pieces_from(key, from, piece).await
    }

    pub async fn start_upload(&self, key: &str, content_type: &str) -> Result<String, StoreError> {
        self.store.start_upload(key, content_type).await
    }

    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError> {
        self.store.upload_part(key, upload_id, number, bytes).await
    }

    pub async fn finish_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[crate::storage::UploadedPart],
    ) -> Result<(), StoreError> {
        self.store.finish_upload(key, upload_id, parts).await
    }

    pub async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.store.abort_upload(key, upload_id).await
    }

    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        let Some((bytes, etag)) = self.store.get_bytes(key).await? else {
            return Ok(None);
        };
        let value = serde_json::from_slice(&bytes).map_err(|e| StoreError::Malformed {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some(Versioned { value, etag }))
    }

    /// `get`, where a missing object is an error.
    pub async fn require<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Versioned<T>, StoreError> {
        self.get(key).await?.ok_or_else(|| StoreError::NotFound {
            key: key.to_string(),
        })
    }

    /// The new ETag; `Ok(None)` when the write's condition failed.
    async fn write<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        condition: WriteIf<'_>,
    ) -> Result<Option<String>, StoreError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Malformed {
            key: key.to_string(),
            reason: format!("cannot be encoded: {e}"),
        })?;
        match self
            .store
            .put_bytes(key, bytes, "application/json", condition)
            .await
        {
            Ok(etag) => Ok(Some(etag)),
            Err(StoreError::ConditionFailed { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates `key` only if absent. `Ok(false)` when it already exists.
    pub async fn create<T: Serialize>(&self, key: &str, value: &T) -> Result<bool, StoreError> {
        Ok(self.write(key, value, WriteIf::Absent).await?.is_some())
    }

    /// `create`, returning the new object's ETag (`None` when it already existed).
    pub async fn create_versioned<T: Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<Option<String>, StoreError> {
        self.write(key, value, WriteIf::Absent).await
    }

    /// Replaces `key` only if it is still at `etag`. `Ok(false)` when someone changed it.
    pub async fn replace<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        etag: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.write(key, value, WriteIf::At(etag)).await?.is_some())
    }

    /// `replace`, returning the new ETag (`None` when someone changed the object first).
    pub async fn replace_versioned<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        etag: &str,
    ) -> Result<Option<String>, StoreError> {
        self.write(key, value, WriteIf::At(etag)).await
    }

    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.write(key, value, WriteIf::Always).await.map(|_| ())
    }

    pub async fn put_raw(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.store
            .put_bytes(key, bytes, content_type, WriteIf::Always)
            .await
            .map(|_| ())
    }

    pub async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), StoreError> {
        self.store.put_file(key, path).await
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.delete(key).await
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>, StoreError> {
        self.store.list(prefix).await
    }

    pub async fn list_after(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.store.list_after(prefix, start_after).await
    }

    pub async fn mark_purgeable(&self, key: &str) -> Result<(), StoreError> {
        self.store.mark_purgeable(key).await
    }

    /// Lists a committed run as active (`active-runs/<id>.json`, the list submit and poll work
    /// from) unless its report is written already: a late duplicate of an event must not
    /// reopen a closed run. Every committed run is listed, failed and empty ones too, so that
    /// every run ends with a report. Idempotent; `Ok(true)` when this call listed it.
    pub async fn activate_run(
        &self,
        run: &crate::layout::RunPath,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        if self.exists(&run.active_marker()).await?
            || !self.exists(&run.manifest()).await?
            || self.exists(&run.report_json()).await?
        {
            return Ok(false);
        }
        let marker = serde_json::json!({"run_id": run.id(), "activated_at_ms": now_ms});
        self.create(&run.active_marker(), &marker).await
    }

    /// Whether any of the `slots` leases is free (or was never taken).
    pub async fn any_slot_free(&self, slots: u32) -> Result<bool, StoreError> {
        for k in 0..slots {
            match self.get::<SlotLease>(&crate::layout::slot_key(k)).await? {
                None
                | Some(Versioned {
                    value: SlotLease::Free { .. },
                    ..
                }) => return Ok(true),
                Some(_) => {}
            }
        }
        Ok(false)
    }

    /// Takes a free slot among `slots` for (run, seq). `None` when all are held.
    pub async fn acquire_slot(
        &self,
        slots: u32,
        run_id: &str,
        seq: u32,
        holder: &Holder,
        now_ms: u64,
    ) -> Result<Option<u32>, StoreError> {
        let held = SlotLease::Held {
            run_id: run_id.to_string(),
            seq,
            acquired_at_ms: now_ms,
            holder: holder.name.clone(),
            holder_deadline_ms: holder.deadline_ms,
        };
        for k in 0..slots {
            let key = crate::layout::slot_key(k);
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
    ) -> Result<bool, StoreError> {
        let key = crate::layout::slot_key(k);
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

    /// Frees every slot lease still naming `run_id`: once a run is final none of its chunks holds
    /// a slot, and a lease left by an invocation that died between a lost claim race and its
    /// release would otherwise wait for the next full-slots recovery. Returns how many it freed.
    pub async fn release_run_slots(&self, run_id: &str, now_ms: u64) -> Result<u32, StoreError> {
        let mut freed = 0;
        for (key, _) in self.list(crate::layout::SLOTS_PREFIX).await? {
            let Some(lease) = self.get::<SlotLease>(&key).await? else {
                continue;
            };
            if !matches!(&lease.value, SlotLease::Held { run_id: held, .. } if held == run_id) {
                continue;
            }
            let free = SlotLease::Free {
                released_at_ms: now_ms,
            };
            if self.replace(&key, &free, &lease.etag).await? {
                freed += 1;
            }
        }
        Ok(freed)
    }

    /// Gives back a claim that sent nothing: its job record goes (while it is still this
    /// holder's unsent claim), so the chunk is pending again, and its slot is freed. Only the
    /// holder calls this, knowing that nothing left; a record already moved on is kept.
    pub async fn release_claim(
        &self,
        run: &crate::layout::RunPath,
        claim: &JobRecord,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let key = run.job(claim.seq);
        if let Some(current) = self.get::<JobRecord>(&key).await? {
            let ours = current.value.claimed_by == claim.claimed_by
                && current.value.claimed_at_ms == claim.claimed_at_ms;
            let unsent = matches!(
                current.value.state,
                JobState::Claimed | JobState::Posting { .. }
            );
            if ours && unsent {
                self.delete(&key).await?;
            }
        }
        self.release_slot(claim.slot, run.id(), claim.seq, now_ms)
            .await?;
        Ok(())
    }

    /// Frees slots whose holders died (see `recover_slot`). Returns how many it freed.
    pub async fn recover_slots(&self, slots: u32, now_ms: u64) -> Result<u32, StoreError> {
        let mut freed = 0;
        for k in 0..slots {
            let key = crate::layout::slot_key(k);
            let Some(lease) = self.get::<SlotLease>(&key).await? else {
                continue;
            };
            let SlotLease::Held {
                run_id,
                seq,
                acquired_at_ms,
                holder_deadline_ms,
                ..
            } = &lease.value
            else {
                continue;
            };
            let run = crate::layout::RunPath::new(run_id);
            let job_key = run.job(*seq);
            let job = self.get::<JobRecord>(&job_key).await?;
            let free = SlotLease::Free {
                released_at_ms: now_ms,
            };
            let verdict = recover_slot(
                *acquired_at_ms,
                *holder_deadline_ms,
                job.as_ref().map(|j| &j.value),
                now_ms,
            );
            let settled = match verdict {
                SlotRecovery::Keep => false,
                SlotRecovery::Free => true,
                SlotRecovery::ReleaseClaimThenFree => match &job {
                    Some(job) => {
                        // Deleted only if nobody moved the claim on since it was read.
                        match self.get::<JobRecord>(&job_key).await? {
                            Some(now) if now.etag == job.etag => {
                                self.delete(&job_key).await?;
                                true
                            }
                            _ => false,
                        }
                    }
                    None => false,
                },
                SlotRecovery::MarkInDoubtThenFree(reason) => match &job {
                    Some(job) => match job.value.in_doubt(reason) {
                        Ok(in_doubt) => self.replace(&job_key, &in_doubt, &job.etag).await?,
                        Err(_) => false,
                    },
                    None => false,
                },
            };
            if settled && self.replace(&key, &free, &lease.etag).await? {
                freed += 1;
            }
        }
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStore;

    /// Polls a future of the memory store to its end (it never waits on anything).
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("the memory store awaited something"),
        }
    }

    #[test]
    fn slot_leases_are_taken_once_and_freed_only_by_their_holder() {
        let ledger = Ledger {
            store: MemoryStore::default(),
        };
        let holder = Holder {
            name: "submit-1".into(),
            deadline_ms: Some(10_000),
        };
        let take = |seq| block_on(ledger.acquire_slot(2, "r-1", seq, &holder, 1_000)).unwrap();
        assert_eq!(take(1), Some(0));
        assert_eq!(take(2), Some(1));
        // The tenant's two slots are held: a third chunk waits.
        assert_eq!(take(3), None);
        // Only the chunk a lease names frees it.
        assert!(!block_on(ledger.release_slot(0, "r-1", 2, 2_000)).unwrap());
        assert!(block_on(ledger.release_slot(0, "r-1", 1, 2_000)).unwrap());
        assert!(!block_on(ledger.release_slot(0, "r-1", 1, 2_000)).unwrap());
        assert_eq!(take(3), Some(0));
        // A final run frees whatever still names it.
        assert_eq!(block_on(ledger.release_run_slots("r-1", 3_000)).unwrap(), 2);
        assert!(block_on(ledger.any_slot_free(2)).unwrap());
    }

    proptest::proptest! {
        /// Cut anywhere, a stream gives the lines `split` finds in it whole (less the empty
        /// one after a final newline).
        #[test]
        fn lines_cut_anywhere_are_the_lines_of_the_whole(
            text in proptest::collection::vec(
                proptest::prop_oneof![proptest::strategy::Just(b'\n'), proptest::strategy::Just(b'a'), proptest::strategy::Just(b'b')],
                0..60,
            ),
            cuts in proptest::collection::vec(0usize..60, 0..8),
        ) {
            let mut expected: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            if expected.last().is_some_and(Vec::is_empty) {
                expected.pop();
            }
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= text.len()).collect();
            cuts.sort_unstable();
            let mut got = Vec::new();
            let mut line = |l: &[u8]| -> Result<(), ()> {
                got.push(l.to_vec());
                Ok(())
            };
            let mut lines = super::Lines::default();
            let mut from = 0;
            for cut in cuts.into_iter().chain([text.len()]) {
                lines.feed(&text[from..cut], &mut line).unwrap();
                from = cut;
            }
            lines.finish(&mut line).unwrap();
            proptest::prop_assert_eq!(got, expected);
        }
    }

    fn holder(deadline_ms: Option<u64>) -> Holder {
        Holder {
            name: "inv-1".into(),
            deadline_ms,
        }
    }

    fn claimed(at: u64) -> JobRecord {
        claimed_by(at, None)
    }

    fn claimed_by(at: u64, deadline_ms: Option<u64>) -> JobRecord {
        JobRecord::claim(
            3,
            "chunks/000003.json".into(),
            10,
            "run:3".into(),
            1,
            at,
            &holder(deadline_ms),
        )
    }

    #[test]
    fn transitions_follow_the_lifecycle() {
        let c = claimed(0);
        // Nothing is submitted without first being recorded as posting.
        assert!(c.submitted("job_abc".into(), 5).is_err());
        assert!(c.in_doubt("x".into()).is_err());
        let p = c.posting(4).unwrap();
        assert!(p.state.holds_slot());
        let s = p.submitted("job_abc".into(), 5).unwrap();
        assert!(s.state.holds_slot());
        let f = s.finished("completed".into()).unwrap();
        assert_eq!(
            f.state,
            JobState::Finished {
                job_id: "job_abc".into(),
                status: "completed".into()
            }
        );
        assert!(!f.state.holds_slot());
        // No way back, no skipping.
        assert!(f.submitted("job_x".into(), 6).is_err());
        assert!(c.finished("completed".into()).is_err());
        assert!(s.in_doubt("x".into()).is_err());
        assert!(p.in_doubt("504 after sending".into()).is_ok());
        assert!(c.refused(0, None, "chunk missing".into()).is_ok());
        assert!(p
            .refused(400, Some("invalid_body".into()), "bad".into())
            .is_ok());
        assert!(s.refused(400, None, "bad".into()).is_err());
    }

    #[test]
    fn record_round_trips_as_flat_json() {
        let s = claimed(7)
            .posting(8)
            .unwrap()
            .submitted("job_abc".into(), 9)
            .unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["state"], "submitted");
        assert_eq!(v["job_id"], "job_abc");
        let back: JobRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn records_written_before_in_doubt_had_its_name_still_read() {
        let old = serde_json::json!({
            "seq": 1, "chunk_key": "chunks/000001.json", "users": 3, "external_id": "r:000001",
            "slot": 0, "claimed_at_ms": 5, "claimed_by": "inv", "state": "unknown",
            "reason": "timeout"
        });
        let record: JobRecord = serde_json::from_value(old).unwrap();
        assert_eq!(
            record.state,
            JobState::InDoubt {
                reason: "timeout".into()
            }
        );
        assert_eq!(record.holder_deadline_ms, None);
    }

    #[test]
    fn dead_holders_are_recovered_live_ones_kept() {
        let now = 100 * 60 * 1000;
        assert_eq!(
            recover_slot(now - 1000, None, None, now),
            SlotRecovery::Keep
        );
        assert_eq!(
            recover_slot(now - ORPHAN_SLOT_TIMEOUT_MS - 1, None, None, now),
            SlotRecovery::Free
        );
        // A lease whose holder's deadline has passed, with no claim behind it.
        assert_eq!(
            recover_slot(now - 2000, Some(now - HOLDER_GRACE_MS - 1), None, now),
            SlotRecovery::Free
        );
        assert_eq!(
            recover_slot(0, None, Some(&claimed(now - 1000)), now),
            SlotRecovery::Keep
        );
        // A claim that never sent anything is released, never made "in doubt".
        assert_eq!(
            recover_slot(0, None, Some(&claimed(now - CLAIM_TIMEOUT_MS - 1)), now),
            SlotRecovery::ReleaseClaimThenFree
        );
        // With the holder's deadline known, it is dead as soon as that has passed.
        let dying = claimed_by(now - 60_000, Some(now - HOLDER_GRACE_MS - 1));
        assert_eq!(
            recover_slot(0, None, Some(&dying), now),
            SlotRecovery::ReleaseClaimThenFree
        );
        let alive = claimed_by(now - 60_000, Some(now + 60_000));
        assert_eq!(recover_slot(0, None, Some(&alive), now), SlotRecovery::Keep);
        // Died while sending: in doubt.
        assert!(matches!(
            recover_slot(0, None, Some(&dying.posting(now - 1000).unwrap()), now),
            SlotRecovery::MarkInDoubtThenFree(_)
        ));
        assert_eq!(
            recover_slot(0, None, Some(&alive.posting(now - 1000).unwrap()), now),
            SlotRecovery::Keep
        );
        let submitted = claimed(0)
            .posting(1)
            .unwrap()
            .submitted("job_1".into(), 1)
            .unwrap();
        assert_eq!(
            recover_slot(0, None, Some(&submitted), now),
            SlotRecovery::Keep
        );
        let finished = submitted.finished("completed".into()).unwrap();
        assert_eq!(
            recover_slot(0, None, Some(&finished), now),
            SlotRecovery::Free
        );
    }

    #[test]
    fn following_is_given_up_after_repeated_refusals_or_past_the_job_limit() {
        let submitted = claimed(0)
            .posting(1)
            .unwrap()
            .submitted("job_1".into(), 1)
            .unwrap();
        assert_eq!(submitted.give_up_following(10), None);
        let mut r = submitted.clone();
        for sweep in 1..=FOLLOW_REFUSALS_BEFORE_GIVING_UP {
            assert_eq!(r.give_up_following(10), None, "sweep {sweep}");
            r = r
                .follow_failed(true, "403 Insufficient scope".into(), 10)
                .unwrap();
        }
        assert!(r.give_up_following(10).unwrap().contains("403"));
        // Missing answers alone are waited out until the job is past Auth0's limit.
        let mut t = submitted.clone();
        for _ in 0..50 {
            t = t.follow_failed(false, "503".into(), 10).unwrap();
        }
        assert_eq!(t.give_up_following(crate::jobs::JOB_DEAD_AFTER_MS), None);
        assert!(t
            .give_up_following(crate::jobs::JOB_DEAD_AFTER_MS + 2)
            .is_some());
        // An answer clears the trouble: the next transition starts from none.
        assert_eq!(t.finished("completed".into()).unwrap().follow_trouble, None);
    }

    #[test]
    fn a_split_claim_is_taken_over_only_from_a_gone_holder() {
        let now = 10_000_000;
        let held = SplitClaim {
            attempt: "a1".into(),
            holder: "req-1".into(),
            claimed_at_ms: now - 1000,
            deadline_ms: Some(now + 60_000),
            released: false,
        };
        assert_eq!(
            split_claim_verdict(None, "req-2", now),
            SplitClaimVerdict::Claim
        );
        assert_eq!(
            split_claim_verdict(Some(&held), "req-2", now),
            SplitClaimVerdict::Busy {
                holder: "req-1".into(),
                until_ms: Some(now + 60_000)
            }
        );
        // Lambda retries an event with the same request id: the retry takes its own claim back.
        assert_eq!(
            split_claim_verdict(Some(&held), "req-1", now),
            SplitClaimVerdict::TakeOver
        );
        let released = SplitClaim {
            released: true,
            ..held.clone()
        };
        assert_eq!(
            split_claim_verdict(Some(&released), "req-2", now),
            SplitClaimVerdict::TakeOver
        );
        assert_eq!(
            split_claim_verdict(Some(&held), "req-2", now + 60_000 + HOLDER_GRACE_MS + 1),
            SplitClaimVerdict::TakeOver
        );
    }

    #[test]
    fn lease_names_its_holder() {
        let l = SlotLease::Held {
            run_id: "r".into(),
            seq: 2,
            acquired_at_ms: 0,
            holder: "i".into(),
            holder_deadline_ms: None,
        };
        assert!(l.is_held_by("r", 2));
        assert!(!l.is_held_by("r", 3));
        assert!(!SlotLease::Free { released_at_ms: 0 }.is_held_by("r", 2));
    }
}
