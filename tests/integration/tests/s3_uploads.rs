//! The S3 store's resumable pieces against moto: an upload whose parts are stored one call at a
//! time and completed later (a run's finalisation spans invocations this way), completing it a
//! second time (an invocation that died before it could record so), an upload aborted under a
//! paused finalisation (S3 aborts uploads left for a day), reads from an offset, and listings
//! that start after a key (poll's sweeps).

use import_core::ledger::StoreError;
use import_core::storage::{UploadedPart, MIN_PART_BYTES};
use integration::fixtures::{quick, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_spans_calls_and_reads_go_on_from_an_offset() {
    let w = World::start(quick()).await;
    let ledger = &w.pipeline.ledger;
    let key = "runs/r/report.csv";
    // A first part at S3's minimum, a short last one: bytes a test can place.
    let first: Vec<u8> = (0..MIN_PART_BYTES).map(|i| b'a' + (i % 26) as u8).collect();
    let last = b"the last part\n".to_vec();
    let upload_id = ledger.start_upload(key, "text/csv").await.unwrap();
    let mut parts = Vec::new();
    for (number, bytes) in [(1, first.clone()), (2, last.clone())] {
        let etag = ledger
            .upload_part(key, &upload_id, number, bytes)
            .await
            .unwrap();
        parts.push(UploadedPart { number, etag });
    }
    // Nothing is visible before the upload is completed.
    assert_eq!(ledger.get_bytes(key).await.unwrap(), None);
    ledger.finish_upload(key, &upload_id, &parts).await.unwrap();
    let whole = [first.clone(), last.clone()].concat();
    assert_eq!(ledger.get_bytes(key).await.unwrap().unwrap().0, whole);
    // Completed already: the object is there, so a second completion is not an error.
    ledger.finish_upload(key, &upload_id, &parts).await.unwrap();
    assert_eq!(ledger.get_bytes(key).await.unwrap().unwrap().0, whole);
    // An upload that never was, for an object that is not there, is gone.
    assert!(matches!(
        ledger
            .finish_upload("runs/r/none.csv", "no-such-upload", &parts)
            .await,
        Err(StoreError::UploadGone { .. })
    ));

    let from = |offset: u64| async move {
        let mut read = Vec::new();
        let found = ledger
            .get_pieces_from::<StoreError>(key, offset, |p| {
                read.extend_from_slice(p);
                Ok(())
            })
            .await
            .unwrap();
        (found, read)
    };
    let len = whole.len() as u64;
    assert_eq!(from(0).await, (true, whole.clone()));
    assert_eq!(from(len - 5).await, (true, b"part\n".to_vec()));
    // At or past the end: nothing left to read, and the object is there.
    assert_eq!(from(len).await, (true, Vec::new()));
    assert_eq!(from(len + 10).await, (true, Vec::new()));
    // An empty object read from its start (split's rejects when nothing was rejected).
    ledger
        .put_raw("runs/r/empty", Vec::new(), "")
        .await
        .unwrap();
    let mut pieces = 0;
    let found = ledger
        .get_pieces_from::<StoreError>("runs/r/empty", 0, |_| {
            pieces += 1;
            Ok(())
        })
        .await
        .unwrap();
    assert!(found);
    assert_eq!(pieces, 0);
    let missing = ledger
        .get_pieces_from::<StoreError>("runs/r/missing", 3, |_| Ok(()))
        .await
        .unwrap();
    assert!(!missing);
}

/// S3 aborts an upload left incomplete for a day: storing a part in it, or completing it, then
/// says `UploadGone` (finalisation starts over on it), and aborting it again is not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_upload_is_gone() {
    let w = World::start(quick()).await;
    let ledger = &w.pipeline.ledger;
    let key = "runs/r/failed-users.json";
    let upload_id = ledger.start_upload(key, "application/json").await.unwrap();
    let etag = ledger
        .upload_part(key, &upload_id, 1, b"[{}".to_vec())
        .await
        .unwrap();
    ledger.abort_upload(key, &upload_id).await.unwrap();
    let gone = |r: Result<_, StoreError>| matches!(r, Err(StoreError::UploadGone { .. }));
    assert!(gone(
        ledger
            .upload_part(key, &upload_id, 2, b"]".to_vec())
            .await
            .map(drop)
    ));
    let parts = [UploadedPart { number: 1, etag }];
    assert!(gone(ledger.finish_upload(key, &upload_id, &parts).await));
    assert_eq!(ledger.get_bytes(key).await.unwrap(), None);
    ledger.abort_upload(key, &upload_id).await.unwrap();
}

/// Poll's sweeps list a run's reports and jobs from past the chunks reported without a gap:
/// S3's StartAfter skips every key up to it, across pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_starts_after_a_key() {
    let w = World::start(quick()).await;
    let ledger = &w.pipeline.ledger;
    let run = import_core::layout::RunPath::new("r");
    // More than a page (1,000 keys), so the start is kept from one page to the next.
    let seqs: Vec<u32> = (1..=1_100).collect();
    let report_keys: Vec<String> = seqs.iter().map(|&seq| run.report(seq)).collect();
    futures_util::future::try_join_all(
        report_keys
            .iter()
            .map(|key| ledger.put_raw(key, b"{}".to_vec(), "")),
    )
    .await
    .unwrap();
    ledger
        .put_raw(&run.job(7), b"{}".to_vec(), "")
        .await
        .unwrap();
    let keys = |listed: Vec<(String, i64)>| -> Vec<String> {
        listed.into_iter().map(|(key, _)| key).collect()
    };
    let after = ledger
        .list_after(&run.reports(), &run.report(40))
        .await
        .unwrap();
    let expected: Vec<String> = (41..=1_100).map(|seq| run.report(seq)).collect();
    assert_eq!(keys(after), expected);
    // Past the last key: nothing; under another prefix: only that prefix.
    let none = ledger
        .list_after(&run.reports(), &run.report(1_100))
        .await
        .unwrap();
    assert!(none.is_empty());
    let jobs = ledger.list_after(&run.jobs(), &run.job(2)).await.unwrap();
    assert_eq!(keys(jobs), vec![run.job(7)]);
}
