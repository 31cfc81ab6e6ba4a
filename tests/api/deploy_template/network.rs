//! Private networking: with `vnetEnabled`, the app is VNet-integrated through a subnet delegated as Flex
//! Consumption requires, Blob and Key Vault are reached through private endpoints resolved by private
//! DNS zones, and their public access is off; without it, no network resource exists.

use serde_json::{Value, json};

use super::{example_values, parameters, template};
use crate::helpers::arm::Deployment;

const NETWORK_TYPES: &[&str] = &[
    "Microsoft.Network/virtualNetworks",
    "Microsoft.Network/privateEndpoints",
    "Microsoft.Network/privateEndpoints/privateDnsZoneGroups",
    "Microsoft.Network/privateDnsZones",
    "Microsoft.Network/privateDnsZones/virtualNetworkLinks",
];

fn private() -> Value {
    parameters(
        json!({"vnetEnabled": true, "appName": "tb", "storageAccountName": "sttb", "keyVaultName": "kvtb"}),
    )
}

#[test]
fn vnet_integration_uses_a_subnet_delegated_to_microsoft_app_environments() {
    let template = template();
    let deployment = Deployment::new(&template, &private(), json!({}));

    let vnets = deployment.of_type("Microsoft.Network/virtualNetworks");
    assert_eq!(vnets.len(), 1);
    let subnets = vnets[0]["properties"]["subnets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let app_subnet = subnets
        .iter()
        .find(|s| s["name"] == "function-app")
        .expect("the app's subnet");
    // https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan#considerations
    assert_eq!(
        app_subnet["properties"]["delegations"][0]["properties"]["serviceName"],
        "Microsoft.App/environments"
    );
    let site = &deployment.of_type("Microsoft.Web/sites")[0];
    assert_eq!(
        site["properties"]["virtualNetworkSubnetId"],
        "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/tb-vnet/subnets/function-app"
    );
}

#[test]
fn vnet_enabled_makes_storage_and_key_vault_reachable_only_through_private_endpoints() {
    let template = template();
    let deployment = Deployment::new(&template, &private(), json!({}));

    for kind in [
        "Microsoft.Storage/storageAccounts",
        "Microsoft.KeyVault/vaults",
    ] {
        let resource = &deployment.of_type(kind)[0]["properties"];
        assert_eq!(resource["publicNetworkAccess"], "Disabled", "{kind}");
        assert_eq!(resource["networkAcls"]["defaultAction"], "Deny", "{kind}");
        assert_eq!(resource["networkAcls"]["bypass"], "None", "{kind}");
    }
    let endpoints: Vec<(String, String)> = deployment
        .of_type("Microsoft.Network/privateEndpoints")
        .iter()
        .map(|pe| {
            let connection = &pe["properties"]["privateLinkServiceConnections"][0]["properties"];
            (
                connection["privateLinkServiceId"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                connection["groupIds"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        endpoints,
        vec![
            ("sttb".to_owned(), "blob".to_owned()),
            ("kvtb".to_owned(), "vault".to_owned())
        ]
    );
    // https://learn.microsoft.com/azure/private-link/private-endpoint-dns
    let zones: Vec<Value> = deployment
        .of_type("Microsoft.Network/privateDnsZones")
        .iter()
        .map(|z| z["name"].clone())
        .collect();
    assert_eq!(
        zones,
        vec![
            json!("privatelink.blob.core.windows.net"),
            json!("privatelink.vaultcore.azure.net")
        ]
    );
    let links = deployment.of_type("Microsoft.Network/privateDnsZones/virtualNetworkLinks");
    assert_eq!(links.len(), 2, "each zone is linked to the VNet");
    let groups: Vec<Value> = deployment
        .of_type("Microsoft.Network/privateEndpoints/privateDnsZoneGroups")
        .iter()
        .map(|g| {
            g["properties"]["privateDnsZoneConfigs"][0]["properties"]["privateDnsZoneId"].clone()
        })
        .collect();
    assert_eq!(groups.len(), 2, "each endpoint registers in its zone");
    for (group, zone) in groups.iter().zip(&zones) {
        assert!(
            group
                .as_str()
                .is_some_and(|g| g.ends_with(zone.as_str().unwrap_or("?"))),
            "{group} is not {zone}"
        );
    }
}

#[test]
fn without_vnet_no_network_resource_is_deployed_and_storage_and_vault_stay_public() {
    let template = template();
    let deployment = Deployment::new(&template, &example_values(), json!({}));

    for kind in NETWORK_TYPES {
        assert!(deployment.of_type(kind).is_empty(), "{kind} deployed");
    }
    for kind in [
        "Microsoft.Storage/storageAccounts",
        "Microsoft.KeyVault/vaults",
    ] {
        assert_eq!(
            deployment.of_type(kind)[0]["properties"]["publicNetworkAccess"],
            "Enabled",
            "{kind}"
        );
    }
    assert_eq!(
        deployment.of_type("Microsoft.Web/sites")[0]["properties"]["virtualNetworkSubnetId"],
        Value::Null
    );
}
