//! The three functions wired as in AWS, on one machine: moto's bucket stands in for S3 with
//! its notifications (new objects become events for the function their key routes to), and
//! `tick` stands in for the EventBridge schedules (poll, and submit as a safety net).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_lambda_events::event::s3::S3Event;
use aws_shell::ledger::S3Ledger;
use aws_shell::secrets::ApiCache;
use import_core::layout;
use import_core::report::RunReport;
use poll::{PollConfig, PollReport, Poller};
use split::{SplitConfig, SplitResponse};
use submit::{SubmitConfig, SubmitReport, Submitter};

use crate::s3_put_event;

/// What one delivery or tick did, for logs and assertions.
#[derive(Debug, Default)]
pub struct Activity {
    pub split: Vec<SplitResponse>,
    pub submit: Vec<SubmitReport>,
    pub poll: Vec<PollReport>,
}

pub struct Pipeline {
    pub ledger: S3Ledger,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub apis: ApiCache,
    pub split: SplitConfig,
    pub submit: SubmitConfig,
    pub poll: PollConfig,
    /// Keys already announced: S3 notifies each new object once.
    seen: BTreeSet<String>,
    invocations: u64,
}

/// Where S3 notifications route a new key (the SAM template's event filters).
enum Route {
    Split,
    Submit,
    None,
}

fn route(key: &str, inbox: &str) -> Route {
    if key.starts_with(inbox) {
        Route::Split
    } else if key.starts_with(layout::RUNS_PREFIX)
        && (key.ends_with(layout::MANIFEST) || key.contains(&format!("/{}", layout::REPORTS_DIR)))
    {
        Route::Submit
    } else {
        Route::None
    }
}

impl Pipeline {
    pub fn new(
        ledger: S3Ledger,
        secrets: aws_sdk_secretsmanager::Client,
        split: SplitConfig,
        submit: SubmitConfig,
        poll: PollConfig,
    ) -> Self {
        Pipeline {
            ledger,
            secrets,
            apis: ApiCache::default(),
            split,
            submit,
            poll,
            seen: BTreeSet::new(),
            invocations: 0,
        }
    }

    fn invocation(&mut self, name: &str) -> String {
        self.invocations += 1;
        format!("{name}-{}", self.invocations)
    }

    /// Delivers an ObjectCreated event for every object that appeared since the last call.
    pub async fn deliver_events(&mut self) -> Result<Activity, String> {
        let mut activity = Activity::default();
        let listing = self.ledger.list("").await?;
        for (key, _) in listing {
            if !self.seen.insert(key.clone()) {
                continue;
            }
            let event = s3_put_event(&self.ledger.store.bucket, &key, 0, "");
            match route(&key, &self.split.inbox_prefix) {
                Route::Split => {
                    let event: S3Event =
                        serde_json::from_value(event).map_err(|e| e.to_string())?;
                    let client = self.ledger.store.client.clone();
                    activity
                        .split
                        .push(split::handle(&client, &self.split, event).await?);
                }
                Route::Submit => activity.submit.push(self.run_submit(&event).await?),
                Route::None => {}
            }
        }
        Ok(activity)
    }

    pub async fn run_submit(&mut self, event: &serde_json::Value) -> Result<SubmitReport, String> {
        let invocation = self.invocation("submit");
        let api = self.apis.get(&self.secrets, &self.submit.secret_id).await?;
        Submitter {
            ledger: &self.ledger,
            api: &api,
            config: &self.submit,
            invocation,
            deadline: Instant::now() + Duration::from_secs(60),
        }
        .run(event)
        .await
    }

    /// One poll invocation that sweeps once (its deadline leaves no time for a second sweep).
    pub async fn run_poll(&mut self) -> Result<PollReport, String> {
        let api = self.apis.get(&self.secrets, &self.poll.secret_id).await?;
        Poller {
            ledger: &self.ledger,
            api: &api,
            config: &self.poll,
            deadline: Instant::now() + Duration::from_secs(5),
        }
        .run()
        .await
    }

    /// The schedules fire: poll, then submit as the safety net, then the events they caused.
    pub async fn tick(&mut self) -> Result<Activity, String> {
        let poll = self.run_poll().await?;
        let submit = self
            .run_submit(
                &serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
            )
            .await?;
        let mut activity = self.deliver_events().await?;
        activity.poll.insert(0, poll);
        activity.submit.insert(0, submit);
        Ok(activity)
    }

    /// The run's final report, once poll has written it.
    pub async fn report(&self, run_id: &str) -> Result<Option<RunReport>, String> {
        let key = format!("{}{}", layout::run_prefix(run_id), poll::REPORT_JSON);
        Ok(self.ledger.get::<RunReport>(&key).await?.map(|v| v.value))
    }

    /// Delivers events and ticks the schedules (every `tick_every`) until the run's report
    /// exists. Fails past `timeout`.
    pub async fn run_to_report(
        &mut self,
        run_id: &str,
        tick_every: Duration,
        timeout: Duration,
    ) -> Result<RunReport, String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.tick().await?;
            if let Some(report) = self.report(run_id).await? {
                return Ok(report);
            }
            if Instant::now() > deadline {
                return Err(format!("run {run_id} has no report after {timeout:?}"));
            }
            // The schedule's period (a stand-in for EventBridge's rate), not a synchronisation.
            tokio::time::sleep(tick_every).await;
        }
    }
}
