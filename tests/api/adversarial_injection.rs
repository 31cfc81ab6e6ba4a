//! Hostile requests, part two (issue 5 item 2): `targetScope` and `audience` injection and out-of-range
//! configuration revisions. Each is refused with its documented status and code before any token request.

use serde_json::json;

use crate::helpers::assertions::{assert_audit_detail, assert_bodies_refused, status_and_code};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;

/// A JSON value as request body bytes.
fn body_of(value: serde_json::Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

#[tokio::test]
async fn target_scope_injection_is_400_invalid_scope_with_its_reason() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let caller = emulator.msi_token().await;
    let long = format!("https://{}.net/.default", "a".repeat(300));
    let cases = [
        (
            "several scopes",
            "https://database.windows.net/.default https://storage.azure.com/.default",
            "scope_separator",
        ),
        (
            "scopes joined by a comma",
            "https://database.windows.net/.default,https://storage.azure.com/.default",
            "scope_bad_resource",
        ),
        ("offline_access", "offline_access", "scope_not_default"),
        ("openid", "openid", "scope_not_default"),
        (
            "a .default with offline_access",
            "https://database.windows.net/.default offline_access",
            "scope_separator",
        ),
        (
            "a NUL",
            "https://database.windows.net/\u{0}/.default",
            "scope_separator",
        ),
        (
            "a CR LF",
            "https://database.windows.net/.default\r\nX-Injected: 1",
            "scope_separator",
        ),
        (
            "a DEL",
            "https://database.windows.net\u{7f}/.default",
            "scope_separator",
        ),
        (
            "userinfo",
            "https://user@database.windows.net/.default",
            "scope_bad_resource",
        ),
        (
            "a .. segment",
            "https://database.windows.net/../.default",
            "scope_bad_resource",
        ),
        (
            "an escaped .. segment",
            "https://database.windows.net/%2e%2e/.default",
            "scope_bad_resource",
        ),
        (
            "a port",
            "https://database.windows.net:443/.default",
            "scope_bad_resource",
        ),
        (
            "a Cyrillic o in the host",
            "https://database.wind\u{043e}ws.net/.default",
            "scope_bad_resource",
        ),
        ("300 characters", long.as_str(), "scope_too_long"),
    ];

    for (index, (case, scope, detail)) in cases.into_iter().enumerate() {
        // Act
        let response = broker
            .get_sp_token(&caller, json!({"targetScope": scope}))
            .await;

        // Assert
        assert_eq!(
            status_and_code(response).await,
            (400, "invalid_scope".to_owned()),
            "case `{case}`"
        );
        assert_audit_detail(&broker, index, case, detail).await;
    }
    assert_eq!(
        emulator.stats().await["token_requests"]["client_credentials"],
        0
    );
}

#[tokio::test]
async fn target_scope_of_10000_characters_is_413() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let scope = format!("https://{}.net/.default", "a".repeat(10_000));

    assert_bodies_refused(
        &emulator,
        &broker,
        "/api/GetSPToken",
        vec![(
            "a 10,000-character scope",
            Some("application/json"),
            body_of(json!({"targetScope": scope})),
            413,
            "payload_too_large",
        )],
    )
    .await;
}

#[tokio::test]
async fn audience_injection_is_refused_before_any_token_request() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let json = Some("application/json");
    let audience = |alias: &str| body_of(json!({"audience": alias}));

    assert_bodies_refused(
        &emulator,
        &broker,
        "/api/token",
        vec![
            ("upper case", json, audience("SQL"), 400, "invalid_request"),
            (
                "a trailing newline",
                json,
                audience("sql\n"),
                400,
                "invalid_request",
            ),
            (
                "a trailing space",
                json,
                audience("sql "),
                400,
                "invalid_request",
            ),
            ("a path", json, audience("../sql"), 400, "invalid_request"),
            (
                "a scope instead of an alias",
                json,
                audience("https://database.windows.net/.default"),
                400,
                "invalid_request",
            ),
            ("empty", json, audience(""), 400, "invalid_request"),
            (
                "8,000 characters",
                json,
                audience(&"s".repeat(8_000)),
                400,
                "invalid_request",
            ),
            (
                "10,000 characters",
                json,
                audience(&"s".repeat(10_000)),
                413,
                "payload_too_large",
            ),
            (
                "a number",
                json,
                body_of(json!({"audience": 7})),
                400,
                "invalid_request",
            ),
            (
                "an unknown well-formed alias",
                json,
                audience("graph"),
                403,
                "unknown_audience",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn configuration_revision_out_of_range_is_400() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let json = Some("application/json");
    let revision = |number: &str| {
        format!(r#"{{"audience":"sql","configurationRevision":{number}}}"#).into_bytes()
    };

    assert_bodies_refused(
        &emulator,
        &broker,
        "/api/token",
        vec![
            ("1e30", json, revision("1e30"), 400, "invalid_request"),
            (
                "2^64",
                json,
                revision("18446744073709551616"),
                400,
                "invalid_request",
            ),
            ("negative", json, revision("-1"), 400, "invalid_request"),
            (
                "below i64",
                json,
                revision("-9223372036854775809"),
                400,
                "invalid_request",
            ),
            ("a fraction", json, revision("1.5"), 400, "invalid_request"),
            ("a string", json, revision(r#""1""#), 400, "invalid_request"),
            (
                "2^64 - 1, well formed but not current",
                json,
                revision("18446744073709551615"),
                409,
                "revision_mismatch",
            ),
        ],
    )
    .await;
}
