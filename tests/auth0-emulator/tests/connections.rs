//! `GET /api/v2/connections/{id}` and `/clients` (Auth0's Management API reference: scope
//! `read:connections`, `strategy` and `enabled_clients` in the body) and the token's `scope`
//! (facts §5.1: a space-separated list), which `plan` reads before any job is created.

mod common;

use auth0_emulator::{
    ClientConfig, ConnectionConfig, ConnectionKind, Emulator, EmulatorConfig, DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET, DEFAULT_CONNECTION_ID,
};
use common::*;
use serde_json::json;

const READER: &str = "reader";

/// The default tenant plus a client that may read connections, a disabled database connection
/// and a passwordless one.
fn tenant(omit_enabled_clients: bool) -> EmulatorConfig {
    let mut config = EmulatorConfig {
        omit_enabled_clients,
        ..EmulatorConfig::default()
    };
    config.clients.push(ClientConfig {
        client_id: READER.into(),
        client_secret: "reader-secret".into(),
        scopes: vec![
            "create:users".into(),
            "read:users".into(),
            "read:connections".into(),
        ],
    });
    config.connections.push(ConnectionConfig {
        id: "con_Disabled00000001".into(),
        name: "Disabled-DB".into(),
        kind: ConnectionKind::Database,
        enabled: false,
    });
    config.connections.push(ConnectionConfig {
        id: "con_Passwordless0001".into(),
        name: "email".into(),
        kind: ConnectionKind::Passwordless,
        enabled: true,
    });
    config
}

async fn reader_token(emulator: &Emulator) -> String {
    let answer = token_request(
        &emulator.base_url(),
        &form_for(emulator, READER, "reader-secret"),
    )
    .await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["scope"], "create:users read:users read:connections");
    let token = body["access_token"].as_str().unwrap().to_string();
    // Auth0's Management API tokens are JWTs (facts §5.1) whose claims carry the same scope.
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["scope"], body["scope"]);
    assert_eq!(claims["aud"], emulator.audience());
    assert_eq!(claims["sub"], format!("{READER}@clients"));
    token
}

fn url(emulator: &Emulator, path: &str) -> String {
    format!("{}/api/v2/connections/{path}", emulator.base_url())
}

#[tokio::test]
async fn a_database_connection_names_its_strategy_and_enabled_clients() {
    let emulator = Emulator::start(tenant(false)).await.unwrap();
    let token = reader_token(&emulator).await;
    let answer = get(&url(&emulator, DEFAULT_CONNECTION_ID), &token).await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["id"], DEFAULT_CONNECTION_ID);
    assert_eq!(body["name"], "Username-Password-Authentication");
    assert_eq!(body["strategy"], "auth0");
    assert_eq!(body["options"]["enabledDatabaseCustomization"], false);
    assert_eq!(body["enabled_clients"], json!([DEFAULT_CLIENT_ID, READER]));

    let disabled = get(&url(&emulator, "con_Disabled00000001"), &token)
        .await
        .json();
    assert_eq!(disabled["enabled_clients"], json!([]));
    let passwordless = get(&url(&emulator, "con_Passwordless0001"), &token)
        .await
        .json();
    assert_eq!(passwordless["strategy"], "email");

    // The query string of Auth0's `fields`/`include_fields` does not change the route.
    let with_query = get(
        &url(
            &emulator,
            &format!("{DEFAULT_CONNECTION_ID}?fields=strategy"),
        ),
        &token,
    )
    .await;
    assert_eq!(with_query.status, 200);
}

#[tokio::test]
async fn enabled_clients_are_also_listed_on_their_own_path() {
    let emulator = Emulator::start(tenant(true)).await.unwrap();
    let token = reader_token(&emulator).await;
    let body = get(&url(&emulator, DEFAULT_CONNECTION_ID), &token)
        .await
        .json();
    assert!(body.get("enabled_clients").is_none(), "{body}");
    let clients = get(
        &url(
            &emulator,
            &format!("{DEFAULT_CONNECTION_ID}/clients?take=50"),
        ),
        &token,
    )
    .await;
    assert_eq!(clients.status, 200);
    assert_eq!(
        clients.json(),
        json!({"clients": [{"client_id": DEFAULT_CLIENT_ID}, {"client_id": READER}]})
    );
    let none = get(&url(&emulator, "con_Disabled00000001/clients"), &token).await;
    assert_eq!(none.json(), json!({"clients": []}));
}

#[tokio::test]
async fn unknown_connections_and_missing_scopes_get_auth0s_errors() {
    let emulator = Emulator::start(tenant(false)).await.unwrap();
    let token = reader_token(&emulator).await;
    let missing = get(&url(&emulator, "con_DoesNotExist0001"), &token).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json(),
        json!({"statusCode": 404, "error": "Not Found", "message": "The connection does not exist.", "errorCode": "inexistent_connection"})
    );

    // The default client has create:users and read:users only.
    let answer = token_request(
        &emulator.base_url(),
        &form_for(&emulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    .await;
    let narrow = answer.json()["access_token"].as_str().unwrap().to_string();
    let refused = get(&url(&emulator, DEFAULT_CONNECTION_ID), &narrow).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.json()["message"],
        "Insufficient scope; expected any of: read:connections."
    );
    let unauthenticated = get(&url(&emulator, DEFAULT_CONNECTION_ID), "not-a-token").await;
    assert_eq!(unauthenticated.status, 401);
}
