//! `auth0-emulator [--port P] [--job-ms-per-user N] [--config FILE.json] [--seed-users N]`: runs
//! the emulator on 127.0.0.1 for the demo and benchmarks (`--seed-users` fills the first
//! connection with N synthetic users), prints where it listens and the credentials, runs until killed.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use auth0_emulator::{Emulator, EmulatorConfig};

const USAGE: &str =
    "usage: auth0-emulator [--port P] [--job-ms-per-user N] [--config FILE.json] [--seed-users N]";

struct Args {
    port: u16,
    job_ms_per_user: Option<u64>,
    config: Option<String>,
    seed_users: usize,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        port: 0,
        job_ms_per_user: None,
        config: None,
        seed_users: 0,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--port" => parsed.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--job-ms-per-user" => {
                parsed.job_ms_per_user = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--job-ms-per-user: {e}"))?,
                )
            }
            "--config" => parsed.config = Some(value()?),
            "--seed-users" => {
                parsed.seed_users = value()?.parse().map_err(|e| format!("--seed-users: {e}"))?
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(parsed)
}

fn load_config(args: &Args) -> Result<EmulatorConfig, String> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?
        }
        None => EmulatorConfig::default(),
    };
    if let Some(ms) = args.job_ms_per_user {
        config.job_time_per_user = Duration::from_millis(ms);
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let config = match load_config(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("auth0-emulator: {message}");
            return ExitCode::from(2);
        }
    };
    let credentials: Vec<String> = config
        .clients
        .iter()
        .map(|c| {
            format!(
                "client_id={} client_secret={}",
                c.client_id, c.client_secret
            )
        })
        .collect();
    let emulator =
        match Emulator::start_on(config, SocketAddr::from(([127, 0, 0, 1], args.port))).await {
            Ok(emulator) => emulator,
            Err(error) => {
                eprintln!(
                    "auth0-emulator: cannot listen on port {}: {error}",
                    args.port
                );
                return ExitCode::from(1);
            }
        };
    if args.seed_users > 0 {
        // `user<i>@example.com`, the records tests/bench generators make for the same count.
        let users = (0..args.seed_users)
            .map(|i| {
                serde_json::json!({
                    "email": format!("user{i}@example.com"),
                    "email_verified": true,
                    "given_name": format!("Given{i}"),
                    "user_metadata": {"n": i},
                })
            })
            .collect();
        let added = emulator.seed_users(None, users);
        println!("seeded {added} users");
    }
    println!("listening on {}", emulator.base_url());
    for line in credentials {
        println!("client: {line} audience={}", emulator.audience());
    }
    // Runs until the process is killed; the emulator has nothing to flush.
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
