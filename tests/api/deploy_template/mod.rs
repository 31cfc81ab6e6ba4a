//! `deploy/azuredeploy.json`, checked offline: every resource against its type's ARM schema, as written
//! and as each configuration deploys it; the example parameters file against the parameters schema; and,
//! with the template evaluated for a set of parameters (`helpers/arm.rs`), what a deployment would write:
//! settings, secrets, identities and roles (`settings.rs`, `identities.rs`), the network (`network.rs`),
//! diagnostics and alerts (`monitoring.rs`). A schema check proves shape and names, not a deployment.

mod identities;
mod monitoring;
mod network;
mod settings;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use crate::helpers::arm::Deployment;
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

/// Every resource of the template, as each configuration deploys it (its expressions worked out), with
/// every optional resource and every initial secret on in at least one of them.
fn deployed_resources(template: &Value) -> Vec<(String, Value)> {
    let mut all_on = configurations();
    all_on.push((
        "document with initial values",
        parameters(json!({
            "initialPolicyDocument": "{}", "delegationsEnabled": true, "initialDelegationKey": "a2V5"
        })),
    ));
    all_on.push((
        "legacy with an initial allowlist",
        parameters(json!({"policyMode": "legacy", "initialAllowedMsiOids": "[]"})),
    ));
    all_on
        .into_iter()
        .flat_map(|(case, values)| {
            Deployment::new(template, &values, json!({}))
                .resources()
                .into_iter()
                .map(move |resource| (case.to_owned(), resource))
        })
        .collect()
}

/// The resource's type, and the validator the template schema applies to it: the common resource fields
/// (dependsOn, scope, location...) and the type's own definition at the resource's apiVersion.
fn resource_validator(resource: &Value) -> (&str, jsonschema::Validator) {
    let resource_type = resource["type"].as_str().expect("resource type");
    let api_version = resource["apiVersion"]
        .as_str()
        .expect("resource apiVersion");
    let base = format!("{ARM_SCHEMA_BASE}{DEPLOYMENT_TEMPLATE}#/definitions/resourceBase");
    let url = arm_resource_schema_url(resource_type, api_version);
    let validator = arm_validator_for(&json!({"allOf": [{"$ref": base}, {"$ref": url}]}));
    (resource_type, validator)
}

#[test]
fn every_template_resource_validates_against_its_types_arm_schema() {
    let template = template();
    let deployed = deployed_resources(&template);

    let mut validated = BTreeSet::new();
    for (case, resource) in &deployed {
        let (resource_type, validator) = resource_validator(resource);

        // A child type's schema spells its name either whole (`app/appsettings`) or as the child's
        // own name (`broker-policy` for `vault/broker-policy`): either form passes.
        let mut errors = schema_errors(&validator, resource);
        if let Some((_, own)) = resource["name"].as_str().and_then(|n| n.rsplit_once('/')) {
            let mut as_child = resource.clone();
            as_child["name"] = json!(own);
            let child_errors = schema_errors(&validator, &as_child);
            if child_errors.len() < errors.len() {
                errors = child_errors;
            }
        }
        assert_eq!(
            errors,
            Vec::<String>::new(),
            "{case}: {resource_type} {}",
            resource["name"]
        );
        validated.insert(resource["name"].to_string());
    }
    // Every resource of the template was deployed, and so validated, by some configuration.
    let copies: usize = resources(&template)
        .iter()
        .filter(|r| r.get("copy").is_some())
        .count();
    let alerts = template["variables"]["alerts"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        validated.len(),
        resources(&template).len() - copies + copies * alerts,
        "resources no configuration deploys"
    );
}

/// Types whose schema tells its definitions apart only by the resource's name (`sites/config`:
/// `appsettings`, `metadata`, ...; the publishing policies: `scm`, `ftp`).
const TYPES_TOLD_APART_BY_NAME: &[&str] = &[
    "Microsoft.Web/sites/config",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies",
];

/// The template as written, before its expressions are worked out, as ARM tooling and linters read it.
/// One kind of resource cannot pass so: where only the name tells a type's definitions apart, a name
/// written as an expression (the app's name is a parameter) matches every definition, and the schema's
/// `oneOf` refuses more than one match. Such a resource must pass once its name is written out;
/// every other resource must pass as written.
#[test]
fn every_template_resource_as_written_validates_save_a_name_only_an_expression_can_spell() {
    let template = template();

    for resource in resources(&template) {
        let (resource_type, validator) = resource_validator(resource);
        let errors = schema_errors(&validator, resource);
        if errors.is_empty() {
            continue;
        }
        let name = resource["name"].as_str().unwrap_or_default();
        assert!(
            TYPES_TOLD_APART_BY_NAME.contains(&resource_type),
            "{resource_type} {name}: {errors:?}"
        );
        let child = name
            .rsplit_once("'/")
            .and_then(|(_, tail)| tail.split('\'').next())
            .expect("a child name written as `concat(..., '/<child>')`");
        let mut written_out = resource.clone();
        written_out["name"] = json!(format!("broker-app/{child}"));
        assert_eq!(
            schema_errors(&validator, &written_out),
            Vec::<String>::new(),
            "{resource_type} {name}, its name written out"
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
fn no_secure_parameter_has_a_default_other_than_empty() {
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

    for name in [
        "initialPolicyDocument",
        "initialAllowedMsiOids",
        "initialDelegationKey",
    ] {
        assert!(
            secure.iter().any(|s| *s == name),
            "`{name}` is a secure parameter, so it stays out of the deployment history"
        );
    }
    for name in secure {
        let default = &parameters[name]["defaultValue"];
        assert!(
            default.is_null() || *default == "",
            "secure parameter `{name}` has a default value"
        );
    }
}

#[test]
fn example_parameters_keep_the_app_public_and_its_name_unique_to_the_group() {
    let template = template();
    let example = example_parameters();
    let given = &example["parameters"];

    // README steps 5 and 6 publish and check from the operator's machine: the app must be reachable.
    assert!(
        given["publicNetworkAccess"].is_null()
            || given["publicNetworkAccess"]["value"] == "Enabled"
    );
    assert!(given["vnetEnabled"].is_null() || given["vnetEnabled"]["value"] == false);
    // appName is a global DNS name: the example leaves it to the default, unique per resource group.
    assert!(given["appName"].is_null(), "the example fixes appName");
    assert!(
        template["parameters"]["appName"]["defaultValue"]
            .as_str()
            .is_some_and(|d| d.contains("uniqueString(resourceGroup().id)"))
    );
    assert_eq!(
        template["parameters"]["publicNetworkAccess"]["defaultValue"],
        "Enabled"
    );
}

/// The example parameters as a name → value object, for `Deployment::new`.
fn example_values() -> Value {
    let example = example_parameters();
    let values = example["parameters"]
        .as_object()
        .expect("example parameters")
        .iter()
        .map(|(name, p)| (name.clone(), p["value"].clone()))
        .collect();
    Value::Object(values)
}

/// `overrides` on top of the example parameters.
fn parameters(overrides: Value) -> Value {
    let mut values = example_values();
    if let (Some(values), Some(overrides)) = (values.as_object_mut(), overrides.as_object()) {
        values.extend(overrides.clone());
    }
    values
}

/// The configurations the tests deploy: the example, each mode, each option on.
fn configurations() -> Vec<(&'static str, Value)> {
    vec![
        ("example", parameters(json!({}))),
        ("legacy", parameters(json!({"policyMode": "legacy"}))),
        ("vnet", parameters(json!({"vnetEnabled": true}))),
        (
            "delegations",
            parameters(json!({"delegationsEnabled": true})),
        ),
        (
            "everything",
            parameters(json!({
                "vnetEnabled": true, "delegationsEnabled": true, "lockFederatedIdentity": true,
                "operatorPrincipalId": "5d6e7f80-9a0b-4c1d-8e2f-3a4b5c6d7e8f", "alertEmail": "ops@contoso.com",
                "alwaysReadyInstances": 1
            })),
        ),
    ]
}

#[test]
fn function_app_runs_the_custom_handler_on_flex_consumption_with_identity_based_storage() {
    let template = template();
    let deployment = Deployment::new(&template, &example_values(), json!({}));
    let sites = deployment.of_type("Microsoft.Web/sites");
    assert_eq!(sites.len(), 1, "exactly one Function App");
    let config = &sites[0]["properties"]["functionAppConfig"];

    assert_eq!(config["runtime"]["name"], "custom");
    assert_eq!(config["deployment"]["storage"]["type"], "blobContainer");
    assert_eq!(
        config["deployment"]["storage"]["value"],
        format!(
            "https://{}.blob.core.windows.net/app-package",
            deployment
                .parameter("storageAccountName")
                .as_str()
                .unwrap_or_default()
        )
    );
    let plans = deployment.of_type("Microsoft.Web/serverfarms");
    assert_eq!(
        plans[0]["sku"],
        json!({"name": "FC1", "tier": "FlexConsumption"})
    );
    let settings = deployment.app_settings();
    assert_eq!(
        settings["AzureWebJobsStorage__credential"],
        "managedidentity"
    );
    assert_eq!(
        settings["AzureWebJobsStorage__accountName"],
        deployment.parameter("storageAccountName")
    );
    assert!(settings.contains_key("APPLICATIONINSIGHTS_CONNECTION_STRING"));
    assert_eq!(sites[0]["properties"]["publicNetworkAccess"], "Enabled");
    assert!(
        sites[0]["properties"]["siteConfig"]
            .get("appSettings")
            .is_none(),
        "siteConfig.appSettings would replace every setting on each deployment"
    );
    let storage = deployment.of_type("Microsoft.Storage/storageAccounts");
    assert_eq!(storage[0]["properties"]["allowSharedKeyAccess"], false);
}

#[test]
fn every_app_setting_the_template_sets_is_read_by_the_broker_or_the_platform() {
    let template = template();
    let read = settings_the_broker_reads();
    assert!(
        read.contains("BROKER_TENANT_ID"),
        "the source scan found {read:?}"
    );

    for (case, values) in configurations() {
        let deployment = Deployment::new(&template, &values, json!({}));
        let unknown: Vec<String> = deployment
            .app_settings()
            .keys()
            .filter(|name| {
                let platform = PLATFORM_SETTINGS.contains(&name.as_str())
                    || PLATFORM_SETTING_PREFIXES
                        .iter()
                        .any(|p| name.starts_with(p));
                !read.contains(name.as_str()) && !platform
            })
            .cloned()
            .collect();
        assert_eq!(
            unknown,
            Vec::<String>::new(),
            "{case}: settings nobody reads"
        );
    }
}

#[test]
fn template_sets_every_setting_the_broker_requires_and_is_secretless() {
    let template = template();
    let required = settings_the_broker_requires();
    assert!(
        required.contains("BROKER_TENANT_ID") && required.contains("BROKER_CLIENT_ID"),
        "the source scan found {required:?}"
    );

    for (case, values) in configurations() {
        let settings = Deployment::new(&template, &values, json!({})).app_settings();
        for name in &required {
            assert!(
                settings.contains_key(name),
                "{case}: required `{name}` is not set"
            );
        }
        // The broker's credential is its own identity: no client secret exists anywhere.
        assert_eq!(settings["BROKER_CREDENTIAL"], "managed-identity", "{case}");
        for name in FORBIDDEN_SETTINGS {
            assert!(
                !settings.contains_key(*name),
                "{case}: the template sets `{name}`"
            );
        }
        for (name, value) in &settings {
            let value = value.as_str().unwrap_or_default();
            assert!(
                !value.contains("AccountKey") && !value.contains("listKeys"),
                "{case}: `{name}` carries a storage key"
            );
        }
    }
}

#[test]
fn readme_and_deploy_md_steps_use_only_outputs_and_parameters_the_template_has() {
    let template = template();
    let outputs = template["outputs"].as_object().expect("outputs");
    let declared = template["parameters"].as_object().expect("parameters");

    for page in ["README.md", "docs/deploy.md"] {
        let text = std::fs::read_to_string(Path::new(APP_ROOT).join(page)).expect("read the page");
        let used: Vec<&str> = text
            .split("$(out ")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
            .collect();
        assert!(used.len() >= 5, "{page} reads {} outputs", used.len());
        for name in used {
            assert!(
                outputs.contains_key(name),
                "{page} reads output `{name}`, which the template lacks"
            );
        }
        // `--parameters name=value` on the command line.
        let mut passed = Vec::new();
        for line in text.lines().filter(|l| {
            l.contains("az deployment group create")
                || l.trim_start().starts_with("--parameters")
                || l.contains("Id=\"$")
        }) {
            for word in line.split_whitespace() {
                if let Some((name, _)) = word.split_once('=')
                    && name.chars().all(|c| c.is_ascii_alphanumeric())
                    && name.starts_with(|c: char| c.is_ascii_lowercase())
                {
                    passed.push(name.to_owned());
                    assert!(
                        declared.contains_key(name),
                        "{page} passes `{name}`, which the template lacks"
                    );
                }
            }
        }
        assert!(
            passed.iter().any(|name| name == "brokerClientId"),
            "{page} passes {passed:?}"
        );
    }
}
