//! Builds the delegation handle from its settings at start-up: the store (memory or Blob), the keyring
//! (random for `memory` without a key name, else read from Key Vault) and the keyring's refresh loop.

use std::sync::Arc;
use std::time::Duration;

use super::delegations::{Bounds, Delegations};
use super::id::RandomUnavailable;
use super::keyring_source::KeyringSource;
use super::seal::{Keyring, SharedKeyring};
use super::store::RecordStore;
use super::store::blob::BlobStore;
use super::store::memory::MemoryStore;
use crate::azure::key_vault::VaultReader;
use crate::broker::ids::ClientId;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the delegation store client could not be built: {0}")]
    Store(#[source] azure_core::Error),
    #[error("BROKER_DELEGATION_KEY_NAME needs BROKER_KEY_VAULT_URL")]
    NoKeyVault,
    #[error(transparent)]
    Random(#[from] RandomUnavailable),
}

/// Where delegation records are kept (`BROKER_DELEGATION_STORE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `memory`: this process only (the demo, local runs).
    Memory,
    /// An Azure Blob container URL, reached with the Function App's managed identity.
    Blob { container: Url },
}

/// Delegations as configured (settings build it; `None` there means delegations are off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationConfig {
    pub store: StoreLocation,
    /// `BROKER_DELEGATION_KEY_NAME`: the Key Vault secret holding the sealing key (every version is
    /// read). `None` (only with `memory`): a random key for this process.
    pub key_name: Option<String>,
    pub bounds: Bounds,
}

/// What start-up gets back: the handle, and the keyring source to load first and then refresh.
pub struct Started {
    pub delegations: Delegations,
    /// `None` when the keyring is a random per-process key.
    pub keyring_source: Option<KeyringSource>,
}

/// The handle for `config`. `identity` and `vault` are the ones Key Vault is read with. Nothing is read yet: load the keyring
/// with [`KeyringSource::load_until_loaded`] within start-up's wait, then
/// [`KeyringSource::spawn_refresh`] on the refresh schedule.
pub fn build(
    config: &DelegationConfig,
    http: &reqwest::Client,
    identity: Option<&ClientId>,
    vault: Option<&Arc<VaultReader>>,
) -> Result<Started, SetupError> {
    let store: Arc<dyn RecordStore> = match &config.store {
        StoreLocation::Memory => Arc::new(MemoryStore::new()),
        StoreLocation::Blob { container } => Arc::new(
            BlobStore::new(container.clone(), http.clone(), identity).map_err(SetupError::Store)?,
        ),
    };
    let (keyring, keyring_source) = match &config.key_name {
        None => (SharedKeyring::new(Keyring::random()?), None),
        Some(name) => {
            let keyring = SharedKeyring::new(Keyring::empty());
            let source = KeyringSource {
                reader: vault.ok_or(SetupError::NoKeyVault)?.clone(),
                name: name.clone(),
                keyring: keyring.clone(),
            };
            (keyring, Some(source))
        }
    };
    Ok(Started {
        delegations: Delegations::new(store, keyring, config.bounds),
        keyring_source,
    })
}

/// Starts the keyring refresh on `every`, after a first load bounded by the caller.
pub fn spawn_keyring_refresh(started: &Started, every: Duration) {
    if let Some(source) = &started.keyring_source {
        source.clone().spawn_refresh(every);
    }
}

/// Adds each instance's redemption counts to the records every `every` (the revocation bound: a read on
/// another instance lags by no more than a record may be stale).
pub fn spawn_usage_flush(started: &Started, every: Duration) {
    let delegations = started.delegations.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            delegations.flush_usage().await;
        }
    });
}
