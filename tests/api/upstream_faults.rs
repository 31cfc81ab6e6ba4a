//! Entra's token endpoint failing: each failure maps to its documented code, and the broker serves
//! again once Entra recovers.

use serde_json::json;

use crate::helpers::assertions::{assert_error, assert_issued, header};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{MSI_OID, sql_request};

/// A GetSPToken call for the allowlisted managed identity while the token endpoint is in `mode`; the
/// processes are returned so that they outlive the response.
async fn sql_token_while_token_endpoint_is(
    mode: &str,
) -> (TestEmulator, TestBroker, reqwest::Response) {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    emulator.inject_fault("token", mode, json!({})).await;
    let response = broker.get_sp_token(&caller, sql_request()).await;
    (emulator, broker, response)
}

#[tokio::test]
async fn token_endpoint_500_is_502_entra_unavailable() {
    let (_emulator, _broker, response) = sql_token_while_token_endpoint_is("500").await;

    assert_error(response, 502, "entra_unavailable").await;
}

#[tokio::test]
async fn token_endpoint_down_is_502_entra_unavailable() {
    let (_emulator, _broker, response) = sql_token_while_token_endpoint_is("down").await;

    assert_error(response, 502, "entra_unavailable").await;
}

#[tokio::test]
async fn token_endpoint_garbage_is_502_entra_invalid_response() {
    let (_emulator, _broker, response) = sql_token_while_token_endpoint_is("garbage").await;

    assert_error(response, 502, "entra_invalid_response").await;
}

#[tokio::test]
async fn token_endpoint_429_is_503_upstream_throttled_with_entras_retry_after() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    emulator
        .inject_fault("token", "429", json!({"retry_after": 7}))
        .await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    let retry_after = header(&response, "retry-after");
    assert_error(response, 503, "upstream_throttled").await;
    assert_eq!(retry_after.as_deref(), Some("7"), "Entra's Retry-After");
}

#[tokio::test]
async fn rejected_broker_secret_is_500_broker_credentials_rejected() {
    let emulator = TestEmulator::start().await;
    let wrong_secret = "wrong-secret-value-0123456789";
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_CLIENT_SECRET", wrong_secret)]).await;
    let caller = emulator.msi_token().await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    let body = assert_error(response, 500, "broker_credentials_rejected").await;
    assert!(!body.to_string().contains(wrong_secret), "body: {body}");
    assert_eq!(emulator.stats().await["token_errors"], 1);
}

#[tokio::test]
async fn broker_serves_again_once_entra_recovers() {
    // Arrange: one failed call while the token endpoint is down.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    emulator.inject_fault("token", "down", json!({})).await;
    let failed = broker.get_sp_token(&caller, sql_request()).await;
    assert_error(failed, 502, "entra_unavailable").await;

    // Act
    emulator.clear_faults().await;
    emulator.reset_stats().await;
    let response = broker.get_sp_token(&caller, sql_request()).await;

    // Assert
    let body = assert_issued(response).await;
    assert_eq!(body["caller"]["oid"], MSI_OID);
    assert_eq!(
        emulator.stats().await["token_requests"]["client_credentials"],
        1
    );
}
