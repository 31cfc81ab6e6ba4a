//! The broker's own client secret, fixed from settings or loaded (and re-loaded) from Key Vault, with a
//! version digest so that tokens cached under a rotated secret are never served again.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::broker::digest::Digest;
use crate::broker::error::{BrokerError, LoadFailure};
use crate::broker::freshness::{Freshness, ReadProblem};
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

struct State {
    current: Result<Arc<ClientCredential>, LoadFailure>,
    /// Reads from Key Vault (a fixed secret is never read, so it stays at the default).
    freshness: Freshness,
}

pub struct CredentialSource {
    state: ArcSwap<State>,
}

impl CredentialSource {
    /// A secret known at start-up.
    pub fn fixed(secret: Secret) -> Self {
        Self::with(Ok(Arc::new(ClientCredential::new(secret))))
    }

    /// A secret still to be loaded from Key Vault.
    pub fn pending() -> Self {
        Self::with(Err(LoadFailure::Unreachable))
    }

    fn with(current: Result<Arc<ClientCredential>, LoadFailure>) -> Self {
        Self {
            state: ArcSwap::from_pointee(State {
                current,
                freshness: Freshness::default(),
            }),
        }
    }

    pub fn current(&self) -> Result<Arc<ClientCredential>, BrokerError> {
        self.state
            .load()
            .current
            .clone()
            .map_err(BrokerError::ClientSecretUnavailable)
    }

    /// How current the Key Vault copy is.
    pub fn freshness(&self) -> Freshness {
        self.state.load().freshness
    }

    /// Applies a Key Vault read. A failure after a first success keeps the last good secret.
    pub fn apply(&self, loaded: Result<Secret, LoadFailure>) {
        let state = self.state.load();
        let next = match loaded {
            Ok(secret) => {
                let fresh = ClientCredential::new(secret);
                let current = match &state.current {
                    Ok(old) if old.version == fresh.version => Arc::clone(old),
                    _ => {
                        tracing::info!("client secret loaded from Key Vault");
                        Arc::new(fresh)
                    }
                };
                State {
                    current: Ok(current),
                    freshness: state.freshness.succeeded(),
                }
            }
            Err(failure) => State {
                current: match &state.current {
                    Ok(old) => Ok(Arc::clone(old)),
                    Err(_) => Err(failure),
                },
                freshness: state.freshness.failed(ReadProblem::from(failure)),
            },
        };
        self.state.store(Arc::new(next));
    }
}
