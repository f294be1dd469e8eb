//! Duplicates inside one drop (same email or username, case-insensitive, or same user_id),
//! found with flat memory: identity fingerprints spill to partition files, resolved at the end.
//!
//! The first occurrence of a user is kept and later ones are rejected naming it (Auth0 itself
//! fails the later ones with DUPLICATED_USER "already provided", facts §7.1). Only records that
//! passed every other rule take part: a broken first copy must not shadow a good second one.
//! A record rejected as a duplicate holds no identity either, so chains resolve as they would
//! record by record in input order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::rc::Rc;

use sonic_rs::{JsonValueTrait, Value};

use crate::violation::Violation;

const PARTITIONS: usize = 64;
/// A spilled `Seen`: five words.
const SEEN_BYTES: usize = 20;
/// A spilled `Entry`: the fingerprint and a `Seen`.
const ENTRY_BYTES: usize = 16 + SEEN_BYTES;
const WRITE_BUFFER: usize = 32 * 1024;
/// A partition's entries go to the spill file in blocks of this many (just under 32 KiB).
const BLOCK_ENTRIES: usize = WRITE_BUFFER / ENTRY_BYTES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentityKind {
    Email,
    Username,
    UserId,
    /// Auth0 matches existing users on phone too (facts §7.2: "email, user ID, phone or
    /// username"), so two records with one phone number would collide at Auth0.
    PhoneNumber,
}

impl IdentityKind {
    /// Every identity Auth0 matches users on, in the order they are checked.
    pub const ALL: [IdentityKind; 4] = [
        IdentityKind::Email,
        IdentityKind::Username,
        IdentityKind::UserId,
        IdentityKind::PhoneNumber,
    ];

    pub(crate) const fn field(self) -> &'static str {
        match self {
            IdentityKind::Email => "email",
            IdentityKind::Username => "username",
            IdentityKind::UserId => "user_id",
            IdentityKind::PhoneNumber => "phone_number",
        }
    }

    /// Emails and usernames are stored lower-cased (facts §4.2); ids and phones are compared
    /// as given.
    fn case_insensitive(self) -> bool {
        matches!(self, IdentityKind::Email | IdentityKind::Username)
    }

    fn from_bits(bits: u32) -> Self {
        match bits {
            0 => IdentityKind::Email,
            1 => IdentityKind::Username,
            2 => IdentityKind::UserId,
            _ => IdentityKind::PhoneNumber,
        }
    }

    fn bits(self) -> u32 {
        self as u32
    }
}

/// The identities a record claims, normalised the way Auth0 compares them.
pub fn identities(user: &Value) -> Vec<(IdentityKind, String)> {
    IdentityKind::ALL
        .iter()
        .filter_map(|&kind| {
            let value = user.get(kind.field()).and_then(|v| v.as_str())?;
            Some((
                kind,
                if kind.case_insensitive() {
                    value.to_lowercase()
                } else {
                    value.to_string()
                },
            ))
        })
        .collect()
}

/// A record's identities as fingerprints, taken where the record is parsed (a pipeline worker)
/// so the finder, on the sequencing thread, only has to spill them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprints {
    items: [(IdentityKind, u128); IdentityKind::ALL.len()],
    len: usize,
}

impl Fingerprints {
    pub fn iter(&self) -> impl Iterator<Item = (IdentityKind, u128)> + '_ {
        self.items[..self.len].iter().copied()
    }
}

/// The fingerprints of `identities(user)`, without a `String` per identity: ASCII values (nearly
/// all) are lower-cased into `scratch`, which the caller reuses across records.
pub fn fingerprints(user: &Value, scratch: &mut Vec<u8>) -> Fingerprints {
    fingerprints_of(
        |kind| user.get(kind.field()).and_then(|v| v.as_str()),
        scratch,
    )
}

/// `fingerprints` of a record whose string field for each identity `field` gives.
pub fn fingerprints_of<'v>(
    field: impl Fn(IdentityKind) -> Option<&'v str>,
    scratch: &mut Vec<u8>,
) -> Fingerprints {
    let mut out = Fingerprints {
        items: [(IdentityKind::Email, 0); IdentityKind::ALL.len()],
        len: 0,
    };
    for kind in IdentityKind::ALL {
        let Some(value) = field(kind) else {
            continue;
        };
        scratch.clear();
        scratch.push(kind.bits() as u8);
        if !kind.case_insensitive() {
            scratch.extend_from_slice(value.as_bytes());
        } else if value.is_ascii() {
            // For ASCII, `to_lowercase` is exactly the ASCII mapping.
            scratch.extend_from_slice(value.as_bytes());
            scratch[1..].make_ascii_lowercase();
        } else {
            scratch.extend_from_slice(value.to_lowercase().as_bytes());
        }
        // One-shot XXH3 over kind byte + value equals the streaming `fingerprint`.
        out.items[out.len] = (kind, xxhash_rust::xxh3::xxh3_128(scratch));
        out.len += 1;
    }
    out
}

/// Where an accepted record went, so a later duplicate can be taken back out of its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub index: u64,
    pub line: u64,
    pub seq: u32,
    pub position: u32,
    /// The record's size in its chunk (compact bytes): what removing it frees.
    pub len: u32,
}

/// A record that repeats an earlier kept one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub at: Occurrence,
    /// The earlier, kept record it repeats, once per identity they share. Held this small (not
    /// as formatted reasons) because a drop can hold many duplicates: see `reasons`.
    pub repeats: Vec<Repeat>,
}

/// One identity a duplicate shares with the kept record that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    pub kind: IdentityKind,
    /// The kept record: its input index and line.
    pub index: u32,
    pub line: u32,
}

impl Duplicate {
    /// Spilled as five words (index, line, seq, position, len), a repeat count, then each
    /// repeat as its kind, index and line.
    fn encode_into(&self, out: &mut impl Write) -> io::Result<()> {
        let at = &self.at;
        // Both came from a `Seen`'s u32s.
        let index = u32::try_from(at.index).unwrap_or(u32::MAX);
        let line = u32::try_from(at.line).unwrap_or(u32::MAX);
        for word in [index, line, at.seq, at.position, at.len] {
            out.write_all(&word.to_le_bytes())?;
        }
        // At most one repeat per identity kind.
        out.write_all(&[self.repeats.len() as u8])?;
        for r in &self.repeats {
            out.write_all(&[r.kind.bits() as u8])?;
            out.write_all(&r.index.to_le_bytes())?;
            out.write_all(&r.line.to_le_bytes())?;
        }
        Ok(())
    }

    /// The next duplicate `encode_into` wrote; `None` at the end of the file.
    fn decode_from(input: &mut impl BufRead) -> io::Result<Option<Duplicate>> {
        let mut head = [0u8; 21];
        if !read_spilled(input, &mut head)? {
            return Ok(None);
        }
        let at = Occurrence {
            index: u64::from(le_word(&head, 0)),
            line: u64::from(le_word(&head, 4)),
            seq: le_word(&head, 8),
            position: le_word(&head, 12),
            len: le_word(&head, 16),
        };
        let mut repeats = Vec::with_capacity(usize::from(head[20]));
        for _ in 0..head[20] {
            let mut r = [0u8; 9];
            input.read_exact(&mut r)?;
            repeats.push(Repeat {
                kind: IdentityKind::from_bits(u32::from(r[0])),
                index: le_word(&r, 1),
                line: le_word(&r, 5),
            });
        }
        Ok(Some(Duplicate { at, repeats }))
    }

    /// Why the record is rejected: one `DUPLICATED_USER` per identity it repeats.
    pub fn reasons(&self) -> Vec<Violation> {
        self.repeats
            .iter()
            .map(|r| {
                let field = r.kind.field();
                Violation::new(
                    "DUPLICATED_USER",
                    field,
                    format!(
                        "A user with this {field} was already provided: record {} (line {}) has the same {field}{}; the first occurrence is kept",
                        r.index,
                        r.line,
                        if r.kind.case_insensitive() { " (compared case-insensitively)" } else { "" },
                    ),
                )
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DuplicateError {
    #[error("spill file I/O for duplicate detection failed: {0}")]
    Io(#[from] io::Error),
    #[error(
        "more than {} records: the duplicate index cannot address them",
        u32::MAX
    )]
    TooManyRecords,
}

/// One identity of one record, as spilled: its fingerprint and where the record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    fingerprint: u128,
    seen: Seen,
}

/// Where a record with some identity was seen, and which kind of identity it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    index: u32,
    kind: u32,
    line: u32,
    seq: u32,
    position: u32,
    len: u32,
}

impl Seen {
    fn occurrence(&self) -> Occurrence {
        Occurrence {
            index: u64::from(self.index),
            line: u64::from(self.line),
            seq: self.seq,
            position: self.position,
            len: self.len,
        }
    }
}

impl Seen {
    /// Five words: index and kind share one (kind in the top two bits), then line, seq,
    /// position and len.
    fn encode(&self) -> [u8; SEEN_BYTES] {
        let index_kind = self.index | (self.kind << 30);
        let mut out = [0u8; SEEN_BYTES];
        let words = [index_kind, self.line, self.seq, self.position, self.len];
        for (slot, word) in out.chunks_exact_mut(4).zip(words) {
            slot.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// `b` starts with `SEEN_BYTES` written by `encode` (the callers' fixed-size records).
    fn decode(b: &[u8]) -> Self {
        let index_kind = le_word(b, 0);
        Seen {
            index: index_kind & 0x3fff_ffff,
            kind: index_kind >> 30,
            line: le_word(b, 4),
            seq: le_word(b, 8),
            position: le_word(b, 12),
            len: le_word(b, 16),
        }
    }
}

/// The little-endian u32 at `at` in a spilled record.
fn le_word(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Entry {
    /// The fingerprint, then the `Seen`.
    fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut out = [0u8; ENTRY_BYTES];
        out[..16].copy_from_slice(&self.fingerprint.to_le_bytes());
        out[16..].copy_from_slice(&self.seen.encode());
        out
    }

    fn decode(b: &[u8; ENTRY_BYTES]) -> Self {
        let mut fingerprint = [0u8; 16];
        fingerprint.copy_from_slice(&b[..16]);
        Entry {
            fingerprint: u128::from_le_bytes(fingerprint),
            seen: Seen::decode(&b[16..]),
        }
    }
}

/// Collects identities during the streaming pass, then finds the duplicates.
///
/// Every partition spills into one file, in blocks of whole entries written as they fill: a
/// run creates one file for them, not one per partition. (On ext4 without a journal, as on
/// the project's machines, creating a file near many deleted in the last minutes costs the
/// kernel ~0.3 ms, and every run deletes its spill files: the 64 partition files it created
/// took ~20 ms before the run read its first record.)
pub struct DuplicateFinder {
    // Holds the spill files; they live exactly as long as the finder.
    dir: tempfile::TempDir,
    spill: File,
    /// The spill file's length: where the next block goes.
    spilled: u64,
    /// Entries per block (`BLOCK_ENTRIES`; fewer in tests, to write many blocks).
    block_entries: usize,
    partitions: Vec<Partition>,
}

/// One partition's entries: the blocks written to the spill file, then those not yet written.
#[derive(Default)]
struct Partition {
    /// Offset and length of each block in the spill file, in the order written.
    blocks: Vec<(u64, usize)>,
    pending: Vec<u8>,
}

const SPILL_NAME: &str = "spill";

impl DuplicateFinder {
    /// Spill files go under `spill_dir` (Lambda: /tmp), or the system temp dir.
    pub fn new(spill_dir: Option<&Path>) -> Result<Self, DuplicateError> {
        Self::with_block_entries(spill_dir, BLOCK_ENTRIES)
    }

    fn with_block_entries(
        spill_dir: Option<&Path>,
        block_entries: usize,
    ) -> Result<Self, DuplicateError> {
        let dir = match spill_dir {
            Some(d) => tempfile::Builder::new().prefix("dups-").tempdir_in(d)?,
            None => tempfile::Builder::new().prefix("dups-").tempdir()?,
        };
        let spill = spill_file(dir.path(), SPILL_NAME)?;
        let mut partitions = Vec::with_capacity(PARTITIONS);
        partitions.resize_with(PARTITIONS, Partition::default);
        Ok(DuplicateFinder {
            dir,
            spill,
            spilled: 0,
            block_entries: block_entries.max(1),
            partitions,
        })
    }

    /// Notes the identities of an accepted record placed at `at`.
    pub fn record(&mut self, user: &Value, at: Occurrence) -> Result<(), DuplicateError> {
        let mut scratch = Vec::new();
        self.record_fingerprints(&fingerprints(user, &mut scratch), at)
    }

    /// Notes identities already fingerprinted (`fingerprints`) of an accepted record at `at`.
    pub fn record_fingerprints(
        &mut self,
        ids: &Fingerprints,
        at: Occurrence,
    ) -> Result<(), DuplicateError> {
        // Indexes share a word with the kind (30 bits): ~10^9 records, far past any drop
        // that fits Lambda's 15 minutes.
        let index = u32::try_from(at.index)
            .ok()
            .filter(|i| *i < (1 << 30))
            .ok_or(DuplicateError::TooManyRecords)?;
        for (kind, fingerprint) in ids.iter() {
            let entry = Entry {
                fingerprint,
                seen: Seen {
                    index,
                    kind: kind.bits(),
                    line: u32::try_from(at.line).unwrap_or(u32::MAX),
                    seq: at.seq,
                    position: at.position,
                    len: at.len,
                },
            };
            let p = (fingerprint >> 122) as usize % PARTITIONS;
            let block_bytes = self.block_entries * ENTRY_BYTES;
            let partition = &mut self.partitions[p];
            if partition.pending.capacity() == 0 {
                partition.pending.reserve_exact(block_bytes);
            }
            partition.pending.extend_from_slice(&entry.encode());
            if partition.pending.len() >= block_bytes {
                // Appended where the file ends: blocks are only ever added in this phase.
                self.spill.write_all(&partition.pending)?;
                partition
                    .blocks
                    .push((self.spilled, partition.pending.len()));
                self.spilled += partition.pending.len() as u64;
                partition.pending.clear();
            }
        }
        Ok(())
    }

    /// Every duplicate with its reasons, in input order, spilled to disk and read back once.
    ///
    /// Memory stays flat: one partition's entries are read at a time, those whose fingerprint
    /// repeats are sorted by it to find its groups (records sharing one), and each partition's
    /// group members go back to disk sorted by input index. A merge of those runs then walks
    /// every record that appears in a group in input order, holding only each group's kept
    /// record (12 bytes a group).
    pub fn resolve(self) -> Result<Duplicates, DuplicateError> {
        let mut runs = Vec::new();
        let mut groups = 0u32;
        let mut block = Vec::new();
        // Every partition's run goes into one file, one after another, made at the first.
        let mut runs_file: Option<Rc<File>> = None;
        let mut runs_len = 0u64;
        for partition in self.partitions {
            let entries = read_partition(&self.spill, &partition, &mut block)?;
            drop(partition);
            let entries = shared_entries(entries);
            let mut members: Vec<Member> = Vec::new();
            for group in entries.chunk_by(|a, b| a.fingerprint == b.fingerprint) {
                members.extend(group.iter().map(|e| Member {
                    seen: e.seen,
                    group: groups,
                }));
                groups += 1;
            }
            drop(entries);
            if members.is_empty() {
                continue;
            }
            members.sort_unstable_by_key(|m| (m.seen.index, m.group));
            let file = match &runs_file {
                Some(file) => Rc::clone(file),
                None => Rc::clone(runs_file.insert(Rc::new(spill_file(self.dir.path(), "runs")?))),
            };
            let mut writer = BufWriter::with_capacity(WRITE_BUFFER, &*file);
            for member in &members {
                writer.write_all(&member.encode())?;
            }
            writer.flush()?;
            drop(writer);
            let start = runs_len;
            runs_len += (members.len() * MEMBER_BYTES) as u64;
            let run = RunRead {
                file,
                at: start,
                end: runs_len,
            };
            runs.push(BufReader::with_capacity(MERGE_BUFFER, run));
        }
        drop(block);
        // Read whole: its disk space (Lambda's /tmp) is given back before the duplicates are.
        drop(self.spill);
        std::fs::remove_file(self.dir.path().join(SPILL_NAME))?;
        let mut file = spill_file(self.dir.path(), "duplicates")?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file.try_clone()?);
        let mut found = Duplicates {
            freed: 0,
            thinned: Vec::new(),
            file: None,
            _dir: self.dir,
        };
        resolve_groups(MemberMerge::new(runs)?, groups as usize, |duplicate| {
            found.freed += u64::from(duplicate.at.len) + 1;
            if found.thinned.last() != Some(&duplicate.at.seq) {
                found.thinned.push(duplicate.at.seq);
            }
            duplicate.encode_into(&mut out)
        })?;
        out.flush()?;
        drop(out);
        io::Seek::seek(&mut file, io::SeekFrom::Start(0))?;
        found.file = Some(BufReader::with_capacity(MERGE_BUFFER, file));
        Ok(found)
    }
}

/// Read buffer of each run in the merge, and of the duplicates read back.
const MERGE_BUFFER: usize = 16 * 1024;
/// A spilled `Member`: a `Seen` and the group's word.
const MEMBER_BYTES: usize = SEEN_BYTES + 4;

fn spill_file(dir: &Path, name: &str) -> Result<File, DuplicateError> {
    Ok(File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.join(name))?)
}

/// The duplicates of a drop, as `DuplicateFinder::resolve` found them, read back from their
/// spill file in input order (which is also chunk and position order).
pub struct Duplicates {
    /// What taking them out frees in chunks: their compact size plus a comma each.
    pub freed: u64,
    /// The chunks holding at least one, in order.
    pub thinned: Vec<u32>,
    file: Option<BufReader<File>>,
    // Held so the spill files live exactly as long as the duplicates are read.
    _dir: tempfile::TempDir,
}

impl Iterator for Duplicates {
    type Item = Result<Duplicate, DuplicateError>;

    fn next(&mut self) -> Option<Self::Item> {
        let file = self.file.as_mut()?;
        let next = Duplicate::decode_from(file).transpose();
        if !matches!(next, Some(Ok(_))) {
            self.file = None;
        }
        next.map(|read| read.map_err(DuplicateError::from))
    }
}

/// An entry of a group of two or more, its fingerprint replaced by the group's number.
#[derive(Debug, Clone, Copy)]
struct Member {
    seen: Seen,
    group: u32,
}

impl Member {
    /// The `Seen`, then the group.
    fn encode(&self) -> [u8; MEMBER_BYTES] {
        let mut out = [0u8; MEMBER_BYTES];
        out[..SEEN_BYTES].copy_from_slice(&self.seen.encode());
        out[SEEN_BYTES..].copy_from_slice(&self.group.to_le_bytes());
        out
    }

    fn decode(b: &[u8; MEMBER_BYTES]) -> Self {
        Member {
            seen: Seen::decode(b),
            group: le_word(b, SEEN_BYTES),
        }
    }
}

/// One partition's run of members: its region of the runs file, which every run shares and
/// reads at its own place (the merge reads them in turn, on one thread).
struct RunRead {
    file: Rc<File>,
    at: u64,
    end: u64,
}

impl io::Read for RunRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.at).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let mut file = &*self.file;
        io::Seek::seek(&mut file, io::SeekFrom::Start(self.at))?;
        let read = file.read(&mut buf[..want])?;
        if read == 0 {
            // The file ends inside this run: fewer members must not pass for all of them.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("a duplicates run ends at {} of {} bytes", self.at, self.end),
            ));
        }
        self.at += read as u64;
        Ok(read)
    }
}

/// The members of every partition's run, merged in order of (input index, group).
struct MemberMerge {
    runs: Vec<BufReader<RunRead>>,
    /// Each run's next member, keyed for the merge.
    heads: BinaryHeap<Reverse<(u32, u32, usize)>>,
    next: Vec<Option<Member>>,
}

impl MemberMerge {
    fn new(mut runs: Vec<BufReader<RunRead>>) -> Result<Self, DuplicateError> {
        let mut next = Vec::with_capacity(runs.len());
        for run in &mut runs {
            next.push(read_member(run)?);
        }
        let heads = next
            .iter()
            .enumerate()
            .filter_map(|(run, m)| m.map(|m| Reverse((m.seen.index, m.group, run))))
            .collect();
        Ok(MemberMerge { runs, heads, next })
    }

    fn next(&mut self) -> Result<Option<Member>, DuplicateError> {
        let Some(Reverse((_, _, run))) = self.heads.pop() else {
            return Ok(None);
        };
        let member = self.next[run];
        self.next[run] = read_member(&mut self.runs[run])?;
        if let Some(m) = self.next[run] {
            self.heads.push(Reverse((m.seen.index, m.group, run)));
        }
        Ok(member)
    }
}

fn read_member(run: &mut BufReader<RunRead>) -> Result<Option<Member>, DuplicateError> {
    let mut buf = [0u8; MEMBER_BYTES];
    Ok(read_spilled(run, &mut buf)?.then(|| Member::decode(&buf)))
}

/// Fills `buf` with the next record of a spill file: `false` at the file's clean end, an error
/// where it ends inside a record (a short file must not pass for fewer duplicates).
fn read_spilled(input: &mut impl BufRead, buf: &mut [u8]) -> io::Result<bool> {
    if input.fill_buf()?.is_empty() {
        return Ok(false);
    }
    input.read_exact(buf)?;
    Ok(true)
}

/// Walks every record that appears in a group in input order (`members` yields them by input
/// index, then group): it is a duplicate if a group it belongs to already has a kept holder;
/// otherwise it becomes the holder of its groups. Each duplicate goes to `found`.
fn resolve_groups(
    mut members: MemberMerge,
    groups: usize,
    mut found: impl FnMut(&Duplicate) -> io::Result<()>,
) -> Result<(), DuplicateError> {
    // The kept record of each group: its index and line.
    let mut holder: Vec<Option<(u32, u32)>> = vec![None; groups];
    // One record's members: one per identity it shares with another record.
    let mut record: Vec<Member> = Vec::with_capacity(IdentityKind::ALL.len());
    let mut next = members.next()?;
    while let Some(first) = next {
        record.clear();
        record.push(first);
        next = members.next()?;
        while let Some(m) = next.filter(|m| m.seen.index == first.seen.index) {
            record.push(m);
            next = members.next()?;
        }
        let repeats: Vec<Repeat> = record
            .iter()
            .filter_map(|m| {
                holder[m.group as usize].map(|(index, line)| Repeat {
                    kind: IdentityKind::from_bits(m.seen.kind),
                    index,
                    line,
                })
            })
            .collect();
        if repeats.is_empty() {
            for m in &record {
                holder[m.group as usize].get_or_insert((m.seen.index, m.seen.line));
            }
        } else {
            found(&Duplicate {
                at: first.seen.occurrence(),
                repeats,
            })?;
        }
    }
    Ok(())
}

/// A partition's entries, in the order recorded: its blocks read back from the spill file
/// (one read each, into `block`, reused), then those never written. A block the file no
/// longer holds whole is an error: a short read must not pass for fewer identities.
fn read_partition(
    spill: &File,
    partition: &Partition,
    block: &mut Vec<u8>,
) -> Result<Vec<Entry>, DuplicateError> {
    let written: usize = partition.blocks.iter().map(|(_, len)| len).sum();
    let mut entries = Vec::with_capacity((written + partition.pending.len()) / ENTRY_BYTES);
    let mut file = spill;
    for &(at, len) in &partition.blocks {
        block.resize(len, 0);
        io::Seek::seek(&mut file, io::SeekFrom::Start(at))?;
        io::Read::read_exact(&mut file, block).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("a duplicates spill block ({len} bytes at {at}) cannot be read back: {e}"),
            )
        })?;
        decode_entries(block, &mut entries);
    }
    decode_entries(&partition.pending, &mut entries);
    Ok(entries)
}

/// Appends the entries spilled in `bytes` (whole entries: blocks are written that way).
fn decode_entries(bytes: &[u8], entries: &mut Vec<Entry>) {
    debug_assert_eq!(bytes.len() % ENTRY_BYTES, 0);
    let (whole, _) = bytes.as_chunks::<ENTRY_BYTES>();
    entries.extend(whole.iter().map(Entry::decode));
}

/// The entries whose fingerprint appears more than once, sorted (so by fingerprint). Nearly
/// every identity is unique: one pass through a set of the fingerprints' low 64 bits (9 bytes
/// a slot) finds the few that may repeat, and only those are sorted, instead of them all.
fn shared_entries(mut entries: Vec<Entry>) -> Vec<Entry> {
    let hasher = SeededFold::random();
    let mut seen = HashSet::with_capacity_and_hasher(entries.len(), hasher);
    let mut again = HashSet::with_hasher(hasher);
    for entry in &entries {
        let low = entry.fingerprint as u64;
        if !seen.insert(low) {
            again.insert(low);
        }
    }
    drop(seen);
    entries.retain(|entry| again.contains(&(entry.fingerprint as u64)));
    entries.sort_unstable();
    // Fingerprints that only share their low half are not shared: drop the runs of one.
    let mut shared = Vec::with_capacity(entries.len());
    for run in entries.chunk_by(|a, b| a.fingerprint == b.fingerprint) {
        if run.len() > 1 {
            shared.extend_from_slice(run);
        }
    }
    shared
}

/// Builds `FoldHasher`s with a key drawn once per set: the values hashed are digests already, so
/// one multiply spreads them over the table, and the random key keeps input crafted to pile
/// into one slot from doing so.
#[derive(Clone, Copy)]
struct SeededFold(u64);

impl SeededFold {
    fn random() -> Self {
        use std::hash::BuildHasher;
        SeededFold(std::collections::hash_map::RandomState::new().hash_one(0u8) | 1)
    }
}

impl std::hash::BuildHasher for SeededFold {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher {
            key: self.0,
            state: 0,
        }
    }
}

/// A folded multiply (the high and low halves of a 128-bit product, xored) per 8 bytes.
struct FoldHasher {
    key: u64,
    state: u64,
}

impl FoldHasher {
    fn mix(&mut self, word: u64) {
        let product =
            u128::from(self.state ^ word ^ self.key) * u128::from(self.key ^ 0x9e37_79b9_7f4a_7c15);
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl std::hash::Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.state
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.mix(word);
    }
}

/// 128 bits: for 10^9 identities the chance of any collision is ~10^-21, so fingerprints
/// stand in for the values themselves. `fingerprints` computes the same digests in one shot;
/// this streaming form is their reference in tests.
#[cfg(test)]
fn fingerprint(kind: IdentityKind, value: &str) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&[kind.bits() as u8]);
    h.update(value.as_bytes());
    h.digest128()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonic_rs::json;

    fn run(users: &[Value]) -> Vec<(u64, Vec<String>)> {
        let mut finder = DuplicateFinder::new(None).unwrap();
        for (i, u) in users.iter().enumerate() {
            let at = Occurrence {
                index: i as u64,
                line: i as u64 + 1,
                seq: 1,
                position: i as u32,
                len: 20,
            };
            finder.record(u, at).unwrap();
        }
        finder
            .resolve()
            .unwrap()
            .map(|d| {
                let d = d.unwrap();
                (
                    d.at.index,
                    d.reasons().iter().map(|r| r.path.clone()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn later_copies_are_duplicates_first_is_kept() {
        let users = vec![
            json!({"email":"A@x.io","username":"ann","user_id":"1"}),
            json!({"email":"b@x.io"}),
            json!({"email":"a@X.IO"}),
            json!({"email":"c@x.io","username":"ANN"}),
            json!({"email":"d@x.io","user_id":"1"}),
            json!({"email":"e@x.io","user_id":"1 "}),
            json!({"email":"f@x.io","phone_number":"+15550100"}),
            json!({"email":"g@x.io","phone_number":"+15550100"}),
            json!({"email":"h@x.io","phone_number":"+1 5550100"}),
        ];
        assert_eq!(
            run(&users),
            vec![
                (2, vec!["email".to_string()]),
                (3, vec!["username".to_string()]),
                (4, vec!["user_id".to_string()]),
                (7, vec!["phone_number".to_string()]),
            ]
        );
    }

    #[test]
    fn a_rejected_duplicate_holds_no_identity() {
        // Record 1 is dropped (its email repeats record 0), so record 2 is the first holder
        // of username "u2" and is kept.
        let users = vec![
            json!({"email":"a@x.io"}),
            json!({"email":"a@x.io","username":"u2"}),
            json!({"email":"c@x.io","username":"u2"}),
        ];
        assert_eq!(run(&users), vec![(1, vec!["email".to_string()])]);
    }

    #[test]
    fn message_names_the_first_occurrence() {
        let mut finder = DuplicateFinder::new(None).unwrap();
        for (i, line) in [(0u64, 7u64), (5, 40)] {
            let at = Occurrence {
                index: i,
                line,
                seq: 1,
                position: 0,
                len: 20,
            };
            finder.record(&json!({"email":"a@x.io"}), at).unwrap();
        }
        let dups: Vec<Duplicate> = finder.resolve().unwrap().map(Result::unwrap).collect();
        assert_eq!(dups.len(), 1);
        assert!(
            dups[0].reasons()[0].message.contains("record 0 (line 7)"),
            "{:?}",
            dups[0]
        );
        assert_eq!(dups[0].reasons()[0].code, "DUPLICATED_USER");
    }

    #[test]
    fn fingerprints_match_identities() {
        let mut scratch = Vec::new();
        for user in [
            json!({"email":"A@X.io","username":"ÅSA.Σ","user_id":"AbC"}),
            json!({"email":"ß@x.io","user_id":7}),
            json!({"username":"plain"}),
            json!([1]),
        ] {
            let expected: Vec<(IdentityKind, u128)> = identities(&user)
                .into_iter()
                .map(|(k, v)| (k, fingerprint(k, &v)))
                .collect();
            let got: Vec<(IdentityKind, u128)> = fingerprints(&user, &mut scratch).iter().collect();
            assert_eq!(got, expected, "{user}");
        }
    }

    #[test]
    fn entries_round_trip_through_spill_encoding() {
        let e = Entry {
            fingerprint: u128::MAX - 7,
            seen: Seen {
                index: (1 << 30) - 1,
                kind: 2,
                line: 9,
                seq: 3,
                position: 11,
                len: 499_999,
            },
        };
        assert_eq!(Entry::decode(&e.encode()), e);
    }

    #[test]
    fn members_and_duplicates_round_trip_through_spill_encoding() {
        let m = Member {
            seen: Seen {
                index: (1 << 30) - 1,
                kind: 3,
                line: u32::MAX,
                seq: 12,
                position: 499,
                len: 7,
            },
            group: 4_000_000_000,
        };
        let back = Member::decode(&m.encode());
        assert_eq!((back.seen, back.group), (m.seen, m.group));
        let d = Duplicate {
            at: m.seen.occurrence(),
            repeats: IdentityKind::ALL
                .iter()
                .enumerate()
                .map(|(i, &kind)| Repeat {
                    kind,
                    index: i as u32 * 1000,
                    line: u32::MAX - i as u32,
                })
                .collect(),
        };
        let mut bytes = Vec::new();
        d.encode_into(&mut bytes).unwrap();
        Duplicate::encode_into(
            &Duplicate {
                repeats: Vec::new(),
                ..d.clone()
            },
            &mut bytes,
        )
        .unwrap();
        let mut input = bytes.as_slice();
        assert_eq!(Duplicate::decode_from(&mut input).unwrap(), Some(d.clone()));
        assert_eq!(
            Duplicate::decode_from(&mut input)
                .unwrap()
                .map(|d| d.repeats.len()),
            Some(0)
        );
        assert_eq!(Duplicate::decode_from(&mut input).unwrap(), None);
    }

    #[test]
    fn a_spill_file_cut_inside_a_record_is_an_error_not_an_end() {
        let d = Duplicate {
            at: Occurrence {
                index: 4,
                line: 5,
                seq: 1,
                position: 2,
                len: 30,
            },
            repeats: vec![Repeat {
                kind: IdentityKind::Email,
                index: 1,
                line: 2,
            }],
        };
        let mut bytes = Vec::new();
        d.encode_into(&mut bytes).unwrap();
        for cut in [10, 21, bytes.len() - 1] {
            let mut input = &bytes[..cut];
            assert!(Duplicate::decode_from(&mut input).is_err(), "cut at {cut}");
        }
        let mut input = &bytes[..0];
        assert_eq!(Duplicate::decode_from(&mut input).unwrap(), None);
    }

    proptest::proptest! {
        /// The spilled, merged resolution against the rule read literally: walk the records
        /// in order, a record repeating an identity a kept record claimed is a duplicate
        /// (naming the kept record, once per identity), otherwise it is kept and claims its
        /// identities. Small alphabets make groups, chains and multi-identity repeats common.
        #[test]
        fn resolution_matches_the_rule_walked_in_order(
            users in proptest::collection::vec(
                (0..6u8, proptest::option::of(0..4u8), proptest::option::of(0..5u8)),
                0..300,
            ),
        ) {
            let mut finder = DuplicateFinder::new(None).unwrap();
            let mut claimed: std::collections::HashMap<(IdentityKind, String), (u32, u32)> =
                std::collections::HashMap::new();
            let mut expected = Vec::new();
            for (i, (email, username, user_id)) in users.iter().enumerate() {
                let mut user = json!({ "email": format!("U{email}@x.io") });
                if let Some(u) = username {
                    user["username"] = json!(format!("n{u}"));
                }
                if let Some(id) = user_id {
                    user["user_id"] = json!(format!("id{id}"));
                }
                let at = Occurrence {
                    index: i as u64,
                    line: 2 * i as u64 + 1,
                    seq: (i / 7) as u32,
                    position: (i % 7) as u32,
                    len: (i % 50) as u32 + 1,
                };
                finder.record(&user, at).unwrap();
                let ids = identities(&user);
                let repeats: Vec<(IdentityKind, u32)> = ids
                    .iter()
                    .filter_map(|id| claimed.get(id).map(|&(index, _)| (id.0, index)))
                    .collect();
                if repeats.is_empty() {
                    for id in ids {
                        claimed.entry(id).or_insert((i as u32, at.line as u32));
                    }
                } else {
                    expected.push((at, repeats));
                }
            }
            let found = finder.resolve().unwrap();
            let freed: u64 = expected.iter().map(|(at, _)| u64::from(at.len) + 1).sum();
            let mut thinned: Vec<u32> = expected.iter().map(|(at, _)| at.seq).collect();
            thinned.dedup();
            proptest::prop_assert_eq!(found.freed, freed);
            proptest::prop_assert_eq!(&found.thinned, &thinned);
            let got: Vec<(Occurrence, Vec<(IdentityKind, u32)>)> = found
                .map(|d| {
                    let d = d.unwrap();
                    // Repeats come in group order; the rule does not order them.
                    let mut repeats: Vec<_> = d.repeats.iter().map(|r| (r.kind, r.index)).collect();
                    repeats.sort();
                    (d.at, repeats)
                })
                .collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn many_records_spread_over_partitions() {
        let mut users: Vec<Value> = (0..5000)
            .map(|i| json!({"email": format!("u{i}@x.io")}))
            .collect();
        users.push(json!({"email":"U4321@x.io"}));
        assert_eq!(run(&users), vec![(5000, vec!["email".to_string()])]);
    }

    #[test]
    fn shared_entries_are_exactly_those_whose_fingerprint_repeats() {
        let entry = |fingerprint: u128, index: u32| Entry {
            fingerprint,
            seen: Seen {
                index,
                kind: 0,
                line: index + 1,
                seq: 0,
                position: 0,
                len: 1,
            },
        };
        // Fingerprints that agree in their low 64 bits (what the set holds) still differ.
        let low_twin = (1u128 << 100) | 7;
        let entries = vec![
            entry(7, 0),
            entry(9, 1),
            entry(low_twin, 2),
            entry(7, 3),
            entry(11, 4),
            entry(7, 5),
            entry(11, 6),
        ];
        let shared = shared_entries(entries);
        let indexes: Vec<u32> = shared.iter().map(|e| e.seen.index).collect();
        assert_eq!(indexes, vec![0, 3, 5, 4, 6]);
        assert!(shared_entries(vec![entry(1, 0), entry(2, 1)]).is_empty());
    }

    fn spread_entries(count: u32) -> Vec<Entry> {
        (0..count)
            .map(|i| Entry {
                fingerprint: u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834),
                seen: Seen {
                    index: i,
                    kind: i % 4,
                    line: i + 1,
                    seq: i / 7,
                    position: i * 3,
                    len: 100 + i,
                },
            })
            .collect()
    }

    /// Records `entries` as the finder does, with blocks of `block_entries`.
    fn spill_all(entries: &[Entry], block_entries: usize) -> DuplicateFinder {
        let mut finder = DuplicateFinder::with_block_entries(None, block_entries).unwrap();
        for e in entries {
            let ids = Fingerprints {
                items: [(IdentityKind::from_bits(e.seen.kind), e.fingerprint); 4],
                len: 1,
            };
            let at = e.seen.occurrence();
            finder.record_fingerprints(&ids, at).unwrap();
        }
        finder
    }

    #[test]
    fn every_partition_reads_back_whole_from_blocks_interleaved_in_one_file() {
        let entries = spread_entries(4000);
        // Blocks of 7 entries: every partition writes several, interleaved with the others',
        // and keeps a few pending.
        let finder = spill_all(&entries, 7);
        let files: Vec<_> = std::fs::read_dir(finder.dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "one spill file for every partition");
        let mut blocks = 0;
        let mut back = Vec::new();
        for partition in &finder.partitions {
            blocks += partition.blocks.len();
            let read = read_partition(&finder.spill, partition, &mut Vec::new()).unwrap();
            // Within a partition, entries come back in the order recorded.
            assert!(read.windows(2).all(|w| w[0].seen.index < w[1].seen.index));
            back.extend(read);
        }
        assert!(blocks > 2 * PARTITIONS, "{blocks} blocks");
        back.sort_by_key(|e| e.seen.index);
        assert_eq!(back, entries);
    }

    #[test]
    fn a_spill_file_cut_short_is_an_error() {
        let finder = spill_all(&spread_entries(4000), 7);
        let cut = finder.spilled - 5;
        finder.spill.set_len(cut).unwrap();
        let last = finder
            .partitions
            .iter()
            .find(|p| {
                p.blocks
                    .last()
                    .is_some_and(|&(at, len)| at + len as u64 > cut)
            })
            .unwrap();
        let error = read_partition(&finder.spill, last, &mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("cannot be read back"), "{error}");
    }

    #[test]
    fn a_run_reads_its_own_region_and_a_file_that_ends_inside_it_is_an_error() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"aaaabbbbbbcc").unwrap();
        let file = Rc::new(file);
        let region = |at, end| {
            let mut bytes = Vec::new();
            let read = io::Read::read_to_end(
                &mut BufReader::with_capacity(
                    3,
                    RunRead {
                        file: Rc::clone(&file),
                        at,
                        end,
                    },
                ),
                &mut bytes,
            );
            read.map(|_| bytes)
        };
        assert_eq!(region(4, 10).unwrap(), b"bbbbbb");
        assert_eq!(region(10, 12).unwrap(), b"cc");
        assert_eq!(region(0, 4).unwrap(), b"aaaa");
        let error = region(10, 14).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn duplicates_found_do_not_depend_on_the_block_size() {
        // Every fifth record repeats the email of one 102 records before it (not itself one).
        let users: Vec<Value> = (0..3000)
            .map(|i| {
                let n = if i % 5 == 4 && i >= 102 { i - 102 } else { i };
                json!({"email": format!("u{n}@x.io"), "user_id": format!("id{i}")})
            })
            .collect();
        let found = |block_entries| {
            let mut finder = DuplicateFinder::with_block_entries(None, block_entries).unwrap();
            for (i, user) in users.iter().enumerate() {
                let at = Occurrence {
                    index: i as u64,
                    line: i as u64 + 1,
                    seq: 1 + i as u32 / 100,
                    position: i as u32 % 100,
                    len: 30,
                };
                finder.record(user, at).unwrap();
            }
            let indexes: Vec<u64> = finder
                .resolve()
                .unwrap()
                .map(|d| d.unwrap().at.index)
                .collect();
            indexes
        };
        let expected: Vec<u64> = (102..3000).filter(|i| i % 5 == 4).collect();
        for block_entries in [1, 3, BLOCK_ENTRIES] {
            assert_eq!(found(block_entries), expected, "blocks of {block_entries}");
        }
    }
}
