//! Tokens Entra issued, served from memory while they have more than the margin left, with single
//! flight (N concurrent requests for one cold key make one token-endpoint call and share its result or
//! error) and refresh ahead of the margin. Entra's 4xx refusals are remembered briefly so a retry loop
//! cannot hammer Entra; claims challenges never are. Keys are digests (see `CacheKey`).
//!
//! Hits are read on every request, so the maps are `quick_cache` caches (a hit takes one shared shard
//! lock). Single flight is a map of in-flight exchanges: the first request for a cold key spawns the
//! exchange as a task of its own (so a caller hanging up cannot strand the others) and every request
//! for that key awaits the same shared outcome.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use quick_cache::sync::Cache;

use crate::broker::digest::Digest;
use crate::broker::error::{UpstreamError, UpstreamErrorKind};
use crate::broker::exchange::IssuedToken;
use crate::clock::now;
use crate::secret::SecretJson;

const TOKEN_CAPACITY: usize = 50_000;
const REFUSAL_CAPACITY: usize = 10_000;
/// How long an identical request that Entra refused with a 4xx is refused from memory.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(30);

/// A cache key: a digest over the tenant, the broker's client id and credential version, the scope,
/// and for OBO the user and a digest of the caller token. A rotated secret therefore starts fresh, and a
/// user's token is never found under another user's key.
pub type CacheKey = Digest;

/// What the core hands back for a request: a token and how it was obtained.
#[derive(Debug, Clone)]
pub struct Grant {
    pub access_token: SecretJson,
    /// Unix seconds.
    pub expires_at: u64,
    pub cache_hit: bool,
    pub correlation_id: Option<String>,
    pub upstream_ms: Option<u64>,
}

struct Entry {
    token: IssuedToken,
    /// The last Unix second the token may be served (the margin before its expiry, capped by the
    /// caller token's expiry for OBO).
    serve_until: u64,
    refresh_after: u64,
    refreshing: AtomicBool,
}

#[derive(Clone)]
struct Refusal {
    error: UpstreamError,
    until: Instant,
}

/// One exchange's outcome, awaited by every request for its key.
type Flight = Shared<BoxFuture<'static, Result<Arc<Entry>, UpstreamError>>>;

struct Maps {
    tokens: Cache<CacheKey, Arc<Entry>>,
    refused: Cache<CacheKey, Refusal>,
    in_flight: Mutex<HashMap<CacheKey, Flight>>,
}

impl Maps {
    /// A fresh entry for `key`, if there is one.
    fn fresh(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        let entry = self.tokens.get(key)?;
        let now = now();
        if entry.serve_until > now {
            return Some(entry);
        }
        // Inside the margin: gone (unless a refresh has just replaced it), so the next request
        // fetches instead of finding it.
        self.tokens
            .remove_if(key, |current| current.serve_until <= now);
        None
    }

    /// The refusal remembered for `key`, if it is still remembered.
    fn refusal(&self, key: &CacheKey) -> Option<UpstreamError> {
        let refusal = self.refused.get(key)?;
        let now = Instant::now();
        if refusal.until > now {
            return Some(refusal.error);
        }
        self.refused.remove_if(key, |current| current.until <= now);
        None
    }

    /// Caches a token Entra just issued for `key`.
    fn store(&self, key: CacheKey, entry: Entry) -> Arc<Entry> {
        let entry = Arc::new(entry);
        self.tokens.insert(key, entry.clone());
        entry
    }

    fn in_flight(&self) -> MutexGuard<'_, HashMap<CacheKey, Flight>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct TokenCache {
    maps: Arc<Maps>,
    margin: Duration,
}

impl TokenCache {
    pub fn new(margin: Duration) -> Self {
        Self {
            maps: Arc::new(Maps {
                tokens: Cache::new(TOKEN_CAPACITY),
                refused: Cache::new(REFUSAL_CAPACITY),
                in_flight: Mutex::default(),
            }),
            margin,
        }
    }

    /// Entries currently held (for the health route).
    pub fn len(&self) -> u64 {
        self.maps.tokens.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops entries that may no longer be served and refusals no longer remembered (run
    /// periodically; memory stays bounded by the capacities regardless).
    pub fn forget_expired(&self) {
        let (now, instant) = (now(), Instant::now());
        self.maps.tokens.retain(|_, entry| entry.serve_until > now);
        self.maps
            .refused
            .retain(|_, refusal| refusal.until > instant);
    }

    /// The cached token for `key`, or one fetched by `fetch` (once, however many callers wait).
    /// `not_after` caps how long the result may be served (an OBO token never outlives its caller token).
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: CacheKey,
        not_after: u64,
        fetch: F,
    ) -> Result<Grant, UpstreamError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<IssuedToken, UpstreamError>> + Send + 'static,
    {
        if let Some(entry) = self.maps.fresh(&key) {
            self.refresh_ahead(key, &entry, not_after, fetch);
            return Ok(grant(&entry.token, true));
        }
        let (flight, started_here) = match self.join_or_start(key, not_after, fetch) {
            Joined::Cached(entry) => return Ok(grant(&entry.token, true)),
            Joined::Refused(error) => return Err(error),
            Joined::Flight(flight, started_here) => (flight, started_here),
        };
        // A request that shared another request's exchange made no call of its own: a hit.
        flight.await.map(|entry| grant(&entry.token, !started_here))
    }

    /// The exchange in flight for `key`, or a new one. Decided under the in-flight lock, after looking
    /// at the cache once more and at the remembered refusals: an exchange stores its token or refusal
    /// before leaving the in-flight map, so a request that finds none of them is the only one to start
    /// an exchange.
    fn join_or_start<F, Fut>(&self, key: CacheKey, not_after: u64, fetch: F) -> Joined
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<IssuedToken, UpstreamError>> + Send + 'static,
    {
        let mut in_flight = self.maps.in_flight();
        if let Some(flight) = in_flight.get(&key) {
            return Joined::Flight(flight.clone(), false);
        }
        if let Some(entry) = self.maps.fresh(&key) {
            return Joined::Cached(entry);
        }
        if let Some(error) = self.maps.refusal(&key) {
            return Joined::Refused(error);
        }
        let maps = self.maps.clone();
        let margin = self.margin;
        let exchange = tokio::spawn(async move {
            let outcome = fetch()
                .await
                .map(|token| maps.store(key, new_entry(token, not_after, margin)));
            match &outcome {
                Err(err) if is_remembered(&err.kind) => maps.refused.insert(
                    key,
                    Refusal {
                        error: err.clone(),
                        until: Instant::now() + REFUSAL_MEMORY,
                    },
                ),
                _ => {}
            }
            maps.in_flight().remove(&key);
            outcome
        });
        let maps = self.maps.clone();
        let flight = async move {
            exchange.await.unwrap_or_else(|_| {
                // The task panicked or the runtime is shutting down: it never left the in-flight map,
                // so leave it here, or every later request for the key would share this failure.
                maps.in_flight().remove(&key);
                Err(UpstreamError::new(UpstreamErrorKind::Unavailable))
            })
        }
        .boxed()
        .shared();
        in_flight.insert(key, flight.clone());
        Joined::Flight(flight, true)
    }

    /// Starts one background refresh when a served entry passes its refresh point.
    fn refresh_ahead<F, Fut>(&self, key: CacheKey, entry: &Entry, not_after: u64, fetch: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<IssuedToken, UpstreamError>> + Send + 'static,
    {
        if now() < entry.refresh_after || entry.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let maps = self.maps.clone();
        let margin = self.margin;
        tokio::spawn(async move {
            match fetch().await {
                Ok(token) => {
                    maps.store(key, new_entry(token, not_after, margin));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "refresh ahead failed; serving the cached token")
                }
            }
        });
    }
}

enum Joined {
    Cached(Arc<Entry>),
    Refused(UpstreamError),
    /// The exchange to await, and whether this request started it.
    Flight(Flight, bool),
}

/// The last Unix second a token may be served: the margin before its expiry, capped by `not_after`.
fn serve_until(token: &IssuedToken, not_after: u64, margin: Duration) -> u64 {
    token
        .expires_at
        .saturating_sub(margin.as_secs())
        .min(not_after)
}

fn new_entry(token: IssuedToken, not_after: u64, margin: Duration) -> Entry {
    let now = now();
    let serve_until = serve_until(&token, not_after, margin);
    // Refresh ahead once half of the serving window has passed.
    let refresh_after = now + serve_until.saturating_sub(now) / 2;
    Entry {
        token,
        serve_until,
        refresh_after,
        refreshing: AtomicBool::new(false),
    }
}

/// Refusals worth remembering: Entra said no to this exact request, and asking again will not change
/// that. Claims challenges are never remembered: the caller must be able to come back with a fresh token.
fn is_remembered(kind: &UpstreamErrorKind) -> bool {
    matches!(
        kind,
        UpstreamErrorKind::CredentialsRejected
            | UpstreamErrorKind::ScopeRejected
            | UpstreamErrorKind::ConsentRequired
            | UpstreamErrorKind::AssertionRejected
            | UpstreamErrorKind::Refused
    )
}

fn grant(token: &IssuedToken, cache_hit: bool) -> Grant {
    Grant {
        access_token: token.access_token.clone(),
        expires_at: token.expires_at,
        cache_hit,
        correlation_id: Some(token.correlation_id.clone()),
        upstream_ms: (!cache_hit).then_some(token.upstream_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(lifetime: u64) -> IssuedToken {
        IssuedToken {
            access_token: SecretJson::new("eyJ0.eyJ1.c2ln").unwrap(),
            expires_at: now() + lifetime,
            correlation_id: "c".into(),
            upstream_ms: 1,
        }
    }

    async fn fill(cache: &TokenCache, keys: std::ops::Range<u64>, lifetime: u64) {
        for i in keys {
            let key = Digest::of(&[&i.to_be_bytes()]);
            let fetch = move || async move { Ok(issued(lifetime)) };
            cache.get_or_fetch(key, u64::MAX, fetch).await.unwrap();
        }
    }

    #[tokio::test]
    async fn never_holds_more_than_its_capacity() {
        let cache = TokenCache::new(Duration::ZERO);

        fill(&cache, 0..(TOKEN_CAPACITY as u64 + 10_000), 3600).await;

        assert!(cache.len() <= TOKEN_CAPACITY as u64, "{} held", cache.len());
        assert!(cache.len() > TOKEN_CAPACITY as u64 / 2);
    }

    #[tokio::test]
    async fn sweeping_drops_tokens_inside_the_margin_and_keeps_the_rest() {
        let cache = TokenCache::new(Duration::from_secs(300));
        fill(&cache, 0..10, 3600).await;
        // Served once (the caller gets it), but already inside the margin: never served again.
        fill(&cache, 10..20, 200).await;

        cache.forget_expired();

        assert_eq!(cache.len(), 10);
    }
}
