//! Bounded connections (issue 9 items 3 and 4): a request header not complete within the header-read
//! timeout closes its connection; held and trickling connections cannot lock out normal requests; the
//! host's keep-alive pool keeps working; none of it writes a warning or an error line.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::assertions::{assert_issued, json_body};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::sql_request;

const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(200);

/// The broker's counters, read directly (one fresh connection) so the host's pool is left alone.
async fn counters(broker: &TestBroker) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}/api/health", broker.direct_url()))
        .send()
        .await
        .expect("GET /api/health directly");
    json_body(response).await["counters"].clone()
}

async fn counter(broker: &TestBroker, name: &str) -> u64 {
    let counters = counters(broker).await;
    counters[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {counters}"))
}

async fn connect(broker: &TestBroker) -> TcpStream {
    let addr = broker.direct_url().trim_start_matches("http://").to_owned();
    TcpStream::connect(addr)
        .await
        .expect("connect to the broker")
}

/// Reads until the broker closes the connection (or `WAIT` passes); true if it closed.
async fn closed_by_broker(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(WAIT, read).await.is_ok()
}

#[tokio::test]
async fn a_connection_that_never_completes_its_header_is_closed_after_the_header_timeout() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker =
        TestBroker::spawn_with(&emulator, &[("BROKER_HEADER_READ_TIMEOUT_SECONDS", "1")]).await;
    let mut stream = connect(&broker).await;

    // Act: half a header, then nothing.
    stream
        .write_all(b"POST /api/GetSPToken HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("send part of a header");

    // Assert
    assert!(
        closed_by_broker(&mut stream).await,
        "the broker kept a stalled header open"
    );
    assert!(counter(&broker, "connections_timed_out").await >= 1);
}

#[tokio::test]
async fn a_slowloris_trickling_one_header_byte_at_a_time_is_closed_after_the_header_timeout() {
    let emulator = TestEmulator::start().await;
    let broker =
        TestBroker::spawn_with(&emulator, &[("BROKER_HEADER_READ_TIMEOUT_SECONDS", "1")]).await;
    let mut stream = connect(&broker).await;

    let trickle = async {
        for byte in b"POST /api/GetSPToken HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: "
            .iter()
            .chain(std::iter::repeat(&b'a'))
        {
            if stream.write_all(&[*byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };

    assert!(
        tokio::time::timeout(WAIT, trickle).await.unwrap_or(false),
        "the broker kept accepting a header that never ends"
    );
}

#[tokio::test]
async fn normal_requests_are_served_while_2000_connections_are_held_and_200_trickle() {
    // Arrange: 2,000 idle connections (beyond the 1,024 limit) and 200 trickling ones, all direct.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    let mut held = Vec::new();
    for _ in 0..2000 {
        held.push(connect(&broker).await);
    }
    let mut trickling = Vec::new();
    for _ in 0..200 {
        let mut stream = connect(&broker).await;
        trickling.push(tokio::spawn(async move {
            for byte in b"GET /api/health HTTP/1.1\r\nX-Slow: "
                .iter()
                .chain(std::iter::repeat(&b'a'))
            {
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }

    // Act: requests as the host forwards them.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let response = broker.get_sp_token(&caller, sql_request()).await;
        statuses.push(response.status().as_u16());
    }

    // Assert
    assert_eq!(statuses, vec![200; 20]);
    assert!(
        counter(&broker, "connections_evicted").await >= 1,
        "no idle connection was closed to make room"
    );
    for task in trickling {
        task.abort();
    }
    drop(held);
}

#[tokio::test]
async fn the_hosts_keep_alive_connection_is_reused_and_survives_the_broker_closing_it() {
    // Arrange: a short header timeout, which also bounds how long a connection may sit idle.
    let emulator = TestEmulator::start().await;
    let broker =
        TestBroker::spawn_with(&emulator, &[("BROKER_HEADER_READ_TIMEOUT_SECONDS", "1")]).await;
    let caller = emulator.msi_token().await;
    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    // Act: the pooled connection is reused back to back, then idles until the broker closes it.
    let accepted = counter(&broker, "connections_accepted").await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(
            broker
                .get_sp_token(&caller, sql_request())
                .await
                .status()
                .as_u16(),
        );
    }
    let reused = counter(&broker, "connections_accepted").await == accepted + 1;
    let timed_out = counter(&broker, "connections_timed_out").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter(&broker, "connections_timed_out").await <= timed_out {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker never closed the idle host connection"
        );
        tokio::time::sleep(POLL).await;
    }
    let after_close = broker.get_sp_token(&caller, sql_request()).await;

    // Assert
    assert_eq!(statuses, vec![200; 10]);
    assert!(
        reused,
        "ten requests through the host opened new connections (only the counter read may)"
    );
    assert_issued(after_close).await;
    let counters = counters(&broker).await;
    assert_eq!(counters["connection_errors"], 0, "counters: {counters}");
}

#[tokio::test]
async fn malformed_requests_and_dropped_connections_write_no_warning_or_error_lines() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    // Act: 50 garbage requests, 50 connections dropped mid-header, 50 opened and closed at once.
    for _ in 0..50 {
        let mut stream = connect(&broker).await;
        let _ = stream
            .write_all(b"\x16\x03\x01 not HTTP at all\r\n\r\n")
            .await;
        let _ = closed_by_broker(&mut stream).await;
    }
    for _ in 0..50 {
        let mut stream = connect(&broker).await;
        let _ = stream.write_all(b"GET /api/health HTTP/1.1\r\nHos").await;
    }
    for _ in 0..50 {
        drop(connect(&broker).await);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter(&broker, "connection_errors").await < 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker did not count the failed connections"
        );
        tokio::time::sleep(POLL).await;
    }

    // Assert
    let loud: Vec<String> = broker
        .all_lines()
        .into_iter()
        .filter(|line| {
            serde_json::from_str::<Value>(line).map_or(true, |line| {
                line["level"] == "WARN" || line["level"] == "ERROR"
            })
        })
        .collect();
    assert!(
        loud.is_empty(),
        "connection failures were logged loudly: {loud:#?}"
    );
}

#[tokio::test]
async fn trickling_connections_filling_the_limit_make_room_for_normal_requests_at_once() {
    // Arrange: a 16-connection limit, all of it taken by headers that never end (30 s timeout).
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_MAX_CONNECTIONS", "16")]).await;
    let caller = emulator.msi_token().await;
    let mut trickling = Vec::new();
    for _ in 0..40 {
        let mut stream = connect(&broker).await;
        let _ = stream
            .write_all(b"GET /api/health HTTP/1.1\r\nX-Slow: a")
            .await;
        trickling.push(stream);
    }

    // Act
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let response = broker.get_sp_token(&caller, sql_request()).await;
        statuses.push(response.status().as_u16());
    }

    // Assert: served without waiting for any header timeout.
    assert_eq!(statuses, vec![200; 10]);
    assert_eq!(counter(&broker, "connections_timed_out").await, 0);
    assert!(counter(&broker, "connections_evicted").await >= 24);
    drop(trickling);
}

#[tokio::test]
async fn idle_connections_taking_every_descriptor_make_room_for_normal_requests() {
    // Arrange: a broker allowed 128 descriptors, below its 1,024-connection limit, with its caches
    // warm; then 400 idle connections, more than it has descriptors for.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn_with_descriptor_limit(&emulator, &[], 128).await;
    let caller = emulator.msi_token().await;
    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;
    let mut held = Vec::new();
    for _ in 0..400 {
        held.push(connect(&broker).await);
    }

    // Act
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let response = broker.get_sp_token(&caller, sql_request()).await;
        statuses.push(response.status().as_u16());
    }

    // Assert: served without waiting for any held connection's header timeout, because running out of
    // descriptors closed idle connections.
    assert_eq!(statuses, vec![200; 20]);
    assert_eq!(counter(&broker, "connections_timed_out").await, 0);
    assert!(counter(&broker, "connections_evicted").await >= 1);
    drop(held);
}
