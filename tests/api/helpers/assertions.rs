//! Assertions on broker responses and on JWTs (decoded without verification).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

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
