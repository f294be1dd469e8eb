//! The tenant's Management API token bucket (facts §5.2): burst = bucket size, refill per second,
//! and the `x-ratelimit-*` header values every /api/v2 response carries.

use std::time::{Duration, Instant, SystemTime};

use crate::config::RateLimit;
use crate::timestamp::unix_seconds;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    refilled_at: Instant,
}

/// Values of `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub limit: u32,
    pub remaining: u32,
    /// UNIX seconds when tokens are next added (now when the bucket is full).
    pub reset: u64,
}

impl TokenBucket {
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst),
            refilled_at: now,
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn headers(&mut self, now: Instant, wall: SystemTime) -> RateLimitHeaders {
        self.refill(now);
        let burst = f64::from(self.limit.burst);
        let wall_secs = unix_seconds(wall);
        let reset = if self.tokens >= burst || self.limit.per_second <= 0.0 {
            wall_secs.ceil()
        } else {
            // Time until the next whole token lands in the bucket.
            let missing = 1.0 - self.tokens.fract();
            (wall_secs + missing / self.limit.per_second).ceil()
        };
        RateLimitHeaders {
            limit: self.limit.burst,
            // tokens is within 0..=burst, so the cast cannot truncate a meaningful value.
            remaining: self.tokens.floor() as u32,
            reset: reset as u64,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed: Duration = now.saturating_duration_since(self.refilled_at);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.limit.per_second)
            .min(f64::from(self.limit.burst));
        self.refilled_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empties_after_burst_and_refills_over_time() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(
            RateLimit {
                burst: 2,
                per_second: 2.0,
            },
            start,
        );
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start));
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let headers = bucket.headers(start, wall);
        assert_eq!(headers.limit, 2);
        assert_eq!(headers.remaining, 0);
        assert_eq!(headers.reset, 1_001);
        assert!(bucket.try_take(start + Duration::from_millis(500)));
        assert!(!bucket.try_take(start + Duration::from_millis(500)));
    }
}
