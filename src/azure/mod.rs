//! The broker's two Azure SDK dependencies, behind small functions: the Function App's managed
//! identity (App Service identity endpoint, with tokens that can be dropped when refused) and Key Vault
//! secrets. No SDK type leaks out of here.

pub mod key_vault;
pub mod managed_identity;
