//! The differential checks the cargo-fuzz targets (fuzz/) run, over the crate's internals: each
//! does one thing two ways on any input and says where they differ. Built only with the
//! `fuzzing` feature; the unit tests run the same checks (`differential` modules).

use crate::input::Layout;
use crate::manifest::Flavor;
use crate::pipeline::Context;

/// Frames `input`, read `read_sizes` bytes at a time (all at once when empty), looking at each
/// shaping byte, then with the masks of this CPU's kind of block and of the plain kind: `Err`
/// when they frame it differently. `Ok` holds the records' bytes and how the input ended.
pub fn framing_agrees(
    input: &[u8],
    read_sizes: &[usize],
    max_record_bytes: usize,
) -> Result<(Vec<Vec<u8>>, String), String> {
    let (records, end) =
        crate::input::differential::looks_agree(input, read_sizes, max_record_bytes)?;
    Ok((records.into_iter().map(|r| r.bytes).collect(), end))
}

/// Compacts `json` with this CPU's kind of block and the plain kind, and walking byte by byte:
/// `Err` when they differ in the text, the marks of strings and gaps, or the refusal.
pub fn compaction_agrees(json: &[u8]) -> Result<(), String> {
    crate::compact::differential::marks_agree(json)
}

/// Judges one record on the fast path (the text pass, the parse into `sonic_rs`) and the full
/// path (`serde_json`): `Err` when the fast path takes a record the full path does not, with
/// other bytes or identities, or refuses it for other reasons. `Ok(true)` when the fast path
/// took it.
pub fn fast_path_agrees(
    record: &[u8],
    export: bool,
    layout: Layout,
    max_chunk_bytes: usize,
) -> Result<bool, String> {
    let flavor = if export {
        Flavor::Auth0Export
    } else {
        Flavor::Import
    };
    let context = Context {
        layout,
        max_chunk_bytes,
    };
    crate::pipeline::differential::paths_agree(flavor, context, record).map(|(taken, _)| taken)
}
