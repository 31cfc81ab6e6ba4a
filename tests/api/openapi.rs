//! `docs/openapi.yaml` against the broker: the routes of the function folders, the error codes of
//! `src/http/error.rs`, and real answers of each route (every `TestBroker` call validates its JSON body
//! against the document; these tests make one call per route and prove the check can fail).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::function_app::{APP_ROOT, FunctionApp};
use crate::helpers::ids::{sql_request, sql_user_lane};
use crate::helpers::openapi::{document, response_validator};
use crate::helpers::schemas::schema_errors;

/// Every `error` code the document lists, from the `enum`/`const` of each error response's `error`.
fn documented_error_codes() -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    collect_error_codes(document(), &mut codes);
    codes
}

fn collect_error_codes(value: &Value, codes: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(error) = map.get("properties").and_then(|p| p.get("error")) {
                let listed = error["enum"].as_array().cloned().unwrap_or_default();
                codes.extend(
                    listed
                        .iter()
                        .chain(error.get("const"))
                        .filter_map(Value::as_str)
                        .map(str::to_owned),
                );
            }
            map.values().for_each(|v| collect_error_codes(v, codes));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_error_codes(v, codes)),
        _ => {}
    }
}

/// The codes `ApiError::code` can return: the string literals of that function in src/http/error.rs.
fn broker_error_codes() -> BTreeSet<String> {
    let source = std::fs::read_to_string(Path::new(APP_ROOT).join("src/http/error.rs"))
        .expect("read src/http/error.rs");
    let start = source
        .find("pub fn code(&self)")
        .expect("ApiError::code in src/http/error.rs");
    let body = &source[start..];
    let end = body.find("\n    }\n").expect("the end of ApiError::code");
    body[..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn openapi_document_is_3_1_and_describes_every_function_folder_route_and_method() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    let app = FunctionApp::load();

    for function in &app.functions {
        let path = format!("/{}/{}", app.route_prefix, function.route);
        // A catch-all route (`{*rest}`) is documented as the paths under its fixed part.
        let fixed = path.strip_suffix("/{*rest}");
        let under = |documented: &str| match fixed {
            Some(fixed) => {
                documented.eq_ignore_ascii_case(fixed)
                    || documented
                        .to_ascii_lowercase()
                        .starts_with(&format!("{}/", fixed.to_ascii_lowercase()))
            }
            None => documented.eq_ignore_ascii_case(&path),
        };
        let operations: Vec<&Value> = document["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(p, _)| under(p))
            .map(|(_, operations)| operations)
            .collect();
        assert!(
            !operations.is_empty(),
            "docs/openapi.yaml lacks {path} ({})",
            function.name
        );
        let documented: BTreeSet<String> = operations
            .iter()
            .filter_map(|operations| operations.as_object())
            .flatten()
            .map(|(method, _)| method.clone())
            .filter(|key| key != "parameters")
            .collect();
        let served: BTreeSet<String> = function.methods.iter().flatten().cloned().collect();
        assert_eq!(documented, served, "methods of {path}");
    }
}

#[test]
fn openapi_error_codes_are_exactly_the_codes_the_broker_answers_with() {
    let documented = documented_error_codes();
    let answered = broker_error_codes();
    assert!(
        answered.contains("invalid_token"),
        "scan found {answered:?}"
    );

    assert_eq!(documented, answered);
}

#[test]
fn openapi_check_rejects_bodies_that_break_the_contract() {
    let ok =
        response_validator("POST", "/api/GetSPToken", 200).expect("GetSPToken 200 is documented");
    let forbidden = response_validator("POST", "/api/token", 403).expect("token 403 is documented");

    let no_caller =
        json!({"access_token": "x", "token_type": "Bearer", "expires_in": 1, "scope": "s"});
    let unknown_code = json!({"error": "teapot", "error_description": "I am one."});
    let no_revision = json!({"error": "caller_not_allowed", "error_description": "No."});
    assert!(
        !schema_errors(&ok, &no_caller).is_empty(),
        "a 200 without caller passed"
    );
    assert!(
        !schema_errors(&forbidden, &unknown_code).is_empty(),
        "an unknown code passed"
    );
    assert!(
        !schema_errors(&forbidden, &no_revision).is_empty(),
        "a policy refusal without policy_revision passed"
    );
}

#[tokio::test]
async fn each_route_answers_as_the_openapi_document_says() {
    // Arrange: every call below goes through TestBroker, which validates its body against the document;
    // the statuses say which documented response each body was checked against.
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let msi = emulator.msi_token().await;
    let user = emulator.user_token().await;

    // Act
    let statuses = [
        broker.health().await.status(),
        broker.get_sp_token(&msi, sql_request()).await.status(),
        broker.get_sp_token(&user, sql_request()).await.status(),
        broker.token(&user, sql_user_lane()).await.status(),
        broker
            .token(&msi, json!({"audience": "sql", "lane": "user"}))
            .await
            .status(),
        broker
            .token(&user, json!({"audience": "nope"}))
            .await
            .status(),
        broker
            .token(
                &user,
                json!({"audience": "sql", "configurationRevision": 99}),
            )
            .await
            .status(),
        broker
            .get_sp_token("not-a-token", sql_request())
            .await
            .status(),
        broker.token(&user, json!({"audience": 7})).await.status(),
        broker.whoami(Some(&msi)).await.status(),
        broker.whoami(None).await.status(),
    ];

    // Assert
    let statuses: Vec<u16> = statuses.iter().map(|s| s.as_u16()).collect();
    assert_eq!(
        statuses,
        [200, 200, 403, 200, 403, 403, 409, 401, 400, 200, 401]
    );
}
