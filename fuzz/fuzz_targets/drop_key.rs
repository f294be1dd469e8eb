//! The drop-key parser (`inbox/<connection>/[option=value/…]<file>`) against the same grammar
//! written as a regular expression: the same keys accepted, with the same options, and an error
//! that names the fault for every other key.
#![no_main]

use std::sync::LazyLock;

use import_core::options::{parse_drop_key, DropOptions, OptionsError};
use libfuzzer_sys::fuzz_target;
use regex::Regex;

/// The grammar: a connection id, then options (each at most once), then the file name.
static DROP_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\A(?s)inbox/(con_[A-Za-z0-9]{16})/((?:(?:upsert|send_completion_email)=(?:true|false)/)*)([^/]*)\z",
    )
    .expect("the grammar compiles")
});

fuzz_target!(|key: &str| {
    let expected = DROP_KEY.captures(key).and_then(|caps| {
        let mut upsert = None;
        let mut email = None;
        for option in caps[2].split('/').filter(|s| !s.is_empty()) {
            let (name, value) = option.split_once('=')?;
            let slot = if name == "upsert" {
                &mut upsert
            } else {
                &mut email
            };
            if slot.replace(value == "true").is_some() {
                return None;
            }
        }
        Some(DropOptions {
            source: None,
            connection_id: caps[1].to_string(),
            upsert: upsert.unwrap_or(false),
            send_completion_email: email.unwrap_or(false),
        })
    });
    match (parse_drop_key("inbox/", key), expected) {
        (Ok(got), Some(expected)) => assert_eq!(got, expected, "{key:?}"),
        (Err(e), None) => {
            // The error names what is wrong, in terms of the key.
            let named = match &e {
                OptionsError::OutsideInbox(prefix) => !key.starts_with(prefix.as_str()),
                OptionsError::MissingConnection { .. } => !key["inbox/".len()..].contains('/'),
                OptionsError::BadConnection { found } => {
                    key["inbox/".len()..].starts_with(&format!("{found}/"))
                }
                OptionsError::UnknownOption { segment }
                | OptionsError::Repeated { name: segment } => key.contains(segment.as_str()),
            };
            assert!(named, "{key:?}: {e}");
            assert!(!e.to_string().is_empty());
        }
        (got, expected) => panic!("{key:?}: the parser says {got:?}, the grammar {expected:?}"),
    }
});
