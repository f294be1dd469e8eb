//! Turns a `POST /api/v2/jobs/users-imports` body into a validated request, or into the exact 400
//! Auth0 answers (facts §1.2, §1.4), checking in the order Auth0's messages imply.
//!
//! Choices for unconfirmed points: a `users` part without a filename (a plain field) is accepted;
//! a part sent twice is a validation error ("Expected type string but found type array", as hapi
//! turns repeated fields into an array); an empty `external_id` counts as absent (facts §1.2: the
//! server accepted it and did not echo it).

use crate::api_error::ApiError;
use crate::config::{ConnectionConfig, ConnectionKind};
use crate::form::{multipart_boundary, parse_multipart, Part};

/// A request that passed every synchronous check; the users file is still unparsed.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub connection: ConnectionConfig,
    pub upsert: bool,
    pub send_completion_email: bool,
    pub external_id: Option<String>,
    pub users_file: Vec<u8>,
}

/// The `external_id` part, read leniently so even rejected requests can be logged with it.
pub fn peek_external_id(content_type: Option<&str>, body: &[u8]) -> Option<String> {
    let parts = parse_multipart(body, &multipart_boundary(content_type?)?).ok()?;
    parts
        .into_iter()
        .find(|part| part.name == "external_id")
        .and_then(|part| String::from_utf8(part.data).ok())
        .filter(|id| !id.is_empty())
}

pub fn parse_import_request(
    content_type: Option<&str>,
    body: &[u8],
    connections: &[ConnectionConfig],
) -> Result<ImportRequest, ApiError> {
    let invalid_multipart =
        || ApiError::invalid_body("Payload validation error: 'Invalid multipart payload format'.");
    let boundary = content_type
        .and_then(multipart_boundary)
        .ok_or_else(invalid_multipart)?;
    let parts = parse_multipart(body, &boundary).map_err(|_| invalid_multipart())?;

    let users_file = parts
        .iter()
        .find(|part| part.name == "users")
        .ok_or_else(|| ApiError::invalid_body("Must provide 'users' file as multipart part."))?
        .data
        .clone();
    if users_file.is_empty() {
        return Err(ApiError::invalid_body("Users file must not be empty."));
    }

    let connection_id = text_field(&parts, "connection_id", "string")?
        .ok_or_else(|| ApiError::invalid_body("Must provide 'connection_id' as multipart part."))?;
    if !is_connection_id(&connection_id) {
        return Err(ApiError::invalid_body(
            "Payload validation error: 'String does not match pattern ^con_[A-Za-z0-9]{16}$' on property connection_id.",
        ));
    }
    let upsert = bool_field(&parts, "upsert")?.unwrap_or(false);
    let send_completion_email = bool_field(&parts, "send_completion_email")?.unwrap_or(true);
    let external_id = text_field(&parts, "external_id", "string")?.filter(|id| !id.is_empty());

    let connection = connections
        .iter()
        .find(|connection| connection.id == connection_id)
        .ok_or(ApiError::BadRequest {
            message: "The connection does not exist.".to_string(),
            error_code: Some("inexistent_connection"),
        })?;
    let not_supported = |message: &str| ApiError::BadRequest {
        message: message.to_string(),
        error_code: Some("operation_not_supported"),
    };
    match connection.kind {
        ConnectionKind::Database => {}
        ConnectionKind::Passwordless => {
            return Err(not_supported("Connection must be a database connection"))
        }
        ConnectionKind::CustomDatabaseWithoutImportMode => {
            return Err(not_supported(
                "Custom Database Connections without import mode are not allowed.",
            ))
        }
    }
    if !connection.enabled {
        return Err(not_supported("Connection must be enabled."));
    }

    Ok(ImportRequest {
        connection: connection.clone(),
        upsert,
        send_completion_email,
        external_id,
        users_file,
    })
}

/// `^con_[A-Za-z0-9]{16}$`
fn is_connection_id(id: &str) -> bool {
    id.len() == 20
        && id.starts_with("con_")
        && id[4..].bytes().all(|byte| byte.is_ascii_alphanumeric())
}

/// A text part; `expected` names the spec type for the "sent twice" validation message.
fn text_field(parts: &[Part], name: &str, expected: &str) -> Result<Option<String>, ApiError> {
    let mut matching = parts.iter().filter(|part| part.name == name);
    let Some(first) = matching.next() else {
        return Ok(None);
    };
    if matching.next().is_some() {
        return Err(ApiError::invalid_body(format!(
            "Payload validation error: 'Expected type {expected} but found type array' on property {name}."
        )));
    }
    String::from_utf8(first.data.clone())
        .map(Some)
        .map_err(|_| {
            ApiError::invalid_body("Payload validation error: 'Invalid multipart payload format'.")
        })
}

/// Booleans travel as the text `true`/`false` (facts §1.2); anything else fails validation.
fn bool_field(parts: &[Part], name: &str) -> Result<Option<bool>, ApiError> {
    match text_field(parts, name, "boolean")?.as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::invalid_body(format!(
            "Payload validation error: 'Expected type boolean but found type string' on property {name}."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_id_pattern() {
        assert!(is_connection_id("con_TestConnection01"));
        assert!(!is_connection_id("con_short"));
        assert!(!is_connection_id("con_TestConnection000!"));
        assert!(!is_connection_id("Username-Password-Authentication"));
    }
}
