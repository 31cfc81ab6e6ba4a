//! The refresh-token grant (`grant_type=refresh_token`) for the broker, a confidential client: client
//! authentication as for every grant, then `refresh_token` and `scope` (one resource, any the user may
//! reach: a refresh token is user-wide). The answer carries a new refresh token (rotation). Refusals:
//! AADSTS9002313 (unknown token), 50173 (sessions revoked), 70008 (strict mode: already redeemed), and the
//! tenant's demands for the user and resource as On-Behalf-Of meets them (50076 with a claims challenge,
//! 65001).

use crate::entra_error::EntraError;
use crate::http::{Request, Response};
use crate::refresh_tokens::Refusal;
use crate::state::State;
use crate::token_endpoint::{self, Form};
use crate::{aadsts, clock, obo, user_token};

pub fn redeem(
    state: &State,
    request: &Request,
    form: &Form,
    tenant: &str,
    tenant_name: &str,
) -> Result<Response, EntraError> {
    token_endpoint::authenticate(state, form, tenant, tenant_name)?;
    let presented = form.require("refresh_token")?;
    let scope = form.require("scope")?;
    let resource = obo::resource_of(scope)?;
    let lifetime = {
        let directory = state.directory();
        if !directory.knows_resource(&resource) {
            return Err(aadsts::unknown_resource(&resource, tenant_name));
        }
        directory.token_lifetime
    };
    let grant = state
        .refresh_tokens()
        .redeem(presented)
        .map_err(|refusal| match refusal {
            Refusal::Unknown => aadsts::malformed_refresh_token(),
            Refusal::Revoked {
                issued_at,
                valid_from,
            } => aadsts::refresh_token_revoked(
                &clock::iso8601(issued_at),
                &clock::iso8601(valid_from),
            ),
            Refusal::AlreadyRedeemed => aadsts::refresh_token_expired(),
        })?;
    let user_oid = grant.user_oid().to_owned();
    let demand = state.directory().demand_for(&user_oid, &resource);
    obo::meet(demand, &grant.user, &resource)?;
    let claims = user_token::claims(&grant.user, &user_oid, &resource, lifetime);
    let rotated = state.refresh_tokens().issue(grant.user);
    token_endpoint::success(state, request, scope, &claims, lifetime, Some(rotated))
}
