//! Shutdown (issue 17 item 4): SIGTERM ends the broker within its drain wait (docs/reliability.md),
//! whatever its connections are doing: idle between keep-alive requests, answering a request, or
//! holding half a header. The deadlock this guards against needed a connection to end at the moment
//! the broker told it to close, so each case runs many times.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::sql_request;

/// The drain wait (5 s) and slack for a loaded machine: a broker still running after this has hung.
const EXIT_BOUND: Duration = Duration::from_secs(20);

/// A keep-alive connection straight to the broker, one request answered on it, then left idle.
async fn idle_keep_alive_connection(broker: &TestBroker) -> TcpStream {
    let address = broker.direct_url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("send a request");
    let mut answer = [0_u8; 1024];
    let read = stream.read(&mut answer).await.expect("read the answer");
    assert!(
        answer[..read].starts_with(b"HTTP/1.1 200"),
        "readiness answer: {}",
        String::from_utf8_lossy(&answer[..read])
    );
    stream
}

async fn token_requests(emulator: &TestEmulator) -> u64 {
    emulator.stats().await["token_requests"]["client_credentials"]
        .as_u64()
        .expect("client_credentials counter")
}

/// Returns once the token endpoint has received a request after `before` were counted.
async fn waits_on_the_token_endpoint(emulator: &TestEmulator, before: u64) {
    for _ in 0..200 {
        if token_requests(emulator).await > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the broker never asked the token endpoint");
}

#[tokio::test]
async fn sigterm_ends_the_broker_every_time_an_idle_keep_alive_connection_is_open() {
    let emulator = TestEmulator::start().await;
    for round in 1..=12 {
        let mut broker = TestBroker::spawn(&emulator).await;
        let _idle = idle_keep_alive_connection(&broker).await;

        let status = broker.terminate(EXIT_BOUND).await;

        let status = status.unwrap_or_else(|| panic!("round {round}: still running after SIGTERM"));
        assert!(status.success(), "round {round}: exit {status}");
    }
}

#[tokio::test]
async fn sigterm_finishes_the_answer_in_progress_and_ends_with_idle_and_half_open_connections() {
    let emulator = TestEmulator::start().await;
    for round in 1..=3 {
        let mut broker = TestBroker::spawn(&emulator).await;
        let _idle = idle_keep_alive_connection(&broker).await;
        let mut half_open = TcpStream::connect(broker.direct_url().trim_start_matches("http://"))
            .await
            .expect("connect");
        half_open
            .write_all(b"POST /api/GetSPToken HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .expect("send half a header");
        // A caller the broker has not seen, so its request waits on the (slowed) token endpoint.
        emulator
            .inject_fault("token", "slow", json!({"delay_ms": 1500}))
            .await;
        let caller = emulator.msi_token().await;
        let asked_before = token_requests(&emulator).await;
        let in_progress = {
            let client = reqwest::Client::new();
            let url = format!("{}/api/GetSPToken", broker.direct_url());
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(caller)
                    .json(&sql_request())
                    .send()
                    .await
                    .map(|response| response.status())
            })
        };
        waits_on_the_token_endpoint(&emulator, asked_before).await;

        let status = broker.terminate(EXIT_BOUND).await;

        let status = status.unwrap_or_else(|| panic!("round {round}: still running after SIGTERM"));
        assert!(status.success(), "round {round}: exit {status}");
        let answered = in_progress.await.expect("request task");
        assert_eq!(
            answered.ok(),
            Some(reqwest::StatusCode::OK),
            "round {round}: the request in progress was not answered"
        );
        emulator.clear_faults().await;
    }
}
