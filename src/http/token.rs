//! `POST /api/token`: the azure-core `TokenCredential` protocol used by agent containers. Resolves an
//! audience alias, then runs the user lane (On-Behalf-Of) or the service lane (client credentials). A
//! delegation bearer is redeemed instead (`broker::redemption`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use warp::http::Method;
use warp::reply::Response;

use crate::broker::policy::Ask;
use crate::broker::redemption::Redeem;
use crate::broker::scope::is_alias;
use crate::broker::token_cache::Grant;
use crate::broker::{Broker, Lane};
use crate::delegation::{Counted, looks_like_delegation_bearer};
use crate::http::delegations::audit_of;
use crate::http::error::ApiError;
use crate::http::reply::{begin, finish, no_store_json, seconds_left};
use crate::http::request::RequestParts;
use crate::logging::telemetry::AuditRecord;
use crate::secret::Secret;

pub const ROUTE: &str = "token";
/// Longest `scope` label recorded.
const MAX_LABEL: usize = 64;

/// Fields are read as JSON values so that a wrong type is a 400 naming the field, not a parse error.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenRequest {
    audience: Value,
    #[serde(default)]
    scope: Value,
    #[serde(default)]
    lane: Value,
    #[serde(default)]
    configuration_revision: Value,
}

/// The request once every field has its type and shape.
pub struct ParsedRequest {
    /// An audience alias (`is_alias`), not yet resolved.
    pub audience: String,
    /// The caller's `scope` label, printable ASCII of bounded length.
    pub label: Option<String>,
    pub lane: Option<Lane>,
    pub revision: Option<u64>,
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a RawValue,
    token_type: &'static str,
    expires_in: u64,
    expires_on: u64,
    audience: &'a str,
    scope: &'a str,
    lane: &'static str,
}

pub async fn handle(parts: RequestParts, broker: Arc<Broker>) -> Response {
    let mut record = begin(ROUTE, &parts, &broker);
    let outcome = issue(&parts, &broker, &mut record).await;
    let audience = record.audience.as_deref().unwrap_or_default();
    let scope = record.scope.as_deref().unwrap_or_default();
    let lane = record.lane.map_or("", Lane::as_str);
    finish(&broker, &record, outcome, |grant| {
        no_store_json(&TokenResponse {
            // The one place the issued token is exposed: the 200 body.
            access_token: grant.access_token.expose_json(),
            token_type: "Bearer",
            expires_in: seconds_left(grant.expires_at),
            expires_on: grant.expires_at,
            audience,
            scope,
            lane,
        })
    })
}

async fn issue(
    parts: &RequestParts,
    broker: &Broker,
    record: &mut AuditRecord,
) -> Result<Grant, ApiError> {
    if parts.method != Method::POST {
        return Err(ApiError::MethodNotAllowed { allow: "POST" });
    }
    let request = parse(parts.json_body()?)?;
    record.audience = Some(request.audience.clone());
    record.label = request.label.clone();
    let bearer = parts.bearer().map_err(|err| ApiError::Broker(err.into()))?;
    // Routed by prefix before any JWT validation: a delegation bearer is not a JWT.
    if looks_like_delegation_bearer(bearer.expose()) {
        return redeem(broker, &bearer, request, record).await;
    }
    let caller = broker.authenticate(&bearer).await?;
    record.caller = Some(caller.clone());
    broker.check_rate(&caller)?;
    let policy = broker.policy.current()?;
    record.policy = Some(policy.clone());
    policy.check_revision(request.revision)?;
    let scope = policy.resolve_audience(&request.audience)?;
    record.scope = Some(scope.as_str().to_owned());
    let lane = Lane::choose(caller.kind, request.lane)?;
    record.lane = Some(lane);
    let ask = Ask {
        lane,
        scope: &scope,
        via_alias: true,
    };
    record.grant = Some(policy.authorize(caller.as_ref(), ask)?.name.clone());
    match lane {
        Lane::User => Ok(broker.on_behalf_of(&caller, &bearer, &scope).await?),
        Lane::Service => Ok(broker.service_token(&scope).await?),
    }
}

/// A delegation bearer's redemption: the delegation decides lane and subject, the policy in force
/// decides whether both sides still hold what it carries.
async fn redeem(
    broker: &Broker,
    bearer: &Secret,
    request: ParsedRequest,
    record: &mut AuditRecord,
) -> Result<Grant, ApiError> {
    let outcome = redeem_checked(broker, bearer, request, record).await;
    if outcome.is_err()
        && let Some(delegations) = &broker.delegations
    {
        delegations.count(Counted::Refused);
    }
    outcome
}

async fn redeem_checked(
    broker: &Broker,
    bearer: &Secret,
    request: ParsedRequest,
    record: &mut AuditRecord,
) -> Result<Grant, ApiError> {
    let current = broker.authenticate_delegation(bearer).await?;
    let delegation = &current.record;
    record.delegation = Some(audit_of(delegation));
    record.lane = Some(delegation.lane);
    broker.rate_limiter.check(&delegation.delegator)?;
    let policy = broker.policy.current()?;
    record.policy = Some(policy.clone());
    let ask = Redeem {
        audience: &request.audience,
        lane: request.lane,
        revision: request.revision,
    };
    let (scope, grant) = broker.redeem_delegation(&current, &policy, ask).await?;
    record.scope = Some(scope.as_str().to_owned());
    Ok(grant)
}

pub(crate) fn parse(request: TokenRequest) -> Result<ParsedRequest, ApiError> {
    let audience = match request.audience {
        Value::String(alias) if is_alias(&alias) => alias,
        _ => return Err(ApiError::BadRequest("audience_malformed")),
    };
    let label = match request.scope {
        Value::Null => None,
        Value::String(label)
            if label.len() <= MAX_LABEL && label.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Some(label)
        }
        _ => return Err(ApiError::BadRequest("scope_label_malformed")),
    };
    let lane = match request.lane.as_str() {
        None if request.lane.is_null() => None,
        Some("user") => Some(Lane::User),
        Some("service") => Some(Lane::Service),
        _ => return Err(ApiError::BadRequest("lane_malformed")),
    };
    let revision = match &request.configuration_revision {
        Value::Null => None,
        Value::Number(n) => Some(
            n.as_u64()
                .ok_or(ApiError::BadRequest("revision_malformed"))?,
        ),
        _ => return Err(ApiError::BadRequest("revision_malformed")),
    };
    Ok(ParsedRequest {
        audience,
        label,
        lane,
        revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(body: Value) -> Result<ParsedRequest, ApiError> {
        parse(serde_json::from_value(body).map_err(|_| ApiError::BadRequest("body_not_json"))?)
    }

    #[test]
    fn the_clients_request_parses() {
        let request = parsed(json!({"audience": "sql", "scope": "data_platform", "lane": "user", "configurationRevision": 3})).unwrap();
        assert_eq!(request.audience, "sql");
        assert_eq!(request.label.as_deref(), Some("data_platform"));
        assert_eq!(request.lane, Some(Lane::User));
        assert_eq!(request.revision, Some(3));
    }

    #[test]
    fn malformed_fields_are_bad_requests() {
        for (body, reason) in [
            (json!({}), "body_not_json"),
            (json!({"audience": 7}), "audience_malformed"),
            (json!({"audience": "SQL"}), "audience_malformed"),
            (json!({"audience": "sql\u{0}"}), "audience_malformed"),
            (
                json!({"audience": "sql", "lane": "admin"}),
                "lane_malformed",
            ),
            (
                json!({"audience": "sql", "configurationRevision": -1}),
                "revision_malformed",
            ),
            (
                json!({"audience": "sql", "configurationRevision": "3"}),
                "revision_malformed",
            ),
            (
                json!({"audience": "sql", "configurationRevision": 1.5}),
                "revision_malformed",
            ),
            (
                json!({"audience": "sql", "configurationRevision": 1e300}),
                "revision_malformed",
            ),
        ] {
            assert_eq!(
                parsed(body.clone()).err(),
                Some(ApiError::BadRequest(reason)),
                "{body}"
            );
        }
    }
}
