//! Every setting the broker reads, validated once at start-up. Nothing else reads the environment.
//!
//! A missing or malformed setting is an error naming the variable and the expected shape. It quotes the
//! value only for settings that never hold a secret, escaped and cut short (`excerpt`); secrets and
//! URLs (which may carry credentials) are never quoted. There is no silent fallback to a default on a
//! parse failure.

//! One module per concern reads its settings: `entra` (authority and identity endpoint), `key_vault`,
//! `credential` (the broker's credential), `legacy_policy`, `policy_document`, `server` (port and
//! limits), `delegation` (the delegation store, sealing key and bounds); `vars` is the lookup they
//! share. This module only assembles them and holds the error type.

use std::collections::BTreeSet;
use std::time::Duration;

use url::Url;

use crate::broker::excerpt;
use crate::broker::ids::{ClientId, ObjectId, TenantId};
use crate::broker::scope::{AudienceMap, TargetScope};

mod credential;
mod delegation;
mod entra;
mod key_vault;
mod legacy_policy;
mod policy_document;
mod server;
mod vars;

pub use crate::broker::policy::legacy::UserAccess;
pub use crate::broker::rate_limit::RateLimits;
pub use crate::delegation::setup::{DelegationConfig, StoreLocation};
pub use credential::{
    CertificateSource, ClientSecretSource, CredentialSettings, FEDERATED_AUDIENCE,
    FEDERATED_AUDIENCE_CHINA, FEDERATED_AUDIENCE_US_GOV,
};
pub use entra::DEFAULT_AUTHORITY_HOST;
pub use key_vault::{DEFAULT_KEY_VAULT_AUDIENCE, KeyVaultSettings};
pub use legacy_policy::{
    DEFAULT_ALLOWLIST_MAX_AGE_SECONDS, DEFAULT_ALLOWLIST_SECRET, LEGACY_POLICY_SETTINGS,
};
pub use policy_document::PolicyDocumentSource;
pub use server::DEFAULT_PORT;

use entra::{authority_host, identity_endpoint, required_user_scope, resource_identity_client_id};
use key_vault::key_vault;
use legacy_policy::{allowed_scopes, allowlist_max_age, audiences, user_access};
use policy_document::policy_document;
use server::{max_connections, port};
use vars::Vars;

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

#[derive(Debug, Clone)]
pub struct Settings {
    pub port: u16,
    pub tenant_id: TenantId,
    pub client_id: ClientId,
    pub credential: CredentialSettings,
    /// The user-assigned identity of the federated credential (`BROKER_MANAGED_IDENTITY_CLIENT_ID`).
    pub managed_identity_client_id: Option<ClientId>,
    /// The user-assigned identity that reads Key Vault: `BROKER_RESOURCE_IDENTITY_CLIENT_ID`, else the
    /// federated credential's; `None`: the Function App's system-assigned identity.
    pub resource_identity_client_id: Option<ClientId>,
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
    /// `None`: delegations are off (`BROKER_DELEGATION_STORE=none`, the default).
    pub delegation: Option<DelegationConfig>,
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
        let resource_identity_client_id =
            resource_identity_client_id(&vars, managed_identity_client_id.as_ref())?;
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
        let delegation = delegation::delegation(&vars, key_vault.is_some())?;
        Ok(Self {
            delegation,
            policy_document,
            port: port(&vars)?,
            tenant_id,
            client_id,
            credential,
            managed_identity_client_id,
            resource_identity_client_id,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::broker::scope::DEFAULT_SCOPES;

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
    fn resource_identity_falls_back_to_the_federated_identity_then_the_system_assigned_one() {
        const FEDERATED: &str = "7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e";
        const RESOURCE: &str = "9d0e1f2a-3b4c-4d5e-8f6a-7b8c9d0e1f2a";
        let resource_identity = |overrides: &[(&str, &str)]| {
            Settings::from_lookup(required_with(overrides))
                .unwrap()
                .resource_identity_client_id
                .map(|id| id.as_str().to_owned())
        };

        assert_eq!(resource_identity(&[]), None);
        assert_eq!(
            resource_identity(&[("BROKER_MANAGED_IDENTITY_CLIENT_ID", FEDERATED)]),
            Some(FEDERATED.to_owned())
        );
        assert_eq!(
            resource_identity(&[
                ("BROKER_MANAGED_IDENTITY_CLIENT_ID", FEDERATED),
                ("BROKER_RESOURCE_IDENTITY_CLIENT_ID", RESOURCE)
            ]),
            Some(RESOURCE.to_owned())
        );
        assert_eq!(
            resource_identity(&[("BROKER_RESOURCE_IDENTITY_CLIENT_ID", RESOURCE)]),
            Some(RESOURCE.to_owned())
        );
    }

    #[test]
    fn malformed_resource_identity_is_named_and_quoted() {
        assert_eq!(
            error_of(&[("BROKER_RESOURCE_IDENTITY_CLIENT_ID", "token-broker-id")]),
            "BROKER_RESOURCE_IDENTITY_CLIENT_ID is invalid (\"token-broker-id\"): expected the user-assigned identity's client id (a GUID)"
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
