//! `make bench-hash`: the cost of one `check` per algorithm at its default work factor, on the
//! records `gen_hash_vectors.py --bench` writes (made by independent implementations).
//! Usage: check_cost RECORDS.json [ROUNDS]. Prints a Markdown table; never a password or hash.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: check_cost RECORDS.json [ROUNDS]")?;
    let rounds: u32 = args.next().map(|r| r.parse()).transpose()?.unwrap_or(5);
    let records: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(path)?)?;
    println!("| algorithm (default work factor) | verifies | median ms per check | min ms |");
    println!("|---|---|---:|---:|");
    for r in &records {
        let password = r["password"].as_str().ok_or("password")?;
        let mut times = Vec::new();
        let mut verdict = None;
        for _ in 0..rounds {
            let start = Instant::now();
            verdict = Some(auth0_password_hash::check(&r["record"], password));
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {} | {} | {:.3} | {:.3} |",
            r["algorithm"].as_str().unwrap_or("?"),
            match verdict {
                Some(Ok(true)) => "yes",
                Some(Ok(false)) => "NO",
                _ => "error",
            },
            times[times.len() / 2],
            times[0]
        );
    }
    Ok(())
}
