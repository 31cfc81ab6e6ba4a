//! Where records live: a small trait over stored bytes with an in-process and an Azure Blob
//! implementation. Every write that can race is conditional: `create` only where nothing exists,
//! `replace` only over the version read (its ETag), so two instances never lose an update.

use std::fmt;

pub mod blob;
pub mod memory;

use super::id::DelegationId;

/// An opaque version of a stored record (the blob's ETag). Only the store compares it.
#[derive(Clone, PartialEq, Eq)]
pub struct ETag(String);

impl ETag {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ETag({})", self.0)
    }
}

/// Why a store operation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("no such delegation")]
    NotFound,
    /// `create` found a record under the id.
    #[error("a delegation with this id already exists")]
    AlreadyExists,
    /// `replace` lost a race: the record changed since it was read. Re-read and decide again.
    #[error("the delegation changed since it was read")]
    Conflict,
    /// The store could not be reached, or a record could not be re-read within the revocation bound.
    #[error("the delegation store is unavailable")]
    Unavailable,
    /// The stored record does not parse; it is never served.
    #[error("the stored delegation record is malformed")]
    Corrupt,
}

/// Which store is configured, for health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Blob,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Blob => "blob",
        }
    }
}

/// A store of records as bytes, one per delegation id.
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync {
    fn kind(&self) -> StoreKind;

    /// Stores `bytes` under `id` unless something is already there ([`StoreError::AlreadyExists`]).
    async fn create(&self, id: &DelegationId, bytes: Vec<u8>) -> Result<ETag, StoreError>;

    /// The bytes under `id` and their version.
    async fn read(&self, id: &DelegationId) -> Result<(Vec<u8>, ETag), StoreError>;

    /// Replaces the bytes under `id` if they are still at version `etag` ([`StoreError::Conflict`]
    /// otherwise).
    async fn replace(
        &self,
        id: &DelegationId,
        bytes: Vec<u8>,
        etag: &ETag,
    ) -> Result<ETag, StoreError>;
}
