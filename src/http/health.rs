//! `GET /api/health`: readiness and why, for operators and probes. Anonymous, so it says nothing about
//! callers, tokens, secrets, allowlist or policy contents: only what is loaded, how old it is, why a
//! policy document was refused, and counters.

use std::sync::Arc;

use serde_json::json;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::broker::Broker;
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
    let secret_loaded = broker.credential.current().is_ok();
    let ready = keys.is_some()
        && policy.revision.is_some()
        && allowlist.as_ref().is_none_or(|a| a.loaded)
        && secret_loaded;
    let mut body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "signing_keys": {
            "loaded": keys.is_some(),
            "count": keys.as_ref().map(|k| k.len()),
            "age_seconds": keys.as_ref().map(|k| k.loaded_at.elapsed().as_secs()),
        },
        "client_secret": { "loaded": secret_loaded },
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
