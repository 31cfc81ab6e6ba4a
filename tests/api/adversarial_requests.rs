//! Hostile requests, part one (issue 5 item 2): malformed `Authorization` headers and hostile bodies. Each
//! is refused with its documented status, code and audit `detail` before any token request; RFC 6750's
//! case-insensitive scheme is honoured.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::assertions::{
    assert_audit_detail, assert_bodies_refused, assert_invalid_token, assert_issued,
    status_and_code,
};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{MSI_OID, SQL_SCOPE, sql_request};

/// A JSON value as request body bytes.
fn body_of(value: serde_json::Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

#[tokio::test]
async fn authorization_that_is_not_one_bearer_token_is_401_with_its_reason() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let token = emulator.msi_token().await;
    let bearer = format!("Bearer {token}");
    let (first, second) = token.split_at(token.len() / 2);
    let cases: [(&str, Vec<Vec<u8>>, &str); 12] = [
        ("no Authorization", vec![], "missing_authorization"),
        (
            "an empty value",
            vec![b"".to_vec()],
            "malformed_authorization",
        ),
        (
            "two Authorization headers",
            vec![bearer.clone().into(), bearer.clone().into()],
            "malformed_authorization",
        ),
        (
            "Bearer with no token",
            vec![b"Bearer".to_vec()],
            "malformed_authorization",
        ),
        (
            "Basic credentials",
            vec![b"Basic dXNlcjpwYXNzd29yZA==".to_vec()],
            "malformed_authorization",
        ),
        (
            "another scheme",
            vec![format!("Token {token}").into()],
            "malformed_authorization",
        ),
        (
            "no scheme",
            vec![token.clone().into()],
            "malformed_authorization",
        ),
        (
            "a tab instead of the space",
            vec![format!("Bearer\t{token}").into()],
            "malformed_authorization",
        ),
        (
            "two spaces after the scheme",
            vec![format!("Bearer  {token}").into()],
            "malformed_token",
        ),
        (
            "a space inside the token",
            vec![format!("Bearer {first} {second}").into()],
            "malformed_token",
        ),
        (
            "a tab inside the token",
            vec![format!("Bearer {first}\t{second}").into()],
            "malformed_token",
        ),
        (
            "a non-ASCII byte in the token",
            vec![[bearer.as_bytes(), b"\xe9"].concat()],
            "malformed_authorization",
        ),
    ];

    for (index, (case, values, detail)) in cases.into_iter().enumerate() {
        // Act
        let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let response = broker.get_sp_token_with_authorization(&values).await;

        // Assert
        assert_invalid_token(response, case).await;
        assert_audit_detail(&broker, index, case, detail).await;
    }
}

#[tokio::test]
async fn bearer_scheme_is_accepted_in_any_case() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let token = emulator.msi_token().await;

    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {token}");
        let response = broker
            .get_sp_token_with_authorization(&[value.as_bytes()])
            .await;
        let body = assert_issued(response).await;
        assert_eq!(body["caller"]["oid"], MSI_OID, "scheme `{scheme}`");
    }
}

#[tokio::test]
async fn hostile_bodies_are_refused_with_their_status() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let json = Some("application/json");
    let deep = format!(
        r#"{{"targetScope":{}"x"{}}}"#,
        "[".repeat(1000),
        "]".repeat(1000)
    );
    let oversized = body_of(json!({"targetScope": SQL_SCOPE, "pad": "x".repeat(9 * 1024)}));

    assert_bodies_refused(
        &emulator,
        &broker,
        "/api/GetSPToken",
        vec![
            ("over 8 KiB", json, oversized, 413, "payload_too_large"),
            (
                "nested 1000 levels deep",
                json,
                deep.into_bytes(),
                400,
                "invalid_request",
            ),
            (
                "not UTF-8",
                json,
                b"{\"targetScope\":\"\xff\xfe\"}".to_vec(),
                400,
                "invalid_request",
            ),
            (
                "text/plain",
                Some("text/plain"),
                body_of(sql_request()),
                415,
                "unsupported_media_type",
            ),
            (
                "application/xml",
                Some("application/xml"),
                b"<targetScope/>".to_vec(),
                415,
                "unsupported_media_type",
            ),
            (
                "no content type",
                None,
                body_of(sql_request()),
                415,
                "unsupported_media_type",
            ),
            (
                "a JSON array",
                json,
                body_of(json!([sql_request()])),
                400,
                "invalid_request",
            ),
            (
                "a JSON string",
                json,
                body_of(json!("https://database.windows.net/.default")),
                400,
                "invalid_request",
            ),
            ("JSON null", json, b"null".to_vec(), 400, "invalid_request"),
            (
                "two JSON objects",
                json,
                [body_of(sql_request()), body_of(sql_request())].concat(),
                400,
                "invalid_request",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn empty_body_with_a_json_content_type_is_400_at_the_broker() {
    // The host forwards no body and no Content-Type when Content-Length is 0, so this goes direct.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    let response = broker
        .client()
        .post(format!("{}/api/GetSPToken", broker.direct_url()))
        .bearer_auth(emulator.msi_token().await)
        .header("content-type", "application/json")
        .send()
        .await
        .expect("POST to the broker");

    assert_eq!(
        status_and_code(response).await,
        (400, "invalid_request".to_owned())
    );
}

#[tokio::test]
async fn control_character_in_authorization_is_400_before_any_decision() {
    // Arrange: no HTTP client sends a control byte in a header, so the request is written by hand, to the
    // broker's own listener.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let token = emulator.msi_token().await;
    let (first, second) = token.split_at(token.len() / 2);
    let body = sql_request().to_string();
    let request = format!(
        "POST /api/GetSPToken HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {first}\u{1}{second}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let address = broker.direct_url().replace("http://", "");

    // Act
    let mut stream = TcpStream::connect(&address)
        .await
        .expect("connect to the broker");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .expect("read the answer");

    // Assert: refused by the HTTP parser; the next genuine request is the first decision.
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "answer: {answer}");
    assert_issued(broker.get_sp_token(&token, sql_request()).await).await;
    let lines = broker.wait_for_audit_lines(1).await;
    let statuses: Vec<&serde_json::Value> = lines.iter().map(|line| &line["status"]).collect();
    assert_eq!(statuses, [&json!(200)], "audit lines: {lines:#?}");
}
