//! A run folder on local disk, laid out exactly like `s3://bucket/runs/<run-id>/`, so a
//! rehearsal produces the same files the split Lambda would.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use import_core::layout::{CHUNKS_DIR, MANIFEST};
use import_core::storage::{RunSink, SinkError};

pub struct FolderSink {
    root: PathBuf,
    /// Objects being written in parts, each into a file of its own beside the run folder's
    /// (removed unless finished).
    parts: BTreeMap<String, tempfile::NamedTempFile>,
}

impl FolderSink {
    /// Prepares `root`. A folder that already holds a committed run is refused (its manifest
    /// is the record of that run); chunks left by an interrupted run are cleared.
    pub fn create(root: &Path) -> Result<Self, String> {
        if root.join(MANIFEST).exists() {
            return Err(format!(
                "{} already holds a run (manifest.json); choose another --out folder or remove it",
                root.display()
            ));
        }
        let chunks = root.join(CHUNKS_DIR);
        if chunks.exists() {
            fs::remove_dir_all(&chunks)
                .map_err(|e| format!("clearing {}: {e}", chunks.display()))?;
        }
        fs::create_dir_all(&chunks).map_err(|e| format!("creating {}: {e}", chunks.display()))?;
        Ok(FolderSink {
            root: root.to_path_buf(),
            parts: BTreeMap::new(),
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

impl RunSink for FolderSink {
    fn put(&mut self, key: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
        let path = self.path(key);
        // The folder is made only when missing (`create` made chunks/), not before every
        // object: a run puts one per chunk.
        let mut written = fs::write(&path, &bytes);
        if let (Err(e), Some(parent)) = (&written, path.parent()) {
            if e.kind() == std::io::ErrorKind::NotFound {
                fs::create_dir_all(parent)?;
                written = fs::write(&path, &bytes);
            }
        }
        written.map_err(|e| format!("writing {}: {e}", path.display()).into())
    }

    fn put_part(&mut self, key: &str, part: &[u8]) -> Result<(), SinkError> {
        let file = match self.parts.entry(key.to_string()) {
            Entry::Occupied(file) => file.into_mut(),
            Entry::Vacant(slot) => slot.insert(tempfile::NamedTempFile::new_in(&self.root)?),
        };
        file.write_all(part)
            .map_err(|e| format!("writing {} (for {key}): {e}", file.path().display()).into())
    }

    fn finish_parts(&mut self, key: &str) -> Result<(), SinkError> {
        let path = self.path(key);
        match self.parts.remove(key) {
            Some(file) => {
                file.persist(&path)
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
                Ok(())
            }
            None => self.put(key, Vec::new()),
        }
    }

    fn abort_parts(&mut self, key: &str) -> Result<(), SinkError> {
        // The file being written is removed as it is dropped.
        self.parts.remove(key);
        Ok(())
    }

    fn get(&mut self, key: &str) -> Result<Vec<u8>, SinkError> {
        let path = self.path(key);
        fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()).into())
    }

    fn delete(&mut self, key: &str) -> Result<(), SinkError> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("removing {}: {e}", path.display()).into()),
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn commit_manifest(&mut self, bytes: Vec<u8>) -> Result<bool, SinkError> {
        // Write aside, then link into place: the manifest appears whole or not at all, and
        // only if no other run committed first.
        let mut staged = tempfile::NamedTempFile::new_in(&self.root)?;
        staged.write_all(&bytes)?;
        staged.as_file().sync_all()?;
        match fs::hard_link(staged.path(), self.path(MANIFEST)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_writes_into_folders_made_when_missing_and_names_the_file_it_cannot_write() {
        let root = tempfile::tempdir().unwrap();
        let mut sink = FolderSink::create(root.path()).unwrap();
        sink.put("chunks/000001.json", b"[1]".to_vec()).unwrap();
        sink.put("reports/deep/x.json", b"{}".to_vec()).unwrap();
        sink.put("reports/deep/x.json", b"{\"a\":1}".to_vec())
            .unwrap();
        assert_eq!(
            fs::read(root.path().join("chunks/000001.json")).unwrap(),
            b"[1]"
        );
        assert_eq!(
            fs::read(root.path().join("reports/deep/x.json")).unwrap(),
            b"{\"a\":1}"
        );
        // A folder that cannot be made (a file holds its name) is an error naming the object.
        fs::write(root.path().join("blocked"), b"").unwrap();
        let error = sink.put("blocked/y.json", b"{}".to_vec()).unwrap_err();
        assert!(error.to_string().contains("blocked"), "{error}");
    }
}
