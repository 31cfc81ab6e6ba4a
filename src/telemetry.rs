//! Logging: JSON lines on stdout (the Functions host logs stderr lines as errors and ships stdout to
//! Application Insights), and the one audit line per decision. Never a token, secret or assertion.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::Level;
use tracing_subscriber::EnvFilter;

use crate::broker::Lane;
use crate::broker::caller::Caller;
use crate::broker::error::BrokerError;
use crate::broker::token_cache::Grant;
use crate::http::error::ApiError;
use crate::log_writer::{BatchedStdout, FlushOnDrop};

/// Read before settings (so that a settings error can be logged), like `RUST_LOG`.
const LOG_FILTER_VAR: &str = "BROKER_LOG";
const AUDIT_TARGET: &str = "audit";

/// Where audit lines go: the same batched stdout as every other line. Set once by `init`; until then
/// (unit tests) audit lines are not written.
static AUDIT_SINK: OnceLock<BatchedStdout> = OnceLock::new();

const DEFAULT_FILTER: &str = "info,azure_core=warn,azure_identity=warn,azure_security_keyvault_secrets=warn,hyper=warn,reqwest=warn,warp=warn";

/// Installs the JSON subscriber on batched stdout (see `log_writer`). Keep the guard until exit;
/// dropping it flushes.
pub fn init() -> FlushOnDrop {
    let (writer, guard) = BatchedStdout::start();
    let _ = AUDIT_SINK.set(writer.clone());
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

/// One audit line, in the layout of the subscriber's own flattened JSON lines (absent fields left out).
#[derive(Serialize)]
struct AuditLine<'a> {
    #[serde(serialize_with = "rfc3339")]
    timestamp: OffsetDateTime,
    level: &'static str,
    message: &'static str,
    request_id: &'a str,
    route: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_oid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_display: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audience: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lane: Option<&'static str>,
    decision: &'static str,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'static str>,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_hit: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aadsts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    target: &'static str,
}

/// Microsecond precision, as the subscriber writes its own lines.
fn now_to_the_microsecond() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_microsecond(now.microsecond()).unwrap_or(now)
}

fn rfc3339<S: serde::Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = [0u8; 40];
    let mut cursor = std::io::Cursor::new(&mut text[..]);
    at.format_into(&mut cursor, &Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    let len = usize::try_from(cursor.position()).unwrap_or_default();
    let text = text.get(..len).unwrap_or_default();
    serializer.serialize_str(std::str::from_utf8(text).unwrap_or_default())
}

/// Writes the audit line for one decision (target `audit`, level INFO, so `BROKER_LOG` filters it like
/// any other line). It is serialized directly into the batched stdout rather than through the
/// subscriber's field visitor, which cost several times more per line at the broker's request rate.
pub fn audit(record: &AuditRecord, outcome: Result<&Grant, &ApiError>) {
    if !tracing::enabled!(target: AUDIT_TARGET, Level::INFO) {
        return;
    }
    let Some(sink) = AUDIT_SINK.get() else {
        return;
    };
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
    let line = AuditLine {
        timestamp: now_to_the_microsecond(),
        level: "INFO",
        message: "decision",
        request_id: &record.request_id,
        route: record.route,
        caller_oid: caller.map(|c| c.oid.as_str()),
        caller_type: caller.map(|c| c.kind.as_str()),
        caller_display: caller.map(|c| c.display.as_json()),
        scope: record.scope.as_deref(),
        audience: record.audience.as_deref(),
        label: record.label.as_deref(),
        lane: record.lane.map(Lane::as_str),
        decision,
        reason,
        detail,
        status,
        cache_hit: grant.map(|g| g.cache_hit),
        upstream_ms: grant.and_then(|g| g.upstream_ms),
        aadsts: upstream.and_then(|e| e.aadsts),
        correlation_id: grant
            .and_then(|g| g.correlation_id.as_deref())
            .or(upstream.and_then(|e| e.correlation_id.as_deref())),
        target: AUDIT_TARGET,
    };
    let written = sink.append_line(|buffer| {
        serde_json::to_writer(&mut *buffer, &line)?;
        buffer.push(b'\n');
        Ok::<_, serde_json::Error>(())
    });
    if let Err(err) = written {
        tracing::error!(error = %err, "audit line could not be written");
    }
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
