//! User export jobs (`POST /api/v2/jobs/users-exports`, facts §6): pending → processing →
//! completed on their own clock, the connection's users written as gzip NDJSON at completion.
//!
//! Choices for points the facts leave open:
//! - The file is a snapshot of the connection when the job completes (users imported meanwhile
//!   are in it); `limit` keeps the first N users in creation order.
//! - Without `fields`, the "predefined set" (not published) is `DEFAULT_FIELDS` below.
//! - A field `name` is a dotted path with optional `[n]` indexes (`identities[0].connection`);
//!   a user without it has no key for it in its line (Auth0's NDJSON omits empty fields).
//! - Only `format: json` is modelled; `csv` answers 400 (our clients never ask for it).
//! - Every `GET /jobs/{id}` of a completed export mints a fresh `location` that expires after
//!   `EmulatorConfig::export_url_ttl` (60 s on Auth0, §6); an expired or unknown URL answers
//!   S3's 403 `AccessDenied` "Request has expired" XML.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Map, Value};

use crate::api_error::ApiError;
use crate::config::ConnectionConfig;
use crate::jobs::JobStatus;

/// Exported when the request names no fields (our choice; Auth0 does not publish its set).
pub const DEFAULT_FIELDS: &[&str] = &[
    "user_id",
    "email",
    "email_verified",
    "username",
    "phone_number",
    "name",
    "given_name",
    "family_name",
    "nickname",
    "picture",
    "created_at",
    "updated_at",
];

/// Longest `name` / `export_as` Auth0 accepts (facts §6).
const MAX_FIELD_NAME: usize = 100;

/// One requested field: the profile path and the key it is written under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportField {
    pub name: String,
    pub export_as: Option<String>,
}

/// A validated export request.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub connection: ConnectionConfig,
    pub limit: Option<u64>,
    pub fields: Option<Vec<ExportField>>,
}

/// Reads a `CreateExportUsersRequestContent` body (`additionalProperties: false`).
pub fn parse_export_request(
    body: &[u8],
    connections: &[ConnectionConfig],
) -> Result<ExportRequest, ApiError> {
    let invalid = |why: &str| ApiError::invalid_body(format!("Payload validation error: {why}"));
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid("'Invalid JSON payload'."));
    };
    for key in object.keys() {
        if !matches!(
            key.as_str(),
            "connection_id" | "format" | "limit" | "fields"
        ) {
            return Err(invalid(&format!(
                "'Additional properties not allowed: {key}'."
            )));
        }
    }
    // Omitting the connection exports every connection on Auth0; our clients always name one,
    // and the emulator models only that.
    let Some(connection_id) = object.get("connection_id").and_then(Value::as_str) else {
        return Err(invalid(
            "'Missing required property: connection_id' (the emulator exports one connection)",
        ));
    };
    let well_formed = connection_id
        .strip_prefix("con_")
        .is_some_and(|rest| rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !well_formed {
        return Err(invalid(&format!(
            "'String does not match pattern ^con_[A-Za-z0-9]{{16}}$: {connection_id}' on property connection_id."
        )));
    }
    let Some(connection) = connections.iter().find(|c| c.id == connection_id) else {
        return Err(ApiError::BadRequest {
            message: "The connection does not exist.".into(),
            error_code: Some("inexistent_connection"),
        });
    };
    match object.get("format").map(|f| f.as_str()) {
        None | Some(Some("json")) => {}
        Some(Some("csv")) => {
            return Err(invalid("'format csv is not modelled by the emulator'."));
        }
        Some(_) => {
            return Err(invalid(
                "'No enum match for: format' on property format (json, csv).",
            ))
        }
    }
    let limit = match object.get("limit") {
        None => None,
        Some(value) => match value.as_u64() {
            Some(n) if n >= 1 => Some(n),
            _ => {
                return Err(invalid(
                    "'Value must be an integer >= 1' on property limit.",
                ))
            }
        },
    };
    let fields = match object.get("fields") {
        None => None,
        Some(Value::Array(items)) => {
            let mut fields = Vec::with_capacity(items.len());
            for item in items {
                let name = item.get("name").and_then(Value::as_str);
                let export_as = item.get("export_as").and_then(Value::as_str);
                let Some(name) = name.filter(|n| !n.is_empty() && n.len() <= MAX_FIELD_NAME) else {
                    return Err(invalid(
                        "'Missing required property: name' on property fields.",
                    ));
                };
                if export_as.is_some_and(|a| a.len() > MAX_FIELD_NAME) {
                    return Err(invalid(
                        "'String is too long (max 100)' on property fields.export_as.",
                    ));
                }
                fields.push(ExportField {
                    name: name.to_string(),
                    export_as: export_as.map(str::to_string),
                });
            }
            Some(fields)
        }
        Some(_) => return Err(invalid("'Expected type array' on property fields.")),
    };
    Ok(ExportRequest {
        connection: connection.clone(),
        limit,
        fields,
    })
}

/// An export job and, once completed, its file.
#[derive(Debug, Clone)]
pub struct ExportJob {
    pub id: String,
    pub request: ExportRequest,
    pub created_at: String,
    pub processing_from: Instant,
    pub ends_at: Instant,
    /// The gzip NDJSON, made when the job completes.
    pub file: Option<Bytes>,
    /// Users written to the file.
    pub users: Option<u64>,
    /// Download signatures minted by job reads, with their expiry.
    pub signatures: HashMap<String, Instant>,
}

impl ExportJob {
    pub fn new(
        id: String,
        request: ExportRequest,
        created_at: String,
        users_now: usize,
        base: Duration,
        per_user: Duration,
        now: Instant,
    ) -> Self {
        let processing_from = now + base;
        let work = per_user.saturating_mul(u32::try_from(users_now).unwrap_or(u32::MAX));
        Self {
            id,
            request,
            created_at,
            processing_from,
            ends_at: processing_from + work,
            file: None,
            users: None,
            signatures: HashMap::new(),
        }
    }

    pub fn status(&self, now: Instant) -> JobStatus {
        if self.file.is_some() {
            JobStatus::Completed
        } else if now < self.processing_from {
            JobStatus::Pending
        } else {
            JobStatus::Processing
        }
    }

    /// Writes the file from the connection's users (in creation order).
    pub fn complete<'u>(&mut self, users: impl Iterator<Item = &'u Value>) {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        let limit = self.request.limit.unwrap_or(u64::MAX);
        let mut written = 0u64;
        for user in users {
            if written >= limit {
                break;
            }
            let line = self.project(user);
            // Writing to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut encoder, &line);
            let _ = encoder.write_all(b"\n");
            written += 1;
        }
        let bytes = encoder.finish().unwrap_or_default();
        self.file = Some(Bytes::from(bytes));
        self.users = Some(written);
    }

    /// The exported object of one user: each requested field under its name or alias.
    fn project(&self, user: &Value) -> Value {
        let mut line = Map::new();
        match &self.request.fields {
            Some(fields) => {
                for field in fields {
                    if let Some(value) = lookup(user, &field.name) {
                        let key = field.export_as.as_ref().unwrap_or(&field.name);
                        line.insert(key.clone(), value.clone());
                    }
                }
            }
            None => {
                for name in DEFAULT_FIELDS {
                    if let Some(value) = lookup(user, name) {
                        line.insert((*name).to_string(), value.clone());
                    }
                }
            }
        }
        Value::Object(line)
    }

    /// `GET /api/v2/jobs/{id}` of an export; `location` (when completed) is minted by the caller.
    pub fn status_body(&self, now: Instant, location: Option<String>) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), json!("users_export"));
        body.insert("status".into(), json!(self.status(now)));
        body.insert("connection_id".into(), json!(self.request.connection.id));
        body.insert("format".into(), json!("json"));
        if let Some(limit) = self.request.limit {
            body.insert("limit".into(), json!(limit));
        }
        if let Some(fields) = &self.request.fields {
            body.insert("fields".into(), fields_json(fields));
        }
        if let Some(location) = location {
            body.insert("location".into(), json!(location));
        }
        body.insert("connection".into(), json!(self.request.connection.name));
        body.insert("created_at".into(), json!(self.created_at));
        body.insert("id".into(), json!(self.id));
        Value::Object(body)
    }

    /// The 200 body of creation: the echo facts §6 lists, `status: pending`.
    pub fn created_body(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), json!("users_export"));
        body.insert("status".into(), json!("pending"));
        body.insert("connection_id".into(), json!(self.request.connection.id));
        body.insert("format".into(), json!("json"));
        if let Some(limit) = self.request.limit {
            body.insert("limit".into(), json!(limit));
        }
        if let Some(fields) = &self.request.fields {
            body.insert("fields".into(), fields_json(fields));
        }
        body.insert("connection".into(), json!(self.request.connection.name));
        body.insert("created_at".into(), json!(self.created_at));
        body.insert("id".into(), json!(self.id));
        Value::Object(body)
    }
}

fn fields_json(fields: &[ExportField]) -> Value {
    Value::Array(
        fields
            .iter()
            .map(|f| match &f.export_as {
                Some(alias) => json!({"name": f.name, "export_as": alias}),
                None => json!({"name": f.name}),
            })
            .collect(),
    )
}

/// A profile path: `a.b`, `identities[0].connection`.
fn lookup<'v>(user: &'v Value, path: &str) -> Option<&'v Value> {
    let mut at = user;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((key, rest)) => (key, rest.strip_suffix(']')?.parse::<usize>().ok()),
            None => (part, None),
        };
        at = at.get(key)?;
        if let Some(index) = index {
            at = at.get(index)?;
        }
    }
    (!at.is_null()).then_some(at)
}

/// The query parameter `name` of a raw query string.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    crate::form::parse_urlencoded(query)
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// S3's answer to an expired or tampered presigned URL.
pub const EXPIRED_XML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConnectionKind;

    fn connection() -> ConnectionConfig {
        ConnectionConfig {
            id: "con_TestConnection01".into(),
            name: "Username-Password-Authentication".into(),
            kind: ConnectionKind::Database,
            enabled: true,
        }
    }

    #[test]
    fn requests_follow_the_published_schema() {
        let connections = [connection()];
        let ok = parse_export_request(
            br#"{"connection_id":"con_TestConnection01","format":"json","fields":[{"name":"email"},{"name":"identities[0].connection","export_as":"provider"}]}"#,
            &connections,
        )
        .unwrap();
        assert_eq!(ok.fields.unwrap()[1].export_as.as_deref(), Some("provider"));
        for bad in [
            &br#"{"connection_id":"con_TestConnection01","extra":1}"#[..],
            br#"{"connection_id":"con_short"}"#,
            br#"{"connection_id":"con_TestConnection01","limit":0}"#,
            br#"{"connection_id":"con_TestConnection01","format":"xml"}"#,
            br#"{"connection_id":"con_TestConnection01","fields":[{"export_as":"x"}]}"#,
        ] {
            let error = parse_export_request(bad, &connections).unwrap_err();
            assert_eq!(error.status(), 400, "{}", String::from_utf8_lossy(bad));
        }
        let unknown =
            parse_export_request(br#"{"connection_id":"con_AAAAAAAAAAAAAAAA"}"#, &connections)
                .unwrap_err();
        assert_eq!(unknown.body()["errorCode"], "inexistent_connection");
    }

    #[test]
    fn paths_reach_into_arrays_and_objects() {
        let user = json!({"identities": [{"connection": "c"}], "user_metadata": {"a": {"b": 1}}, "n": null});
        assert_eq!(lookup(&user, "identities[0].connection"), Some(&json!("c")));
        assert_eq!(lookup(&user, "user_metadata.a.b"), Some(&json!(1)));
        assert_eq!(lookup(&user, "identities[1].connection"), None);
        assert_eq!(lookup(&user, "n"), None);
    }
}
