//! Every Management API error the emulator answers, with Auth0's status, reason and exact message
//! text (facts §1.4, §2, §3, §5.2) in one place: `{"statusCode","error","message","errorCode"}`.
//!
//! Choices for points the facts leave open:
//! - 401 bodies carry `attributes.error` like the live API; a missing header says
//!   "Missing authentication" (hapi's text), an unknown token "Invalid token".
//! - 403 carries `errorCode: insufficient_scope`; with two accepted scopes the list is
//!   comma-joined: "Insufficient scope; expected any of: create:users,read:users.".
//! - 413's reason phrase is Node's "Payload Too Large"; no errorCode (hapi's error has none).
//! - The concurrency 429 has no errorCode (facts §9.7: the docs body shows none).
//! - 400 errorCodes: `invalid_body` for payload problems, `inexistent_connection` for an unknown
//!   connection, `operation_not_supported` for wrong kind / disabled connections.

use serde_json::{json, Map, Value};

/// Scopes accepted by an endpoint, in the order the 403 message lists them.
pub const IMPORT_SCOPES: &[&str] = &["create:users"];
pub const READ_JOB_SCOPES: &[&str] = &["create:users", "read:users"];
/// `POST /api/v2/jobs/users-exports` and `GET /api/v2/users-by-email` (facts §6; Auth0's reference).
pub const READ_USER_SCOPES: &[&str] = &["read:users"];
/// `DELETE /api/v2/users/{id}` (Auth0's reference).
pub const DELETE_USER_SCOPES: &[&str] = &["delete:users"];
/// `GET /api/v2/connections/{id}` and `/clients` (Auth0's reference: `read:connections`).
pub const READ_CONNECTION_SCOPES: &[&str] = &["read:connections"];

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    MissingAuthentication,
    InvalidToken,
    ExpiredToken,
    InsufficientScope(&'static [&'static str]),
    PayloadTooLarge,
    GlobalRateLimit,
    TooManyActiveJobs(usize),
    BadRequest {
        message: String,
        error_code: Option<&'static str>,
    },
    JobNotFound,
    JobErrorsJobNotFound,
    ConnectionNotFound,
    RouteNotFound,
    Internal,
    Unavailable,
}

impl ApiError {
    /// 400 with `errorCode: invalid_body`.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            error_code: Some("invalid_body"),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::MissingAuthentication | Self::InvalidToken | Self::ExpiredToken => 401,
            Self::InsufficientScope(_) => 403,
            Self::PayloadTooLarge => 413,
            Self::GlobalRateLimit | Self::TooManyActiveJobs(_) => 429,
            Self::BadRequest { .. } => 400,
            Self::JobNotFound
            | Self::JobErrorsJobNotFound
            | Self::ConnectionNotFound
            | Self::RouteNotFound => 404,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }

    pub fn body(&self) -> Value {
        let (message, error_code): (String, Option<&str>) = match self {
            Self::MissingAuthentication => return unauthorized("Missing authentication"),
            Self::InvalidToken => return unauthorized("Invalid token"),
            Self::ExpiredToken => {
                return unauthorized("Expired token received for JSON Web Token validation")
            }
            Self::InsufficientScope(scopes) => (
                format!("Insufficient scope; expected any of: {}.", scopes.join(",")),
                Some("insufficient_scope"),
            ),
            Self::PayloadTooLarge => (
                format!(
                    "Payload content length greater than maximum allowed: {}",
                    import_core::multipart::AUTH0_MAX_REQUEST_BYTES
                ),
                None,
            ),
            Self::GlobalRateLimit => (
                "Global limit has been reached".to_string(),
                Some("too_many_requests"),
            ),
            Self::TooManyActiveJobs(active) => (
                format!(
                    "There are {active} active import users jobs, please wait until some of them are finished and try again"
                ),
                None,
            ),
            Self::BadRequest {
                message,
                error_code,
            } => (message.clone(), *error_code),
            Self::JobNotFound => ("Job not found.".to_string(), Some("inexistent_job")),
            Self::JobErrorsJobNotFound => (
                "The job does not exist".to_string(),
                Some("inexistent_job"),
            ),
            Self::ConnectionNotFound => (
                "The connection does not exist.".to_string(),
                Some("inexistent_connection"),
            ),
            Self::RouteNotFound => ("Not Found".to_string(), None),
            Self::Internal => (
                "An internal server error occurred".to_string(),
                None,
            ),
            Self::Unavailable => ("Service Unavailable".to_string(), None),
        };
        standard_body(self.status(), &message, error_code)
    }
}

/// Auth0's standard Management API error body.
fn standard_body(status: u16, message: &str, error_code: Option<&str>) -> Value {
    let mut body = Map::new();
    body.insert("statusCode".into(), json!(status));
    body.insert("error".into(), json!(reason_phrase(status)));
    body.insert("message".into(), json!(message));
    if let Some(code) = error_code {
        body.insert("errorCode".into(), json!(code));
    }
    Value::Object(body)
}

fn unauthorized(message: &str) -> Value {
    json!({
        "statusCode": 401,
        "error": "Unauthorized",
        "message": message,
        "attributes": { "error": message },
    })
}

/// The HTTP reason phrase Auth0 puts in `error`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_the_documented_texts() {
        assert_eq!(
            ApiError::GlobalRateLimit.body(),
            json!({"statusCode":429,"error":"Too Many Requests","message":"Global limit has been reached","errorCode":"too_many_requests"})
        );
        assert_eq!(
            ApiError::TooManyActiveJobs(2).body(),
            json!({"statusCode":429,"error":"Too Many Requests","message":"There are 2 active import users jobs, please wait until some of them are finished and try again"})
        );
        assert_eq!(
            ApiError::InsufficientScope(IMPORT_SCOPES).body()["message"],
            "Insufficient scope; expected any of: create:users."
        );
        assert_eq!(
            ApiError::PayloadTooLarge.body()["message"],
            "Payload content length greater than maximum allowed: 512000"
        );
    }
}
