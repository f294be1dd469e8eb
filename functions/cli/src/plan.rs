//! `auth0-s3-import plan FILE --connection-id …`: everything a migration would meet, with no job
//! created. Validates and splits into a temporary folder, reads the connection and the token's
//! scopes from the tenant, counts the job slots the stack's ledger shows busy, and prints the
//! table (`preflight::PlanFacts`) a person pastes into a change ticket.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use auth0_api::ManagementApi;
use import_core::canary::Canaries;
use import_core::input::{Compression, Layout};
use import_core::manifest::Flavor;
use import_core::options::{is_connection_id, DropOptions};
use import_core::pace::TENANT_SLOTS;
use import_core::preflight::{PlanFacts, Slots};
use import_core::split::DEFAULT_MAX_CHUNK_BYTES;

use crate::folder::FolderSink;

/// How long the tenant reads may take, rate-limit waits included.
const TENANT_READS: Duration = Duration::from_secs(120);

pub struct PlanArgs<'a> {
    pub file: &'a Path,
    pub credentials: Option<&'a Path>,
    pub connection_id: &'a str,
    pub upsert: bool,
    /// `None`: the stack's `MaxChunkBytes` with --stack, else the default.
    pub max_chunk_bytes: Option<usize>,
    pub stack: Option<&'a str>,
    pub bucket: Option<&'a str>,
}

pub fn plan(args: PlanArgs<'_>) -> Result<ExitCode> {
    if !is_connection_id(args.connection_id) {
        bail!("--connection-id {:?} is not a connection id: con_ followed by 16 letters or digits (the id, not the name)", args.connection_id);
    }
    let credentials = crate::credentials::load(args.credentials)?;
    let api = ManagementApi::new(credentials).context("building the HTTP client")?;

    let runtime = crate::runtime()?;
    // The stack, first: its chunk size decides how the file splits.
    let deployed = match (args.stack, args.bucket) {
        (None, None) => None,
        (stack, bucket) => Some(runtime.block_on(crate::deployed::connect(stack, bucket, None))?),
    };
    let max_chunk_bytes = args
        .max_chunk_bytes
        .or(deployed.as_ref().and_then(|d| d.target.max_chunk_bytes))
        .unwrap_or(DEFAULT_MAX_CHUNK_BYTES);

    // Split exactly as the pipeline would, into a folder that is deleted on return.
    let scratch = tempfile::tempdir().context("making a temporary folder")?;
    let run_id = crate::local_run_id(args.file)?;
    let mut sink = FolderSink::create(scratch.path()).map_err(anyhow::Error::msg)?;
    let options = DropOptions {
        connection_id: args.connection_id.to_string(),
        upsert: args.upsert,
        send_completion_email: false,
        canary_warn: false,
        source: None,
    };
    // Canaries are the pipeline's check; a plan reports what the file holds.
    let manifest = crate::run_split(
        args.file,
        &run_id,
        max_chunk_bytes,
        Some(options),
        Canaries::default(),
        None,
        &mut sink,
    )?;

    let (connection, scopes, slots) = runtime.block_on(async {
        let deadline = Instant::now() + TENANT_READS;
        let scopes = api.granted_scopes(deadline).await?;
        let connection = api.connection_verdict(args.connection_id, deadline).await?;
        let busy = match &deployed {
            Some(d) => Some(d.slots().await?.1),
            None => None,
        };
        Ok::<_, anyhow::Error>((connection, scopes, busy))
    })?;

    let size = std::fs::metadata(args.file).map(|m| m.len()).unwrap_or(0);
    let format = manifest
        .format
        .as_ref()
        .map(|f| {
            let mut s = match f.layout {
                Layout::JsonArray => "JSON array".to_string(),
                Layout::Ndjson => "NDJSON".to_string(),
                Layout::Csv => "CSV".to_string(),
            };
            if f.compression == Compression::Gzip {
                s.push_str(", gzip");
            }
            if f.flavor == Flavor::Auth0Export {
                s.push_str(", Auth0 export");
            }
            s
        })
        .unwrap_or_else(|| "format not recognised".into());
    let facts = PlanFacts {
        file: args
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| args.file.display().to_string()),
        input: format!("{size} bytes, {format}"),
        users_in: manifest.users_in,
        users_accepted: manifest.users_accepted,
        users_rejected: manifest.users_rejected,
        rejects_by_code: manifest.rejects_by_code.clone(),
        chunks: manifest.chunks.len() as u64,
        max_chunk_bytes: max_chunk_bytes as u64,
        mean_chunk_fill: manifest.mean_chunk_fill,
        connection_id: args.connection_id.to_string(),
        upsert: args.upsert,
        connection,
        scopes,
        slots: Slots {
            total: TENANT_SLOTS,
            busy: slots,
        },
        failure: manifest.failure.as_ref().map(|f| f.reason.clone()),
    };
    print!("{}", facts.table());
    Ok(if !facts.blockers().is_empty() {
        ExitCode::FAILURE
    } else if facts.users_rejected > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
