//! `POST /api/token`: audience aliases, the user lane (On-Behalf-Of) and the service lane, claims
//! challenges, consent, and the pinned configuration revision.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::helpers::assertions::{
    assert_error, assert_issued, header, issued_claims, status_and_code,
};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{
    BROKER_SP_OID, SQL_RESOURCE, SQL_SCOPE, USER_OID, USER_UPN, USER2_OID, USER2_UPN, sql_user_lane,
};

#[tokio::test]
async fn user_lane_returns_a_sql_token_issued_to_the_user() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.user_token().await;

    // Act
    let body = assert_issued(broker.token(&caller, sql_user_lane()).await).await;

    // Assert
    assert_eq!(body["lane"], "user");
    assert_eq!(body["audience"], "sql");
    assert_eq!(body["scope"], SQL_SCOPE);
    let claims = issued_claims(&body);
    assert_eq!(claims["aud"], SQL_RESOURCE);
    assert_eq!(claims["oid"], USER_OID);
    assert_eq!(claims["upn"], USER_UPN);
    assert_eq!(emulator.stats().await["token_requests"]["obo"], 1);
}

#[tokio::test]
async fn two_users_in_parallel_each_receive_their_own_obo_token() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let ana = emulator.user_token().await;
    let ben = emulator.second_user_token().await;

    let (for_ana, for_ben) = tokio::join!(
        broker.token(&ana, sql_user_lane()),
        broker.token(&ben, sql_user_lane())
    );

    let ana_claims = issued_claims(&assert_issued(for_ana).await);
    let ben_claims = issued_claims(&assert_issued(for_ben).await);
    assert_eq!(
        (&ana_claims["oid"], &ana_claims["upn"]),
        (&json!(USER_OID), &json!(USER_UPN))
    );
    assert_eq!(
        (&ben_claims["oid"], &ben_claims["upn"]),
        (&json!(USER2_OID), &json!(USER2_UPN))
    );
    assert_eq!(emulator.stats().await["token_requests"]["obo"], 2);
}

#[tokio::test]
async fn service_lane_serves_an_allowlisted_managed_identity() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    let response = broker
        .token(&caller, json!({"audience": "sql", "lane": "service"}))
        .await;

    let body = assert_issued(response).await;
    assert_eq!(body["lane"], "service");
    assert_eq!(issued_claims(&body)["oid"], BROKER_SP_OID);
    let stats = emulator.stats().await;
    assert_eq!(
        (
            &stats["token_requests"]["client_credentials"],
            &stats["token_requests"]["obo"]
        ),
        (&json!(1), &json!(0))
    );
}

#[tokio::test]
async fn app_caller_asking_for_the_user_lane_is_refused() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    let response = broker.token(&caller, sql_user_lane()).await;

    assert_error(response, 403, "lane_not_allowed").await;
    assert_eq!(emulator.stats().await["token_requests"]["obo"], 0);
}

#[tokio::test]
async fn mfa_demand_is_returned_as_a_claims_challenge() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    emulator
        .obo_policy(USER_OID, Some(SQL_RESOURCE), "mfa")
        .await;
    let caller = emulator.user_token().await;

    // Act
    let response = broker.token(&caller, sql_user_lane()).await;

    // Assert: the challenge's claims decode to Entra's claims JSON, which the body repeats.
    let challenge = header(&response, "www-authenticate").unwrap_or_default();
    let body = assert_error(response, 401, "interaction_required").await;
    let encoded = challenge
        .strip_prefix(r#"Bearer error="insufficient_claims", claims=""#)
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("WWW-Authenticate is {challenge:?}"));
    let decoded = STANDARD.decode(encoded).expect("claims are base64");
    let claims: Value = serde_json::from_slice(&decoded).expect("claims are JSON");
    assert_eq!(claims["access_token"]["capolids"]["essential"], true);
    assert_eq!(
        claims["access_token"]["capolids"]["values"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let body_claims: Value = serde_json::from_str(body["claims"].as_str().unwrap_or_default())
        .expect("body claims are the claims JSON");
    assert_eq!(body_claims, claims);
    assert_eq!(body["aadsts"], 50076);
}

#[tokio::test]
async fn claims_challenge_round_trip_succeeds_once_the_user_satisfies_mfa() {
    // Arrange: Conditional Access demands MFA for SQL, and the first token was a password sign-in.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    emulator
        .obo_policy(USER_OID, Some(SQL_RESOURCE), "mfa")
        .await;
    let password_only = emulator.user_token().await;
    let challenged = broker.token(&password_only, sql_user_lane()).await;
    assert_error(challenged, 401, "interaction_required").await;

    // Act: the client signs the user in again with MFA, as the challenge asks, and retries.
    let stepped_up = emulator
        .mint(json!({"kind": "user", "claims": {"amr": ["pwd", "mfa"]}}))
        .await;
    let body = assert_issued(broker.token(&stepped_up, sql_user_lane()).await).await;

    // Assert: the retry reached Entra (the challenge was not remembered) and was issued to the user.
    assert_eq!(issued_claims(&body)["upn"], USER_UPN);
    assert_eq!(emulator.stats().await["token_requests"]["obo"], 2);
}

#[tokio::test]
async fn consent_refusal_is_403_consent_required() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    emulator
        .obo_policy(USER_OID, Some(SQL_RESOURCE), "consent")
        .await;
    let caller = emulator.user_token().await;

    let response = broker.token(&caller, sql_user_lane()).await;

    assert_error(response, 403, "consent_required").await;
}

#[tokio::test]
async fn pinned_revision_other_than_the_current_one_is_409() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.user_token().await;

    let response = broker
        .token(
            &caller,
            json!({"audience": "sql", "lane": "user", "configurationRevision": 2}),
        )
        .await;

    let body = assert_error(response, 409, "revision_mismatch").await;
    assert_eq!(body["current_revision"], 1);
    assert_eq!(emulator.stats().await["token_requests"]["obo"], 0);
}

#[tokio::test]
async fn unknown_audience_alias_is_403_listing_the_known_ones() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.user_token().await;

    let response = broker.token(&caller, json!({"audience": "graph"})).await;

    let body = assert_error(response, 403, "unknown_audience").await;
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(description.contains("sql"), "description: {description}");
}

#[tokio::test]
async fn malformed_configuration_revision_is_400() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.user_token().await;

    for (case, revision) in [("negative", json!(-1)), ("a string", json!("3"))] {
        let response = broker
            .token(
                &caller,
                json!({"audience": "sql", "configurationRevision": revision}),
            )
            .await;
        assert_eq!(
            status_and_code(response).await,
            (400, "invalid_request".to_owned()),
            "case `{case}`"
        );
    }
}
