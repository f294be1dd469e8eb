//! A corpus of broken drops. Each must either fail the run (nothing published) with a reason
//! that names the place, or reject exactly the bad record with a code that names the rule.

use std::io::{Cursor, Write};

use import_core::layout::{MANIFEST, REJECTS};
use import_core::manifest::{RejectEntry, RunManifest, RunStatus, Source};
use import_core::split::{split, MemorySink, SplitOptions};

enum Expect {
    /// The run fails; the reason contains every fragment; the failure names this line.
    Fails(&'static [&'static str], Option<u64>),
    /// The run splits; record `index` (on `line`) is rejected with `code`.
    Rejects {
        index: u64,
        line: u64,
        code: &'static str,
    },
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn corrupt_gzip() -> Vec<u8> {
    let body = b"{\"email\":\"a@example.com\"}\n".repeat(5000);
    let mut gz = gzip(&body);
    let mid = gz.len() / 2;
    for b in &mut gz[mid..mid + 32] {
        *b = !*b;
    }
    gz
}

fn truncated_gzip() -> Vec<u8> {
    let gz = gzip(&b"{\"email\":\"a@example.com\"}\n".repeat(5000));
    gz[..gz.len() / 2].to_vec()
}

fn corpus() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let ok = r#"{"email":"a@example.com"}"#;
    vec![
        ("empty file", b"".to_vec(), Expect::Fails(&["empty"], None)),
        ("whitespace only", b" \n\t\n".to_vec(), Expect::Fails(&["empty"], None)),
        ("not JSON at all", b"email,name\na@x.io,A\n".to_vec(), Expect::Fails(&["expected a JSON array"], Some(1))),
        ("array truncated", format!("[\n{ok},\n{{\"email\":\"b@exa").into_bytes(), Expect::Fails(&["truncated"], Some(3))),
        ("array missing close", format!("[\n{ok},\n{ok}\n").into_bytes(), Expect::Fails(&["truncated"], None)),
        ("array trailing comma", format!("[{ok},]").into_bytes(), Expect::Fails(&["trailing comma"], Some(1))),
        ("array missing comma", format!("[\n{ok}\n{ok}]").into_bytes(), Expect::Fails(&["expected ',' or ']'"], Some(3))),
        ("array bad token inside record", format!("[\n{ok},\n{{\"email\": tru}}\n]").into_bytes(), Expect::Fails(&["record 1"], Some(3))),
        ("array invalid UTF-8 in a string", [&b"[{\"email\":\"a@example.com\",\"name\":\"\xff\xfe\"}]"[..]].concat(), Expect::Fails(&["record 0"], Some(1))),
        ("array data after the end", format!("[{ok}]\n{ok}").into_bytes(), Expect::Fails(&["after the end"], Some(2))),
        ("corrupt gzip", corrupt_gzip(), Expect::Fails(&["gzip"], None)),
        ("truncated gzip", truncated_gzip(), Expect::Fails(&["gzip"], None)),
        ("pretty-printed single object", b"{\n  \"email\": \"a@example.com\"\n}\n".to_vec(), Expect::Fails(&["pretty-printed"], Some(1))),
        ("ndjson bad line", format!("{ok}\n{{\"email\": \n{{\"email\":\"b@example.com\"}}\n").into_bytes(), Expect::Rejects { index: 1, line: 2, code: "INVALID_JSON" }),
        ("ndjson invalid UTF-8 line", [format!("{ok}\n").as_bytes(), b"{\"email\":\"\xc3\x28@example.com\"}\n"].concat(), Expect::Rejects { index: 1, line: 2, code: "INVALID_JSON" }),
        ("ndjson array on a line", format!("{ok}\n[1,2]\n").into_bytes(), Expect::Rejects { index: 1, line: 2, code: "INVALID_TYPE" }),
        ("array element not an object", format!("[{ok}, 42]").into_bytes(), Expect::Rejects { index: 1, line: 1, code: "INVALID_TYPE" }),
        ("missing email", b"[{\"username\":\"ann\"}]".to_vec(), Expect::Rejects { index: 0, line: 1, code: "OBJECT_REQUIRED" }),
        ("bad email", b"[{\"email\":\"ann@\"}]".to_vec(), Expect::Rejects { index: 0, line: 1, code: "INVALID_FORMAT" }),
        ("unknown field", b"[{\"email\":\"a@example.com\",\"Given Name\":\"A\"}]".to_vec(), Expect::Rejects { index: 0, line: 1, code: "OBJECT_ADDITIONAL_PROPERTIES" }),
        ("string boolean", b"[{\"email\":\"a@example.com\",\"email_verified\":\"true\"}]".to_vec(), Expect::Rejects { index: 0, line: 1, code: "INVALID_TYPE" }),
        ("reserved app_metadata key", b"[{\"email\":\"a@example.com\",\"app_metadata\":{\"user_id\":\"x\"}}]".to_vec(), Expect::Rejects { index: 0, line: 1, code: "NOT_PASSED" }),
        ("argon2 with salt", br#"[{"email":"a@example.com","custom_password_hash":{"algorithm":"argon2","hash":{"value":"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG","encoding":"utf8"},"salt":{"value":"abc"}}}]"#.to_vec(), Expect::Rejects { index: 0, line: 1, code: "NOT_PASSED" }),
        ("bcrypt password_hash with cost 12", br#"[{"email":"a@example.com","password_hash":"$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"}]"#.to_vec(), Expect::Rejects { index: 0, line: 1, code: "PATTERN" }),
        ("eleven mfa factors", format!("[{{\"email\":\"a@example.com\",\"mfa_factors\":[{}]}}]", [r#"{"totp":{"secret":"JBSWY3DPEHPK3PXP"}}"#; 11].join(",")).into_bytes(), Expect::Rejects { index: 0, line: 1, code: "ARRAY_LENGTH_LONG" }),
        ("duplicate email in another case", format!("[\n{ok},\n{{\"email\":\"A@EXAMPLE.com\"}}\n]").into_bytes(), Expect::Rejects { index: 1, line: 3, code: "DUPLICATED_USER" }),
    ]
}

#[test]
fn every_bad_input_gets_a_clear_reason() {
    for (name, bytes, expect) in corpus() {
        let mut sink = MemorySink::default();
        let source = Source::Local {
            path: name.into(),
            size: None,
        };
        let outcome = split(
            Cursor::new(bytes),
            source,
            "run",
            &SplitOptions::default(),
            &mut sink,
        )
        .unwrap_or_else(|e| panic!("{name}: split errored instead of reporting: {e}"));
        let manifest: RunManifest = serde_json::from_slice(&sink.objects[MANIFEST]).unwrap();
        match expect {
            Expect::Fails(fragments, line) => {
                assert_eq!(
                    manifest.status,
                    RunStatus::Failed,
                    "{name}: {:?}",
                    outcome.manifest
                );
                let failure = manifest
                    .failure
                    .as_ref()
                    .unwrap_or_else(|| panic!("{name}: no failure"));
                for f in fragments {
                    assert!(
                        failure.reason.contains(f),
                        "{name}: {:?} lacks {f:?}",
                        failure.reason
                    );
                }
                if let Some(line) = line {
                    assert_eq!(failure.line, Some(line), "{name}: {failure:?}");
                    assert!(
                        failure.byte_offset.is_some() && failure.column.is_some(),
                        "{name}"
                    );
                }
                let chunks: Vec<_> = sink
                    .objects
                    .keys()
                    .filter(|k| k.starts_with("chunks/"))
                    .collect();
                assert!(chunks.is_empty(), "{name}: published {chunks:?}");
                assert!(manifest.chunks.is_empty(), "{name}");
            }
            Expect::Rejects { index, line, code } => {
                assert_eq!(
                    manifest.status,
                    RunStatus::Split,
                    "{name}: {:?}",
                    manifest.failure
                );
                assert!(manifest.conservation_holds, "{name}");
                let rejects: Vec<RejectEntry> = String::from_utf8(sink.objects[REJECTS].clone())
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
                let r = rejects
                    .iter()
                    .find(|r| r.index == index)
                    .unwrap_or_else(|| panic!("{name}: record {index} not rejected: {rejects:?}"));
                assert_eq!(r.line, line, "{name}");
                assert!(
                    r.reasons.iter().any(|v| v.code == code),
                    "{name}: {:?}",
                    r.reasons
                );
                assert!(r.reasons.iter().all(|v| !v.message.is_empty()), "{name}");
                assert_eq!(
                    manifest.users_rejected, 1,
                    "{name}: only the bad record: {rejects:?}"
                );
            }
        }
    }
}
