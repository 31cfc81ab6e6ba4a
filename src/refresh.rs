//! Background refresh loops: the signing keys (periodic, sooner while never loaded), the Key Vault
//! values (allowlist, and the client secret when it lives there) and the client certificate. A failure
//! keeps the last good value.

use std::sync::Arc;
use std::time::Duration;

use crate::azure::key_vault::VaultReader;
use crate::broker::Broker;
use crate::broker::credential::{CertificateLoader, ClientCredential};
use crate::broker::metrics::Metrics;

/// Retry delay while a value has never loaded.
const FIRST_LOAD_RETRY: Duration = Duration::from_secs(2);

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
    pub reader: Arc<VaultReader>,
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
        broker
            .credential
            .apply(secret.map(ClientCredential::secret));
    }
}

pub fn spawn_vault_refresh(broker: Arc<Broker>, sources: VaultSources, every: Duration) {
    tokio::spawn(async move {
        loop {
            let loaded =
                broker.policy.allowlist.status().loaded && broker.credential.current().is_ok();
            tokio::time::sleep(if loaded {
                every
            } else {
                FIRST_LOAD_RETRY.min(every)
            })
            .await;
            load_vault(&broker, &sources).await;
        }
    });
}

/// Re-reads the client certificate from its loader on `every` (sooner while never loaded).
pub fn spawn_certificate_refresh(
    broker: Arc<Broker>,
    loader: Arc<dyn CertificateLoader>,
    every: Duration,
) {
    tokio::spawn(async move {
        loop {
            let loaded = broker.credential.current().is_ok();
            tokio::time::sleep(if loaded {
                every
            } else {
                FIRST_LOAD_RETRY.min(every)
            })
            .await;
            load_certificate(&broker, loader.as_ref()).await;
        }
    });
}

/// Loads the client certificate once and applies it.
pub async fn load_certificate(broker: &Broker, loader: &dyn CertificateLoader) {
    broker
        .credential
        .apply(loader.load().await.map(ClientCredential::certificate));
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
