//! The project's model of Auth0: `/oauth/token` and the three bulk-import job endpoints with the
//! documented limits, status codes, bodies and rate-limit headers, plus fault switches for tests.
//!
//! Where facts/import-api-facts.md leaves a point open, the choice is documented in the module that
//! makes it (`api_error`, `import_request`, `jobs`, `tenant`, `tokens`). The check order of an
//! import request: Bearer token → scope → Content-Length > 512000 (413, before reading) → tenant
//! gate (injected 429, token bucket 429, injected 5xx) → body read (413 if it overflows) →
//! multipart checks (400) → concurrency cap (429) → 202.
//!
//! Also `GET /api/v2/connections/{id}` and its `/clients` (scope `read:connections`), which
//! `plan` reads to check a connection before any job is created.
//!
//! Also user exports (`POST /api/v2/jobs/users-exports`, followed through `GET /jobs/{id}` and
//! downloaded from a presigned-style `location` served under `/__exports/`), `GET
//! /api/v2/users-by-email` and `DELETE /api/v2/users/{id}` (see `exports`, `tenant`).
//!
//! Inspection API (not rate limited, not logged): `GET /__emulator/requests`, `/__emulator/users`,
//! `/__emulator/jobs`, `/__emulator/faults`, and `PUT /__emulator/faults` with a `Faults` body.

mod api_error;
mod config;
mod connections;
mod exports;
mod form;
mod import_request;
mod jobs;
mod randomness;
mod rate_limit;
mod server;
mod tenant;
mod timestamp;
mod tokens;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

pub use config::{
    ClientConfig, ConnectionConfig, ConnectionKind, EmulatorConfig, Faults, RateLimit,
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_CONNECTION_ID, DEFAULT_CONNECTION_NAME,
};
pub use jobs::{JobStatus, JobView};
pub use server::LoggedRequest;
pub use tenant::Summary;

use server::{lock, SharedState, State};

/// A running emulator on a loopback port. Stops on `shutdown` or when dropped.
pub struct Emulator {
    state: SharedState,
    base_url: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on the given address (port 0 picks a free one).
    pub async fn start_on(
        config: EmulatorConfig,
        address: SocketAddr,
    ) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(address).await?;
        let local = listener.local_addr()?;
        let base_url = format!("http://{local}");
        let state: SharedState = Arc::new(Mutex::new(State::new(config, &base_url)));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let serving = state.clone();
        let server = tokio::spawn(async move {
            // Dropping the set when the loop ends aborts every open connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let state = serving.clone();
                        connections.spawn(async move {
                            let service = service_fn(move |request| server::handle(state.clone(), request));
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Emulator {
            state,
            base_url,
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:PORT`; the emulator plays the tenant domain, so the token audience is
    /// `{base_url}/api/v2/`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The audience `/oauth/token` accepts.
    pub fn audience(&self) -> String {
        format!("{}/api/v2/", self.base_url)
    }

    /// Replaces the fault switches (and restarts their random generator from `faults.seed`).
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state).set_faults(faults);
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.state).requests()
    }

    /// The tenant's users, secrets masked.
    pub fn users(&self) -> Vec<serde_json::Value> {
        lock(&self.state).users()
    }

    /// Adds users to a connection (the first when None) without the import rules, in O(n):
    /// a large tenant for benchmarks. Returns how many were added.
    pub fn seed_users(&self, connection_id: Option<&str>, users: Vec<serde_json::Value>) -> usize {
        lock(&self.state).seed_users(connection_id, users)
    }

    pub fn jobs(&self) -> Vec<JobView> {
        lock(&self.state).jobs()
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
