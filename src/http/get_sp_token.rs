//! `POST /api/GetSPToken`: the broker's service-principal token for an allowed scope, with who the
//! caller was. Used by Fabric notebooks and pipelines behind Outbound Access Policies.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use warp::http::Method;
use warp::reply::Response;

use crate::broker::caller::Caller;
use crate::broker::policy::Ask;
use crate::broker::scope::TargetScope;
use crate::broker::token_cache::Grant;
use crate::broker::{Broker, Lane};
use crate::http::error::ApiError;
use crate::http::reply::{begin, finish, no_store_json, seconds_left};
use crate::http::request::RequestParts;
use crate::logging::telemetry::AuditRecord;

pub const ROUTE: &str = "GetSPToken";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GetSpTokenRequest {
    target_scope: serde_json::Value,
}

#[derive(Serialize)]
struct GetSpTokenResponse<'a> {
    access_token: &'a RawValue,
    token_type: &'static str,
    expires_in: u64,
    scope: &'a str,
    caller: CallerBody<'a>,
}

#[derive(Serialize)]
struct CallerBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// Escaped once, when the caller token was validated.
    display: Option<&'a RawValue>,
    oid: &'a str,
}

pub async fn handle(parts: RequestParts, broker: Arc<Broker>) -> Response {
    let mut record = begin(ROUTE, &parts, &broker);
    let outcome = issue(&parts, &broker, &mut record).await;
    finish(&broker, &record, outcome, |grant| {
        no_store_json(&body(
            grant,
            record.caller.as_deref(),
            record.scope.as_deref(),
        ))
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
    let request: GetSpTokenRequest = parts.json_body()?;
    let bearer = parts.bearer().map_err(|err| ApiError::Broker(err.into()))?;
    let scope = target_scope(&request)?;
    record.scope = Some(scope.as_str().to_owned());
    let caller = broker.authenticate(&bearer).await?;
    record.caller = Some(caller.clone());
    broker.check_rate(&caller)?;
    let policy = broker.policy.current()?;
    record.policy = Some(policy.clone());
    let ask = Ask {
        lane: Lane::Service,
        scope: &scope,
        via_alias: false,
    };
    record.grant = Some(policy.authorize(caller.as_ref(), ask)?.name.clone());
    Ok(broker.service_token(&scope).await?)
}

pub(crate) fn target_scope(request: &GetSpTokenRequest) -> Result<TargetScope, ApiError> {
    let target_scope = request
        .target_scope
        .as_str()
        .ok_or(ApiError::BadRequest("target_scope_not_a_string"))?;
    TargetScope::parse(target_scope).map_err(|err| ApiError::Broker(err.into()))
}

fn body<'a>(
    grant: &'a Grant,
    caller: Option<&'a Caller>,
    scope: Option<&'a str>,
) -> GetSpTokenResponse<'a> {
    GetSpTokenResponse {
        // The one place the issued token is exposed: the 200 body.
        access_token: grant.access_token.expose_json(),
        token_type: "Bearer",
        expires_in: seconds_left(grant.expires_at),
        scope: scope.unwrap_or_default(),
        caller: CallerBody {
            kind: caller.map_or("", |c| c.kind.as_str()),
            display: caller.map(|c| c.display.as_json()),
            oid: caller.map_or("", |c| c.oid.as_str()),
        },
    }
}
