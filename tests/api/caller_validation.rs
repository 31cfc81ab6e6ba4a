//! Caller token validation: every invalid token is a 401 `invalid_token` with the RFC 6750 challenge,
//! and signing-key rotation is followed without a restart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::helpers::assertions::{assert_invalid_token, assert_issued, decode_claims};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{FOREIGN_TENANT_ID, MSI_OID, sql_request};
use crate::helpers::tokens::hostile_corpus;

const KEY_REFRESH_WAIT: Duration = Duration::from_secs(10);

fn now() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit in i64")
}

/// An otherwise valid token for the allowlisted managed identity with these time claims.
fn msi_with_times(iat: i64, nbf: i64, exp: i64) -> Value {
    json!({"kind": "msi", "claims": {"iat": iat, "nbf": nbf, "exp": exp}})
}

#[tokio::test]
async fn expired_token_is_rejected_with_401() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let now = now();
    let caller = emulator
        .mint(msi_with_times(now - 4200, now - 4200, now - 600))
        .await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    assert_invalid_token(response, "expired ten minutes ago").await;
}

#[tokio::test]
async fn token_not_yet_valid_is_rejected_with_401() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let now = now();
    let caller = emulator
        .mint(msi_with_times(now, now + 600, now + 4200))
        .await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    assert_invalid_token(response, "valid from ten minutes from now").await;
}

#[tokio::test]
async fn token_from_another_tenant_is_rejected_with_401() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator
        .mint(json!({"kind": "msi", "tenant": FOREIGN_TENANT_ID}))
        .await;
    let claims = decode_claims(&caller);
    assert_eq!(claims["tid"], FOREIGN_TENANT_ID);
    assert!(
        claims["iss"]
            .as_str()
            .is_some_and(|iss| iss.contains(FOREIGN_TENANT_ID)),
        "iss {} is not the foreign tenant's",
        claims["iss"]
    );

    let response = broker.get_sp_token(&caller, sql_request()).await;

    assert_invalid_token(response, "foreign tid and iss").await;
}

#[tokio::test]
async fn token_for_another_audience_is_rejected_with_401() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator
        .mint(json!({"kind": "msi", "audience": "https://management.azure.com"}))
        .await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    assert_invalid_token(response, "aud is ARM").await;
}

#[tokio::test]
async fn token_signed_by_an_unpublished_key_is_rejected_with_401() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator
        .mint(json!({"kind": "msi", "key": "unpublished"}))
        .await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    assert_invalid_token(response, "unpublished key").await;
}

#[tokio::test]
async fn token_signed_by_a_retired_key_is_rejected_after_the_next_key_refresh() {
    // Arrange: a token accepted under the first key, then that key rotated out and retired.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_JWKS_REFRESH_SECONDS", "1")]).await;
    let caller = emulator.msi_token().await;
    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;
    let rotation = emulator.rotate_keys(true).await;
    assert_eq!(rotation["published"].as_array().map(Vec::len), Some(1));

    // Act: poll until the broker's key refresh has seen the retirement.
    let response = broker
        .get_sql_token_until(&caller, KEY_REFRESH_WAIT, |status| status != 200)
        .await;

    // Assert
    assert_invalid_token(response, "retired key").await;
}

#[tokio::test]
async fn token_signed_by_a_newly_rotated_key_is_accepted() {
    // Arrange: the broker holds the first key only; the emulator then signs with a new one.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let fetches_before = emulator.stats().await["jwks_requests"]
        .as_u64()
        .expect("jwks_requests");
    emulator.rotate_keys(false).await;
    let caller = emulator.msi_token().await;

    // Act: the unknown kid makes the broker refresh (at most once per second, hence the polling).
    let response = broker
        .get_sql_token_until(&caller, KEY_REFRESH_WAIT, |status| status == 200)
        .await;

    // Assert
    let body = assert_issued(response).await;
    assert_eq!(body["caller"]["oid"], MSI_OID);
    let fetches_after = emulator.stats().await["jwks_requests"]
        .as_u64()
        .expect("jwks_requests");
    assert!(
        fetches_after > fetches_before,
        "the broker never fetched the JWKS again ({fetches_before} → {fetches_after})"
    );
}

#[tokio::test]
async fn missing_authorization_is_rejected_with_401() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    let response = broker
        .post_raw(
            "/api/GetSPToken",
            &[("content-type", "application/json")],
            sql_request().to_string(),
        )
        .await;

    assert_invalid_token(response, "no Authorization header").await;
}

#[tokio::test]
async fn authorization_with_another_scheme_is_rejected_with_401() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    let cases = [
        ("Basic", "Basic dXNlcjpwYXNzd29yZA==".to_owned()),
        ("Token scheme", format!("Token {caller}")),
        ("no scheme", caller.clone()),
        ("Bearer without a token", "Bearer".to_owned()),
    ];

    for (case, authorization) in cases {
        let response = broker
            .post_raw(
                "/api/GetSPToken",
                &[
                    ("authorization", &authorization),
                    ("content-type", "application/json"),
                ],
                sql_request().to_string(),
            )
            .await;
        assert_invalid_token(response, case).await;
    }
}

#[tokio::test]
async fn forged_tokens_are_rejected_with_401() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    for (case, token) in hostile_corpus(&emulator).await {
        let response = broker.get_sp_token(&token, sql_request()).await;
        assert_invalid_token(response, case).await;
    }
    assert_eq!(
        emulator.stats().await["token_requests"]["client_credentials"],
        0
    );
}
