//! Logging: JSON lines on stdout (the Functions host logs stderr lines as errors and ships stdout to
//! Application Insights), and the one audit line per decision. Never a token, secret or assertion.

use tracing_subscriber::EnvFilter;

use crate::broker::Lane;
use crate::broker::caller::Caller;
use crate::broker::error::BrokerError;
use crate::broker::token_cache::Grant;
use crate::http::error::ApiError;
use crate::log_writer::{BatchedStdout, FlushOnDrop};

/// Read before settings (so that a settings error can be logged), like `RUST_LOG`.
const LOG_FILTER_VAR: &str = "BROKER_LOG";
const DEFAULT_FILTER: &str = "info,azure_core=warn,azure_identity=warn,azure_security_keyvault_secrets=warn,hyper=warn,reqwest=warn,warp=warn";

/// Installs the JSON subscriber on batched stdout (see `log_writer`). Keep the guard until exit;
/// dropping it flushes.
pub fn init() -> FlushOnDrop {
    let (writer, guard) = BatchedStdout::start();
    let filter =
        EnvFilter::try_from_env(LOG_FILTER_VAR).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_writer(writer)
        .with_env_filter(filter)
        .init();
    guard
}

/// What an audit line records about one request, filled in as the request is processed.
#[derive(Default)]
pub struct AuditRecord {
    pub request_id: String,
    pub route: &'static str,
    pub caller: Option<std::sync::Arc<Caller>>,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub label: Option<String>,
    pub lane: Option<Lane>,
}

/// Writes the audit line for one decision (target `audit`).
pub fn audit(record: &AuditRecord, outcome: Result<&Grant, &ApiError>) {
    let caller = record.caller.as_deref();
    let (decision, reason, detail, status) = match outcome {
        Ok(_) => ("issued", "ok", None, 200),
        Err(err) => {
            let status = err.status().as_u16();
            let decision = if status < 500 { "denied" } else { "failed" };
            (decision, err.code(), detail_of(err), status)
        }
    };
    let grant = outcome.ok();
    let upstream = match outcome {
        Err(ApiError::Broker(BrokerError::Upstream(err))) => Some(err),
        _ => None,
    };
    let correlation_id = grant
        .and_then(|g| g.correlation_id.as_deref())
        .or(upstream.and_then(|e| e.correlation_id.as_deref()));
    tracing::info!(
        target: "audit",
        request_id = record.request_id.as_str(),
        route = record.route,
        caller_oid = caller.map(|c| c.oid.as_str()),
        caller_type = caller.map(|c| c.kind.as_str()),
        caller_display = caller.map(|c| c.display.as_str()),
        scope = record.scope.as_deref(),
        audience = record.audience.as_deref(),
        label = record.label.as_deref(),
        lane = record.lane.map(Lane::as_str),
        decision,
        reason,
        detail,
        status,
        cache_hit = grant.map(|g| g.cache_hit),
        upstream_ms = grant.and_then(|g| g.upstream_ms),
        aadsts = upstream.and_then(|e| e.aadsts),
        correlation_id,
        "decision"
    );
}

/// The fine-grained reason behind a code, where there is one.
fn detail_of(err: &ApiError) -> Option<&'static str> {
    match err {
        ApiError::BadRequest(reason) => Some(reason),
        ApiError::Broker(BrokerError::InvalidCaller(err)) => Some(err.reason()),
        ApiError::Broker(BrokerError::InvalidScope(err)) => Some(err.reason()),
        _ => None,
    }
}
