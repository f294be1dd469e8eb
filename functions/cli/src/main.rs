//! `auth0-s3-import`: rehearse a migration locally. `split` validates and chunks an export
//! into a run folder exactly like the split Lambda does, with no AWS account and no tenant.

mod folder;

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use import_core::input::{Compression, Layout};
use import_core::layout;
use import_core::manifest::{Flavor, RunManifest, RunStatus, Source};
use import_core::split::{split, SplitOptions, DEFAULT_MAX_CHUNK_BYTES};
use indicatif::{ProgressBar, ProgressStyle};

use folder::FolderSink;

#[derive(Parser)]
#[command(
    name = "auth0-s3-import",
    version,
    about = "Move users from a legacy store into Auth0 by bulk import"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate an export with Auth0's rules and split it into import-ready chunks.
    Split {
        /// The export: JSON array, NDJSON or Auth0's own export, optionally gzipped.
        file: PathBuf,
        /// The run folder to write (chunks/, rejects.ndjson, manifest.json).
        #[arg(long)]
        out: PathBuf,
        /// Largest users file per chunk, in bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_CHUNK_BYTES)]
        max_chunk_bytes: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Split {
            file,
            out,
            max_chunk_bytes,
        } => split_command(&file, &out, max_chunk_bytes),
    }
}

fn split_command(file: &Path, out: &Path, max_chunk_bytes: usize) -> Result<ExitCode> {
    let input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let meta = input
        .metadata()
        .with_context(|| format!("reading {}", file.display()))?;
    let size = meta.len();
    // A local file has no ETag: its size and modification time stand in for one.
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let canonical = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    let run_id = layout::run_id(&canonical.to_string_lossy(), &format!("{size}-{mtime}"));
    let mut sink = FolderSink::create(out).map_err(anyhow::Error::msg)?;

    let bar = progress_bar(size);
    let reader = Counted {
        inner: input,
        bar: bar.clone(),
    };
    let source = Source::Local {
        path: canonical.to_string_lossy().into_owned(),
        size: Some(size),
    };
    let options = SplitOptions {
        max_chunk_bytes,
        scratch_dir: None,
        drop_options: None,
    };
    let outcome = split(reader, source, &run_id, &options, &mut sink);
    bar.finish_and_clear();
    let outcome = outcome?;
    print_summary(&outcome.manifest, out);
    Ok(match outcome.manifest.status {
        RunStatus::Split => ExitCode::SUCCESS,
        RunStatus::Failed => ExitCode::FAILURE,
    })
}

fn progress_bar(size: u64) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(size);
    let style = ProgressStyle::with_template(
        "{spinner} splitting [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Counts the file's bytes as the splitter reads them, for the progress bar.
struct Counted {
    inner: File,
    bar: ProgressBar,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

fn print_summary(m: &RunManifest, out: &Path) {
    let format = m
        .format
        .as_ref()
        .map(|f| {
            let layout = match f.layout {
                Layout::JsonArray => "JSON array",
                Layout::Ndjson => "NDJSON",
            };
            let gz = if f.compression == Compression::Gzip {
                ", gzip"
            } else {
                ""
            };
            let flavor = if f.flavor == Flavor::Auth0Export {
                ", Auth0 export"
            } else {
                ""
            };
            format!("{layout}{gz}{flavor}")
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("run        {}", m.run_id);
    println!("format     {format}");
    if let Some(f) = &m.failure {
        println!("status     FAILED: no chunk was published");
        println!("reason     {}", f.reason);
        println!("run folder {}", out.display());
        return;
    }
    println!("users in   {}", m.users_in);
    println!("accepted   {}", m.users_accepted);
    println!(
        "rejected   {}   (in = accepted + rejected: {})",
        m.users_rejected,
        if m.conservation_holds {
            "holds"
        } else {
            "DOES NOT HOLD"
        }
    );
    println!(
        "chunks     {}   (mean fill {:.2}% of {} bytes)",
        m.chunks.len(),
        m.mean_chunk_fill * 100.0,
        m.max_chunk_bytes
    );
    let t = &m.transformations;
    if t.user_id_prefix_stripped > 0 || !t.fields_dropped.is_empty() {
        println!("transformed");
        if t.user_id_prefix_stripped > 0 {
            println!(
                "  auth0| prefix stripped from user_id   {}",
                t.user_id_prefix_stripped
            );
        }
        for (field, n) in &t.fields_dropped {
            println!("  export-only field {field:<22} dropped {n}");
        }
    }
    if !m.rejects_by_code.is_empty() {
        println!("rejects by reason (a record may have several)");
        let width = m.rejects_by_code.keys().map(String::len).max().unwrap_or(0);
        let mut by_count: Vec<(&String, &u64)> = m.rejects_by_code.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (code, n) in by_count {
            println!("  {code:<width$}  {n}");
        }
    }
    println!(
        "run folder {}  (manifest.json, rejects.ndjson, {} chunk files)",
        out.display(),
        m.chunks.len()
    );
}
