//! The three functions run the way Lambda runs them, on one machine: moto's bucket stands in
//! for S3 and its notifications (each new object version becomes an event for the function its
//! key routes to, delivered `Delivery::copies` times, concurrently, as S3's at-least-once
//! delivery allows), each invocation gets a request id, a deadline and Lambda's two retries of
//! a failed asynchronous invocation (with the same request id), and `tick` stands in for the
//! EventBridge schedules. Every invocation reaches S3 through its own `S3Proxy`, so a test can
//! kill any invocation at any S3 write, as SIGKILL would.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_shell::ledger::{s3_ledger, S3Ledger};
use aws_shell::secrets::ApiCache;
use futures_util::future::join_all;
use import_core::layout::{self, RunPath};
use import_core::ledger::Holder;
use import_core::report::RunReport;
use import_core::run_end::MemoryNotifier;
use poll::{PollConfig, PollReport, Poller};
use split::{DroppedObject, Invocation, RecordOutcome, SplitConfig};
use submit::{activate_runs, SubmitConfig, SubmitReport, SubmitTrigger, Submitter};

use crate::s3_proxy::{KillSwitch, S3Proxy};

/// How S3 hands each new object to its function.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// Deliveries of each event (S3 delivers at least once, and sometimes twice).
    pub copies: usize,
    /// Whether the copies run at the same time (reserved concurrency 2 allows it).
    pub concurrent: bool,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            copies: 2,
            concurrent: true,
        }
    }
}

/// The functions' timeouts in the test world (Lambda kills an invocation at its deadline).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub split: Duration,
    pub submit: Duration,
    pub poll: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            split: Duration::from_secs(60),
            submit: Duration::from_secs(60),
            // One sweep per invocation: poll keeps 15 s back from its deadline.
            poll: Duration::from_secs(5),
        }
    }
}

/// The function an invocation ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Split,
    Submit,
    Poll,
}

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Ok,
    /// The handler returned an error (Lambda retries it).
    Failed(String),
    /// Killed: at a planned S3 write, or at its deadline (Lambda retries it too).
    Killed,
}

/// One invocation, for the scenario's record.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub function: Function,
    pub request_id: String,
    pub attempt: u32,
    pub ended: Ended,
}

/// What the world's event deliveries and ticks produced.
#[derive(Debug, Default)]
pub struct Activity {
    pub split: Vec<RecordOutcome>,
    pub submit: Vec<SubmitReport>,
    pub poll: Vec<PollReport>,
}

impl Activity {
    fn absorb(&mut self, other: Activity) {
        self.split.extend(other.split);
        self.submit.extend(other.submit);
        self.poll.extend(other.poll);
    }
}

/// An event for one function.
#[derive(Debug, Clone)]
enum Event {
    Split(DroppedObject),
    Submit(SubmitTrigger),
    Poll,
}

/// What one invocation's handler returns.
enum Output {
    Split(RecordOutcome),
    Submit(SubmitReport),
    Poll(PollReport),
}

pub struct Pipeline {
    /// The bucket, read directly (not through a proxy), for the test's own checks.
    pub ledger: S3Ledger,
    sdk: aws_config::SdkConfig,
    moto_endpoint: String,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// One per function, kept across invocations as a warm container keeps it.
    submit_apis: ApiCache,
    poll_apis: ApiCache,
    pub split: SplitConfig,
    pub submit: SubmitConfig,
    pub poll: PollConfig,
    pub delivery: Delivery,
    pub timeouts: Timeouts,
    /// Extra poll invocations per tick (the schedule fires while an earlier one still runs).
    pub overlapping_polls: usize,
    pub kills: Arc<KillSwitch>,
    /// What the functions told the run topic, in order.
    pub notifier: MemoryNotifier,
    /// Object versions already announced: S3 notifies each new version once (then maybe again).
    seen: Mutex<BTreeSet<(String, String)>>,
    invocations: AtomicU64,
    log: Mutex<Vec<Invoked>>,
}

/// Where S3 notifications route a new key (the SAM template's event filters).
fn route(key: &str, inbox: &str) -> Option<Function> {
    if key.starts_with(inbox) {
        Some(Function::Split)
    } else if key.starts_with(layout::RUNS_PREFIX)
        && (key.ends_with(layout::MANIFEST) || key.ends_with(layout::REPORT_SUFFIX))
    {
        Some(Function::Submit)
    } else {
        None
    }
}

/// Lambda's retries of a failed asynchronous invocation.
const RETRIES: u32 = 2;

impl Pipeline {
    pub fn new(
        sdk: aws_config::SdkConfig,
        secrets: aws_sdk_secretsmanager::Client,
        split: SplitConfig,
        submit: SubmitConfig,
        poll: PollConfig,
    ) -> Self {
        let moto_endpoint = sdk.endpoint_url().unwrap_or_default().to_string();
        let ledger = s3_ledger(aws_shell::s3_client(&sdk), &submit.bucket);
        Pipeline {
            ledger,
            sdk,
            moto_endpoint,
            secrets,
            submit_apis: ApiCache::default(),
            poll_apis: ApiCache::default(),
            split,
            submit,
            poll,
            delivery: Delivery::default(),
            timeouts: Timeouts::default(),
            overlapping_polls: 0,
            kills: Arc::new(KillSwitch::default()),
            notifier: MemoryNotifier::default(),
            seen: Mutex::new(BTreeSet::new()),
            invocations: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.submit.bucket
    }

    /// Every invocation so far.
    pub fn invocations(&self) -> Vec<Invoked> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Events whose every attempt failed: what Lambda would send to the dead-letter queue.
    pub fn dead_letters(&self) -> Vec<String> {
        let log = self.invocations();
        log.iter()
            .filter(|i| i.attempt == RETRIES && i.ended != Ended::Ok)
            .map(|i| format!("{:?} {}: {:?}", i.function, i.request_id, i.ended))
            .collect()
    }

    fn next_request_id(&self, function: Function) -> String {
        let n = self.invocations.fetch_add(1, Ordering::SeqCst) + 1;
        format!("{function:?}-{n}").to_lowercase()
    }

    /// Delivers every object version that appeared since the last call to its function, each
    /// as S3 would: `delivery.copies` times, concurrently or one after the other.
    pub async fn deliver_events(&self) -> Result<Activity, String> {
        let mut activity = Activity::default();
        let mut events = Vec::new();
        for (key, version_id, etag, size) in self.new_versions().await? {
            match route(&key, &self.split.inbox_prefix) {
                Some(Function::Split) => events.push(Event::Split(DroppedObject {
                    bucket: self.bucket().to_string(),
                    key,
                    version_id,
                    etag: Some(etag),
                    size: Some(size),
                })),
                Some(Function::Submit) => {
                    let record = serde_json::json!({"Records": [{"s3": {"object": {"key": key}}}]});
                    events.push(Event::Submit(SubmitTrigger::of_event(&record)));
                }
                _ => {}
            }
        }
        for event in events {
            let copies = (0..self.delivery.copies.max(1)).map(|_| self.deliver(event.clone()));
            let outputs = if self.delivery.concurrent {
                join_all(copies).await
            } else {
                let mut outputs = Vec::new();
                for copy in copies {
                    outputs.push(copy.await);
                }
                outputs
            };
            for output in outputs {
                activity.absorb(output);
            }
        }
        Ok(activity)
    }

    /// Object versions not announced yet: (key, version id, ETag, size).
    async fn new_versions(&self) -> Result<Vec<(String, Option<String>, String, u64)>, String> {
        let client = &self.ledger.store.client;
        let mut out = Vec::new();
        let mut found = Vec::new();
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let page = client
                .list_object_versions()
                .bucket(self.bucket())
                .set_key_marker(markers.0.take())
                .set_version_id_marker(markers.1.take())
                .send()
                .await
                .map_err(|e| aws_shell::describe(&e))?;
            for v in page.versions() {
                found.push((
                    v.key().unwrap_or_default().to_string(),
                    v.version_id().map(str::to_string),
                    v.e_tag().unwrap_or_default().to_string(),
                    v.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                ));
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            markers = (
                page.next_key_marker().map(str::to_string),
                page.next_version_id_marker().map(str::to_string),
            );
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, version, etag, size) in found {
            let id = (key.clone(), version.clone().unwrap_or_else(|| etag.clone()));
            if seen.insert(id) {
                out.push((key, version, etag, size));
            }
        }
        Ok(out)
    }

    /// One delivery of an event: an invocation, and Lambda's retries (same request id) while
    /// it fails or is killed.
    async fn deliver(&self, event: Event) -> Activity {
        let function = match event {
            Event::Split(_) => Function::Split,
            Event::Submit(_) => Function::Submit,
            Event::Poll => Function::Poll,
        };
        let request_id = self.next_request_id(function);
        let mut activity = Activity::default();
        for attempt in 0..=RETRIES {
            let (ended, output) = Box::pin(self.invoke(function, &request_id, &event)).await;
            self.log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Invoked {
                    function,
                    request_id: request_id.clone(),
                    attempt,
                    ended: ended.clone(),
                });
            match output {
                Some(Output::Split(o)) => activity.split.push(o),
                Some(Output::Submit(r)) => activity.submit.push(r),
                Some(Output::Poll(r)) => activity.poll.push(r),
                None => {}
            }
            if ended == Ended::Ok {
                break;
            }
        }
        activity
    }

    /// Runs one invocation behind its own proxy, until it returns, is killed at a planned
    /// write, or reaches its deadline.
    async fn invoke(
        &self,
        function: Function,
        request_id: &str,
        event: &Event,
    ) -> (Ended, Option<Output>) {
        let proxy = match S3Proxy::start(&self.moto_endpoint, self.kills.clone()).await {
            Ok(proxy) => proxy,
            Err(e) => return (Ended::Failed(format!("proxy: {e}")), None),
        };
        let sdk = self.sdk.to_builder().endpoint_url(&proxy.endpoint).build();
        let client = aws_shell::s3_client(&sdk);
        let timeout = match function {
            Function::Split => self.timeouts.split,
            Function::Submit => self.timeouts.submit,
            Function::Poll => self.timeouts.poll,
        };
        let deadline = Instant::now() + timeout;
        let deadline_ms =
            auth0_api::unix_now_ms() + u64::try_from(timeout.as_millis()).unwrap_or(0);
        // Boxed: a handler's future is large, and several run nested in one tick.
        let handler = Box::pin(self.handler(event, client, request_id, deadline, deadline_ms));
        let ended = race(handler, &proxy, timeout).await;
        drop(proxy);
        ended
    }

    async fn handler(
        &self,
        event: &Event,
        client: aws_sdk_s3::Client,
        request_id: &str,
        deadline: Instant,
        deadline_ms: u64,
    ) -> Result<Output, String> {
        {
            match event {
                Event::Split(object) => {
                    let invocation = Invocation {
                        request_id: request_id.to_string(),
                        deadline_ms: Some(deadline_ms),
                    };
                    split::split_object(&client, &self.split, &invocation, object)
                        .await
                        .map(Output::Split)
                        .map_err(|e| e.to_string())
                }
                Event::Submit(trigger) => {
                    let ledger = s3_ledger(client, self.bucket());
                    activate_runs(&ledger, trigger)
                        .await
                        .map_err(|e| e.to_string())?;
                    let api = self
                        .submit_apis
                        .get(&self.secrets, &self.submit.secret_id)
                        .await?;
                    let submitter = Submitter {
                        ledger: &ledger,
                        api: &api,
                        config: &self.submit,
                        holder: Holder {
                            name: request_id.to_string(),
                            deadline_ms: Some(deadline_ms),
                        },
                        deadline,
                    };
                    match submitter.run().await {
                        Ok(report) => Ok(Output::Submit(report)),
                        Err(e) => {
                            self.submit_apis.forget_if_refused(e.is_credentials()).await;
                            Err(e.to_string())
                        }
                    }
                }
                Event::Poll => {
                    let ledger = s3_ledger(client, self.bucket());
                    let api = self
                        .poll_apis
                        .get(&self.secrets, &self.poll.secret_id)
                        .await?;
                    let poller = Poller {
                        ledger: &ledger,
                        api: &api,
                        config: &self.poll,
                        notifier: &self.notifier,
                        deadline,
                    };
                    match poller.run().await {
                        Ok(report) => Ok(Output::Poll(report)),
                        Err(e) => {
                            self.poll_apis.forget_if_refused(e.is_credentials()).await;
                            Err(e.to_string())
                        }
                    }
                }
            }
        }
    }

    /// The schedules fire: poll (with `overlapping_polls` more at once), then submit as the
    /// safety net, then the events they caused.
    pub async fn tick(&self) -> Result<Activity, String> {
        let polls = (0..=self.overlapping_polls).map(|_| self.deliver(Event::Poll));
        let mut activity = Activity::default();
        for a in join_all(polls).await {
            activity.absorb(a);
        }
        activity.absorb(self.deliver(Event::Submit(SubmitTrigger::Refill)).await);
        activity.absorb(self.deliver_events().await?);
        Ok(activity)
    }

    /// One scheduled poll invocation, alone.
    pub async fn run_poll(&self) -> Activity {
        self.deliver(Event::Poll).await
    }

    /// One submit invocation for `trigger`, alone.
    pub async fn run_submit(&self, trigger: SubmitTrigger) -> Activity {
        self.deliver(Event::Submit(trigger)).await
    }

    /// What the schedules would find `by` from now: claims and slot leases whose holders'
    /// deadlines will have passed are settled now. A test's stand-in for waiting out a killed
    /// invocation's deadline (minutes in AWS).
    pub async fn recover_as_if_later(&self, by: Duration) -> Result<u32, String> {
        let later = auth0_api::unix_now_ms() + u64::try_from(by.as_millis()).unwrap_or(0);
        self.ledger
            .recover_slots(self.submit.slots, later)
            .await
            .map_err(|e| e.to_string())
    }

    /// The run's final report, once poll has written it.
    pub async fn report(&self, run_id: &str) -> Result<Option<RunReport>, String> {
        let key = RunPath::new(run_id).report_json();
        Ok(self
            .ledger
            .get::<RunReport>(&key)
            .await
            .map_err(|e| e.to_string())?
            .map(|v| v.value))
    }

    /// Delivers events and ticks the schedules (every `tick_every`) until the run's report
    /// exists. Every 20 ticks the clock is moved on past any killed invocation's deadline
    /// (`recover_as_if_later`). Fails past `timeout`.
    pub async fn run_to_report(
        &self,
        run_id: &str,
        tick_every: Duration,
        timeout: Duration,
    ) -> Result<RunReport, String> {
        let deadline = Instant::now() + timeout;
        let mut ticks = 0u32;
        loop {
            self.tick().await?;
            ticks += 1;
            if let Some(report) = self.report(run_id).await? {
                return Ok(report);
            }
            if ticks.is_multiple_of(20) {
                self.recover_as_if_later(self.timeouts.submit * 2).await?;
            }
            if Instant::now() > deadline {
                return Err(format!("run {run_id} has no report after {timeout:?}"));
            }
            // The schedule's period (a stand-in for EventBridge's rate), not a synchronisation.
            tokio::time::sleep(tick_every).await;
        }
    }
}

/// Runs `handler` until it ends, its invocation is killed at a write, or its deadline passes.
async fn race(
    handler: impl Future<Output = Result<Output, String>>,
    proxy: &S3Proxy,
    timeout: Duration,
) -> (Ended, Option<Output>) {
    tokio::select! {
        result = handler => match result {
            Ok(output) => (Ended::Ok, Some(output)),
            Err(e) => (Ended::Failed(e), None),
        },
        () = proxy.killed() => (Ended::Killed, None),
        () = tokio::time::sleep(timeout) => {
            proxy.kill();
            (Ended::Killed, None)
        }
    }
}
