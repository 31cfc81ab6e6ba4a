//! Background refresh loops: the signing keys (periodic, sooner while never loaded) and the Key Vault
//! values (allowlist, and the client secret when it lives there), and the retried first loads that
//! start-up waits for. A failure keeps the last good value.

use std::sync::Arc;
use std::time::Duration;

use crate::azure::key_vault::VaultReader;
use crate::broker::Broker;
use crate::broker::metrics::Metrics;

/// Retry delay while a value has never loaded.
const FIRST_LOAD_RETRY: Duration = Duration::from_secs(2);
/// Retry delay within start-up's bounded wait for the first loads.
const START_UP_RETRY: Duration = Duration::from_millis(500);

/// Loads the signing keys once, counting the attempt.
pub async fn load_keys(broker: &Broker) -> bool {
    Metrics::add(&broker.metrics.jwks_refreshes);
    match broker.jwks.refresh().await {
        Ok(_) => true,
        Err(err) => {
            Metrics::add(&broker.metrics.jwks_failures);
            tracing::warn!(error = %err, "signing key refresh failed; keeping the last good key set");
            false
        }
    }
}

/// Loads the signing keys, retrying until they load; start-up bounds how long it waits.
pub async fn load_keys_until_loaded(broker: &Broker) {
    while !load_keys(broker).await {
        tokio::time::sleep(START_UP_RETRY).await;
    }
}

pub fn spawn_key_refresh(broker: Arc<Broker>, every: Duration) {
    tokio::spawn(async move {
        loop {
            let loaded = broker.jwks.current().is_some();
            tokio::time::sleep(if loaded {
                every
            } else {
                FIRST_LOAD_RETRY.min(every)
            })
            .await;
            load_keys(&broker).await;
        }
    });
}

/// What the vault loop reads.
pub struct VaultSources {
    pub reader: VaultReader,
    pub allowlist_secret: String,
    pub client_secret: Option<String>,
}

/// Reads every Key Vault value once and applies it.
pub async fn load_vault(broker: &Broker, sources: &VaultSources) {
    Metrics::add(&broker.metrics.key_vault_reads);
    let allowlist = sources
        .reader
        .read(&sources.allowlist_secret)
        .await
        .map(|secret| secret.expose().to_owned());
    if allowlist.is_err() {
        Metrics::add(&broker.metrics.key_vault_failures);
    }
    broker.policy.allowlist.apply(allowlist);
    if let Some(name) = &sources.client_secret {
        Metrics::add(&broker.metrics.key_vault_reads);
        let secret = sources.reader.read(name).await;
        if secret.is_err() {
            Metrics::add(&broker.metrics.key_vault_failures);
        }
        broker.credential.apply(secret);
    }
}

/// Whether every Key Vault value has loaded at least once.
fn vault_loaded(broker: &Broker) -> bool {
    broker.policy.allowlist.status().loaded && broker.credential.current().is_ok()
}

/// Reads the Key Vault values, retrying until all have loaded; start-up bounds how long it waits.
pub async fn load_vault_until_loaded(broker: &Broker, sources: &VaultSources) {
    loop {
        load_vault(broker, sources).await;
        if vault_loaded(broker) {
            return;
        }
        tokio::time::sleep(START_UP_RETRY).await;
    }
}

pub fn spawn_vault_refresh(broker: Arc<Broker>, sources: VaultSources, every: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(if vault_loaded(&broker) {
                every
            } else {
                FIRST_LOAD_RETRY.min(every)
            })
            .await;
            load_vault(&broker, &sources).await;
        }
    });
}

/// Periodic upkeep (see `Broker::housekeeping`).
pub fn spawn_housekeeping(broker: Arc<Broker>, every: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            broker.housekeeping();
        }
    });
}
