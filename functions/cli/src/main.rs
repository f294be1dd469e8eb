//! `auth0-s3-import`: rehearse a migration locally. `split` validates and chunks an export
//! into a run folder exactly like the split Lambda does, with no AWS account and no tenant.

mod folder;
mod hash;
mod migrate;
mod store;

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use import_core::canary::{parse_canaries, Canaries};
use import_core::input::{Compression, Layout};
use import_core::layout;
use import_core::manifest::{Flavor, RunManifest, RunStatus, Source};
use import_core::options::DropOptions;
use import_core::split::{split, SplitOptions, DEFAULT_MAX_CHUNK_BYTES};
use indicatif::{ProgressBar, ProgressStyle};

use folder::FolderSink;

/// mimalloc: the split stage allocates and frees a parsed tree per record on several threads,
/// where the system allocator was ~15% of the profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        #[command(flatten)]
        canary: CanaryArgs,
    },
    /// Run a whole migration against a tenant: split, submit import jobs, follow them, report.
    /// Started again with the same arguments, it resumes. Exit status: 0 every user imported,
    /// 3 finished with users not imported (see report.csv), 1 error or failed run.
    Migrate {
        /// The export: JSON array, NDJSON or Auth0's own export, optionally gzipped.
        file: PathBuf,
        /// The folder that keeps the run (runs/<run-id>/ with chunks, jobs, reports).
        #[arg(long)]
        out: PathBuf,
        /// JSON credentials, as in the Lambdas' secret: {"domain","client_id","client_secret"} or {"domain","token"}.
        #[arg(long)]
        credentials: PathBuf,
        /// Target database connection id (con_ + 16 letters or digits).
        #[arg(long)]
        connection_id: String,
        /// Update users that already exist instead of failing them.
        #[arg(long)]
        upsert: bool,
        /// Import jobs in flight at once (Auth0 allows 2 per tenant).
        #[arg(long, default_value_t = 2)]
        max_jobs: u32,
        /// Largest users file per chunk, in bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_CHUNK_BYTES)]
        max_chunk_bytes: usize,
        #[command(flatten)]
        canary: CanaryArgs,
    },
    /// Check a password against one record the way Auth0 will, or convert a legacy hash.
    Hash {
        #[command(subcommand)]
        command: HashCommand,
    },
}

/// Canaries: accounts whose password you know, checked before any chunk is submitted.
#[derive(clap::Args)]
struct CanaryArgs {
    /// JSON array or NDJSON of {"email"|"username"|"user_id": ..., "password": ...}. Each is found
    /// in the drop and its hash verified; a failed or missing one stops the run (exit 1) before
    /// any chunk can be submitted.
    #[arg(long, value_name = "FILE")]
    canary: Option<PathBuf>,
    /// Report failed or missing canaries as warnings and go on.
    #[arg(long, requires = "canary")]
    canary_warn: bool,
}

impl CanaryArgs {
    fn load(&self) -> Result<Canaries> {
        let Some(path) = &self.canary else {
            return Ok(Canaries::default());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let list = parse_canaries(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Canaries {
            list,
            warn_only: self.canary_warn,
        })
    }
}

#[derive(Subcommand)]
enum HashCommand {
    /// Read one user record (a JSON object, as in an import file) and say whether Auth0 would
    /// accept PASSWORD for it. Exit status: 0 verifies, 1 does not (the doctor names the
    /// parameter that would make it verify, when one does), 2 the record cannot be checked.
    Check {
        /// The plaintext password to check (a test account's: it shows in the process list).
        #[arg(long)]
        password: String,
        /// The record's file, or - for standard input.
        #[arg(default_value = "-")]
        file: PathBuf,
    },
    /// Turn a legacy system's stored hash into Auth0's import fields: prints {"password_hash": ...}
    /// or {"custom_password_hash": {...}} and exits 0, or why Auth0 cannot import it and exits 1.
    Convert {
        /// bcrypt, django, aspnet-identity, keycloak (the credential object as JSON), werkzeug,
        /// passlib, php, ldap, firebase-scrypt, phpass or drupal7.
        #[arg(long, value_name = "FORMAT")]
        from: String,
        /// The stored hash, or - (or nothing) for standard input.
        hash: Option<String>,
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
            canary,
        } => split_command(&file, &out, max_chunk_bytes, canary.load()?),
        Command::Migrate {
            file,
            out,
            credentials,
            connection_id,
            upsert,
            max_jobs,
            max_chunk_bytes,
            canary,
        } => migrate::migrate(migrate::MigrateArgs {
            file: &file,
            out: &out,
            credentials: &credentials,
            connection_id: &connection_id,
            upsert,
            max_jobs,
            max_chunk_bytes,
            canaries: canary.load()?,
        }),
        Command::Hash {
            command: HashCommand::Check { password, file },
        } => hash::check_command(&password, &file),
        Command::Hash {
            command: HashCommand::Convert { from, hash },
        } => hash::convert_command(&from, hash.as_deref()),
    }
}

fn split_command(
    file: &Path,
    out: &Path,
    max_chunk_bytes: usize,
    canaries: Canaries,
) -> Result<ExitCode> {
    let run_id = local_run_id(file)?;
    let mut sink = FolderSink::create(out).map_err(anyhow::Error::msg)?;
    let manifest = run_split(file, &run_id, max_chunk_bytes, None, canaries, &mut sink)?;
    print_summary(&manifest, out);
    Ok(match manifest.status {
        RunStatus::Split => ExitCode::SUCCESS,
        RunStatus::Failed => ExitCode::FAILURE,
    })
}

/// A local file has no ETag: its path, size and modification time stand in for one, so the
/// same file maps to the same run (and `migrate` can resume it).
pub(crate) fn local_run_id(file: &Path) -> Result<String> {
    let meta = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let canonical = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    Ok(layout::run_id(
        &canonical.to_string_lossy(),
        &format!("{}-{mtime}", meta.len()),
    ))
}

/// Splits `file` into `sink` with a progress bar on terminals.
pub(crate) fn run_split(
    file: &Path,
    run_id: &str,
    max_chunk_bytes: usize,
    drop_options: Option<DropOptions>,
    canaries: Canaries,
    sink: &mut FolderSink,
) -> Result<RunManifest> {
    let input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let size = input.metadata().map(|m| m.len()).unwrap_or(0);
    let canonical = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
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
        drop_options,
        canaries,
        ..SplitOptions::default()
    };
    let outcome = split(reader, source, run_id, &options, sink);
    bar.finish_and_clear();
    Ok(outcome?.manifest)
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

pub(crate) fn print_summary(m: &RunManifest, out: &Path) {
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
    if let Some(c) = &m.canaries {
        println!(
            "canaries   {} checked, {} passed, {} failed, {} missing{}",
            c.checked,
            c.passed,
            c.failed,
            c.missing,
            if c.warn_only && c.passed < c.checked {
                " (warnings only: --canary-warn)"
            } else {
                ""
            }
        );
        for problem in c.problems() {
            println!("  {problem}");
        }
    }
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
