//! The adversarial token corpus, part one (issue 5 item 1): forged signatures and algorithms, and the
//! key-locating headers `jku`, `x5u`, `jwk` and `x5c`, which are never consulted. Every rejected case is a
//! 401 `invalid_token` with the RFC 6750 challenge and a stable reason in the audit line's `detail`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::assertions::{
    assert_corpus_rejected, assert_issued, decode_claims, decode_header,
};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{FOREIGN_TENANT_ID, MSI_OID, OTHER_MSI_OID, sql_request};
use crate::helpers::stubs::Stub;
use crate::helpers::tokens::{
    ForeignKey, genuine_msi, hs256, public_key_der, public_key_pem, published_jwk, unsigned,
    with_claims,
};

#[tokio::test]
async fn forged_signatures_and_algorithms_are_401_with_their_reason() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let (token, claims, kid) = genuine_msi(&emulator).await;
    let n = published_jwk(&emulator, &kid).await["n"].clone();
    let n_text = n.as_str().expect("JWK n").to_owned();
    let n_bytes = URL_SAFE_NO_PAD.decode(&n_text).expect("base64url n");
    let other = emulator
        .mint(json!({"kind": "msi", "oid": OTHER_MSI_OID}))
        .await;
    let mut escalated = decode_claims(&other);
    escalated["oid"] = json!(MSI_OID);
    let rs256 = |alg: &str| json!({"kind": "msi", "header": {"alg": alg}});
    let no_kid = json!({"kind": "msi", "header": {"kid": null}});
    let cases = [
        (
            "alg none, no signature",
            unsigned(&json!({"alg": "none", "kid": kid}), &claims),
            "malformed_token",
        ),
        (
            "HS256 keyed with the RSA public key PEM",
            hs256(
                &kid,
                &claims,
                public_key_pem(&emulator, &kid).await.as_bytes(),
            ),
            "algorithm_not_allowed",
        ),
        (
            "HS256 keyed with the RSA public key DER",
            hs256(&kid, &claims, &public_key_der(&emulator, &kid).await),
            "algorithm_not_allowed",
        ),
        (
            "HS256 keyed with the JWK n text",
            hs256(&kid, &claims, n_text.as_bytes()),
            "algorithm_not_allowed",
        ),
        (
            "HS256 keyed with the modulus bytes",
            hs256(&kid, &claims, &n_bytes),
            "algorithm_not_allowed",
        ),
        (
            "RS256 signature under a header claiming HS256",
            emulator.mint(rs256("HS256")).await,
            "algorithm_not_allowed",
        ),
        (
            "RS256 signature under a header claiming PS256",
            emulator.mint(rs256("PS256")).await,
            "algorithm_not_allowed",
        ),
        (
            "RS256 by a key not in the JWKS",
            emulator
                .mint(json!({"kind": "msi", "key": "unpublished"}))
                .await,
            "unknown_key",
        ),
        (
            "RS256 by another key under the published kid",
            ForeignKey::generate().sign(&decode_header(&token), &claims),
            "bad_signature",
        ),
        (
            "another tenant's key",
            emulator
                .mint(json!({"kind": "msi", "tenant": FOREIGN_TENANT_ID, "key": "unpublished"}))
                .await,
            "unknown_key",
        ),
        (
            "payload edited to another oid, signature kept",
            with_claims(&other, &escalated),
            "bad_signature",
        ),
        ("no kid", emulator.mint(no_kid).await, "missing_kid"),
    ];

    // Act and assert
    assert_corpus_rejected(&broker, &cases).await;
    assert_eq!(
        emulator.stats().await["token_requests"]["client_credentials"],
        0
    );
}

#[tokio::test]
async fn key_locating_headers_do_not_make_an_unpublished_key_trusted() {
    // Arrange: jku and x5u point at a server the test owns; jwk and x5c carry the signing key itself.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let attacker = Stub::attacker().await;
    let (_, claims, kid) = genuine_msi(&emulator).await;
    let key = ForeignKey::generate();
    let own_kid = json!(key.kid);
    let header = |kid: &Value, extra: Value| {
        let mut header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
        header
            .as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        header
    };
    let (jku, x5u) = (
        format!("{}/keys", attacker.base_url),
        format!("{}/cert.pem", attacker.base_url),
    );
    let unpublished = |field: &str, url: &str| {
        let header = json!({field: url});
        json!({"kind": "msi", "key": "unpublished", "header": header})
    };
    let everything = json!({"jku": jku, "x5u": x5u, "jwk": key.jwk(), "x5c": [key.certificate()]});
    let cases = [
        (
            "unpublished key, jku to the attacker",
            emulator.mint(unpublished("jku", &jku)).await,
            "unknown_key",
        ),
        (
            "unpublished key, x5u to the attacker",
            emulator.mint(unpublished("x5u", &x5u)).await,
            "unknown_key",
        ),
        (
            "own key, embedded jwk of that key",
            key.sign(&header(&own_kid, json!({"jwk": key.jwk()})), &claims),
            "unknown_key",
        ),
        (
            "own key, x5c certificate of that key",
            key.sign(
                &header(&own_kid, json!({"x5c": [key.certificate()]})),
                &claims,
            ),
            "unknown_key",
        ),
        (
            "own key, embedded jwk under the published kid",
            key.sign(&header(&kid, json!({"jwk": key.jwk()})), &claims),
            "bad_signature",
        ),
        (
            "own key, all four headers under the published kid",
            key.sign(&header(&kid, everything), &claims),
            "bad_signature",
        ),
    ];

    // Act
    assert_corpus_rejected(&broker, &cases).await;

    // Assert: the attacker's server was never asked for anything.
    assert_eq!(
        attacker.connections(),
        0,
        "the broker fetched a jku/x5u URL"
    );
}

#[tokio::test]
async fn key_locating_headers_on_a_genuine_token_are_ignored_and_never_fetched() {
    // Arrange: a token signed by the tenant's current key, with every header naming the attacker's key.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let attacker = Stub::attacker().await;
    let key = ForeignKey::generate();
    let caller = emulator
        .mint(json!({"kind": "msi", "header": {
            "jku": format!("{}/keys", attacker.base_url),
            "x5u": format!("{}/cert.pem", attacker.base_url),
            "jwk": key.jwk(),
            "x5c": [key.certificate()],
        }}))
        .await;
    let jwks_before = emulator.stats().await["jwks_requests"].clone();

    // Act
    let response = broker.get_sp_token(&caller, sql_request()).await;

    // Assert: accepted under the published key; neither the attacker nor the JWKS was asked.
    let body = assert_issued(response).await;
    assert_eq!(body["caller"]["oid"], MSI_OID);
    assert_eq!(
        attacker.connections(),
        0,
        "the broker fetched a jku/x5u URL"
    );
    assert_eq!(emulator.stats().await["jwks_requests"], jwks_before);
}
