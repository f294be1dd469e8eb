//! `hash check`, `hash convert` and `split --canary` as an operator runs them, on records and
//! legacy hashes made by independent implementations (tests/vectors/gen_hash_vectors.py).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

#[path = "../../../tests/support/python.rs"]
mod python_support;
use python_support::python;

fn generate(dir: &Path) -> Value {
    let out = dir.join("vectors.json");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/gen_hash_vectors.py");
    assert!(Command::new(python())
        .arg(script)
        .arg(&out)
        .status()
        .expect("generator runs")
        .success());
    serde_json::from_slice(&std::fs::read(out).expect("written")).expect("JSON")
}

fn cli(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auth0-s3-import"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the CLI runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("written");
    child.wait_with_output().expect("the CLI ends")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The first correct salted sha256 vector.
fn salted_sha256(vectors: &Value) -> (Value, String) {
    let v = vectors["verify"]
        .as_array()
        .expect("list")
        .iter()
        .find(|v| {
            v["family"] == "sha256"
                && v["expect"] == true
                && v["record"]["custom_password_hash"].get("salt").is_some()
        })
        .expect("a salted sha256 vector");
    (
        v["record"].clone(),
        v["password"].as_str().expect("password").to_string(),
    )
}

#[test]
fn hash_check_exits_0_1_2_names_the_fix_and_never_prints_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vectors = generate(dir.path());
    let (record, password) = salted_sha256(&vectors);
    let hash = record["custom_password_hash"]["hash"]["value"]
        .as_str()
        .expect("hash")
        .to_string();

    let o = cli(
        &["hash", "check", "--password", &password],
        &record.to_string(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let o = cli(
        &["hash", "check", "--password", &format!("{password}!")],
        &record.to_string(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    let mut swapped = record.clone();
    let position = if swapped["custom_password_hash"]["salt"]["position"] == "suffix" {
        "prefix"
    } else {
        "suffix"
    };
    let declared = if position == "suffix" {
        "prefix"
    } else {
        "suffix"
    };
    swapped["custom_password_hash"]["salt"]["position"] = json!(position);
    let file = dir.path().join("user.json");
    std::fs::write(&file, swapped.to_string()).expect("written");
    let o = cli(
        &[
            "hash",
            "check",
            "--password",
            &password,
            &file.to_string_lossy(),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "verifies with salt.position = {declared}; your records declare {position}"
        )),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains(&password) && !text(&o).contains(&hash));

    for unusable in [
        json!({"email": "a@example.com"}),
        json!({"email": "a@example.com", "custom_password_hash": {"algorithm": "sha256", "hash": {"value": "zz", "encoding": "hex"}}}),
    ] {
        let o = cli(
            &["hash", "check", "--password", &password],
            &unusable.to_string(),
        );
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    }
    let o = cli(&["hash", "check", "--password", &password], "{not json");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn hash_convert_prints_a_fragment_that_verifies_or_refuses_with_what_to_do() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vectors = generate(dir.path());
    let conversions = vectors["convert"].as_array().expect("list");
    for label in [
        "django pbkdf2_sha256",
        "aspnet-identity v3 sha256",
        "keycloak pbkdf2-sha256",
        "werkzeug pbkdf2:sha256:1000",
        "php PASSWORD_BCRYPT $2y$10$",
    ] {
        let v = conversions
            .iter()
            .find(|v| v["label"] == label)
            .expect(label);
        let stored = v["stored"].as_str().expect("stored");
        let o = cli(
            &[
                "hash",
                "convert",
                "--from",
                v["format"].as_str().expect("format"),
                "-",
            ],
            stored,
        );
        assert_eq!(o.status.code(), Some(0), "{label}: {}", text(&o));
        let fragment: Value = serde_json::from_slice(&o.stdout).expect("a JSON fragment");
        let mut record = json!({"email": "converted@example.com"});
        for (k, val) in fragment.as_object().expect("an object") {
            record[k] = val.clone();
        }
        let o = cli(
            &[
                "hash",
                "check",
                "--password",
                v["password"].as_str().expect("password"),
            ],
            &record.to_string(),
        );
        assert_eq!(o.status.code(), Some(0), "{label}: {}", text(&o));
    }
    let phpass = conversions
        .iter()
        .find(|v| v["format"] == "phpass")
        .expect("a phpass hash");
    let o = cli(
        &[
            "hash",
            "convert",
            "--from",
            "phpass",
            phpass["stored"].as_str().expect("stored"),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("reset") && text(&o).contains("automatic migration"),
        "{}",
        text(&o)
    );
    let o = cli(&["hash", "convert", "--from", "md5crypt", "x"], "");
    assert_ne!(o.status.code(), Some(0));
}

#[test]
fn split_with_a_failing_canary_exits_1_and_publishes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vectors = generate(dir.path());
    let (record, password) = salted_sha256(&vectors);
    let email = record["email"].as_str().expect("email").to_string();
    let mut users: Vec<Value> = (0..50)
        .map(|i| json!({"email": format!("u{i}@example.com")}))
        .collect();
    users.push(record);
    let input = dir.path().join("users.json");
    std::fs::write(&input, serde_json::to_vec(&users).expect("json")).expect("written");
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        json!([{"email": email, "password": password}]).to_string(),
    )
    .expect("written");
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(
        &bad,
        format!(
            "{}\n",
            json!({"email": email, "password": format!("{password}-no")})
        ),
    )
    .expect("written");

    let out = dir.path().join("ok");
    let o = cli(
        &[
            "split",
            &input.to_string_lossy(),
            "--out",
            &out.to_string_lossy(),
            "--canary",
            &good.to_string_lossy(),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("canaries   1 checked, 1 passed, 0 failed, 0 missing"),
        "{}",
        text(&o)
    );

    let out = dir.path().join("stopped");
    let o = cli(
        &[
            "split",
            &input.to_string_lossy(),
            "--out",
            &out.to_string_lossy(),
            "--canary",
            &bad.to_string_lossy(),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("canary email {email} failed")),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains(&password));
    let chunks = out.join("chunks");
    let left = std::fs::read_dir(&chunks).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "chunks left in {}", chunks.display());
    assert!(out.join("report.json").exists() && out.join("report.html").exists());

    let out = dir.path().join("warned");
    let o = cli(
        &[
            "split",
            &input.to_string_lossy(),
            "--out",
            &out.to_string_lossy(),
            "--canary",
            &bad.to_string_lossy(),
            "--canary-warn",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
