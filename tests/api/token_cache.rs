//! The downstream token cache (issue 4 items 1, 2 and 8): repeat requests are served from memory while a
//! token has more than the margin left, a cold key makes one token-endpoint call however many wait,
//! Entra's refusals are remembered briefly, OBO tokens stay per user, and claims challenges never cache.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::assertions::{assert_error, assert_issued, issued_claims};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{SQL_RESOURCE, USER_OID, USER2_OID, sql_request, sql_user_lane};

async fn client_credentials_calls(emulator: &TestEmulator) -> u64 {
    emulator.stats().await["token_requests"]["client_credentials"]
        .as_u64()
        .expect("client_credentials counter")
}

async fn obo_calls(emulator: &TestEmulator) -> u64 {
    emulator.stats().await["token_requests"]["obo"]
        .as_u64()
        .expect("obo counter")
}

fn expires_in(body: &Value) -> u64 {
    body["expires_in"].as_u64().expect("expires_in is a number")
}

#[tokio::test]
async fn second_identical_request_is_served_from_the_cache() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    // Act
    let first = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;
    let second = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    // Assert
    assert_eq!(client_credentials_calls(&emulator).await, 1);
    assert_eq!(second["access_token"], first["access_token"]);
    assert!(
        expires_in(&second) <= expires_in(&first),
        "expires_in grew from {} to {}",
        expires_in(&first),
        expires_in(&second)
    );
    let lines = broker.wait_for_audit_lines(2).await;
    let hits: Vec<&Value> = lines.iter().map(|line| &line["cache_hit"]).collect();
    assert_eq!(
        hits,
        [&json!(false), &json!(true)],
        "audit lines: {lines:#?}"
    );
}

#[tokio::test]
async fn token_with_less_life_than_the_margin_is_never_served_from_the_cache() {
    // Arrange: Entra issues 200-second tokens; the default margin is 300 seconds.
    let emulator = TestEmulator::start().await;
    emulator.set_token_lifetime(200).await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    // Act
    let first = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;
    let second = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    // Assert
    assert_eq!(client_credentials_calls(&emulator).await, 2);
    for body in [&first, &second] {
        assert!(
            expires_in(body) <= 200,
            "expires_in is {}",
            expires_in(body)
        );
    }
}

#[tokio::test]
async fn zero_margin_serves_a_full_lifetime_token_from_the_cache() {
    let emulator = TestEmulator::start().await;
    emulator.set_token_lifetime(3599).await;
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_TOKEN_MARGIN_SECONDS", "0")]).await;
    let caller = emulator.msi_token().await;

    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;
    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    assert_eq!(client_credentials_calls(&emulator).await, 1);
}

#[tokio::test]
async fn fifty_concurrent_requests_for_a_cold_scope_make_one_token_call() {
    // Arrange: the token endpoint takes 700 ms once, so that every request arrives while it is cold.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    emulator
        .inject_fault("token", "slow", json!({"delay_ms": 700, "count": 1}))
        .await;

    // Act
    let responses = join_all((0..50).map(|_| broker.get_sp_token(&caller, sql_request()))).await;

    // Assert
    let mut tokens = Vec::new();
    for response in responses {
        tokens.push(assert_issued(response).await["access_token"].clone());
    }
    assert_eq!(client_credentials_calls(&emulator).await, 1);
    assert!(
        tokens.iter().all(|token| *token == tokens[0]),
        "the 50 answers carry different tokens"
    );
    let lines = broker.wait_for_audit_lines(50).await;
    let misses = lines.iter().filter(|l| l["cache_hit"] == false).count();
    assert_eq!(misses, 1, "audit lines that made the token call");
}

#[tokio::test]
async fn concurrent_requests_for_a_cold_scope_share_one_refusal() {
    // Arrange: a resource the tenant does not have (AADSTS500011), and a token endpoint that takes
    // 700 ms to say so, so that every request arrives while the first exchange is in flight.
    let emulator = TestEmulator::start().await;
    let scope = "api://unknown-app/.default";
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_EXTRA_SCOPES", scope)]).await;
    let caller = emulator.msi_token().await;
    emulator
        .inject_fault("token", "slow", json!({"delay_ms": 700, "count": 1}))
        .await;

    // Act
    let responses =
        join_all((0..30).map(|_| broker.get_sp_token(&caller, json!({"targetScope": scope}))))
            .await;

    // Assert
    for response in responses {
        assert_error(response, 500, "scope_rejected_by_entra").await;
    }
    assert_eq!(client_credentials_calls(&emulator).await, 1);
}

#[tokio::test]
async fn scope_entra_refused_is_refused_from_memory_on_the_next_request() {
    // Arrange: the scope map allows a resource the tenant does not have (AADSTS500011).
    let emulator = TestEmulator::start().await;
    let scope = "api://unknown-app/.default";
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_EXTRA_SCOPES", scope)]).await;
    let caller = emulator.msi_token().await;

    // Act
    let first = broker
        .get_sp_token(&caller, json!({"targetScope": scope}))
        .await;
    let second = broker
        .get_sp_token(&caller, json!({"targetScope": scope}))
        .await;

    // Assert
    assert_error(first, 500, "scope_rejected_by_entra").await;
    assert_error(second, 500, "scope_rejected_by_entra").await;
    assert_eq!(client_credentials_calls(&emulator).await, 1);
}

#[tokio::test]
async fn same_user_with_the_same_token_makes_one_obo_call() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.user_token().await;

    let first = assert_issued(broker.token(&caller, sql_user_lane()).await).await;
    let second = assert_issued(broker.token(&caller, sql_user_lane()).await).await;

    assert_eq!(obo_calls(&emulator).await, 1);
    assert_eq!(second["access_token"], first["access_token"]);
}

#[tokio::test]
async fn one_users_cached_obo_token_is_never_served_to_another_user() {
    // Arrange: Ana's token is cached first.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let ana = emulator.user_token().await;
    let ben = emulator.second_user_token().await;
    let for_ana = assert_issued(broker.token(&ana, sql_user_lane()).await).await;

    // Act
    let for_ben = assert_issued(broker.token(&ben, sql_user_lane()).await).await;

    // Assert
    assert_eq!(obo_calls(&emulator).await, 2);
    assert_ne!(for_ben["access_token"], for_ana["access_token"]);
    assert_eq!(issued_claims(&for_ana)["oid"], USER_OID);
    assert_eq!(issued_claims(&for_ben)["oid"], USER2_OID);
}

#[tokio::test]
async fn mfa_claims_challenge_is_never_served_from_the_cache() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    emulator
        .obo_policy(USER_OID, Some(SQL_RESOURCE), "mfa")
        .await;
    let caller = emulator.user_token().await;

    for attempt in 1..=2 {
        let response = broker.token(&caller, sql_user_lane()).await;
        let body = assert_error(response, 401, "interaction_required").await;
        assert_eq!(body["aadsts"], 50076, "attempt {attempt}");
    }

    assert_eq!(obo_calls(&emulator).await, 2);
}
