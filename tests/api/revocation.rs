//! Revocation that cannot freeze (issue 9 item 1): when Key Vault refuses the broker's cached
//! managed-identity token, the broker drops it and reads again with a fresh one, so an identity removed
//! from the allowlist secret is refused within the refresh interval.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::assertions::{assert_error, assert_issued, header, json_body};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{ALLOWLIST_SECRET, MSI_OID, OTHER_MSI_OID, sql_request};

const POLL: Duration = Duration::from_millis(200);
const WAIT: Duration = Duration::from_secs(10);

async fn counter(emulator: &TestEmulator, name: &str) -> u64 {
    let stats = emulator.stats().await;
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {stats}"))
}

#[tokio::test]
async fn identity_removed_after_a_signing_key_rollover_is_refused_within_the_refresh_interval() {
    // Arrange: both identities allowed; the broker holds a managed-identity token signed by the key
    // about to be dropped.
    let emulator = TestEmulator::start().await;
    emulator
        .set_secret(ALLOWLIST_SECRET, &format!("{MSI_OID},{OTHER_MSI_OID}"))
        .await;
    let broker = TestBroker::spawn(&emulator).await;
    let before_rollover = emulator
        .mint(json!({"kind": "msi", "oid": OTHER_MSI_OID}))
        .await;
    assert_issued(broker.get_sp_token(&before_rollover, sql_request()).await).await;
    let identity_calls = counter(&emulator, "identity_requests").await;

    // Act: the rollover drops the old key, so Key Vault refuses the cached token; then the identity is
    // removed from the secret.
    emulator.rotate_keys(true).await;
    emulator.set_secret(ALLOWLIST_SECRET, MSI_OID).await;
    let caller = emulator
        .mint(json!({"kind": "msi", "oid": OTHER_MSI_OID}))
        .await;

    // Assert: refused once the broker has re-read the secret (refresh period 1 s). Until its unknown-kid
    // cooldown (1 s) has passed, the new key's token may still be 401.
    let response = broker
        .get_sql_token_until(&caller, WAIT, |status| status == 403)
        .await;
    assert_error(response, 403, "caller_not_allowed").await;
    assert!(
        counter(&emulator, "key_vault_token_refusals").await >= 1,
        "Key Vault never refused the cached token, so the test did not exercise the rollover"
    );
    assert!(
        counter(&emulator, "identity_requests").await > identity_calls,
        "the broker never asked the identity endpoint for a fresh token"
    );
    let still_allowed = emulator.msi_token().await;
    assert_issued(broker.get_sp_token(&still_allowed, sql_request()).await).await;
}

/// Polls the health route until `done` holds for its body, or fails after `WAIT`.
async fn health_until(
    broker: &TestBroker,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> (u16, Value) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = broker.health().await;
        let status = response.status().as_u16();
        let body = json_body(response).await;
        if done(&body) {
            return (status, body);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health never showed {what} within {WAIT:?}: {body}"
        );
        tokio::time::sleep(POLL).await;
    }
}

fn has_reason(body: &Value, reason: &str) -> bool {
    body["reasons"]
        .as_array()
        .is_some_and(|reasons| reasons.iter().any(|r| r == reason))
}

#[tokio::test]
async fn allowlist_reads_that_keep_failing_make_health_degraded_with_the_reason_and_age() {
    // Arrange: loaded once, then Key Vault answers 500.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    emulator.inject_fault("key_vault", "500", json!({})).await;

    // Act
    let (status, body) =
        health_until(&broker, "degraded", |body| body["status"] == "degraded").await;

    // Assert: still serving (200), with the reason, the age of the last good list and the failures.
    assert_eq!(status, 200, "body: {body}");
    assert!(
        has_reason(&body, "allowlist_refresh_failing"),
        "body: {body}"
    );
    assert!(
        body["allowlist"]["failed_reads"].as_u64() >= Some(3),
        "body: {body}"
    );
    assert_eq!(
        body["allowlist"]["last_failure"], "key_vault_unreachable",
        "body: {body}"
    );
    assert!(body["allowlist"]["age_seconds"].is_u64(), "body: {body}");
    assert_eq!(body["allowlist"]["stale"], false, "body: {body}");
    let caller = emulator.msi_token().await;
    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;
}

#[tokio::test]
async fn allowlist_past_its_max_age_fails_closed_with_503_allowlist_stale() {
    // Arrange: a list that may go 2 s unconfirmed; Key Vault goes down after the first load.
    let emulator = TestEmulator::start().await;
    let broker =
        TestBroker::spawn_with(&emulator, &[("BROKER_ALLOWLIST_MAX_AGE_SECONDS", "2")]).await;
    let caller = emulator.msi_token().await;
    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;
    emulator.inject_fault("key_vault", "down", json!({})).await;

    // Act
    let (_, body) = health_until(&broker, "a stale allowlist", |body| {
        body["allowlist"]["stale"] == true
    })
    .await;
    let response = broker.get_sp_token(&caller, sql_request()).await;

    // Assert
    assert!(has_reason(&body, "allowlist_stale"), "body: {body}");
    assert_eq!(header(&response, "retry-after").as_deref(), Some("1"));
    assert_error(response, 503, "allowlist_stale").await;
    assert_eq!(
        emulator.stats().await["token_requests"]["client_credentials"],
        1,
        "a stale list must not reach the token endpoint"
    );
}

#[tokio::test]
async fn a_user_on_the_obo_lane_is_still_served_while_the_allowlist_is_stale() {
    let emulator = TestEmulator::start().await;
    let broker =
        TestBroker::spawn_with(&emulator, &[("BROKER_ALLOWLIST_MAX_AGE_SECONDS", "2")]).await;
    emulator.inject_fault("key_vault", "down", json!({})).await;
    health_until(&broker, "a stale allowlist", |body| {
        body["allowlist"]["stale"] == true
    })
    .await;
    let user = emulator.user_token().await;

    let response = broker
        .token(&user, json!({"audience": "sql", "lane": "user"}))
        .await;

    assert_issued(response).await;
}

#[tokio::test]
async fn client_secret_read_by_name_keeps_loading_across_a_signing_key_rollover() {
    // Arrange: the client secret comes from Key Vault, not from settings.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn_with(
        &emulator,
        &[
            ("BROKER_CLIENT_SECRET", ""),
            ("BROKER_CLIENT_SECRET_NAME", "broker-client-secret"),
        ],
    )
    .await;
    let caller = emulator.msi_token().await;
    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    // Act: the rollover makes Key Vault refuse the cached token; wait for reads after the refusal.
    emulator.rotate_keys(true).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter(&emulator, "key_vault_token_refusals").await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Key Vault never refused the cached token"
        );
        tokio::time::sleep(POLL).await;
    }
    let reads = counter(&emulator, "key_vault_requests").await;
    while counter(&emulator, "key_vault_requests").await < reads + 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker stopped reading Key Vault"
        );
        tokio::time::sleep(POLL).await;
    }

    // Assert: every read since has succeeded with the fresh token.
    let health = json_body(broker.health().await).await;
    assert_eq!(
        health["client_secret"]["failed_reads"], 0,
        "health: {health}"
    );
    assert_eq!(health["allowlist"]["failed_reads"], 0, "health: {health}");
    assert_eq!(health["status"], "ready", "health: {health}");
}
