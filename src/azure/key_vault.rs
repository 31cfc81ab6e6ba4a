//! Reads Key Vault secrets with the Function App's managed identity (`IDENTITY_ENDPOINT` /
//! `IDENTITY_HEADER`, set by App Service), through the official SDK and the broker's own HTTP client.
//!
//! The SDK's challenge-resource check compares host names and cannot pass for a vault on loopback, so it
//! is replaced by a stricter rule: the managed identity is only ever asked for the Key Vault audience.
//! When Key Vault refuses the identity's token, the token is dropped and the read retried once with a
//! fresh one (see `is_token_refused`).

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::headers::WWW_AUTHENTICATE;
use azure_core::http::{ClientOptions, Response, RetryOptions, StatusCode, Transport};
use azure_identity::UserAssignedId;
use azure_security_keyvault_secrets::models::Secret as KeyVaultSecret;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use url::Url;

use crate::azure::managed_identity::ManagedIdentity;
use crate::broker::error::LoadFailure;
use crate::broker::ids::ClientId;
use crate::secret::Secret;

/// A secret's value and its content type (Key Vault's certificates are secrets with
/// `application/x-pkcs12` or `application/x-pem-file`).
pub struct VaultSecret {
    pub value: Secret,
    pub content_type: Option<String>,
}

pub struct VaultReader {
    identity: Arc<ManagedIdentity>,
    /// Rebuilt on renewal: the SDK's bearer policy keeps a token of its own, which only a new client
    /// forgets after a 403.
    client: ArcSwap<SecretClient>,
    url: String,
    credential: Arc<KeyVaultAudienceOnly>,
    options: SecretClientOptions,
}

impl VaultReader {
    /// `url`: the vault; `audience`: the only audience the managed identity may be asked a token for on
    /// Key Vault's behalf. `identity`: the user-assigned identity's client id, or `None` for the
    /// system-assigned one.
    pub fn new(
        url: &Url,
        audience: &str,
        http: reqwest::Client,
        identity: Option<&ClientId>,
    ) -> azure_core::Result<Self> {
        let client_options = ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            // The broker's refresh loop retries on its own schedule; the SDK's backoff would stall it.
            retry: RetryOptions::none(),
            ..ClientOptions::default()
        };
        let identity = ManagedIdentity::new(
            client_options.clone(),
            identity.map(|id| UserAssignedId::ClientId(id.as_str().to_owned())),
        )?;
        let credential = Arc::new(KeyVaultAudienceOnly {
            identity: identity.clone(),
            scope: format!("{audience}/.default"),
        });
        let options = SecretClientOptions {
            client_options,
            verify_challenge_resource: Some(false),
            ..Default::default()
        };
        let url = url.to_string();
        let client = SecretClient::new(&url, credential.clone(), Some(options.clone()))?;
        Ok(Self {
            identity,
            client: ArcSwap::from_pointee(client),
            url,
            credential,
            options,
        })
    }

    /// The secret's current value. Failures are classified, never described with the value.
    pub async fn read(&self, name: &str) -> Result<Secret, LoadFailure> {
        self.read_typed(name).await.map(|secret| secret.value)
    }

    /// The secret's current value and content type.
    pub async fn read_typed(&self, name: &str) -> Result<VaultSecret, LoadFailure> {
        let read = self
            .call(name, |client| async move {
                secret_value(client.get_secret(name, None).await)
            })
            .await;
        value_of(name, read)
    }

    /// Runs one Key Vault call; when Key Vault refuses the identity's token, drops the token and runs
    /// the call once more with a fresh one.
    pub(crate) async fn call<T, F, Fut>(&self, name: &str, call: F) -> azure_core::Result<T>
    where
        F: Fn(Arc<SecretClient>) -> Fut,
        Fut: Future<Output = azure_core::Result<T>>,
    {
        match call(self.client.load_full()).await {
            Err(err) if is_token_refused(&err) => {
                tracing::info!(
                    secret = name,
                    status = err.http_status().map(u16::from),
                    "Key Vault refused the managed identity's token; retrying once with a fresh token"
                );
                self.renew()?;
                call(self.client.load_full()).await
            }
            other => other,
        }
    }

    /// Drops the identity's cached token and the client's, so the next read asks the identity endpoint.
    fn renew(&self) -> azure_core::Result<()> {
        self.identity.renew()?;
        let client = SecretClient::new(
            &self.url,
            self.credential.clone(),
            Some(self.options.clone()),
        )?;
        self.client.store(Arc::new(client));
        Ok(())
    }
}

/// Whether Key Vault refused the bearer token itself, rather than the identity's access: a 401, or a 403
/// that carries a Bearer challenge or one of Key Vault's token-validation errors (the `AKV10xxx` family,
/// e.g. AKV10046 "unable to resolve the key used for signature validation"). An RBAC, policy or firewall
/// 403 is not: a fresh token would be refused the same way.
pub(crate) fn is_token_refused(err: &azure_core::Error) -> bool {
    let ErrorKind::HttpResponse {
        status,
        raw_response,
        ..
    } = err.kind()
    else {
        return false;
    };
    match *status {
        StatusCode::Unauthorized => true,
        StatusCode::Forbidden => raw_response.as_deref().is_some_and(|response| {
            response
                .headers()
                .get_optional_str(&WWW_AUTHENTICATE)
                .is_some()
                || is_token_validation_error(response.body())
        }),
        _ => false,
    }
}

/// Key Vault's error body `{"error":{"code","message"}}` with a message of the AKV10xxx family.
fn is_token_validation_error(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .as_ref()
        .and_then(|body| body.pointer("/error/message"))
        .and_then(serde_json::Value::as_str)
        .is_some_and(|message| message.starts_with("AKV10"))
}

/// The `value` in Key Vault's answer to a secret read.
/// A secret's value and content type, each as Key Vault gave it.
pub(crate) type ValueAndType = (Option<String>, Option<String>);

pub(crate) fn secret_value(
    answer: azure_core::Result<Response<KeyVaultSecret>>,
) -> azure_core::Result<ValueAndType> {
    let secret = answer?.into_model()?;
    Ok((secret.value, secret.content_type))
}

/// A read's outcome for the broker: the value, or why there is none.
pub(crate) fn value_of(
    name: &str,
    read: azure_core::Result<ValueAndType>,
) -> Result<VaultSecret, LoadFailure> {
    let (value, content_type) = read.map_err(|err| classify(name, &err))?;
    value
        .map(|value| VaultSecret {
            value: Secret::new(value),
            content_type,
        })
        .ok_or_else(|| {
            tracing::warn!(secret = name, "Key Vault secret has no value");
            LoadFailure::Misconfigured
        })
}

pub(crate) fn classify(name: &str, err: &azure_core::Error) -> LoadFailure {
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
    identity: Arc<ManagedIdentity>,
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

#[cfg(test)]
mod tests {
    use azure_core::http::RawResponse;
    use azure_core::http::headers::Headers;

    use super::*;

    fn answer(status: StatusCode, challenge: bool, body: &str) -> azure_core::Error {
        let mut headers = Headers::new();
        if challenge {
            headers.insert(
                WWW_AUTHENTICATE,
                "Bearer authorization=\"x\", resource=\"y\"",
            );
        }
        let response = RawResponse::from_bytes(status, headers, body.as_bytes().to_vec());
        azure_core::Error::with_message(
            ErrorKind::HttpResponse {
                status,
                error_code: None,
                raw_response: Some(Box::new(response)),
            },
            "refused",
        )
    }

    #[test]
    fn a_401_or_a_403_about_the_token_means_the_token_was_refused() {
        let akv = r#"{"error":{"code":"Unauthorized","message":"AKV10046: Unable to resolve the key used for signature validation."}}"#;
        assert!(is_token_refused(&answer(
            StatusCode::Unauthorized,
            true,
            akv
        )));
        assert!(is_token_refused(&answer(
            StatusCode::Unauthorized,
            false,
            ""
        )));
        assert!(is_token_refused(&answer(StatusCode::Forbidden, false, akv)));
        assert!(is_token_refused(&answer(StatusCode::Forbidden, true, "{}")));
    }

    #[test]
    fn an_rbac_403_or_another_failure_is_not_a_refused_token() {
        let rbac = r#"{"error":{"code":"Forbidden","message":"Caller is not authorized to perform action on resource.","innererror":{"code":"ForbiddenByRbac"}}}"#;
        assert!(!is_token_refused(&answer(
            StatusCode::Forbidden,
            false,
            rbac
        )));
        assert!(!is_token_refused(&answer(
            StatusCode::NotFound,
            false,
            "{}"
        )));
        assert!(!is_token_refused(&answer(
            StatusCode::InternalServerError,
            true,
            "{}"
        )));
        assert!(!is_token_refused(&azure_core::Error::with_message(
            ErrorKind::Connection,
            "refused"
        )));
    }
}
