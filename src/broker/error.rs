//! The core's errors: why the broker did not issue a token. Fine-grained reasons feed the audit line;
//! `http::error` maps each to a status and a stable code in one place.

use std::time::Duration;

use crate::broker::credential_kind::{CredentialKind, CredentialUsed};
use crate::broker::scope::ScopeError;

/// Why a caller token was rejected. Each variant has a stable `reason()` for the audit line; the
/// caller only ever sees `invalid_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    #[error("no Authorization header")]
    MissingAuthorization,
    #[error("Authorization header is not one well-formed Bearer token")]
    MalformedAuthorization,
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("algorithm is not RS256")]
    AlgorithmNotAllowed,
    #[error("token header names critical extensions")]
    CriticalHeader,
    #[error("token header has no kid")]
    MissingKeyId,
    #[error("signing key is not in the tenant's key set")]
    UnknownKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("issuer is not this tenant")]
    WrongIssuer,
    #[error("tenant is not this tenant")]
    WrongTenant,
    #[error("audience is not this broker")]
    WrongAudience,
    #[error("token version does not match its issuer")]
    VersionMismatch,
    #[error("token is not an access token")]
    NotAnAccessToken,
    #[error("token was issued to the broker itself")]
    BrokerItself,
    #[error("a required claim is missing or malformed")]
    MissingClaim,
    #[error("token claims contradict each other about user or app")]
    AmbiguousIdentity,
}

impl CallerError {
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingAuthorization => "missing_authorization",
            Self::MalformedAuthorization => "malformed_authorization",
            Self::Malformed => "malformed_token",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::CriticalHeader => "critical_header",
            Self::MissingKeyId => "missing_kid",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongTenant => "wrong_tenant",
            Self::WrongAudience => "wrong_audience",
            Self::VersionMismatch => "version_mismatch",
            Self::NotAnAccessToken => "not_an_access_token",
            Self::BrokerItself => "broker_itself",
            Self::MissingClaim => "missing_claim",
            Self::AmbiguousIdentity => "ambiguous_identity",
        }
    }
}

/// Why a background source (Key Vault through the managed identity) has not produced a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadFailure {
    /// Key Vault answered, and said no: access denied, secret missing, or the value is unparseable.
    Misconfigured,
    /// Key Vault or the identity endpoint could not be reached, or has not answered yet.
    Unreachable,
}

/// How a call to Entra's token endpoint failed. `Clone`, because one failure is shared with every
/// request that waited on the same single-flight exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamErrorKind {
    #[error("token endpoint unreachable, timed out or failing")]
    Unavailable,
    #[error("token endpoint answered something that is not a token response")]
    InvalidResponse,
    #[error("token endpoint is throttling the broker")]
    Throttled { retry_after: Duration },
    #[error("Entra rejected the broker's client credentials")]
    CredentialsRejected,
    #[error("the broker's client certificate is expired, so it was not sent")]
    CredentialExpired,
    #[error("the managed identity endpoint gave no token for the federated credential")]
    ManagedIdentityUnavailable,
    #[error("Entra rejected the requested scope")]
    ScopeRejected,
    #[error("Entra demands a new sign-in (claims challenge)")]
    InteractionRequired { claims: Option<String> },
    #[error("consent is missing for the broker or the resource")]
    ConsentRequired,
    #[error("Entra rejected the caller's token as an OBO assertion")]
    AssertionRejected,
    #[error("Entra refused the request")]
    Refused,
}

/// An Entra failure with what an operator needs to trace it (never the request or the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (AADSTS{aadsts:?}, correlation id {correlation_id:?})")]
pub struct UpstreamError {
    pub kind: UpstreamErrorKind,
    /// The first AADSTS code Entra gave, if any.
    pub aadsts: Option<u32>,
    pub correlation_id: Option<String>,
    /// The broker credential the failed request used, when the failure is about it.
    pub credential: Option<CredentialUsed>,
}

impl UpstreamError {
    pub fn new(kind: UpstreamErrorKind) -> Self {
        Self {
            kind,
            aadsts: None,
            correlation_id: None,
            credential: None,
        }
    }

    pub fn with_credential(mut self, credential: CredentialUsed) -> Self {
        self.credential = Some(credential);
        self
    }

    /// True when the failure is about the broker's own credential.
    pub fn is_about_the_credential(&self) -> bool {
        matches!(
            self.kind,
            UpstreamErrorKind::CredentialsRejected
                | UpstreamErrorKind::CredentialExpired
                | UpstreamErrorKind::ManagedIdentityUnavailable
        )
    }
}

/// Why the broker did not issue a token. `Display` is for operators; callers see the code and fixed
/// description chosen in `http::error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("caller token rejected: {0}")]
    InvalidCaller(#[from] CallerError),
    #[error("malformed scope: {0}")]
    InvalidScope(#[from] ScopeError),
    #[error(
        "signing keys have never loaded, or could not be refreshed to look for the token's key"
    )]
    SigningKeysUnavailable,
    #[error("user token lacks the required delegated scope")]
    InsufficientScope,
    #[error("caller is not allowed")]
    CallerNotAllowed,
    #[error("scope is not in the scope map")]
    ScopeNotAllowed,
    #[error("audience alias is not in the audience map")]
    UnknownAudience,
    #[error("an app-only caller asked for the user lane")]
    LaneNotAllowed,
    #[error("request pins policy revision {pinned}, current is {current}")]
    RevisionMismatch { pinned: u64, current: u64 },
    #[error("the policy document has never been loaded")]
    PolicyUnavailable,
    #[error("allowlist has never been loaded ({0:?})")]
    AllowlistUnavailable(LoadFailure),
    #[error("the broker's {kind} credential has never been loaded ({1:?})", kind = .0.as_str())]
    CredentialUnavailable(CredentialKind, LoadFailure),
    #[error("allowlist could not be confirmed within BROKER_ALLOWLIST_MAX_AGE_SECONDS")]
    AllowlistStale { retry_after: Duration },
    #[error("rate limit exceeded")]
    RateLimited { retry_after: Duration },
    #[error("token endpoint: {0}")]
    Upstream(#[from] UpstreamError),
}
