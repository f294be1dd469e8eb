//! Run-end notifications: the core's `RunEndMessage` published to the stack's SNS topic, one
//! form per protocol (text for e-mail, the chat format for Slack, JSON for queues), plus a
//! log-only notifier for when no topic is configured.

use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use import_core::run_end::{NotifyError, RunEndMessage, RunNotifier};

/// The environment variable naming the topic in the functions that publish (poll and split),
/// set by the template to the `RunTopic` ARN.
pub const RUN_TOPIC_ENV: &str = "RUN_TOPIC_ARN";

/// Publishes to one SNS topic.
#[derive(Clone, Debug)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(config: &aws_config::SdkConfig, topic_arn: impl Into<String>) -> Self {
        SnsNotifier {
            client: aws_sdk_sns::Client::new(config),
            topic_arn: topic_arn.into(),
        }
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
}

/// A String message attribute: subscribers filter on these (e.g. only failures to a pager).
fn attribute(value: &str) -> Result<MessageAttributeValue, NotifyError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| NotifyError::Refused(e.to_string()))
}

impl RunNotifier for SnsNotifier {
    async fn notify(&self, message: &RunEndMessage) -> Result<(), NotifyError> {
        let sent = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(message.subject())
            .message_structure("json")
            .message(message.sns_message())
            .message_attributes("outcome", attribute(message.outcome.as_str())?)
            .message_attributes("run_id", attribute(&message.run_id)?)
            .send()
            .await;
        match sent {
            Ok(out) => {
                tracing::info!(
                    run_id = message.run_id,
                    outcome = message.outcome.as_str(),
                    message_id = out.message_id().unwrap_or_default(),
                    "run-end notification published"
                );
                Ok(())
            }
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let text = match &e {
                    SdkError::ServiceError(se) => format!(
                        "SNS publish to {}: {}: {}",
                        self.topic_arn,
                        se.err().code().unwrap_or("error"),
                        se.err().message().unwrap_or("no message")
                    ),
                    other => format!("SNS publish to {}: {other}", self.topic_arn),
                };
                match status {
                    // 4xx but throttling: the request itself is refused (permission, topic, KMS).
                    Some(400..=499) if e.code() != Some("Throttled") => {
                        Err(NotifyError::Refused(text))
                    }
                    _ => Err(NotifyError::Unavailable(text)),
                }
            }
        }
    }
}

/// No topic: the subject goes to the log only (the CLI, a stack deployed without a topic).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogNotifier;

impl RunNotifier for LogNotifier {
    async fn notify(&self, message: &RunEndMessage) -> Result<(), NotifyError> {
        tracing::info!(
            run_id = message.run_id,
            outcome = message.outcome.as_str(),
            not_imported = message.not_imported(),
            "{}",
            message.subject()
        );
        Ok(())
    }
}

/// The topic when one is configured, else the log: what a function's entry point builds from
/// its environment (`RUN_TOPIC_ENV`), so its handler takes one concrete notifier.
#[derive(Clone, Debug)]
pub enum RunTopic {
    Sns(SnsNotifier),
    LogOnly,
}

impl RunTopic {
    /// `topic_arn` as read from `RUN_TOPIC_ENV` (empty or absent: log only).
    pub fn new(config: &aws_config::SdkConfig, topic_arn: Option<&str>) -> RunTopic {
        match topic_arn.map(str::trim).filter(|a| !a.is_empty()) {
            Some(arn) => RunTopic::Sns(SnsNotifier::new(config, arn)),
            None => RunTopic::LogOnly,
        }
    }
}

impl RunNotifier for RunTopic {
    async fn notify(&self, message: &RunEndMessage) -> Result<(), NotifyError> {
        match self {
            RunTopic::Sns(sns) => sns.notify(message).await,
            RunTopic::LogOnly => LogNotifier.notify(message).await,
        }
    }
}
