//! Which identity reaches Azure resources: `BROKER_RESOURCE_IDENTITY_CLIENT_ID` reads Key Vault while
//! `BROKER_MANAGED_IDENTITY_CLIENT_ID` stays the federated credential; unset, the federated identity reads
//! Key Vault as before, and with neither the system-assigned identity does. The emulator's identity
//! endpoint tells the identities apart and its vault counts reads per identity.

use serde_json::{Value, json};

use crate::helpers::assertions::{assert_issued, json_body};
use crate::helpers::broker::TestBroker;
use crate::helpers::credentials::{app_caller_asks_for_sql, trusted_identity_broker};
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{
    BROKER_IDENTITY_CLIENT_ID, BROKER_IDENTITY_OID, FUNCTION_MI_OID, RESOURCE_IDENTITY_CLIENT_ID,
    RESOURCE_IDENTITY_OID,
};

/// Secrets Key Vault served, by the object id of the identity that read them.
async fn key_vault_reads_by(emulator: &TestEmulator) -> Value {
    emulator.stats().await["key_vault_reads_by"].clone()
}

/// The object ids of the identities that read Key Vault, from [`key_vault_reads_by`].
fn readers(reads: &Value) -> Vec<&String> {
    reads
        .as_object()
        .map(|r| r.keys().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn key_vault_is_read_with_the_resource_identity_and_the_federated_one_stays_the_credential() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = trusted_identity_broker(
        &emulator,
        &[(
            "BROKER_RESOURCE_IDENTITY_CLIENT_ID",
            RESOURCE_IDENTITY_CLIENT_ID,
        )],
    )
    .await;

    // Act: an app caller needs the allowlist from Key Vault and a token by the federated credential.
    let response = app_caller_asks_for_sql(&emulator, &broker).await;

    // Assert
    assert_issued(response).await;
    let reads = key_vault_reads_by(&emulator).await;
    assert_eq!(
        readers(&reads),
        vec![RESOURCE_IDENTITY_OID],
        "reads: {reads}"
    );
    let stats = emulator.stats().await;
    assert_eq!(stats["client_assertions"]["federated"], 1, "stats: {stats}");
    let health = json_body(broker.health().await).await;
    assert_eq!(
        health["credential"]["client_id"],
        json!(BROKER_IDENTITY_CLIENT_ID),
        "health: {health}"
    );
}

#[tokio::test]
async fn without_the_setting_key_vault_is_read_with_the_federated_identity_as_before() {
    let emulator = TestEmulator::start().await;
    let broker = trusted_identity_broker(&emulator, &[]).await;

    let response = app_caller_asks_for_sql(&emulator, &broker).await;

    assert_issued(response).await;
    let reads = key_vault_reads_by(&emulator).await;
    assert_eq!(readers(&reads), vec![BROKER_IDENTITY_OID], "reads: {reads}");
}

#[tokio::test]
async fn with_neither_identity_key_vault_is_read_with_the_system_assigned_identity() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    let response = app_caller_asks_for_sql(&emulator, &broker).await;

    assert_issued(response).await;
    let reads = key_vault_reads_by(&emulator).await;
    assert_eq!(readers(&reads), vec![FUNCTION_MI_OID], "reads: {reads}");
}

#[tokio::test]
async fn resource_identity_the_function_app_does_not_have_reads_nothing_and_admits_no_app() {
    let emulator = TestEmulator::start().await;
    let broker = trusted_identity_broker(
        &emulator,
        &[(
            "BROKER_RESOURCE_IDENTITY_CLIENT_ID",
            "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        )],
    )
    .await;

    let response = app_caller_asks_for_sql(&emulator, &broker).await;

    assert!(
        response.status().is_server_error(),
        "status {}",
        response.status()
    );
    assert_eq!(key_vault_reads_by(&emulator).await, json!({}));
}
