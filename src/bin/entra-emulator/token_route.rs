//! The token endpoint's route: a POST to a known tenant, one form with no repeated parameter, and the
//! grant it names handed to `token_endpoint` (client credentials) or `obo` (on-behalf-of).

use crate::entra_error::EntraError;
use crate::http::{Request, Response};
use crate::identities;
use crate::state::State;
use crate::stats::Counter;
use crate::token_endpoint::{Form, JWT_BEARER, client_credentials};
use crate::{aadsts, obo};
use warp::http::Method;

/// Which counter a token request bumps, read from its grant type.
pub fn counter(request: &Request) -> Counter {
    match Form::parse(request).get("grant_type") {
        Some("client_credentials") => Counter::ClientCredentials,
        Some(JWT_BEARER) => Counter::Obo,
        _ => Counter::OtherGrant,
    }
}

pub fn handle(state: &State, request: &Request, tenant: &str) -> Response {
    token(state, request, tenant).unwrap_or_else(|error| error.respond(request))
}

fn token(state: &State, request: &Request, tenant: &str) -> Result<Response, EntraError> {
    if request.method != Method::POST {
        return Err(aadsts::post_only(request.method.as_str()));
    }
    if ["common", "organizations", "consumers"].contains(&tenant.to_ascii_lowercase().as_str()) {
        return Err(aadsts::no_tenant());
    }
    let tenant_name =
        identities::tenant_name(tenant).ok_or_else(|| aadsts::tenant_not_found(tenant))?;
    let form = Form::parse(request);
    if let Some(name) = form.duplicated() {
        return Err(aadsts::duplicated_parameter(name));
    }
    match form.require("grant_type")? {
        "client_credentials" => client_credentials(state, request, &form, tenant, tenant_name),
        JWT_BEARER => obo::exchange(state, request, &form, tenant, tenant_name),
        other => Err(aadsts::unsupported_grant(other)),
    }
}
