//! `POST /api/GetSPToken`: who gets the broker's service-principal token, for which scopes, and how
//! the response looks.

use serde_json::json;

use crate::helpers::assertions::{
    assert_error, assert_issued, assert_no_store, issued_claims, status_and_code,
};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{
    BROKER_CLIENT_ID, BROKER_SP_OID, MSI_OID, OTHER_MSI_OID, SQL_RESOURCE, SQL_SCOPE, TENANT_ID,
    USER_OID, USER_UPN, sql_request,
};

#[tokio::test]
async fn allowlisted_managed_identity_gets_a_sql_token() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    // Act
    let body = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    // Assert
    assert_eq!(body["scope"], SQL_SCOPE);
    assert_eq!(body["caller"]["type"], "MSI");
    assert_eq!(body["caller"]["oid"], MSI_OID);
    let claims = issued_claims(&body);
    assert_eq!(claims["aud"], SQL_RESOURCE);
    assert_eq!(claims["oid"], BROKER_SP_OID);
    assert_eq!(claims["appid"], BROKER_CLIENT_ID);
    assert_eq!(claims["tid"], TENANT_ID);
    let stats = emulator.stats().await;
    assert_eq!(stats["token_requests"]["client_credentials"], 1);
}

#[tokio::test]
async fn managed_identity_with_a_v1_token_is_served() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.mint(json!({"kind": "msi", "version": 1})).await;

    let body = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    assert_eq!(body["caller"]["type"], "MSI");
    assert_eq!(body["caller"]["oid"], MSI_OID);
}

#[tokio::test]
async fn managed_identity_with_a_v2_token_is_served() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.mint(json!({"kind": "msi", "version": 2})).await;

    let body = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    assert_eq!(body["caller"]["type"], "MSI");
    assert_eq!(body["caller"]["oid"], MSI_OID);
}

#[tokio::test]
async fn user_is_served_when_user_access_is_tenant() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_USER_ACCESS", "tenant")]).await;
    let caller = emulator.user_token().await;

    let body = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    assert_eq!(body["caller"]["type"], "USER");
    assert_eq!(body["caller"]["display"], USER_UPN);
    assert_eq!(body["caller"]["oid"], USER_OID);
    assert_eq!(issued_claims(&body)["oid"], BROKER_SP_OID);
}

#[tokio::test]
async fn user_with_a_v1_token_is_served_when_user_access_is_tenant() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_USER_ACCESS", "tenant")]).await;
    let caller = emulator.mint(json!({"version": 1})).await;

    let body = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    assert_eq!(body["caller"]["type"], "USER");
    assert_eq!(body["caller"]["display"], USER_UPN);
    assert_eq!(body["caller"]["oid"], USER_OID);
}

#[tokio::test]
async fn user_is_refused_with_default_settings() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.user_token().await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    assert_error(response, 403, "caller_not_allowed").await;
    assert_eq!(
        emulator.stats().await["token_requests"]["client_credentials"],
        0
    );
}

#[tokio::test]
async fn managed_identity_not_on_the_allowlist_is_refused() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator
        .mint(json!({"kind": "msi", "oid": OTHER_MSI_OID}))
        .await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    assert_error(response, 403, "caller_not_allowed").await;
    assert_eq!(
        emulator.stats().await["token_requests"]["client_credentials"],
        0
    );
}

#[tokio::test]
async fn scope_outside_the_map_is_refused() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    let response = broker
        .get_sp_token(
            &caller,
            json!({"targetScope": "https://graph.microsoft.com/.default"}),
        )
        .await;

    assert_error(response, 403, "scope_not_allowed").await;
    assert_eq!(
        emulator.stats().await["token_requests"]["client_credentials"],
        0
    );
}

#[tokio::test]
async fn malformed_scopes_are_rejected_as_invalid_scope() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    let cases = [
        (
            "several scopes",
            "https://database.windows.net/.default https://storage.azure.com/.default",
        ),
        ("offline_access", "offline_access"),
        ("openid", "openid"),
        ("no /.default", "https://database.windows.net"),
        (
            "a delegated scope",
            "https://database.windows.net/user_impersonation",
        ),
        (
            "a control character",
            "https://database.windows.net/.default\u{7}",
        ),
        ("a newline", "https://database.windows.net/.default\n"),
    ];

    for (case, scope) in cases {
        let response = broker
            .get_sp_token(&caller, json!({"targetScope": scope}))
            .await;
        assert_eq!(
            status_and_code(response).await,
            (400, "invalid_scope".to_owned()),
            "case `{case}`"
        );
    }
    assert_eq!(
        emulator.stats().await["token_requests"]["client_credentials"],
        0
    );
}

#[tokio::test]
async fn target_scope_that_is_not_a_string_is_an_invalid_request() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    for (case, body) in [
        ("a number", json!({"targetScope": 42})),
        ("an array", json!({"targetScope": [SQL_SCOPE]})),
        ("null", json!({"targetScope": null})),
        ("missing", json!({})),
    ] {
        let response = broker.get_sp_token(&caller, body).await;
        assert_eq!(
            status_and_code(response).await,
            (400, "invalid_request".to_owned()),
            "case `{case}`"
        );
    }
}

#[tokio::test]
async fn route_is_matched_case_insensitively() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    let bearer = format!("Bearer {caller}");

    let response = broker
        .post_raw(
            "/api/getsptoken",
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            sql_request().to_string(),
        )
        .await;

    let body = assert_issued(response).await;
    assert_eq!(body["caller"]["oid"], MSI_OID);
}

#[tokio::test]
async fn token_response_is_marked_no_store() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    let response = broker.get_sp_token(&caller, sql_request()).await;

    assert_eq!(response.status(), 200);
    assert_no_store(&response);
}

#[tokio::test]
async fn expires_in_is_positive_and_within_the_token_lifetime() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    let body = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    let expires_in = body["expires_in"].as_u64().expect("expires_in is a number");
    assert!(
        (1..=3599).contains(&expires_in),
        "expires_in is {expires_in}"
    );
}

#[tokio::test]
async fn expires_in_follows_the_lifetime_entra_gave_the_token() {
    let emulator = TestEmulator::start().await;
    emulator.set_token_lifetime(1200).await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    let body = assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    let expires_in = body["expires_in"].as_u64().expect("expires_in is a number");
    assert!(
        (1100..=1200).contains(&expires_in),
        "expires_in is {expires_in}"
    );
}
