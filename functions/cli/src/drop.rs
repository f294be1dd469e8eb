//! `auth0-s3-import drop FILE --stack NAME`: uploads an export to the key that carries its
//! options (`options::drop_key`), then says which run it starts and how to follow it. The run id
//! is the one split derives: `layout::run_id(key, tag)`, the tag being the upload's version id
//! (the bucket is versioned) or, without one, its ETag.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use import_core::layout::{self, RunPath};
use import_core::options::{drop_key, DropOptions};
use indicatif::ProgressBar;
use serde::Serialize;

use crate::deployed::{self, Deployed};

/// Files above this go up in parts: a broken connection costs one part, not the whole upload,
/// and S3's single PUT stops at 5 GB.
const MULTIPART_ABOVE: u64 = 64 * 1024 * 1024;
/// 10,000 parts (S3's limit) of this size is 160 GiB.
const PART_BYTES: u64 = 16 * 1024 * 1024;

pub struct DropArgs<'a> {
    pub file: &'a Path,
    pub stack: Option<&'a str>,
    pub bucket: Option<&'a str>,
    pub inbox_prefix: Option<&'a str>,
    pub connection_id: Option<&'a str>,
    pub upsert: bool,
    pub send_completion_email: bool,
    /// A failed or missing canary only warns (`canary=warn/` in the key).
    pub canary_warn: bool,
    pub name: Option<&'a str>,
    pub json: bool,
}

/// What `drop --json` prints.
#[derive(Debug, Serialize)]
struct Dropped {
    run_id: String,
    bucket: String,
    key: String,
    version_id: Option<String>,
    etag: String,
    bytes: u64,
}

pub fn drop(args: DropArgs<'_>) -> Result<ExitCode> {
    let runtime = crate::runtime()?;
    runtime.block_on(run(args))
}

async fn run(args: DropArgs<'_>) -> Result<ExitCode> {
    let size = std::fs::metadata(args.file)
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    if size == 0 {
        bail!(
            "{} is empty: there is nothing to import",
            args.file.display()
        );
    }
    let d = deployed::connect(args.stack, args.bucket, args.inbox_prefix).await?;
    let connection_id = match (args.connection_id, &d.target.default_connection) {
        (Some(c), _) => c.to_string(),
        (None, Some(c)) => c.clone(),
        (None, None) => bail!(
            "which connection? pass --connection-id con_… (the stack sets no DefaultConnection)"
        ),
    };
    let name = match args.name {
        Some(n) => n.to_string(),
        None => args
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| anyhow!("{} has no file name: pass --name", args.file.display()))?,
    };
    let options = DropOptions {
        connection_id,
        upsert: args.upsert,
        send_completion_email: args.send_completion_email,
        canary_warn: args.canary_warn,
        source: None,
    };
    let key = drop_key(&d.target.inbox_prefix, &options, &name)?;
    let bar = crate::bytes_bar(size, "uploading");
    let (version_id, etag) = if size > MULTIPART_ABOVE {
        upload_in_parts(&d, &key, args.file, size, &bar).await?
    } else {
        upload_whole(&d, &key, args.file).await?
    };
    bar.finish_and_clear();
    // The bucket is versioned: the version names this upload, as split's run id does.
    let tag = layout::object_version(version_id.as_deref(), Some(&etag))
        .ok_or_else(|| anyhow!("S3 stored {key} without a version id or an ETag"))?;
    let run_id = layout::run_id(&key, tag);
    let out = Dropped {
        run_id,
        bucket: d.target.bucket.clone(),
        key,
        version_id,
        etag,
        bytes: size,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let flag = d.target.flag();
    println!(
        "uploaded   {} ({size} bytes) to s3://{}/{}",
        args.file.display(),
        out.bucket,
        out.key
    );
    println!(
        "options    connection {}, upsert {}, completion e-mails {}",
        options.connection_id, options.upsert, options.send_completion_email
    );
    if let Some(v) = &out.version_id {
        println!("version    {v}");
    }
    println!("run id     {}", out.run_id);
    println!(
        "watch      auth0-s3-import status {} {flag} --watch",
        out.run_id
    );
    println!("list runs  auth0-s3-import runs {flag}");
    println!(
        "reports    s3://{}/{}{{report.html,report.csv,report.json}} once the run is final",
        out.bucket,
        RunPath::new(&out.run_id).prefix()
    );
    Ok(ExitCode::SUCCESS)
}

fn failed<E>(what: &str, e: &aws_sdk_s3::error::SdkError<E>) -> anyhow::Error
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    anyhow!("{what}: {}", aws_shell::describe(e))
}

async fn upload_whole(d: &Deployed, key: &str, file: &Path) -> Result<(Option<String>, String)> {
    let body = ByteStream::from_path(file)
        .await
        .with_context(|| format!("reading {}", file.display()))?;
    let out =
        d.s3.put_object()
            .bucket(&d.target.bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(|e| failed(&format!("PUT s3://{}/{key}", d.target.bucket), &e))?;
    Ok((
        out.version_id().map(str::to_string),
        out.e_tag().unwrap_or_default().to_string(),
    ))
}

async fn upload_in_parts(
    d: &Deployed,
    key: &str,
    file: &Path,
    size: u64,
    bar: &ProgressBar,
) -> Result<(Option<String>, String)> {
    let bucket = &d.target.bucket;
    let created =
        d.s3.create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| failed(&format!("starting the upload of s3://{bucket}/{key}"), &e))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| anyhow!("S3 started the upload without an upload id"))?
        .to_string();
    let result = async {
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < size {
            let length = PART_BYTES.min(size - offset);
            let body = ByteStream::read_from()
                .path(file)
                .offset(offset)
                .length(Length::Exact(length))
                .build()
                .await
                .with_context(|| format!("reading {}", file.display()))?;
            let part =
                d.s3.upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| {
                        failed(
                            &format!("uploading part {number} of s3://{bucket}/{key}"),
                            &e,
                        )
                    })?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_string))
                    .build(),
            );
            offset += length;
            number += 1;
            bar.set_position(offset);
        }
        let done =
            d.s3.complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| failed(&format!("completing s3://{bucket}/{key}"), &e))?;
        Ok::<_, anyhow::Error>((
            done.version_id().map(str::to_string),
            done.e_tag().unwrap_or_default().to_string(),
        ))
    }
    .await;
    if result.is_err() {
        // Leave no half upload behind (the bucket's lifecycle rule would, after a day).
        let _ =
            d.s3.abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
    }
    result
}
