//! The broker's own credential at Entra's token endpoint: a client secret, a client certificate, or the
//! Function App's managed identity as a federated credential. Holds the current one with its version (a
//! digest, so tokens cached under a rotated credential are never served again) and turns it into what
//! one token request carries. Where certificates and identity tokens come from is behind two traits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::broker::certificate::{CertificateError, ClientCertificate};
pub use crate::broker::credential_kind::{CredentialKind, CredentialUsed};
use crate::broker::digest::Digest;
use crate::broker::error::{BrokerError, LoadFailure, UpstreamError, UpstreamErrorKind};
use crate::broker::freshness::{Freshness, ReadProblem};
use crate::clock::now;
use crate::secret::Secret;

/// Shortest time between two reloads that Entra's refusals trigger.
const RELOAD_FLOOR: Duration = Duration::from_secs(5);

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
}

enum Material {
    Secret(Secret),
    Certificate(ClientCertificate),
    ManagedIdentity(Arc<dyn FederatedToken>),
}

/// A usable credential and its version.
pub struct ClientCredential {
    pub version: Digest,
    pub used: CredentialUsed,
    material: Material,
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

    pub fn certificate(certificate: ClientCertificate) -> Self {
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

/// Re-reads the certificate from where it is kept (implemented by the refresh loop's sources).
#[async_trait::async_trait]
pub trait CertificateLoader: Send + Sync {
    async fn load(&self) -> Result<ClientCertificate, LoadFailure>;
}

struct State {
    current: Result<Arc<ClientCredential>, LoadFailure>,
    /// Reads from where the credential is kept (a fixed one is never read, so it stays at the default).
    freshness: Freshness,
}

pub struct CredentialSource {
    kind: CredentialKind,
    state: ArcSwap<State>,
    loader: Option<Arc<dyn CertificateLoader>>,
    /// One on-demand reload at a time, and when the last one ran (see `newer_than`).
    reloading: tokio::sync::Mutex<Option<Instant>>,
}

impl CredentialSource {
    /// A credential known at start-up (a secret from settings, or the managed identity).
    pub fn fixed(credential: ClientCredential) -> Self {
        Self::with(credential.kind(), Ok(Arc::new(credential)), None)
    }

    /// A credential still to be loaded (from Key Vault, or a certificate file); `loader` re-reads a
    /// certificate on demand when Entra refuses the current one.
    pub fn pending(kind: CredentialKind, loader: Option<Arc<dyn CertificateLoader>>) -> Self {
        Self::with(kind, Err(LoadFailure::Unreachable), loader)
    }

    fn with(
        kind: CredentialKind,
        current: Result<Arc<ClientCredential>, LoadFailure>,
        loader: Option<Arc<dyn CertificateLoader>>,
    ) -> Self {
        Self {
            kind,
            state: ArcSwap::from_pointee(State {
                current,
                freshness: Freshness::default(),
            }),
            loader,
            reloading: tokio::sync::Mutex::new(None),
        }
    }

    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    pub fn current(&self) -> Result<Arc<ClientCredential>, BrokerError> {
        self.state
            .load()
            .current
            .clone()
            .map_err(|failure| BrokerError::CredentialUnavailable(self.kind, failure))
    }

    /// How current the loaded copy is.
    pub fn freshness(&self) -> Freshness {
        self.state.load().freshness
    }

    /// Applies a load. A failure after a first success keeps the last good credential.
    pub fn apply(&self, loaded: Result<ClientCredential, LoadFailure>) {
        let state = self.state.load();
        let next = match loaded {
            Ok(fresh) => {
                let current = match &state.current {
                    Ok(old) if old.version == fresh.version => Arc::clone(old),
                    _ => {
                        tracing::info!(
                            credential_kind = fresh.kind().as_str(),
                            credential_version = &*fresh.used.version,
                            "broker credential loaded"
                        );
                        Arc::new(fresh)
                    }
                };
                State {
                    current: Ok(current),
                    freshness: state.freshness.succeeded(),
                }
            }
            Err(failure) => State {
                current: match &state.current {
                    Ok(old) => Ok(Arc::clone(old)),
                    Err(_) => Err(failure),
                },
                freshness: state.freshness.failed(ReadProblem::from(failure)),
            },
        };
        self.state.store(Arc::new(next));
    }

    /// After Entra refused `rejected`: re-reads the certificate and returns the current credential if
    /// it is another version. One reload at a time, at most one per `RELOAD_FLOOR`; whoever waited
    /// sees its result.
    pub async fn newer_than(&self, rejected: &ClientCredential) -> Option<Arc<ClientCredential>> {
        let loader = self.loader.as_ref()?;
        let mut last_reload = self.reloading.lock().await;
        if let Some(newer) = self.newer(rejected) {
            return Some(newer);
        }
        if last_reload.is_some_and(|at| at.elapsed() < RELOAD_FLOOR) {
            return None;
        }
        *last_reload = Some(Instant::now());
        self.apply(loader.load().await.map(ClientCredential::certificate));
        self.newer(rejected)
    }

    fn newer(&self, rejected: &ClientCredential) -> Option<Arc<ClientCredential>> {
        self.current()
            .ok()
            .filter(|c| c.version != rejected.version)
    }
}
