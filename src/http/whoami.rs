//! `GET /api/whoami`: who the broker sees in the caller's token and which grants of the policy in force
//! match them, so that callers can debug their own 403s. Shows only this caller's grants. With a
//! delegation bearer, the delegation it belongs to (id, lane, audiences, subject, expiry).

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use warp::http::Method;
use warp::reply::Response;

use crate::broker::Broker;
use crate::broker::caller::Caller;
use crate::broker::policy::{Grant, Policy};
use crate::clock::now;
use crate::delegation::looks_like_delegation_bearer;
use crate::http::delegations::{SubjectBody, audit_of, subject_of};
use crate::http::error::ApiError;
use crate::http::reply::{begin, no_store_json, refuse};
use crate::http::request::RequestParts;
use crate::logging::telemetry::{self, AuditRecord};

pub const ROUTE: &str = "whoami";

#[derive(Serialize)]
struct WhoAmIResponse<'a> {
    caller: CallerBody<'a>,
    policy_revision: u64,
    grants: Vec<GrantBody<'a>>,
    /// The token carried group overage instead of its groups, so no group grant can match.
    group_overage: bool,
}

#[derive(Serialize)]
struct CallerBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    oid: &'a str,
    /// Escaped once, when the caller token was validated.
    display: &'a RawValue,
    tenant: &'a str,
    app_id: Option<&'a str>,
}

#[derive(Serialize)]
struct GrantBody<'a> {
    name: &'a str,
    lane: &'static str,
    scopes: Vec<&'a str>,
    audiences: &'a [String],
    /// Present on a delegate grant: it lets the caller create delegations, and redeems nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    delegate: Option<DelegateBody>,
}

#[derive(Serialize)]
struct DelegateBody {
    max_lifetime_seconds: u64,
}

/// What whoami shows of a delegation bearer: the delegation, never a token.
#[derive(Serialize)]
struct DelegationWhoAmI<'a> {
    delegation: DelegationView<'a>,
}

#[derive(Serialize)]
struct DelegationView<'a> {
    id: String,
    lane: &'static str,
    audiences: &'a [String],
    subject: SubjectBody<'a>,
    expires_in: u64,
}

pub async fn handle(parts: RequestParts, broker: Arc<Broker>) -> Response {
    let mut record = begin(ROUTE, &parts, &broker);
    let delegation_bearer = parts
        .bearer()
        .ok()
        .filter(|bearer| looks_like_delegation_bearer(bearer.expose()));
    if let (Some(bearer), &Method::GET) = (delegation_bearer, &parts.method) {
        return match broker.authenticate_delegation(&bearer).await {
            Ok(current) => {
                let delegation = &current.record;
                record.delegation = Some(audit_of(delegation));
                record.lane = Some(delegation.lane);
                telemetry::audit(&record, Ok(None));
                no_store_json(&DelegationWhoAmI {
                    delegation: DelegationView {
                        id: delegation.id.to_string(),
                        lane: delegation.lane.as_str(),
                        audiences: &delegation.audiences,
                        subject: subject_of(delegation),
                        expires_in: delegation.expires_at.saturating_sub(now()),
                    },
                })
            }
            Err(err) => refuse(&broker, &record, err.into()),
        };
    }
    match look_up(&parts, &broker, &mut record).await {
        Ok((caller, policy)) => match policy.grants_for(&caller) {
            Ok(grants) => {
                telemetry::audit(&record, Ok(None));
                no_store_json(&body(&caller, &policy, &grants))
            }
            Err(err) => refuse(&broker, &record, err.into()),
        },
        Err(err) => refuse(&broker, &record, err),
    }
}

async fn look_up(
    parts: &RequestParts,
    broker: &Broker,
    record: &mut AuditRecord,
) -> Result<(Arc<Caller>, Arc<Policy>), ApiError> {
    if parts.method != Method::GET {
        return Err(ApiError::MethodNotAllowed { allow: "GET" });
    }
    let bearer = parts.bearer().map_err(|err| ApiError::Broker(err.into()))?;
    let caller = broker.authenticate(&bearer).await?;
    record.caller = Some(caller.clone());
    broker.check_rate(&caller)?;
    let policy = broker.policy.current()?;
    record.policy = Some(policy.clone());
    Ok((caller, policy))
}

fn body<'a>(caller: &'a Caller, policy: &Policy, grants: &[&'a Grant]) -> WhoAmIResponse<'a> {
    WhoAmIResponse {
        caller: CallerBody {
            kind: caller.kind.as_str(),
            oid: caller.oid.as_str(),
            display: caller.display.as_json(),
            tenant: caller.tenant.as_str(),
            app_id: caller.app_id.as_deref(),
        },
        policy_revision: policy.revision,
        grants: grants
            .iter()
            .map(|grant| GrantBody {
                name: &grant.name,
                lane: grant.lane.as_str(),
                scopes: grant.scopes.iter().map(|s| s.as_str()).collect(),
                audiences: &grant.aliases,
                delegate: grant.delegate.map(|delegate| DelegateBody {
                    max_lifetime_seconds: delegate.max_lifetime_seconds,
                }),
            })
            .collect(),
        group_overage: caller.group_overage,
    }
}
