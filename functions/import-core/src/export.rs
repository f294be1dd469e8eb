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

/// Which export-only fields a record holds, as `Reshaped::fields_dropped` counts them (bit `i`
/// for `EXPORT_ONLY_FIELDS[i]`), given whether it holds a top-level key.
pub fn export_fields_in(holds: impl Fn(&str) -> bool) -> u16 {
    EXPORT_ONLY_FIELDS
        .iter()
        .enumerate()
        .filter(|(_, field)| holds(field))
        .fold(0, |bits, (i, _)| bits | 1 << i)
}

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

/// What `reshape_compact` changed: the same facts `drop_export_fields` and `strip_id_prefix`
/// count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reshaped {
    /// Bit `i` set: `EXPORT_ONLY_FIELDS[i]` was dropped.
    pub fields_dropped: u16,
    pub prefix_stripped: bool,
}

/// `drop_export_fields` (when `drop_fields`) and `strip_id_prefix` done on a record's compact
/// JSON text, so the members left keep their bytes as written: appends the reshaped object to
/// `out`. `record` must be a compact JSON object that parses; `None` (and `out` as it was) where
/// the text alone cannot show what the parsed value holds: a key written with an escape, or
/// anything that is not such an object. Keys repeated in `record` are the caller's concern (both
/// copies are treated alike here, while a parser keeps the last).
pub fn reshape_compact(record: &[u8], drop_fields: bool, out: &mut Vec<u8>) -> Option<Reshaped> {
    let start = out.len();
    let reshaped = reshape_members(record, drop_fields, out);
    if reshaped.is_none() {
        out.truncate(start);
    }
    reshaped
}

fn reshape_members(record: &[u8], drop_fields: bool, out: &mut Vec<u8>) -> Option<Reshaped> {
    let body = record.strip_prefix(b"{")?.strip_suffix(b"}")?;
    let mut reshaped = Reshaped::default();
    let mut kept = 0usize;
    let mut at = 0;
    out.push(b'{');
    while at < body.len() {
        let key_end = string_end(body, at)?;
        let key = &body[at + 1..key_end - 1];
        if key.contains(&b'\\') || body.get(key_end) != Some(&b':') {
            return None;
        }
        let value_start = key_end + 1;
        let value_end = value_end(body, value_start)?;
        let value = &body[value_start..value_end];
        let dropped = drop_fields
            .then(|| EXPORT_ONLY_FIELDS.iter().position(|f| f.as_bytes() == key))
            .flatten();
        if let Some(field) = dropped {
            reshaped.fields_dropped |= 1 << field;
        } else {
            if kept > 0 {
                out.push(b',');
            }
            kept += 1;
            let unprefixed = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_prefix(AUTH0_ID_PREFIX.as_bytes()));
            match unprefixed {
                Some(rest) if key == b"user_id" => {
                    out.extend_from_slice(&body[at..value_start]);
                    out.push(b'"');
                    out.extend_from_slice(rest);
                    reshaped.prefix_stripped = true;
                }
                _ => out.extend_from_slice(&body[at..value_end]),
            }
        }
        at = value_end + 1;
    }
    out.push(b'}');
    Some(reshaped)
}

/// Index just past the string that opens at `body[at]`.
fn string_end(body: &[u8], at: usize) -> Option<usize> {
    if body.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Index of the `,` that ends the compact value starting at `body[at]`, or `body.len()`.
fn value_end(body: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = at;
    while i < body.len() {
        match body[i] {
            b'"' => {
                i = string_end(body, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    (depth == 0 && i > at).then_some(body.len())
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
