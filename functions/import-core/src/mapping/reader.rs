//! Reads a mapped source record by record: CSV/TSV rows by their header, or JSON records framed
//! as the plain input is; each comes out as the import JSON its mapping makes, or refused.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::sync::Arc;

use serde_json::Value;

use super::{select, Cell, Mapping, MappingError, Row, Selector, SourceFormat};
use crate::input::{
    classify_io, open_stream, Compression, InputError, Layout, Position, RawRecord, RecordReader,
    Records,
};
use crate::split::codes;
use crate::violation::Violation;

const UTF8_BOM: [u8; 3] = [0xef, 0xbb, 0xbf];

/// A mapped source: every record it gives is an import record (or refused with its reasons).
pub struct MappedReader {
    mapping: Arc<Mapping>,
    max_record_bytes: usize,
    source: Source,
}

enum Source {
    Csv(Box<CsvSource>),
    Json(RecordReader),
}

struct CsvSource {
    reader: csv::Reader<Box<dyn BufRead + Send>>,
    compression: Compression,
    /// The header's column names, each to its place (the mapping's columns only).
    columns: BTreeMap<String, usize>,
    header: Vec<String>,
    row: csv::ByteRecord,
    next_index: u64,
}

impl MappedReader {
    /// Opens `source` for `mapping`; a CSV header is read and every column the mapping reads is
    /// found in it before any record is.
    pub fn open<R: Read + Send + 'static>(
        source: R,
        mapping: Arc<Mapping>,
        max_record_bytes: usize,
    ) -> Result<Self, InputError> {
        let source = match mapping.format() {
            SourceFormat::Json => Source::Json(RecordReader::open(source, max_record_bytes)?),
            SourceFormat::Csv | SourceFormat::Tsv => {
                Source::Csv(Box::new(CsvSource::open(source, &mapping)?))
            }
        };
        Ok(MappedReader {
            mapping,
            max_record_bytes,
            source,
        })
    }
}

/// `record`'s bytes: the import JSON `mapping` makes of `row`, or why it cannot.
fn finish(mapping: &Mapping, max_record_bytes: usize, record: &mut RawRecord, row: &dyn Row) {
    match mapping.map(row, record.line) {
        Ok(mapped) => {
            // A map of JSON values always serialises.
            let _ = serde_json::to_writer(&mut record.bytes, &mapped.user);
            record.without_password = mapped.without_password;
            if record.bytes.len() > max_record_bytes {
                record.bytes.truncate(max_record_bytes);
                record.oversized = true;
            }
        }
        Err(reasons) => record.refused = reasons,
    }
}

fn mapping_error(e: MappingError) -> InputError {
    InputError::Mapping(e.to_string())
}

impl CsvSource {
    fn open<R: Read + Send + 'static>(source: R, mapping: &Mapping) -> Result<Self, InputError> {
        let (mut inner, compression) = open_stream(source)?;
        // The BOM does not belong to the first column's name. Its bytes may come in separate
        // reads: matched one at a time; a part of one is refused (no header starts so).
        for (taken, &byte) in UTF8_BOM.iter().enumerate() {
            let buf = inner.fill_buf().map_err(classify_io(0))?;
            if buf.first() != Some(&byte) {
                if taken == 0 {
                    break;
                }
                return Err(InputError::Syntax {
                    at: Position {
                        line: 1,
                        column: 1,
                        byte_offset: 0,
                    },
                    message: "the input starts with part of a UTF-8 byte-order mark".into(),
                });
            }
            inner.consume(1);
        }
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(mapping.delimiter())
            .has_headers(true)
            .flexible(true)
            .from_reader(inner);
        let header: Vec<String> = match reader.byte_headers() {
            Ok(h) if h.is_empty() => return Err(mapping_error(MappingError::NoHeader)),
            Ok(h) => h
                .iter()
                .map(|name| String::from_utf8_lossy(name).trim().to_string())
                .collect(),
            Err(e) => return Err(csv_error(e, 0)),
        };
        let mut columns = BTreeMap::new();
        for (selector, entry, optional) in mapping.selectors() {
            let Selector::Column(name) = selector else {
                continue;
            };
            let mut places = header.iter().enumerate().filter(|(_, h)| *h == name);
            match (places.next(), places.next()) {
                (Some((i, _)), None) => {
                    columns.insert(name.clone(), i);
                }
                (Some(_), Some(_)) => {
                    return Err(mapping_error(MappingError::AmbiguousColumn(name.clone())))
                }
                (None, _) if optional => {}
                (None, _) => {
                    return Err(mapping_error(MappingError::MissingColumn {
                        entry,
                        column: name.clone(),
                        header: header.join(", "),
                    }))
                }
            }
        }
        Ok(CsvSource {
            reader,
            compression,
            columns,
            header,
            row: csv::ByteRecord::new(),
            next_index: 0,
        })
    }
}

fn csv_error(e: csv::Error, offset: u64) -> InputError {
    let at = e.position().map(|p| Position {
        line: p.line(),
        column: 1,
        byte_offset: p.byte(),
    });
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(io) => classify_io(offset)(io),
        _ => InputError::Syntax {
            at: at.unwrap_or(Position {
                line: 1,
                column: 1,
                byte_offset: offset,
            }),
            message,
        },
    }
}

struct CsvRow<'a> {
    columns: &'a BTreeMap<String, usize>,
    cells: Vec<&'a str>,
}

impl Row for CsvRow<'_> {
    fn cell(&self, selector: &Selector) -> Option<Cell<'_>> {
        let Selector::Column(name) = selector else {
            return None;
        };
        self.columns
            .get(name)
            .and_then(|&i| self.cells.get(i))
            .map(|text| Cell::Text(text))
    }
}

struct JsonRow<'a>(&'a Value);

impl Row for JsonRow<'_> {
    fn cell(&self, selector: &Selector) -> Option<Cell<'_>> {
        match selector {
            Selector::Path { steps, .. } => select(self.0, steps).map(Cell::Json),
            Selector::Column(name) => self.0.get(name).map(Cell::Json),
        }
    }
}

impl Records for MappedReader {
    fn next_into(&mut self, record: &mut RawRecord) -> Result<bool, InputError> {
        match &mut self.source {
            Source::Json(reader) => {
                if !reader.next_into(record)? {
                    return Ok(false);
                }
                if record.oversized {
                    return Ok(true);
                }
                let parsed = serde_json::from_slice::<Value>(&record.bytes);
                record.bytes.clear();
                match parsed {
                    Ok(value) => finish(
                        &self.mapping,
                        self.max_record_bytes,
                        record,
                        &JsonRow(&value),
                    ),
                    Err(e) => {
                        record.refused = vec![Violation::new(
                            codes::INVALID_JSON,
                            "",
                            format!(
                                "line {} is not valid JSON at column {}",
                                record
                                    .line
                                    .saturating_add(e.line() as u64)
                                    .saturating_sub(1),
                                e.column()
                            ),
                        )]
                    }
                }
                Ok(true)
            }
            Source::Csv(csv) => {
                let offset = csv.reader.position().byte();
                match csv.reader.read_byte_record(&mut csv.row) {
                    Ok(true) => {}
                    Ok(false) => return Ok(false),
                    Err(e) => return Err(csv_error(e, offset)),
                }
                let (line, byte) = csv
                    .row
                    .position()
                    .map_or((0, offset), |p| (p.line(), p.byte()));
                record.index = csv.next_index;
                csv.next_index += 1;
                record.line = line;
                record.column = 1;
                record.byte_offset = byte;
                record.bytes.clear();
                record.oversized = false;
                record.refused.clear();
                record.without_password = false;
                let line = record.line;
                if csv.row.len() != csv.header.len() {
                    record.refused = vec![Violation::new(
                        codes::MAPPING,
                        "",
                        format!(
                            "line {line} has {} fields, the header has {}",
                            csv.row.len(),
                            csv.header.len()
                        ),
                    )];
                    return Ok(true);
                }
                let mut cells = Vec::with_capacity(csv.row.len());
                for (i, cell) in csv.row.iter().enumerate() {
                    match std::str::from_utf8(cell) {
                        Ok(text) => cells.push(text),
                        Err(_) => {
                            record.refused = vec![Violation::new(
                                codes::MAPPING,
                                "",
                                format!(
                                    "line {line}, column {:?}: not UTF-8 text (save the export as UTF-8)",
                                    csv.header[i]
                                ),
                            )];
                            return Ok(true);
                        }
                    }
                }
                let row = CsvRow {
                    columns: &csv.columns,
                    cells,
                };
                finish(&self.mapping, self.max_record_bytes, record, &row);
                Ok(true)
            }
        }
    }

    fn compression(&self) -> Compression {
        match &self.source {
            Source::Csv(csv) => csv.compression,
            Source::Json(reader) => reader.compression(),
        }
    }

    fn layout(&self) -> Layout {
        match &self.source {
            Source::Csv(_) => Layout::Csv,
            Source::Json(reader) => reader.layout(),
        }
    }

    fn flavor(&self) -> Option<crate::manifest::Flavor> {
        Some(crate::manifest::Flavor::Import)
    }
}
