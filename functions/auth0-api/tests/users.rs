//! The client's export, users-by-email and delete calls against our Auth0 emulator: an expired
//! download link is replaced by a fresh one from the job, and a missing scope is a typed refusal.

use std::time::{Duration, Instant};

use auth0_api::{ApiError, ExportField, ManagementApi};
use auth0_emulator::{
    Emulator, EmulatorConfig, Faults, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_CONNECTION_ID,
};
use import_core::auth0::Auth0Credentials;
use serde_json::json;

fn api(emulator: &Emulator) -> ManagementApi {
    ManagementApi::new(Auth0Credentials::ClientCredentials {
        base_url: emulator.base_url(),
        client_id: DEFAULT_CLIENT_ID.into(),
        client_secret: DEFAULT_CLIENT_SECRET.into(),
    })
    .unwrap()
}

async fn seeded(faults: Faults) -> Emulator {
    let emulator = Emulator::start(EmulatorConfig {
        export_base_time: Duration::from_millis(20),
        faults,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let users = (0..5)
        .map(|i| json!({"email": format!("e{i}@example.com")}))
        .collect();
    emulator.seed_users(None, users);
    emulator
}

async fn download(api: &ManagementApi) -> Result<(u64, String, u32), ApiError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let fields = [ExportField {
        name: "email".into(),
        export_as: None,
    }];
    let job = api
        .create_export(DEFAULT_CONNECTION_ID, &fields, deadline)
        .await?;
    let mut text = String::new();
    let mut resets = 0;
    let size = api
        .download_export(
            &job,
            Duration::from_millis(20),
            deadline,
            || resets += 1,
            |piece| {
                text.push_str(&String::from_utf8_lossy(piece));
                Ok(())
            },
        )
        .await?;
    Ok((size, text, resets))
}

#[tokio::test]
async fn an_expired_link_is_replaced_by_a_fresh_one_from_the_job() {
    let emulator = seeded(Faults {
        expire_next_links: 2,
        ..Faults::default()
    })
    .await;
    let (size, text, resets) = download(&api(&emulator)).await.unwrap();
    assert!(size > 0);
    assert_eq!(text.lines().count(), 5);
    assert!(text.lines().next().unwrap().contains("e0@example.com"));
    assert_eq!(
        resets, 2,
        "each attempt after the first starts the reader over"
    );
    let downloads = emulator
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/__exports/"))
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(downloads, vec![403, 403, 200]);
}

#[tokio::test]
async fn links_that_keep_expiring_end_in_a_typed_error() {
    let emulator = seeded(Faults {
        expire_next_links: 10,
        ..Faults::default()
    })
    .await;
    let error = download(&api(&emulator)).await.unwrap_err();
    assert!(matches!(error, ApiError::Unavailable { .. }), "{error}");
}

#[tokio::test]
async fn users_by_email_finds_and_delete_without_the_scope_is_refused() {
    let emulator = seeded(Faults::default()).await;
    let api = api(&emulator);
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = api
        .users_by_email("e1@example.com", deadline)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let user_id = found[0]["user_id"].as_str().unwrap();
    let refused = api.delete_user(user_id, deadline).await.unwrap_err();
    assert!(
        matches!(&refused, ApiError::Refused { status: 403, code: Some(c), .. } if c == "insufficient_scope"),
        "{refused:?}"
    );
    assert_eq!(emulator.users().len(), 5);
}
