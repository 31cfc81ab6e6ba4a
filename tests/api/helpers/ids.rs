//! The emulator's fixed identities (spec.md §1), the resources the tests ask for, and fresh GUIDs.

use serde_json::{Value, json};

pub const TENANT_ID: &str = "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b";
pub const FOREIGN_TENANT_ID: &str = "9e8d7c6b-5a49-4837-a625-1403f2e1d0c9";
pub const BROKER_CLIENT_ID: &str = "0b5e9c3a-7f2d-4a61-9c8e-2d4b6a8f1e37";
pub const BROKER_SP_OID: &str = "5c1f0e2d-8b3a-4f7c-9d6e-1a2b3c4d5e6f";
pub const MSI_OID: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
/// A managed identity that no allowlist names until a test adds it.
pub const OTHER_MSI_OID: &str = "8f9e0d1c-2b3a-4c5d-9e6f-7a8b9c0d1e2f";
/// The default managed identity caller's resource id (`xms_mirid`), its display name in GetSPToken.
pub const MSI_RESOURCE_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/fabric-ws";
/// The client app (`azp`) of the emulator's default user tokens: another app of the tenant.
pub const USER_CLIENT_APP_ID: &str = "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f";
pub const USER_OID: &str = "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f";
pub const USER_UPN: &str = "ana@contoso.com";
pub const USER2_OID: &str = "4d5e6f7a-8b9c-4dae-9f01-3b4c5d6e7f80";
pub const USER2_UPN: &str = "ben@contoso.com";
pub const USER2_NAME: &str = "Ben Okafor";
/// The broker's user-assigned identity, attached to the emulated Function App: the federated credential.
pub const BROKER_IDENTITY_CLIENT_ID: &str = "7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e";
pub const BROKER_IDENTITY_OID: &str = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d";
/// The second user-assigned identity, the deployment's resource identity (reads Key Vault).
pub const RESOURCE_IDENTITY_CLIENT_ID: &str = "9d0e1f2a-3b4c-4d5e-8f6a-7b8c9d0e1f2a";
pub const RESOURCE_IDENTITY_OID: &str = "8c9d0e1f-2a3b-4c4d-9e5f-6a7b8c9d0e1f";
/// The emulated Function App's system-assigned identity.
pub const FUNCTION_MI_OID: &str = "d4e5f6a7-b8c9-4d0e-8f1a-2b3c4d5e6f70";
pub const ALLOWLIST_SECRET: &str = "allowed-msi-oids";

pub const SQL_RESOURCE: &str = "https://database.windows.net";
pub const SQL_SCOPE: &str = "https://database.windows.net/.default";

/// The GetSPToken body asking for Azure SQL.
pub fn sql_request() -> Value {
    json!({"targetScope": SQL_SCOPE})
}

/// The GetSPToken body asking for Azure Storage.
pub fn storage_request() -> Value {
    json!({"targetScope": "https://storage.azure.com/.default"})
}

/// The Token route body asking for Azure SQL as the signed-in user (On-Behalf-Of).
pub fn sql_user_lane() -> Value {
    json!({"audience": "sql", "lane": "user"})
}

/// A random version-4 GUID, as the host generates invocation and worker ids.
pub fn new_guid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
