//! The grants policy document (issue 11): one document deciding both routes for every caller, reloads
//! from Key Vault without a restart (a higher revision only), and failing closed before the first load.

use serde_json::{Value, json};

use crate::helpers::assertions::{assert_error, json_body};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{SQL_SCOPE, sql_request};
use crate::helpers::policy::{
    ANALYSTS_GROUP, FABRIC_SCOPE, POLICY_SECRET, STORAGE_SCOPE, analyst_token, broker_with_policy,
    example_document, health_when, ingest_token, overage_analyst_token, sales_token,
    stranger_token,
};

enum Route {
    GetSpToken(&'static str),
    Token(Value),
}

/// What a row expects: a token issued under a named grant, or a refusal with a code.
enum Expect {
    Issued(&'static str),
    Refused(u16, &'static str),
}

#[tokio::test]
async fn one_document_decides_every_caller_lane_and_scope() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = broker_with_policy(&emulator, &example_document(7)).await;
    let sales = sales_token(&emulator).await;
    let ingest = ingest_token(&emulator).await;
    let analyst = analyst_token(&emulator).await;
    let overage = overage_analyst_token(&emulator).await;
    let user = emulator.user_token().await;
    let stranger = stranger_token(&emulator).await;
    let audience = |alias: &str| Route::Token(json!({"audience": alias}));
    let service = |alias: &str| Route::Token(json!({"audience": alias, "lane": "service"}));
    let table = [
        (
            "sales gets SQL",
            &sales,
            Route::GetSpToken(SQL_SCOPE),
            Expect::Issued("sales-workspace-sql"),
        ),
        (
            "sales gets SQL by alias",
            &sales,
            audience("sql"),
            Expect::Issued("sales-workspace-sql"),
        ),
        (
            "sales is refused Storage",
            &sales,
            Route::GetSpToken(STORAGE_SCOPE),
            Expect::Refused(403, "scope_not_allowed"),
        ),
        (
            "sales is refused Storage by alias",
            &sales,
            audience("storage"),
            Expect::Refused(403, "scope_not_allowed"),
        ),
        (
            "ingestion gets Storage",
            &ingest,
            Route::GetSpToken(STORAGE_SCOPE),
            Expect::Issued("ingestion-storage"),
        ),
        (
            "ingestion is refused SQL",
            &ingest,
            Route::GetSpToken(SQL_SCOPE),
            Expect::Refused(403, "scope_not_allowed"),
        ),
        (
            "an app never has the user lane",
            &ingest,
            Route::Token(json!({"audience": "storage", "lane": "user"})),
            Expect::Refused(403, "lane_not_allowed"),
        ),
        (
            "analyst gets their own Fabric",
            &analyst,
            audience("fabric_api"),
            Expect::Issued("analysts-own-fabric"),
        ),
        (
            "analyst is refused the SP's Fabric",
            &analyst,
            service("fabric_api"),
            Expect::Refused(403, "caller_not_allowed"),
        ),
        (
            "analyst is refused GetSPToken",
            &analyst,
            Route::GetSpToken(FABRIC_SCOPE),
            Expect::Refused(403, "caller_not_allowed"),
        ),
        (
            "every user gets their own SQL",
            &user,
            audience("sql"),
            Expect::Issued("everyone-own-sql"),
        ),
        (
            "a user outside the group is refused Fabric",
            &user,
            audience("fabric_api"),
            Expect::Refused(403, "scope_not_allowed"),
        ),
        (
            "group overage matches no group grant",
            &overage,
            audience("fabric_api"),
            Expect::Refused(403, "scope_not_allowed"),
        ),
        (
            "a caller with no grant is refused",
            &stranger,
            Route::GetSpToken(SQL_SCOPE),
            Expect::Refused(403, "caller_not_allowed"),
        ),
        (
            "the document's aliases replace the built-in ones",
            &user,
            audience("arm"),
            Expect::Refused(403, "unknown_audience"),
        ),
    ];

    for (index, (case, token, route, expect)) in table.iter().enumerate() {
        // Act
        let response = match route {
            Route::GetSpToken(scope) => {
                broker
                    .get_sp_token(token, json!({"targetScope": scope}))
                    .await
            }
            Route::Token(body) => broker.token(token, body.clone()).await,
        };

        // Assert: the status and code, the revision in every refusal, the grant in the audit line.
        let status = response.status().as_u16();
        let body = json_body(response).await;
        let audit = broker.wait_for_audit_lines(index + 1).await;
        let line = audit
            .get(index)
            .unwrap_or_else(|| panic!("case `{case}`: no audit line"));
        match expect {
            Expect::Issued(grant) => {
                assert_eq!(status, 200, "case `{case}`: {body}");
                assert_eq!(line["grant"], *grant, "case `{case}`: {line}");
            }
            Expect::Refused(expected, code) => {
                assert_eq!(
                    (status, body["error"].as_str()),
                    (*expected, Some(*code)),
                    "case `{case}`: {body}"
                );
                assert_eq!(body["policy_revision"], 7, "case `{case}`: {body}");
                assert!(line.get("grant").is_none(), "case `{case}`: {line}");
            }
        }
    }
    let overage_line = &broker.audit_lines()[12];
    assert_eq!(overage_line["groups"], "overage", "{overage_line}");
}

#[tokio::test]
async fn a_higher_revision_in_key_vault_changes_decisions_without_a_restart() {
    // Arrange: the sales workspace may not have Storage under revision 7.
    let emulator = TestEmulator::start().await;
    let broker = broker_with_policy(&emulator, &example_document(7)).await;
    let sales = sales_token(&emulator).await;
    let storage = json!({"targetScope": STORAGE_SCOPE});
    assert_error(
        broker.get_sp_token(&sales, storage.clone()).await,
        403,
        "scope_not_allowed",
    )
    .await;

    // Act: revision 8 also grants it Storage.
    let mut next = example_document(8);
    next["grants"][0]["scopes"] = json!([SQL_SCOPE, STORAGE_SCOPE]);
    emulator.set_secret(POLICY_SECRET, &next.to_string()).await;
    let health = health_when(&broker, |h| h["policy"]["revision"] == 8).await;

    // Assert
    assert_eq!(health["policy"]["revision"], 8, "{health}");
    assert_eq!(health["policy"]["source"], "key_vault", "{health}");
    assert_eq!(health["policy"]["grants"], 4, "{health}");
    let response = broker.get_sp_token(&sales, storage).await;
    assert_eq!(response.status(), 200);
    let pinned = broker
        .token(
            &sales,
            json!({"audience": "sql", "configurationRevision": 8}),
        )
        .await;
    assert_eq!(
        pinned.status(),
        200,
        "/api/token pins the document's revision"
    );
}

#[tokio::test]
async fn a_changed_document_with_the_same_revision_is_refused_and_the_old_one_keeps_deciding() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = broker_with_policy(&emulator, &example_document(7)).await;
    let sales = sales_token(&emulator).await;

    // Act: the same revision, now granting Storage too.
    let mut changed = example_document(7);
    changed["grants"][0]["scopes"] = json!([SQL_SCOPE, STORAGE_SCOPE]);
    emulator
        .set_secret(POLICY_SECRET, &changed.to_string())
        .await;
    let health = health_when(&broker, |h| !h["policy"]["last_refusal"].is_null()).await;

    // Assert: health says why; revision 7 as first loaded still decides.
    let refusal = health["policy"]["last_refusal"]
        .as_str()
        .unwrap_or_default();
    assert!(refusal.contains("not higher"), "{health}");
    assert_eq!(health["policy"]["revision"], 7, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["reasons"], json!(["policy_refused"]), "{health}");
    let storage = json!({"targetScope": STORAGE_SCOPE});
    assert_error(
        broker.get_sp_token(&sales, storage).await,
        403,
        "scope_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn an_invalid_document_is_refused_and_the_old_one_keeps_deciding() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = broker_with_policy(&emulator, &example_document(7)).await;
    let sales = sales_token(&emulator).await;

    // Act: a higher revision with a malformed id.
    let mut invalid = example_document(9);
    invalid["grants"][0]["apps"] = json!(["not-an-object-id"]);
    emulator
        .set_secret(POLICY_SECRET, &invalid.to_string())
        .await;
    let health = health_when(&broker, |h| !h["policy"]["last_refusal"].is_null()).await;

    // Assert: the path is named, the contents are not.
    let refusal = health["policy"]["last_refusal"]
        .as_str()
        .unwrap_or_default();
    assert!(refusal.contains("grants[0].apps[0]"), "{health}");
    assert!(!health.to_string().contains("not-an-object-id"), "{health}");
    assert_eq!(health["policy"]["revision"], 7, "{health}");
    assert_eq!(
        broker.get_sp_token(&sales, sql_request()).await.status(),
        200
    );
}

#[tokio::test]
async fn refused_document_keys_reach_health_and_logs_only_as_short_names() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = broker_with_policy(&emulator, &example_document(7)).await;
    let planted = "client_secret=Pl4nted-S3cret-Value";
    let huge = format!("{}\u{1b}[2K\rvalid", "k".repeat(200_000));
    let cases = [
        (8, planted, "grants[0].client_secret…".to_owned()),
        (9, huge.as_str(), format!("grants[0].{}…", "k".repeat(32))),
    ];
    for (revision, key, shown) in cases {
        // Act: a higher revision with an unknown field.
        let mut document = example_document(revision);
        document["grants"][0][key] = json!(1);
        emulator
            .set_secret(POLICY_SECRET, &document.to_string())
            .await;
        let health = health_when(&broker, |h| {
            h["policy"]["last_refusal"]
                .as_str()
                .is_some_and(|refusal| refusal.contains(&shown))
        })
        .await;

        // Assert: a short name and a fixed sentence, a few hundred bytes in all.
        let refusal = health["policy"]["last_refusal"]
            .as_str()
            .unwrap_or_default();
        assert!(refusal.contains(&shown), "{refusal:.400}");
        assert!(
            refusal.len() <= 300,
            "{} bytes: {refusal:.400}",
            refusal.len()
        );
        let text = health.to_string();
        assert!(text.len() < 2_000, "health grew to {} bytes", text.len());
        for leaked in ["client_secret=", "Pl4nted", "\\u001b"] {
            assert!(!text.contains(leaked), "{leaked} in {text:.400}");
        }
    }
    let logs = broker.all_lines().join("\n");
    for leaked in [
        "client_secret=",
        "Pl4nted",
        "\u{1b}",
        "\\u001b",
        &"k".repeat(100),
    ] {
        assert!(!logs.contains(leaked), "{leaked:.20} in the logs");
    }
}

#[tokio::test]
async fn overage_markers_beside_a_groups_claim_match_no_group_grant() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = broker_with_policy(&emulator, &example_document(7)).await;
    let fabric = json!({"audience": "fabric_api"});
    let member = analyst_token(&emulator).await;
    assert_eq!(broker.token(&member, fabric.clone()).await.status(), 200);
    let endpoint = "https://graph.microsoft.com/v1.0/users/u/getMemberObjects";
    for marker in [
        json!({"hasgroups": true}),
        json!({"_claim_names": {"groups": "src1"}}),
        json!({"_claim_sources": {"src1": {"endpoint": endpoint}}}),
    ] {
        // Act: the analyst's groups claim, and a marker saying it is not the whole list.
        let token = emulator
            .mint(json!({"groups": [ANALYSTS_GROUP], "claims": marker}))
            .await;
        let response = broker.token(&token, fabric.clone()).await;

        // Assert: only the tenant-wide grant matches, and it does not cover Fabric.
        assert_error(response, 403, "scope_not_allowed").await;
    }
}

#[tokio::test]
async fn requests_fail_closed_until_the_first_document_loads() {
    // Arrange: the secret does not exist yet.
    let emulator = TestEmulator::start().await;
    let broker =
        TestBroker::spawn_with(&emulator, &[("BROKER_POLICY_SECRET_NAME", POLICY_SECRET)]).await;
    let sales = sales_token(&emulator).await;

    // Act
    let response = broker.get_sp_token(&sales, sql_request()).await;

    // Assert
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert_error(response, 503, "policy_unavailable").await;
    let token_route = broker.token(&sales, json!({"audience": "sql"})).await;
    assert_error(token_route, 503, "policy_unavailable").await;
    let health = broker.health().await;
    assert_eq!(health.status(), 503);
    let health = json_body(health).await;
    assert_eq!(health["policy"]["loaded"], false, "{health}");
    assert!(health.get("allowlist").is_none(), "{health}");

    // And once the document is uploaded, it decides.
    emulator
        .set_secret(POLICY_SECRET, &example_document(1).to_string())
        .await;
    health_when(&broker, |h| h["policy"]["loaded"] == true).await;
    assert_eq!(
        broker.get_sp_token(&sales, sql_request()).await.status(),
        200
    );
}

#[tokio::test]
async fn a_policy_file_deployed_with_the_app_decides() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("policy-{}", crate::helpers::ids::new_guid()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("policy.json");
    std::fs::write(&file, example_document(3).to_string()).unwrap();
    let broker =
        TestBroker::spawn_with(&emulator, &[("BROKER_POLICY_FILE", file.to_str().unwrap())]).await;

    // Act
    let sales = broker
        .get_sp_token(&sales_token(&emulator).await, sql_request())
        .await;
    let stranger = broker
        .get_sp_token(&stranger_token(&emulator).await, sql_request())
        .await;

    // Assert
    assert_eq!(sales.status(), 200);
    let body = assert_error(stranger, 403, "caller_not_allowed").await;
    assert_eq!(body["policy_revision"], 3);
    let health = json_body(broker.health().await).await;
    assert_eq!(health["policy"]["source"], "file", "{health}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn legacy_policy_settings_beside_a_document_stop_start_up_naming_them() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let app_settings = crate::helpers::broker::settings(
        &emulator,
        &[
            ("BROKER_POLICY_SECRET_NAME", POLICY_SECRET),
            ("BROKER_USER_ACCESS", "tenant"),
            ("BROKER_ALLOWED_MSI_OIDS", crate::helpers::ids::MSI_OID),
        ],
    );
    let mut process = crate::helpers::host::BrokerProcess::launch(&app_settings);

    // Act
    let status = process.wait_for_exit().await;

    // Assert: exit 1 and one line naming both settings, never their values.
    let mut lines = process.stdout_lines();
    lines.extend(process.stderr_lines());
    assert_eq!(status.code(), Some(1), "lines: {lines:#?}");
    let naming: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("BROKER_ALLOWED_MSI_OIDS, BROKER_USER_ACCESS"))
        .collect();
    assert_eq!(naming.len(), 1, "lines: {lines:#?}");
    assert!(
        !naming[0].contains(crate::helpers::ids::MSI_OID),
        "{}",
        naming[0]
    );
}
