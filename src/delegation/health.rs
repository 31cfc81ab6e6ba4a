//! What health shows of delegations: the store's kind and reachability, how long ago a read last
//! succeeded, the sealing key versions loaded (never a key), and decision counters.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;
use tokio::time::Instant;

/// Decisions counted since start.
#[derive(Debug, Default)]
pub struct Counters {
    created: AtomicU64,
    redeemed: AtomicU64,
    revoked: AtomicU64,
    refused: AtomicU64,
}

/// One counted decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Created,
    Redeemed,
    Revoked,
    /// Any refusal of a delegation request or a redemption.
    Refused,
}

impl Counters {
    pub fn add(&self, what: Counted) {
        let counter = match what {
            Counted::Created => &self.created,
            Counted::Redeemed => &self.redeemed,
            Counted::Revoked => &self.revoked,
            Counted::Refused => &self.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reachability as the last store operations saw it.
#[derive(Debug, Default)]
pub(crate) struct Reachability {
    reachable: AtomicBool,
    last_read: Mutex<Option<Instant>>,
}

impl Reachability {
    pub(crate) fn succeeded(&self, was_read: bool) {
        self.reachable.store(true, Ordering::Relaxed);
        if was_read {
            *self
                .last_read
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        }
    }

    pub(crate) fn failed(&self) {
        self.reachable.store(false, Ordering::Relaxed);
    }

    fn last_read_age_seconds(&self) -> Option<u64> {
        let last = *self
            .last_read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.map(|at| at.elapsed().as_secs())
    }
}

/// A point-in-time view for the health answer. Serializes with snake_case names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DelegationHealth {
    /// `memory` or `blob`.
    pub store: &'static str,
    /// Whether the last store operation reached the store (false until one has).
    pub reachable: bool,
    /// Seconds since a record was last read successfully; `None` before the first read.
    pub last_read_age_seconds: Option<u64>,
    /// The sealing key versions held (never the keys).
    pub key_versions: Vec<String>,
    pub revocation_seconds: u64,
    pub created: u64,
    pub redeemed: u64,
    pub revoked: u64,
    pub refused: u64,
}

impl DelegationHealth {
    pub(crate) fn new(
        store: &'static str,
        reachability: &Reachability,
        key_versions: Vec<String>,
        revocation_seconds: u64,
        counters: &Counters,
    ) -> Self {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Self {
            store,
            reachable: reachability.reachable.load(Ordering::Relaxed),
            last_read_age_seconds: reachability.last_read_age_seconds(),
            key_versions,
            revocation_seconds,
            created: load(&counters.created),
            redeemed: load(&counters.redeemed),
            revoked: load(&counters.revoked),
            refused: load(&counters.refused),
        }
    }
}
