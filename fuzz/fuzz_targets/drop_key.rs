//! The drop-key parser (`inbox/<connection>/[option=value/…]<file>`) against the same grammar
//! written as a regular expression: the same keys accepted, with the same options, and an error
//! that names the fault for every other key.
#![no_main]

use std::sync::LazyLock;

use import_core::options::{parse_drop_key, DropOptions, DropSource, OptionsError};
use libfuzzer_sys::fuzz_target;
use regex::Regex;

/// The grammar: a connection id, then options (each at most once, and at most one of from= and
/// mapping=), then the file name.
static DROP_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\A(?s)inbox/(con_[A-Za-z0-9]{16})/((?:(?:(?:upsert|send_completion_email)=(?:true|false)|canary=(?:warn|fail)|from=[^/]*|mapping=[^/]*)/)*)([^/]*)\z",
    )
    .expect("the grammar compiles")
});

/// A mapping's name: the object `mappings/<name>.toml`, so no path tricks.
static MAPPING_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\A[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}\z").expect("compiles"));

fuzz_target!(|key: &str| {
    let expected = DROP_KEY.captures(key).and_then(|caps| {
        let (mut upsert, mut email, mut canary, mut source) = (None, None, None, None);
        for option in caps[2].split('/').filter(|s| !s.is_empty()) {
            let (name, value) = option.split_once('=')?;
            let repeated = match name {
                "upsert" => upsert.replace(value == "true").is_some(),
                "send_completion_email" => email.replace(value == "true").is_some(),
                "canary" => canary.replace(value == "warn").is_some(),
                "from" => {
                    import_core::mapping::presets::find(value)?;
                    source.replace(DropSource::Preset(value.into())).is_some()
                }
                _ => {
                    if !MAPPING_NAME.is_match(value) {
                        return None;
                    }
                    source.replace(DropSource::Mapping(value.into())).is_some()
                }
            };
            if repeated {
                return None;
            }
        }
        Some(DropOptions {
            connection_id: caps[1].to_string(),
            upsert: upsert.unwrap_or(false),
            send_completion_email: email.unwrap_or(false),
            canary_warn: canary.unwrap_or(false),
            source,
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
                OptionsError::UnknownPreset { found } => key.contains(&format!("from={found}/")),
                OptionsError::BadMappingName { found } => {
                    key.contains(&format!("mapping={found}/"))
                }
                OptionsError::TwoSources => {
                    key.matches("/from=").count() + key.matches("/mapping=").count() >= 2
                }
            };
            assert!(named, "{key:?}: {e}");
            assert!(!e.to_string().is_empty());
        }
        (got, expected) => panic!("{key:?}: the parser says {got:?}, the grammar {expected:?}"),
    }
});
