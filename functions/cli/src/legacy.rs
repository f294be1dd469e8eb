//! Legacy sources on the command line: `--from PRESET` / `--mapping FILE` for split and migrate,
//! and `mapping init|show|presets`, which start a mapping for the operator to edit.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use import_core::mapping::{guess, presets, Mapping};

/// How to read the file when it is not in Auth0's import format.
#[derive(clap::Args, Default)]
pub struct SourceArgs {
    /// Read the file through a mapping (TOML: columns or members → Auth0 fields, the password
    /// column's format); `mapping init FILE.csv` writes a first one.
    #[arg(long, value_name = "FILE", conflicts_with = "from")]
    pub mapping: Option<PathBuf>,
    /// The export of a common system, read with the mapping shipped for it: auth0-export,
    /// supabase, django, aspnet-identity, cognito, firebase, keycloak (`mapping show NAME`).
    #[arg(long, value_name = "PRESET")]
    pub from: Option<String>,
}

impl SourceArgs {
    /// The mapping to split with; `None` reads Auth0's formats as is.
    pub fn load(&self) -> Result<Option<Arc<Mapping>>> {
        if let Some(path) = &self.mapping {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mapping = Mapping::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            return Ok(Some(Arc::new(mapping)));
        }
        match &self.from {
            Some(name) => Ok(presets::mapping(name)?.map(Arc::new)),
            None => Ok(None),
        }
    }
}

#[derive(Subcommand)]
pub enum MappingCommand {
    /// Write a starting mapping from a CSV's header, guessing the obvious columns (email,
    /// email_verified, username, names, phone, password hash), for you to check and edit.
    Init {
        /// The CSV or TSV (optionally gzipped); only its header is read.
        file: PathBuf,
        /// Where to write it (default: FILE's name with .mapping.toml); never overwritten.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a preset's mapping, to copy and adjust.
    Show {
        /// auth0-export, supabase, django, aspnet-identity, cognito, firebase or keycloak.
        preset: String,
    },
    /// List the presets and what each reads.
    Presets,
}

pub fn mapping_command(command: MappingCommand) -> Result<ExitCode> {
    match command {
        MappingCommand::Init { file, out } => init(&file, out.as_deref()),
        MappingCommand::Show { preset } => {
            let found = presets::find(&preset)
                .ok_or_else(|| presets::PresetError::Unknown(preset.clone()))?;
            match found.toml {
                Some(text) => print!("{text}"),
                None => println!("# {}: {} (no mapping)", found.name, found.reads),
            }
            Ok(ExitCode::SUCCESS)
        }
        MappingCommand::Presets => {
            for preset in presets::PRESETS {
                println!("{:<16} {}", preset.name, preset.reads);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init(file: &Path, out: Option<&Path>) -> Result<ExitCode> {
    let input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let head = guess::read_head(input)?;
    let (format, header) = (head.format, head.header);
    if header.is_empty() {
        bail!("{} has no header row", file.display());
    }
    let out = match out {
        Some(p) => p.to_path_buf(),
        None => {
            let stem = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "users".into());
            let stem = stem
                .trim_end_matches(".gz")
                .trim_end_matches(".csv")
                .trim_end_matches(".tsv")
                .to_string();
            file.with_file_name(format!("{stem}.mapping.toml"))
        }
    };
    let text = guess::starting_mapping(format, &header, &head.first_row);
    let mut created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&out)
        .with_context(|| format!("creating {} (it is never overwritten)", out.display()))?;
    std::io::Write::write_all(&mut created, text.as_bytes())?;
    println!(
        "wrote {} from {} columns: check it, then split with --mapping {}",
        out.display(),
        header.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
