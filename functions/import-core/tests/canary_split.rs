//! The canary check inside the split stage: records whose hashes come from independent
//! implementations (tests/vectors/gen_hash_vectors.py), canaries for them, and the run folder
//! split leaves when every canary passes, when one is corrupted, missing, or only warns.

use std::io::Cursor;
use std::path::PathBuf;
use std::process::Command;

use auth0_password_hash::Password;
use import_core::canary::{Canaries, Canary, CanaryIdentity, CanaryOutcome};
use import_core::layout::{MANIFEST, REPORT_HTML, REPORT_JSON};
use import_core::manifest::{RunManifest, RunStatus, Source};
use import_core::report::RunReport;
use import_core::split::{split, MemorySink, SplitOptions};
use serde_json::{json, Value};

#[path = "../../../tests/support/python.rs"]
mod python_support;
use python_support::python;

/// One correct record (and its password) per algorithm family, at a cheap work factor.
fn correct_records() -> Vec<(Value, String)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("vectors.json");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/gen_hash_vectors.py");
    let status = Command::new(python())
        .arg(&script)
        .arg(&out)
        .status()
        .expect("running the generator");
    assert!(status.success());
    let vectors: Value =
        serde_json::from_slice(&std::fs::read(&out).expect("written")).expect("JSON");
    let mut seen = std::collections::BTreeSet::new();
    let mut records = Vec::new();
    for v in vectors["verify"].as_array().expect("list") {
        let family = v["family"].as_str().unwrap_or_default().to_string();
        let label = v["label"].as_str().unwrap_or_default();
        let salted = v["record"]["custom_password_hash"].get("salt").is_some();
        // One per family, salted where the family takes a salt, at a cheap work factor.
        let wants_salt =
            ["bcrypt", "md5", "sha256", "hmac", "sha1", "md4", "sha512"].contains(&family.as_str());
        if v["expect"] != true
            || v["reading"] != "default"
            || (wants_salt && !salted)
            || label.contains("cost 1")
            || label.contains("65536")
            || label.contains("defaults")
            || label.contains("16384")
            || seen.contains(&family)
        {
            continue;
        }
        seen.insert(family);
        records.push((
            v["record"].clone(),
            v["password"].as_str().unwrap_or_default().to_string(),
        ));
    }
    assert_eq!(seen.len(), 12, "one record per family: {seen:?}");
    records
}

fn canary_for(record: &Value, password: &str) -> Canary {
    Canary {
        identity: CanaryIdentity::Email(
            record["email"].as_str().unwrap_or_default().to_uppercase(),
        ),
        password: Password::new(password),
    }
}

/// A drop of `filler` ordinary users around the canary records, as NDJSON.
fn drop_with(records: &[Value], filler: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..filler {
        let user =
            json!({"email": format!("filler{i}@example.org"), "name": format!("Filler {i}")});
        out.extend_from_slice(user.to_string().as_bytes());
        out.push(b'\n');
        if let Some(r) = records.get(i) {
            out.extend_from_slice(r.to_string().as_bytes());
            out.push(b'\n');
        }
    }
    out
}

struct Run {
    sink: MemorySink,
    manifest: RunManifest,
}

fn run(drop: Vec<u8>, canaries: Canaries) -> Run {
    let mut sink = MemorySink::default();
    let options = SplitOptions {
        max_chunk_bytes: 4096,
        canaries,
        ..SplitOptions::default()
    };
    let source = Source::Local {
        path: "canaries.ndjson".into(),
        size: None,
    };
    let outcome =
        split(Cursor::new(drop), source, "run-c", &options, &mut sink).expect("split runs");
    let manifest: RunManifest = serde_json::from_slice(&sink.objects[MANIFEST]).expect("manifest");
    assert_eq!(manifest, outcome.manifest);
    Run { sink, manifest }
}

fn no_plaintext_anywhere(run: &Run, passwords: &[String]) {
    for (key, bytes) in &run.sink.objects {
        let text = String::from_utf8_lossy(bytes);
        for p in passwords {
            assert!(!text.contains(p.as_str()), "a canary password is in {key}");
        }
    }
}

#[test]
fn correct_records_pass_and_each_corruption_stops_the_run_naming_the_parameter() {
    let records = correct_records();
    let passwords: Vec<String> = records.iter().map(|(_, p)| p.clone()).collect();
    let values: Vec<Value> = records.iter().map(|(r, _)| r.clone()).collect();
    let canaries = Canaries {
        list: records.iter().map(|(r, p)| canary_for(r, p)).collect(),
        warn_only: false,
    };

    let good = run(drop_with(&values, 300), canaries.clone());
    assert_eq!(
        good.manifest.status,
        RunStatus::Split,
        "{:?}",
        good.manifest.failure
    );
    let report = good.manifest.canaries.clone().expect("a canary report");
    assert_eq!(
        (report.checked, report.passed, report.failed, report.missing),
        (12, 12, 0, 0)
    );
    assert!(!report.blocked);
    assert!(!good.manifest.chunks.is_empty());
    no_plaintext_anywhere(&good, &passwords);

    // One single-parameter corruption per record: the run stops and the doctor names it.
    let corruptions: Vec<(usize, &str, Value)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let mut r = r.clone();
            // password_hash has no declared parameter to corrupt.
            r.get("custom_password_hash")?;
            let salt = r["custom_password_hash"].get("salt").cloned();
            let parameter = if let Some(salt) = salt {
                if cph_algorithm(&r) == "scrypt" {
                    return None;
                }
                let flipped = if salt.get("position") == Some(&json!("suffix")) {
                    "prefix"
                } else {
                    "suffix"
                };
                r["custom_password_hash"]["salt"]["position"] = json!(flipped);
                "salt.position"
            } else {
                r["custom_password_hash"]["password"] = json!({"encoding": "utf16le"});
                "password.encoding"
            };
            Some((i, parameter, r))
        })
        .collect();
    assert!(corruptions.len() >= 9, "{} corruptions", corruptions.len());
    for (i, parameter, corrupted) in corruptions {
        let mut drop_records = values.clone();
        drop_records[i] = corrupted;
        let stopped = run(drop_with(&drop_records, 300), canaries.clone());
        let label = records[i].0["custom_password_hash"]["algorithm"].to_string();
        assert_eq!(stopped.manifest.status, RunStatus::Failed, "{label}");
        assert!(stopped.manifest.chunks.is_empty(), "{label}");
        assert!(
            !stopped
                .sink
                .objects
                .keys()
                .any(|k| k.starts_with("chunks/")),
            "{label}: a chunk (with hashes) was left in the run folder"
        );
        let c = stopped.manifest.canaries.as_ref().expect("canary report");
        assert!(
            c.blocked && c.failed == 1 && c.passed == 11,
            "{label}: {c:?}"
        );
        let failed = c
            .results
            .iter()
            .find(|r| r.outcome == CanaryOutcome::Failed)
            .expect("the failed one");
        let doctor = failed.doctor.as_deref().unwrap_or_default();
        assert!(
            doctor.starts_with(&format!("verifies with {parameter} = ")),
            "{label}: {doctor}"
        );
        let reason = &stopped.manifest.failure.as_ref().expect("failure").reason;
        assert!(
            reason.contains(&failed.canary) && reason.contains(parameter),
            "{label}: {reason}"
        );
        // The run's report is written by split, and says the same.
        let report: RunReport =
            serde_json::from_slice(&stopped.sink.objects[REPORT_JSON]).expect("report.json");
        assert!(report.conservation_holds, "{label}");
        assert_eq!(report.canaries.as_ref().map(|c| c.failed), Some(1));
        let html = String::from_utf8_lossy(&stopped.sink.objects[REPORT_HTML]).into_owned();
        assert!(
            html.contains("Canaries") && html.contains(parameter),
            "{label}"
        );
        no_plaintext_anywhere(&stopped, &passwords);
    }
}

fn cph_algorithm(record: &Value) -> &str {
    record["custom_password_hash"]["algorithm"]
        .as_str()
        .unwrap_or_default()
}

#[test]
fn a_missing_canary_stops_the_run_and_warn_only_lets_it_go_on() {
    let records = correct_records();
    let values: Vec<Value> = records.iter().map(|(r, _)| r.clone()).collect();
    let mut list: Vec<Canary> = records
        .iter()
        .take(2)
        .map(|(r, p)| canary_for(r, p))
        .collect();
    list.push(Canary {
        identity: CanaryIdentity::Username("nobody-here".into()),
        password: Password::new("irrelevant"),
    });
    let stopped = run(
        drop_with(&values, 50),
        Canaries {
            list: list.clone(),
            warn_only: false,
        },
    );
    assert_eq!(stopped.manifest.status, RunStatus::Failed);
    let c = stopped.manifest.canaries.as_ref().expect("report");
    assert_eq!((c.checked, c.passed, c.missing), (3, 2, 1));
    assert!(stopped
        .manifest
        .failure
        .as_ref()
        .expect("failure")
        .reason
        .contains("username nobody-here missing"));

    let warned = run(
        drop_with(&values, 50),
        Canaries {
            list,
            warn_only: true,
        },
    );
    assert_eq!(warned.manifest.status, RunStatus::Split);
    let c = warned.manifest.canaries.as_ref().expect("report");
    assert!(c.warn_only && !c.blocked && c.missing == 1);
    assert!(!warned.manifest.chunks.is_empty());
}
