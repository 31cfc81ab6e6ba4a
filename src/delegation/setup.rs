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
use crate::settings::{DelegationSettings, DelegationStoreSetting};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the delegation store client could not be built: {0}")]
    Store(#[source] azure_core::Error),
    #[error("BROKER_DELEGATION_KEY_NAME needs BROKER_KEY_VAULT_URL")]
    NoKeyVault,
    #[error(transparent)]
    Random(#[from] RandomUnavailable),
}

/// What start-up gets back: the handle, and the keyring source to load first and then refresh.
pub struct Started {
    pub delegations: Delegations,
    /// `None` when the keyring is a random per-process key.
    pub keyring_source: Option<KeyringSource>,
}

/// The handle for `settings`, or `None` when delegations are off (`BROKER_DELEGATION_STORE=none`).
/// `identity` and `vault` are the ones Key Vault is read with. Nothing is read yet: load the keyring
/// with [`KeyringSource::load_until_loaded`] within start-up's wait, then
/// [`KeyringSource::spawn_refresh`] on the refresh schedule.
pub fn build(
    settings: &DelegationSettings,
    http: &reqwest::Client,
    identity: Option<&ClientId>,
    vault: Option<&Arc<VaultReader>>,
) -> Result<Option<Started>, SetupError> {
    let store: Arc<dyn RecordStore> = match &settings.store {
        DelegationStoreSetting::None => return Ok(None),
        DelegationStoreSetting::Memory => Arc::new(MemoryStore::new()),
        DelegationStoreSetting::Blob { container } => Arc::new(
            BlobStore::new(container.clone(), http.clone(), identity).map_err(SetupError::Store)?,
        ),
    };
    let (keyring, keyring_source) = match &settings.key_name {
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
    let bounds = Bounds {
        revocation: settings.revocation,
        token_lifetime: settings.token_lifetime,
    };
    Ok(Some(Started {
        delegations: Delegations::new(store, keyring, bounds),
        keyring_source,
    }))
}

/// Starts the keyring refresh on `every`, after a first load bounded by the caller.
pub fn spawn_keyring_refresh(started: &Started, every: Duration) {
    if let Some(source) = &started.keyring_source {
        source.clone().spawn_refresh(every);
    }
}
