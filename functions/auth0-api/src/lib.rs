//! The Auth0 Management API as the functions use it: a token minted from the secret and cached
//! across warm invocations, import-job posts and job reads, every request bounded by the
//! invocation's deadline, and every failure one variant of `ApiError`.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use import_core::auth0::{
    audience, classify_import, error_code, error_message, rate_limit_wait_s, Auth0Credentials,
    ImportVerdict,
};
use import_core::multipart::{self, ImportFields, AUTH0_MAX_REQUEST_BYTES};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::sync::Mutex;

mod tenant;
mod users;

pub use users::{ExportField, ExportState, EXPORT_LINK_TRIES};

/// Requests that never left, and GETs without an answer, are tried this many times in all.
const MAX_SEND_ATTEMPTS: u32 = 4;
const BACKOFF_BASE: Duration = Duration::from_millis(400);
/// Rate-limit waits per request are capped too: a tenant that stays saturated is left to
/// the next trigger rather than waited on forever.
const MAX_RATE_LIMIT_WAITS: u32 = 6;
/// Tokens are replaced this long before they expire (or at half-life for short tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// No request waits longer than this for its answer, whatever the deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A request is not started with less time than this before the deadline: it could not get
/// its answer in time, and an import post cut off by the deadline would be in doubt.
const MIN_REQUEST_TIME: Duration = Duration::from_secs(2);
/// The most a token request waits on its endpoint's `Retry-After`.
const MAX_TOKEN_WAIT: Duration = Duration::from_secs(30);

/// How a credentials refusal reads in logs and reports.
pub const CREDENTIALS_REFUSED: &str = "Auth0 refused the client credentials";

/// Every way a Management API call can end without the answer asked for. Decisions are made
/// by matching these, never by reading their text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Nothing reached Auth0 (the connection was never made, the token could not be had, or
    /// no time was left): sending again cannot duplicate anything.
    #[error("not sent: {reason}")]
    NotSent { reason: String },
    /// An import post was sent and the answer does not prove that no job was created.
    #[error("sent, outcome unknown: {reason}")]
    InDoubt { reason: String },
    /// Auth0 refused the request with a 4xx: the same request fails the same way again.
    #[error("Auth0 refused the request ({status}): {message}")]
    Refused {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// The token endpoint refused the secret's credentials (wrong id or secret, the
    /// application not authorised for the Management API). The operator fixes the secret.
    #[error("{CREDENTIALS_REFUSED} ({status}): {message}")]
    Credentials { status: u16, message: String },
    /// The Management API refused a freshly minted token (401).
    #[error("Auth0 refused a fresh token (401): {message}")]
    Unauthorized { message: String },
    /// Rate limited, and the next try would be past the deadline or the waits are used up.
    #[error("rate limited: the next try is {wait_s} s away, past this invocation's time")]
    RateLimited { wait_s: u64 },
    /// The tenant's import job slots are full (the concurrency 429): no job was created.
    #[error("Auth0 reports its import job slots full")]
    SlotsBusy,
    /// A read got no usable answer (5xx, timeouts, resets) after its retries; reads are
    /// idempotent, so the next sweep simply asks again.
    #[error("no answer: {reason}")]
    Unavailable { reason: String },
}

impl ApiError {
    /// Whether the failure is Auth0 refusing this request (as opposed to not answering).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ApiError::Refused { .. } | ApiError::Unauthorized { .. }
        )
    }
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

/// What happened to one request on the wire.
enum Sent {
    Answer {
        status: u16,
        body: Vec<u8>,
        retry_after: Option<String>,
        reset: Option<String>,
    },
    /// The connection was never made: nothing left.
    NotConnected(String),
    /// The request may have left (timeout, reset, a body that stopped mid-way).
    Lost(String),
}

impl ManagementApi {
    pub fn new(credentials: Auth0Credentials) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
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

    fn can_renew(&self) -> bool {
        matches!(self.credentials, Auth0Credentials::ClientCredentials { .. })
    }

    /// How long a request started now may wait for its answer; `NotSent` when too little time
    /// is left to start one.
    fn time_for_request(deadline: Instant) -> Result<Duration, ApiError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < MIN_REQUEST_TIME {
            return Err(ApiError::NotSent {
                reason: "too little of this invocation's time is left to send a request".into(),
            });
        }
        Ok(left.min(REQUEST_TIMEOUT))
    }

    /// Sends one request, its answer bounded by `deadline`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        deadline: Instant,
    ) -> Result<Sent, ApiError> {
        let timeout = Self::time_for_request(deadline)?;
        let response = match request.timeout(timeout).send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Ok(Sent::NotConnected(e.to_string())),
            Err(e) => return Ok(Sent::Lost(e.to_string())),
        };
        let status = response.status().as_u16();
        let retry_after = header(&response, "retry-after");
        let reset = header(&response, "x-ratelimit-reset");
        match response.bytes().await {
            Ok(body) => Ok(Sent::Answer {
                status,
                body: body.to_vec(),
                retry_after,
                reset,
            }),
            Err(e) => Ok(Sent::Lost(format!(
                "Auth0 answered {status} and the body was lost: {e}"
            ))),
        }
    }

    /// A valid token: the cached one unless it is near expiry or `renew` is set. Minting is
    /// bounded by `deadline` like every other request.
    pub async fn token(&self, renew: bool, deadline: Instant) -> Result<String, ApiError> {
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
            } => {
                self.mint(base_url, client_id, client_secret, deadline)
                    .await?
            }
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
        deadline: Instant,
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
            let request = self
                .http
                .post(format!("{base_url}/oauth/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.clone());
            // A token request sent twice only mints two tokens: every failure is "not sent"
            // as far as the caller's own request is concerned.
            let wait = match self.send(request, deadline).await? {
                Sent::Answer {
                    status: 200..=299,
                    body,
                    ..
                } => return parse_token(&body, started),
                Sent::Answer {
                    status: 429,
                    retry_after,
                    reset,
                    ..
                } => Duration::from_secs(rate_limit_wait_s(
                    retry_after.as_deref(),
                    reset.as_deref(),
                    unix_now_s(),
                ))
                .min(MAX_TOKEN_WAIT),
                Sent::Answer { status, body, .. } if status < 500 => {
                    return Err(ApiError::Credentials {
                        status,
                        message: error_message(status, &body),
                    })
                }
                Sent::Answer { status, body, .. } => {
                    tracing::warn!(attempt, status, "token endpoint failed, retrying");
                    if attempt >= MAX_SEND_ATTEMPTS {
                        return Err(ApiError::NotSent {
                            reason: format!(
                                "no token: the token endpoint answered {status} {} times: {}",
                                attempt,
                                error_message(status, &body)
                            ),
                        });
                    }
                    backoff(attempt)
                }
                Sent::NotConnected(e) | Sent::Lost(e) => {
                    tracing::warn!(attempt, error = %e, "token endpoint unreachable, retrying");
                    if attempt >= MAX_SEND_ATTEMPTS {
                        return Err(ApiError::NotSent {
                            reason: format!("no token: the token endpoint is unreachable: {e}"),
                        });
                    }
                    backoff(attempt)
                }
            };
            if Instant::now() + wait + MIN_REQUEST_TIME > deadline {
                return Err(ApiError::NotSent {
                    reason:
                        "no token: the token endpoint's next try is past this invocation's time"
                            .into(),
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Posts one chunk as an import job and returns the job id. The multipart body is rebuilt
    /// for every attempt and its size checked against Auth0's cap before anything is sent. The
    /// request is sent again only after answers that prove no job was created (a connection
    /// never made, a 401 before a fresh token, a rate limit); see `ImportVerdict`.
    pub async fn post_import(
        &self,
        fields: &ImportFields<'_>,
        users_json: &[u8],
        deadline: Instant,
    ) -> Result<String, ApiError> {
        let url = format!("{}/api/v2/jobs/users-imports", self.base_url());
        let mut not_connected = 0;
        let mut rate_waits = 0;
        let mut renewed = false;
        loop {
            let body = multipart::encode(fields, users_json);
            if body.len() > AUTH0_MAX_REQUEST_BYTES {
                return Err(ApiError::Refused {
                    status: 413,
                    code: None,
                    message: format!(
                        "not sent: the request would be {} bytes, over Auth0's {AUTH0_MAX_REQUEST_BYTES}",
                        body.len()
                    ),
                });
            }
            let token = self.token(false, deadline).await?;
            let request = self
                .http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", multipart::content_type())
                .body(body);
            let (status, body, retry_after, reset) = match self.send(request, deadline).await? {
                Sent::Answer {
                    status,
                    body,
                    retry_after,
                    reset,
                } => (status, body, retry_after, reset),
                // The request never left, so sending again cannot duplicate.
                Sent::NotConnected(e) => {
                    not_connected += 1;
                    let wait = backoff(not_connected);
                    if not_connected >= MAX_SEND_ATTEMPTS
                        || Instant::now() + wait + MIN_REQUEST_TIME > deadline
                    {
                        return Err(ApiError::NotSent {
                            reason: format!("Auth0 unreachable: {e}"),
                        });
                    }
                    tracing::warn!(attempt = not_connected, error = %e, "Auth0 unreachable, retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                // Sent, then no (complete) answer: Auth0 may have created the job.
                Sent::Lost(e) => {
                    return Err(ApiError::InDoubt {
                        reason: format!("the request was sent and no answer came back: {e}"),
                    })
                }
            };
            match classify_import(
                status,
                &body,
                retry_after.as_deref(),
                reset.as_deref(),
                unix_now_s(),
            ) {
                ImportVerdict::Created { job_id } => return Ok(job_id),
                ImportVerdict::SlotsBusy => return Err(ApiError::SlotsBusy),
                ImportVerdict::Refused {
                    status,
                    code,
                    message,
                } => {
                    return Err(ApiError::Refused {
                        status,
                        code,
                        message,
                    })
                }
                ImportVerdict::InDoubt { status, message } => {
                    return Err(ApiError::InDoubt {
                        reason: format!("Auth0 answered {status}: {message}"),
                    })
                }
                ImportVerdict::Unauthorized => {
                    if renewed || !self.can_renew() {
                        return Err(ApiError::Unauthorized {
                            message: error_message(status, &body),
                        });
                    }
                    tracing::info!("token refused (401): minting a new one");
                    renewed = true;
                    self.token(true, deadline).await?;
                }
                ImportVerdict::RateLimited { wait_s } => {
                    rate_waits += 1;
                    let wait = Duration::from_secs(wait_s) + jitter(Duration::from_millis(250));
                    if rate_waits > MAX_RATE_LIMIT_WAITS
                        || Instant::now() + wait + MIN_REQUEST_TIME > deadline
                    {
                        return Err(ApiError::RateLimited { wait_s });
                    }
                    tracing::info!(wait_s, "Management API rate limit: waiting for the reset");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// `GET /api/v2/jobs/{id}`: (HTTP status, body) for 200 and 404.
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

    /// A Management API read: (HTTP status, body) for 2xx and 404. Reads are idempotent, so
    /// unlike posts they are retried after timeouts and 5xx too, within `deadline`.
    pub async fn get(&self, path: &str, deadline: Instant) -> Result<(u16, Vec<u8>), ApiError> {
        self.idempotent(reqwest::Method::GET, path, None, deadline)
            .await
    }

    /// A request that may be sent twice without harm (a read, a delete, an export job — a
    /// second export only costs a job): (HTTP status, body) for 2xx and 404, with the same
    /// retries, rate-limit waits and token renewal as `get`. `json` is the body, if any.
    pub async fn idempotent(
        &self,
        method: reqwest::Method,
        path: &str,
        json: Option<&serde_json::Value>,
        deadline: Instant,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        let url = format!("{}{path}", self.base_url());
        let verb = method.as_str().to_string();
        let path = format!("{verb} {path}");
        let path = path.as_str();
        let mut failures = 0;
        let mut rate_waits = 0;
        let mut renewed = false;
        loop {
            let token = self.token(false, deadline).await?;
            let mut request = self.http.request(method.clone(), &url).bearer_auth(&token);
            if let Some(json) = json {
                request = request
                    .header("content-type", "application/json")
                    .body(json.to_string());
            }
            let (wait, why) = match self.send(request, deadline).await? {
                Sent::Answer {
                    status: status @ (200..=299 | 404),
                    body,
                    ..
                } => return Ok((status, body)),
                Sent::Answer {
                    status: 401, body, ..
                } => {
                    if renewed || !self.can_renew() {
                        return Err(ApiError::Unauthorized {
                            message: format!("{path}: {}", error_message(401, &body)),
                        });
                    }
                    renewed = true;
                    self.token(true, deadline).await?;
                    continue;
                }
                Sent::Answer {
                    status: 429,
                    retry_after,
                    reset,
                    ..
                } => {
                    rate_waits += 1;
                    let wait_s =
                        rate_limit_wait_s(retry_after.as_deref(), reset.as_deref(), unix_now_s());
                    if rate_waits > MAX_RATE_LIMIT_WAITS {
                        return Err(ApiError::RateLimited { wait_s });
                    }
                    tracing::info!(
                        path,
                        wait_s,
                        "Management API rate limit: waiting for the reset"
                    );
                    (
                        Duration::from_secs(wait_s),
                        format!("rate limited for {wait_s} s"),
                    )
                }
                Sent::Answer { status, body, .. } if status < 500 => {
                    return Err(ApiError::Refused {
                        status,
                        code: error_code(&body),
                        message: format!("{path}: {}", error_message(status, &body)),
                    })
                }
                Sent::Answer { status, body, .. } => {
                    failures += 1;
                    (
                        backoff(failures),
                        format!("{path}: {status} {}", error_message(status, &body)),
                    )
                }
                Sent::NotConnected(e) | Sent::Lost(e) => {
                    failures += 1;
                    (backoff(failures), format!("{path}: {e}"))
                }
            };
            if failures > 0 && failures < MAX_SEND_ATTEMPTS {
                tracing::warn!(attempt = failures, "{why}: retrying");
            }
            if failures >= MAX_SEND_ATTEMPTS {
                return Err(ApiError::Unavailable { reason: why });
            }
            if Instant::now() + wait + MIN_REQUEST_TIME > deadline {
                return Err(if rate_waits > 0 && failures == 0 {
                    ApiError::RateLimited {
                        wait_s: wait.as_secs(),
                    }
                } else {
                    ApiError::Unavailable {
                        reason: format!("{why}; the next try is past this invocation's time"),
                    }
                });
            }
            tokio::time::sleep(wait).await;
        }
    }
}

fn parse_token(body: &[u8], started: Instant) -> Result<CachedToken, ApiError> {
    let shape = || ApiError::NotSent {
        reason: "no token: the token endpoint answered without an access_token".into(),
    };
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| shape())?;
    let token = v
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(shape)?
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
    Ok(CachedToken {
        token,
        refresh_at: started + lifetime - margin,
    })
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

    #[test]
    fn no_request_starts_without_time_for_its_answer() {
        let soon = Instant::now() + Duration::from_millis(500);
        assert!(matches!(
            ManagementApi::time_for_request(soon),
            Err(ApiError::NotSent { .. })
        ));
        let later = Instant::now() + Duration::from_secs(10);
        let t = ManagementApi::time_for_request(later).unwrap();
        assert!(t <= Duration::from_secs(10) && t > Duration::from_secs(8));
        let far = Instant::now() + Duration::from_secs(3600);
        assert_eq!(
            ManagementApi::time_for_request(far).unwrap(),
            REQUEST_TIMEOUT
        );
    }
}
