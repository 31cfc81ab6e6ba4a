//! The emulated vault's secrets: every value ever set, by version, oldest first. Names are
//! case-insensitive, as in Key Vault. Starts with the allowlist (the default MSI caller) and the broker's
//! client secret.

use crate::identities::{ALLOWLIST_SECRET_NAME, BROKER_SECRET_NAME, MSI_CALLER_OID};
use crate::{clock, ids};
use std::collections::HashMap;

/// One version of a secret.
#[derive(Clone)]
pub struct SecretVersion {
    pub name: String,
    pub version: String,
    pub value: String,
    /// `contentType` (Key Vault's certificates: `application/x-pkcs12` or `application/x-pem-file`).
    pub content_type: Option<String>,
    /// Unix seconds, Key Vault's resolution. Each version of a secret is at least one second younger
    /// than the one before, so their order never ties (tests upload faster than once a second).
    pub created: i64,
}

/// Key Vault's largest page of a list, and what it answers without `maxresults`.
pub const MAX_PAGE_SIZE: usize = 25;

pub struct Vault {
    secrets: HashMap<String, Vec<SecretVersion>>,
    /// How many items a list page holds at most (tests lower it to make the broker follow `nextLink`).
    pub page_size: usize,
}

impl Vault {
    pub fn new(broker_client_secret: &str) -> Self {
        let mut vault = Self {
            secrets: HashMap::new(),
            page_size: MAX_PAGE_SIZE,
        };
        vault.set(ALLOWLIST_SECRET_NAME, MSI_CALLER_OID);
        vault.set(BROKER_SECRET_NAME, broker_client_secret);
        vault
    }

    /// Key Vault's rule: 1-127 letters, digits and dashes.
    pub fn is_valid_name(name: &str) -> bool {
        (1..=127).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }

    /// Adds a new version and returns it.
    pub fn set(&mut self, name: &str, value: &str) -> SecretVersion {
        self.set_typed(name, value, None)
    }

    /// Adds a new version with a content type and returns it.
    pub fn set_typed(
        &mut self,
        name: &str,
        value: &str,
        content_type: Option<&str>,
    ) -> SecretVersion {
        let versions = self.secrets.entry(name.to_ascii_lowercase()).or_default();
        let after_last = versions.last().map_or(i64::MIN, |last| last.created + 1);
        let version = SecretVersion {
            name: name.to_owned(),
            version: ids::secret_version(),
            value: value.to_owned(),
            content_type: content_type.map(str::to_owned),
            created: clock::now().max(after_last),
        };
        versions.push(version.clone());
        version
    }

    /// Every version of a secret, oldest first; empty for a secret that does not exist.
    pub fn versions(&self, name: &str) -> &[SecretVersion] {
        self.secrets
            .get(&name.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The latest version, or the named one.
    pub fn get(&self, name: &str, version: Option<&str>) -> Option<SecretVersion> {
        let versions = self.secrets.get(&name.to_ascii_lowercase())?;
        match version {
            None => versions.last().cloned(),
            Some(wanted) => versions
                .iter()
                .find(|candidate| candidate.version.eq_ignore_ascii_case(wanted))
                .cloned(),
        }
    }
}
