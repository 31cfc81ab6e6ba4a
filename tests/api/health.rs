//! `GET /api/health` (issue 4 item 6): ready once the signing keys and the allowlist are loaded, with the
//! policy revision and counters that move with traffic, and nothing about any caller or token.

use serde_json::{Value, json};

use crate::helpers::assertions::{assert_issued, json_body};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{BROKER_SP_OID, MSI_OID, USER_OID, USER_UPN, sql_request};

/// The health body, asserting the status code that goes with its `status`.
async fn health(broker: &TestBroker) -> Value {
    let response = broker.health().await;
    let status = response.status();
    let body = json_body(response).await;
    let expected = if body["status"] == "ready" { 200 } else { 503 };
    assert_eq!(status, expected, "body: {body}");
    body
}

fn counter(body: &Value, name: &str) -> u64 {
    body["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("counters.{name} in {body}"))
}

#[tokio::test]
async fn health_is_ready_once_signing_keys_and_the_allowlist_are_loaded() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    let body = health(&broker).await;

    assert_eq!(body["status"], "ready", "body: {body}");
    assert_eq!(
        [
            &body["signing_keys"]["loaded"],
            &body["allowlist"]["loaded"],
            &body["policy_revision"]
        ],
        [&json!(true), &json!(true), &json!(1)],
        "body: {body}"
    );
}

#[tokio::test]
async fn health_reports_the_configured_policy_revision() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_POLICY_REVISION", "7")]).await;

    let body = health(&broker).await;

    assert_eq!(body["policy_revision"], 7, "body: {body}");
}

#[tokio::test]
async fn health_counters_grow_with_each_token_request() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    let before = health(&broker).await;

    // Act
    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;
    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    // Assert
    let after = health(&broker).await;
    for (name, grew_by) in [
        ("requests", 2),
        ("issued", 2),
        ("cache_misses", 1),
        ("cache_hits", 1),
        ("token_endpoint_calls", 1),
    ] {
        assert_eq!(
            counter(&after, name),
            counter(&before, name) + grew_by,
            "counters.{name}: before {before}, after {after}"
        );
    }
}

#[tokio::test]
async fn health_never_reveals_a_token_an_oid_or_a_upn() {
    // Arrange: an app and a user have both been served.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let msi = emulator.msi_token().await;
    let user = emulator.user_token().await;
    let service = assert_issued(broker.get_sp_token(&msi, sql_request()).await).await;
    let obo = assert_issued(broker.token(&user, json!({"audience": "sql"})).await).await;

    // Act
    let response = broker.health().await;
    let headers = format!("{:?}", response.headers());
    let text = format!("{headers} {}", response.text().await.expect("body"));

    // Assert
    let tokens = [
        ("the managed identity's token", msi.as_str()),
        ("the user's token", user.as_str()),
        (
            "the issued SQL token",
            service["access_token"].as_str().unwrap_or("?"),
        ),
        (
            "the issued OBO token",
            obo["access_token"].as_str().unwrap_or("?"),
        ),
    ];
    for (what, token) in tokens {
        let signature = token.rsplit('.').next().unwrap_or(token);
        assert!(!text.contains(token), "health reveals {what}: {text}");
        assert!(
            !text.contains(signature),
            "health reveals the signature of {what}"
        );
    }
    let identifiers = [
        (
            "the client secret",
            emulator.ready.broker_client_secret.as_str(),
        ),
        ("the managed identity's oid", MSI_OID),
        ("the user's oid", USER_OID),
        ("the broker's service principal oid", BROKER_SP_OID),
        ("the user's upn", USER_UPN),
    ];
    for (what, identifier) in identifiers {
        assert!(!text.contains(identifier), "health reveals {what}: {text}");
    }
}
