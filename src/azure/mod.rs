//! The broker's Azure SDK dependencies, behind small functions: the Function App's managed identity
//! (App Service identity endpoint) as a federated credential, and Key Vault secrets. No SDK type leaks
//! out of here.

pub mod key_vault;
pub mod managed_identity;
