//! Fault switches (failed jobs, 5xx, extra 429s, early token expiry, latency), their seeded
//! reproducibility, the `/__emulator/*` inspection API and the `auth0-emulator` binary.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use auth0_emulator::{Emulator, EmulatorConfig, Faults, JobStatus};
use bytes::Bytes;
use common::*;
use hyper::Method;
use serde_json::json;

#[tokio::test]
async fn fail_next_jobs_fails_exactly_that_many_jobs() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.set_faults(Faults {
        fail_next_jobs: 1,
        ..Faults::default()
    });
    let token = token(&emulator).await;
    let doomed = import_ok(&emulator, &token, false, &json!([user("a@example.com")])).await;
    let fine = import_ok(&emulator, &token, false, &json!([user("b@example.com")])).await;

    let failed = finish(&emulator, &token, &doomed).await;
    assert_eq!(failed["status"], "failed");
    assert!(failed.get("summary").is_none());
    assert!(failed["status_details"].is_string());
    assert_eq!(errors(&emulator, &token, &doomed).await.status, 204);

    let completed = finish(&emulator, &token, &fine).await;
    assert_eq!(completed["status"], "completed");
    let emails: Vec<_> = emulator
        .users()
        .iter()
        .map(|u| u["email"].clone())
        .collect();
    assert_eq!(emails, [json!("b@example.com")]);
    let statuses: Vec<_> = emulator.jobs().iter().map(|job| job.status).collect();
    assert_eq!(statuses, [JobStatus::Failed, JobStatus::Completed]);
}

#[tokio::test]
async fn server_errors_create_nothing_and_are_reproducible_from_the_seed() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    emulator.set_faults(Faults {
        error_5xx_rate: 1.0,
        ..Faults::default()
    });
    let answer = import(
        &emulator,
        &token,
        &fields("", false),
        &json!([user("a@example.com")]),
    )
    .await;
    assert!(matches!(answer.status, 500 | 503), "{}", answer.status);
    let body = answer.json();
    assert_eq!(body["statusCode"], answer.status);
    let reason = if answer.status == 500 {
        "Internal Server Error"
    } else {
        "Service Unavailable"
    };
    assert_eq!(body["error"], reason);
    assert!(body["message"].is_string());
    assert!(emulator.jobs().is_empty());

    // The same seed gives the same sequence of answers.
    let mut runs = Vec::new();
    for _ in 0..2 {
        let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
        let token = common::token(&emulator).await;
        emulator.set_faults(Faults {
            seed: 99,
            error_5xx_rate: 0.5,
            ..Faults::default()
        });
        let url = format!("{}/api/v2/jobs/job_AAAAAAAAAAAAAAAA", emulator.base_url());
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(get(&url, &token).await.status);
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&404) && runs[0].iter().any(|s| *s >= 500),
        "{:?}",
        runs[0]
    );
}

#[tokio::test]
async fn extra_429s_use_the_rate_limit_body() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    emulator.set_faults(Faults {
        extra_429_rate: 1.0,
        ..Faults::default()
    });
    let answer = import(
        &emulator,
        &token,
        &fields("x", false),
        &json!([user("a@example.com")]),
    )
    .await;
    assert_eq!(answer.status, 429);
    assert_eq!(
        answer.json(),
        json!({"statusCode": 429, "error": "Too Many Requests", "message": "Global limit has been reached", "errorCode": "too_many_requests"})
    );
    assert!(answer.header("x-ratelimit-reset").is_some());
    assert!(emulator.jobs().is_empty());
}

#[tokio::test]
async fn expire_tokens_after_rejects_new_tokens_early() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let old = token(&emulator).await;
    emulator.set_faults(Faults {
        expire_tokens_after: Some(Duration::from_millis(150)),
        ..Faults::default()
    });
    let answer = token_request(
        &emulator.base_url(),
        &form_for(
            &emulator,
            auth0_emulator::DEFAULT_CLIENT_ID,
            auth0_emulator::DEFAULT_CLIENT_SECRET,
        ),
    )
    .await;
    assert_eq!(
        answer.json()["expires_in"],
        86_400,
        "expires_in still claims a day"
    );
    let short = answer.json()["access_token"].as_str().unwrap().to_string();

    let url = format!("{}/api/v2/jobs/job_AAAAAAAAAAAAAAAA", emulator.base_url());
    let give_up = Instant::now() + Duration::from_secs(5);
    let expired = loop {
        let answer = get(&url, &short).await;
        if answer.status == 401 {
            break answer;
        }
        assert_eq!(answer.status, 404);
        assert!(Instant::now() < give_up, "token never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        expired.json()["message"],
        "Expired token received for JSON Web Token validation"
    );
    // Tokens minted before the switch keep their lifetime.
    assert_eq!(get(&url, &old).await.status, 404);
}

#[tokio::test]
async fn latency_delays_every_response() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    emulator.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    let started = Instant::now();
    let answer = get(
        &format!("{}/api/v2/jobs/job_AAAAAAAAAAAAAAAA", emulator.base_url()),
        &token,
    )
    .await;
    assert_eq!(answer.status, 404);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn inspection_endpoints_mirror_the_library_api() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let base = emulator.base_url();
    let token = token(&emulator).await;

    let put = send(
        Method::PUT,
        &format!("{base}/__emulator/faults"),
        &[("content-type", "application/json")],
        json!({"fail_next_jobs": 1, "latency_ms": 0}).to_string(),
    )
    .await;
    assert_eq!(put.status, 200);
    let faults = send(
        Method::GET,
        &format!("{base}/__emulator/faults"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(faults.json()["fail_next_jobs"], 1);

    let id = import_ok(&emulator, &token, false, &json!([user("a@example.com")])).await;
    finish(&emulator, &token, &id).await;
    let id2 = import_ok(&emulator, &token, false, &json!([user("b@example.com")])).await;
    finish(&emulator, &token, &id2).await;

    let jobs = send(
        Method::GET,
        &format!("{base}/__emulator/jobs"),
        &[],
        Bytes::new(),
    )
    .await
    .json();
    assert_eq!(jobs[0]["id"], id.as_str());
    assert_eq!(jobs[0]["status"], "failed");
    assert_eq!(jobs[1]["status"], "completed");
    assert_eq!(jobs[1]["summary"]["inserted"], 1);

    let users = send(
        Method::GET,
        &format!("{base}/__emulator/users"),
        &[],
        Bytes::new(),
    )
    .await
    .json();
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["email"], "b@example.com");

    let requests = send(
        Method::GET,
        &format!("{base}/__emulator/requests"),
        &[],
        Bytes::new(),
    )
    .await
    .json();
    let first = &requests[0];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/oauth/token");
    assert_eq!(first["status"], 200);
    assert!(requests
        .as_array()
        .unwrap()
        .iter()
        .all(|r| !r["path"].as_str().unwrap().starts_with("/__emulator")));
    assert_eq!(
        requests.as_array().unwrap().len(),
        emulator.requests().len()
    );

    let bad = send(
        Method::PUT,
        &format!("{base}/__emulator/faults"),
        &[],
        "{not json".to_string(),
    )
    .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn the_binary_announces_its_url_and_serves_tokens() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auth0-emulator"))
        .args(["--port", "0", "--job-ms-per-user", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first.strip_prefix("listening on ").unwrap().to_string();
    let credentials = lines.next().unwrap().unwrap();
    assert!(credentials.contains("client_id=test-client client_secret=test-secret"));

    let audience = format!("{base}/api/v2/");
    let answer = send(
        Method::POST,
        &format!("{base}/oauth/token"),
        &[("content-type", "application/json")],
        json!({"grant_type": "client_credentials", "client_id": "test-client", "client_secret": "test-secret", "audience": audience}).to_string(),
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(answer.status, 200);
}

/// An import post whose connection may be dropped without an answer.
async fn try_import(
    emulator: &Emulator,
    token: &str,
    external_id: &str,
    users: &serde_json::Value,
) -> Result<Answer, String> {
    let auth = format!("Bearer {token}");
    let body =
        import_core::multipart::encode(&fields(external_id, false), users.to_string().as_bytes());
    try_send(
        Method::POST,
        &format!("{}/api/v2/jobs/users-imports", emulator.base_url()),
        &[
            ("authorization", &auth),
            ("content-type", &import_core::multipart::content_type()),
        ],
        body,
    )
    .await
}

/// An emulator with these faults switched on after a token was minted.
async fn faulty(faults: Faults) -> (Emulator, String) {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    emulator.set_faults(faults);
    (emulator, token)
}

/// One user, posted for chunk `external_id`.
async fn post_one(
    emulator: &Emulator,
    token: &str,
    external_id: &str,
    email: &str,
) -> Result<Answer, String> {
    try_import(emulator, token, external_id, &json!([user(email)])).await
}

/// Wait (bounded) for every job to end, then the users the tenant holds.
async fn tenant_after_jobs(emulator: &Emulator) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while emulator
        .jobs()
        .iter()
        .any(|j| matches!(j.status, JobStatus::Pending | JobStatus::Processing))
    {
        assert!(Instant::now() < deadline, "jobs did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    emulator.users()
}

/// A gateway (or Auth0 itself) failing after the work is done: the job exists and imports its
/// users, and the client sees only an error without a job id (the in-doubt case, facts §1.4:
/// any 5xx is possible, and the 202 is the only answer that names the job).
#[tokio::test]
async fn create_then_fail_creates_the_job_behind_the_error() {
    for status in [504u16, 502, 500] {
        let (emulator, token) = faulty(Faults {
            create_then_fail: 1,
            after_create_status: status,
            ..Faults::default()
        })
        .await;
        let hidden = post_one(&emulator, &token, "run:000001", "a@example.com")
            .await
            .unwrap();
        assert_eq!(hidden.status, status);
        assert!(hidden.json().get("id").is_none());
        let jobs = emulator.jobs();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].external_id.as_deref(), Some("run:000001"));
        // The switch counts down: the next post is answered normally.
        let next = post_one(&emulator, &token, "run:000002", "b@example.com")
            .await
            .unwrap();
        assert_eq!(next.status, 202);
        assert_eq!(tenant_after_jobs(&emulator).await.len(), 2, "{status}");
    }
}

#[tokio::test]
async fn a_reset_after_the_body_drops_the_connection_with_or_without_a_job() {
    for creates in [true, false] {
        let (emulator, token) = faulty(Faults {
            reset_after_body: 1,
            reset_creates_job: creates,
            ..Faults::default()
        })
        .await;
        let lost = post_one(&emulator, &token, "run:000001", "a@example.com").await;
        assert!(lost.is_err(), "no answer: {:?}", lost.map(|a| a.status));
        assert_eq!(emulator.jobs().len(), usize::from(creates));
        assert_eq!(
            tenant_after_jobs(&emulator).await.len(),
            usize::from(creates)
        );
        let log = emulator.requests();
        assert_eq!(
            log.last().map(|r| r.status),
            Some(0),
            "logged as unanswered"
        );
    }
}

#[tokio::test]
async fn accept_without_id_answers_202_with_no_job_id() {
    let (emulator, token) = faulty(Faults {
        accept_without_id: 1,
        ..Faults::default()
    })
    .await;
    let answer = post_one(&emulator, &token, "run:000001", "a@example.com")
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    let body = answer.json();
    assert!(body.get("id").is_none(), "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(emulator.jobs().len(), 1);
}

#[tokio::test]
async fn the_token_endpoint_can_be_down_and_job_reads_refused() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let token = token(&emulator).await;
    let job = import_ok(&emulator, &token, false, &json!([user("a@example.com")])).await;
    emulator.set_faults(Faults {
        token_endpoint_down: true,
        ..Faults::default()
    });
    let down = token_request(
        &emulator.base_url(),
        &form_for(
            &emulator,
            auth0_emulator::DEFAULT_CLIENT_ID,
            auth0_emulator::DEFAULT_CLIENT_SECRET,
        ),
    )
    .await;
    assert_eq!(down.status, 503);
    for status in [401u16, 403, 404] {
        emulator.set_faults(Faults {
            job_reads_answer: Some(status),
            ..Faults::default()
        });
        for path in [
            format!("/api/v2/jobs/{job}"),
            format!("/api/v2/jobs/{job}/errors"),
        ] {
            let answer = get(&format!("{}{path}", emulator.base_url()), &token).await;
            assert_eq!(answer.status, status, "{path}");
            assert_eq!(answer.json()["statusCode"], status);
        }
    }
    emulator.set_faults(Faults::default());
    let answer = get(
        &format!("{}/api/v2/jobs/{job}", emulator.base_url()),
        &token,
    )
    .await;
    assert_eq!(answer.status, 200);
}
