//! Reading users back from the tenant and removing them: user export jobs (facts §6) followed to
//! a gzip NDJSON download handed on decompressed, users-by-email, and user deletion.
//!
//! An export's `location` is valid for 60 s: a download refused as expired (S3's 403) re-reads
//! the job for a fresh link, `EXPORT_LINK_TRIES` times in all.

use std::io::Write as _;
use std::time::{Duration, Instant};

use import_core::auth0::error_message;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use crate::{backoff, ApiError, ManagementApi};

/// Downloads tried per export before giving up on getting a link that has not expired.
pub const EXPORT_LINK_TRIES: u32 = 3;

/// One field of an export: a profile path, optionally written under another key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportField {
    pub name: String,
    pub export_as: Option<String>,
}

/// Where an export job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportState {
    /// `pending` or `processing`.
    Running { status: String },
    /// Ready; `location` is a link valid for about 60 s.
    Completed { location: String },
    /// `failed`, `expired`, or a 404 (Auth0 forgets jobs after 24 h).
    Ended { status: String, details: String },
}

/// Hands decompressed bytes to a callback as `write` receives compressed ones.
struct Feed<F>(F);

impl<F: FnMut(&[u8]) -> Result<(), String>> std::io::Write for Feed<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (self.0)(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ManagementApi {
    /// `POST /api/v2/jobs/users-exports` for one connection, JSON format; the job id.
    pub async fn create_export(
        &self,
        connection_id: &str,
        fields: &[ExportField],
        deadline: Instant,
    ) -> Result<String, ApiError> {
        let fields: Vec<Value> = fields
            .iter()
            .map(|f| match &f.export_as {
                Some(alias) => json!({"name": f.name, "export_as": alias}),
                None => json!({"name": f.name}),
            })
            .collect();
        let body = json!({"connection_id": connection_id, "format": "json", "fields": fields});
        let (status, answer) = self
            .idempotent(
                reqwest::Method::POST,
                "/api/v2/jobs/users-exports",
                Some(&body),
                deadline,
            )
            .await?;
        let parsed: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        match parsed.get("id").and_then(Value::as_str) {
            Some(id) if status < 300 => Ok(id.to_string()),
            _ => Err(ApiError::Refused {
                status,
                code: None,
                message: format!(
                    "the export job was not created: {}",
                    error_message(status, &answer)
                ),
            }),
        }
    }

    /// `GET /api/v2/jobs/{id}` of an export job.
    pub async fn export_state(
        &self,
        job_id: &str,
        deadline: Instant,
    ) -> Result<ExportState, ApiError> {
        let (status, body) = self.get_job(job_id, deadline).await?;
        if status == 404 {
            return Ok(ExportState::Ended {
                status: "gone".into(),
                details: "Auth0 no longer knows this export job (404)".into(),
            });
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let text = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        Ok(match text("status").as_str() {
            "completed" => match v.get("location").and_then(Value::as_str) {
                Some(location) => ExportState::Completed {
                    location: location.to_string(),
                },
                None => ExportState::Ended {
                    status: "completed".into(),
                    details: "the completed export has no location".into(),
                },
            },
            "failed" | "expired" => ExportState::Ended {
                status: text("status"),
                details: text("status_details"),
            },
            other => ExportState::Running {
                status: other.to_string(),
            },
        })
    }

    /// Follows an export job until it completes (polling every `every`), then streams its file:
    /// `piece` receives the decompressed NDJSON in pieces cut anywhere. `reset` is called before
    /// every download attempt after the first, so a caller that had consumed part of a broken
    /// download starts over. Returns the compressed size.
    pub async fn download_export(
        &self,
        job_id: &str,
        every: Duration,
        deadline: Instant,
        mut reset: impl FnMut(),
        mut piece: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<u64, ApiError> {
        let mut tries = 0;
        loop {
            let location = match self.export_state(job_id, deadline).await? {
                ExportState::Completed { location } => location,
                ExportState::Running { .. } => {
                    if Instant::now() + every > deadline {
                        return Err(ApiError::Unavailable {
                            reason: format!("export {job_id} still running at the deadline"),
                        });
                    }
                    tokio::time::sleep(every).await;
                    continue;
                }
                ExportState::Ended { status, details } => {
                    return Err(ApiError::Refused {
                        status: 0,
                        code: Some(status),
                        message: format!("export {job_id} ended without a file: {details}"),
                    })
                }
            };
            tries += 1;
            if tries > 1 {
                reset();
            }
            match self.fetch_file(&location, deadline, &mut piece).await {
                Ok(size) => return Ok(size),
                Err(Fetch::Expired) if tries < EXPORT_LINK_TRIES => {
                    tracing::info!(job_id, "export link expired: reading the job for a fresh one");
                }
                Err(Fetch::Broken(reason)) if tries < EXPORT_LINK_TRIES => {
                    tracing::warn!(job_id, %reason, "export download broke: starting over");
                    tokio::time::sleep(backoff(tries)).await;
                }
                Err(Fetch::Expired) => {
                    return Err(ApiError::Unavailable {
                        reason: format!(
                            "export {job_id}: the download link expired {tries} times before it was read"
                        ),
                    })
                }
                Err(Fetch::Broken(reason)) => return Err(ApiError::Unavailable { reason }),
                Err(Fetch::Consumer(reason)) => {
                    return Err(ApiError::Unavailable {
                        reason: format!("export {job_id}: {reason}"),
                    })
                }
            }
        }
    }

    async fn fetch_file(
        &self,
        location: &str,
        deadline: Instant,
        piece: &mut impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<u64, Fetch> {
        let left = deadline.saturating_duration_since(Instant::now());
        // A presigned link: no Authorization header (S3 would refuse two auth mechanisms).
        let mut response = self
            .http
            .get(location)
            .timeout(left)
            .send()
            .await
            .map_err(|e| Fetch::Broken(format!("export download: {e}")))?;
        let status = response.status().as_u16();
        if status == 403 {
            return Err(Fetch::Expired);
        }
        if status != 200 {
            return Err(Fetch::Broken(format!("export download answered {status}")));
        }
        let mut size = 0u64;
        let mut decoder = flate2::write::GzDecoder::new(Feed(&mut *piece));
        loop {
            match response.chunk().await {
                Ok(Some(bytes)) => {
                    size += bytes.len() as u64;
                    decoder.write_all(&bytes).map_err(|e| {
                        if e.kind() == std::io::ErrorKind::Other && e.get_ref().is_some() {
                            Fetch::Consumer(e.to_string())
                        } else {
                            Fetch::Broken(format!("export file is not gzip: {e}"))
                        }
                    })?;
                }
                Ok(None) => break,
                Err(e) => return Err(Fetch::Broken(format!("export download broke: {e}"))),
            }
        }
        decoder
            .finish()
            .map_err(|e| Fetch::Broken(format!("export file ends early: {e}")))?;
        Ok(size)
    }

    /// `GET /api/v2/users-by-email`: the users (of any connection) with this email.
    pub async fn users_by_email(
        &self,
        email: &str,
        deadline: Instant,
    ) -> Result<Vec<Value>, ApiError> {
        let query = utf8_percent_encode(email, NON_ALPHANUMERIC);
        let (status, body) = self
            .get(&format!("/api/v2/users-by-email?email={query}"), deadline)
            .await?;
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(users)) if status == 200 => Ok(users),
            _ => Err(ApiError::Unavailable {
                reason: format!("users-by-email answered {status} without a list"),
            }),
        }
    }

    /// `DELETE /api/v2/users/{id}`. Deleting a user that is gone already is not an error.
    /// A token without `delete:users` is `Refused { status: 403, code: insufficient_scope }`.
    pub async fn delete_user(&self, user_id: &str, deadline: Instant) -> Result<(), ApiError> {
        let id = utf8_percent_encode(user_id, NON_ALPHANUMERIC);
        self.idempotent(
            reqwest::Method::DELETE,
            &format!("/api/v2/users/{id}"),
            None,
            deadline,
        )
        .await
        .map(|_| ())
    }
}

enum Fetch {
    /// S3's 403: the presigned link is past its time.
    Expired,
    Broken(String),
    /// The caller's callback refused a piece.
    Consumer(String),
}
