//! The `submit` Lambda's library face: the orchestrator's submit stage, and the Management API
//! client cache that reads the Auth0 secret from Secrets Manager.

pub use aws_shell::secrets::ApiCache;
pub use import_core::ledger::Holder;
pub use orchestrator::submit::*;

/// The function's settings from its environment: `BUCKET`, `AUTH0_SECRET_ID`, `JOB_SLOTS` (default 2).
pub fn config_from_env() -> Result<SubmitConfig, String> {
    let need = |name: &str| {
        std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
    };
    let slots = match std::env::var("JOB_SLOTS") {
        Ok(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=16).contains(n))
            .ok_or_else(|| format!("JOB_SLOTS must be a whole number from 1 to 16, got {v:?}"))?,
        Err(_) => 2,
    };
    Ok(SubmitConfig {
        bucket: need("BUCKET")?,
        slots,
        secret_id: need("AUTH0_SECRET_ID")?,
    })
}
