//! The `poll` Lambda's library face: the orchestrator's poll stage.

use std::time::Duration;

pub use orchestrator::poll::*;

/// The function's settings from its environment: `BUCKET`, `AUTH0_SECRET_ID`, `POLL_INTERVAL_MS` (default 2000).
pub fn config_from_env() -> Result<PollConfig, String> {
    let need = |name: &str| {
        std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
    };
    let interval = match std::env::var("POLL_INTERVAL_MS") {
        Ok(v) => Duration::from_millis(
            v.parse()
                .map_err(|_| format!("POLL_INTERVAL_MS must be milliseconds, got {v:?}"))?,
        ),
        Err(_) => Duration::from_secs(2),
    };
    Ok(PollConfig {
        bucket: need("BUCKET")?,
        secret_id: need("AUTH0_SECRET_ID")?,
        interval,
        looks: Default::default(),
        reconcile: Some(std::time::Duration::from_millis(
            import_core::jobs::JOB_DEAD_AFTER_MS,
        )),
    })
}
