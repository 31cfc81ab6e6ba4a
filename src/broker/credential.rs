//! The broker's own credential at Entra's token endpoint: a client secret, a client certificate, or the
//! Function App's managed identity as a federated credential. Holds the current one with its version (a
//! digest, so tokens cached under a rotated credential are never served again) and turns it into what
//! one token request carries. Where certificates and identity tokens come from is behind two traits;
//! which version is in force, and which are set aside, is `credential_source`'s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::broker::certificate::{CertificateError, ClientCertificate};
pub use crate::broker::credential_kind::{CredentialKind, CredentialUsed};
use crate::broker::digest::Digest;
use crate::broker::error::{UpstreamError, UpstreamErrorKind};
use crate::clock::now;
use crate::secret::Secret;

/// What one token request carries to authenticate the broker.
pub enum ClientAuth {
    /// `client_secret`.
    Secret(Secret),
    /// `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` + `client_assertion`.
    Assertion(Secret),
}

/// The managed identity's token for the token-exchange audience (implemented in `azure`).
#[async_trait::async_trait]
pub trait FederatedToken: Send + Sync {
    /// A token valid for at least a little longer; `Err` when none can be had.
    async fn token(&self) -> Result<Secret, ()>;
    /// How old the token being served is, if there is one.
    fn age(&self) -> Option<Duration>;
    /// Entra refused `token`: forget it, and any copy cached on the way, so that `token()` fetches a
    /// new one. True when a retry can present another token (this call dropped `token`, or another
    /// caller already had); false when `token` was itself fetched after a refusal moments ago.
    fn forget(&self, token: &Secret) -> bool;
}

enum Material {
    Secret(Secret),
    Certificate(Arc<ClientCertificate>),
    ManagedIdentity(Arc<dyn FederatedToken>),
}

/// What Entra made of a credential the last time it was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Never presented yet.
    Untried,
    Accepted,
    /// Refused, and neither a fresh identity token nor another version helped.
    Refused,
}

/// Why a certificate version cannot be used now, whatever Entra would say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    Expired,
    NotYetValid,
}

/// A usable credential and its version.
pub struct ClientCredential {
    pub version: Digest,
    pub used: CredentialUsed,
    material: Material,
    standing: AtomicU8,
}

impl ClientCredential {
    pub fn secret(secret: Secret) -> Self {
        let version = Digest::of_bytes(secret.expose().as_bytes());
        // Eight hex digits of the digest tell two secrets apart and reveal nothing usable.
        let label: String = version
            .as_bytes()
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        Self::new(
            CredentialKind::Secret,
            version,
            label,
            Material::Secret(secret),
        )
    }

    pub fn certificate(certificate: Arc<ClientCertificate>) -> Self {
        let label = certificate.thumbprint_sha256.clone();
        let version = Digest::of(&[b"certificate", label.as_bytes()]);
        Self::new(
            CredentialKind::Certificate,
            version,
            label,
            Material::Certificate(certificate),
        )
    }

    /// The identity's `client_id` and the `audience` its token is asked for make the version: a new
    /// identity token is the same credential, so it does not start new cache keys.
    pub fn managed_identity(
        client_id: &str,
        audience: &str,
        tokens: Arc<dyn FederatedToken>,
    ) -> Self {
        let version = Digest::of(&[
            b"managed-identity",
            client_id.as_bytes(),
            audience.as_bytes(),
        ]);
        Self::new(
            CredentialKind::ManagedIdentity,
            version,
            client_id.to_owned(),
            Material::ManagedIdentity(tokens),
        )
    }

    fn new(kind: CredentialKind, version: Digest, label: String, material: Material) -> Self {
        Self {
            version,
            used: CredentialUsed {
                kind,
                version: label.into(),
            },
            material,
            standing: AtomicU8::new(Standing::Untried as u8),
        }
    }

    pub fn standing(&self) -> Standing {
        match self.standing.load(Ordering::Acquire) {
            s if s == Standing::Accepted as u8 => Standing::Accepted,
            s if s == Standing::Refused as u8 => Standing::Refused,
            _ => Standing::Untried,
        }
    }

    /// Records what Entra made of this credential (stored only when it changes).
    pub fn set_standing(&self, standing: Standing) {
        if self.standing() != standing {
            self.standing.store(standing as u8, Ordering::Release);
        }
    }

    /// Why a certificate cannot be presented at `now` (Unix seconds), if it cannot.
    pub fn unusable_at(&self, now: u64) -> Option<Unusable> {
        let certificate = self.certificate_details()?;
        if certificate.is_expired(now) {
            Some(Unusable::Expired)
        } else if i64::try_from(now).is_ok_and(|now| now < certificate.not_before) {
            Some(Unusable::NotYetValid)
        } else {
            None
        }
    }

    /// After Entra refused `auth`: a managed identity drops the refused token so the next `client_auth`
    /// fetches a new one. True when retrying with this same credential can present something new.
    pub fn forget_refused(&self, auth: &ClientAuth) -> bool {
        match (&self.material, auth) {
            (Material::ManagedIdentity(tokens), ClientAuth::Assertion(token)) => {
                tokens.forget(token)
            }
            _ => false,
        }
    }

    pub fn kind(&self) -> CredentialKind {
        self.used.kind
    }

    pub fn certificate_details(&self) -> Option<&ClientCertificate> {
        match &self.material {
            Material::Certificate(certificate) => Some(certificate),
            _ => None,
        }
    }

    pub fn identity_token_age(&self) -> Option<Duration> {
        match &self.material {
            Material::ManagedIdentity(tokens) => tokens.age(),
            _ => None,
        }
    }

    /// The proof for one request to `token_endpoint` as `client_id`: the secret, a freshly signed
    /// certificate assertion, or the managed identity's current token.
    pub async fn client_auth(
        &self,
        client_id: &str,
        token_endpoint: &str,
    ) -> Result<ClientAuth, UpstreamError> {
        let failed = |kind| UpstreamError::new(kind).with_credential(self.used.clone());
        match &self.material {
            Material::Secret(secret) => Ok(ClientAuth::Secret(secret.clone())),
            Material::Certificate(certificate) => certificate
                .assertion(client_id, token_endpoint, now())
                .map(ClientAuth::Assertion)
                .map_err(|err| match err {
                    CertificateError::Expired => failed(UpstreamErrorKind::CredentialExpired),
                    _ => failed(UpstreamErrorKind::CredentialsRejected),
                }),
            Material::ManagedIdentity(tokens) => tokens
                .token()
                .await
                .map(ClientAuth::Assertion)
                .map_err(|()| failed(UpstreamErrorKind::ManagedIdentityUnavailable)),
        }
    }
}
