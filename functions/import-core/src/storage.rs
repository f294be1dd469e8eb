//! Storage, one home: the two traits every stage writes and reads through (`RunSink` for the
//! split's run folder, `ObjectStore` for the ledger and reports) and their in-memory adapters.
//!
//! The adapters for real stores implement these: S3 in `aws-shell` (`S3RunSink`, `S3Store`),
//! a local folder in the CLI (`FolderSink`, `FolderStore`). Tests and dry runs use the memory
//! ones here, which keep the same rules (create-once manifest, conditional writes, parts).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::layout::MANIFEST;

/// A failure of the store that holds the ledger, typed so callers decide by `match`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The object is absent where it must exist.
    #[error("{key} does not exist")]
    NotFound { key: String },
    /// A conditional write (`WriteIf::Absent` / `WriteIf::At`) lost: someone else wrote first.
    #[error("{key} was written by someone else first (the write's condition failed)")]
    ConditionFailed { key: String },
    /// The object exists but does not hold what this version writes.
    #[error("{key} is not what this version writes: {reason}")]
    Malformed { key: String, reason: String },
    /// An upload (`ObjectStore::start_upload`) is no longer there and its object was never
    /// made: S3 aborts an upload left incomplete for a day (the bucket's lifecycle rule). What
    /// it held must be written again, in a new upload.
    #[error("the upload to {key} is gone (aborted before it was completed)")]
    UploadGone { key: String },
    /// The store could not be read or written (network, permissions, disk).
    #[error("{operation} {key}: {reason}")]
    Io {
        operation: &'static str,
        key: String,
        reason: String,
    },
}

impl StoreError {
    pub fn io(operation: &'static str, key: &str, reason: impl std::fmt::Display) -> Self {
        StoreError::Io {
            operation,
            key: key.to_string(),
            reason: reason.to_string(),
        }
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
    /// The object and its ETag; `Ok(None)` when there is none.
    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError>;
    /// Hands the object at `key` to `piece` a piece at a time, in order, never holding all of
    /// it in memory or on local disk (for objects that grow with the input, such as
    /// `rejects.ndjson`). Stops at `piece`'s first error. `Ok(false)` when there is none.
    async fn get_pieces<E: From<StoreError> + Send>(
        &self,
        key: &str,
        piece: impl FnMut(&[u8]) -> Result<(), E> + Send,
    ) -> Result<bool, E>;
    /// Writes the object and returns its new ETag. A failed condition is
    /// `Err(StoreError::ConditionFailed)`, and nothing was written.
    async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        condition: WriteIf<'_>,
    ) -> Result<String, StoreError>;
    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), StoreError>;
    /// Deleting what does not exist is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Every key under `prefix` with its last-modified time (ms), in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>, StoreError>;
    /// `list` of the keys after `start_after` only (S3: `StartAfter`, which skips the keys
    /// before it on the server). This default lists all and skips them here.
    async fn list_after(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut all = self.list(prefix).await?;
        all.retain(|(key, _)| key.as_str() > start_after);
        Ok(all)
    }
    /// Marks an object holding password hashes for deletion by the store's retention rule
    /// (`layout::PURGE_TAG`). A store without one (a local folder) does nothing.
    async fn mark_purgeable(&self, key: &str) -> Result<(), StoreError>;

    /// `get_pieces` from byte `from` on (S3: a ranged GET). At or past the end: no piece, and
    /// `Ok(true)`. This default reads from the start and skips, for stores that read locally.
    async fn get_pieces_from<E: From<StoreError> + Send>(
        &self,
        key: &str,
        from: u64,
        mut piece: impl FnMut(&[u8]) -> Result<(), E> + Send,
    ) -> Result<bool, E> {
        let mut skip = from;
        self.get_pieces(key, |p: &[u8]| {
            let cut = usize::try_from(skip).unwrap_or(usize::MAX).min(p.len());
            skip -= cut as u64;
            if cut < p.len() {
                piece(&p[cut..])?;
            }
            Ok(())
        })
        .await
    }

    /// Starts an object written in numbered parts that may span invocations (S3: a multipart
    /// upload): its id, to be kept by the caller with the parts' ETags until `finish_upload`.
    /// Every part but the last must hold at least `MIN_PART_BYTES`. This default keeps the
    /// parts as objects under `UPLOADS_PREFIX`, for stores without uploads of their own, with
    /// an object that says the upload is open (`UPLOAD_OPEN`), so that a part stored in an
    /// upload completed or aborted meanwhile is refused as S3 refuses it.
    async fn start_upload(&self, key: &str, _content_type: &str) -> Result<String, StoreError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!(
            "{:032x}",
            xxhash_rust::xxh3::xxh3_128(format!("{key}@{nanos}").as_bytes())
        );
        let open = format!("{UPLOADS_PREFIX}{id}/{UPLOAD_OPEN}");
        self.put_bytes(&open, Vec::new(), "", WriteIf::Absent)
            .await?;
        Ok(id)
    }

    /// Stores part `number` (from 1) of an upload; storing a number again replaces that part.
    /// Returns the part's ETag.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError> {
        let part = format!("{UPLOADS_PREFIX}{upload_id}/{number:05}");
        let etag = self.put_bytes(&part, bytes, "", WriteIf::Always).await?;
        // Looked at after the part is stored: an upload closed before this look takes the part
        // back here, one closed after it finds the part when it removes its parts.
        if !self
            .exists_default(&format!("{UPLOADS_PREFIX}{upload_id}/{UPLOAD_OPEN}"))
            .await?
        {
            self.delete(&part).await?;
            return Err(StoreError::UploadGone {
                key: key.to_string(),
            });
        }
        Ok(etag)
    }

    /// Makes `key` the given parts, in order. Finishing an upload already finished (an
    /// invocation that died before it could record so) succeeds when `key` exists.
    async fn finish_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), StoreError> {
        let open = format!("{UPLOADS_PREFIX}{upload_id}/{UPLOAD_OPEN}");
        if !self.exists_default(&open).await? {
            return match self.get_bytes(key).await? {
                Some(_) => Ok(()),
                None => Err(StoreError::UploadGone {
                    key: key.to_string(),
                }),
            };
        }
        let mut whole = Vec::new();
        for part in parts {
            let part_key = format!("{UPLOADS_PREFIX}{upload_id}/{:05}", part.number);
            match self.get_bytes(&part_key).await? {
                Some((bytes, _)) => whole.extend_from_slice(&bytes),
                None if self.get_bytes(key).await?.is_some() => return Ok(()),
                None => {
                    return Err(StoreError::UploadGone {
                        key: key.to_string(),
                    })
                }
            }
        }
        self.put_bytes(key, whole, "", WriteIf::Always).await?;
        self.abort_upload(key, upload_id).await
    }

    /// Drops an upload that will not be completed, with the parts it holds. An upload already
    /// gone (completed or aborted) is not an error.
    async fn abort_upload(&self, _key: &str, upload_id: &str) -> Result<(), StoreError> {
        // Closed first: a part stored from here on is taken back by its own call.
        let dir = format!("{UPLOADS_PREFIX}{upload_id}/");
        self.delete(&format!("{dir}{UPLOAD_OPEN}")).await?;
        for (part, _) in self.list(&dir).await? {
            self.delete(&part).await?;
        }
        Ok(())
    }

    /// Whether `key` exists, for the default uploads (a GET: every store has one).
    async fn exists_default(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.get_bytes(key).await?.is_some())
    }
}

/// Where `ObjectStore`'s default uploads keep their parts.
pub const UPLOADS_PREFIX: &str = ".uploads/";
/// The object in a default upload's folder that says it is open.
const UPLOAD_OPEN: &str = "open";

/// A stored part of an upload (`ObjectStore::upload_part`), as `finish_upload` needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UploadedPart {
    pub number: u32,
    pub etag: String,
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

pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// The smallest part `RunSink::put_part` is given, but for an object's last: S3's minimum for
/// a multipart upload's parts.
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;

/// Where a run folder is written. Keys are relative to the run folder.
pub trait RunSink {
    /// Writes (or replaces) an object. May return before it is durable: see `flush`.
    fn put(&mut self, key: &str, bytes: Vec<u8>) -> Result<(), SinkError>;
    /// Appends `part` to `key`, an object written in parts, in order, that appears whole at
    /// `finish_parts`: a large output (rejects) that must wait neither whole in memory nor on
    /// local disk, which in Lambda is smaller than a drop can be. Every part but the last
    /// holds at least `MIN_PART_BYTES`. May return before the part is stored. (A slice: the
    /// caller fills the same buffer again, and a store that must keep the part copies it.)
    fn put_part(&mut self, key: &str, part: &[u8]) -> Result<(), SinkError>;
    /// Makes `key` the parts put so far, in order (an empty object when there were none), and
    /// returns once it is durable.
    fn finish_parts(&mut self, key: &str) -> Result<(), SinkError>;
    /// Forgets the parts put so far of `key`, which is not written.
    fn abort_parts(&mut self, key: &str) -> Result<(), SinkError>;
    fn get(&mut self, key: &str) -> Result<Vec<u8>, SinkError>;
    /// Announces `get`s of these keys, in this order: a store with latency may start them now.
    /// A `put` or `delete` of one of them cancels its announcement.
    fn prefetch(&mut self, _keys: &[String]) -> Result<(), SinkError> {
        Ok(())
    }
    fn delete(&mut self, key: &str) -> Result<(), SinkError>;
    /// Returns once every earlier `put` is durable.
    fn flush(&mut self) -> Result<(), SinkError>;
    /// Creates the manifest only if there is none (the run's commit point). `Ok(false)` when
    /// another invocation committed first.
    fn commit_manifest(&mut self, bytes: Vec<u8>) -> Result<bool, SinkError>;
}

/// A run folder in memory, for tests and dry runs.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub objects: BTreeMap<String, Vec<u8>>,
    /// Objects being written in parts: each part as given, so their sizes can be checked.
    parts: BTreeMap<String, Vec<Vec<u8>>>,
}

impl RunSink for MemorySink {
    fn put(&mut self, key: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
        self.objects.insert(key.to_string(), bytes);
        Ok(())
    }

    fn put_part(&mut self, key: &str, part: &[u8]) -> Result<(), SinkError> {
        let parts = self.parts.entry(key.to_string()).or_default();
        if parts.last().is_some_and(|last| last.len() < MIN_PART_BYTES) {
            return Err(
                format!("{key}: a part under {MIN_PART_BYTES} bytes was not the last").into(),
            );
        }
        parts.push(part.to_vec());
        Ok(())
    }

    fn finish_parts(&mut self, key: &str) -> Result<(), SinkError> {
        let parts = self.parts.remove(key).unwrap_or_default();
        self.objects.insert(key.to_string(), parts.concat());
        Ok(())
    }

    fn abort_parts(&mut self, key: &str) -> Result<(), SinkError> {
        self.parts.remove(key);
        Ok(())
    }

    fn get(&mut self, key: &str) -> Result<Vec<u8>, SinkError> {
        self.objects
            .get(key)
            .cloned()
            .ok_or_else(|| format!("no object {key}").into())
    }

    fn delete(&mut self, key: &str) -> Result<(), SinkError> {
        self.objects.remove(key);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn commit_manifest(&mut self, bytes: Vec<u8>) -> Result<bool, SinkError> {
        if self.objects.contains_key(MANIFEST) {
            return Ok(false);
        }
        self.objects.insert(MANIFEST.to_string(), bytes);
        Ok(true)
    }
}

/// An object in `MemoryStore`: its bytes, ETag and last-modified sequence number.
type MemoryObject = (Vec<u8>, String, i64);

/// A ledger store in memory, for tests and dry runs: conditional writes, ETags from the content,
/// and listing in key order, as S3 and the folder store behave.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, MemoryObject>>,
    /// Objects marked purgeable (`mark_purgeable`), for tests to look at.
    purgeable: Mutex<Vec<String>>,
}

impl MemoryStore {
    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, MemoryObject>> {
        // Every change under the lock is one insert or remove: a panic elsewhere cannot leave
        // the map half-changed, so a poisoned lock is still consistent.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys marked purgeable so far, in order.
    pub fn purgeable(&self) -> Vec<String> {
        self.purgeable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ObjectStore for MemoryStore {
    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        Ok(self
            .objects()
            .get(key)
            .map(|(bytes, etag, _)| (bytes.clone(), etag.clone())))
    }

    async fn get_pieces<E: From<StoreError> + Send>(
        &self,
        key: &str,
        mut piece: impl FnMut(&[u8]) -> Result<(), E> + Send,
    ) -> Result<bool, E> {
        let Some((bytes, _)) = self.get_bytes(key).await? else {
            return Ok(false);
        };
        // Pieces cut at odd places, as a network stream cuts them.
        for part in bytes.chunks(7) {
            piece(part)?;
        }
        Ok(true)
    }

    async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        _content_type: &str,
        condition: WriteIf<'_>,
    ) -> Result<String, StoreError> {
        let mut objects = self.objects();
        let allowed = match (condition, objects.get(key)) {
            (WriteIf::Always, _) | (WriteIf::Absent, None) => true,
            (WriteIf::At(etag), Some((_, current, _))) => etag == current,
            (WriteIf::Absent, Some(_)) | (WriteIf::At(_), None) => false,
        };
        if !allowed {
            return Err(StoreError::ConditionFailed {
                key: key.to_string(),
            });
        }
        let etag = content_etag(&bytes);
        let modified = objects.values().map(|(_, _, m)| *m).max().unwrap_or(0) + 1;
        objects.insert(key.to_string(), (bytes, etag.clone(), modified));
        Ok(etag)
    }

    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), StoreError> {
        let bytes = std::fs::read(path)
            .map_err(|e| StoreError::io("reading", &path.display().to_string(), e))?;
        self.put_bytes(key, bytes, "", WriteIf::Always).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(self
            .objects()
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, (_, _, modified))| (key.clone(), *modified))
            .collect())
    }

    async fn mark_purgeable(&self, key: &str) -> Result<(), StoreError> {
        self.purgeable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(key.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        // The memory store never awaits anything: one poll finishes every call.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("the memory store awaited something"),
        }
    }

    #[test]
    fn conditional_writes_hold_as_in_s3() {
        let store = MemoryStore::default();
        let first = block_on(store.put_bytes("k", b"one".to_vec(), "", WriteIf::Absent)).unwrap();
        // Create-once: a second create loses and changes nothing.
        assert_eq!(
            block_on(store.put_bytes("k", b"two".to_vec(), "", WriteIf::Absent)),
            Err(StoreError::ConditionFailed { key: "k".into() })
        );
        // Compare-and-swap: the ETag read wins once; a stale one loses.
        let second =
            block_on(store.put_bytes("k", b"two".to_vec(), "", WriteIf::At(&first))).unwrap();
        assert_ne!(first, second);
        assert!(
            block_on(store.put_bytes("k", b"three".to_vec(), "", WriteIf::At(&first))).is_err()
        );
        assert!(block_on(store.put_bytes("gone", b"x".to_vec(), "", WriteIf::At(&first))).is_err());
        assert_eq!(
            block_on(store.get_bytes("k")).unwrap(),
            Some((b"two".to_vec(), second))
        );
    }

    #[test]
    fn listing_is_by_prefix_in_key_order_and_pieces_rebuild_the_object() {
        let store = MemoryStore::default();
        for key in [
            "runs/b/x",
            "runs/a/y",
            "runs/a/x",
            "slots/0.json",
            "runs/ab",
        ] {
            block_on(store.put_bytes(key, key.as_bytes().to_vec(), "", WriteIf::Always)).unwrap();
        }
        let keys: Vec<String> = block_on(store.list("runs/a/"))
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["runs/a/x", "runs/a/y"]);
        let mut whole = Vec::new();
        let found = block_on(store.get_pieces::<StoreError>("runs/b/x", |p| {
            whole.extend_from_slice(p);
            Ok(())
        }))
        .unwrap();
        assert!(found);
        assert_eq!(whole, b"runs/b/x");
        block_on(store.delete("runs/b/x")).unwrap();
        assert_eq!(block_on(store.get_bytes("runs/b/x")).unwrap(), None);
        assert!(!block_on(store.get_pieces::<StoreError>("runs/b/x", |_| Ok(()))).unwrap());
    }
}
