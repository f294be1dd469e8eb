//! A loopback proxy that counts what a benchmark's code asks of a service (S3 by request type,
//! Auth0 by endpoint), with when each kind was first and last asked, and passes answers through.
//!
//! Answers stream back as they arrive, so an object of a gigabyte costs the proxy a few pieces
//! in flight, not the object; request bodies are read whole first (the client library sends a
//! `Content-Length`, and the largest body a benchmark sends is a report file).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Names the kind of a request from its method and path-and-query.
pub type Classifier = fn(&Method, &str) -> String;

/// Requests of one kind since the counts were last taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindCount {
    pub requests: u64,
    /// Request and answer bodies together.
    pub bytes: u64,
    /// Milliseconds after the counts were last taken when the first request of this kind
    /// arrived and when the last one (or the last piece of its answer) went through: the span
    /// of a phase that makes only this kind of request.
    pub first_ms: u64,
    pub last_ms: u64,
}

/// The counts of one proxy, taken (and started again) between invocations.
#[derive(Debug)]
pub struct Counts {
    inner: Mutex<(Instant, BTreeMap<String, KindCount>)>,
}

impl KindCount {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests,
            "bytes": self.bytes,
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
        })
    }

    pub fn from_json(v: &serde_json::Value) -> Self {
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        KindCount {
            requests: n("requests"),
            bytes: n("bytes"),
            first_ms: n("first_ms"),
            last_ms: n("last_ms"),
        }
    }
}

impl Counts {
    fn new() -> Self {
        Counts {
            inner: Mutex::new((Instant::now(), BTreeMap::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Instant, BTreeMap<String, KindCount>)> {
        // Every update is a single insert or addition: a panic cannot leave it half done.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn request(&self, kind: &str, bytes: u64) {
        let mut guard = self.lock();
        let at = guard.0.elapsed().as_millis() as u64;
        let entry = guard
            .1
            .entry(kind.to_string())
            .or_insert_with(|| KindCount {
                first_ms: at,
                ..KindCount::default()
            });
        entry.requests += 1;
        entry.bytes += bytes;
        entry.last_ms = at;
    }

    /// A piece of an answer streamed back: the kind's span lasts until its answers end.
    fn answer_bytes(&self, kind: &str, bytes: u64) {
        let mut guard = self.lock();
        let at = guard.0.elapsed().as_millis() as u64;
        if let Some(entry) = guard.1.get_mut(kind) {
            entry.bytes += bytes;
            entry.last_ms = entry.last_ms.max(at);
        }
    }

    /// The counts so far; counting starts again from zero, its clock from now.
    pub fn take(&self) -> BTreeMap<String, KindCount> {
        let mut guard = self.lock();
        guard.0 = Instant::now();
        std::mem::take(&mut guard.1)
    }
}

pub struct CountingProxy {
    pub endpoint: String,
    pub counts: Arc<Counts>,
    server: JoinHandle<()>,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    counts: Arc<Counts>,
    classify: Classifier,
}

impl CountingProxy {
    pub async fn start(upstream: &str, classify: Classifier) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let counts = Arc::new(Counts::new());
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            // Redirects are the client's to follow, as they would be without the proxy.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            counts: counts.clone(),
            classify,
        });
        let server = crate::serve(listener, shared, forward);
        Ok(CountingProxy {
            endpoint,
            counts,
            server,
        })
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type ProxyBody = UnsyncBoxBody<Bytes, reqwest::Error>;

async fn forward(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> anyhow::Result<Response<ProxyBody>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let kind = (shared.classify)(&parts.method, &path);
    shared.counts.request(&kind, body.len() as u64);
    let upstream = crate::upstream_request(&shared.http, &shared.upstream, &parts, &path);
    let answer = upstream.body(body).send().await?;
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "connection" | "transfer-encoding" | "keep-alive"
        ) {
            response = response.header(name, value);
        }
    }
    let counts = shared.counts.clone();
    let pieces = futures_util::stream::unfold(Some(answer), move |answer| {
        let counts = counts.clone();
        let kind = kind.clone();
        async move {
            let mut answer = answer?;
            match answer.chunk().await {
                Ok(Some(piece)) => {
                    counts.answer_bytes(&kind, piece.len() as u64);
                    Some((Ok(Frame::data(piece)), Some(answer)))
                }
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    Ok(response.body(StreamBody::new(pieces).boxed_unsync())?)
}

/// What an object key is, for the counts: the run folder's kinds of object, else its name.
fn object_kind(path: &str) -> String {
    let key = path.split('?').next().unwrap_or(path);
    for (marker, kind) in [
        ("/reports/", "report"),
        ("/chunks/", "chunk"),
        ("/jobs/", "job"),
        ("/slots/", "slot"),
        ("/active-runs/", "active marker"),
        ("/reconcile-runs/", "reconcile marker"),
    ] {
        if key.contains(marker) {
            return kind.to_string();
        }
    }
    key.rsplit('/').next().unwrap_or(key).to_string()
}

/// S3 requests (path-style, `/<bucket>/<key>?<query>`) by type, and by the kind of object for
/// reads and writes: `GET report`, `PUT tagging`, `LIST`, `multipart part`, …
pub fn s3_kind(method: &Method, path: &str) -> String {
    let (target, query) = path.split_once('?').unwrap_or((path, ""));
    let has = |name: &str| {
        query
            .split('&')
            .any(|p| p == name || p.split_once('=').is_some_and(|(k, _)| k == name))
    };
    let bucket_only = target.trim_matches('/').split('/').count() <= 1;
    let multipart = if has("uploads") {
        Some("multipart create")
    } else if has("partNumber") {
        Some("multipart part")
    } else if has("uploadId") {
        Some(match *method {
            Method::DELETE => "multipart abort",
            Method::GET => "multipart list parts",
            _ => "multipart complete",
        })
    } else {
        None
    };
    if let Some(m) = multipart {
        return m.to_string();
    }
    match *method {
        Method::HEAD => "HEAD".into(),
        Method::GET if bucket_only => "LIST".into(),
        Method::GET if has("tagging") => "GET tagging".into(),
        Method::GET => format!("GET {}", object_kind(target)),
        Method::PUT if has("tagging") => "PUT tagging".into(),
        Method::PUT => format!("PUT {}", object_kind(target)),
        Method::POST if has("delete") => "DELETE (batch)".into(),
        Method::DELETE => format!("DELETE {}", object_kind(target)),
        _ => format!("{method} {}", object_kind(target)),
    }
}

/// Auth0 requests by endpoint, job ids left out.
pub fn auth0_kind(method: &Method, path: &str) -> String {
    let target = path.split('?').next().unwrap_or(path);
    let shape: Vec<&str> = target
        .split('/')
        .map(|segment| {
            if segment.starts_with("job_") {
                "{id}"
            } else {
                segment
            }
        })
        .collect();
    format!("{method} {}", shape.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_requests_are_named_by_type() {
        let get = Method::GET;
        let put = Method::PUT;
        assert_eq!(s3_kind(&get, "/b?list-type=2&prefix=runs%2F"), "LIST");
        assert_eq!(
            s3_kind(&get, "/b/runs/r/reports/000001.report.json"),
            "GET report"
        );
        assert_eq!(
            s3_kind(&get, "/b/runs/r/attempts/a/rejects.ndjson?x-id=GetObject"),
            "GET rejects.ndjson"
        );
        assert_eq!(
            s3_kind(&put, "/b/runs/r/attempts/a/chunks/000001.json?tagging"),
            "PUT tagging"
        );
        assert_eq!(
            s3_kind(&put, "/b/runs/r/report.csv?x-id=PutObject"),
            "PUT report.csv"
        );
        assert_eq!(s3_kind(&Method::POST, "/b/k?uploads"), "multipart create");
        assert_eq!(
            s3_kind(&put, "/b/k?partNumber=2&uploadId=abc"),
            "multipart part"
        );
        assert_eq!(
            s3_kind(&Method::POST, "/b/k?uploadId=abc"),
            "multipart complete"
        );
        assert_eq!(
            s3_kind(&Method::DELETE, "/b/active-runs/r.json"),
            "DELETE active marker"
        );
        assert_eq!(s3_kind(&Method::HEAD, "/b/k"), "HEAD");
    }

    #[test]
    fn auth0_requests_leave_job_ids_out() {
        assert_eq!(
            auth0_kind(&Method::GET, "/api/v2/jobs/job_abc123/errors"),
            "GET /api/v2/jobs/{id}/errors"
        );
    }
}
