//! What an emulated tenant looks like (clients, connections, timing, rate limit) and the fault
//! switches; all of it deserializes from JSON (durations as `*_ms` integers) for the binary and PUT.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The default database connection. The brief suggested `con_TestConnection0001`, but that has 18
/// characters after `con_` and fails Auth0's `^con_[A-Za-z0-9]{16}$` (facts §1.2).
pub const DEFAULT_CONNECTION_ID: &str = "con_TestConnection01";
pub const DEFAULT_CONNECTION_NAME: &str = "Username-Password-Authentication";
pub const DEFAULT_CLIENT_ID: &str = "test-client";
pub const DEFAULT_CLIENT_SECRET: &str = "test-secret";

/// One emulated tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmulatorConfig {
    /// Machine-to-machine applications allowed to ask `/oauth/token` for Management API tokens.
    pub clients: Vec<ClientConfig>,
    /// `expires_in` of minted tokens (Auth0's default is 86,400 s, facts §5.1).
    #[serde(rename = "token_ttl_ms", with = "millis")]
    pub token_ttl: Duration,
    pub connections: Vec<ConnectionConfig>,
    /// Processing time per user once a job leaves `pending`.
    #[serde(rename = "job_time_per_user_ms", with = "millis")]
    pub job_time_per_user: Duration,
    /// Time a job stays `pending` before processing starts.
    #[serde(rename = "job_base_time_ms", with = "millis")]
    pub job_base_time: Duration,
    /// Auth0 lets a tenant run this many import jobs at once (facts §1.6).
    pub max_active_jobs: usize,
    /// A job still running after this long is marked `failed` (facts §1.8: 2 hours).
    #[serde(rename = "job_timeout_ms", with = "millis")]
    pub job_timeout: Duration,
    pub rate_limit: RateLimit,
    pub faults: Faults,
    /// Time an export job stays `pending`.
    #[serde(rename = "export_base_time_ms", with = "millis")]
    pub export_base_time: Duration,
    /// Processing time of an export per user of the connection (in microseconds: exports are
    /// fast; 1 µs makes a 1 M-user export take a second).
    #[serde(rename = "export_time_per_user_us", with = "micros")]
    pub export_time_per_user: Duration,
    /// How long an export's `location` URL stays valid (Auth0: 60 s, facts §6); tests shorten it.
    #[serde(rename = "export_url_ttl_ms", with = "millis")]
    pub export_url_ttl: Duration,
    /// Answer `GET /api/v2/connections/{id}` without `enabled_clients` (Auth0 marks the
    /// property not recommended), so clients read `/connections/{id}/clients` instead.
    pub omit_enabled_clients: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            clients: vec![ClientConfig {
                client_id: DEFAULT_CLIENT_ID.to_string(),
                client_secret: DEFAULT_CLIENT_SECRET.to_string(),
                scopes: vec!["create:users".to_string(), "read:users".to_string()],
            }],
            token_ttl: Duration::from_secs(86_400),
            connections: vec![ConnectionConfig {
                id: DEFAULT_CONNECTION_ID.to_string(),
                name: DEFAULT_CONNECTION_NAME.to_string(),
                kind: ConnectionKind::Database,
                enabled: true,
            }],
            job_time_per_user: Duration::from_millis(2),
            job_base_time: Duration::from_millis(50),
            max_active_jobs: 2,
            job_timeout: Duration::from_secs(2 * 60 * 60),
            rate_limit: RateLimit::default(),
            faults: Faults::default(),
            omit_enabled_clients: false,
            export_base_time: Duration::from_millis(50),
            export_time_per_user: Duration::from_micros(1),
            export_url_ttl: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Management API scopes granted to this client (`create:users`, `read:users`, ...).
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionConfig {
    /// `con_` + 16 alphanumerics.
    pub id: String,
    pub name: String,
    pub kind: ConnectionKind,
    /// Enabled for at least one application (an import needs that, facts §1.1).
    pub enabled: bool,
}

/// The connection kinds that matter to an import (facts §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// An Auth0 user store: importable.
    Database,
    /// A custom database connection without import mode: rejected with 400.
    CustomDatabaseWithoutImportMode,
    /// Passwordless (email/SMS): rejected with 400 "Connection must be a database connection".
    Passwordless,
}

/// Management API token bucket for the whole tenant (facts §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Bucket size (`x-ratelimit-limit`).
    pub burst: u32,
    /// Tokens added per second.
    pub per_second: f64,
}

impl Default for RateLimit {
    /// Enterprise production figures (facts §5.2): generous enough for tests that ignore it.
    fn default() -> Self {
        Self {
            burst: 50,
            per_second: 16.0,
        }
    }
}

/// Fault switches, all off by default. Random choices come from a generator seeded with `seed`,
/// so a test run is reproducible; setting new faults restarts the generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    pub seed: u64,
    /// Fraction (0..=1) of /api/v2 requests answered with the rate-limit 429.
    pub extra_429_rate: f64,
    /// Fraction (0..=1) of /api/v2 requests answered with 500 or 503 (nothing is created).
    pub error_5xx_rate: f64,
    /// Added to every response.
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// The next N created jobs end `failed` instead of `completed` (no user is applied).
    pub fail_next_jobs: u32,
    /// Tokens minted from now on are rejected as expired after this long, whatever `expires_in` says.
    #[serde(rename = "expire_tokens_after_ms", with = "optional_millis")]
    pub expire_tokens_after: Option<Duration>,
    /// The next N import posts that would be accepted create their job, then are answered with
    /// `after_create_status` and no job id: a gateway (502/504) or Auth0 itself (500) failing
    /// after the work was done.
    pub create_then_fail: u32,
    /// The status those answers carry (default 504).
    pub after_create_status: u16,
    /// The next N import posts are read whole, then their connection is dropped without an
    /// answer; the job is created first when `reset_creates_job` is set.
    pub reset_after_body: u32,
    pub reset_creates_job: bool,
    /// The next N import posts that would be accepted create their job and answer 202 with a
    /// body that has no `id`.
    pub accept_without_id: u32,
    /// `/oauth/token` answers 503 while set (the token endpoint down).
    pub token_endpoint_down: bool,
    /// `GET /api/v2/jobs/…` answers this status (401, 403 or 404) while set, whatever the token.
    pub job_reads_answer: Option<u16>,
    /// Upserts leave `user_metadata` / `app_metadata` as they were while the job still counts
    /// the user updated (an upsert that "succeeds" without changing what the operator cared about).
    pub upsert_keeps_metadata: bool,
    /// The next N export locations minted are expired already (a client too slow to use one).
    pub expire_next_links: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            seed: 1,
            extra_429_rate: 0.0,
            error_5xx_rate: 0.0,
            latency: Duration::ZERO,
            fail_next_jobs: 0,
            expire_tokens_after: None,
            create_then_fail: 0,
            after_create_status: 504,
            reset_after_body: 0,
            reset_creates_job: true,
            accept_without_id: 0,
            token_endpoint_down: false,
            job_reads_answer: None,
            upsert_keeps_metadata: false,
            expire_next_links: 0,
        }
    }
}

/// Durations as whole milliseconds in JSON.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// Durations as whole microseconds in JSON.
mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_micros()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_micros)
    }
}

mod optional_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => {
                serializer.serialize_some(&u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
            }
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(deserializer).map(|ms| ms.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_round_trip_through_json_with_millisecond_fields() {
        let faults = Faults {
            seed: 7,
            latency: Duration::from_millis(25),
            expire_tokens_after: Some(Duration::from_millis(100)),
            ..Faults::default()
        };
        let json = serde_json::to_value(&faults).unwrap();
        assert_eq!(json["latency_ms"], 25);
        assert_eq!(json["expire_tokens_after_ms"], 100);
        let back: Faults = serde_json::from_value(json).unwrap();
        assert_eq!(back, faults);
        let partial: Faults = serde_json::from_str(r#"{"fail_next_jobs": 2}"#).unwrap();
        assert_eq!(partial.fail_next_jobs, 2);
        assert_eq!(partial.seed, 1);
        assert_eq!(partial.after_create_status, 504);
        assert!(partial.reset_creates_job);
    }

    #[test]
    fn a_partial_config_file_keeps_the_defaults() {
        let config: EmulatorConfig =
            serde_json::from_str(r#"{"job_time_per_user_ms": 9}"#).unwrap();
        assert_eq!(config.job_time_per_user, Duration::from_millis(9));
        assert_eq!(config.max_active_jobs, 2);
        assert_eq!(config.clients[0].client_id, "test-client");
    }
}
