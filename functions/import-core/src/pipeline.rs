//! The split stage's parallel part: a framing thread cuts the input into batches of raw records,
//! workers parse, transform, validate and compact them, and the caller takes batches back in order.
//!
//! Batches circulate: a fixed pool of them goes framing → workers → caller → framing, so memory
//! is bounded by the pool (a few MB) whatever the input size, and buffers are reused. Everything
//! that depends on input order (chunk packing, rejects, duplicates, counts) stays with the caller;
//! a worker's result for a record depends on that record alone plus the run's flavor, which the
//! framing thread decides from the first record that parses, before any worker needs it.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;

use serde_json::Value;

use crate::chunk;
use crate::compact;
use crate::duplicates::{self, Fingerprints};
use crate::export::{self, Reshaped, EXPORT_ONLY_FIELDS};
use crate::input::{InputError, Layout, Position, RawRecord, Records};
use crate::manifest::{Flavor, RejectEntry, Transformations};
use crate::rules::{self, check_user, Members};
use crate::split::codes;
use crate::violation::Violation;

/// A batch closes at this many records or this many raw bytes, whichever comes first: large
/// enough that channel traffic is noise, small enough that the pool stays a few MB.
const BATCH_RECORDS: usize = 256;
const BATCH_BYTES: usize = 256 * 1024;
/// A record buffer that grew past this (an oversized record) is given back rather than kept
/// in the pool, so one huge record does not pin its size in every slot it passes through.
const KEEP_RECORD_CAPACITY: usize = 64 * 1024;

/// A batch's reject entries that grew past this (a huge refused record, or one with thousands
/// of violations) are given back rather than kept: a batch of ordinary rejects, every record
/// refused, takes a few hundred KB.
const KEEP_REJECTS_CAPACITY: usize = 1024 * 1024;

/// The run-wide facts a worker needs besides the record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    pub layout: Layout,
    pub max_chunk_bytes: usize,
}

/// Framing results for a run of consecutive records, and what workers made of them.
pub(crate) struct Batch {
    /// Position of the batch in the input (0, 1, 2, …): the caller restores this order.
    pub seq: u64,
    /// Slots are reused across batches; only the first `len` belong to this batch.
    pub records: Vec<RawRecord>,
    pub len: usize,
    /// The run's flavor once decided (`None` only while no record so far has parsed).
    pub flavor: Option<Flavor>,
    /// Set on the batch after which the input ended, cleanly or not.
    pub end: Option<Result<(), InputError>>,
    /// Compact JSON of the accepted records, back to back (see `Verdict::Accepted`).
    pub compact: Vec<u8>,
    /// One per record, in order; shorter than `len` when a fatal verdict stopped the batch.
    pub checked: Vec<Checked>,
    /// The `rejects.ndjson` lines of the rejected records, back to back (see `Checked::entry`):
    /// made by the workers, so the thread that orders batches only appends them.
    pub rejects: Vec<u8>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            seq: 0,
            records: Vec::new(),
            len: 0,
            flavor: None,
            end: None,
            compact: Vec::new(),
            checked: Vec::new(),
            rejects: Vec::new(),
        }
    }
}

/// A worker's result for one record.
pub(crate) struct Checked {
    pub verdict: Verdict,
    /// The record parsed as JSON (so the run's flavor applied to it).
    pub parsed: bool,
    /// Transformations applied (counted even when the record is then rejected, as before).
    pub prefix_stripped: bool,
    /// Bit `i` set: `EXPORT_ONLY_FIELDS[i]` was dropped.
    pub fields_dropped: u16,
    /// A rejected record's entry, `rejects[entry]` of its batch; its `user` is then gone.
    pub entry: Option<std::ops::Range<usize>>,
}

pub(crate) enum Verdict {
    /// Goes into a chunk as `compact[start..end]`.
    Accepted {
        start: usize,
        end: usize,
        ids: Fingerprints,
    },
    Rejected {
        reasons: Vec<Violation>,
        user: Option<Value>,
    },
    /// The input as a whole is broken here: the run fails.
    Fatal(InputError),
}

impl Checked {
    /// Adds this record's transformations to the run's counts.
    pub fn count_into(&self, counts: &mut Transformations) {
        if self.prefix_stripped {
            counts.user_id_prefix_stripped += 1;
        }
        for (i, field) in EXPORT_ONLY_FIELDS.iter().enumerate() {
            if self.fields_dropped & (1 << i) != 0 {
                *counts
                    .fields_dropped
                    .entry((*field).to_string())
                    .or_default() += 1;
            }
        }
    }
}

/// A worker's batch, or the payload of the panic that stopped it (re-raised by the caller, as
/// if the record had been checked on the calling thread).
type Done = Result<Batch, Box<dyn std::any::Any + Send>>;

/// Runs the pipeline over `reader` with `workers` threads, handing each batch, in input order,
/// to `sequence` (which stops the run by returning an error). `Ok(true)` once the batch that
/// ends the input was sequenced; `Ok(false)` if the threads stopped before it (only a panic
/// does that, and the scope re-raises it).
pub(crate) fn run<E, R: Records>(
    reader: R,
    context: Context,
    workers: usize,
    mut sequence: impl FnMut(&mut Batch) -> Result<(), E>,
) -> Result<bool, E> {
    let workers = workers.max(1);
    // The pool: one batch per worker, one being framed, one being sequenced, and slack for
    // workers finishing out of order. Both channels hold the whole pool, so no send ever
    // blocks: a thread only waits in `recv`, and stops when its sender side is gone.
    let pool = 2 * workers + 2;
    let (free_tx, free_rx) = mpsc::channel::<Batch>();
    for _ in 0..pool {
        // The receiver is alive right here, so this cannot fail.
        let _ = free_tx.send(Batch::new());
    }
    let (work_tx, work_rx) = mpsc::sync_channel::<Batch>(pool);
    let (done_tx, done_rx) = mpsc::sync_channel::<Done>(pool);
    let work_rx = Mutex::new(work_rx);
    std::thread::scope(|scope| {
        scope.spawn(move || frame(reader, free_rx, work_tx));
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let work_rx = &work_rx;
            scope.spawn(move || work(work_rx, done_tx, context));
        }
        drop(done_tx);
        // When this returns, its ends of the channels are dropped: the framing thread runs out
        // of free batches and stops, then the workers run out of work and stop.
        order(done_rx, free_tx, &mut sequence)
    })
}

/// Restores input order and recycles each batch after `sequence` is done with it.
fn order<E>(
    done: Receiver<Done>,
    free: mpsc::Sender<Batch>,
    sequence: &mut impl FnMut(&mut Batch) -> Result<(), E>,
) -> Result<bool, E> {
    let mut waiting: BTreeMap<u64, Batch> = BTreeMap::new();
    let mut next = 0u64;
    loop {
        let mut batch = match waiting.remove(&next) {
            Some(b) => b,
            None => match done.recv() {
                Ok(Ok(b)) if b.seq == next => b,
                Ok(Ok(b)) => {
                    waiting.insert(b.seq, b);
                    continue;
                }
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                // Every worker is gone before the end: the framing thread panicked.
                Err(_) => return Ok(false),
            },
        };
        next += 1;
        let last = batch.end.is_some();
        sequence(&mut batch)?;
        if last {
            return Ok(true);
        }
        // The framing thread may have stopped already; then the batch is simply dropped.
        let _ = free.send(batch);
    }
}

fn frame<R: Records>(mut reader: R, free: Receiver<Batch>, work: SyncSender<Batch>) {
    // NDJSON could be Auth0's own export: then the first record that parses tells.
    let mut flavor = reader.flavor();
    let mut seq = 0;
    while let Ok(mut batch) = free.recv() {
        batch.seq = seq;
        seq += 1;
        batch.len = 0;
        batch.end = None;
        let mut bytes = 0;
        while batch.len < BATCH_RECORDS && bytes < BATCH_BYTES {
            if batch.len == batch.records.len() {
                batch.records.push(RawRecord::default());
            }
            let slot = &mut batch.records[batch.len];
            if slot.bytes.capacity() > KEEP_RECORD_CAPACITY {
                slot.bytes = Vec::new();
            }
            match reader.next_into(slot) {
                Ok(true) => {
                    bytes += slot.bytes.len();
                    batch.len += 1;
                }
                Ok(false) => {
                    batch.end = Some(Ok(()));
                    break;
                }
                Err(e) => {
                    batch.end = Some(Err(e));
                    break;
                }
            }
        }
        if flavor.is_none() {
            flavor = decide_flavor(&batch.records[..batch.len]);
        }
        batch.flavor = flavor;
        let last = batch.end.is_some();
        if work.send(batch).is_err() || last {
            return;
        }
    }
}

/// The flavor told by the first record that parses, if any does.
fn decide_flavor(records: &[RawRecord]) -> Option<Flavor> {
    records.iter().filter(|r| !r.oversized).find_map(|r| {
        parse(&r.bytes).ok().map(|user| {
            if export::looks_like_auth0_export(&user) {
                Flavor::Auth0Export
            } else {
                Flavor::Import
            }
        })
    })
}

fn work(queue: &Mutex<Receiver<Batch>>, done: SyncSender<Done>, context: Context) {
    let mut scratch = Vec::new();
    loop {
        let next = match queue.lock() {
            Ok(rx) => rx.recv(),
            // Another worker panicked holding the lock (it cannot: `recv` does not panic).
            Err(_) => return,
        };
        let Ok(mut batch) = next else { return };
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_batch(&mut batch, context, &mut scratch)
        }));
        let result = match checked {
            Ok(()) => Ok(batch),
            Err(panic) => Err(panic),
        };
        let failed = result.is_err();
        if done.send(result).is_err() || failed {
            return;
        }
    }
}

fn check_batch(batch: &mut Batch, context: Context, scratch: &mut Vec<u8>) {
    batch.compact.clear();
    batch.checked.clear();
    if batch.rejects.capacity() > KEEP_REJECTS_CAPACITY {
        batch.rejects = Vec::new();
    }
    batch.rejects.clear();
    let flavor = batch.flavor.unwrap_or(Flavor::Import);
    let records = &batch.records[..batch.len];
    for (i, raw) in records.iter().enumerate() {
        if let Some(next) = records.get(i + 1) {
            prefetch(&next.bytes);
        }
        let mut checked = check(raw, flavor, context, &mut batch.compact, scratch);
        if let Verdict::Rejected { reasons, user } = &mut checked.verdict {
            checked.entry = write_entry(raw, reasons, user, &mut batch.rejects);
        }
        let fatal = matches!(checked.verdict, Verdict::Fatal(_));
        batch.checked.push(checked);
        if fatal {
            break;
        }
    }
}

/// Asks the CPU to start loading `bytes` into its cache (the first `PREFETCH_BYTES` of them),
/// so the next record is on its way while this one is checked.
#[inline]
fn prefetch(bytes: &[u8]) {
    simd_scan::prefetch(&bytes[..bytes.len().min(PREFETCH_BYTES)]);
}

const PREFETCH_BYTES: usize = 2048;

/// Writes a rejected record's entry to `rejects` and gives where it is, taking its `user` (the
/// reasons stay, for the run's counts). `None`, with both left in place, if it could not be
/// written: the ordering thread then writes it and reports why it cannot.
fn write_entry(
    raw: &RawRecord,
    reasons: &mut Vec<Violation>,
    user: &mut Option<Value>,
    rejects: &mut Vec<u8>,
) -> Option<std::ops::Range<usize>> {
    let at = (raw.index, raw.line, raw.byte_offset);
    let entry = RejectEntry::redacted(at, std::mem::take(reasons), user.take());
    let start = rejects.len();
    let written = entry.write_line(rejects);
    *reasons = entry.reasons;
    if written.is_err() {
        // Redacted already; redacting it again there changes nothing.
        *user = entry.user;
        return None;
    }
    Some(start..rejects.len())
}

/// Parses a record. Valid UTF-8 (checked once, fast) lets serde_json skip validating each
/// string; otherwise the slice parser reports the error exactly where it always did.
fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// One record's verdict: what `Splitter` did record by record before the pipeline, minus
/// everything that depends on other records.
fn check(
    raw: &RawRecord,
    flavor: Flavor,
    context: Context,
    compact: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Checked {
    if !raw.refused.is_empty() {
        // The mapping made no record of the source row: its reasons are the verdict.
        return Checked {
            verdict: Verdict::Rejected {
                reasons: raw.refused.clone(),
                user: None,
            },
            parsed: false,
            prefix_stripped: false,
            fields_dropped: 0,
            entry: None,
        };
    }
    if !raw.oversized {
        match judge_as_written(raw, flavor, context, compact, scratch) {
            AsWritten::Accepted(accepted) => return accepted,
            AsWritten::Refused(reasons) => {
                // The reject entry shows the record as `check_fully` holds it: nothing was
                // reshaped, and without repeated keys that is the record as written.
                if let Ok(user) = parse(&raw.bytes) {
                    return Checked {
                        verdict: Verdict::Rejected {
                            reasons,
                            user: Some(user),
                        },
                        parsed: true,
                        prefix_stripped: false,
                        fields_dropped: 0,
                        entry: None,
                    };
                }
            }
            AsWritten::Unknown => {}
        }
    }
    check_fully(raw, flavor, context, compact, scratch)
}

/// What the cheap paths make of a record, before `check_fully`.
enum AsWritten {
    /// Accepted from its own bytes (`judge_as_written`).
    Accepted(Checked),
    /// Parsed as written, with no key repeated at any depth and nothing to reshape, the record
    /// breaks these rules. That value is the one `check_fully` would check (its parse only
    /// differs where a key repeats, its reshaping only where there is something to reshape),
    /// so these are its violations too, without parsing and converting the record again.
    Refused(Vec<Violation>),
    /// Left to `check_fully`.
    Unknown,
}

/// `check` for a record `judge_as_written` could not judge (or an oversized one, rejected): parsed
/// with `serde_json` (which places syntax errors exactly and keeps the last copy of a repeated
/// key, as Auth0 does), reshaped for the run's flavor, then checked, compacted and fingerprinted.
fn check_fully(
    raw: &RawRecord,
    flavor: Flavor,
    context: Context,
    compact: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Checked {
    let rejected = |reasons, user, parsed| Checked {
        verdict: Verdict::Rejected { reasons, user },
        parsed,
        prefix_stripped: false,
        fields_dropped: 0,
        entry: None,
    };
    if raw.oversized {
        let reason = Violation::new(
            codes::RECORD_TOO_LARGE,
            "",
            format!(
                "the record is over {} bytes as written in the input; one import request holds at most {} bytes of users",
                raw.bytes.len(),
                context.max_chunk_bytes
            ),
        );
        return rejected(vec![reason], None, false);
    }
    let mut user = match parse(&raw.bytes) {
        Ok(v) => v,
        Err(e) => {
            let at = locate(raw, &e);
            if context.layout == Layout::JsonArray || (raw.index == 0 && e.is_eof()) {
                let hint = if context.layout == Layout::Ndjson {
                    " (the first line is not a complete JSON object: pretty-printed JSON must be a JSON array, NDJSON needs one user per line)"
                } else {
                    ""
                };
                return Checked {
                    verdict: Verdict::Fatal(InputError::Syntax {
                        at,
                        message: format!(
                            "record {}: {}{hint}",
                            raw.index,
                            strip_serde_position(&e)
                        ),
                    }),
                    parsed: false,
                    prefix_stripped: false,
                    fields_dropped: 0,
                    entry: None,
                };
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
            return rejected(vec![reason], None, false);
        }
    };
    let mut fields_dropped = 0u16;
    if flavor == Flavor::Auth0Export {
        if let Some(obj) = user.as_object() {
            fields_dropped = export::export_fields_in(|field| obj.contains_key(field));
        }
        if fields_dropped != 0 {
            export::drop_export_fields(&mut user, &mut Transformations::default());
        }
    }
    let mut stripped = Transformations::default();
    export::strip_id_prefix(&mut user, &mut stripped);
    let prefix_stripped = stripped.user_id_prefix_stripped > 0;
    let done = |verdict| Checked {
        verdict,
        parsed: true,
        prefix_stripped,
        fields_dropped,
        entry: None,
    };

    // The rules read `sonic_rs` values; this record's value as it will be imported (keys repeated
    // in the input already collapsed to their last copy, as Auth0 reads them).
    let shaped = match rules::to_sonic(&user) {
        Ok(shaped) => shaped,
        Err(e) => {
            let reason = Violation::new(codes::INVALID_JSON, "", e.to_string());
            return done(Verdict::Rejected {
                reasons: vec![reason],
                user: Some(user),
            });
        }
    };
    let violations = check_user(&shaped);
    if !violations.is_empty() {
        return done(Verdict::Rejected {
            reasons: violations,
            user: Some(user),
        });
    }
    let start = compact.len();
    // Without repeated keys, the raw bytes minus whitespace are the record, and an export record
    // reshaped from that text is the reshaped value.
    compact::strip_whitespace(&raw.bytes, compact);
    let mut stripped_raw = sonic_rs::from_slice::<sonic_rs::Value>(&compact[start..]).is_ok();
    if stripped_raw && (prefix_stripped || fields_dropped != 0) {
        let wanted = Reshaped {
            fields_dropped,
            prefix_stripped,
        };
        stripped_raw = reshape_in_place(compact, start, flavor, wanted);
    }
    // Repeats are judged on what is imported, as the fast path judges them (found by the fuzz
    // target twice): reshaping drops every copy of an export-only field, so a repeat there leaves
    // the text as written; and a repeat the rules do not see (inside free-form metadata, read for
    // its key names) is kept as written, as the fast path keeps it. A repeat the rules do see
    // (`REPEATED_KEY`) means the text is not the value checked above: written again.
    stripped_raw = stripped_raw
        && sonic_rs::from_slice::<sonic_rs::Value>(&compact[start..]).is_ok_and(|value| {
            !compact::has_repeated_keys(&value) || check_user(&value).is_empty()
        });
    if !stripped_raw {
        compact.truncate(start);
    }
    // Escapes kept as written (`\u00e9`) can make the raw form longer than serde_json's; a
    // record that only fits re-serialised is re-serialised.
    if !stripped_raw || !chunk::fits_alone(context.max_chunk_bytes, compact.len() - start) {
        compact.truncate(start);
        // Writing a Value into a Vec cannot fail (no I/O, keys are strings).
        if let Err(e) = serde_json::to_writer(&mut *compact, &user) {
            compact.truncate(start);
            let reason = Violation::new(codes::INVALID_JSON, "", e.to_string());
            return done(Verdict::Rejected {
                reasons: vec![reason],
                user: Some(user),
            });
        }
    }
    let len = compact.len() - start;
    if !chunk::fits_alone(context.max_chunk_bytes, len) {
        compact.truncate(start);
        let reason = Violation::new(
            codes::RECORD_TOO_LARGE,
            "",
            format!(
                "the record is {} bytes as compact JSON; a chunk holds at most {} bytes (including the array brackets)",
                len,
                context.max_chunk_bytes
            ),
        );
        return done(Verdict::Rejected {
            reasons: vec![reason],
            user: Some(user),
        });
    }
    let ids = duplicates::fingerprints(&shaped, scratch);
    done(Verdict::Accepted {
        start,
        end: compact.len(),
        ids,
    })
}

/// The common case, taken first: a record that parses, needs no change its text cannot show
/// (an export's reshaping is done on the text, see `passes_reshaped`), passes every rule and fits
/// in a chunk is accepted from its own bytes: judged from its text alone when `rules::text` can
/// (`passes_from_text`), else read into a `sonic_rs` value (an order of magnitude cheaper than a
/// `serde_json` one). Read that way, a record within the same limits (at most
/// `MAX_FAST_CONTAINERS` containers, fits a chunk alone) with nothing to reshape and no repeated
/// key that breaks rules is `Refused` with the violations found. `Unknown` sends the record down the
/// full path in `check`, which reads it again with `serde_json` and either reshapes it or says
/// exactly what is wrong: both paths apply the same rules (`check_user`) to the same value, so
/// the verdict does not depend on the path taken.
fn judge_as_written(
    raw: &RawRecord,
    flavor: Flavor,
    context: Context,
    compact: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> AsWritten {
    let start = compact.len();
    let fits = |containers: usize, len: usize| {
        containers <= MAX_FAST_CONTAINERS && chunk::fits_alone(context.max_chunk_bytes, len)
    };
    let mut passed = passes_from_text(&raw.bytes, flavor, compact, scratch, fits).map(Ok);
    if passed.is_none() {
        compact.truncate(start);
        let containers = compact::strip_whitespace(&raw.bytes, compact);
        if fits(containers, compact.len() - start) {
            passed = passes_reshaped(raw, flavor, compact, start, scratch);
        }
    }
    let (ids, reshaped) = match passed {
        Some(Ok(accepted)) => accepted,
        Some(Err(reasons)) => {
            compact.truncate(start);
            return AsWritten::Refused(reasons);
        }
        None => {
            compact.truncate(start);
            return AsWritten::Unknown;
        }
    };
    AsWritten::Accepted(Checked {
        verdict: Verdict::Accepted {
            start,
            end: compact.len(),
            ids,
        },
        parsed: true,
        prefix_stripped: reshaped.prefix_stripped,
        fields_dropped: reshaped.fields_dropped,
        entry: None,
    })
}

/// The cheapest verdict, tried first: a record whose text alone shows it passes every rule
/// (`rules::text`, one pass; only the two nested structures are read into a small tree) is
/// accepted with no parse at all, its compact text
/// appended to `compact` on the way and reshaped there on the text when the run's flavor asks
/// it, as `passes_reshaped` does. `fits` (given the containers it opens and the length of its
/// compact text before reshaping) holds it to the same limits as the parsed path.
fn passes_from_text(
    bytes: &[u8],
    flavor: Flavor,
    compact: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    fits: impl Fn(usize, usize) -> bool,
) -> Option<(Fingerprints, Reshaped)> {
    let start = compact.len();
    let passed = rules::text::passes(bytes, flavor == Flavor::Auth0Export, compact)?;
    // Held to the limits before reshaping, as `judge_as_written` holds the parsed path: a
    // record over them goes to the full path, whose bytes differ where a key repeats.
    if !fits(passed.containers, passed.text.len()) {
        return None;
    }
    // Read off the text before it is reshaped: `identity` gives each string as imported already.
    let ids = duplicates::fingerprints_of(|kind| passed.identity(kind), scratch);
    let reshaped = passed.reshaped;
    if reshaped != Reshaped::default() && !reshape_in_place(compact, start, flavor, reshaped) {
        return None;
    }
    Some((ids, reshaped))
}

/// `passes_as_written` for a record whose compact text is `compact[start..]`, reshaped first
/// when the run's flavor asks it (export-only fields dropped, the `auth0|` prefix taken off
/// `user_id`): the reshaped text replaces the record's in `compact`, and it is what the rules
/// read. The raw record is parsed first all the same, so bytes a dropped member held are
/// checked to be JSON, as the full path checks them. A record with nothing to reshape and no
/// repeated key that breaks rules comes back with its violations.
fn passes_reshaped(
    raw: &RawRecord,
    flavor: Flavor,
    compact: &mut Vec<u8>,
    start: usize,
    scratch: &mut Vec<u8>,
) -> Option<Result<(Fingerprints, Reshaped), Vec<Violation>>> {
    let user: sonic_rs::Value = sonic_rs::from_slice(&raw.bytes).ok()?;
    let members = Members::of(sonic_rs::JsonContainerTrait::as_object(&user)?);
    let drop_fields = flavor == Flavor::Auth0Export;
    let wanted = Reshaped {
        fields_dropped: if drop_fields {
            export::export_fields_in(|field| members.get(field).is_some())
        } else {
            0
        },
        prefix_stripped: export::has_id_prefix(members.str("user_id")),
    };
    if wanted == Reshaped::default() {
        return match judged_as_written(&user, &members, scratch)? {
            Ok(ids) => Some(Ok((ids, wanted))),
            // A key repeated where the rules read values by key is a violation here
            // (`REPEATED_KEY`) that the full path, which keeps the last copy as Auth0 does, may
            // not find; and a repeat anywhere makes the value differ from the one it checks.
            Err(violations) => (!compact::has_repeated_keys(&user)).then_some(Err(violations)),
        };
    }
    if !reshape_in_place(compact, start, flavor, wanted) {
        return None;
    }
    let ids = passes_as_written(&compact[start..], scratch)?;
    Some(Ok((ids, wanted)))
}

/// Reshapes the compact record `compact[start..]` for the run's flavor on its text
/// (`export::reshape_compact`): `true` when that made exactly the `wanted` changes. Otherwise
/// what is left from `start` on means nothing, and the caller takes it back.
fn reshape_in_place(compact: &mut Vec<u8>, start: usize, flavor: Flavor, wanted: Reshaped) -> bool {
    let text = compact.split_off(start);
    export::reshape_compact(&text, flavor == Flavor::Auth0Export, compact) == Some(wanted)
}

/// Objects and arrays a record may open and still take the fast path: `sonic_rs` parses
/// recursively, and a record nested thousands deep would overflow a worker's stack. Nesting is
/// at most this count, which stays under the 128 levels the full path's `serde_json` refuses
/// (it reads 127), so the fast path never takes a record the full path calls broken.
const MAX_FAST_CONTAINERS: usize = 127;

/// The identities of a record that parses, needs no reshaping and passes every rule; `None`
/// otherwise.
fn passes_as_written(bytes: &[u8], scratch: &mut Vec<u8>) -> Option<Fingerprints> {
    let user: sonic_rs::Value = sonic_rs::from_slice(bytes).ok()?;
    let members = Members::of(sonic_rs::JsonContainerTrait::as_object(&user)?);
    judged_as_written(&user, &members, scratch)?.ok()
}

/// What the rules make of a parsed record that needs no reshaping: its identities when it
/// passes them all, its violations when it breaks some, `None` when it does need reshaping.
/// The violations are only the full path's when no key repeats (see `passes_reshaped`).
/// Repeats inside free-form metadata of an accepted record stay as written: the rules read
/// metadata key names only, and Auth0 reads the last copy as the input says.
fn judged_as_written(
    user: &sonic_rs::Value,
    members: &Members<'_>,
    scratch: &mut Vec<u8>,
) -> Option<Result<Fingerprints, Vec<Violation>>> {
    if export::has_id_prefix(members.str("user_id")) {
        return None;
    }
    let violations = rules::check_record(user, members);
    if !violations.is_empty() {
        return Some(Err(violations));
    }
    Some(Ok(duplicates::fingerprints_of(
        |kind| members.str(kind.field()),
        scratch,
    )))
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

/// The fast path held to the full path on one record, for the unit tests and the fuzz targets
/// (`crate::fuzzing`): the same verdict, compact bytes, identities and counts.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod differential {
    use super::*;

    /// A record at a fixed position, holding `text`.
    pub(crate) fn raw(text: impl AsRef<[u8]>) -> RawRecord {
        RawRecord {
            index: 3,
            line: 4,
            column: 1,
            byte_offset: 100,
            bytes: text.as_ref().to_vec(),
            oversized: false,
            ..RawRecord::default()
        }
    }

    /// What `outcome` returns: accepted bytes, reject reasons, identities or fatal error, and
    /// the transformations counted (`auth0|` prefix stripped, export-only fields dropped).
    pub(crate) type Outcome = (Option<Vec<u8>>, Vec<String>, String, (bool, u16));

    /// What a verdict says, comparable across paths: the accepted bytes and fingerprints, or the
    /// reject reasons, whole.
    pub(crate) fn outcome(checked: &Checked, compact: &[u8]) -> Outcome {
        match &checked.verdict {
            Verdict::Accepted { start, end, ids } => (
                Some(compact[*start..*end].to_vec()),
                Vec::new(),
                format!("{:?}", ids.iter().collect::<Vec<_>>()),
                (checked.prefix_stripped, checked.fields_dropped),
            ),
            Verdict::Rejected { reasons, .. } => (
                None,
                reasons
                    .iter()
                    .map(|r| format!("{} at {:?}: {}", r.code, r.path, r.message))
                    .collect(),
                String::new(),
                (checked.prefix_stripped, checked.fields_dropped),
            ),
            Verdict::Fatal(e) => (None, Vec::new(), e.to_string(), (false, 0)),
        }
    }

    /// The fast path may only take a record the full path accepts, with the same bytes and the
    /// same identities, and may refuse one only for the full path's reasons; `check`'s verdict
    /// is the full path's whichever path answered. Returns whether the fast path took the
    /// record, and the full path's outcome; `Err` says how the paths differ.
    pub(crate) fn paths_agree(
        flavor: Flavor,
        context: Context,
        text: &[u8],
    ) -> Result<(bool, Outcome), String> {
        let record = raw(text);
        let shown = String::from_utf8_lossy(text);
        let (mut fast_out, mut full_out, mut both_out) = (Vec::new(), Vec::new(), Vec::new());
        let mut scratch = Vec::new();
        let fast = judge_as_written(&record, flavor, context, &mut fast_out, &mut scratch);
        let full = check_fully(&record, flavor, context, &mut full_out, &mut scratch);
        let both = check(&record, flavor, context, &mut both_out, &mut scratch);
        let full = outcome(&full, &full_out);
        let differ = |path: &str, got: &Outcome| {
            Err(format!(
                "{path} says {got:?}, the full path {full:?}, for {shown}"
            ))
        };
        let both = outcome(&both, &both_out);
        if both != full {
            return differ("check", &both);
        }
        let taken = match &fast {
            AsWritten::Accepted(fast) => {
                let fast = outcome(fast, &fast_out);
                if fast != full {
                    return differ("the fast path", &fast);
                }
                true
            }
            AsWritten::Refused(reasons) => {
                let refused = Checked {
                    verdict: Verdict::Rejected {
                        reasons: reasons.clone(),
                        user: None,
                    },
                    parsed: true,
                    prefix_stripped: false,
                    fields_dropped: 0,
                    entry: None,
                };
                let refused = outcome(&refused, &fast_out);
                if refused != full {
                    return differ("the fast path's refusal", &refused);
                }
                false
            }
            AsWritten::Unknown => false,
        };
        Ok((taken, full))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::differential::{outcome, raw, Outcome};
    use super::*;
    use crate::rules::testkit::{near_miss_json, published_examples};

    const CONTEXT: Context = Context {
        layout: Layout::Ndjson,
        max_chunk_bytes: 500_000,
    };

    /// The codes of an outcome's reject reasons.
    fn codes_of(outcome: &Outcome) -> Vec<&str> {
        outcome
            .1
            .iter()
            .filter_map(|reason| reason.split(' ').next())
            .collect()
    }

    /// The fast path may only take a record the full path accepts, with the same bytes and the
    /// same identities; `check`'s verdict is the full path's whichever path answered. Returns
    /// whether the fast path took the record.
    fn assert_paths_agree(text: &str) -> Result<bool, TestCaseError> {
        paths_agree(text.as_bytes()).map(|(taken, _)| taken)
    }

    /// `assert_paths_agree` for any bytes, also returning the full path's outcome.
    fn paths_agree(text: &[u8]) -> Result<(bool, Outcome), TestCaseError> {
        paths_agree_in(Flavor::Import, text)
    }

    /// `paths_agree` in a run of the given flavor.
    fn paths_agree_in(flavor: Flavor, text: &[u8]) -> Result<(bool, Outcome), TestCaseError> {
        paths_agree_with(flavor, CONTEXT, text)
    }

    /// `paths_agree_in` with another chunk limit (and layout).
    fn paths_agree_with(
        flavor: Flavor,
        context: Context,
        text: &[u8],
    ) -> Result<(bool, Outcome), TestCaseError> {
        differential::paths_agree(flavor, context, text).map_err(TestCaseError::fail)
    }

    /// The record `judge_as_written` accepts from its own bytes, if it does.
    fn accept_as_written(
        raw: &RawRecord,
        flavor: Flavor,
        context: Context,
        compact: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Option<Checked> {
        match judge_as_written(raw, flavor, context, compact, scratch) {
            AsWritten::Accepted(checked) => Some(checked),
            AsWritten::Refused(_) | AsWritten::Unknown => None,
        }
    }

    /// Bytes that sit at the edges of JSON's grammar, for edits of valid text.
    const EDIT_BYTES: &[u8] = b" \t\n\r\x0b\x0c\"\\/,:{}[]0159-+.eEtrufalsnu\x01\x7f\xc3\xa9\xff";

    /// `value` as text with a key of its first object member written twice (`{"k":v,...,"k":v2}`).
    fn with_repeated_key(value: &Value, replacement: &Value) -> Option<String> {
        let object = value.as_object()?;
        let (key, _) = object.iter().next()?;
        let text = serde_json::to_string(value).ok()?;
        let body = text.strip_suffix('}')?;
        Some(format!(
            "{body},{}:{}}}",
            serde_json::to_string(key).ok()?,
            serde_json::to_string(replacement).ok()?
        ))
    }

    /// Found by the `fast_path` fuzz target after 3 M executions: an export record whose only
    /// repeated key is one the export drops (`identities`) was taken from its own text, escapes
    /// as written (`\u00e9`), where the full path, which saw the repeat before reshaping, wrote
    /// it again (`é`). Both now keep the text: no key repeats in what is imported.
    #[test]
    fn a_repeat_only_in_a_dropped_export_field_gives_the_full_path_s_bytes() {
        let text = r#"{"user_id": "0cu009e@examl.cep\u00e9@exampu009e@ee.c\\u00e9@examplauth0|5f3c", "email": "bea@example.com", "identities": "2020-01-01T00:0;:0Z", "identities": [{"provider": "auth5", "user_id": "2f6c", "isSocial": false}], "logins_count": 12, "name": "B\u00e9a"}"#;
        let (taken, full) = paths_agree_in(Flavor::Auth0Export, text.as_bytes()).unwrap();
        assert!(taken);
        let bytes = String::from_utf8(full.0.unwrap()).unwrap();
        assert!(
            bytes.contains(r"cep\u00e9@") && !bytes.contains("identities"),
            "{bytes}"
        );
    }

    /// Found by the `fast_path` fuzz target after 2.2 M executions: a record whose only repeated
    /// keys sit inside `user_metadata` was taken by the fast path as written, both copies kept,
    /// while the full path on its own wrote it again with the last copies (`0e400` as `0.0`).
    /// Both keep the text now; a repeat the rules read still has it written again.
    #[test]
    fn a_repeat_only_in_metadata_is_kept_as_written_by_both_paths() {
        let text = r#"{"email":"a@example.com","user_metadata":{"email":"b@example.com","n":[0e400],"email":"c@example.com"}}"#;
        let (taken, full) = paths_agree(text.as_bytes()).unwrap();
        assert!(taken);
        assert_eq!(full.0.as_deref(), Some(text.as_bytes()));
        // The same repeat inside app_metadata, in a record only the full path takes (more
        // containers than `MAX_FAST_CONTAINERS`), is kept as written too.
        let text = format!(
            r#"{{"email":"a@example.com","app_metadata":{{"a":1,"l":[{}[]],"a":2}}}}"#,
            "[],".repeat(MAX_FAST_CONTAINERS)
        );
        let (taken, full) = paths_agree(text.as_bytes()).unwrap();
        assert!(!taken);
        assert_eq!(full.0.as_deref(), Some(text.as_bytes()));
        // A repeat the rules read (`email` at the top) is not the checked value as written: the
        // record is written again, one `email`, the last.
        let text =
            r#"{"email":"b@example","user_metadata":{"n":[0e400],"n":1},"email":"a@example.com"}"#;
        let (taken, full) = paths_agree(text.as_bytes()).unwrap();
        assert!(!taken);
        let written = String::from_utf8(full.0.unwrap()).unwrap();
        assert_eq!(written.matches("\"email\"").count(), 1, "{written}");
        assert!(
            written.contains("a@example.com") && !written.contains("0e400"),
            "{written}"
        );
    }

    #[test]
    fn valid_records_take_the_fast_path_and_agree() {
        for user in published_examples() {
            let text = serde_json::to_string_pretty(&user).unwrap();
            assert!(
                assert_paths_agree(&text).unwrap(),
                "not taken as written: {text}"
            );
        }
    }

    #[test]
    fn records_needing_the_full_path_do_not_take_the_fast_one() {
        let mut scratch = Vec::new();
        for text in [
            // A repeated key: Auth0 keeps the last copy, which here is invalid.
            r#"{"email":"a@example.com","email":"not an email"}"#,
            // A repeated key whose last copy is valid: accepted, but not from its raw bytes.
            r#"{"email":"not an email","email":"a@example.com"}"#,
            // A prefix written with an escape: the text alone does not show it.
            r#"{"email":"a@example.com","user_id":"auth0\u007c42"}"#,
            // Broken JSON and rule violations are explained by the full path.
            r#"{"email":"a@example.com""#,
            r#"{"email":"a@example.com","blocked":"yes"}"#,
        ] {
            let mut out = Vec::new();
            assert!(
                accept_as_written(&raw(text), Flavor::Import, CONTEXT, &mut out, &mut scratch)
                    .is_none(),
                "{text}"
            );
            assert_paths_agree(text).unwrap();
        }
        // A repeat inside free-form metadata does not change what the rules read: taken as
        // written, both copies kept (Auth0 reads the last, as the input says).
        let text = r#"{"email":"a@example.com","user_metadata":{"plan":"free","plan":"pro"}}"#;
        let mut out = Vec::new();
        let fast = accept_as_written(&raw(text), Flavor::Import, CONTEXT, &mut out, &mut scratch);
        assert_eq!(
            fast.map(|checked| outcome(&checked, &out).0),
            Some(Some(text.as_bytes().to_vec()))
        );
        // The second record above is accepted (by the full path), re-serialised with one email.
        let mut out = Vec::new();
        let checked = check(
            &raw(r#"{"email":"not an email","email":"a@example.com"}"#),
            Flavor::Import,
            CONTEXT,
            &mut out,
            &mut scratch,
        );
        assert_eq!(
            outcome(&checked, &out).0.as_deref(),
            Some(br#"{"email":"a@example.com"}"#.as_slice())
        );
    }

    /// What the fast path alone makes of `text` in a run of Auth0's export.
    fn fast_in_export(text: &str) -> Option<Outcome> {
        let mut out = Vec::new();
        let fast = accept_as_written(
            &raw(text),
            Flavor::Auth0Export,
            CONTEXT,
            &mut out,
            &mut Vec::new(),
        );
        fast.map(|checked| outcome(&checked, &out))
    }

    #[test]
    fn export_records_are_reshaped_from_their_text() {
        let text = concat!(
            r#"{"user_id": "auth0|5f3c", "email": "b\u00e9a@example.com", "#,
            r#""created_at": "2020-01-01T00:00:00.000Z", "identities": [{"provider": "auth0", "#,
            r#""user_id": "5f3c", "isSocial": false}], "name": "B\u00e9a, \"Bee\"", "#,
            r#""logins_count": 12, "user_metadata": {"n": 1.0E2}}"#,
        );
        let (bytes, reasons, _, (prefix_stripped, fields_dropped)) =
            fast_in_export(text).expect("taken as written");
        assert_eq!(reasons, Vec::<String>::new());
        // What is left is the input as written, minus whitespace, the three export-only members
        // and the prefix.
        assert_eq!(
            String::from_utf8(bytes.unwrap()).unwrap(),
            concat!(
                r#"{"user_id":"5f3c","email":"b\u00e9a@example.com","#,
                r#""name":"B\u00e9a, \"Bee\"","user_metadata":{"n":1.0E2}}"#,
            )
        );
        assert!(prefix_stripped);
        let dropped: Vec<&str> = EXPORT_ONLY_FIELDS
            .iter()
            .enumerate()
            .filter(|(i, _)| fields_dropped & (1 << i) != 0)
            .map(|(_, f)| *f)
            .collect();
        assert_eq!(dropped, ["created_at", "logins_count", "identities"]);
        let (taken, _) = paths_agree_in(Flavor::Auth0Export, text.as_bytes()).unwrap();
        assert!(taken);
        // Every copy of a repeated export-only field goes, as the parsed value's last one does.
        let text = r#"{"email":"a@example.com","logins_count":1,"logins_count":2}"#;
        let (taken, full) = paths_agree_in(Flavor::Auth0Export, text.as_bytes()).unwrap();
        assert!(taken);
        assert_eq!(
            full.0.as_deref(),
            Some(br#"{"email":"a@example.com"}"#.as_slice())
        );

        for text in [
            // A member that is dropped must still be JSON: the full path says it is not.
            r#"{"user_id":"auth0|1","email":"a@example.com","identities":[tru]}"#,
            // A key written with an escape is only known once parsed.
            r#"{"user_id":"auth0|1","email":"a@example.com","identit\u0069es":[]}"#,
            // A repeated id: Auth0 would read the last copy.
            r#"{"user_id":"auth0|1","email":"a@example.com","user_id":"auth0|2"}"#,
        ] {
            assert!(fast_in_export(text).is_none(), "{text}");
            paths_agree_in(Flavor::Auth0Export, text.as_bytes()).unwrap();
        }
    }

    #[test]
    fn refused_records_are_explained_as_the_full_path_explains_them() {
        let mut scratch = Vec::new();
        // Numbers that two parsers might hold differently (an integer written as a float, with
        // an exponent, negative zero, past u64), where the rules read numbers, next to a
        // violation that refuses the record whatever they make of the number.
        for number in [
            "16",
            "16.0",
            "1.6e1",
            "-0",
            "-16",
            "18446744073709551616",
            "1e400",
        ] {
            let text = format!(
                r#"{{"email":"not an email","custom_password_hash":{{"algorithm":"scrypt","hash":{{"value":"aGFzaA==","encoding":"base64"}},"salt":{{"value":"c2FsdA==","encoding":"base64"}},"keylen":{number},"cost":{number}}}}}"#
            );
            paths_agree(text.as_bytes()).unwrap();
            let mut out = Vec::new();
            let judged =
                judge_as_written(&raw(&text), Flavor::Import, CONTEXT, &mut out, &mut scratch);
            let parsed = sonic_rs::from_str::<sonic_rs::Value>(&text).is_ok();
            assert_eq!(matches!(judged, AsWritten::Refused(_)), parsed, "{text}");
        }
        // A repeated key leaves the record to the full path, which keeps the last copy.
        for text in [
            r#"{"email":"not an email","email":"a@example.com","blocked":"no"}"#,
            r#"{"email":"not an email","user_metadata":{"a":1,"a":2}}"#,
        ] {
            let mut out = Vec::new();
            let judged =
                judge_as_written(&raw(text), Flavor::Import, CONTEXT, &mut out, &mut scratch);
            assert!(matches!(judged, AsWritten::Unknown), "{text}");
            assert!(!paths_agree(text.as_bytes()).unwrap().0);
        }
        // So does anything to reshape, and then what is refused is the reshaped record.
        let text = r#"{"email":"not an email","user_id":"auth0|42"}"#;
        let judged = judge_as_written(
            &raw(text),
            Flavor::Import,
            CONTEXT,
            &mut Vec::new(),
            &mut scratch,
        );
        assert!(matches!(judged, AsWritten::Unknown));
        paths_agree(text.as_bytes()).unwrap();
        // The reject entry holds the record as the full path holds it: reshaped, or as written.
        for (text, shown) in [
            (
                text,
                serde_json::json!({"email": "not an email", "user_id": "42"}),
            ),
            (
                r#"{"email":"not an email","blocked":true}"#,
                serde_json::json!({"email": "not an email", "blocked": true}),
            ),
        ] {
            let checked = check(
                &raw(text),
                Flavor::Import,
                CONTEXT,
                &mut Vec::new(),
                &mut scratch,
            );
            let Verdict::Rejected { user, .. } = checked.verdict else {
                panic!("refused: {text}");
            };
            assert_eq!(user, Some(shown), "{text}");
        }
    }

    #[test]
    fn the_paths_agree_at_the_edges_found_in_review() {
        let nested = |levels: usize, tail: &str| {
            // The record, user_metadata, and `levels - 2` arrays.
            format!(
                r#"{{"email":"a@example.com","user_metadata":{{"a":{}{}}}{tail}}}"#,
                "[".repeat(levels - 2),
                "]".repeat(levels - 2)
            )
        };
        // serde_json reads 127 levels and refuses 128: so does the fast path now.
        for flavor in [Flavor::Import, Flavor::Auth0Export] {
            let (taken, full) = paths_agree_in(flavor, nested(127, "").as_bytes()).unwrap();
            assert!(taken && full.0.is_some());
            let (taken, full) = paths_agree_in(flavor, nested(128, "").as_bytes()).unwrap();
            assert!(!taken && codes_of(&full) == [codes::INVALID_JSON]);
        }
        // Over the limits only before export-only members are dropped: the full path decides.
        let small = |max_chunk_bytes| Context {
            layout: Layout::Ndjson,
            max_chunk_bytes,
        };
        let pad = "x".repeat(600);
        let deep = nested(128, &format!(r#","last_ip":"{pad}""#));
        paths_agree_with(Flavor::Auth0Export, small(500), deep.as_bytes()).unwrap();
        let repeat = format!(
            r#"{{"email":"a@example.com","user_metadata":{{"a":1,"a":2}},"identities":[{{"p":"{}"}}]}}"#,
            "x".repeat(300)
        );
        let (taken, _) =
            paths_agree_with(Flavor::Auth0Export, small(200), repeat.as_bytes()).unwrap();
        assert!(!taken);
        // An id prefixed twice is taken only by the full path, as before the text pass.
        let text =
            r#"{"email":"a@example.com","user_id":"auth0|auth0|x","user_metadata":{"a":1,"a":2}}"#;
        for flavor in [Flavor::Import, Flavor::Auth0Export] {
            let (taken, _) = paths_agree_in(flavor, text.as_bytes()).unwrap();
            assert!(!taken);
        }
    }

    #[test]
    fn both_parsers_draw_the_line_of_json_syntax_in_the_same_place() {
        // Each goes after a valid email member; sonic_rs and serde_json were checked to agree on
        // every one (numbers out of range, control characters, lone surrogates, bad UTF-8, ...).
        let values: [&[u8]; 21] = [
            b"1e400",
            b"1e-400",
            b"-0",
            b"123456789012345678901234567890",
            b"01",
            b"1.",
            b".5",
            b"+1",
            b"NaN",
            b"tru",
            b"\"x\ty\"",
            b"\"x\x01y\"",
            b"\"\\u00\"",
            b"\"\\x\"",
            b"\"\\uDC00\"",
            b"\"\\uD800\\uDC00\"",
            b"\"\xed\xa0\x80\"",
            b"\"\xc0\xaf\"",
            b"\"\\/\"",
            b"[1,]",
            b"{\"k\":1}  ",
        ];
        for value in values {
            let mut bytes = br#"{"email":"a@example.com","user_metadata":{"v":"#.to_vec();
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"}}");
            let (taken, full) = paths_agree(&bytes).unwrap();
            assert!(
                taken || full.0.is_none(),
                "the full path accepts {}, the fast path does not",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn deeply_nested_records_are_refused_without_overflowing_the_stack() {
        // Tests run on 2 MiB threads, like the pipeline's workers.
        let depth = 100_000;
        let text = format!(
            r#"{{"email":"a@example.com","user_metadata":{{"x":{}{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let mut out = Vec::new();
        let checked = check(
            &raw(&text),
            Flavor::Import,
            CONTEXT,
            &mut out,
            &mut Vec::new(),
        );
        assert_eq!(codes_of(&outcome(&checked, &out)), [codes::INVALID_JSON]);
        // Many containers, shallow: over the fast path's count, and accepted by the full path.
        let text = format!(
            r#"{{"email":"a@example.com","user_metadata":{{"x":[{}{{}}]}}}}"#,
            "{},".repeat(199)
        );
        assert!(!assert_paths_agree(&text).unwrap());
        let checked = check(
            &raw(&text),
            Flavor::Import,
            CONTEXT,
            &mut out,
            &mut Vec::new(),
        );
        assert!(matches!(checked.verdict, Verdict::Accepted { .. }));
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_full_path_on_near_misses(user in near_miss_json()) {
            assert_paths_agree(&serde_json::to_string(&user).unwrap())?;
        }

        #[test]
        fn fast_path_agrees_on_examples_with_one_member_changed(
            pick in any::<prop::sample::Index>(),
            member in any::<prop::sample::Index>(),
            value in near_miss_json(),
            repeat in any::<bool>(),
        ) {
            let examples = published_examples();
            let mut user = pick.get(&examples).clone();
            if repeat {
                if let Some(text) = with_repeated_key(&user, &value) {
                    assert_paths_agree(&text)?;
                }
            }
            if let Some(object) = user.as_object_mut() {
                let keys: Vec<String> = object.keys().cloned().collect();
                let key = member.get(&keys).clone();
                object.insert(key, value);
            }
            assert_paths_agree(&serde_json::to_string(&user).unwrap())?;
        }

        #[test]
        fn fast_paths_agree_on_text_with_bytes_edited(
            pick in any::<prop::sample::Index>(),
            pretty in any::<bool>(),
            flavor in prop::sample::select(vec![Flavor::Import, Flavor::Auth0Export]),
            exported in any::<bool>(),
            edits in prop::collection::vec(
                (0..3u8, any::<prop::sample::Index>(), prop::sample::select(EDIT_BYTES.to_vec())),
                1..4,
            ),
        ) {
            // The text pass reads JSON syntax itself: edits near its grammar's edges (whitespace
            // inside tokens, escapes, numbers, literals, bad UTF-8) must leave every record it
            // takes one the full path accepts, with the same bytes.
            let examples = published_examples();
            let mut user = pick.get(&examples).clone();
            if exported {
                // As Auth0 exports it: a prefixed id and export-only members.
                user["user_id"] = Value::from("auth0|5f3c");
                user["logins_count"] = Value::from(3);
                user["identities"] = serde_json::json!([{ "provider": "auth0", "isSocial": false }]);
            }
            let mut text = if pretty {
                serde_json::to_vec_pretty(&user).unwrap()
            } else {
                serde_json::to_vec(&user).unwrap()
            };
            for (kind, at, byte) in edits {
                let at = at.index(text.len() + 1);
                match kind {
                    0 => text.insert(at, byte),
                    1 if at < text.len() => { text.remove(at); }
                    _ if at < text.len() => text[at] = byte,
                    _ => text.push(byte),
                }
            }
            paths_agree_in(flavor, &text)?;
        }

        #[test]
        fn fast_path_agrees_on_export_records(
            pick in any::<prop::sample::Index>(),
            fields in prop::collection::vec((any::<prop::sample::Index>(), near_miss_json()), 0..4),
            prefix in any::<bool>(),
            flavor in prop::sample::select(vec![Flavor::Auth0Export, Flavor::Import]),
            pretty in any::<bool>(),
        ) {
            let examples = published_examples();
            let mut user = pick.get(&examples).clone();
            let valid = fields.is_empty() || flavor == Flavor::Auth0Export;
            if let Some(object) = user.as_object_mut() {
                if prefix {
                    let id = object.get("user_id").and_then(Value::as_str).unwrap_or("42");
                    let id = format!("auth0|{id}");
                    object.insert("user_id".into(), Value::String(id));
                }
                for (field, value) in fields {
                    object.insert(field.get(EXPORT_ONLY_FIELDS).to_string(), value);
                }
            }
            let text = if pretty {
                serde_json::to_string_pretty(&user).unwrap()
            } else {
                serde_json::to_string(&user).unwrap()
            };
            let (taken, full) = paths_agree_in(flavor, text.as_bytes())?;
            // Published examples stay valid with any export-only field in an export, which
            // drops it, and their reshaped text is what goes into the chunk.
            prop_assert_eq!(taken, valid, "{}", text);
            prop_assert_eq!(full.3.0, prefix);
            // The bytes taken are the value reshaped as the serde_json path reshapes it.
            if let Some(bytes) = &full.0 {
                let mut counts = Transformations::default();
                if flavor == Flavor::Auth0Export {
                    export::drop_export_fields(&mut user, &mut counts);
                }
                export::strip_id_prefix(&mut user, &mut counts);
                prop_assert_eq!(serde_json::from_slice::<Value>(bytes).unwrap(), user);
            }
        }
    }
}
