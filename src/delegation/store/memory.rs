//! The in-process store (`BROKER_DELEGATION_STORE=memory`): one process only, lost on restart. It keeps
//! the same rules as the Blob store (create-if-absent, replace-if-unchanged) so the layers above behave
//! alike on both.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{ETag, RecordStore, StoreError, StoreKind};
use crate::delegation::id::DelegationId;

#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<DelegationId, (Vec<u8>, ETag)>>,
    versions: AtomicU64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn next_etag(&self) -> ETag {
        ETag::new(format!(
            "\"{}\"",
            self.versions.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<DelegationId, (Vec<u8>, ETag)>> {
        // A panic while holding the lock leaves the map whole (every change is one insert).
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl RecordStore for MemoryStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Memory
    }

    async fn create(&self, id: &DelegationId, bytes: Vec<u8>) -> Result<ETag, StoreError> {
        let etag = self.next_etag();
        let mut records = self.records();
        if records.contains_key(id) {
            return Err(StoreError::AlreadyExists);
        }
        records.insert(id.clone(), (bytes, etag.clone()));
        Ok(etag)
    }

    async fn read(&self, id: &DelegationId) -> Result<(Vec<u8>, ETag), StoreError> {
        self.records().get(id).cloned().ok_or(StoreError::NotFound)
    }

    async fn replace(
        &self,
        id: &DelegationId,
        bytes: Vec<u8>,
        etag: &ETag,
    ) -> Result<ETag, StoreError> {
        let next = self.next_etag();
        let mut records = self.records();
        let current = records.get_mut(id).ok_or(StoreError::NotFound)?;
        if &current.1 != etag {
            return Err(StoreError::Conflict);
        }
        *current = (bytes, next.clone());
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_refuses_an_existing_id_and_replace_refuses_a_stale_version() {
        let store = MemoryStore::new();
        let id = DelegationId::generate().unwrap();
        let first = store.create(&id, b"one".to_vec()).await.unwrap();
        assert_eq!(
            store.create(&id, b"two".to_vec()).await,
            Err(StoreError::AlreadyExists)
        );
        let second = store.replace(&id, b"two".to_vec(), &first).await.unwrap();
        assert_eq!(
            store.replace(&id, b"three".to_vec(), &first).await,
            Err(StoreError::Conflict)
        );
        assert_eq!(store.read(&id).await.unwrap(), (b"two".to_vec(), second));
        let unknown = DelegationId::generate().unwrap();
        assert_eq!(store.read(&unknown).await, Err(StoreError::NotFound));
    }
}
