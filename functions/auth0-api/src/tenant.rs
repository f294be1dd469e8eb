//! Reads of the tenant that `plan` makes before any job exists: a connection (and the
//! applications it is enabled for) and the scopes the token carries. Nothing here writes.
//!
//! They go through `get` (retries, rate-limit waits, a renewed token after a 401); a refusal
//! is part of the answer here (403: the token lacks `read:connections`), not a failure.

use std::time::Instant;

use import_core::preflight::{jwt_scopes, ConnectionVerdict, ScopeCheck};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::{ApiError, ManagementApi};

/// A path segment keeps RFC 3986's unreserved characters (a connection id's `_` among them).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl ManagementApi {
    /// Whether `connection_id` can take an import (`GET /api/v2/connections/{id}`, and
    /// `/clients` when the body does not list the applications). Scope `read:connections`.
    pub async fn connection_verdict(
        &self,
        connection_id: &str,
        deadline: Instant,
    ) -> Result<ConnectionVerdict, ApiError> {
        let id = utf8_percent_encode(connection_id, PATH_SEGMENT).to_string();
        let (status, body) = match self
            .get(&format!("/api/v2/connections/{id}"), deadline)
            .await
        {
            Ok(answer) => answer,
            Err(ApiError::Refused { status: 403, .. }) => {
                return Ok(ConnectionVerdict::Unchecked {
                    reason: "the token lacks read:connections".into(),
                })
            }
            Err(ApiError::Refused { message, .. }) => {
                return Ok(ConnectionVerdict::Unchecked { reason: message })
            }
            Err(e) => return Err(e),
        };
        let listed = if ConnectionVerdict::needs_client_listing(status, &body) {
            match self
                .get(
                    &format!("/api/v2/connections/{id}/clients?take=100"),
                    deadline,
                )
                .await
            {
                Ok((200, clients)) => serde_json::from_slice::<serde_json::Value>(&clients)
                    .ok()
                    .and_then(|v| v.get("clients").and_then(|c| c.as_array()).map(Vec::len)),
                Ok(_) | Err(ApiError::Refused { .. }) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        Ok(ConnectionVerdict::from_answer(status, &body, listed))
    }

    /// The scopes the token says it carries (the `scope` claim of Auth0's JWT access tokens).
    pub async fn granted_scopes(&self, deadline: Instant) -> Result<ScopeCheck, ApiError> {
        let token = self.token(false, deadline).await?;
        Ok(ScopeCheck {
            granted: jwt_scopes(&token),
        })
    }
}
