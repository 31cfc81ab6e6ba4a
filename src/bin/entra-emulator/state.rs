//! Shared state: the run's configuration, the key ring, faults, counters, the tenant's directory, the
//! refresh tokens issued and the vault. Locks are std locks, taken briefly and never held across `.await`; a poisoned lock is recovered.

use crate::app_credentials::AppCredentials;
use crate::directory::Directory;
use crate::faults::Faults;
use crate::keys::KeyRing;
use crate::refresh_tokens::RefreshTokens;
use crate::stats::Stats;
use crate::vault::Vault;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Fixed for the life of the process; everything the ready line prints.
pub struct Config {
    /// `https://127.0.0.1:<https port>`, without a trailing slash.
    pub authority: String,
    /// `https://127.0.0.1:<https port>/`.
    pub vault_url: String,
    pub identity_endpoint: String,
    pub identity_header: String,
    pub control_url: String,
    pub ca_file: String,
    pub broker_client_secret: String,
}

pub struct State {
    pub config: Config,
    keys: RwLock<KeyRing>,
    faults: Mutex<Faults>,
    directory: Mutex<Directory>,
    vault: Mutex<Vault>,
    app_credentials: Mutex<AppCredentials>,
    refresh_tokens: Mutex<RefreshTokens>,
    /// The last client assertions presented, so tests can check that none reached a log.
    assertions: Mutex<Vec<String>>,
    pub stats: Stats,
}

/// How many presented client assertions are kept.
const ASSERTIONS_KEPT: usize = 64;

impl State {
    pub fn new(config: Config, keys: KeyRing) -> Self {
        let vault = Vault::new(&config.broker_client_secret);
        Self {
            config,
            keys: RwLock::new(keys),
            faults: Mutex::new(Faults::default()),
            directory: Mutex::new(Directory::new()),
            vault: Mutex::new(vault),
            app_credentials: Mutex::new(AppCredentials::default()),
            refresh_tokens: Mutex::new(RefreshTokens::default()),
            assertions: Mutex::new(Vec::new()),
            stats: Stats::default(),
        }
    }

    pub fn keys(&self) -> RwLockReadGuard<'_, KeyRing> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn keys_mut(&self) -> RwLockWriteGuard<'_, KeyRing> {
        self.keys.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn directory(&self) -> MutexGuard<'_, Directory> {
        self.directory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn vault(&self) -> MutexGuard<'_, Vault> {
        self.vault.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn app_credentials(&self) -> MutexGuard<'_, AppCredentials> {
        self.app_credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn refresh_tokens(&self) -> MutexGuard<'_, RefreshTokens> {
        self.refresh_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn remember_assertion(&self, assertion: &str) {
        let mut kept = self
            .assertions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if kept.len() == ASSERTIONS_KEPT {
            kept.remove(0);
        }
        kept.push(assertion.to_owned());
    }

    pub fn assertions(&self) -> Vec<String> {
        self.assertions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `https://sts.windows.net/{tenant}/`, the v1 issuer.
    pub fn v1_issuer(tenant: &str) -> String {
        format!("https://sts.windows.net/{tenant}/")
    }

    /// `{authority}/{tenant}/v2.0`, the v2 issuer.
    pub fn v2_issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.config.authority)
    }
}
