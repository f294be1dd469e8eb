//! Rules on `app_metadata` and `user_metadata` beyond the schema's "any object" (facts §4.3):
//! Auth0-reserved `app_metadata` keys, and field names containing `.` or `$`.

use super::node::{Node, ObjectNode};

use super::{code, violation, Members, Path};
use crate::violation::Violation;

/// Defines the reserved keys once, as the list (for the tests) and as a `match`
/// (every metadata key of every record is looked up: a match compares a handful of bytes where a
/// scan of the list compares up to eighteen strings).
macro_rules! reserved_app_metadata_keys {
    ($($key:literal),+ $(,)?) => {
        /// Keys Auth0 keeps for itself inside `app_metadata` (facts §4.3, current list; matched
        /// exactly, since Auth0's keys are case-sensitive).
        #[cfg(test)]
        pub(crate) const RESERVED_APP_METADATA_KEYS: &[&str] = &[$($key),+];

        fn is_reserved_app_metadata_key(key: &str) -> bool {
            matches!(key, $($key)|+)
        }
    };
}

reserved_app_metadata_keys![
    "__tenant",
    "_id",
    "blocked",
    "clientID",
    "created_at",
    "email_verified",
    "email",
    "globalClientID",
    "global_client_id",
    "identities",
    "lastIP",
    "lastLogin",
    "loginsCount",
    "metadata",
    "multifactor_last_modified",
    "multifactor",
    "updated_at",
    "user_id",
];

/// Both metadata objects obey the general field-name rule.
const METADATA_FIELDS: &[&str] = &["app_metadata", "user_metadata"];

/// A metadata field name without `.` or `$` (facts §4.3).
fn field_name_passes(key: &str) -> bool {
    !key.bytes().any(|b| b == b'.' || b == b'$')
}

/// Both metadata rules on one key of `app_metadata` (`in_app_metadata`) or `user_metadata`.
pub(crate) fn key_passes(in_app_metadata: bool, key: &str) -> bool {
    field_name_passes(key) && !(in_app_metadata && is_reserved_app_metadata_key(key))
}

/// Auth0 reports a forbidden attribute with `NOT_PASSED` (as for the hash XOR, §3.1), so a
/// reserved key uses the same code.
pub(crate) fn check_reserved_app_metadata_keys<'v, N: Node<'v>>(
    record: &Members<'v, N>,
    out: &mut Vec<Violation>,
) {
    let Some(app_metadata) = record.get("app_metadata").and_then(Node::as_object) else {
        return;
    };
    let root = Path::Root;
    let base = root.key("app_metadata");
    for key in app_metadata.members().map(|(key, _)| key) {
        if is_reserved_app_metadata_key(key) {
            out.push(violation(
                code::NOT_PASSED,
                &base.key(key),
                format_args!(
                    "Forbidden attribute: {key} is reserved by Auth0 inside app_metadata; rename it \
                     (or move it to the matching top-level field if it is one)"
                ),
            ));
        }
    }
}

/// Field names must not contain `.` or `$` (facts §4.3, general metadata rules; a MongoDB heritage).
/// Only the top-level keys of each metadata object are checked: that is where the docs place the
/// rule, and walking arbitrarily deep values on millions of records would cost more than a rare
/// nested violation is worth. The code is `PATTERN` (a name that fails a character rule) rather than
/// a new code of ours, to keep the code list small and Auth0-shaped.
pub(crate) fn check_metadata_field_names<'v, N: Node<'v>>(
    record: &Members<'v, N>,
    out: &mut Vec<Violation>,
) {
    let root = Path::Root;
    for field in METADATA_FIELDS {
        let Some(metadata) = record.get(field).and_then(Node::as_object) else {
            continue;
        };
        let base = root.key(field);
        for key in metadata.members().map(|(key, _)| key) {
            if !field_name_passes(key) {
                out.push(violation(
                    code::PATTERN,
                    &base.key(key),
                    format_args!("metadata field names must not contain '.' or '$'; rename {key}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testkit::{assert_clean, assert_finding, findings, with};
    use super::*;

    #[test]
    fn reserved_app_metadata_keys_are_rejected() {
        assert_clean(&with(
            "app_metadata",
            json!({ "roles": ["admin"], "Email": "x" }),
        ));
        for key in RESERVED_APP_METADATA_KEYS {
            let mut metadata = serde_json::Map::new();
            metadata.insert(key.to_string(), json!(1));
            let user = with("app_metadata", serde_json::Value::Object(metadata));
            assert_finding(&user, code::NOT_PASSED, &format!("app_metadata.{key}"));
        }
    }

    #[test]
    fn reserved_keys_are_allowed_in_user_metadata() {
        assert_clean(&with(
            "user_metadata",
            json!({ "email": "other@example.com", "blocked": false }),
        ));
    }

    #[test]
    fn metadata_field_names_reject_dot_and_dollar() {
        assert_clean(&with("user_metadata", json!({ "theme": { "a.b": 1 } })));
        assert_finding(
            &with("user_metadata", json!({ "a.b": 1 })),
            code::PATTERN,
            "user_metadata.a.b",
        );
        assert_finding(
            &with("app_metadata", json!({ "$set": 1 })),
            code::PATTERN,
            "app_metadata.$set",
        );
    }

    #[test]
    fn non_object_metadata_is_only_a_type_error() {
        let found = findings(&with("app_metadata", json!("__tenant")));
        assert_eq!(
            found,
            vec![(code::INVALID_TYPE.to_string(), "app_metadata".to_string())]
        );
    }
}
