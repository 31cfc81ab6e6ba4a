//! Reads Entra's token-endpoint error body (`error`, `error_description`, `error_codes`, `claims`,
//! `suberror`, `correlation_id`) and classifies it. The description goes to the operator log only.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use crate::broker::error::{UpstreamError, UpstreamErrorKind};

/// Used when a 429 carries no usable `Retry-After` (MSAL waits the same).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Longest `claims` challenge passed on to a caller.
const MAX_CLAIMS: usize = 4096;

#[derive(Deserialize, Default)]
struct EntraErrorBody {
    error: Option<String>,
    #[serde(default)]
    error_codes: Vec<u32>,
    claims: Option<String>,
    suberror: Option<String>,
    correlation_id: Option<String>,
}

/// AADSTS codes about the broker's own credential: secret wrong or expired (7000215, 7000222), app
/// unknown (700016, 90002), no credential (7000218), certificate assertion with a bad signature or an
/// unknown key (700027), expired (700024), for another audience (700023) or client (700021), and no
/// matching federated identity record (70021, 700211-700213).
const BROKER_CREDENTIAL_CODES: [u32; 13] = [
    7000215, 7000222, 700016, 90002, 7000218, 700027, 700024, 700023, 700021, 70021, 700211,
    700212, 700213,
];

/// Classifies a non-2xx answer from the token endpoint.
pub fn classify(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> UpstreamError {
    let parsed: Option<EntraErrorBody> = serde_json::from_slice(body).ok();
    let body = parsed.as_ref();
    let codes = body.map(|b| b.error_codes.as_slice()).unwrap_or_default();
    let error = body.and_then(|b| b.error.as_deref()).unwrap_or_default();
    let has = |code: u32| codes.contains(&code);
    let kind = if status == StatusCode::TOO_MANY_REQUESTS {
        UpstreamErrorKind::Throttled {
            retry_after: retry_after
                .unwrap_or(DEFAULT_RETRY_AFTER)
                .clamp(Duration::from_secs(1), MAX_RETRY_AFTER),
        }
    } else if status.is_server_error() {
        UpstreamErrorKind::Unavailable
    } else if body.is_none() || error.is_empty() {
        UpstreamErrorKind::InvalidResponse
    } else if error == "interaction_required" || has(50076) || has(50079) {
        UpstreamErrorKind::InteractionRequired {
            claims: body
                .and_then(|b| b.claims.clone())
                .filter(|c| c.len() <= MAX_CLAIMS),
        }
    } else if has(65001)
        || error == "consent_required"
        || body.and_then(|b| b.suberror.as_deref()) == Some("consent_required")
    {
        UpstreamErrorKind::ConsentRequired
    } else if has(7000114) {
        // "not allowed to make application on-behalf-of calls": the assertion was app-only.
        UpstreamErrorKind::AssertionRejected
    } else if error == "invalid_client"
        || error == "unauthorized_client"
        || BROKER_CREDENTIAL_CODES.into_iter().any(has)
    {
        UpstreamErrorKind::CredentialsRejected
    } else if error == "invalid_scope"
        || error == "invalid_resource"
        || [500011, 70011, 1002012].into_iter().any(has)
    {
        UpstreamErrorKind::ScopeRejected
    } else if error == "invalid_grant" {
        UpstreamErrorKind::AssertionRejected
    } else {
        UpstreamErrorKind::Refused
    };
    UpstreamError {
        kind,
        credential: None,
        aadsts: codes.first().copied(),
        correlation_id: body.and_then(|b| b.correlation_id.clone()).filter(|id| {
            id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(error: &str, code: u32) -> Vec<u8> {
        serde_json::json!({
            "error": error,
            "error_description": format!("AADSTS{code}: something. Trace ID: x Correlation ID: y"),
            "error_codes": [code],
            "correlation_id": "1c8f0a6e-0000-4000-8000-000000000001",
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn wrong_client_secret_is_a_broker_credential_problem() {
        let err = classify(
            StatusCode::UNAUTHORIZED,
            None,
            &body("invalid_client", 7000215),
        );
        assert_eq!(err.kind, UpstreamErrorKind::CredentialsRejected);
        assert_eq!(err.aadsts, Some(7000215));
        assert_eq!(
            err.correlation_id.as_deref(),
            Some("1c8f0a6e-0000-4000-8000-000000000001")
        );
    }

    #[test]
    fn mfa_demand_keeps_the_claims() {
        let mut json: serde_json::Value =
            serde_json::from_slice(&body("interaction_required", 50076)).unwrap();
        json["claims"] =
            serde_json::json!("{\"access_token\":{\"capolids\":{\"essential\":true}}}");
        let err = classify(StatusCode::BAD_REQUEST, None, json.to_string().as_bytes());
        assert_eq!(
            err.kind,
            UpstreamErrorKind::InteractionRequired {
                claims: Some("{\"access_token\":{\"capolids\":{\"essential\":true}}}".into())
            }
        );
    }

    #[test]
    fn classification_table() {
        let cases = [
            (
                StatusCode::BAD_REQUEST,
                body("invalid_grant", 65001),
                UpstreamErrorKind::ConsentRequired,
            ),
            (
                StatusCode::BAD_REQUEST,
                body("unauthorized_client", 700016),
                UpstreamErrorKind::CredentialsRejected,
            ),
            (
                StatusCode::BAD_REQUEST,
                body("invalid_resource", 500011),
                UpstreamErrorKind::ScopeRejected,
            ),
            (
                StatusCode::BAD_REQUEST,
                body("invalid_grant", 500133),
                UpstreamErrorKind::AssertionRejected,
            ),
            (
                StatusCode::BAD_REQUEST,
                body("invalid_grant", 500131),
                UpstreamErrorKind::AssertionRejected,
            ),
            (
                StatusCode::BAD_REQUEST,
                body("unauthorized_client", 7000114),
                UpstreamErrorKind::AssertionRejected,
            ),
            (
                StatusCode::BAD_REQUEST,
                body("invalid_request", 900144),
                UpstreamErrorKind::Refused,
            ),
            (
                StatusCode::BAD_REQUEST,
                b"<html>".to_vec(),
                UpstreamErrorKind::InvalidResponse,
            ),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Vec::new(),
                UpstreamErrorKind::Unavailable,
            ),
        ];
        for (status, body, expected) in cases {
            assert_eq!(classify(status, None, &body).kind, expected, "{status}");
        }
    }

    #[test]
    fn throttling_honours_retry_after_within_bounds() {
        let err = classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(7)),
            b"",
        );
        assert_eq!(
            err.kind,
            UpstreamErrorKind::Throttled {
                retry_after: Duration::from_secs(7)
            }
        );
        let err = classify(StatusCode::TOO_MANY_REQUESTS, None, b"");
        assert_eq!(
            err.kind,
            UpstreamErrorKind::Throttled {
                retry_after: DEFAULT_RETRY_AFTER
            }
        );
    }
}
