//! Secretless broker credentials (issue 10): a client certificate (Key Vault or file) and the Function
//! App's user-assigned managed identity as a federated credential, for both grants, with rotation and
//! each failure's answer, and nothing secret in any log line.

use serde_json::json;

use crate::helpers::assertions::{
    assert_error, assert_issued, assert_no_line_reveals, issued_claims, json_body,
};
use crate::helpers::broker::TestBroker;
use crate::helpers::credentials::{
    CERTIFICATE_SECRET, app_caller_asks_for_sql, assert_client_credentials,
    caller_with_a_cached_token, certificate_broker, certificate_file_broker, health,
    identity_broker, identity_settings, thumbprint, trusted_identity_broker, vault_certificate,
};
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{
    BROKER_IDENTITY_CLIENT_ID, MSI_OID, USER_OID, sql_request, sql_user_lane, storage_request,
};

/// Asserts 500 `broker_credentials_rejected` and an audit line naming the AADSTS code and the
/// credential used.
async fn assert_credential_rejected(
    broker: &TestBroker,
    response: reqwest::Response,
    aadsts: u64,
    kind: &str,
    version: &str,
) {
    assert_error(response, 500, "broker_credentials_rejected").await;
    let lines = broker.wait_for_audit_lines(1).await;
    let line = lines.last().expect("an audit line");
    assert_eq!(
        (
            &line["aadsts"],
            &line["credential_kind"],
            &line["credential_version"]
        ),
        (&json!(aadsts), &json!(kind), &json!(version)),
        "audit line {line}"
    );
    let warned = broker.stdout_lines().iter().any(|l| {
        l.contains("the broker's own credential was not accepted")
            && l.contains(&aadsts.to_string())
    });
    assert!(warned, "no warning line names AADSTS{aadsts}");
}

#[tokio::test]
async fn certificate_from_key_vault_issues_tokens_by_both_grants() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let certificate = vault_certificate(&emulator).await;
    let broker = certificate_broker(&emulator, &[]).await;

    // Act
    let service = app_caller_asks_for_sql(&emulator, &broker).await;
    let user = broker
        .token(&emulator.user_token().await, sql_user_lane())
        .await;

    // Assert
    assert_eq!(assert_issued(service).await["caller"]["oid"], MSI_OID);
    assert_eq!(assert_issued(user).await["lane"], "user");
    let stats = emulator.stats().await;
    assert_eq!(
        stats["client_assertions"]["certificate"], 2,
        "stats: {stats}"
    );
    let body = health(&broker).await;
    assert_eq!(body["credential"]["kind"], "certificate", "health: {body}");
    assert_eq!(
        body["credential"]["thumbprint_sha256"], certificate["thumbprint_sha256"],
        "health: {body}"
    );
    assert!(body["credential"]["days_left"].as_i64().unwrap_or(0) >= 364);
}

#[tokio::test]
async fn pem_certificate_in_key_vault_issues_tokens() {
    let emulator = TestEmulator::start().await;
    emulator
        .make_certificate(json!({"vault_secret": CERTIFICATE_SECRET, "vault_format": "pem"}))
        .await;
    let broker = certificate_broker(&emulator, &[]).await;

    let response = app_caller_asks_for_sql(&emulator, &broker).await;

    assert_issued(response).await;
}

#[tokio::test]
async fn certificate_file_issues_tokens_by_both_grants() {
    // Arrange: the PEM the emulator made, written where App Service would put a certificate.
    let emulator = TestEmulator::start().await;
    let certificate = emulator.make_certificate(json!({})).await;
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}.pem", thumbprint(&certificate)));
    let broker = certificate_file_broker(&emulator, &certificate, &path, &[]).await;

    // Act
    let service = app_caller_asks_for_sql(&emulator, &broker).await;
    let user = broker
        .token(&emulator.user_token().await, sql_user_lane())
        .await;

    // Assert
    assert_issued(service).await;
    assert_issued(user).await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn rotated_certificate_is_used_without_restart_after_entra_refuses_the_old_one() {
    // Arrange: a broker that would not re-read Key Vault for an hour.
    let emulator = TestEmulator::start().await;
    let old = vault_certificate(&emulator).await;
    let broker =
        certificate_broker(&emulator, &[("BROKER_ALLOWLIST_REFRESH_SECONDS", "3600")]).await;
    let caller = caller_with_a_cached_token(&emulator, &broker).await;

    // Act: the new certificate is stored and registered, the old one removed from the app.
    let new = vault_certificate(&emulator).await;
    emulator.unregister_certificate(thumbprint(&old)).await;
    emulator.reset_stats().await;
    let response = broker.get_sp_token(&caller, storage_request()).await;

    // Assert: refused once (AADSTS700027), re-read, retried once with the new one.
    assert_issued(response).await;
    assert_client_credentials(&emulator.stats().await, 2, 1);
    let body = health(&broker).await;
    assert_eq!(
        body["credential"]["thumbprint_sha256"], new["thumbprint_sha256"],
        "health: {body}"
    );
}

#[tokio::test]
async fn certificate_not_registered_on_the_app_is_500_broker_credentials_rejected() {
    let emulator = TestEmulator::start().await;
    let certificate = emulator
        .make_certificate(json!({"vault_secret": CERTIFICATE_SECRET, "register": false}))
        .await;
    let broker = certificate_broker(&emulator, &[]).await;

    let response = app_caller_asks_for_sql(&emulator, &broker).await;

    assert_credential_rejected(
        &broker,
        response,
        700027,
        "certificate",
        thumbprint(&certificate),
    )
    .await;
}

#[tokio::test]
async fn expired_certificate_is_never_sent_and_is_500_broker_credentials_rejected() {
    // Arrange: registered on the app, but past its notAfter.
    let emulator = TestEmulator::start().await;
    emulator
        .make_certificate(json!({"vault_secret": CERTIFICATE_SECRET, "valid_days": -2}))
        .await;
    let broker = certificate_broker(&emulator, &[]).await;

    // Act
    let response = app_caller_asks_for_sql(&emulator, &broker).await;

    // Assert
    let body = assert_error(response, 500, "broker_credentials_rejected").await;
    assert!(body.get("aadsts").is_none(), "body: {body}");
    let stats = emulator.stats().await;
    assert_eq!(
        stats["token_requests"]["client_credentials"], 0,
        "stats: {stats}"
    );
    let lines = broker.wait_for_audit_lines(1).await;
    assert_eq!(
        lines.last().expect("audit")["detail"],
        "certificate_expired"
    );
    let body = health(&broker).await;
    assert_eq!(
        (&body["status"], &body["reasons"]),
        (&json!("not_ready"), &json!(["client_certificate_expired"])),
        "health: {body}"
    );
    assert!(body["credential"]["days_left"].as_i64().unwrap_or(0) < 0);
}

#[tokio::test]
async fn certificate_expiring_within_14_days_is_a_degraded_reason_while_serving() {
    let emulator = TestEmulator::start().await;
    emulator
        .make_certificate(json!({"vault_secret": CERTIFICATE_SECRET, "valid_days": 5}))
        .await;
    let broker = certificate_broker(&emulator, &[]).await;

    let response = broker.health().await;

    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(
        (&body["status"], &body["reasons"]),
        (
            &json!("degraded"),
            &json!(["client_certificate_expires_soon"])
        ),
        "health: {body}"
    );
    assert_eq!(body["credential"]["days_left"], 4, "health: {body}");
}

#[tokio::test]
async fn managed_identity_issues_tokens_by_both_grants_as_a_federated_credential() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = trusted_identity_broker(&emulator, &[]).await;

    // Act
    let service = app_caller_asks_for_sql(&emulator, &broker).await;
    let user = broker
        .token(&emulator.user_token().await, sql_user_lane())
        .await;

    // Assert
    assert_issued(service).await;
    assert_eq!(issued_claims(&assert_issued(user).await)["oid"], USER_OID);
    let stats = emulator.stats().await;
    assert_eq!(stats["client_assertions"]["federated"], 2, "stats: {stats}");
    let body = health(&broker).await;
    assert_eq!(
        (
            &body["credential"]["kind"],
            &body["credential"]["client_id"]
        ),
        (
            &json!("managed-identity"),
            &json!(BROKER_IDENTITY_CLIENT_ID)
        ),
        "health: {body}"
    );
    assert!(body["credential"]["identity_token_age_seconds"].is_u64());
}

#[tokio::test]
async fn revoked_federated_record_is_500_broker_credentials_rejected() {
    let emulator = TestEmulator::start().await;
    let record = emulator.add_federated_credential().await;
    emulator.revoke_federated_credential(&record).await;
    let broker = identity_broker(&emulator, &[]).await;

    let response = app_caller_asks_for_sql(&emulator, &broker).await;

    assert_credential_rejected(
        &broker,
        response,
        70021,
        "managed-identity",
        BROKER_IDENTITY_CLIENT_ID,
    )
    .await;
}

#[tokio::test]
async fn identity_endpoint_down_is_502_managed_identity_unavailable() {
    // Arrange: started (Key Vault read) before the identity endpoint goes down.
    let emulator = TestEmulator::start().await;
    let broker = trusted_identity_broker(&emulator, &[]).await;
    emulator
        .inject_fault("identity", "down", json!({"count": 100}))
        .await;

    // Act
    let response = app_caller_asks_for_sql(&emulator, &broker).await;

    // Assert
    assert_error(response, 502, "managed_identity_unavailable").await;
    let stats = emulator.stats().await;
    assert_eq!(
        stats["token_requests"]["client_credentials"], 0,
        "stats: {stats}"
    );
}

#[tokio::test]
async fn hundred_concurrent_cold_requests_cost_one_identity_call_and_one_token_call() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = trusted_identity_broker(&emulator, &[]).await;
    let caller = emulator.msi_token().await;
    emulator.reset_stats().await;

    // Act
    let requests = (0..100).map(|_| broker.get_sp_token(&caller, sql_request()));
    let responses = futures_util::future::join_all(requests).await;

    // Assert
    for response in responses {
        assert_issued(response).await;
    }
    let stats = emulator.stats().await;
    assert_eq!(
        (
            &stats["identity_requests"],
            &stats["token_requests"]["client_credentials"]
        ),
        (&json!(1), &json!(1)),
        "stats: {stats}"
    );
}

#[tokio::test]
async fn no_log_line_reveals_an_assertion_a_private_key_or_an_identity_token() {
    // Arrange: one broker per kind, each used for both grants.
    let emulator = TestEmulator::start().await;
    let certificate = vault_certificate(&emulator).await;
    emulator.add_federated_credential().await;
    let brokers = [
        certificate_broker(&emulator, &[]).await,
        identity_broker(&emulator, &[]).await,
    ];

    // Act
    for broker in &brokers {
        assert_issued(app_caller_asks_for_sql(&emulator, broker).await).await;
        assert_issued(
            broker
                .token(&emulator.user_token().await, sql_user_lane())
                .await,
        )
        .await;
    }

    // Assert
    let assertions = emulator.client_assertions().await;
    assert_eq!(assertions.len(), 4, "one assertion per exchange");
    let pem = certificate["pem"].as_str().expect("pem");
    let key_lines: Vec<&str> = pem
        .lines()
        .take_while(|line| !line.contains("END PRIVATE KEY"))
        .filter(|line| line.len() > 16 && !line.starts_with("-----"))
        .collect();
    let pkcs12 = certificate["pkcs12"].as_str().expect("pkcs12");
    let mut secrets: Vec<(&str, &str)> = assertions
        .iter()
        .map(|a| ("a client assertion or identity token", a.as_str()))
        .collect();
    secrets.extend(key_lines.iter().map(|line| ("a private key line", *line)));
    secrets.push(("the PKCS#12 file", pkcs12));
    for broker in &brokers {
        assert_no_line_reveals(&broker.all_lines(), secrets.iter().copied());
    }
}

#[tokio::test]
async fn failed_identity_refresh_keeps_serving_the_still_valid_identity_token() {
    // Arrange: tokens of 240 s, so the held identity token is always due for its refresh ahead
    // (5 minutes before expiry) but still presentable (more than 60 s left).
    let emulator = TestEmulator::start().await;
    emulator.add_federated_credential().await;
    emulator.set_token_lifetime(240).await;
    let mut settings = identity_settings(&emulator, &[("BROKER_TOKEN_MARGIN_SECONDS", "30")]);
    settings.retain(|(name, _)| name != "BROKER_ALLOWLIST_REFRESH_SECONDS");
    let broker = TestBroker::spawn_with_settings(settings).await;
    let caller = caller_with_a_cached_token(&emulator, &broker).await;

    // Act: the identity endpoint goes down; a cold key needs the identity token again.
    emulator
        .inject_fault("identity", "down", json!({"count": 1000}))
        .await;
    let response = broker.get_sp_token(&caller, storage_request()).await;

    // Assert
    assert_issued(response).await;
    let stats = emulator.stats().await;
    assert_eq!(stats["client_assertions"]["federated"], 2, "stats: {stats}");
}
