//! The submission ledger kept in the bucket: one job record per chunk (the claim that makes a
//! chunk post at most once) and one lease per tenant job slot. Pure data and transitions only.
//!
//! Every write of these objects is a compare-and-swap (`If-None-Match: *` to create, `If-Match`
//! to change), so concurrent invocations agree on who holds what.

use serde::{Deserialize, Serialize};

/// How long a claim may stay unposted before its holder is presumed dead. A submit invocation
/// lives at most 15 minutes (Lambda's ceiling); a claim older than that was never finished.
pub const CLAIM_TIMEOUT_MS: u64 = 16 * 60 * 1000;

/// How long a slot may be held with no job record behind it (the holder died between taking
/// the slot and claiming a chunk, which normally takes milliseconds).
pub const ORPHAN_SLOT_TIMEOUT_MS: u64 = 5 * 60 * 1000;

/// Where a chunk's submission stands. Transitions are the methods below; nothing else
/// constructs a later state from an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Claimed by an invocation that is about to post it.
    Claimed,
    /// Auth0 accepted the job (202).
    Submitted {
        job_id: String,
        submitted_at_ms: u64,
    },
    /// Auth0 refused the request (4xx other than the concurrency 429): not retried.
    Refused { status: u16, message: String },
    /// The request may or may not have created a job (crash or timeout after sending).
    /// Never retried: posting again could import the same users twice.
    Unknown { reason: String },
    /// Poll saw the job end and wrote the chunk's report.
    Finished { job_id: String, status: String },
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
            JobState::Submitted { .. } => "submitted",
            JobState::Refused { .. } => "refused",
            JobState::Unknown { .. } => "unknown",
            JobState::Finished { .. } => "finished",
        }
    }

    /// Whether the job still occupies a tenant slot.
    pub fn holds_slot(&self) -> bool {
        matches!(self, JobState::Claimed | JobState::Submitted { .. })
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
        claimed_by: String,
    ) -> Self {
        JobRecord {
            seq,
            chunk_key,
            users,
            external_id,
            slot,
            claimed_at_ms: now_ms,
            claimed_by,
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
            ..self.clone()
        })
    }

    pub fn submitted(&self, job_id: String, now_ms: u64) -> Result<JobRecord, BadTransition> {
        let ok = self.state == JobState::Claimed;
        self.to(
            JobState::Submitted {
                job_id,
                submitted_at_ms: now_ms,
            },
            ok,
        )
    }

    pub fn refused(&self, status: u16, message: String) -> Result<JobRecord, BadTransition> {
        let ok = self.state == JobState::Claimed;
        self.to(JobState::Refused { status, message }, ok)
    }

    pub fn unknown(&self, reason: String) -> Result<JobRecord, BadTransition> {
        let ok = self.state == JobState::Claimed;
        self.to(JobState::Unknown { reason }, ok)
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
    /// The claim was never finished: record the chunk as unknown, then free the slot.
    MarkUnknownThenFree(String),
}

/// Decides a held slot's fate from the job record of the chunk it names (None = no record).
pub fn recover_slot(acquired_at_ms: u64, job: Option<&JobRecord>, now_ms: u64) -> SlotRecovery {
    match job {
        None if now_ms.saturating_sub(acquired_at_ms) > ORPHAN_SLOT_TIMEOUT_MS => {
            SlotRecovery::Free
        }
        None => SlotRecovery::Keep,
        Some(j) => match &j.state {
            JobState::Claimed if now_ms.saturating_sub(j.claimed_at_ms) > CLAIM_TIMEOUT_MS => {
                SlotRecovery::MarkUnknownThenFree(format!(
                    "claimed by {} at {} ms and never recorded as posted: the invocation died, so whether Auth0 created a job is unknown",
                    j.claimed_by, j.claimed_at_ms
                ))
            }
            JobState::Claimed | JobState::Submitted { .. } => SlotRecovery::Keep,
            JobState::Refused { .. } | JobState::Unknown { .. } | JobState::Finished { .. } => {
                SlotRecovery::Free
            }
        },
    }
}

/// A condition on a write: the primitive that makes claims and leases safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteIf<'a> {
    /// Only if the key does not exist (`If-None-Match: *`).
    Absent,
    /// Only if the object is still at this ETag (`If-Match`).
    At(&'a str),
    Always,
}

/// Where the ledger lives: an S3 bucket in AWS, a local folder for the CLI. Keys are relative
/// to the bucket (or folder) root; ETags are opaque version tags.
// Only used generically (never as `dyn`) by this workspace's crates, so the futures' Send-ness
// is known at each concrete use.
#[allow(async_fn_in_trait)]
pub trait ObjectStore: Sync {
    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, String>;
    /// Hands the object at `key` to `piece` a piece at a time, in order, never holding all of
    /// it in memory or on local disk (for objects that grow with the input, such as
    /// `rejects.ndjson`). Stops at `piece`'s first error. `Ok(false)` when there is none.
    async fn get_pieces(
        &self,
        key: &str,
        piece: impl FnMut(&[u8]) -> Result<(), String> + Send,
    ) -> Result<bool, String>;
    /// `Ok(false)` when the condition did not hold (nothing was written).
    async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        condition: WriteIf<'_>,
    ) -> Result<bool, String>;
    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), String>;
    async fn delete(&self, key: &str) -> Result<(), String>;
    /// Every key under `prefix` with its last-modified time (ms), in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>, String>;
    /// Marks an object holding password hashes for deletion by the store's retention rule
    /// (`layout::PURGE_TAG`). A store without one (a local folder) does nothing.
    async fn mark_purgeable(&self, key: &str) -> Result<(), String>;
}

/// The lines of a byte stream that arrives in pieces cut anywhere (`ObjectStore::get_pieces`),
/// each without its newline; only a line cut across pieces is copied.
#[derive(Default)]
pub struct Lines {
    /// The start of a line whose end has not arrived.
    pending: Vec<u8>,
}

impl Lines {
    /// Gives `line` every line `piece` ends.
    pub fn feed<E>(
        &mut self,
        mut piece: &[u8],
        line: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        while let Some(end) = memchr::memchr(b'\n', piece) {
            if self.pending.is_empty() {
                line(&piece[..end])?;
            } else {
                self.pending.extend_from_slice(&piece[..end]);
                line(&self.pending)?;
                self.pending.clear();
            }
            piece = &piece[end + 1..];
        }
        self.pending.extend_from_slice(piece);
        Ok(())
    }

    /// Gives `line` the last line, when the stream does not end with a newline.
    pub fn finish<E>(self, line: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if self.pending.is_empty() {
            return Ok(());
        }
        line(&self.pending)
    }
}

/// A version tag for stores that have none of their own (a local folder): the content's hash.
pub fn content_etag(bytes: &[u8]) -> String {
    format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// A value and the ETag it was read at (for `WriteIf::At`).
pub struct Versioned<T> {
    pub value: T,
    pub etag: String,
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

    pub async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, String> {
        self.store.get_bytes(key).await
    }

    pub async fn get_pieces(
        &self,
        key: &str,
        piece: impl FnMut(&[u8]) -> Result<(), String> + Send,
    ) -> Result<bool, String> {
        self.store.get_pieces(key, piece).await
    }

    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, String> {
        let Some((bytes, etag)) = self.store.get_bytes(key).await? else {
            return Ok(None);
        };
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{key} is not what this version writes: {e}"))?;
        Ok(Some(Versioned { value, etag }))
    }

    async fn write<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        condition: WriteIf<'_>,
    ) -> Result<bool, String> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| format!("encoding {key}: {e}"))?;
        self.store
            .put_bytes(key, bytes, "application/json", condition)
            .await
    }

    /// Creates `key` only if absent. `Ok(false)` when it already exists.
    pub async fn create<T: Serialize>(&self, key: &str, value: &T) -> Result<bool, String> {
        self.write(key, value, WriteIf::Absent).await
    }

    /// Replaces `key` only if it is still at `etag`. `Ok(false)` when someone changed it.
    pub async fn replace<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        etag: &str,
    ) -> Result<bool, String> {
        self.write(key, value, WriteIf::At(etag)).await
    }

    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), String> {
        self.write(key, value, WriteIf::Always).await.map(|_| ())
    }

    pub async fn put_raw(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), String> {
        self.store
            .put_bytes(key, bytes, content_type, WriteIf::Always)
            .await
            .map(|_| ())
    }

    pub async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), String> {
        self.store.put_file(key, path).await
    }

    pub async fn delete(&self, key: &str) -> Result<(), String> {
        self.store.delete(key).await
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>, String> {
        self.store.list(prefix).await
    }

    pub async fn mark_purgeable(&self, key: &str) -> Result<(), String> {
        self.store.mark_purgeable(key).await
    }

    /// Whether any of the `slots` leases is free (or was never taken).
    pub async fn any_slot_free(&self, slots: u32) -> Result<bool, String> {
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
        holder: &str,
        now_ms: u64,
    ) -> Result<Option<u32>, String> {
        let held = SlotLease::Held {
            run_id: run_id.to_string(),
            seq,
            acquired_at_ms: now_ms,
            holder: holder.to_string(),
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
    ) -> Result<bool, String> {
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

    /// Frees slots whose holders died (see `recover_slot`). Returns how many it freed.
    pub async fn recover_slots(&self, slots: u32, now_ms: u64) -> Result<u32, String> {
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
                ..
            } = &lease.value
            else {
                continue;
            };
            let job_key = format!(
                "{}{}",
                crate::layout::run_prefix(run_id),
                crate::layout::job_key(*seq)
            );
            let job = self.get::<JobRecord>(&job_key).await?;
            let free = SlotLease::Free {
                released_at_ms: now_ms,
            };
            match recover_slot(*acquired_at_ms, job.as_ref().map(|j| &j.value), now_ms) {
                SlotRecovery::Keep => {}
                SlotRecovery::Free => {
                    if self.replace(&key, &free, &lease.etag).await? {
                        freed += 1;
                    }
                }
                SlotRecovery::MarkUnknownThenFree(reason) => {
                    let Some(job) = job else { continue };
                    let Ok(unknown) = job.value.unknown(reason) else {
                        continue;
                    };
                    if self.replace(&job_key, &unknown, &job.etag).await?
                        && self.replace(&key, &free, &lease.etag).await?
                    {
                        freed += 1;
                    }
                }
            }
        }
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
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

    use super::*;

    fn claimed(at: u64) -> JobRecord {
        JobRecord::claim(
            3,
            "chunks/000003.json".into(),
            10,
            "run:3".into(),
            1,
            at,
            "inv-1".into(),
        )
    }

    #[test]
    fn transitions_follow_the_lifecycle() {
        let c = claimed(0);
        let s = c.submitted("job_abc".into(), 5).unwrap();
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
        assert!(s.unknown("x".into()).is_err());
        assert!(c.refused(400, "bad".into()).is_ok());
    }

    #[test]
    fn record_round_trips_as_flat_json() {
        let s = claimed(7).submitted("job_abc".into(), 9).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["state"], "submitted");
        assert_eq!(v["job_id"], "job_abc");
        let back: JobRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn dead_holders_are_recovered_live_ones_kept() {
        let now = 100 * 60 * 1000;
        assert_eq!(recover_slot(now - 1000, None, now), SlotRecovery::Keep);
        assert_eq!(
            recover_slot(now - ORPHAN_SLOT_TIMEOUT_MS - 1, None, now),
            SlotRecovery::Free
        );
        assert_eq!(
            recover_slot(0, Some(&claimed(now - 1000)), now),
            SlotRecovery::Keep
        );
        assert!(matches!(
            recover_slot(0, Some(&claimed(now - CLAIM_TIMEOUT_MS - 1)), now),
            SlotRecovery::MarkUnknownThenFree(_)
        ));
        let submitted = claimed(0).submitted("job_1".into(), 1).unwrap();
        assert_eq!(recover_slot(0, Some(&submitted), now), SlotRecovery::Keep);
        let finished = submitted.finished("completed".into()).unwrap();
        assert_eq!(recover_slot(0, Some(&finished), now), SlotRecovery::Free);
    }

    #[test]
    fn lease_names_its_holder() {
        let l = SlotLease::Held {
            run_id: "r".into(),
            seq: 2,
            acquired_at_ms: 0,
            holder: "i".into(),
        };
        assert!(l.is_held_by("r", 2));
        assert!(!l.is_held_by("r", 3));
        assert!(!SlotLease::Free { released_at_ms: 0 }.is_held_by("r", 2));
    }
}
