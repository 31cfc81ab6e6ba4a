//! Delegations: revocable, audience-narrowed bearers a trusted backend hands to a sandbox (issue 18).
//! This module owns their state and knows nothing of HTTP:
//!
//! - `id`, `bearer`: the delegation id and the bearer (prefix, 256 random bits, checksum; stored only
//!   as a hash).
//! - `seal`: AES-256-GCM-SIV sealing of the subject's refresh token under a versioned keyring;
//!   `keyring_source` loads every version of the key from Key Vault.
//! - `record`: the record per delegation and its strict stored form.
//! - `store`: where records live (in process, or Azure Blob with compare-and-swap on the ETag).
//! - `delegations`: the handle the routes use: bounded-staleness cache, bearer authentication,
//!   sealing, counters; `usage`: each instance's redemption counts, added to the records on a schedule;
//!   `health`: what health shows of it.
//! - `setup`: the handle built from the settings at start-up.

pub mod bearer;
mod cache;
pub mod delegations;
pub mod health;
pub mod id;
pub mod keyring_source;
pub mod record;
pub mod seal;
pub mod setup;
pub mod store;
mod usage;

pub use bearer::{Bearer, BearerHash, Malformed, looks_like_delegation_bearer, parse};
pub use delegations::{BearerRefused, Bounds, Delegations, Versioned};
pub use health::{Counted, DelegationHealth};
pub use id::{DelegationId, RandomUnavailable};
pub use record::{
    CorruptRecord, DelegationRecord, DelegationState, Membership, Subject, SubjectKind,
};
pub use seal::{Keyring, SealError, SealedSecret, SharedKeyring};
pub use store::{RecordStore, StoreError, StoreKind};
