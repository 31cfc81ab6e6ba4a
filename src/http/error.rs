//! The one place errors become HTTP: status, stable `error` code, fixed description and extra headers
//! (`WWW-Authenticate`, `Retry-After`, `Allow`). Descriptions never echo input or upstream text.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::broker::credential::CredentialKind;
use crate::broker::error::{BrokerError, LoadFailure, UpstreamErrorKind};
use crate::logging::telemetry::Refusal;

/// What a description may name: configured alias names and the configured resource being asked for.
/// Both come from the broker's own settings, never from the request.
#[derive(Debug, Default)]
pub struct ErrorContext<'a> {
    pub known_aliases: Vec<&'a str>,
    pub resource: Option<&'a str>,
    /// The revision of the policy that refused the request, for the 403 bodies.
    pub policy_revision: Option<u64>,
}

/// Why a request was not served, at the HTTP edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400 `invalid_request`; the reason is for the audit line.
    BadRequest(&'static str),
    PayloadTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed {
        allow: &'static str,
    },
    NotFound,
    Broker(BrokerError),
}

impl From<BrokerError> for ApiError {
    fn from(err: BrokerError) -> Self {
        Self::Broker(err)
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use BrokerError as B;
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Broker(err) => match err {
                B::InvalidScope(_) | B::InvalidDelegationRequest(_) => StatusCode::BAD_REQUEST,
                B::InvalidCaller(_) => StatusCode::UNAUTHORIZED,
                B::InsufficientScope
                | B::CallerNotAllowed
                | B::ScopeNotAllowed
                | B::UnknownAudience
                | B::LaneNotAllowed
                | B::AudienceNotAllowed
                | B::AudienceNotDelegated
                | B::LaneNotDelegated => StatusCode::FORBIDDEN,
                B::DelegationsNotEnabled | B::DelegationNotFound => StatusCode::NOT_FOUND,
                B::DelegationNotActive => StatusCode::CONFLICT,
                B::InvalidSubjectToken(_) | B::ReauthenticationRequired { .. } => {
                    StatusCode::UNAUTHORIZED
                }
                B::DelegationStoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                B::RevisionMismatch { .. } => StatusCode::CONFLICT,
                B::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                B::SigningKeysUnavailable | B::PolicyUnavailable | B::AllowlistStale { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                B::AllowlistUnavailable(LoadFailure::Misconfigured)
                | B::CredentialUnavailable(_, LoadFailure::Misconfigured) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                B::AllowlistUnavailable(LoadFailure::Unreachable)
                | B::CredentialUnavailable(_, LoadFailure::Unreachable) => StatusCode::BAD_GATEWAY,
                B::Upstream(err) => match err.kind {
                    UpstreamErrorKind::Unavailable
                    | UpstreamErrorKind::InvalidResponse
                    | UpstreamErrorKind::Refused
                    | UpstreamErrorKind::ManagedIdentityUnavailable => StatusCode::BAD_GATEWAY,
                    UpstreamErrorKind::Throttled { .. } => StatusCode::SERVICE_UNAVAILABLE,
                    UpstreamErrorKind::CredentialsRejected
                    | UpstreamErrorKind::CredentialExpired
                    | UpstreamErrorKind::ScopeRejected => StatusCode::INTERNAL_SERVER_ERROR,
                    UpstreamErrorKind::InteractionRequired { .. }
                    | UpstreamErrorKind::AssertionRejected => StatusCode::UNAUTHORIZED,
                    UpstreamErrorKind::ConsentRequired => StatusCode::FORBIDDEN,
                },
            },
        }
    }

    /// What the audit line records about this refusal.
    pub fn refusal(&self) -> Refusal<'_> {
        Refusal {
            status: self.status().as_u16(),
            code: self.code(),
            detail: self.detail(),
            upstream: match self {
                ApiError::Broker(BrokerError::Upstream(err)) => Some(err),
                _ => None,
            },
        }
    }

    /// The fine-grained reason behind a code, where there is one.
    fn detail(&self) -> Option<&'static str> {
        match self {
            ApiError::BadRequest(reason)
            | ApiError::Broker(BrokerError::InvalidDelegationRequest(reason)) => Some(reason),
            ApiError::Broker(
                BrokerError::InvalidCaller(err) | BrokerError::InvalidSubjectToken(err),
            ) => Some(err.reason()),
            ApiError::Broker(BrokerError::InvalidScope(err)) => Some(err.reason()),
            ApiError::Broker(BrokerError::Upstream(err))
                if err.kind == UpstreamErrorKind::CredentialExpired =>
            {
                Some("certificate_expired")
            }
            _ => None,
        }
    }

    /// The stable, documented `error` code. Written out by hand, never derived from `Display`.
    pub fn code(&self) -> &'static str {
        use BrokerError as B;
        match self {
            Self::BadRequest(_) => "invalid_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::NotFound => "not_found",
            Self::Broker(err) => match err {
                B::InvalidScope(_) => "invalid_scope",
                B::InvalidDelegationRequest(_) => "invalid_request",
                B::InvalidCaller(_) => "invalid_token",
                B::InsufficientScope => "insufficient_scope",
                B::CallerNotAllowed => "caller_not_allowed",
                B::ScopeNotAllowed => "scope_not_allowed",
                B::UnknownAudience => "unknown_audience",
                B::LaneNotAllowed => "lane_not_allowed",
                B::DelegationsNotEnabled => "delegations_not_enabled",
                B::DelegationNotFound => "delegation_not_found",
                B::DelegationNotActive => "delegation_not_active",
                B::AudienceNotAllowed => "audience_not_allowed",
                B::InvalidSubjectToken(_) => "invalid_subject_token",
                B::AudienceNotDelegated => "audience_not_delegated",
                B::LaneNotDelegated => "lane_not_delegated",
                B::ReauthenticationRequired { .. } => "reauthentication_required",
                B::DelegationStoreUnavailable => "delegation_store_unavailable",
                B::RevisionMismatch { .. } => "revision_mismatch",
                B::RateLimited { .. } => "rate_limited",
                B::SigningKeysUnavailable => "signing_keys_unavailable",
                B::PolicyUnavailable => "policy_unavailable",
                B::AllowlistStale { .. } => "allowlist_stale",
                B::AllowlistUnavailable(LoadFailure::Misconfigured) => "allowlist_misconfigured",
                B::AllowlistUnavailable(LoadFailure::Unreachable) => "key_vault_unavailable",
                B::CredentialUnavailable(
                    CredentialKind::Certificate,
                    LoadFailure::Misconfigured,
                ) => "client_certificate_misconfigured",
                B::CredentialUnavailable(_, LoadFailure::Misconfigured) => {
                    "client_secret_misconfigured"
                }
                B::CredentialUnavailable(_, LoadFailure::Unreachable) => "key_vault_unavailable",
                B::Upstream(err) => match err.kind {
                    UpstreamErrorKind::Unavailable => "entra_unavailable",
                    UpstreamErrorKind::InvalidResponse => "entra_invalid_response",
                    UpstreamErrorKind::Refused => "entra_error",
                    UpstreamErrorKind::Throttled { .. } => "upstream_throttled",
                    UpstreamErrorKind::CredentialsRejected
                    | UpstreamErrorKind::CredentialExpired => "broker_credentials_rejected",
                    UpstreamErrorKind::ManagedIdentityUnavailable => "managed_identity_unavailable",
                    UpstreamErrorKind::ScopeRejected => "scope_rejected_by_entra",
                    UpstreamErrorKind::InteractionRequired { .. } => "interaction_required",
                    UpstreamErrorKind::AssertionRejected => "invalid_token",
                    UpstreamErrorKind::ConsentRequired => "consent_required",
                },
            },
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Broker(
                BrokerError::RateLimited { retry_after }
                | BrokerError::AllowlistStale { retry_after },
            ) => Some(*retry_after),
            Self::Broker(BrokerError::Upstream(err)) => match err.kind {
                UpstreamErrorKind::Throttled { retry_after } => Some(retry_after),
                _ => None,
            },
            Self::Broker(
                BrokerError::SigningKeysUnavailable
                | BrokerError::PolicyUnavailable
                | BrokerError::DelegationStoreUnavailable,
            ) => Some(Duration::from_secs(5)),
            _ => None,
        }
    }

    fn www_authenticate(&self) -> Option<String> {
        match self {
            // RFC 6750 §3: a 401 carries a challenge.
            _ if self.code() == "invalid_token" => {
                Some(r#"Bearer error="invalid_token""#.to_owned())
            }
            Self::Broker(BrokerError::InsufficientScope) => {
                Some(r#"Bearer error="insufficient_scope""#.to_owned())
            }
            Self::Broker(BrokerError::ReauthenticationRequired { .. }) => Some(
                r#"Bearer error="invalid_token", error_description="reauthentication_required""#
                    .to_owned(),
            ),
            Self::Broker(BrokerError::InvalidSubjectToken(_)) => {
                Some(r#"Bearer error="invalid_request""#.to_owned())
            }
            // Microsoft's claims-challenge form for APIs: the claims JSON, base64-encoded.
            Self::Broker(BrokerError::Upstream(err)) => match &err.kind {
                UpstreamErrorKind::InteractionRequired { claims } => {
                    let encoded = base64::engine::general_purpose::STANDARD
                        .encode(claims.as_deref().unwrap_or("{}"));
                    Some(format!(
                        r#"Bearer error="insufficient_claims", claims="{encoded}""#
                    ))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The JSON body: `error`, `error_description`, and the extra fields some codes carry.
    pub fn body(&self, context: &ErrorContext<'_>) -> Value {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), json!(self.code()));
        body.insert("error_description".into(), json!(self.description(context)));
        match self {
            Self::Broker(BrokerError::RevisionMismatch { current, .. }) => {
                body.insert("current_revision".into(), json!(current));
            }
            Self::Broker(BrokerError::ReauthenticationRequired { claims }) => {
                body.insert("claims".into(), json!(claims));
            }
            Self::Broker(
                BrokerError::CallerNotAllowed
                | BrokerError::ScopeNotAllowed
                | BrokerError::LaneNotAllowed
                | BrokerError::UnknownAudience
                | BrokerError::AudienceNotAllowed,
            ) => {
                if let Some(revision) = context.policy_revision {
                    body.insert("policy_revision".into(), json!(revision));
                }
            }
            Self::Broker(BrokerError::Upstream(err)) => match &err.kind {
                UpstreamErrorKind::InteractionRequired { claims } => {
                    body.insert("claims".into(), json!(claims));
                    body.insert("aadsts".into(), json!(err.aadsts));
                }
                UpstreamErrorKind::ConsentRequired => {
                    body.insert("aadsts".into(), json!(err.aadsts));
                }
                _ => {}
            },
            _ => {}
        }
        Value::Object(body)
    }

    pub fn into_response(self, context: &ErrorContext<'_>) -> Response {
        let mut response =
            warp::reply::with_status(warp::reply::json(&self.body(context)), self.status())
                .into_response_inner();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self
            .www_authenticate()
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(delay) = self.retry_after() {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(delay.as_secs().max(1)),
            );
        }
        if let Self::MethodNotAllowed { allow } = self {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// `warp::Reply::into_response` under a name that does not collide with `ApiError::into_response`.
trait IntoResponseInner {
    fn into_response_inner(self) -> Response;
}

impl<T: warp::Reply> IntoResponseInner for T {
    fn into_response_inner(self) -> Response {
        warp::Reply::into_response(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::error::{CallerError, UpstreamError};

    #[test]
    fn status_and_code_table() {
        let upstream = |kind| ApiError::Broker(BrokerError::Upstream(UpstreamError::new(kind)));
        let cases = [
            (ApiError::BadRequest("x"), 400, "invalid_request"),
            (
                ApiError::Broker(CallerError::Expired.into()),
                401,
                "invalid_token",
            ),
            (
                ApiError::Broker(BrokerError::CallerNotAllowed),
                403,
                "caller_not_allowed",
            ),
            (
                ApiError::Broker(BrokerError::RevisionMismatch {
                    pinned: 2,
                    current: 1,
                }),
                409,
                "revision_mismatch",
            ),
            (
                ApiError::Broker(BrokerError::AllowlistUnavailable(LoadFailure::Unreachable)),
                502,
                "key_vault_unavailable",
            ),
            (
                ApiError::Broker(BrokerError::AllowlistUnavailable(
                    LoadFailure::Misconfigured,
                )),
                500,
                "allowlist_misconfigured",
            ),
            (
                ApiError::Broker(BrokerError::AllowlistStale {
                    retry_after: Duration::from_secs(120),
                }),
                503,
                "allowlist_stale",
            ),
            (
                upstream(UpstreamErrorKind::CredentialsRejected),
                500,
                "broker_credentials_rejected",
            ),
            (
                upstream(UpstreamErrorKind::Unavailable),
                502,
                "entra_unavailable",
            ),
            (
                upstream(UpstreamErrorKind::CredentialExpired),
                500,
                "broker_credentials_rejected",
            ),
            (
                upstream(UpstreamErrorKind::ManagedIdentityUnavailable),
                502,
                "managed_identity_unavailable",
            ),
            (
                ApiError::Broker(BrokerError::CredentialUnavailable(
                    CredentialKind::Certificate,
                    LoadFailure::Misconfigured,
                )),
                500,
                "client_certificate_misconfigured",
            ),
            (
                upstream(UpstreamErrorKind::Throttled {
                    retry_after: Duration::from_secs(3),
                }),
                503,
                "upstream_throttled",
            ),
            (
                upstream(UpstreamErrorKind::AssertionRejected),
                401,
                "invalid_token",
            ),
            (
                upstream(UpstreamErrorKind::ConsentRequired),
                403,
                "consent_required",
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!(
                (err.status().as_u16(), err.code()),
                (status, code),
                "{err:?}"
            );
        }
    }

    #[test]
    fn invalid_token_carries_the_bearer_challenge() {
        let response = ApiError::Broker(CallerError::MissingAuthorization.into())
            .into_response(&ErrorContext::default());
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn claims_challenge_is_base64_in_the_header_and_raw_in_the_body() {
        let claims = r#"{"access_token":{"capolids":{"essential":true,"values":["c1"]}}}"#;
        let err = ApiError::Broker(BrokerError::Upstream(UpstreamError {
            kind: UpstreamErrorKind::InteractionRequired {
                claims: Some(claims.into()),
            },
            aadsts: Some(50076),
            correlation_id: None,
            credential: None,
        }));
        let body = err.body(&ErrorContext::default());
        assert_eq!(body["claims"], claims);
        assert_eq!(body["aadsts"], 50076);
        let response = err.into_response(&ErrorContext::default());
        let expected = base64::engine::general_purpose::STANDARD.encode(claims);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            format!(r#"Bearer error="insufficient_claims", claims="{expected}""#).as_str()
        );
    }

    #[test]
    fn consent_description_names_the_configured_resource() {
        let err = ApiError::Broker(BrokerError::Upstream(UpstreamError::new(
            UpstreamErrorKind::ConsentRequired,
        )));
        let context = ErrorContext {
            resource: Some("https://database.windows.net/.default"),
            ..ErrorContext::default()
        };
        assert_eq!(
            err.description(&context),
            "The user or an administrator must consent to the broker's delegated access to https://database.windows.net/.default (AADSTS65001)."
        );
    }

    #[test]
    fn a_stale_allowlist_asks_to_retry_after_the_refresh_interval() {
        let err = ApiError::Broker(BrokerError::AllowlistStale {
            retry_after: Duration::from_secs(120),
        });
        let response = err.into_response(&ErrorContext::default());
        assert_eq!(response.headers()[header::RETRY_AFTER], "120");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn refusals_name_the_deciding_policy_revision() {
        let context = ErrorContext {
            policy_revision: Some(7),
            ..ErrorContext::default()
        };
        for err in [
            BrokerError::CallerNotAllowed,
            BrokerError::ScopeNotAllowed,
            BrokerError::LaneNotAllowed,
            BrokerError::UnknownAudience,
        ] {
            assert_eq!(
                ApiError::Broker(err.clone()).body(&context)["policy_revision"],
                7,
                "{err:?}"
            );
        }
        assert!(
            ApiError::Broker(BrokerError::InsufficientScope).body(&context)["policy_revision"]
                .is_null()
        );
    }

    #[test]
    fn an_unloaded_policy_is_a_503_with_retry_after() {
        let err = ApiError::Broker(BrokerError::PolicyUnavailable);
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (503, "policy_unavailable")
        );
        assert_eq!(
            err.into_response(&ErrorContext::default()).headers()[header::RETRY_AFTER],
            "5"
        );
    }

    #[test]
    fn throttling_passes_retry_after_on() {
        let err = ApiError::Broker(BrokerError::Upstream(UpstreamError::new(
            UpstreamErrorKind::Throttled {
                retry_after: Duration::from_secs(7),
            },
        )));
        assert_eq!(
            err.into_response(&ErrorContext::default()).headers()[header::RETRY_AFTER],
            "7"
        );
    }
}
