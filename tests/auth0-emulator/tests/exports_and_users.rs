//! User exports, users-by-email and user deletion (facts §6, §5.2), each pinned to its status,
//! body, scope and rate-limit headers.

mod common;

use std::io::Read as _;
use std::time::Duration;

use auth0_emulator::{ClientConfig, Emulator, EmulatorConfig, DEFAULT_CONNECTION_ID};
use bytes::Bytes;
use common::*;
use hyper::Method;
use serde_json::{json, Value};

async fn post_json(url: &str, token: &str, body: &Value) -> Answer {
    let auth = format!("Bearer {token}");
    send(
        Method::POST,
        url,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
    .await
}

async fn delete(url: &str, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    send(
        Method::DELETE,
        url,
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await
}

fn gunzip_lines(bytes: &[u8]) -> Vec<Value> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("gzip");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

/// A token for a client granted exactly `scopes`.
async fn token_with(emulator: &Emulator, client_id: &str) -> String {
    let answer = token_request(&emulator.base_url(), &form_for(emulator, client_id, "s")).await;
    assert_eq!(answer.status, 200);
    answer.json()["access_token"].as_str().unwrap().to_string()
}

fn config_with_clients(extra: &[(&str, &[&str])]) -> EmulatorConfig {
    let mut config = EmulatorConfig::default();
    for (id, scopes) in extra {
        config.clients.push(ClientConfig {
            client_id: (*id).to_string(),
            client_secret: "s".to_string(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        });
    }
    config
}

async fn three_users(emulator: &Emulator, token: &str) {
    let users = json!([
        {"email": "Ann@example.com", "user_metadata": {"plan": "gold"}, "password_hash": "$2b$10$abcdefghijklmnopqrstuu5Yb0d5dZ0c9v1m3bQ4o1k2l3m4n5o6p"},
        {"email": "bob@example.com", "username": "bob"},
        {"email": "cy@example.com", "phone_number": "+15550001111"},
    ]);
    let id = import_ok(emulator, token, false, &users).await;
    poll_job(emulator, token, &id, Duration::from_secs(10), |job| {
        job["status"] == "completed"
    })
    .await;
}

#[tokio::test]
async fn an_export_goes_pending_to_completed_and_serves_gzip_ndjson_of_the_fields_asked() {
    let emulator = Emulator::start(EmulatorConfig {
        export_base_time: Duration::from_millis(200),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let token = token(&emulator).await;
    three_users(&emulator, &token).await;

    let request = json!({
        "connection_id": DEFAULT_CONNECTION_ID,
        "format": "json",
        "fields": [{"name": "user_id"}, {"name": "email"}, {"name": "user_metadata"},
                   {"name": "identities[0].connection", "export_as": "provider"}],
    });
    let created = post_json(
        &format!("{}/api/v2/jobs/users-exports", emulator.base_url()),
        &token,
        &request,
    )
    .await;
    // Facts §6: 200 (not 202), the request echoed, status pending.
    assert_eq!(
        created.status,
        200,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    assert!(created.header("x-ratelimit-limit").is_some());
    assert!(created.header("x-ratelimit-remaining").is_some());
    assert!(created.header("x-ratelimit-reset").is_some());
    let body = created.json();
    assert_eq!(body["type"], "users_export");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["format"], "json");
    assert_eq!(body["connection_id"], DEFAULT_CONNECTION_ID);
    assert_eq!(body["fields"], request["fields"]);
    let id = body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("job_"));

    let mut seen = Vec::new();
    let done = poll_job(&emulator, &token, &id, Duration::from_secs(10), |job| {
        let status = job["status"].as_str().unwrap().to_string();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        status == "completed"
    })
    .await;
    assert_eq!(seen.first().map(String::as_str), Some("pending"));
    assert_eq!(seen.last().map(String::as_str), Some("completed"));
    let location = done["location"]
        .as_str()
        .expect("a completed export has a location");
    assert!(location.starts_with(&emulator.base_url()));
    assert!(location.contains(".json.gz?Expires="));

    let file = send(Method::GET, location, &[], Bytes::new()).await;
    assert_eq!(file.status, 200);
    // S3 plays the download: no Management API rate-limit headers there.
    assert!(file.header("x-ratelimit-limit").is_none());
    let lines = gunzip_lines(&file.body);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["email"], "ann@example.com");
    assert_eq!(lines[0]["user_metadata"], json!({"plan": "gold"}));
    assert_eq!(lines[0]["provider"], "Username-Password-Authentication");
    assert!(lines[0]["user_id"].as_str().unwrap().starts_with("auth0|"));
    // Only the fields asked for: never a hash.
    assert!(lines.iter().all(|l| l.as_object().unwrap().len() <= 4));
    assert!(!String::from_utf8_lossy(&file.body).contains("$2b$"));
}

#[tokio::test]
async fn the_location_expires_and_a_fresh_job_read_gives_a_new_one() {
    let emulator = Emulator::start(EmulatorConfig {
        export_base_time: Duration::from_millis(10),
        export_url_ttl: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let token = token(&emulator).await;
    three_users(&emulator, &token).await;
    let created = post_json(
        &format!("{}/api/v2/jobs/users-exports", emulator.base_url()),
        &token,
        &json!({"connection_id": DEFAULT_CONNECTION_ID, "format": "json"}),
    )
    .await;
    let id = created.json()["id"].as_str().unwrap().to_string();
    let done = poll_job(&emulator, &token, &id, Duration::from_secs(10), |job| {
        job["status"] == "completed"
    })
    .await;
    let stale = done["location"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = send(Method::GET, &stale, &[], Bytes::new()).await;
    assert_eq!(expired.status, 403);
    assert!(String::from_utf8_lossy(&expired.body).contains("Request has expired"));

    let again = get(&format!("{}/api/v2/jobs/{id}", emulator.base_url()), &token).await;
    let fresh = again.json()["location"].as_str().unwrap().to_string();
    assert_ne!(fresh, stale);
    let file = send(Method::GET, &fresh, &[], Bytes::new()).await;
    assert_eq!(file.status, 200);
    // The predefined field set (no `fields`): identifiers and profile, no secrets.
    let lines = gunzip_lines(&file.body);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["username"], "bob");
    assert!(lines[0].get("password_hash").is_none());
    // A tampered signature is refused like an expired one.
    let tampered = fresh.replace("Signature=", "Signature=x");
    assert_eq!(
        send(Method::GET, &tampered, &[], Bytes::new()).await.status,
        403
    );
}

#[tokio::test]
async fn exports_and_email_lookups_need_read_users_and_deletes_need_delete_users() {
    let emulator = Emulator::start(config_with_clients(&[
        ("importer", &["create:users"]),
        ("deleter", &["delete:users"]),
    ]))
    .await
    .unwrap();
    let admin = token(&emulator).await;
    three_users(&emulator, &admin).await;
    let importer = token_with(&emulator, "importer").await;
    let deleter = token_with(&emulator, "deleter").await;
    let base = emulator.base_url();

    let refused = post_json(
        &format!("{base}/api/v2/jobs/users-exports"),
        &importer,
        &json!({"connection_id": DEFAULT_CONNECTION_ID}),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.json()["message"],
        "Insufficient scope; expected any of: read:users."
    );
    let lookup = get(
        &format!("{base}/api/v2/users-by-email?email=bob%40example.com"),
        &importer,
    )
    .await;
    assert_eq!(lookup.status, 403);

    // The default client (create:users read:users) cannot delete.
    let bob = get(
        &format!("{base}/api/v2/users-by-email?email=bob%40example.com"),
        &admin,
    )
    .await;
    assert_eq!(bob.status, 200);
    assert!(bob.header("x-ratelimit-remaining").is_some());
    let found = bob.json();
    assert_eq!(found.as_array().unwrap().len(), 1);
    let user_id = found[0]["user_id"].as_str().unwrap().to_string();
    let url = format!("{base}/api/v2/users/{}", user_id.replace('|', "%7C"));
    let no_scope = delete(&url, &admin).await;
    assert_eq!(no_scope.status, 403);
    assert_eq!(
        no_scope.json()["message"],
        "Insufficient scope; expected any of: delete:users."
    );

    let deleted = delete(&url, &deleter).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    assert!(deleted.header("x-ratelimit-limit").is_some());
    assert_eq!(emulator.users().len(), 2);
    // Deleting again is harmless (what makes a rollback resumable).
    assert_eq!(delete(&url, &deleter).await.status, 204);
    let gone = get(
        &format!("{base}/api/v2/users-by-email?email=bob%40example.com"),
        &admin,
    )
    .await;
    assert_eq!(gone.json(), json!([]));
}

#[tokio::test]
async fn users_by_email_answers_profiles_without_secrets_and_needs_the_parameter() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    three_users(&emulator, &token).await;
    let base = emulator.base_url();
    let ann = get(
        &format!("{base}/api/v2/users-by-email?email=ann%40example.com"),
        &token,
    )
    .await;
    let found = ann.json();
    assert_eq!(found[0]["email"], "ann@example.com");
    assert_eq!(found[0]["user_metadata"], json!({"plan": "gold"}));
    assert!(found[0].get("password_hash").is_none());
    let missing = get(&format!("{base}/api/v2/users-by-email"), &token).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["errorCode"], "invalid_query_string");
}

#[tokio::test]
async fn upsert_keeps_metadata_switch_leaves_metadata_while_counting_updated() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    three_users(&emulator, &token).await;
    let mut faults = emulator_faults();
    faults.upsert_keeps_metadata = true;
    emulator.set_faults(faults);
    let id = import_ok(
        &emulator,
        &token,
        true,
        &json!([{"email": "ann@example.com", "user_metadata": {"plan": "silver"}, "given_name": "Ann"}]),
    )
    .await;
    let done = poll_job(&emulator, &token, &id, Duration::from_secs(10), |job| {
        job["status"] == "completed"
    })
    .await;
    assert_eq!(done["summary"]["updated"], 1);
    let ann = emulator
        .users()
        .into_iter()
        .find(|u| u["email"] == "ann@example.com")
        .unwrap();
    assert_eq!(ann["user_metadata"], json!({"plan": "gold"}));
    assert_eq!(ann["given_name"], "Ann");
}

fn emulator_faults() -> auth0_emulator::Faults {
    auth0_emulator::Faults::default()
}
