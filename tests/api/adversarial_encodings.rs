//! The adversarial token corpus, part three (issue 5 item 1): broken compact serialisations, oversized
//! tokens and deeply nested or duplicated JSON. Every case is a 401 `invalid_token` with a stable audit
//! `detail`, and the broker keeps serving without a panic.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::helpers::assertions::{assert_corpus_rejected, assert_issued, decode_header};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{OTHER_MSI_OID, sql_request};
use crate::helpers::tokens::{ForeignKey, genuine_msi, segment};

/// JSON nested `depth` levels deep: `{"a":{"a":...1...}}`.
fn nested(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

#[tokio::test]
async fn broken_compact_serialisations_are_401_with_their_reason() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let (token, _, _) = genuine_msi(&emulator).await;
    let parts: Vec<&str> = token.split('.').collect();
    let (header, payload, signature) = (parts[0], parts[1], parts[2]);
    let non_utf8 = URL_SAFE_NO_PAD.encode(b"\xff\xfe{\"alg\":\"RS256\"}\xc3\x28");
    let cases = [
        (
            "truncated in the payload",
            format!("{header}.{}", &payload[..payload.len() / 2]),
            "malformed_token",
        ),
        (
            "truncated signature",
            // Cut to whole base64 quanta, so that the rest still decodes.
            format!(
                "{header}.{payload}.{}",
                &signature[..signature.len() / 4 * 4 - 4]
            ),
            "bad_signature",
        ),
        (
            "signature removed",
            format!("{header}.{payload}."),
            "bad_signature",
        ),
        (
            "an extra segment",
            format!("{token}.e30"),
            "malformed_token",
        ),
        (
            "five segments, JWE-like",
            format!("{token}.e30.e30"),
            "malformed_token",
        ),
        (
            "base64 padding on the signature",
            format!("{token}=="),
            "malformed_token",
        ),
        (
            "standard-alphabet + and /",
            format!("{header}.{payload}+/.{signature}"),
            "malformed_token",
        ),
        (
            "a non-base64 character",
            format!("{header}*.{payload}.{signature}"),
            "malformed_token",
        ),
        (
            "non-UTF-8 header",
            format!("{non_utf8}.{payload}.{signature}"),
            "malformed_token",
        ),
        (
            "non-UTF-8 payload, signature kept",
            format!("{header}.{non_utf8}.{signature}"),
            "malformed_token",
        ),
        (
            "header that is a JSON array",
            format!("{}.{payload}.{signature}", segment(&json!(["RS256"]))),
            "malformed_token",
        ),
        ("empty segments", "..".to_owned(), "malformed_token"),
    ];

    // Act and assert
    assert_corpus_rejected(&broker, &cases).await;
    assert_issued(broker.get_sp_token(&token, sql_request()).await).await;
}

#[tokio::test]
async fn oversized_nested_and_duplicated_tokens_are_401_without_a_crash() {
    // Arrange: the emulator signs only JSON maps under 128 levels, so duplicated and 200-deep claims are
    // signed here, by a key outside the JWKS, under the published kid.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let (token, claims, kid) = genuine_msi(&emulator).await;
    let pad = "x".repeat(20 * 1024);
    let key = ForeignKey::generate();
    let published = decode_header(&token);
    let body = claims.to_string();
    let duplicated = format!(r#"{{"oid":"{OTHER_MSI_OID}",{}"#, &body[1..]);
    let deep_claims = format!(r#"{{"deep":{},{}"#, nested(200), &body[1..]);
    let raw_header = |text: String| {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(text),
            segment(&claims),
            token.rsplit('.').next().unwrap_or_default()
        )
    };
    let cases = [
        (
            "20 KB header field",
            emulator
                .mint(json!({"kind": "msi", "header": {"pad": pad}}))
                .await,
            "malformed_token",
        ),
        (
            "20 KB claim",
            emulator
                .mint(json!({"kind": "msi", "claims": {"pad": pad}}))
                .await,
            "malformed_token",
        ),
        (
            "header nested 200 levels deep",
            raw_header(format!(
                r#"{{"alg":"RS256","kid":{kid},"deep":{}}}"#,
                nested(200)
            )),
            "malformed_token",
        ),
        (
            "header with kid twice",
            raw_header(format!(r#"{{"alg":"RS256","kid":{kid},"kid":"other"}}"#)),
            "malformed_token",
        ),
        (
            "header with alg twice",
            raw_header(format!(r#"{{"alg":"RS256","alg":"none","kid":{kid}}}"#)),
            "malformed_token",
        ),
        (
            // The depth limit rejects it before any signature work.
            "claims nested 200 levels deep",
            key.sign_raw(&published, deep_claims.as_bytes()),
            "malformed_token",
        ),
        (
            "oid twice",
            key.sign_raw(&published, duplicated.as_bytes()),
            "malformed_token",
        ),
    ];

    // Act
    assert_corpus_rejected(&broker, &cases).await;

    // Assert: still serving, and nothing panicked.
    assert_issued(broker.get_sp_token(&token, sql_request()).await).await;
    let panics: Vec<String> = broker
        .all_lines()
        .into_iter()
        .filter(|l| l.contains("panicked"))
        .collect();
    assert!(panics.is_empty(), "the broker panicked: {panics:#?}");
}

#[tokio::test]
async fn duplicated_and_deeply_nested_claims_signed_by_the_tenant_key_are_401() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let (_, claims, _) = genuine_msi(&emulator).await;
    let body = claims.to_string();
    let duplicated = format!(r#"{{"oid":"{OTHER_MSI_OID}",{}"#, &body[1..]);
    let deep = format!(r#"{{"deep":{},{}"#, nested(200), &body[1..]);
    let raw = |payload: String| json!({"kind": "msi", "raw_claims": payload});
    let cases = [
        (
            "oid twice, tenant key",
            emulator.mint(raw(duplicated)).await,
            "malformed_token",
        ),
        (
            "claims nested 200 levels deep, tenant key",
            emulator.mint(raw(deep)).await,
            "malformed_token",
        ),
    ];

    assert_corpus_rejected(&broker, &cases).await;
}
