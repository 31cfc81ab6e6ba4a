//! The user-assigned managed identity's token for the token-exchange audience, which the broker presents
//! as its client assertion (a federated identity credential on its app registration), from App
//! Service's identity endpoint through the official SDK. Served from memory until shortly before it
//! expires and refreshed ahead in the background; one identity call at a time, shared by every request
//! that waits for it; a failed refresh keeps serving the token while it is still valid. A token Entra
//! refuses (signed with a key since retired, or expired although the endpoint said otherwise) is
//! dropped with the SDK's cached copy, at most once per `RENEWAL_FLOOR`, so the next call fetches anew.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
/// Shortest time between two drops of a refused token: a token fetched just now that Entra refuses too
/// (the federated record is gone, say) is kept, rather than asking the identity endpoint on every request.
const RENEWAL_FLOOR: Duration = Duration::from_secs(5);

struct Held {
    token: Secret,
    /// Unix seconds.
    expires_at: u64,
    fetched: Instant,
}

type Flight = Shared<BoxFuture<'static, Result<Arc<Held>, ()>>>;

/// The identity call in progress, numbered so that one detached by `forget` does not clear its successor.
#[derive(Default)]
struct Flights {
    current: Option<(u64, Flight)>,
    started: u64,
    /// When a refused token was last dropped.
    last_renewal: Option<Instant>,
}

struct Inner {
    credential: Arc<ManagedIdentity>,
    scope: String,
    held: ArcSwapOption<Held>,
    flights: Mutex<Flights>,
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
                flights: Mutex::new(Flights::default()),
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

    fn forget(&self, token: &Secret) -> bool {
        let mut flights = self.inner.lock_flights();
        let held = self.inner.held.load_full();
        if held.is_none_or(|held| held.token.expose() != token.expose()) {
            // Already dropped by another request: the retry presents the token fetched since.
            return true;
        }
        if flights
            .last_renewal
            .is_some_and(|at| at.elapsed() < RENEWAL_FLOOR)
        {
            return false;
        }
        self.inner.held.store(None);
        if let Err(err) = self.inner.credential.renew() {
            tracing::warn!(
                status = err.http_status().map(u16::from),
                "the managed identity's cached tokens could not be dropped"
            );
        }
        // A call already under way may bring the refused token back from the old cache: its waiters
        // keep it, but the next caller starts a new call.
        flights.current = None;
        flights.last_renewal = Some(Instant::now());
        true
    }
}

impl Inner {
    /// The identity call in progress, or a new one. It runs as a task of its own, so a request that
    /// stops waiting strands nobody, and a background refresh needs no waiter at all.
    fn flight(self: &Arc<Self>) -> Flight {
        let mut flights = self.lock_flights();
        if let Some((_, flight)) = flights.current.as_ref() {
            return flight.clone();
        }
        flights.started += 1;
        let number = flights.started;
        let task = tokio::spawn(Arc::clone(self).fetch(number));
        let flight = async move { task.await.unwrap_or(Err(())) }
            .boxed()
            .shared();
        flights.current = Some((number, flight.clone()));
        flight
    }

    fn lock_flights(&self) -> MutexGuard<'_, Flights> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Identity call `number`; its token is held only if `forget` did not detach the call meanwhile.
    async fn fetch(self: Arc<Self>, number: u64) -> Result<Arc<Held>, ()> {
        let fetched = self.credential.get_token(&[&self.scope], None).await;
        let mut flights = self.lock_flights();
        let attached = flights
            .current
            .as_ref()
            .is_some_and(|(current, _)| *current == number);
        if attached {
            flights.current = None;
        }
        match fetched {
            Ok(token) => {
                let held = Arc::new(Held {
                    token: Secret::new(token.token.secret()),
                    expires_at: u64::try_from(token.expires_on.unix_timestamp()).unwrap_or(0),
                    fetched: Instant::now(),
                });
                if attached {
                    self.held.store(Some(held.clone()));
                }
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
        }
    }
}
