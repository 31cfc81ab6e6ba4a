//! The audit trail: one line per decision with who, what and the outcome, and no token or secret in
//! any line the broker writes.

use serde_json::json;

use crate::helpers::assertions::{assert_error, assert_issued};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{MSI_OID, SQL_SCOPE, USER_OID, sql_request};

#[tokio::test]
async fn issued_token_writes_one_audit_line_with_the_caller_and_scope() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    let lines = broker.wait_for_audit_lines(1).await;
    assert_eq!(lines.len(), 1, "audit lines: {lines:#?}");
    let line = &lines[0];
    assert_eq!(line["decision"], "issued");
    assert_eq!(line["reason"], "ok");
    assert_eq!(line["status"], 200);
    assert_eq!(line["caller_oid"], MSI_OID);
    assert_eq!(line["caller_type"], "MSI");
    assert_eq!(line["scope"], SQL_SCOPE);
    assert!(
        line["request_id"].as_str().is_some_and(is_guid),
        "request_id is not the host's invocation id: {}",
        line["request_id"]
    );
}

/// The shape of the GUID the host sends as `X-Azure-Functions-InvocationId`.
fn is_guid(text: &str) -> bool {
    let groups: Vec<usize> = text.split('-').map(str::len).collect();
    groups == [8, 4, 4, 4, 12] && text.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

#[tokio::test]
async fn refused_caller_writes_one_denied_audit_line_with_the_reason() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.user_token().await;

    assert_error(
        broker.get_sp_token(&caller, sql_request()).await,
        403,
        "caller_not_allowed",
    )
    .await;

    let lines = broker.wait_for_audit_lines(1).await;
    assert_eq!(lines.len(), 1, "audit lines: {lines:#?}");
    assert_eq!(lines[0]["decision"], "denied");
    assert_eq!(lines[0]["reason"], "caller_not_allowed");
    assert_eq!(lines[0]["status"], 403);
    assert_eq!(lines[0]["caller_oid"], USER_OID);
}

#[tokio::test]
async fn no_log_line_contains_a_token_or_the_client_secret() {
    // Arrange: issue, refuse and exchange, so that every path has logged.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let msi = emulator.msi_token().await;
    let user = emulator.user_token().await;
    let expired = emulator
        .mint(json!({"kind": "msi", "claims": {"exp": 1}}))
        .await;

    // Act
    let service = assert_issued(broker.get_sp_token(&msi, sql_request()).await).await;
    let obo = assert_issued(broker.token(&user, json!({"audience": "sql"})).await).await;
    assert_error(
        broker.get_sp_token(&expired, sql_request()).await,
        401,
        "invalid_token",
    )
    .await;
    broker.wait_for_audit_lines(3).await;

    // Assert
    let secrets = [
        ("the managed identity's caller token", msi.as_str()),
        ("the user's caller token", user.as_str()),
        ("the expired caller token", expired.as_str()),
        (
            "the issued SQL token",
            service["access_token"].as_str().unwrap_or(""),
        ),
        (
            "the issued OBO token",
            obo["access_token"].as_str().unwrap_or(""),
        ),
        (
            "the client secret",
            emulator.ready.broker_client_secret.as_str(),
        ),
    ];
    let lines = broker.all_lines();
    assert!(
        lines.len() >= 3,
        "too few lines to prove anything: {lines:#?}"
    );
    for (what, secret) in secrets {
        assert!(secret.len() > 16, "{what} is too short to search for");
        let signature = secret.rsplit('.').next().unwrap_or(secret);
        for line in &lines {
            assert!(!line.contains(secret), "a log line contains {what}");
            assert!(
                !line.contains(signature),
                "a log line contains the signature of {what}"
            );
        }
    }
}
