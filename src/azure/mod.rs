//! The broker's Azure SDK dependencies, behind small functions: the Function App's managed identity
//! (App Service identity endpoint, with tokens that can be dropped when refused), the user-assigned
//! identity's token for the broker's federated credential, and Key Vault secrets and their versions.
//! No SDK type leaks out of here.

pub mod federated_identity;
pub mod key_vault;
pub mod managed_identity;
pub mod secret_versions;
