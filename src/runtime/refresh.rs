//! Background refresh loops: the signing keys (periodic, sooner while never loaded), the Key Vault values
//! (the legacy allowlist or the policy document, and the client secret when it lives there), the
//! policy file and the client certificate, and the retried first loads that start-up waits for. A
//! failure keeps the last good value.

use std::sync::Arc;
use std::time::Duration;

use crate::azure::key_vault::VaultReader;
use crate::broker::Broker;
use crate::broker::credential::ClientCredential;
use crate::broker::error::LoadFailure;
use crate::broker::freshness::ReadProblem;
use crate::broker::metrics::Metrics;
use crate::runtime::policy_loader::{FilePolicy, VaultPolicy};

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
    pub reader: Arc<VaultReader>,
    /// The legacy allowlist secret (None when a policy document replaces it).
    pub allowlist_secret: Option<String>,
    /// The policy document's secret, read through its version history.
    pub policy: Option<VaultPolicy>,
    pub client_secret: Option<String>,
}

/// Reads every Key Vault value once and applies it.
pub async fn load_vault(broker: &Broker, sources: &VaultSources) {
    if let (Some(name), Some(allowlist)) = (&sources.allowlist_secret, &broker.allowlist) {
        let read = read_secret(broker, sources, name).await;
        allowlist.apply(read.map(|text| text.expose().to_owned()));
    }
    if let Some(policy) = &sources.policy {
        policy
            .load(&sources.reader, &broker.metrics, &broker.policy)
            .await;
    }
    if let Some(name) = &sources.client_secret {
        Metrics::add(&broker.metrics.key_vault_reads);
        let secret = sources.reader.read(name).await;
        if secret.is_err() {
            Metrics::add(&broker.metrics.key_vault_failures);
        }
        broker.credential.apply(
            secret
                .map(ClientCredential::secret)
                .map_err(ReadProblem::from),
        );
    }
}

async fn read_secret(
    broker: &Broker,
    sources: &VaultSources,
    name: &str,
) -> Result<crate::secret::Secret, LoadFailure> {
    Metrics::add(&broker.metrics.key_vault_reads);
    let read = sources.reader.read(name).await;
    if read.is_err() {
        Metrics::add(&broker.metrics.key_vault_failures);
    }
    read
}

/// Whether every Key Vault value has loaded at least once.
fn vault_loaded(broker: &Broker, sources: &VaultSources) -> bool {
    broker.allowlist.as_ref().is_none_or(|a| a.status().loaded)
        && broker.policy.is_loaded()
        && (sources.client_secret.is_none() || broker.credential.current().is_ok())
}

/// Reads the Key Vault values, retrying until all have loaded; start-up bounds how long it waits.
pub async fn load_vault_until_loaded(broker: &Broker, sources: &VaultSources) {
    loop {
        load_vault(broker, sources).await;
        if vault_loaded(broker, sources) {
            return;
        }
        tokio::time::sleep(START_UP_RETRY).await;
    }
}

pub fn spawn_vault_refresh(broker: Arc<Broker>, sources: VaultSources, every: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(if vault_loaded(&broker, &sources) {
                every
            } else {
                FIRST_LOAD_RETRY.min(every)
            })
            .await;
            load_vault(&broker, &sources).await;
        }
    });
}

/// Reads the policy file, retrying until it loads; start-up bounds how long it waits.
pub async fn load_policy_file_until_loaded(broker: &Broker, file: &FilePolicy) {
    loop {
        file.load(&broker.policy).await;
        if broker.policy.is_loaded() {
            return;
        }
        tokio::time::sleep(START_UP_RETRY).await;
    }
}

pub fn spawn_policy_file_refresh(broker: Arc<Broker>, file: Arc<FilePolicy>, every: Duration) {
    tokio::spawn(async move {
        loop {
            let loaded = broker.policy.is_loaded();
            tokio::time::sleep(if loaded {
                every
            } else {
                FIRST_LOAD_RETRY.min(every)
            })
            .await;
            file.load(&broker.policy).await;
        }
    });
}

/// Re-reads the client certificate on `every` (sooner while never loaded).
pub fn spawn_certificate_refresh(broker: Arc<Broker>, every: Duration) {
    tokio::spawn(async move {
        loop {
            let loaded = broker.credential.current().is_ok();
            tokio::time::sleep(if loaded {
                every
            } else {
                FIRST_LOAD_RETRY.min(every)
            })
            .await;
            load_certificate(&broker).await;
        }
    });
}

/// Loads the client certificate until it is loaded (start-up bounds the wait).
pub async fn load_certificate_until_loaded(broker: &Broker) {
    loop {
        load_certificate(broker).await;
        if broker.credential.current().is_ok() {
            return;
        }
        tokio::time::sleep(START_UP_RETRY).await;
    }
}

/// Loads the client certificate once and applies it (joining a reload already under way), within
/// the credential source's read timeout.
pub async fn load_certificate(broker: &Broker) {
    if let Some(reload) = broker.credential.reload() {
        reload.await;
    }
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
