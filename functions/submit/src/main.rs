//! Entry point of the `submit` Lambda: JSON logs, AWS clients, the cached Management API
//! client, and one handler for every trigger (S3 events and the schedule alike).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use submit::{activate_runs, ApiCache, Holder, SubmitTrigger, Submitter};

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_shell::lambda::init_json_logs();
    let config = submit::config_from_env()?;
    let sdk = aws_config::load_from_env().await;
    let ledger = aws_shell::ledger::s3_ledger(aws_shell::s3_client(&sdk), &config.bucket);
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let apis = ApiCache::default();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (config, ledger, secrets, apis) = (&config, &ledger, &secrets, &apis);
        async move {
            let deadline = aws_shell::lambda::deadline(event.context.deadline);
            // Runs are listed before the secret is read: a drop made before the secret is
            // filled is then picked up by the schedule once it is.
            let trigger = SubmitTrigger::of_event(&event.payload);
            activate_runs(ledger, &trigger).await?;
            let api = apis.get(secrets, &config.secret_id).await?;
            let submitter = Submitter {
                ledger,
                api: &api,
                config,
                holder: Holder {
                    name: event.context.request_id.clone(),
                    deadline_ms: Some(event.context.deadline),
                },
                deadline,
            };
            match submitter.run().await {
                Ok(report) => {
                    tracing::info!(
                        submitted = report.submitted.len(),
                        refused = report.refused_runs.len(),
                        in_doubt = report.in_doubt.len(),
                        released = report.released.len(),
                        slots_recovered = report.slots_recovered,
                        stopped = report.stopped,
                        "submit done"
                    );
                    Ok::<_, Error>(serde_json::to_value(report)?)
                }
                Err(e) => {
                    // A credentials problem is fixed in the secret: read it afresh next time.
                    apis.forget_if_refused(e.is_credentials()).await;
                    Err(Error::from(e))
                }
            }
        }
    }))
    .await
}
