//! Reads of the tenant that `plan` makes before any job exists: a connection (and the
//! applications it is enabled for) and the scopes the token carries. Nothing here writes.
//!
//! These GETs hand back every final status (a 403 names a missing scope, a 404 a missing
//! connection), unlike the job GETs, for which any 4xx is a fault; rate limits and 5xx are
//! waited out and retried the same capped, jittered way.

use std::time::{Duration, Instant};

use import_core::auth0::{rate_limit_wait_s, Auth0Credentials};
use import_core::preflight::{jwt_scopes, ConnectionVerdict, ScopeCheck};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::{backoff, header, unix_now_s, ApiError, ManagementApi, MAX_SEND_ATTEMPTS};

/// A path segment keeps RFC 3986's unreserved characters (a connection id's `_` among them).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Rate-limit waits one read may take before it gives up.
const MAX_READ_RATE_WAITS: u32 = 6;

impl ManagementApi {
    /// Whether `connection_id` can take an import (`GET /api/v2/connections/{id}`, and
    /// `/clients` when the body does not list the applications). Scope `read:connections`.
    pub async fn connection_verdict(
        &self,
        connection_id: &str,
        deadline: Instant,
    ) -> Result<ConnectionVerdict, ApiError> {
        let id = utf8_percent_encode(connection_id, PATH_SEGMENT).to_string();
        let (status, body) = self
            .read(&format!("/api/v2/connections/{id}"), deadline)
            .await?;
        let listed = if ConnectionVerdict::needs_client_listing(status, &body) {
            let (status, clients) = self
                .read(
                    &format!("/api/v2/connections/{id}/clients?take=100"),
                    deadline,
                )
                .await?;
            (status == 200)
                .then(|| serde_json::from_slice::<serde_json::Value>(&clients).ok())
                .flatten()
                .and_then(|v| v.get("clients").and_then(|c| c.as_array()).map(Vec::len))
        } else {
            None
        };
        Ok(ConnectionVerdict::from_answer(status, &body, listed))
    }

    /// The scopes the token says it carries (the `scope` claim of Auth0's JWT access tokens).
    pub async fn granted_scopes(&self) -> Result<ScopeCheck, ApiError> {
        let token = self.token(false).await?;
        Ok(ScopeCheck {
            granted: jwt_scopes(&token),
        })
    }

    /// One GET to its final status: 429s wait for the reset, 5xx and unsent requests are
    /// retried with backoff, a 401 renews a minted token once. Never past `deadline`.
    async fn read(&self, path: &str, deadline: Instant) -> Result<(u16, Vec<u8>), ApiError> {
        let url = format!("{}{path}", self.base_url());
        let (mut failures, mut rate_waits, mut renewed) = (0, 0, false);
        loop {
            let token = self.token(false).await?;
            let wait = match self.http.get(&url).bearer_auth(&token).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = header(&response, "retry-after");
                    let reset = header(&response, "x-ratelimit-reset");
                    let body = response.bytes().await.map(|b| b.to_vec());
                    match (status, body) {
                        (429, _) => {
                            rate_waits += 1;
                            let wait_s = rate_limit_wait_s(
                                retry_after.as_deref(),
                                reset.as_deref(),
                                unix_now_s(),
                            );
                            if rate_waits > MAX_READ_RATE_WAITS {
                                return Err(ApiError::Transient(format!(
                                    "GET {path}: still rate limited after {MAX_READ_RATE_WAITS} waits"
                                )));
                            }
                            tracing::info!(
                                path,
                                wait_s,
                                "Management API rate limit: waiting for the reset"
                            );
                            Duration::from_secs(wait_s)
                        }
                        (401, _)
                            if !renewed
                                && matches!(
                                    self.credentials,
                                    Auth0Credentials::ClientCredentials { .. }
                                ) =>
                        {
                            tracing::info!(path, "token refused (401): minting a new one");
                            renewed = true;
                            self.token(true).await?;
                            continue;
                        }
                        (500..=599, _) | (_, Err(_)) => {
                            failures += 1;
                            if failures >= MAX_SEND_ATTEMPTS {
                                return Err(ApiError::Transient(format!(
                                    "GET {path}: {status} {failures} times"
                                )));
                            }
                            tracing::warn!(
                                path,
                                status,
                                attempt = failures,
                                "server error, retrying"
                            );
                            backoff(failures)
                        }
                        (status, Ok(body)) => return Ok((status, body)),
                    }
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
                    "GET {path}: the next try is past the deadline"
                )));
            }
            tokio::time::sleep(wait).await;
        }
    }
}
