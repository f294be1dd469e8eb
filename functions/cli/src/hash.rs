//! `auth0-s3-import hash check|convert`: one record's password checked the way Auth0 will, and a
//! legacy system's stored hash turned into Auth0's import fields. Never prints a password or hash
//! (but `convert`'s own output, the fragment asked for).

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use auth0_password_hash::{check, convert, diagnose, LegacyFormat};
use import_core::rules::check_serde_user;

/// Exit statuses of `hash check`.
const VERIFIES: u8 = 0;
const DOES_NOT_VERIFY: u8 = 1;
const CANNOT_CHECK: u8 = 2;

/// The text of `source` (a path, or `-` for standard input).
fn read_source(source: &Path) -> Result<String> {
    if source == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        Ok(text)
    } else {
        std::fs::read_to_string(source).with_context(|| format!("reading {}", source.display()))
    }
}

pub fn check_command(password: &str, record: &Path) -> Result<ExitCode> {
    let text = read_source(record)?;
    let record: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            println!(
                "cannot check: the record is not JSON (line {}, column {})",
                e.line(),
                e.column()
            );
            return Ok(ExitCode::from(CANNOT_CHECK));
        }
    };
    // Auth0 refuses a record whose hash fields break its rules: such a password never works.
    let violations = check_serde_user(&record);
    let (hash_rules, other): (Vec<_>, Vec<_>) = violations.iter().partition(|v| {
        v.path.starts_with("password_hash") || v.path.starts_with("custom_password_hash")
    });
    for v in &other {
        println!("note: Auth0 would also reject this record: {}", v.message);
    }
    if !hash_rules.is_empty() {
        println!("cannot check: Auth0 would reject this record's hash before any login:");
        for v in hash_rules {
            println!("  {} ({})", v.message, v.code);
        }
        return Ok(ExitCode::from(CANNOT_CHECK));
    }
    match check(&record, password) {
        Ok(true) => {
            println!("verifies: Auth0 will accept this password at login");
            Ok(ExitCode::from(VERIFIES))
        }
        Ok(false) => {
            println!("does not verify: Auth0 would answer \"wrong email or password\"");
            let diagnosis = diagnose(&record, password);
            match &diagnosis.finding {
                Some(finding) => println!("doctor: {}", finding.sentence()),
                None => println!("doctor: no single-parameter variant verifies either"),
            }
            println!("doctor tried: {}", diagnosis.tried_summary());
            Ok(ExitCode::from(DOES_NOT_VERIFY))
        }
        Err(e) => {
            println!("cannot check: {e}");
            Ok(ExitCode::from(CANNOT_CHECK))
        }
    }
}

pub fn convert_command(from: &str, stored: Option<&str>) -> Result<ExitCode> {
    let Some(format) = LegacyFormat::parse(from) else {
        let names: Vec<&str> = LegacyFormat::ALL.iter().map(|f| f.name()).collect();
        anyhow::bail!(
            "--from {from:?} is not a format: one of {}",
            names.join(", ")
        );
    };
    let stored = match stored {
        Some(s) if s != "-" => s.to_string(),
        _ => read_source(Path::new("-"))?,
    };
    match convert(format, &stored) {
        Ok(fragment) => {
            println!("{}", fragment.into_value());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
