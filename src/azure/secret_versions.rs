//! A secret's version history through the SDK's list-versions pager (`GET {vault}/secrets/{name}/versions`,
//! following `nextLink`): each version's id, creation time and whether it is enabled, never values; and
//! the value of one version. Failures are classified as for any read, never described with a value.

use std::pin::pin;

use azure_security_keyvault_secrets::ResourceExt;
use azure_security_keyvault_secrets::models::{SecretClientGetSecretOptions, SecretProperties};
use futures_util::TryStreamExt;

use crate::azure::key_vault::{VaultReader, classify, secret_value, value_of};
use crate::broker::error::LoadFailure;
use crate::secret::Secret;

/// One version as Key Vault lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVersion {
    pub id: String,
    /// Unix seconds (Key Vault's resolution).
    pub created: i64,
    /// A disabled version cannot be read.
    pub enabled: bool,
}

impl VaultReader {
    /// Every version of the secret, in the order Key Vault lists them (no particular order); empty
    /// when the secret does not exist.
    pub async fn versions(&self, name: &str) -> Result<Vec<ListedVersion>, LoadFailure> {
        let listed = self
            .call(name, |client| async move {
                let mut pager = pin!(client.list_secret_properties_versions(name, None)?);
                let mut listed = Vec::new();
                while let Some(properties) = pager.try_next().await? {
                    listed.push(properties);
                }
                Ok(listed)
            })
            .await
            .map_err(|err| classify(name, &err))?;
        listed
            .iter()
            .map(|properties| {
                listed_version(properties).ok_or_else(|| {
                    tracing::warn!(
                        secret = name,
                        "Key Vault listed a version without an id or a creation time"
                    );
                    LoadFailure::Unreachable
                })
            })
            .collect()
    }

    /// The value of one version of the secret.
    pub async fn read_version(&self, name: &str, version: &str) -> Result<Secret, LoadFailure> {
        let read = self
            .call(name, |client| async move {
                let options = SecretClientGetSecretOptions {
                    secret_version: Some(version.to_owned()),
                    ..Default::default()
                };
                secret_value(client.get_secret(name, Some(options)).await)
            })
            .await;
        value_of(name, read).map(|secret| secret.value)
    }
}

fn listed_version(properties: &SecretProperties) -> Option<ListedVersion> {
    let id = properties.resource_id().ok()?.version?;
    let attributes = properties.attributes.as_ref()?;
    Some(ListedVersion {
        id,
        created: attributes.created?.unix_timestamp(),
        enabled: attributes.enabled.unwrap_or(false),
    })
}
