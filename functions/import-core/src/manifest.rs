//! What split leaves in the run folder: the manifest (its commit point) and one reject line
//! per record that cannot be imported. Later stages read these; their shape is the contract.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::input::{Compression, Layout, Position};
use crate::options::DropOptions;
use crate::violation::Violation;

pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Chunks are published; the run can be submitted.
    Split,
    /// The input could not be read as a whole: no chunk is published.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    S3 {
        bucket: String,
        key: String,
        etag: String,
        /// The object version the run was split from (a versioned bucket).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version_id: Option<String>,
        size: Option<u64>,
    },
    Local {
        path: String,
        size: Option<u64>,
    },
}

/// Whether records are import records already or Auth0's own export (transformed on the way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    Import,
    Auth0Export,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectedFormat {
    pub compression: Compression,
    pub layout: Layout,
    pub flavor: Flavor,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// Relative to the run folder.
    pub key: String,
    pub seq: u32,
    pub users: u32,
    pub bytes: u64,
    pub first_index: u64,
    pub last_index: u64,
}

impl ChunkEntry {
    /// The input index of each user in the chunk, in order: a chunk holds every index in its
    /// range that split rejected neither before packing nor since. `rejected` is sorted.
    pub fn input_indexes<'r>(&self, rejected: &'r [u64]) -> impl Iterator<Item = u64> + 'r {
        (self.first_index..=self.last_index).filter(|i| rejected.binary_search(i).is_err())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub reason: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub byte_offset: Option<u64>,
    /// Records framed before the failure (none of them is published).
    pub records_before_failure: u64,
}

impl Failure {
    pub fn new(reason: String, at: Option<Position>, records_before_failure: u64) -> Self {
        Failure {
            reason,
            line: at.map(|p| p.line),
            column: at.map(|p| p.column),
            byte_offset: at.map(|p| p.byte_offset),
            records_before_failure,
        }
    }
}

/// Changes made to records on the way (Auth0 export → import records), counted by field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transformations {
    /// `auth0|` prefixes removed from `user_id` (Auth0 would otherwise store `auth0|auth0|…`).
    pub user_id_prefix_stripped: u64,
    /// Export-only fields dropped, by field name.
    pub fields_dropped: BTreeMap<String, u64>,
    /// Users of a mapped source (CSV, another system's export) accepted with no password:
    /// they will have to reset it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub imported_without_password: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    pub manifest_version: u32,
    pub run_id: String,
    pub status: RunStatus,
    pub source: Source,
    /// How submit posts this run's jobs; absent for local rehearsals (no tenant).
    pub options: Option<DropOptions>,
    pub format: Option<DetectedFormat>,
    pub failure: Option<Failure>,
    pub users_in: u64,
    pub users_accepted: u64,
    pub users_rejected: u64,
    /// users_in == users_accepted + users_rejected (a user is never silently dropped).
    pub conservation_holds: bool,
    pub rejects_by_code: BTreeMap<String, u64>,
    pub transformations: Transformations,
    /// The configured chunk limit, and the cap the whole multipart request must respect.
    pub max_chunk_bytes: u64,
    pub max_request_bytes: u64,
    /// Mean chunk size / max_chunk_bytes over all chunks (0 when there are none).
    pub mean_chunk_fill: f64,
    pub rejects_key: Option<String>,
    pub chunks: Vec<ChunkEntry>,
    /// The canary check, when the run had canaries (absent in manifests written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canaries: Option<crate::canary::CanaryReport>,
}

/// One line of `rejects.ndjson`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectEntry {
    /// 0-based position in the input.
    pub index: u64,
    /// 1-based line where the record starts.
    pub line: u64,
    pub byte_offset: u64,
    pub reasons: Vec<Violation>,
    /// The record with secret values redacted; absent when it could not be parsed or was too
    /// large to hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<serde_json::Value>,
}

impl RejectEntry {
    /// The entry for a rejected record, its secret values redacted (`redact_user`): the one way
    /// split makes an entry, so no record reaches a report unredacted.
    pub fn redacted(
        (index, line, byte_offset): (u64, u64, u64),
        reasons: Vec<Violation>,
        mut user: Option<serde_json::Value>,
    ) -> Self {
        if let Some(user) = user.as_mut() {
            crate::redact::redact_user(user);
        }
        RejectEntry {
            index,
            line,
            byte_offset,
            reasons,
            user,
        }
    }

    /// Appends the entry to `out` as one line of `rejects.ndjson`, newline included; on an error
    /// `out` is left as it was.
    pub fn write_line(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let start = out.len();
        if let Err(e) = serde_json::to_writer(&mut *out, self) {
            out.truncate(start);
            return Err(e);
        }
        out.push(b'\n');
        Ok(())
    }
}
