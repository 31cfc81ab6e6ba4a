//! Delegations (issue 18) with the in-process store: a backend creates, rotates, reads and revokes; a
//! sandbox redeems its bearer on `/api/token` exactly as the TokenCredential clients do; every
//! narrowing rule and refusal of the contract.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::assertions::{assert_error, decode_claims, json_body};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{MSI_OID, OTHER_MSI_OID, USER_OID};
use crate::helpers::policy::{ANALYSTS_GROUP, analyst_token, overage_analyst_token};

const POLICY_SECRET: &str = "broker-policy";
const POLICY_WAIT: Duration = Duration::from_secs(10);
/// The app role that admits a backend to delegate in [`document_by_role_and_group`].
const DELEGATE_ROLE: &str = "Broker.Delegate";
/// A group no test user is in.
const OTHER_GROUP: &str = "4e5f6a7b-8c9d-4e0f-9a1b-2c3d4e5f6a7b";

/// The backend (the emulator's default managed identity) delegates `sql`, `storage` and `arm` in the
/// user lane and `sql` in the service lane; every user may have `sql` and `storage` for themselves.
fn document(revision: u64, backend_delegates_user_lane: bool) -> Value {
    let mut grants = vec![
        json!({"name": "backend-service", "apps": [MSI_OID], "lane": "service",
               "audiences": ["sql"], "delegate": true}),
        json!({"name": "users-own", "users": "tenant", "lane": "user",
               "audiences": ["sql", "storage"]}),
    ];
    if backend_delegates_user_lane {
        grants.push(
            json!({"name": "backend-user", "apps": [MSI_OID], "lane": "user",
                           "audiences": ["sql", "storage", "arm"],
                           "delegate": {"max_lifetime_seconds": 7200}}),
        );
    }
    json!({
        "revision": revision,
        "audiences": {
            "sql": "https://database.windows.net/.default",
            "storage": "https://storage.azure.com/.default",
            "arm": "https://management.azure.com/.default",
        },
        "grants": grants,
    })
}

pub(crate) async fn broker_with_delegations(emulator: &TestEmulator) -> TestBroker {
    emulator
        .set_secret(POLICY_SECRET, &document(1, true).to_string())
        .await;
    TestBroker::spawn_with(
        emulator,
        &[
            ("BROKER_POLICY_SECRET_NAME", POLICY_SECRET),
            ("BROKER_DELEGATION_STORE", "memory"),
        ],
    )
    .await
}

async fn create(broker: &TestBroker, delegator: &str, body: Value) -> reqwest::Response {
    broker
        .post_json_as("/api/delegations", delegator, &body)
        .await
}

/// A user-lane delegation of `sql` and `storage` for the default user; its 201 body.
pub(crate) async fn user_delegation(emulator: &TestEmulator, broker: &TestBroker) -> Value {
    let backend = emulator.msi_token().await;
    let subject = emulator.user_token().await;
    let response = create(
        broker,
        &backend,
        json!({"lane": "user", "audiences": ["sql", "storage"], "subject_token": subject,
               "lifetime_seconds": 3600, "label": "session 4711"}),
    )
    .await;
    assert_eq!(response.status(), 201);
    json_body(response).await
}

pub(crate) fn bearer_of(created: &Value) -> String {
    created["token"].as_str().expect("a bearer").to_owned()
}

pub(crate) fn id_of(created: &Value) -> String {
    created["id"].as_str().expect("an id").to_owned()
}

/// Delegation `id`'s fresh bearer, asked for by `backend`; its 201 body.
pub(crate) async fn rotate(broker: &TestBroker, backend: &str, id: &str) -> Value {
    let response = broker
        .post_json_as(&format!("/api/delegations/{id}/token"), backend, &json!({}))
        .await;
    assert_eq!(response.status(), 201);
    json_body(response).await
}

/// `GET /api/delegations/{id}` as `reader`.
async fn read(broker: &TestBroker, reader: &str, id: &str) -> reqwest::Response {
    broker
        .get(&format!("/api/delegations/{id}"), Some(reader))
        .await
}

async fn redeem(broker: &TestBroker, bearer: &str, body: Value) -> reqwest::Response {
    broker.token(bearer, body).await
}

#[tokio::test]
async fn user_lane_delegation_redeems_tokens_issued_to_the_user_for_its_audiences_only() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let created = user_delegation(&emulator, &broker).await;
    let bearer = bearer_of(&created);
    assert!(bearer.starts_with("tbdlg_"), "{bearer}");
    assert_eq!(created["subject"]["oid"], USER_OID);
    assert_eq!(created["lane"], "user");

    // Act
    let sql = redeem(&broker, &bearer, json!({"audience": "sql"})).await;
    let storage = redeem(
        &broker,
        &bearer,
        json!({"audience": "storage", "lane": "user"}),
    )
    .await;
    let arm = redeem(&broker, &bearer, json!({"audience": "arm"})).await;
    let service = redeem(
        &broker,
        &bearer,
        json!({"audience": "sql", "lane": "service"}),
    )
    .await;

    // Assert
    assert_eq!(sql.status(), 200);
    let sql = decode_claims(json_body(sql).await["access_token"].as_str().unwrap());
    assert_eq!(
        (sql["oid"].as_str(), sql["aud"].as_str()),
        (Some(USER_OID), Some("https://database.windows.net"))
    );
    assert_eq!(storage.status(), 200);
    assert_error(arm, 403, "audience_not_delegated").await;
    assert_error(service, 403, "lane_not_delegated").await;
    let stats = emulator.stats().await;
    assert_eq!(
        stats["token_requests"]["obo"], 1,
        "only the creation's On-Behalf-Of"
    );
    assert_eq!(stats["token_requests"]["refresh_token"], 2);
}

#[tokio::test]
async fn service_lane_delegation_redeems_the_brokers_token() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let backend = emulator.msi_token().await;

    let response = create(
        &broker,
        &backend,
        json!({"lane": "service", "audiences": ["sql"]}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let created = json_body(response).await;
    assert_eq!(created["subject"]["type"], "service_principal");
    let redeemed = redeem(&broker, &bearer_of(&created), json!({"audience": "sql"})).await;

    assert_eq!(redeemed.status(), 200);
    let claims = decode_claims(json_body(redeemed).await["access_token"].as_str().unwrap());
    assert_eq!(claims["idtyp"], "app");
}

#[tokio::test]
async fn a_fresh_bearer_works_and_the_earlier_one_stays_valid_until_revocation() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let backend = emulator.msi_token().await;
    let created = user_delegation(&emulator, &broker).await;
    let id = id_of(&created);

    let rotated = rotate(&broker, &backend, &id).await;
    assert_ne!(bearer_of(&rotated), bearer_of(&created));
    assert_eq!(id_of(&rotated), id);
    for bearer in [bearer_of(&created), bearer_of(&rotated)] {
        assert_eq!(
            redeem(&broker, &bearer, json!({"audience": "sql"}))
                .await
                .status(),
            200
        );
    }

    let revoked = broker
        .delete(&format!("/api/delegations/{id}"), &backend)
        .await;
    assert_eq!(revoked.status(), 204);
    let again = broker
        .delete(&format!("/api/delegations/{id}"), &backend)
        .await;
    assert_eq!(again.status(), 204, "revoking is idempotent");
    for bearer in [bearer_of(&created), bearer_of(&rotated)] {
        assert_error(
            redeem(&broker, &bearer, json!({"audience": "sql"})).await,
            401,
            "invalid_token",
        )
        .await;
    }
    let state = json_body(read(&broker, &backend, &id).await).await;
    assert_eq!(state["state"], "revoked");
}

#[tokio::test]
async fn reading_a_delegation_shows_its_state_and_never_a_token() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let backend = emulator.msi_token().await;
    let created = user_delegation(&emulator, &broker).await;
    for _ in 0..2 {
        // The second answer comes from the token cache, and counts too.
        redeem(&broker, &bearer_of(&created), json!({"audience": "sql"})).await;
    }

    let response = read(&broker, &backend, &id_of(&created)).await;

    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["state"], "active");
    assert_eq!(body["label"], "session 4711");
    assert_eq!(body["redemptions"], 2);
    assert_eq!(body["audiences"], json!(["sql", "storage"]));
    assert!(!body.to_string().contains("tbdlg_"), "{body}");
}

#[tokio::test]
async fn another_app_gets_not_found_for_every_route_exactly_as_for_an_unknown_id() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let created = user_delegation(&emulator, &broker).await;
    let id = id_of(&created);
    let other = emulator
        .mint(json!({"kind": "msi", "oid": OTHER_MSI_OID}))
        .await;

    let reading = read(&broker, &other, &id).await;
    let rotate = broker
        .post_json_as(&format!("/api/delegations/{id}/token"), &other, &json!({}))
        .await;
    let revoke = broker
        .delete(&format!("/api/delegations/{id}"), &other)
        .await;
    let unknown = read(&broker, &other, "00000000000000000000000000000000").await;

    for (case, response) in [
        ("read", reading),
        ("rotate", rotate),
        ("revoke", revoke),
        ("unknown", unknown),
    ] {
        let body = assert_error(response, 404, "delegation_not_found").await;
        assert_eq!(
            body.as_object().map(|b| b.len()),
            Some(2),
            "case `{case}`: {body}"
        );
    }
    assert_eq!(
        redeem(&broker, &bearer_of(&created), json!({"audience": "sql"}))
            .await
            .status(),
        200,
        "not revoked by the other app"
    );
}

#[tokio::test]
async fn creation_refusals_follow_the_contract() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let backend = emulator.msi_token().await;
    let other_app = emulator
        .mint(json!({"kind": "msi", "oid": OTHER_MSI_OID}))
        .await;
    let user = emulator.user_token().await;
    // One case a line: (case, delegator, request, status, error code).
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        ("a user as delegator", &user, json!({"lane": "service", "audiences": ["sql"]}), 403, "caller_not_allowed"),
        ("an app without a delegate grant", &other_app, json!({"lane": "service", "audiences": ["sql"]}), 403, "caller_not_allowed"),
        ("an audience outside the delegator's grant", &backend, json!({"lane": "service", "audiences": ["storage"]}), 403, "audience_not_allowed"),
        ("an audience outside the subject's grants", &backend, json!({"lane": "user", "audiences": ["arm"], "subject_token": user}), 403, "audience_not_allowed"),
        ("an unknown alias", &backend, json!({"lane": "service", "audiences": ["nope"]}), 403, "audience_not_allowed"),
        ("a subject token in the service lane", &backend, json!({"lane": "service", "audiences": ["sql"], "subject_token": user}), 400, "invalid_request"),
        ("no subject token in the user lane", &backend, json!({"lane": "user", "audiences": ["sql"]}), 400, "invalid_request"),
        ("a lifetime above the grant's maximum", &backend, json!({"lane": "user", "audiences": ["sql"], "subject_token": user, "lifetime_seconds": 7201}), 400, "invalid_request"),
        ("a lifetime under a minute", &backend, json!({"lane": "service", "audiences": ["sql"], "lifetime_seconds": 59}), 400, "invalid_request"),
        ("no audiences", &backend, json!({"lane": "service", "audiences": []}), 400, "invalid_request"),
        ("seventeen audiences", &backend, json!({"lane": "service", "audiences": (0..17).map(|i| format!("a{i}")).collect::<Vec<_>>()}), 400, "invalid_request"),
        ("an unknown field", &backend, json!({"lane": "service", "audiences": ["sql"], "subject": "x"}), 400, "invalid_request"),
        ("a label over 128 characters", &backend, json!({"lane": "service", "audiences": ["sql"], "label": "x".repeat(129)}), 400, "invalid_request"),
        ("a garbage subject token", &backend, json!({"lane": "user", "audiences": ["sql"], "subject_token": "not-a-jwt"}), 401, "invalid_subject_token"),
        ("an app token as subject", &backend, json!({"lane": "user", "audiences": ["sql"], "subject_token": other_app}), 401, "invalid_subject_token"),
    ];

    for (case, delegator, body, status, code) in cases {
        // Act
        let response = create(&broker, delegator, body).await;
        // Assert
        let actual = response.status().as_u16();
        let body = json_body(response).await;
        assert_eq!(
            (actual, body["error"].as_str()),
            (status, Some(code)),
            "case `{case}`: {body}"
        );
        assert!(
            !body.to_string().contains("eyJ"),
            "case `{case}` echoed a token: {body}"
        );
    }
}

#[tokio::test]
async fn bad_bearers_are_all_invalid_token_and_a_changed_one_costs_no_store_read() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let bearer = bearer_of(&user_delegation(&emulator, &broker).await);
    let mut changed = bearer.clone().into_bytes();
    let last = changed.len() - 1;
    changed[last] = if changed[last] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).unwrap();
    let forged = format!("tbdlg_{}", "A".repeat(bearer.len() - 6));

    for (case, token) in [
        ("changed by one character", changed),
        ("forged", forged),
        ("truncated", bearer[..40].to_owned()),
    ] {
        let response = redeem(&broker, &token, json!({"audience": "sql"})).await;
        assert_error(response, 401, "invalid_token").await;
        let _ = case;
    }
    let health = json_body(broker.health().await).await;
    assert_eq!(health["delegations"]["refused"], 3, "{health}");
}

#[tokio::test]
async fn a_delegation_bearer_is_refused_on_get_sp_token_and_on_the_delegation_routes() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let created = user_delegation(&emulator, &broker).await;
    let bearer = bearer_of(&created);

    let get_sp_token = broker
        .get_sp_token(
            &bearer,
            json!({"targetScope": "https://database.windows.net/.default"}),
        )
        .await;
    let delegate = create(
        &broker,
        &bearer,
        json!({"lane": "service", "audiences": ["sql"]}),
    )
    .await;
    let reading = read(&broker, &bearer, &id_of(&created)).await;

    for response in [get_sp_token, delegate, reading] {
        assert_error(response, 401, "invalid_token").await;
    }
}

#[tokio::test]
async fn routes_answer_delegations_not_enabled_without_a_store() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let backend = emulator.msi_token().await;

    let response = create(
        &broker,
        &backend,
        json!({"lane": "service", "audiences": ["sql"]}),
    )
    .await;

    assert_error(response, 404, "delegations_not_enabled").await;
}

#[tokio::test]
async fn a_revoked_sign_in_makes_redemption_answer_reauthentication_required() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let backend = emulator.msi_token().await;
    let created = user_delegation(&emulator, &broker).await;

    emulator.revoke_sessions(USER_OID).await;
    // `storage` was never asked for, so no cached token can answer.
    let response = redeem(
        &broker,
        &bearer_of(&created),
        json!({"audience": "storage"}),
    )
    .await;

    assert_error(response, 401, "reauthentication_required").await;
    let state = json_body(read(&broker, &backend, &id_of(&created)).await).await;
    assert_eq!(state["state"], "reauthentication_required");
}

#[tokio::test]
async fn conditional_access_on_refresh_passes_the_claims_challenge_to_the_delegator() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let created = user_delegation(&emulator, &broker).await;

    emulator
        .obo_policy(USER_OID, Some("https://storage.azure.com"), "mfa")
        .await;
    let response = redeem(
        &broker,
        &bearer_of(&created),
        json!({"audience": "storage"}),
    )
    .await;

    let body = assert_error(response, 401, "reauthentication_required").await;
    assert!(
        body["claims"]
            .as_str()
            .is_some_and(|c| c.contains("capolids")),
        "{body}"
    );
}

#[tokio::test]
async fn the_user_lane_works_after_the_subject_token_expired_for_an_audience_never_asked() {
    // Arrange: a subject token that lives 60 s.
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let backend = emulator.msi_token().await;
    let subject = emulator.mint(json!({"lifetime_seconds": 60})).await;
    let response = create(
        &broker,
        &backend,
        json!({"lane": "user", "audiences": ["sql", "storage"], "subject_token": subject}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let bearer = bearer_of(&json_body(response).await);

    // Act: the tenant's clock 90 s past that token's expiry and Entra's 5 minutes of skew.
    emulator.advance_clock(60 + 300 + 90).await;
    let response = redeem(&broker, &bearer, json!({"audience": "storage"})).await;

    // Assert
    assert_eq!(response.status(), 200);
    let claims = decode_claims(json_body(response).await["access_token"].as_str().unwrap());
    assert_eq!(claims["oid"], USER_OID);
    assert_eq!(claims["aud"], "https://storage.azure.com");
}

#[tokio::test]
async fn in_strict_mode_successive_refreshes_keep_the_newest_refresh_token() {
    let emulator = TestEmulator::start().await;
    emulator.set_strict_refresh_tokens(true).await;
    let broker = broker_with_delegations(&emulator).await;
    let bearer = bearer_of(&user_delegation(&emulator, &broker).await);

    for audience in ["sql", "storage"] {
        let response = redeem(&broker, &bearer, json!({"audience": audience})).await;
        assert_eq!(response.status(), 200, "{audience}");
    }
    assert_eq!(emulator.stats().await["token_requests"]["refresh_token"], 2);
}

#[tokio::test]
async fn removing_the_delegators_grant_stops_redemptions_within_one_policy_refresh() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let bearer = bearer_of(&user_delegation(&emulator, &broker).await);
    assert_eq!(
        redeem(&broker, &bearer, json!({"audience": "sql"}))
            .await
            .status(),
        200
    );

    emulator
        .set_secret(POLICY_SECRET, &document(2, false).to_string())
        .await;
    let deadline = tokio::time::Instant::now() + POLICY_WAIT;
    let status = loop {
        let response = redeem(&broker, &bearer, json!({"audience": "sql"})).await;
        let status = response.status().as_u16();
        if status != 200 || tokio::time::Instant::now() >= deadline {
            break (status, json_body(response).await["error"].clone());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    assert_eq!(status, (403, json!("audience_not_delegated")));
}

/// A backend admitted by app role that delegates `sql`, and users admitted to `sql` by `group`.
fn document_by_role_and_group(revision: u64, group: &str) -> Value {
    json!({
        "revision": revision,
        "audiences": {"sql": "https://database.windows.net/.default"},
        "grants": [
            {"name": "backends", "apps": {"app_role": DELEGATE_ROLE}, "lane": "user",
             "audiences": ["sql"], "delegate": true},
            {"name": "analysts-own-sql", "users": {"groups": [group]}, "lane": "user",
             "audiences": ["sql"]},
        ],
    })
}

#[tokio::test]
async fn grants_by_app_role_and_group_are_re_checked_with_the_membership_proven_at_creation() {
    // Arrange
    let emulator = TestEmulator::start().await;
    emulator
        .set_secret(
            POLICY_SECRET,
            &document_by_role_and_group(1, ANALYSTS_GROUP).to_string(),
        )
        .await;
    let broker = TestBroker::spawn_with(
        &emulator,
        &[
            ("BROKER_POLICY_SECRET_NAME", POLICY_SECRET),
            ("BROKER_DELEGATION_STORE", "memory"),
        ],
    )
    .await;
    let backend = emulator
        .mint(json!({"kind": "msi", "oid": OTHER_MSI_OID, "roles": [DELEGATE_ROLE]}))
        .await;
    let body = |subject: String| {
        json!({"lane": "user", "audiences": ["sql"], "subject_token": subject,
               "lifetime_seconds": 3600})
    };
    let overage = create(
        &broker,
        &backend,
        body(overage_analyst_token(&emulator).await),
    )
    .await;
    let created = create(&broker, &backend, body(analyst_token(&emulator).await)).await;
    assert_eq!(created.status(), 201);
    let bearer = bearer_of(&json_body(created).await);

    // Act
    let redeemed = redeem(&broker, &bearer, json!({"audience": "sql"})).await;
    emulator
        .set_secret(
            POLICY_SECRET,
            &document_by_role_and_group(2, OTHER_GROUP).to_string(),
        )
        .await;
    let deadline = tokio::time::Instant::now() + POLICY_WAIT;
    let after_regrant = loop {
        let response = redeem(&broker, &bearer, json!({"audience": "sql"})).await;
        if response.status() != 200 || tokio::time::Instant::now() >= deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Assert
    assert_error(overage, 403, "audience_not_allowed").await;
    assert_eq!(redeemed.status(), 200);
    assert_error(after_regrant, 403, "audience_not_delegated").await;
}

#[tokio::test]
async fn every_decision_writes_one_audit_line_naming_the_delegation_and_no_bearer() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let backend = emulator.msi_token().await;
    let created = user_delegation(&emulator, &broker).await;
    let (id, bearer) = (id_of(&created), bearer_of(&created));
    redeem(&broker, &bearer, json!({"audience": "sql"})).await;
    read(&broker, &backend, &id).await;
    broker
        .delete(&format!("/api/delegations/{id}"), &backend)
        .await;

    let lines = broker.wait_for_audit_lines(4).await;

    let decisions: Vec<(&str, &str, u64)> = lines
        .iter()
        .map(|line| {
            (
                line["route"].as_str().unwrap_or_default(),
                line["decision"].as_str().unwrap_or_default(),
                line["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("delegations", "created", 201),
            ("token", "issued", 200),
            ("delegations", "read", 200),
            ("delegations", "revoked", 204)
        ]
    );
    for line in &lines {
        assert_eq!(line["delegation"], id, "{line}");
        assert_eq!(line["delegator"], MSI_OID, "{line}");
        assert_eq!(line["subject"], USER_OID, "{line}");
    }
    let everything = broker.all_lines().join("\n");
    assert!(!everything.contains(&bearer), "a bearer reached the log");
    assert!(
        !everything.contains("1.AQ"),
        "a refresh token reached the log"
    );
}

#[tokio::test]
async fn whoami_with_a_delegation_bearer_shows_the_delegation() {
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let created = user_delegation(&emulator, &broker).await;

    let response = broker.whoami(Some(&bearer_of(&created))).await;

    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["delegation"]["id"], created["id"]);
    assert_eq!(body["delegation"]["lane"], "user");
    assert_eq!(body["delegation"]["subject"]["oid"], USER_OID);
    assert_eq!(body["delegation"]["audiences"], json!(["sql", "storage"]));
}
