//! What every function's entry point does the same way: JSON logs for CloudWatch, and the
//! invocation's deadline as an `Instant` its loops can respect.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One JSON object per log line, level from `RUST_LOG` (default `info`). CloudWatch stamps the
/// time, so the lines carry none.
pub fn init_json_logs() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .init();
}

/// The Lambda context's deadline (milliseconds since the epoch) as an `Instant`.
pub fn deadline(deadline_epoch_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
}
