//! Credentials that heal (issue 17): an identity token Entra refuses is replaced and the exchange retried
//! once; a certificate version that cannot be used (expired, or refused on its first use) never
//! replaces one that can; a certificate file that would block a read hangs nothing; health names the
//! certificate.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::assertions::{assert_error, assert_issued, json_body};
use crate::helpers::broker::TestBroker;
use crate::helpers::credentials::{
    CERTIFICATE_SECRET, app_caller_asks_for_sql, assert_client_credentials,
    caller_with_a_cached_token, certificate_broker, certificate_file_broker, health,
    identity_broker, thumbprint, trusted_identity_broker, vault_certificate,
};
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{sql_request, sql_user_lane, storage_request};

/// Health once `done` holds for it, or the last answer after 15 s.
async fn health_when(broker: &TestBroker, done: impl Fn(&Value) -> bool) -> Value {
    let mut body = health(broker).await;
    for _ in 0..75 {
        if done(&body) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        body = health(broker).await;
    }
    body
}

/// Asserts the emulator's `stats` count `identity` identity tokens fetched, `requests`
/// client-credentials token requests and `errors` refused ones.
#[track_caller]
fn assert_identity_and_client_credentials(
    stats: &Value,
    identity: u64,
    requests: u64,
    errors: u64,
) {
    assert_eq!(
        (
            &stats["identity_requests"],
            &stats["token_requests"]["client_credentials"],
            &stats["token_errors"]
        ),
        (&json!(identity), &json!(requests), &json!(errors)),
        "stats: {stats}"
    );
}

/// Asserts health is degraded with `set_aside`'s version set aside for `reason` while `in_force`
/// serves.
#[track_caller]
fn assert_version_set_aside(body: &Value, in_force: &Value, set_aside: &Value, reason: &str) {
    assert_eq!(
        (
            &body["status"],
            &body["reasons"],
            &body["credential"]["thumbprint_sha256"],
            &body["credential"]["set_aside"]
        ),
        (
            &json!("degraded"),
            &json!(["client_certificate_version_set_aside"]),
            &json!(thumbprint(in_force)),
            &json!({"version": thumbprint(set_aside), "reason": reason})
        ),
        "health: {body}"
    );
}

#[tokio::test]
async fn identity_token_signed_with_a_retired_key_is_replaced_and_the_exchange_retried_once() {
    // Arrange: an identity token is held, then the tenant's signing key rolls over and the old key is
    // dropped from the key set.
    let emulator = TestEmulator::start().await;
    let broker = trusted_identity_broker(&emulator, &[]).await;
    assert_issued(app_caller_asks_for_sql(&emulator, &broker).await).await;
    emulator.rotate_keys(true).await;
    // The broker looks for a caller's unknown key at most once per BROKER_JWKS_MIN_REFRESH_SECONDS (1).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let caller = emulator.msi_token().await;
    emulator.reset_stats().await;

    // Act
    let response = broker.get_sp_token(&caller, storage_request()).await;

    // Assert: refused once (AADSTS700027), one new identity token, retried once.
    assert_issued(response).await;
    assert_identity_and_client_credentials(&emulator.stats().await, 1, 2, 1);
    let body = health(&broker).await;
    assert_eq!(body["status"], "ready", "health: {body}");
}

#[tokio::test]
async fn identity_endpoint_overstating_expires_on_costs_no_failed_request() {
    // Arrange: the identity endpoint's next answer is a token that expired 10 minutes ago, with an
    // `expires_on` an hour ahead.
    let emulator = TestEmulator::start().await;
    let broker = trusted_identity_broker(&emulator, &[]).await;
    emulator
        .inject_fault("identity", "stale_token", json!({"count": 1}))
        .await;
    let caller = emulator.msi_token().await;
    emulator.reset_stats().await;

    // Act
    let first = broker.get_sp_token(&caller, sql_request()).await;
    let second = broker.get_sp_token(&caller, storage_request()).await;

    // Assert: refused once (AADSTS700024), a fresh token fetched, both served.
    assert_issued(first).await;
    assert_issued(second).await;
    assert_identity_and_client_credentials(&emulator.stats().await, 2, 3, 1);
}

#[tokio::test]
async fn identity_token_refused_again_when_fresh_fails_and_turns_health_degraded() {
    // Arrange: no federated record trusts the identity any more.
    let emulator = TestEmulator::start().await;
    let record = emulator.add_federated_credential().await;
    emulator.revoke_federated_credential(&record).await;
    let broker = identity_broker(&emulator, &[]).await;
    let caller = emulator.msi_token().await;
    emulator.reset_stats().await;

    // Act
    let first = broker.get_sp_token(&caller, sql_request()).await;
    let second = broker.get_sp_token(&caller, storage_request()).await;

    // Assert: one fresh identity token tried, not one per request.
    assert_error(first, 500, "broker_credentials_rejected").await;
    assert_error(second, 500, "broker_credentials_rejected").await;
    let stats = emulator.stats().await;
    assert_eq!(stats["identity_requests"], 2, "stats: {stats}");
    let response = broker.health().await;
    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(
        (
            &body["status"],
            &body["reasons"],
            &body["credential"]["refused"]
        ),
        (
            &json!("degraded"),
            &json!(["managed_identity_token_refused"]),
            &json!(true)
        ),
        "health: {body}"
    );
}

#[tokio::test]
async fn expired_certificate_version_uploaded_is_set_aside_and_the_previous_keeps_serving() {
    // Arrange: a broker serving with certificate A (re-read every second) has a cached token.
    let emulator = TestEmulator::start().await;
    let good = vault_certificate(&emulator).await;
    let broker = certificate_broker(&emulator, &[]).await;
    let caller = caller_with_a_cached_token(&emulator, &broker).await;

    // Act: a registered but expired version is uploaded.
    let expired = emulator
        .make_certificate(json!({"vault_secret": CERTIFICATE_SECRET, "valid_days": -2}))
        .await;
    let body = health_when(&broker, |body| !body["credential"]["set_aside"].is_null()).await;
    emulator.reset_stats().await;
    let cached = broker.get_sp_token(&caller, sql_request()).await;
    let cold = broker.get_sp_token(&caller, storage_request()).await;

    // Assert: the cached token is still served, the cold one issued with A; health degraded, 200.
    assert_issued(cached).await;
    assert_issued(cold).await;
    assert_client_credentials(&emulator.stats().await, 1, 0);
    assert_version_set_aside(&body, &good, &expired, "expired");
}

#[tokio::test]
async fn certificate_version_refused_on_first_use_is_set_aside_and_never_tried_again() {
    // Arrange: certificate A served and accepted; then a valid certificate that is not registered on
    // the app is uploaded and re-read.
    let emulator = TestEmulator::start().await;
    let good = vault_certificate(&emulator).await;
    let broker = certificate_broker(&emulator, &[]).await;
    let caller = caller_with_a_cached_token(&emulator, &broker).await;
    let unregistered = emulator
        .make_certificate(json!({"vault_secret": CERTIFICATE_SECRET, "register": false}))
        .await;
    health_when(&broker, |body| {
        body["credential"]["thumbprint_sha256"] == thumbprint(&unregistered)
    })
    .await;
    emulator.reset_stats().await;

    // Act: a cold key (refused with the new version, retried with A), the cached key, and after
    // further re-reads of the unregistered version, another cold key.
    let cold = broker.get_sp_token(&caller, storage_request()).await;
    let cached = broker.get_sp_token(&caller, sql_request()).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let user = broker
        .token(&emulator.user_token().await, sql_user_lane())
        .await;

    // Assert: one refusal in all; A serves; health names the set-aside version.
    assert_issued(cold).await;
    assert_issued(cached).await;
    assert_issued(user).await;
    assert_client_credentials(&emulator.stats().await, 2, 1);
    let body = health(&broker).await;
    assert_version_set_aside(&body, &good, &unregistered, "refused");
}

#[tokio::test]
async fn certificate_file_replaced_by_a_fifo_hangs_no_request() {
    // Arrange: a certificate file broker (re-read only on demand), whose certificate Entra then
    // refuses while the file has become a FIFO nobody writes to.
    let emulator = TestEmulator::start().await;
    let certificate = emulator.make_certificate(json!({})).await;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fifo-{}", thumbprint(&certificate)));
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join("certificate.pem");
    let broker = certificate_file_broker(
        &emulator,
        &certificate,
        &path,
        &[("BROKER_ALLOWLIST_REFRESH_SECONDS", "3600")],
    )
    .await;
    let caller = caller_with_a_cached_token(&emulator, &broker).await;
    std::fs::remove_file(&path).expect("remove the PEM");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    emulator
        .unregister_certificate(thumbprint(&certificate))
        .await;

    // Act
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        broker.get_sp_token(&caller, storage_request()),
    )
    .await
    .expect("the request answered instead of waiting on the FIFO");

    // Assert: refused as before, the failed re-read counted, health still answers.
    assert_error(response, 500, "broker_credentials_rejected").await;
    let body = tokio::time::timeout(Duration::from_secs(30), health(&broker))
        .await
        .expect("health answered");
    assert_eq!(
        (
            &body["status"],
            &body["reasons"],
            &body["credential"]["failed_reads"],
            &body["credential"]["last_failure"]
        ),
        (
            &json!("degraded"),
            &json!(["client_certificate_refused"]),
            &json!(1),
            &json!("file_unreadable")
        ),
        "health: {body}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn certificate_that_keeps_failing_to_re_read_is_named_in_health() {
    // Arrange
    let emulator = TestEmulator::start().await;
    vault_certificate(&emulator).await;
    let broker = certificate_broker(&emulator, &[]).await;

    // Act: Key Vault fails every read from now on (re-read every second).
    emulator
        .inject_fault("key_vault", "500", json!({"count": 1000}))
        .await;
    let has = |body: &Value, reason: &str| {
        body["reasons"]
            .as_array()
            .is_some_and(|reasons| reasons.contains(&json!(reason)))
    };
    let body = health_when(&broker, |body| {
        has(body, "client_certificate_refresh_failing")
    })
    .await;

    // Assert: named after the certificate (the allowlist, also in Key Vault, has its own reason).
    assert!(
        has(&body, "client_certificate_refresh_failing")
            && !has(&body, "client_secret_refresh_failing"),
        "health: {body}"
    );
    assert_eq!(body["status"], "degraded", "health: {body}");
}

#[tokio::test]
async fn certificate_value_that_is_no_certificate_is_named_in_health_at_once() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let good = vault_certificate(&emulator).await;
    let broker = certificate_broker(&emulator, &[]).await;

    // Act: the secret now holds something that is no certificate (and has no certificate content type).
    emulator
        .set_secret(CERTIFICATE_SECRET, "not a certificate")
        .await;
    let body = health_when(&broker, |body| body["status"] != "ready").await;

    // Assert: the certificate in force keeps serving.
    assert_eq!(
        (
            &body["status"],
            &body["reasons"],
            &body["credential"]["last_failure"],
            &body["credential"]["thumbprint_sha256"]
        ),
        (
            &json!("degraded"),
            &json!(["client_certificate_unparseable"]),
            &json!("unparseable"),
            &json!(thumbprint(&good))
        ),
        "health: {body}"
    );
}
