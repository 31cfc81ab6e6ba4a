//! The core: validates callers, decides through the grants policy, and performs client-credential or
//! On-Behalf-Of exchanges through the token cache. Knows nothing of warp
//! or the wire JSON; answers in domain types and `BrokerError`.

pub mod allowlist;
pub mod authenticated;
pub mod caller;
pub mod certificate;
pub mod credential;
pub mod credential_kind;
pub mod credential_source;
pub mod digest;
pub mod entra_error;
pub mod error;
pub mod excerpt;
pub mod exchange;
pub mod freshness;
pub mod ids;
pub mod jwks;
pub mod metrics;
pub mod policy;
pub mod rate_limit;
pub mod scope;
pub mod strict_json;
pub mod token_cache;
pub mod upstream;
pub mod validation;

use std::sync::Arc;

use crate::broker::allowlist::Allowlist;
use crate::broker::caller::{Caller, CallerKind};
use futures_util::future::BoxFuture;

use crate::broker::authenticated::{Exchange, GrantRequest};
use crate::broker::credential::ClientCredential;
use crate::broker::credential_source::CredentialSource;
use crate::broker::digest::Digest;
use crate::broker::error::BrokerError;
use crate::broker::exchange::{IssuedToken, TokenEndpoint};
use crate::broker::ids::{ClientId, TenantId};
use crate::broker::jwks::JwksCache;
use crate::broker::metrics::Metrics;
use crate::broker::policy::source::PolicySource;
use crate::broker::rate_limit::RateLimiter;
use crate::broker::scope::TargetScope;
use crate::broker::token_cache::{Grant, TokenCache};
use crate::broker::validation::CallerValidator;
use crate::secret::Secret;

/// Which identity a token is issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// On-Behalf-Of: a token for the signed-in user.
    User,
    /// Client credentials: the broker's own service principal.
    Service,
}

impl Lane {
    /// The lane a request runs in: as asked, or by default users' own and apps' the service's. An app
    /// can never have the user lane, and a user lane never falls back to the service principal.
    pub fn choose(kind: CallerKind, asked: Option<Lane>) -> Result<Lane, BrokerError> {
        match (asked, kind) {
            (Some(Lane::User), CallerKind::Msi) => Err(BrokerError::LaneNotAllowed),
            (Some(lane), _) => Ok(lane),
            (None, CallerKind::User) => Ok(Lane::User),
            (None, CallerKind::Msi) => Ok(Lane::Service),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Service => "service",
        }
    }
}

pub struct Broker {
    pub jwks: Arc<JwksCache>,
    pub policy: PolicySource,
    /// The legacy allowlist, refreshed from Key Vault (None when a policy document is configured).
    pub allowlist: Option<Arc<Allowlist>>,
    pub credential: Arc<CredentialSource>,
    pub metrics: Arc<Metrics>,
    pub cache: TokenCache,
    pub rate_limiter: RateLimiter,
    validator: CallerValidator,
    required_user_scope: Option<String>,
    endpoint: Arc<TokenEndpoint>,
    tenant: TenantId,
    client_id: ClientId,
}

/// The parts `Broker::new` assembles; built by `app`.
pub struct BrokerParts {
    pub jwks: Arc<JwksCache>,
    pub validator: CallerValidator,
    /// The delegated scope every user token must carry, when configured.
    pub required_user_scope: Option<String>,
    pub policy: PolicySource,
    pub allowlist: Option<Arc<Allowlist>>,
    pub endpoint: TokenEndpoint,
    pub cache: TokenCache,
    pub rate_limiter: RateLimiter,
    pub credential: Arc<CredentialSource>,
    pub metrics: Arc<Metrics>,
    pub tenant: TenantId,
    pub client_id: ClientId,
}

impl Broker {
    pub fn new(parts: BrokerParts) -> Self {
        Self {
            jwks: parts.jwks,
            policy: parts.policy,
            allowlist: parts.allowlist,
            required_user_scope: parts.required_user_scope,
            credential: parts.credential,
            metrics: parts.metrics,
            cache: parts.cache,
            rate_limiter: parts.rate_limiter,
            validator: parts.validator,
            endpoint: Arc::new(parts.endpoint),
            tenant: parts.tenant,
            client_id: parts.client_id,
        }
    }

    /// A validated caller whose token meets the user-scope rule.
    pub async fn authenticate(&self, bearer: &Secret) -> Result<Arc<Caller>, BrokerError> {
        let (caller, _) = self.validator.validate(bearer).await?;
        // RFC 6750 §3.1: a token without the required scope is insufficient_scope, a 403.
        match (&self.required_user_scope, caller.kind) {
            (Some(required), CallerKind::User) if !caller.scopes.iter().any(|s| s == required) => {
                Err(BrokerError::InsufficientScope)
            }
            _ => Ok(caller),
        }
    }

    /// Periodic upkeep: forgets idle callers' rate-limit state, validated callers whose tokens expired,
    /// and cached tokens and refusals past their time.
    pub fn housekeeping(&self) {
        self.rate_limiter.forget_idle();
        self.validator.forget_expired();
        self.cache.forget_expired();
    }

    /// Takes one request from the caller's and the overall budget.
    pub fn check_rate(&self, caller: &Caller) -> Result<(), BrokerError> {
        self.rate_limiter.check(&caller.oid)
    }

    /// The broker's service-principal token for `scope` (client credentials).
    pub async fn service_token(&self, scope: &TargetScope) -> Result<Grant, BrokerError> {
        let credential = self.credential.current()?;
        let key = Digest::of(&[
            b"client_credentials",
            self.tenant.as_str().as_bytes(),
            self.client_id.as_str().as_bytes(),
            credential.version.as_bytes(),
            scope.as_str().as_bytes(),
        ]);
        let request = GrantRequest::ClientCredentials {
            scope: scope.clone(),
        };
        let fetch = self.fetch(credential, request);
        self.count(self.cache.get_or_fetch(key, u64::MAX, fetch).await)
    }

    /// A token for `scope` issued to the calling user, by On-Behalf-Of with the user's own token. The
    /// cache key includes the user, the tenant and a digest of that token, and the result is never served
    /// past that token's expiry.
    pub async fn on_behalf_of(
        &self,
        caller: &Caller,
        assertion: &Secret,
        scope: &TargetScope,
    ) -> Result<Grant, BrokerError> {
        let credential = self.credential.current()?;
        let key = Digest::of(&[
            b"on_behalf_of",
            caller.tenant.as_str().as_bytes(),
            self.client_id.as_str().as_bytes(),
            credential.version.as_bytes(),
            caller.oid.as_str().as_bytes(),
            scope.as_str().as_bytes(),
            Digest::of_bytes(assertion.expose().as_bytes()).as_bytes(),
        ]);
        let request = GrantRequest::OnBehalfOf {
            assertion: assertion.clone(),
            scope: scope.clone(),
        };
        let fetch = self.fetch(credential, request);
        self.count(self.cache.get_or_fetch(key, caller.expires_at, fetch).await)
    }

    /// The token cache's fetch for one cold key: the grant, authenticated with the credential whose
    /// version is in that key.
    fn fetch(
        &self,
        credential: Arc<ClientCredential>,
        request: GrantRequest,
    ) -> impl Fn() -> BoxFuture<'static, Result<IssuedToken, error::UpstreamError>> + Send + Sync + 'static
    {
        let exchange = Exchange {
            endpoint: self.endpoint.clone(),
            credentials: self.credential.clone(),
            client_id: self.client_id.clone(),
        };
        move || {
            let (exchange, credential, request) =
                (exchange.clone(), credential.clone(), request.clone());
            Box::pin(async move { exchange.run(credential, &request).await })
        }
    }

    fn count(&self, outcome: Result<Grant, error::UpstreamError>) -> Result<Grant, BrokerError> {
        if let Ok(grant) = &outcome {
            Metrics::add(if grant.cache_hit {
                &self.metrics.cache_hits
            } else {
                &self.metrics.cache_misses
            });
        }
        Ok(outcome?)
    }
}
