//! A cached value with its own time to live, and the moka expiry policy that honours it.

use std::time::{Duration, Instant};

use moka::Expiry;

#[derive(Clone)]
pub struct Timed<T> {
    pub value: T,
    ttl: Duration,
}

impl<T> Timed<T> {
    pub fn new(value: T, ttl: Duration) -> Self {
        Self { value, ttl }
    }
}

/// Expires each entry `ttl` after it was inserted.
pub struct TimedExpiry;

impl<K, T> Expiry<K, Timed<T>> for TimedExpiry {
    fn expire_after_create(
        &self,
        _key: &K,
        value: &Timed<T>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}
