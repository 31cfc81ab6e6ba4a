//! Strict JOSE (issue 9 item 2), with tokens signed by the tenant's real key: any `crit` header, an
//! `appid` or `azp` naming the broker whatever the version, and payloads that are not UTF-8 JSON with
//! unique member names are each a 401 `invalid_token` with a stable audit `detail`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::helpers::assertions::assert_corpus_rejected;
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::BROKER_CLIENT_ID;
use crate::helpers::tokens::genuine_msi;

#[tokio::test]
async fn tokens_with_a_crit_header_are_401_critical_header() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let with_header = |header| json!({"kind": "msi", "header": header});
    let cases = [
        (
            "crit naming an unknown extension",
            emulator
                .mint(with_header(json!({"crit": ["foo"], "foo": 1})))
                .await,
            "critical_header",
        ),
        (
            "unencoded payload, b64 false under crit",
            emulator
                .mint(with_header(json!({"crit": ["b64"], "b64": false})))
                .await,
            "critical_header",
        ),
    ];

    assert_corpus_rejected(&broker, &cases).await;
}

#[tokio::test]
async fn tokens_whose_appid_or_azp_is_the_broker_are_401_whatever_the_version() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let cases = [
        (
            "v1 app token with azp = the broker",
            emulator
                .mint(json!({"kind": "msi", "version": 1, "claims": {"azp": BROKER_CLIENT_ID}}))
                .await,
            "broker_itself",
        ),
        (
            "v2 user token with appid = the broker",
            emulator
                .mint(json!({"kind": "user", "version": 2, "claims": {"appid": BROKER_CLIENT_ID}}))
                .await,
            "broker_itself",
        ),
    ];

    assert_corpus_rejected(&broker, &cases).await;
}

#[tokio::test]
async fn payloads_that_are_not_utf8_json_with_unique_names_are_401_malformed() {
    // Arrange: the genuine claims with something prepended, signed by the tenant's key.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let (_, claims, _) = genuine_msi(&emulator).await;
    let body = claims.to_string();
    let rest = &body[1..];
    let raw = |payload: Vec<u8>| json!({"kind": "msi", "raw_claims_base64url": URL_SAFE_NO_PAD.encode(payload)});
    let payloads = [
        (
            "a member name twice inside a nested object",
            format!(r#"{{"x":{{"a":1,"a":2}},{rest}"#).into_bytes(),
        ),
        (
            "an ignored claim twice",
            format!(r#"{{"x":1,"x":1,{rest}"#).into_bytes(),
        ),
        (
            "invalid UTF-8 inside an ignored claim",
            [
                br#"{"note":""#.as_slice(),
                b"\xff\xfe",
                br#"","#,
                rest.as_bytes(),
            ]
            .concat(),
        ),
        (
            "a lone surrogate escape inside an ignored claim",
            [br#"{"note":"\ud800","#.as_slice(), rest.as_bytes()].concat(),
        ),
    ];
    let mut cases = Vec::new();
    for (case, payload) in payloads {
        cases.push((case, emulator.mint(raw(payload)).await, "malformed_token"));
    }

    // Act and assert
    assert_corpus_rejected(&broker, &cases).await;
}
