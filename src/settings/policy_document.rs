//! Where the grants policy document is read from: a Key Vault secret or a file, never beside the legacy
//! policy settings it replaces.

use std::path::PathBuf;

use super::SettingsError;
use super::legacy_policy::LEGACY_POLICY_SETTINGS;
use super::vars::Vars;

/// Where the grants policy document is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyDocumentSource {
    /// `BROKER_POLICY_SECRET_NAME`: a Key Vault secret, re-read on the refresh schedule.
    KeyVault { name: String },
    /// `BROKER_POLICY_FILE`: a file deployed with the app, re-read on the refresh schedule.
    File { path: PathBuf },
}

pub(super) fn policy_document(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
    has_key_vault: bool,
) -> Result<Option<PolicyDocumentSource>, SettingsError> {
    const SECRET: &str = "BROKER_POLICY_SECRET_NAME";
    const FILE: &str = "BROKER_POLICY_FILE";
    let source = match (vars.secret_name(SECRET)?, vars.get(FILE)) {
        (Some(_), Some(_)) => {
            return Err(SettingsError::Invalid {
                name: FILE,
                reason: "set either BROKER_POLICY_SECRET_NAME or BROKER_POLICY_FILE, not both",
            });
        }
        (Some(_), None) if !has_key_vault => {
            return Err(SettingsError::Missing {
                name: "BROKER_KEY_VAULT_URL",
            });
        }
        (Some(name), None) => (SECRET, PolicyDocumentSource::KeyVault { name }),
        (None, Some(path)) => (FILE, PolicyDocumentSource::File { path: path.into() }),
        (None, None) => return Ok(None),
    };
    let legacy: Vec<&str> = LEGACY_POLICY_SETTINGS
        .iter()
        .copied()
        .filter(|name| vars.get(name).is_some())
        .collect();
    if legacy.is_empty() {
        Ok(Some(source.1))
    } else {
        Err(SettingsError::ReplacedByPolicy {
            by: source.0,
            names: legacy.join(", "),
        })
    }
}
