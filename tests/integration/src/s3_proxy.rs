//! A loopback proxy in front of moto for one Lambda invocation: it counts the world's S3
//! writes and, at the write a test picks, kills the invocation the way SIGKILL would.
//!
//! Every invocation reaches S3 through its own proxy. At the kill point the proxy forwards the
//! write or not (`KillMode`), tells the harness, and from then on drops every request of that
//! invocation unanswered: nothing the invocation does after its death reaches the bucket, not
//! even from the upload tasks and blocking threads it started.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Whether the write at the kill point reaches S3 before the invocation dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillMode {
    /// The process dies before the request leaves.
    BeforeWrite,
    /// The write is stored; the process dies before it reads the answer.
    AfterWrite,
}

/// The world's S3 write counter and the one kill a scenario plans.
#[derive(Debug, Default)]
pub struct KillSwitch {
    writes: AtomicU64,
    /// 0: no kill planned; else the 1-based write that kills its invocation.
    kill_at: AtomicU64,
    after: AtomicBool,
    /// What the killed write was, for the scenario's record.
    killed: Mutex<Option<String>>,
}

impl KillSwitch {
    /// Kills the invocation making the `nth` S3 write from now on (counting from 1).
    pub fn plan(&self, nth: u64, mode: KillMode) {
        let base = self.writes.load(Ordering::SeqCst);
        self.after
            .store(mode == KillMode::AfterWrite, Ordering::SeqCst);
        self.kill_at.store(base + nth, Ordering::SeqCst);
    }

    /// S3 writes so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// The write that killed an invocation (method and path), once one did.
    pub fn killed(&self) -> Option<String> {
        self.killed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts a write; `Some(mode)` when it is the planned kill point.
    fn count_write(&self, what: &str) -> Option<KillMode> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n != self.kill_at.load(Ordering::SeqCst) {
            return None;
        }
        *self.killed.lock().unwrap_or_else(PoisonError::into_inner) = Some(what.to_string());
        Some(if self.after.load(Ordering::SeqCst) {
            KillMode::AfterWrite
        } else {
            KillMode::BeforeWrite
        })
    }
}

/// One invocation's way to S3.
pub struct S3Proxy {
    pub endpoint: String,
    dead: Arc<AtomicBool>,
    died: Arc<Notify>,
    server: JoinHandle<()>,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    switch: Arc<KillSwitch>,
    dead: Arc<AtomicBool>,
    died: Arc<Notify>,
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the invocation was killed")
    }
}

impl std::error::Error for Dropped {}

impl S3Proxy {
    pub async fn start(upstream: &str, switch: Arc<KillSwitch>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let dead = Arc::new(AtomicBool::new(false));
        let died = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            switch,
            dead: dead.clone(),
            died: died.clone(),
        });
        let server = crate::serve(listener, shared, forward);
        Ok(S3Proxy {
            endpoint,
            dead,
            died,
            server,
        })
    }

    /// Resolves once this invocation has been killed.
    pub async fn killed(&self) {
        loop {
            let notified = self.died.notified();
            if self.dead.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Kills the invocation from outside (Lambda's deadline): later requests are dropped.
    pub fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        self.died.notify_waiters();
    }
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        // Whatever the invocation left running (upload tasks, a blocking split thread) must
        // not reach S3 after the invocation ended.
        self.dead.store(true, Ordering::SeqCst);
        self.server.abort();
    }
}

async fn forward(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    if shared.dead.load(Ordering::SeqCst) {
        return Err(Dropped);
    }
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let is_write = matches!(parts.method.as_str(), "PUT" | "POST" | "DELETE");
    let kill = if is_write {
        shared
            .switch
            .count_write(&format!("{} {path}", parts.method))
    } else {
        None
    };
    let die = |shared: &Shared| {
        shared.dead.store(true, Ordering::SeqCst);
        shared.died.notify_waiters();
        Err(Dropped)
    };
    if kill == Some(KillMode::BeforeWrite) {
        return die(&shared);
    }
    let upstream = crate::upstream_request(&shared.http, &shared.upstream, &parts, &path);
    let answer = upstream.body(body).send().await.map_err(|_| Dropped)?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.map_err(|_| Dropped)?;
    if kill == Some(KillMode::AfterWrite) || shared.dead.load(Ordering::SeqCst) {
        return die(&shared);
    }
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "connection" | "content-length" | "transfer-encoding" | "keep-alive"
        ) {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(response)
}
