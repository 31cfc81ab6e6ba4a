//! Request budgets (issue 5 item 4): per caller identity and overall, answered with 429 `rate_limited`
//! and `Retry-After`, so one caller can neither starve the others nor burn the tenant's Entra quota.

use serde_json::json;

use crate::helpers::assertions::{assert_error, assert_issued, header};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{MSI_OID, OTHER_MSI_OID, sql_request};

/// A broker with these budgets that also admits the second managed identity, and both callers' tokens.
async fn broker_with(
    emulator: &TestEmulator,
    budgets: &[(&str, &str)],
) -> (TestBroker, String, String) {
    let mut settings = vec![("BROKER_ALLOWED_MSI_OIDS", OTHER_MSI_OID)];
    settings.extend_from_slice(budgets);
    let broker = TestBroker::spawn_with(emulator, &settings).await;
    let noisy = emulator.msi_token().await;
    let quiet = emulator
        .mint(json!({"kind": "msi", "oid": OTHER_MSI_OID}))
        .await;
    (broker, noisy, quiet)
}

/// Three calls from `caller`, each served.
async fn spend_three(broker: &TestBroker, caller: &str) {
    for _ in 0..3 {
        assert_issued(broker.get_sp_token(caller, sql_request()).await).await;
    }
}

#[tokio::test]
async fn fourth_request_in_a_minute_from_one_caller_is_429_with_retry_after() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let (broker, noisy, _) = broker_with(&emulator, &[("BROKER_RATE_LIMIT_PER_CALLER", "3")]).await;
    spend_three(&broker, &noisy).await;

    // Act
    let response = broker.get_sp_token(&noisy, sql_request()).await;

    // Assert
    let retry_after = header(&response, "retry-after").unwrap_or_default();
    assert_error(response, 429, "rate_limited").await;
    assert!(
        retry_after
            .parse::<u64>()
            .is_ok_and(|seconds| (1..=60).contains(&seconds)),
        "Retry-After is {retry_after:?}"
    );
}

#[tokio::test]
async fn another_caller_is_served_while_one_caller_is_rate_limited() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let (broker, noisy, quiet) =
        broker_with(&emulator, &[("BROKER_RATE_LIMIT_PER_CALLER", "3")]).await;
    spend_three(&broker, &noisy).await;
    let refused = broker.get_sp_token(&noisy, sql_request()).await;
    assert_error(refused, 429, "rate_limited").await;

    // Act
    let response = broker.get_sp_token(&quiet, sql_request()).await;

    // Assert
    let body = assert_issued(response).await;
    assert_eq!(body["caller"]["oid"], OTHER_MSI_OID);
}

#[tokio::test]
async fn overall_limit_refuses_the_third_request_from_anyone() {
    // Arrange: two different callers spend the overall budget of two.
    let emulator = TestEmulator::start().await;
    let (broker, noisy, quiet) = broker_with(&emulator, &[("BROKER_RATE_LIMIT_TOTAL", "2")]).await;
    assert_issued(broker.get_sp_token(&noisy, sql_request()).await).await;
    assert_issued(broker.get_sp_token(&quiet, sql_request()).await).await;

    // Act
    let third_noisy = broker.get_sp_token(&noisy, sql_request()).await;
    let third_quiet = broker.get_sp_token(&quiet, sql_request()).await;

    // Assert
    assert_error(third_noisy, 429, "rate_limited").await;
    assert_error(third_quiet, 429, "rate_limited").await;
}

#[tokio::test]
async fn rate_limited_request_writes_a_denied_audit_line() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let (broker, noisy, _) = broker_with(&emulator, &[("BROKER_RATE_LIMIT_PER_CALLER", "3")]).await;
    spend_three(&broker, &noisy).await;

    // Act
    let response = broker.get_sp_token(&noisy, sql_request()).await;
    assert_eq!(response.status(), 429);

    // Assert
    let lines = broker.wait_for_audit_lines(4).await;
    let line = lines
        .get(3)
        .unwrap_or_else(|| panic!("audit lines: {lines:#?}"));
    assert_eq!(
        (&line["decision"], &line["reason"], &line["status"]),
        (&json!("denied"), &json!("rate_limited"), &json!(429)),
        "audit line {line}"
    );
    assert_eq!(line["caller_oid"], MSI_OID);
}
