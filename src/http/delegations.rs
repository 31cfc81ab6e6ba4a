//! The delegator's routes under the `Delegations` function: `POST /api/delegations` (create),
//! `POST /api/delegations/{id}/token` (a fresh bearer), `GET /api/delegations/{id}` (read) and
//! `DELETE /api/delegations/{id}` (revoke). Each is for the delegator's own app-only token; a
//! delegation bearer is refused here (no re-delegation). One audit line per request, `route`
//! `delegations`, `decision` `created`, `rotated`, `read`, `revoked` or the refusal's code.

use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use warp::Filter;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::broker::Broker;
use crate::broker::Lane;
use crate::broker::delegator::{IssuedBearer, NewDelegation};
use crate::broker::error::{BrokerError, CallerError};
use crate::broker::scope::is_alias;
use crate::clock::now;
use crate::delegation::record::{MAX_AUDIENCES, MAX_LABEL_CHARS};
use crate::delegation::{Counted, DelegationId, DelegationRecord, looks_like_delegation_bearer};
use crate::http::error::ApiError;
use crate::http::reply::{begin, no_store_json, refuse};
use crate::http::request::RequestParts;
use crate::logging::telemetry::{self, AuditRecord, DelegationAudit};
use crate::secret::Secret;

pub const ROUTE: &str = "delegations";
/// The lifetime of a delegation whose request names none.
const DEFAULT_LIFETIME_SECONDS: u64 = 3600;

/// Which delegation route a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DelegationPath {
    Collection,
    Item(String),
    Token(String),
}

/// `/api/delegations`, `/api/delegations/{id}` and `/api/delegations/{id}/token`, matched
/// case-insensitively as the Functions host matches routes.
pub fn delegation_path() -> impl Filter<Extract = (DelegationPath,), Error = warp::Rejection> + Clone
{
    warp::path::full().and_then(|full: warp::path::FullPath| async move {
        parse_path(full.as_str()).ok_or_else(warp::reject::not_found)
    })
}

fn parse_path(path: &str) -> Option<DelegationPath> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let is = |segment: &str, expected: &str| segment.eq_ignore_ascii_case(expected);
    match segments.as_slice() {
        [api, d] if is(api, "api") && is(d, ROUTE) => Some(DelegationPath::Collection),
        [api, d, id] if is(api, "api") && is(d, ROUTE) => {
            Some(DelegationPath::Item((*id).to_owned()))
        }
        [api, d, id, t] if is(api, "api") && is(d, ROUTE) && is(t, "token") => {
            Some(DelegationPath::Token((*id).to_owned()))
        }
        _ => None,
    }
}

/// Fields are read as JSON values so that a wrong type is a 400, not a parse error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    #[serde(default)]
    lane: Value,
    #[serde(default)]
    audiences: Value,
    #[serde(default)]
    subject_token: Value,
    #[serde(default)]
    lifetime_seconds: Value,
    #[serde(default)]
    label: Value,
}

#[derive(Serialize)]
pub(crate) struct SubjectBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    oid: &'a str,
    display: &'a str,
}

/// The 201 answer: the one place a delegation bearer is exposed.
#[derive(Serialize)]
struct IssuedBody<'a> {
    id: String,
    token: &'a str,
    token_expires_in: u64,
    expires_in: u64,
    lane: &'static str,
    audiences: &'a [String],
    subject: SubjectBody<'a>,
    policy_revision: u64,
}

#[derive(Serialize)]
struct DelegationBody<'a> {
    id: String,
    lane: &'static str,
    audiences: &'a [String],
    subject: SubjectBody<'a>,
    label: Option<&'a str>,
    created: u64,
    expires_in: u64,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    claims: Option<&'a str>,
    last_used: Option<u64>,
    redemptions: u64,
}

pub async fn handle(path: DelegationPath, parts: RequestParts, broker: Arc<Broker>) -> Response {
    let mut record = begin(ROUTE, &parts, &broker);
    record.delegation_decision = Some(decision_of(&path, &parts.method));
    match serve(&path, &parts, &broker, &mut record).await {
        Ok(response) => {
            record.answered = Some(response.status().as_u16());
            telemetry::audit(&record, Ok(None));
            response
        }
        Err(err) => {
            if let Some(delegations) = &broker.delegations {
                delegations.count(Counted::Refused);
            }
            refuse(&broker, &record, err)
        }
    }
}

/// The decision a successful request records.
fn decision_of(path: &DelegationPath, method: &Method) -> &'static str {
    match (path, method) {
        (DelegationPath::Collection, _) => "created",
        (DelegationPath::Token(_), _) => "rotated",
        (DelegationPath::Item(_), &Method::DELETE) => "revoked",
        (DelegationPath::Item(_), _) => "read",
    }
}

async fn serve(
    path: &DelegationPath,
    parts: &RequestParts,
    broker: &Broker,
    record: &mut AuditRecord,
) -> Result<Response, ApiError> {
    let method = &parts.method;
    match (path, method) {
        (DelegationPath::Collection | DelegationPath::Token(_), &Method::POST)
        | (DelegationPath::Item(_), &Method::GET | &Method::DELETE) => {}
        (DelegationPath::Item(_), _) => {
            return Err(ApiError::MethodNotAllowed {
                allow: "GET, DELETE",
            });
        }
        _ => return Err(ApiError::MethodNotAllowed { allow: "POST" }),
    }
    if broker.delegations.is_none() {
        return Err(BrokerError::DelegationsNotEnabled.into());
    }
    let bearer = parts.bearer().map_err(|err| ApiError::Broker(err.into()))?;
    if looks_like_delegation_bearer(bearer.expose()) {
        return Err(BrokerError::InvalidCaller(CallerError::DelegationBearerNotAccepted).into());
    }
    let caller = broker.authenticate(&bearer).await?;
    record.caller = Some(caller.clone());
    broker.check_rate(&caller)?;
    let policy = broker.policy.current()?;
    record.policy = Some(policy.clone());
    let id_of = |text: &str| {
        DelegationId::from_str(text).map_err(|_| ApiError::from(BrokerError::DelegationNotFound))
    };
    match path {
        DelegationPath::Collection => {
            let request = parse_create(parts.json_body()?)?;
            let issued = broker.create_delegation(&caller, &policy, request).await?;
            record.delegation = Some(audit_of(&issued.record));
            Ok(issued_response(&issued, policy.revision))
        }
        DelegationPath::Token(id) => {
            let issued = broker
                .rotate_delegation_bearer(&caller, &policy, &id_of(id)?)
                .await?;
            record.delegation = Some(audit_of(&issued.record));
            Ok(issued_response(&issued, policy.revision))
        }
        DelegationPath::Item(id) if method == Method::DELETE => {
            let revoked = broker.revoke_delegation(&caller, &id_of(id)?).await?;
            record.delegation = Some(audit_of(&revoked));
            Ok(no_content())
        }
        DelegationPath::Item(id) => {
            let found = broker.read_delegation(&caller, &id_of(id)?).await?;
            record.delegation = Some(audit_of(&found));
            Ok(no_store_json(&delegation_body(&found)))
        }
    }
}

fn parse_create(request: CreateRequest) -> Result<NewDelegation, ApiError> {
    let bad = |reason| Err(ApiError::BadRequest(reason));
    let lane = match request.lane.as_str() {
        Some("user") => Lane::User,
        Some("service") => Lane::Service,
        _ => return bad("lane_malformed"),
    };
    let Some(listed) = request.audiences.as_array() else {
        return bad("audiences_malformed");
    };
    let mut audiences: Vec<String> = Vec::with_capacity(listed.len());
    for alias in listed {
        match alias.as_str() {
            Some(alias) if is_alias(alias) && !audiences.iter().any(|a| a == alias) => {
                audiences.push(alias.to_owned());
            }
            _ => return bad("audiences_malformed"),
        }
    }
    if audiences.is_empty() || audiences.len() > MAX_AUDIENCES {
        return bad("audiences_malformed");
    }
    let subject_token = match request.subject_token {
        Value::Null => None,
        Value::String(token) if !token.is_empty() => Some(Secret::new(token)),
        _ => return bad("subject_token_malformed"),
    };
    let lifetime_seconds = match request.lifetime_seconds {
        Value::Null => DEFAULT_LIFETIME_SECONDS,
        value => match value.as_u64() {
            Some(seconds) => seconds,
            None => return bad("lifetime_malformed"),
        },
    };
    let label = match request.label {
        Value::Null => None,
        Value::String(label)
            if label.chars().count() <= MAX_LABEL_CHARS
                && label.chars().all(|c| !c.is_control()) =>
        {
            Some(label)
        }
        _ => return bad("label_malformed"),
    };
    Ok(NewDelegation {
        lane,
        audiences,
        subject_token,
        lifetime_seconds,
        label,
    })
}

/// A delegation's subject as every answer shows it (`{"type", "oid", "display"}`).
pub(crate) fn subject_of(record: &DelegationRecord) -> SubjectBody<'_> {
    SubjectBody {
        kind: record.subject.kind.as_str(),
        oid: record.subject.oid.as_str(),
        display: &record.subject.display,
    }
}

fn issued_response(issued: &IssuedBearer, policy_revision: u64) -> Response {
    let record = &issued.record;
    let now = now();
    let mut response = no_store_json(&IssuedBody {
        id: record.id.to_string(),
        token: issued.bearer.expose(),
        token_expires_in: issued.bearer_expires_at.saturating_sub(now),
        expires_in: record.expires_at.saturating_sub(now),
        lane: record.lane.as_str(),
        audiences: &record.audiences,
        subject: subject_of(record),
        policy_revision,
    });
    *response.status_mut() = StatusCode::CREATED;
    response
}

fn delegation_body(record: &DelegationRecord) -> DelegationBody<'_> {
    let now = now();
    DelegationBody {
        id: record.id.to_string(),
        lane: record.lane.as_str(),
        audiences: &record.audiences,
        subject: subject_of(record),
        label: record.label.as_deref(),
        created: record.created,
        expires_in: record.expires_at.saturating_sub(now),
        state: record.state_at(now).as_str(),
        claims: record.claims.as_deref(),
        last_used: record.last_used,
        redemptions: record.redemptions,
    }
}

fn no_content() -> Response {
    let mut response = Response::new(Vec::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The delegation fields of an audit line.
pub fn audit_of(record: &DelegationRecord) -> DelegationAudit {
    DelegationAudit {
        id: record.id.to_string(),
        delegator: record.delegator.to_string(),
        subject: record.subject.oid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_matched_case_insensitively_and_nothing_else_matches() {
        assert_eq!(
            parse_path("/api/Delegations"),
            Some(DelegationPath::Collection)
        );
        assert_eq!(
            parse_path("/API/delegations/abc/TOKEN"),
            Some(DelegationPath::Token("abc".into()))
        );
        assert_eq!(
            parse_path("/api/delegations/abc"),
            Some(DelegationPath::Item("abc".into()))
        );
        assert_eq!(parse_path("/api/delegations/abc/other"), None);
        assert_eq!(parse_path("/api/token"), None);
    }
}
