//! Request counters for `GET /_emulator/stats`: every request that reached a route counts, faulted or not;
//! and the secrets Key Vault served, per reading identity (object id).

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Copy, Debug)]
pub enum Counter {
    ClientCredentials,
    Obo,
    RefreshGrant,
    /// Token requests with a missing or unsupported grant type.
    OtherGrant,
    TokenErrors,
    Jwks,
    Discovery,
    KeyVault,
    /// Key Vault 401s to a request that presented a bearer token (not the SDK's first, bare request).
    KeyVaultTokenRefused,
    Identity,
    /// Token requests the broker authenticated with a certificate assertion, and with a federated one.
    CertificateAssertion,
    FederatedAssertion,
}

#[derive(Default)]
pub struct Stats {
    counts: [AtomicU64; 12],
    key_vault_reads_by: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    pub fn bump(&self, counter: Counter) {
        self.counts[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A secret served to the identity `oid`.
    pub fn key_vault_read_by(&self, oid: &str) {
        let mut reads = self
            .key_vault_reads_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *reads.entry(oid.to_owned()).or_default() += 1;
    }

    fn get(&self, counter: Counter) -> u64 {
        self.counts[counter as usize].load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Value {
        let reads_by = self
            .key_vault_reads_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        json!({
            "token_requests": {
                "client_credentials": self.get(Counter::ClientCredentials),
                "obo": self.get(Counter::Obo),
                "refresh_token": self.get(Counter::RefreshGrant),
                "other": self.get(Counter::OtherGrant),
            },
            "token_errors": self.get(Counter::TokenErrors),
            "jwks_requests": self.get(Counter::Jwks),
            "discovery_requests": self.get(Counter::Discovery),
            "key_vault_requests": self.get(Counter::KeyVault),
            "key_vault_token_refusals": self.get(Counter::KeyVaultTokenRefused),
            "key_vault_reads_by": reads_by,
            "identity_requests": self.get(Counter::Identity),
            "client_assertions": {
                "certificate": self.get(Counter::CertificateAssertion),
                "federated": self.get(Counter::FederatedAssertion),
            },
        })
    }

    pub fn reset(&self) {
        for count in &self.counts {
            count.store(0, Ordering::Relaxed);
        }
        self.key_vault_reads_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}
