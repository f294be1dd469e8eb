//! The HTTP shell: routes requests to the tenant state, applies the Management API's check order,
//! rate-limit headers and faults, logs each request, and serves the `/__emulator/*` inspection API.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use import_core::multipart::AUTH0_MAX_REQUEST_BYTES;
use serde::Serialize;
use serde_json::{json, Value};

use crate::api_error::{
    ApiError, DELETE_USER_SCOPES, IMPORT_SCOPES, READ_CONNECTION_SCOPES, READ_JOB_SCOPES,
    READ_USER_SCOPES,
};
use crate::config::{EmulatorConfig, Faults};
use crate::exports::{parse_export_request, query_param, ExportJob, EXPIRED_XML};
use crate::form::parse_urlencoded;
use crate::import_request::{parse_import_request, peek_external_id};
use crate::jobs::{parse_users_file, Job, JobOutcome, JobView, NewJob, Plan, Timing};
use crate::randomness::{IdMint, SplitMix64};
use crate::rate_limit::TokenBucket;
use crate::tenant::Tenant;
use crate::timestamp::iso8601;
use crate::tokens::{TokenPolicy, TokenRequest, TokenStore};

/// Bodies of other endpoints are small; this only guards memory.
const SMALL_BODY_LIMIT: usize = 64 * 1024;
/// How much of an over-limit body we read and discard so the client sees the 413 instead of a
/// reset connection, and for how long.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// One request the emulator answered (the `/__emulator/*` inspection API is not logged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    /// Arrival, in milliseconds since the emulator started.
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The job created (import 202) or asked about (`/jobs/{id}`, `/jobs/{id}/errors`).
    pub job_id: Option<String>,
    /// The import request's `external_id` part, whatever the outcome.
    pub external_id: Option<String>,
    /// Users in the import request's file, when it is a JSON array of objects.
    pub users: Option<usize>,
    /// Jobs pending or processing right after this request was answered.
    pub active_jobs_after: usize,
}

/// Everything the tenant knows; one lock, never held across an await.
pub struct State {
    config: EmulatorConfig,
    faults: Faults,
    dice: SplitMix64,
    ids: IdMint,
    tokens: TokenStore,
    bucket: TokenBucket,
    jobs: Vec<Job>,
    exports: Vec<ExportJob>,
    tenant: Tenant,
    log: Vec<LoggedRequest>,
    epoch: Instant,
    audience: String,
    base_url: String,
}

pub type SharedState = Arc<Mutex<State>>;

pub fn lock(state: &SharedState) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves consistent-enough test state; keep serving.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    pub fn new(config: EmulatorConfig, base_url: &str) -> Self {
        let now = Instant::now();
        Self {
            faults: config.faults.clone(),
            dice: SplitMix64::new(config.faults.seed),
            ids: IdMint::new(config.faults.seed),
            tokens: TokenStore::default(),
            bucket: TokenBucket::new(config.rate_limit, now),
            jobs: Vec::new(),
            exports: Vec::new(),
            tenant: Tenant::default(),
            log: Vec::new(),
            epoch: now,
            audience: format!("{base_url}/api/v2/"),
            base_url: base_url.to_string(),
            config,
        }
    }

    pub fn set_faults(&mut self, faults: Faults) {
        self.dice = SplitMix64::new(faults.seed);
        self.faults = faults;
    }

    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log.clone()
    }

    pub fn users(&mut self) -> Vec<Value> {
        self.settle(Instant::now());
        self.tenant.users()
    }

    /// Seeds users into a connection (the first one when `connection_id` is None) without the
    /// import rules: a large tenant for benchmarks, in O(n).
    pub fn seed_users(&mut self, connection_id: Option<&str>, users: Vec<Value>) -> usize {
        let connection = match connection_id {
            Some(id) => self.config.connections.iter().find(|c| c.id == id),
            None => self.config.connections.first(),
        };
        let Some(connection) = connection.cloned() else {
            return 0;
        };
        let count = users.len();
        let now = iso8601(SystemTime::now());
        self.tenant.seed(users, &connection, &mut self.ids, &now);
        count
    }

    pub fn jobs(&mut self) -> Vec<JobView> {
        let now = Instant::now();
        self.settle(now);
        self.jobs
            .iter()
            .map(|job| job.view(now, self.epoch))
            .collect()
    }

    /// Finishes every job whose clock has run out, in the order they finish, so a job that ends
    /// earlier is applied to the tenant first (two racing jobs behave as on Auth0, facts §7.1).
    fn settle(&mut self, now: Instant) {
        let mut due: Vec<usize> = (0..self.jobs.len())
            .filter(|&i| self.jobs[i].outcome.is_none() && self.jobs[i].ends_at <= now)
            .collect();
        due.sort_by_key(|&i| (self.jobs[i].ends_at, i));
        for index in due {
            let job = &mut self.jobs[index];
            let outcome = match job.plan.take() {
                Some(Plan::Import(users)) => {
                    let finished_at = SystemTime::now()
                        .checked_sub(now.saturating_duration_since(job.ends_at))
                        .unwrap_or_else(SystemTime::now);
                    JobOutcome::Completed(self.tenant.import(
                        &users,
                        &job.connection,
                        job.upsert,
                        &mut self.ids,
                        &iso8601(finished_at),
                        self.faults.upsert_keeps_metadata,
                    ))
                }
                Some(Plan::Fail(details)) => JobOutcome::Failed(details),
                None => JobOutcome::Failed(crate::jobs::INJECTED_FAILURE),
            };
            job.outcome = Some(outcome);
        }
        // Exports read the tenant after the imports that ended before them.
        for export in &mut self.exports {
            if export.file.is_none() && export.ends_at <= now {
                let connection = export.request.connection.id.clone();
                export.complete(self.tenant.records_of(&connection));
            }
        }
    }

    fn active_jobs(&self) -> usize {
        self.jobs.iter().filter(|job| job.is_active()).count()
    }

    /// The tenant-wide gate every /api/v2 request passes after authentication: injected 429s,
    /// the token bucket, then injected 5xx.
    fn gate(&mut self, now: Instant) -> Result<(), ApiError> {
        if self.dice.chance(self.faults.extra_429_rate) {
            return Err(ApiError::GlobalRateLimit);
        }
        if !self.bucket.try_take(now) {
            return Err(ApiError::GlobalRateLimit);
        }
        if self.dice.chance(self.faults.error_5xx_rate) {
            return Err(if self.dice.next_u64().is_multiple_of(2) {
                ApiError::Internal
            } else {
                ApiError::Unavailable
            });
        }
        Ok(())
    }

    fn authorize(
        &self,
        header: Option<&str>,
        accepted: &'static [&'static str],
        now: Instant,
    ) -> Result<(), ApiError> {
        self.tokens.authorize(header, accepted, now)
    }
}

/// A response before it becomes HTTP, with what the request log needs.
struct Reply {
    status: u16,
    body: Option<Value>,
    job_id: Option<String>,
    external_id: Option<String>,
    users: Option<usize>,
    /// Drop the connection instead of answering (logged with status 0).
    hang_up: bool,
    /// A body that is not JSON (an export file, S3's XML), with its content type.
    raw: Option<(Bytes, &'static str)>,
}

/// The connection was dropped on purpose (`Faults::reset_after_body`): hyper closes it without
/// writing a response.
#[derive(Debug)]
pub struct HungUp;

impl std::fmt::Display for HungUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the emulator's fault switch")
    }
}

impl std::error::Error for HungUp {}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            job_id: None,
            external_id: None,
            users: None,
            hang_up: false,
            raw: None,
        }
    }

    fn empty(status: u16) -> Self {
        let mut reply = Self::json(status, Value::Null);
        reply.body = None;
        reply
    }

    fn error(error: &ApiError) -> Self {
        Self::json(error.status(), error.body())
    }

    fn with_job(mut self, job_id: &str) -> Self {
        self.job_id = Some(job_id.to_string());
        self
    }
}

pub async fn handle(
    state: SharedState,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, HungUp> {
    let arrived = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    if let Some(what) = path.strip_prefix("/__emulator/") {
        let what = what.to_string();
        return Ok(inspect(&state, &method, &what, request).await);
    }

    let is_management_api = path.starts_with("/api/v2/");
    let query = request.uri().query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let reply = match (&method, segments.as_slice()) {
        (&Method::POST, ["oauth", "token"]) => token(&state, request).await,
        (&Method::POST, ["api", "v2", "jobs", "users-imports"]) => {
            create_import(&state, request).await
        }
        (&Method::POST, ["api", "v2", "jobs", "users-exports"]) => {
            create_export(&state, request).await
        }
        (&Method::GET, ["api", "v2", "users-by-email"]) => users_by_email(&state, &request, &query),
        (&Method::DELETE, ["api", "v2", "users", id]) => delete_user(&state, &request, id),
        (&Method::GET, ["__exports", id, _file]) => download(&state, id, &query),
        (&Method::GET, ["api", "v2", "jobs", id]) => get_job(&state, &request, id, false),
        (&Method::GET, ["api", "v2", "jobs", id, "errors"]) => get_job(&state, &request, id, true),
        (&Method::GET, ["api", "v2", "connections", id]) => {
            get_connection(&state, &request, id, false)
        }
        (&Method::GET, ["api", "v2", "connections", id, "clients"]) => {
            get_connection(&state, &request, id, true)
        }
        _ => Reply::error(&ApiError::RouteNotFound),
    };

    let now = Instant::now();
    let (latency, rate_headers) = {
        let mut state = lock(&state);
        state.settle(now);
        let active = state.active_jobs();
        let at_ms = u64::try_from(arrived.saturating_duration_since(state.epoch).as_millis())
            .unwrap_or(u64::MAX);
        state.log.push(LoggedRequest {
            at_ms,
            method: method.to_string(),
            path: path.clone(),
            status: if reply.hang_up { 0 } else { reply.status },
            job_id: reply.job_id.clone(),
            external_id: reply.external_id.clone(),
            users: reply.users,
            active_jobs_after: active,
        });
        let headers = is_management_api.then(|| state.bucket.headers(now, SystemTime::now()));
        (state.faults.latency, headers)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if reply.hang_up {
        return Err(HungUp);
    }

    let mut response = match reply.raw {
        Some((bytes, content_type)) => {
            let mut response = Response::new(Full::new(bytes));
            *response.status_mut() =
                StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        None => http_response(reply.status, reply.body.as_ref()),
    };
    if let Some(limits) = rate_headers {
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", HeaderValue::from(limits.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(limits.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(limits.reset));
    }
    Ok(response)
}

fn http_response(status: u16, body: Option<&Value>) -> Response<Full<Bytes>> {
    let mut response = Response::new(match body {
        Some(body) => Full::new(Bytes::from(body.to_string())),
        None => Full::new(Bytes::new()),
    });
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if body.is_some() {
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    response
}

fn header(request: &Request<Incoming>, name: hyper::header::HeaderName) -> Option<&str> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyError {
    /// Larger than the limit (the rest was read and discarded).
    TooLarge,
    /// The connection broke mid-body.
    Broken,
}

/// Reads a whole body of at most `limit` bytes, counting what actually arrives (a chunked body
/// has no Content-Length to check up front).
async fn read_body(mut body: Incoming, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut data = Vec::new();
    loop {
        match body.frame().await {
            None => return Ok(data),
            Some(Err(_)) => return Err(BodyError::Broken),
            Some(Ok(frame)) => {
                if let Some(chunk) = frame.data_ref() {
                    if data.len() + chunk.len() > limit {
                        drain(body).await;
                        return Err(BodyError::TooLarge);
                    }
                    data.extend_from_slice(chunk);
                }
            }
        }
    }
}

/// Reads and discards the rest of an over-limit body (bounded in size and time), so the client
/// gets to read the 413 instead of a reset connection.
async fn drain(mut body: Incoming) {
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += data.len();
            }
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
}

async fn token(state: &SharedState, request: Request<Incoming>) -> Reply {
    let is_json = header(&request, CONTENT_TYPE).is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
    });
    let Ok(body) = read_body(request.into_body(), SMALL_BODY_LIMIT).await else {
        return Reply::json(
            400,
            json!({"error": "invalid_request", "error_description": "Invalid request body"}),
        );
    };
    let fields: Vec<(String, String)> = if is_json {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => map
                .into_iter()
                .filter_map(|(key, value)| value.as_str().map(|v| (key, v.to_string())))
                .collect(),
            _ => {
                return Reply::json(
                    400,
                    json!({"error": "invalid_request", "error_description": "Invalid request body"}),
                )
            }
        }
    } else {
        parse_urlencoded(&String::from_utf8_lossy(&body))
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let token_request = TokenRequest {
        grant_type: field("grant_type"),
        client_id: field("client_id"),
        client_secret: field("client_secret"),
        audience: field("audience"),
    };
    let mut guard = lock(state);
    let state = &mut *guard;
    if state.faults.token_endpoint_down {
        return Reply::json(
            503,
            json!({"error": "temporarily_unavailable", "error_description": "The token endpoint is down (emulator fault)"}),
        );
    }
    let policy = TokenPolicy {
        clients: &state.config.clients,
        audience: &state.audience,
        ttl: state.config.token_ttl,
        expire_after: state.faults.expire_tokens_after,
    };
    match state
        .tokens
        .issue(&token_request, &policy, &mut state.ids, Instant::now())
    {
        Ok(body) => Reply::json(200, body),
        Err(error) => Reply::json(error.status, error.body),
    }
}

async fn create_import(state: &SharedState, request: Request<Incoming>) -> Reply {
    let authorization = header(&request, AUTHORIZATION).map(str::to_string);
    let content_type = header(&request, CONTENT_TYPE).map(str::to_string);
    let declared_length =
        header(&request, CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
    {
        let state = lock(state);
        if let Err(error) = state.authorize(authorization.as_deref(), IMPORT_SCOPES, Instant::now())
        {
            return Reply::error(&error);
        }
    }
    // hapi compares Content-Length with the limit before reading the payload (facts §1.5).
    if declared_length.is_some_and(|length| length > AUTH0_MAX_REQUEST_BYTES as u64) {
        drain(request.into_body()).await;
        return Reply::error(&ApiError::PayloadTooLarge);
    }
    if let Err(error) = lock(state).gate(Instant::now()) {
        return Reply::error(&error);
    }
    let body = match read_body(request.into_body(), AUTH0_MAX_REQUEST_BYTES).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return Reply::error(&ApiError::PayloadTooLarge),
        Err(BodyError::Broken) => {
            return Reply::error(&ApiError::invalid_body(
                "Payload validation error: 'Invalid multipart payload format'.",
            ))
        }
    };

    let external_id = peek_external_id(content_type.as_deref(), &body);
    let mut guard = lock(state);
    let state = &mut *guard;
    if state.faults.reset_after_body > 0 && !state.faults.reset_creates_job {
        state.faults.reset_after_body -= 1;
        let mut reply = Reply::json(0, Value::Null);
        reply.hang_up = true;
        reply.external_id = external_id;
        return reply;
    }
    let parsed = parse_import_request(content_type.as_deref(), &body, &state.config.connections);
    let users = parsed
        .as_ref()
        .ok()
        .and_then(|request| parse_users_file(&request.users_file))
        .map(|users| users.len());
    let mut reply = match parsed {
        Err(error) => Reply::error(&error),
        Ok(import) => {
            let now = Instant::now();
            state.settle(now);
            let active = state.active_jobs();
            if active >= state.config.max_active_jobs {
                Reply::error(&ApiError::TooManyActiveJobs(active))
            } else {
                let inject_failure = state.faults.fail_next_jobs > 0;
                if inject_failure {
                    state.faults.fail_next_jobs -= 1;
                }
                let job = Job::new(
                    NewJob {
                        id: state.ids.job_id(),
                        connection: import.connection,
                        external_id: import.external_id,
                        upsert: import.upsert,
                        send_completion_email: import.send_completion_email,
                        users_file: import.users_file,
                        created_at: iso8601(SystemTime::now()),
                        inject_failure,
                    },
                    Timing {
                        base: state.config.job_base_time,
                        per_user: state.config.job_time_per_user,
                        timeout: state.config.job_timeout,
                    },
                    now,
                );
                let reply = after_creation(&mut state.faults, &job);
                state.jobs.push(job);
                reply
            }
        }
    };
    reply.external_id = external_id;
    reply.users = users;
    reply
}

/// The answer to an import post that created `job`, as the fault switches shape it: 202 with
/// the job, or a failure that hides the job's creation.
fn after_creation(faults: &mut Faults, job: &Job) -> Reply {
    if faults.reset_after_body > 0 {
        faults.reset_after_body -= 1;
        let mut reply = Reply::json(0, Value::Null).with_job(&job.id);
        reply.hang_up = true;
        return reply;
    }
    if faults.create_then_fail > 0 {
        faults.create_then_fail -= 1;
        let status = faults.after_create_status;
        let body = json!({"statusCode": status, "error": "Gateway Timeout", "message": "An invalid response was received from the upstream server"});
        return Reply::json(status, body).with_job(&job.id);
    }
    let mut body = job.created_body();
    if faults.accept_without_id > 0 {
        faults.accept_without_id -= 1;
        if let Some(fields) = body.as_object_mut() {
            fields.remove("id");
        }
    }
    Reply::json(202, body).with_job(&job.id)
}

fn get_job(state: &SharedState, request: &Request<Incoming>, id: &str, errors: bool) -> Reply {
    let now = Instant::now();
    let mut state = lock(state);
    if let Err(error) = state.authorize(header(request, AUTHORIZATION), READ_JOB_SCOPES, now) {
        return Reply::error(&error);
    }
    if let Some(status) = state.faults.job_reads_answer {
        let error = match status {
            401 => ApiError::InvalidToken,
            403 => ApiError::InsufficientScope(READ_JOB_SCOPES),
            _ if errors => ApiError::JobErrorsJobNotFound,
            _ => ApiError::JobNotFound,
        };
        return Reply::error(&error).with_job(id);
    }
    if let Err(error) = state.gate(now) {
        return Reply::error(&error);
    }
    state.settle(now);
    if !errors {
        if let Some(reply) = get_export(&mut state, id, now) {
            return reply.with_job(id);
        }
    }
    let Some(job) = state.jobs.iter().find(|job| job.id == id) else {
        let missing = if errors {
            ApiError::JobErrorsJobNotFound
        } else {
            ApiError::JobNotFound
        };
        return Reply::error(&missing).with_job(id);
    };
    let mut reply = if errors {
        let (status, body) = job.errors_reply(now);
        Reply {
            status,
            body,
            job_id: None,
            external_id: None,
            users: None,
            hang_up: false,
            raw: None,
        }
    } else {
        Reply::json(200, job.status_body(now))
    };
    reply.external_id = job.external_id.clone();
    reply.with_job(id)
}

/// `GET /api/v2/jobs/{id}` of an export job: a completed one carries a freshly minted
/// `location`, valid for `export_url_ttl`.
fn get_export(state: &mut State, id: &str, now: Instant) -> Option<Reply> {
    let mut ttl = state.config.export_url_ttl;
    let completed = state
        .exports
        .iter()
        .any(|job| job.id == id && job.file.is_some());
    if completed && state.faults.expire_next_links > 0 {
        state.faults.expire_next_links -= 1;
        ttl = Duration::ZERO;
    }
    let base_url = state.base_url.clone();
    let signature = state.ids.job_id();
    let export = state.exports.iter_mut().find(|job| job.id == id)?;
    let location = export.file.is_some().then(|| {
        export.signatures.insert(signature.clone(), now + ttl);
        let expires = SystemTime::now()
            .checked_add(ttl)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        format!(
            "{base_url}/__exports/{id}/emulator.json.gz?Expires={expires}&Signature={signature}"
        )
    });
    Some(Reply::json(200, export.status_body(now, location)))
}

async fn create_export(state: &SharedState, request: Request<Incoming>) -> Reply {
    let authorization = header(&request, AUTHORIZATION).map(str::to_string);
    let now = Instant::now();
    {
        let mut state = lock(state);
        if let Err(error) = state.authorize(authorization.as_deref(), READ_USER_SCOPES, now) {
            return Reply::error(&error);
        }
        if let Err(error) = state.gate(now) {
            return Reply::error(&error);
        }
    }
    let Ok(body) = read_body(request.into_body(), SMALL_BODY_LIMIT).await else {
        return Reply::error(&ApiError::invalid_body(
            "Payload validation error: 'Invalid JSON payload'.",
        ));
    };
    let mut guard = lock(state);
    let state = &mut *guard;
    let export = match parse_export_request(&body, &state.config.connections) {
        Ok(export) => export,
        Err(error) => return Reply::error(&error),
    };
    let users_now = state.tenant.count_of(&export.connection.id);
    let job = ExportJob::new(
        state.ids.job_id(),
        export,
        iso8601(SystemTime::now()),
        users_now,
        state.config.export_base_time,
        state.config.export_time_per_user,
        Instant::now(),
    );
    // Facts §6: 200, not 202.
    let reply = Reply::json(200, job.created_body()).with_job(&job.id);
    state.exports.push(job);
    reply
}

/// The presigned download of an export file (plays S3: no token, no rate-limit headers).
fn download(state: &SharedState, id: &str, query: &str) -> Reply {
    let now = Instant::now();
    let state = lock(state);
    let denied = || {
        let mut reply = Reply::empty(403);
        reply.raw = Some((
            Bytes::from_static(EXPIRED_XML.as_bytes()),
            "application/xml",
        ));
        reply
    };
    let Some(export) = state.exports.iter().find(|job| job.id == id) else {
        return denied();
    };
    let valid = query_param(query, "Signature")
        .and_then(|signature| export.signatures.get(&signature).copied())
        .is_some_and(|expires| now < expires);
    match (&export.file, valid) {
        (Some(file), true) => {
            let mut reply = Reply::empty(200);
            reply.raw = Some((file.clone(), "application/gzip"));
            reply.with_job(id)
        }
        _ => denied().with_job(id),
    }
}

fn users_by_email(state: &SharedState, request: &Request<Incoming>, query: &str) -> Reply {
    let now = Instant::now();
    let mut state = lock(state);
    if let Err(error) = state.authorize(header(request, AUTHORIZATION), READ_USER_SCOPES, now) {
        return Reply::error(&error);
    }
    if let Err(error) = state.gate(now) {
        return Reply::error(&error);
    }
    let Some(email) = query_param(query, "email") else {
        return Reply::error(&ApiError::BadRequest {
            message: "Query validation error: 'Missing required property: email' on property email (Email address to search for (case-sensitive)).".into(),
            error_code: Some("invalid_query_string"),
        });
    };
    state.settle(now);
    Reply::json(200, Value::Array(state.tenant.by_email(&email)))
}

/// `DELETE /api/v2/users/{id}`: 204 whether or not the user existed (Auth0's reference lists
/// no 404 for it; deleting twice is harmless, which is what makes rollback resumable).
fn delete_user(state: &SharedState, request: &Request<Incoming>, id: &str) -> Reply {
    let now = Instant::now();
    let mut state = lock(state);
    if let Err(error) = state.authorize(header(request, AUTHORIZATION), DELETE_USER_SCOPES, now) {
        return Reply::error(&error);
    }
    if let Err(error) = state.gate(now) {
        return Reply::error(&error);
    }
    state.settle(now);
    let user_id = crate::form::parse_urlencoded(&format!("id={id}"))
        .pop()
        .map_or_else(|| id.to_string(), |(_, value)| value);
    state.tenant.delete(&user_id);
    Reply::empty(204)
}

fn get_connection(
    state: &SharedState,
    request: &Request<Incoming>,
    id: &str,
    clients: bool,
) -> Reply {
    let now = Instant::now();
    let mut state = lock(state);
    if let Err(error) = state.authorize(header(request, AUTHORIZATION), READ_CONNECTION_SCOPES, now)
    {
        return Reply::error(&error);
    }
    if let Err(error) = state.gate(now) {
        return Reply::error(&error);
    }
    let config = &state.config;
    let Some(connection) = config.connections.iter().find(|c| c.id == id) else {
        return Reply::error(&ApiError::ConnectionNotFound);
    };
    let body = if clients {
        crate::connections::clients_body(connection, &config.clients)
    } else {
        crate::connections::connection_body(
            connection,
            &config.clients,
            config.omit_enabled_clients,
        )
    };
    Reply::json(200, body)
}

/// `/__emulator/{requests,users,jobs,faults}`: test and demo introspection, never rate limited.
async fn inspect(
    state: &SharedState,
    method: &Method,
    what: &str,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let to_json = |value: Result<Value, serde_json::Error>| match value {
        Ok(value) => http_response(200, Some(&value)),
        Err(error) => http_response(500, Some(&json!({ "error": error.to_string() }))),
    };
    match (method, what) {
        (&Method::GET, "requests") => to_json(serde_json::to_value(lock(state).requests())),
        (&Method::GET, "users") => to_json(Ok(Value::Array(lock(state).users()))),
        (&Method::GET, "jobs") => to_json(serde_json::to_value(lock(state).jobs())),
        (&Method::GET, "faults") => to_json(serde_json::to_value(lock(state).faults())),
        (&Method::PUT, "faults") => {
            let Ok(body) = read_body(request.into_body(), SMALL_BODY_LIMIT).await else {
                return http_response(400, Some(&json!({ "error": "body too large" })));
            };
            match serde_json::from_slice::<Faults>(&body) {
                Ok(faults) => {
                    lock(state).set_faults(faults.clone());
                    to_json(serde_json::to_value(faults))
                }
                Err(error) => http_response(400, Some(&json!({ "error": error.to_string() }))),
            }
        }
        _ => http_response(
            404,
            Some(&json!({ "error": "unknown inspection endpoint" })),
        ),
    }
}
