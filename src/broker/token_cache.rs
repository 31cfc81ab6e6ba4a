//! Tokens Entra issued, served from memory while they have more than the margin left, with single
//! flight (N concurrent requests for one cold key make one token-endpoint call and share its result or
//! error) and refresh ahead of the margin. Entra's 4xx refusals are remembered briefly so a retry loop
//! cannot hammer Entra; claims challenges never are. Keys are digests (see `CacheKey`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moka::future::Cache;

use crate::broker::digest::Digest;
use crate::broker::error::{UpstreamError, UpstreamErrorKind};
use crate::broker::exchange::IssuedToken;
use crate::broker::timed::{Timed, TimedExpiry};
use crate::broker::validation::now;
use crate::secret::SecretJson;

const TOKEN_CAPACITY: u64 = 50_000;
const REFUSAL_CAPACITY: u64 = 10_000;
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
    refresh_after: u64,
    refreshing: AtomicBool,
}

pub struct TokenCache {
    tokens: Cache<CacheKey, Timed<Arc<Entry>>>,
    refused: Cache<CacheKey, UpstreamError>,
    margin: Duration,
}

impl TokenCache {
    pub fn new(margin: Duration) -> Self {
        Self {
            tokens: Cache::builder()
                .max_capacity(TOKEN_CAPACITY)
                .expire_after(TimedExpiry)
                .build(),
            refused: Cache::builder()
                .max_capacity(REFUSAL_CAPACITY)
                .time_to_live(REFUSAL_MEMORY)
                .build(),
            margin,
        }
    }

    /// Entries currently held (approximate; for the health route).
    pub fn len(&self) -> u64 {
        self.tokens.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        if let Some(hit) = self.tokens.get(&key).await {
            let entry = hit.value;
            if serve_until(&entry.token, not_after, self.margin) > now() {
                self.refresh_ahead(key, &entry, not_after, fetch);
                return Ok(grant(&entry.token, true));
            }
            // Inside the margin: drop it so the insert below fetches instead of finding it.
            self.tokens.invalidate(&key).await;
        }
        if let Some(refusal) = self.refused.get(&key).await {
            return Err(refusal);
        }
        let margin = self.margin;
        // Boxed: every request waiting on the single flight holds this future, and inline it would
        // carry the whole exchange's state.
        let fetched = self
            .tokens
            .entry(key)
            .or_try_insert_with(Box::pin(async move {
                Ok(new_entry(fetch().await?, not_after, margin))
            }))
            .await;
        match fetched {
            // A waiter that shared another request's exchange made no call of its own: a hit.
            Ok(entry) => Ok(grant(&entry.value().value.token, !entry.is_fresh())),
            Err(err) => {
                let err = UpstreamError::clone(&err);
                if is_remembered(&err.kind) {
                    self.refused.insert(key, err.clone()).await;
                }
                Err(err)
            }
        }
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
        let tokens = self.tokens.clone();
        let margin = self.margin;
        tokio::spawn(async move {
            match fetch().await {
                Ok(token) => {
                    tokens
                        .insert(key, new_entry(token, not_after, margin))
                        .await
                }
                Err(err) => {
                    tracing::warn!(error = %err, "refresh ahead failed; serving the cached token")
                }
            }
        });
    }
}

/// The last Unix second a token may be served: the margin before its expiry, capped by `not_after`.
fn serve_until(token: &IssuedToken, not_after: u64, margin: Duration) -> u64 {
    token
        .expires_at
        .saturating_sub(margin.as_secs())
        .min(not_after)
}

fn new_entry(token: IssuedToken, not_after: u64, margin: Duration) -> Timed<Arc<Entry>> {
    let now = now();
    let serve_until = serve_until(&token, not_after, margin);
    // Refresh ahead once half of the serving window has passed.
    let refresh_after = now + serve_until.saturating_sub(now) / 2;
    let ttl = Duration::from_secs(serve_until.saturating_sub(now));
    let entry = Entry {
        token,
        refresh_after,
        refreshing: AtomicBool::new(false),
    };
    Timed::new(Arc::new(entry), ttl)
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
