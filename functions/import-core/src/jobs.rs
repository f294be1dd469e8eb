//! Following an Auth0 import job: what `GET /jobs/{id}` and `GET /jobs/{id}/errors` answers
//! mean (facts §2, §3), and the chunk report that records a finished job for good.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::redact::redact_user;
use crate::violation::Violation;

/// Jobs time out after 2 hours (facts §1.8); a little grace covers clock skew and Auth0's own
/// sweep before we call a job dead.
pub const JOB_DEAD_AFTER_MS: u64 = (2 * 60 + 10) * 60 * 1000;

/// Auth0's job counts (facts §2: `summary`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    #[serde(default)]
    pub inserted: u64,
    #[serde(default)]
    pub updated: u64,
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub total: u64,
}

/// Where a followed job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobProgress {
    Active {
        status: String,
        percentage_done: Option<u64>,
        time_left_seconds: Option<u64>,
    },
    /// Terminal: Auth0 is done with it (completed, failed, expired), or we gave up on it
    /// (older than 2 h, or Auth0 no longer knows it).
    Ended(JobEnd),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEnd {
    /// `completed`, `failed`, `expired`, `dead` (our verdict past 2 h), `gone` (404).
    pub status: String,
    pub summary: Option<Summary>,
    pub details: Option<String>,
}

/// Reads a `GET /api/v2/jobs/{id}` answer (200 body or 404).
pub fn classify_job(
    http_status: u16,
    body: &[u8],
    submitted_at_ms: u64,
    now_ms: u64,
) -> JobProgress {
    let age = now_ms.saturating_sub(submitted_at_ms);
    if http_status == 404 {
        return JobProgress::Ended(JobEnd {
            status: "gone".into(),
            summary: None,
            details: Some(
                "Auth0 no longer knows this job (404): its data is purged after 24 h".into(),
            ),
        });
    }
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let status = v
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let summary = v
        .get("summary")
        .and_then(|s| serde_json::from_value::<Summary>(s.clone()).ok());
    let details = v
        .get("status_details")
        .and_then(Value::as_str)
        .map(str::to_string);
    match status.as_str() {
        "completed" | "failed" | "expired" => JobProgress::Ended(JobEnd {
            status,
            summary,
            details,
        }),
        _ if age > JOB_DEAD_AFTER_MS => JobProgress::Ended(JobEnd {
            status: "dead".into(),
            summary,
            details: Some(format!(
                "still {:?} {} min after submission; Auth0 fails jobs after 2 h, so it is given up",
                status,
                age / 60_000
            )),
        }),
        // pending, processing, and statuses Auth0 may add later: keep following until 2 h.
        _ => JobProgress::Active {
            status,
            percentage_done: v.get("percentage_done").and_then(Value::as_u64),
            time_left_seconds: v.get("time_left_seconds").and_then(Value::as_u64),
        },
    }
}

/// The longest a processing job goes unlooked-at, whatever its estimate: a job that ends well
/// before Auth0's estimate leaves its slot idle for at most this long.
pub const MAX_LOOK_GAP: Duration = Duration::from_secs(20);

/// When to ask about an active job again. Auth0's `time_left_seconds` (processing jobs, facts
/// §2) says when it expects to end; looking again after half of it (at most `MAX_LOOK_GAP`,
/// at least `interval`) converges on the end in a few requests instead of one per `interval`.
/// The estimate is in whole seconds, which may be rounded up, so one second is taken off
/// first: with an exact estimate the end is seen within one `interval`, as without it.
/// The tenant's Management API rate limit is shared with the customer's production traffic, so
/// each GET saved is theirs. Without an estimate (pending jobs), every `interval`.
pub fn next_look_after(time_left_seconds: Option<u64>, interval: Duration) -> Duration {
    match time_left_seconds {
        Some(left) => (Duration::from_secs(left.saturating_sub(1)) / 2)
            .clamp(interval, MAX_LOOK_GAP.max(interval)),
        None => interval,
    }
}

/// One user Auth0 failed, as `/errors` reports it (hash values already masked by Auth0; we
/// mask again in case they are not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserError {
    pub user: Value,
    pub errors: Vec<Violation>,
}

/// Reads a `GET /api/v2/jobs/{id}/errors` answer: 200 with a list, 204 (no errors, or a job
/// that failed as a whole), or 200 with a job object (job-level failure, facts §3).
pub fn parse_errors(http_status: u16, body: &[u8]) -> (Vec<UserError>, Option<String>) {
    if http_status == 204 || body.is_empty() {
        return (Vec::new(), None);
    }
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match v {
        Value::Array(items) => {
            let errors = items
                .into_iter()
                .map(|item| {
                    let mut user = item.get("user").cloned().unwrap_or(Value::Null);
                    redact_user(&mut user);
                    let errors = item
                        .get("errors")
                        .and_then(Value::as_array)
                        .map(|list| {
                            list.iter()
                                .map(|e| {
                                    let s = |k: &str| {
                                        e.get(k).and_then(Value::as_str).unwrap_or("").to_string()
                                    };
                                    let code =
                                        e.get("code").and_then(Value::as_str).unwrap_or("UNKNOWN");
                                    Violation::new(code, s("path"), s("message"))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    UserError { user, errors }
                })
                .collect();
            (errors, None)
        }
        Value::Object(job) => {
            let details = job
                .get("status_details")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("job-level error: {}", Value::Object(job.clone())));
            (Vec::new(), Some(details))
        }
        _ => (Vec::new(), None),
    }
}

/// `runs/<run-id>/reports/<seq>.json`: a finished job, kept after Auth0 purges it (24 h).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkReport {
    pub seq: u32,
    pub job_id: String,
    pub external_id: String,
    pub end: JobEnd,
    pub users: u64,
    pub inserted: u64,
    pub updated: u64,
    pub failed: u64,
    /// Users whose fate Auth0 did not tell (job failed without a summary, dead, gone).
    pub unknown: u64,
    pub failed_by_code: BTreeMap<String, u64>,
    pub errors: Vec<UserError>,
    pub submitted_at_ms: u64,
    pub finished_at_ms: u64,
    /// The tenant slot the job held, when the writer knew it (for the report's timeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
}

impl ChunkReport {
    /// Counts every submitted user exactly once: Auth0's summary when it has one (and it adds
    /// up), else the error list, and the remainder as unknown.
    // Each argument is a distinct fact about the job; a builder would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        seq: u32,
        job_id: String,
        external_id: String,
        users: u64,
        end: JobEnd,
        errors: Vec<UserError>,
        submitted_at_ms: u64,
        finished_at_ms: u64,
    ) -> Self {
        let mut failed_by_code = BTreeMap::new();
        for e in &errors {
            let code = e
                .errors
                .first()
                .map(|v| v.code.clone())
                .unwrap_or_else(|| "UNKNOWN".into());
            *failed_by_code.entry(code).or_insert(0) += 1;
        }
        let listed_failures = errors.len() as u64;
        let (inserted, updated, failed) = match end.summary {
            Some(s) if s.inserted + s.updated + s.failed <= users => (
                s.inserted,
                s.updated,
                s.failed
                    .max(listed_failures)
                    .min(users - s.inserted - s.updated),
            ),
            // No trustworthy summary: only listed failures are known.
            _ => (0, 0, listed_failures.min(users)),
        };
        let unknown = users - inserted - updated - failed;
        ChunkReport {
            seq,
            job_id,
            external_id,
            end,
            users,
            inserted,
            updated,
            failed,
            unknown,
            failed_by_code,
            errors,
            submitted_at_ms,
            finished_at_ms,
            slot: None,
        }
    }

    pub fn conservation_holds(&self) -> bool {
        self.users == self.inserted + self.updated + self.failed + self.unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_look_halves_auth0s_estimate_within_bounds() {
        let tick = Duration::from_secs(2);
        // No estimate (pending): the sweep interval.
        assert_eq!(next_look_after(None, tick), tick);
        // Half the estimate, less its rounding…
        assert_eq!(next_look_after(Some(31), tick), Duration::from_secs(15));
        assert_eq!(
            next_look_after(Some(2), Duration::from_millis(20)),
            Duration::from_millis(500)
        );
        // …never sooner than the interval (an estimate of 0 or 1 s: look at the next sweep)…
        assert_eq!(next_look_after(Some(0), tick), tick);
        assert_eq!(
            next_look_after(Some(1), Duration::from_millis(20)),
            Duration::from_millis(20)
        );
        assert_eq!(next_look_after(Some(5), tick), tick);
        // …nor later than MAX_LOOK_GAP, however long Auth0 expects the job to take.
        assert_eq!(next_look_after(Some(3_600), tick), MAX_LOOK_GAP);
        // An interval longer than the cap wins (the operator asked for fewer looks).
        let slow = Duration::from_secs(60);
        assert_eq!(next_look_after(Some(3_600), slow), slow);
        assert_eq!(next_look_after(Some(10), slow), slow);
    }

    /// Looks at a job that ends at `end`, Auth0's estimate exact but rounded up to whole
    /// seconds as the emulator does: (GETs, how late the end was seen).
    fn follow(end: Duration, tick: Duration) -> (u32, Duration) {
        let (mut now, mut gets) = (Duration::ZERO, 0);
        loop {
            gets += 1;
            if now >= end {
                return (gets, now - end);
            }
            let left = (end - now).as_secs_f64().ceil() as u64;
            now += next_look_after(Some(left), tick);
        }
    }

    #[test]
    fn looks_at_a_job_converge_on_its_estimated_end_in_a_few_requests() {
        // 5 minutes at a 2 s sweep: one look a sweep would take 151.
        let (gets, late) = follow(Duration::from_secs(300), Duration::from_secs(2));
        assert!(gets <= 20, "{gets} looks");
        assert!(
            late <= Duration::from_secs(2),
            "seen {late:?} after its end"
        );
        // Seconds-long jobs at a 20 ms sweep (the makespan benchmark): the estimate's last
        // second is looked at every sweep, the rest of the wait is skipped.
        let tick = Duration::from_millis(20);
        for ms in [4_321, 5_000, 30_000] {
            let every_sweep = u32::try_from(ms / 20 + 1).unwrap();
            let (gets, late) = follow(Duration::from_millis(ms), tick);
            assert!(gets * 4 <= every_sweep, "{ms} ms: {gets} looks");
            assert!(late <= tick, "{ms} ms: seen {late:?} after its end");
        }
    }

    fn end(status: &str, summary: Option<Summary>) -> JobEnd {
        JobEnd {
            status: status.into(),
            summary,
            details: None,
        }
    }

    #[test]
    fn every_status_is_handled() {
        let now = 10 * 3_600_000;
        let body = |s: &str| {
            format!(
                r#"{{"id":"job_1","status":"{s}","percentage_done":40,"time_left_seconds":12}}"#
            )
            .into_bytes()
        };
        assert!(matches!(
            classify_job(200, &body("pending"), now - 1000, now),
            JobProgress::Active { .. }
        ));
        assert_eq!(
            classify_job(200, &body("processing"), now - 1000, now),
            JobProgress::Active {
                status: "processing".into(),
                percentage_done: Some(40),
                time_left_seconds: Some(12)
            }
        );
        for s in ["completed", "failed", "expired"] {
            assert!(
                matches!(classify_job(200, &body(s), now, now), JobProgress::Ended(JobEnd { status, .. }) if status == s)
            );
        }
        assert!(matches!(
            classify_job(200, &body("queued_for_later"), now - 1000, now),
            JobProgress::Active { .. }
        ));
        assert!(
            matches!(classify_job(200, &body("processing"), now - JOB_DEAD_AFTER_MS - 1, now), JobProgress::Ended(JobEnd { status, .. }) if status == "dead")
        );
        assert!(
            matches!(classify_job(404, b"", now, now), JobProgress::Ended(JobEnd { status, .. }) if status == "gone")
        );
        let done =
            br#"{"status":"completed","summary":{"failed":1,"updated":2,"inserted":3,"total":6}}"#;
        let JobProgress::Ended(e) = classify_job(200, done, now, now) else {
            panic!()
        };
        assert_eq!(
            e.summary,
            Some(Summary {
                inserted: 3,
                updated: 2,
                failed: 1,
                total: 6
            })
        );
    }

    #[test]
    fn errors_list_204_and_job_object() {
        let list = br#"[{"user":{"email":"a@x.io","password_hash":"$2b$10$secret"},"errors":[{"code":"DUPLICATED_USER","message":"The user already exist and upsert parameter is false"}]}]"#;
        let (errors, details) = parse_errors(200, list);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].errors[0].code, "DUPLICATED_USER");
        assert_eq!(errors[0].errors[0].path, "");
        assert!(!serde_json::to_string(&errors)
            .unwrap()
            .contains("$2b$10$secret"));
        assert!(details.is_none());
        assert_eq!(parse_errors(204, b""), (Vec::new(), None));
        let (none, details) = parse_errors(
            200,
            br#"{"status":"failed","id":"job_1","status_details":"Failed to parse users file"}"#,
        );
        assert!(none.is_empty());
        assert_eq!(details.as_deref(), Some("Failed to parse users file"));
    }

    #[test]
    fn chunk_report_counts_every_user_once() {
        let e = |code: &str| UserError {
            user: Value::Null,
            errors: vec![Violation::new(code, "", "m")],
        };
        let s = Summary {
            inserted: 7,
            updated: 1,
            failed: 2,
            total: 10,
        };
        let r = ChunkReport::new(
            1,
            "job_1".into(),
            "x".into(),
            10,
            end("completed", Some(s)),
            vec![e("DUPLICATED_USER"), e("INVALID_FORMAT")],
            0,
            5,
        );
        assert_eq!((r.inserted, r.updated, r.failed, r.unknown), (7, 1, 2, 0));
        assert!(r.conservation_holds());
        // A job that failed as a whole, without a summary: nobody's fate is known.
        let f = ChunkReport::new(
            2,
            "job_2".into(),
            "x".into(),
            10,
            end("failed", None),
            vec![],
            0,
            5,
        );
        assert_eq!((f.inserted, f.failed, f.unknown), (0, 0, 10));
        assert!(f.conservation_holds());
        // A summary that does not add up is not trusted past the users we sent.
        let odd = Summary {
            inserted: 50,
            updated: 0,
            failed: 0,
            total: 50,
        };
        let o = ChunkReport::new(
            3,
            "job_3".into(),
            "x".into(),
            10,
            end("completed", Some(odd)),
            vec![],
            0,
            5,
        );
        assert!(o.conservation_holds());
        assert_eq!(o.unknown, 10);
    }
}
