//! `/oauth/token` (facts §5.1) and the Bearer/scope checks of the job endpoints (facts §1.1, §2),
//! each pinned to its documented status and body.

mod common;

use std::time::Duration;

use auth0_emulator::{
    ClientConfig, Emulator, EmulatorConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
};
use common::*;
use hyper::Method;
use serde_json::json;

#[tokio::test]
async fn client_credentials_grant_returns_a_bearer_token() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let answer = token_request(
        &emulator.base_url(),
        &form_for(&emulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    .await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["access_token", "expires_in", "scope", "token_type"]);
    assert!(body["access_token"].as_str().unwrap().len() > 40);
    assert_eq!(body["expires_in"], 86_400);
    assert_eq!(body["scope"], "create:users read:users");
    assert_eq!(body["token_type"], "Bearer");
}

#[tokio::test]
async fn token_endpoint_accepts_json_bodies_too() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let body = json!({
        "grant_type": "client_credentials",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "audience": emulator.audience(),
    });
    let answer = send(
        Method::POST,
        &format!("{}/oauth/token", emulator.base_url()),
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["token_type"], "Bearer");
}

#[tokio::test]
async fn token_errors_match_auth0() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let base = emulator.base_url();

    let wrong_secret = token_request(&base, &form_for(&emulator, DEFAULT_CLIENT_ID, "nope")).await;
    assert_eq!(wrong_secret.status, 401);
    assert_eq!(
        wrong_secret.json(),
        json!({"error": "access_denied", "error_description": "Unauthorized"})
    );

    let unknown_client = token_request(
        &base,
        &form_for(&emulator, "someone", DEFAULT_CLIENT_SECRET),
    )
    .await;
    assert_eq!(unknown_client.status, 401);

    let other_audience = "https://other.example.com/api/v2/";
    let wrong_audience = token_request(
        &base,
        &format!(
            "grant_type=client_credentials&client_id={DEFAULT_CLIENT_ID}&client_secret={DEFAULT_CLIENT_SECRET}&audience={other_audience}"
        ),
    )
    .await;
    assert_eq!(wrong_audience.status, 403);
    assert_eq!(
        wrong_audience.json(),
        json!({"error": "access_denied", "error_description": format!("Service not enabled within domain: {other_audience}")})
    );

    let wrong_grant = token_request(
        &base,
        &format!("grant_type=password&client_id={DEFAULT_CLIENT_ID}&client_secret={DEFAULT_CLIENT_SECRET}"),
    )
    .await;
    assert_eq!(wrong_grant.status, 400);
    assert_eq!(wrong_grant.json()["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn import_without_or_with_a_bad_token_is_401() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let url = format!("{}/api/v2/jobs/users-imports", emulator.base_url());

    let missing = send(Method::POST, &url, &[], Vec::new()).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.json(),
        json!({"statusCode": 401, "error": "Unauthorized", "message": "Missing authentication", "attributes": {"error": "Missing authentication"}})
    );

    let invalid = post_import_body(&emulator, "not-a-token", Vec::new()).await;
    assert_eq!(invalid.status, 401);
    assert_eq!(invalid.json()["message"], "Invalid token");
    assert_eq!(invalid.json()["error"], "Unauthorized");
    // Every /api/v2 answer carries the rate-limit headers, even a 401.
    assert!(invalid.header("x-ratelimit-limit").is_some());
}

#[tokio::test]
async fn an_expired_token_is_401_with_auth0s_message() {
    let emulator = Emulator::start(EmulatorConfig {
        token_ttl: Duration::ZERO,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let token = token(&emulator).await;
    let answer = import(
        &emulator,
        &token,
        &fields("", false),
        &json!([user("a@example.com")]),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.json()["message"],
        "Expired token received for JSON Web Token validation"
    );
    assert!(emulator.jobs().is_empty());
}

#[tokio::test]
async fn scopes_are_enforced_per_endpoint() {
    let emulator = Emulator::start(EmulatorConfig {
        clients: vec![ClientConfig {
            client_id: "reader".into(),
            client_secret: "reader-secret".into(),
            scopes: vec!["read:users".into()],
        }],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let answer = token_request(
        &emulator.base_url(),
        &form_for(&emulator, "reader", "reader-secret"),
    )
    .await;
    let token = answer.json()["access_token"].as_str().unwrap().to_string();

    let import = import(
        &emulator,
        &token,
        &fields("", false),
        &json!([user("a@example.com")]),
    )
    .await;
    assert_eq!(import.status, 403);
    assert_eq!(
        import.json(),
        json!({"statusCode": 403, "error": "Forbidden", "message": "Insufficient scope; expected any of: create:users.", "errorCode": "insufficient_scope"})
    );

    // read:users is enough to poll (facts §2): the unknown job is a 404, not a 403.
    let job = get(
        &format!("{}/api/v2/jobs/job_0000000000000000", emulator.base_url()),
        &token,
    )
    .await;
    assert_eq!(job.status, 404);
}
