//! The handle the routes use: records in and out of the store (serialized and parsed here, never by
//! the layers above), the bounded-staleness cache, bearer authentication, sealing of refresh tokens,
//! counters and health. Cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::bearer::Bearer;
use super::cache::RecordCache;
use super::health::{Counted, Counters, DelegationHealth, Reachability};
use super::id::DelegationId;
use super::record::DelegationRecord;
use super::seal::{SealError, SealedSecret, SharedKeyring};
use super::store::{ETag, RecordStore, StoreError};
use super::usage::Usage;
use crate::secret::Secret;

/// How many times [`Delegations::update`] re-reads after losing a race before giving up.
const UPDATE_ATTEMPTS: usize = 8;
/// How many records [`Delegations::flush_usage`] writes at once.
const FLUSH_CONCURRENCY: usize = 16;

/// A record and the version it was read at; hand it back to [`Delegations::replace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub record: DelegationRecord,
    etag: ETag,
}

/// The bounds the handle works to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// `BROKER_DELEGATION_REVOCATION_SECONDS`: the oldest a record may be when served.
    pub revocation: Duration,
    /// `BROKER_DELEGATION_TOKEN_LIFETIME_SECONDS`: how long a bearer is accepted.
    pub token_lifetime: Duration,
}

/// Why a bearer was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerRefused {
    /// Unknown delegation, unknown or expired bearer, or a record that does not parse: all look alike
    /// to the caller (401 `invalid_token`).
    #[error("the delegation bearer is not accepted")]
    Invalid,
    /// The record could not be re-read within the revocation bound (503).
    #[error("the delegation store is unavailable")]
    Unavailable,
}

#[derive(Clone)]
pub struct Delegations {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn RecordStore>,
    keyring: SharedKeyring,
    cache: RecordCache,
    bounds: Bounds,
    counters: Counters,
    reachability: Reachability,
    usage: Usage,
}

impl Delegations {
    pub fn new(store: Arc<dyn RecordStore>, keyring: SharedKeyring, bounds: Bounds) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                keyring,
                cache: RecordCache::new(bounds.revocation),
                bounds,
                counters: Counters::default(),
                reachability: Reachability::default(),
                usage: Usage::default(),
            }),
        }
    }

    pub fn bounds(&self) -> Bounds {
        self.inner.bounds
    }

    /// The keyring that seals refresh tokens; the Key Vault refresh replaces its contents.
    pub fn keyring(&self) -> &SharedKeyring {
        &self.inner.keyring
    }

    /// Stores a new record; fails with [`StoreError::AlreadyExists`] if the id is taken.
    pub async fn create(&self, record: &DelegationRecord) -> Result<Versioned, StoreError> {
        let etag = self.observe(
            self.inner.store.create(&record.id, record.to_json()).await,
            false,
        )?;
        Ok(self.keep(record.clone(), etag))
    }

    /// The record as the store holds it now (for the delegator's routes and after a lost race).
    pub async fn read(&self, id: &DelegationId) -> Result<Versioned, StoreError> {
        let (bytes, etag) = self.observe(self.inner.store.read(id).await, true)?;
        match DelegationRecord::from_json(&bytes) {
            Ok(record) if &record.id == id => Ok(self.keep(record, etag)),
            _ => {
                tracing::warn!(delegation = %id, "stored delegation record is malformed; refused");
                self.inner.cache.forget(id);
                Err(StoreError::Corrupt)
            }
        }
    }

    /// The record, from the cache while it was read less than the revocation bound ago, else from
    /// the store. A record that cannot be re-read in time is not served ([`StoreError::Unavailable`]).
    pub async fn read_within_bound(&self, id: &DelegationId) -> Result<Arc<Versioned>, StoreError> {
        if let Some(cached) = self.inner.cache.fresh(id) {
            return Ok(cached);
        }
        self.read(id).await.map(Arc::new)
    }

    /// Replaces `current` with `record` if the store still holds `current`'s version; otherwise
    /// [`StoreError::Conflict`]: re-read and decide again.
    pub async fn replace(
        &self,
        current: &Versioned,
        record: &DelegationRecord,
    ) -> Result<Versioned, StoreError> {
        let written = self
            .inner
            .store
            .replace(&record.id, record.to_json(), &current.etag)
            .await;
        if written == Err(StoreError::Conflict) {
            self.inner.cache.forget(&record.id);
        }
        let etag = self.observe(written, false)?;
        Ok(self.keep(record.clone(), etag))
    }

    /// Reads the record, applies `edit` and writes it back, re-reading and re-applying after each lost
    /// race. `edit` returns `Ok(false)` to leave the record as it is (nothing is written).
    pub async fn update<E>(
        &self,
        id: &DelegationId,
        mut edit: impl FnMut(&mut DelegationRecord) -> Result<bool, E>,
    ) -> Result<Result<Versioned, E>, StoreError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.read(id).await?;
            let mut record = current.record.clone();
            match edit(&mut record) {
                Err(refusal) => return Ok(Err(refusal)),
                Ok(false) => return Ok(Ok(current)),
                Ok(true) => {}
            }
            match self.replace(&current, &record).await {
                Err(StoreError::Conflict) => continue,
                written => return written.map(Ok),
            }
        }
        Err(StoreError::Conflict)
    }

    /// The record a bearer names, if the bearer is one of its bearers and unexpired at `now` (unix
    /// seconds). The record's state is the caller's to check. A bearer the cached copy does not know
    /// may have been issued on another instance since: the record is then re-read once.
    pub async fn authenticate(
        &self,
        bearer: &Bearer,
        now: u64,
    ) -> Result<Arc<Versioned>, BearerRefused> {
        let refused = |err: StoreError| match err {
            StoreError::Unavailable => BearerRefused::Unavailable,
            _ => BearerRefused::Invalid,
        };
        let cached = self.inner.cache.fresh(bearer.id());
        if let Some(cached) = &cached
            && cached.record.accepts_bearer(bearer, now)
        {
            return Ok(cached.clone());
        }
        let current = self.read(bearer.id()).await.map_err(refused)?;
        if current.record.accepts_bearer(bearer, now) {
            Ok(Arc::new(current))
        } else {
            Err(BearerRefused::Invalid)
        }
    }

    /// Seals a refresh token for delegation `id` under the newest key.
    pub fn seal(
        &self,
        id: &DelegationId,
        refresh_token: &Secret,
    ) -> Result<SealedSecret, SealError> {
        self.inner.keyring.current().seal(id, refresh_token)
    }

    /// Opens the record's refresh token, if it holds one.
    pub fn open_refresh_token(
        &self,
        record: &DelegationRecord,
    ) -> Result<Option<Secret>, SealError> {
        record
            .refresh_token
            .as_ref()
            .map(|sealed| self.inner.keyring.current().open(&record.id, sealed))
            .transpose()
    }

    /// Counts a token answered for `id` at `now` (unix seconds), from the token cache or not; the
    /// count reaches the record at the next [`Delegations::flush_usage`].
    pub fn note_redemption(&self, id: &DelegationId, now: u64) {
        self.inner.usage.note(id, now);
    }

    /// `record` with the redemptions this instance has counted and not yet written.
    pub fn with_pending_usage(&self, mut record: DelegationRecord) -> DelegationRecord {
        if let Some(pending) = self.inner.usage.of(&record.id) {
            pending.apply_to(&mut record);
        }
        record
    }

    /// Adds every count waiting to its record. Counts the store could not take now are kept for the
    /// next flush; those of a record that is gone or malformed are dropped.
    pub async fn flush_usage(&self) {
        let waiting = self.inner.usage.take();
        futures_util::stream::iter(waiting)
            .for_each_concurrent(FLUSH_CONCURRENCY, |(id, counts)| async move {
                let written = self
                    .update(&id, |record| {
                        counts.apply_to(record);
                        Ok::<_, std::convert::Infallible>(true)
                    })
                    .await;
                if let Err(StoreError::Unavailable | StoreError::Conflict) = written {
                    self.inner.usage.add(&id, counts);
                }
            })
            .await;
    }

    /// Counts a decision for health.
    pub fn count(&self, what: Counted) {
        self.inner.counters.add(what);
    }

    pub fn health(&self) -> DelegationHealth {
        DelegationHealth::new(
            self.inner.store.kind().as_str(),
            &self.inner.reachability,
            self.inner.keyring.current().versions(),
            self.inner.bounds.revocation.as_secs(),
            &self.inner.counters,
        )
    }

    /// Notes whether the store answered (a refusal such as NotFound or Conflict is an answer).
    fn observe<T>(&self, result: Result<T, StoreError>, was_read: bool) -> Result<T, StoreError> {
        match &result {
            Err(StoreError::Unavailable) => self.inner.reachability.failed(),
            Ok(_) => self.inner.reachability.succeeded(was_read),
            Err(_) => self.inner.reachability.succeeded(false),
        }
        result
    }

    fn keep(&self, record: DelegationRecord, etag: ETag) -> Versioned {
        let versioned = Versioned { record, etag };
        self.inner.cache.put(Arc::new(versioned.clone()));
        versioned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delegation::record::DelegationState;
    use crate::delegation::record::tests::user_record;
    use crate::delegation::seal::{KEY_BYTES, Keyring};
    use crate::delegation::store::memory::MemoryStore;

    const BOUND: Duration = Duration::from_secs(5);

    /// A store that answers like the memory store until it is switched off.
    #[derive(Default)]
    struct Switchable {
        inner: MemoryStore,
        down: std::sync::atomic::AtomicBool,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl Switchable {
        fn check(&self) -> Result<(), StoreError> {
            if self.down.load(std::sync::atomic::Ordering::Relaxed) {
                Err(StoreError::Unavailable)
            } else {
                Ok(())
            }
        }
    }

    #[async_trait::async_trait]
    impl RecordStore for Switchable {
        fn kind(&self) -> crate::delegation::store::StoreKind {
            self.inner.kind()
        }
        async fn create(&self, id: &DelegationId, bytes: Vec<u8>) -> Result<ETag, StoreError> {
            self.check()?;
            self.inner.create(id, bytes).await
        }
        async fn read(&self, id: &DelegationId) -> Result<(Vec<u8>, ETag), StoreError> {
            self.check()?;
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.read(id).await
        }
        async fn replace(
            &self,
            id: &DelegationId,
            bytes: Vec<u8>,
            etag: &ETag,
        ) -> Result<ETag, StoreError> {
            self.check()?;
            self.inner.replace(id, bytes, etag).await
        }
    }

    fn delegations(store: Arc<Switchable>) -> Delegations {
        let keyring = Keyring::from_versions(vec![("v1".into(), vec![3; KEY_BYTES])]).unwrap();
        Delegations::new(
            store,
            SharedKeyring::new(keyring),
            Bounds {
                revocation: BOUND,
                token_lifetime: Duration::from_secs(900),
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_is_served_from_the_cache_within_the_bound_and_never_after_it() {
        let store = Arc::new(Switchable::default());
        let delegations = delegations(store.clone());
        let (record, bearer) = user_record();
        delegations.create(&record).await.unwrap();
        store.down.store(true, std::sync::atomic::Ordering::Relaxed);

        tokio::time::advance(BOUND - Duration::from_millis(1)).await;
        assert!(delegations.authenticate(&bearer, 1_000).await.is_ok());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            delegations.authenticate(&bearer, 1_000).await.err(),
            Some(BearerRefused::Unavailable)
        );
        assert!(!delegations.health().reachable);
    }

    #[tokio::test(start_paused = true)]
    async fn a_revocation_written_elsewhere_holds_once_the_bound_has_passed() {
        let store = Arc::new(Switchable::default());
        let (here, elsewhere) = (delegations(store.clone()), delegations(store.clone()));
        let (record, bearer) = user_record();
        here.create(&record).await.unwrap();
        elsewhere
            .update(&record.id, |record| {
                record.state = DelegationState::Revoked;
                Ok::<_, ()>(true)
            })
            .await
            .unwrap()
            .unwrap();
        tokio::time::advance(BOUND).await;
        let seen = here.authenticate(&bearer, 1_000).await.unwrap();
        assert_eq!(seen.record.state, DelegationState::Revoked);
    }

    #[tokio::test]
    async fn a_replace_over_a_stale_version_is_a_conflict_and_update_retries_it() {
        let store = Arc::new(Switchable::default());
        let delegations = delegations(store);
        let (record, _) = user_record();
        let first = delegations.create(&record).await.unwrap();
        let mut changed = record.clone();
        changed.redemptions = 1;
        delegations.replace(&first, &changed).await.unwrap();
        assert_eq!(
            delegations.replace(&first, &changed).await.err(),
            Some(StoreError::Conflict)
        );
        let mut calls = 0;
        let updated = delegations
            .update(&record.id, |record| {
                calls += 1;
                record.redemptions += 1;
                Ok::<_, ()>(true)
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!((updated.record.redemptions, calls), (2, 1));
    }

    #[tokio::test]
    async fn redemptions_show_at_once_here_reach_the_store_on_flush_and_wait_out_an_outage() {
        let store = Arc::new(Switchable::default());
        let (here, elsewhere) = (delegations(store.clone()), delegations(store.clone()));
        let (record, _) = user_record();
        here.create(&record).await.unwrap();
        here.note_redemption(&record.id, 2_000);
        here.note_redemption(&record.id, 2_001);

        let seen_here = here.with_pending_usage(elsewhere.read(&record.id).await.unwrap().record);
        store.down.store(true, std::sync::atomic::Ordering::Relaxed);
        here.flush_usage().await;
        store
            .down
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let after_outage = elsewhere.read(&record.id).await.unwrap().record;
        here.flush_usage().await;
        let flushed = elsewhere.read(&record.id).await.unwrap().record;
        here.flush_usage().await;
        let flushed_again = elsewhere.read(&record.id).await.unwrap().record;

        assert_eq!(
            (seen_here.redemptions, seen_here.last_used),
            (2, Some(2_001))
        );
        assert_eq!(after_outage.redemptions, 0);
        assert_eq!((flushed.redemptions, flushed.last_used), (2, Some(2_001)));
        assert_eq!(flushed_again.redemptions, 2, "counts are written once");
    }

    #[tokio::test]
    async fn a_changed_or_foreign_bearer_is_refused_and_a_rotated_one_is_found_by_re_reading() {
        let store = Arc::new(Switchable::default());
        let (here, elsewhere) = (delegations(store.clone()), delegations(store.clone()));
        let (record, _) = user_record();
        here.create(&record).await.unwrap();
        let rotated = Bearer::generate(&record.id).unwrap();
        elsewhere
            .update(&record.id, |record| {
                record.add_bearer(&rotated, 1_900, 1_000);
                Ok::<_, ()>(true)
            })
            .await
            .unwrap()
            .unwrap();
        assert!(here.authenticate(&rotated, 1_000).await.is_ok());
        let stranger = Bearer::generate(&DelegationId::generate().unwrap()).unwrap();
        assert_eq!(
            here.authenticate(&stranger, 1_000).await.err(),
            Some(BearerRefused::Invalid)
        );
    }

    #[tokio::test]
    async fn a_malformed_stored_record_is_refused() {
        let store = Arc::new(Switchable::default());
        let delegations = delegations(store.clone());
        let (record, bearer) = user_record();
        store
            .inner
            .create(&record.id, b"{\"format\":1}".to_vec())
            .await
            .unwrap();
        assert_eq!(
            delegations.read(&record.id).await.err(),
            Some(StoreError::Corrupt)
        );
        assert_eq!(
            delegations.authenticate(&bearer, 1_000).await.err(),
            Some(BearerRefused::Invalid)
        );
    }

    #[tokio::test]
    async fn the_refresh_token_opens_and_health_shows_versions_not_keys() {
        let store = Arc::new(Switchable::default());
        let delegations = delegations(store);
        let (mut record, _) = user_record();
        record.refresh_token = Some(delegations.seal(&record.id, &Secret::new("rt-1")).unwrap());
        let opened = delegations.open_refresh_token(&record).unwrap().unwrap();
        assert_eq!(opened.expose(), "rt-1");
        delegations.count(Counted::Created);
        let health = delegations.health();
        assert_eq!(
            (health.key_versions.clone(), health.created),
            (vec!["v1".to_owned()], 1)
        );
        assert_eq!(health.store, "memory");
    }
}
