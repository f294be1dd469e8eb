//! `POST /api/v2/jobs/users-imports`: the 202 body, the 413 size cap, every documented 400 and the
//! two-active-jobs 429 (facts §1.3–§1.6), each pinned to its status and body.

mod common;

use std::time::Duration;

use auth0_emulator::{
    ConnectionConfig, ConnectionKind, Emulator, EmulatorConfig, RateLimit, DEFAULT_CONNECTION_ID,
};
use common::*;
use import_core::multipart::{encode, AUTH0_MAX_REQUEST_BYTES, BOUNDARY};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn bad_request(message: &str, error_code: &str) -> Value {
    json!({"statusCode": 400, "error": "Bad Request", "message": message, "errorCode": error_code})
}

/// A multipart body with exactly the given parts (name, is_file, content).
fn multipart(parts: &[(&str, bool, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, is_file, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let filename = if *is_file {
            "; filename=\"users.json\""
        } else {
            ""
        };
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// A users file padded so the whole request is exactly `total` bytes.
fn users_for_request_size(total: usize) -> Vec<u8> {
    let envelope = encode(&fields("", false), b"").len();
    let skeleton = json!([{"email": "pad@example.com", "user_metadata": {"pad": ""}}]).to_string();
    let pad = total - envelope - skeleton.len();
    let users = json!([{"email": "pad@example.com", "user_metadata": {"pad": "x".repeat(pad)}}])
        .to_string();
    let bytes = users.into_bytes();
    assert_eq!(envelope + bytes.len(), total);
    bytes
}

#[tokio::test]
async fn accepted_import_answers_202_with_auth0s_body() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    let answer = import(
        &emulator,
        &token,
        &fields("run-7/chunk-3", true),
        &json!([user("a@example.com")]),
    )
    .await;
    assert_eq!(answer.status, 202);
    let body = answer.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // No upsert / send_completion_email echo (facts §1.3, recorded responses).
    assert_eq!(
        keys,
        [
            "type",
            "status",
            "connection_id",
            "connection",
            "created_at",
            "id",
            "external_id"
        ]
    );
    assert_eq!(body["type"], "users_import");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["connection_id"], DEFAULT_CONNECTION_ID);
    assert_eq!(body["connection"], "Username-Password-Authentication");
    assert_eq!(body["external_id"], "run-7/chunk-3");
    let id = body["id"].as_str().unwrap();
    assert!(
        id.starts_with("job_")
            && id.len() == 20
            && id[4..].chars().all(|c| c.is_ascii_alphanumeric())
    );
    let created_at = body["created_at"].as_str().unwrap();
    assert_eq!(created_at.len(), "2023-01-25T17:48:16.543Z".len());
    assert!(created_at.ends_with('Z') && created_at.as_bytes()[10] == b'T');
    assert!(answer.header("x-ratelimit-remaining").is_some());

    let log = emulator.requests();
    let entry = log.last().unwrap();
    assert_eq!((entry.status, entry.job_id.as_deref()), (202, Some(id)));
    assert_eq!(entry.external_id.as_deref(), Some("run-7/chunk-3"));
    assert_eq!(entry.users, Some(1));
}

#[tokio::test]
async fn an_empty_external_id_is_not_echoed() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    let answer = import(
        &emulator,
        &token,
        &fields("", false),
        &json!([user("a@example.com")]),
    )
    .await;
    assert_eq!(answer.status, 202);
    assert!(answer.json().get("external_id").is_none());
}

#[tokio::test]
async fn a_request_over_512000_bytes_is_413_and_exactly_512000_is_accepted() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;

    let over = encode(
        &fields("", false),
        &users_for_request_size(AUTH0_MAX_REQUEST_BYTES + 1),
    );
    assert_eq!(over.len(), AUTH0_MAX_REQUEST_BYTES + 1);
    let answer = post_import_body(&emulator, &token, over).await;
    assert_eq!(answer.status, 413);
    assert_eq!(
        answer.json(),
        json!({"statusCode": 413, "error": "Payload Too Large", "message": "Payload content length greater than maximum allowed: 512000"})
    );
    assert!(emulator.jobs().is_empty());

    let at_limit = encode(
        &fields("", false),
        &users_for_request_size(AUTH0_MAX_REQUEST_BYTES),
    );
    assert_eq!(at_limit.len(), AUTH0_MAX_REQUEST_BYTES);
    let answer = post_import_body(&emulator, &token, at_limit).await;
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
}

#[tokio::test]
async fn an_oversized_chunked_body_without_content_length_is_413() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    let body = encode(
        &fields("", false),
        &users_for_request_size(AUTH0_MAX_REQUEST_BYTES + 1000),
    );
    let address = emulator
        .base_url()
        .trim_start_matches("http://")
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut request = format!(
        "POST /api/v2/jobs/users-imports HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
         content-type: {}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        import_core::multipart::content_type()
    )
    .into_bytes();
    for chunk in body.chunks(64 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("Payload content length greater than maximum allowed: 512000"));
}

#[tokio::test]
async fn each_documented_400() {
    let mut config = EmulatorConfig::default();
    config.connections.extend([
        ConnectionConfig {
            id: "con_Passwordless0001".into(),
            name: "email".into(),
            kind: ConnectionKind::Passwordless,
            enabled: true,
        },
        ConnectionConfig {
            id: "con_DisabledConn0001".into(),
            name: "disabled-db".into(),
            kind: ConnectionKind::Database,
            enabled: false,
        },
        ConnectionConfig {
            id: "con_CustomDbNoImport".into(),
            name: "legacy-db".into(),
            kind: ConnectionKind::CustomDatabaseWithoutImportMode,
            enabled: true,
        },
    ]);
    let emulator = Emulator::start(config).await.unwrap();
    let token = token(&emulator).await;
    let users: &[u8] = br#"[{"email":"a@example.com"}]"#;
    let conn = DEFAULT_CONNECTION_ID.as_bytes();

    let cases: Vec<(Vec<u8>, Value)> = vec![
        (
            multipart(&[("connection_id", false, conn)]),
            bad_request("Must provide 'users' file as multipart part.", "invalid_body"),
        ),
        (
            multipart(&[("connection_id", false, conn), ("users", true, b"")]),
            bad_request("Users file must not be empty.", "invalid_body"),
        ),
        (
            multipart(&[("users", true, users)]),
            bad_request("Must provide 'connection_id' as multipart part.", "invalid_body"),
        ),
        (
            multipart(&[("connection_id", false, b"Username-Password-Authentication"), ("users", true, users)]),
            bad_request(
                "Payload validation error: 'String does not match pattern ^con_[A-Za-z0-9]{16}$' on property connection_id.",
                "invalid_body",
            ),
        ),
        (
            multipart(&[("connection_id", false, b"con_Unknown000000001"), ("users", true, users)]),
            bad_request("The connection does not exist.", "inexistent_connection"),
        ),
        (
            multipart(&[("connection_id", false, b"con_Passwordless0001"), ("users", true, users)]),
            bad_request("Connection must be a database connection", "operation_not_supported"),
        ),
        (
            multipart(&[("connection_id", false, b"con_DisabledConn0001"), ("users", true, users)]),
            bad_request("Connection must be enabled.", "operation_not_supported"),
        ),
        (
            multipart(&[("connection_id", false, b"con_CustomDbNoImport"), ("users", true, users)]),
            bad_request(
                "Custom Database Connections without import mode are not allowed.",
                "operation_not_supported",
            ),
        ),
        (
            multipart(&[("connection_id", false, conn), ("upsert", false, b"yes"), ("users", true, users)]),
            bad_request(
                "Payload validation error: 'Expected type boolean but found type string' on property upsert.",
                "invalid_body",
            ),
        ),
        (
            encode(&fields("", false), users)[..200].to_vec(),
            bad_request("Payload validation error: 'Invalid multipart payload format'.", "invalid_body"),
        ),
    ];
    for (body, expected) in cases {
        let answer = post_import_body(&emulator, &token, body).await;
        assert_eq!(answer.status, 400, "{expected}");
        assert_eq!(answer.json(), expected);
    }

    let not_multipart =
        post_import_with_type(&emulator, &token, "application/json", users.to_vec()).await;
    assert_eq!(not_multipart.status, 400);
    assert_eq!(
        not_multipart.json()["message"],
        "Payload validation error: 'Invalid multipart payload format'."
    );
    assert!(emulator.jobs().is_empty());
}

#[tokio::test]
async fn a_third_active_job_is_429_until_one_finishes() {
    let emulator = Emulator::start(EmulatorConfig {
        job_base_time: Duration::from_millis(800),
        job_time_per_user: Duration::from_millis(1),
        // Polling the first job must not drain the bucket this test is not about.
        rate_limit: RateLimit {
            burst: 1000,
            per_second: 1000.0,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let token = token(&emulator).await;
    let users = json!([user("a@example.com")]);
    let first = import_ok(&emulator, &token, false, &users).await;
    import_ok(&emulator, &token, false, &json!([user("b@example.com")])).await;

    let third = import(
        &emulator,
        &token,
        &fields("third", false),
        &json!([user("c@example.com")]),
    )
    .await;
    assert_eq!(third.status, 429);
    // errorCode absent: the docs' body shows none (facts §9.7).
    assert_eq!(
        third.json(),
        json!({"statusCode": 429, "error": "Too Many Requests", "message": "There are 2 active import users jobs, please wait until some of them are finished and try again"})
    );
    assert!(third.header("x-ratelimit-limit").is_some());

    finish(&emulator, &token, &first).await;
    let retry = import(
        &emulator,
        &token,
        &fields("third", false),
        &json!([user("c@example.com")]),
    )
    .await;
    assert_eq!(
        retry.status,
        202,
        "{}",
        String::from_utf8_lossy(&retry.body)
    );

    let log = emulator.requests();
    assert!(log.iter().all(|entry| entry.active_jobs_after <= 2));
    let third_posts: Vec<u16> = log
        .iter()
        .filter(|entry| entry.external_id.as_deref() == Some("third"))
        .map(|entry| entry.status)
        .collect();
    assert_eq!(third_posts, [429, 202]);
}
