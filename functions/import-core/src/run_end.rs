//! The one message a run sends when it ends (completed, completed with failures, refused as a
//! whole, canary failed), built from its report alone, and the `RunNotifier` port that sends it.
//!
//! The message carries counts, keys and the run's identity, never user data: no e-mail, user
//! id, record, hash or canary label appears in it, whatever the report holds.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::layout::RunPath;
use crate::manifest::Source;
use crate::report::{codes, RunReport};

/// How a run ended, in the words an operator filters notifications by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every user was imported and the numbers add up.
    Completed,
    /// The run ended with users rejected, failed at Auth0 or of unknown outcome (or numbers that
    /// do not add up).
    CompletedWithFailures,
    /// Nothing was imported because the drop or the run was refused as a whole: an unreadable
    /// file or bad options (no chunk published), every user rejected, or Auth0 refusing every
    /// request of the run.
    Refused,
    /// Canary passwords did not verify (or were missing): no job was spent.
    CanaryFailed,
}

impl RunOutcome {
    /// What the report says about the run as a whole.
    pub fn of(report: &RunReport) -> RunOutcome {
        if report.submitted == 0 && report.canaries.as_ref().is_some_and(|c| c.stops_the_run()) {
            return RunOutcome::CanaryFailed;
        }
        let imported = report.inserted + report.updated;
        let refused_by_auth0 = report.submitted == 0
            && imported == 0
            && report.failed_at_auth0 > 0
            && report
                .failed_by_code
                .keys()
                .all(|c| c == codes::REQUEST_REFUSED || c == codes::NOT_SUBMITTED);
        if report.refused.is_some() || report.chunks == 0 || refused_by_auth0 {
            return RunOutcome::Refused;
        }
        if report.all_imported() && report.conservation_holds {
            RunOutcome::Completed
        } else {
            RunOutcome::CompletedWithFailures
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Completed => "completed",
            RunOutcome::CompletedWithFailures => "completed_with_failures",
            RunOutcome::Refused => "refused",
            RunOutcome::CanaryFailed => "canary_failed",
        }
    }

    /// For a sentence: "completed with failures".
    pub fn phrase(self) -> &'static str {
        match self {
            RunOutcome::Completed => "completed",
            RunOutcome::CompletedWithFailures => "completed with failures",
            RunOutcome::Refused => "refused as a whole",
            RunOutcome::CanaryFailed => "canary failed",
        }
    }
}

/// Where the run's reports are: keys in `bucket` (or paths under a local folder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportKeys {
    /// The bucket, when the run lives in one.
    pub bucket: Option<String>,
    pub report_html: String,
    pub report_csv: String,
    pub report_json: String,
}

impl ReportKeys {
    /// The keys `layout` gives the run's reports.
    pub fn for_run(bucket: Option<&str>, run_id: &str) -> ReportKeys {
        let run = RunPath::new(run_id);
        ReportKeys {
            bucket: bucket.map(str::to_string),
            report_html: run.report_html(),
            report_csv: run.report_csv(),
            report_json: run.report_json(),
        }
    }

    fn url(&self, key: &str) -> String {
        match &self.bucket {
            Some(b) => format!("s3://{b}/{key}"),
            None => key.to_string(),
        }
    }
}

/// The longest reason a message carries: refusals are sentences about the file or the
/// request, and a cap keeps a pathological one from filling a chat message.
const MAX_REASON_CHARS: usize = 300;
/// SNS subjects: ASCII, no line breaks, under 100 characters.
const MAX_SUBJECT_CHARS: usize = 99;

/// `RunEndMessage` as JSON is the notification's machine-readable form (version 1).
pub const MESSAGE_VERSION: u32 = 1;

/// The one message a run sends when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEndMessage {
    pub version: u32,
    pub run_id: String,
    /// The dropped object's key (or the local file), as the operator named it.
    pub source_key: String,
    pub outcome: RunOutcome,
    pub users_in: u64,
    pub rejected_before_submission: u64,
    pub inserted: u64,
    pub updated: u64,
    pub failed_at_auth0: u64,
    pub unknown: u64,
    pub identity: String,
    pub conservation_holds: bool,
    /// Why a refused run was refused (a sentence about the file or the request, never a record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub reports: ReportKeys,
}

impl RunEndMessage {
    /// The message for a run whose report is written. `refusal` is the reason when the caller
    /// knows the run was refused as a whole (split's failure reason); otherwise, for a run
    /// Auth0 refused, the first refused chunk's details are used.
    pub fn from_report(
        report: &RunReport,
        source_key: &str,
        reports: ReportKeys,
        refusal: Option<&str>,
    ) -> RunEndMessage {
        let outcome = RunOutcome::of(report);
        let reason = match outcome {
            RunOutcome::Refused => refusal
                .map(str::to_string)
                .or_else(|| report.refused.clone())
                .or_else(|| {
                    report
                        .jobs
                        .iter()
                        .find_map(|j| j.details.clone())
                        .or_else(|| {
                            (report.chunks == 0 && report.users_in > 0)
                                .then(|| "every user was rejected before submission".to_string())
                        })
                }),
            RunOutcome::CanaryFailed => report.canaries.as_ref().map(|c| {
                // Counts only: a canary's label may be an e-mail address.
                format!(
                    "{} of {} canaries failed, {} missing from the drop",
                    c.failed, c.checked, c.missing
                )
            }),
            _ => None,
        }
        .map(|r| cap(&r, MAX_REASON_CHARS));
        RunEndMessage {
            version: MESSAGE_VERSION,
            run_id: report.run_id.clone(),
            source_key: source_key.to_string(),
            outcome,
            users_in: report.users_in,
            rejected_before_submission: report.rejected_before_submission,
            inserted: report.inserted,
            updated: report.updated,
            failed_at_auth0: report.failed_at_auth0,
            unknown: report.unknown,
            identity: report.identity.clone(),
            conservation_holds: report.conservation_holds,
            reason,
            reports,
        }
    }

    /// The message for a final report, its keys where `layout` puts them in `bucket`: what
    /// poll sends once a run's report is written.
    pub fn for_final_report(report: &RunReport, bucket: Option<&str>) -> RunEndMessage {
        let source_key = match &report.source {
            Source::S3 { key, .. } => key.as_str(),
            Source::Local { path, .. } => path.as_str(),
        };
        RunEndMessage::from_report(
            report,
            source_key,
            ReportKeys::for_run(bucket, &report.run_id),
            None,
        )
    }

    /// The message for a drop split refused before any report could be built (no chunk was
    /// published): `users_in` counts the records read before the failure, none submitted.
    pub fn refused_drop(
        run_id: &str,
        source_key: &str,
        users_in: u64,
        reason: &str,
        reports: ReportKeys,
    ) -> RunEndMessage {
        RunEndMessage {
            version: MESSAGE_VERSION,
            run_id: run_id.to_string(),
            source_key: source_key.to_string(),
            outcome: RunOutcome::Refused,
            users_in,
            rejected_before_submission: users_in,
            inserted: 0,
            updated: 0,
            failed_at_auth0: 0,
            unknown: 0,
            identity: "users_in = rejected_before_submission + inserted + updated + failed_at_auth0 + unknown".into(),
            conservation_holds: true,
            reason: Some(cap(reason, MAX_REASON_CHARS)),
            reports,
        }
    }

    pub fn not_imported(&self) -> u64 {
        self.rejected_before_submission + self.failed_at_auth0 + self.unknown
    }

    /// A subject line for e-mail: ASCII, one line, under 100 characters.
    pub fn subject(&self) -> String {
        let file = self
            .source_key
            .rsplit('/')
            .next()
            .unwrap_or(&self.source_key);
        let tail = match self.outcome {
            RunOutcome::CompletedWithFailures => {
                format!(" ({} not imported)", self.not_imported())
            }
            _ => String::new(),
        };
        let text = format!("auth0-s3-import: {file} {}{tail}", self.outcome.phrase());
        let ascii: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        cap(&ascii, MAX_SUBJECT_CHARS)
    }

    /// The plain-text body (e-mail, and any subscriber that wants text).
    pub fn text(&self) -> String {
        let mut out = format!(
            "Run {} {}.\n\nSource      {}\n",
            self.run_id,
            self.outcome.phrase(),
            self.source_key
        );
        if let Some(reason) = &self.reason {
            out.push_str(&format!("Reason      {reason}\n"));
        }
        out.push('\n');
        for (label, n) in [
            ("users in", self.users_in),
            (
                "rejected before submission",
                self.rejected_before_submission,
            ),
            ("inserted", self.inserted),
            ("updated", self.updated),
            ("failed at Auth0", self.failed_at_auth0),
            ("unknown", self.unknown),
        ] {
            out.push_str(&format!("{label:<28}{n:>10}\n"));
        }
        out.push_str(&format!(
            "\n{}: {}\n\nReport      {}\nCSV         {}\n",
            self.identity,
            if self.conservation_holds {
                "holds"
            } else {
                "DOES NOT HOLD"
            },
            self.reports.url(&self.reports.report_html),
            self.reports.url(&self.reports.report_csv),
        ));
        if let Some(bucket) = &self.reports.bucket {
            out.push_str(&format!(
                "\nauth0-s3-import status {} --bucket {bucket}\n",
                self.run_id
            ));
        }
        out
    }

    /// The message in the custom-notification format of Amazon Q Developer in chat
    /// applications (formerly AWS Chatbot), which posts it to Slack, Teams or Chime.
    pub fn chat_notification(&self) -> Value {
        let icon = match self.outcome {
            RunOutcome::Completed => ":white_check_mark:",
            RunOutcome::CompletedWithFailures => ":warning:",
            RunOutcome::Refused | RunOutcome::CanaryFailed => ":x:",
        };
        let mut description = format!(
            "`{}`: {} users in, {} inserted, {} updated, {} not imported ({} rejected, {} failed at Auth0, {} unknown). Identity {}.",
            self.source_key,
            self.users_in,
            self.inserted,
            self.updated,
            self.not_imported(),
            self.rejected_before_submission,
            self.failed_at_auth0,
            self.unknown,
            if self.conservation_holds { "holds" } else { "DOES NOT HOLD" },
        );
        if let Some(reason) = &self.reason {
            description.push_str(&format!(" Reason: {reason}"));
        }
        let next = match self.outcome {
            RunOutcome::Completed => vec![format!(
                "Report: {}",
                self.reports.url(&self.reports.report_html)
            )],
            _ => vec![
                format!(
                    "Read the report: {}",
                    self.reports.url(&self.reports.report_html)
                ),
                format!(
                    "Users not imported, one row each: {}",
                    self.reports.url(&self.reports.report_csv)
                ),
            ],
        };
        json!({
            "version": "1.0",
            "source": "custom",
            "id": self.run_id,
            "content": {
                "textType": "client-markdown",
                "title": format!("{icon} Run {} {}", self.run_id, self.outcome.phrase()),
                "description": description,
                "nextSteps": next,
            },
            "metadata": {
                "threadId": self.run_id,
                "summary": self.subject(),
                "eventType": self.outcome.as_str(),
                "additionalContext": {
                    "run_id": self.run_id,
                    "outcome": self.outcome.as_str(),
                },
            },
        })
    }

    /// The SNS message with one form per protocol (`MessageStructure=json`): text for e-mail,
    /// the chat format for HTTPS (how Amazon Q Developer in chat applications subscribes), and
    /// this struct as JSON for everything else (SQS, Lambda, `email-json`, the default).
    pub fn sns_message(&self) -> String {
        let machine = serde_json::to_string(self).unwrap_or_default();
        json!({
            "default": machine,
            "email": self.text(),
            "https": self.chat_notification().to_string(),
            "sqs": machine,
            "lambda": machine,
            "email-json": machine,
        })
        .to_string()
    }
}

/// At most `max` characters of `s`, on a character boundary, "…" marking a cut.
fn cap(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push(if s.is_ascii() { '~' } else { '…' });
    out
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The notification service refused the message (missing permission, no such topic).
    #[error("the run-end notification was refused: {0}")]
    Refused(String),
    /// It could not be reached, or answered with a server error: trying again may work.
    #[error("the run-end notification could not be sent: {0}")]
    Unavailable(String),
}

/// Sends a run's end message. Implemented by the SNS adapter and a log-only one
/// (`aws_shell::notify`) and the two below; called once per run that ends (a retry of the caller may send it again).
// Used generically (never as `dyn`), like `ObjectStore`.
#[allow(async_fn_in_trait)]
pub trait RunNotifier: Sync {
    async fn notify(&self, message: &RunEndMessage) -> Result<(), NotifyError>;
}

/// No topic configured: nobody is told.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNotifier;

impl RunNotifier for NoNotifier {
    async fn notify(&self, _message: &RunEndMessage) -> Result<(), NotifyError> {
        Ok(())
    }
}

/// Keeps what it was given, for tests and for callers that decide later.
#[derive(Debug, Default)]
pub struct MemoryNotifier {
    sent: Mutex<Vec<RunEndMessage>>,
}

impl MemoryNotifier {
    pub fn sent(&self) -> Vec<RunEndMessage> {
        self.sent.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl RunNotifier for MemoryNotifier {
    async fn notify(&self, message: &RunEndMessage) -> Result<(), NotifyError> {
        self.sent
            .lock()
            .map_err(|_| NotifyError::Unavailable("a holder of the message list panicked".into()))?
            .push(message.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::report::{CanaryOutcome, CanaryReport, CanaryResult, JobLine};

    /// A report whose identity holds, with the given Auth0 outcomes.
    fn report(inserted: u64, failed: u64, unknown: u64, rejected: u64) -> RunReport {
        let submitted = inserted + failed + unknown;
        serde_json::from_value(json!({
            "run_id": "users-json-0123456789abcdef",
            "source": {"kind": "s3", "bucket": "b", "key": "inbox/con_AbCdEf0123456789/users.json", "etag": "e", "size": 10},
            "users_in": submitted + rejected,
            "rejected_before_submission": rejected,
            "rejected_by_code": if rejected > 0 { json!({"INVALID_FORMAT": rejected}) } else { json!({}) },
            "submitted": submitted,
            "inserted": inserted,
            "updated": 0,
            "failed_at_auth0": failed,
            "failed_by_code": if failed > 0 { json!({"DUPLICATED_USER": failed}) } else { json!({}) },
            "unknown": unknown,
            "identity": "users_in = rejected_before_submission + inserted + updated + failed_at_auth0 + unknown",
            "conservation_holds": true,
            "jobs": [],
            "chunks": 1,
            "failed_users_key": null
        }))
        .unwrap()
    }

    fn keys() -> ReportKeys {
        ReportKeys::for_run(Some("b"), "users-json-0123456789abcdef")
    }

    #[test]
    fn each_ending_gets_its_class() {
        assert_eq!(RunOutcome::of(&report(10, 0, 0, 0)), RunOutcome::Completed);
        assert_eq!(
            RunOutcome::of(&report(8, 1, 0, 0)),
            RunOutcome::CompletedWithFailures
        );
        assert_eq!(
            RunOutcome::of(&report(10, 0, 0, 1)),
            RunOutcome::CompletedWithFailures
        );
        assert_eq!(
            RunOutcome::of(&report(9, 0, 1, 0)),
            RunOutcome::CompletedWithFailures
        );
        let mut off = report(10, 0, 0, 0);
        off.conservation_holds = false;
        assert_eq!(RunOutcome::of(&off), RunOutcome::CompletedWithFailures);

        // Every user rejected: no chunk.
        let mut none = report(0, 0, 0, 5);
        none.chunks = 0;
        none.submitted = 0;
        assert_eq!(RunOutcome::of(&none), RunOutcome::Refused);

        // Auth0 refused every request of the run.
        let mut refused = report(0, 0, 0, 0);
        refused.submitted = 0;
        refused.users_in = 10;
        refused.failed_at_auth0 = 10;
        refused.failed_by_code = BTreeMap::from([
            (codes::REQUEST_REFUSED.into(), 4),
            (codes::NOT_SUBMITTED.into(), 6),
        ]);
        assert_eq!(RunOutcome::of(&refused), RunOutcome::Refused);

        let mut canary = report(0, 0, 0, 0);
        canary.submitted = 0;
        canary.canaries = Some(CanaryReport {
            checked: 3,
            passed: 2,
            failed: 1,
            missing: 0,
            warn_only: false,
            blocked: true,
            results: vec![],
        });
        assert_eq!(RunOutcome::of(&canary), RunOutcome::CanaryFailed);
    }

    #[test]
    fn the_message_carries_counts_and_keys_but_no_user_data() {
        let mut r = report(8, 1, 1, 2);
        // User data the report may hold: an error's details, a canary's label.
        r.jobs.push(JobLine {
            seq: 1,
            job_id: "job_1".into(),
            status: "completed".into(),
            users: 10,
            inserted: 8,
            updated: 0,
            failed: 1,
            unknown: 1,
            duration_s: Some(3.0),
            details: Some("ana@example.com was a duplicate".into()),
            submitted_at_ms: None,
            finished_at_ms: None,
            slot: None,
        });
        r.canaries = Some(CanaryReport {
            checked: 1,
            passed: 0,
            failed: 1,
            missing: 0,
            warn_only: true,
            blocked: false,
            results: vec![CanaryResult {
                canary: "bob@example.com".into(),
                outcome: CanaryOutcome::Failed,
                reason: Some("x".into()),
                doctor: None,
                doctor_tried: None,
                input_index: None,
            }],
        });
        let m =
            RunEndMessage::from_report(&r, "inbox/con_AbCdEf0123456789/users.json", keys(), None);
        assert_eq!(m.outcome, RunOutcome::CompletedWithFailures);
        assert_eq!(
            (
                m.users_in,
                m.inserted,
                m.failed_at_auth0,
                m.unknown,
                m.rejected_before_submission
            ),
            (12, 8, 1, 1, 2)
        );
        assert_eq!(m.not_imported(), 4);
        assert_eq!(
            m.reports.report_html,
            "runs/users-json-0123456789abcdef/report.html"
        );
        let everything = format!("{}{}{}", m.sns_message(), m.subject(), m.text());
        assert!(!everything.contains("@example.com"), "{everything}");
        assert!(everything.contains("s3://b/runs/users-json-0123456789abcdef/report.csv"));
        assert!(m
            .subject()
            .contains("completed with failures (4 not imported)"));
    }

    #[test]
    fn a_final_report_names_its_own_source_and_keys() {
        let m = RunEndMessage::for_final_report(&report(10, 0, 0, 0), Some("b"));
        assert_eq!(m.source_key, "inbox/con_AbCdEf0123456789/users.json");
        assert_eq!(m.reports, keys());
    }

    #[test]
    fn the_sns_message_has_a_form_per_protocol() {
        let m = RunEndMessage::from_report(&report(10, 0, 0, 0), "inbox/c/u.json", keys(), None);
        let v: Value = serde_json::from_str(&m.sns_message()).unwrap();
        let machine: RunEndMessage = serde_json::from_str(v["default"].as_str().unwrap()).unwrap();
        assert_eq!(machine, m);
        assert_eq!(v["sqs"], v["default"]);
        assert!(v["email"]
            .as_str()
            .unwrap()
            .contains("Run users-json-0123456789abcdef completed."));
        let chat: Value = serde_json::from_str(v["https"].as_str().unwrap()).unwrap();
        assert_eq!(
            (chat["version"].as_str(), chat["source"].as_str()),
            (Some("1.0"), Some("custom"))
        );
        assert_eq!(chat["metadata"]["eventType"], "completed");
    }

    #[test]
    fn refusals_say_why_and_subjects_stay_short_ascii() {
        let m = RunEndMessage::refused_drop(
            "r",
            &format!("inbox/con_AbCdEf0123456789/{}é.json", "x".repeat(200)),
            120,
            &"the file ends inside a record ".repeat(30),
            keys(),
        );
        assert_eq!(m.outcome, RunOutcome::Refused);
        assert!(m.reason.as_ref().unwrap().chars().count() <= MAX_REASON_CHARS);
        let s = m.subject();
        assert!(
            s.len() <= MAX_SUBJECT_CHARS && s.is_ascii() && !s.contains('\n'),
            "{s}"
        );

        let mut refused = report(0, 0, 0, 0);
        refused.submitted = 0;
        refused.users_in = 4;
        refused.failed_at_auth0 = 4;
        refused.failed_by_code = BTreeMap::from([(codes::REQUEST_REFUSED.into(), 4)]);
        refused.jobs.push(JobLine {
            seq: 1,
            job_id: String::new(),
            status: "refused".into(),
            users: 4,
            inserted: 0,
            updated: 0,
            failed: 4,
            unknown: 0,
            duration_s: None,
            details: Some("Auth0 refused the request (400): The connection does not exist.".into()),
            submitted_at_ms: None,
            finished_at_ms: None,
            slot: None,
        });
        let m = RunEndMessage::from_report(&refused, "k", keys(), None);
        assert!(m.reason.unwrap().contains("connection does not exist"));
    }

    /// Runs a future that never waits (these notifiers do no I/O).
    fn ready<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("a local notifier waited"),
        }
    }

    #[test]
    fn local_notifiers_keep_or_drop() {
        let m = RunEndMessage::from_report(&report(1, 0, 0, 0), "k", keys(), None);
        let memory = MemoryNotifier::default();
        ready(memory.notify(&m)).unwrap();
        ready(NoNotifier.notify(&m)).unwrap();
        assert_eq!(memory.sent(), vec![m]);
    }
}
