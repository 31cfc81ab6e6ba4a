//! Logging: JSON lines on stdout (the Functions host logs stderr lines as errors and ships stdout to
//! Application Insights), and the one audit line per decision. Never a token, secret or assertion.

use std::sync::OnceLock;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::Level;
use tracing_subscriber::EnvFilter;

use crate::broker::Lane;
use crate::broker::caller::Caller;
use crate::broker::error::UpstreamError;
use crate::broker::policy::Policy;
use crate::broker::token_cache::Grant;
use crate::logging::json_line::JsonLine;
use crate::logging::log_writer::{BatchedStdout, FlushOnDrop};

/// Read before settings (so that a settings error can be logged), like `RUST_LOG`.
const LOG_FILTER_VAR: &str = "BROKER_LOG";
const DEFAULT_FILTER: &str = "info,azure_core=warn,azure_identity=warn,azure_security_keyvault_secrets=warn,hyper=warn,reqwest=warn,warp=warn";

const AUDIT_TARGET: &str = "audit";

/// Where audit lines go: the same batched stdout as every other line. Set by `init` when the log filter
/// lets audit lines through (decided once: the filter never changes); otherwise, and in unit tests, audit
/// lines are not written.
static AUDIT_SINK: OnceLock<BatchedStdout> = OnceLock::new();

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
        .with_writer(writer.clone())
        .with_env_filter(filter)
        .init();
    if tracing::enabled!(target: AUDIT_TARGET, Level::INFO) {
        let _ = AUDIT_SINK.set(writer);
    }
    guard
}

/// Why a request was refused, as the audit line records it; `http` builds it from its error.
#[derive(Clone, Copy)]
pub struct Refusal<'a> {
    pub status: u16,
    pub code: &'static str,
    /// The fine-grained reason behind the code, where there is one.
    pub detail: Option<&'static str>,
    /// Entra's answer behind an upstream failure (its correlation id, AADSTS code, credential used).
    pub upstream: Option<&'a UpstreamError>,
}

/// What an audit line records about one request, filled in as the request is processed.
#[derive(Default)]
pub struct AuditRecord {
    /// The status of an answer that issued nothing, where it is not 200 (a delegation created, 201;
    /// revoked, 204).
    pub answered: Option<u16>,
    pub request_id: String,
    pub route: &'static str,
    pub caller: Option<std::sync::Arc<Caller>>,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub label: Option<String>,
    pub lane: Option<Lane>,
    /// The policy the request was decided through, once it was consulted.
    pub policy: Option<std::sync::Arc<Policy>>,
    /// The name of the grant that allowed the request.
    pub grant: Option<std::sync::Arc<str>>,
    /// A delegation route's decision on success (`created`, `rotated`, `read`, `revoked`); its
    /// refusals are recorded under their code.
    pub delegation_decision: Option<&'static str>,
    /// The delegation a request concerned or redeemed, its delegator (app oid) and its subject (oid).
    pub delegation: Option<DelegationAudit>,
}

/// The delegation fields of an audit line.
#[derive(Debug, Clone)]
pub struct DelegationAudit {
    pub id: String,
    pub delegator: String,
    pub subject: String,
}

/// Writes the audit line for one decision: target `audit`, level INFO, in the layout of the subscriber's
/// own flattened JSON lines, absent fields left out. It goes straight into the batched stdout rather
/// than through the subscriber's field visitor, which cost several times more per line at the broker's
/// request rate. Written only when `BROKER_LOG` enables the `audit` target at INFO.
///
/// `Ok(None)` is a request answered without issuing a token (whoami).
pub fn audit(record: &AuditRecord, outcome: Result<Option<&Grant>, Refusal<'_>>) {
    let Some(sink) = AUDIT_SINK.get() else {
        return;
    };
    let caller = record.caller.as_deref();
    let (decision, reason, detail, status) = match (outcome, record.delegation_decision) {
        (Ok(Some(_)), _) => ("issued", "ok", None, 200),
        (Ok(None), Some(decision)) => (decision, "ok", None, record.answered.unwrap_or(200)),
        (Ok(None), None) => ("answered", "ok", None, 200),
        (Err(refusal), delegation_decision) => {
            let status = refusal.status;
            let decision = match delegation_decision {
                Some(_) => refusal.code,
                None if status < 500 => "denied",
                None => "failed",
            };
            (decision, refusal.code, refusal.detail, status)
        }
    };
    let grant = outcome.ok().flatten();
    let upstream = outcome.err().and_then(|refusal| refusal.upstream);
    let correlation_id = grant
        .and_then(|g| g.correlation_id.as_deref())
        .or(upstream.and_then(|e| e.correlation_id.as_deref()));
    let mut timestamp = [0u8; 32];
    let timestamp = rfc3339_micros(&mut timestamp);
    let _ = sink.append_line(|buffer| {
        let mut line = JsonLine::begin(buffer);
        line.str("timestamp", timestamp)
            .str("level", "INFO")
            .str("message", "decision")
            .str("request_id", &record.request_id)
            .str("route", record.route);
        if let Some(caller) = caller {
            line.str("caller_oid", caller.oid.as_str())
                .str("caller_type", caller.kind.as_str())
                .raw("caller_display", caller.display.as_json());
        }
        let optional = [
            ("scope", record.scope.as_deref()),
            ("audience", record.audience.as_deref()),
            ("label", record.label.as_deref()),
            ("lane", record.lane.map(Lane::as_str)),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                line.str(key, value);
            }
        }
        if let Some(grant) = record.grant.as_deref() {
            line.str("grant", grant);
        }
        if let Some(delegation) = &record.delegation {
            line.str("delegation", &delegation.id)
                .str("delegator", &delegation.delegator)
                .str("subject", &delegation.subject);
        }
        if caller.is_some_and(|c| c.group_overage) {
            // The token named a Graph source instead of its groups: no group grant could match.
            line.str("groups", "overage");
        }
        line.str("decision", decision).str("reason", reason);
        if let Some(detail) = detail {
            line.str("detail", detail);
        }
        line.u64("status", status.into());
        if let Some(grant) = grant {
            line.bool("cache_hit", grant.cache_hit);
            if let Some(upstream_ms) = grant.upstream_ms {
                line.u64("upstream_ms", upstream_ms);
            }
        }
        if let Some(aadsts) = upstream.and_then(|e| e.aadsts) {
            line.u64("aadsts", aadsts.into());
        }
        if let Some(used) = upstream.and_then(|e| e.credential.as_ref()) {
            line.str("credential_kind", used.kind.as_str())
                .str("credential_version", &used.version);
        }
        if let Some(correlation_id) = correlation_id {
            line.str("correlation_id", correlation_id);
        }
        line.str("target", AUDIT_TARGET).end();
        Ok::<_, std::convert::Infallible>(())
    });
}

/// The current time as RFC 3339 UTC with microseconds, as the subscriber writes its own lines.
fn rfc3339_micros(buffer: &mut [u8; 32]) -> &str {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_microsecond(now.microsecond()).unwrap_or(now);
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    if now.format_into(&mut cursor, &Rfc3339).is_err() {
        return "";
    }
    let len = usize::try_from(cursor.position()).unwrap_or_default();
    buffer
        .get(..len)
        .and_then(|text| std::str::from_utf8(text).ok())
        .unwrap_or_default()
}
