//! Diagnostics, alerts, publishing credentials and scale: Key Vault's audit events and the function
//! logs reach the workspace, each log alert runs the KQL docs/operations.md shows, basic-auth publishing
//! is off, and the scale settings stay within what Flex Consumption documents.

use std::path::Path;

use serde_json::{Value, json};

use super::{example_values, parameters, template};
use crate::helpers::arm::Deployment;
use crate::helpers::function_app::APP_ROOT;

#[test]
fn key_vault_audit_events_and_function_logs_go_to_the_workspace() {
    let template = template();
    let deployment = Deployment::new(
        &template,
        &parameters(json!({"appName": "tb", "keyVaultName": "kvtb"})),
        json!({}),
    );
    let workspace = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/tb-logs";

    let settings: Vec<(Value, Value)> = deployment
        .of_type("Microsoft.Insights/diagnosticSettings")
        .iter()
        .map(|d| {
            assert_eq!(d["properties"]["workspaceId"], workspace);
            (d["scope"].clone(), d["properties"]["logs"].clone())
        })
        .collect();

    assert_eq!(
        settings,
        vec![
            (
                json!("Microsoft.KeyVault/vaults/kvtb"),
                json!([{"category": "AuditEvent", "enabled": true}])
            ),
            (
                json!("Microsoft.Web/sites/tb"),
                json!([{"category": "FunctionAppLogs", "enabled": true}])
            ),
        ]
    );
}

#[test]
fn each_log_alert_runs_the_query_docs_operations_md_shows() {
    let template = template();
    let operations = std::fs::read_to_string(Path::new(APP_ROOT).join("docs/operations.md"))
        .expect("read docs/operations.md");
    let deployment = Deployment::new(&template, &parameters(json!({"appName": "tb"})), json!({}));
    let insights =
        "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Insights/components/tb-insights";

    let rules = deployment.of_type("Microsoft.Insights/scheduledQueryRules");
    let queries: Vec<String> = rules
        .iter()
        .map(|rule| {
            assert_eq!(rule["properties"]["scopes"][0], insights);
            let criterion = &rule["properties"]["criteria"]["allOf"][0];
            criterion["query"].as_str().unwrap_or_default().to_owned()
        })
        .collect();

    assert_eq!(queries.len(), 3, "three log alerts");
    for (query, code) in
        queries
            .iter()
            .zip(["allowlist_stale", "broker_credentials_rejected", ">= 500"])
    {
        assert!(query.contains(code), "the alert on {code} runs {query}");
        assert!(
            operations.contains(&format!("```kusto\n{query}\n```")),
            "docs/operations.md does not show the query of the alert on {code}:\n{query}"
        );
    }
}

#[test]
fn alerts_mail_the_action_group_only_when_an_address_is_given() {
    let template = template();
    let quiet = Deployment::new(&template, &example_values(), json!({}));
    assert!(quiet.of_type("Microsoft.Insights/actionGroups").is_empty());
    for rule in quiet.of_type("Microsoft.Insights/scheduledQueryRules") {
        assert_eq!(rule["properties"]["actions"]["actionGroups"], json!([]));
    }

    let loud = Deployment::new(
        &template,
        &parameters(json!({"alertEmail": "ops@contoso.com"})),
        json!({}),
    );
    let groups = loud.of_type("Microsoft.Insights/actionGroups");
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0]["properties"]["emailReceivers"][0]["emailAddress"],
        "ops@contoso.com"
    );
    for rule in loud.of_type("Microsoft.Insights/scheduledQueryRules") {
        assert_eq!(
            rule["properties"]["actions"]["actionGroups"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }
}

#[test]
fn basic_auth_publishing_is_off_for_scm_and_ftp() {
    let template = template();
    let deployment = Deployment::new(&template, &parameters(json!({"appName": "tb"})), json!({}));

    let policies: Vec<(Value, Value)> = deployment
        .of_type("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
        .iter()
        .map(|p| (p["name"].clone(), p["properties"]["allow"].clone()))
        .collect();

    assert_eq!(
        policies,
        vec![
            (json!("tb/scm"), json!(false)),
            (json!("tb/ftp"), json!(false))
        ]
    );
}

#[test]
fn always_ready_is_off_by_default_and_sets_the_http_group_when_asked() {
    let template = template();
    let scale = |values: Value| {
        Deployment::new(&template, &values, json!({})).of_type("Microsoft.Web/sites")[0]["properties"]
            ["functionAppConfig"]["scaleAndConcurrency"]
            .clone()
    };

    assert_eq!(scale(example_values())["alwaysReady"], json!([]));
    assert_eq!(
        scale(parameters(json!({"alwaysReadyInstances": 2})))["alwaysReady"],
        json!([{"name": "http", "instanceCount": 2}])
    );
}

#[test]
fn instance_size_and_scale_limits_are_the_ones_flex_consumption_documents() {
    let template = template();
    let parameters = &template["parameters"];

    // https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan#instance-sizes and
    // #considerations: 512, 2048 (the default) or 4096 MB; a maximum instance count of 40 to 1000.
    assert_eq!(
        parameters["instanceMemoryMB"]["allowedValues"],
        json!([512, 2048, 4096])
    );
    assert_eq!(parameters["instanceMemoryMB"]["defaultValue"], 2048);
    assert_eq!(parameters["maximumInstanceCount"]["minValue"], 40);
    assert_eq!(parameters["maximumInstanceCount"]["maxValue"], 1000);
    assert_eq!(parameters["alwaysReadyInstances"]["defaultValue"], 0);
    let deployment = Deployment::new(&template, &example_values(), json!({}));
    let scale = &deployment.of_type("Microsoft.Web/sites")[0]["properties"]["functionAppConfig"]["scaleAndConcurrency"];
    assert_eq!(scale["instanceMemoryMB"], 2048);
    assert_eq!(scale["maximumInstanceCount"], 100);
}
