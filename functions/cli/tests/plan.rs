//! `plan` as an operator runs it against the emulated tenant, credentials from the environment:
//! the table for a ready migration (no job created), a connection Auth0 would refuse, a token
//! without the import scope, and `-v` showing the rate-limit waits on the way.

use std::path::Path;
use std::process::{Command, Output};

use auth0_emulator::{
    ClientConfig, ConnectionConfig, ConnectionKind, Emulator, EmulatorConfig, Faults,
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_CONNECTION_ID,
};
use serde_json::{json, Value};

const PLANNER_SECRET: &str = "planner-very-secret";

fn tenant() -> EmulatorConfig {
    let mut config = EmulatorConfig::default();
    config.clients.push(ClientConfig {
        client_id: "planner".into(),
        client_secret: PLANNER_SECRET.into(),
        scopes: vec![
            "create:users".into(),
            "read:users".into(),
            "read:connections".into(),
        ],
    });
    config.clients.push(ClientConfig {
        client_id: "reader".into(),
        client_secret: "reader-secret".into(),
        scopes: vec!["read:users".into(), "read:connections".into()],
    });
    config.connections.push(ConnectionConfig {
        id: "con_Disabled00000001".into(),
        name: "Staging-DB".into(),
        kind: ConnectionKind::Database,
        enabled: false,
    });
    config
}

fn export(dir: &Path, n: usize, bad: usize) -> String {
    let users: Vec<Value> = (0..n)
        .map(|i| {
            let email = if i < bad {
                "broken".to_string()
            } else {
                format!("p{i}@example.com")
            };
            json!({"email": email, "email_verified": true, "user_metadata": {"i": i}})
        })
        .collect();
    let path = dir.join("users.json");
    std::fs::write(&path, serde_json::to_vec(&users).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

async fn plan(emulator: &Emulator, client: (&str, &str), args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auth0-s3-import"));
    c.arg("plan")
        .args(args)
        .env("AUTH0_DOMAIN", emulator.base_url())
        .env("AUTH0_CLIENT_ID", client.0)
        .env("AUTH0_CLIENT_SECRET", client.1)
        .env_remove("AUTH0_TOKEN")
        .env_remove("RUST_LOG");
    tokio::task::spawn_blocking(move || c.output())
        .await
        .unwrap()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_migration_gets_its_table_and_no_job() {
    let emulator = Emulator::start(tenant()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = export(dir.path(), 300, 3);
    let o = plan(
        &emulator,
        ("planner", PLANNER_SECRET),
        &[
            &file,
            "--connection-id",
            DEFAULT_CONNECTION_ID,
            "--max-chunk-bytes",
            "4000",
        ],
    )
    .await;
    let (table, stderr) = text(&o);
    // Ready, with rejected records: 3, as split and migrate say it.
    assert_eq!(o.status.code(), Some(3), "{table}\n{stderr}");
    assert!(table.contains("| Users in the file"), "{table}");
    assert!(
        table.contains("| 300 |") && table.contains("| 297 |"),
        "{table}"
    );
    assert!(table.contains("INVALID_FORMAT 3"), "{table}");
    assert!(
        table.contains("database connection, enabled for 3 application(s) — OK"),
        "{table}"
    );
    assert!(
        table.contains("create:users read:users read:connections — OK"),
        "{table}"
    );
    assert!(table.contains("~4 min per insert job"), "{table}");
    assert!(table.contains("READY: no job was created"), "{table}");
    let chunks: u64 = table
        .lines()
        .find(|l| l.starts_with("| Chunks = import jobs"))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(chunks > 5, "{table}");
    // Nothing was created, and the secret is nowhere in the output.
    assert!(emulator.jobs().is_empty());
    assert!(!emulator
        .requests()
        .iter()
        .any(|r| r.path.contains("users-imports")));
    assert!(!table.contains(PLANNER_SECRET) && !stderr.contains(PLANNER_SECRET));
    // A file with no rejects is simply ready.
    let clean = export(dir.path(), 10, 0);
    let o = plan(
        &emulator,
        ("planner", PLANNER_SECRET),
        &[&clean, "--connection-id", DEFAULT_CONNECTION_ID, "--upsert"],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).0);
    assert!(text(&o).0.contains("~14 min per upsert job"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_auth0_would_refuse_makes_it_not_ready() {
    let emulator = Emulator::start(tenant()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = export(dir.path(), 20, 0);
    let disabled = plan(
        &emulator,
        ("planner", PLANNER_SECRET),
        &[&file, "--connection-id", "con_Disabled00000001"],
    )
    .await;
    let (table, _) = text(&disabled);
    assert_eq!(disabled.status.code(), Some(1), "{table}");
    assert!(
        table.contains("NOT READY") && table.contains("enabled for no application"),
        "{table}"
    );

    let missing = plan(
        &emulator,
        ("planner", PLANNER_SECRET),
        &[&file, "--connection-id", "con_DoesNotExist0001"],
    )
    .await;
    assert!(text(&missing).0.contains("does not exist in this tenant"));
    assert_eq!(missing.status.code(), Some(1));

    let read_only = plan(
        &emulator,
        ("reader", "reader-secret"),
        &[&file, "--connection-id", DEFAULT_CONNECTION_ID],
    )
    .await;
    let (table, _) = text(&read_only);
    assert_eq!(read_only.status.code(), Some(1), "{table}");
    assert!(table.contains("MISSING create:users"), "{table}");

    // Without read:connections the connection is not checked, and the table says so.
    let narrow = plan(
        &emulator,
        (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        &[&file, "--connection-id", DEFAULT_CONNECTION_ID],
    )
    .await;
    let (table, _) = text(&narrow);
    assert_eq!(narrow.status.code(), Some(0), "{table}");
    assert!(
        table.contains("not checked: the token lacks read:connections"),
        "{table}"
    );

    let wrong = plan(
        &emulator,
        ("planner", "wrong"),
        &[&file, "--connection-id", DEFAULT_CONNECTION_ID],
    )
    .await;
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        text(&wrong).1.contains("refused the client credentials"),
        "{}",
        text(&wrong).1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_shows_the_rate_limit_waits() {
    let emulator = Emulator::start(tenant()).await.unwrap();
    let faults = Faults {
        seed: 11,
        extra_429_rate: 0.6,
        ..Faults::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let file = export(dir.path(), 5, 0);
    let args = [file.as_str(), "--connection-id", DEFAULT_CONNECTION_ID];
    let limited = || {
        emulator
            .requests()
            .iter()
            .filter(|r| r.status == 429)
            .count()
    };

    emulator.set_faults(faults.clone());
    let loud = plan(
        &emulator,
        ("planner", PLANNER_SECRET),
        &["-v", args[0], args[1], args[2]],
    )
    .await;
    let seen = limited();
    assert!(
        seen > 0,
        "the fault seed gave no 429: the test proves nothing"
    );
    assert!(loud.status.success(), "{}", text(&loud).1);
    let stderr = text(&loud).1;
    assert!(
        stderr.contains("Management API rate limit: waiting for the reset"),
        "{stderr}"
    );
    assert!(!stderr.contains(PLANNER_SECRET));

    // The same faults (the generator restarts), without -v: the waits happen, silently.
    emulator.set_faults(faults);
    let quiet = plan(&emulator, ("planner", PLANNER_SECRET), &args).await;
    assert!(limited() > seen, "the quiet run met no 429");
    assert!(quiet.status.success());
    assert!(!text(&quiet).1.contains("rate limit"), "{}", text(&quiet).1);
}
