//! The broker's own client secret, fixed from settings or loaded (and re-loaded) from Key Vault, with a
//! version digest so that tokens cached under a rotated secret are never served again.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::broker::digest::Digest;
use crate::broker::error::{BrokerError, LoadFailure};
use crate::secret::Secret;

/// A usable secret and its version (a digest of the value, never the value).
pub struct ClientCredential {
    pub secret: Secret,
    pub version: Digest,
}

impl ClientCredential {
    pub fn new(secret: Secret) -> Self {
        let version = Digest::of_bytes(secret.expose().as_bytes());
        Self { secret, version }
    }
}

pub struct CredentialSource {
    current: ArcSwap<Result<Arc<ClientCredential>, LoadFailure>>,
}

impl CredentialSource {
    /// A secret known at start-up.
    pub fn fixed(secret: Secret) -> Self {
        Self {
            current: ArcSwap::from_pointee(Ok(Arc::new(ClientCredential::new(secret)))),
        }
    }

    /// A secret still to be loaded from Key Vault.
    pub fn pending() -> Self {
        Self {
            current: ArcSwap::from_pointee(Err(LoadFailure::Unreachable)),
        }
    }

    pub fn current(&self) -> Result<Arc<ClientCredential>, BrokerError> {
        self.current
            .load()
            .as_ref()
            .clone()
            .map_err(BrokerError::ClientSecretUnavailable)
    }

    /// Applies a Key Vault read. A failure after a first success keeps the last good secret.
    pub fn apply(&self, loaded: Result<Secret, LoadFailure>) {
        match loaded {
            Ok(secret) => {
                let fresh = ClientCredential::new(secret);
                let changed = self
                    .current
                    .load()
                    .as_ref()
                    .as_ref()
                    .map_or(true, |old| old.version != fresh.version);
                if changed {
                    tracing::info!("client secret loaded from Key Vault");
                    self.current.store(Arc::new(Ok(Arc::new(fresh))));
                }
            }
            Err(failure) => {
                if self.current.load().is_err() {
                    self.current.store(Arc::new(Err(failure)));
                }
            }
        }
    }
}
