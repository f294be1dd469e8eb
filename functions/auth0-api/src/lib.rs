//! The Auth0 Management API as the functions use it: a token minted from the secret and cached
//! across warm invocations, and import-job posts with Auth0's answers turned into outcomes.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use import_core::auth0::{
    audience, classify_import, error_message, rate_limit_wait_s, Auth0Credentials, ImportVerdict,
};
use import_core::multipart::{self, ImportFields, AUTH0_MAX_REQUEST_BYTES};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::sync::Mutex;

mod tenant;

/// 5xx answers and unsent requests are retried this many times in all, with backoff.
const MAX_SEND_ATTEMPTS: u32 = 4;
const BACKOFF_BASE: Duration = Duration::from_millis(400);
/// Rate-limit waits per request are capped too: a tenant that stays saturated is left to
/// the next trigger rather than waited on forever.
const MAX_RATE_LIMIT_WAITS: u32 = 6;
/// Tokens are replaced this long before they expire (or at half-life for short tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// How a credentials refusal reads, so a caller holding only the text can recognise it.
pub const CREDENTIALS_REFUSED: &str = "Auth0 refused the client credentials";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The secret's credentials do not get a token (wrong id/secret, API not authorised).
    #[error("{CREDENTIALS_REFUSED} ({status}): {message}")]
    Credentials { status: u16, message: String },
    #[error("the token endpoint could not be reached: {0}")]
    TokenTransport(String),
    #[error("the token endpoint answered without an access_token")]
    TokenShape,
    /// Auth0 did not give a usable answer in time; the next tick asks again.
    #[error("{0}")]
    Transient(String),
}

/// How an import post ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Created {
        job_id: String,
    },
    /// Auth0 says the tenant's import slots are full.
    SlotsBusy,
    /// Nothing was created and the chunk can be posted later (rate limit longer than the time
    /// left, repeated 5xx, Auth0 unreachable).
    NotNow {
        reason: String,
    },
    /// Auth0 refused the request; posting it again would fail the same way.
    Refused {
        status: u16,
        message: String,
    },
    /// The request went out and no answer came back: a job may exist.
    Unknown {
        reason: String,
    },
}

struct CachedToken {
    token: String,
    refresh_at: Instant,
}

pub struct ManagementApi {
    http: reqwest::Client,
    credentials: Auth0Credentials,
    token: Mutex<Option<CachedToken>>,
}

impl ManagementApi {
    pub fn new(credentials: Auth0Credentials) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(ManagementApi {
            http,
            credentials,
            token: Mutex::new(None),
        })
    }

    pub fn base_url(&self) -> &str {
        self.credentials.base_url()
    }

    /// A valid token: the cached one unless it is near expiry or `renew` is set.
    pub async fn token(&self, renew: bool) -> Result<String, ApiError> {
        let mut cached = self.token.lock().await;
        if !renew {
            if let Some(t) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
                return Ok(t.token.clone());
            }
        }
        let fresh = match &self.credentials {
            Auth0Credentials::StaticToken { token, .. } => CachedToken {
                token: token.clone(),
                // A static token cannot be renewed; it is used until Auth0 refuses it.
                refresh_at: Instant::now() + Duration::from_secs(365 * 24 * 3600),
            },
            Auth0Credentials::ClientCredentials {
                base_url,
                client_id,
                client_secret,
            } => self.mint(base_url, client_id, client_secret).await?,
        };
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn mint(
        &self,
        base_url: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<CachedToken, ApiError> {
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&audience={}",
            enc(client_id),
            enc(client_secret),
            enc(&audience(base_url))
        );
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let sent = self
                .http
                .post(format!("{base_url}/oauth/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.clone())
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) if attempt < MAX_SEND_ATTEMPTS => {
                    tracing::warn!(attempt, error = %e, "token endpoint unreachable, retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(ApiError::TokenTransport(e.to_string())),
            };
            let status = response.status().as_u16();
            let retry_after = header(&response, "retry-after");
            let body = response.bytes().await.unwrap_or_default();
            match status {
                200..=299 => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&body).map_err(|_| ApiError::TokenShape)?;
                    let token = v
                        .get("access_token")
                        .and_then(serde_json::Value::as_str)
                        .ok_or(ApiError::TokenShape)?
                        .to_string();
                    let lifetime = Duration::from_secs(
                        v.get("expires_in")
                            .and_then(serde_json::Value::as_u64)
                            .unwrap_or(3600),
                    );
                    let margin = REFRESH_MARGIN.min(lifetime / 2);
                    tracing::info!(
                        expires_in_s = lifetime.as_secs(),
                        "minted a Management API token"
                    );
                    return Ok(CachedToken {
                        token,
                        refresh_at: started + lifetime - margin,
                    });
                }
                429 | 500..=599 if attempt < MAX_SEND_ATTEMPTS => {
                    tracing::info!(status, attempt, "token endpoint busy, retrying");
                    let wait = match status {
                        429 => Duration::from_secs(rate_limit_wait_s(
                            retry_after.as_deref(),
                            None,
                            unix_now_s(),
                        )),
                        _ => backoff(attempt),
                    };
                    tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
                }
                _ => {
                    return Err(ApiError::Credentials {
                        status,
                        message: error_message(status, &body),
                    })
                }
            }
        }
    }

    /// Posts one chunk as an import job. The multipart body is rebuilt for every attempt and its
    /// size checked against Auth0's cap before anything is sent. Waits never pass `deadline`.
    pub async fn post_import(
        &self,
        fields: &ImportFields<'_>,
        users_json: &[u8],
        deadline: Instant,
    ) -> Result<ImportOutcome, ApiError> {
        let url = format!("{}/api/v2/jobs/users-imports", self.base_url());
        let mut server_errors = 0;
        let mut rate_waits = 0;
        let mut renewed = false;
        loop {
            let body = multipart::encode(fields, users_json);
            if body.len() > AUTH0_MAX_REQUEST_BYTES {
                return Ok(ImportOutcome::Refused {
                    status: 413,
                    message: format!(
                        "not sent: the request would be {} bytes, over Auth0's {AUTH0_MAX_REQUEST_BYTES}",
                        body.len()
                    ),
                });
            }
            let token = self.token(false).await?;
            let sent = self
                .http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", multipart::content_type())
                .body(body)
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                // Not connected: the request never left, so sending again cannot duplicate.
                Err(e) if e.is_connect() => {
                    server_errors += 1;
                    let wait = backoff(server_errors);
                    if server_errors >= MAX_SEND_ATTEMPTS || Instant::now() + wait > deadline {
                        return Ok(ImportOutcome::NotNow {
                            reason: format!("Auth0 unreachable: {e}"),
                        });
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
                // Sent, then no (complete) answer: Auth0 may have created the job.
                Err(e) => {
                    return Ok(ImportOutcome::Unknown {
                        reason: format!("the request was sent but no answer came back: {e}"),
                    })
                }
            };
            let status = response.status().as_u16();
            let retry_after = header(&response, "retry-after");
            let reset = header(&response, "x-ratelimit-reset");
            let body = match response.bytes().await {
                Ok(b) => b,
                Err(e) if (200..300).contains(&status) => {
                    return Ok(ImportOutcome::Unknown {
                        reason: format!("Auth0 answered {status} but the body was lost: {e}"),
                    })
                }
                Err(_) => Default::default(),
            };
            let verdict = classify_import(
                status,
                &body,
                retry_after.as_deref(),
                reset.as_deref(),
                unix_now_s(),
            );
            match verdict {
                ImportVerdict::Created { job_id } => return Ok(ImportOutcome::Created { job_id }),
                ImportVerdict::SlotsBusy => return Ok(ImportOutcome::SlotsBusy),
                ImportVerdict::Refused { status, message } => {
                    return Ok(ImportOutcome::Refused { status, message })
                }
                ImportVerdict::Unauthorized => {
                    let can_renew =
                        matches!(self.credentials, Auth0Credentials::ClientCredentials { .. });
                    if renewed || !can_renew {
                        return Ok(ImportOutcome::Refused {
                            status,
                            message: error_message(status, &body),
                        });
                    }
                    tracing::info!("token refused (401): minting a new one");
                    renewed = true;
                    self.token(true).await?;
                }
                ImportVerdict::RateLimited { wait_s } => {
                    rate_waits += 1;
                    let wait = Duration::from_secs(wait_s) + jitter(Duration::from_millis(250));
                    if rate_waits > MAX_RATE_LIMIT_WAITS || Instant::now() + wait > deadline {
                        return Ok(ImportOutcome::NotNow {
                            reason: format!("rate limited; next try in {wait_s} s is past this invocation's time"),
                        });
                    }
                    tracing::info!(wait_s, "Management API rate limit: waiting for the reset");
                    tokio::time::sleep(wait).await;
                }
                ImportVerdict::ServerError { status, message } => {
                    server_errors += 1;
                    let wait = backoff(server_errors);
                    if server_errors >= MAX_SEND_ATTEMPTS || Instant::now() + wait > deadline {
                        return Ok(ImportOutcome::NotNow {
                            reason: format!(
                                "Auth0 answered {status} {server_errors} times: {message}"
                            ),
                        });
                    }
                    tracing::warn!(status, attempt = server_errors, "server error, retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

impl ManagementApi {
    /// `GET /api/v2/jobs/{id}`: (HTTP status, body). 200 and 404 are answers; rate limits,
    /// 401s (once) and transient failures are handled here. GETs are idempotent, so unlike
    /// posts they are retried after timeouts too.
    pub async fn get_job(
        &self,
        job_id: &str,
        deadline: Instant,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        self.get(&format!("/api/v2/jobs/{job_id}"), deadline).await
    }

    /// `GET /api/v2/jobs/{id}/errors`: 200 (list or job object), 204 or 404.
    pub async fn get_job_errors(
        &self,
        job_id: &str,
        deadline: Instant,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        self.get(&format!("/api/v2/jobs/{job_id}/errors"), deadline)
            .await
    }

    async fn get(&self, path: &str, deadline: Instant) -> Result<(u16, Vec<u8>), ApiError> {
        let url = format!("{}{path}", self.base_url());
        let mut failures = 0;
        let mut renewed = false;
        loop {
            let token = self.token(false).await?;
            let answer = match self.http.get(&url).bearer_auth(&token).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = header(&response, "retry-after");
                    let reset = header(&response, "x-ratelimit-reset");
                    match response.bytes().await {
                        Ok(body) => Ok((status, body.to_vec(), retry_after, reset)),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            let wait = match answer {
                Ok((status @ (200..=299 | 404), body, _, _)) => return Ok((status, body)),
                Ok((401, body, _, _)) => {
                    let can_renew =
                        matches!(self.credentials, Auth0Credentials::ClientCredentials { .. });
                    if renewed || !can_renew {
                        return Err(ApiError::Transient(format!(
                            "GET {path}: {}",
                            error_message(401, &body)
                        )));
                    }
                    renewed = true;
                    self.token(true).await?;
                    continue;
                }
                Ok((429, _, retry_after, reset)) => {
                    let wait_s =
                        rate_limit_wait_s(retry_after.as_deref(), reset.as_deref(), unix_now_s());
                    tracing::info!(
                        path,
                        wait_s,
                        "Management API rate limit: waiting for the reset"
                    );
                    Duration::from_secs(wait_s)
                }
                Ok((status, body, _, _)) if status < 500 => {
                    return Err(ApiError::Transient(format!(
                        "GET {path}: {status} {}",
                        error_message(status, &body)
                    )))
                }
                Ok((status, body, _, _)) => {
                    failures += 1;
                    if failures >= MAX_SEND_ATTEMPTS {
                        return Err(ApiError::Transient(format!(
                            "GET {path}: {status} {}",
                            error_message(status, &body)
                        )));
                    }
                    tracing::warn!(path, status, attempt = failures, "server error, retrying");
                    backoff(failures)
                }
                Err(e) => {
                    failures += 1;
                    if failures >= MAX_SEND_ATTEMPTS {
                        return Err(ApiError::Transient(format!("GET {path}: {e}")));
                    }
                    tracing::warn!(path, error = %e, attempt = failures, "Auth0 unreachable, retrying");
                    backoff(failures)
                }
            };
            if Instant::now() + wait > deadline {
                return Err(ApiError::Transient(format!(
                    "GET {path}: the next try is past this invocation's time"
                )));
            }
            tokio::time::sleep(wait).await;
        }
    }
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Exponential backoff with full jitter: attempt 1 waits up to 0.4 s, 2 up to 0.8 s, …
fn backoff(attempt: u32) -> Duration {
    let cap = BACKOFF_BASE * 2u32.saturating_pow(attempt.saturating_sub(1)).min(16);
    cap / 2 + jitter(cap / 2)
}

fn jitter(max: Duration) -> Duration {
    let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=ms))
}

pub fn unix_now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_capped() {
        for attempt in 1..10 {
            let b = backoff(attempt);
            let cap = BACKOFF_BASE * 2u32.pow((attempt - 1).min(4));
            assert!(b <= cap && b >= cap / 2, "{attempt}: {b:?}");
        }
    }
}
