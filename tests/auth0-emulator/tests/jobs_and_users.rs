//! Job lifecycle, `/errors`, per-user outcomes (duplicates, upsert, rule violations) and the
//! Management API rate limit (facts §2, §3, §5.2, §7), each pinned to its status and body.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use auth0_emulator::{Emulator, EmulatorConfig, JobStatus, RateLimit};
use common::*;
use serde_json::json;

#[tokio::test]
async fn a_job_goes_pending_processing_completed_with_a_summary() {
    let emulator = Emulator::start(EmulatorConfig {
        job_base_time: Duration::from_millis(250),
        job_time_per_user: Duration::from_millis(40),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let token = token(&emulator).await;
    let users: Vec<_> = (0..10)
        .map(|i| user(&format!("u{i}@example.com")))
        .collect();
    let id = import_ok(&emulator, &token, false, &json!(users)).await;

    let mut seen = Vec::new();
    let done = poll_job(&emulator, &token, &id, Duration::from_secs(10), |job| {
        let status = job["status"].as_str().unwrap().to_string();
        if status == "processing" {
            let pct = job["percentage_done"].as_u64().unwrap();
            assert!(pct <= 100);
            assert!(job["time_left_seconds"].as_u64().is_some());
        }
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        status == "completed"
    })
    .await;
    assert_eq!(seen, ["pending", "processing", "completed"]);
    assert_eq!(
        done,
        json!({
            "type": "users_import", "status": "completed", "connection_id": "con_TestConnection01",
            "summary": {"failed": 0, "updated": 0, "inserted": 10, "total": 10},
            "connection": "Username-Password-Authentication",
            "created_at": done["created_at"], "id": id,
        })
    );
    assert_eq!(emulator.users().len(), 10);
    let views = emulator.jobs();
    assert_eq!(views[0].status, JobStatus::Completed);
    assert!(views[0].started_ms.unwrap() >= views[0].created_ms + 250);
    assert!(views[0].finished_ms.unwrap() >= views[0].started_ms.unwrap() + 400);
}

#[tokio::test]
async fn errors_lists_failed_users_redacted_or_answers_204() {
    let emulator = Emulator::start(EmulatorConfig {
        job_base_time: Duration::from_millis(500),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let token = token(&emulator).await;
    let hash = json!({"algorithm": "md5", "hash": {"value": "5f4dcc3b5aa765d61d8327deb882cf99", "encoding": "hex"}});
    let users = json!([
        {"email": "good@example.com", "custom_password_hash": hash},
        {"email": "not-an-email", "custom_password_hash": hash},
    ]);
    let id = import_ok(&emulator, &token, false, &users).await;

    // Still pending: the generic job object (GetJobGenericErrorResponseContent).
    let early = errors(&emulator, &token, &id).await;
    assert_eq!(early.status, 200);
    assert_eq!(
        early.json(),
        json!({"status": "pending", "type": "users_import", "created_at": early.json()["created_at"], "id": id, "connection_id": "con_TestConnection01"})
    );

    let done = finish(&emulator, &token, &id).await;
    assert_eq!(
        done["summary"],
        json!({"failed": 1, "updated": 0, "inserted": 1, "total": 2})
    );
    let answer = errors(&emulator, &token, &id).await;
    assert_eq!(answer.status, 200);
    let list = answer.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["user"]["email"], "not-an-email");
    assert_eq!(
        list[0]["user"]["custom_password_hash"]["hash"]["value"],
        "*****"
    );
    assert_eq!(list[0]["errors"][0]["code"], "INVALID_FORMAT");
    assert_eq!(list[0]["errors"][0]["path"], "email");
    assert!(list[0]["errors"][0]["message"].is_string());
    // The stored user's hash is masked in the inspection view too.
    assert_eq!(
        emulator.users()[0]["custom_password_hash"]["hash"]["value"],
        "*****"
    );

    let clean = import_ok(
        &emulator,
        &token,
        false,
        &json!([user("other@example.com")]),
    )
    .await;
    finish(&emulator, &token, &clean).await;
    let answer = errors(&emulator, &token, &clean).await;
    assert_eq!(answer.status, 204);
    assert!(answer.body.is_empty());
}

#[tokio::test]
async fn an_unparseable_users_file_fails_the_job_and_errors_is_204() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    for file in [
        &b"{not json"[..],
        br#"{"email":"a@example.com"}"#,
        b"[1,2,3]",
    ] {
        let answer = post_import_body(
            &emulator,
            &token,
            import_core::multipart::encode(&fields("", false), file),
        )
        .await;
        assert_eq!(answer.status, 202);
        let id = answer.json()["id"].as_str().unwrap().to_string();
        let done = finish(&emulator, &token, &id).await;
        assert_eq!(done["status"], "failed");
        assert!(done.get("summary").is_none());
        assert!(done["status_details"].as_str().unwrap().contains("parse"));
        assert_eq!(errors(&emulator, &token, &id).await.status, 204);
    }
    assert!(emulator.users().is_empty());
}

#[tokio::test]
async fn unknown_jobs_are_404_with_auth0s_bodies() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    let base = emulator.base_url();
    let job = get(&format!("{base}/api/v2/jobs/job_AAAAAAAAAAAAAAAA"), &token).await;
    assert_eq!(job.status, 404);
    assert_eq!(
        job.json(),
        json!({"statusCode": 404, "error": "Not Found", "message": "Job not found.", "errorCode": "inexistent_job"})
    );
    let job_errors = get(
        &format!("{base}/api/v2/jobs/job_AAAAAAAAAAAAAAAA/errors"),
        &token,
    )
    .await;
    assert_eq!(job_errors.status, 404);
    assert_eq!(
        job_errors.json(),
        json!({"statusCode": 404, "error": "Not Found", "message": "The job does not exist", "errorCode": "inexistent_job"})
    );
}

#[tokio::test]
async fn duplicates_inside_one_file_fail_after_the_first() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    let users = json!([
        {"email": "jane@example.com", "username": "jane"},
        {"email": "JANE@example.com"},
        {"email": "other@example.com", "username": "JANE"},
        {"email": "x1@example.com", "user_id": "id-1"},
        {"email": "x2@example.com", "user_id": "id-1"},
    ]);
    let id = import_ok(&emulator, &token, false, &users).await;
    let done = finish(&emulator, &token, &id).await;
    assert_eq!(
        done["summary"],
        json!({"failed": 3, "updated": 0, "inserted": 2, "total": 5})
    );
    let list = errors(&emulator, &token, &id).await.json();
    let messages: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["errors"][0]["code"].clone(),
                entry["errors"][0]["message"].clone(),
            )
        })
        .collect();
    assert_eq!(
        messages,
        [
            (
                json!("DUPLICATED_USER"),
                json!("A user with this email was already provided.")
            ),
            (
                json!("DUPLICATED_USER"),
                json!("A user with this username was already provided.")
            ),
            (
                json!("DUPLICATED_USER"),
                json!("A user with this user_id was already provided.")
            ),
        ]
    );
    assert!(list[0]["errors"][0].get("path").is_none());
}

#[tokio::test]
async fn existing_users_fail_without_upsert_and_update_with_it() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    let original = json!([{
        "email": "jane@example.com", "email_verified": true, "username": "jane",
        "given_name": "Jane", "app_metadata": {"plan": "gold", "region": "eu"},
        "user_metadata": {"theme": "dark"},
    }]);
    let first = import_ok(&emulator, &token, false, &original).await;
    finish(&emulator, &token, &first).await;

    let again = import_ok(&emulator, &token, false, &original).await;
    let done = finish(&emulator, &token, &again).await;
    assert_eq!(
        done["summary"],
        json!({"failed": 1, "updated": 0, "inserted": 0, "total": 1})
    );
    let list = errors(&emulator, &token, &again).await.json();
    assert_eq!(
        list,
        json!([{"user": original[0], "errors": [{"code": "DUPLICATED_USER", "message": "The user already exist and upsert parameter is false"}]}])
    );

    let update = json!([{
        "email": "JANE@example.com", "username": "jane-renamed", "given_name": "Janet",
        "app_metadata": {"plan": "silver"},
    }]);
    let upsert = import_ok(&emulator, &token, true, &update).await;
    let done = finish(&emulator, &token, &upsert).await;
    assert_eq!(
        done["summary"],
        json!({"failed": 0, "updated": 1, "inserted": 0, "total": 1})
    );

    let users = emulator.users();
    assert_eq!(users.len(), 1);
    let jane = &users[0];
    assert_eq!(
        jane["app_metadata"],
        json!({"plan": "silver"}),
        "replaced, not merged"
    );
    assert_eq!(
        jane["user_metadata"],
        json!({"theme": "dark"}),
        "omitted: kept"
    );
    assert_eq!(jane["email_verified"], false, "reset when not given");
    assert_eq!(jane["given_name"], "Janet");
    assert_eq!(jane["email"], "jane@example.com", "email is not upsertable");
    assert_eq!(jane["username"], "jane", "username is not upsertable");
    assert!(jane["user_id"].as_str().unwrap().starts_with("auth0|"));
}

#[tokio::test]
async fn every_management_response_has_rate_limit_headers_and_an_empty_bucket_is_429() {
    let emulator = Emulator::start(EmulatorConfig {
        rate_limit: RateLimit {
            burst: 3,
            per_second: 0.01,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let token = token(&emulator).await;
    let url = format!("{}/api/v2/jobs/job_AAAAAAAAAAAAAAAA", emulator.base_url());
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let answer = get(&url, &token).await;
        assert_eq!(answer.status, 404);
        assert_eq!(answer.header("x-ratelimit-limit").as_deref(), Some("3"));
        remaining.push(answer.header("x-ratelimit-remaining").unwrap());
    }
    assert_eq!(remaining, ["2", "1", "0"]);

    let limited = get(&url, &token).await;
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.json(),
        json!({"statusCode": 429, "error": "Too Many Requests", "message": "Global limit has been reached", "errorCode": "too_many_requests"})
    );
    assert_eq!(
        limited.header("x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    let reset: u64 = limited
        .header("x-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        reset > now && reset <= now + 101,
        "reset {reset} vs now {now}"
    );

    // The import endpoint shares the bucket.
    let import = import(
        &emulator,
        &token,
        &fields("", false),
        &json!([user("a@example.com")]),
    )
    .await;
    assert_eq!(import.status, 429);
    assert_eq!(import.json()["message"], "Global limit has been reached");
    let statuses: BTreeSet<u16> = emulator.requests().iter().map(|r| r.status).collect();
    assert!(statuses.contains(&429));
}
