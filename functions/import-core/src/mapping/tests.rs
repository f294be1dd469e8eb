use std::io::{Cursor, Write};
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::input::{InputError, Layout, RawRecord, Records};
use crate::manifest::Source as RunSource;
use crate::split::{split_with_workers, MemorySink, SplitOptions};

const BASIC: &str = r#"
version = 1
format = "csv"

[[field]]
from = "Email"
to = "email"
lowercase = true
trim = true

[[field]]
from = "Verified"
to = "email_verified"
type = "bool"

[[field]]
from = "Locale"
to = "user_metadata.locale"

[[field]]
from = "Plan"
to = "app_metadata.plan"
strip_prefix = "plan_"

[[field]]
from = "Seats"
to = "app_metadata.seats"
type = "integer"

[[field]]
from = "Prefs"
to = "user_metadata.prefs"
type = "json"

[[join]]
from = ["First", "Last"]
to = "name"

[[constant]]
to = "app_metadata.source"
value = "legacy"

[password]
from = "Hash"
format = "bcrypt"
"#;

const HEADER: &str = "Email,Verified,Locale,Plan,Seats,Prefs,First,Last,Hash\n";
// bcrypt's well-known test vector for "U*U" (OpenBSD's regression tests), cost 05.
const BCRYPT: &str = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";

fn read_all(mapping: &str, input: Vec<u8>) -> Result<Vec<RawRecord>, InputError> {
    let mapping = Arc::new(Mapping::from_toml(mapping).unwrap());
    let mut reader = MappedReader::open(Cursor::new(input), mapping, 1 << 20)?;
    let mut out = Vec::new();
    let mut rec = RawRecord::default();
    while reader.next_into(&mut rec)? {
        out.push(rec.clone());
    }
    Ok(out)
}

fn user(rec: &RawRecord) -> Value {
    assert!(rec.refused.is_empty(), "{:?}", rec.refused);
    serde_json::from_slice(&rec.bytes).unwrap()
}

#[test]
fn a_row_becomes_the_record_the_mapping_says() {
    let input = format!(
        "\u{feff}{HEADER} Ann@Example.COM ,Yes,fr,plan_pro,3,\"{{\"\"theme\"\": \"\"dark\"\"}}\",Ann,\"Lee, Jr\",{BCRYPT}\n\
         bo@example.com,0,,,,,,,\n"
    );
    let recs = read_all(BASIC, input.into_bytes()).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(
        user(&recs[0]),
        json!({
            "email": "ann@example.com",
            "email_verified": true,
            "user_metadata": {"locale": "fr", "prefs": {"theme": "dark"}},
            "app_metadata": {"plan": "pro", "seats": 3, "source": "legacy"},
            "name": "Ann Lee, Jr",
            "custom_password_hash": {"algorithm": "bcrypt", "hash": {"value": BCRYPT, "encoding": "utf8"}},
        })
    );
    assert!(!recs[0].without_password);
    assert_eq!((recs[0].line, recs[1].line), (2, 3));
    // Empty cells are absent, and no hash means no password.
    assert_eq!(
        user(&recs[1]),
        json!({"email": "bo@example.com", "email_verified": false, "app_metadata": {"source": "legacy"}})
    );
    assert!(recs[1].without_password);
}

#[test]
fn quoted_newlines_gzip_and_tsv() {
    let csv = format!("{HEADER}\"a@x.io\",\"true\",\"multi\nline\",,,,,,\n\"b@x.io\",f,,,,,,,\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(csv.as_bytes()).unwrap();
    let recs = read_all(BASIC, gz.finish().unwrap()).unwrap();
    assert_eq!(user(&recs[0])["user_metadata"]["locale"], "multi\nline");
    // The second row starts on line 4: the first spans two.
    assert_eq!(recs[1].line, 4);
    let tsv = BASIC.replace("format = \"csv\"", "format = \"tsv\"");
    let input = format!("{}a@x.io\tn\t\t\t\t\t\t\t\n", HEADER.replace(',', "\t"));
    let recs = read_all(&tsv, input.into_bytes()).unwrap();
    assert_eq!(user(&recs[0])["email_verified"], false);
}

#[test]
fn a_bad_cell_refuses_its_row_naming_line_and_column() {
    let input = format!(
        "{HEADER}a@x.io,maybe,,,many,{{oops,,,\nb@x.io,1,,,,,,\nc@x.io,1,,,,,,,not-a-hash-secret\n"
    );
    let recs = read_all(BASIC, input.into_bytes()).unwrap();
    let messages: Vec<String> = recs[0].refused.iter().map(|v| v.message.clone()).collect();
    assert_eq!(recs[0].refused.len(), 3, "{messages:?}");
    assert!(
        messages[0].starts_with("line 2, column \"Verified\": not a bool"),
        "{messages:?}"
    );
    assert_eq!(recs[0].refused[0].path, "email_verified");
    assert!(messages[1].contains("column \"Seats\": not an integer"));
    assert!(messages[2].contains("column \"Prefs\": not JSON"));
    assert!(recs[1].refused[0]
        .message
        .contains("line 3 has 8 fields, the header has 9"));
    let hash = &recs[2].refused[0];
    assert_eq!(hash.code, crate::split::codes::PASSWORD_FORMAT);
    assert!(hash
        .message
        .starts_with("line 4, column \"Hash\": not a bcrypt hash"));
    assert!(
        !hash.message.contains("secret"),
        "the stored value is never quoted"
    );
}

#[test]
fn a_missing_column_fails_before_any_record() {
    let err = read_all(BASIC, b"Email,Verified\na@x.io,1\n".to_vec()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, InputError::Mapping(_)));
    assert!(
        text.contains("\"Locale\" is not in the header (the header has: Email, Verified)"),
        "{text}"
    );
    assert!(matches!(
        read_all(BASIC, Vec::new()).unwrap_err(),
        InputError::Mapping(_)
    ));
}

fn refused(text: &str) -> String {
    Mapping::from_toml(text).unwrap_err().to_string()
}

#[test]
fn a_mapping_is_checked_whole() {
    let base = "version = 1\nformat = \"csv\"\n[[field]]\nfrom = \"e\"\nto = \"email\"\n";
    for (extra, expected) in [
        ("[[field]]\nfrom = \"x\"\nto = \"shoe_size\"\n", "\"shoe_size\" is not a field of Auth0's user import"),
        ("[[field]]\nfrom = \"x\"\nto = \"password_hash\"\n", "the hash is set by [password]"),
        ("[[field]]\nfrom = \"x\"\nto = \"name.first\"\n", "name is not an object"),
        ("[[field]]\nfrom = \"x\"\nto = \"email\"\n", "another entry writes the same field"),
        ("[[field]]\nfrom = \"x\"\nto = \"user_metadata\"\ntype = \"json\"\n[[constant]]\nto = \"user_metadata.a\"\nvalue = 1\n", "another entry writes all of user_metadata"),
        ("[[field]]\nfrom = \"x\"\nto = \"email_verified\"\n", "email_verified takes type bool or present, not string"),
        ("[[field]]\nfrom = \"x\"\nto = \"app_metadata.n\"\ntype = \"integer\"\nlowercase = true\n", "lowercase and strip_prefix apply to strings"),
        ("[password]\nfrom = \"h\"\nformat = \"md5crypt\"\n", "\"md5crypt\" is not a format: one of bcrypt, django"),
        ("[password]\nfrom = \"h\"\nformat = \"digest\"\n", "needs algorithm"),
        ("[password]\nfrom = \"h\"\nformat = \"digest\"\nalgorithm = \"sha3\"\n", "\"sha3\" is not one of md4"),
        ("[password]\nfrom = \"h\"\nformat = \"django\"\nsalt_from = \"s\"\n", "go with format = \"digest\""),
        ("[password]\nfrom = \"h\"\nformat = \"digest\"\nalgorithm = \"md5\"\nsalt_from = \"s\"\nsalt_position = \"middle\"\n", "\"middle\" is not prefix or suffix"),
        ("colour = \"red\"\n", "unknown field `colour`"),
    ] {
        let text = refused(&format!("{base}{extra}"));
        assert!(text.contains(expected), "{extra}: {text}");
    }
    assert!(
        refused("version = 2\nformat = \"xml\"\n").contains("version 2; this tool reads version 1")
    );
    assert!(refused("format = \"csv\"\n").contains("missing `version = 1`"));
    assert!(refused("version = 1\nformat = \"csv\"\n").contains("no entry maps to email"));
    assert!(
        refused("version = 1\nformat = \"json\"\ndelimiter = \";\"\n")
            .contains("a JSON source has no delimiter")
    );
}

#[test]
fn bool_spellings() {
    for t in ["true", "TRUE", "t", "Yes", "y", "1", "on"] {
        assert_eq!(parse_bool(t), Some(true), "{t}");
    }
    for f in ["false", "F", "no", "N", "0", "off"] {
        assert_eq!(parse_bool(f), Some(false), "{f}");
    }
    assert_eq!(parse_bool("2"), None);
}

#[test]
fn every_preset_checks() {
    for preset in presets::PRESETS {
        let mapping = presets::mapping(preset.name).unwrap();
        assert_eq!(mapping.is_none(), preset.name == "auth0-export");
    }
    assert!(presets::mapping("okta")
        .unwrap_err()
        .to_string()
        .contains("one of auth0-export, supabase"));
}

#[test]
fn json_records_are_mapped_by_path() {
    let mapping = presets::mapping("keycloak").unwrap().unwrap();
    let credential = json!({
        "type": "password",
        "secretData": "{\"value\":\"AAAA\",\"salt\":\"AAAA\"}",
        "credentialData": "{\"hashIterations\":27500,\"algorithm\":\"pbkdf2-sha256\"}",
    });
    let input = json!({"realm": "r", "users": [
        {"username": "ann", "email": "Ann@X.io", "emailVerified": true, "firstName": "Ann",
         "attributes": {"locale": ["fr"]},
         "credentials": [{"type": "otp"}, credential]},
        {"username": "bo", "email": "bo@x.io", "emailVerified": false},
    ]});
    let mut reader = MappedReader::open(
        Cursor::new(input.to_string().into_bytes()),
        Arc::new(mapping),
        1 << 20,
    )
    .unwrap();
    assert_eq!(reader.layout(), Layout::JsonArray);
    let mut rec = RawRecord::default();
    assert!(reader.next_into(&mut rec).unwrap());
    // The credential was found by its type and handed to the converter (whose verdict on these
    // made-up bytes is its own business: here, that it was asked).
    let first = rec.clone();
    assert!(reader.next_into(&mut rec).unwrap());
    let second = user(&rec);
    assert!(rec.without_password);
    assert_eq!(second["user_metadata"], json!({"username": "bo"}));
    assert!(!reader.next_into(&mut rec).unwrap());
    if first.refused.is_empty() {
        let first = user(&first);
        assert_eq!(first["email"], "ann@x.io");
        assert_eq!(first["name"], "Ann");
        assert_eq!(
            first["user_metadata"]["attributes"],
            json!({"locale": ["fr"]})
        );
    } else {
        assert_eq!(first.refused[0].path, "password_hash");
    }
}

#[test]
fn split_counts_users_without_a_password_and_rejects_with_lines() {
    let input = format!(
        "{HEADER}a@x.io,1,,,,,,,{BCRYPT}\nb@x.io,1,,,,,,,\nnot-an-email,1,,,,,,,\nc@x.io,perhaps,,,,,,,\n"
    );
    let mut sink = MemorySink::default();
    let options = SplitOptions {
        mapping: Some(Arc::new(Mapping::from_toml(BASIC).unwrap())),
        ..SplitOptions::default()
    };
    let outcome = split_with_workers(
        Cursor::new(input.into_bytes()),
        RunSource::Local {
            path: "users.csv".into(),
            size: None,
        },
        "run-1",
        &options,
        &mut sink,
        2,
    )
    .unwrap();
    let m = outcome.manifest;
    assert_eq!((m.users_in, m.users_accepted, m.users_rejected), (4, 2, 2));
    assert_eq!(m.transformations.imported_without_password, 1);
    assert_eq!(m.format.unwrap().layout, Layout::Csv);
    assert_eq!(m.rejects_by_code.get("MAPPING"), Some(&1));
    let rejects = String::from_utf8(sink.objects[m.rejects_key.as_ref().unwrap()].clone()).unwrap();
    let lines: Vec<Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["line"], 4, "{rejects}");
    assert_eq!(lines[1]["line"], 5, "{rejects}");
    assert!(rejects.contains("column \\\"Verified\\\""), "{rejects}");
}
