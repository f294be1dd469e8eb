//! The CSV+mapping path on any bytes: a CSV (or another system's JSON) read through each shipped
//! preset and a mapping with every type, then split. It never panics, accounts for every row
//! (users in = accepted + rejected), and every accepted user is a JSON object with an email.
//!
//! The first byte chooses the mapping (low 3 bits) and the checking threads (bit 3: two).
#![no_main]

use std::io::Cursor;
use std::sync::{Arc, LazyLock};

use import_core::manifest::{RunManifest, Source};
use import_core::mapping::{presets, Mapping};
use import_core::split::{split_with_workers, MemorySink, SplitOptions};
use libfuzzer_sys::fuzz_target;

const EVERY_TYPE: &str = r#"
version = 1
format = "csv"
[[field]]
from = "e"
to = "email"
lowercase = true
[[field]]
from = "v"
to = "email_verified"
type = "bool"
[[field]]
from = "n"
to = "app_metadata.n"
type = "integer"
[[field]]
from = "j"
to = "user_metadata"
type = "json"
[[join]]
from = ["f", "l"]
to = "name"
[password]
from = "h"
format = "digest"
algorithm = "sha256"
salt_from = "s"
salt_encoding = "hex"
"#;

fuzz_target!(|data: &[u8]| {
    let Some((&config, rest)) = data.split_first() else {
        return;
    };
    // Parsed once: reading the presets' TOML at every execution took most of each one.
    static MAPPINGS: LazyLock<Vec<Arc<Mapping>>> = LazyLock::new(|| {
        std::iter::once(Mapping::from_toml(EVERY_TYPE).expect("checks"))
            .chain(
                presets::PRESETS
                    .iter()
                    .filter_map(|p| presets::mapping(p.name).expect("every preset checks")),
            )
            .map(Arc::new)
            .collect()
    });
    let mapping = Arc::clone(&MAPPINGS[usize::from(config & 7) % MAPPINGS.len()]);
    let workers = if config & 8 == 0 { 1 } else { 2 };
    let options = SplitOptions {
        max_chunk_bytes: 4096,
        mapping: Some(mapping),
        // Spill files on a RAM disk where there is one, as split_stage does.
        scratch_dir: std::path::Path::new("/dev/shm")
            .is_dir()
            .then(|| "/dev/shm".into()),
        ..SplitOptions::default()
    };
    let mut sink = MemorySink::default();
    let source = Source::Local {
        path: "fuzz.csv".into(),
        size: None,
    };
    let outcome = split_with_workers(
        Cursor::new(rest.to_vec()),
        source,
        "run-fuzz",
        &options,
        &mut sink,
        workers,
    )
    .unwrap_or_else(|e| panic!("split failed on an input in memory: {e}"));
    let m: RunManifest = outcome.manifest;
    assert!(m.conservation_holds);
    assert_eq!(m.users_in, m.users_accepted + m.users_rejected);
    for chunk in &m.chunks {
        let users: Vec<serde_json::Value> =
            serde_json::from_slice(&sink.objects[&chunk.key]).expect("a chunk is a JSON array");
        for user in users {
            assert!(user["email"].is_string(), "an accepted user has an email");
        }
    }
});
