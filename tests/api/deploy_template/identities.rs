//! Who is who: the federated identity is only the broker's credential (no Azure role), the resource
//! identity reaches Storage, Key Vault and Application Insights with the narrowest roles, the issuer is
//! the subscription's tenant, and the vault can be named, recovered and is RBAC with purge protection.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{configurations, example_values, parameters, template};
use crate::helpers::arm::{Deployment, SUBSCRIPTION_TENANT};

const FEDERATED: &str =
    "Microsoft.ManagedIdentity/userAssignedIdentities/token-broker-app-federated-id";
const RESOURCE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities/token-broker-app-id";

fn named() -> Value {
    parameters(json!({"appName": "token-broker-app"}))
}

fn reference_of(identity: &str, field: &str) -> String {
    format!(
        "reference(/subscriptions/sub/resourceGroups/rg/providers/{identity}, 2024-11-30).{field}"
    )
}

#[test]
fn federated_identity_is_the_brokers_credential_and_the_resource_identity_reaches_azure() {
    let template = template();
    let deployment = Deployment::new(&template, &named(), json!({}));
    let settings = deployment.app_settings();

    assert_eq!(
        settings["BROKER_MANAGED_IDENTITY_CLIENT_ID"],
        reference_of(FEDERATED, "clientId")
    );
    let resource_client_id = reference_of(RESOURCE, "clientId");
    assert_eq!(
        settings["BROKER_RESOURCE_IDENTITY_CLIENT_ID"],
        resource_client_id
    );
    assert_eq!(
        settings["AzureWebJobsStorage__clientId"],
        resource_client_id
    );
    assert_eq!(
        settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"],
        format!("ClientId={resource_client_id};Authorization=AAD")
    );
    let site = &deployment.of_type("Microsoft.Web/sites")[0];
    assert_eq!(
        site["properties"]["functionAppConfig"]["deployment"]["storage"]["authentication"],
        json!({
            "type": "UserAssignedIdentity",
            "userAssignedIdentityResourceId": format!("/subscriptions/sub/resourceGroups/rg/providers/{RESOURCE}")
        })
    );
    let assigned: BTreeSet<String> = site["identity"]["userAssignedIdentities"]
        .as_object()
        .map(|ids| ids.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(
        assigned,
        [FEDERATED, RESOURCE]
            .map(|id| format!("/subscriptions/sub/resourceGroups/rg/providers/{id}"))
            .into()
    );
    assert_eq!(
        deployment.output("federatedIdentityPrincipalId"),
        reference_of(FEDERATED, "principalId")
    );
}

/// `(role, scope, principal)` of every role assignment, the role by its variable name.
fn role_assignments(deployment: &Deployment) -> BTreeSet<(String, String, String)> {
    let roles = &template()["variables"]["roles"];
    deployment
        .of_type("Microsoft.Authorization/roleAssignments")
        .into_iter()
        .map(|a| {
            let definition = a["properties"]["roleDefinitionId"]
                .as_str()
                .unwrap_or_default();
            let role = roles
                .as_object()
                .into_iter()
                .flatten()
                .find(|(_, guid_expr)| {
                    guid_expr
                        .as_str()
                        .and_then(|e| e.split('\'').nth(3))
                        .is_some_and(|guid| definition.ends_with(guid))
                })
                .map(|(name, _)| name.clone())
                .unwrap_or_else(|| panic!("unknown role {definition}"));
            assert_ne!(a["properties"]["principalType"], Value::Null);
            (
                role,
                a["scope"].as_str().unwrap_or_default().to_owned(),
                a["properties"]["principalId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn federated_identity_holds_no_azure_role_in_any_configuration() {
    let template = template();
    for (case, values) in configurations() {
        let mut values = values;
        values["appName"] = json!("token-broker-app");
        let deployment = Deployment::new(&template, &values, json!({}));
        for (role, scope, principal) in role_assignments(&deployment) {
            assert!(
                !principal.contains("federated-id"),
                "{case}: the federated identity holds {role} on {scope}"
            );
        }
    }
}

#[test]
fn resource_identity_gets_exactly_the_roles_it_needs_at_the_narrowest_scope() {
    let template = template();
    let values = parameters(json!({
        "appName": "token-broker-app", "storageAccountName": "sttb", "keyVaultName": "kvtb",
        "delegationsEnabled": true, "operatorPrincipalId": "5d6e7f80-9a0b-4c1d-8e2f-3a4b5c6d7e8f"
    }));
    let deployment = Deployment::new(&template, &values, json!({}));
    let resource = reference_of(RESOURCE, "principalId");

    let expected: BTreeSet<(String, String, String)> = [
        (
            "storageBlobDataOwner",
            "Microsoft.Storage/storageAccounts/sttb",
            resource.as_str(),
        ),
        (
            "storageBlobDataContributor",
            "Microsoft.Storage/storageAccounts/sttb/blobServices/default/containers/delegations",
            resource.as_str(),
        ),
        (
            "keyVaultSecretsUser",
            "Microsoft.KeyVault/vaults/kvtb",
            resource.as_str(),
        ),
        (
            "monitoringMetricsPublisher",
            "Microsoft.Insights/components/token-broker-app-insights",
            resource.as_str(),
        ),
        (
            "keyVaultSecretsOfficer",
            "Microsoft.KeyVault/vaults/kvtb",
            "5d6e7f80-9a0b-4c1d-8e2f-3a4b5c6d7e8f",
        ),
    ]
    .into_iter()
    .map(|(r, s, p)| (r.to_owned(), s.to_owned(), p.to_owned()))
    .collect();

    assert_eq!(role_assignments(&deployment), expected);
}

#[test]
fn operator_role_and_identity_lock_are_deployed_only_on_request() {
    let template = template();
    let plain = Deployment::new(&template, &named(), json!({}));
    assert!(plain.of_type("Microsoft.Authorization/locks").is_empty());
    assert!(
        role_assignments(&plain)
            .iter()
            .all(|(role, _, _)| role != "keyVaultSecretsOfficer")
    );

    let mut values = named();
    values["lockFederatedIdentity"] = json!(true);
    let locked = Deployment::new(&template, &values, json!({}));
    let locks = locked.of_type("Microsoft.Authorization/locks");
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0]["scope"], FEDERATED);
    assert_eq!(locks[0]["properties"]["level"], "CanNotDelete");
}

#[test]
fn tenant_and_issuer_come_from_the_subscription() {
    let template = template();
    let deployment = Deployment::new(&template, &example_values(), json!({}));

    // The identity's tokens are issued by the tenant it lives in, the subscription's: a tenant
    // parameter could only produce a credential that never works.
    assert!(template["parameters"].get("tenantId").is_none());
    assert_eq!(
        deployment.output("federatedCredentialIssuer"),
        format!("https://login.microsoftonline.com/{SUBSCRIPTION_TENANT}/v2.0")
    );
    assert_eq!(
        deployment.app_settings()["BROKER_TENANT_ID"],
        SUBSCRIPTION_TENANT
    );
    assert_eq!(deployment.output("tenantId"), SUBSCRIPTION_TENANT);
}

#[test]
fn key_vault_and_storage_can_be_named_and_a_soft_deleted_vault_recovered() {
    let template = template();
    let values = parameters(json!({
        "keyVaultName": "kv-broker-2", "storageAccountName": "stbroker2", "recoverSoftDeletedKeyVault": true
    }));
    let deployment = Deployment::new(&template, &values, json!({}));

    let vault = &deployment.of_type("Microsoft.KeyVault/vaults")[0];
    assert_eq!(vault["name"], "kv-broker-2");
    assert_eq!(vault["properties"]["createMode"], "recover");
    assert_eq!(
        deployment.of_type("Microsoft.Storage/storageAccounts")[0]["name"],
        "stbroker2"
    );
    assert_eq!(deployment.output("keyVaultName"), "kv-broker-2");

    let default = Deployment::new(&template, &example_values(), json!({}));
    let vault = &default.of_type("Microsoft.KeyVault/vaults")[0]["properties"];
    assert_eq!(vault["createMode"], "default");
    assert_eq!(vault["enableRbacAuthorization"], true);
    assert_eq!(vault["enableSoftDelete"], true);
    assert_eq!(vault["enablePurgeProtection"], true);
}
