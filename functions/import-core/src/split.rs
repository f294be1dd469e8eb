//! The split stage: one streaming pass from a dropped export to a run folder (chunks, rejects,
//! and last the manifest). Storage is behind `RunSink`, so S3 and a local folder share it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::chunk::{Chunk, ChunkPacker};
use crate::duplicates::{Duplicate, DuplicateError, DuplicateFinder, Occurrence};
use crate::export;
use crate::input::{InputError, Layout, Position, RawRecord, RecordReader};
use crate::layout::{chunk_key, MANIFEST, REJECTS};
use crate::manifest::{
    ChunkEntry, DetectedFormat, Failure, Flavor, RejectEntry, RunManifest, RunStatus, Source,
    Transformations, MANIFEST_VERSION,
};
use crate::multipart;
use crate::options::DropOptions;
use crate::redact::redact_user;
use crate::rules::check_user;
use crate::violation::Violation;

/// The chunk size users get unless they ask otherwise (the default; Auth0 advises
/// staying under its 512,000-byte cap, and we leave room for the multipart envelope).
pub const DEFAULT_MAX_CHUNK_BYTES: usize = 500_000;

/// Our own reject codes, for what Auth0 never gets to see.
pub mod codes {
    /// The record is not valid JSON (NDJSON line).
    pub const INVALID_JSON: &str = "INVALID_JSON";
    /// The record cannot fit one import request.
    pub const RECORD_TOO_LARGE: &str = "RECORD_TOO_LARGE";
}

pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Where a run folder is written. Keys are relative to the run folder.
pub trait RunSink {
    /// Writes (or replaces) an object. May return before it is durable: see `flush`.
    fn put(&mut self, key: &str, bytes: Vec<u8>) -> Result<(), SinkError>;
    /// Writes an object from a local file (large, spooled outputs such as rejects).
    fn put_file(&mut self, key: &str, path: &Path) -> Result<(), SinkError>;
    fn get(&mut self, key: &str) -> Result<Vec<u8>, SinkError>;
    fn delete(&mut self, key: &str) -> Result<(), SinkError>;
    /// Returns once every earlier `put` is durable.
    fn flush(&mut self) -> Result<(), SinkError>;
    /// Creates the manifest only if there is none (the run's commit point). `Ok(false)` when
    /// another invocation committed first.
    fn commit_manifest(&mut self, bytes: Vec<u8>) -> Result<bool, SinkError>;
}

#[derive(Debug, Clone)]
pub struct SplitOptions {
    pub max_chunk_bytes: usize,
    /// Scratch space for spill files (Lambda: /tmp); the system temp dir when absent.
    pub scratch_dir: Option<PathBuf>,
    /// Recorded in the manifest for submit.
    pub drop_options: Option<DropOptions>,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            max_chunk_bytes: DEFAULT_MAX_CHUNK_BYTES,
            scratch_dir: None,
            drop_options: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("--max-chunk-bytes {given} is outside 1024..={max} (the largest users file that keeps a whole import request within Auth0's {cap}-byte cap)", cap = multipart::AUTH0_MAX_REQUEST_BYTES)]
    ChunkLimit { given: usize, max: usize },
    #[error("reading the input failed (retry): {0}")]
    Source(io::Error),
    #[error("writing the run folder failed: {0}")]
    Sink(SinkError),
    #[error(transparent)]
    Duplicates(#[from] DuplicateError),
    #[error("scratch file I/O failed: {0}")]
    Scratch(#[from] io::Error),
}

/// What the caller learns besides the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitOutcome {
    pub manifest: RunManifest,
    /// False when another invocation had already committed this run's manifest.
    pub committed: bool,
}

/// Splits `input` into the run folder behind `sink`.
pub fn split<R: Read + Send + 'static>(
    input: R,
    source: Source,
    run_id: &str,
    options: &SplitOptions,
    sink: &mut dyn RunSink,
) -> Result<SplitOutcome, SplitError> {
    let max = multipart::max_users_json_bytes();
    if options.max_chunk_bytes < 1024 || options.max_chunk_bytes > max {
        return Err(SplitError::ChunkLimit {
            given: options.max_chunk_bytes,
            max,
        });
    }
    let mut run = Splitter::new(source, run_id, options)?;
    // Pretty-printed input can be several times its compact size; past this it cannot fit.
    let max_raw = options.max_chunk_bytes.saturating_mul(4);
    let result = match RecordReader::open(input, max_raw) {
        Ok(mut reader) => run.stream(&mut reader, sink),
        Err(e) => Err(Halt::Input(e)),
    };
    match result {
        Ok(()) => run.finish(sink),
        Err(Halt::Input(InputError::Source(e))) => Err(SplitError::Source(e)),
        Err(Halt::Input(e)) => run.fail(e, sink),
        Err(Halt::Split(e)) => Err(e),
    }
}

/// Why streaming stopped early: the input is broken (the run fails), or we could not write.
enum Halt {
    Input(InputError),
    Split(SplitError),
}

impl From<InputError> for Halt {
    fn from(e: InputError) -> Self {
        Halt::Input(e)
    }
}

impl From<SplitError> for Halt {
    fn from(e: SplitError) -> Self {
        Halt::Split(e)
    }
}

/// Records a drop that cannot be run at all (e.g. malformed options in its key): a failed
/// manifest with the reason, and nothing else. The input is not read.
pub fn reject_drop(
    source: Source,
    run_id: &str,
    reason: String,
    sink: &mut dyn RunSink,
) -> Result<SplitOutcome, SplitError> {
    let options = SplitOptions::default();
    let run = Splitter::new(source, run_id, &options)?;
    let failure = Failure::new(reason, None, 0);
    let manifest = run.manifest(RunStatus::Failed, Some(failure));
    commit(manifest, sink)
}

struct Splitter {
    run_id: String,
    source: Source,
    drop_options: Option<DropOptions>,
    max_chunk_bytes: usize,
    packer: ChunkPacker,
    duplicates: Option<DuplicateFinder>,
    rejects_file: tempfile::NamedTempFile,
    rejects: BufWriter<File>,
    format: Option<DetectedFormat>,
    transformations: Transformations,
    chunks: Vec<ChunkEntry>,
    users_in: u64,
    users_accepted: u64,
    users_rejected: u64,
    rejects_by_code: BTreeMap<String, u64>,
    compact: Vec<u8>,
}

impl Splitter {
    fn new(source: Source, run_id: &str, options: &SplitOptions) -> Result<Self, SplitError> {
        let rejects_file = match &options.scratch_dir {
            Some(dir) => tempfile::NamedTempFile::new_in(dir)?,
            None => tempfile::NamedTempFile::new()?,
        };
        let rejects = BufWriter::with_capacity(64 * 1024, rejects_file.as_file().try_clone()?);
        Ok(Splitter {
            run_id: run_id.to_string(),
            source,
            drop_options: options.drop_options.clone(),
            max_chunk_bytes: options.max_chunk_bytes,
            packer: ChunkPacker::new(options.max_chunk_bytes),
            duplicates: Some(DuplicateFinder::new(options.scratch_dir.as_deref())?),
            rejects_file,
            rejects,
            format: None,
            transformations: Transformations::default(),
            chunks: Vec::new(),
            users_in: 0,
            users_accepted: 0,
            users_rejected: 0,
            rejects_by_code: BTreeMap::new(),
            compact: Vec::with_capacity(4096),
        })
    }

    fn stream(&mut self, reader: &mut RecordReader, sink: &mut dyn RunSink) -> Result<(), Halt> {
        let mut flavor = match reader.layout() {
            Layout::JsonArray => Some(Flavor::Import),
            // NDJSON could be Auth0's own export: the first record tells.
            Layout::Ndjson => None,
        };
        self.format = Some(DetectedFormat {
            compression: reader.compression(),
            layout: reader.layout(),
            flavor: flavor.unwrap_or(Flavor::Import),
        });
        let mut raw = RawRecord::default();
        while reader.next_into(&mut raw)? {
            self.users_in += 1;
            if raw.oversized {
                let reason = Violation::new(
                    codes::RECORD_TOO_LARGE,
                    "",
                    format!(
                        "the record is over {} bytes as written in the input; one import request holds at most {} bytes of users",
                        raw.bytes.len(),
                        self.max_chunk_bytes
                    ),
                );
                self.reject(&raw, vec![reason], None)?;
                continue;
            }
            let mut user: Value = match serde_json::from_slice(&raw.bytes) {
                Ok(v) => v,
                Err(e) => {
                    let at = locate(&raw, &e);
                    if reader.layout() == Layout::JsonArray || (raw.index == 0 && e.is_eof()) {
                        let hint = if reader.layout() == Layout::Ndjson {
                            " (the first line is not a complete JSON object: pretty-printed JSON must be a JSON array, NDJSON needs one user per line)"
                        } else {
                            ""
                        };
                        return Err(Halt::Input(InputError::Syntax {
                            at,
                            message: format!(
                                "record {}: {}{hint}",
                                raw.index,
                                strip_serde_position(&e)
                            ),
                        }));
                    }
                    let reason = Violation::new(
                        codes::INVALID_JSON,
                        "",
                        format!(
                            "line {} is not valid JSON at column {}: {}",
                            at.line,
                            at.column,
                            strip_serde_position(&e)
                        ),
                    );
                    self.reject(&raw, vec![reason], None)?;
                    continue;
                }
            };
            let flavor = *flavor.get_or_insert_with(|| {
                if export::looks_like_auth0_export(&user) {
                    Flavor::Auth0Export
                } else {
                    Flavor::Import
                }
            });
            if let Some(f) = self.format.as_mut() {
                f.flavor = flavor;
            }
            if flavor == Flavor::Auth0Export {
                export::drop_export_fields(&mut user, &mut self.transformations);
            }
            export::strip_id_prefix(&mut user, &mut self.transformations);

            let violations = check_user(&user);
            if !violations.is_empty() {
                self.reject(&raw, violations, Some(user))?;
                continue;
            }
            self.compact.clear();
            // Writing a Value into a Vec cannot fail (no I/O, keys are strings).
            if let Err(e) = serde_json::to_writer(&mut self.compact, &user) {
                let reason = Violation::new(codes::INVALID_JSON, "", e.to_string());
                self.reject(&raw, vec![reason], Some(user))?;
                continue;
            }
            if !self.packer.fits_alone(self.compact.len()) {
                let reason = Violation::new(
                    codes::RECORD_TOO_LARGE,
                    "",
                    format!(
                        "the record is {} bytes as compact JSON; a chunk holds at most {} bytes (including the array brackets)",
                        self.compact.len(),
                        self.max_chunk_bytes
                    ),
                );
                self.reject(&raw, vec![reason], Some(user))?;
                continue;
            }
            let (closed, placement) = self.packer.push(raw.index, &self.compact);
            if let Some(chunk) = closed {
                self.publish(chunk, sink)?;
            }
            self.users_accepted += 1;
            let at = Occurrence {
                index: raw.index,
                line: raw.line,
                seq: placement.seq,
                position: placement.position,
            };
            if let Some(finder) = self.duplicates.as_mut() {
                finder.record(&user, at).map_err(SplitError::from)?;
            }
        }
        Ok(())
    }

    fn publish(&mut self, chunk: Chunk, sink: &mut dyn RunSink) -> Result<(), SplitError> {
        let key = chunk_key(chunk.seq);
        self.chunks.push(ChunkEntry {
            key: key.clone(),
            seq: chunk.seq,
            users: chunk.users,
            bytes: chunk.bytes.len() as u64,
            first_index: chunk.first_index,
            last_index: chunk.last_index,
        });
        sink.put(&key, chunk.bytes).map_err(SplitError::Sink)
    }

    fn reject(
        &mut self,
        raw: &RawRecord,
        reasons: Vec<Violation>,
        user: Option<Value>,
    ) -> Result<(), SplitError> {
        self.write_reject(raw.index, raw.line, raw.byte_offset, reasons, user)
    }

    fn write_reject(
        &mut self,
        index: u64,
        line: u64,
        byte_offset: u64,
        reasons: Vec<Violation>,
        user: Option<Value>,
    ) -> Result<(), SplitError> {
        self.users_rejected += 1;
        let codes: BTreeSet<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
        for code in codes {
            *self.rejects_by_code.entry(code.to_string()).or_default() += 1;
        }
        let user = user.map(|mut u| {
            redact_user(&mut u);
            u
        });
        let entry = RejectEntry {
            index,
            line,
            byte_offset,
            reasons,
            user,
        };
        serde_json::to_writer(&mut self.rejects, &entry).map_err(io::Error::from)?;
        self.rejects.write_all(b"\n")?;
        Ok(())
    }

    /// Takes later copies of a user back out of the chunks they were packed into.
    fn remove_duplicates(
        &mut self,
        duplicates: Vec<Duplicate>,
        sink: &mut dyn RunSink,
    ) -> Result<(), SplitError> {
        let mut by_chunk: BTreeMap<u32, Vec<Duplicate>> = BTreeMap::new();
        for d in duplicates {
            by_chunk.entry(d.at.seq).or_default().push(d);
        }
        for (seq, dups) in by_chunk {
            let key = chunk_key(seq);
            let bytes = sink.get(&key).map_err(SplitError::Sink)?;
            let users: Vec<Value> = serde_json::from_slice(&bytes).map_err(io::Error::from)?;
            let drop: BTreeMap<u32, &Duplicate> = dups.iter().map(|d| (d.at.position, d)).collect();
            let mut kept = Vec::with_capacity(users.len());
            for (pos, user) in users.into_iter().enumerate() {
                match drop.get(&(pos as u32)) {
                    Some(d) => {
                        self.users_accepted -= 1;
                        // Duplicates were accepted records: their byte offset is not kept in
                        // the spill index, their line is.
                        self.write_reject(d.at.index, d.at.line, 0, d.reasons.clone(), Some(user))?;
                    }
                    None => kept.push(user),
                }
            }
            let Some(entry_at) = self.chunks.iter().position(|c| c.seq == seq) else {
                continue;
            };
            if kept.is_empty() {
                sink.delete(&key).map_err(SplitError::Sink)?;
                self.chunks.remove(entry_at);
                continue;
            }
            let bytes = serde_json::to_vec(&kept).map_err(io::Error::from)?;
            let entry = &mut self.chunks[entry_at];
            entry.users = kept.len() as u32;
            entry.bytes = bytes.len() as u64;
            sink.put(&key, bytes).map_err(SplitError::Sink)?;
        }
        Ok(())
    }

    fn finish(mut self, sink: &mut dyn RunSink) -> Result<SplitOutcome, SplitError> {
        if let Some(chunk) = self.packer.finish() {
            self.publish(chunk, sink)?;
        }
        sink.flush().map_err(SplitError::Sink)?;
        let duplicates = match self.duplicates.take() {
            Some(finder) => finder.resolve()?,
            None => Vec::new(),
        };
        if !duplicates.is_empty() {
            self.remove_duplicates(duplicates, sink)?;
        }
        self.rejects.flush()?;
        sink.put_file(REJECTS, self.rejects_file.path())
            .map_err(SplitError::Sink)?;
        sink.flush().map_err(SplitError::Sink)?;
        let manifest = self.manifest(RunStatus::Split, None);
        commit(manifest, sink)
    }

    fn fail(
        mut self,
        error: InputError,
        sink: &mut dyn RunSink,
    ) -> Result<SplitOutcome, SplitError> {
        // Nothing of a broken input is published: chunks already written are taken back.
        sink.flush().map_err(SplitError::Sink)?;
        for chunk in std::mem::take(&mut self.chunks) {
            sink.delete(&chunk.key).map_err(SplitError::Sink)?;
        }
        let failure = Failure::new(error.to_string(), error.position(), self.users_in);
        self.users_in = 0;
        self.users_accepted = 0;
        self.users_rejected = 0;
        self.rejects_by_code.clear();
        let manifest = self.manifest(RunStatus::Failed, Some(failure));
        commit(manifest, sink)
    }

    fn manifest(&self, status: RunStatus, failure: Option<Failure>) -> RunManifest {
        let total: u64 = self.chunks.iter().map(|c| c.bytes).sum();
        let mean_chunk_fill = if self.chunks.is_empty() {
            0.0
        } else {
            total as f64 / (self.chunks.len() as f64 * self.max_chunk_bytes as f64)
        };
        RunManifest {
            manifest_version: MANIFEST_VERSION,
            run_id: self.run_id.clone(),
            status,
            source: self.source.clone(),
            options: self.drop_options.clone(),
            format: self.format.clone(),
            failure,
            users_in: self.users_in,
            users_accepted: self.users_accepted,
            users_rejected: self.users_rejected,
            conservation_holds: self.users_in == self.users_accepted + self.users_rejected,
            rejects_by_code: self.rejects_by_code.clone(),
            transformations: self.transformations.clone(),
            max_chunk_bytes: self.max_chunk_bytes as u64,
            max_request_bytes: multipart::AUTH0_MAX_REQUEST_BYTES as u64,
            mean_chunk_fill,
            rejects_key: (status == RunStatus::Split).then(|| REJECTS.to_string()),
            chunks: self.chunks.clone(),
        }
    }
}

fn commit(manifest: RunManifest, sink: &mut dyn RunSink) -> Result<SplitOutcome, SplitError> {
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(io::Error::from)?;
    let committed = sink.commit_manifest(bytes).map_err(SplitError::Sink)?;
    Ok(SplitOutcome {
        manifest,
        committed,
    })
}

/// Absolute position of a parse error inside a record.
fn locate(raw: &RawRecord, e: &serde_json::Error) -> Position {
    let err_line = e.line().max(1) as u64;
    let err_col = e.column().max(1) as u64;
    let mut offset_in_record = 0u64;
    let mut seen = 1u64;
    if err_line > 1 {
        for (i, b) in raw.bytes.iter().enumerate() {
            if *b == b'\n' {
                seen += 1;
                if seen == err_line {
                    offset_in_record = i as u64 + 1;
                    break;
                }
            }
        }
    }
    let byte_offset = raw.byte_offset + offset_in_record + err_col - 1;
    let column = if err_line == 1 {
        raw.column + err_col - 1
    } else {
        err_col
    };
    Position {
        line: raw.line + err_line - 1,
        column,
        byte_offset,
    }
}

fn strip_serde_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A run folder in memory, for tests and dry runs.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub objects: BTreeMap<String, Vec<u8>>,
}

impl RunSink for MemorySink {
    fn put(&mut self, key: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
        self.objects.insert(key.to_string(), bytes);
        Ok(())
    }

    fn put_file(&mut self, key: &str, path: &Path) -> Result<(), SinkError> {
        self.objects.insert(key.to_string(), std::fs::read(path)?);
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
