//! The Management API client behind the Auth0 secret in Secrets Manager, built on first use
//! and kept across warm invocations (so is its token), shared by submit and poll.

use std::sync::Arc;

use auth0_api::ManagementApi;
use import_core::auth0::parse_secret;
use tokio::sync::Mutex;

use crate::ledger::secret_string;

/// The Management API client, built from the secret on first use and kept across warm
/// invocations (so is its token). Dropped when the credentials stop working, so an operator's
/// fix to the secret is picked up by the next invocation.
#[derive(Default)]
pub struct ApiCache {
    api: Mutex<Option<Arc<ManagementApi>>>,
}

impl ApiCache {
    pub async fn get(
        &self,
        secrets: &aws_sdk_secretsmanager::Client,
        secret_id: &str,
    ) -> Result<Arc<ManagementApi>, String> {
        let mut slot = self.api.lock().await;
        if let Some(api) = slot.as_ref() {
            return Ok(api.clone());
        }
        let text = secret_string(secrets, secret_id).await?;
        let credentials = parse_secret(&text).map_err(|e| format!("secret {secret_id}: {e}"))?;
        let api =
            Arc::new(ManagementApi::new(credentials).map_err(|e| format!("HTTP client: {e}"))?);
        *slot = Some(api.clone());
        Ok(api)
    }

    pub async fn forget(&self) {
        *self.api.lock().await = None;
    }

    /// After a failed invocation: if Auth0 refused the credentials (`credentials_refused`, from
    /// the stage's typed error), the operator will fix the secret, so the next invocation reads
    /// it afresh.
    pub async fn forget_if_refused(&self, credentials_refused: bool) {
        if credentials_refused {
            self.forget().await;
        }
    }
}
