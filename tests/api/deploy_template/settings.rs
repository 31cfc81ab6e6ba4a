//! What a deployment writes into the app and the vault: the policy mode's settings, secrets only when an
//! initial value is given, and app settings merged so that a redeploy keeps an operator's changes.

use serde_json::{Value, json};

use token_broker::settings::LEGACY_POLICY_SETTINGS;

use super::{configurations, example_values, parameters, template};
use crate::helpers::arm::Deployment;

#[test]
fn document_mode_is_the_default_and_emits_no_legacy_policy_setting() {
    let template = template();
    assert_eq!(
        template["parameters"]["policyMode"]["defaultValue"],
        "document"
    );

    for (case, values) in configurations()
        .into_iter()
        .filter(|(case, _)| *case != "legacy")
    {
        let settings = Deployment::new(&template, &values, json!({})).app_settings();

        assert_eq!(
            settings["BROKER_POLICY_SECRET_NAME"], "broker-policy",
            "{case}"
        );
        let legacy: Vec<&&str> = LEGACY_POLICY_SETTINGS
            .iter()
            .filter(|name| settings.contains_key(**name))
            .collect();
        assert_eq!(
            legacy,
            Vec::<&&str>::new(),
            "{case}: legacy settings beside a document"
        );
    }
}

#[test]
fn legacy_mode_emits_the_allowlist_settings_and_no_policy_document() {
    let template = template();
    let values = parameters(
        json!({"policyMode": "legacy", "userAccess": "app-role", "userAppRole": "Broker.User"}),
    );

    let settings = Deployment::new(&template, &values, json!({})).app_settings();

    assert_eq!(settings["BROKER_ALLOWLIST_SECRET_NAME"], "allowed-msi-oids");
    assert_eq!(settings["BROKER_USER_ACCESS"], "app-role");
    assert_eq!(settings["BROKER_USER_APP_ROLE"], "Broker.User");
    assert!(!settings.contains_key("BROKER_POLICY_SECRET_NAME"));
    assert!(!settings.contains_key("BROKER_POLICY_FILE"));
}

/// `(secret name, value)` of every secret the deployment writes.
fn secrets_written(values: &Value) -> Vec<(String, Value)> {
    let template = template();
    Deployment::new(&template, values, json!({}))
        .of_type("Microsoft.KeyVault/vaults/secrets")
        .into_iter()
        .map(|secret| {
            let name = secret["name"].as_str().unwrap_or_default();
            let name = name.rsplit('/').next().unwrap_or_default().to_owned();
            (name, secret["properties"]["value"].clone())
        })
        .collect()
}

#[test]
fn no_secret_is_written_unless_its_initial_value_parameter_is_set() {
    // Every configuration, deployed (and redeployed) without an initial value, writes no secret.
    for (case, values) in configurations() {
        assert_eq!(secrets_written(&values), vec![], "{case}");
    }

    // Each initial value writes exactly its own secret, with exactly that value, and only in its mode.
    let cases = [
        (
            json!({"initialPolicyDocument": "{\"revision\":1,\"grants\":[]}"}),
            "broker-policy",
        ),
        (
            json!({"policyMode": "legacy", "initialAllowedMsiOids": "[]"}),
            "allowed-msi-oids",
        ),
        (
            json!({"delegationsEnabled": true, "initialDelegationKey": "c2VhbA=="}),
            "delegation-key",
        ),
    ];
    for (overrides, secret) in cases {
        let given = overrides
            .as_object()
            .and_then(|o| o.iter().find(|(name, _)| name.starts_with("initial")))
            .map(|(_, value)| value.clone())
            .unwrap_or_default();
        assert_eq!(
            secrets_written(&parameters(overrides.clone())),
            vec![(secret.to_owned(), given)],
            "{overrides}"
        );
    }
    // An initial value for the other mode's secret writes nothing.
    assert_eq!(
        secrets_written(&parameters(json!({"initialAllowedMsiOids": "[]"}))),
        vec![]
    );
    assert_eq!(
        secrets_written(&parameters(
            json!({"policyMode": "legacy", "initialPolicyDocument": "{}"})
        )),
        vec![]
    );
}

#[test]
fn redeploy_keeps_the_app_settings_an_operator_changed_and_rewrites_the_wiring() {
    let template = template();
    let first = Deployment::new(&template, &example_values(), json!({})).app_settings();
    let mut changed = first.clone();
    changed.insert("BROKER_RATE_LIMIT_TOTAL".into(), json!("5000"));
    changed.insert("BROKER_LOG".into(), json!("warn,audit=info"));
    changed.insert("BROKER_JWKS_REFRESH_SECONDS".into(), json!("600"));
    changed.insert(
        "BROKER_KEY_VAULT_URL".into(),
        json!("https://elsewhere.vault.azure.net/"),
    );
    changed.insert(
        "BROKER_MANAGED_IDENTITY_CLIENT_ID".into(),
        json!("someone-else"),
    );

    let second =
        Deployment::new(&template, &example_values(), Value::Object(changed)).app_settings();

    // Tuning an operator changed, and settings the template does not know, survive.
    assert_eq!(second["BROKER_RATE_LIMIT_TOTAL"], "5000");
    assert_eq!(second["BROKER_LOG"], "warn,audit=info");
    assert_eq!(second["BROKER_JWKS_REFRESH_SECONDS"], "600");
    // The wiring to what the template created is the template's.
    assert_eq!(
        second["BROKER_KEY_VAULT_URL"],
        first["BROKER_KEY_VAULT_URL"]
    );
    assert_eq!(
        second["BROKER_MANAGED_IDENTITY_CLIENT_ID"],
        first["BROKER_MANAGED_IDENTITY_CLIENT_ID"]
    );
    // A redeploy onto what the first deployment wrote changes nothing.
    let again =
        Deployment::new(&template, &example_values(), Value::Object(first.clone())).app_settings();
    assert_eq!(again, first);
}

#[test]
fn first_deployment_writes_the_tuning_parameters() {
    let template = template();
    let values = parameters(json!({"rateLimitTotal": 1234, "allowlistRefreshSeconds": 60}));

    let settings = Deployment::new(&template, &values, json!({})).app_settings();

    assert_eq!(settings["BROKER_RATE_LIMIT_TOTAL"], "1234");
    assert_eq!(settings["BROKER_ALLOWLIST_REFRESH_SECONDS"], "60");
    assert_eq!(settings["BROKER_REQUIRED_USER_SCOPE"], "user_impersonation");
}

#[test]
fn delegation_store_gets_its_container_a_container_scoped_role_and_its_settings() {
    let template = template();
    let off = Deployment::new(&template, &example_values(), json!({}));
    let on = Deployment::new(
        &template,
        &parameters(json!({"delegationsEnabled": true})),
        json!({}),
    );
    let storage = on.parameter("storageAccountName");
    let storage = storage.as_str().unwrap_or_default();

    let containers = |d: &Deployment| -> Vec<String> {
        d.of_type("Microsoft.Storage/storageAccounts/blobServices/containers")
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        containers(&off),
        vec![format!("{storage}/default/app-package")]
    );
    assert_eq!(
        containers(&on),
        vec![
            format!("{storage}/default/app-package"),
            format!("{storage}/default/delegations")
        ]
    );
    let settings = on.app_settings();
    assert_eq!(
        settings["BROKER_DELEGATION_STORE"],
        format!("https://{storage}.blob.core.windows.net/delegations")
    );
    assert_eq!(settings["BROKER_DELEGATION_KEY_NAME"], "delegation-key");
    assert_eq!(settings["BROKER_DELEGATION_REVOCATION_SECONDS"], "5");
    assert_eq!(settings["BROKER_DELEGATION_TOKEN_LIFETIME_SECONDS"], "900");
    assert!(
        off.app_settings()
            .keys()
            .all(|name| !name.starts_with("BROKER_DELEGATION_"))
    );
    let contributor: Vec<Value> = on
        .of_type("Microsoft.Authorization/roleAssignments")
        .into_iter()
        .filter(|a| {
            a["properties"]["roleDefinitionId"]
                .as_str()
                .is_some_and(|r| r.ends_with("ba92f5b4-2d11-453d-a403-e96b0029c9fe"))
        })
        .collect();
    assert_eq!(contributor.len(), 1, "Storage Blob Data Contributor, once");
    assert_eq!(
        contributor[0]["scope"],
        format!(
            "Microsoft.Storage/storageAccounts/{storage}/blobServices/default/containers/delegations"
        )
    );
}
