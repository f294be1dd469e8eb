//! The client-credentials grant of `POST /oauth/token` (facts §5.1) and Bearer-token checks for
//! /api/v2: JWT-shaped tokens (their claims readable, their signature random) remembered with
//! their scopes and expiry.
//!
//! Choices: a missing `audience` gets Auth0's "No audience parameter was provided, and no default
//! audience has been configured" (403); a missing `grant_type` is `invalid_request` (400).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api_error::ApiError;
use crate::config::ClientConfig;
use crate::randomness::IdMint;

/// The parameters of a token request (form or JSON body).
#[derive(Debug, Default, Clone)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub audience: Option<String>,
}

/// An OAuth error: status and `{"error","error_description"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthError {
    pub status: u16,
    pub body: Value,
}

impl OAuthError {
    fn new(status: u16, error: &str, description: &str) -> Self {
        Self {
            status,
            body: json!({ "error": error, "error_description": description }),
        }
    }
}

#[derive(Debug, Clone)]
struct Grant {
    scopes: Vec<String>,
    expires_at: Instant,
}

#[derive(Debug, Default)]
pub struct TokenStore {
    grants: HashMap<String, Grant>,
}

/// What the token endpoint is configured with at the moment of a request.
pub struct TokenPolicy<'a> {
    pub clients: &'a [ClientConfig],
    /// `<base_url>/api/v2/`: the only audience this tenant serves.
    pub audience: &'a str,
    pub ttl: Duration,
    /// Fault: reject tokens as expired after this, whatever `expires_in` says.
    pub expire_after: Option<Duration>,
}

impl TokenStore {
    pub fn issue(
        &mut self,
        request: &TokenRequest,
        policy: &TokenPolicy<'_>,
        ids: &mut IdMint,
        now: Instant,
    ) -> Result<Value, OAuthError> {
        let Some(grant_type) = request.grant_type.as_deref() else {
            return Err(OAuthError::new(
                400,
                "invalid_request",
                "Missing required parameter: grant_type",
            ));
        };
        if grant_type != "client_credentials" {
            return Err(OAuthError::new(
                400,
                "unsupported_grant_type",
                &format!("Unsupported grant type: {grant_type}"),
            ));
        }
        let client = policy
            .clients
            .iter()
            .find(|client| {
                Some(client.client_id.as_str()) == request.client_id.as_deref()
                    && Some(client.client_secret.as_str()) == request.client_secret.as_deref()
            })
            .ok_or_else(|| OAuthError::new(401, "access_denied", "Unauthorized"))?;
        match request.audience.as_deref() {
            None | Some("") => return Err(OAuthError::new(
                403,
                "access_denied",
                "No audience parameter was provided, and no default audience has been configured",
            )),
            Some(audience) if audience != policy.audience => {
                return Err(OAuthError::new(
                    403,
                    "access_denied",
                    &format!("Service not enabled within domain: {audience}"),
                ))
            }
            Some(_) => {}
        }
        let lifetime = match policy.expire_after {
            Some(limit) => limit.min(policy.ttl),
            None => policy.ttl,
        };
        // The claims of an Auth0 Management API token; `scope` as in the token response.
        let issued = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let issuer = policy.audience.trim_end_matches("api/v2/");
        let token = ids.access_token(&json!({
            "iss": issuer,
            "sub": format!("{}@clients", client.client_id),
            "aud": policy.audience,
            "iat": issued,
            "exp": issued + lifetime.as_secs(),
            "scope": client.scopes.join(" "),
            "gty": "client-credentials",
            "azp": client.client_id,
        }));
        self.grants.insert(
            token.clone(),
            Grant {
                scopes: client.scopes.clone(),
                expires_at: now + lifetime,
            },
        );
        Ok(json!({
            "access_token": token,
            "expires_in": policy.ttl.as_secs(),
            "scope": client.scopes.join(" "),
            "token_type": "Bearer",
        }))
    }

    /// Checks an `Authorization` header value against the scopes an endpoint accepts.
    pub fn authorize(
        &self,
        header: Option<&str>,
        accepted: &'static [&'static str],
        now: Instant,
    ) -> Result<(), ApiError> {
        let header = header.ok_or(ApiError::MissingAuthentication)?;
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(ApiError::InvalidToken)?;
        let grant = self.grants.get(token).ok_or(ApiError::InvalidToken)?;
        if now >= grant.expires_at {
            return Err(ApiError::ExpiredToken);
        }
        if !grant
            .scopes
            .iter()
            .any(|scope| accepted.contains(&scope.as_str()))
        {
            return Err(ApiError::InsufficientScope(accepted));
        }
        Ok(())
    }
}
