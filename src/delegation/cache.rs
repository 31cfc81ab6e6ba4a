//! The per-instance read cache with bounded staleness: a record is served from here only while it
//! was read from (or written to) the store less than the revocation bound ago. Past the bound it must
//! be re-read, and if it cannot be, it is not served, so a revocation on another instance holds here
//! within the bound.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Versioned;
use super::id::DelegationId;

/// Most records kept; the least used make room.
const CAPACITY: usize = 10_000;

pub(crate) struct RecordCache {
    records: quick_cache::sync::Cache<DelegationId, (Arc<Versioned>, Instant)>,
    bound: Duration,
}

impl RecordCache {
    pub(crate) fn new(bound: Duration) -> Self {
        Self {
            records: quick_cache::sync::Cache::new(CAPACITY),
            bound,
        }
    }

    /// The record, if it was read or written less than the bound ago.
    pub(crate) fn fresh(&self, id: &DelegationId) -> Option<Arc<Versioned>> {
        let (record, at) = self.records.get(id)?;
        (at.elapsed() < self.bound).then_some(record)
    }

    /// Keeps what the store just returned or accepted, fresh from now.
    pub(crate) fn put(&self, versioned: Arc<Versioned>) {
        self.records
            .insert(versioned.record.id.clone(), (versioned, Instant::now()));
    }

    pub(crate) fn forget(&self, id: &DelegationId) {
        self.records.remove(id);
    }
}
