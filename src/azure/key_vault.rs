//! Reads Key Vault secrets with the Function App's managed identity (`IDENTITY_ENDPOINT` /
//! `IDENTITY_HEADER`, set by App Service; the user-assigned one when its client id is configured),
//! through the official SDK and the broker's own HTTP client.
//!
//! The SDK's challenge-resource check compares host names and cannot pass for a vault on loopback, so it
//! is replaced by a stricter rule: the managed identity is only ever asked for the Key Vault audience.

use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RetryOptions, StatusCode, Transport};
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use crate::broker::error::LoadFailure;
use crate::broker::ids::ClientId;
use crate::secret::Secret;
use crate::settings::KeyVaultSettings;

pub struct VaultReader {
    client: SecretClient,
}

/// A secret's value and its content type (Key Vault's certificates are secrets with
/// `application/x-pkcs12` or `application/x-pem-file`).
pub struct VaultSecret {
    pub value: Secret,
    pub content_type: Option<String>,
}

impl VaultReader {
    /// `identity`: the user-assigned identity's client id, or `None` for the system-assigned one.
    pub fn new(
        settings: &KeyVaultSettings,
        http: reqwest::Client,
        identity: Option<&ClientId>,
    ) -> azure_core::Result<Self> {
        let client_options = || ClientOptions {
            transport: Some(Transport::new(Arc::new(http.clone()))),
            // The broker's refresh loop retries on its own schedule; the SDK's backoff would stall it.
            retry: RetryOptions::none(),
            ..ClientOptions::default()
        };
        let identity = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            client_options: client_options(),
            user_assigned_id: identity.map(|id| UserAssignedId::ClientId(id.as_str().to_owned())),
        }))?;
        let credential = Arc::new(KeyVaultAudienceOnly {
            identity,
            scope: format!("{}/.default", settings.audience),
        });
        let client = SecretClient::new(
            settings.url.as_str(),
            credential,
            Some(SecretClientOptions {
                client_options: client_options(),
                verify_challenge_resource: Some(false),
                ..Default::default()
            }),
        )?;
        Ok(Self { client })
    }

    /// The secret's current value. Failures are classified, never described with the value.
    pub async fn read(&self, name: &str) -> Result<Secret, LoadFailure> {
        self.read_typed(name).await.map(|secret| secret.value)
    }

    /// The secret's current value and content type.
    pub async fn read_typed(&self, name: &str) -> Result<VaultSecret, LoadFailure> {
        let response = self
            .client
            .get_secret(name, None)
            .await
            .map_err(|err| classify(name, &err))?;
        let secret = response.into_model().map_err(|err| classify(name, &err))?;
        let content_type = secret.content_type;
        secret
            .value
            .map(|value| VaultSecret {
                value: Secret::new(value),
                content_type,
            })
            .ok_or_else(|| {
                tracing::warn!(secret = name, "Key Vault secret has no value");
                LoadFailure::Misconfigured
            })
    }
}

fn classify(name: &str, err: &azure_core::Error) -> LoadFailure {
    let status = err.http_status();
    let failure = match status {
        Some(
            StatusCode::Unauthorized
            | StatusCode::Forbidden
            | StatusCode::NotFound
            | StatusCode::BadRequest,
        ) => LoadFailure::Misconfigured,
        _ => LoadFailure::Unreachable,
    };
    tracing::warn!(secret = name, status = status.map(u16::from), kind = ?err.kind(), ?failure, "Key Vault read failed");
    failure
}

/// The managed identity, restricted to one scope: a challenge naming any other resource is refused
/// before a token is requested, so Key Vault (or anything answering at its URL) can never obtain a token
/// for another audience.
#[derive(Debug)]
struct KeyVaultAudienceOnly {
    identity: Arc<ManagedIdentityCredential>,
    scope: String,
}

#[async_trait::async_trait]
impl TokenCredential for KeyVaultAudienceOnly {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if scopes != [self.scope.as_str()] {
            tracing::warn!(requested = ?scopes, "Key Vault challenge named another audience; refused");
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "Key Vault challenge named an audience other than the configured Key Vault audience",
            ));
        }
        self.identity.get_token(scopes, options).await
    }
}
