//! Start-up settings: a missing or malformed setting stops the broker with exit code 1 and one line
//! naming the variable, and no line ever carries the client secret.

use crate::helpers::broker::settings;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::host::BrokerProcess;

/// Starts the broker with `app_settings`, waits for it to exit, and checks the exit code and lines.
async fn assert_start_up_stops_naming(
    emulator: &TestEmulator,
    app_settings: &[(String, String)],
    variable: &str,
) {
    let mut process = BrokerProcess::launch(app_settings);

    let status = process.wait_for_exit().await;

    let mut lines = process.stdout_lines();
    lines.extend(process.stderr_lines());
    assert_eq!(status.code(), Some(1), "exit status; lines: {lines:#?}");
    let naming: Vec<&String> = lines.iter().filter(|l| l.contains(variable)).collect();
    assert_eq!(naming.len(), 1, "lines naming {variable}: {lines:#?}");
    let secret = &emulator.ready.broker_client_secret;
    assert!(
        lines.iter().all(|line| !line.contains(secret.as_str())),
        "a line carries the client secret"
    );
}

#[tokio::test]
async fn missing_tenant_id_stops_start_up_naming_the_variable() {
    let emulator = TestEmulator::start().await;
    let mut app_settings = settings(&emulator, &[]);
    app_settings.retain(|(name, _)| name != "BROKER_TENANT_ID");

    assert_start_up_stops_naming(&emulator, &app_settings, "BROKER_TENANT_ID").await;
}

#[tokio::test]
async fn malformed_tenant_id_stops_start_up_naming_the_variable() {
    let emulator = TestEmulator::start().await;
    let app_settings = settings(
        &emulator,
        &[("BROKER_TENANT_ID", "contoso.onmicrosoft.com")],
    );

    assert_start_up_stops_naming(&emulator, &app_settings, "BROKER_TENANT_ID").await;
}

#[tokio::test]
async fn malformed_refresh_period_stops_start_up_naming_the_variable() {
    let emulator = TestEmulator::start().await;
    let app_settings = settings(&emulator, &[("BROKER_ALLOWLIST_REFRESH_SECONDS", "2m")]);

    assert_start_up_stops_naming(&emulator, &app_settings, "BROKER_ALLOWLIST_REFRESH_SECONDS")
        .await;
}

#[tokio::test]
async fn client_secret_beside_the_certificate_kind_stops_start_up_naming_both_settings() {
    // The emulator's settings carry BROKER_CLIENT_SECRET; the certificate kind contradicts it.
    let emulator = TestEmulator::start().await;
    let app_settings = settings(
        &emulator,
        &[
            ("BROKER_CREDENTIAL", "certificate"),
            ("BROKER_CERTIFICATE_NAME", "broker-certificate"),
        ],
    );

    assert_start_up_stops_naming(
        &emulator,
        &app_settings,
        "BROKER_CLIENT_SECRET cannot be set with BROKER_CREDENTIAL=certificate",
    )
    .await;
}

#[tokio::test]
async fn managed_identity_kind_without_its_client_id_stops_start_up_naming_it() {
    let emulator = TestEmulator::start().await;
    let mut app_settings = settings(&emulator, &[("BROKER_CREDENTIAL", "managed-identity")]);
    app_settings.retain(|(name, _)| name != "BROKER_CLIENT_SECRET");

    assert_start_up_stops_naming(
        &emulator,
        &app_settings,
        "BROKER_MANAGED_IDENTITY_CLIENT_ID",
    )
    .await;
}
