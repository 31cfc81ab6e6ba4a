//! `GET /api/health`: readiness and why, for operators and probes. Anonymous, so it says nothing about
//! callers, tokens, secrets or allowlist contents: only what is loaded, how old it is, and counters.

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
    let allowlist = broker.policy.allowlist.status();
    let secret_loaded = broker.credential.current().is_ok();
    let ready = keys.is_some() && allowlist.loaded && secret_loaded;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "signing_keys": {
            "loaded": keys.is_some(),
            "count": keys.as_ref().map(|k| k.len()),
            "age_seconds": keys.as_ref().map(|k| k.loaded_at.elapsed().as_secs()),
        },
        "allowlist": {
            "loaded": allowlist.loaded,
            "age_seconds": allowlist.age.map(|age| age.as_secs()),
        },
        "client_secret": { "loaded": secret_loaded },
        "policy_revision": broker.policy.revision,
        "token_cache_entries": broker.cache.len(),
        "counters": broker.metrics.snapshot(),
    });
    let mut response = no_store_json(&body);
    if !ready {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}
