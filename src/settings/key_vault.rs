//! Key Vault: the vault's URL and the one audience the managed identity may be asked a token for.

use url::Url;

use super::SettingsError;
use super::entra::identity_endpoint;
use super::vars::{Vars, https_url};

pub const DEFAULT_KEY_VAULT_AUDIENCE: &str = "https://vault.azure.net";

#[derive(Debug, Clone)]
pub struct KeyVaultSettings {
    pub url: Url,
    /// The only audience the managed identity may be asked a token for on Key Vault's behalf.
    pub audience: String,
}

pub(super) fn key_vault(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
) -> Result<Option<KeyVaultSettings>, SettingsError> {
    let Some(text) = vars.get("BROKER_KEY_VAULT_URL") else {
        return Ok(None);
    };
    let mut url = https_url("BROKER_KEY_VAULT_URL", &text)?;
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    identity_endpoint(vars)?;
    let audience = match vars.get("BROKER_KEY_VAULT_AUDIENCE") {
        Some(text) => https_url("BROKER_KEY_VAULT_AUDIENCE", &text)?
            .as_str()
            .trim_end_matches('/')
            .to_owned(),
        None => DEFAULT_KEY_VAULT_AUDIENCE.to_owned(),
    };
    Ok(Some(KeyVaultSettings { url, audience }))
}
