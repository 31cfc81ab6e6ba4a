//! The adversarial token corpus, part two (issue 5 item 1): tokens signed by the tenant's real key whose
//! claims break a rule (lifetime, audience, tenant, issuer, token kind, the broker as caller) or whose
//! oid only looks like the allowlisted one. Each is a 401 `invalid_token` with a stable audit `detail`.

use serde_json::{Value, json};

use crate::helpers::assertions::assert_corpus_rejected;
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{
    BROKER_CLIENT_ID, FOREIGN_TENANT_ID, MSI_OID, TENANT_ID, USER_CLIENT_APP_ID, sql_request,
};
use crate::helpers::tokens::unix_now;

/// A managed-identity token (v1) with these claims overridden (null removes).
fn msi(claims: Value) -> Value {
    json!({"kind": "msi", "claims": claims})
}

/// A user token (v2) with these claims overridden (null removes).
fn user(claims: Value) -> Value {
    json!({"kind": "user", "claims": claims})
}

/// Mints every case's token with the emulator's current key and runs the corpus.
async fn assert_minted_rejected(
    emulator: &TestEmulator,
    broker: &TestBroker,
    cases: Vec<(&str, Value, &str)>,
) {
    let mut minted = Vec::new();
    for (case, request, detail) in cases {
        minted.push((case, emulator.mint(request).await, detail));
    }
    assert_corpus_rejected(broker, &minted).await;
    assert_eq!(
        emulator.stats().await["token_requests"]["client_credentials"],
        0
    );
}

#[tokio::test]
async fn tokens_outside_their_lifetime_are_401_with_their_reason() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let now = unix_now();

    assert_minted_rejected(
        &emulator,
        &broker,
        vec![
            (
                "expired ten minutes ago",
                msi(json!({"iat": now - 4200, "nbf": now - 4200, "exp": now - 600})),
                "expired",
            ),
            (
                "nbf ten minutes ahead, beyond the skew",
                msi(json!({"nbf": now + 600})),
                "not_yet_valid",
            ),
            (
                "iat ten minutes ahead, beyond the skew",
                json!({"kind": "msi", "iat_offset_seconds": 600}),
                "issued_in_future",
            ),
            ("no exp", msi(json!({"exp": null})), "malformed_token"),
            (
                "exp as a string",
                msi(json!({"exp": (now + 3600).to_string()})),
                "malformed_token",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn tokens_for_another_audience_are_401_wrong_audience() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let audience = |aud: &str| json!({"kind": "msi", "audience": aud});

    assert_minted_rejected(
        &emulator,
        &broker,
        vec![
            (
                "another app's api://",
                audience(&format!("api://{USER_CLIENT_APP_ID}")),
                "wrong_audience",
            ),
            (
                "Microsoft Graph",
                audience("https://graph.microsoft.com"),
                "wrong_audience",
            ),
            (
                "Microsoft Graph by app id",
                audience("00000003-0000-0000-c000-000000000000"),
                "wrong_audience",
            ),
            (
                "the bare resource",
                audience("https://database.windows.net"),
                "wrong_audience",
            ),
            (
                "the broker's api:// with a trailing slash",
                audience(&format!("api://{BROKER_CLIENT_ID}/")),
                "wrong_audience",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn tokens_of_another_tenant_or_issuer_are_401_with_their_reason() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let authority = emulator.ready.authority.clone();
    let v2_issuer = |tenant: &str| format!("{authority}/{tenant}/v2.0");

    assert_minted_rejected(
        &emulator,
        &broker,
        vec![
            (
                "tid of another tenant",
                msi(json!({"tid": FOREIGN_TENANT_ID})),
                "wrong_tenant",
            ),
            (
                "tid in upper case",
                msi(json!({"tid": TENANT_ID.to_uppercase()})),
                "wrong_tenant",
            ),
            (
                "the whole token from another tenant",
                json!({"kind": "msi", "tenant": FOREIGN_TENANT_ID}),
                "wrong_issuer",
            ),
            (
                "v1 iss of another tenant",
                msi(json!({"iss": format!("https://sts.windows.net/{FOREIGN_TENANT_ID}/")})),
                "wrong_issuer",
            ),
            (
                "v2 iss of another tenant",
                user(json!({"iss": v2_issuer(FOREIGN_TENANT_ID)})),
                "wrong_issuer",
            ),
            (
                "iss common",
                user(json!({"iss": v2_issuer("common")})),
                "wrong_issuer",
            ),
            (
                "iss consumers",
                user(json!({"iss": v2_issuer("consumers")})),
                "wrong_issuer",
            ),
            (
                "iss of the consumers tenant id",
                user(json!({"iss": v2_issuer("9188040d-6c67-4c5b-b112-36a304b66dad")})),
                "wrong_issuer",
            ),
            (
                "iss organizations",
                user(json!({"iss": v2_issuer("organizations")})),
                "wrong_issuer",
            ),
            (
                "iss of the public cloud, not the configured authority",
                user(json!({"iss": format!("https://login.microsoftonline.com/{TENANT_ID}/v2.0")})),
                "wrong_issuer",
            ),
            (
                "iss v1 with ver 2.0",
                msi(json!({"ver": "2.0"})),
                "version_mismatch",
            ),
            (
                "iss v2 with ver 1.0",
                user(json!({"ver": "1.0"})),
                "version_mismatch",
            ),
            (
                "iss v1 without ver",
                msi(json!({"ver": null})),
                "version_mismatch",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn tokens_that_are_not_a_callers_access_token_are_401_with_their_reason() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let id_token = json!({
        "nonce": "n-0S6_WzA2Mj", "scp": null, "azp": null, "idtyp": null, "aud": BROKER_CLIENT_ID,
    });

    assert_minted_rejected(
        &emulator,
        &broker,
        vec![
            (
                "an id token: nonce, no scp, no azp",
                user(id_token),
                "not_an_access_token",
            ),
            (
                "an id token with at_hash",
                user(json!({"at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q"})),
                "not_an_access_token",
            ),
            (
                "a v2 token without azp",
                user(json!({"azp": null})),
                "not_an_access_token",
            ),
            (
                "a v1 token without appid",
                msi(json!({"appid": null})),
                "not_an_access_token",
            ),
            (
                "appid is the broker itself",
                json!({"kind": "msi", "appid": BROKER_CLIENT_ID}),
                "broker_itself",
            ),
            (
                "azp is the broker itself",
                json!({"kind": "user", "appid": BROKER_CLIENT_ID}),
                "broker_itself",
            ),
            (
                "azp is the broker in upper case",
                json!({"kind": "user", "appid": BROKER_CLIENT_ID.to_uppercase()}),
                "broker_itself",
            ),
            (
                "idtyp app with delegated scopes",
                msi(json!({"scp": "user_impersonation"})),
                "ambiguous_identity",
            ),
            (
                "a user token without scp or idtyp, with an app role",
                user(json!({"scp": null, "idtyp": null, "roles": ["Broker.Ingest"]})),
                "ambiguous_identity",
            ),
            (
                "an app token without idtyp whose subject is not its object id",
                msi(json!({"idtyp": null, "sub": USER_CLIENT_APP_ID})),
                "ambiguous_identity",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_app_token_without_idtyp_is_an_app_when_its_subject_is_its_object_id() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let token = emulator.mint(msi(json!({"idtyp": null}))).await;

    let response = broker.get_sp_token(&token, sql_request()).await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn allowlisted_oid_look_alikes_are_401_and_never_served() {
    // Arrange: each token is genuine, and its oid differs from the allowlisted one only in spelling.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let look_alike = |oid: String| json!({"kind": "msi", "oid": oid});
    let cyrillic = MSI_OID.replacen('a', "\u{0430}", 1);
    let full_width = MSI_OID.replacen('1', "\u{FF11}", 1);
    assert_ne!(cyrillic, MSI_OID);

    // Act and assert
    assert_minted_rejected(
        &emulator,
        &broker,
        vec![
            (
                "upper case",
                look_alike(MSI_OID.to_uppercase()),
                "missing_claim",
            ),
            (
                "leading whitespace",
                look_alike(format!(" {MSI_OID}")),
                "missing_claim",
            ),
            (
                "trailing whitespace",
                look_alike(format!("{MSI_OID} ")),
                "missing_claim",
            ),
            (
                "trailing newline",
                look_alike(format!("{MSI_OID}\n")),
                "missing_claim",
            ),
            ("a Cyrillic a", look_alike(cyrillic), "missing_claim"),
            ("a full-width 1", look_alike(full_width), "missing_claim"),
            (
                "a zero-width space",
                look_alike(format!("{MSI_OID}\u{200B}")),
                "missing_claim",
            ),
            (
                "braces",
                look_alike(format!("{{{MSI_OID}}}")),
                "missing_claim",
            ),
            (
                "no hyphens",
                look_alike(MSI_OID.replace('-', "")),
                "missing_claim",
            ),
        ],
    )
    .await;
}
