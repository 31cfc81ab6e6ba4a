//! The managed-identity allowlist: the Key Vault secret (re-read without a restart, either format), the
//! static setting, and what happens when Key Vault is unreachable.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::assertions::{assert_error, assert_issued, json_body, status_and_code};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{ALLOWLIST_SECRET, MSI_OID, OTHER_MSI_OID, sql_request};

const REFRESH_WAIT: Duration = Duration::from_secs(10);

async fn other_msi_token(emulator: &TestEmulator) -> String {
    emulator
        .mint(json!({"kind": "msi", "oid": OTHER_MSI_OID}))
        .await
}

#[tokio::test]
async fn id_added_to_key_vault_is_admitted_without_restart() {
    // Arrange: the other identity is refused under the initial secret.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = other_msi_token(&emulator).await;
    let refused = broker.get_sp_token(&caller, sql_request()).await;
    assert_error(refused, 403, "caller_not_allowed").await;

    // Act
    emulator
        .set_secret(ALLOWLIST_SECRET, &format!("{MSI_OID},{OTHER_MSI_OID}"))
        .await;

    // Assert: admitted once the broker has re-read the secret (refresh period 1 s).
    let response = broker
        .get_sql_token_until(&caller, REFRESH_WAIT, |status| status == 200)
        .await;
    let body = assert_issued(response).await;
    assert_eq!(body["caller"]["oid"], OTHER_MSI_OID);
}

#[tokio::test]
async fn id_in_the_allowed_msi_oids_setting_is_admitted() {
    let emulator = TestEmulator::start().await;
    let broker =
        TestBroker::spawn_with(&emulator, &[("BROKER_ALLOWED_MSI_OIDS", OTHER_MSI_OID)]).await;
    let caller = other_msi_token(&emulator).await;

    let body = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    assert_eq!(body["caller"]["oid"], OTHER_MSI_OID);
}

#[tokio::test]
async fn json_array_secret_is_accepted() {
    let emulator = TestEmulator::start().await;
    emulator
        .set_secret(ALLOWLIST_SECRET, &json!([OTHER_MSI_OID]).to_string())
        .await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = other_msi_token(&emulator).await;

    let body = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    assert_eq!(body["caller"]["oid"], OTHER_MSI_OID);
}

#[tokio::test]
async fn key_vault_down_after_the_first_load_keeps_the_last_good_list() {
    // Arrange: loaded once, then Key Vault stops answering for at least two refresh attempts.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    emulator.inject_fault("key_vault", "down", json!({})).await;
    let reads_before = key_vault_requests(&emulator).await;
    let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
    while key_vault_requests(&emulator).await < reads_before + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker did not retry Key Vault within {REFRESH_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Act
    let response = broker.get_sp_token(&caller, sql_request()).await;

    // Assert
    let body = assert_issued(response).await;
    assert_eq!(body["caller"]["oid"], MSI_OID);
}

#[tokio::test]
async fn key_vault_down_from_the_start_fails_closed() {
    let emulator = TestEmulator::start().await;
    emulator.inject_fault("key_vault", "down", json!({})).await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    assert_eq!(
        status_and_code(response).await,
        (502, "key_vault_unavailable".to_owned())
    );
    assert_eq!(
        emulator.stats().await["token_requests"]["client_credentials"],
        0
    );
}

async fn key_vault_requests(emulator: &TestEmulator) -> u64 {
    emulator.stats().await["key_vault_requests"]
        .as_u64()
        .expect("key_vault_requests")
}

#[tokio::test]
async fn empty_allowlist_secret_keeps_the_last_good_list_warns_naming_the_secret_and_shows_in_health()
 {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    // Act: the value is lost to whitespace.
    emulator.set_secret(ALLOWLIST_SECRET, " \n ").await;
    let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
    let health = loop {
        let health = json_body(broker.health().await).await;
        if health["allowlist"]["last_failure"] == "empty" || tokio::time::Instant::now() >= deadline
        {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Assert
    assert_eq!(health["status"], "degraded", "health: {health}");
    assert_eq!(
        health["reasons"],
        json!(["allowlist_empty"]),
        "health: {health}"
    );
    let warning = empty_secret_warning(&broker).await;
    assert_eq!(warning["secret"], ALLOWLIST_SECRET, "warning: {warning}");
    let body = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;
    assert_eq!(body["caller"]["oid"], MSI_OID);
}

#[tokio::test]
async fn empty_allowlist_secret_from_the_start_is_500_allowlist_misconfigured() {
    let emulator = TestEmulator::start().await;
    emulator.set_secret(ALLOWLIST_SECRET, "").await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    assert_error(response, 500, "allowlist_misconfigured").await;
    let health = broker.health().await;
    assert_eq!(health.status(), 503);
    let health = json_body(health).await;
    assert_eq!(
        health["reasons"],
        json!(["allowlist_not_loaded", "allowlist_empty"]),
        "health: {health}"
    );
}

#[tokio::test]
async fn empty_json_array_admits_no_app_caller_on_purpose_and_health_stays_ready() {
    let emulator = TestEmulator::start().await;
    emulator.set_secret(ALLOWLIST_SECRET, "[]").await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    assert_error(response, 403, "caller_not_allowed").await;
    let health = json_body(broker.health().await).await;
    assert_eq!(health["status"], "ready", "health: {health}");
}

/// The warning about an empty allowlist secret, once written (log lines may trail the health answer).
async fn empty_secret_warning(broker: &TestBroker) -> Value {
    let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
    loop {
        let warning = broker
            .stdout_lines()
            .into_iter()
            .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
            .find(|line| {
                line["level"] == "WARN"
                    && line["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("empty"))
            });
        match warning {
            Some(warning) => return warning,
            None if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None => panic!("no warning about the empty allowlist secret"),
        }
    }
}
