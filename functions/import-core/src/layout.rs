//! The run folder: every object key the pipeline reads or writes is named here, once.
//! A run id is derived from the dropped object's key and ETag, so a duplicate event finds its run.

use sha2::{Digest, Sha256};

/// Where operators drop exports (overridable by the functions' configuration).
pub const DEFAULT_INBOX_PREFIX: &str = "inbox/";
pub const RUNS_PREFIX: &str = "runs/";

pub const MANIFEST: &str = "manifest.json";
pub const REJECTS: &str = "rejects.ndjson";
pub const CHUNKS_DIR: &str = "chunks/";

/// `runs/<run-id>/`
pub fn run_prefix(run_id: &str) -> String {
    format!("{RUNS_PREFIX}{run_id}/")
}

/// Chunk object, relative to the run folder: `chunks/000001.json`.
pub fn chunk_key(seq: u32) -> String {
    format!("{CHUNKS_DIR}{seq:06}.json")
}

/// A readable, deterministic run id: a slug of the file name and 16 hex digits of
/// SHA-256(key, etag). The same object (same key and ETag) always maps to the same run;
/// re-uploading changed content under the same key makes a new ETag and so a new run.
pub fn run_id(object_key: &str, etag: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(object_key.as_bytes());
    hasher.update([0u8]);
    hasher.update(etag.trim_matches('"').as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let name = object_key.rsplit('/').next().unwrap_or(object_key);
    let slug = slug(name);
    if slug.is_empty() {
        hex
    } else {
        format!("{slug}-{hex}")
    }
}

fn slug(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            dash = false;
        } else if !dash && !out.is_empty() {
            out.push('-');
            dash = true;
        }
        if out.len() >= 40 {
            break;
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_is_deterministic_and_etag_sensitive() {
        let a = run_id("inbox/con_x/My Users 2024.json.gz", "\"abc\"");
        assert_eq!(a, run_id("inbox/con_x/My Users 2024.json.gz", "abc"));
        assert_ne!(a, run_id("inbox/con_x/My Users 2024.json.gz", "abd"));
        assert_ne!(a, run_id("inbox/con_y/My Users 2024.json.gz", "abc"));
        assert!(a.starts_with("my-users-2024-json-gz-"), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn keys_sort_in_sequence_order() {
        assert!(chunk_key(9) < chunk_key(10));
        assert_eq!(run_prefix("r1"), "runs/r1/");
    }
}
