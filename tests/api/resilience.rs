//! Upstream resilience (issue 4 items 5 and 8): timeouts, signing keys that never load or stop loading,
//! Key Vault and the identity endpoint failing after or before the first load, and the breaker that
//! fails fast while Entra is down and closes again once it recovers.

use std::time::Duration;

use serde_json::json;

use crate::helpers::assertions::{assert_error, assert_issued, header, json_body};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{MSI_OID, OTHER_MSI_OID, sql_request};
use crate::helpers::stubs::Stub;
use crate::helpers::tokens::unix_now;

const POLL: Duration = Duration::from_millis(200);
const WAIT: Duration = Duration::from_secs(10);

async fn counter(emulator: &TestEmulator, name: &str) -> u64 {
    let stats = emulator.stats().await;
    let value = match name {
        "client_credentials" => &stats["token_requests"]["client_credentials"],
        _ => &stats[name],
    };
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {stats}"))
}

/// Polls until the emulator's counter `name` has grown by `by` (the broker met the fault), or fails.
async fn wait_for_calls(emulator: &TestEmulator, name: &str, by: u64) {
    let target = counter(emulator, name).await + by;
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter(emulator, name).await < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} did not grow by {by} within {WAIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn token_endpoint_slower_than_the_timeout_is_502_until_it_recovers() {
    // Arrange: Entra answers after 3 s; the broker waits 1 s.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_HTTP_TIMEOUT_SECONDS", "1")]).await;
    let caller = emulator.msi_token().await;
    emulator
        .inject_fault("token", "slow", json!({"delay_ms": 3000}))
        .await;

    // Act
    let slow = broker.get_sp_token(&caller, sql_request()).await;
    emulator.clear_faults().await;
    emulator.reset_stats().await;
    let recovered = broker.get_sp_token(&caller, sql_request()).await;

    // Assert
    assert_error(slow, 502, "entra_unavailable").await;
    let body = assert_issued(recovered).await;
    assert_eq!(body["caller"]["oid"], MSI_OID);
    assert_eq!(counter(&emulator, "client_credentials").await, 1);
}

#[tokio::test]
async fn signing_keys_that_never_loaded_are_503_with_retry_after() {
    let emulator = TestEmulator::start().await;
    emulator.inject_fault("jwks", "down", json!({})).await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    let retry_after = header(&response, "retry-after").unwrap_or_default();
    assert_error(response, 503, "signing_keys_unavailable").await;
    assert!(
        retry_after.parse::<u64>().is_ok_and(|seconds| seconds >= 1),
        "Retry-After is {retry_after:?}"
    );
    assert_eq!(counter(&emulator, "client_credentials").await, 0);
}

#[tokio::test]
async fn health_is_503_not_ready_while_signing_keys_never_loaded() {
    let emulator = TestEmulator::start().await;
    emulator.inject_fault("jwks", "down", json!({})).await;
    let broker = TestBroker::spawn(&emulator).await;

    let response = broker.health().await;

    assert_eq!(response.status(), 503);
    let body = json_body(response).await;
    assert_eq!(body["status"], "not_ready", "body: {body}");
    assert_eq!(body["signing_keys"]["loaded"], false, "body: {body}");
}

#[tokio::test]
async fn loaded_signing_keys_keep_validating_callers_while_jwks_and_discovery_are_down() {
    // Arrange: keys refresh every second; both documents go down after the first load.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_JWKS_REFRESH_SECONDS", "1")]).await;
    emulator.inject_fault("discovery", "down", json!({})).await;
    emulator.inject_fault("jwks", "down", json!({})).await;
    wait_for_calls(&emulator, "discovery_requests", 2).await;

    // Act: a token the broker has never validated.
    let caller = emulator.msi_token().await;
    let response = broker.get_sp_token(&caller, sql_request()).await;

    // Assert
    let body = assert_issued(response).await;
    assert_eq!(body["caller"]["oid"], MSI_OID);
}

#[tokio::test]
async fn a_token_signed_by_a_new_key_while_the_jwks_is_down_is_503_then_accepted_once_it_is_back() {
    // Arrange: the broker holds the first key only; the JWKS then goes down and Entra signs with a new
    // key (the emulator publishes it at once, so only a refresh could find it).
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    emulator.inject_fault("jwks", "down", json!({})).await;
    emulator.rotate_keys(false).await;
    let caller = emulator.msi_token().await;

    // Act: once the 1 s cooldown after the start-up load has passed (inside it, the kid is unknown to
    // a key set just confirmed, so 401), the unknown kid triggers a refresh, which fails.
    let while_down = broker
        .get_sql_token_until(&caller, WAIT, |status| status != 401)
        .await;
    emulator.clear_faults().await;
    let recovered = broker
        .get_sql_token_until(&caller, WAIT, |status| status != 503)
        .await;

    // Assert: retryable while the key cannot be fetched, never 401 for a good token.
    let retry_after = header(&while_down, "retry-after").unwrap_or_default();
    assert_error(while_down, 503, "signing_keys_unavailable").await;
    assert_eq!(retry_after, "5");
    let body = assert_issued(recovered).await;
    assert_eq!(body["caller"]["oid"], MSI_OID);
}

/// The allowlist is read once, then `target` fails in `mode` until the broker has met the fault twice
/// (its `counter` grew by 2); the allowlisted caller is still served.
async fn assert_allowlist_survives(target: &str, mode: &str, counter_name: &str) {
    // Arrange: 1-second managed-identity tokens, so that every read needs the identity endpoint (the SDK
    // keeps using a token that is still valid when its refresh fails).
    let emulator = TestEmulator::start().await;
    emulator.set_token_lifetime(1).await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;
    emulator.inject_fault(target, mode, json!({})).await;
    wait_for_calls(&emulator, counter_name, 2).await;

    // Act
    let response = broker.get_sp_token(&caller, sql_request()).await;

    // Assert
    let body = assert_issued(response).await;
    assert_eq!(body["caller"]["oid"], MSI_OID, "{target} {mode}");
    let health = json_body(broker.health().await).await;
    assert!(
        health["counters"]["key_vault_failures"]
            .as_u64()
            .is_some_and(|failures| failures >= 1),
        "the broker counted no failed read: {health}"
    );
}

#[tokio::test]
async fn allowlist_survives_the_identity_endpoint_going_down_after_the_first_load() {
    assert_allowlist_survives("identity", "down", "identity_requests").await;
}

#[tokio::test]
async fn allowlist_survives_key_vault_500_after_the_first_load() {
    assert_allowlist_survives("key_vault", "500", "key_vault_requests").await;
}

#[tokio::test]
async fn allowlist_survives_key_vault_garbage_after_the_first_load() {
    assert_allowlist_survives("key_vault", "garbage", "key_vault_requests").await;
}

#[tokio::test]
async fn key_vault_forbidding_the_identity_from_the_start_is_500_allowlist_misconfigured() {
    // Arrange: the identity endpoint hands out a genuine Key Vault token for a managed identity that
    // has no access, so Key Vault answers 403 ForbiddenByRbac.
    let emulator = TestEmulator::start().await;
    let vault = "https://vault.azure.net";
    let stranger = emulator
        .mint(json!({"kind": "msi", "version": 1, "oid": OTHER_MSI_OID, "audience": vault}))
        .await;
    let identity = Stub::identity_endpoint(&stranger, vault, unix_now() + 3600).await;
    let endpoint = format!("{}/msi/token", identity.base_url);
    let broker = TestBroker::spawn_with(&emulator, &[("IDENTITY_ENDPOINT", &endpoint)]).await;
    let caller = emulator.msi_token().await;

    // Act
    let response = broker.get_sp_token(&caller, sql_request()).await;

    // Assert
    assert_error(response, 500, "allowlist_misconfigured").await;
    assert!(
        identity.connections() >= 1,
        "the stub identity endpoint was never asked"
    );
    assert!(counter(&emulator, "key_vault_requests").await >= 1);
    assert_eq!(counter(&emulator, "client_credentials").await, 0);
}

/// Three requests meet a token endpoint answering 500; each is 502 `entra_unavailable`.
async fn open_the_breaker(emulator: &TestEmulator, broker: &TestBroker, caller: &str) {
    emulator.inject_fault("token", "500", json!({})).await;
    for _ in 0..3 {
        let response = broker.get_sp_token(caller, sql_request()).await;
        assert_error(response, 502, "entra_unavailable").await;
    }
}

#[tokio::test]
async fn after_three_consecutive_entra_failures_the_fourth_request_fails_fast() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    open_the_breaker(&emulator, &broker, &caller).await;
    let calls = counter(&emulator, "client_credentials").await;
    assert!(calls >= 3, "only {calls} token requests reached Entra");

    // Act
    let fourth = broker.get_sp_token(&caller, sql_request()).await;

    // Assert: answered without a call to Entra.
    assert_error(fourth, 502, "entra_unavailable").await;
    assert_eq!(counter(&emulator, "client_credentials").await, calls);
}

#[tokio::test]
async fn open_breaker_closes_once_entra_recovers() {
    // Arrange: the breaker is open, then Entra recovers.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    open_the_breaker(&emulator, &broker, &caller).await;
    emulator.clear_faults().await;
    let calls = counter(&emulator, "client_credentials").await;
    let still_open = broker.get_sp_token(&caller, sql_request()).await;
    assert_error(still_open, 502, "entra_unavailable").await;
    assert_eq!(counter(&emulator, "client_credentials").await, calls);

    // Act: poll until the breaker lets a request through (it opens for 5 s).
    let response = broker
        .get_sql_token_until(&caller, WAIT, |status| status == 200)
        .await;

    // Assert
    let body = assert_issued(response).await;
    assert_eq!(body["caller"]["oid"], MSI_OID);
    assert_eq!(counter(&emulator, "client_credentials").await, calls + 1);
}
