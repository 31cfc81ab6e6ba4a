//! The audit trail: one line per decision with who, what and the outcome, and no token, assertion or
//! secret in any line the broker writes, even after a run of hostile requests.

use serde_json::json;

use crate::helpers::assertions::{assert_error, assert_issued, assert_no_line_reveals};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{MSI_OID, MSI_RESOURCE_ID, SQL_SCOPE, USER_OID, USER2_OID, sql_request};
use crate::helpers::tokens::hostile_corpus;

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
    assert_no_line_reveals(&lines, secrets);
}

#[tokio::test]
async fn every_audit_line_names_the_request_route_decision_reason_and_status() {
    // Arrange and act: issued, refused, invalid, malformed and unsupported requests on both routes.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let (msi, user) = (emulator.msi_token().await, emulator.user_token().await);
    let bearer = format!("Bearer {msi}");
    broker.get_sp_token(&msi, sql_request()).await;
    broker.get_sp_token(&user, sql_request()).await;
    broker.get_sp_token("a.b.c", sql_request()).await;
    broker.token(&user, json!({"audience": "sql"})).await;
    broker.token(&user, json!({"audience": "graph"})).await;
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "text/plain"),
    ];
    broker.post_raw("/api/GetSPToken", &headers, "{}").await;
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    broker.post_raw("/api/token", &headers, "[]").await;

    // Assert
    let lines = broker.wait_for_audit_lines(7).await;
    assert_eq!(lines.len(), 7, "audit lines: {lines:#?}");
    for line in &lines {
        assert!(
            line["request_id"].as_str().is_some_and(is_guid),
            "request_id: {line}"
        );
        assert!(
            ["GetSPToken", "token"].contains(&line["route"].as_str().unwrap_or("")),
            "route: {line}"
        );
        assert!(
            ["issued", "denied", "failed"].contains(&line["decision"].as_str().unwrap_or("")),
            "decision: {line}"
        );
        assert!(
            line["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "reason: {line}"
        );
        assert!(
            line["status"]
                .as_u64()
                .is_some_and(|s| (200..600).contains(&s)),
            "status: {line}"
        );
    }
    let statuses: Vec<u64> = lines
        .iter()
        .filter_map(|line| line["status"].as_u64())
        .collect();
    assert_eq!(statuses, [200, 403, 401, 200, 403, 415, 400]);
}

#[tokio::test]
async fn issued_line_records_caller_scope_cache_upstream_and_correlation_id() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;

    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    let lines = broker.wait_for_audit_lines(1).await;
    let line = &lines[0];
    assert_eq!(
        [
            &line["caller_oid"],
            &line["caller_type"],
            &line["caller_display"],
            &line["scope"],
            &line["cache_hit"]
        ],
        [
            &json!(MSI_OID),
            &json!("MSI"),
            &json!(MSI_RESOURCE_ID),
            &json!(SQL_SCOPE),
            &json!(false)
        ],
        "audit line {line}"
    );
    assert!(line["upstream_ms"].is_u64(), "upstream_ms: {line}");
    assert!(
        line["correlation_id"].as_str().is_some_and(is_guid),
        "correlation_id: {line}"
    );
}

#[tokio::test]
async fn token_route_line_records_audience_lane_and_label() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.user_token().await;
    let request = json!({"audience": "sql", "lane": "user", "scope": "notebook_42"});

    assert_issued(broker.token(&caller, request).await).await;

    let lines = broker.wait_for_audit_lines(1).await;
    let line = &lines[0];
    assert_eq!(
        [
            &line["route"],
            &line["audience"],
            &line["lane"],
            &line["label"],
            &line["scope"],
            &line["caller_oid"]
        ],
        [
            &json!("token"),
            &json!("sql"),
            &json!("user"),
            &json!("notebook_42"),
            &json!(SQL_SCOPE),
            &json!(USER_OID)
        ],
        "audit line {line}"
    );
}

#[tokio::test]
async fn hostile_run_leaves_no_token_assertion_or_secret_in_any_log_line() {
    // Arrange: genuine callers, an MFA-challenged user, and the forgery corpus.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let msi = emulator.msi_token().await;
    let ana = emulator.user_token().await;
    let ben = emulator.second_user_token().await;
    emulator.obo_policy(USER2_OID, None, "mfa").await;
    let oversized = json!({"kind": "msi", "claims": {"pad": "x".repeat(20 * 1024)}});
    let jku = json!({"jku": "https://attacker.example/keys"});
    let unpublished = json!({"kind": "msi", "key": "unpublished", "header": jku});
    let mut callers: Vec<(String, String)> = vec![
        ("the managed identity's token".into(), msi.clone()),
        ("Ana's token, an OBO assertion".into(), ana.clone()),
        (
            "Ben's token, a challenged OBO assertion".into(),
            ben.clone(),
        ),
        ("a 20 KB claim token".into(), emulator.mint(oversized).await),
        (
            "an unpublished key's token".into(),
            emulator.mint(unpublished).await,
        ),
    ];
    for (case, token) in hostile_corpus(&emulator).await {
        callers.push((format!("forgery `{case}`"), token));
    }

    // Act
    let service = assert_issued(broker.get_sp_token(&msi, sql_request()).await).await;
    let obo = assert_issued(broker.token(&ana, json!({"audience": "sql"})).await).await;
    assert_error(
        broker.token(&ben, json!({"audience": "sql"})).await,
        401,
        "interaction_required",
    )
    .await;
    // The three genuine callers went above; every hostile token goes to both routes.
    for (_, token) in &callers[3..] {
        broker.get_sp_token(token, sql_request()).await;
        broker.token(token, json!({"audience": "sql"})).await;
    }
    let bearer = format!("Bearer {msi}");
    broker
        .post_raw(
            "/api/GetSPToken",
            &[("authorization", bearer.as_str())],
            "targetScope=x",
        )
        .await;
    broker
        .wait_for_audit_lines(4 + 2 * (callers.len() - 3))
        .await;

    // Assert: no full token and no signature segment, in any stdout or stderr line.
    let mut secrets = callers;
    secrets.push((
        "the issued SQL token".into(),
        service["access_token"].as_str().unwrap_or_default().into(),
    ));
    secrets.push((
        "the issued OBO token".into(),
        obo["access_token"].as_str().unwrap_or_default().into(),
    ));
    secrets.push((
        "the client secret".into(),
        emulator.ready.broker_client_secret.clone(),
    ));
    let lines = broker.all_lines();
    assert_no_line_reveals(
        &lines,
        secrets
            .iter()
            .map(|(what, secret)| (what.as_str(), secret.as_str())),
    );
}

#[tokio::test]
async fn log_filter_keeping_only_the_audit_target_still_writes_audit_lines() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_LOG", "warn,audit=info")]).await;
    let caller = emulator.msi_token().await;

    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    let lines = broker.wait_for_audit_lines(1).await;
    assert_eq!(lines.len(), 1, "audit lines: {lines:#?}");
    let routine = broker
        .stdout_lines()
        .into_iter()
        .filter(|line| line.contains(r#""level":"INFO""#) && !line.contains(r#""target":"audit""#))
        .collect::<Vec<_>>();
    assert!(
        routine.is_empty(),
        "INFO lines despite the filter: {routine:#?}"
    );
}

#[tokio::test]
async fn log_filter_without_the_audit_target_writes_no_audit_line() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_LOG", "warn")]).await;
    let caller = emulator.msi_token().await;

    assert_issued(broker.get_sp_token(&caller, sql_request()).await).await;

    // Ten times the batching interval: a line that was going to be written has been by now.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(broker.audit_lines().is_empty());
}
