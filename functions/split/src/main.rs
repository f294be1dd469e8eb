//! Entry point of the `split` Lambda: JSON logs, the S3 client, and the core's handler.
//! All behaviour lives in the library so tests run the same code.

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use split::{handle, CanarySecret, Invocation, SplitConfig};

/// mimalloc: the split stage allocates and frees a parsed tree per record on several threads,
/// where the system allocator was ~15% of the profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_shell::lambda::init_json_logs();
    let mut config = SplitConfig::from_env()?;
    let sdk = aws_config::load_from_env().await;
    let client = aws_shell::s3_client(&sdk);
    // Read here, in split's own crate: the template-vs-code check attributes env vars by crate.
    config.run_topic = Some(aws_shell::notify::RunTopic::new(
        &sdk,
        std::env::var("RUN_TOPIC_ARN").ok().as_deref(),
    ));
    // Canaries are checked only when the stack names their secret.
    config.canary_secret = std::env::var("CANARY_SECRET_ID")
        .ok()
        .filter(|id| !id.is_empty())
        .map(|secret_id| CanarySecret {
            client: aws_sdk_secretsmanager::Client::new(&sdk),
            secret_id,
        });
    lambda_runtime::run(service_fn(|event: LambdaEvent<S3Event>| {
        let (client, config) = (&client, &config);
        async move {
            let invocation = Invocation {
                request_id: event.context.request_id.clone(),
                deadline_ms: Some(event.context.deadline),
            };
            handle(client, config, &invocation, event.payload)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
