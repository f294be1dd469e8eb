//! A minimal HTTP/1 client over hyper and the steps every emulator test repeats: get a token,
//! submit an import the way our submit does, poll a job until a status with a deadline.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use auth0_emulator::{Emulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_CONNECTION_ID};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request};
use hyper_util::rt::TokioIo;
use import_core::multipart::{content_type, encode, ImportFields};
use serde_json::{json, Value};
use tokio::net::TcpStream;

pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

/// One request on a fresh connection.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    try_send(method, url, headers, body)
        .await
        .expect("an answer")
}

/// `send`, where a connection dropped without an answer is an `Err`.
pub async fn try_send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Answer, String> {
    let uri: hyper::Uri = url.parse().unwrap();
    let authority = uri.authority().unwrap().clone();
    let stream = TcpStream::connect(authority.as_str()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(uri.path_and_query().unwrap().as_str())
        .header("host", authority.as_str());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(body.into())).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

pub async fn get(url: &str, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    send(Method::GET, url, &[("authorization", &auth)], Bytes::new()).await
}

/// POST /oauth/token with a form body.
pub async fn token_request(base: &str, form: &str) -> Answer {
    send(
        Method::POST,
        &format!("{base}/oauth/token"),
        &[("content-type", "application/x-www-form-urlencoded")],
        form.to_string(),
    )
    .await
}

pub fn form_for(emulator: &Emulator, client_id: &str, client_secret: &str) -> String {
    format!(
        "grant_type=client_credentials&client_id={client_id}&client_secret={client_secret}&audience={}",
        emulator.audience().replace(':', "%3A").replace('/', "%2F")
    )
}

/// A token for the default client.
pub async fn token(emulator: &Emulator) -> String {
    let answer = token_request(
        &emulator.base_url(),
        &form_for(emulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()["access_token"].as_str().unwrap().to_string()
}

pub fn fields<'a>(external_id: &'a str, upsert: bool) -> ImportFields<'a> {
    ImportFields {
        connection_id: DEFAULT_CONNECTION_ID,
        upsert,
        send_completion_email: false,
        external_id,
    }
}

/// POST a raw body to the import endpoint with our multipart content type.
pub async fn post_import_body(emulator: &Emulator, token: &str, body: Vec<u8>) -> Answer {
    post_import_with_type(emulator, token, &content_type(), body).await
}

pub async fn post_import_with_type(
    emulator: &Emulator,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Answer {
    let auth = format!("Bearer {token}");
    send(
        Method::POST,
        &format!("{}/api/v2/jobs/users-imports", emulator.base_url()),
        &[("authorization", &auth), ("content-type", content_type)],
        body,
    )
    .await
}

/// Submits `users` exactly as our submit function does.
pub async fn import(
    emulator: &Emulator,
    token: &str,
    fields: &ImportFields<'_>,
    users: &Value,
) -> Answer {
    post_import_body(
        emulator,
        token,
        encode(fields, users.to_string().as_bytes()),
    )
    .await
}

/// Submits and expects a 202; returns the job id.
pub async fn import_ok(emulator: &Emulator, token: &str, upsert: bool, users: &Value) -> String {
    let answer = import(emulator, token, &fields("", upsert), users).await;
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()["id"].as_str().unwrap().to_string()
}

/// Polls GET /jobs/{id} until `done` accepts it; panics after `deadline`. A rate-limit 429 is
/// waited out like a real client would (the default bucket refills 16 tokens a second).
pub async fn poll_job(
    emulator: &Emulator,
    token: &str,
    job_id: &str,
    deadline: Duration,
    mut done: impl FnMut(&Value) -> bool,
) -> Value {
    let url = format!("{}/api/v2/jobs/{job_id}", emulator.base_url());
    let give_up = Instant::now() + deadline;
    loop {
        assert!(
            Instant::now() < give_up,
            "job {job_id} not done in {deadline:?}"
        );
        let answer = get(&url, token).await;
        if answer.status == 429 {
            tokio::time::sleep(Duration::from_millis(70)).await;
            continue;
        }
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let job = answer.json();
        if done(&job) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until the job is completed or failed.
pub async fn finish(emulator: &Emulator, token: &str, job_id: &str) -> Value {
    poll_job(emulator, token, job_id, Duration::from_secs(10), |job| {
        job["status"] == "completed" || job["status"] == "failed"
    })
    .await
}

pub async fn errors(emulator: &Emulator, token: &str, job_id: &str) -> Answer {
    get(
        &format!("{}/api/v2/jobs/{job_id}/errors", emulator.base_url()),
        token,
    )
    .await
}

pub fn user(email: &str) -> Value {
    json!({ "email": email })
}
