//! Per-drop import options, stated in the object key so they travel atomically with the file:
//! `inbox/<connection_id>/[upsert=true/][send_completion_email=true/][canary=warn/]`
//! `[from=<preset>/ | mapping=<name>/]<file>`; a mapping named so is the bucket's
//! `mappings/<name>.toml` (`mapping_key`).
//!
//! Why the key: object metadata is awkward to set from most upload tools and invisible in the
//! console listing, and a sidecar file races with its export. A key is set once, by the same
//! PUT that delivers the users, and reads plainly in any listing.

use serde::{Deserialize, Serialize};

/// The options a drop's jobs are submitted with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropOptions {
    /// Target database connection, `con_` + 16 alphanumerics (facts §1.2).
    pub connection_id: String,
    /// Update users that already exist instead of failing them (facts §7.2). Default false.
    pub upsert: bool,
    /// E-mail every tenant admin when each job ends (facts §1.2). Default false here, though
    /// Auth0's default is true: a migration of 200 chunks would send 200 e-mails.
    pub send_completion_email: bool,
    /// A failed or missing canary only warns instead of stopping the run (`canary=warn`).
    /// Default false: a canary that fails stops the run before any chunk is submitted.
    #[serde(default)]
    pub canary_warn: bool,
    /// How to read a drop that is not in Auth0's formats (`from=<preset>/` or
    /// `mapping=<name>/`). Absent: JSON array, NDJSON or an Auth0 export, as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DropSource>,
}

/// A drop's legacy source, as its key names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropSource {
    /// A preset shipped with the tool (`mapping::presets`).
    Preset(String),
    /// A mapping the operator put in the bucket, by name: the object `mapping_key(name)`.
    Mapping(String),
}

/// Where in the bucket the mapping a drop names (`mapping=<name>/`) is read: outside the inbox,
/// so that uploading one starts no run.
pub const MAPPINGS_PREFIX: &str = "mappings/";

pub fn mapping_key(name: &str) -> String {
    format!("{MAPPINGS_PREFIX}{name}.toml")
}

fn is_mapping_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("the object is not under the inbox prefix {0:?}")]
    OutsideInbox(String),
    #[error("no connection: drop the export at {inbox}<connection_id>/<file>, e.g. {inbox}con_AbCdEf0123456789/users.json")]
    MissingConnection { inbox: String },
    #[error("{found:?} is not a connection id: it must be con_ followed by 16 letters or digits (the id, not the connection's name; find it in the dashboard under Authentication > Database)")]
    BadConnection { found: String },
    #[error("{segment:?} is not an option: folders between the connection and the file must be upsert=true|false, send_completion_email=true|false or canary=warn|fail")]
    UnknownOption { segment: String },
    #[error("option {name} is given twice")]
    Repeated { name: String },
    #[error("from={found}: not a preset; one of {names}", names = crate::mapping::presets::names().join(", "))]
    UnknownPreset { found: String },
    #[error("mapping={found}: a mapping's name is letters, digits, '.', '_' or '-' (the object mappings/<name>.toml)")]
    BadMappingName { found: String },
    #[error("from= and mapping= both name how to read the drop: give one")]
    TwoSources,
}

pub fn is_connection_id(s: &str) -> bool {
    s.len() == 20
        && s.starts_with("con_")
        && s.as_bytes()[4..].iter().all(u8::is_ascii_alphanumeric)
}

/// Reads the options from a dropped object's key.
pub fn parse_drop_key(inbox_prefix: &str, key: &str) -> Result<DropOptions, OptionsError> {
    let rest = key
        .strip_prefix(inbox_prefix)
        .ok_or_else(|| OptionsError::OutsideInbox(inbox_prefix.to_string()))?;
    let segments: Vec<&str> = rest.split('/').collect();
    // The last segment is the file name; everything before it is options.
    let (folders, _file) = segments.split_at(segments.len().saturating_sub(1));
    let Some((connection, flags)) = folders.split_first() else {
        return Err(OptionsError::MissingConnection {
            inbox: inbox_prefix.to_string(),
        });
    };
    if !is_connection_id(connection) {
        return Err(OptionsError::BadConnection {
            found: (*connection).to_string(),
        });
    }
    let mut upsert = None;
    let mut email = None;
    let mut canary_warn = None;
    let mut source = None;
    for segment in flags {
        let named = match segment.split_once('=') {
            Some(("from", preset)) => {
                if crate::mapping::presets::find(preset).is_none() {
                    return Err(OptionsError::UnknownPreset {
                        found: preset.to_string(),
                    });
                }
                Some(DropSource::Preset(preset.to_string()))
            }
            Some(("mapping", name)) => {
                if !is_mapping_name(name) {
                    return Err(OptionsError::BadMappingName {
                        found: name.to_string(),
                    });
                }
                Some(DropSource::Mapping(name.to_string()))
            }
            _ => None,
        };
        if let Some(named) = named {
            if source.replace(named).is_some() {
                return Err(OptionsError::TwoSources);
            }
            continue;
        }
        let parsed = segment.split_once('=').and_then(|(name, value)| {
            let value = match (name, value) {
                ("canary", "warn") => true,
                ("canary", "fail") => false,
                ("canary", _) => return None,
                (_, "true") => true,
                (_, "false") => false,
                _ => return None,
            };
            Some((name, value))
        });
        let slot = match parsed {
            Some(("upsert", v)) => (&mut upsert, "upsert", v),
            Some(("send_completion_email", v)) => (&mut email, "send_completion_email", v),
            Some(("canary", v)) => (&mut canary_warn, "canary", v),
            _ => {
                return Err(OptionsError::UnknownOption {
                    segment: (*segment).to_string(),
                })
            }
        };
        if slot.0.replace(slot.2).is_some() {
            return Err(OptionsError::Repeated {
                name: slot.1.to_string(),
            });
        }
    }
    Ok(DropOptions {
        connection_id: (*connection).to_string(),
        upsert: upsert.unwrap_or(false),
        send_completion_email: email.unwrap_or(false),
        canary_warn: canary_warn.unwrap_or(false),
        source,
    })
}

/// Why a drop key cannot be built for a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropKeyError {
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error(
        "{0:?} cannot name a dropped file: a file name is one non-empty path segment (no \"/\")"
    )]
    BadFileName(String),
    #[error("the inbox prefix {0:?} must be one or more folders ending in \"/\"")]
    BadInbox(String),
}

/// The key that delivers `file_name` with `options`, as `parse_drop_key` reads it back: the
/// inverse of the parser, so a tool that uploads never spells the layout by hand. Options at
/// their default are left out (the shortest key that means the same).
pub fn drop_key(
    inbox_prefix: &str,
    options: &DropOptions,
    file_name: &str,
) -> Result<String, DropKeyError> {
    if inbox_prefix.is_empty() || !inbox_prefix.ends_with('/') || inbox_prefix.starts_with('/') {
        return Err(DropKeyError::BadInbox(inbox_prefix.to_string()));
    }
    if !is_connection_id(&options.connection_id) {
        return Err(OptionsError::BadConnection {
            found: options.connection_id.clone(),
        }
        .into());
    }
    if file_name.is_empty() || file_name.contains('/') {
        return Err(DropKeyError::BadFileName(file_name.to_string()));
    }
    let mut key = format!("{inbox_prefix}{}/", options.connection_id);
    if options.upsert {
        key.push_str("upsert=true/");
    }
    if options.send_completion_email {
        key.push_str("send_completion_email=true/");
    }
    if options.canary_warn {
        key.push_str("canary=warn/");
    }
    match &options.source {
        Some(DropSource::Preset(name)) => key.push_str(&format!("from={name}/")),
        Some(DropSource::Mapping(name)) => key.push_str(&format!("mapping={name}/")),
        None => {}
    }
    key.push_str(file_name);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the options and file name, the parser reads back exactly what was built.
        #[test]
        fn drop_keys_round_trip_through_the_parser(
            connection in "con_[A-Za-z0-9]{16}",
            upsert in any::<bool>(),
            email in any::<bool>(),
            canary_warn in any::<bool>(),
            file in "[^/]{1,40}",
            inbox in "[a-z0-9][a-z0-9._-]{0,10}/([a-z0-9]{1,5}/)?",
        ) {
            let options = DropOptions { connection_id: connection, upsert, send_completion_email: email, canary_warn, source: None };
            let key = drop_key(&inbox, &options, &file).unwrap();
            let tail = format!("/{file}");
            prop_assert!(key.ends_with(&tail));
            prop_assert_eq!(parse_drop_key(&inbox, &key), Ok(options));
        }

        /// Every key the parser accepts, rebuilt from what it read, names the same drop.
        #[test]
        fn parsed_keys_rebuild_to_an_equivalent_key(
            connection in "con_[A-Za-z0-9]{16}",
            flags in proptest::collection::vec(("(upsert|send_completion_email|canary)", any::<bool>()), 0..3),
            file in "[^/]{1,20}",
        ) {
            let mut key = format!("inbox/{connection}/");
            let mut seen = std::collections::BTreeSet::new();
            for (name, value) in &flags {
                if seen.insert(name.clone()) {
                    let value = match (name.as_str(), value) {
                        ("canary", true) => "warn".to_string(),
                        ("canary", false) => "fail".to_string(),
                        (_, v) => v.to_string(),
                    };
                    key.push_str(&format!("{name}={value}/"));
                }
            }
            key.push_str(&file);
            let parsed = parse_drop_key("inbox/", &key).unwrap();
            let rebuilt = drop_key("inbox/", &parsed, &file).unwrap();
            prop_assert_eq!(parse_drop_key("inbox/", &rebuilt), Ok(parsed));
        }
    }

    #[test]
    fn a_drop_names_a_preset_or_a_mapping_in_the_bucket() {
        let o =
            parse_drop_key("inbox/", "inbox/con_AbCdEf0123456789/from=django/users.csv").unwrap();
        assert_eq!(o.source, Some(DropSource::Preset("django".into())));
        assert_eq!(
            drop_key("inbox/", &o, "users.csv").unwrap(),
            "inbox/con_AbCdEf0123456789/from=django/users.csv"
        );
        let o = parse_drop_key(
            "inbox/",
            "inbox/con_AbCdEf0123456789/upsert=true/mapping=crm-v2/u.csv",
        )
        .unwrap();
        assert_eq!(o.source, Some(DropSource::Mapping("crm-v2".into())));
        assert_eq!(mapping_key("crm-v2"), "mappings/crm-v2.toml");
        for (key, expected) in [
            (
                "inbox/con_AbCdEf0123456789/from=okta/u.csv",
                "from=okta: not a preset; one of auth0-export",
            ),
            (
                "inbox/con_AbCdEf0123456789/mapping=../x/u.csv",
                "mapping=..: a mapping's name is",
            ),
            (
                "inbox/con_AbCdEf0123456789/from=django/mapping=m/u.csv",
                "from= and mapping= both",
            ),
        ] {
            let e = parse_drop_key("inbox/", key).unwrap_err().to_string();
            assert!(e.starts_with(expected), "{key}: {e}");
        }
    }

    #[test]
    fn drop_keys_refuse_what_the_parser_would_misread() {
        let o = DropOptions {
            connection_id: CON.into(),
            upsert: false,
            send_completion_email: false,
            canary_warn: false,
            source: None,
        };
        assert_eq!(
            drop_key("inbox/", &o, "users.json").unwrap(),
            format!("inbox/{CON}/users.json")
        );
        for bad in ["", "a/b.json"] {
            assert!(matches!(
                drop_key("inbox/", &o, bad),
                Err(DropKeyError::BadFileName(_))
            ));
        }
        assert!(matches!(
            drop_key("inbox", &o, "u.json"),
            Err(DropKeyError::BadInbox(_))
        ));
        let named = DropOptions {
            connection_id: "Username-Password-Authentication".into(),
            ..o
        };
        let err = drop_key("inbox/", &named, "u.json").unwrap_err();
        assert!(err.to_string().contains("not a connection id"), "{err}");
    }

    const CON: &str = "con_AbCdEf0123456789";

    #[test]
    fn connection_alone_means_insert_only_and_no_email() {
        let o = parse_drop_key("inbox/", &format!("inbox/{CON}/users.json")).unwrap();
        assert_eq!(o.connection_id, CON);
        assert!(!o.upsert && !o.send_completion_email);
    }

    #[test]
    fn flags_between_connection_and_file() {
        let o = parse_drop_key(
            "inbox/",
            &format!("inbox/{CON}/send_completion_email=true/upsert=true/u.json"),
        )
        .unwrap();
        assert!(o.upsert && o.send_completion_email);
    }

    #[test]
    fn canary_warn_travels_in_the_key() {
        let o = parse_drop_key("inbox/", &format!("inbox/{CON}/canary=warn/u.json")).unwrap();
        assert!(o.canary_warn && !o.upsert);
        let o = parse_drop_key("inbox/", &format!("inbox/{CON}/canary=fail/u.json")).unwrap();
        assert!(!o.canary_warn);
        let e = parse_drop_key("inbox/", &format!("inbox/{CON}/canary=true/u.json")).unwrap_err();
        assert!(e.to_string().contains("canary=warn|fail"), "{e}");
    }

    #[test]
    fn malformed_drops_are_named() {
        let cases = [
            ("inbox/users.json".to_string(), "no connection"),
            (
                "inbox/Username-Password-Authentication/u.json".into(),
                "not a connection id",
            ),
            (format!("inbox/{CON}/upsert=yes/u.json"), "not an option"),
            (format!("inbox/{CON}/merge=true/u.json"), "not an option"),
            (
                format!("inbox/{CON}/upsert=true/upsert=false/u.json"),
                "twice",
            ),
        ];
        for (key, expected) in cases {
            let err = parse_drop_key("inbox/", &key).unwrap_err();
            assert!(err.to_string().contains(expected), "{key}: {err}");
        }
    }

    #[test]
    fn connection_id_shape() {
        assert!(is_connection_id(CON));
        assert!(!is_connection_id("con_short"));
        assert!(!is_connection_id("con_AbCdEf012345678!"));
        assert!(!is_connection_id("cxn_AbCdEf0123456789"));
    }
}
