//! The split stage: one streaming pass from a dropped export to a run folder (chunks, rejects,
//! and last the manifest). Storage is behind `RunSink`, so S3 and a local folder share it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use serde_json::Value;

use crate::canary::{Canaries, CanaryFinder, CanaryReport};
use crate::chunk::{Chunk, ChunkPacker};
use crate::duplicates::{Duplicate, DuplicateError, DuplicateFinder, Duplicates, Occurrence};
use crate::input::{InputError, RawRecord, RecordReader, Records};
use crate::layout::{attempt_dir, chunk_key, rejects_key, REPORT_HTML, REPORT_JSON};
use crate::manifest::{
    ChunkEntry, DetectedFormat, Failure, Flavor, RejectEntry, RunManifest, RunStatus, Source,
    Transformations, MANIFEST_VERSION,
};
use crate::mapping::{MappedReader, Mapping};
use crate::multipart;
use crate::options::DropOptions;
use crate::pipeline::{self, Batch, Verdict};
use crate::violation::Violation;
use std::sync::Arc;

pub use crate::storage::{MemorySink, RunSink, SinkError, MIN_PART_BYTES};

/// The chunk size users get unless they ask otherwise (the issue's default; Auth0 advises
/// staying under its 512,000-byte cap, and we leave room for the multipart envelope).
pub const DEFAULT_MAX_CHUNK_BYTES: usize = 500_000;

/// Our own reject codes, for what Auth0 never gets to see.
pub mod codes {
    /// The record is not valid JSON (NDJSON line).
    pub const INVALID_JSON: &str = "INVALID_JSON";
    /// The record cannot fit one import request.
    pub const RECORD_TOO_LARGE: &str = "RECORD_TOO_LARGE";
    /// A source row the mapping cannot make a user of (a cell of the wrong type, a row with
    /// the wrong number of fields).
    pub const MAPPING: &str = "MAPPING";
    /// A stored password hash the converter refuses (a format Auth0 cannot import, or one
    /// that is not what the mapping says).
    pub const PASSWORD_FORMAT: &str = "PASSWORD_FORMAT";
}

/// Rejects are handed to the sink in parts of this size: over S3's minimum, and at S3's limit
/// of 10,000 parts, room for 80 GiB of rejects.
const REJECT_PART_BYTES: usize = 8 * 1024 * 1024;

/// Room for a part and the entry that takes it over `REJECT_PART_BYTES`, set aside once and
/// filled again for each part: a buffer per part, even freed, stays with the allocator a while
/// (a 1 GB drop of refused records peaked at 84 MB that way, against 48 MB reusing one).
const REJECT_BUFFER_BYTES: usize = REJECT_PART_BYTES + 256 * 1024;

#[derive(Debug, Clone)]
pub struct SplitOptions {
    pub max_chunk_bytes: usize,
    /// Scratch space for spill files (Lambda: /tmp); the system temp dir when absent.
    pub scratch_dir: Option<PathBuf>,
    /// Recorded in the manifest for submit.
    pub drop_options: Option<DropOptions>,
    /// The split attempt whose folder (`layout::attempt_dir`) gets the chunks and rejects, so
    /// concurrent or dead attempts at one run never write the objects a committed manifest
    /// lists. `None`: the run folder itself (a store with a single writer, such as the CLI's).
    pub attempt: Option<String>,
    /// Accounts whose password is known: each is found in the drop and its hash verified before
    /// the manifest commits. A failed or missing one stops the run (no chunk stays published)
    /// unless `canaries.warn_only` or the drop option `canary_warn` is set.
    pub canaries: Canaries,
    /// How to read the drop when it is not in Auth0's formats: a CSV's mapping, or a preset's
    /// (`mapping::presets`). `None`: JSON array, NDJSON or an Auth0 export, as is.
    pub mapping: Option<Arc<Mapping>>,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            max_chunk_bytes: DEFAULT_MAX_CHUNK_BYTES,
            scratch_dir: None,
            drop_options: None,
            attempt: None,
            canaries: Canaries::default(),
            mapping: None,
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

/// Splits `input` into the run folder behind `sink`, checking records on every available core.
pub fn split<R: Read + Send + 'static>(
    input: R,
    source: Source,
    run_id: &str,
    options: &SplitOptions,
    sink: &mut dyn RunSink,
) -> Result<SplitOutcome, SplitError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    split_with_workers(input, source, run_id, options, sink, workers)
}

/// `split` with `workers` checking threads (at least one). The run folder is the same for any
/// count; this is for tests and for callers that must share the machine. (A count here rather
/// than in `SplitOptions`: callers build that struct literally.)
pub fn split_with_workers<R: Read + Send + 'static>(
    input: R,
    source: Source,
    run_id: &str,
    options: &SplitOptions,
    sink: &mut dyn RunSink,
    workers: usize,
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
    let result = match options.mapping.clone() {
        None => match RecordReader::open(input, max_raw) {
            Ok(reader) => run.stream(reader, workers, sink),
            Err(e) => Err(Halt::Input(e)),
        },
        Some(mapping) => match MappedReader::open(input, mapping, max_raw) {
            Ok(reader) => run.stream(reader, workers, sink),
            Err(e) => Err(Halt::Input(e)),
        },
    };
    let rejects = run.rejects_key.clone();
    let outcome = match result {
        Ok(()) => run.finish(sink),
        Err(Halt::Input(InputError::Source(e))) => Err(SplitError::Source(e)),
        Err(Halt::Input(e)) => run.fail(e, sink),
        Err(Halt::Split(e)) => Err(e),
    };
    if outcome.is_err() {
        abandon_rejects(&rejects, sink);
    }
    outcome
}

/// Abandons the rejects handed over so far (nothing when none were, or they were finished).
/// Best effort: the bucket's lifecycle rule removes an upload left open, and what failed the
/// run matters more than this.
fn abandon_rejects(key: &str, sink: &mut dyn RunSink) {
    let _ = sink.abort_parts(key);
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
    let failure = Failure::new(reason, None, 0);
    let manifest = uncounted_manifest(run_id, source, None, DEFAULT_MAX_CHUNK_BYTES, Some(failure));
    commit(manifest, sink)
}

/// A run's manifest before anything is counted: failed when `failure` is given, and no rejects
/// file or chunks. The splitter adds its counts on top.
fn uncounted_manifest(
    run_id: &str,
    source: Source,
    options: Option<DropOptions>,
    max_chunk_bytes: usize,
    failure: Option<Failure>,
) -> RunManifest {
    RunManifest {
        manifest_version: MANIFEST_VERSION,
        run_id: run_id.to_string(),
        status: if failure.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Split
        },
        source,
        options,
        format: None,
        failure,
        users_in: 0,
        users_accepted: 0,
        users_rejected: 0,
        conservation_holds: true,
        rejects_by_code: BTreeMap::new(),
        transformations: Transformations::default(),
        max_chunk_bytes: max_chunk_bytes as u64,
        max_request_bytes: multipart::AUTH0_MAX_REQUEST_BYTES as u64,
        mean_chunk_fill: 0.0,
        rejects_key: None,
        chunks: Vec::new(),
        canaries: None,
    }
}

struct Splitter {
    run_id: String,
    /// The attempt's folder in the run folder (`layout::attempt_dir`), and its rejects object.
    dir: String,
    rejects_key: String,
    source: Source,
    drop_options: Option<DropOptions>,
    max_chunk_bytes: usize,
    packer: ChunkPacker,
    duplicates: Option<DuplicateFinder>,
    /// Reject entries not yet handed to the sink (under `REJECT_PART_BYTES`).
    rejects: Vec<u8>,
    /// The input index of each reject so far, 8 bytes apiece, for `rejected_from`.
    rejected_file: tempfile::NamedTempFile,
    rejected: BufWriter<File>,
    /// Where the records of each published chunk end (`Chunk::ends`), 4 bytes a record in
    /// publishing order, and where in the file each chunk's ends start: duplicates are taken
    /// back out of chunks by these, without framing the chunks again.
    record_ends_file: tempfile::NamedTempFile,
    record_ends: BufWriter<File>,
    record_ends_at: Vec<u64>,
    record_ends_written: u64,
    format: Option<DetectedFormat>,
    transformations: Transformations,
    chunks: Vec<ChunkEntry>,
    users_in: u64,
    users_accepted: u64,
    users_rejected: u64,
    rejects_by_code: BTreeMap<String, u64>,
    /// Present when the run has canaries.
    canaries: Option<CanaryFinder>,
    canary_warn: bool,
}

impl Splitter {
    fn new(source: Source, run_id: &str, options: &SplitOptions) -> Result<Self, SplitError> {
        let scratch_file = || match &options.scratch_dir {
            Some(dir) => tempfile::NamedTempFile::new_in(dir),
            None => tempfile::NamedTempFile::new(),
        };
        let rejected_file = scratch_file()?;
        let rejected = BufWriter::new(rejected_file.as_file().try_clone()?);
        let record_ends_file = scratch_file()?;
        let record_ends = BufWriter::new(record_ends_file.as_file().try_clone()?);
        let dir = attempt_dir(options.attempt.as_deref());
        Ok(Splitter {
            run_id: run_id.to_string(),
            rejects_key: rejects_key(&dir),
            dir,
            source,
            drop_options: options.drop_options.clone(),
            max_chunk_bytes: options.max_chunk_bytes,
            packer: ChunkPacker::new(options.max_chunk_bytes),
            duplicates: Some(DuplicateFinder::new(options.scratch_dir.as_deref())?),
            rejects: Vec::new(),
            rejected_file,
            rejected,
            record_ends_file,
            record_ends,
            record_ends_at: Vec::new(),
            record_ends_written: 0,
            format: None,
            transformations: Transformations::default(),
            chunks: Vec::new(),
            users_in: 0,
            users_accepted: 0,
            users_rejected: 0,
            rejects_by_code: BTreeMap::new(),
            canaries: (!options.canaries.list.is_empty())
                .then(|| CanaryFinder::new(&options.canaries.list)),
            canary_warn: options.canaries.warn_only
                || options.drop_options.as_ref().is_some_and(|o| o.canary_warn),
        })
    }

    fn stream<R: Records>(
        &mut self,
        reader: R,
        workers: usize,
        sink: &mut dyn RunSink,
    ) -> Result<(), Halt> {
        self.format = Some(DetectedFormat {
            compression: reader.compression(),
            layout: reader.layout(),
            flavor: Flavor::Import,
        });
        let context = pipeline::Context {
            layout: reader.layout(),
            max_chunk_bytes: self.max_chunk_bytes,
        };
        let finished = pipeline::run(reader, context, workers, |batch| self.absorb(batch, sink))?;
        if finished {
            Ok(())
        } else {
            // Only a panicking thread stops the pipeline early, and the scope re-raises it
            // before this line; kept so a silent stop could never pass for a complete run.
            Err(Halt::Split(SplitError::Scratch(io::Error::other(
                "the checking threads stopped before the end of the input",
            ))))
        }
    }

    /// Takes one batch's verdicts, in input order: everything that depends on the records
    /// before (chunk packing, rejects, duplicates, counts) happens here.
    fn absorb(&mut self, batch: &mut Batch, sink: &mut dyn RunSink) -> Result<(), Halt> {
        let flavor = batch.flavor.unwrap_or(Flavor::Import);
        // Drained, not taken: the batch goes back to a worker with its verdicts' room kept, so
        // that worker does not grow a new vector record by record.
        let mut checked_iter = batch.checked.drain(..);
        for raw in &batch.records[..batch.len] {
            // A fatal verdict ends the batch's verdicts; the records after it never count.
            let Some(checked) = checked_iter.next() else {
                break;
            };
            self.users_in += 1;
            if checked.parsed {
                if let Some(f) = self.format.as_mut() {
                    f.flavor = flavor;
                }
            }
            checked.count_into(&mut self.transformations);
            match checked.verdict {
                Verdict::Fatal(e) => return Err(Halt::Input(e)),
                Verdict::Rejected { reasons, user } => {
                    if let Some(finder) = self.canaries.as_mut() {
                        finder.offer_rejected(raw.index, &raw.bytes, &reasons);
                    }
                    match checked.entry {
                        Some(entry) => {
                            self.take_reject(raw.index, &reasons, &batch.rejects[entry], sink)?;
                        }
                        None => self.reject(raw, reasons, user, sink)?,
                    }
                }
                Verdict::Accepted { start, end, ids } => {
                    if let Some(finder) = self.canaries.as_mut() {
                        finder.offer_accepted(raw.index, &batch.compact[start..end]);
                    }
                    let (closed, placement) =
                        self.packer.push(raw.index, &batch.compact[start..end]);
                    if let Some(chunk) = closed {
                        self.publish(chunk, sink)?;
                    }
                    self.users_accepted += 1;
                    if raw.without_password {
                        self.transformations.imported_without_password += 1;
                    }
                    let at = Occurrence {
                        index: raw.index,
                        line: raw.line,
                        seq: placement.seq,
                        position: placement.position,
                        // A record fits a chunk, and a chunk's size is a u32 (≤ 512,000).
                        len: u32::try_from(end - start).unwrap_or(u32::MAX),
                    };
                    if let Some(finder) = self.duplicates.as_mut() {
                        finder
                            .record_fingerprints(&ids, at)
                            .map_err(SplitError::from)?;
                    }
                }
            }
        }
        if let Some(end) = batch.end.take() {
            end?;
        }
        Ok(())
    }

    fn publish(&mut self, chunk: Chunk, sink: &mut dyn RunSink) -> Result<(), SplitError> {
        // Chunks are published numbered 1, 2, 3…: chunk `seq`'s ends are at index `seq - 1`.
        debug_assert_eq!(self.record_ends_at.len() + 1, chunk.seq as usize);
        self.record_ends_at.push(self.record_ends_written);
        for end in &chunk.ends {
            self.record_ends.write_all(&end.to_le_bytes())?;
        }
        self.record_ends_written += 4 * chunk.ends.len() as u64;
        let entry = self.put_chunk(chunk, sink)?;
        self.chunks.push(entry);
        Ok(())
    }

    /// The records of `chunk`, one of those published (`publish`), cut out of its `bytes` by
    /// where they were written to end; an error if the bytes no longer have that layout.
    fn published_records<'b>(
        &self,
        ends_file: &mut File,
        chunk: &ChunkEntry,
        bytes: &'b [u8],
    ) -> Result<Vec<&'b [u8]>, SplitError> {
        let broken = || broken_chunk(&chunk.key, "no longer holds the records written to it");
        let at = usize::try_from(chunk.seq)
            .ok()
            .and_then(|seq| self.record_ends_at.get(seq.checked_sub(1)?))
            .ok_or_else(broken)?;
        io::Seek::seek(ends_file, io::SeekFrom::Start(*at))?;
        let mut words = vec![[0u8; 4]; usize::try_from(chunk.users).unwrap_or(usize::MAX)];
        ends_file
            .read_exact(words.as_flattened_mut())
            .map_err(|_| broken())?;
        let mut records = Vec::with_capacity(words.len());
        let mut start = 1;
        for (i, word) in words.iter().enumerate() {
            let end = usize::try_from(u32::from_le_bytes(*word)).unwrap_or(usize::MAX);
            let last = i + 1 == words.len();
            let separator = if last { b']' } else { b',' };
            let (Some(record), Some(&after)) = (bytes.get(start..end), bytes.get(end)) else {
                return Err(broken());
            };
            if bytes.get(start - 1) != Some(if i == 0 { &b'[' } else { &b',' })
                || after != separator
            {
                return Err(broken());
            }
            records.push(record);
            start = end + 1;
        }
        if start != bytes.len() {
            return Err(broken());
        }
        Ok(records)
    }

    /// Writes a chunk and returns its manifest entry.
    fn put_chunk(&self, chunk: Chunk, sink: &mut dyn RunSink) -> Result<ChunkEntry, SplitError> {
        let key = chunk_key(&self.dir, chunk.seq);
        let entry = ChunkEntry {
            key: key.clone(),
            seq: chunk.seq,
            users: chunk.users,
            bytes: chunk.bytes.len() as u64,
            first_index: chunk.first_index,
            last_index: chunk.last_index,
        };
        sink.put(&key, chunk.bytes).map_err(SplitError::Sink)?;
        Ok(entry)
    }

    fn reject(
        &mut self,
        raw: &RawRecord,
        reasons: Vec<Violation>,
        user: Option<Value>,
        sink: &mut dyn RunSink,
    ) -> Result<(), SplitError> {
        let at = (raw.index, raw.line, raw.byte_offset);
        self.write_reject(at, reasons, user, sink)
    }

    /// Adds a reject entry for the record at `(index, line, byte_offset)`, handing the entries
    /// to the sink a part at a time.
    fn write_reject(
        &mut self,
        at: (u64, u64, u64),
        reasons: Vec<Violation>,
        user: Option<Value>,
        sink: &mut dyn RunSink,
    ) -> Result<(), SplitError> {
        let entry = RejectEntry::redacted(at, reasons, user);
        entry
            .write_line(self.rejects_buffer())
            .map_err(io::Error::from)?;
        self.count_reject(entry.index, &entry.reasons, sink)
    }

    /// Adds the entry a worker wrote (`line`, one line of `rejects.ndjson` for the record at
    /// input `index`, rejected for `reasons`), handing the entries to the sink a part at a time.
    fn take_reject(
        &mut self,
        index: u64,
        reasons: &[Violation],
        line: &[u8],
        sink: &mut dyn RunSink,
    ) -> Result<(), SplitError> {
        self.rejects_buffer().extend_from_slice(line);
        self.count_reject(index, reasons, sink)
    }

    /// Where reject entries go until a part is full: set aside at the first reject, so a run
    /// without any leaves the memory untouched.
    fn rejects_buffer(&mut self) -> &mut Vec<u8> {
        if self.rejects.capacity() == 0 {
            self.rejects.reserve_exact(REJECT_BUFFER_BYTES);
        }
        &mut self.rejects
    }

    /// Counts the reject whose entry was just added, and hands a full part to the sink.
    fn count_reject(
        &mut self,
        index: u64,
        reasons: &[Violation],
        sink: &mut dyn RunSink,
    ) -> Result<(), SplitError> {
        self.users_rejected += 1;
        let codes: BTreeSet<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
        for code in codes {
            match self.rejects_by_code.get_mut(code) {
                Some(count) => *count += 1,
                None => {
                    self.rejects_by_code.insert(code.to_string(), 1);
                }
            }
        }
        self.rejected.write_all(&index.to_le_bytes())?;
        if self.rejects.len() >= REJECT_PART_BYTES {
            self.put_rejects_part(sink)?;
        }
        Ok(())
    }

    /// Hands the reject entries gathered so far to the sink as one part and empties the buffer.
    fn put_rejects_part(&mut self, sink: &mut dyn RunSink) -> Result<(), SplitError> {
        sink.put_part(&self.rejects_key, &self.rejects)
            .map_err(SplitError::Sink)?;
        self.rejects.clear();
        if self.rejects.capacity() > REJECT_BUFFER_BYTES {
            // An entry larger than the slack grew it: set aside the usual size again.
            self.rejects = Vec::new();
        }
        Ok(())
    }

    /// Takes later copies of a user back out of the chunks they were packed into. When the room
    /// they free could hold everything in the last chunk, the chunks from just before the first
    /// thinned one on are packed again, greedily and in order, so a drop with duplicates costs
    /// no more import jobs than one without; otherwise (a few duplicates: nothing to gain but
    /// by luck, and re-packing would rewrite every chunk after them) only the thinned chunks are
    /// rewritten. Either way each chunk is read once and written once, cut into its records by
    /// where they were written to end (`published_records`), not parsed: the records it keeps
    /// go back byte for byte, and only removed ones are parsed (for their reject entries).
    ///
    /// A chunk is rewritten only after it has been read: packing the same records greedily
    /// never takes more chunks than any other packing of them, so the new chunk `n` closes only
    /// once the old chunk `n` is read.
    fn remove_duplicates(
        &mut self,
        mut duplicates: Duplicates,
        sink: &mut dyn RunSink,
    ) -> Result<(), SplitError> {
        let limit = self.max_chunk_bytes;
        let freed = duplicates.freed;
        let thinned = std::mem::take(&mut duplicates.thinned);
        let Some(&first_thinned) = thinned.first() else {
            return Ok(());
        };
        let start = self
            .chunks
            .iter()
            .position(|c| c.seq >= first_thinned)
            .unwrap_or(self.chunks.len())
            .saturating_sub(1);
        // The room left in full chunks is what greedy packing could not use, and mostly stays
        // so; the last chunk's free room plus what the duplicates free is what can save one.
        let last_chunk_bytes = self.chunks.last().map_or(0, |c| c.bytes);
        let repack = freed >= last_chunk_bytes;
        let old: Vec<ChunkEntry> = if repack {
            self.chunks[start..].to_vec()
        } else {
            self.chunks
                .iter()
                .filter(|c| thinned.binary_search(&c.seq).is_ok())
                .cloned()
                .collect()
        };
        // Both are in sequence order.
        if let Some(seq) = thinned
            .iter()
            .find(|seq| old.binary_search_by_key(*seq, |c| c.seq).is_err())
        {
            return Err(io::Error::other(format!(
                "a duplicate was placed in chunk {}, which this run never published",
                chunk_key(&self.dir, *seq)
            ))
            .into());
        }
        let Some(first) = old.first() else {
            return Ok(());
        };
        let rejected = self.rejected_from(first.first_index)?;
        let keys: Vec<String> = old.iter().map(|c| c.key.clone()).collect();
        sink.prefetch(&keys).map_err(SplitError::Sink)?;

        let mut packer = ChunkPacker::starting_at(limit, first.seq);
        let mut rewritten: Vec<ChunkEntry> = Vec::with_capacity(old.len());
        self.record_ends.flush()?;
        let mut ends_file = File::open(self.record_ends_file.path())?;
        // Duplicates come in input order, which is chunk then position order: each chunk takes
        // its own off the front.
        let mut waiting = duplicates.next().transpose()?;
        for entry in &old {
            let bytes = sink.get(&entry.key).map_err(SplitError::Sink)?;
            let broken = |what: String| broken_chunk(&entry.key, what);
            let records = self.published_records(&mut ends_file, entry, &bytes)?;
            let mut drop: BTreeMap<u32, Duplicate> = BTreeMap::new();
            while let Some(d) = waiting.take_if(|d| d.at.seq <= entry.seq) {
                if d.at.seq < entry.seq {
                    return Err(broken(format!(
                        "comes after chunk {}, where duplicate {} was placed",
                        chunk_key(&self.dir, d.at.seq),
                        d.at.index
                    )));
                }
                let index = d.at.index;
                if drop.insert(d.at.position, d).is_some() {
                    return Err(broken(format!(
                        "holds two duplicates at one position (the second is input record {index})"
                    )));
                }
                waiting = duplicates.next().transpose()?;
            }
            if !repack {
                packer = ChunkPacker::starting_at(limit, entry.seq);
            }
            // `rejected` is what split rejected before this pass: the duplicates are still in.
            let mut indexes = entry.input_indexes(&rejected);
            let mut position = 0u32;
            for record in records {
                let index = indexes.next().filter(|_| packer.fits_alone(record.len()));
                let Some(index) = index else {
                    return Err(broken(format!(
                        "does not hold the users its manifest entry lists (record {position})"
                    )));
                };
                if let Some(d) = drop.remove(&position) {
                    if d.at.index != index {
                        return Err(broken(format!(
                            "holds input record {index} where duplicate {} was placed",
                            d.at.index
                        )));
                    }
                    let user: Value = serde_json::from_slice(record).map_err(io::Error::from)?;
                    self.users_accepted -= 1;
                    // Duplicates were accepted records: their byte offset is not kept in
                    // the spill index, their line is.
                    let at = (d.at.index, d.at.line, 0);
                    self.write_reject(at, d.reasons(), Some(user), sink)?;
                } else {
                    let (closed, _) = packer.push(index, record);
                    if let Some(chunk) = closed {
                        if chunk.seq > entry.seq {
                            return Err(broken(format!(
                                "would be overwritten by chunk {} before it was read",
                                chunk.seq
                            )));
                        }
                        rewritten.push(self.put_chunk(chunk, sink)?);
                    }
                }
                position += 1;
            }
            if let Some(d) = drop.values().next() {
                return Err(broken(format!(
                    "holds {position} users, fewer than where duplicate {} was placed",
                    d.at.index
                )));
            }
            if !repack {
                match packer.finish() {
                    Some(chunk) => rewritten.push(self.put_chunk(chunk, sink)?),
                    None => sink.delete(&entry.key).map_err(SplitError::Sink)?,
                }
            }
        }
        if let Some(d) = waiting {
            return Err(io::Error::other(format!(
                "duplicate {} was placed in chunk {}, which this pass did not read",
                d.at.index,
                chunk_key(&self.dir, d.at.seq)
            ))
            .into());
        }
        if repack {
            if let Some(chunk) = packer.finish() {
                rewritten.push(self.put_chunk(chunk, sink)?);
            }
            let last = rewritten.last().map_or(0, |c| c.seq);
            for entry in old.iter().filter(|c| c.seq > last) {
                sink.delete(&entry.key).map_err(SplitError::Sink)?;
            }
            self.chunks.truncate(start);
            self.chunks.extend(rewritten);
        } else {
            // Here the chunks read are exactly the thinned ones.
            let mut by_seq: BTreeMap<u32, ChunkEntry> =
                rewritten.into_iter().map(|c| (c.seq, c)).collect();
            self.chunks.retain_mut(|c| {
                if thinned.binary_search(&c.seq).is_err() {
                    return true;
                }
                match by_seq.remove(&c.seq) {
                    Some(new) => {
                        *c = new;
                        true
                    }
                    None => false,
                }
            });
        }
        Ok(())
    }

    /// Input indexes of the records rejected so far, from `from` on, in order.
    fn rejected_from(&mut self, from: u64) -> Result<Vec<u64>, SplitError> {
        self.rejected.flush()?;
        let mut file = io::BufReader::new(File::open(self.rejected_file.path())?);
        let mut indexes = Vec::new();
        let mut word = [0u8; 8];
        loop {
            match file.read_exact(&mut word) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
            let index = u64::from_le_bytes(word);
            if index >= from {
                indexes.push(index);
            }
        }
        indexes.sort_unstable();
        indexes.dedup();
        Ok(indexes)
    }

    fn finish(mut self, sink: &mut dyn RunSink) -> Result<SplitOutcome, SplitError> {
        if let Some(chunk) = self.packer.finish() {
            self.publish(chunk, sink)?;
        }
        sink.flush().map_err(SplitError::Sink)?;
        if let Some(finder) = self.duplicates.take() {
            self.remove_duplicates(finder.resolve()?, sink)?;
        }
        if !self.rejects.is_empty() {
            self.put_rejects_part(sink)?;
        }
        sink.finish_parts(&self.rejects_key)
            .map_err(SplitError::Sink)?;
        sink.flush().map_err(SplitError::Sink)?;
        let warn = self.canary_warn;
        let canaries = self.canaries.take().map(|finder| finder.check(warn));
        match canaries {
            Some(report) if report.blocked => self.stop_for_canaries(report, sink),
            canaries => {
                let mut manifest = self.manifest(None);
                manifest.canaries = canaries;
                commit(manifest, sink)
            }
        }
    }

    /// A canary failed or is missing: the chunks (which hold hashes) are taken back before the
    /// manifest commits as failed, so nothing can be submitted; the rejects stay (redacted). The
    /// run's report is written now, as no stage after split will see this run.
    fn stop_for_canaries(
        mut self,
        report: CanaryReport,
        sink: &mut dyn RunSink,
    ) -> Result<SplitOutcome, SplitError> {
        for chunk in std::mem::take(&mut self.chunks) {
            sink.delete(&chunk.key).map_err(SplitError::Sink)?;
        }
        let reason = format!(
            "canary check failed ({} of {} failed, {} missing), so no chunk was published: {}. Fix the \
             records (or the canary list) and drop the file again, or import anyway with \
             --canary-warn (CLI) or a canary=warn/ folder in the drop's key",
            report.failed,
            report.checked,
            report.missing,
            report.problems().join("; ")
        );
        let mut manifest = self.manifest(Some(Failure::new(reason, None, self.users_in)));
        manifest.rejects_key = Some(self.rejects_key.clone());
        manifest.canaries = Some(report);
        let run_report = crate::report::RunReport::build(&manifest, &[]);
        let json = serde_json::to_vec_pretty(&run_report).map_err(io::Error::from)?;
        sink.put(REPORT_JSON, json).map_err(SplitError::Sink)?;
        let html = crate::report::render_html(&run_report, &[]);
        sink.put(REPORT_HTML, html.into_bytes())
            .map_err(SplitError::Sink)?;
        sink.flush().map_err(SplitError::Sink)?;
        commit(manifest, sink)
    }

    fn fail(
        mut self,
        error: InputError,
        sink: &mut dyn RunSink,
    ) -> Result<SplitOutcome, SplitError> {
        // Nothing of a broken input is published: chunks already written are taken back.
        abandon_rejects(&self.rejects_key, sink);
        sink.flush().map_err(SplitError::Sink)?;
        for chunk in std::mem::take(&mut self.chunks) {
            sink.delete(&chunk.key).map_err(SplitError::Sink)?;
        }
        let failure = Failure::new(error.to_string(), error.position(), self.users_in);
        self.users_in = 0;
        self.users_accepted = 0;
        self.users_rejected = 0;
        self.rejects_by_code.clear();
        let manifest = self.manifest(Some(failure));
        commit(manifest, sink)
    }

    /// Failed when `failure` is given, else split.
    fn manifest(&self, failure: Option<Failure>) -> RunManifest {
        let total: u64 = self.chunks.iter().map(|c| c.bytes).sum();
        let mean_chunk_fill = if self.chunks.is_empty() {
            0.0
        } else {
            total as f64 / (self.chunks.len() as f64 * self.max_chunk_bytes as f64)
        };
        let base = uncounted_manifest(
            &self.run_id,
            self.source.clone(),
            self.drop_options.clone(),
            self.max_chunk_bytes,
            failure,
        );
        RunManifest {
            format: self.format.clone(),
            users_in: self.users_in,
            users_accepted: self.users_accepted,
            users_rejected: self.users_rejected,
            conservation_holds: self.users_in == self.users_accepted + self.users_rejected,
            rejects_by_code: self.rejects_by_code.clone(),
            transformations: self.transformations.clone(),
            mean_chunk_fill,
            rejects_key: (base.status == RunStatus::Split).then(|| self.rejects_key.clone()),
            chunks: self.chunks.clone(),
            ..base
        }
    }
}

/// A chunk this run wrote that no longer reads back as written (`what` says how): the run fails
/// rather than lose or mangle a record.
fn broken_chunk(key: &str, what: impl std::fmt::Display) -> SplitError {
    io::Error::other(format!("chunk {key}, written by this run, {what}")).into()
}

fn commit(manifest: RunManifest, sink: &mut dyn RunSink) -> Result<SplitOutcome, SplitError> {
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(io::Error::from)?;
    let committed = sink.commit_manifest(bytes).map_err(SplitError::Sink)?;
    Ok(SplitOutcome {
        manifest,
        committed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export;
    use crate::layout::{MANIFEST, REJECTS};
    use serde_json::json;

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// One record's text: mostly valid users, with invalid ones, duplicates (other case),
    /// escapes, repeated keys, `auth0|` ids, and records too large for a chunk.
    fn record(i: usize, rng: &mut Rng, export: bool) -> String {
        let mut user = json!({
            "email": format!("user{i}@example.com"),
            "email_verified": true,
            "given_name": "Zoë",
            "family_name": "Ñúñez",
            "user_id": format!("legacy-{i}"),
            "password_hash": "$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
            "app_metadata": {"plan": "gold", "seats": i, "tags": ["a", "b"]}
        });
        if export {
            user["user_id"] = json!(format!("auth0|{i:024}"));
            user["created_at"] = json!("2024-01-01T00:00:00.000Z");
            user["identities"] = json!([{"provider": "auth0"}]);
        }
        match rng.below(40) {
            0 => user["email"] = json!(5),
            1 => user["email"] = json!(format!("USER{}@Example.com", rng.below(i as u64 + 1))),
            2 => user["username"] = json!(format!("name{}", rng.below(50))),
            3 => user["user_metadata"] = json!({"bio": "x".repeat(3000)}),
            4 => user["user_metadata"] = json!({"bio": "y".repeat(20_000)}),
            5 => {
                // Escapes as written, and a repeated key (the last copy counts).
                let text = serde_json::to_string(&user).unwrap();
                return text.replacen(
                    "{",
                    "{\"given_name\": \"Zo\\u00eb \\/ \\\"q\\\"\", \"nickname\": 1, \"nickname\": \"n\", ",
                    1,
                );
            }
            6 => user["user_id"] = json!(format!("auth0|x{i}")),
            _ => {}
        }
        if rng.below(3) == 0 {
            serde_json::to_string_pretty(&user).unwrap()
        } else {
            serde_json::to_string(&user)
                .unwrap()
                .replace("\":", "\": ")
                .replace(",\"", ", \"")
        }
    }

    fn json_array(n: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed);
        let records: Vec<String> = (0..n).map(|i| record(i, &mut rng, false)).collect();
        format!("[\n{}\n]\n", records.join(",\n")).into_bytes()
    }

    fn ndjson(n: usize, seed: u64, export: bool, bad: &[usize]) -> Vec<u8> {
        let mut rng = Rng(seed);
        let mut out = Vec::new();
        for i in 0..n {
            if bad.contains(&i) {
                out.extend_from_slice(b"{\"email\": \"broken@example.com\", \"x\": tru }\r\n");
                continue;
            }
            let line = record(i, &mut rng, export).replace('\n', " ");
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(if i % 2 == 0 { b"\n" } else { b"\r\n" });
        }
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn run(input: &[u8], workers: usize) -> (RunManifest, BTreeMap<String, Vec<u8>>) {
        let mut sink = MemorySink::default();
        let options = SplitOptions {
            max_chunk_bytes: 8192,
            ..SplitOptions::default()
        };
        let outcome = split_with_workers(
            io::Cursor::new(input.to_vec()),
            Source::Local {
                path: "test.json".into(),
                size: Some(input.len() as u64),
            },
            "run-1",
            &options,
            &mut sink,
            workers,
        )
        .unwrap();
        (outcome.manifest, sink.objects)
    }

    /// The run folder with any worker count is byte for byte the single-worker one.
    fn same_for_any_worker_count(input: &[u8]) -> (RunManifest, BTreeMap<String, Vec<u8>>) {
        let (manifest, objects) = run(input, 1);
        for workers in [2, 4] {
            let (m, o) = run(input, workers);
            assert_eq!(m, manifest, "manifest with {workers} workers");
            assert_eq!(
                o.keys().collect::<Vec<_>>(),
                objects.keys().collect::<Vec<_>>()
            );
            for (key, bytes) in &objects {
                assert!(o[key] == *bytes, "{key} differs with {workers} workers");
            }
        }
        (manifest, objects)
    }

    #[test]
    fn rejects_hold_no_secret_whichever_path_rejected_the_record() {
        let bcrypt = format!("$2b$10${}", "a".repeat(53));
        let users = serde_json::json!([
            // Refused by the rules as written, by the full path (a repeated key) and as an
            // in-drop duplicate, each carrying a hash or a secret.
            {"email": "not an email", "password_hash": bcrypt},
            {"email": "b@example.com", "mfa_factors": [{"totp": {"secret": "JBSWY3DPEHPK3PXP"}}]},
            {"email": "c@example.com"},
            {"email": "C@example.com", "custom_password_hash": {"algorithm": "md5", "hash": {"value": "5f4dcc3b5aa765d61d8327deb882cf99", "encoding": "hex"}}},
        ]);
        // serde_json keeps one copy of a key: write the repeat by hand.
        let text = users.to_string();
        let repeat = r#"{"email":"b@example.com","email":"not an email","#;
        let text = text.replacen(r#"{"email":"b@example.com","#, repeat, 1);
        assert!(text.contains(repeat));
        let (manifest, objects) = same_for_any_worker_count(text.as_bytes());
        assert_eq!(manifest.users_rejected, 3, "{manifest:?}");
        let rejects = String::from_utf8(objects[REJECTS].clone()).unwrap();
        for secret in [
            bcrypt.as_str(),
            "JBSWY3DPEHPK3PXP",
            "5f4dcc3b5aa765d61d8327deb882cf99",
        ] {
            assert!(!rejects.contains(secret), "{rejects}");
        }
        assert_eq!(rejects.matches(r#""*****""#).count(), 3, "{rejects}");
    }

    fn chunk_users(manifest: &RunManifest, objects: &BTreeMap<String, Vec<u8>>) -> Vec<Value> {
        manifest
            .chunks
            .iter()
            .flat_map(|c| serde_json::from_slice::<Vec<Value>>(&objects[&c.key]).unwrap())
            .collect()
    }

    fn reject_indexes(objects: &BTreeMap<String, Vec<u8>>) -> BTreeSet<u64> {
        String::from_utf8_lossy(&objects[REJECTS])
            .lines()
            .map(|l| serde_json::from_str::<RejectEntry>(l).unwrap().index)
            .collect()
    }

    #[test]
    fn json_array_chunks_hold_exactly_the_accepted_values() {
        let input = json_array(3000, 7);
        let (m, objects) = same_for_any_worker_count(&input);
        assert_eq!(m.status, RunStatus::Split);
        assert!(m.conservation_holds);
        for code in ["INVALID_TYPE", "DUPLICATED_USER", "RECORD_TOO_LARGE"] {
            assert!(
                m.rejects_by_code.contains_key(code),
                "{:?}",
                m.rejects_by_code
            );
        }
        assert!(m.transformations.user_id_prefix_stripped > 0);
        let rejected = reject_indexes(&objects);
        let all: Vec<Value> = serde_json::from_slice(&input).unwrap();
        let expected: Vec<Value> = all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !rejected.contains(&(*i as u64)))
            .map(|(_, mut u)| {
                export::strip_id_prefix(&mut u, &mut Transformations::default());
                u
            })
            .collect();
        assert_eq!(chunk_users(&m, &objects), expected);
        for c in &m.chunks {
            assert!(c.bytes <= 8192);
        }
    }

    /// Removing a later duplicate rewrites its chunk, and the records kept there are the bytes
    /// they were packed as: spellings a re-serialiser would change (`\u00e9`, `1.0E2`) survive, and so do integers
    /// past 64 bits, which a re-serialiser would have rounded.
    #[test]
    fn removing_a_duplicate_keeps_the_other_records_byte_for_byte() {
        let first = r#"{"email":"a@example.com","name":"Caf\u00e9 \/ Bar","user_metadata":{"n":1.0E2,"big":123456789012345678901234567890}}"#;
        let later = r#"{"email":"A@Example.COM","name":"second copy"}"#;
        let third = r#"{"email":"c@example.com","user_metadata":{"x":[1, 2.50]}}"#;
        let input = format!("[\n{first},\n{later},\n{third}\n]\n");
        let (m, objects) = same_for_any_worker_count(input.as_bytes());
        assert!(m.conservation_holds);
        assert_eq!((m.users_accepted, m.users_rejected), (2, 1));
        assert_eq!(m.rejects_by_code.get("DUPLICATED_USER"), Some(&1));
        assert_eq!(reject_indexes(&objects), BTreeSet::from([1]));
        let [chunk] = &m.chunks[..] else {
            panic!("one chunk expected: {:?}", m.chunks);
        };
        let third_compact = third.replace(", ", ",");
        let expected = format!("[{first},{third_compact}]");
        assert_eq!(String::from_utf8_lossy(&objects[&chunk.key]), expected);
        assert_eq!((chunk.users, chunk.bytes), (2, expected.len() as u64));
    }

    /// A drop that holds its users twice (the second time with emails in capitals) is packed as
    /// if it held them once: the same chunks, byte for byte, and no more import jobs.
    #[test]
    fn a_drop_of_users_twice_over_packs_like_the_users_once() {
        let once: Vec<String> = (0..300)
            .map(|i| {
                format!(
                    r#"{{"email":"user{i}@example.com","name":"Zoë {i}","user_metadata":{{"pad":"{}"}}}}"#,
                    "x".repeat(i * 7 % 200)
                )
            })
            .collect();
        // Each user's second copy comes three users after the first, so every chunk is thinned.
        let copy = |r: &String| r.replace("@example.com", "@EXAMPLE.COM");
        let mut twice = Vec::new();
        for (i, record) in once.iter().enumerate() {
            twice.push(record.clone());
            if i >= 3 {
                twice.push(copy(&once[i - 3]));
            }
        }
        twice.extend(once[once.len() - 3..].iter().map(copy));
        let (m_once, objects_once) =
            same_for_any_worker_count(format!("[{}]", once.join(",")).as_bytes());
        let (m_twice, objects_twice) =
            same_for_any_worker_count(format!("[{}]", twice.join(",")).as_bytes());
        assert_eq!((m_twice.users_accepted, m_twice.users_rejected), (300, 300));
        assert!(m_once.chunks.len() > 5, "{} chunks", m_once.chunks.len());
        let shape = |m: &RunManifest| {
            m.chunks
                .iter()
                .map(|c| (c.key.clone(), c.seq, c.users, c.bytes))
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(&m_twice), shape(&m_once));
        for c in &m_once.chunks {
            assert!(objects_twice[&c.key] == objects_once[&c.key], "{}", c.key);
        }
        let chunk_keys = |o: &BTreeMap<String, Vec<u8>>| {
            o.keys()
                .filter(|k| k.starts_with("chunks/"))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(chunk_keys(&objects_twice), chunk_keys(&objects_once));
        let copies: BTreeSet<u64> = (0..600)
            .filter(|i| twice[*i as usize].contains("@EXAMPLE.COM"))
            .collect();
        assert_eq!(reject_indexes(&objects_twice), copies);
    }

    /// One early duplicate frees too little to save a chunk: only its own chunk is rewritten, and
    /// every other chunk is the one a drop without it (the same record under another email)
    /// gets.
    #[test]
    fn a_single_early_duplicate_rewrites_only_its_chunk() {
        let users: Vec<String> = (0..300)
            .map(|i| {
                format!(
                    r#"{{"email":"user{i}@example.com","user_metadata":{{"pad":"{}"}}}}"#,
                    "x".repeat(i * 7 % 200)
                )
            })
            .collect();
        let with = |copy: &str| {
            let mut all = users.clone();
            all.insert(5, copy.to_string());
            format!("[{}]", all.join(","))
        };
        let duplicate = users[0].replace("user0@example.com", "USER0@EXAMPLE.COM");
        let distinct = users[0].replace("user0@example.com", "xSER0@EXAMPLE.COM");
        let (m_dup, objects_dup) = same_for_any_worker_count(with(&duplicate).as_bytes());
        let (m_other, objects_other) = same_for_any_worker_count(with(&distinct).as_bytes());
        assert_eq!(m_dup.users_rejected, 1);
        assert_eq!(reject_indexes(&objects_dup), BTreeSet::from([5]));
        assert!(m_other.chunks.len() > 5, "{} chunks", m_other.chunks.len());
        assert_eq!(m_dup.chunks.len(), m_other.chunks.len());
        let (first_dup, first_other) = (&m_dup.chunks[0], &m_other.chunks[0]);
        assert_eq!(first_dup.users + 1, first_other.users);
        assert_eq!(
            first_dup.bytes + 1 + distinct.len() as u64,
            first_other.bytes
        );
        for (a, b) in m_dup.chunks.iter().zip(&m_other.chunks).skip(1) {
            assert_eq!(a, b);
            assert!(objects_dup[&a.key] == objects_other[&b.key], "{}", a.key);
        }
    }

    #[test]
    fn ndjson_bad_lines_and_auth0_export_any_worker_count() {
        let input = ndjson(2500, 11, true, &[3, 700, 2499]);
        let (m, objects) = same_for_any_worker_count(&input);
        assert_eq!(m.status, RunStatus::Split);
        assert_eq!(m.format.as_ref().unwrap().flavor, Flavor::Auth0Export);
        assert_eq!(m.rejects_by_code.get(codes::INVALID_JSON), Some(&3));
        assert!(m.transformations.fields_dropped.contains_key("identities"));
        assert!(reject_indexes(&objects).contains(&700));
        same_for_any_worker_count(&gzip(&input));
    }

    #[test]
    fn ndjson_flavor_comes_from_the_first_record_that_parses() {
        let mut input = b"{\"email\": oops}\n".to_vec();
        input.extend(ndjson(600, 3, true, &[]));
        let (m, _) = same_for_any_worker_count(&input);
        assert_eq!(m.format.as_ref().unwrap().flavor, Flavor::Auth0Export);
        assert_eq!(m.rejects_by_code.get(codes::INVALID_JSON), Some(&1));
    }

    /// A `MemorySink` that notes the size of each part it is given, and each abort.
    #[derive(Default)]
    struct PartsSeen {
        sink: MemorySink,
        parts: Vec<usize>,
        aborted: usize,
    }

    impl RunSink for PartsSeen {
        fn put(&mut self, key: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
            self.sink.put(key, bytes)
        }
        fn put_part(&mut self, key: &str, part: &[u8]) -> Result<(), SinkError> {
            self.parts.push(part.len());
            self.sink.put_part(key, part)
        }
        fn finish_parts(&mut self, key: &str) -> Result<(), SinkError> {
            self.sink.finish_parts(key)
        }
        fn abort_parts(&mut self, key: &str) -> Result<(), SinkError> {
            self.aborted += 1;
            self.sink.abort_parts(key)
        }
        fn get(&mut self, key: &str) -> Result<Vec<u8>, SinkError> {
            self.sink.get(key)
        }
        fn delete(&mut self, key: &str) -> Result<(), SinkError> {
            self.sink.delete(key)
        }
        fn flush(&mut self) -> Result<(), SinkError> {
            self.sink.flush()
        }
        fn commit_manifest(&mut self, bytes: Vec<u8>) -> Result<bool, SinkError> {
            self.sink.commit_manifest(bytes)
        }
    }

    /// A `MemorySink` whose chunks come back with a byte more than was written.
    #[derive(Default)]
    struct Tampered(MemorySink);

    impl RunSink for Tampered {
        fn put(&mut self, key: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
            self.0.put(key, bytes)
        }
        fn put_part(&mut self, key: &str, part: &[u8]) -> Result<(), SinkError> {
            self.0.put_part(key, part)
        }
        fn finish_parts(&mut self, key: &str) -> Result<(), SinkError> {
            self.0.finish_parts(key)
        }
        fn abort_parts(&mut self, key: &str) -> Result<(), SinkError> {
            self.0.abort_parts(key)
        }
        fn get(&mut self, key: &str) -> Result<Vec<u8>, SinkError> {
            let mut bytes = self.0.get(key)?;
            bytes.insert(1, b' ');
            Ok(bytes)
        }
        fn delete(&mut self, key: &str) -> Result<(), SinkError> {
            self.0.delete(key)
        }
        fn flush(&mut self) -> Result<(), SinkError> {
            self.0.flush()
        }
        fn commit_manifest(&mut self, bytes: Vec<u8>) -> Result<bool, SinkError> {
            self.0.commit_manifest(bytes)
        }
    }

    /// Duplicates are cut out of chunks where their records were written to end; a chunk that
    /// no longer has that layout fails the run rather than lose or mangle a record.
    #[test]
    fn a_chunk_changed_before_duplicates_are_taken_out_fails_the_run() {
        let input =
            br#"[{"email":"a@example.com"},{"email":"b@example.com"},{"email":"A@example.com"}]"#;
        let (manifest, _) = run(input, 2);
        assert_eq!((manifest.users_accepted, manifest.users_rejected), (2, 1));
        let mut sink = Tampered::default();
        let error = split_with_workers(
            io::Cursor::new(input.to_vec()),
            Source::Local {
                path: "test.json".into(),
                size: None,
            },
            "run-1",
            &SplitOptions::default(),
            &mut sink,
            2,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("no longer holds the records written to it"),
            "{error}"
        );
        assert!(!sink.0.objects.contains_key(MANIFEST));
    }

    /// Rejects reach the sink a part at a time as they are found, so a drop of bad records
    /// waits neither whole in memory nor on local disk (Lambda's is smaller than a drop can
    /// be); a broken input publishes none of them.
    #[test]
    fn rejects_are_handed_over_in_parts_and_a_broken_run_drops_them() {
        // Two records in three are refused (an email that is a number), each with 2 KB of
        // metadata: about 19 MB of rejects.
        let pad = "y".repeat(2048);
        let n = 13_500;
        let records: Vec<String> = (0..n)
            .map(|i| {
                let email = if i % 3 == 0 {
                    format!("\"u{i}@example.com\"")
                } else {
                    i.to_string()
                };
                format!(r#"{{"email":{email},"user_metadata":{{"pad":"{pad}"}}}}"#)
            })
            .collect();
        let whole = format!("[{}]", records.join(","));
        let split_into = |input: &str| {
            let mut seen = PartsSeen::default();
            let outcome = split_with_workers(
                io::Cursor::new(input.as_bytes().to_vec()),
                Source::Local {
                    path: "test.json".into(),
                    size: None,
                },
                "run-1",
                &SplitOptions::default(),
                &mut seen,
                2,
            )
            .unwrap();
            (outcome.manifest, seen)
        };

        let (m, seen) = split_into(&whole);
        let refused: BTreeSet<u64> = (0..n as u64).filter(|i| i % 3 != 0).collect();
        assert_eq!(
            (m.users_accepted, m.users_rejected),
            (n as u64 / 3, refused.len() as u64)
        );
        assert_eq!(reject_indexes(&seen.sink.objects), refused);
        assert!(seen.parts.len() >= 2, "{:?}", seen.parts);
        let (last, full) = seen.parts.split_last().unwrap();
        assert!(
            full.iter().all(|&len| len >= MIN_PART_BYTES),
            "{:?}",
            seen.parts
        );
        assert_eq!(
            full.iter().sum::<usize>() + last,
            seen.sink.objects[REJECTS].len()
        );
        assert_eq!(seen.aborted, 0);

        // The same records, cut short: the parts already handed over are abandoned.
        let (m, seen) = split_into(&whole[..whole.len() - 100]);
        assert_eq!(m.status, RunStatus::Failed);
        assert!(seen.parts.len() >= 2, "{:?}", seen.parts);
        assert_eq!(seen.aborted, 1);
        assert_eq!(seen.sink.objects.keys().collect::<Vec<_>>(), vec![MANIFEST]);
    }

    #[test]
    fn broken_inputs_fail_the_same_way_with_any_worker_count() {
        // A syntax error deep in a JSON array, after chunks were already published.
        let mut broken = json_array(2000, 5);
        let at = broken.len() * 9 / 10;
        let at = at + broken[at..].iter().position(|b| *b == b':').unwrap();
        broken[at] = b'=';
        // A truncated array, and NDJSON whose first line is not a whole object.
        let truncated = json_array(1500, 6)[..150_000].to_vec();
        let mut first_incomplete = b"{\"email\": \"a@x.io\",\n".to_vec();
        first_incomplete.extend(ndjson(400, 8, false, &[]));
        for input in [broken, truncated, first_incomplete] {
            let (m, objects) = same_for_any_worker_count(&input);
            assert_eq!(m.status, RunStatus::Failed);
            assert!(m.failure.is_some());
            assert!(m.chunks.is_empty());
            assert_eq!(objects.keys().collect::<Vec<_>>(), vec![MANIFEST]);
        }
    }
}
