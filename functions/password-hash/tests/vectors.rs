//! The verifier, the converter and the doctor against vectors made by independent
//! implementations (tests/vectors/gen_hash_vectors.py: hashlib, bcrypt, argon2-cffi, passlib,
//! Django, Werkzeug, Node's Buffer). The fixture is generated at test time, never by our code.
//! Failures name the vector's label only: no password or hash is printed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use auth0_password_hash::encoding::BinaryEncoding;
use auth0_password_hash::stored::SaltPosition;
use auth0_password_hash::{
    check, check_with, convert, convert_digest, diagnose, BareSalt, ConvertError, HmacSalt,
    LegacyFormat, Reading,
};
use serde_json::{json, Value};

/// The project venv's Python (`make deps-python`), $PYTHON, or python3.
#[path = "../../../tests/support/python.rs"]
mod python_support;
use python_support::python;

fn vectors() -> &'static Value {
    static VECTORS: OnceLock<Value> = OnceLock::new();
    VECTORS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("hash-vectors.json");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/vectors/gen_hash_vectors.py");
        let status = Command::new(python())
            .arg(&script)
            .arg(&out)
            .status()
            .expect("running the vector generator (make deps-python installs its packages)");
        assert!(status.success(), "gen_hash_vectors.py failed: {status}");
        serde_json::from_slice(&std::fs::read(&out).expect("vectors written"))
            .expect("vectors are JSON")
    })
}

fn list(name: &str) -> &'static [Value] {
    vectors()[name].as_array().expect("a list of vectors")
}

fn reading(name: &str) -> Reading {
    match name {
        "default" => Reading::default(),
        "hmac_salt_ignored" => Reading {
            hmac_salt: HmacSalt::Ignored,
        },
        other => panic!("unknown reading {other}"),
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().expect("a string field")
}

/// Every family Auth0 imports, with the least number of vectors each must have.
const FAMILIES: &[(&str, usize)] = &[
    ("password_hash", 8),
    ("argon2", 30),
    ("bcrypt", 30),
    ("hmac", 300),
    ("ldap", 40),
    ("md4", 60),
    ("md5", 60),
    ("sha1", 60),
    ("sha256", 60),
    ("sha512", 60),
    ("pbkdf2", 50),
    ("scrypt", 30),
];

#[test]
fn hash_check_agrees_with_every_independent_vector() {
    let mut agree: BTreeMap<String, usize> = BTreeMap::new();
    let mut disagree = Vec::new();
    for v in list("verify") {
        let family = text(v, "family");
        let expect = v["expect"].as_bool().expect("expect is a bool");
        let got = check_with(
            &v["record"],
            text(v, "password"),
            reading(text(v, "reading")),
        );
        if got == Ok(expect) {
            *agree.entry(family.to_string()).or_default() += 1;
        } else {
            disagree.push(format!(
                "{} [{}]: expected {expect}, got {}",
                text(v, "label"),
                text(v, "reading"),
                match got {
                    Ok(b) => b.to_string(),
                    Err(e) => format!("error: {e}"),
                }
            ));
        }
    }
    eprintln!("vectors agreeing, by algorithm: {agree:?}");
    assert!(
        disagree.is_empty(),
        "{} disagreements:\n{}",
        disagree.len(),
        disagree.join("\n")
    );
    for (family, least) in FAMILIES {
        let n = agree.get(*family).copied().unwrap_or(0);
        assert!(
            n >= *least,
            "{family}: {n} vectors, expected at least {least}"
        );
    }
    assert_eq!(
        agree.len(),
        FAMILIES.len(),
        "a family without a row in FAMILIES"
    );
}

#[test]
fn both_readings_of_a_salt_with_hmac_are_tested() {
    let ignored: Vec<&Value> = list("verify")
        .iter()
        .filter(|v| text(v, "reading") == "hmac_salt_ignored" && v["expect"] == true)
        .collect();
    assert!(
        ignored.len() >= 18,
        "{} salt-ignored hmac vectors",
        ignored.len()
    );
    for v in ignored {
        // The reading we did not choose verifies them; ours does not, and the doctor says why.
        assert_eq!(
            check(&v["record"], text(v, "password")),
            Ok(false),
            "{}",
            text(v, "label")
        );
        let finding = diagnose(&v["record"], text(v, "password")).finding;
        let finding =
            finding.unwrap_or_else(|| panic!("{}: the doctor found nothing", text(v, "label")));
        assert_eq!(
            finding.parameter,
            "salt (with hmac)",
            "{}",
            text(v, "label")
        );
    }
}

fn converted_record(fragment: &auth0_password_hash::Fragment) -> Value {
    let mut record = json!({"email": "converted@example.com", "email_verified": true});
    if let Some(map) = record.as_object_mut() {
        fragment.merge_into(map);
    }
    record
}

#[test]
fn every_legacy_conversion_verifies_the_password_it_was_made_for() {
    let mut proven: BTreeMap<String, usize> = BTreeMap::new();
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    for v in list("convert") {
        let label = text(v, "label");
        let password = text(v, "password");
        let (name, result) = if text(v, "format") == "digest" {
            let salt = v["salt"].as_object().map(|salt| BareSalt {
                value: salt["value"].as_str().expect("salt value"),
                encoding: BinaryEncoding::parse(salt["encoding"].as_str().expect("salt encoding"))
                    .expect("a salt encoding"),
                position: if salt["position"] == "suffix" {
                    SaltPosition::Suffix
                } else {
                    SaltPosition::Prefix
                },
            });
            (
                "digest",
                convert_digest(text(v, "algorithm"), text(v, "stored"), salt),
            )
        } else {
            let format = LegacyFormat::parse(text(v, "format")).expect("a known format name");
            (format.name(), convert(format, text(v, "stored")))
        };
        match text(v, "expect") {
            "ok" => {
                let fragment = result.unwrap_or_else(|e| panic!("{label}: not converted: {e}"));
                let record = converted_record(&fragment);
                assert_eq!(
                    check(&record, password),
                    Ok(true),
                    "{label}: converted hash does not verify"
                );
                assert_eq!(
                    check(&record, &format!("{password}x")),
                    Ok(false),
                    "{label}: converted hash verifies a wrong password"
                );
                *proven.entry(name.to_string()).or_default() += 1;
            }
            "unsupported" => {
                match result {
                    Err(ConvertError::Unsupported { .. }) => {}
                    other => panic!("{label}: expected a refusal, got {other:?}"),
                }
                let message = result.unwrap_err().to_string();
                assert!(
                    message.contains("reset") && message.contains("custom database"),
                    "{label}: {message}"
                );
                *refused.entry(name.to_string()).or_default() += 1;
            }
            other => panic!("{label}: unknown expectation {other}"),
        }
    }
    eprintln!("conversions proven, by format: {proven:?}; refused: {refused:?}");
    for format in [
        "bcrypt",
        "django",
        "aspnet-identity",
        "keycloak",
        "werkzeug",
        "passlib",
        "php",
        "ldap",
    ] {
        assert!(
            proven.get(format).copied().unwrap_or(0) >= 3,
            "{format}: {:?}",
            proven.get(format)
        );
    }
    for format in ["firebase-scrypt", "phpass", "drupal7"] {
        assert!(refused.contains_key(format), "{format} never refused");
    }
}

// ---- The doctor names each single-parameter corruption of a correct record ----------------------

/// A corruption: the parameter the doctor must name, and the record with it changed.
struct Corruption {
    parameter: &'static str,
    record: Value,
}

fn cph_mut(record: &mut Value) -> &mut serde_json::Map<String, Value> {
    record["custom_password_hash"]
        .as_object_mut()
        .expect("a custom hash")
}

/// The single-parameter corruptions of `record` within the doctor's domains (its candidate
/// values), written out here independently of the doctor's own list.
fn corruptions(record: &Value) -> Vec<Corruption> {
    let mut out = Vec::new();
    let Some(cph) = record.get("custom_password_hash") else {
        return out;
    };
    let algorithm = cph["algorithm"].as_str().unwrap_or_default();
    let mut corrupt = |parameter: &'static str,
                       change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut r = record.clone();
        change(cph_mut(&mut r));
        out.push(Corruption {
            parameter,
            record: r,
        });
    };
    let digest_family = ["md4", "md5", "sha1", "sha256", "sha512"].contains(&algorithm);
    if let Some(salt) = cph.get("salt") {
        if algorithm != "scrypt" {
            let flipped = if salt["position"] == "suffix" {
                "prefix"
            } else {
                "suffix"
            };
            corrupt("salt.position", &|c| {
                c["salt"]["position"] = json!(flipped);
            });
        }
        let declared = salt["encoding"].as_str().unwrap_or("utf8").to_string();
        for encoding in ["utf8", "hex", "base64"] {
            if encoding != declared {
                corrupt("salt.encoding", &|c| {
                    c["salt"]["encoding"] = json!(encoding);
                });
            }
        }
    } else if digest_family || algorithm == "bcrypt" || algorithm == "hmac" {
        // With hmac, a salt that should not be there is the reading we did not choose.
        let parameter = if algorithm == "hmac" {
            "salt (with hmac)"
        } else {
            "salt"
        };
        corrupt(parameter, &|c| {
            c.insert(
                "salt".into(),
                json!({"value": "pepper", "position": "prefix"}),
            );
        });
    }
    if digest_family || algorithm == "hmac" || algorithm == "scrypt" {
        let other = if cph["hash"]["encoding"] == "hex" {
            "base64"
        } else {
            "hex"
        };
        corrupt("hash.encoding", &|c| {
            c["hash"]["encoding"] = json!(other);
        });
    }
    let declared = cph["password"]["encoding"]
        .as_str()
        .unwrap_or("utf8")
        .to_string();
    for encoding in ["utf8", "utf16le", "latin1"] {
        let same = encoding == declared
            || (encoding == "utf16le" && declared == "ucs2")
            || (encoding == "latin1" && ["binary", "ascii"].contains(&declared.as_str()));
        if !same {
            corrupt("password.encoding", &|c| {
                c.insert("password".into(), json!({"encoding": encoding}));
            });
        }
    }
    if algorithm == "hmac" {
        let declared = cph["hash"]["key"]["encoding"]
            .as_str()
            .unwrap_or("utf8")
            .to_string();
        for encoding in ["utf8", "hex", "base64"] {
            if encoding != declared {
                corrupt("hash.key.encoding", &|c| {
                    c["hash"]["key"]["encoding"] = json!(encoding);
                });
            }
        }
        let digest = cph["hash"]["digest"].as_str().unwrap_or_default();
        let same_size: &[&str] = match digest {
            "md4" => &["md5"],
            "md5" => &["md4"],
            "sha1" => &["ripemd160"],
            "ripemd160" => &["sha1"],
            "sha512" => &["whirlpool"],
            "whirlpool" => &["sha512"],
            _ => &[],
        };
        for other in same_size {
            corrupt("hash.digest", &|c| {
                c["hash"]["digest"] = json!(other);
            });
        }
    }
    if algorithm == "md4" || algorithm == "md5" {
        let other = if algorithm == "md4" { "md5" } else { "md4" };
        corrupt("algorithm", &|c| {
            c["algorithm"] = json!(other);
        });
    }
    if algorithm == "pbkdf2" {
        let value = cph["hash"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Vectors state i=1000, one of the doctor's framework defaults: any other default corrupts it.
        if value.contains("$i=1000,") {
            corrupt("i= in hash.value (iterations)", &|c| {
                c["hash"]["value"] = json!(value.replacen("$i=1000,", "$i=10000,", 1));
            });
        }
        for (from, to) in [
            ("$pbkdf2-sha512$", "$pbkdf2-sha256$"),
            ("$pbkdf2-sha256$", "$pbkdf2-sha1$"),
            ("$pbkdf2-sha1$", "$pbkdf2-sha512$"),
        ] {
            if value.starts_with(from) {
                corrupt("the pbkdf2 digest ($pbkdf2-<digest>$)", &|c| {
                    c["hash"]["value"] = json!(value.replacen(from, to, 1));
                });
            }
        }
    }
    if algorithm == "scrypt" {
        let cost = cph.get("cost").and_then(Value::as_u64).unwrap_or(16_384);
        if [1_024, 16_384].contains(&cost) {
            let other = if cost == 1_024 { 16_384 } else { 1_024 };
            corrupt("cost", &|c| {
                c.insert("cost".into(), json!(other));
            });
        }
        let block = cph.get("blockSize").and_then(Value::as_u64).unwrap_or(8);
        if [1, 8].contains(&block) {
            let other = if block == 8 { 1 } else { 8 };
            corrupt("blockSize", &|c| {
                c.insert("blockSize".into(), json!(other));
            });
        }
    }
    out
}

/// Records at a high work factor (bcrypt cost ≥ 10, argon2 ≥ 64 MiB, scrypt N ≥ 16384, PBKDF2's
/// default 100000 iterations).
fn expensive(record: &Value) -> bool {
    let cph = &record["custom_password_hash"];
    let value = cph["hash"]["value"].as_str().unwrap_or_default();
    match cph["algorithm"].as_str().unwrap_or_default() {
        "bcrypt" => {
            !(value.starts_with("$2a$0")
                || value.starts_with("$2b$0")
                || value.starts_with("$2y$0"))
        }
        "argon2" => value.contains("m=65536"),
        "scrypt" => cph.get("cost").and_then(Value::as_u64).unwrap_or(16_384) >= 16_384,
        "pbkdf2" => !value.contains("i=1000,") && !value.contains("i=1000$"),
        _ => false,
    }
}

#[test]
fn the_doctor_names_each_single_parameter_corruption_and_passes_correct_records() {
    let mut named: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut missed = Vec::new();
    for v in list("verify") {
        if v["expect"] != true || text(v, "reading") != "default" {
            continue;
        }
        let password = text(v, "password");
        let label = text(v, "label");
        if password.len() > 72 && v["record"]["custom_password_hash"]["algorithm"] == "bcrypt" {
            // Past bcrypt's 72 bytes a suffix salt is never read: adding one changes nothing.
            continue;
        }
        if expensive(&v["record"]) {
            // The same parameters at a cheap work factor are in other vectors: the doctor runs
            // up to a few dozen variants per corruption.
            continue;
        }
        // A correct record verifies as declared: nothing for the doctor to do.
        assert_eq!(check(&v["record"], password), Ok(true), "{label}");
        for corruption in corruptions(&v["record"]) {
            // Some changes do not change the bytes (a utf8 salt that is also valid hex is not one
            // of them; an ASCII password in latin1 is): only corruptions that break it count.
            if check(&corruption.record, password) != Ok(false) {
                continue;
            }
            let diagnosis = diagnose(&corruption.record, password);
            match &diagnosis.finding {
                Some(f) if f.parameter == corruption.parameter => {
                    *named.entry(corruption.parameter).or_default() += 1;
                }
                other => missed.push(format!(
                    "{label}: corrupted {}, doctor said {:?} after trying {}",
                    corruption.parameter,
                    other.as_ref().map(|f| &f.parameter),
                    diagnosis.tried_summary()
                )),
            }
        }
    }
    eprintln!("corruptions named, by parameter: {named:?}");
    assert!(
        missed.is_empty(),
        "{} missed:\n{}",
        missed.len(),
        missed.join("\n")
    );
    for parameter in [
        "salt.position",
        "salt.encoding",
        "salt",
        "salt (with hmac)",
        "hash.encoding",
        "password.encoding",
        "hash.key.encoding",
        "hash.digest",
        "algorithm",
        "i= in hash.value (iterations)",
        "the pbkdf2 digest ($pbkdf2-<digest>$)",
        "cost",
        "blockSize",
    ] {
        assert!(
            named.get(parameter).copied().unwrap_or(0) > 0,
            "no corruption of {parameter} was tested"
        );
    }
}
