//! `GET /api/health`: readiness and why, for operators and probes. Anonymous, so it says nothing about
//! callers, tokens, secrets, allowlist or policy contents: only what is loaded, how old it is, why a
//! policy document was refused, and counters.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::broker::Broker;
use crate::broker::credential::{CredentialKind, CredentialSource};
use crate::broker::validation::now;
use crate::http::error::{ApiError, ErrorContext};
use crate::http::reply::no_store_json;

pub const ROUTE: &str = "health";

pub async fn handle(method: Method, broker: Arc<Broker>) -> Response {
    if method != Method::GET {
        return ApiError::MethodNotAllowed { allow: "GET" }.into_response(&ErrorContext::default());
    }
    let keys = broker.jwks.current();
    let allowlist = broker.allowlist.as_ref().map(|a| a.status());
    let policy = broker.policy.status();
    let credential = CredentialHealth::of(&broker.credential);
    let allowlist_loaded = allowlist.as_ref().is_none_or(|a| a.loaded);
    let ready =
        keys.is_some() && policy.revision.is_some() && allowlist_loaded && credential.usable;
    let reasons = reasons(
        keys.is_some(),
        policy.revision.is_some(),
        allowlist_loaded,
        &credential,
    );
    let mut body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "reasons": reasons,
        "signing_keys": {
            "loaded": keys.is_some(),
            "count": keys.as_ref().map(|k| k.len()),
            "age_seconds": keys.as_ref().map(|k| k.loaded_at.elapsed().as_secs()),
        },
        "credential": credential,
        "policy_revision": policy.revision,
        "policy": {
            "loaded": policy.revision.is_some(),
            "source": policy.origin.as_str(),
            "revision": policy.revision,
            "age_seconds": policy.age.map(|age| age.as_secs()),
            "grants": policy.grants,
            "last_refusal": policy.last_refusal,
        },
        "token_cache_entries": broker.cache.len(),
        "counters": broker.metrics.snapshot(),
    });
    // The legacy allowlist only exists without a policy document.
    if let (Some(allowlist), Some(fields)) = (allowlist, body.as_object_mut()) {
        fields.insert(
            "allowlist".into(),
            json!({"loaded": allowlist.loaded, "age_seconds": allowlist.age.map(|age| age.as_secs())}),
        );
    }
    let mut response = no_store_json(&body);
    if !ready {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

/// Within this many days of its `notAfter`, the client certificate is named in `reasons` (still ready).
const CERTIFICATE_WARNING_DAYS: i64 = 14;
const DAY: i64 = 86_400;

/// What health says about the broker's own credential. Public facts only: the kind, a certificate's
/// thumbprint and validity, the identity's client id and how old its token is.
#[derive(Serialize)]
struct CredentialHealth {
    kind: &'static str,
    loaded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbprint_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<String>,
    /// Whole days until the certificate's `notAfter` (negative once past).
    #[serde(skip_serializing_if = "Option::is_none")]
    days_left: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// `null` until the first token is held.
    #[serde(skip_serializing_if = "is_not_identity")]
    identity_token_age_seconds: Option<Option<u64>>,
    /// Loaded, and not an expired certificate.
    #[serde(skip)]
    usable: bool,
}

fn is_not_identity(age: &Option<Option<u64>>) -> bool {
    age.is_none()
}

impl CredentialHealth {
    fn of(source: &CredentialSource) -> Self {
        let kind = source.kind();
        let mut health = Self {
            kind: kind.as_str(),
            loaded: false,
            thumbprint_sha256: None,
            not_after: None,
            days_left: None,
            client_id: None,
            identity_token_age_seconds: None,
            usable: false,
        };
        let Ok(credential) = source.current() else {
            return health;
        };
        health.loaded = true;
        health.usable = true;
        if let Some(certificate) = credential.certificate_details() {
            let now = i64::try_from(now()).unwrap_or(i64::MAX);
            health.usable = certificate.not_after > now;
            health.days_left = Some((certificate.not_after - now).div_euclid(DAY));
            health.thumbprint_sha256 = Some(certificate.thumbprint_sha256.clone());
            health.not_after = rfc3339(certificate.not_after);
        }
        if kind == CredentialKind::ManagedIdentity {
            health.client_id = Some(credential.used.version.to_string());
            health.identity_token_age_seconds =
                Some(credential.identity_token_age().map(|age| age.as_secs()));
        }
        health
    }
}

/// Why the broker is not ready, and what an operator should know although it is.
fn reasons(
    keys_loaded: bool,
    policy_loaded: bool,
    allowlist_loaded: bool,
    credential: &CredentialHealth,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if !keys_loaded {
        reasons.push("signing keys not loaded".to_owned());
    }
    if !policy_loaded {
        reasons.push("policy not loaded".to_owned());
    }
    if !allowlist_loaded {
        reasons.push("allowlist not loaded".to_owned());
    }
    match credential.days_left {
        _ if !credential.loaded => reasons.push("broker credential not loaded".to_owned()),
        Some(_) if !credential.usable => reasons.push("client certificate expired".to_owned()),
        Some(days) if days < CERTIFICATE_WARNING_DAYS => {
            reasons.push(format!(
                "warning: client certificate expires in {days} days"
            ));
        }
        _ => {}
    }
    reasons
}

fn rfc3339(unix: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(&Rfc3339)
        .ok()
}
