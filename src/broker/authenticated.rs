//! One exchange at the token endpoint authenticated with the broker's current credential: retried once
//! with a newer certificate when Entra refuses the one used and a newer one exists, and reported in a
//! warning line (AADSTS code, credential kind and version, never the assertion) when the refusal is
//! about the broker's own credential.

use std::sync::Arc;

use crate::broker::credential::{ClientAuth, ClientCredential, CredentialSource};
use crate::broker::error::{UpstreamError, UpstreamErrorKind};
use crate::broker::exchange::{IssuedToken, TokenEndpoint, UserGrant};
use crate::broker::ids::ClientId;
use crate::broker::scope::TargetScope;
use crate::secret::Secret;

/// The grant to ask for.
#[derive(Clone)]
pub enum GrantRequest {
    ClientCredentials {
        scope: TargetScope,
    },
    OnBehalfOf {
        assertion: Secret,
        scope: TargetScope,
    },
}

/// What an exchange needs, shared by every attempt.
#[derive(Clone)]
pub struct Exchange {
    pub endpoint: Arc<TokenEndpoint>,
    pub credentials: Arc<CredentialSource>,
    pub client_id: ClientId,
}

/// A grant that continues a user's sign-in and returns the refresh token with the token.
#[derive(Clone)]
pub enum UserGrantRequest {
    /// On-Behalf-Of with `offline_access`, at a delegation's creation.
    OnBehalfOfOffline {
        assertion: Secret,
        scope: TargetScope,
    },
    /// The refresh-token grant, at a delegation's redemption.
    Refresh {
        refresh_token: Secret,
        scope: TargetScope,
    },
}

impl Exchange {
    /// The grant, authenticated with `credential`, which the caller read to build its cache key.
    pub async fn run(
        &self,
        credential: Arc<ClientCredential>,
        request: &GrantRequest,
    ) -> Result<IssuedToken, UpstreamError> {
        let endpoint = &self.endpoint;
        self.authenticated(credential, |auth| async move {
            match request {
                GrantRequest::ClientCredentials { scope } => {
                    endpoint.client_credentials(&auth, scope).await
                }
                GrantRequest::OnBehalfOf { assertion, scope } => {
                    endpoint.on_behalf_of(&auth, assertion, scope).await
                }
            }
        })
        .await
    }

    /// A user grant that also returns the refresh token, authenticated as [`Exchange::run`] is.
    pub async fn run_user_grant(
        &self,
        credential: Arc<ClientCredential>,
        request: &UserGrantRequest,
    ) -> Result<UserGrant, UpstreamError> {
        let endpoint = &self.endpoint;
        self.authenticated(credential, |auth| async move {
            match request {
                UserGrantRequest::OnBehalfOfOffline { assertion, scope } => {
                    endpoint.on_behalf_of_offline(&auth, assertion, scope).await
                }
                UserGrantRequest::Refresh {
                    refresh_token,
                    scope,
                } => endpoint.refresh(&auth, refresh_token, scope).await,
            }
        })
        .await
    }

    /// `call` with the credential's client authentication, retried once with a newer credential when
    /// Entra refuses this one.
    async fn authenticated<T, F, Fut>(
        &self,
        credential: Arc<ClientCredential>,
        call: F,
    ) -> Result<T, UpstreamError>
    where
        F: Fn(ClientAuth) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let outcome = self.attempt(&credential, &call).await;
        let outcome = match outcome {
            Err(err) if err.kind == UpstreamErrorKind::CredentialsRejected => {
                match self.credentials.newer_than(&credential).await {
                    Some(newer) => {
                        tracing::warn!(
                            aadsts = err.aadsts,
                            credential_kind = credential.kind().as_str(),
                            credential_version = &*credential.used.version,
                            newer_version = &*newer.used.version,
                            "Entra refused the broker's credential; retrying once with the newer version"
                        );
                        self.attempt(&newer, &call).await
                    }
                    None => Err(err),
                }
            }
            other => other,
        };
        outcome.inspect_err(report)
    }

    async fn attempt<T, F, Fut>(
        &self,
        credential: &ClientCredential,
        call: &F,
    ) -> Result<T, UpstreamError>
    where
        F: Fn(ClientAuth) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let auth = credential
            .client_auth(self.client_id.as_str(), self.endpoint.url())
            .await?;
        call(auth).await.map_err(|err| {
            if err.is_about_the_credential() {
                err.with_credential(credential.used.clone())
            } else {
                err
            }
        })
    }
}

/// The operator's warning line for a failure about the broker's own credential.
fn report(err: &UpstreamError) {
    if let (true, Some(used)) = (err.is_about_the_credential(), &err.credential) {
        tracing::warn!(
            error = %err.kind,
            aadsts = err.aadsts,
            credential_kind = used.kind.as_str(),
            credential_version = &*used.version,
            correlation_id = err.correlation_id.as_deref(),
            "the broker's own credential was not accepted"
        );
    }
}
