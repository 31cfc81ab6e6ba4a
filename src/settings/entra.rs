//! The Entra and identity settings: the authority host, App Service's managed identity endpoint, the
//! identity that reaches Azure resources, and the delegated scope a user's token must carry.

use url::Url;

use super::SettingsError;
use super::vars::{Vars, https_url, is_claim_value};
use crate::broker::ids::ClientId;

pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

pub(super) fn authority_host(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
) -> Result<Url, SettingsError> {
    const NAME: &str = "BROKER_AUTHORITY_HOST";
    let text = vars
        .get(NAME)
        .unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.to_owned());
    let url = https_url(NAME, &text)?;
    if url.path() != "/" {
        return Err(SettingsError::Invalid {
            name: NAME,
            reason: "expected a bare https:// host such as https://login.microsoftonline.com",
        });
    }
    Ok(url)
}

/// App Service's managed identity endpoint, which Key Vault reads and the federated credential use.
/// Without it the SDK would fall back to the VM metadata endpoint, which a Function App does not have.
pub(super) fn identity_endpoint(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
) -> Result<(), SettingsError> {
    match vars.get("IDENTITY_ENDPOINT") {
        Some(endpoint)
            if Url::parse(&endpoint).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) => {}
        Some(_) => {
            return Err(SettingsError::Invalid {
                name: "IDENTITY_ENDPOINT",
                reason: "expected the App Service managed identity endpoint URL",
            });
        }
        None => {
            return Err(SettingsError::Missing {
                name: "IDENTITY_ENDPOINT",
            });
        }
    }
    if vars.get("IDENTITY_HEADER").is_none() {
        return Err(SettingsError::Missing {
            name: "IDENTITY_HEADER",
        });
    }
    Ok(())
}

/// `BROKER_RESOURCE_IDENTITY_CLIENT_ID`: the user-assigned identity that reads Key Vault (and Blob
/// Storage), so that the federated credential's identity needs no Azure role. Unset, the identity of
/// `federated` (`BROKER_MANAGED_IDENTITY_CLIENT_ID`) reads them, as before the setting existed; `None` then
/// means the system-assigned identity.
pub(super) fn resource_identity_client_id(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
    federated: Option<&ClientId>,
) -> Result<Option<ClientId>, SettingsError> {
    const NAME: &str = "BROKER_RESOURCE_IDENTITY_CLIENT_ID";
    match vars.get(NAME) {
        Some(text) => text.parse().map(Some).map_err(|_| {
            SettingsError::invalid_value(
                NAME,
                &text,
                "expected the user-assigned identity's client id (a GUID)",
            )
        }),
        None => Ok(federated.cloned()),
    }
}

pub(super) fn required_user_scope(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
) -> Result<Option<String>, SettingsError> {
    match vars.get("BROKER_REQUIRED_USER_SCOPE") {
        Some(scope) if is_claim_value(&scope) => Ok(Some(scope)),
        Some(scope) => Err(SettingsError::invalid_value(
            "BROKER_REQUIRED_USER_SCOPE",
            &scope,
            "expected one delegated scope name such as user_impersonation",
        )),
        None => Ok(None),
    }
}
