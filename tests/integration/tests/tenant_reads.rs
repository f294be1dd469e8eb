//! The reads `plan` makes (auth0-api `tenant`) against the emulator: a connection's verdict for
//! each kind Auth0 refuses imports into, the `/clients` fallback, a token without
//! `read:connections`, the scopes a token carries, and rate limits waited out on the way.

use std::time::{Duration, Instant};

use auth0_api::ManagementApi;
use auth0_emulator::{
    ClientConfig, ConnectionConfig, ConnectionKind, Emulator, EmulatorConfig, Faults,
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_CONNECTION_ID,
};
use import_core::auth0::parse_secret;
use import_core::preflight::ConnectionVerdict;
use serde_json::json;

fn tenant() -> EmulatorConfig {
    let mut config = EmulatorConfig::default();
    config.clients.push(ClientConfig {
        client_id: "planner".into(),
        client_secret: "planner-secret".into(),
        scopes: vec![
            "create:users".into(),
            "read:users".into(),
            "read:connections".into(),
        ],
    });
    for (id, kind, enabled) in [
        ("con_Disabled00000001", ConnectionKind::Database, false),
        ("con_Passwordless0001", ConnectionKind::Passwordless, true),
        (
            "con_CustomNoImport01",
            ConnectionKind::CustomDatabaseWithoutImportMode,
            true,
        ),
    ] {
        config.connections.push(ConnectionConfig {
            id: id.into(),
            name: id.into(),
            kind,
            enabled,
        });
    }
    config
}

fn api(emulator: &Emulator, client: &str, secret: &str) -> ManagementApi {
    let credentials = parse_secret(
        &json!({"domain": emulator.base_url(), "client_id": client, "client_secret": secret})
            .to_string(),
    )
    .unwrap();
    ManagementApi::new(credentials).unwrap()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_gets_its_verdict() {
    let emulator = Emulator::start(tenant()).await.unwrap();
    let api = api(&emulator, "planner", "planner-secret");
    let verdict = |id: &'static str| {
        let api = &api;
        async move { api.connection_verdict(id, soon()).await.unwrap() }
    };
    assert!(matches!(
        verdict(DEFAULT_CONNECTION_ID).await,
        ConnectionVerdict::Importable {
            enabled_clients: 2,
            ..
        }
    ));
    assert!(matches!(
        verdict("con_Disabled00000001").await,
        ConnectionVerdict::NotEnabled { .. }
    ));
    assert!(matches!(
        verdict("con_Passwordless0001").await,
        ConnectionVerdict::NotDatabase { .. }
    ));
    assert!(matches!(
        verdict("con_CustomNoImport01").await,
        ConnectionVerdict::CustomWithoutImportMode { .. }
    ));
    assert_eq!(
        verdict("con_DoesNotExist0001").await,
        ConnectionVerdict::Missing
    );
    let scopes = api.granted_scopes(soon()).await.unwrap();
    assert_eq!(
        scopes.granted,
        Some(vec![
            "create:users".into(),
            "read:users".into(),
            "read:connections".into()
        ])
    );
    assert!(!scopes.blocks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_without_enabled_clients_is_completed_from_the_clients_path() {
    let emulator = Emulator::start(EmulatorConfig {
        omit_enabled_clients: true,
        ..tenant()
    })
    .await
    .unwrap();
    let api = api(&emulator, "planner", "planner-secret");
    assert!(matches!(
        api.connection_verdict(DEFAULT_CONNECTION_ID, soon())
            .await
            .unwrap(),
        ConnectionVerdict::Importable {
            enabled_clients: 2,
            ..
        }
    ));
    assert!(matches!(
        api.connection_verdict("con_Disabled00000001", soon())
            .await
            .unwrap(),
        ConnectionVerdict::NotEnabled { .. }
    ));
    let paths: Vec<String> = emulator.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().any(|p| p.ends_with("/clients")), "{paths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_read_connections_leaves_the_check_undone() {
    let emulator = Emulator::start(tenant()).await.unwrap();
    let api = api(&emulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET);
    let verdict = api
        .connection_verdict(DEFAULT_CONNECTION_ID, soon())
        .await
        .unwrap();
    assert!(matches!(verdict, ConnectionVerdict::Unchecked { .. }) && !verdict.blocks());
    let scopes = api.granted_scopes(soon()).await.unwrap();
    assert_eq!(scopes.missing(false), vec!["read:connections"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out() {
    let emulator = Emulator::start(tenant()).await.unwrap();
    emulator.set_faults(Faults {
        seed: 3,
        extra_429_rate: 0.5,
        ..Faults::default()
    });
    let api = api(&emulator, "planner", "planner-secret");
    for _ in 0..4 {
        assert!(matches!(
            api.connection_verdict(DEFAULT_CONNECTION_ID, soon())
                .await
                .unwrap(),
            ConnectionVerdict::Importable { .. }
        ));
    }
    let limited = emulator
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/v2/connections") && r.status == 429)
        .count();
    assert!(
        limited > 0,
        "the fault seed gave no 429: the test proves nothing"
    );
}
