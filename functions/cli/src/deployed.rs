//! A deployed stack as the CLI sees it: the bucket and inbox named by its CloudFormation outputs
//! (or a bucket given outright), and the run folders the pipeline keeps there, read into the
//! core's `RunView`. AWS credentials and region come from the usual AWS environment.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_shell::ledger::{s3_ledger, S3Ledger};
use futures_util::{stream, StreamExt, TryStreamExt};
use import_core::jobs::ChunkReport;
use import_core::layout::{self, RunPath};
use import_core::ledger::SlotLease;
use import_core::manifest::RunManifest;
use import_core::options::is_connection_id;
use import_core::report::{RunProgress, RunReport};
use import_core::run_view::{RunFolder, RunView};

/// Chunk reports read for a run's measured job time (the most recent ones).
const RECENT_JOBS: usize = 16;
/// Runs read at once by `runs`.
const RUNS_IN_FLIGHT: usize = 8;

/// Where a stack keeps its runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub stack: Option<String>,
    pub bucket: String,
    pub inbox_prefix: String,
    /// The stack's `DefaultConnection`, when it set one (read from `DropLocation`).
    pub default_connection: Option<String>,
    /// The chunk size the stack's split uses (`MaxChunkBytes`), when the outputs say.
    pub max_chunk_bytes: Option<usize>,
}

impl Target {
    /// The target a stack's outputs describe (`BucketName`, `InboxPrefix`, `DropLocation`).
    pub fn from_outputs(stack: &str, outputs: &BTreeMap<String, String>) -> Result<Target> {
        let bucket = outputs.get("BucketName").cloned().ok_or_else(|| {
            anyhow!(
                "stack {stack} has no BucketName output: is it deployed from infra/template.yaml?"
            )
        })?;
        // Older stacks have no InboxPrefix output: DropLocation names it too.
        let location = outputs
            .get("DropLocation")
            .map(String::as_str)
            .unwrap_or("");
        let after_bucket = location
            .strip_prefix(&format!("s3://{bucket}/"))
            .unwrap_or("");
        let inbox_prefix = match outputs.get("InboxPrefix") {
            Some(p) => p.clone(),
            None => match after_bucket.split_once('/') {
                Some((first, _)) if !first.is_empty() => format!("{first}/"),
                _ => layout::DEFAULT_INBOX_PREFIX.to_string(),
            },
        };
        let default_connection = after_bucket
            .strip_prefix(&inbox_prefix)
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|c| is_connection_id(c))
            .map(str::to_string);
        Ok(Target {
            stack: Some(stack.to_string()),
            bucket,
            inbox_prefix,
            default_connection,
            max_chunk_bytes: outputs.get("MaxChunkBytes").and_then(|v| v.parse().ok()),
        })
    }

    /// `--stack NAME` or `--bucket B` as the operator should type them again.
    pub fn flag(&self) -> String {
        match &self.stack {
            Some(s) => format!("--stack {s}"),
            None => format!("--bucket {}", self.bucket),
        }
    }
}

/// A connected stack: its target, an S3 client and the ledger over its bucket.
pub struct Deployed {
    pub target: Target,
    pub s3: aws_sdk_s3::Client,
    pub ledger: S3Ledger,
}

/// Reads the stack's outputs (or takes the bucket) and connects to S3.
pub async fn connect(
    stack: Option<&str>,
    bucket: Option<&str>,
    inbox_prefix: Option<&str>,
) -> Result<Deployed> {
    let sdk = aws_config::load_from_env().await;
    let mut target = match (stack, bucket) {
        (Some(stack), _) => {
            let outputs = stack_outputs(&sdk, stack).await?;
            Target::from_outputs(stack, &outputs)?
        }
        (None, Some(bucket)) => Target {
            stack: None,
            bucket: bucket.to_string(),
            inbox_prefix: layout::DEFAULT_INBOX_PREFIX.to_string(),
            default_connection: None,
            max_chunk_bytes: None,
        },
        (None, None) => bail!(
            "name the deployment: --stack NAME (its outputs name the bucket) or --bucket BUCKET"
        ),
    };
    if let Some(p) = inbox_prefix {
        target.inbox_prefix = p.to_string();
    }
    let s3 = aws_shell::s3_client(&sdk);
    let ledger = s3_ledger(s3.clone(), &target.bucket);
    Ok(Deployed { target, s3, ledger })
}

/// `DescribeStacks` → the stack's outputs by key.
async fn stack_outputs(
    sdk: &aws_config::SdkConfig,
    stack: &str,
) -> Result<BTreeMap<String, String>> {
    let client = aws_sdk_cloudformation::Client::new(sdk);
    let answer = client
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            let detail = match &e {
                aws_sdk_cloudformation::error::SdkError::ServiceError(se) => {
                    use aws_sdk_cloudformation::error::ProvideErrorMetadata;
                    se.err().message().unwrap_or("no message").to_string()
                }
                other => other.to_string(),
            };
            anyhow!(
                "cannot read stack {stack} (region {}): {detail}; check AWS_REGION/AWS_PROFILE, or pass --bucket",
                sdk.region().map(|r| r.as_ref()).unwrap_or("not set")
            )
        })?;
    let found = answer
        .stacks()
        .first()
        .ok_or_else(|| anyhow!("stack {stack} not found"))?;
    Ok(found
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .collect())
}

/// One run as read from its folder.
pub struct RunRead {
    pub view: RunView,
    /// When split committed the run (the manifest's last-modified time, ms).
    pub started_at_ms: Option<i64>,
    pub report: Option<RunReport>,
    /// Any object exists under `runs/<id>/`.
    pub exists: bool,
}

impl Deployed {
    /// Every run id under `runs/` (S3's listing, a page at a time).
    pub async fn run_ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.target.bucket)
            .prefix(layout::RUNS_PREFIX)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                anyhow!(
                    "listing s3://{}/{}: {}",
                    self.target.bucket,
                    layout::RUNS_PREFIX,
                    aws_shell::describe(&e)
                )
            })?;
            for p in page.common_prefixes() {
                if let Some(id) = p.prefix().and_then(|k| layout::run_id_of_key(k)) {
                    ids.push(id.to_string());
                }
            }
        }
        Ok(ids)
    }

    /// Tenant job slots the pipeline uses (`slots/` leases) and how many are held now.
    pub async fn slots(&self) -> Result<(u32, u32)> {
        let keys = self.list(layout::SLOTS_PREFIX).await?;
        let mut held = 0;
        for (key, _) in &keys {
            if let Some(lease) = self
                .ledger
                .get::<SlotLease>(key)
                .await
                .map_err(|e| anyhow!(e))?
            {
                if matches!(lease.value, SlotLease::Held { .. }) {
                    held += 1;
                }
            }
        }
        Ok((u32::try_from(keys.len()).unwrap_or(u32::MAX), held))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>> {
        self.ledger.list(prefix).await.map_err(|e| anyhow!(e))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        Ok(self
            .ledger
            .get::<T>(key)
            .await
            .map_err(|e| anyhow!(e))?
            .map(|v| v.value))
    }

    /// Reads a run's folder. `recent_jobs` also reads its latest chunk reports for the ETA.
    pub async fn read_run(&self, run_id: &str, recent_jobs: bool) -> Result<RunRead> {
        let run = RunPath::new(run_id);
        let manifest_listing = self.list(&run.manifest()).await?;
        let started_at_ms = manifest_listing.first().map(|(_, t)| *t);
        let manifest: Option<RunManifest> = self.get(&run.manifest()).await?;
        let report: Option<RunReport> = self.get(&run.report_json()).await?;
        let mut folder = RunFolder {
            manifest: manifest.as_ref(),
            report: report.as_ref(),
            ..RunFolder::default()
        };
        let progress: Option<RunProgress>;
        let mut times = Vec::new();
        let mut exists = manifest.is_some() || report.is_some();
        if report.is_none() {
            progress = self.get(&run.status()).await?;
            let jobs = self.list(&run.jobs()).await?;
            let reports = self.list(&run.reports()).await?;
            folder.jobs_claimed = jobs.len();
            folder.chunks_reported = reports.len();
            folder.submit_failed = self
                .ledger
                .get_bytes(&run.submit_failed())
                .await
                .map_err(|e| anyhow!(e))?
                .is_some();
            if recent_jobs && !reports.is_empty() {
                let latest: Vec<String> = reports
                    .iter()
                    .rev()
                    .take(RECENT_JOBS)
                    .map(|(k, _)| k.clone())
                    .collect();
                let read: Vec<Option<ChunkReport>> = stream::iter(&latest)
                    .map(|k| self.get::<ChunkReport>(k))
                    .buffered(RECENT_JOBS)
                    .try_collect()
                    .await?;
                times = read
                    .into_iter()
                    .flatten()
                    .filter(|r| r.submitted_at_ms > 0 && r.finished_at_ms > r.submitted_at_ms)
                    .map(|r| Duration::from_millis(r.finished_at_ms - r.submitted_at_ms))
                    .collect();
            }
            if !exists {
                exists = !self.list(run.prefix()).await?.is_empty();
            }
            folder.slots = self.list(layout::SLOTS_PREFIX).await?.len() as u32;
        } else {
            progress = None;
        }
        folder.progress = progress.as_ref();
        folder.recent_job_times = &times;
        let view = RunView::of(run_id, &folder);
        Ok(RunRead {
            view,
            started_at_ms,
            report,
            exists,
        })
    }

    /// Every run, newest first.
    pub async fn read_runs(&self) -> Result<Vec<RunRead>> {
        let ids = self.run_ids().await?;
        let mut runs: Vec<RunRead> = stream::iter(&ids)
            .map(|id| self.read_run(id, false))
            .buffer_unordered(RUNS_IN_FLIGHT)
            .try_collect()
            .await
            .context("reading the runs")?;
        runs.sort_by(|a, b| {
            b.started_at_ms
                .unwrap_or(i64::MAX)
                .cmp(&a.started_at_ms.unwrap_or(i64::MAX))
                .then_with(|| a.view.run_id.cmp(&b.view.run_id))
        });
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_target_comes_from_the_stack_outputs() {
        let t = Target::from_outputs(
            "mig",
            &outputs(&[
                ("BucketName", "mig-drops-1"),
                ("InboxPrefix", "drops/"),
                (
                    "DropLocation",
                    "s3://mig-drops-1/drops/con_AbCdEf0123456789/",
                ),
                ("MaxChunkBytes", "250000"),
            ]),
        )
        .unwrap();
        assert_eq!(t.bucket, "mig-drops-1");
        assert_eq!(t.max_chunk_bytes, Some(250_000));
        assert_eq!(t.inbox_prefix, "drops/");
        assert_eq!(
            t.default_connection.as_deref(),
            Some("con_AbCdEf0123456789")
        );
        assert_eq!(t.flag(), "--stack mig");

        // A stack without InboxPrefix or DefaultConnection (an older template).
        let t = Target::from_outputs(
            "old",
            &outputs(&[
                ("BucketName", "b"),
                ("DropLocation", "s3://b/inbox/<connection_id>/"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (t.inbox_prefix.as_str(), t.default_connection),
            ("inbox/", None)
        );

        let err = Target::from_outputs("x", &outputs(&[])).unwrap_err();
        assert!(err.to_string().contains("no BucketName output"));
    }
}
