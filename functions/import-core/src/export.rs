//! Auth0's own user export (NDJSON, facts §6) made importable: the `auth0|` prefix comes off
//! `user_id` and export-only fields are dropped, each change counted for the manifest.

use serde_json::{Map, Value};

use crate::manifest::Transformations;

/// The connection strategy prefix Auth0 adds to imported ids (facts §4.2, §6.1 step 3).
pub const AUTH0_ID_PREFIX: &str = "auth0|";

/// Fields Auth0 puts in exports that the import schema does not accept (facts §6.1 step 4,
/// and the profile's read-only attributes).
pub const EXPORT_ONLY_FIELDS: &[&str] = &[
    "created_at",
    "updated_at",
    "last_login",
    "last_ip",
    "logins_count",
    "identities",
    "multifactor",
    "multifactor_last_modified",
    "last_password_reset",
];

/// Whether the first record of an NDJSON input looks like Auth0's export.
pub fn looks_like_auth0_export(record: &Value) -> bool {
    let Some(obj) = record.as_object() else {
        return false;
    };
    EXPORT_ONLY_FIELDS.iter().any(|f| obj.contains_key(*f))
        || obj
            .get("user_id")
            .and_then(Value::as_str)
            .is_some_and(|id| id.starts_with(AUTH0_ID_PREFIX))
}

/// Drops export-only fields. Only applied to inputs detected as Auth0 exports: in an import
/// file, an export-only field is a mistake the operator should see as a reject.
pub fn drop_export_fields(record: &mut Value, counts: &mut Transformations) {
    let Some(obj) = record.as_object_mut() else {
        return;
    };
    for field in EXPORT_ONLY_FIELDS {
        if obj.shift_remove(*field).is_some() {
            *counts
                .fields_dropped
                .entry((*field).to_string())
                .or_default() += 1;
        }
    }
}

/// Whether `strip_id_prefix` would change a record with this `user_id`.
pub fn has_id_prefix(user_id: Option<&str>) -> bool {
    user_id.is_some_and(|id| id.starts_with(AUTH0_ID_PREFIX))
}

/// Removes a leading `auth0|` from `user_id`, in any flavour: left on, Auth0 would store
/// `auth0|auth0|…` and the user's id would silently change.
pub fn strip_id_prefix(record: &mut Value, counts: &mut Transformations) {
    let Some(obj): Option<&mut Map<String, Value>> = record.as_object_mut() else {
        return;
    };
    if let Some(Value::String(id)) = obj.get_mut("user_id") {
        if let Some(rest) = id.strip_prefix(AUTH0_ID_PREFIX) {
            *id = rest.to_string();
            counts.user_id_prefix_stripped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn export_record_becomes_import_record() {
        let mut rec = json!({"user_id":"auth0|abc","email":"a@x.io","created_at":"2020-01-01",
            "identities":[{"provider":"auth0"}],"logins_count":3,"name":"A"});
        assert!(looks_like_auth0_export(&rec));
        let mut counts = Transformations::default();
        drop_export_fields(&mut rec, &mut counts);
        strip_id_prefix(&mut rec, &mut counts);
        assert_eq!(rec, json!({"user_id":"abc","email":"a@x.io","name":"A"}));
        assert_eq!(counts.user_id_prefix_stripped, 1);
        assert_eq!(counts.fields_dropped.get("identities"), Some(&1));
        assert_eq!(counts.fields_dropped.len(), 3);
    }

    #[test]
    fn plain_import_record_is_not_an_export() {
        let rec = json!({"user_id":"abc","email":"a@x.io"});
        assert!(!looks_like_auth0_export(&rec));
        let mut other = json!({"user_id":"google-oauth2|1","email":"a@x.io"});
        let mut counts = Transformations::default();
        strip_id_prefix(&mut other, &mut counts);
        assert_eq!(other["user_id"], "google-oauth2|1");
        assert_eq!(counts.user_id_prefix_stripped, 0);
    }
}
