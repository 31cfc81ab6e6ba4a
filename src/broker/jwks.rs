//! The tenant's signing keys: OIDC discovery under the authority host, then the JWKS, kept in an `Arc`
//! that readers load without locking. Refreshed periodically (so retired keys stop being trusted) and on
//! an unknown `kid` at most once per cooldown with one refresh in flight, so forged kids cannot hammer
//! Entra or stall requests that carry a known kid. A failed refresh keeps the last good key set. An
//! unknown `kid` is the caller's fault (401) only when the keys it was looked up in are current: while
//! the last refresh has failed (or the one it triggered is still running), the token may well be good,
//! so the answer is the retryable 503 `signing_keys_unavailable`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use url::Url;

use crate::broker::error::{BrokerError, CallerError};
use crate::broker::ids::TenantId;
use crate::broker::upstream::{Upstream, UpstreamCallError};

/// Longest `kid` worth looking up; Entra's are about 30 characters.
const MAX_KID_LEN: usize = 128;
/// Longest a request waits for a refresh triggered by an unknown `kid`.
const REFRESH_WAIT: Duration = Duration::from_secs(5);

/// One loaded key set with the issuers its discovery documents named.
pub struct KeySet {
    keys: HashMap<String, DecodingKey>,
    /// v1 (`https://sts.windows.net/{tid}/`) first, then v2 (`{authority}/{tid}/v2.0`).
    pub issuers: [String; 2],
    pub loaded_at: Instant,
}

impl KeySet {
    pub fn new(keys: HashMap<String, DecodingKey>, issuers: [String; 2]) -> Self {
        Self {
            keys,
            issuers,
            loaded_at: Instant::now(),
        }
    }

    pub fn key(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("fetch {what}: {source}")]
    Fetch {
        what: &'static str,
        source: UpstreamCallError,
    },
    #[error("{0}")]
    Invalid(&'static str),
}

pub struct JwksCache {
    upstream: Upstream,
    authority: Url,
    tenant: TenantId,
    current: ArcSwapOption<KeySet>,
    /// Serialises refreshes: one in flight, the others wait for its result.
    refresh_gate: tokio::sync::Mutex<()>,
    /// Milliseconds since `epoch` of the last refresh attempt (0 = never).
    last_attempt_ms: AtomicU64,
    /// Whether the last refresh attempt failed (the key set may be missing newer keys).
    last_refresh_failed: AtomicBool,
    epoch: Instant,
    min_refresh: Duration,
}

impl JwksCache {
    pub fn new(
        upstream: Upstream,
        authority: Url,
        tenant: TenantId,
        min_refresh: Duration,
    ) -> Self {
        Self {
            upstream,
            authority,
            tenant,
            current: ArcSwapOption::empty(),
            refresh_gate: tokio::sync::Mutex::new(()),
            last_attempt_ms: AtomicU64::new(0),
            last_refresh_failed: AtomicBool::new(false),
            epoch: Instant::now(),
            min_refresh,
        }
    }

    /// The current key set, if one has ever loaded.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }

    /// Whether `kid` is still published (a cached validation of a retired key stops counting).
    pub fn is_trusted(&self, kid: &str) -> bool {
        self.current
            .load()
            .as_ref()
            .is_some_and(|set| set.key(kid).is_some())
    }

    /// The key set holding `kid`, refreshing once if the kid is unknown and the cooldown has passed.
    pub async fn key_set_for(&self, kid: &str) -> Result<Arc<KeySet>, BrokerError> {
        if let Some(set) = self.current().filter(|set| set.key(kid).is_some()) {
            return Ok(set);
        }
        if kid.len() > MAX_KID_LEN {
            return Err(CallerError::UnknownKey.into());
        }
        if self.cooling_down() {
            return self.known_or_unavailable(kid);
        }
        // A request never waits longer than `REFRESH_WAIT` for keys, however slow the authority is.
        let refreshed = tokio::time::timeout(REFRESH_WAIT, async {
            let _gate = self.refresh_gate.lock().await;
            // Another request may have refreshed while this one waited at the gate.
            if !self.cooling_down()
                && let Err(err) = self.refresh_now().await
            {
                tracing::warn!(error = %err, "signing key refresh on unknown kid failed");
            }
        })
        .await;
        if refreshed.is_err() {
            tracing::warn!("signing key refresh on unknown kid is taking too long");
            return match self.current() {
                Some(set) if set.key(kid).is_some() => Ok(set),
                _ => Err(BrokerError::SigningKeysUnavailable),
            };
        }
        self.known_or_unavailable(kid)
    }

    fn known_or_unavailable(&self, kid: &str) -> Result<Arc<KeySet>, BrokerError> {
        match self.current() {
            Some(set) if set.key(kid).is_some() => Ok(set),
            Some(_) if self.last_refresh_failed.load(Ordering::Acquire) => {
                Err(BrokerError::SigningKeysUnavailable)
            }
            Some(_) => Err(CallerError::UnknownKey.into()),
            None => Err(BrokerError::SigningKeysUnavailable),
        }
    }

    fn cooling_down(&self) -> bool {
        let last = self.last_attempt_ms.load(Ordering::Acquire);
        last != 0 && self.elapsed_ms().saturating_sub(last) < self.min_refresh.as_millis() as u64
    }

    fn elapsed_ms(&self) -> u64 {
        // +1 so that an attempt in the first millisecond is not mistaken for "never".
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Refreshes now (the periodic task and the first load), waiting for any refresh in flight.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        let _gate = self.refresh_gate.lock().await;
        self.refresh_now().await
    }

    async fn refresh_now(&self) -> Result<usize, JwksError> {
        self.last_attempt_ms
            .store(self.elapsed_ms(), Ordering::Release);
        let loaded = self.load().await;
        self.last_refresh_failed
            .store(loaded.is_err(), Ordering::Release);
        let set = loaded?;
        let count = set.len();
        self.current.store(Some(Arc::new(set)));
        tracing::info!(keys = count, "signing keys loaded");
        Ok(count)
    }

    async fn load(&self) -> Result<KeySet, JwksError> {
        let tenant = self.tenant.as_str();
        let v2_issuer = format!("{}{tenant}/v2.0", self.authority);
        let v2 = self
            .discover(&format!("{tenant}/v2.0/.well-known/openid-configuration"))
            .await?;
        if v2.issuer != v2_issuer {
            return Err(JwksError::Invalid("v2 discovery names another issuer"));
        }
        // The v1 document names the v1 issuer (sts.windows.net in the public cloud, another host in
        // sovereign clouds); without it, fall back to the public cloud's.
        let v1 = match self
            .discover(&format!("{tenant}/.well-known/openid-configuration"))
            .await
        {
            Ok(doc)
                if doc.issuer.starts_with("https://")
                    && doc.issuer.ends_with(&format!("/{tenant}/")) =>
            {
                Some(doc)
            }
            Ok(_) => return Err(JwksError::Invalid("v1 discovery names another issuer")),
            Err(err) => {
                tracing::warn!(error = %err, "v1 discovery failed; assuming the public cloud's v1 issuer");
                None
            }
        };
        let v1_issuer = v1
            .as_ref()
            .map(|doc| doc.issuer.clone())
            .unwrap_or_else(|| format!("https://sts.windows.net/{tenant}/"));
        let mut keys = self.fetch_keys(&v2.jwks_uri).await?;
        if let Some(v1) = v1.filter(|doc| doc.jwks_uri != v2.jwks_uri) {
            keys.extend(self.fetch_keys(&v1.jwks_uri).await?);
        }
        if keys.is_empty() {
            return Err(JwksError::Invalid("JWKS holds no usable RSA signing key"));
        }
        Ok(KeySet::new(keys, [v1_issuer, v2_issuer]))
    }

    async fn discover(&self, path: &str) -> Result<Discovery, JwksError> {
        let url = self
            .authority
            .join(path)
            .map_err(|_| JwksError::Invalid("discovery URL"))?;
        self.upstream
            .get_json(url)
            .await
            .map_err(|source| JwksError::Fetch {
                what: "OIDC discovery",
                source,
            })
    }

    async fn fetch_keys(&self, jwks_uri: &str) -> Result<HashMap<String, DecodingKey>, JwksError> {
        let url = Url::parse(jwks_uri).map_err(|_| JwksError::Invalid("jwks_uri is not a URL"))?;
        // Keys come only from the configured authority, over TLS.
        if url.origin() != self.authority.origin() {
            return Err(JwksError::Invalid("jwks_uri is not on the authority host"));
        }
        let jwks: Jwks = self
            .upstream
            .get_json(url)
            .await
            .map_err(|source| JwksError::Fetch {
                what: "JWKS",
                source,
            })?;
        Ok(usable_keys(jwks))
    }
}

/// The JWKS entries the broker will verify with, by `kid`.
pub(crate) fn usable_keys(jwks: Jwks) -> HashMap<String, DecodingKey> {
    jwks.keys
        .into_iter()
        .filter_map(JwkEntry::into_key)
        .collect()
}

#[derive(Deserialize)]
pub(crate) struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
pub(crate) struct Jwks {
    keys: Vec<JwkEntry>,
}

/// One JWKS entry, read loosely so that a key of another type is skipped rather than failing the set.
#[derive(Deserialize)]
struct JwkEntry {
    kty: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl JwkEntry {
    fn into_key(self) -> Option<(String, DecodingKey)> {
        if self.kty.as_deref() != Some("RSA") || self.usage.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let kid = self
            .kid
            .filter(|kid| !kid.is_empty() && kid.len() <= MAX_KID_LEN)?;
        let key = DecodingKey::from_rsa_components(self.n.as_deref()?, self.e.as_deref()?).ok()?;
        Some((kid, key))
    }
}
