//! The ledger's store on local disk for `migrate`: keys are paths under the folder, ETags are
//! content hashes, and conditional writes are made atomic by one lock (the CLI is the only
//! writer) plus write-aside-then-rename (a crash never leaves half a file).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use import_core::storage::{content_etag, ObjectStore, StoreError, WriteIf};
use tokio::sync::Mutex;

pub struct FolderStore {
    root: PathBuf,
    writes: Mutex<()>,
}

const STAGING_PREFIX: &str = ".staging-";

impl FolderStore {
    pub fn new(root: &Path) -> Self {
        FolderStore {
            root: root.to_path_buf(),
            writes: Mutex::new(()),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn write_atomically(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(key);
        let failed =
            |e: &dyn std::fmt::Display| StoreError::io("writing", &path.display().to_string(), e);
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(|e| failed(&e))?;
        let staged = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempfile_in(dir)
            .map_err(|e| failed(&e))?;
        fs::write(staged.path(), bytes).map_err(|e| failed(&e))?;
        staged.persist(&path).map_err(|e| failed(&e))?;
        Ok(())
    }
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("reading", &path.display().to_string(), e)),
    }
}

impl ObjectStore for FolderStore {
    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        Ok(read(&self.path(key))?.map(|b| {
            let etag = content_etag(&b);
            (b, etag)
        }))
    }

    async fn get_pieces<E: From<StoreError> + Send>(
        &self,
        key: &str,
        mut on_piece: impl FnMut(&[u8]) -> Result<(), E> + Send,
    ) -> Result<bool, E> {
        use std::io::Read as _;
        let path = self.path(key);
        let failed = |e: std::io::Error| StoreError::io("reading", &path.display().to_string(), e);
        let mut source = match fs::File::open(&path) {
            Ok(source) => source,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(failed(e).into()),
        };
        let mut piece = vec![0u8; 64 * 1024];
        loop {
            let n = source.read(&mut piece).map_err(failed)?;
            if n == 0 {
                return Ok(true);
            }
            on_piece(&piece[..n])?;
        }
    }

    async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        _content_type: &str,
        condition: WriteIf<'_>,
    ) -> Result<String, StoreError> {
        let _held = self.writes.lock().await;
        let current = read(&self.path(key))?;
        let allowed = match condition {
            WriteIf::Absent => current.is_none(),
            WriteIf::At(etag) => current.is_some_and(|c| content_etag(&c) == etag),
            WriteIf::Always => true,
        };
        if !allowed {
            return Err(StoreError::ConditionFailed {
                key: key.to_string(),
            });
        }
        self.write_atomically(key, &bytes)?;
        Ok(content_etag(&bytes))
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), StoreError> {
        let bytes = fs::read(path)
            .map_err(|e| StoreError::io("reading", &path.display().to_string(), e))?;
        let _held = self.writes.lock().await;
        self.write_atomically(key, &bytes)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let _held = self.writes.lock().await;
        match fs::remove_file(self.path(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("removing", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>, StoreError> {
        // Walk from the deepest folder the prefix names.
        let start = match prefix.rfind('/') {
            Some(i) => self.root.join(&prefix[..i]),
            None => self.root.clone(),
        };
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("listing", &dir.display().to_string(), e)),
            };
            for entry in entries {
                let entry =
                    entry.map_err(|e| StoreError::io("listing", &dir.display().to_string(), e))?;
                let path = entry.path();
                let meta = entry
                    .metadata()
                    .map_err(|e| StoreError::io("listing", &path.display().to_string(), e))?;
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(STAGING_PREFIX)
                {
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                if key.starts_with(prefix) {
                    let modified = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                        .unwrap_or(0);
                    out.push((key, modified));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    // A local folder has no retention rule: the operator owns its files.
    async fn mark_purgeable(&self, _key: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use import_core::ledger::{Holder, Ledger, SlotLease};

    #[tokio::test]
    async fn conditional_writes_behave_like_s3() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let written = store
            .put_bytes("a/b.json", b"1".to_vec(), "", WriteIf::Absent)
            .await
            .unwrap();
        assert!(matches!(
            store
                .put_bytes("a/b.json", b"2".to_vec(), "", WriteIf::Absent)
                .await,
            Err(StoreError::ConditionFailed { .. })
        ));
        let (bytes, etag) = store.get_bytes("a/b.json").await.unwrap().unwrap();
        assert_eq!(bytes, b"1");
        assert_eq!(written, etag);
        store
            .put_bytes("a/b.json", b"3".to_vec(), "", WriteIf::At(&etag))
            .await
            .unwrap();
        assert!(matches!(
            store
                .put_bytes("a/b.json", b"4".to_vec(), "", WriteIf::At(&etag))
                .await,
            Err(StoreError::ConditionFailed { .. })
        ));
        assert_eq!(store.list("a/").await.unwrap().len(), 1);
        assert!(store.list("b/").await.unwrap().is_empty());
        store.delete("a/b.json").await.unwrap();
        assert!(store.get_bytes("a/b.json").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn slots_are_exclusive_on_a_folder_too() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(FolderStore::new(dir.path()));
        let me = Holder {
            name: "me".into(),
            deadline_ms: None,
        };
        assert_eq!(
            ledger.acquire_slot(2, "r", 1, &me, 0).await.unwrap(),
            Some(0)
        );
        assert_eq!(
            ledger.acquire_slot(2, "r", 2, &me, 0).await.unwrap(),
            Some(1)
        );
        assert_eq!(ledger.acquire_slot(2, "r", 3, &me, 0).await.unwrap(), None);
        assert!(ledger.release_slot(0, "r", 1, 5).await.unwrap());
        assert!(!ledger.release_slot(0, "r", 1, 5).await.unwrap());
        let lease: SlotLease = ledger.get("slots/0.json").await.unwrap().unwrap().value;
        assert!(matches!(lease, SlotLease::Free { .. }));
    }
}
