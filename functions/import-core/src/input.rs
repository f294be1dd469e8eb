//! Frames a dropped export into raw records with their positions, streaming: the format is
//! sniffed from the bytes (gzip magic, UTF-8 BOM, `[` for a JSON array, `{` for NDJSON).

use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::MultiGzDecoder;
use serde::{Deserialize, Serialize};

use crate::manifest::Flavor;
use crate::read_ahead::ReadAhead;
use crate::violation::Violation;
use simd_scan::{BlockKernel, Lanes, Scanner, Strings, BLOCK};

const READ_BUFFER: usize = 256 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UTF8_BOM: [u8; 3] = [0xef, 0xbb, 0xbf];

/// How the bytes are wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
}

/// How records are laid out once decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    JsonArray,
    Ndjson,
    /// CSV or TSV with a header row, read through a mapping.
    Csv,
}

/// One record's bytes as they stand in the input, and where it starts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// 0-based position among the records of the input.
    pub index: u64,
    /// 1-based line of the record's first byte.
    pub line: u64,
    /// 1-based column (in bytes) of the record's first byte.
    pub column: u64,
    /// Byte offset of the record's first byte in the decompressed stream.
    pub byte_offset: u64,
    pub bytes: Vec<u8>,
    /// The record was longer than the framing cap: `bytes` holds only its beginning.
    pub oversized: bool,
    /// Why a mapping could not make an import record of the source row (then `bytes` is empty).
    pub refused: Vec<Violation>,
    /// A mapped record with no password: the user will have to reset it.
    pub without_password: bool,
}

/// A stream of raw records: the plain JSON framing, or a mapped source (CSV, another system's
/// export) whose records come out as import JSON.
pub trait Records: Send {
    /// The next record, `Ok(false)` at the clean end. `record` is reused.
    fn next_into(&mut self, record: &mut RawRecord) -> Result<bool, InputError>;
    fn compression(&self) -> Compression;
    fn layout(&self) -> Layout;
    /// The records' flavor when the source decides it (a mapped source makes import records),
    /// `None` to tell it from the first record that parses.
    fn flavor(&self) -> Option<Flavor> {
        match self.layout() {
            Layout::JsonArray | Layout::Csv => Some(Flavor::Import),
            Layout::Ndjson => None,
        }
    }
}

impl Records for RecordReader {
    fn next_into(&mut self, record: &mut RawRecord) -> Result<bool, InputError> {
        RecordReader::next_into(self, record)
    }

    fn compression(&self) -> Compression {
        self.compression
    }

    fn layout(&self) -> Layout {
        self.layout
    }
}

/// Where in the decompressed stream something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub line: u64,
    pub column: u64,
    pub byte_offset: u64,
}

/// Why the input as a whole cannot be read. Every variant is fatal for the run.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("the input is empty (no JSON array and no NDJSON record)")]
    Empty,
    #[error("line {}, column {} (byte {}): {message}", .at.line, .at.column, .at.byte_offset)]
    Syntax { at: Position, message: String },
    #[error("the gzip stream is corrupt after {decompressed_bytes} decompressed bytes: {message}")]
    CorruptGzip {
        decompressed_bytes: u64,
        message: String,
    },
    /// The mapping does not fit the input (a column it reads is not in the header).
    #[error("the mapping does not fit the input: {0}")]
    Mapping(String),
    /// Reading the underlying object failed (network, disk). Not the input's fault: retry.
    #[error("reading the input failed: {0}")]
    Source(io::Error),
}

impl InputError {
    pub fn position(&self) -> Option<Position> {
        match self {
            InputError::Syntax { at, .. } => Some(*at),
            _ => None,
        }
    }
}

/// Marks an I/O error as coming from the source object itself (so it is retried, not blamed on
/// the file). Decompression errors are not marked, which is how a corrupt gzip is told apart.
#[derive(Debug)]
struct SourceFault(io::Error);

impl std::fmt::Display for SourceFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SourceFault {}

struct MarkSourceErrors<R>(R);

impl<R: Read> Read for MarkSourceErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), SourceFault(e)))
    }
}

/// Sniffs the stream and frames its records one at a time.
pub struct RecordReader {
    inner: Box<dyn BufRead + Send>,
    compression: Compression,
    layout: Layout,
    /// Records whose raw bytes exceed this are skipped past, not held (memory stays flat).
    max_record_bytes: usize,
    offset: u64,
    line: u64,
    line_start: u64,
    next_index: u64,
    state: ArrayState,
    /// The member of a top-level object whose array holds the records (`{"users": [...]}`),
    /// when the input is such a wrapper rather than NDJSON.
    wrapper: Option<String>,
    /// How this CPU computes a block's masks.
    scanner: Scanner,
    /// Tests only: frame every block byte by byte, for comparison with the masks.
    #[cfg(any(test, feature = "fuzzing"))]
    per_byte: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    /// Just after `[`: an element or `]`.
    First,
    /// After `,`: an element must follow.
    AfterComma,
    Done,
}

impl RecordReader {
    /// Opens a stream; sniffs compression and layout from its first bytes.
    pub fn open<R: Read + Send + 'static>(
        source: R,
        max_record_bytes: usize,
    ) -> Result<Self, InputError> {
        let (inner, compression) = open_stream(source)?;
        let mut reader = RecordReader {
            inner,
            compression,
            layout: Layout::Ndjson,
            max_record_bytes,
            offset: 0,
            line: 1,
            line_start: 0,
            next_index: 0,
            state: ArrayState::Done,
            wrapper: None,
            scanner: Scanner::detect(),
            #[cfg(any(test, feature = "fuzzing"))]
            per_byte: false,
        };
        reader.skip_bom()?;
        reader.skip_whitespace()?;
        match reader.peek()? {
            None => return Err(InputError::Empty),
            Some(b'[') => {
                reader.advance(1);
                reader.layout = Layout::JsonArray;
                reader.state = ArrayState::First;
            }
            Some(b'{') => {
                if let Some(prefix) = reader.wrapper_prefix()? {
                    reader.advance_counting(prefix.length);
                    reader.wrapper = Some(prefix.key);
                    reader.layout = Layout::JsonArray;
                    reader.state = ArrayState::First;
                } else {
                    reader.layout = Layout::Ndjson;
                }
            }
            Some(other) => return Err(reader.syntax(not_a_start(other))),
        }
        Ok(reader)
    }

    /// The member whose array holds the records when the input is a wrapper object
    /// (`{"users": [...]}`, Firebase's `auth:export`, Keycloak's users files).
    pub fn wrapper(&self) -> Option<&str> {
        self.wrapper.as_deref()
    }

    /// Whether the object the input starts with is a wrapper: a records array (`users`) among
    /// its top-level members, starting within the first `WRAPPER_LOOK` bytes. The
    /// bytes looked at are put back in front of the stream, so an NDJSON record is unharmed.
    fn wrapper_prefix(&mut self) -> Result<Option<WrapperPrefix>, InputError> {
        let mut head = Vec::new();
        while head.len() < WRAPPER_LOOK {
            let offset = self.offset;
            let buf = self.inner.fill_buf().map_err(classify_io(offset))?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(WRAPPER_LOOK - head.len());
            head.extend_from_slice(&buf[..n]);
            // Not `advance`: the offset stays where the looked-at bytes start.
            self.inner.consume(n);
        }
        let found = find_wrapper_prefix(&head);
        let rest = std::mem::replace(&mut self.inner, Box::new(io::empty()));
        self.inner = Box::new(io::Cursor::new(head).chain(rest));
        Ok(found)
    }

    /// Consumes `n` bytes that are in the buffer, keeping lines counted.
    fn advance_counting(&mut self, mut n: usize) {
        while n > 0 {
            let Ok(buf) = self.inner.fill_buf() else {
                return;
            };
            if buf.is_empty() {
                return;
            }
            let take = buf.len().min(n);
            let base = self.offset;
            for (i, &b) in buf[..take].iter().enumerate() {
                if b == b'\n' {
                    self.line += 1;
                    self.line_start = base + i as u64 + 1;
                }
            }
            self.advance(take);
            n -= take;
        }
    }

    /// After a wrapper's records array: its remaining members, skipped, then the closing `}`.
    fn finish_wrapper(&mut self) -> Result<(), InputError> {
        let mut skipped = RawRecord::default();
        loop {
            self.skip_whitespace()?;
            match self.peek()? {
                Some(b'}') => {
                    self.advance(1);
                    return Ok(());
                }
                Some(b',') => self.advance(1),
                None => return Err(self.syntax(
                    "the input ends inside the object around the records: the file is truncated"
                        .into(),
                )),
                Some(other) => {
                    return Err(self.syntax(format!(
                        "expected ',' or '}}' after the records array, found {}",
                        describe_byte(other)
                    )))
                }
            }
            // A member, skipped without being kept: the scan from its key runs over the ':'
            // (not a byte that ends a value) and through the value, to the ',' or '}' after it.
            self.skip_whitespace()?;
            skipped.bytes.clear();
            skipped.oversized = false;
            let cap = std::mem::replace(&mut self.max_record_bytes, 0);
            let scanned = self.scan_value(&mut skipped);
            self.max_record_bytes = cap;
            scanned?;
        }
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Decompressed bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record, `Ok(None)` at the clean end of the input. `record` is reused to spare
    /// an allocation per record.
    pub fn next_into(&mut self, record: &mut RawRecord) -> Result<bool, InputError> {
        match self.layout {
            Layout::JsonArray => self.next_array_element(record),
            Layout::Ndjson => self.next_line(record),
            // Never this reader's: CSV is read by `mapping::MappedReader`.
            Layout::Csv => Ok(false),
        }
    }

    fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.offset - self.line_start + 1,
            byte_offset: self.offset,
        }
    }

    fn syntax(&self, message: String) -> InputError {
        InputError::Syntax {
            at: self.position(),
            message,
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, InputError> {
        let offset = self.offset;
        let buf = self.inner.fill_buf().map_err(classify_io(offset))?;
        Ok(buf.first().copied())
    }

    fn advance(&mut self, n: usize) {
        self.inner.consume(n);
        self.offset += n as u64;
    }

    fn skip_bom(&mut self) -> Result<(), InputError> {
        // Its bytes may come in separate reads: matched one at a time. Only part of one is
        // refused as its first byte would be (no input starts with 0xEF).
        for (taken, &byte) in UTF8_BOM.iter().enumerate() {
            if self.peek()? != Some(byte) {
                if taken == 0 {
                    return Ok(());
                }
                return Err(InputError::Syntax {
                    at: Position {
                        line: 1,
                        column: 1,
                        byte_offset: 0,
                    },
                    message: not_a_start(UTF8_BOM[0]),
                });
            }
            self.advance(1);
        }
        // The BOM does not make a column.
        self.line_start = self.offset;
        Ok(())
    }

    fn skip_whitespace(&mut self) -> Result<(), InputError> {
        loop {
            let offset = self.offset;
            let buf = self.inner.fill_buf().map_err(classify_io(offset))?;
            if buf.is_empty() {
                return Ok(());
            }
            let mut n = 0;
            let mut newline_at = None;
            for &b in buf {
                match b {
                    b' ' | b'\t' | b'\r' => {}
                    b'\n' => {
                        self.line += 1;
                        newline_at = Some(n);
                    }
                    _ => break,
                }
                n += 1;
            }
            let base = self.offset;
            if let Some(at) = newline_at {
                self.line_start = base + at as u64 + 1;
            }
            let whole = n == buf.len();
            self.advance(n);
            if !whole {
                return Ok(());
            }
        }
    }

    fn start_record(&mut self, record: &mut RawRecord) {
        record.index = self.next_index;
        record.line = self.line;
        record.byte_offset = self.offset;
        record.column = self.offset - self.line_start + 1;
        record.bytes.clear();
        record.oversized = false;
        record.refused.clear();
        record.without_password = false;
        self.next_index += 1;
    }

    fn next_array_element(&mut self, record: &mut RawRecord) -> Result<bool, InputError> {
        if self.state == ArrayState::Done {
            return Ok(false);
        }
        self.skip_whitespace()?;
        match self.peek()? {
            None => {
                return Err(self.syntax(format!(
                "the input ends inside the JSON array (after {} records): the file is truncated",
                self.next_index
            )))
            }
            Some(b']') => {
                if self.state == ArrayState::AfterComma {
                    return Err(self.syntax("a ',' is followed by ']' (trailing comma)".into()));
                }
                self.advance(1);
                self.state = ArrayState::Done;
                if self.wrapper.is_some() {
                    self.finish_wrapper()?;
                }
                self.expect_end()?;
                return Ok(false);
            }
            Some(b',') => return Err(self.syntax("an array element is missing before ','".into())),
            Some(_) => {}
        }
        self.start_record(record);
        self.scan_value(record)?;
        self.skip_whitespace()?;
        match self.peek()? {
            Some(b',') => {
                self.advance(1);
                self.state = ArrayState::AfterComma;
            }
            Some(b']') => {
                self.advance(1);
                self.state = ArrayState::Done;
                if self.wrapper.is_some() {
                    self.finish_wrapper()?;
                }
                self.expect_end()?;
            }
            None => {
                return Err(self.syntax(format!(
                "the input ends inside the JSON array (after {} records): the file is truncated",
                self.next_index
            )))
            }
            Some(other) => {
                return Err(self.syntax(format!(
                    "expected ',' or ']' after record {}, found {}",
                    record.index,
                    describe_byte(other)
                )))
            }
        }
        Ok(true)
    }

    /// After the closing `]` only whitespace may follow.
    fn expect_end(&mut self) -> Result<(), InputError> {
        self.skip_whitespace()?;
        match self.peek()? {
            None => Ok(()),
            Some(other) => Err(self.syntax(format!(
                "unexpected {} after the end of the JSON array",
                describe_byte(other)
            ))),
        }
    }

    /// Copies one JSON value's bytes (object, array, string or scalar) into `record`. It tracks
    /// nesting and strings only; the value's own syntax is checked when the record is parsed.
    fn scan_value(&mut self, record: &mut RawRecord) -> Result<(), InputError> {
        let mut depth: usize = 0;
        let mut strings = Strings::default();
        let masked = self.masked();
        loop {
            let offset = self.offset;
            let buf = self.inner.fill_buf().map_err(classify_io(offset))?;
            if buf.is_empty() {
                return Err(InputError::Syntax {
                    at: self.position(),
                    message: format!(
                        "the input ends inside record {} (started line {}): the file is truncated",
                        record.index, record.line
                    ),
                });
            }
            let at_start = record.bytes.is_empty();
            let found = find_value_end(
                self.scanner,
                buf,
                at_start,
                masked,
                &mut depth,
                &mut strings,
            );
            let ValueEnd {
                end,
                bad,
                newline_at,
                newlines,
            } = found;
            self.line += newlines;
            let take = end.or(bad).unwrap_or(buf.len());
            let base = self.offset;
            let chunk = &buf[..take];
            // Borrow juggling: copy out before consuming.
            if !record.oversized {
                let room = self.max_record_bytes.saturating_sub(record.bytes.len());
                if chunk.len() > room {
                    record.bytes.extend_from_slice(&chunk[..room]);
                    record.oversized = true;
                } else {
                    record.bytes.extend_from_slice(chunk);
                }
            }
            if let Some(at) = newline_at {
                self.line_start = base + at as u64 + 1;
            }
            self.advance(take);
            if bad.is_some() {
                return Err(self.syntax(
                    "a non-ASCII byte outside a string (invalid JSON or invalid UTF-8)".into(),
                ));
            }
            if end.is_some() {
                // A scalar element ends at ',' or ']' with whitespace before it kept: trim it.
                while record.bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                    record.bytes.pop();
                }
                return Ok(());
            }
        }
    }

    /// Whether `scan_value` may find a value's end from the block's masks (always, but in the
    /// tests that compare it with looking at each byte).
    #[cfg(not(any(test, feature = "fuzzing")))]
    fn masked(&self) -> bool {
        true
    }

    #[cfg(any(test, feature = "fuzzing"))]
    fn masked(&self) -> bool {
        !self.per_byte
    }

    fn next_line(&mut self, record: &mut RawRecord) -> Result<bool, InputError> {
        // Blank (whitespace-only) lines are skipped here and do not count as records.
        self.skip_whitespace()?;
        if self.peek()?.is_none() {
            return Ok(false);
        }
        self.start_record(record);
        loop {
            let offset = self.offset;
            let buf = self.inner.fill_buf().map_err(classify_io(offset))?;
            if buf.is_empty() {
                break;
            }
            let (take, done) = match memchr::memchr(b'\n', buf) {
                Some(k) => (k, true),
                None => (buf.len(), false),
            };
            let piece = &buf[..take];
            if !record.oversized {
                if record.bytes.len() + piece.len() > self.max_record_bytes {
                    let room = self.max_record_bytes.saturating_sub(record.bytes.len());
                    record.bytes.extend_from_slice(&piece[..room]);
                    record.oversized = true;
                } else {
                    record.bytes.extend_from_slice(piece);
                }
            }
            self.advance(take);
            if done {
                break;
            }
        }
        // CRLF line ends and trailing blanks are not part of the record.
        while record.bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
            record.bytes.pop();
        }
        Ok(true)
    }
}

/// What `find_value_end` found in a buffer, all positions in it.
struct ValueEnd {
    /// One past the value's last byte, if it ends in the buffer.
    end: Option<usize>,
    /// A byte no JSON value holds outside a string, before the end.
    bad: Option<usize>,
    /// The last newline before where the look stopped, and how many there were.
    newline_at: Option<usize>,
    newlines: u64,
}

/// Finds where the value that `buf` continues ends (`at_start`: it starts at `buf[0]`),
/// carrying `depth` and `strings` from the buffers before; `masked` (always, but in tests) lets
/// it find the end of an object or array from the block's masks.
fn find_value_end(
    scanner: Scanner,
    buf: &[u8],
    at_start: bool,
    masked: bool,
    depth: &mut usize,
    strings: &mut Strings,
) -> ValueEnd {
    scanner.run(FindValueEnd {
        buf,
        at_start,
        masked,
        depth,
        strings,
    })
}

/// `find_value_end_in` as a kernel the scanner compiles for the CPU's kind of block.
struct FindValueEnd<'a> {
    buf: &'a [u8],
    at_start: bool,
    masked: bool,
    depth: &'a mut usize,
    strings: &'a mut Strings,
}

impl BlockKernel for FindValueEnd<'_> {
    type Output = ValueEnd;

    #[inline(always)]
    fn run<B: Lanes>(self, cpu: B::Cpu) -> ValueEnd {
        let FindValueEnd {
            buf,
            at_start,
            masked,
            depth,
            strings,
        } = self;
        find_value_end_in::<B>(cpu, buf, at_start, masked, depth, strings)
    }
}

#[inline(always)]
fn find_value_end_in<B: Lanes>(
    cpu: B::Cpu,
    buf: &[u8],
    at_start: bool,
    masked: bool,
    depth: &mut usize,
    strings: &mut Strings,
) -> ValueEnd {
    let mut found = ValueEnd {
        end: None,
        bad: None,
        newline_at: None,
        newlines: 0,
    };
    // 64 bytes at a time: only the bytes that shape the value, outside strings, are looked at
    // one by one.
    let mut base = 0;
    'blocks: while base < buf.len() {
        let block = B::load(cpu, &buf[base..]);
        let outside = !strings.inside(&block) & block.valid();
        let opens = outside & block.eq_either_case(b'{');
        let closes = outside & block.eq_either_case(b'}');
        let newlines = outside & block.eq(b'\n');
        let non_ascii = outside & block.non_ascii();
        if masked && (*depth > 0 || (base == 0 && at_start && opens & 1 == 1)) {
            // Inside an object or array (or at the one that starts the value): it ends at the
            // first close that brings the depth back to 0, and commas are nested. Between two
            // closes the depth only rises, so only closes need a look, each by counting the
            // brackets up to it.
            let mut stop = None;
            let mut pending = closes;
            while pending != 0 {
                let i = pending.trailing_zeros();
                pending &= pending - 1;
                let upto = u64::MAX >> (63 - i);
                if *depth + (opens & upto).count_ones() as usize
                    == (closes & upto).count_ones() as usize
                {
                    stop = Some(i as usize + 1);
                    break;
                }
            }
            // A byte no JSON value holds outside a string, before the end: the error.
            let first_bad = non_ascii.trailing_zeros() as usize;
            if non_ascii != 0 && stop.is_none_or(|at| first_bad < at) {
                stop = Some(first_bad);
                found.bad = Some(base + first_bad);
            } else if let Some(at) = stop {
                found.end = Some(base + at);
            }
            let counted = match stop {
                Some(at) => newlines & !u64::MAX.checked_shl(at as u32).unwrap_or(0),
                None => newlines,
            };
            if counted != 0 {
                found.newlines += u64::from(counted.count_ones());
                found.newline_at = Some(base + (63 - counted.leading_zeros()) as usize);
            }
            if stop.is_some() {
                break 'blocks;
            }
            *depth = *depth + opens.count_ones() as usize - closes.count_ones() as usize;
            base += BLOCK;
            continue;
        }
        let mut shaping = opens | closes | newlines | non_ascii | (outside & block.eq(b','));
        while shaping != 0 {
            let i = base + shaping.trailing_zeros() as usize;
            shaping &= shaping - 1;
            match buf[i] {
                b'{' | b'[' => *depth += 1,
                b'}' | b']' => {
                    if *depth == 0 {
                        found.end = Some(i);
                        break 'blocks;
                    }
                    *depth -= 1;
                    if *depth == 0 {
                        found.end = Some(i + 1);
                        break 'blocks;
                    }
                }
                b',' if *depth == 0 => {
                    found.end = Some(i);
                    break 'blocks;
                }
                b',' => {}
                b'\n' => {
                    found.newlines += 1;
                    found.newline_at = Some(i);
                }
                _ => {
                    found.bad = Some(i);
                    break 'blocks;
                }
            }
        }
        base += BLOCK;
    }
    found
}

pub(crate) fn classify_io(decompressed_bytes: u64) -> impl Fn(io::Error) -> InputError {
    move |e| {
        if e.get_ref().is_some_and(|inner| inner.is::<SourceFault>()) {
            InputError::Source(e)
        } else {
            InputError::CorruptGzip {
                decompressed_bytes,
                message: e.to_string(),
            }
        }
    }
}

/// How far into the input a wrapper object's records array is looked for: a Keycloak realm
/// export puts its users after the realm's settings, roles and clients (hundreds of KB for a
/// large realm). The bytes looked at are put back, so only this much is held once per drop.
const WRAPPER_LOOK: usize = 8 * 1024 * 1024;

/// Members whose array is taken as the records when the input is an object around them.
const WRAPPER_KEYS: [&str; 1] = ["users"];

struct WrapperPrefix {
    key: String,
    /// Bytes up to and including the records array's `[`.
    length: usize,
}

/// `{` then members with any values, then a `WRAPPER_KEYS` member whose value is an array:
/// where that array starts. Anything else (an ordinary user object, whose members are never
/// named `users` at its top level) is `None`.
fn find_wrapper_prefix(head: &[u8]) -> Option<WrapperPrefix> {
    let ws = |at: &mut usize| {
        while head.get(*at).is_some_and(|b| b" \t\r\n".contains(b)) {
            *at += 1;
        }
    };
    let string = |at: &mut usize| -> Option<std::ops::Range<usize>> {
        if head.get(*at) != Some(&b'"') {
            return None;
        }
        let start = *at + 1;
        let mut i = start;
        loop {
            match head.get(i)? {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        *at = i + 1;
        Some(start..i)
    };
    let mut at = 0;
    ws(&mut at);
    if head.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    loop {
        ws(&mut at);
        let key = string(&mut at)?;
        ws(&mut at);
        if head.get(at) != Some(&b':') {
            return None;
        }
        at += 1;
        ws(&mut at);
        let key = std::str::from_utf8(&head[key]).ok()?;
        match head.get(at)? {
            b'[' if WRAPPER_KEYS.contains(&key) => {
                return Some(WrapperPrefix {
                    key: key.to_string(),
                    length: at + 1,
                })
            }
            b'"' => {
                string(&mut at)?;
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                while head
                    .get(at)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
                {
                    at += 1;
                }
            }
            // An object or array before the records (a Keycloak realm export's roles, clients,
            // …): skipped whole, brackets counted outside strings.
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match head.get(at)? {
                        b'"' => {
                            string(&mut at)?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                at += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    at += 1;
                }
            }
            _ => return None,
        }
        ws(&mut at);
        if head.get(at) != Some(&b',') {
            return None;
        }
        at += 1;
    }
}

/// The decompressed bytes of `source` (gzip told from its magic) and how they were wrapped.
pub(crate) fn open_stream<R: Read + Send + 'static>(
    source: R,
) -> Result<(Box<dyn BufRead + Send>, Compression), InputError> {
    // The magic is sniffed from the first two bytes, which a source may hand out in two
    // reads (a stream's first chunk can be one byte): they are read whole, then put back.
    let mut source = MarkSourceErrors(source);
    let mut head = [0u8; GZIP_MAGIC.len()];
    let mut got = 0;
    while got < head.len() {
        match source.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(classify_io(0)(e)),
        }
    }
    let compression = if head[..got] == GZIP_MAGIC {
        Compression::Gzip
    } else {
        Compression::None
    };
    let head = io::Cursor::new(head).take(got as u64);
    let raw = BufReader::with_capacity(READ_BUFFER, head.chain(source));
    let inner: Box<dyn BufRead + Send> = match compression {
        // Decompression is most of the framing thread's work on a gzip drop: it runs on
        // its own thread, a few buffers ahead.
        Compression::Gzip => {
            Box::new(ReadAhead::new(MultiGzDecoder::new(raw)).map_err(classify_io(0))?)
        }
        Compression::None => Box::new(raw),
    };
    Ok((inner, compression))
}

/// Why an input that starts with `b` is refused.
fn not_a_start(b: u8) -> String {
    format!(
        "expected a JSON array ('[') or NDJSON objects ('{{'), found {}",
        describe_byte(b)
    )
}

fn describe_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// Framing looked at three ways, for the unit tests and the fuzz targets (`crate::fuzzing`):
/// byte by byte, with the masks of the CPU's kind of block, and with the plain kind's.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod differential {
    use super::*;

    /// A source that hands out its bytes a few at a time, so buffer ends fall anywhere (inside
    /// strings, right after a backslash, between a record and its comma).
    pub(crate) struct Trickle {
        pub(crate) data: Vec<u8>,
        pub(crate) at: usize,
        pub(crate) sizes: Vec<usize>,
        pub(crate) reads: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let size = match self.sizes.len() {
                0 => buf.len(),
                n => self.sizes[self.reads % n].max(1),
            };
            self.reads += 1;
            let n = size.min(buf.len()).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// How framing looks at a block in `framed`.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Look {
        /// Each shaping byte, one at a time.
        PerByte,
        /// The masks, as this CPU computes them (AVX-512 where it has it).
        Masks,
        /// The masks as any CPU computes them.
        AnyCpuMasks,
    }

    /// Everything framing says about `text`, read `sizes` bytes at a time: each record (with
    /// its position) and how the input ends.
    pub(crate) fn framed(
        text: &[u8],
        sizes: &[usize],
        look: Look,
        max_record_bytes: usize,
    ) -> (Vec<RawRecord>, String) {
        let source = Trickle {
            data: text.to_vec(),
            at: 0,
            sizes: sizes.to_vec(),
            reads: 0,
        };
        let mut reader = match RecordReader::open(source, max_record_bytes) {
            Ok(reader) => reader,
            Err(e) => return (Vec::new(), e.to_string()),
        };
        reader.per_byte = matches!(look, Look::PerByte);
        if matches!(look, Look::AnyCpuMasks) {
            reader.scanner = Scanner::portable();
        }
        let mut records = Vec::new();
        loop {
            let mut record = RawRecord::default();
            match reader.next_into(&mut record) {
                Ok(true) => records.push(record),
                Ok(false) => return (records, "end".into()),
                Err(e) => return (records, e.to_string()),
            }
        }
    }

    /// What framing `text`, read `sizes` bytes at a time, says when it looks at each shaping
    /// byte, and `Err` if the masks (either kind) say anything else.
    pub(crate) fn looks_agree(
        text: &[u8],
        sizes: &[usize],
        max_record_bytes: usize,
    ) -> Result<(Vec<RawRecord>, String), String> {
        let per_byte = framed(text, sizes, Look::PerByte, max_record_bytes);
        for look in [Look::Masks, Look::AnyCpuMasks] {
            let masked = framed(text, sizes, look, max_record_bytes);
            if masked != per_byte {
                return Err(format!(
                    "{look:?} framed {masked:?}, looking at each byte {per_byte:?}"
                ));
            }
        }
        Ok(per_byte)
    }
}

#[cfg(test)]
mod tests {
    use super::differential::{looks_agree, Trickle};
    use super::*;
    use std::io::Write;

    fn frame(input: &[u8]) -> Result<(Layout, Vec<RawRecord>), InputError> {
        let mut reader = RecordReader::open(io::Cursor::new(input.to_vec()), 1 << 20)?;
        let mut out = Vec::new();
        let mut rec = RawRecord::default();
        while reader.next_into(&mut rec)? {
            out.push(rec.clone());
        }
        Ok((reader.layout(), out))
    }

    fn texts(records: &[RawRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
            .collect()
    }

    #[test]
    fn json_array_elements_with_positions() {
        let input = b"[\n  {\"email\":\"a@x.io\"},\n  {\"email\":\"b,]}@x.io\", \"n\": [1,{\"k\":\"\\\"\"}]}\n]\n";
        let (layout, recs) = frame(input).unwrap();
        assert_eq!(layout, Layout::JsonArray);
        assert_eq!(
            texts(&recs),
            vec![
                "{\"email\":\"a@x.io\"}",
                "{\"email\":\"b,]}@x.io\", \"n\": [1,{\"k\":\"\\\"\"}]}"
            ]
        );
        assert_eq!(
            (recs[0].index, recs[0].line, recs[0].byte_offset),
            (0, 2, 4)
        );
        assert_eq!((recs[1].index, recs[1].line), (1, 3));
    }

    proptest::proptest! {
        /// Every element of a JSON array comes out whole, whatever its strings hold and wherever
        /// the source's reads end, with the line it starts on.
        #[test]
        fn array_elements_survive_any_read_boundaries(
            strings in proptest::collection::vec("[a-z\"\\\\,\\[\\]{}: \u{e9}\n]{0,90}", 1..12),
            sizes in proptest::collection::vec(1usize..80, 1..8),
        ) {
            let elements: Vec<serde_json::Value> = strings
                .iter()
                .enumerate()
                .map(|(i, s)| serde_json::json!({"email": s, "n": [i, {"k": s}], "z": null}))
                .collect();
            let text = serde_json::to_vec_pretty(&elements).unwrap();
            let source = Trickle { data: text.clone(), at: 0, sizes, reads: 0 };
            let mut reader = RecordReader::open(source, 1 << 20).unwrap();
            let mut record = RawRecord::default();
            let mut got = Vec::new();
            while reader.next_into(&mut record).unwrap() {
                let value: serde_json::Value = serde_json::from_slice(&record.bytes).unwrap();
                let starts = text[..record.byte_offset as usize].iter().filter(|&&b| b == b'\n').count();
                proptest::prop_assert_eq!(record.line, starts as u64 + 1);
                got.push(value);
            }
            proptest::prop_assert_eq!(got, elements);
        }
    }

    proptest::proptest! {
        /// Finding a value's end from the masks frames every input, broken ones included, as
        /// looking at each shaping byte does: the same records, positions and errors.
        #[test]
        fn masks_frame_as_a_byte_by_byte_look_does(
            strings in proptest::collection::vec("[a-z\"\\\\,\\[\\]{}: \u{e9}\n]{0,40}", 1..8),
            pretty in proptest::bool::ANY,
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(),
                 proptest::sample::select(b"{}[]\",\\\n \xc3\xe9x0".to_vec())),
                0..4,
            ),
            cut in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
            sizes in proptest::collection::vec(1usize..100, 1..6),
        ) {
            let elements: Vec<serde_json::Value> = strings
                .iter()
                .enumerate()
                .map(|(i, s)| match i % 4 {
                    0 => serde_json::json!({"email": s, "n": [i, {"k": s}], "z": null}),
                    1 => serde_json::json!([s, {"deep": [[{"k": s}]]}]),
                    2 => serde_json::json!(s),
                    _ => serde_json::json!(i),
                })
                .collect();
            let mut text = if pretty {
                serde_json::to_vec_pretty(&elements).unwrap()
            } else {
                serde_json::to_vec(&elements).unwrap()
            };
            for (at, byte) in edits {
                let at = at.index(text.len() + 1);
                text.insert(at, byte);
            }
            if let Some(cut) = cut {
                text.truncate(cut.index(text.len() + 1));
            }
            if let Err(differ) = looks_agree(&text, &sizes, 300) {
                return Err(proptest::test_runner::TestCaseError::fail(differ));
            }
        }
    }

    #[test]
    fn bom_and_crlf_ndjson_with_blank_lines() {
        let input = b"\xef\xbb\xbf{\"email\":\"a@x.io\"}\r\n\r\n   \n{\"email\":\"b@x.io\"}\r\n";
        let (layout, recs) = frame(input).unwrap();
        assert_eq!(layout, Layout::Ndjson);
        assert_eq!(
            texts(&recs),
            vec!["{\"email\":\"a@x.io\"}", "{\"email\":\"b@x.io\"}"]
        );
        assert_eq!(recs[1].line, 4);
        assert_eq!(recs[1].index, 1);
    }

    /// Found by the `framing` fuzz target: a source whose first read gave one byte hid the
    /// gzip magic (and a byte order mark), and the drop was refused as not JSON.
    #[test]
    fn gzip_and_bom_are_sniffed_whatever_the_first_read_holds() {
        let text = b"\xef\xbb\xbf[{\"email\":\"a@x.io\"},\n{\"email\":\"b@x.io\"}]";
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text).unwrap();
        let gz = enc.finish().unwrap();
        for input in [&gz[..], text] {
            for sizes in [[1], [2], [3], [1 << 20]] {
                let (records, end) = looks_agree(input, &sizes, 1 << 20).unwrap();
                assert_eq!(end, "end", "{sizes:?}");
                assert_eq!(
                    texts(&records),
                    [r#"{"email":"a@x.io"}"#, r#"{"email":"b@x.io"}"#]
                );
                assert_eq!((records[1].line, records[1].column), (2, 1));
                assert_eq!(records[0].column, 2, "the BOM is not a column");
            }
        }
        // Part of a BOM is refused as its first byte always was, however it arrives.
        for sizes in [[1], [1 << 20]] {
            let (_, end) = looks_agree(b"\xef\xbb[]", &sizes, 1 << 20).unwrap();
            assert!(
                end.contains("found byte 0xef") && end.contains("byte 0)"),
                "{end}"
            );
        }
    }

    #[test]
    fn gzip_is_sniffed_from_bytes() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"[{\"email\":\"a@x.io\"}]").unwrap();
        let gz = enc.finish().unwrap();
        let mut reader = RecordReader::open(io::Cursor::new(gz), 1 << 20).unwrap();
        assert_eq!(reader.compression(), Compression::Gzip);
        let mut rec = RawRecord::default();
        assert!(reader.next_into(&mut rec).unwrap());
        assert_eq!(rec.bytes, b"{\"email\":\"a@x.io\"}");
        assert!(!reader.next_into(&mut rec).unwrap());
    }

    #[test]
    fn corrupt_gzip_is_a_clear_failure() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&b"{\"email\":\"a@x.io\"}\n".repeat(2000))
            .unwrap();
        let mut gz = enc.finish().unwrap();
        let mid = gz.len() / 2;
        for b in &mut gz[mid..mid + 16] {
            *b ^= 0x5a;
        }
        let err = frame(&gz).unwrap_err();
        assert!(matches!(err, InputError::CorruptGzip { .. }), "{err}");
    }

    #[test]
    fn empty_array_and_empty_input() {
        let (layout, recs) = frame(b"  [ ]  ").unwrap();
        assert_eq!(layout, Layout::JsonArray);
        assert!(recs.is_empty());
        assert!(matches!(frame(b" \n ").unwrap_err(), InputError::Empty));
    }

    #[test]
    fn truncated_array_names_position() {
        let err = frame(b"[{\"email\":\"a@x.io\"},\n{\"email\":\"b@").unwrap_err();
        let at = err.position().unwrap();
        assert_eq!(at.line, 2);
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn array_syntax_errors() {
        for bad in [
            &b"[{\"a\":1},]"[..],
            b"[{\"a\":1} {\"b\":2}]",
            b"[,{\"a\":1}]",
            b"[{\"a\":1}] x",
            b"[{\"a\":1}}]",
            b"x[]",
            b"[{\"a\":1},\xff]",
        ] {
            let err = frame(bad).unwrap_err();
            assert!(err.position().is_some(), "{err}");
        }
    }

    #[test]
    fn an_object_around_a_users_array_is_that_array() {
        let input = b"\xef\xbb\xbf{\n  \"realm\": \"r\", \"n\": 3,\n  \"users\" : [\n    {\"email\":\"a@x.io\"},\n    {\"email\":\"b@x.io\",\"users\":[1]}\n  ],\n  \"hash_config\": {\"algorithm\": \"SCRYPT\", \"x\": [1, \"]}\"]},\n  \"tail\": \"t\"\n}\n";
        let (layout, recs) = frame(input).unwrap();
        assert_eq!(layout, Layout::JsonArray);
        assert_eq!(
            texts(&recs),
            [
                "{\"email\":\"a@x.io\"}",
                "{\"email\":\"b@x.io\",\"users\":[1]}"
            ]
        );
        assert_eq!((recs[0].line, recs[0].column), (4, 5));
        assert_eq!((recs[1].line, recs[1].index), (5, 1));
        let reader = RecordReader::open(io::Cursor::new(input.to_vec()), 1 << 20).unwrap();
        assert_eq!(reader.wrapper(), Some("users"));
        // Read a few bytes at a time, framing is the same.
        let (trickled, end) = looks_agree(input, &[1, 2, 3], 1 << 20).unwrap();
        assert_eq!(end, "end");
        assert_eq!(trickled, recs);
    }

    #[test]
    fn a_keycloak_realm_export_is_read_through_its_settings_to_its_users() {
        // Keycloak's layout (kc.sh export --users same_file): realm settings, objects and
        // arrays of roles and clients, then the users, then more settings.
        let mut input = String::from(
            "{\n  \"id\": \"r\", \"realm\": \"r\", \"enabled\": true,\n  \"roles\": {\"realm\": [{\"name\": \"a]}\"}], \"client\": {}},\n  \"clients\": [",
        );
        // Enough settings to need more than one read.
        for i in 0..2_000 {
            input.push_str(&format!(
                "{{\"clientId\": \"c{i}\", \"redirectUris\": [\"https://x/{i}\"], \"attributes\": {{\"users\": \"[\"}}}},"
            ));
        }
        input.push_str("{}],\n  \"users\": [{\"username\": \"u1\"}, {\"username\": \"u2\"}],\n  \"smtpServer\": {}\n}\n");
        let (layout, recs) = frame(input.as_bytes()).unwrap();
        assert_eq!(layout, Layout::JsonArray);
        assert_eq!(
            texts(&recs),
            ["{\"username\": \"u1\"}", "{\"username\": \"u2\"}"]
        );
        let (trickled, end) = looks_agree(input.as_bytes(), &[1, 7, 4096], 1 << 20).unwrap();
        assert_eq!(end, "end");
        assert_eq!(trickled, recs);
    }

    #[test]
    fn ndjson_users_are_not_taken_for_a_wrapper() {
        // A user whose first member is an array, or whose object member is named users.
        let input = b"{\"identities\": [{\"a\":1}], \"email\":\"a@x.io\"}\n{\"app_metadata\":{\"users\":[1]}}\n";
        let (layout, recs) = frame(input).unwrap();
        assert_eq!(layout, Layout::Ndjson);
        assert_eq!(recs.len(), 2);
        assert_eq!(
            recs[0].bytes,
            &input[..input.iter().position(|&b| b == b'\n').unwrap()]
        );
    }

    #[test]
    fn a_broken_wrapper_names_where() {
        for bad in [
            &b"{\"users\": [{\"a\":1}]"[..],
            b"{\"users\": [{\"a\":1}] x}",
            b"{\"users\": [{\"a\":1}]} {}",
            b"{\"users\": [{\"a\":1},]}",
        ] {
            let err = frame(bad).unwrap_err();
            assert!(err.position().is_some(), "{err}");
        }
        let (_, recs) = frame(b"{\"users\": []}").unwrap();
        assert!(recs.is_empty());
    }

    #[test]
    fn oversized_records_are_capped_not_held() {
        let big = format!(
            "[{{\"email\":\"{}\"}},{{\"email\":\"b@x.io\"}}]",
            "a".repeat(5000)
        );
        let mut reader = RecordReader::open(io::Cursor::new(big.into_bytes()), 100).unwrap();
        let mut rec = RawRecord::default();
        assert!(reader.next_into(&mut rec).unwrap());
        assert!(rec.oversized);
        assert_eq!(rec.bytes.len(), 100);
        assert!(reader.next_into(&mut rec).unwrap());
        assert!(!rec.oversized);
        assert_eq!(rec.index, 1);
    }
}
