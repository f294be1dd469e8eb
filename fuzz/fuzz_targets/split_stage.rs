//! The split stage on any bytes (JSON arrays, NDJSON, Auth0's export, plain or gzipped), into a
//! run folder in memory: every record framed is accounted for once, in a chunk (a JSON array
//! within the limit) or in rejects.ndjson (redacted), and the run fails exactly when framing
//! fails, publishing nothing.
//!
//! The first byte chooses: bit 0 gzip the rest; bit 4 the chunk limit; bit 5 a second run with
//! two workers, held byte for byte to the first.
#![no_main]

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::{Cursor, Write};

use import_core::layout::{MANIFEST, REJECTS};
use import_core::manifest::{RejectEntry, RunManifest, RunStatus, Source};
use import_core::split::{split_with_workers, MemorySink, SplitOptions};
use libfuzzer_sys::fuzz_target;

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
    let max_chunk_bytes = if config & 0x10 == 0 { 1024 } else { 4096 };
    // Split caps a record as written at four times the chunk limit: frame with the same cap.
    let (records, end) = import_core::fuzzing::framing_agrees(&input, &[], max_chunk_bytes * 4)
        .unwrap_or_else(|differ| panic!("framing looks disagree: {differ}"));
    let (manifest, objects) = split(&input, max_chunk_bytes, 1);
    if config & 0x20 != 0 {
        let (manifest_2, objects_2) = split(&input, max_chunk_bytes, 2);
        assert_eq!(
            manifest_2, manifest,
            "the manifest differs with two workers"
        );
        assert!(
            objects_2 == objects,
            "the run folder differs with two workers"
        );
    }

    match manifest.status {
        RunStatus::Failed => {
            assert!(manifest.failure.is_some(), "a failed run says why");
            assert!(
                manifest.chunks.is_empty(),
                "a failed run publishes no chunk"
            );
            assert_eq!(objects.len(), 1, "a failed run leaves only its manifest");
        }
        RunStatus::Split => {
            assert_eq!(end, "end", "framing failed but the run did not");
            assert_eq!(
                manifest.users_in,
                records.len() as u64,
                "every framed record is a user"
            );
            accounted_once(&manifest, &objects, max_chunk_bytes);
        }
    }
});

/// Runs the split stage on `input` into memory, with `workers` checking threads.
fn split(
    input: &[u8],
    max_chunk_bytes: usize,
    workers: usize,
) -> (RunManifest, std::collections::BTreeMap<String, Vec<u8>>) {
    let mut sink = MemorySink::default();
    let options = SplitOptions {
        max_chunk_bytes,
        // Spill files on a RAM disk where there is one: the stage creates a few per run.
        scratch_dir: std::path::Path::new("/dev/shm")
            .is_dir()
            .then(|| "/dev/shm".into()),
        drop_options: None,
        ..SplitOptions::default()
    };
    let source = Source::Local {
        path: "fuzz.json".into(),
        size: Some(input.len() as u64),
    };
    let outcome = split_with_workers(
        Cursor::new(input.to_vec()),
        source,
        "run-fuzz",
        &options,
        &mut sink,
        workers,
    )
    .unwrap_or_else(|e| panic!("split failed on an input in memory: {e}"));
    assert!(outcome.committed);
    let written: RunManifest =
        serde_json::from_slice(&sink.objects[MANIFEST]).expect("the manifest reads back");
    assert_eq!(written, outcome.manifest);
    (outcome.manifest, sink.objects)
}

/// Every user of a split run is in exactly one place: a chunk (which holds as many users as the
/// manifest says, in a JSON array within the limit) or rejects.ndjson (redacted).
fn accounted_once(
    manifest: &RunManifest,
    objects: &std::collections::BTreeMap<String, Vec<u8>>,
    max_chunk_bytes: usize,
) {
    assert!(manifest.conservation_holds);
    assert_eq!(
        manifest.users_in,
        manifest.users_accepted + manifest.users_rejected
    );
    let rejects = objects.get(REJECTS).expect("rejects.ndjson is written");
    let mut rejected = Vec::new();
    for line in rejects.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let entry: RejectEntry = serde_json::from_slice(line).expect("a reject line reads back");
        assert!(!entry.reasons.is_empty(), "a reject says why");
        if let Some(hash) = entry.user.as_ref().and_then(|u| u.get("password_hash")) {
            assert!(
                hash.is_null() || hash == "*****",
                "a hash in rejects.ndjson"
            );
        }
        rejected.push(entry.index);
    }
    assert_eq!(rejected.len() as u64, manifest.users_rejected);
    let mut sorted = rejected.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), rejected.len(), "a record rejected twice");
    let mut seen: BTreeSet<u64> = sorted.iter().copied().collect();
    let mut accepted = 0u64;
    for chunk in &manifest.chunks {
        let bytes = objects.get(&chunk.key).expect("a listed chunk is written");
        assert_eq!(bytes.len() as u64, chunk.bytes);
        assert!(bytes.len() <= max_chunk_bytes, "a chunk over the limit");
        let users: Vec<serde_json::Value> =
            serde_json::from_slice(bytes).expect("a chunk is a JSON array");
        assert_eq!(users.len() as u64, u64::from(chunk.users));
        let indexes: Vec<u64> = chunk.input_indexes(&sorted).collect();
        assert_eq!(indexes.len(), users.len());
        for index in indexes {
            assert!(seen.insert(index), "user {index} is in two places");
        }
        accepted += users.len() as u64;
    }
    assert_eq!(accepted, manifest.users_accepted);
    assert!(
        seen.iter().copied().eq(0..manifest.users_in),
        "a user is missing"
    );
}
