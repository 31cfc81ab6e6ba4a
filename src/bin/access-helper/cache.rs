//! Issued tokens per (bearer digest, audience, scope), served until shortly before they expire, with
//! single flight: concurrent requests for a key with no fresh token share one broker call and its answer,
//! a token or a refusal. Refusals are never kept. A rotated bearer has a new digest, so it starts fresh.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::bearer::BearerDigest;
use crate::broker_client::Issued;
use crate::refusal::Refusal;

/// How long before its expiry a token stops being served: 5 minutes, or half its lifetime when that is
/// shorter, so a short-lived token is still shared by a burst.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Keys kept; past it, entries that are no longer fresh are dropped first, then all.
const MAX_ENTRIES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub bearer: BearerDigest,
    pub audience: String,
    pub scope: String,
}

type Minted = Result<Arc<Issued>, Refusal>;
type Flight = Shared<BoxFuture<'static, Minted>>;

struct Fresh {
    issued: Arc<Issued>,
    serve_until: Instant,
}

enum Slot {
    Fresh(Fresh),
    InFlight(Flight),
}

/// Where an answer came from, for the request's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Broker,
    SharedFlight,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cache => "hit",
            Source::Broker => "miss",
            Source::SharedFlight => "shared",
        }
    }
}

#[derive(Clone, Default)]
pub struct TokenCache {
    slots: Arc<Mutex<HashMap<CacheKey, Slot>>>,
}

impl TokenCache {
    /// The fresh token for `key`, the answer of the call already in flight for it, or the answer of
    /// `mint`, which runs in its own task so that a caller hanging up never cancels it for the others.
    pub async fn get_or_mint<F>(&self, key: CacheKey, mint: F) -> (Minted, Source)
    where
        F: Future<Output = Result<Issued, Refusal>> + Send + 'static,
    {
        let now = Instant::now();
        let (flight, source) = {
            let mut slots = self.lock();
            match slots.get(&key) {
                Some(Slot::Fresh(fresh)) if now < fresh.serve_until => {
                    return (Ok(fresh.issued.clone()), Source::Cache);
                }
                // A flight that has finished but was never settled (its task panicked) is vacant.
                Some(Slot::InFlight(flight)) if flight.peek().is_none() => {
                    (flight.clone(), Source::SharedFlight)
                }
                _ => {
                    let flight = self.launch(key.clone(), mint);
                    slots.insert(key, Slot::InFlight(flight.clone()));
                    (flight, Source::Broker)
                }
            }
        };
        (flight.await, source)
    }

    fn launch<F>(&self, key: CacheKey, mint: F) -> Flight
    where
        F: Future<Output = Result<Issued, Refusal>> + Send + 'static,
    {
        let cache = self.clone();
        let task = tokio::spawn(async move {
            let minted = mint.await.map(Arc::new);
            cache.settle(key, &minted);
            minted
        });
        async move { task.await.unwrap_or_else(|_| Err(Refusal::unavailable())) }
            .boxed()
            .shared()
    }

    /// Replaces the in-flight slot with the token, or removes it after a refusal.
    fn settle(&self, key: CacheKey, minted: &Minted) {
        let mut slots = self.lock();
        match minted {
            Ok(issued) => {
                let now = Instant::now();
                if slots.len() >= MAX_ENTRIES {
                    slots.retain(|_, slot| matches!(slot, Slot::Fresh(f) if now < f.serve_until));
                    if slots.len() >= MAX_ENTRIES {
                        slots.clear();
                    }
                }
                let serve_until = serve_until(now, issued.expires_at);
                slots.insert(
                    key,
                    Slot::Fresh(Fresh {
                        issued: issued.clone(),
                        serve_until,
                    }),
                );
            }
            Err(_) => {
                slots.remove(&key);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Slot>> {
        // A poisoned map still holds only whole entries: every write is one insert or remove.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The instant a token issued at `now` and expiring at `expires_at` stops being served.
fn serve_until(now: Instant, expires_at: Instant) -> Instant {
    let lifetime = expires_at.saturating_duration_since(now);
    expires_at - REFRESH_MARGIN.min(lifetime / 2)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::Map;
    use token_broker::secret::Secret;

    use super::*;

    fn key(bearer: u8) -> CacheKey {
        CacheKey {
            bearer: [bearer; 32],
            audience: "sql".into(),
            scope: "data_platform".into(),
        }
    }

    fn issued(lifetime: Duration) -> Issued {
        Issued {
            access_token: Secret::new("token"),
            fields: Map::new(),
            expires_at: Instant::now() + lifetime,
        }
    }

    #[test]
    fn a_long_lived_token_is_served_until_five_minutes_before_expiry() {
        let now = Instant::now();
        let expires_at = now + Duration::from_secs(3600);
        assert_eq!(
            serve_until(now, expires_at),
            expires_at - Duration::from_secs(300)
        );
    }

    #[test]
    fn a_short_lived_token_is_served_for_half_its_lifetime() {
        let now = Instant::now();
        let expires_at = now + Duration::from_secs(60);
        assert_eq!(serve_until(now, expires_at), now + Duration::from_secs(30));
    }

    #[tokio::test]
    async fn concurrent_requests_for_one_key_share_one_mint() {
        let cache = TokenCache::default();
        let mints = Arc::new(AtomicUsize::new(0));
        let requests = (0..50).map(|_| {
            let mints = mints.clone();
            cache.get_or_mint(key(1), async move {
                mints.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Ok(issued(Duration::from_secs(3600)))
            })
        });
        let answers = futures_util::future::join_all(requests).await;
        assert!(answers.iter().all(|(minted, _)| minted.is_ok()));
        assert_eq!(mints.load(Ordering::SeqCst), 1);
        let (_, source) = cache
            .get_or_mint(key(1), async { Err(Refusal::unavailable()) })
            .await;
        assert_eq!(source, Source::Cache);
    }

    #[tokio::test]
    async fn another_bearer_is_a_miss_and_a_refusal_is_not_kept() {
        let cache = TokenCache::default();
        let _ = cache
            .get_or_mint(key(1), async { Ok(issued(Duration::from_secs(3600))) })
            .await;
        let (minted, source) = cache
            .get_or_mint(key(2), async { Err(Refusal::unavailable()) })
            .await;
        assert!(minted.is_err());
        assert_eq!(source, Source::Broker);
        let (minted, source) = cache
            .get_or_mint(key(2), async { Ok(issued(Duration::from_secs(3600))) })
            .await;
        assert!(minted.is_ok());
        assert_eq!(source, Source::Broker);
    }
}
