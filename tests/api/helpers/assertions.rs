//! Assertions on broker responses and on JWTs (decoded without verification).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::sql_request;

/// The body as JSON, whatever the status.
pub async fn json_body(response: reqwest::Response) -> Value {
    let text = response.text().await.expect("read the response body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("body is not JSON: {text:?}"))
}

/// The `error` code of an error response.
pub async fn error_code(response: reqwest::Response) -> String {
    let body = json_body(response).await;
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no `error` in {body}"))
        .to_owned()
}

/// Status and `error` code, for table-driven tests that name each case.
pub async fn status_and_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, error_code(response).await)
}

/// Asserts status and `error` code and a fixed, non-empty description; returns the body.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = response.status();
    let body = json_body(response).await;
    assert_eq!(
        (actual.as_u16(), body["error"].as_str()),
        (status, Some(code)),
        "body: {body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "error_description missing: {body}"
    );
    body
}

/// 401 `invalid_token` with `WWW-Authenticate: Bearer error="invalid_token"`.
pub async fn assert_invalid_token(response: reqwest::Response, case: &str) {
    assert_eq!(
        header(&response, "www-authenticate").as_deref(),
        Some(r#"Bearer error="invalid_token""#),
        "case `{case}`: challenge"
    );
    assert_eq!(
        status_and_code(response).await,
        (401, "invalid_token".to_owned()),
        "case `{case}`"
    );
}

/// The 200 body of a token response, failing with the error body otherwise.
pub async fn assert_issued(response: reqwest::Response) -> Value {
    let status = response.status();
    assert_no_store(&response);
    let body = json_body(response).await;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body["token_type"], "Bearer", "body: {body}");
    body
}

pub fn assert_no_store(response: &reqwest::Response) {
    let cache_control = header(response, "cache-control").unwrap_or_default();
    assert!(
        cache_control
            .split(',')
            .any(|d| d.trim().eq_ignore_ascii_case("no-store")),
        "Cache-Control is {cache_control:?}, expected no-store"
    );
}

pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The claims of a JWT, decoded without checking the signature.
pub fn decode_claims(jwt: &str) -> Value {
    decode_segment(jwt, 1)
}

/// The JOSE header of a JWT.
pub fn decode_header(jwt: &str) -> Value {
    decode_segment(jwt, 0)
}

/// The claims of the `access_token` in a 200 body.
pub fn issued_claims(body: &Value) -> Value {
    decode_claims(body["access_token"].as_str().expect("access_token in body"))
}

fn decode_segment(jwt: &str, index: usize) -> Value {
    let segment = jwt.split('.').nth(index).expect("a compact JWS");
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .expect("base64url JWT segment");
    serde_json::from_slice(&bytes).expect("JSON JWT segment")
}

/// Sends each `(case, token, detail)` to GetSPToken and asserts 401 `invalid_token` with the challenge,
/// and an audit line `denied` / `invalid_token` whose `detail` is the stable reason `detail`.
pub async fn assert_corpus_rejected(broker: &TestBroker, cases: &[(&str, String, &str)]) {
    let before = broker.audit_lines().len();
    for (index, (case, token, detail)) in cases.iter().enumerate() {
        let response = broker.get_sp_token(token, sql_request()).await;
        assert_invalid_token(response, case).await;
        let lines = broker.wait_for_audit_lines(before + index + 1).await;
        let line = lines
            .get(before + index)
            .unwrap_or_else(|| panic!("case `{case}`: no audit line"));
        assert_eq!(
            (
                line["decision"].as_str(),
                line["reason"].as_str(),
                line["detail"].as_str()
            ),
            (Some("denied"), Some("invalid_token"), Some(*detail)),
            "case `{case}`: audit line {line}"
        );
    }
}

/// `(case, content type, body, status, error code)` for one hostile request.
pub type BodyCase<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);

/// Sends each case to `path` with a valid bearer and asserts status and code; nothing reaches Entra.
pub async fn assert_bodies_refused(
    emulator: &TestEmulator,
    broker: &TestBroker,
    path: &str,
    cases: Vec<BodyCase<'_>>,
) {
    let bearer = format!("Bearer {}", emulator.user_token().await);
    for (case, content_type, body, status, code) in cases {
        let mut headers = vec![("authorization", bearer.as_str())];
        headers.extend(content_type.map(|value| ("content-type", value)));
        let response = broker.post_raw(path, &headers, body).await;
        assert_eq!(
            status_and_code(response).await,
            (status, code.to_owned()),
            "case `{case}`"
        );
    }
    let stats = emulator.stats().await;
    assert_eq!(
        (
            &stats["token_requests"]["client_credentials"],
            &stats["token_requests"]["obo"]
        ),
        (&json!(0), &json!(0))
    );
}

/// Asserts that the audit line of the `index`-th request (from 0) records `detail`.
pub async fn assert_audit_detail(broker: &TestBroker, index: usize, case: &str, detail: &str) {
    let lines = broker.wait_for_audit_lines(index + 1).await;
    let line = lines
        .get(index)
        .unwrap_or_else(|| panic!("case `{case}`: no audit line"));
    assert_eq!(line["detail"], detail, "case `{case}`: audit line {line}");
}

/// Asserts that no log line contains any of `secrets` (what it is, the value), nor, for a JWT, its
/// signature segment alone. Only a JWT's segment of 16 characters or more is searched: a dot in a
/// secret that is no JWT (the portal's client-secret alphabet has one), or a forgery with an empty or
/// short signature, would leave a few characters that any line may contain by chance.
pub fn assert_no_line_reveals<'a>(
    lines: &[String],
    secrets: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    for (what, secret) in secrets {
        assert!(secret.len() > 16, "{what} is too short to search for");
        let signature = secret
            .rsplit('.')
            .next()
            .filter(|segment| secret.matches('.').count() == 2 && segment.len() >= 16);
        for line in lines {
            assert!(!line.contains(secret), "a log line contains {what}");
            if let Some(signature) = signature {
                assert!(
                    !line.contains(signature),
                    "a log line contains the signature of {what}"
                );
            }
        }
    }
}
