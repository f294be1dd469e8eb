//! The CLI as an operator runs it: the binary on files, its exit status, its summary and the
//! run folder it leaves.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_auth0-s3-import"))
        .args(args)
        .output()
        .expect("the CLI runs")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

fn users(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"email": format!("u{i}@example.com"), "name": "Jürgen Weiß", "app_metadata": {"i": i}}))
        .collect()
}

#[test]
fn split_writes_the_run_folder_and_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = users(400);
    records[5] = json!({"email": "broken"});
    let input = write(
        dir.path(),
        "users.json",
        &serde_json::to_vec_pretty(&records).unwrap(),
    );
    let out = dir.path().join("run");
    let o = cli(&[
        "split",
        &input,
        "--out",
        out.to_str().unwrap(),
        "--max-chunk-bytes",
        "4000",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    // One record rejected: exit 3, so a CI step can stop on a file that would not import whole.
    assert_eq!(
        o.status.code(),
        Some(3),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("users in   400"), "{stdout}");
    assert!(stdout.contains("rejected   1"), "{stdout}");
    assert!(stdout.contains("INVALID_FORMAT"), "{stdout}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let chunks = manifest["chunks"].as_array().unwrap();
    assert!(chunks.len() > 5);
    let mut total = 0;
    for c in chunks {
        let bytes = std::fs::read(out.join(c["key"].as_str().unwrap())).unwrap();
        assert!(bytes.len() <= 4000);
        total += serde_json::from_slice::<Vec<Value>>(&bytes).unwrap().len();
    }
    assert_eq!(total, 399);
    assert_eq!(
        std::fs::read_to_string(out.join("rejects.ndjson"))
            .unwrap()
            .lines()
            .count(),
        1
    );

    // The folder now holds a committed run: a second split into it is refused.
    let again = cli(&["split", &input, "--out", out.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a run"));
}

#[test]
fn a_file_without_rejects_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "clean.json",
        &serde_json::to_vec(&users(20)).unwrap(),
    );
    let out = dir.path().join("run");
    let o = cli(&["split", &input, "--out", out.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn a_broken_file_fails_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = serde_json::to_vec_pretty(&users(50)).unwrap();
    bytes.truncate(bytes.len() - 40);
    let input = write(dir.path(), "cut.json", &bytes);
    let out = dir.path().join("run");
    let o = cli(&["split", &input, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("FAILED") && stdout.contains("truncated"),
        "{stdout}"
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "failed");
    assert!(manifest["failure"]["line"].as_u64().is_some());
    assert_eq!(std::fs::read_dir(out.join("chunks")).unwrap().count(), 0);
}

#[test]
fn a_chunk_limit_past_auth0s_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "u.json",
        &serde_json::to_vec(&users(3)).unwrap(),
    );
    let out = dir.path().join("run");
    let o = cli(&[
        "split",
        &input,
        "--out",
        out.to_str().unwrap(),
        "--max-chunk-bytes",
        "512000",
    ]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("512000") && stderr.contains("max-chunk-bytes"),
        "{stderr}"
    );
}
