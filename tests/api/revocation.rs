//! Revocation that cannot freeze (issue 9 item 1): when Key Vault refuses the broker's cached
//! managed-identity token, the broker drops it and reads again with a fresh one, so an identity removed
//! from the allowlist secret is refused within the refresh interval.

use std::time::Duration;

use serde_json::json;

use crate::helpers::assertions::{assert_error, assert_issued};
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
    let deadline = tokio::time::Instant::now() + WAIT;
    let response = loop {
        let response = broker.get_sp_token(&caller, sql_request()).await;
        if response.status() == 403 || tokio::time::Instant::now() >= deadline {
            break response;
        }
        tokio::time::sleep(POLL).await;
    };
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
