//! `bench_reconcile BASE_URL USERS`: the reconcile's read-back of a large connection, measured
//! alone (run it under `/usr/bin/time -v` for peak memory; `make bench-reconcile` does).
//!
//! The emulator runs as its own process (`auth0-emulator --seed-users USERS`) so its tenant is not
//! counted; the accepted users indexed here are the same synthetic ones it seeded.

use std::time::{Duration, Instant};

use auth0_api::{ExportField, ManagementApi};
use import_core::auth0::Auth0Credentials;
use import_core::ledger::Lines;
use import_core::reconcile::{export_fields, IndexBuilder, BYTES_PER_USER};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(base_url), Some(users)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: bench_reconcile BASE_URL USERS");
    };
    let users: usize = users.parse()?;
    let started = Instant::now();
    let mut builder = IndexBuilder::default();
    for i in 0..users {
        // What `auth0-emulator --seed-users` stores for user i.
        let user = json!({
            "email": format!("user{i}@example.com"),
            "email_verified": true,
            "given_name": format!("Given{i}"),
            "user_metadata": {"n": i},
        });
        builder.add_user(1 + (i / 1000) as u32, &user);
    }
    let mut index = builder.seal();
    let indexed = started.elapsed();

    let credentials = Auth0Credentials::ClientCredentials {
        base_url: base_url.clone(),
        client_id: auth0_emulator::DEFAULT_CLIENT_ID.into(),
        client_secret: auth0_emulator::DEFAULT_CLIENT_SECRET.into(),
    };
    let api = ManagementApi::new(credentials)?;
    let deadline = Instant::now() + Duration::from_secs(3600);
    let fields: Vec<ExportField> = export_fields()
        .into_iter()
        .map(|name| ExportField {
            name: name.into(),
            export_as: None,
        })
        .collect();
    let export_started = Instant::now();
    let job = api
        .create_export(auth0_emulator::DEFAULT_CONNECTION_ID, &fields, deadline)
        .await?;
    let mut lines = Lines::default();
    let mut bad = 0u64;
    let mut decompressed = 0u64;
    let cell = std::cell::RefCell::new(&mut index);
    let compressed = api
        .download_export(
            &job,
            Duration::from_millis(200),
            deadline,
            || cell.borrow_mut().reset(),
            |piece| {
                decompressed += piece.len() as u64;
                lines.feed(piece, &mut |line: &[u8]| {
                    if cell.borrow_mut().line(line).is_err() {
                        bad += 1;
                    }
                    Ok::<(), String>(())
                })
            },
        )
        .await?;
    lines
        .finish(&mut |line: &[u8]| {
            if cell.borrow_mut().line(line).is_err() {
                bad += 1;
            }
            Ok::<(), String>(())
        })
        .map_err(anyhow::Error::msg)?;
    let read = export_started.elapsed();
    let r = index.finish(users as u64, 0).report;
    println!("users indexed            {users}");
    println!("index built in           {:.2} s", indexed.as_secs_f64());
    println!("bytes per user (index)   {BYTES_PER_USER}");
    println!(
        "index size               {:.1} MB",
        (users * BYTES_PER_USER) as f64 / 1e6
    );
    println!("export gzip size         {:.1} MB", compressed as f64 / 1e6);
    println!(
        "export NDJSON size       {:.1} MB",
        decompressed as f64 / 1e6
    );
    println!(
        "export job + download + classify  {:.2} s",
        read.as_secs_f64()
    );
    println!("export users read        {}", r.export_users_read);
    println!(
        "present {} / different {} / missing {} / bad lines {bad}",
        r.present, r.present_with_differences, r.missing
    );
    Ok(())
}
