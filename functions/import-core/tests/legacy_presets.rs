//! Every preset against an export made the way its system makes one (tests/vectors/
//! gen_legacy_fixtures.py: hashlib, the bcrypt package, ASP.NET Identity's and Keycloak's
//! layouts), split, and each converted user's known password checked with the verifier.
//! Failures name users by e-mail only: no password or hash is printed.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use auth0_password_hash::check;
use import_core::manifest::{RunManifest, Source};
use import_core::mapping::presets;
use import_core::split::{split, MemorySink, SplitOptions};
use serde_json::Value;

#[path = "../../../tests/support/python.rs"]
mod python_support;
use python_support::python;

struct Fixtures {
    _dir: tempfile::TempDir,
    path: PathBuf,
    expect: Value,
}

fn fixtures() -> Fixtures {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors/gen_legacy_fixtures.py");
    let status = Command::new(python())
        .arg(&script)
        .arg(dir.path())
        .status()
        .expect("running the fixture generator (make deps-python installs bcrypt)");
    assert!(status.success(), "gen_legacy_fixtures.py failed: {status}");
    let expect = serde_json::from_slice(&std::fs::read(dir.path().join("expect.json")).unwrap())
        .expect("expect.json");
    Fixtures {
        path: dir.path().to_path_buf(),
        _dir: dir,
        expect,
    }
}

struct Split {
    manifest: RunManifest,
    users: BTreeMap<String, Value>,
    rejects: Vec<Value>,
}

fn split_preset(fx: &Fixtures, preset: &str) -> Split {
    let file = fx.expect[preset]["file"].as_str().unwrap();
    let bytes = std::fs::read(fx.path.join(file)).unwrap();
    let mapping = presets::mapping(preset).unwrap().map(Arc::new);
    let options = SplitOptions {
        max_chunk_bytes: 2048,
        mapping,
        ..SplitOptions::default()
    };
    let mut sink = MemorySink::default();
    let source = Source::Local {
        path: file.into(),
        size: None,
    };
    let manifest = split(
        Cursor::new(bytes),
        source,
        "run-legacy",
        &options,
        &mut sink,
    )
    .expect("split runs")
    .manifest;
    assert!(
        manifest.failure.is_none(),
        "{preset}: {:?}",
        manifest.failure
    );
    assert!(manifest.conservation_holds);
    let mut users = BTreeMap::new();
    for chunk in &manifest.chunks {
        let list: Vec<Value> = serde_json::from_slice(&sink.objects[&chunk.key]).unwrap();
        for user in list {
            users.insert(user["email"].as_str().unwrap().to_string(), user);
        }
    }
    let rejects = manifest
        .rejects_key
        .as_ref()
        .and_then(|k| sink.objects.get(k))
        .map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .unwrap_or_default();
    Split {
        manifest,
        users,
        rejects,
    }
}

#[test]
fn every_preset_round_trips_and_every_converted_password_verifies() {
    let fx = fixtures();
    for preset in [
        "supabase",
        "django",
        "aspnet-identity",
        "cognito",
        "firebase",
        "keycloak",
    ] {
        let expect = &fx.expect[preset];
        let run = split_preset(&fx, preset);
        let m = &run.manifest;
        let rejected = expect["rejected"].as_object().unwrap();
        let without = expect["without_password"].as_array().unwrap();
        let passwords = expect["passwords"].as_object().unwrap();
        assert_eq!(m.users_in, expect["users_in"].as_u64().unwrap(), "{preset}");
        assert_eq!(
            m.users_rejected as usize,
            rejected.len(),
            "{preset}: {:?}",
            run.rejects
        );
        assert_eq!(
            m.transformations.imported_without_password as usize,
            without.len(),
            "{preset}"
        );
        for (email, password) in passwords {
            let user = run
                .users
                .get(email)
                .unwrap_or_else(|| panic!("{preset}: {email} not imported"));
            let verified = check(user, password.as_str().unwrap())
                .unwrap_or_else(|e| panic!("{preset}: {email}: {e}"));
            assert!(verified, "{preset}: {email}'s password does not verify");
            assert!(
                !check(user, "not the password").unwrap(),
                "{preset}: {email}"
            );
        }
        for email in without {
            let user = &run.users[email.as_str().unwrap()];
            assert!(
                user.get("password_hash").is_none() && user.get("custom_password_hash").is_none()
            );
        }
        for (reject, (email, code)) in run.rejects.iter().zip(rejected) {
            let reasons = reject["reasons"].as_array().unwrap();
            assert_eq!(reasons[0]["code"], *code, "{preset}: {email}: {reject}");
            let message = reasons[0]["message"].as_str().unwrap();
            assert!(message.starts_with("line "), "{preset}: {message}");
        }
    }
}

#[test]
fn presets_carry_the_fields_each_system_has() {
    let fx = fixtures();
    let supabase = split_preset(&fx, "supabase");
    let first = &supabase.users["sb0@example.com"];
    assert_eq!(first["email_verified"], true);
    assert_eq!(first["user_metadata"]["full_name"], "User, 0");
    // Upper-case addresses are lowercased; unconfirmed e-mails are not verified.
    assert_eq!(supabase.users["sb1@example.com"]["email_verified"], false);
    let django = split_preset(&fx, "django");
    let user = &django.users["dj3@example.com"];
    assert_eq!(user["name"], "First3 Last3");
    assert_eq!(user["app_metadata"]["django_is_active"], false);
    let firebase = split_preset(&fx, "firebase");
    let reject = firebase.rejects[0]["reasons"][0]["message"]
        .as_str()
        .unwrap();
    assert!(
        reject.contains("Firebase scrypt is not a hash Auth0 can import"),
        "{reject}"
    );
    assert_eq!(
        firebase.users["google@example.com"]["app_metadata"]["role"],
        "admin"
    );
    let keycloak = split_preset(&fx, "keycloak");
    assert_eq!(
        keycloak.users["kc0@example.com"]["user_metadata"]["attributes"]["locale"][0],
        "de"
    );
    let cognito = split_preset(&fx, "cognito");
    assert_eq!(
        cognito.users["cg1@example.com"]["phone_number"],
        "+447000000001"
    );
}
