//! What Auth0's Management API answers mean for us: the secret that names a tenant, and the
//! classification of import-job responses into "created", "wait", "retry" or "stop".

use serde_json::Value;

/// The tenant and how to get a token for it, from the Secrets Manager secret:
/// `{"domain","client_id","client_secret"}` (client-credentials grant) or `{"domain","token"}`.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth0Credentials {
    ClientCredentials {
        base_url: String,
        client_id: String,
        client_secret: String,
    },
    StaticToken {
        base_url: String,
        token: String,
    },
}

// Secrets never reach a log through `{:?}`.
impl std::fmt::Debug for Auth0Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth0Credentials::ClientCredentials {
                base_url,
                client_id,
                ..
            } => f
                .debug_struct("ClientCredentials")
                .field("base_url", base_url)
                .field("client_id", client_id)
                .field("client_secret", &"*****")
                .finish(),
            Auth0Credentials::StaticToken { base_url, .. } => f
                .debug_struct("StaticToken")
                .field("base_url", base_url)
                .field("token", &"*****")
                .finish(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the Auth0 secret is not valid JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("the Auth0 secret must be a JSON object with \"domain\" and either \"client_id\"+\"client_secret\" or \"token\"")]
    NotObject,
    #[error("the Auth0 secret has no \"{0}\" (a non-empty string)")]
    Missing(&'static str),
    #[error("the Auth0 secret has \"client_id\" but no \"client_secret\" (a non-empty string)")]
    MissingClientSecret,
    #[error("the Auth0 secret's \"domain\" must be a host name (tenant.eu.auth0.com) or a base URL with http:// or https://")]
    BadDomain,
}

impl Auth0Credentials {
    pub fn base_url(&self) -> &str {
        match self {
            Auth0Credentials::ClientCredentials { base_url, .. }
            | Auth0Credentials::StaticToken { base_url, .. } => base_url,
        }
    }
}

/// The Management API audience for a tenant base URL (facts §5.1: trailing slash included).
pub fn audience(base_url: &str) -> String {
    format!("{base_url}/api/v2/")
}

/// Parses the secret's JSON. Errors name the field, never its value.
pub fn parse_secret(text: &str) -> Result<Auth0Credentials, SecretError> {
    let value: Value = serde_json::from_str(text).map_err(|e| SecretError::NotJson {
        line: e.line(),
        column: e.column(),
    })?;
    let obj = value.as_object().ok_or(SecretError::NotObject)?;
    let field = |name: &'static str| {
        obj.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let domain = field("domain").ok_or(SecretError::Missing("domain"))?;
    let base_url = base_url_of(domain)?;
    if let Some(token) = field("token") {
        return Ok(Auth0Credentials::StaticToken {
            base_url,
            token: token.to_string(),
        });
    }
    let client_id = field("client_id").ok_or(SecretError::Missing("client_id"))?;
    let client_secret = field("client_secret").ok_or(SecretError::MissingClientSecret)?;
    Ok(Auth0Credentials::ClientCredentials {
        base_url,
        client_id: client_id.to_string(),
        client_secret: client_secret.to_string(),
    })
}

/// `tenant.auth0.com` → `https://tenant.auth0.com`; a full base URL (the emulator on loopback)
/// is kept, less any trailing slash.
fn base_url_of(domain: &str) -> Result<String, SecretError> {
    let url = if domain.contains("://") {
        if !(domain.starts_with("https://") || domain.starts_with("http://")) {
            return Err(SecretError::BadDomain);
        }
        domain.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", domain.trim_end_matches('/'))
    };
    let host = url.split("://").nth(1).unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
        return Err(SecretError::BadDomain);
    }
    Ok(url)
}

/// The two 429s share a status code; the concurrency one is told apart by its message (§5.2).
const CONCURRENCY_MARKER: &str = "active import users jobs";

/// What an answer to `POST /api/v2/jobs/users-imports` means. Only answers that prove no job
/// was created may lead to sending the chunk again; everything else is `InDoubt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportVerdict {
    /// 202 with a job id: the job exists.
    Created { job_id: String },
    /// The tenant's job slots are full (someone else's jobs, or Auth0 still counts a finished
    /// one): no job was created. Give our slot back, leave the chunk pending.
    SlotsBusy,
    /// Rate limit (facts §5.2): rejected before any work, so send again after this many seconds.
    RateLimited { wait_s: u64 },
    /// 401: the token is refused before the request is processed (facts §1.4); mint a new
    /// one and send again.
    Unauthorized,
    /// A 4xx that refuses the request (facts §1.4, §7.3: request-level problems are rejected
    /// synchronously and create no job): a fix is needed, never retried.
    Refused {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// The request reached Auth0 or the gateway in front of it, and this answer does not prove
    /// that no job was created: any 5xx (a 500 may follow the job's creation; 502 and 504 come
    /// from the gateway while Auth0 may still be working on the request) and a 2xx without a job
    /// id. The chunk is never sent again automatically.
    InDoubt { status: u16, message: String },
}

/// Auth0's `errorCode` (e.g. `invalid_body`, `operation_not_supported`), when the body has one.
pub fn error_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("errorCode")?
        .as_str()
        .map(str::to_string)
}

/// Auth0's error text from a Management API body (`message`, else `error_description`,
/// else `error`), or the raw status when the body says nothing.
pub fn error_message(status: u16, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let pick = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let text = pick("message")
        .or_else(|| pick("error_description"))
        .or_else(|| pick("error"));
    match (text, pick("errorCode")) {
        (Some(t), Some(code)) => format!("{t} ({code})"),
        (Some(t), None) => t,
        _ => format!("HTTP {status} with no error message"),
    }
}

/// How long a rate-limited client should wait: `Retry-After` (seconds) when present, else
/// until `x-ratelimit-reset` (UNIX seconds), else one second (facts §5.2).
pub fn rate_limit_wait_s(retry_after: Option<&str>, reset: Option<&str>, now_unix_s: u64) -> u64 {
    if let Some(s) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
        return s.max(1);
    }
    if let Some(at) = reset.and_then(|v| v.trim().parse::<u64>().ok()) {
        return at.saturating_sub(now_unix_s).max(1);
    }
    1
}

pub fn classify_import(
    status: u16,
    body: &[u8],
    retry_after: Option<&str>,
    reset: Option<&str>,
    now_unix_s: u64,
) -> ImportVerdict {
    match status {
        200..=299 => {
            let job_id = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string));
            match job_id {
                Some(job_id) => ImportVerdict::Created { job_id },
                // Auth0 says it accepted something but not which job: one may exist, and we
                // cannot follow it.
                None => ImportVerdict::InDoubt {
                    status,
                    message: "Auth0 answered success without a job id".into(),
                },
            }
        }
        401 => ImportVerdict::Unauthorized,
        429 => {
            let message = error_message(status, body);
            if message.contains(CONCURRENCY_MARKER) {
                ImportVerdict::SlotsBusy
            } else {
                ImportVerdict::RateLimited {
                    wait_s: rate_limit_wait_s(retry_after, reset, now_unix_s),
                }
            }
        }
        400..=499 => ImportVerdict::Refused {
            status,
            code: error_code(body),
            message: error_message(status, body),
        },
        // 5xx, and statuses outside HTTP's classes: nothing proves the job was not created.
        _ => ImportVerdict::InDoubt {
            status,
            message: error_message(status, body),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_shapes() {
        let cc = parse_secret(
            r#"{"domain":"acme.eu.auth0.com","client_id":"id","client_secret":"s3cr3t"}"#,
        )
        .unwrap();
        assert_eq!(cc.base_url(), "https://acme.eu.auth0.com");
        assert_eq!(audience(cc.base_url()), "https://acme.eu.auth0.com/api/v2/");
        let st = parse_secret(r#"{"domain":"http://127.0.0.1:8080/","token":"t0k"}"#).unwrap();
        assert_eq!(
            st,
            Auth0Credentials::StaticToken {
                base_url: "http://127.0.0.1:8080".into(),
                token: "t0k".into()
            }
        );
    }

    #[test]
    fn secret_errors_name_fields_never_values() {
        let cases = [
            (
                r#"{"client_id":"id","client_secret":"hunter2"}"#,
                "\"domain\"",
            ),
            (
                r#"{"domain":"a.auth0.com","client_secret":"hunter2"}"#,
                "\"client_id\"",
            ),
            (
                r#"{"domain":"a.auth0.com","client_id":"hunter2"}"#,
                "\"client_secret\"",
            ),
            (r#"{"domain":"ftp://hunter2","token":"x"}"#, "domain"),
            (r#"["hunter2"]"#, "JSON object"),
            (r#"{"domain": "hunter2""#, "not valid JSON"),
        ];
        for (text, expected) in cases {
            let err = parse_secret(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let cc =
            parse_secret(r#"{"domain":"a.auth0.com","client_id":"id","client_secret":"hunter2"}"#)
                .unwrap();
        assert!(!format!("{cc:?}").contains("hunter2"));
    }

    #[test]
    fn the_two_429s_are_told_apart() {
        let busy = br#"{"statusCode":429,"error":"Too Many Requests","message":"There are 2 active import users jobs, please wait until some of them are finished and try again"}"#;
        assert_eq!(
            classify_import(429, busy, None, None, 0),
            ImportVerdict::SlotsBusy
        );
        let limit = br#"{"statusCode":429,"error":"Too Many Requests","message":"Global limit has been reached","errorCode":"too_many_requests"}"#;
        assert_eq!(
            classify_import(429, limit, None, Some("105"), 100),
            ImportVerdict::RateLimited { wait_s: 5 }
        );
        assert_eq!(
            classify_import(429, limit, Some("7"), Some("105"), 100),
            ImportVerdict::RateLimited { wait_s: 7 }
        );
    }

    #[test]
    fn other_answers() {
        let created = br#"{"type":"users_import","status":"pending","id":"job_6nNLiwFZksN0YmRR"}"#;
        assert_eq!(
            classify_import(202, created, None, None, 0),
            ImportVerdict::Created {
                job_id: "job_6nNLiwFZksN0YmRR".into()
            }
        );
        assert!(matches!(
            classify_import(202, b"{}", None, None, 0),
            ImportVerdict::InDoubt { status: 202, .. }
        ));
        assert_eq!(
            classify_import(401, b"", None, None, 0),
            ImportVerdict::Unauthorized
        );
        let bad = br#"{"statusCode":400,"error":"Bad Request","message":"The connection does not exist.","errorCode":"invalid_body"}"#;
        assert_eq!(
            classify_import(400, bad, None, None, 0),
            ImportVerdict::Refused {
                status: 400,
                code: Some("invalid_body".into()),
                message: "The connection does not exist. (invalid_body)".into()
            }
        );
        // Every 5xx leaves the job in doubt: a gateway timeout may hide a created job.
        for status in [500, 502, 503, 504] {
            assert!(matches!(
                classify_import(status, b"oops", None, None, 0),
                ImportVerdict::InDoubt { .. }
            ));
        }
        let scope = br#"{"statusCode":403,"error":"Forbidden","message":"Insufficient scope; expected any of: create:users.","errorCode":"insufficient_scope"}"#;
        assert!(matches!(
            classify_import(403, scope, None, None, 0),
            ImportVerdict::Refused { status: 403, .. }
        ));
    }
}
