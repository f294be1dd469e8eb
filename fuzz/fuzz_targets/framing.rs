//! Input framing on any bytes: JSON arrays, NDJSON, Auth0's export, each plain or gzipped.
//! Framing must say the same looking at each byte as with the masks (this CPU's kind of block
//! and the plain kind), and the same whatever sizes the source's reads come in.
//!
//! The first byte chooses: bit 0 gzip the rest; bits 1-3 the sizes reads return; bit 4 a small
//! cap on a record's size.
#![no_main]

use std::borrow::Cow;
use std::io::Write;

use libfuzzer_sys::fuzz_target;

const READ_SIZES: [&[usize]; 8] = [
    &[],
    &[1],
    &[7, 64, 3],
    &[63],
    &[65, 1],
    &[2, 5],
    &[128],
    &[31, 33],
];

fuzz_target!(|data: &[u8]| {
    let Some((&config, rest)) = data.split_first() else {
        return;
    };
    let input: Cow<[u8]> = if config & 1 == 1 {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(rest).expect("gzip into memory");
        Cow::Owned(gz.finish().expect("gzip into memory"))
    } else {
        Cow::Borrowed(rest)
    };
    let sizes = READ_SIZES[usize::from(config >> 1 & 7)];
    let max_record_bytes = if config & 0x10 == 0 { 4096 } else { 16 };
    let framed = import_core::fuzzing::framing_agrees(&input, sizes, max_record_bytes)
        .unwrap_or_else(|differ| panic!("framing looks disagree: {differ}"));
    // Read whole, the input frames the same: positions, records and errors do not depend on
    // where the source's reads end.
    let whole = import_core::fuzzing::framing_agrees(&input, &[], max_record_bytes)
        .unwrap_or_else(|differ| panic!("framing looks disagree: {differ}"));
    assert_eq!(
        framed, whole,
        "framing depends on the sizes of reads {sizes:?}"
    );
    for record in &framed.0 {
        assert!(
            record.len() <= max_record_bytes,
            "a record over the cap is held"
        );
    }
});
