//! The fixed identities of spec.md section 1 and the well-known resources the emulated tenant knows.
//! Everything here is public test data; the only secrets (the broker's client secret and the identity header)
//! are generated per run and live in `state::Config`.

pub const TENANT_ID: &str = "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b";
pub const TENANT_NAME: &str = "Contoso";
pub const FOREIGN_TENANT_ID: &str = "9e8d7c6b-5a49-4837-a625-1403f2e1d0c9";
pub const FOREIGN_TENANT_NAME: &str = "Fabrikam";

pub const BROKER_CLIENT_ID: &str = "0b5e9c3a-7f2d-4a61-9c8e-2d4b6a8f1e37";
pub const BROKER_APP_NAME: &str = "token-broker";
pub const BROKER_SP_OID: &str = "5c1f0e2d-8b3a-4f7c-9d6e-1a2b3c4d5e6f";

pub const FUNCTION_MI_OID: &str = "d4e5f6a7-b8c9-4d0e-8f1a-2b3c4d5e6f70";
pub const FUNCTION_MI_CLIENT_ID: &str = "e5f6a7b8-c9d0-4e1f-8a2b-3c4d5e6f7081";
pub const FUNCTION_MI_RESOURCE_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.Web/sites/token-broker";

/// The broker's user-assigned identity, attached to the Function App: reads Key Vault and, through a
/// federated identity credential, authenticates the broker's app registration.
pub const BROKER_IDENTITY_OID: &str = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d";
pub const BROKER_IDENTITY_CLIENT_ID: &str = "7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e";
pub const BROKER_IDENTITY_RESOURCE_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/token-broker-identity";
/// A second user-assigned identity on the Function App, the deployment's resource identity: it reads Key
/// Vault (`BROKER_RESOURCE_IDENTITY_CLIENT_ID`) and no federated credential trusts it.
pub const RESOURCE_IDENTITY_OID: &str = "8c9d0e1f-2a3b-4c4d-9e5f-6a7b8c9d0e1f";
pub const RESOURCE_IDENTITY_CLIENT_ID: &str = "9d0e1f2a-3b4c-4d5e-8f6a-7b8c9d0e1f2a";
pub const RESOURCE_IDENTITY_RESOURCE_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/token-broker-id";
/// The audience of managed-identity tokens exchanged as federated credentials.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

pub const MSI_CALLER_OID: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
pub const MSI_CALLER_APP_ID: &str = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e";
pub const MSI_CALLER_RESOURCE_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/fabric-ws";

pub const USER_OID: &str = "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f";
pub const USER_UPN: &str = "ana@contoso.com";
pub const USER_NAME: &str = "Ana Lima";

/// The public client the default user signed in with (`azp` of minted user tokens).
pub const USER_CLIENT_APP_ID: &str = "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f";

pub const ALLOWLIST_SECRET_NAME: &str = "allowed-msi-oids";
/// Holds the broker's client secret, so `BROKER_CLIENT_SECRET_NAME` can be exercised.
pub const BROKER_SECRET_NAME: &str = "broker-client-secret";

pub const VAULT_RESOURCE: &str = "https://vault.azure.net";

/// The Key Vault api-versions the emulated vault accepts (the Rust SDK 1.0 sends 2025-07-01).
pub const KEY_VAULT_API_VERSIONS: &[&str] = &[
    "2016-10-01",
    "7.0",
    "7.1",
    "7.2",
    "7.3",
    "7.4",
    "7.5",
    "7.6",
    "2025-07-01",
];

/// Resources (v1 resource ids) that exist in the tenant from the start.
pub fn default_resources() -> Vec<String> {
    [
        "https://database.windows.net",
        "https://database.windows.net/",
        "https://storage.azure.com",
        "https://vault.azure.net",
        "https://management.azure.com",
        "https://management.azure.com/",
        "https://api.fabric.microsoft.com",
        "https://analysis.windows.net/powerbi/api",
        TOKEN_EXCHANGE_AUDIENCE,
    ]
    .iter()
    .map(|r| (*r).to_owned())
    .chain(std::iter::once(format!("api://{BROKER_CLIENT_ID}")))
    .collect()
}

/// The application id Entra names in messages about a resource (e.g. the MFA demand), as the real
/// first-party apps have them; custom resources are named by their identifier.
pub fn resource_app_id(resource: &str) -> String {
    let host = resource.trim_end_matches('/');
    let known = match host {
        "https://database.windows.net" => "022907d3-0f1b-48f7-badc-1ba6abab6d66",
        "https://storage.azure.com" => "e406a681-f3d4-42a8-90b6-c2b029497af1",
        "https://vault.azure.net" => "cfa8b339-82a2-471a-a3c9-0fc0be7a4093",
        "https://management.azure.com" => "797f4846-ba00-4fd7-ba43-dac1f8f63013",
        "https://api.fabric.microsoft.com" | "https://analysis.windows.net/powerbi/api" => {
            "00000009-0000-0000-c000-000000000000"
        }
        _ => return host.strip_prefix("api://").unwrap_or(host).to_owned(),
    };
    known.to_owned()
}

/// The display name of a tenant this emulator knows, or `None` for any other tenant.
pub fn tenant_name(tenant: &str) -> Option<&'static str> {
    if tenant.eq_ignore_ascii_case(TENANT_ID) {
        Some(TENANT_NAME)
    } else if tenant.eq_ignore_ascii_case(FOREIGN_TENANT_ID) {
        Some(FOREIGN_TENANT_NAME)
    } else {
        None
    }
}
