//! Loads the sealing keyring from Key Vault: every enabled version of the secret
//! `BROKER_DELEGATION_KEY_NAME` (32 random bytes, base64), oldest first, the newest sealing. Re-read on
//! the broker's refresh schedule; a failed or malformed read keeps the last good keyring, so a key
//! rotation is picked up without a restart and a bad version never replaces a good keyring.

use std::sync::Arc;
use std::time::Duration;

use super::seal::{Keyring, SharedKeyring};
use crate::azure::key_vault::VaultReader;

/// Retry delay while the keyring has never loaded.
const FIRST_LOAD_RETRY: Duration = Duration::from_secs(2);

/// The Key Vault secret that holds the sealing key, and the keyring it feeds.
#[derive(Clone)]
pub struct KeyringSource {
    pub reader: Arc<VaultReader>,
    pub name: String,
    pub keyring: SharedKeyring,
}

impl KeyringSource {
    /// Reads every enabled version once, oldest first; true if the keyring was replaced.
    pub async fn load(&self) -> bool {
        let Ok(mut listed) = self.reader.versions(&self.name).await else {
            return false;
        };
        listed.retain(|version| version.enabled);
        listed.sort_by_key(|version| version.created);
        if listed.is_empty() {
            tracing::warn!(secret = %self.name, "delegation sealing key has no enabled version");
            return false;
        }
        let mut versions = Vec::with_capacity(listed.len());
        for version in listed {
            let Ok(value) = self.reader.read_version(&self.name, &version.id).await else {
                return false;
            };
            versions.push((version.id, value));
        }
        let texts = versions
            .iter()
            .map(|(version, value)| (version.clone(), value.expose()))
            .collect();
        match Keyring::from_base64_versions(texts) {
            Ok(keyring) => {
                self.keyring.replace(keyring);
                true
            }
            Err(_) => {
                tracing::warn!(
                    secret = %self.name,
                    "a version of the delegation sealing key is not 32 bytes of base64; keeping the last good keyring"
                );
                false
            }
        }
    }

    /// Whether any key has loaded.
    pub fn is_loaded(&self) -> bool {
        self.keyring.current().newest_version().is_some()
    }

    /// Loads until a keyring has loaded; start-up bounds how long it waits.
    pub async fn load_until_loaded(&self) {
        while !self.load().await {
            tokio::time::sleep(FIRST_LOAD_RETRY).await;
        }
    }

    /// Re-reads on `every` (sooner while never loaded).
    pub fn spawn_refresh(self, every: Duration) {
        tokio::spawn(async move {
            loop {
                let wait = if self.is_loaded() {
                    every
                } else {
                    FIRST_LOAD_RETRY.min(every)
                };
                tokio::time::sleep(wait).await;
                self.load().await;
            }
        });
    }
}
