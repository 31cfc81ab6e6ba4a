//! Counters for the health route: requests and decisions, cache hits and misses, upstream calls and
//! failures by kind. Relaxed atomics: they are statistics, not synchronisation.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub issued: AtomicU64,
    pub denied: AtomicU64,
    pub failed: AtomicU64,
    pub rate_limited: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub token_endpoint_calls: AtomicU64,
    pub token_endpoint_failures: AtomicU64,
    pub key_vault_reads: AtomicU64,
    pub key_vault_failures: AtomicU64,
    pub jwks_refreshes: AtomicU64,
    pub jwks_failures: AtomicU64,
    /// Connections accepted.
    pub connections_accepted: AtomicU64,
    /// Connections that failed at the HTTP level: malformed requests, resets, failed accepts.
    pub connection_errors: AtomicU64,
    /// Connections closed because a request header was not complete within the header-read timeout.
    pub connections_timed_out: AtomicU64,
    /// Idle connections closed to make room for a new one.
    pub connections_evicted: AtomicU64,
}

/// A point-in-time copy, for the health route.
#[derive(Serialize)]
pub struct MetricsSnapshot {
    requests: u64,
    issued: u64,
    denied: u64,
    failed: u64,
    rate_limited: u64,
    cache_hits: u64,
    cache_misses: u64,
    token_endpoint_calls: u64,
    token_endpoint_failures: u64,
    key_vault_reads: u64,
    key_vault_failures: u64,
    jwks_refreshes: u64,
    jwks_failures: u64,
    connections_accepted: u64,
    connection_errors: u64,
    connections_timed_out: u64,
    connections_evicted: u64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            requests: get(&self.requests),
            issued: get(&self.issued),
            denied: get(&self.denied),
            failed: get(&self.failed),
            rate_limited: get(&self.rate_limited),
            cache_hits: get(&self.cache_hits),
            cache_misses: get(&self.cache_misses),
            token_endpoint_calls: get(&self.token_endpoint_calls),
            token_endpoint_failures: get(&self.token_endpoint_failures),
            key_vault_reads: get(&self.key_vault_reads),
            key_vault_failures: get(&self.key_vault_failures),
            jwks_refreshes: get(&self.jwks_refreshes),
            jwks_failures: get(&self.jwks_failures),
            connections_accepted: get(&self.connections_accepted),
            connection_errors: get(&self.connection_errors),
            connections_timed_out: get(&self.connections_timed_out),
            connections_evicted: get(&self.connections_evicted),
        }
    }
}
