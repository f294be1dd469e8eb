//! Test support: real services on loopback. `MotoServer` runs moto's server (S3 and Secrets
//! Manager) on a free port for one test and stops it when dropped.

pub mod counting_proxy;
pub mod fixtures;
pub mod pipeline;
pub mod s3_proxy;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auth0_emulator::{Emulator, EmulatorConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::Credentials;

/// How long moto may take to start (it is ready in ~2 s on this machine).
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

pub struct MotoServer {
    child: Child,
    pub port: u16,
}

impl MotoServer {
    /// Starts `python3 -m moto.server` on 127.0.0.1 and waits until it accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting moto (pip install 'moto[server]'): {e}"))?;
        let mut server = MotoServer { child, port };
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("moto exited before it was ready: {status}");
            }
            if Instant::now() > deadline {
                anyhow::bail!("moto did not listen on port {port} within {STARTUP_DEADLINE:?}");
            }
            // Readiness probe interval, bounded by the deadline above.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The SDK config a function would load from its environment, pointed at this server.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .load()
            .await
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The local world end-to-end tests, the demo and the benchmark start from: moto (S3 and
/// Secrets Manager), the Auth0 emulator, one bucket, and the Auth0 secret naming the emulator.
pub struct LocalWorld {
    pub moto: MotoServer,
    pub emulator: Emulator,
    pub sdk: aws_config::SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl LocalWorld {
    pub async fn start(
        bucket: &str,
        secret_id: &str,
        config: EmulatorConfig,
    ) -> anyhow::Result<Self> {
        let moto = MotoServer::start()?;
        let sdk = moto.sdk_config().await;
        let s3 = aws_shell::s3_client(&sdk);
        s3.create_bucket().bucket(bucket).send().await?;
        // As the SAM template's bucket: every upload is a version of its own.
        s3.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await?;
        let emulator = Emulator::start(config)
            .await
            .map_err(|e| anyhow::anyhow!("starting the emulator: {e}"))?;
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let secret = serde_json::json!({
            "domain": emulator.base_url(),
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        });
        secrets
            .create_secret()
            .name(secret_id)
            .secret_string(secret.to_string())
            .send()
            .await?;
        Ok(LocalWorld {
            moto,
            emulator,
            sdk,
            s3,
            secrets,
        })
    }
}

#[path = "../../support/python.rs"]
mod python_support;
pub use python_support::python;

/// A port the OS just handed out on loopback (released for the server to bind).
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// An S3 ObjectCreated event as S3 sends it: the key URL-encoded with `+` for space.
pub fn s3_put_event(bucket: &str, key: &str, size: u64, etag: &str) -> serde_json::Value {
    serde_json::json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "2026-11-27T10:00:00.000Z",
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:EXAMPLE"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "EXAMPLE", "x-amz-id-2": "EXAMPLE"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "split",
                "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"}, "arn": format!("arn:aws:s3:::{bucket}")},
                "object": {"key": encode_event_key(key), "size": size, "eTag": etag, "sequencer": "0055AED6DCD90281E5"}
            }
        }]
    })
}

/// S3's event key encoding: form-style, space as `+`.
pub fn encode_event_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Serves HTTP/1 on `listener`, each request answered by `forward` with the server's `shared`
/// state, until the returned task is aborted (dropping it drops every open connection): the
/// loop of the test proxies in front of moto.
pub(crate) fn serve<S, B, E, Fut>(
    listener: tokio::net::TcpListener,
    shared: std::sync::Arc<S>,
    forward: fn(std::sync::Arc<S>, hyper::Request<hyper::body::Incoming>) -> Fut,
) -> tokio::task::JoinHandle<()>
where
    S: Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<hyper::Response<B>, E>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| forward(shared.clone(), request));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    })
}

/// The request a test proxy sends on to `upstream` for the one it received: same method, path
/// and headers, less the hop-by-hop and framing ones the client library sets again.
pub(crate) fn upstream_request(
    http: &reqwest::Client,
    upstream: &str,
    parts: &hyper::http::request::Parts,
    path: &str,
) -> reqwest::RequestBuilder {
    let mut request = http.request(parts.method.clone(), format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "connection" | "content-length" | "transfer-encoding" | "expect" | "keep-alive"
        ) {
            request = request.header(name, value);
        }
    }
    request
}
