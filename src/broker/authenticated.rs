//! One exchange at the token endpoint authenticated with the broker's current credential. When Entra
//! refuses the credential, retried once: a managed identity with a freshly fetched identity token (the
//! held one may be signed with a retired key, or older than its endpoint said), a certificate with the
//! version it replaced (a new version refused on first use) or with a newer one re-read from its
//! source. What Entra made of the credential is recorded for health, and a refusal about the broker's
//! own credential is reported in a warning line (AADSTS code, credential kind and version, never the
//! assertion).

use std::sync::Arc;

use crate::broker::credential::{ClientAuth, ClientCredential, Standing};
use crate::broker::credential_source::CredentialSource;
use crate::broker::error::{UpstreamError, UpstreamErrorKind};
use crate::broker::exchange::{IssuedToken, TokenEndpoint};
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

impl Exchange {
    /// The grant, authenticated with `credential`, which the caller read to build its cache key.
    pub async fn run(
        &self,
        credential: Arc<ClientCredential>,
        request: &GrantRequest,
    ) -> Result<IssuedToken, UpstreamError> {
        let (outcome, auth) = self.attempt(&credential, request).await;
        let (outcome, used) = match outcome {
            Err(err) if err.kind == UpstreamErrorKind::CredentialsRejected => {
                self.retry(credential, auth, request, err).await
            }
            other => (other, credential),
        };
        match &outcome {
            Ok(_) => used.set_standing(Standing::Accepted),
            Err(err) if err.kind == UpstreamErrorKind::CredentialsRejected => {
                used.set_standing(Standing::Refused);
            }
            Err(_) => {}
        }
        outcome.inspect_err(report)
    }

    /// The one retry after Entra refused `refused` (presented as `auth`), and the credential it used.
    async fn retry(
        &self,
        refused: Arc<ClientCredential>,
        auth: Option<ClientAuth>,
        request: &GrantRequest,
        err: UpstreamError,
    ) -> (Result<IssuedToken, UpstreamError>, Arc<ClientCredential>) {
        let renewed = auth.is_some_and(|auth| refused.forget_refused(&auth));
        let next = if renewed {
            tracing::warn!(
                aadsts = err.aadsts,
                credential_kind = refused.kind().as_str(),
                credential_version = &*refused.used.version,
                "Entra refused the managed identity's token; retrying once with a new one"
            );
            Some(Arc::clone(&refused))
        } else {
            let other = self.credentials.replacement_for(&refused).await;
            if let Some(other) = &other {
                tracing::warn!(
                    aadsts = err.aadsts,
                    credential_kind = refused.kind().as_str(),
                    credential_version = &*refused.used.version,
                    other_version = &*other.used.version,
                    "Entra refused the broker's credential; retrying once with another version"
                );
            }
            other
        };
        match next {
            Some(next) => (self.attempt(&next, request).await.0, next),
            None => (Err(err), refused),
        }
    }

    /// One request, and the proof it presented (None when there was none to present).
    async fn attempt(
        &self,
        credential: &ClientCredential,
        request: &GrantRequest,
    ) -> (Result<IssuedToken, UpstreamError>, Option<ClientAuth>) {
        let auth = match credential
            .client_auth(self.client_id.as_str(), self.endpoint.url())
            .await
        {
            Ok(auth) => auth,
            Err(err) => return (Err(err), None),
        };
        let outcome = match request {
            GrantRequest::ClientCredentials { scope } => {
                self.endpoint.client_credentials(&auth, scope).await
            }
            GrantRequest::OnBehalfOf { assertion, scope } => {
                self.endpoint.on_behalf_of(&auth, assertion, scope).await
            }
        };
        let outcome = outcome.map_err(|err| {
            if err.is_about_the_credential() {
                err.with_credential(credential.used.clone())
            } else {
                err
            }
        });
        (outcome, Some(auth))
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
