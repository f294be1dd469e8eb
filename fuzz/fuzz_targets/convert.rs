//! The legacy-hash converter against Auth0's rules: for any stored string in any source format,
//! `convert` answers without panicking; what it converts is an import record Auth0's rules
//! (import-core's `rules`, written from the schema and the facts file) accept; and what it
//! refuses is refused without quoting the stored string (it may be a password hash).
#![no_main]

use auth0_password_hash::{convert, LegacyFormat};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|input: (u8, &str)| {
    let (which, stored) = input;
    let format = LegacyFormat::ALL[usize::from(which) % LegacyFormat::ALL.len()];
    match convert(format, stored) {
        Ok(fragment) => {
            let mut record = json!({"email": "fuzz@example.com", "email_verified": true});
            let members = record.as_object_mut().expect("an object literal");
            for (key, value) in fragment.members() {
                members.insert(key.clone(), value.clone());
            }
            let violations = import_core::rules::check_serde_user(&record);
            assert!(
                violations.is_empty(),
                "{}: converted, but Auth0's rules refuse it: {violations:?}",
                format.name()
            );
        }
        Err(e) => {
            let message = e.to_string();
            let trimmed = stored.trim();
            // Shorter strings may be the message's own words or example shapes: the parser's
            // prefix checks lead the fuzzer to "$argon2id$v=19$m=", which starts the example
            // "$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>".
            // And a longer one may be the message itself (the fuzzer fed "not a keycloak hash: a
            // Keycloak credential is a JSON object" back): quoting means the message follows the
            // input, so the same input with its letters and digits changed must not show up in
            // its own refusal either.
            if trimmed.chars().count() >= 32 && message.contains(trimmed) {
                let changed: String = stored
                    .chars()
                    .map(|c| match c {
                        'a'..='y' | 'A'..='Y' | '0'..='8' => char::from(c as u8 + 1),
                        'z' => 'a',
                        'Z' => 'A',
                        '9' => '0',
                        other => other,
                    })
                    .collect();
                let quoted = convert(format, &changed)
                    .err()
                    .is_some_and(|e| e.to_string().contains(changed.trim()));
                assert!(
                    !quoted,
                    "{}: the refusal quotes the stored string",
                    format.name()
                );
            }
            assert!(!message.is_empty());
        }
    }
});
