//! The broker's own credential without a client secret (issue 10): a client certificate (Key Vault or
//! file) or the Function App's user-assigned managed identity as a federated credential, and what
//! health and the emulator's counters say of it.

use std::path::Path;

use serde_json::{Value, json};

use crate::helpers::assertions::{assert_issued, json_body};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{BROKER_IDENTITY_CLIENT_ID, sql_request};

pub const CERTIFICATE_SECRET: &str = "broker-certificate";

/// The emulator's broker settings without any client secret, plus `extra`.
pub fn secretless(emulator: &TestEmulator, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut settings = emulator.broker_settings();
    settings.retain(|(name, _)| name != "BROKER_CLIENT_SECRET");
    for (name, value) in extra {
        settings.retain(|(existing, _)| existing != name);
        settings.push(((*name).to_owned(), (*value).to_owned()));
    }
    settings
}

/// A registered certificate, valid for a year, stored in Key Vault secret `broker-certificate`.
pub async fn vault_certificate(emulator: &TestEmulator) -> Value {
    emulator
        .make_certificate(json!({"vault_secret": CERTIFICATE_SECRET}))
        .await
}

/// A broker whose credential is the certificate in Key Vault secret `broker-certificate`.
pub async fn certificate_broker(emulator: &TestEmulator, extra: &[(&str, &str)]) -> TestBroker {
    let mut settings = vec![
        ("BROKER_CREDENTIAL", "certificate"),
        ("BROKER_CERTIFICATE_NAME", CERTIFICATE_SECRET),
    ];
    settings.extend_from_slice(extra);
    TestBroker::spawn_with_settings(secretless(emulator, &settings)).await
}

/// A broker whose credential is `certificate`'s PEM, written to `path` as App Service would put it.
pub async fn certificate_file_broker(
    emulator: &TestEmulator,
    certificate: &Value,
    path: &Path,
    extra: &[(&str, &str)],
) -> TestBroker {
    std::fs::write(path, certificate["pem"].as_str().expect("pem")).expect("write the PEM");
    let path_text = path.display().to_string();
    let mut settings = vec![
        ("BROKER_CREDENTIAL", "certificate"),
        ("BROKER_CERTIFICATE_PATH", path_text.as_str()),
    ];
    settings.extend_from_slice(extra);
    TestBroker::spawn_with_settings(secretless(emulator, &settings)).await
}

/// Secretless settings with the broker's user-assigned identity as the federated credential, plus
/// `extra`.
pub fn identity_settings(emulator: &TestEmulator, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut settings = vec![
        ("BROKER_CREDENTIAL", "managed-identity"),
        (
            "BROKER_MANAGED_IDENTITY_CLIENT_ID",
            BROKER_IDENTITY_CLIENT_ID,
        ),
    ];
    settings.extend_from_slice(extra);
    secretless(emulator, &settings)
}

/// A broker whose credential is its user-assigned identity, whether or not the app trusts it.
pub async fn identity_broker(emulator: &TestEmulator, extra: &[(&str, &str)]) -> TestBroker {
    TestBroker::spawn_with_settings(identity_settings(emulator, extra)).await
}

/// Makes the app trust the broker's identity as a federated credential, then an [`identity_broker`].
pub async fn trusted_identity_broker(
    emulator: &TestEmulator,
    extra: &[(&str, &str)],
) -> TestBroker {
    emulator.add_federated_credential().await;
    identity_broker(emulator, extra).await
}

/// The answer to the default managed identity (an app caller) asking GetSPToken for Azure SQL.
pub async fn app_caller_asks_for_sql(
    emulator: &TestEmulator,
    broker: &TestBroker,
) -> reqwest::Response {
    broker
        .get_sp_token(&emulator.msi_token().await, sql_request())
        .await
}

/// The default managed identity's token, once the broker has issued it a SQL token (now cached).
pub async fn caller_with_a_cached_token(emulator: &TestEmulator, broker: &TestBroker) -> String {
    let caller = emulator.msi_token().await;
    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;
    caller
}

/// The health body, whatever its status.
pub async fn health(broker: &TestBroker) -> Value {
    json_body(broker.health().await).await
}

/// A certificate's SHA-256 thumbprint, as the emulator made it and health names it.
pub fn thumbprint(certificate: &Value) -> &str {
    certificate["thumbprint_sha256"]
        .as_str()
        .expect("thumbprint")
}

/// Asserts the emulator's `stats` count `requests` client-credentials token requests and `errors`
/// refused ones.
#[track_caller]
pub fn assert_client_credentials(stats: &Value, requests: u64, errors: u64) {
    assert_eq!(
        (
            &stats["token_requests"]["client_credentials"],
            &stats["token_errors"]
        ),
        (&json!(requests), &json!(errors)),
        "stats: {stats}"
    );
}
