//! The SNS adapter against moto's SNS: a run's end message is published to the topic with its
//! subject, a form per protocol and the attributes subscribers filter on; a topic that does not
//! exist is a refusal the caller can tell from an outage.

use aws_shell::notify::RunTopic;
use import_core::report::RunReport;
use import_core::run_end::{NotifyError, ReportKeys, RunEndMessage, RunNotifier, RunOutcome};
use integration::MotoServer;
use serde_json::{json, Value};

fn report() -> RunReport {
    serde_json::from_value(json!({
        "run_id": "users-json-0123456789abcdef",
        "source": {"kind": "s3", "bucket": "drops", "key": "inbox/con_AbCdEf0123456789/users.json", "etag": "e", "size": 10},
        "users_in": 12, "rejected_before_submission": 2, "rejected_by_code": {"INVALID_FORMAT": 2},
        "submitted": 10, "inserted": 9, "updated": 0, "failed_at_auth0": 1,
        "failed_by_code": {"DUPLICATED_USER": 1}, "unknown": 0,
        "identity": "users_in = rejected_before_submission + inserted + updated + failed_at_auth0 + unknown",
        "conservation_holds": true, "jobs": [], "chunks": 1, "failed_users_key": "failed-users.json"
    }))
    .unwrap()
}

/// What moto recorded for `topic_arn`: (message, subject, attributes) of each publish.
async fn sent(moto: &MotoServer, topic_arn: &str) -> Vec<(String, String, Value)> {
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", moto.endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
    let topic = topics
        .iter()
        .find(|t| t["arn"] == topic_arn)
        .unwrap_or_else(|| panic!("moto has no topic {topic_arn}: {data}"));
    topic["sent_notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n[1].as_str().unwrap().to_string(),
                n[2].as_str().unwrap_or_default().to_string(),
                n[3].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_end_message_is_published_to_the_topic() {
    let moto = MotoServer::start().unwrap();
    let sdk = moto.sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic_arn = sns
        .create_topic()
        .name("teststack-runs")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();

    let r = report();
    let message = RunEndMessage::from_report(
        &r,
        "inbox/con_AbCdEf0123456789/users.json",
        ReportKeys::for_run(Some("drops"), &r.run_id),
        None,
    );
    assert_eq!(message.outcome, RunOutcome::CompletedWithFailures);
    RunTopic::new(&sdk, Some(&topic_arn))
        .notify(&message)
        .await
        .unwrap();

    let sent = sent(&moto, &topic_arn).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (body, subject, attributes) = &sent[0];
    assert_eq!(subject, &message.subject());
    let forms: Value = serde_json::from_str(body).unwrap();
    let machine: RunEndMessage = serde_json::from_str(forms["default"].as_str().unwrap()).unwrap();
    assert_eq!(machine, message);
    assert!(forms["email"]
        .as_str()
        .unwrap()
        .contains("s3://drops/runs/users-json-0123456789abcdef/report.html"));
    let chat: Value = serde_json::from_str(forms["https"].as_str().unwrap()).unwrap();
    assert_eq!(chat["source"], "custom");
    assert_eq!(
        attributes["outcome"]["Value"].as_str(),
        Some("completed_with_failures"),
        "{attributes}"
    );
    assert_eq!(
        attributes["run_id"]["Value"].as_str(),
        Some("users-json-0123456789abcdef")
    );

    // No such topic: refused (fix the configuration), not "try again later".
    let missing = RunTopic::new(
        &sdk,
        Some("arn:aws:sns:us-east-1:123456789012:no-such-topic"),
    );
    match missing.notify(&message).await {
        Err(NotifyError::Refused(why)) => assert!(why.contains("no-such-topic"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // No topic configured: nothing is sent, nothing fails.
    RunTopic::new(&sdk, None).notify(&message).await.unwrap();
    RunTopic::new(&sdk, Some("  "))
        .notify(&message)
        .await
        .unwrap();
}
