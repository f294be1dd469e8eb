//! Entry point of the `poll` Lambda: JSON logs, AWS clients, the cached Management API client,
//! and the sweep loop, bounded by the invocation's own deadline.

use aws_shell::notify::RunTopic;
use aws_shell::secrets::ApiCache;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use poll::Poller;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_shell::lambda::init_json_logs();
    let config = poll::config_from_env()?;
    let sdk = aws_config::load_from_env().await;
    let ledger = aws_shell::ledger::s3_ledger(aws_shell::s3_client(&sdk), &config.bucket);
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let apis = ApiCache::default();
    // Read here, in poll's own crate: the template-vs-code check attributes env vars by crate.
    let topic = RunTopic::new(&sdk, std::env::var("RUN_TOPIC_ARN").ok().as_deref());
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (config, ledger, secrets, apis, topic) = (&config, &ledger, &secrets, &apis, &topic);
        async move {
            let deadline = aws_shell::lambda::deadline(event.context.deadline);
            let api = apis.get(secrets, &config.secret_id).await?;
            let poller = Poller {
                ledger,
                api: &api,
                config,
                notifier: topic,
                deadline,
            };
            match poller.run().await {
                Ok(report) => {
                    tracing::info!(
                        sweeps = report.sweeps,
                        chunks_reported = report.chunks_reported.len(),
                        runs_finalized = report.runs_finalized.len(),
                        active_jobs_left = report.active_jobs_left,
                        "poll done"
                    );
                    Ok::<_, Error>(serde_json::to_value(report)?)
                }
                Err(e) => {
                    apis.forget_if_refused(e.is_credentials()).await;
                    Err(Error::from(e))
                }
            }
        }
    }))
    .await
}
