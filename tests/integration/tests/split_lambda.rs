//! The split Lambda's handler against moto's real S3 server on loopback: real-shaped events in,
//! the run folder read back out of the bucket.

use std::collections::BTreeMap;
use std::io::Write;

use aws_lambda_events::event::s3::S3Event;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use import_core::layout;
use import_core::manifest::{RejectEntry, RunManifest, RunStatus};
use integration::{s3_put_event, MotoServer};
use serde_json::{json, Value};
use split::{handle, RecordOutcome, SplitConfig};

const BUCKET: &str = "drops";

struct World {
    _moto: MotoServer,
    client: Client,
    config: SplitConfig,
}

async fn world() -> World {
    let moto = MotoServer::start().expect("moto server");
    let sdk = moto.sdk_config().await;
    let client = aws_shell::s3_client(&sdk);
    client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let scratch = std::env::temp_dir();
    World {
        _moto: moto,
        client,
        config: SplitConfig {
            canary_secret: None,
            run_topic: None,
            inbox_prefix: "inbox/".into(),
            max_chunk_bytes: 4096,
            scratch_dir: Some(scratch),
            budget: Default::default(),
        },
    }
}

impl World {
    /// Uploads an object and returns the event S3 would send for it.
    async fn drop_object(&self, key: &str, body: Vec<u8>) -> S3Event {
        let size = body.len() as u64;
        let put = self
            .client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("put");
        let etag = put
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string();
        serde_json::from_value(s3_put_event(BUCKET, key, size, &etag)).expect("event shape")
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let out = self
            .client
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(out.body.collect().await.ok()?.into_bytes().to_vec())
    }

    /// An object's tags, as S3 reports them.
    async fn tags(&self, key: &str) -> Vec<(String, String)> {
        let out = self
            .client
            .get_object_tagging()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .expect("tagging");
        out.tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect()
    }

    /// Every key under a prefix with its ETag.
    async fn list(&self, prefix: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for o in page.expect("list").contents() {
                out.insert(
                    o.key().unwrap_or_default().to_string(),
                    o.e_tag().unwrap_or_default().to_string(),
                );
            }
        }
        out
    }

    async fn manifest(&self, run_id: &str) -> RunManifest {
        let key = format!("{}{}", layout::run_prefix(run_id), layout::MANIFEST);
        serde_json::from_slice(&self.get(&key).await.expect("manifest exists")).expect("manifest")
    }

    async fn rejects(&self, run_id: &str) -> Vec<RejectEntry> {
        let manifest = self.manifest(run_id).await;
        let key = format!(
            "{}{}",
            layout::run_prefix(run_id),
            manifest.rejects_key.expect("a split run names its rejects")
        );
        let bytes = self.get(&key).await.expect("rejects exist");
        String::from_utf8(bytes)
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("reject line"))
            .collect()
    }
}

/// A fresh invocation (its own request id), as each S3 event delivery is.
fn invocation() -> split::Invocation {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    split::Invocation {
        request_id: format!("split-test-{n}"),
        deadline_ms: Some(auth0_api::unix_now_ms() + 60_000),
    }
}

fn users(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "email": format!("user{i}@example.com"),
                "email_verified": true,
                "given_name": "Zoë",
                "family_name": "Ñúñez",
                "user_id": format!("legacy-{i}"),
                "password_hash": "$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
                "app_metadata": {"plan": "gold", "seats": i}
            })
        })
        .collect()
}

fn split_outcome(outcomes: &[RecordOutcome]) -> (String, RunStatus, u64, u64, u64) {
    match &outcomes[0] {
        RecordOutcome::Split {
            run_id,
            status,
            users_in,
            users_accepted,
            users_rejected,
            ..
        } => (
            run_id.clone(),
            *status,
            *users_in,
            *users_accepted,
            *users_rejected,
        ),
        other => panic!("expected a split, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_is_split_into_run_folder_and_duplicate_event_adds_nothing() {
    let w = world().await;
    let mut records = users(60);
    // Two bad records: a schema violation and an in-file duplicate (case-insensitive email).
    records[10] = json!({"email": "not-an-email", "user_id": "legacy-bad"});
    records[40]["email"] = json!("USER3@example.com");
    let body = serde_json::to_vec_pretty(&records).unwrap();
    // A key with a space, a plus and non-ASCII: S3 URL-encodes it in the event.
    let key = "inbox/con_ABCDEFGHIJKLMNOP/my users+2024 é.json";
    let event = w.drop_object(key, body).await;

    let response = handle(&w.client, &w.config, &invocation(), event.clone())
        .await
        .expect("handled");
    let (run_id, status, users_in, accepted, rejected) = split_outcome(&response.records);
    assert_eq!(status, RunStatus::Split);
    assert_eq!((users_in, accepted, rejected), (60, 58, 2));

    let manifest = w.manifest(&run_id).await;
    assert!(manifest.conservation_holds);
    assert!(manifest.chunks.len() > 1, "4 KB chunks should need several");
    // Every chunk is listed with its real size, within the limit, and together they hold
    // exactly the accepted users in input order.
    let mut seen = Vec::new();
    for c in &manifest.chunks {
        let bytes = w
            .get(&format!("{}{}", layout::run_prefix(&run_id), c.key))
            .await
            .expect("chunk exists");
        assert_eq!(bytes.len() as u64, c.bytes);
        assert!(bytes.len() <= 4096);
        let arr: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(arr.len() as u32, c.users);
        seen.extend(arr);
        // Chunks hold password hashes: tagged from their first byte for the bucket's age rule.
        let (k, v) = layout::IN_FLIGHT_TAG;
        assert_eq!(
            w.tags(&format!("{}{}", layout::run_prefix(&run_id), c.key))
                .await,
            vec![(k.to_string(), v.to_string())]
        );
    }
    for key in [layout::REJECTS, layout::MANIFEST] {
        let key = w
            .list(&layout::run_prefix(&run_id))
            .await
            .into_keys()
            .find(|k| k.ends_with(key))
            .expect(key);
        assert_eq!(w.tags(&key).await, vec![], "{key} holds no hash: untagged");
    }
    let expected: Vec<Value> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 10 && *i != 40)
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(seen, expected);

    let rejects = w.rejects(&run_id).await;
    let by_index: BTreeMap<u64, &RejectEntry> = rejects.iter().map(|r| (r.index, r)).collect();
    assert_eq!(by_index.keys().copied().collect::<Vec<_>>(), vec![10, 40]);
    assert_eq!(by_index[&40].reasons[0].code, "DUPLICATED_USER");
    assert!(by_index[&40].reasons[0].message.contains("record 3"));
    // Hash values never reach the report.
    let text = serde_json::to_string(&rejects).unwrap();
    assert!(!text.contains("$2b$10$abc"), "{text}");

    // The same event again (S3 delivers at least once): nothing is added or rewritten.
    let before = w.list("runs/").await;
    let again = handle(&w.client, &w.config, &invocation(), event)
        .await
        .expect("handled");
    assert!(
        matches!(&again.records[0], RecordOutcome::AlreadySplit { run_id: r, .. } if *r == run_id)
    );
    assert_eq!(w.list("runs/").await, before);
}

/// Duplicates spread through a drop thin most of its chunks, and each is read back and
/// rewritten in S3 with reads running ahead of the rewrites: the run folder is still byte for byte
/// the one split writes in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_thinned_by_duplicates_are_rewritten_in_s3_as_in_memory() {
    let w = world().await;
    let mut records = users(400);
    for i in (10..400).step_by(10) {
        records[i]["email"] = json!(format!("USER{}@example.com", i - 7));
    }
    let body = serde_json::to_vec(&records).unwrap();
    let event = w
        .drop_object("inbox/con_ABCDEFGHIJKLMNOP/dups.json", body.clone())
        .await;
    let response = handle(&w.client, &w.config, &invocation(), event)
        .await
        .expect("handled");
    let (run_id, status, _, accepted, rejected) = split_outcome(&response.records);
    assert_eq!(status, RunStatus::Split);
    assert_eq!((accepted, rejected), (361, 39));

    // The same attempt folder as the Lambda's, so the two runs' keys compare one to one.
    let claim: import_core::ledger::SplitClaim = serde_json::from_slice(
        &w.get(&layout::RunPath::new(&run_id).split_claim())
            .await
            .expect("split claim"),
    )
    .unwrap();
    let mut memory = import_core::split::MemorySink::default();
    let options = import_core::split::SplitOptions {
        max_chunk_bytes: w.config.max_chunk_bytes,
        attempt: Some(claim.attempt.clone()),
        ..Default::default()
    };
    let source = import_core::manifest::Source::Local {
        path: "dups.json".into(),
        size: None,
    };
    let outcome = import_core::split::split(
        std::io::Cursor::new(body),
        source,
        &run_id,
        &options,
        &mut memory,
    )
    .expect("split in memory");
    let manifest = w.manifest(&run_id).await;
    assert_eq!(manifest.chunks, outcome.manifest.chunks);
    assert!(
        manifest.chunks.len() > 20,
        "{} chunks",
        manifest.chunks.len()
    );
    let prefix = layout::run_prefix(&run_id);
    for (key, bytes) in &memory.objects {
        if key == layout::MANIFEST {
            continue;
        }
        let stored = w
            .get(&format!("{prefix}{key}"))
            .await
            .expect("object exists");
        assert!(stored == *bytes, "{key} differs from the in-memory run");
    }
    // The Lambda's run folder holds the same objects, and its split claim.
    let listed = w.list(&prefix).await;
    assert_eq!(listed.len(), memory.objects.len() + 1, "{listed:?}");
    assert!(listed.contains_key(&layout::RunPath::new(&run_id).split_claim()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_outside_the_inbox_and_other_events_are_ignored() {
    let w = world().await;
    let event = w
        .drop_object("exports/users.json", serde_json::to_vec(&users(2)).unwrap())
        .await;
    let response = handle(&w.client, &w.config, &invocation(), event)
        .await
        .expect("handled");
    assert!(matches!(
        &response.records[0],
        RecordOutcome::Ignored { .. }
    ));
    assert!(w.list("runs/").await.is_empty());

    let mut removed = w
        .drop_object("inbox/users.json", serde_json::to_vec(&users(2)).unwrap())
        .await;
    removed.records[0].event_name = Some("ObjectRemoved:Delete".into());
    let response = handle(&w.client, &w.config, &invocation(), removed)
        .await
        .expect("handled");
    assert!(matches!(
        &response.records[0],
        RecordOutcome::Ignored { .. }
    ));
    assert!(w.list("runs/").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzipped_auth0_export_with_a_bad_line_is_transformed() {
    let w = world().await;
    let mut ndjson = Vec::new();
    for i in 0..30 {
        if i == 7 {
            ndjson.extend_from_slice(b"{\"email\": \"broken@example.com\", \n");
            continue;
        }
        let rec = json!({
            "user_id": format!("auth0|{i:024}"),
            "email": format!("u{i}@example.com"),
            "email_verified": true,
            "created_at": "2024-01-01T00:00:00.000Z",
            "logins_count": 3,
            "identities": [{"provider": "auth0", "user_id": format!("{i:024}")}],
        });
        ndjson.extend_from_slice(serde_json::to_string(&rec).unwrap().as_bytes());
        ndjson.extend_from_slice(b"\r\n");
    }
    let mut gz = flate2_encode(&ndjson);
    let event = w
        .drop_object(
            "inbox/con_AbCdEf0123456789/upsert=true/tenant-export.json.gz",
            std::mem::take(&mut gz),
        )
        .await;
    let response = handle(&w.client, &w.config, &invocation(), event)
        .await
        .expect("handled");
    let (run_id, status, users_in, accepted, rejected) = split_outcome(&response.records);
    assert_eq!(status, RunStatus::Split);
    assert_eq!((users_in, accepted, rejected), (30, 29, 1));
    let m = w.manifest(&run_id).await;
    let options = m.options.as_ref().expect("options recorded for submit");
    assert_eq!(options.connection_id, "con_AbCdEf0123456789");
    assert!(options.upsert && !options.send_completion_email);
    assert_eq!(m.transformations.user_id_prefix_stripped, 29);
    assert_eq!(
        m.transformations.fields_dropped.get("identities"),
        Some(&29)
    );
    let rejects = w.rejects(&run_id).await;
    assert_eq!(rejects[0].index, 7);
    assert_eq!(rejects[0].line, 8);
    assert_eq!(rejects[0].reasons[0].code, "INVALID_JSON");
    let first_chunk = w
        .get(&format!(
            "{}{}",
            layout::run_prefix(&run_id),
            m.chunks[0].key
        ))
        .await
        .unwrap();
    let arr: Vec<Value> = serde_json::from_slice(&first_chunk).unwrap();
    assert_eq!(arr[0]["user_id"], json!(format!("{:024}", 0)));
    assert!(arr[0].get("identities").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_json_array_publishes_no_chunks() {
    let w = world().await;
    let mut body = serde_json::to_vec_pretty(&users(80)).unwrap();
    body.truncate(body.len() * 3 / 4);
    let event = w
        .drop_object("inbox/con_AbCdEf0123456789/truncated.json", body)
        .await;
    let response = handle(&w.client, &w.config, &invocation(), event)
        .await
        .expect("handled");
    let (run_id, status, ..) = split_outcome(&response.records);
    assert_eq!(status, RunStatus::Failed);
    let m = w.manifest(&run_id).await;
    let failure = m.failure.expect("failure recorded");
    assert!(failure.reason.contains("truncated"), "{}", failure.reason);
    assert!(failure.line.is_some() && failure.byte_offset.is_some());
    let published = w.list(&layout::RunPath::new(&run_id).attempts()).await;
    assert!(published.is_empty(), "{published:?}");
}

/// Records that are all refused (`email` is a number), each carrying 2 KB of metadata.
fn refused_users(n: usize) -> Vec<Value> {
    let pad = "y".repeat(2048);
    (0..n)
        .map(|i| json!({"email": i, "user_metadata": {"pad": pad}}))
        .collect()
}

/// Rejects larger than a part go to S3 by multipart upload as they are found, so a drop of bad
/// records needs neither memory nor /tmp for them; moto refuses parts under S3's 5 MiB minimum,
/// as S3 does. A broken drop leaves no upload behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_beyond_a_part_are_uploaded_in_parts_and_abandoned_when_the_run_fails() {
    let w = world().await;
    let users = refused_users(9_000);
    let body = serde_json::to_vec(&users).unwrap();
    let event = w
        .drop_object("inbox/con_AbCdEf0123456789/refused.json", body.clone())
        .await;
    let response = handle(&w.client, &w.config, &invocation(), event)
        .await
        .expect("handled");
    let (run_id, status, users_in, accepted, rejected) = split_outcome(&response.records);
    assert_eq!(status, RunStatus::Split);
    assert_eq!((users_in, accepted, rejected), (9_000, 0, 9_000));
    let rejects = w.rejects(&run_id).await;
    let indexes: Vec<u64> = rejects.iter().map(|r| r.index).collect();
    assert_eq!(indexes, (0..9_000).collect::<Vec<u64>>());
    let size: usize = rejects
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap().len() + 1)
        .sum();
    assert!(
        size > 2 * import_core::split::MIN_PART_BYTES,
        "{size} bytes"
    );
    // A multipart object's ETag ends in its number of parts.
    let rejects_key = format!(
        "{}{}",
        layout::run_prefix(&run_id),
        w.manifest(&run_id).await.rejects_key.expect("rejects key")
    );
    let etag = w
        .list(&rejects_key)
        .await
        .remove(&rejects_key)
        .expect("rejects listed");
    let parts: usize = etag
        .trim_matches('"')
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0);
    assert!(parts >= 2, "ETag {etag}");

    // Cut short: a failed run, no rejects published, no upload left open.
    let event = w
        .drop_object(
            "inbox/con_AbCdEf0123456789/refused-cut.json",
            body[..body.len() - 10].to_vec(),
        )
        .await;
    let response = handle(&w.client, &w.config, &invocation(), event)
        .await
        .expect("handled");
    let (run_id, status, ..) = split_outcome(&response.records);
    assert_eq!(status, RunStatus::Failed);
    let published = w.list(&layout::run_prefix(&run_id)).await;
    let run = layout::RunPath::new(&run_id);
    assert_eq!(
        published.keys().cloned().collect::<Vec<_>>(),
        vec![run.manifest(), run.split_claim()]
    );
    let open = w
        .client
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list uploads");
    assert!(open.uploads().is_empty(), "{:?}", open.uploads());
}

fn flate2_encode(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_with_malformed_options_is_refused_in_its_run_folder() {
    let w = world().await;
    let key = "inbox/con_AbCdEf0123456789/upsert=yes/users.json";
    let event = w
        .drop_object(key, serde_json::to_vec(&users(3)).unwrap())
        .await;
    let response = handle(&w.client, &w.config, &invocation(), event)
        .await
        .expect("handled");
    let (run_id, status, users_in, ..) = split_outcome(&response.records);
    assert_eq!((status, users_in), (RunStatus::Failed, 0));
    let m = w.manifest(&run_id).await;
    let reason = m.failure.expect("failure").reason;
    assert!(
        reason.contains("upsert=yes") && reason.contains("not an option"),
        "{reason}"
    );
    assert!(m.chunks.is_empty() && m.options.is_none());
    let folder = w.list(&layout::run_prefix(&run_id)).await;
    let run = layout::RunPath::new(&run_id);
    assert_eq!(
        folder.keys().cloned().collect::<Vec<_>>(),
        vec![run.manifest(), run.split_claim()],
        "only the manifest (and who split it)"
    );
}

/// A drop bigger than one invocation can split before its deadline is refused from the size in
/// its event, before a byte is read: a failed run that says what to do, not a timeout halfway
/// (and Lambda's two retries of it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_too_big_for_one_invocation_is_refused_before_it_is_read() {
    let mut w = world().await;
    let body = serde_json::to_vec(&users(40)).unwrap();
    w.config.budget = import_core::drop_budget::DropBudget {
        max_bytes: body.len() as u64 - 1,
        max_gzip_bytes: 100,
    };
    let event = w
        .drop_object("inbox/con_AbCdEf0123456789/users.json", body)
        .await;
    let response = handle(&w.client, &w.config, &invocation(), event)
        .await
        .expect("handled, not sent back for a retry");
    let (run_id, status, users_in, ..) = split_outcome(&response.records);
    assert_eq!((status, users_in), (RunStatus::Failed, 0));
    let reason = w.manifest(&run_id).await.failure.expect("failure").reason;
    assert!(
        reason.contains("nothing was read") && reason.contains("into 2 or more files"),
        "{reason}"
    );
    let run = layout::RunPath::new(&run_id);
    assert_eq!(
        w.list(&layout::run_prefix(&run_id))
            .await
            .into_keys()
            .collect::<Vec<_>>(),
        vec![run.manifest(), run.split_claim()],
        "no chunk, no rejects: only the manifest (and who split it)"
    );

    // Gzipped drops are judged by their stored size against their own limit.
    let gz = flate2_encode(&serde_json::to_vec(&users(40)).unwrap());
    let event = w
        .drop_object("inbox/con_AbCdEf0123456789/users.json.gz", gz)
        .await;
    let response = handle(&w.client, &w.config, &invocation(), event)
        .await
        .expect("handled");
    let (run_id, status, ..) = split_outcome(&response.records);
    assert_eq!(status, RunStatus::Failed);
    let reason = w.manifest(&run_id).await.failure.expect("failure").reason;
    assert!(reason.starts_with("a gzipped drop of"), "{reason}");
}

/// A CSV whose key names a mapping in the bucket (`mapping=<name>/`), or a preset (`from=`).
const CRM_MAPPING: &str = r#"
version = 1
format = "csv"
[[field]]
from = "Mail"
to = "email"
lowercase = true
[[field]]
from = "Ok"
to = "email_verified"
type = "bool"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_drop_is_read_through_the_mapping_its_key_names() {
    let w = world().await;
    w.client
        .put_object()
        .bucket(BUCKET)
        .key("mappings/crm.toml")
        .body(ByteStream::from(CRM_MAPPING.as_bytes().to_vec()))
        .send()
        .await
        .expect("put mapping");
    let csv = "Mail,Ok\nA@x.io,yes\nb@x.io,perhaps\n";
    let key = "inbox/con_AbCdEf0123456789/mapping=crm/users.csv";
    let event = w.drop_object(key, csv.as_bytes().to_vec()).await;
    let response = handle(&w.client, &w.config, &invocation(), event)
        .await
        .expect("handled");
    let (run_id, status, users_in, accepted, rejected) = split_outcome(&response.records);
    assert_eq!(
        (status, users_in, accepted, rejected),
        (RunStatus::Split, 2, 1, 1)
    );
    let m = w.manifest(&run_id).await;
    assert_eq!(m.transformations.imported_without_password, 1);
    let rejects = w.rejects(&run_id).await;
    assert!(rejects[0].reasons[0]
        .message
        .starts_with("line 3, column \"Ok\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_naming_a_missing_or_broken_mapping_fails_saying_why() {
    let w = world().await;
    for (key, mapping, expected) in [
        (
            "inbox/con_AbCdEf0123456789/mapping=absent/u.csv",
            None,
            "the bucket has no mappings/absent.toml",
        ),
        (
            "inbox/con_AbCdEf0123456789/mapping=broken/u.csv",
            Some("version = 1\nformat = \"csv\"\n"),
            "mappings/broken.toml: no entry maps to email",
        ),
        (
            "inbox/con_AbCdEf0123456789/from=okta/u.csv",
            None,
            "from=okta: not a preset",
        ),
    ] {
        if let Some(text) = mapping {
            let name = key
                .split("mapping=")
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap();
            w.client
                .put_object()
                .bucket(BUCKET)
                .key(format!("mappings/{name}.toml"))
                .body(ByteStream::from(text.as_bytes().to_vec()))
                .send()
                .await
                .expect("put mapping");
        }
        let event = w.drop_object(key, b"Mail\na@x.io\n".to_vec()).await;
        let response = handle(&w.client, &w.config, &invocation(), event)
            .await
            .expect("handled");
        let (run_id, status, users_in, ..) = split_outcome(&response.records);
        assert_eq!((status, users_in), (RunStatus::Failed, 0), "{key}");
        let reason = w.manifest(&run_id).await.failure.expect("failure").reason;
        assert!(reason.contains(expected), "{key}: {reason}");
    }
}
