//! `deploy/azuredeploy.json`, checked offline: every resource against its type's ARM schema, the example
//! parameters file against the parameters schema, and the template against the broker it deploys: every
//! parameter used, no secret with a default, every app setting one the broker or the platform reads, and
//! every setting the broker requires present. A schema check proves shape and names, not a deployment.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use crate::helpers::function_app::{APP_ROOT, read_json};
use crate::helpers::schemas::{
    ARM_SCHEMA_BASE, arm_resource_schema_url, arm_validator, arm_validator_for, schema_errors,
};

const DEPLOYMENT_TEMPLATE: &str = "2019-04-01/deploymentTemplate.json";
const DEPLOYMENT_PARAMETERS: &str = "2019-04-01/deploymentParameters.json";

/// Settings the template may set that the Functions host or the platform reads, not the broker
/// (docs/deploy.md, "App settings"): identity-based host storage and Application Insights.
const PLATFORM_SETTING_PREFIXES: &[&str] = &["AzureWebJobsStorage__"];
const PLATFORM_SETTINGS: &[&str] = &[
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
];

/// Settings the template must never set: App Service injects the first three, and Flex Consumption
/// refuses the rest (the runtime is `functionAppConfig.runtime`, the package is the deployment container).
const FORBIDDEN_SETTINGS: &[&str] = &[
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "FUNCTIONS_CUSTOMHANDLER_PORT",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "AzureWebJobsStorage",
    "BROKER_CLIENT_SECRET",
    "BROKER_CLIENT_SECRET_NAME",
    "SSL_CERT_FILE",
];

fn template() -> Value {
    read_json(&Path::new(APP_ROOT).join("deploy/azuredeploy.json"))
}

fn example_parameters() -> Value {
    read_json(&Path::new(APP_ROOT).join("deploy/azuredeploy.parameters.example.json"))
}

fn resources(template: &Value) -> &[Value] {
    template["resources"]
        .as_array()
        .map(Vec::as_slice)
        .expect("the template has a resources array")
}

fn resources_of_type<'a>(template: &'a Value, resource_type: &str) -> Vec<&'a Value> {
    resources(template)
        .iter()
        .filter(|r| r["type"] == resource_type)
        .collect()
}

fn function_app(template: &Value) -> &Value {
    let sites = resources_of_type(template, "Microsoft.Web/sites");
    assert_eq!(sites.len(), 1, "exactly one Function App");
    sites[0]
}

/// `(name, value)` of every app setting on the Function App.
fn app_settings(template: &Value) -> Vec<(String, String)> {
    function_app(template)["properties"]["siteConfig"]["appSettings"]
        .as_array()
        .expect("siteConfig.appSettings is a literal array")
        .iter()
        .map(|setting| {
            let name = setting["name"].as_str().expect("setting name").to_owned();
            let value = setting["value"].as_str().expect("setting value").to_owned();
            (name, value)
        })
        .collect()
}

/// The environment variable names the broker reads: every quoted upper-case name in the library's
/// non-test source (`src/**/*.rs` outside `src/bin`, each file cut at its `#[cfg(test)]`), where all
/// settings are read (settings.rs and the modules beside it).
pub fn settings_the_broker_reads() -> BTreeSet<String> {
    non_test_sources()
        .iter()
        .flat_map(|source| quoted_names(source))
        .filter(|name| is_setting_name(name))
        .collect()
}

/// The settings the broker cannot start without: the names passed to `required_*("...")` in the source.
fn settings_the_broker_requires() -> BTreeSet<String> {
    let mut required = BTreeSet::new();
    for source in non_test_sources() {
        for (index, _) in source.match_indices("required_") {
            let rest = &source[index..];
            if let Some(open) = rest.find("(\"")
                && rest[..open]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                && let Some(name) = quoted_names(&rest[open + 1..]).into_iter().next()
            {
                required.insert(name);
            }
        }
    }
    required
}

fn is_setting_name(name: &str) -> bool {
    ["BROKER_", "FUNCTIONS_", "IDENTITY_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || name == "SSL_CERT_FILE"
}

fn non_test_sources() -> Vec<String> {
    let mut sources = Vec::new();
    collect_sources(&Path::new(APP_ROOT).join("src"), &mut sources);
    assert!(!sources.is_empty(), "no library source under src/");
    sources
}

fn collect_sources(dir: &Path, sources: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir)
        .expect("read src/")
        .filter_map(Result::ok)
    {
        let path = entry.path();
        if path.is_dir() && path.file_name().is_some_and(|name| name != "bin") {
            collect_sources(&path, sources);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            sources.push(code.to_owned());
        }
    }
}

/// Every `"NAME"` (upper-case letters, digits and underscores) in `source`, in order.
fn quoted_names(source: &str) -> Vec<String> {
    source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|text| {
            text.len() > 2
                && text.starts_with(|c: char| c.is_ascii_uppercase())
                && text
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_template_resource_validates_against_its_types_arm_schema() {
    let template = template();
    let base = format!("{ARM_SCHEMA_BASE}{DEPLOYMENT_TEMPLATE}#/definitions/resourceBase");

    for resource in resources(&template) {
        let resource_type = resource["type"].as_str().expect("resource type");
        let api_version = resource["apiVersion"]
            .as_str()
            .expect("resource apiVersion");
        let url = arm_resource_schema_url(resource_type, api_version);
        // As the template schema does: the common resource fields (dependsOn, scope, location...), and
        // the type's own definition.
        let validator = arm_validator_for(&json!({"allOf": [{"$ref": base}, {"$ref": url}]}));

        let errors = schema_errors(&validator, resource);
        assert_eq!(
            errors,
            Vec::<String>::new(),
            "{resource_type} {}",
            resource["name"]
        );
    }
}

#[test]
fn template_parameters_and_outputs_validate_against_the_deployment_template_schema() {
    let template = template();
    assert_eq!(
        template["$schema"],
        format!("{ARM_SCHEMA_BASE}{DEPLOYMENT_TEMPLATE}#")
    );
    let parameter = arm_validator(&format!(
        "{ARM_SCHEMA_BASE}{DEPLOYMENT_TEMPLATE}#/definitions/parameter"
    ));
    let output = arm_validator(&format!(
        "{ARM_SCHEMA_BASE}{DEPLOYMENT_TEMPLATE}#/definitions/output"
    ));

    for (section, validator) in [("parameters", &parameter), ("outputs", &output)] {
        let entries = template[section].as_object().expect(section);
        assert!(!entries.is_empty(), "the template has {section}");
        for (name, value) in entries {
            assert_eq!(
                schema_errors(validator, value),
                Vec::<String>::new(),
                "{section}.{name}"
            );
        }
    }
}

#[test]
fn example_parameters_file_validates_and_gives_every_parameter_without_a_default() {
    let template = template();
    let example = example_parameters();
    let validator = arm_validator(&format!("{ARM_SCHEMA_BASE}{DEPLOYMENT_PARAMETERS}#"));

    assert_eq!(schema_errors(&validator, &example), Vec::<String>::new());
    let declared = template["parameters"].as_object().expect("parameters");
    let given = example["parameters"]
        .as_object()
        .expect("example parameters");
    for name in given.keys() {
        assert!(
            declared.contains_key(name),
            "the example sets `{name}`, which the template lacks"
        );
    }
    for (name, parameter) in declared {
        if parameter.get("defaultValue").is_none() {
            assert!(
                given.contains_key(name),
                "the example lacks required `{name}`"
            );
        }
    }
}

#[test]
fn every_template_parameter_is_used() {
    let template = template();
    let mut rest = template.clone();
    let declared = rest
        .as_object_mut()
        .and_then(|t| t.remove("parameters"))
        .expect("parameters");
    // Uses inside other parameters' defaults count too, but not a parameter's own.
    let used_text = rest.to_string();

    for name in declared.as_object().expect("parameters").keys() {
        let reference = format!("parameters('{name}')");
        let in_other_defaults = declared
            .as_object()
            .into_iter()
            .flatten()
            .any(|(other, p)| other != name && p.to_string().contains(&reference));
        assert!(
            used_text.contains(&reference) || in_other_defaults,
            "parameter `{name}` is never used"
        );
    }
}

#[test]
fn no_secure_parameter_has_a_default_value() {
    let template = template();
    let parameters = template["parameters"].as_object().expect("parameters");
    let secure: Vec<&String> = parameters
        .iter()
        .filter(|(_, p)| {
            let kind = p["type"].as_str().unwrap_or_default().to_ascii_lowercase();
            kind == "securestring" || kind == "secureobject"
        })
        .map(|(name, _)| name)
        .collect();

    assert!(
        secure.iter().any(|name| *name == "allowedMsiOids"),
        "the allowlist is a secure parameter, so it stays out of the deployment history"
    );
    for name in secure {
        assert!(
            parameters[name].get("defaultValue").is_none(),
            "secure parameter `{name}` has a default value"
        );
    }
}

#[test]
fn every_app_setting_the_template_sets_is_read_by_the_broker_or_the_platform() {
    let template = template();
    let read = settings_the_broker_reads();
    assert!(
        read.contains("BROKER_TENANT_ID"),
        "the source scan found {read:?}"
    );

    let mut unknown = Vec::new();
    for (name, _) in app_settings(&template) {
        let platform = PLATFORM_SETTINGS.contains(&name.as_str())
            || PLATFORM_SETTING_PREFIXES
                .iter()
                .any(|p| name.starts_with(p));
        if !read.contains(&name) && !platform {
            unknown.push(name);
        }
    }
    assert_eq!(unknown, Vec::<String>::new(), "settings nobody reads");
}

#[test]
fn template_sets_every_setting_the_broker_requires_and_is_secretless() {
    let template = template();
    let settings = app_settings(&template);
    let names: BTreeSet<&str> = settings.iter().map(|(name, _)| name.as_str()).collect();
    let required = settings_the_broker_requires();
    assert!(
        required.contains("BROKER_TENANT_ID") && required.contains("BROKER_CLIENT_ID"),
        "the source scan found {required:?}"
    );

    for name in &required {
        assert!(
            names.contains(name.as_str()),
            "required `{name}` is not set"
        );
    }
    // The broker's credential is the app's own identity (BROKER_CREDENTIAL=managed-identity), so no
    // client secret exists anywhere in the deployment.
    let value = |name: &str| {
        settings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(value("BROKER_CREDENTIAL"), Some("managed-identity"));
    assert!(
        value("BROKER_MANAGED_IDENTITY_CLIENT_ID").is_some_and(|v| v.contains("clientId")),
        "BROKER_MANAGED_IDENTITY_CLIENT_ID is the user-assigned identity's client id"
    );
    for name in FORBIDDEN_SETTINGS {
        assert!(!names.contains(name), "the template sets `{name}`");
    }
    for (name, value) in &settings {
        assert!(
            !value.contains("AccountKey") && !value.contains("listKeys"),
            "`{name}` carries a storage key"
        );
    }
}

#[test]
fn function_app_runs_the_custom_handler_on_flex_consumption_with_identity_based_storage() {
    let template = template();
    let app = function_app(&template);
    let config = &app["properties"]["functionAppConfig"];
    let identity_id = "[variables('identityId')]";

    assert_eq!(config["runtime"]["name"], "custom");
    assert_eq!(config["deployment"]["storage"]["type"], "blobContainer");
    assert_eq!(
        config["deployment"]["storage"]["authentication"],
        json!({"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": identity_id})
    );
    assert_eq!(app["identity"]["type"], "UserAssigned");
    assert_eq!(
        app["identity"]["userAssignedIdentities"]
            .as_object()
            .map(|ids| ids.keys().cloned().collect::<Vec<_>>()),
        Some(vec![identity_id.to_owned()])
    );
    let plans = resources_of_type(&template, "Microsoft.Web/serverfarms");
    assert_eq!(plans.len(), 1);
    assert_eq!(
        plans[0]["sku"],
        json!({"name": "FC1", "tier": "FlexConsumption"})
    );
    let settings = app_settings(&template);
    let value = |name: &str| {
        settings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        value("AzureWebJobsStorage__credential"),
        Some("managedidentity")
    );
    assert!(value("AzureWebJobsStorage__accountName").is_some());
    assert!(value("APPLICATIONINSIGHTS_CONNECTION_STRING").is_some());
    assert_eq!(
        app["properties"]["publicNetworkAccess"],
        "[parameters('publicNetworkAccess')]"
    );
    let storage = resources_of_type(&template, "Microsoft.Storage/storageAccounts");
    assert_eq!(storage[0]["properties"]["allowSharedKeyAccess"], false);
}

#[test]
fn key_vault_uses_rbac_with_purge_protection_and_the_identity_gets_only_the_roles_it_needs() {
    let template = template();
    let vaults = resources_of_type(&template, "Microsoft.KeyVault/vaults");
    assert_eq!(vaults.len(), 1);
    let vault = &vaults[0]["properties"];
    assert_eq!(vault["enableRbacAuthorization"], true);
    assert_eq!(vault["enableSoftDelete"], true);
    assert_eq!(vault["enablePurgeProtection"], true);
    let secrets = resources_of_type(&template, "Microsoft.KeyVault/vaults/secrets");
    assert_eq!(secrets.len(), 1);
    assert!(
        secrets[0]["name"]
            .as_str()
            .is_some_and(|n| n.contains("allowlistSecret"))
    );
    assert_eq!(template["variables"]["allowlistSecret"], "allowed-msi-oids");
    assert_eq!(
        secrets[0]["properties"]["value"],
        "[parameters('allowedMsiOids')]"
    );

    // (role, scope): each assignment to the one identity, at the narrowest scope that works.
    let roles = &template["variables"]["roles"];
    let assignments: BTreeSet<(String, String)> =
        resources_of_type(&template, "Microsoft.Authorization/roleAssignments")
            .into_iter()
            .map(|a| {
                assert_eq!(
                    a["properties"]["principalId"],
                    "[reference(variables('identityId'), '2024-11-30').principalId]"
                );
                assert_eq!(a["properties"]["principalType"], "ServicePrincipal");
                let role = a["properties"]["roleDefinitionId"]
                    .as_str()
                    .unwrap_or_default();
                let role = role
                    .trim_start_matches("[variables('roles').")
                    .trim_end_matches(']');
                assert!(roles[role].is_string(), "unknown role {role}");
                (
                    role.to_owned(),
                    a["scope"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
    let expected: BTreeSet<(String, String)> = [
        (
            "keyVaultSecretsUser",
            "[concat('Microsoft.KeyVault/vaults/', variables('vaultName'), '/secrets/', variables('allowlistSecret'))]",
        ),
        (
            "monitoringMetricsPublisher",
            "[concat('Microsoft.Insights/components/', variables('insightsName'))]",
        ),
        (
            "storageBlobDataOwner",
            "[concat('Microsoft.Storage/storageAccounts/', variables('storageName'))]",
        ),
    ]
    .into_iter()
    .map(|(role, scope)| (role.to_owned(), scope.to_owned()))
    .collect();
    assert_eq!(assignments, expected);
}
