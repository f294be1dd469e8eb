//! The fast path against the full path, and the SIMD blocks against plain ones, on any record:
//! the text pass and the `sonic_rs` parse may only take a record `serde_json` accepts, with the
//! same compact bytes, identities and counts, and may only refuse one for the same reasons;
//! compaction with this CPU's kind of block, with the plain kind and byte by byte must give the
//! same text, marks and refusals.
//!
//! The first byte chooses: bit 0 the run is an Auth0 export; bit 1 JSON array or NDJSON; bit 2
//! a chunk limit so small that records fall over it.
#![no_main]

use import_core::input::Layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&config, record)) = data.split_first() else {
        return;
    };
    let export = config & 1 == 1;
    let layout = if config & 2 == 0 {
        Layout::JsonArray
    } else {
        Layout::Ndjson
    };
    let max_chunk_bytes = if config & 4 == 0 { 500_000 } else { 200 };
    if let Err(differ) =
        import_core::fuzzing::fast_path_agrees(record, export, layout, max_chunk_bytes)
    {
        panic!("the paths disagree: {differ}");
    }
    if let Err(differ) = import_core::fuzzing::compaction_agrees(record) {
        panic!("compaction disagrees: {differ}");
    }
});
