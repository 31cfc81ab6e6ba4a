//! Requests that never reach a decision: the host's routing, wrong methods, media types, sizes and
//! bodies, and the cheap readiness route.

use std::time::Duration;

use crate::helpers::assertions::{assert_error, header, json_body};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::sql_request;

/// Posts `body` to GetSPToken through the host as the default managed identity, labelled
/// `content_type`.
async fn post_as_app(
    emulator: &TestEmulator,
    broker: &TestBroker,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let bearer = format!("Bearer {}", emulator.msi_token().await);
    broker
        .post_raw(
            "/api/GetSPToken",
            &[("authorization", &bearer), ("content-type", content_type)],
            body,
        )
        .await
}

#[tokio::test]
async fn get_on_get_sp_token_through_the_host_is_an_empty_404_from_the_host() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    let response = broker
        .client()
        .get(format!("{}/api/GetSPToken", broker.url()))
        .send()
        .await
        .expect("GET through the host");

    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.expect("body"), "");
    assert_eq!(broker.audit_lines().len(), 0);
}

#[tokio::test]
async fn get_on_get_sp_token_direct_to_the_broker_is_405_with_allow_post() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    let response = broker
        .client()
        .get(format!("{}/api/GetSPToken", broker.direct_url()))
        .send()
        .await
        .expect("GET to the broker");

    assert_eq!(header(&response, "allow").as_deref(), Some("POST"));
    assert_error(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn unknown_path_direct_to_the_broker_is_404_not_found() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    let response = broker
        .client()
        .post(format!("{}/api/GetSecrets", broker.direct_url()))
        .send()
        .await
        .expect("POST to the broker");

    assert_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn text_plain_body_is_415() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    let response = post_as_app(&emulator, &broker, "text/plain", sql_request().to_string()).await;

    assert_error(response, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn body_over_8_kib_is_413() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let padding = "x".repeat(9 * 1024);
    let body =
        format!(r#"{{"targetScope":"https://database.windows.net/.default","pad":"{padding}"}}"#);

    let response = post_as_app(&emulator, &broker, "application/json", body).await;

    assert_error(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn body_that_is_not_json_is_400_invalid_request() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    let response = post_as_app(
        &emulator,
        &broker,
        "application/json",
        "targetScope=https://database.windows.net/.default",
    )
    .await;

    assert_error(response, 400, "invalid_request").await;
}

#[tokio::test]
async fn readiness_route_answers_200_without_calling_upstream() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let before = emulator.stats().await;

    let response = tokio::time::timeout(
        Duration::from_secs(2),
        broker
            .client()
            .get(format!("{}/", broker.direct_url()))
            .send(),
    )
    .await
    .expect("GET / answered within 2 s")
    .expect("GET / to the broker");

    assert_eq!(response.status(), 200);
    let after = emulator.stats().await;
    assert_eq!(after["token_requests"], before["token_requests"]);
    assert_eq!(after["jwks_requests"], before["jwks_requests"]);
}

#[tokio::test]
async fn health_answers_get_through_the_host() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    let response = broker.health().await;

    assert_eq!(response.status(), 200);
    assert!(json_body(response).await.is_object());
}

#[tokio::test]
async fn post_on_health_is_an_empty_404_from_the_host() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    let response = broker.post_raw("/api/health", &[], "").await;

    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.expect("body"), "");
}
