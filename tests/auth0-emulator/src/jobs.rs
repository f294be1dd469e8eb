//! Import jobs on their own clocks: `pending` for the base time, `processing` for users × time per
//! user, then `completed` (users applied to the tenant at that moment) or `failed` (facts §2, §3).
//!
//! Choices for unconfirmed points:
//! - A users file that is not a JSON array of objects fails the job right after `pending`, with a
//!   `status_details` text and no `summary` (facts §7.3, §9.3, §9.12); `[]` completes with zeros.
//! - `processing` shows `percentage_done` and `time_left_seconds` (legacy docs, facts §2).
//! - `/errors` of a job still pending/processing answers 200 with the generic job object
//!   (`GetJobGenericErrorResponseContent`); of a failed job 204 (observed, facts §3).
//! - A job past `job_timeout` is `failed` with "Job timed out" details; jobs never expire.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::config::ConnectionConfig;
use crate::tenant::{ImportOutcome, Summary};

pub const UNPARSEABLE_FILE: &str =
    "Failed to parse users file JSON when importing users. The file must be a JSON array of user objects.";
pub const INJECTED_FAILURE: &str = "Internal error while processing the import job.";
pub const TIMED_OUT: &str = "Job timed out.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Processing,
    Completed,
    Failed,
}

/// What the job will do when its clock runs out.
#[derive(Debug, Clone)]
pub enum Plan {
    Import(Vec<Value>),
    Fail(&'static str),
}

#[derive(Debug, Clone)]
pub enum JobOutcome {
    Completed(ImportOutcome),
    Failed(&'static str),
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub connection: ConnectionConfig,
    pub external_id: Option<String>,
    pub upsert: bool,
    pub send_completion_email: bool,
    pub users_submitted: Option<usize>,
    pub created_at: String,
    pub created: Instant,
    /// When `pending` ends; equal to `ends_at` for a job that fails without processing.
    pub processing_from: Instant,
    pub ends_at: Instant,
    /// Taken when the job is settled.
    pub plan: Option<Plan>,
    pub outcome: Option<JobOutcome>,
}

/// How long things take, from the emulator's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub base: Duration,
    pub per_user: Duration,
    pub timeout: Duration,
}

/// The parts of a job decided at creation.
pub struct NewJob {
    pub id: String,
    pub connection: ConnectionConfig,
    pub external_id: Option<String>,
    pub upsert: bool,
    pub send_completion_email: bool,
    pub users_file: Vec<u8>,
    pub created_at: String,
    pub inject_failure: bool,
}

/// The users of a file that is a JSON array of objects, else None.
pub fn parse_users_file(file: &[u8]) -> Option<Vec<Value>> {
    match serde_json::from_slice::<Value>(file) {
        Ok(Value::Array(users)) if users.iter().all(Value::is_object) => Some(users),
        _ => None,
    }
}

impl Job {
    pub fn new(new: NewJob, timing: Timing, now: Instant) -> Self {
        let processing_from = now + timing.base;
        let users = parse_users_file(&new.users_file);
        let users_submitted = users.as_ref().map(Vec::len);
        let (plan, processing, end_limit) = match users {
            None => (Plan::Fail(UNPARSEABLE_FILE), Duration::ZERO, None),
            Some(users) => {
                let count = u32::try_from(users.len()).unwrap_or(u32::MAX);
                let processing = timing.per_user.saturating_mul(count);
                let plan = if new.inject_failure {
                    Plan::Fail(INJECTED_FAILURE)
                } else {
                    Plan::Import(users)
                };
                (plan, processing, Some(now + timing.timeout))
            }
        };
        let mut ends_at = processing_from + processing;
        let mut plan = plan;
        if let Some(limit) = end_limit {
            if ends_at > limit {
                ends_at = limit;
                plan = Plan::Fail(TIMED_OUT);
            }
        }
        Self {
            id: new.id,
            connection: new.connection,
            external_id: new.external_id,
            upsert: new.upsert,
            send_completion_email: new.send_completion_email,
            users_submitted,
            created_at: new.created_at,
            created: now,
            processing_from: processing_from.min(ends_at),
            ends_at,
            plan: Some(plan),
            outcome: None,
        }
    }

    /// The status at `now`; call after settling so finished jobs carry their outcome.
    pub fn status(&self, now: Instant) -> JobStatus {
        match &self.outcome {
            Some(JobOutcome::Completed(_)) => JobStatus::Completed,
            Some(JobOutcome::Failed(_)) => JobStatus::Failed,
            None if now < self.processing_from => JobStatus::Pending,
            None => JobStatus::Processing,
        }
    }

    pub fn is_active(&self) -> bool {
        self.outcome.is_none()
    }

    fn status_details(&self) -> Option<&'static str> {
        match &self.outcome {
            Some(JobOutcome::Failed(details)) => Some(details),
            _ => None,
        }
    }

    /// `GET /api/v2/jobs/{id}`, keys in the order of Auth0's recorded bodies (facts §2).
    pub fn status_body(&self, now: Instant) -> Value {
        let status = self.status(now);
        let mut body = Map::new();
        body.insert("type".into(), json!("users_import"));
        body.insert("status".into(), json!(status));
        body.insert("connection_id".into(), json!(self.connection.id));
        if status == JobStatus::Processing {
            let total = self.ends_at.saturating_duration_since(self.processing_from);
            let done = now.saturating_duration_since(self.processing_from);
            let percentage = if total.is_zero() {
                100
            } else {
                // done <= total while processing, so this is 0..=100.
                ((done.as_secs_f64() / total.as_secs_f64()) * 100.0).floor() as u64
            };
            let left = self.ends_at.saturating_duration_since(now);
            body.insert("percentage_done".into(), json!(percentage.min(100)));
            body.insert(
                "time_left_seconds".into(),
                json!(left.as_secs_f64().ceil() as u64),
            );
        }
        if let Some(JobOutcome::Completed(outcome)) = &self.outcome {
            body.insert("summary".into(), json!(outcome.summary));
        }
        if let Some(details) = self.status_details() {
            body.insert("status_details".into(), json!(details));
        }
        body.insert("connection".into(), json!(self.connection.name));
        body.insert("created_at".into(), json!(self.created_at));
        body.insert("id".into(), json!(self.id));
        if let Some(external_id) = &self.external_id {
            body.insert("external_id".into(), json!(external_id));
        }
        Value::Object(body)
    }

    /// The 202 body of job creation: no upsert/send_completion_email echo (facts §1.3).
    pub fn created_body(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), json!("users_import"));
        body.insert("status".into(), json!("pending"));
        body.insert("connection_id".into(), json!(self.connection.id));
        body.insert("connection".into(), json!(self.connection.name));
        body.insert("created_at".into(), json!(self.created_at));
        body.insert("id".into(), json!(self.id));
        if let Some(external_id) = &self.external_id {
            body.insert("external_id".into(), json!(external_id));
        }
        Value::Object(body)
    }

    /// `GET /api/v2/jobs/{id}/errors`: status and body (None = 204 No Content).
    pub fn errors_reply(&self, now: Instant) -> (u16, Option<Value>) {
        match &self.outcome {
            Some(JobOutcome::Completed(outcome)) if outcome.errors.is_empty() => (204, None),
            Some(JobOutcome::Completed(outcome)) => {
                (200, Some(Value::Array(outcome.errors.clone())))
            }
            Some(JobOutcome::Failed(_)) => (204, None),
            None => {
                let mut body = Map::new();
                body.insert("status".into(), json!(self.status(now)));
                body.insert("type".into(), json!("users_import"));
                body.insert("created_at".into(), json!(self.created_at));
                body.insert("id".into(), json!(self.id));
                body.insert("connection_id".into(), json!(self.connection.id));
                (200, Some(Value::Object(body)))
            }
        }
    }

    pub fn view(&self, now: Instant, epoch: Instant) -> JobView {
        let millis = |at: Instant| {
            u64::try_from(at.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
        };
        let status = self.status(now);
        let processed = self.processing_from < self.ends_at;
        JobView {
            id: self.id.clone(),
            status,
            connection_id: self.connection.id.clone(),
            external_id: self.external_id.clone(),
            upsert: self.upsert,
            send_completion_email: self.send_completion_email,
            users: self.users_submitted,
            summary: match &self.outcome {
                Some(JobOutcome::Completed(outcome)) => Some(outcome.summary),
                _ => None,
            },
            status_details: self.status_details().map(str::to_string),
            created_at: self.created_at.clone(),
            created_ms: millis(self.created),
            started_ms: (processed && now >= self.processing_from)
                .then(|| millis(self.processing_from)),
            finished_ms: self.outcome.is_some().then(|| millis(self.ends_at)),
        }
    }
}

/// A job as the inspection API shows it. Times are milliseconds since the emulator started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobView {
    pub id: String,
    pub status: JobStatus,
    pub connection_id: String,
    pub external_id: Option<String>,
    pub upsert: bool,
    pub send_completion_email: bool,
    /// Users in the submitted file (None when it was not a JSON array of objects).
    pub users: Option<usize>,
    pub summary: Option<Summary>,
    pub status_details: Option<String>,
    pub created_at: String,
    pub created_ms: u64,
    /// When processing began (None while pending, or for a job that failed without processing).
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConnectionKind;

    fn job(file: &[u8], inject_failure: bool) -> Job {
        Job::new(
            NewJob {
                id: "job_0000000000000000".into(),
                connection: ConnectionConfig {
                    id: "con_TestConnection01".into(),
                    name: "Username-Password-Authentication".into(),
                    kind: ConnectionKind::Database,
                    enabled: true,
                },
                external_id: None,
                upsert: false,
                send_completion_email: false,
                users_file: file.to_vec(),
                created_at: "t".into(),
                inject_failure,
            },
            Timing {
                base: Duration::from_secs(1),
                per_user: Duration::from_secs(10),
                timeout: Duration::from_secs(7200),
            },
            Instant::now(),
        )
    }

    #[test]
    fn status_follows_the_clock() {
        let job = job(
            br#"[{"email":"a@example.com"},{"email":"b@example.com"}]"#,
            false,
        );
        let t0 = job.created;
        assert_eq!(job.status(t0), JobStatus::Pending);
        let mid = t0 + Duration::from_secs(11);
        assert_eq!(job.status(mid), JobStatus::Processing);
        let body = job.status_body(mid);
        assert_eq!(body["percentage_done"], 50);
        assert_eq!(body["time_left_seconds"], 10);
        assert_eq!(job.ends_at, t0 + Duration::from_secs(21));
    }

    #[test]
    fn unparseable_files_fail_without_processing() {
        for file in [&b"not json"[..], b"{\"email\":\"a@example.com\"}", b"[1,2]"] {
            let job = job(file, false);
            assert_eq!(job.processing_from, job.ends_at);
            assert!(matches!(job.plan, Some(Plan::Fail(UNPARSEABLE_FILE))));
        }
    }

    #[test]
    fn long_jobs_time_out() {
        let users: Vec<Value> = (0..1000)
            .map(|i| json!({ "email": format!("u{i}@example.com") }))
            .collect();
        let job = job(&serde_json::to_vec(&users).unwrap(), false);
        assert!(matches!(job.plan, Some(Plan::Fail(TIMED_OUT))));
        assert_eq!(job.ends_at, job.created + Duration::from_secs(7200));
    }
}
