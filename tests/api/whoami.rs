//! `GET /api/whoami` (issue 11 item 4): who the broker sees and only the grants that match this caller,
//! audited like the other routes; no valid token, no answer.

use serde_json::json;

use crate::helpers::assertions::{assert_invalid_token, assert_no_store, json_body};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{MSI_OID, TENANT_ID, USER_CLIENT_APP_ID, USER_OID, USER_UPN};
use crate::helpers::policy::{
    analyst_token, broker_with_policy, example_document, overage_analyst_token, sales_token,
    stranger_token,
};

/// The default managed identity caller's client id (`appid` of its minted tokens).
const MSI_APP_ID: &str = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e";

#[tokio::test]
async fn an_app_sees_itself_and_only_its_own_grants() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_policy(&emulator, &example_document(7)).await;

    let response = broker.whoami(Some(&sales_token(&emulator).await)).await;

    assert_no_store(&response);
    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(
        body["caller"],
        json!({"type": "MSI", "oid": MSI_OID, "display": crate::helpers::ids::MSI_RESOURCE_ID,
               "tenant": TENANT_ID, "app_id": MSI_APP_ID})
    );
    assert_eq!(body["policy_revision"], 7);
    assert_eq!(
        body["grants"],
        json!([{"name": "sales-workspace-sql", "lane": "service",
                "scopes": ["https://database.windows.net/.default"], "audiences": []}])
    );
}

#[tokio::test]
async fn a_user_sees_the_grants_of_their_groups_and_the_tenant() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_policy(&emulator, &example_document(7)).await;

    let body = json_body(broker.whoami(Some(&analyst_token(&emulator).await)).await).await;

    assert_eq!(body["caller"]["type"], "USER");
    assert_eq!(body["caller"]["oid"], USER_OID);
    assert_eq!(body["caller"]["display"], USER_UPN);
    assert_eq!(body["caller"]["app_id"], USER_CLIENT_APP_ID);
    let names: Vec<&str> = body["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["analysts-own-fabric", "everyone-own-sql"], "{body}");
    assert_eq!(body["grants"][0]["audiences"], json!(["fabric_api"]));
    assert_eq!(body["group_overage"], false);
}

#[tokio::test]
async fn a_user_with_group_overage_is_told_why_group_grants_do_not_match() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_policy(&emulator, &example_document(7)).await;

    let body = json_body(
        broker
            .whoami(Some(&overage_analyst_token(&emulator).await))
            .await,
    )
    .await;

    assert_eq!(body["group_overage"], true, "{body}");
    assert_eq!(body["grants"][0]["name"], "everyone-own-sql", "{body}");
    assert_eq!(body["grants"].as_array().map(Vec::len), Some(1), "{body}");
}

#[tokio::test]
async fn a_caller_with_no_grants_is_told_so_and_the_answer_is_audited() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_policy(&emulator, &example_document(7)).await;

    let response = broker.whoami(Some(&stranger_token(&emulator).await)).await;

    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["grants"], json!([]), "{body}");
    let audit = broker.wait_for_audit_lines(1).await;
    assert_eq!(audit[0]["route"], "whoami", "{}", audit[0]);
    assert_eq!(audit[0]["decision"], "answered", "{}", audit[0]);
    assert_eq!(audit[0]["caller_oid"], crate::helpers::ids::OTHER_MSI_OID);
}

#[tokio::test]
async fn anonymous_and_invalid_callers_get_401() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_policy(&emulator, &example_document(7)).await;
    let expired = emulator.mint(json!({"lifetime_seconds": -600})).await;

    assert_invalid_token(broker.whoami(None).await, "anonymous").await;
    assert_invalid_token(broker.whoami(Some(&expired)).await, "expired").await;
}

#[tokio::test]
async fn without_a_document_the_built_in_policy_answers() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    let body = json_body(broker.whoami(Some(&emulator.msi_token().await)).await).await;

    assert_eq!(body["policy_revision"], 1, "{body}");
    assert_eq!(
        body["grants"][0]["name"], "legacy-allowlisted-apps",
        "{body}"
    );
    assert_eq!(body["grants"][0]["lane"], "service", "{body}");
}

#[tokio::test]
async fn whoami_spends_the_callers_request_budget() {
    // Arrange: one request a minute per caller.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_RATE_LIMIT_PER_CALLER", "1")]).await;
    let msi = emulator.msi_token().await;
    assert_eq!(broker.whoami(Some(&msi)).await.status(), 200);

    // Act
    let second = broker.whoami(Some(&msi)).await;

    // Assert
    crate::helpers::assertions::assert_error(second, 429, "rate_limited").await;
}

#[tokio::test]
async fn more_groups_than_a_token_holds_arrive_as_overage() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_policy(&emulator, &example_document(7)).await;
    let groups: Vec<String> = (0..201).map(|_| crate::helpers::ids::new_guid()).collect();
    let token = emulator.mint(json!({"groups": groups})).await;

    let body = json_body(broker.whoami(Some(&token)).await).await;

    assert_eq!(body["group_overage"], true, "{body}");
    let claims = crate::helpers::assertions::decode_claims(&token);
    assert!(claims.get("groups").is_none(), "{claims}");
    assert_eq!(claims["_claim_names"]["groups"], "src1", "{claims}");
}
