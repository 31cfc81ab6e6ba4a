//! The legacy policy settings (the allowlist, user access, scopes, audiences), read when no policy
//! document is configured. The types they fill belong to the broker's legacy policy.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::SettingsError;
use super::vars::{Vars, is_claim_value, split_list};
use crate::broker::policy::legacy::UserAccess;
use crate::broker::scope::{AudienceMap, DEFAULT_AUDIENCES, DEFAULT_SCOPES, TargetScope, is_alias};

pub const DEFAULT_ALLOWLIST_SECRET: &str = "allowed-msi-oids";
pub const DEFAULT_ALLOWLIST_MAX_AGE_SECONDS: u64 = 6 * 3600;

/// The settings a policy document replaces; with one configured, any of them is a start-up error.
pub const LEGACY_POLICY_SETTINGS: &[&str] = &[
    "BROKER_ALLOWLIST_SECRET_NAME",
    "BROKER_ALLOWED_MSI_OIDS",
    "BROKER_ALLOWLIST_MAX_AGE_SECONDS",
    "BROKER_ALLOWED_SCOPES",
    "BROKER_EXTRA_SCOPES",
    "BROKER_AUDIENCES",
    "BROKER_POLICY_REVISION",
    "BROKER_USER_ACCESS",
    "BROKER_ALLOWED_USER_OIDS",
    "BROKER_USER_APP_ROLE",
];

/// Six hours by default (or two refresh intervals, if longer): long enough to ride out a Key Vault
/// incident and for `degraded` health, after three failed reads, to reach an operator first; short
/// enough that an identity removed from the secret cannot keep its access for the 24 h an App Service
/// Key Vault reference may stay cached. docs/reliability.md argues it in full.
pub(super) fn allowlist_max_age(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
    refresh: Duration,
) -> Result<Duration, SettingsError> {
    const NAME: &str = "BROKER_ALLOWLIST_MAX_AGE_SECONDS";
    // One slow read must not make the list stale: at least two intervals.
    let least = refresh.saturating_mul(2);
    if vars.get(NAME).is_none() {
        return Ok(Duration::from_secs(DEFAULT_ALLOWLIST_MAX_AGE_SECONDS).max(least));
    }
    let max_age = vars.seconds(NAME, DEFAULT_ALLOWLIST_MAX_AGE_SECONDS, 1)?;
    if max_age < least {
        return Err(SettingsError::Invalid {
            name: NAME,
            reason: "expected at least twice BROKER_ALLOWLIST_REFRESH_SECONDS",
        });
    }
    Ok(max_age)
}

pub(super) fn allowed_scopes(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
) -> Result<BTreeSet<TargetScope>, SettingsError> {
    let mut scopes = match vars.get("BROKER_ALLOWED_SCOPES") {
        Some(text) => scope_list("BROKER_ALLOWED_SCOPES", &text)?,
        None => DEFAULT_SCOPES
            .iter()
            .filter_map(|s| TargetScope::parse(s).ok())
            .collect(),
    };
    if let Some(text) = vars.get("BROKER_EXTRA_SCOPES") {
        scopes.extend(scope_list("BROKER_EXTRA_SCOPES", &text)?);
    }
    Ok(scopes)
}

pub(super) fn scope_list(
    name: &'static str,
    text: &str,
) -> Result<BTreeSet<TargetScope>, SettingsError> {
    split_list(text)
        .map(|item| {
            TargetScope::parse(item).map_err(|_| {
                SettingsError::invalid_value(
                    name,
                    item,
                    "expected <https:// or api:// resource>/.default scopes separated by commas",
                )
            })
        })
        .collect()
}

pub(super) fn audiences(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
) -> Result<AudienceMap, SettingsError> {
    const NAME: &str = "BROKER_AUDIENCES";
    const REASON: &str =
        "expected alias=<resource>/.default entries separated by commas (alias= removes one)";
    let mut map: BTreeMap<String, TargetScope> = DEFAULT_AUDIENCES
        .iter()
        .filter_map(|(alias, scope)| Some(((*alias).to_owned(), TargetScope::parse(scope).ok()?)))
        .collect();
    if let Some(text) = vars.get(NAME) {
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let invalid = SettingsError::invalid_value(NAME, entry, REASON);
            let (alias, scope) = entry.split_once('=').ok_or(invalid.clone())?;
            let (alias, scope) = (alias.trim(), scope.trim());
            if !is_alias(alias) {
                return Err(invalid);
            }
            if scope.is_empty() {
                map.remove(alias);
            } else {
                let scope = TargetScope::parse(scope).map_err(|_| invalid)?;
                map.insert(alias.to_owned(), scope);
            }
        }
    }
    Ok(AudienceMap::new(map))
}

pub(super) fn user_access(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
) -> Result<UserAccess, SettingsError> {
    const NAME: &str = "BROKER_USER_ACCESS";
    let oids = vars.guid_list("BROKER_ALLOWED_USER_OIDS")?;
    let role = vars.get("BROKER_USER_APP_ROLE");
    let access = match vars.get(NAME).as_deref() {
        None | Some("none") => UserAccess::Denied,
        Some("allowlist") if oids.is_empty() => {
            return Err(SettingsError::Missing {
                name: "BROKER_ALLOWED_USER_OIDS",
            });
        }
        Some("allowlist") => UserAccess::Allowlist(oids.clone()),
        Some("app-role") => match &role {
            Some(role) if is_claim_value(role) => UserAccess::AppRole(role.clone()),
            Some(role) => {
                return Err(SettingsError::invalid_value(
                    "BROKER_USER_APP_ROLE",
                    role,
                    "expected an app role value such as Broker.User",
                ));
            }
            None => {
                return Err(SettingsError::Missing {
                    name: "BROKER_USER_APP_ROLE",
                });
            }
        },
        Some("tenant") => UserAccess::Tenant,
        Some(other) => {
            return Err(SettingsError::invalid_value(
                NAME,
                other,
                "expected none, allowlist, app-role or tenant",
            ));
        }
    };
    if !oids.is_empty() && !matches!(access, UserAccess::Allowlist(_)) {
        return Err(SettingsError::Invalid {
            name: "BROKER_ALLOWED_USER_OIDS",
            reason: "is only used with BROKER_USER_ACCESS=allowlist",
        });
    }
    Ok(access)
}
