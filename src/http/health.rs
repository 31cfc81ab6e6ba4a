//! `GET /api/health`: readiness and why, for operators and probes. Anonymous, so it says nothing about
//! callers, tokens, secrets, allowlist or policy contents: only what is loaded, how old it is, why a
//! re-read failed or a policy document was refused, and counters.
//!
//! `ready` (200): everything loaded and current. `degraded` (200, still serving): a Key Vault value keeps
//! failing to re-read, is empty or unparseable, the allowlist is past its maximum age (app callers are
//! then refused), or the policy document is refused or keeps failing to re-read. `not_ready` (503): signing keys, policy, allowlist or client secret never loaded.

use std::sync::Arc;

use serde_json::{Value, json};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::broker::Broker;
use crate::broker::allowlist::AllowlistStatus;
use crate::broker::freshness::{Freshness, ReadProblem};
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
    let secret = broker.credential.freshness();
    let reasons = reasons(
        [
            (keys.is_none(), "signing_keys_not_loaded"),
            (policy.revision.is_none(), "policy_not_loaded"),
            (
                allowlist.as_ref().is_some_and(|a| !a.loaded),
                "allowlist_not_loaded",
            ),
            (!secret_loaded, "client_secret_not_loaded"),
        ],
        allowlist.as_ref(),
        &secret,
        &policy.freshness,
    );
    let ready = !reasons.iter().any(|reason| reason.ends_with("_not_loaded"));
    let status = match (ready, reasons.is_empty()) {
        (false, _) => "not_ready",
        (true, false) => "degraded",
        (true, true) => "ready",
    };
    let mut body = json!({
        "status": status,
        "reasons": reasons,
        "signing_keys": {
            "loaded": keys.is_some(),
            "count": keys.as_ref().map(|k| k.len()),
            "age_seconds": keys.as_ref().map(|k| k.loaded_at.elapsed().as_secs()),
        },
        "client_secret": with_freshness(json!({ "loaded": secret_loaded }), &secret),
        "policy_revision": policy.revision,
        "policy": with_freshness(json!({
            "loaded": policy.revision.is_some(),
            "source": policy.origin.as_str(),
            "revision": policy.revision,
            "grants": policy.grants,
            "last_refusal": policy.last_refusal,
        }), &policy.freshness),
        "token_cache_entries": broker.cache.len(),
        "counters": broker.metrics.snapshot(),
    });
    // The legacy allowlist only exists without a policy document.
    if let (Some(allowlist), Some(fields)) = (allowlist, body.as_object_mut()) {
        let section = json!({
            "loaded": allowlist.loaded,
            "stale": allowlist.stale,
            "max_age_seconds": allowlist.max_age.map(|age| age.as_secs()),
        });
        fields.insert(
            "allowlist".into(),
            with_freshness(section, &allowlist.freshness),
        );
    }
    let mut response = no_store_json(&body);
    if !ready {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

/// The reasons health is not `ready`: what never loaded, then what is degraded.
fn reasons(
    missing: [(bool, &'static str); 4],
    allowlist: Option<&AllowlistStatus>,
    secret: &Freshness,
    policy: &Freshness,
) -> Vec<&'static str> {
    let mut reasons: Vec<&'static str> = missing
        .into_iter()
        .filter_map(|(missing, reason)| missing.then_some(reason))
        .collect();
    if let Some(allowlist) = allowlist {
        reasons.extend(degraded_reason(
            &allowlist.freshness,
            [
                "allowlist_empty",
                "allowlist_unparseable",
                "allowlist_refresh_failing",
            ],
        ));
        if allowlist.stale {
            reasons.push("allowlist_stale");
        }
    }
    // A policy document that is refused (invalid, or changed without a higher revision) or keeps
    // failing to re-read; the last good document keeps deciding meanwhile.
    reasons.extend(degraded_reason(
        policy,
        ["policy_refused", "policy_refused", "policy_refresh_failing"],
    ));
    reasons.extend(degraded_reason(
        secret,
        [
            "client_secret_empty",
            "client_secret_unparseable",
            "client_secret_refresh_failing",
        ],
    ));
    reasons
}

/// Why a re-read value is degraded, from its source's `[empty, unparseable, refresh failing]` codes.
fn degraded_reason(freshness: &Freshness, codes: [&'static str; 3]) -> Option<&'static str> {
    if !freshness.is_degraded() {
        return None;
    }
    let [empty, unparseable, refresh_failing] = codes;
    Some(match freshness.last_problem()? {
        ReadProblem::Empty => empty,
        ReadProblem::Unparseable => unparseable,
        ReadProblem::Unreachable | ReadProblem::Refused => refresh_failing,
    })
}

/// Adds the age of the last successful read, the failed reads since and the last failure's code.
fn with_freshness(mut section: Value, freshness: &Freshness) -> Value {
    if let Some(fields) = section.as_object_mut() {
        fields.insert(
            "age_seconds".into(),
            json!(freshness.age().map(|age| age.as_secs())),
        );
        fields.insert("failed_reads".into(), json!(freshness.failed_reads()));
        fields.insert(
            "last_failure".into(),
            json!(freshness.last_problem().map(|problem| problem.code())),
        );
    }
    section
}
