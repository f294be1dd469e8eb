//! What parsing alone costs, for the split benchmark's floor (`tests/bench/floor.sh`): each
//! record of a generated export parsed by sonic-rs (a SIMD JSON parser, the fastest this
//! workspace has), on one thread, once with nothing else and once re-serialised as well. No
//! validation, no chunking, no files written: a lower bound on what any splitter that parses its
//! records spends, not a splitter.
//!
//!   cargo run --release -p import-core --example parse_floor -- FILE
//!
//! FILE must hold one record a line (what `tests/data/gen_export.py` writes, in either format).

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or("usage: parse_floor FILE (one JSON record a line)")?;
    let data = std::fs::read(&path)?;
    let records: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .map(|line| line.trim_ascii_end())
        .map(|line| line.strip_suffix(b",").unwrap_or(line))
        .filter(|line| line.first() == Some(&b'{'))
        .collect();

    let started = Instant::now();
    let mut objects = 0usize;
    for record in &records {
        let value: sonic_rs::Value = sonic_rs::from_slice(record)?;
        objects += usize::from(sonic_rs::JsonValueTrait::is_object(&value));
    }
    let parse = started.elapsed();

    let started = Instant::now();
    let mut written = 0usize;
    for record in &records {
        let value: sonic_rs::Value = sonic_rs::from_slice(record)?;
        written += sonic_rs::to_vec(&value)?.len();
    }
    let parse_write = started.elapsed();

    if objects != records.len() {
        return Err(format!(
            "{} of {} records are not objects",
            records.len() - objects,
            records.len()
        )
        .into());
    }
    println!(
        "records={} parse_s={:.3} parse_serialise_s={:.3} serialised_bytes={written}",
        records.len(),
        parse.as_secs_f64(),
        parse_write.as_secs_f64(),
    );
    Ok(())
}
