//! Finishing a request: the audit line, the counters, and the response (`Cache-Control: no-store` on
//! every token response, RFC 6749 §5.1).

use serde::Serialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::broker::Broker;
use crate::broker::metrics::Metrics;
use crate::broker::token_cache::Grant;
use crate::http::error::{ApiError, ErrorContext};
use crate::http::request::RequestParts;
use crate::logging::telemetry::{self, AuditRecord};

/// Room for a token response: Entra's access tokens are 1-4 KB.
const TOKEN_RESPONSE_CAPACITY: usize = 4 * 1024;

/// Counts the request and starts its audit record.
pub fn begin(route: &'static str, parts: &RequestParts, broker: &Broker) -> AuditRecord {
    Metrics::add(&broker.metrics.requests);
    AuditRecord {
        request_id: parts.request_id(),
        route,
        ..AuditRecord::default()
    }
}

/// Audits the outcome and turns it into a response; `success` builds the 200 from the grant.
pub fn finish(
    broker: &Broker,
    record: &AuditRecord,
    outcome: Result<Grant, ApiError>,
    success: impl FnOnce(&Grant) -> Response,
) -> Response {
    match outcome {
        Ok(grant) => {
            telemetry::audit(record, Ok(Some(&grant)));
            Metrics::add(&broker.metrics.issued);
            success(&grant)
        }
        Err(err) => refuse(broker, record, err),
    }
}

/// Audits and counts a refusal and answers it.
pub fn refuse(broker: &Broker, record: &AuditRecord, err: ApiError) -> Response {
    telemetry::audit(record, Err(err.refusal()));
    let metrics = &broker.metrics;
    Metrics::add(match &err {
        ApiError::Broker(crate::broker::error::BrokerError::RateLimited { .. }) => {
            &metrics.rate_limited
        }
        _ if err.status().is_server_error() => &metrics.failed,
        _ => &metrics.denied,
    });
    let context = ErrorContext {
        known_aliases: record
            .policy
            .as_ref()
            .map(|p| p.audiences.aliases().collect())
            .unwrap_or_default(),
        resource: record.scope.as_deref(),
        policy_revision: record.policy.as_ref().map(|p| p.revision),
    };
    err.into_response(&context)
}

/// A JSON body with `Cache-Control: no-store`. Serialized into a buffer sized for a token response up
/// front, rather than regrown several times on the way.
pub fn no_store_json<T: Serialize>(body: &T) -> Response {
    let mut bytes = Vec::with_capacity(TOKEN_RESPONSE_CAPACITY);
    if serde_json::to_writer(&mut bytes, body).is_err() {
        // Unreachable for the plain structs used here; answered as warp's own `json` reply would.
        return warp::Reply::into_response(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let mut response = Response::new(bytes.into());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Whole seconds left until `expires_at` (Unix seconds), never negative.
pub fn seconds_left(expires_at: u64) -> u64 {
    expires_at.saturating_sub(crate::clock::now())
}
