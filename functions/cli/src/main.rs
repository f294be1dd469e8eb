//! `auth0-s3-import`: rehearse a migration locally (`split`, `plan`, `migrate`) and operate a
//! deployed stack (`drop`, `runs`, `status`), with the same core the Lambdas run.

mod credentials;
mod deployed;
mod drop;
mod folder;
mod hash;
mod legacy;
mod migrate;
mod plan;
mod readback;
mod runs;
mod store;

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{ArgAction, Args, Parser, Subcommand};
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
    /// Say more on stderr: -v the retries and rate-limit waits of Auth0 calls, -vv everything
    /// (RUST_LOG, when set, decides instead).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// Which deployed stack: its name (its CloudFormation outputs name the bucket) or its bucket.
/// AWS credentials and region come from the usual AWS environment (AWS_PROFILE, AWS_REGION…).
#[derive(Args)]
#[group(required = true, multiple = false)]
struct StackArgs {
    /// The CloudFormation stack deployed from infra/template.yaml.
    #[arg(long)]
    stack: Option<String>,
    /// The stack's bucket (its BucketName output), when you cannot read the stack.
    #[arg(long)]
    bucket: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate an export with Auth0's rules and split it into import-ready chunks.
    ///
    /// Exit status: 0 every record accepted, 3 some rejected (see rejects.ndjson), 1 the file
    /// cannot be read as a whole.
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
        #[command(flatten)]
        source: legacy::SourceArgs,
    },
    /// Run a whole migration against a tenant from this machine: split, submit, follow, report.
    ///
    /// Started again with the same arguments, it resumes. Exit status: 0 every user imported,
    /// 3 finished with users not imported (see report.csv), 1 error or failed run.
    Migrate {
        /// The export: JSON array, NDJSON or Auth0's own export, optionally gzipped.
        file: PathBuf,
        /// The folder that keeps the run (runs/<run-id>/ with chunks, jobs, reports).
        #[arg(long)]
        out: PathBuf,
        /// JSON credentials, as in the Lambdas' secret: {"domain","client_id","client_secret"} or
        /// {"domain","token"}. Without it: AUTH0_DOMAIN with AUTH0_CLIENT_ID and
        /// AUTH0_CLIENT_SECRET (or AUTH0_TOKEN) from the environment.
        #[arg(long)]
        credentials: Option<PathBuf>,
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
        /// Do not read the users back from the tenant once the run is final (see `reconcile`).
        #[arg(long)]
        no_reconcile: bool,
        #[command(flatten)]
        source: legacy::SourceArgs,
    },
    /// Start a mapping for a CSV (or show a preset's): how a legacy source's columns become
    /// Auth0 users, for split and migrate's --mapping.
    Mapping {
        #[command(subcommand)]
        command: legacy::MappingCommand,
    },
    /// Read a final run's users back from the tenant (one export job): present and matching,
    /// present with differences, missing; in-doubt chunks resolved (submitted once more when
    /// their users are missing). Writes reconciliation.json and the report's section.
    ///
    /// Exit status: 0 every user present and matching, 3 some differ or are missing, 1 error.
    Reconcile {
        #[command(flatten)]
        at: RunArgs,
        /// Seconds after a chunk went in doubt before its missing users are submitted once
        /// more. A job Auth0 created behind the lost answer may still be importing them until
        /// then; Auth0 ends every job within 2 h. Default 7800 (2 h 10 min).
        #[arg(long, default_value_t = 7800)]
        in_doubt_wait_s: u64,
    },
    /// Delete the users a run inserted (never users that existed before it or were only
    /// updated). A dry run unless --yes; needs the delete:users scope. Writes rollback.json.
    ///
    /// Exit status: 0 done (a dry run included), 1 an error or a delete that failed.
    Rollback {
        #[command(flatten)]
        at: RunArgs,
        /// Delete, instead of listing what would be deleted.
        #[arg(long)]
        yes: bool,
    },
    /// Check a password against one record the way Auth0 will, or convert a legacy hash.
    Hash {
        #[command(subcommand)]
        command: HashCommand,
    },
    /// Check a migration before it starts, creating no job; print a table for a change ticket.
    ///
    /// Validates and splits the file in a temporary folder, checks the connection (a database
    /// connection enabled for an application) and the token's scopes, counts busy job slots
    /// (with --stack/--bucket), and estimates the duration from Auth0's published pace. Exit
    /// status: 0 ready, 3 ready with records rejected, 1 not ready.
    Plan {
        /// The export: JSON array, NDJSON or Auth0's own export, optionally gzipped.
        file: PathBuf,
        /// JSON credentials like the Lambdas' secret; without it, AUTH0_DOMAIN with
        /// AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET (or AUTH0_TOKEN) from the environment. The
        /// connection check needs the read:connections scope.
        #[arg(long)]
        credentials: Option<PathBuf>,
        /// Target database connection id (con_ + 16 letters or digits).
        #[arg(long)]
        connection_id: String,
        /// Plan an upsert (existing users updated; Auth0 runs these jobs slower).
        #[arg(long)]
        upsert: bool,
        /// Largest users file per chunk, in bytes (default: the stack's MaxChunkBytes with
        /// --stack, else 500000).
        #[arg(long)]
        max_chunk_bytes: Option<usize>,
        /// A deployed stack whose job slots to count (Auth0 lists no import jobs).
        #[arg(long, conflicts_with = "bucket")]
        stack: Option<String>,
        /// The deployed stack's bucket, instead of --stack.
        #[arg(long)]
        bucket: Option<String>,
    },
    /// Upload an export to a deployed stack and print the run it starts and how to watch it.
    ///
    /// The options travel in the object's key, as the pipeline reads them:
    /// inbox/<connection_id>/[upsert=true/][send_completion_email=true/]<file>.
    Drop {
        /// The export: JSON array, NDJSON or Auth0's own export, optionally gzipped.
        file: PathBuf,
        #[command(flatten)]
        target: StackArgs,
        /// Target database connection id (default: the stack's DefaultConnection).
        #[arg(long)]
        connection_id: Option<String>,
        /// Update users that already exist instead of failing them.
        #[arg(long)]
        upsert: bool,
        /// Have Auth0 e-mail the tenant's admins when each job ends (one e-mail per chunk).
        #[arg(long)]
        send_completion_email: bool,
        /// A failed or missing canary (the stack's canary secret) only warns instead of
        /// stopping the run.
        #[arg(long)]
        canary_warn: bool,
        /// The object's name in the inbox (default: the file's name).
        #[arg(long)]
        name: Option<String>,
        /// The inbox prefix, with --bucket (default inbox/; --stack reads it).
        #[arg(long)]
        inbox_prefix: Option<String>,
        /// Print the run id, key and version as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a deployed stack's runs, newest first, with their state and totals.
    Runs {
        #[command(flatten)]
        target: StackArgs,
        /// Print the runs as JSON.
        #[arg(long)]
        json: bool,
        /// Show at most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show one run's progress (chunks, users so far, ETA), or its totals once final.
    ///
    /// Exit status for a final run: 0 every user imported, 3 some not imported, 1 refused or
    /// numbers that do not add up; 0 while the run is still going.
    Status {
        /// The run id (printed by `drop`, listed by `runs`).
        run: String,
        #[command(flatten)]
        target: StackArgs,
        /// Follow the run until it ends, with a progress bar on a terminal.
        #[arg(long)]
        watch: bool,
        /// Print the run as JSON (with --watch: one line per change).
        #[arg(long)]
        json: bool,
        /// Seconds between refreshes with --watch.
        #[arg(long, default_value_t = 15)]
        interval: u64,
        /// Stop watching after this many minutes (the run goes on).
        #[arg(long, default_value_t = 24 * 60)]
        timeout_minutes: u64,
    },
}

/// Which run `reconcile` and `rollback` work on, and the tenant's credentials.
#[derive(clap::Args)]
struct RunArgs {
    /// The folder `migrate` kept.
    #[arg(long, conflicts_with = "bucket")]
    out: Option<PathBuf>,
    /// A deployed stack's bucket (with --run).
    #[arg(long)]
    bucket: Option<String>,
    /// The run id; without it, the only run in --out.
    #[arg(long)]
    run: Option<String>,
    /// JSON credentials like migrate's; without it, AUTH0_DOMAIN and friends from the environment.
    #[arg(long)]
    credentials: Option<PathBuf>,
}

impl RunArgs {
    fn at(&self) -> readback::Where<'_> {
        readback::Where {
            out: self.out.as_deref(),
            bucket: self.bucket.as_deref(),
            run: self.run.as_deref(),
            credentials: self.credentials.as_deref(),
        }
    }
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
    init_logging(cli.verbose);
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
            source,
        } => split_command(&file, &out, max_chunk_bytes, canary.load()?, source.load()?),
        Command::Migrate {
            file,
            out,
            credentials,
            connection_id,
            upsert,
            max_jobs,
            max_chunk_bytes,
            canary,
            no_reconcile,
            source,
        } => migrate::migrate(migrate::MigrateArgs {
            mapping: source.load()?,
            file: &file,
            out: &out,
            credentials: credentials.as_deref(),
            connection_id: &connection_id,
            upsert,
            max_jobs,
            max_chunk_bytes,
            canaries: canary.load()?,
            reconcile: !no_reconcile,
        }),
        Command::Reconcile {
            at,
            in_doubt_wait_s,
        } => readback::reconcile_command(at.at(), Duration::from_secs(in_doubt_wait_s)),
        Command::Rollback { at, yes } => readback::rollback_command(at.at(), yes),
        Command::Mapping { command } => legacy::mapping_command(command),
        Command::Hash {
            command: HashCommand::Check { password, file },
        } => hash::check_command(&password, &file),
        Command::Hash {
            command: HashCommand::Convert { from, hash },
        } => hash::convert_command(&from, hash.as_deref()),
        Command::Plan {
            file,
            credentials,
            connection_id,
            upsert,
            max_chunk_bytes,
            stack,
            bucket,
        } => plan::plan(plan::PlanArgs {
            file: &file,
            credentials: credentials.as_deref(),
            connection_id: &connection_id,
            upsert,
            max_chunk_bytes,
            stack: stack.as_deref(),
            bucket: bucket.as_deref(),
        }),
        Command::Drop {
            file,
            target,
            connection_id,
            upsert,
            send_completion_email,
            canary_warn,
            name,
            inbox_prefix,
            json,
        } => drop::drop(drop::DropArgs {
            file: &file,
            stack: target.stack.as_deref(),
            bucket: target.bucket.as_deref(),
            inbox_prefix: inbox_prefix.as_deref(),
            connection_id: connection_id.as_deref(),
            upsert,
            send_completion_email,
            canary_warn,
            name: name.as_deref(),
            json,
        }),
        Command::Runs {
            target,
            json,
            limit,
        } => runs::runs(
            runs::Target {
                stack: target.stack.as_deref(),
                bucket: target.bucket.as_deref(),
            },
            json,
            limit,
        ),
        Command::Status {
            run,
            target,
            watch,
            json,
            interval,
            timeout_minutes,
        } => runs::status(runs::StatusArgs {
            run_id: &run,
            target: runs::Target {
                stack: target.stack.as_deref(),
                bucket: target.bucket.as_deref(),
            },
            watch,
            json,
            interval: std::time::Duration::from_secs(interval.max(1)),
            timeout: std::time::Duration::from_secs(timeout_minutes.saturating_mul(60)),
        }),
    }
}

/// This tool's crates, whose events `-v` turns on (the AWS SDK's stay at warnings).
const OUR_CRATES: &[&str] = &[
    "auth0_s3_import",
    "auth0_api",
    "orchestrator",
    "aws_shell",
    "import_core",
];

/// Events to stderr, so stdout stays the command's answer: warnings by default, this tool's
/// info (retries, rate-limit waits) with -v, its debug with -vv; RUST_LOG overrides.
fn init_logging(verbose: u8) {
    let ours = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let default = std::iter::once("warn".to_string())
        .chain(OUR_CRATES.iter().map(|c| format!("{c}={ours}")))
        .collect::<Vec<_>>()
        .join(",");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// The runtime the AWS and Auth0 commands run on: two workers (network-bound).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn split_command(
    file: &Path,
    out: &Path,
    max_chunk_bytes: usize,
    canaries: Canaries,
    mapping: Option<std::sync::Arc<import_core::mapping::Mapping>>,
) -> Result<ExitCode> {
    let run_id = local_run_id(file)?;
    let mut sink = FolderSink::create(out).map_err(anyhow::Error::msg)?;
    let manifest = run_split(
        file,
        &run_id,
        max_chunk_bytes,
        None,
        canaries,
        mapping,
        &mut sink,
    )?;
    print_summary(&manifest, out);
    // 3 when any record was rejected (as `migrate` does for users not imported): a CI step
    // can stop on a file that would not import whole.
    Ok(match manifest.status {
        RunStatus::Split if manifest.users_rejected > 0 => ExitCode::from(3),
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
    mapping: Option<std::sync::Arc<import_core::mapping::Mapping>>,
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
        mapping,
        ..SplitOptions::default()
    };
    let outcome = split(reader, source, run_id, &options, sink);
    bar.finish_and_clear();
    Ok(outcome?.manifest)
}

fn progress_bar(size: u64) -> ProgressBar {
    bytes_bar(size, "splitting")
}

/// A bar over `size` bytes on a terminal (hidden elsewhere): "{what} [====>   ] 3 MiB/9 MiB".
pub(crate) fn bytes_bar(size: u64, what: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(size);
    let style = ProgressStyle::with_template(&format!(
        "{{spinner}} {what} [{{bar:40}}] {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, {{eta}} left)"
    ))
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
                Layout::Csv => "CSV",
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
    if t.imported_without_password > 0 {
        println!(
            "no password {}   (accepted without a hash: these users must reset it)",
            t.imported_without_password
        );
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
