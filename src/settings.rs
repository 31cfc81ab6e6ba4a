//! Every setting the broker reads, validated once at start-up. Nothing else reads the environment.
//!
//! A missing or malformed setting is an error naming the variable and the expected shape. It quotes the
//! value only for settings that never hold a secret, escaped and cut short (`excerpt`); secrets and
//! URLs (which may carry credentials) are never quoted. There is no silent fallback to a default on a
//! parse failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use crate::broker::excerpt;
use crate::broker::ids::{ClientId, Guid, ObjectId, TenantId};
use crate::broker::scope::{AudienceMap, DEFAULT_AUDIENCES, DEFAULT_SCOPES, TargetScope, is_alias};

mod credential;

pub use credential::{
    CertificateSource, ClientSecretSource, CredentialSettings, FEDERATED_AUDIENCE,
    FEDERATED_AUDIENCE_CHINA, FEDERATED_AUDIENCE_US_GOV,
};

pub const DEFAULT_PORT: u16 = 3000;
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
pub const DEFAULT_ALLOWLIST_SECRET: &str = "allowed-msi-oids";
pub const DEFAULT_KEY_VAULT_AUDIENCE: &str = "https://vault.azure.net";
pub const DEFAULT_ALLOWLIST_MAX_AGE_SECONDS: u64 = 6 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{name} is required")]
    Missing { name: &'static str },
    /// `reason` describes the expected shape; it never contains the value.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        reason: &'static str,
    },
    /// As `Invalid`, for a setting that never holds a secret: `value` is the offending value (or list
    /// item), quoted by `excerpt::quoted`.
    #[error("{name} is invalid ({value}): {reason}")]
    InvalidValue {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    /// Settings of another credential kind than the one chosen; names only, never values.
    #[error("{} cannot be set with BROKER_CREDENTIAL={kind}", names.join(", "))]
    Contradicts {
        names: Vec<&'static str>,
        kind: &'static str,
    },
    /// Legacy policy settings set beside a policy document, which replaces them all.
    #[error("{by} replaces the legacy policy settings; remove {names}")]
    ReplacedByPolicy { by: &'static str, names: String },
}

impl SettingsError {
    /// `Invalid`, quoting `value`: only for settings that never hold a secret.
    fn invalid_value(name: &'static str, value: &str, reason: &'static str) -> Self {
        Self::InvalidValue {
            name,
            value: excerpt::quoted(value),
            reason,
        }
    }
}

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

/// Where the grants policy document is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyDocumentSource {
    /// `BROKER_POLICY_SECRET_NAME`: a Key Vault secret, re-read on the refresh schedule.
    KeyVault { name: String },
    /// `BROKER_POLICY_FILE`: a file deployed with the app, re-read on the refresh schedule.
    File { path: PathBuf },
}

/// Which users may receive the broker's service-principal token (GetSPToken, or lane `service`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAccess {
    /// No user (the default: a whole tenant is never admitted silently).
    Denied,
    /// Users whose object id is listed in `BROKER_ALLOWED_USER_OIDS`.
    Allowlist(BTreeSet<ObjectId>),
    /// Users whose token carries this app role (`roles`), assigned on the broker's enterprise app.
    AppRole(String),
    /// Every user of the tenant (explicit `BROKER_USER_ACCESS=tenant`).
    Tenant,
}

#[derive(Debug, Clone)]
pub struct KeyVaultSettings {
    pub url: Url,
    /// The only audience the managed identity may be asked a token for on Key Vault's behalf.
    pub audience: String,
}

/// Per-caller and overall request budgets (token-bucket, refilled per minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub per_caller_per_minute: u32,
    pub total_per_minute: u32,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub port: u16,
    pub tenant_id: TenantId,
    pub client_id: ClientId,
    pub credential: CredentialSettings,
    /// The user-assigned identity for Key Vault reads (and the federated credential); `None`: the
    /// Function App's system-assigned identity reads Key Vault.
    pub managed_identity_client_id: Option<ClientId>,
    pub authority_host: Url,
    pub key_vault: Option<KeyVaultSettings>,
    pub allowlist_secret_name: String,
    pub static_allowlist: BTreeSet<ObjectId>,
    pub allowlist_refresh: Duration,
    /// How long the last good Key Vault allowlist may serve without a successful re-read.
    pub allowlist_max_age: Duration,
    /// How long a connection may take to send a complete request header (and may sit idle).
    pub header_read_timeout: Duration,
    /// Most connections served at once; at the limit the stalest idle one makes room.
    pub max_connections: usize,
    pub allowed_scopes: BTreeSet<TargetScope>,
    pub audiences: AudienceMap,
    pub policy_revision: u64,
    pub user_access: UserAccess,
    /// The grants policy document, when configured. The legacy policy fields above then keep their
    /// defaults: their settings are refused.
    pub policy_document: Option<PolicyDocumentSource>,
    pub required_user_scope: Option<String>,
    pub jwks_refresh: Duration,
    pub jwks_min_refresh: Duration,
    pub clock_skew: Duration,
    pub token_margin: Duration,
    pub http_timeout: Duration,
    pub rate_limits: RateLimits,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads every setting through `lookup`. Tests pass a map; production passes the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let vars = Vars(lookup);
        let tenant_id = vars.required_guid("BROKER_TENANT_ID")?;
        let client_id = vars.required_guid("BROKER_CLIENT_ID")?;
        let authority_host = authority_host(&vars)?;
        let key_vault = key_vault(&vars)?;
        let managed_identity_client_id = credential::managed_identity_client_id(&vars)?;
        let credential = credential::credential(
            &vars,
            key_vault.is_some(),
            &authority_host,
            managed_identity_client_id.as_ref(),
        )?;
        if matches!(credential, CredentialSettings::ManagedIdentity { .. }) {
            identity_endpoint(&vars)?;
        }
        let policy_document = policy_document(&vars, key_vault.is_some())?;
        let allowlist_refresh = vars.seconds("BROKER_ALLOWLIST_REFRESH_SECONDS", 120, 1)?;
        Ok(Self {
            policy_document,
            port: port(&vars)?,
            tenant_id,
            client_id,
            credential,
            managed_identity_client_id,
            authority_host,
            allowlist_secret_name: vars
                .secret_name("BROKER_ALLOWLIST_SECRET_NAME")?
                .unwrap_or_else(|| DEFAULT_ALLOWLIST_SECRET.to_owned()),
            key_vault,
            static_allowlist: vars.guid_list("BROKER_ALLOWED_MSI_OIDS")?,
            allowlist_max_age: allowlist_max_age(&vars, allowlist_refresh)?,
            allowlist_refresh,
            header_read_timeout: vars.seconds("BROKER_HEADER_READ_TIMEOUT_SECONDS", 30, 1)?,
            max_connections: max_connections(&vars)?,
            allowed_scopes: allowed_scopes(&vars)?,
            audiences: audiences(&vars)?,
            policy_revision: vars.parsed(
                "BROKER_POLICY_REVISION",
                1,
                "expected a non-negative integer",
            )?,
            user_access: user_access(&vars)?,
            required_user_scope: required_user_scope(&vars)?,
            jwks_refresh: vars.seconds("BROKER_JWKS_REFRESH_SECONDS", 3600, 1)?,
            jwks_min_refresh: vars.seconds("BROKER_JWKS_MIN_REFRESH_SECONDS", 60, 1)?,
            clock_skew: vars.seconds("BROKER_CLOCK_SKEW_SECONDS", 120, 0)?,
            token_margin: vars.seconds("BROKER_TOKEN_MARGIN_SECONDS", 300, 0)?,
            http_timeout: vars.seconds("BROKER_HTTP_TIMEOUT_SECONDS", 10, 1)?,
            rate_limits: RateLimits {
                per_caller_per_minute: vars.positive("BROKER_RATE_LIMIT_PER_CALLER", 600)?,
                total_per_minute: vars.positive("BROKER_RATE_LIMIT_TOTAL", 60_000)?,
            },
        })
    }
}

fn port(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<u16, SettingsError> {
    const NAME: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
    vars.parsed(NAME, DEFAULT_PORT, "expected a TCP port number")
}

/// Six hours by default (or two refresh intervals, if longer): long enough to ride out a Key Vault
/// incident and for `degraded` health, after three failed reads, to reach an operator first; short
/// enough that an identity removed from the secret cannot keep its access for the 24 h an App Service
/// Key Vault reference may stay cached. docs/reliability.md argues it in full.
fn allowlist_max_age(
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

/// 1,024 by default: the host's own pool to the handler stays far below that, and it leaves room in the
/// 4,096 descriptors a Linux process commonly may hold. At least 16, so the host is never starved.
fn max_connections(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<usize, SettingsError> {
    const NAME: &str = "BROKER_MAX_CONNECTIONS";
    const REASON: &str = "expected a whole number of connections, from 16 to 100000";
    let count: usize = vars.parsed(NAME, 1024, REASON)?;
    if !(16..=100_000).contains(&count) {
        return Err(SettingsError::invalid_value(
            NAME,
            &count.to_string(),
            REASON,
        ));
    }
    Ok(count)
}

fn authority_host(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Url, SettingsError> {
    const NAME: &str = "BROKER_AUTHORITY_HOST";
    let text = vars
        .get(NAME)
        .unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.to_owned());
    let url = https_url(NAME, &text)?;
    if url.path() != "/" {
        return Err(SettingsError::Invalid {
            name: NAME,
            reason: "expected a bare https:// host such as https://login.microsoftonline.com",
        });
    }
    Ok(url)
}

fn key_vault(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
) -> Result<Option<KeyVaultSettings>, SettingsError> {
    let Some(text) = vars.get("BROKER_KEY_VAULT_URL") else {
        return Ok(None);
    };
    let mut url = https_url("BROKER_KEY_VAULT_URL", &text)?;
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    identity_endpoint(vars)?;
    let audience = match vars.get("BROKER_KEY_VAULT_AUDIENCE") {
        Some(text) => https_url("BROKER_KEY_VAULT_AUDIENCE", &text)?
            .as_str()
            .trim_end_matches('/')
            .to_owned(),
        None => DEFAULT_KEY_VAULT_AUDIENCE.to_owned(),
    };
    Ok(Some(KeyVaultSettings { url, audience }))
}

/// App Service's managed identity endpoint, which Key Vault reads and the federated credential use.
/// Without it the SDK would fall back to the VM metadata endpoint, which a Function App does not have.
fn identity_endpoint(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<(), SettingsError> {
    match vars.get("IDENTITY_ENDPOINT") {
        Some(endpoint)
            if Url::parse(&endpoint).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) => {}
        Some(_) => {
            return Err(SettingsError::Invalid {
                name: "IDENTITY_ENDPOINT",
                reason: "expected the App Service managed identity endpoint URL",
            });
        }
        None => {
            return Err(SettingsError::Missing {
                name: "IDENTITY_ENDPOINT",
            });
        }
    }
    if vars.get("IDENTITY_HEADER").is_none() {
        return Err(SettingsError::Missing {
            name: "IDENTITY_HEADER",
        });
    }
    Ok(())
}

fn policy_document(
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

fn allowed_scopes(
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

fn scope_list(name: &'static str, text: &str) -> Result<BTreeSet<TargetScope>, SettingsError> {
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

fn audiences(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<AudienceMap, SettingsError> {
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

fn user_access(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<UserAccess, SettingsError> {
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

fn required_user_scope(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
) -> Result<Option<String>, SettingsError> {
    match vars.get("BROKER_REQUIRED_USER_SCOPE") {
        Some(scope) if is_claim_value(&scope) => Ok(Some(scope)),
        Some(scope) => Err(SettingsError::invalid_value(
            "BROKER_REQUIRED_USER_SCOPE",
            &scope,
            "expected one delegated scope name such as user_impersonation",
        )),
        None => Ok(None),
    }
}

/// A role or scope name: printable ASCII without spaces, as Entra allows in `roles` and `scp`.
fn is_claim_value(text: &str) -> bool {
    (1..=120).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic())
}

fn https_url(name: &'static str, text: &str) -> Result<Url, SettingsError> {
    let invalid = SettingsError::Invalid {
        name,
        reason: "expected an https:// URL",
    };
    let url = Url::parse(text).map_err(|_| invalid.clone())?;
    if url.scheme() != "https"
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid);
    }
    Ok(url)
}

fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
}

/// The lookup, with the conversions every setting shares.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// The trimmed value; unset and blank are the same (App Service cannot unset a slot setting).
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    fn required_guid(&self, name: &'static str) -> Result<Guid, SettingsError> {
        let text = self.get(name).ok_or(SettingsError::Missing { name })?;
        text.parse()
            .map_err(|_| SettingsError::invalid_value(name, &text, "expected a GUID"))
    }

    fn guid_list(&self, name: &'static str) -> Result<BTreeSet<Guid>, SettingsError> {
        let Some(text) = self.get(name) else {
            return Ok(BTreeSet::new());
        };
        split_list(&text)
            .map(|item| {
                item.parse().map_err(|_| {
                    SettingsError::invalid_value(
                        name,
                        item,
                        "expected GUIDs separated by commas or whitespace",
                    )
                })
            })
            .collect()
    }

    fn secret_name(&self, name: &'static str) -> Result<Option<String>, SettingsError> {
        match self.get(name) {
            Some(text)
                if (1..=127).contains(&text.len())
                    && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                Ok(Some(text))
            }
            // The name of a secret, not its value.
            Some(text) => Err(SettingsError::invalid_value(
                name,
                &text,
                "expected a Key Vault secret name (1-127 letters, digits and dashes)",
            )),
            None => Ok(None),
        }
    }

    /// A number or other plain value: never a secret, so an error quotes it.
    fn parsed<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
        reason: &'static str,
    ) -> Result<T, SettingsError> {
        match self.get(name) {
            Some(text) => text
                .parse()
                .map_err(|_| SettingsError::invalid_value(name, &text, reason)),
            None => Ok(default),
        }
    }

    fn seconds(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
    ) -> Result<Duration, SettingsError> {
        let reason = if min == 0 {
            "expected a whole number of seconds"
        } else {
            "expected a whole number of seconds, at least 1"
        };
        let seconds: u64 = self.parsed(name, default, reason)?;
        if seconds < min || seconds > 86_400 * 7 {
            return Err(SettingsError::invalid_value(
                name,
                &seconds.to_string(),
                reason,
            ));
        }
        Ok(Duration::from_secs(seconds))
    }

    fn positive(&self, name: &'static str, default: u32) -> Result<u32, SettingsError> {
        const REASON: &str = "expected a positive whole number of requests per minute";
        match self.parsed(name, default, REASON)? {
            0 => Err(SettingsError::invalid_value(name, "0", REASON)),
            value => Ok(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b";
    const CLIENT: &str = "0b5e9c3a-7f2d-4a61-9c8e-2d4b6a8f1e37";

    /// Every required setting at a valid value, with `overrides` applied (an empty value unsets).
    fn required_with(overrides: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: BTreeMap<String, String> = [
            ("BROKER_TENANT_ID", TENANT),
            ("BROKER_CLIENT_ID", CLIENT),
            ("BROKER_CLIENT_SECRET", "s3cr3t-value"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in overrides {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        move |name| map.get(name).cloned()
    }

    fn error_of(overrides: &[(&str, &str)]) -> String {
        Settings::from_lookup(required_with(overrides))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_apply_when_only_required_settings_are_set() {
        let settings = Settings::from_lookup(required_with(&[])).unwrap();
        assert_eq!(settings.port, 3000);
        assert_eq!(
            settings.authority_host.as_str(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(settings.user_access, UserAccess::Denied);
        assert_eq!(settings.allowed_scopes.len(), DEFAULT_SCOPES.len());
        assert_eq!(settings.policy_revision, 1);
        assert_eq!(settings.allowlist_secret_name, "allowed-msi-oids");
    }

    #[test]
    fn allowlist_max_age_defaults_to_six_hours_or_two_refresh_intervals() {
        let max_age = |overrides: &[(&str, &str)]| {
            Settings::from_lookup(required_with(overrides))
                .unwrap()
                .allowlist_max_age
        };
        assert_eq!(max_age(&[]), Duration::from_secs(21_600));
        assert_eq!(
            max_age(&[("BROKER_ALLOWLIST_REFRESH_SECONDS", "86400")]),
            Duration::from_secs(172_800)
        );
        assert_eq!(
            max_age(&[
                ("BROKER_ALLOWLIST_REFRESH_SECONDS", "1"),
                ("BROKER_ALLOWLIST_MAX_AGE_SECONDS", "2")
            ]),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn allowlist_max_age_below_two_refresh_intervals_is_refused() {
        assert_eq!(
            error_of(&[
                ("BROKER_ALLOWLIST_REFRESH_SECONDS", "120"),
                ("BROKER_ALLOWLIST_MAX_AGE_SECONDS", "200")
            ]),
            "BROKER_ALLOWLIST_MAX_AGE_SECONDS is invalid: expected at least twice BROKER_ALLOWLIST_REFRESH_SECONDS"
        );
    }

    #[test]
    fn missing_tenant_is_named() {
        assert_eq!(
            error_of(&[("BROKER_TENANT_ID", "")]),
            "BROKER_TENANT_ID is required"
        );
    }

    #[test]
    fn malformed_tenant_id_is_named_in_the_error() {
        assert_eq!(
            error_of(&[("BROKER_TENANT_ID", "contoso")]),
            "BROKER_TENANT_ID is invalid (\"contoso\"): expected a GUID"
        );
    }

    #[test]
    fn a_quoted_value_is_escaped_and_cut_short() {
        let hostile = format!("\u{1b}[2K\r{}", "x".repeat(10_000));
        let err = error_of(&[("BROKER_TENANT_ID", &hostile)]);
        assert!(
            err.starts_with("BROKER_TENANT_ID is invalid (\"\\u{1b}[2K\\rxxx"),
            "{err}"
        );
        assert!(!err.chars().any(char::is_control), "{err:?}");
        assert!(err.len() < 200, "{} bytes", err.len());
    }

    #[test]
    fn urls_which_may_carry_credentials_are_never_quoted() {
        let err = error_of(&[(
            "BROKER_AUTHORITY_HOST",
            "https://admin:hunter2@login.example/tenant",
        )]);
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            err.starts_with("BROKER_AUTHORITY_HOST is invalid: expected"),
            "{err}"
        );
    }

    #[test]
    fn malformed_optional_setting_is_an_error_not_a_default() {
        assert_eq!(
            error_of(&[("BROKER_TOKEN_MARGIN_SECONDS", "5m")]),
            "BROKER_TOKEN_MARGIN_SECONDS is invalid (\"5m\"): expected a whole number of seconds"
        );
        assert_eq!(
            error_of(&[("BROKER_AUTHORITY_HOST", "http://login.microsoftonline.com")]),
            "BROKER_AUTHORITY_HOST is invalid: expected an https:// URL"
        );
    }

    #[test]
    fn errors_never_contain_the_secret() {
        let err = error_of(&[("BROKER_CLIENT_SECRET_NAME", "also-set")]);
        assert!(!err.contains("s3cr3t-value"), "{err}");
    }

    #[test]
    fn secret_name_without_key_vault_asks_for_the_vault() {
        assert_eq!(
            error_of(&[
                ("BROKER_CLIENT_SECRET", ""),
                ("BROKER_CLIENT_SECRET_NAME", "broker-secret")
            ]),
            "BROKER_KEY_VAULT_URL is required"
        );
    }

    #[test]
    fn key_vault_needs_the_managed_identity_endpoint() {
        let vault = ("BROKER_KEY_VAULT_URL", "https://kv-broker.vault.azure.net");
        assert_eq!(error_of(&[vault]), "IDENTITY_ENDPOINT is required");
        let settings = Settings::from_lookup(required_with(&[
            vault,
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:41002/msi/token"),
            ("IDENTITY_HEADER", "x"),
        ]))
        .unwrap();
        let key_vault = settings.key_vault.unwrap();
        assert_eq!(key_vault.url.as_str(), "https://kv-broker.vault.azure.net/");
        assert_eq!(key_vault.audience, "https://vault.azure.net");
    }

    #[test]
    fn user_allowlist_needs_its_ids() {
        assert_eq!(
            error_of(&[("BROKER_USER_ACCESS", "allowlist")]),
            "BROKER_ALLOWED_USER_OIDS is required"
        );
        assert_eq!(
            error_of(&[("BROKER_USER_ACCESS", "everyone")]),
            "BROKER_USER_ACCESS is invalid (\"everyone\"): expected none, allowlist, app-role or tenant"
        );
    }

    #[test]
    fn audiences_can_be_added_overridden_and_removed() {
        let settings = Settings::from_lookup(required_with(&[(
            "BROKER_AUDIENCES",
            "myapi=api://0b5e9c3a-7f2d-4a61-9c8e-2d4b6a8f1e37/.default, sql=, arm=https://management.azure.com//.default",
        )]))
        .unwrap();
        let audiences = &settings.audiences;
        assert!(audiences.resolve("sql").is_none());
        assert_eq!(
            audiences.resolve("myapi").map(TargetScope::as_str),
            Some("api://0b5e9c3a-7f2d-4a61-9c8e-2d4b6a8f1e37/.default")
        );
        assert_eq!(
            audiences.resolve("arm").map(TargetScope::as_str),
            Some("https://management.azure.com//.default")
        );
    }

    #[test]
    fn a_policy_document_comes_from_one_source() {
        let settings =
            Settings::from_lookup(required_with(&[("BROKER_POLICY_FILE", "policy.json")])).unwrap();
        assert_eq!(
            settings.policy_document,
            Some(PolicyDocumentSource::File {
                path: "policy.json".into()
            })
        );
        assert_eq!(
            error_of(&[("BROKER_POLICY_SECRET_NAME", "broker-policy")]),
            "BROKER_KEY_VAULT_URL is required"
        );
        assert_eq!(
            error_of(&[
                ("BROKER_POLICY_SECRET_NAME", "broker-policy"),
                ("BROKER_POLICY_FILE", "policy.json")
            ]),
            "BROKER_POLICY_FILE is invalid: set either BROKER_POLICY_SECRET_NAME or BROKER_POLICY_FILE, not both"
        );
    }

    #[test]
    fn legacy_policy_settings_beside_a_document_are_named_not_echoed() {
        let err = error_of(&[
            ("BROKER_POLICY_FILE", "policy.json"),
            ("BROKER_USER_ACCESS", "tenant"),
            (
                "BROKER_ALLOWED_SCOPES",
                "https://storage.azure.com/.default",
            ),
        ]);
        assert_eq!(
            err,
            "BROKER_POLICY_FILE replaces the legacy policy settings; remove BROKER_ALLOWED_SCOPES, BROKER_USER_ACCESS"
        );
    }

    #[test]
    fn static_allowlist_accepts_commas_and_whitespace() {
        let settings = Settings::from_lookup(required_with(&[(
            "BROKER_ALLOWED_MSI_OIDS",
            "1A2B3C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5D,\n 2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
        )]))
        .unwrap();
        assert_eq!(settings.static_allowlist.len(), 2);
        assert_eq!(
            error_of(&[("BROKER_ALLOWED_MSI_OIDS", "not-a-guid")]),
            "BROKER_ALLOWED_MSI_OIDS is invalid (\"not-a-guid\"): expected GUIDs separated by commas or whitespace"
        );
    }
}
