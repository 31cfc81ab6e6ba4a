//! The emulator's refresh tokens, spoken to directly as the broker speaks to Entra: `offline_access` on
//! On-Behalf-Of returns one, the refresh grant issues tokens for any resource and rotates, revoking the
//! user's sessions and Conditional Access refuse it with Entra's error bodies, and strict mode spends a
//! token on its first use. The broker's delegations rely on each of these.

use serde_json::Value;

use crate::helpers::assertions::decode_claims;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::USER_OID;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const SQL_SCOPE: &str = "https://database.windows.net//.default offline_access";
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// On-Behalf-Of for the default user with `offline_access`; the refresh token it returns.
async fn refresh_token_from_obo(emulator: &TestEmulator) -> String {
    let user_token = emulator.user_token().await;
    let (status, body) = emulator
        .token_endpoint(&[
            ("grant_type", JWT_BEARER),
            ("requested_token_use", "on_behalf_of"),
            ("assertion", &user_token),
            ("scope", SQL_SCOPE),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    body["refresh_token"]
        .as_str()
        .expect("a refresh token with offline_access")
        .to_owned()
}

async fn refresh(emulator: &TestEmulator, refresh_token: &str, scope: &str) -> (u16, Value) {
    emulator
        .token_endpoint(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("scope", scope),
        ])
        .await
}

fn assert_entra_error(body: &Value, error: &str, code: u64) {
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"][0], code, "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")) && description.contains("Trace ID: "),
        "{description}"
    );
}

#[tokio::test]
async fn obo_without_offline_access_returns_no_refresh_token() {
    let emulator = TestEmulator::start().await;
    let user_token = emulator.user_token().await;
    let (status, body) = emulator
        .token_endpoint(&[
            ("grant_type", JWT_BEARER),
            ("requested_token_use", "on_behalf_of"),
            ("assertion", &user_token),
            ("scope", "https://database.windows.net//.default"),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
}

#[tokio::test]
async fn refresh_grant_issues_a_token_for_another_resource_to_the_same_user_and_rotates() {
    let emulator = TestEmulator::start().await;
    let first = refresh_token_from_obo(&emulator).await;

    let (status, body) = refresh(&emulator, &first, STORAGE_SCOPE).await;

    assert_eq!(status, 200, "{body}");
    let claims = decode_claims(body["access_token"].as_str().expect("an access token"));
    assert_eq!(claims["aud"], "https://storage.azure.com");
    assert_eq!(claims["oid"], USER_OID);
    assert_eq!(claims["idtyp"], "user");
    let rotated = body["refresh_token"].as_str().expect("a new refresh token");
    assert_ne!(rotated, first);
    assert_eq!(emulator.stats().await["token_requests"]["refresh_token"], 1);
}

#[tokio::test]
async fn refresh_token_is_refused_after_the_users_sessions_are_revoked() {
    let emulator = TestEmulator::start().await;
    let refresh_token = refresh_token_from_obo(&emulator).await;

    emulator.revoke_sessions(USER_OID).await;
    let (status, body) = refresh(&emulator, &refresh_token, STORAGE_SCOPE).await;

    assert_eq!(status, 400);
    assert_entra_error(&body, "invalid_grant", 50173);
}

#[tokio::test]
async fn conditional_access_makes_a_refresh_answer_interaction_required_with_a_claims_challenge() {
    let emulator = TestEmulator::start().await;
    let refresh_token = refresh_token_from_obo(&emulator).await;

    emulator
        .obo_policy(USER_OID, Some("https://storage.azure.com"), "mfa")
        .await;
    let (status, body) = refresh(&emulator, &refresh_token, STORAGE_SCOPE).await;

    assert_eq!(status, 400);
    assert_entra_error(&body, "interaction_required", 50076);
    let claims: Value =
        serde_json::from_str(body["claims"].as_str().expect("a claims challenge")).expect("JSON");
    assert!(claims["access_token"]["capolids"].is_object(), "{claims}");
}

#[tokio::test]
async fn strict_mode_refuses_a_refresh_token_redeemed_before_but_not_its_successor() {
    let emulator = TestEmulator::start().await;
    emulator.set_strict_refresh_tokens(true).await;
    let first = refresh_token_from_obo(&emulator).await;
    let (status, body) = refresh(&emulator, &first, STORAGE_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    let rotated = body["refresh_token"].as_str().expect("rotated").to_owned();

    let (status, body) = refresh(&emulator, &first, STORAGE_SCOPE).await;
    assert_eq!(status, 400);
    assert_entra_error(&body, "invalid_grant", 70008);

    let (status, body) = refresh(&emulator, &rotated, STORAGE_SCOPE).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn unknown_refresh_token_is_refused_as_malformed() {
    let emulator = TestEmulator::start().await;
    let (status, body) = refresh(&emulator, "1.AQnot-issued-here", STORAGE_SCOPE).await;
    assert_eq!(status, 400);
    assert_entra_error(&body, "invalid_grant", 9002313);
}

#[tokio::test]
async fn refresh_without_a_refresh_token_names_the_missing_parameter() {
    let emulator = TestEmulator::start().await;
    let (status, body) = emulator
        .token_endpoint(&[("grant_type", "refresh_token"), ("scope", STORAGE_SCOPE)])
        .await;
    assert_eq!(status, 400);
    assert_entra_error(&body, "invalid_request", 900144);
}

#[tokio::test]
async fn advancing_the_clock_expires_a_user_token_for_on_behalf_of_but_not_a_refresh_token() {
    let emulator = TestEmulator::start().await;
    let user_token = emulator
        .mint(serde_json::json!({"lifetime_seconds": 60}))
        .await;
    let refresh_token = refresh_token_from_obo(&emulator).await;

    // Past the token's expiry and Entra's five minutes of skew.
    emulator.advance_clock(60 + 300 + 90).await;
    let (status, body) = emulator
        .token_endpoint(&[
            ("grant_type", JWT_BEARER),
            ("requested_token_use", "on_behalf_of"),
            ("assertion", &user_token),
            ("scope", SQL_SCOPE),
        ])
        .await;
    assert_eq!(status, 400);
    assert_entra_error(&body, "invalid_grant", 500133);

    let (status, body) = refresh(&emulator, &refresh_token, STORAGE_SCOPE).await;
    assert_eq!(status, 200, "{body}");
}
