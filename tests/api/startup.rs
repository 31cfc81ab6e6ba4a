//! Start-up (issue 9 item 8): the broker retries failed first loads of the signing keys and the Key
//! Vault values within its 10 s wait, so a dependency that fails briefly at start-up does not leave the
//! first requests without keys or allowlist.

use serde_json::json;

use crate::helpers::assertions::{assert_issued, json_body};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{MSI_OID, sql_request};

#[tokio::test]
async fn key_vault_failing_the_first_two_reads_is_retried_before_listening() {
    let emulator = TestEmulator::start().await;
    emulator
        .inject_fault("key_vault", "500", json!({"count": 2}))
        .await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    let body = assert_issued(response).await;
    assert_eq!(body["caller"]["oid"], MSI_OID);
}

#[tokio::test]
async fn signing_keys_failing_the_first_loads_are_retried_before_listening() {
    let emulator = TestEmulator::start().await;
    emulator
        .inject_fault("jwks", "down", json!({"count": 6}))
        .await;
    let broker = TestBroker::spawn(&emulator).await;

    let health = json_body(broker.health().await).await;

    assert_eq!(health["status"], "ready", "health: {health}");
    assert!(
        health["counters"]["jwks_failures"].as_u64() >= Some(1),
        "the fault was never met: {health}"
    );
}
