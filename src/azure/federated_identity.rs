//! The user-assigned managed identity's token for the token-exchange audience, which the broker presents
//! as its client assertion (a federated identity credential on its app registration), from App
//! Service's identity endpoint through the official SDK. Served from memory until shortly before it
//! expires and refreshed ahead in the background; one identity call at a time, shared by every request
//! that waits for it; a failed refresh keeps serving the token while it is still valid.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::UserAssignedId;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::azure::managed_identity::ManagedIdentity;
use crate::broker::credential::FederatedToken;
use crate::broker::ids::ClientId;
use crate::clock::now;
use crate::secret::Secret;

/// A token this close to its expiry (seconds) is no longer presented: Entra must still find it valid.
const STOP_USING: u64 = 60;
/// A token this close to its expiry (seconds) is refreshed in the background. The SDK's own cache
/// renews within 300 s of expiry, so an earlier refresh would be handed the same token back.
const REFRESH_AHEAD: u64 = 300;

struct Held {
    token: Secret,
    /// Unix seconds.
    expires_at: u64,
    fetched: Instant,
}

type Flight = Shared<BoxFuture<'static, Result<Arc<Held>, ()>>>;

struct Inner {
    credential: Arc<ManagedIdentity>,
    scope: String,
    held: ArcSwapOption<Held>,
    in_flight: Mutex<Option<Flight>>,
}

pub struct FederatedIdentity {
    inner: Arc<Inner>,
}

impl FederatedIdentity {
    /// The identity `client_id`, asking for tokens for `audience` (e.g. `api://AzureADTokenExchange`).
    pub fn new(
        client_id: &ClientId,
        audience: &str,
        http: reqwest::Client,
    ) -> azure_core::Result<Self> {
        let credential = ManagedIdentity::new(
            ClientOptions {
                transport: Some(Transport::new(Arc::new(http))),
                // A request waiting for the identity must not sit through the SDK's backoff.
                retry: RetryOptions::none(),
                ..ClientOptions::default()
            },
            Some(UserAssignedId::ClientId(client_id.as_str().to_owned())),
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                credential,
                scope: format!("{audience}/.default"),
                held: ArcSwapOption::empty(),
                in_flight: Mutex::new(None),
            }),
        })
    }
}

#[async_trait::async_trait]
impl FederatedToken for FederatedIdentity {
    async fn token(&self) -> Result<Secret, ()> {
        let now = now();
        if let Some(held) = self.inner.held.load_full()
            && now + STOP_USING < held.expires_at
        {
            if now + REFRESH_AHEAD >= held.expires_at {
                drop(self.inner.flight());
            }
            return Ok(held.token.clone());
        }
        self.inner.flight().await.map(|held| held.token.clone())
    }

    fn age(&self) -> Option<Duration> {
        self.inner
            .held
            .load()
            .as_ref()
            .map(|held| held.fetched.elapsed())
    }
}

impl Inner {
    /// The identity call in progress, or a new one. It runs as a task of its own, so a request that
    /// stops waiting strands nobody, and a background refresh needs no waiter at all.
    fn flight(self: &Arc<Self>) -> Flight {
        let mut slot = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = slot.as_ref() {
            return flight.clone();
        }
        let task = tokio::spawn(Arc::clone(self).fetch());
        let flight = async move { task.await.unwrap_or(Err(())) }
            .boxed()
            .shared();
        *slot = Some(flight.clone());
        flight
    }

    async fn fetch(self: Arc<Self>) -> Result<Arc<Held>, ()> {
        let outcome = match self.credential.get_token(&[&self.scope], None).await {
            Ok(token) => {
                let held = Arc::new(Held {
                    token: Secret::new(token.token.secret()),
                    expires_at: u64::try_from(token.expires_on.unix_timestamp()).unwrap_or(0),
                    fetched: Instant::now(),
                });
                self.held.store(Some(held.clone()));
                Ok(held)
            }
            Err(err) => {
                // The SDK's message and kind may quote the endpoint's answer; the status suffices.
                tracing::warn!(
                    status = err.http_status().map(u16::from),
                    keeps_serving = self.held.load().is_some(),
                    "managed identity token for the federated credential could not be obtained"
                );
                Err(())
            }
        };
        *self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        outcome
    }
}
