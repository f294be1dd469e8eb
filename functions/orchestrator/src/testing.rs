//! A store for this crate's tests that watches the stages' requests: it records each listing
//! (what `poll`'s sweeps list is most of a large run's S3 bill) and, given a seed, lets other
//! tasks run a varying number of times before each request, so that two stages sharing it
//! interleave request by request.

use std::sync::Mutex;

use import_core::ledger::{ObjectStore, StoreError};
use import_core::storage::{MemoryStore, WriteIf};

pub(crate) struct Watched {
    pub(crate) inner: MemoryStore,
    /// xorshift64 state; `None`: no yields.
    seed: Mutex<Option<u64>>,
    /// Each listing: (prefix, start_after), in order.
    lists: Mutex<Vec<(String, Option<String>)>>,
    /// A key whose writes land but are answered "condition failed", as the retry of a write
    /// whose first answer was lost is answered.
    pub(crate) lose_answers_to: Mutex<Option<String>>,
}

impl Watched {
    pub(crate) fn new(inner: MemoryStore, seed: Option<u64>) -> Self {
        Watched {
            inner,
            seed: Mutex::new(seed),
            lists: Mutex::new(Vec::new()),
            lose_answers_to: Mutex::new(None),
        }
    }

    /// The listings made since the last call.
    pub(crate) fn take_lists(&self) -> Vec<(String, Option<String>)> {
        std::mem::take(&mut *self.lists.lock().unwrap())
    }

    async fn pause(&self) {
        let yields = match &mut *self.seed.lock().unwrap() {
            Some(x) => {
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                *x % 4
            }
            None => 0,
        };
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
    }
}

impl ObjectStore for Watched {
    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        self.pause().await;
        self.inner.get_bytes(key).await
    }
    async fn get_pieces<E: From<StoreError> + Send>(
        &self,
        key: &str,
        piece: impl FnMut(&[u8]) -> Result<(), E> + Send,
    ) -> Result<bool, E> {
        self.pause().await;
        self.inner.get_pieces(key, piece).await
    }
    async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        condition: WriteIf<'_>,
    ) -> Result<String, StoreError> {
        self.pause().await;
        let written = self
            .inner
            .put_bytes(key, bytes, content_type, condition)
            .await?;
        if self.lose_answers_to.lock().unwrap().as_deref() == Some(key) {
            return Err(StoreError::ConditionFailed {
                key: key.to_string(),
            });
        }
        Ok(written)
    }
    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), StoreError> {
        self.pause().await;
        self.inner.put_file(key, path).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.pause().await;
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>, StoreError> {
        self.pause().await;
        self.lists.lock().unwrap().push((prefix.to_string(), None));
        self.inner.list(prefix).await
    }
    async fn list_after(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.pause().await;
        self.lists
            .lock()
            .unwrap()
            .push((prefix.to_string(), Some(start_after.to_string())));
        self.inner.list_after(prefix, start_after).await
    }
    async fn mark_purgeable(&self, key: &str) -> Result<(), StoreError> {
        self.pause().await;
        self.inner.mark_purgeable(key).await
    }
}
